"""The live monitor's cost (issue 19): ``python benchmarks/serving.py --only monitor``.

One LogisticRegression (``make_classification``, 20 features, registered with its labelled
reference) served twice by nbmlops, alike but for ``monitor=True`` (its defaults: windows of 1,000
rows, one every 1,000 rows): throughput of single-row ``POST /predict`` at 8 clients in back-to-back
pairs, ABBA order, with the server's CPU per request; the time the monitor took per window (its own
histogram); the request path's share timed in-process (``Monitor.add``, free of HTTP and of noise);
the drift part of judging one window in-process, ``drift_report`` against the reference prepared
once (``PreparedReference``), CPU time of fresh windows, interleaved; and the memory of a
third server with a 10,000-row window once it is full (its process group: the server and the
monitor's worker process), against the unmonitored server after the same traffic. wrk sends one
body again and again, so the windows hold one repeated row: the drift tests then sort constant
columns, cheaper than real traffic by a little (their cost is mostly pandas' per-column
overhead). Writes the section "## Live monitoring cost" of RESULTS.md.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

if __package__:
    from . import serving as base
    from ._common import log, machine
else:
    import serving as base
    from _common import log, machine

SECTION = "## Live monitoring cost (benchmarks/serving.py --only monitor)"
NAME = "bench-mon"
SERVERS = {"on": {"monitor": True}, "off": {}}
BIG = {"monitor": True, "monitor_window": 10_000, "monitor_every": 10_000}
FULL = dict(duration=2.0, warmup=1.0, pairs=16, fill=20_000)
QUICK = dict(duration=2.0, warmup=0.5, pairs=1, fill=10_000)


def rss_mb(pgid: int, group: bool = True) -> float:
    """Resident memory of process group ``pgid`` (the server and its monitor's worker), or of the
    server process alone, in MB."""
    total = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if (os.getpgid(int(entry)) != pgid) if group else int(entry) != pgid:
                    continue
                status = Path(f"/proc/{entry}/status").read_text()
            except OSError:
                continue
            total += next((int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS:")), 0)
    return total / 1024


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` alone (the server, without its monitor's worker)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scraped(port: int) -> dict[str, float]:
    """The monitor's own numbers from /metrics: windows judged and dropped, judge time."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    out: dict[str, float] = {}
    for line in text.splitlines():
        for key in ("model_monitor_windows_total", "model_monitor_windows_dropped_total",
                    "model_monitor_window_seconds_sum", "model_monitor_window_seconds_count"):
            if line.startswith(key + "{") or line.startswith(key + " "):
                out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def add_probe(X: Any, n: int = 20_000) -> float:
    """Seconds per ``Monitor.add`` of a one-row answer (the request path's share), best of 3."""
    from nbmlops.serving.metrics import Metrics
    from nbmlops.serving.model import ServedModel
    from nbmlops.serving.monitor import MAX_ROWS, Monitor

    served = ServedModel(f"{NAME}/1")
    monitor = Monitor(Metrics(NAME), 1000, MAX_ROWS, record=False)  # never due: the append alone
    rows = X[:1].tolist()
    out = served.predict(rows)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(n):
            monitor.add(served, rows, out, "r")
        best = min(best, (time.perf_counter() - t) / n)
    return best


def judge_probe(X: Any, y: Any, rounds: int = 9) -> dict[str, float]:
    """CPU seconds (median) of the drift part of one 1,000-row window: ``drift_report`` as the monitor
    called it before (the reference's default tests), the prepared reference with those tests, and
    the prepared reference with the window's (the monitor's default now); a fresh window each round."""
    import pandas as pd

    from nbmlops.monitoring.columns import ColumnMapping
    from nbmlops.monitoring.drift import drift_report
    from nbmlops.monitoring.prepared import PreparedReference

    ref = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    ref["prediction"] = y
    mapping = ColumnMapping(target=None)
    cases = {"drift_report": None, "prepared": PreparedReference(ref, mapping),
             "window": PreparedReference(ref, mapping, default_by="smaller")}
    times: dict[str, list[float]] = {k: [] for k in cases}
    for k in range(rounds):
        window = ref.sample(1000, random_state=k).reset_index(drop=True)
        window[[f"x{i}" for i in range(0, X.shape[1], 2)]] += 0.05 * k  # windows that move a little
        for name, prepared in cases.items():
            t = time.process_time()
            if prepared is None:
                drift_report(ref, window, mapping, performance=False, progress=False, workers=1)
            else:
                prepared.compare(window)
            times[name].append(time.process_time() - t)
    return {name: statistics.median(v[1:]) for name, v in times.items()}  # the first: imports, the reference


def fill(dep: Any, X: Any, rows: int) -> None:
    """``rows`` rows in requests of 100, varied (real rows of X)."""
    for i in range(0, rows, 100):
        start = i % (len(X) - 100)
        dep.predict(X[start:start + 100])


def bench(S: dict[str, Any], root: Path, client: str) -> dict[str, Any]:
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    import nbmlops

    X, y = make_classification(n_samples=5_000, n_features=20, n_informative=10, random_state=0)
    nbmlops.set_store(root / "store")
    nbmlops.register_model(LogisticRegression(max_iter=1_000).fit(X, y), NAME, reference=(X, y))
    wrk = base.ensure_wrk() if client == "wrk" else None
    body = json.dumps({"features": X[0].tolist()}).encode()
    r: dict[str, Any] = {"client": f"wrk ({base.wrk_version(wrk)})" if wrk else "asyncio client (in this process)",
                         "pairs": {}, "loadavg": [os.getloadavg()]}
    servers = base.Servers(root)

    def run(name: str, duration: float) -> dict[str, float]:
        pgid, port = servers.pid(name), servers.ports[name]
        c0, s0 = base.group_cpu(pgid), proc_cpu(pgid)
        res = base.run_load(wrk, port, "/predict", body, 8, duration, root)
        res["cpu"] = (base.group_cpu(pgid) - c0) / max(res["requests"], 1)
        res["server_cpu"] = (proc_cpu(pgid) - s0) / max(res["requests"], 1)
        return res

    try:
        for name, options in SERVERS.items():
            servers.start_nbmlops(name, f"{NAME}/1", **options)
        # the worker process's start (imports, the model loaded again, CBPE fitted on the reference) is a
        # one-time cost: paid before the pairs, measured apart
        cpu0, t0 = base.group_cpu(servers.pid("on")), time.perf_counter()
        while not scraped(servers.ports["on"]).get("model_monitor_windows_total") and time.perf_counter() - t0 < 120:
            for name in SERVERS:  # the same traffic to both: a server's state may depend on what it served
                fill(servers.deployments[name], X, 500)
        r["first_window"] = (time.perf_counter() - t0, base.group_cpu(servers.pid("on")) - cpu0)
        r["scraped0"] = scraped(servers.ports["on"])  # the first window (the worker's start) left out below
        log(f"first window judged after {r['first_window'][0]:.1f} s, {r['first_window'][1]:.1f} s CPU")
        r["probe"] = add_probe(X)
        log(f"Monitor.add in-process: {base.fmt(r['probe'])} per one-row request")
        r["judge"] = judge_probe(X, y)
        log("drift part of a 1,000-row window, CPU: " + ", ".join(f"{k} {base.fmt(v)}" for k, v in r["judge"].items()))
        for name in SERVERS:
            run(name, S["warmup"])
        for k in range(S["pairs"]):
            for name in (("on", "off") if k % 2 == 0 else ("off", "on")):
                r["pairs"].setdefault(name, []).append(run(name, S["duration"]))
            log(f"pair {k + 1}: monitor on {r['pairs']['on'][-1]['rps']:,.0f} req/s, off "
                f"{r['pairs']['off'][-1]['rps']:,.0f} req/s")
        r["scraped"] = scraped(servers.ports["on"])
        servers.start_nbmlops("big", f"{NAME}/1", **BIG)
        time.sleep(3)  # the worker process starts with the server: let its imports finish
        before = {n: (rss_mb(servers.pid(n)), rss_mb(servers.pid(n), False)) for n in ("big", "off")}
        for name in ("big", "off"):
            fill(servers.deployments[name], X, S["fill"])
        deadline = time.time() + 60
        while scraped(servers.ports["big"]).get("model_monitor_windows_total", 0) < S["fill"] // 10_000 and \
                time.time() < deadline:
            time.sleep(0.2)
        r["big"] = {n: (before[n][0], rss_mb(servers.pid(n))) for n in ("big", "off")}
        r["big_server"] = {n: (before[n][1], rss_mb(servers.pid(n), False)) for n in ("big", "off")}
        r["big_scraped"] = scraped(servers.ports["big"])
        r["big_latest"] = servers.deployments["big"].monitor()["versions"]["1"]  # the last window: no start-up in it
        log(f"10,000-row window: RSS {r['big']['big']} MB, unmonitored {r['big']['off']} MB")
        r["loadavg"].append(os.getloadavg())
    finally:
        servers.stop_all()
        nbmlops.set_store(None)
    return r


def report(S: dict[str, Any], r: dict[str, Any], quick: bool) -> str:
    med = statistics.median
    on, off = r["pairs"]["on"], r["pairs"]["off"]
    ratio = med(a["rps"] / b["rps"] for a, b in zip(on, off))
    sc, sc0, big = r["scraped"], r["scraped0"], r["big"]
    judged = sc.get("model_monitor_window_seconds_count", 0) - sc0.get("model_monitor_window_seconds_count", 0)
    per_window = (sc.get("model_monitor_window_seconds_sum", 0) - sc0.get("model_monitor_window_seconds_sum", 0)) \
        / judged if judged else float("nan")
    latest = r["big_latest"]
    server = r["big_server"]
    grew = (server["big"][1] - server["big"][0]) - (server["off"][1] - server["off"][0])
    ratios = [a["rps"] / b["rps"] for a, b in zip(on, off)]
    judge = r["judge"]
    lines = [SECTION, "",
             machine(base.PACKAGES, extra=f"Mode: {'quick' if quick else 'full'}. Load client: {r['client']}. "
                     f"Load average {r['loadavg'][0][0]:.1f} at the start, {r['loadavg'][-1][0]:.1f} at the end "
                     "(the machine is shared with other work: throughput figures move with it)."), "",
             "| | monitor on (defaults: 1,000 rows, every 1,000) | monitor off |", "| --- | --- | --- |",
             f"| single-row POST /predict, 8 clients, median of {len(on)} ABBA pairs | {med(x['rps'] for x in on):,.0f}"
             f" req/s | {med(x['rps'] for x in off):,.0f} req/s |",
             f"| p99 latency | {base.fmt(med(x['p99'] for x in on))} | {base.fmt(med(x['p99'] for x in off))} |",
             f"| CPU per request, the server process alone | {base.fmt(med(x['server_cpu'] for x in on))} | "
             f"{base.fmt(med(x['server_cpu'] for x in off))} |",
             f"| CPU per request, the server's process group (the monitor's worker too) | "
             f"{base.fmt(med(x['cpu'] for x in on))} | "
             f"{base.fmt(med(x['cpu'] for x in off))} |", "",
             f"- Throughput with the monitor on / off, median of the per-pair ratios: **{ratio:.3f}** "
             f"({(ratio - 1) * 100:+.1f}%; goal: no more than 5% lower); the pairs' ratios "
             f"{', '.join(f'{x:.2f}' for x in ratios)}: on this shared machine the spread dwarfs the difference, "
             "the CPU per request is the steadier figure: on / off, median of the per-pair ratios, "
             f"{med(a['server_cpu'] / b['server_cpu'] for a, b in zip(on, off)):.3f} for the server process, "
             f"{med(a['cpu'] / b['cpu'] for a, b in zip(on, off)):.3f} with the monitor's worker.",
             f"- Once, before the pairs: the worker process's start and the first window (imports, the model "
             f"loaded again, CBPE fitted on the 5,000-row reference) took {r['first_window'][0]:.1f} s and "
             f"{r['first_window'][1]:.1f} s of CPU (the server's group, the requests that waited for it included).",
             f"- The request path's share, in-process: `Monitor.add` of a one-row answer takes {base.fmt(r['probe'])}.",
             f"- The drift part of judging a fresh 1,000-row window (20 features + prediction, 5,000-row reference), "
             f"in-process, CPU time, median of 8 interleaved rounds: `drift_report` {base.fmt(judge['drift_report'])}"
             f", the reference prepared once {base.fmt(judge['prepared'])} (same tests, the same numbers), with the "
             f"tests sized by the window (the monitor's default: K-S, chi-square and Z for windows up to 1,000 rows) "
             f"{base.fmt(judge['window'])}.",
             f"- Judging a 1,000-row window (20 features + prediction: drift tests, quality, CBPE, store write), "
             f"off the request path, in the niced worker, during the pairs: "
             f"{base.fmt(per_window) + ' on average (wall time)' if judged else 'none judged'} over {judged:.0f} "
             f"windows; {sc.get('model_monitor_windows_dropped_total', 0):.0f} windows dropped under load (the "
             "budget: 2% of the server's own CPU, of a core at most; the worker at nice 19).",
             f"- A 10,000-row window, full ({S['fill']:,} rows sent in requests of 100): the server process grew by "
             f"{server['big'][1] - server['big'][0]:.0f} MB against {server['off'][1] - server['off'][0]:.0f} MB for "
             f"the unmonitored server after the same traffic ({grew:.0f} MB for the window); the worker process "
             f"holds {big['big'][1] - server['big'][1]:.0f} MB (pandas, scipy, the model again); the whole group "
             f"{big['big'][1]:.0f} MB against {big['off'][1]:.0f} MB. Judging that window took "
             f"{base.fmt(latest.get('judge_s', float('nan')))} ({base.fmt(latest.get('cpu_s', float('nan')))} of "
             "CPU).", ""]
    return "\n".join(lines)


def main(S: dict[str, Any], quick: bool, client: str, out: Path | None) -> int:
    """Run, report, write the section (``out`` None: print only); servers and files cleaned up."""
    import contextlib
    import shutil
    import tempfile

    if __package__:
        from ._common import publish
    else:
        from _common import publish
    base.WORK.mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="monitor-", dir=base.WORK))
    cwd = os.getcwd()
    try:
        os.chdir(root)
        r = bench(S, root, client)
    finally:
        os.chdir(cwd)
        shutil.rmtree(root, ignore_errors=True)
        with contextlib.suppress(OSError):
            base.WORK.rmdir()
    publish(report(S, r, quick), out, SECTION, [])
    return 0
