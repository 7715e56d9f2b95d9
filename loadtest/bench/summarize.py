#!/usr/bin/env python3
"""Prints the markdown tables of docs/benchmarks.md from the result directories of the
loadtest/bench/*.sh scripts.

    python3 loadtest/bench/summarize.py issue3 DIR [DIR...]    # issue3-stalled-viewer.sh outputs
    python3 loadtest/bench/summarize.py rss DIR                # the 5 s RSS samples of one pair
    python3 loadtest/bench/summarize.py issue4 DIR [DIR...]    # issue4-cross-node.sh outputs
    python3 loadtest/bench/summarize.py redis DIR              # Redis commands per event
    python3 loadtest/bench/summarize.py ceiling DIR            # ceiling-vs-relay.sh output
    python3 loadtest/bench/summarize.py memory DIR             # idle-memory.sh output
    python3 loadtest/bench/summarize.py b4 DIR [P99_MS]        # b4-sockudo.sh output (the bar too)
"""
import json
import os
import re
import sys

PCTS = ["p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms"]
PCT_HDR = "p50 | p90 | p99 | p99.9 | max | mean"


def load(path):
    with open(path) as f:
        return json.load(f)


def fmt(x, nd=2):
    return f"{x:.{nd}f}"


def lat_cells(lat):
    return " | ".join(fmt(lat[k]) for k in PCTS)


def ratio_cells(a, b):
    return " | ".join(f"{a[k] / b[k]:.2f}x" if b[k] else "-" for k in PCTS)


def proc(d, label_prefix="server"):
    return [p for p in d["processes"] if p["label"].startswith(label_prefix)]


def issue3(dirs):
    print(f"| run | stalled | {PCT_HDR} | lost / expected | relay RSS min-max (MiB) | relay CPU (cores) | publisher lag p99 | stalled viewer |")
    print("|---|---|" + "---|" * 6 + "---|---|---|---|---|")
    for d in dirs:
        runs = {}
        for n in (0, 1):
            p = os.path.join(d, f"stalled{n}.json")
            if os.path.exists(p):
                runs[n] = load(p)
        for n, r in runs.items():
            s = proc(r)[0]
            st = r.get("stalled_viewers")
            stv = "-" if not st else f"{st['events_received']} of {r['published_events']} events readable after the run; {', '.join(f'{k}={v}' for k, v in st['outcomes'].items())}"
            print(
                f"| {os.path.basename(d)} | {n} | {lat_cells(r['latency'])} | {r['events']['lost']} / {r['events']['expected']} "
                f"| {s['rss_min_kb'] / 1024:.1f}-{s['rss_max_kb'] / 1024:.1f} | {s['cpu_cores']:.2f} | {r['publisher_lag']['p99_ms']:.2f} | {stv} |"
            )
        if 0 in runs and 1 in runs:
            print(f"| {os.path.basename(d)} | ratio 1/0 | {ratio_cells(runs[1]['latency'], runs[0]['latency'])} | | | | | |")


def rss(d):
    cols = []
    for n in (0, 1):
        p = os.path.join(d, f"rss-stalled{n}.tsv")
        with open(p) as f:
            cols.append([l.split() for l in f if l.strip()])
    print("| t (s) | VmRSS, no stalled viewer (KiB) | VmRSS, 1 stalled viewer (KiB) |")
    print("|---|---|---|")
    for i in range(max(len(c) for c in cols)):
        a = cols[0][i] if i < len(cols[0]) else ["", ""]
        b = cols[1][i] if i < len(cols[1]) else ["", ""]
        print(f"| {a[0] or b[0]} | {a[1]} | {b[1]} |")


def node_metrics(path):
    """Per node: fan-out latency sum and count, events in and out."""
    nodes, cur = [], None
    with open(path) as f:
        for line in f:
            if line.startswith("## node"):
                cur = {"sum": 0.0, "count": 0, "in": 0, "out": 0}
                nodes.append(cur)
            elif cur is not None:
                if line.startswith("relay_fanout_latency_seconds_sum"):
                    cur["sum"] = float(line.split()[1])
                elif line.startswith("relay_fanout_latency_seconds_count"):
                    cur["count"] = int(line.split()[1])
                elif line.startswith('relay_frames_in_total{type="event"}'):
                    cur["in"] = int(line.split()[1])
                elif line.startswith('relay_frames_out_total{type="event"}'):
                    cur["out"] = int(line.split()[1])
    return nodes


