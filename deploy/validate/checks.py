"""Cross-checks of the deployment material, run by deploy/validate.sh in its tool virtualenv.

Usage: checks.py ROOT [OVERLAY=RENDERED.yaml ...]

Prints one "STATUS<TAB>check<TAB>detail" line per result (STATUS is PASS, FAIL or SKIP), which the
shell records in its result table; any other output is shown as it is. Owns the checks that read
several files at once (Dockerfile and .dockerignore, docker-compose.yml, nginx, Kubernetes, systemd,
monitoring, the RELAY_* names); linters, schemas and host tools (nginx -t, promtool,
systemd-analyze) stay in the shell.
"""
import os, re, sys, fnmatch
import yaml

root = sys.argv[1]
rendered = [a.split("=", 1) for a in sys.argv[2:]]
os.chdir(root)

def out(status, name, detail):
    print(f"{status}\t{name}\t{detail}")

def check(name, problems, ok_detail):
    if problems:
        for p in problems:
            out("FAIL", name, p)
    else:
        out("PASS", name, ok_detail)

def read(p):
    with open(p, encoding="utf-8") as f:
        return f.read()

def duration_s(s):
    """humantime subset: 10s, 500ms, 1m 30s, 2h."""
    total, units = 0.0, {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    for num, unit in re.findall(r"(\d+)\s*([a-z]+)", str(s)):
        total += int(num) * units[unit]
    return total

# -- the relay's variables: `env = "RELAY_..."` (clap) and `from_env("RELAY_...")` (RELAY_LOG) -----
# Read from every relay/src/**/*.rs, not named files, so that moving the flags between modules
# (config.rs -> config/args.rs + config/mod.rs) does not break the check.
RELAY_SRC = sorted(os.path.join(d, f) for d, _, fs in os.walk("relay/src") for f in fs if f.endswith(".rs"))
src = "".join(read(p) for p in RELAY_SRC)
known = set(re.findall(r'env\s*=\s*"(RELAY_[A-Z0-9_]+)"', src))
known |= set(re.findall(r'from_env\("(RELAY_[A-Z0-9_]+)"\)', src))
defaults = {}
for m in re.finditer(r'env\s*=\s*"(RELAY_[A-Z_]+)",\s*default_value\s*=\s*"([^"]*)"', src):
    defaults[m.group(1)] = m.group(2)
if "RELAY_JWT_SECRET" not in known or "RELAY_DRAIN_TIMEOUT" not in defaults:
    out("FAIL", "env:names", "could not read the RELAY_* variables (and RELAY_DRAIN_TIMEOUT's default) "
        "from relay/src/**/*.rs")
    sys.exit(0)

def env_file(p):
    """VAR=value lines (docker/systemd/kustomize env files), comments and blanks skipped."""
    env = {}
    for n, line in enumerate(read(p).splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        k, sep, v = line.partition("=")
        env[k.strip()] = (v.strip(), n) if sep else (None, n)
    return env

ENV_FILES = ["deploy/compose/relay.env.example", "deploy/systemd/relay.env.example",
             "deploy/k8s/base/relay-config.env"]
names_problems, empty_problems = [], []
used = {}
for p in ENV_FILES:
    if not os.path.exists(p):
        names_problems.append(f"{p} is missing")
        continue
    for k, (v, n) in env_file(p).items():
        used.setdefault(k, []).append(f"{p}:{n}")
        if v is None or v == "":
            empty_problems.append(f"{p}:{n}: {k} is empty; an empty value counts as set "
                                  "(e.g. RELAY_API_KEY= exits 64): comment it out")

# -- Dockerfile and .dockerignore -------------------------------------------------------------------
df = read("Dockerfile")
lines = []
for raw in re.sub(r"\\\n", " ", df).splitlines():
    s = raw.strip()
    if s and not s.startswith("#"):
        lines.append(s)
stages = [l for l in lines if l.upper().startswith("FROM ")]
runtime_from = lines.index(stages[-1]) if stages else 0
runtime = lines[runtime_from:]
image_env = {}
for l in runtime:
    if l.upper().startswith("ENV "):
        for k, v in re.findall(r"(\w+)=(\S+)", l[4:]):
            image_env[k] = v
            used.setdefault(k, []).append("Dockerfile")

def dockerignore_patterns():
    pats = []
    for line in read(".dockerignore").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        pat = os.path.normpath(line[1:] if neg else line).lstrip("/")
        pats.append((neg, pat))
    return pats

def docker_match(pat, path):
    # Go filepath.Match per segment, `**` for any number of segments (moby/patternmatcher).
    rx = ""
    i = 0
    while i < len(pat):
        if pat.startswith("**", i):
            rx += ".*"
            i += 2
            if pat.startswith("/", i):
                rx = rx[:-2] + "(.*/)?"
                i += 1
        elif pat[i] == "*":
            rx += "[^/]*"; i += 1
        elif pat[i] == "?":
            rx += "[^/]"; i += 1
        else:
            rx += re.escape(pat[i]); i += 1
    return re.fullmatch(rx, path) is not None

PATS = dockerignore_patterns()

def ignored(path):
    # A path is excluded when the last pattern matching it or one of its parents is not a `!`.
    parts = path.split("/")
    result = False
    for neg, pat in PATS:
        for i in range(len(parts), 0, -1):
            if docker_match(pat, "/".join(parts[:i])):
                result = not neg
                break
    return result

def context_files():
    for d, dirs, files in os.walk("."):
        dirs[:] = [x for x in dirs if x not in (".git", "target")]
        for f in files:
            p = os.path.relpath(os.path.join(d, f), ".")
            if not ignored(p):
                yield p

problems = []
ctx = set(context_files())
for l in lines:
    if not l.upper().startswith("COPY ") or "--from=" in l:
        continue
    args = [a for a in l.split()[1:] if not a.startswith("--")]
    for srcp in args[:-1]:
        srcp = srcp.rstrip("/")
        hits = [f for f in ctx if f == srcp or f.startswith(srcp + "/")]
        if not hits:
            problems.append(f"COPY {srcp}: nothing of it is in the build context left by .dockerignore")
for need in ["relay/templates/native-page.html", "relay/src/main.rs", "loadtest/src/main.rs",
             "proto/src/lib.rs", "Cargo.lock"]:
    if need not in ctx:
        problems.append(f"{need} is not in the build context (.dockerignore)")
for leak in ("target", ".git", "fuzz", "docs"):
    if any(f == leak or f.startswith(leak + "/") for f in ctx):
        problems.append(f"{leak}/ is in the build context (.dockerignore should leave it out)")
check("dockerfile:context", problems,
      f".dockerignore leaves {len(ctx)} files; every COPY source and relay/templates are among them")

problems = []
if image_env.get("RELAY_LISTEN") != "0.0.0.0:8080" or image_env.get("RELAY_ADMIN_LISTEN") != "0.0.0.0:9090":
    problems.append(f"runtime ENV should listen on 0.0.0.0:8080 / 0.0.0.0:9090, has {image_env}")
if not any(l.upper().startswith("USER ") and not re.search(r"USER\s+(0|root)\b", l) for l in runtime):
    problems.append("the runtime stage has no non-root USER")
if not any(re.fullmatch(r'ENTRYPOINT\s+\["relay"\]', l) for l in runtime):
    problems.append('ENTRYPOINT should be ["relay"]')
if not any(re.fullmatch(r'CMD\s+\["serve"\]', l) for l in runtime):
    problems.append('CMD should be ["serve"]')
if not any(re.fullmatch(r"EXPOSE\s+8080\s+9090", l) for l in runtime):
    problems.append("EXPOSE 8080 9090 missing")
if not re.search(r"cargo build --release --locked", df):
    problems.append("the build stage does not run cargo build --release --locked")
check("dockerfile:runtime", problems, "non-root USER, ENV listeners on 0.0.0.0, EXPOSE 8080 9090, "
      'ENTRYPOINT ["relay"] CMD ["serve"]')

# -- docker-compose.yml -----------------------------------------------------------------------------
compose = yaml.safe_load(read("docker-compose.yml"))   # safe_load resolves the `<<:` merge keys
services = compose.get("services", {})
problems = []
relay_services = [n for n, s in services.items()
                  if s.get("image", "").startswith("assist-relay") and "profiles" not in s]
if len(relay_services) != 3:
    problems.append(f"expected 3 relay nodes, found {relay_services}")
for name, svc in services.items():
    for v in svc.get("volumes", []) or []:
        if isinstance(v, str) and v.startswith(("./", "/")):
            host = v.split(":", 1)[0]
            if not os.path.exists(host):
                problems.append(f"{name}: bind-mount source {host} does not exist")
    for ef in svc.get("env_file", []) or []:
        p = ef["path"] if isinstance(ef, dict) else ef
        if not os.path.exists(p) and not os.path.exists(p + ".example"):
            problems.append(f"{name}: env_file {p} has no {p}.example to copy from")
    for k in (svc.get("environment") or {}):
        if k.startswith("RELAY_"):
            used.setdefault(k, []).append(f"docker-compose.yml:{name}")
    for dep in (svc.get("depends_on") or {}):
        if dep not in services:
            problems.append(f"{name}: depends_on unknown service {dep}")
drain = duration_s(defaults["RELAY_DRAIN_TIMEOUT"])
for name in relay_services:
    svc = services[name]
    d = duration_s((svc.get("environment") or {}).get("RELAY_DRAIN_TIMEOUT", defaults["RELAY_DRAIN_TIMEOUT"]))
    g = duration_s(svc.get("stop_grace_period", "10s"))
    if g <= d:
        problems.append(f"{name}: stop_grace_period {g:g}s is not above the drain timeout {d:g}s")
    hc = " ".join(map(str, (svc.get("healthcheck") or {}).get("test", [])))
    admin_port = image_env.get("RELAY_ADMIN_LISTEN", "").rsplit(":", 1)[-1]
    if f"/dev/tcp/127.0.0.1/{admin_port}" not in hc or "/readyz" not in hc:
        problems.append(f"{name}: healthcheck does not ask /readyz on the admin port {admin_port}")
    if not svc.get("read_only"):
        problems.append(f"{name}: read_only is not set")
redis_cmd = " ".join(map(str, services.get("redis", {}).get("command", [])))
for want in ("--appendonly yes", "--appendfsync always", "--maxmemory-policy noeviction"):
    if want not in redis_cmd:
        problems.append(f"redis: command lacks {want}")
if "compactor" in services and "profiles" not in services["compactor"]:
    problems.append("compactor: the subcommand does not exist yet; keep it behind a profile")
nginx_conf = read("deploy/compose/nginx.conf")
upstreams = re.findall(r"^\s*server\s+([\w.-]+):(\d+)", nginx_conf, re.M)
for host, port in upstreams:
    if host not in relay_services:
        problems.append(f"deploy/compose/nginx.conf: upstream {host} is not a relay service")
    if port != image_env.get("RELAY_LISTEN", "").rsplit(":", 1)[-1]:
        problems.append(f"deploy/compose/nginx.conf: upstream port {port} is not the relay's listen port")
if sorted(h for h, _ in upstreams) != sorted(relay_services):
    problems.append(f"deploy/compose/nginx.conf upstreams {upstreams} != relay services {relay_services}")
check("compose:cross", problems, f"relay nodes {', '.join(relay_services)}; mounts and env files exist; "
      f"grace > drain; healthcheck on /readyz; redis AOF always + noeviction; nginx upstreams = nodes")

# -- nginx: the compose copy matches the room-affinity file ----------------------------------------
def body(text):
    text = text[text.index("map $http_upgrade"):]
    return re.sub(r"(# BEGIN upstream servers\n).*?(\s*# END upstream servers)", r"\1\2", text, flags=re.S)
ref = read("deploy/nginx/assist-relay-room-affinity.conf")
check("nginx:in-sync", [] if body(ref) == body(nginx_conf) else
      ["deploy/compose/nginx.conf differs from deploy/nginx/assist-relay-room-affinity.conf outside "
       "the upstream servers: update the copy"],
      "deploy/compose/nginx.conf = deploy/nginx/assist-relay-room-affinity.conf except the servers")

# -- Kubernetes -------------------------------------------------------------------------------------
for overlay, path in rendered:
    docs = [d for d in yaml.safe_load_all(read(path)) if d]
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    problems = []
    for d_ in docs:
        if d_["kind"] in ("Deployment", "StatefulSet"):
            for c_ in d_["spec"]["template"]["spec"]["containers"]:
                for e in c_.get("env", []):
                    if e["name"].startswith("RELAY_"):
                        used.setdefault(e["name"], []).append(f"{overlay} {d_['metadata']['name']}")
    dep = by.get(("Deployment", "assist-relay"))
    if dep is None:
        out("FAIL", "k8s:cross", f"{overlay}: no Deployment assist-relay")
        continue
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    envs = {}
    for cm in (d for d in docs if d["kind"] == "ConfigMap"):
        if any(r.get("configMapRef", {}).get("name") == cm["metadata"]["name"] for r in c.get("envFrom", [])):
            envs.update(cm.get("data", {}))
    for e in c.get("env", []):
        envs[e["name"]] = e.get("value", "<from " + ",".join(e.get("valueFrom", {}).keys()) + ">")
    for k in envs:
        if k.startswith("RELAY_"):
            used.setdefault(k, []).append(f"{overlay} Deployment")
    listen = str(envs.get("RELAY_LISTEN", image_env.get("RELAY_LISTEN", ""))).rsplit(":", 1)[-1]
    admin = str(envs.get("RELAY_ADMIN_LISTEN", image_env.get("RELAY_ADMIN_LISTEN", ""))).rsplit(":", 1)[-1]
    if str(ports.get("ws")) != listen or str(ports.get("admin")) != admin:
        problems.append(f"container ports {ports} do not match RELAY_LISTEN :{listen} / RELAY_ADMIN_LISTEN :{admin}")
    for probe, path_ in (("readinessProbe", "/readyz"), ("livenessProbe", "/livez"), ("startupProbe", "/livez")):
        pr = c.get(probe, {}).get("httpGet", {})
        if pr.get("path") != path_ or pr.get("port") not in ("admin", ports.get("admin")):
            problems.append(f"{probe} should GET {path_} on the admin port, has {pr}")
    d = duration_s(envs.get("RELAY_DRAIN_TIMEOUT", defaults["RELAY_DRAIN_TIMEOUT"]))
    pre = c.get("lifecycle", {}).get("preStop", {})
    sleep = 0
    if "exec" in pre and pre["exec"]["command"][:1] == ["sleep"]:
        sleep = int(pre["exec"]["command"][1])
    elif "sleep" in pre:
        sleep = int(pre["sleep"]["seconds"])
    else:
        problems.append("no preStop sleep")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace <= sleep + d:
        problems.append(f"terminationGracePeriodSeconds {grace} is not above preStop {sleep}s + drain {d:g}s")
    sc, psc = c.get("securityContext", {}), pod.get("securityContext", {})
    if not psc.get("runAsNonRoot") or not sc.get("readOnlyRootFilesystem") or sc.get("allowPrivilegeEscalation") is not False:
        problems.append("securityContext: want runAsNonRoot, readOnlyRootFilesystem, allowPrivilegeEscalation false")
    if "cpu" not in c.get("resources", {}).get("requests", {}):
        problems.append("no CPU request (the HPA's Utilization target needs one)")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    def selects(sel):
        return sel and all(labels.get(k) == v for k, v in sel.items())
    for kind in ("Service", "PodDisruptionBudget"):
        for o in (o for o in docs if o["kind"] == kind and o["metadata"]["name"] == "assist-relay"):
            sel = o["spec"]["selector"] if kind == "Service" else o["spec"]["selector"]["matchLabels"]
            if not selects(sel):
                problems.append(f"{kind} selector {sel} does not select the pods {labels}")
    svc = by.get(("Service", "assist-relay"))
    svc_ports = {p["name"] for p in svc["spec"]["ports"]} if svc else set()
    if svc:
        for p in svc["spec"]["ports"]:
            if p["targetPort"] not in ports:
                problems.append(f"Service port {p['name']} targets {p['targetPort']}, not a container port")
    ing = by.get(("Ingress", "assist-relay"))
    if ing:
        ann = ing["metadata"].get("annotations", {})
        if ann.get("nginx.ingress.kubernetes.io/upstream-hash-by") != "$arg_room":
            problems.append("Ingress: upstream-hash-by is not $arg_room")
        for a in ("proxy-read-timeout", "proxy-send-timeout"):
            if int(ann.get(f"nginx.ingress.kubernetes.io/{a}", "60")) < 120:
                problems.append(f"Ingress: {a} below 120 s (the relay pings every 25 s, idles out at 60 s)")
        for rule in ing["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                b = p["backend"]["service"]
                if b["name"] != "assist-relay" or b["port"].get("name") not in svc_ports:
                    problems.append(f"Ingress backend {b} is not a port of Service assist-relay")
                if b["port"].get("name") != "ws":
                    problems.append("Ingress routes something other than the ws port")
    hpa = by.get(("HorizontalPodAutoscaler", "assist-relay"))
    if hpa and hpa["spec"]["scaleTargetRef"]["name"] != dep["metadata"]["name"]:
        problems.append("HPA does not target the Deployment")
    if hpa and hpa["spec"]["minReplicas"] > dep["spec"]["replicas"]:
        problems.append("HPA minReplicas above the Deployment's replicas")
    secrets = {o["metadata"]["name"]: o for o in docs if o["kind"] == "Secret"}
    for e in c.get("env", []):
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref and secrets:
            s = secrets.get(ref["name"])
            if s is None:
                problems.append(f"env {e['name']}: Secret {ref['name']} is not in {overlay}")
            elif ref["key"] not in (s.get("data") or {}) and not ref.get("optional"):
                problems.append(f"env {e['name']}: Secret {ref['name']} has no key {ref['key']}")
    for k, v in envs.items():
        if k.startswith("RELAY_") and v == "":
            problems.append(f"{k} is empty in the Deployment's environment")
    check("k8s:cross", problems, f"{overlay}: ports = listeners, probes on admin, grace {grace}s > preStop "
          f"{sleep}s + drain {d:g}s, selectors, Ingress hash/timeouts/backend, HPA target, secrets")

# -- systemd ----------------------------------------------------------------------------------------
problems = []
unit = read("deploy/systemd/assist-relay.service")
def unit_val(key):
    m = re.findall(rf"^{key}=(.*)$", unit, re.M)
    return m[-1].strip() if m else None
sysenv = env_file("deploy/systemd/relay.env.example")
d = duration_s(sysenv.get("RELAY_DRAIN_TIMEOUT", (defaults["RELAY_DRAIN_TIMEOUT"], 0))[0])
stop = duration_s(unit_val("TimeoutStopSec") or "90s")
if stop <= d:
    problems.append(f"TimeoutStopSec {stop:g}s is not above RELAY_DRAIN_TIMEOUT {d:g}s")
for key, want in (("KillSignal", "SIGTERM"), ("Restart", "on-failure"), ("LimitNOFILE", "1048576"),
                  ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                  ("EnvironmentFile", "/etc/assist-relay/relay.env")):
    if unit_val(key) != want:
        problems.append(f"assist-relay.service: {key}={unit_val(key)}, want {want}")
if unit_val("DynamicUser") != "yes" and not unit_val("User"):
    problems.append("assist-relay.service: neither DynamicUser=yes nor User=")
check("systemd:cross", problems, f"TimeoutStopSec {stop:g}s > drain {d:g}s; KillSignal, Restart, LimitNOFILE, "
      "NoNewPrivileges, ProtectSystem, EnvironmentFile, DynamicUser")

for u in ("deploy/systemd/assist-relay.service", "deploy/systemd/assist-relay-compactor.service"):
    for k in re.findall(r"^Environment=(RELAY_[A-Z0-9_]+)=", read(u), re.M):
        used.setdefault(k, []).append(u)

# -- Prometheus and Grafana in compose ---------------------------------------------------------------
problems = []
prom_svc = services.get("prometheus", {})
mounts = {}
for v in prom_svc.get("volumes", []) + services.get("grafana", {}).get("volumes", []):
    if isinstance(v, str) and v.startswith("./"):
        host, cont = v.split(":")[:2]
        mounts[cont] = os.path.normpath(host)
if mounts.get("/etc/prometheus/prometheus.yml") != "deploy/compose/prometheus.yml":
    problems.append("prometheus: deploy/compose/prometheus.yml is not mounted as /etc/prometheus/prometheus.yml")
if mounts.get("/etc/prometheus/assist-relay") != "deploy/prometheus":
    problems.append("prometheus: deploy/prometheus is not mounted at /etc/prometheus/assist-relay")
if os.path.exists("deploy/prometheus/prometheus.yml"):
    kit = yaml.safe_load(read("deploy/prometheus/prometheus.yml"))
    ours = yaml.safe_load(read("deploy/compose/prometheus.yml"))
    kit_jobs = {j["job_name"] for j in kit.get("scrape_configs", [])}
    for j in ours.get("scrape_configs", []):
        if j["job_name"] not in kit_jobs:
            problems.append(f"deploy/compose/prometheus.yml job {j['job_name']} is not a job of "
                            f"deploy/prometheus/prometheus.yml {sorted(kit_jobs)} (rules match on job names)")
        for sc in j.get("static_configs", []):
            for t in sc.get("targets", []):
                host, port = t.rsplit(":", 1)
                if host not in services:
                    problems.append(f"deploy/compose/prometheus.yml target {t} is not a compose service")
    ds = []
    for f in sorted(os.listdir("deploy/grafana/provisioning/datasources")) if os.path.isdir("deploy/grafana/provisioning/datasources") else []:
        ds += (yaml.safe_load(read(f"deploy/grafana/provisioning/datasources/{f}")) or {}).get("datasources", [])
    for d_ in ds:
        if d_.get("type") == "prometheus" and d_.get("url") != "http://prometheus:9090":
            problems.append(f"Grafana data source {d_.get('name')} points at {d_.get('url')}, not the compose prometheus service")
    provs = []
    for f in sorted(os.listdir("deploy/grafana/provisioning/dashboards")) if os.path.isdir("deploy/grafana/provisioning/dashboards") else []:
        provs += (yaml.safe_load(read(f"deploy/grafana/provisioning/dashboards/{f}")) or {}).get("providers", [])
    for pv in provs:
        path_ = pv.get("options", {}).get("path")
        if path_ and mounts.get(path_) != "deploy/grafana/dashboards":
            problems.append(f"Grafana dashboard provider reads {path_}; compose mounts deploy/grafana/dashboards "
                            f"at {[c for c, h in mounts.items() if h == 'deploy/grafana/dashboards']}")
    check("compose:monitoring", problems, "compose Prometheus jobs = deploy/prometheus jobs, targets are services; "
          "Grafana data source and dashboard path match the compose mounts")
else:
    out("SKIP", "compose:monitoring", "deploy/prometheus/prometheus.yml not present yet")

# -- every RELAY_* name is real ---------------------------------------------------------------------
unknown = [f"{k} ({', '.join(sorted(set(w)))}) is not a relay variable" for k, w in sorted(used.items())
           if k.startswith("RELAY_") and k not in known]
check("env:names", names_problems + unknown,
      f"{len([k for k in used if k.startswith('RELAY_')])} RELAY_* names used in the manifests, all among the "
      f"{len(known)} the relay reads (relay/src/**/*.rs)")
check("env:no-empty", empty_problems, "no RELAY_* variable set to an empty value in " + ", ".join(ENV_FILES))
