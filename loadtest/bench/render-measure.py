#!/usr/bin/env python3
# Runs a `relay render ...` command and reports its speed and memory (docs/benchmarks.md, issue 20):
# wall time, video seconds per wall second, and the peak RSS and PSS summed over the whole process
# tree (relay, node, Chromium, ffmpeg), sampled from /proc every 100 ms.
# Usage: render-measure.py RELAY render RECORDING --out FILE [flags]
import subprocess, sys, time, os, json
def tree(pid):
    kids = {}
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                st = open(f'/proc/{d}/stat').read()
                ppid = int(st.rsplit(')',1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except Exception: pass
    out, stack = [], [pid]
    while stack:
        p = stack.pop(); out.append(p); stack.extend(kids.get(p, []))
    return out
def pss(p):
    try:
        for l in open(f'/proc/{p}/smaps_rollup'):
            if l.startswith('Pss:'): return int(l.split()[1])
    except Exception: pass
    return 0
def rss(p):
    try:
        for l in open(f'/proc/{p}/status'):
            if l.startswith('VmRSS:'): return int(l.split()[1])
    except Exception: pass
    return 0
cmd = sys.argv[1:]
t0 = time.time()
proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
peak = 0; peak_chromium = 0
while proc.poll() is None:
    ps = tree(proc.pid)
    total = sum(rss(p) for p in ps)
    peak = max(peak, total)
    peak_chromium = max(peak_chromium, sum(pss(p) for p in ps))
    time.sleep(0.1)
wall = time.time() - t0
out = json.loads(proc.stdout.read())
print(json.dumps({"wall_s": round(wall,2), "video_s": out["duration_ms"]/1000, "ratio": round(out["duration_ms"]/1000/wall,2), "peak_tree_rss_mib": round(peak/1024,1), "peak_tree_pss_mib": round(peak_chromium/1024,1), "frames": out["frames"], "skipped_ms": out["skipped_ms"], "size": f'{out["width"]}x{out["height"]}', "bytes": out["bytes"]}))