def issue4(dirs):
    print(f"| run | placement (events in / out per node) | {PCT_HDR} | lost | relay fan-out mean (server side) | CPU s: nodes A+B+C = total | redis CPU s |")
    print("|---|---|" + "---|" * 6 + "---|---|---|---|")
    for d in dirs:
        names = sorted(
            (f[:-5] for f in os.listdir(d) if f.endswith(".json")),
            key=lambda n: (n.split("-")[0], n.split("-")[1] != "cross"),
        )
        by = {}
        for name in names:
            r = load(os.path.join(d, f"{name}.json"))
            by[name] = r
            servers = proc(r)
            nodes = servers[:3]
            redis = servers[3]
            nm = node_metrics(os.path.join(d, f"metrics-{name}.txt"))
            place = " / ".join(f"{n['in']}/{n['out']}" for n in nm)
            fan_sum = sum(n["sum"] for n in nm)
            fan_cnt = sum(n["count"] for n in nm)
            fan = f"{fan_sum / fan_cnt * 1000:.3f} ms" if fan_cnt else "-"
            cpu = " + ".join(f"{n['cpu_s']:.2f}" for n in nodes) + f" = {sum(n['cpu_s'] for n in nodes):.2f}"
            print(
                f"| {name} | {place} | {lat_cells(r['latency'])} | {r['events']['lost']} / {r['events']['expected']} | {fan} | {cpu} | {redis['cpu_s']:.2f} |"
            )
        for name in names:
            if "-cross" in name:
                same = name.replace("-cross", "-same")
                if same in by:
                    print(f"| {name} / {same} | ratio | {ratio_cells(by[name]['latency'], by[same]['latency'])} | | | | |")


def commandstats(path):
    out = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"cmdstat_([^:]+):calls=(\d+)", line)
            if m:
                out[m.group(1)] = int(m.group(2))
    return out


def stats(path):
    out = {}
    with open(path) as f:
        for line in f:
            if ":" in line:
                k, v = line.strip().split(":", 1)
                out[k] = v
    return out


def redis(d):
    names = [n for n in ("synthetic-cross", "synthetic-same", "recording-cross", "recording-same") if os.path.exists(os.path.join(d, f"{n}.json"))]
    events = {n: load(os.path.join(d, f"{n}.json"))["published_events"] for n in names}
    cs = {n: commandstats(os.path.join(d, f"commandstats-{n}.txt")) for n in names}
    st = {n: stats(os.path.join(d, f"stats-{n}.txt")) for n in names}
    idle = commandstats(os.path.join(d, "commandstats-idle.txt")) if os.path.exists(os.path.join(d, "commandstats-idle.txt")) else {}
    cmds = sorted({c for n in names for c in cs[n]} - {"config|resetstat"}, key=lambda c: -max(cs[n].get(c, 0) for n in names))
    print("| command | " + " | ".join(f"{n} calls (per event)" for n in names) + " | idle 30 s, no clients |")
    print("|---|" + "---|" * (len(names) + 1))
    for c in cmds:
        cells = []
        for n in names:
            calls = cs[n].get(c, 0)
            cells.append(f"{calls} ({calls / events[n]:.3f})" if calls else "-")
        print(f"| {c.upper()} | " + " | ".join(cells) + f" | {idle.get(c, '-') } |")
    tot = []
    for n in names:
        t = sum(v for k, v in cs[n].items() if k != "config|resetstat")
        tot.append(f"{t} ({t / events[n]:.2f})")
    print("| **all commands** (total_commands_processed) | " + " | ".join(tot) + f" | {sum(v for k, v in idle.items() if k != 'config|resetstat')} |")
    cl = [f"{cs[n].get('evalsha', 0) / events[n]:.3f}" for n in names]
    print("| EVALSHA per event (client round trips for appends) | " + " | ".join(cl) + " | |")
    print("| events published | " + " | ".join(str(events[n]) for n in names) + " | |")
    for key, label in (("total_net_input_bytes", "bytes into Redis per event"), ("total_net_output_bytes", "bytes out of Redis per event")):
        print(f"| {label} | " + " | ".join(f"{int(st[n][key]) / events[n]:.0f}" for n in names) + " | |")


