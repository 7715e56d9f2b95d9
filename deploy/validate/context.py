"""The Docker build context as .dockerignore leaves it, copied for deploy/validate.sh --build.

Usage: context.py ROOT DEST

Makes DEST hold exactly the files of ROOT that .dockerignore lets through (copying only what
changed, deleting what is no longer there), so the build stage can run outside Docker on them. The
same rules as the dockerfile:context check in checks.py.
"""
import os, re, shutil, sys
root, dest = sys.argv[1], sys.argv[2]
os.chdir(root)
pats = []
for line in open(".dockerignore", encoding="utf-8").read().splitlines():
    line = line.strip()
    if line and not line.startswith("#"):
        neg = line.startswith("!")
        pats.append((neg, os.path.normpath(line[1:] if neg else line).lstrip("/")))
def rx(p):
    p = re.escape(p).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
    return re.compile(p + r"\Z")
comp = [(n, rx(p)) for n, p in pats]
def ignored(path):
    parts, res = path.split("/"), False
    for neg, r in comp:
        if any(r.match("/".join(parts[:i])) for i in range(len(parts), 0, -1)):
            res = not neg
    return res
keep = set()
for d, dirs, files in os.walk("."):
    dirs[:] = [x for x in dirs if x not in (".git", "target")]
    for f in files:
        p = os.path.relpath(os.path.join(d, f), ".")
        if not ignored(p):
            keep.add(p)
for d, dirs, files in os.walk(dest, topdown=False):
    for f in files:
        p = os.path.relpath(os.path.join(d, f), dest)
        if p not in keep:
            os.remove(os.path.join(d, f))
for p in keep:
    t = os.path.join(dest, p)
    os.makedirs(os.path.dirname(t), exist_ok=True)
    if not os.path.exists(t) or open(t, "rb").read() != open(p, "rb").read():
        shutil.copy2(p, t)