def ceiling(d):
    c = load(os.path.join(d, "ceiling.json"))
    r = load(os.path.join(d, "relay.json"))
    print(f"| server | deliveries/s | lost | {PCT_HDR} | publisher lag p99 | CPU (cores) | CPU-ms per 1000 deliveries | RSS max (MiB) |")
    print("|---|---|---|" + "---|" * 6 + "---|---|---|---|")
    for name, x in (("ceiling (in-process fan-out, no logic)", c), ("relay (embedded, 1 node)", r)):
        ps = x["processes"]
        cpu = " + ".join(f"{p['label']} {p['cpu_cores']:.2f}" for p in ps)
        cpk = " + ".join(f"{p['cpu_ms_per_1k_deliveries']:.1f}" for p in ps)
        rss = " / ".join(f"{p['rss_max_kb'] / 1024:.0f}" for p in ps)
        print(
            f"| {name} | {x['deliveries_per_s']:.0f} | {x['events']['lost']} | {lat_cells(x['latency'])} | {x['publisher_lag']['p99_ms']:.2f} | {cpu} | {cpk} | {rss} |"
        )
    print(f"| relay / ceiling | {r['deliveries_per_s'] / c['deliveries_per_s']:.2f}x | | {ratio_cells(r['latency'], c['latency'])} | {r['publisher_lag']['p99_ms'] / c['publisher_lag']['p99_ms']:.2f}x | | | |")


def memory(d):
    rows = []
    with open(os.path.join(d, "rss.tsv")) as f:
        next(f)
        for line in f:
            n, kb, *_ = line.split("\t")
            rows.append((int(n), int(kb)))
    base = rows[0][1]
    print("| idle connections | rooms | relay VmRSS (KiB) | above 0 connections (KiB) | KiB per connection | marginal KiB per connection |")
    print("|---|---|---|---|---|---|")
    prev = None
    for n, kb in rows:
        per = f"{(kb - base) / n:.1f}" if n else "-"
        marg = f"{(kb - prev[1]) / (n - prev[0]):.1f}" if prev and n > prev[0] and prev[0] > 0 else "-"
        print(f"| {n} | {n // 5} | {kb} | {kb - base} | {per} | {marg} |")
        prev = (n, kb)


B4_BAR = 0.67


def b4(d, p99max=50.0):
    """B4: per run, per process, and the bar (relay nodes + Redis CPU per delivery <= 0.67 x sockudo's)."""
    with open(os.path.join(d, "steps.tsv")) as f:
        rows = [l.rstrip("\n").split("\t") for l in f][1:]
    runs = []
    for side, ld, rooms, pas, rc, name, busy, loadavg in rows:
        path = os.path.join(d, name + ".json")
        if not os.path.exists(path):
            runs.append(dict(side=side, load=ld, rooms=rooms, pas=pas, rc=rc, name=name, r=None))
            continue
        r = load(path)
        labels = {}
        with open(os.path.join(d, name + ".procs")) as f:
            for l in f:
                x = l.rstrip("\n").split("\t")
                labels[int(x[0])] = x[1]
        per = {}
        for p in r["processes"]:
            k = labels.get(p["pid"], "loadtest" if p["label"] != "server" else str(p["pid"]))
            k = "nginx" if k.startswith("nginx") else k
            c = per.setdefault(k, [0.0, 0])
            c[0] += p["cpu_s"]
            c[1] += p["rss_max_kb"]
        ev, ch = r["events"], r["chat"]
        lat = r.get("latency") or {}
        bad = ev["lost"] + ch["lost"] + ev["dups"] + ch["dups"] + ev["reorders"] + ch["reorders"]
        runs.append(dict(side=side, load=ld, rooms=rooms, pas=pas, rc=rc, name=name, r=r, per=per,
                         busy=busy.split(" busy")[0], loadavg=loadavg, lat=lat,
                         ok=rc == "0" and bad == 0 and lat.get("p99_ms", 1e9) < p99max))
    d1k = lambda cpu, r: cpu * 1e6 / r["deliveries"] if r["deliveries"] else float("nan")
    print("| side | load | rooms | pass | events/s offered | deliveries/s | lost / expected | dups | reorders | p50 ms | p99 ms | max ms | machine busy cores | others' cores | loadavg before | ok |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for x in runs:
        r = x["r"]
        if r is None:
            print(f"| {x['side']} | {x['load']} | {x['rooms']} | {x['pas']} | (no report, exit {x['rc']}) |" + " |" * 11)
            continue
        ev, ch, lat = r["events"], r["chat"], x["lat"]
        # Cores the rest of the machine took: machine busy minus every sampled process (servers, loadtest).
        try:
            others = f"{float(x['busy']) - sum(p['cpu_cores'] for p in r['processes']):.2f}".replace("-0.00", "0.00")
        except ValueError:
            others = "?"
        print(f"| {x['side']} | {x['load']} | {x['rooms']} | {x['pas']} | {r['published_events'] / (r['params']['duration_s'] or 1):.0f} | {r['deliveries_per_s']:.0f} "
              f"| {ev['lost'] + ch['lost']} / {ev['expected'] + ch['expected']} | {ev['dups'] + ch['dups']} | {ev['reorders'] + ch['reorders']} "
              f"| {lat.get('p50_ms', 0):.2f} | {lat.get('p99_ms', 0):.2f} | {lat.get('max_ms', 0):.2f} | {x['busy']} | {others} | {x['loadavg']} | {'yes' if x['ok'] else '**no**'} |")
    print()
    print("Per process over the window: CPU s / CPU-ms per 1000 deliveries / RSS max MiB (nginx: master + workers):")
    print()
    print("| side | load | rooms | pass | node0 | node1 | node2 | redis | **nodes + redis CPU-ms / 1000** | nginx | loadtest | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for x in runs:
        r = x["r"]
        if r is None:
            continue
        per = x["per"]
        cell = lambda k: f"{per[k][0]:.2f} s / {d1k(per[k][0], r):.1f} / {per[k][1] / 1024:.0f}" if k in per else "-"
        srv = sum(per[k][0] for k in ("node0", "node1", "node2", "redis") if k in per)
        x["cpk"] = d1k(srv, r)
        x["nginx_cpk"] = d1k(per["nginx"][0], r) if "nginx" in per else float("nan")
        errs = ", ".join(f"{k}={v}" for k, v in r["errors"].items()) or "-"
        print(f"| {x['side']} | {x['load']} | {x['rooms']} | {x['pas']} | {cell('node0')} | {cell('node1')} | {cell('node2')} | {cell('redis')} "
              f"| **{x['cpk']:.1f}** | {cell('nginx')} | {cell('loadtest')} | {errs} |")
    print()
    print(f"The bar: relay nodes + Redis CPU-ms per 1000 deliveries <= {B4_BAR} x sockudo's, on both loads (last run of each side, load, rooms, pass):")
    print()
    print("| load | rooms | pass | relay nodes + redis | sockudo nodes + redis | relay / sockudo | bar met | nginx relay / sockudo (not in the bar) |")
    print("|---|---|---|---|---|---|---|---|")
    last = {}
    for x in runs:
        if x["r"] is not None:
            last[(x["side"], x["load"], x["rooms"], x["pas"])] = x
    for (side, ld, rooms, pas), rl in last.items():
        if side != "relay" or (("sockudo", ld, rooms, pas) not in last):
            continue
        sk = last[("sockudo", ld, rooms, pas)]
        ratio = rl["cpk"] / sk["cpk"] if sk["cpk"] else float("nan")
        both_ok = rl["ok"] and sk["ok"]
        met = ("yes" if ratio <= B4_BAR else "**no**") + ("" if both_ok else " (a run was not ok)")
        print(f"| {ld} | {rooms} | {pas} | {rl['cpk']:.1f} | {sk['cpk']:.1f} | {ratio:.2f} | {met} | {rl['nginx_cpk']:.1f} / {sk['nginx_cpk']:.1f} |")


if __name__ == "__main__":
    what, args = sys.argv[1], sys.argv[2:]
    {"issue3": lambda: issue3(args), "rss": lambda: rss(args[0]), "issue4": lambda: issue4(args),
     "redis": lambda: redis(args[0]), "ceiling": lambda: ceiling(args[0]), "memory": lambda: memory(args[0]), "b4": lambda: b4(args[0], *map(float, args[1:2]))}[what]()
