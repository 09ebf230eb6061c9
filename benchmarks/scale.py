"""Store at scale: 100,000 runs and 10,000,000 metric points in one store.

    python benchmarks/scale.py                 # fill (once, cached) and measure; prints the section
    python benchmarks/scale.py --results PATH  # also write the section into PATH (e.g. benchmarks/RESULTS.md)
    python benchmarks/scale.py --quick         # 2,000 runs in a scratch cache, a short export: a smoke test

The store is filled once and kept under ``/work/bench-cache/scale`` (``--cache``; not in the repo),
rebuilt when its fill description changes. How it is filled (the bulk part says how it is honest):

- experiment ``scale``: 97,999 runs, experiment ``export``: 2,000 runs (100,000 runs in all). A few
  runs of each are real ``start_run`` / ``log_params`` / ``log_metric`` / ``end`` runs, and so is the
  100,000-point run (``log_metric`` in a loop). Their documents are the template of the others.
- the other runs are written in bulk through the store's own writers: their documents (the real
  template, a new id, name, times, params, tags and the metric summaries of their own points) are
  inserted into their run shard with one ``DocFile.table()`` read-modify-write per shard
  (``insert_multiple``: the store's lock and atomic replace, one write instead of one per run), and
  their metric logs are appended with ``AppendLog.write_bytes`` in the very line format
  ``log_metric`` writes (``[key,step,timestamp,value]``): 100 points each (``loss`` and ``acc``, 50 steps).

Then, each in a fresh process (what a new kernel pays; the OS page cache is warm):

- open: ``nbmlops.set_store`` + what the first ``start_run`` of a process pays before its own work (the
  stale-run sweep, tmp/ cleaned); again with one dead run left RUNNING; the first listing
  (``list_experiments``) apart;
- start+end of an empty run in the 97,999-run experiment, median of 30 (each run deleted again after);
- a 100,000-point curve: ``metric_history`` and ``metric_curves`` first read and repeated;
- ``get_run`` of one run by id (first in the process, then repeated);
- export to MLflow (a fresh MLflow sqlite store each, before and after this round): the 100,000-point
  run alone, then the 97,999-run experiment, each for a fixed time, the exporting process's RSS
  sampled every 0.2 s: it must stay flat.
"""

from __future__ import annotations

import os

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

if __package__:  # python -m benchmarks.scale
    from ._common import log, machine, publish
else:  # python benchmarks/scale.py
    from _common import log, machine, publish

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SECTION = "## Store at scale (benchmarks/scale.py)"
PACKAGES = ("nbmlops", "tinydb", "mlflow", "pandas")
FILL_VERSION = 1
FULL = dict(runs=100_000, export_runs=2_000, real_runs=3, steps=50, big_points=100_000, startend_reps=30,
            reps=5, export_seconds=60.0, cache=Path("/work/bench-cache/scale"))
QUICK = dict(runs=2_000, export_runs=200, real_runs=3, steps=50, big_points=20_000, startend_reps=10,
             reps=3, export_seconds=10.0, cache=Path(tempfile.gettempdir()) / "nbmlops-bench-scale-quick")
TARGETS = {  # key -> (limit in seconds, text)
    "open": (1.0, "the store opens in < 1 s (set_store and the stale-run sweep a process's first start_run pays)"),
    "startend": (0.020, "start+end of a run stays < 20 ms"),
}
BASE_MS = 1_765_000_000_000


# -- fill ---------------------------------------------------------------------------------------------
def fill_description(S: dict[str, Any]) -> dict[str, Any]:
    return {"version": FILL_VERSION, "runs": S["runs"], "export_runs": S["export_runs"], "steps": S["steps"],
            "big_points": S["big_points"], "real_runs": S["real_runs"]}


def points_of(rng: random.Random, steps: int, start: int) -> tuple[bytes, dict[str, Any]]:
    """The metric log of one run, as ``log_metric`` writes it, and the metric summaries of its document."""
    lines = []
    summary: dict[str, Any] = {}
    for key, kj in (("loss", '"loss"'), ("acc", '"acc"')):
        values = [round(rng.random(), 6) for _ in range(steps)]
        ts = [start + 10 * i for i in range(steps)]
        lines += [f"[{kj},{i},{ts[i]},{values[i]!r}]\n" for i in range(steps)]
        summary[key] = {"value": values[-1], "step": steps - 1, "timestamp": ts[-1], "min": min(values),
                        "max": max(values), "count": steps}
    return "".join(lines).encode(), summary


def fill(S: dict[str, Any], root: Path) -> dict[str, Any]:
    """Fill a store at ``root`` (see the module docstring); returns what was made, with timings."""
    import nbmlops
    from nbmlops.store import AppendLog, current_store

    nbmlops.set_store(root)
    t0 = time.perf_counter()
    made: dict[str, Any] = {"runs": 0, "points": 0}
    templates = {}
    for exp in ("scale", "export"):
        for k in range(S["real_runs"]):
            with nbmlops.start_run(experiment=exp, tags={"team": "red"}) as run:
                nbmlops.log_params({"model": "rf", "depth": k, "lr": 0.01})
                for i in range(S["steps"]):
                    nbmlops.log_metrics({"loss": 1 / (i + 1), "acc": i / S["steps"]}, step=i)
            made["runs"] += 1
            made["points"] += 2 * S["steps"]
        templates[exp] = nbmlops.get_run(run.id).info
    with nbmlops.start_run(experiment="export", name="big-curve") as big:
        lm = nbmlops.log_metric
        for i in range(S["big_points"]):
            lm("loss", 1.0 / (i + 1), step=i)
    made["runs"] += 1
    made["points"] += S["big_points"]
    made["big_run"] = big.id
    made["real_seconds"] = time.perf_counter() - t0
    store = current_store()
    rng = random.Random(0)
    bulk = {"export": S["export_runs"] - S["real_runs"] - 1}
    bulk["scale"] = S["runs"] - made["runs"] - bulk["export"]
    t1 = time.perf_counter()
    for exp, count in bulk.items():
        tpl = dict(templates[exp])
        shards: dict[str, list[dict[str, Any]]] = {}
        for k in range(count):
            run_id = f"{rng.getrandbits(128):032x}"
            start = BASE_MS + k * 1000
            data, summary = points_of(rng, S["steps"], start)
            metric_log = AppendLog(store.metric_log(run_id))
            metric_log.write_bytes(data)
            metric_log.close()
            end = start + 10 * S["steps"]
            doc = {**tpl, "id": run_id, "name": f"bulk-{exp}-{k}", "start_time": start, "end_time": end,
                   "duration": (end - start) / 1000, "params": {"model": ("rf", "gbm", "lr")[k % 3],
                                                                 "depth": k % 10, "lr": 0.001 * (k % 50 + 1)},
                   "tags": {"team": ("red", "blue", "green")[k % 3]}, "metrics": summary}
            shards.setdefault(run_id[:2], []).append(doc)
            made["points"] += 2 * S["steps"]
            if (k + 1) % 20_000 == 0:
                log(f"{exp}: {k + 1:,} of {count:,} metric logs written")
        for prefix, docs in sorted(shards.items()):
            with store.run_file(tpl["experiment_id"], prefix + "0" * 30).table(durable=False) as t:
                t.insert_multiple(docs)
        made["runs"] += count
    made["bulk_seconds"] = time.perf_counter() - t1
    made["experiments"] = {exp: templates[exp]["experiment_id"] for exp in templates}
    return made


def cached_store(S: dict[str, Any], rebuild: bool) -> tuple[Path, dict[str, Any]]:
    """The filled store in the cache, built first when missing or made by another fill description."""
    cache: Path = S["cache"]
    meta_path = cache / "fill.json"
    want = fill_description(S)
    if not rebuild and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("description") == want:
            log(f"using the cached store at {cache} (filled in {meta['made']['fill_seconds']:.0f} s)")
            return cache / "store", meta["made"]
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    log(f"filling {cache / 'store'}: {S['runs']:,} runs")
    t = time.perf_counter()
    made = run_py(f"import json, sys; sys.path.insert(0, {str(HERE)!r}); import scale; "
                  f"print(json.dumps(scale.fill(scale.{'QUICK' if S is QUICK else 'FULL'}, "
                  f"__import__('pathlib').Path({str(cache / 'store')!r}))))", timeout=7200)
    made["fill_seconds"] = time.perf_counter() - t
    meta_path.write_text(json.dumps({"description": want, "made": made}))
    log(f"filled in {made['fill_seconds']:.0f} s: {made['runs']:,} runs, {made['points']:,} points")
    return cache / "store", made


def run_py(code: str, timeout: float = 600) -> Any:
    """Run ``code`` in a fresh Python process; its last stdout line is JSON, returned parsed."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode:
        raise RuntimeError(f"child failed ({out.returncode}):\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- measurements, each in a fresh process -------------------------------------------------------------
CHILD_HEAD = """
import json, os, statistics, sys, time
t_import = time.perf_counter()
import nbmlops
t_import = time.perf_counter() - t_import
from nbmlops.store import current_store
ROOT, MADE, S = {root!r}, {made!r}, {S!r}
def timed(fn):
    t = time.perf_counter(); out = fn(); return time.perf_counter() - t, out
"""


def child(root: Path, made: dict[str, Any], S: dict[str, Any], body: str, timeout: float = 600) -> Any:
    """Run ``body`` after CHILD_HEAD in a fresh process; it prints one JSON line last."""
    S = {k: v for k, v in S.items() if k != "cache"}
    return run_py(CHILD_HEAD.format(root=str(root), made=made, S=S) + textwrap.dedent(body), timeout)


OPEN = """
from nbmlops.tracking.session import tracking_store
t = time.perf_counter()
nbmlops.set_store(ROOT)
store = tracking_store()  # what the first start_run of a process pays first: the stale-run sweep, tmp/ cleaned
sweep = time.perf_counter() - t
exps = nbmlops.list_experiments()
total = time.perf_counter() - t
print(json.dumps({"import": t_import, "open": total, "sweep": sweep, "experiments": len(exps)}))
"""

DEAD = """
nbmlops.set_store(ROOT)
run = nbmlops.start_run(experiment="scale", name="dies")
for i in range(100):
    nbmlops.log_metric("loss", 1 / (i + 1), step=i)
print(json.dumps({"run": run.id}), flush=True)
os._exit(0)  # no end(): the run stays RUNNING, as when a kernel dies
"""

SWEEP = """
t = time.perf_counter()
nbmlops.set_store(ROOT)
from nbmlops.tracking.session import tracking_store
tracking_store()
sweep = time.perf_counter() - t
run = nbmlops.get_run(MADE["dead"])
assert run.status == "KILLED", run.status
assert run.metrics["loss"] == 0.01, run.metrics
print(json.dumps({"sweep": sweep}))
"""

STARTEND = """
nbmlops.set_store(ROOT)
ids, times, cpu = [], [], []
for i in range(S["startend_reps"] + 1):
    t, c = time.perf_counter(), time.process_time()
    with nbmlops.start_run(experiment="scale") as run:
        pass
    times.append(time.perf_counter() - t)
    cpu.append(time.process_time() - c)  # on a shared machine, the part that is this process's own work
    ids.append(run.id)
store = current_store()
exp = nbmlops.get_run(ids[0]).experiment_id
for rid in ids:  # the store keeps its size for the next measurement
    with store.run_file(exp, rid).edit() as docs:
        docs.remove(id=rid)
print(json.dumps({"first": times[0], "median": statistics.median(times[1:]), "cpu": statistics.median(cpu[1:])}))
"""

CURVE = """
import numpy, pandas  # libraries a chart or a DataFrame loads anyway: not the read
from nbmlops.tracking import curves
from nbmlops.tracking.stale import metric_points
nbmlops.set_store(ROOT)
big = MADE["big_run"]
path = current_store().metric_log(big)
out = {}
cpu = time.process_time()
out["curve_first"], c = timed(lambda: curves.metric_curves(big, ["loss"]))
out["curve_first_cpu"] = time.process_time() - cpu
assert c["curves"]["loss"]["points"] == S["big_points"], c["curves"]["loss"]["points"]
rep, again, parse, lines = [], [], [], []
for i in range(S["reps"]):
    rep.append(timed(lambda: curves.metric_curves(big, ["loss"]))[0])
    curves._cache.clear()  # read the log again (the OS page cache stays warm)
    again.append(timed(lambda: curves.metric_curves(big, ["loss"]))[0])
    parse.append(timed(lambda: sum(1 for _ in metric_points(path)))[0])
    def line_by_line():  # the reader before this round: one json.loads per line, then the same checks
        n = 0
        for raw in path.read_bytes().splitlines():
            try:
                p = json.loads(raw)
            except ValueError:
                continue
            n += (isinstance(p, list) and len(p) == 4 and isinstance(p[0], str)
                  and all(type(x) is int for x in p[1:3]) and type(p[3]) in (int, float))
        return n
    lines.append(timed(line_by_line)[0])
out["curve_cached"] = statistics.median(rep)
out["curve_reread"] = statistics.median(again)
out["parse_blocks"] = statistics.median(parse)
out["parse_lines"] = statistics.median(lines)
run = nbmlops.get_run(big)
out["history_first"], df = timed(lambda: run.metric_history())
assert len(df) == S["big_points"]
out["history_again"] = statistics.median(timed(lambda: run.metric_history())[0] for _ in range(S["reps"]))
print(json.dumps(out))
"""

GETRUN = """
nbmlops.set_store(ROOT)
some = MADE["some_run"]
out = {}
out["first"], run = timed(lambda: nbmlops.get_run(some))
assert run.id == some and run.metrics["loss"] >= 0
out["again"] = statistics.median(timed(lambda: nbmlops.get_run(some[:8]))[0] for _ in range(S["reps"]))
print(json.dumps(out))
"""


def measure_local(root: Path, made: dict[str, Any], S: dict[str, Any]) -> dict[str, Any]:
    """Open, sweep, start+end, curve, get_run: each in a fresh process, rounds interleaved."""
    r: dict[str, list[Any]] = {}
    rounds = 3
    for i in range(rounds):
        for name, body in (("open", OPEN), ("startend", STARTEND), ("curve", CURVE), ("get_run", GETRUN)):
            out = child(root, made, S, body)
            r.setdefault(name, []).append(out)
            log(f"round {i + 1}/{rounds} {name}: " + ", ".join(f"{k} {v:.4f}" for k, v in out.items()
                                                                 if isinstance(v, float)))
    dead = child(root, made, S, DEAD)["run"]
    made = {**made, "dead": dead}
    r["sweep_dead"] = [child(root, made, S, SWEEP)]
    log(f"stale-run sweep with one dead run: {r['sweep_dead'][0]['sweep']:.3f} s")
    remove_run(root, dead)
    return {name: {k: statistics.median(o[k] for o in outs) for k in outs[0] if isinstance(outs[0][k], float)}
            for name, outs in r.items()}


def remove_run(root: Path, run_id: str) -> None:
    """Take a run made by a measurement out again, so the store keeps its size between runs."""
    import nbmlops
    from nbmlops.store import current_store

    nbmlops.set_store(root)
    store = current_store()
    exp = nbmlops.get_run(run_id).experiment_id
    with store.run_file(exp, run_id).edit() as docs:
        docs.remove(id=run_id)
    store.metric_log(run_id).unlink(missing_ok=True)


BEFORE = "b2c9803"  # the last commit with the export this round replaced (all runs and points read at once)

EXPORT = """
import types
URI, WHAT, BEFORE, REPO = {uri!r}, {what!r}, {before!r}, {repo!r}
nbmlops.set_store(ROOT)
if BEFORE:  # the export as it was before this round, from git, run against the same store
    import subprocess
    src = subprocess.check_output(["git", "show", BEFORE + ":nbmlops/export/mlflow.py"], cwd=REPO)
    mod = types.ModuleType("nbmlops.export.mlflow_before")
    mod.__package__ = "nbmlops.export"
    exec(compile(src, "mlflow_before.py", "exec"), mod.__dict__)
else:
    import nbmlops.export.mlflow as mod
from nbmlops.export import Summary
from mlflow import MlflowClient  # the client loaded and warm before the RSS baseline: not the export's memory
from mlflow.entities import Metric, Param, RunTag, ViewType
MlflowClient(URI).search_experiments()
print(json.dumps({{"ready": True}}), flush=True)
t = time.perf_counter()
if WHAT == "big":  # the 100,000-point run alone, through the exporter's run()
    summary = Summary("big")
    with mod._mlflow(URI) as ml:
        ex = mod._Exporter(current_store(), ml.MlflowClient(URI), ml, summary)
        ex.run(nbmlops.get_run(MADE["big_run"]).info)
else:
    summary = mod.export_mlflow(URI, experiment=WHAT, registry=False)
print(json.dumps({{"seconds": time.perf_counter() - t, "summary": dict(summary)}}), flush=True)
"""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def export_child(root: Path, made: dict[str, Any], uri: str, what: str, before: str, seconds: float | None,
                 cwd: Path) -> dict[str, Any]:
    """Export ``what`` (an experiment, or "big": the 100,000-point run) in a fresh process, its RSS
    sampled every 0.2 s; stopped after ``seconds`` (None: let it finish).
    Returns the RSS timeline and the child's result."""
    code = CHILD_HEAD.format(root=str(root), made=made, S={}) + textwrap.dedent(EXPORT).format(
        uri=uri, what=what, before=before, repo=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    first = proc.stdout.readline()
    if not first:
        raise RuntimeError(f"export child failed: {proc.stderr.read()[-3000:]}")
    base = rss_kib(proc.pid)
    t0 = time.perf_counter()
    samples: list[tuple[float, int]] = []
    while proc.poll() is None:
        elapsed = time.perf_counter() - t0
        if seconds is not None and elapsed > seconds:
            proc.terminate()
            break
        try:
            samples.append((elapsed, rss_kib(proc.pid)))
        except (OSError, IndexError):
            break
        time.sleep(0.2)
    out, err = proc.communicate(timeout=60)
    done = proc.returncode == 0 and out.strip().startswith("{")
    result = json.loads(out.strip().splitlines()[-1]) if done else {}
    if proc.returncode not in (0, -15):
        raise RuntimeError(f"export child failed ({proc.returncode}): {err[-3000:]}")
    return {"base": base, "samples": samples, "result": result, "elapsed": time.perf_counter() - t0}


def mlflow_count(uri: str, exp: str) -> int:
    """The runs in MLflow experiment ``exp``: what arrived."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    c = MlflowClient(uri)
    e = c.get_experiment_by_name(exp)
    if e is None:
        return 0
    n, token = 0, None
    while True:
        page = c.search_runs([e.experiment_id], run_view_type=ViewType.ALL, max_results=1000, page_token=token)
        n += len(page)
        token = page.token
        if not token:
            return n


def mlflow_points(uri: str, exp: str) -> int:
    """The points of metric ``loss`` of the (one) run in MLflow experiment ``exp``."""
    from mlflow import MlflowClient

    c = MlflowClient(uri)
    e = c.get_experiment_by_name(exp)
    runs = c.search_runs([e.experiment_id]) if e is not None else []
    return len(c.get_metric_history(runs[0].info.run_id, "loss")) if runs else 0


def measure_export(root: Path, made: dict[str, Any], S: dict[str, Any]) -> dict[str, Any]:
    """Before and after this round, each into its own MLflow sqlite store (MLflow's SQLAlchemy store
    in the exporting process; artifacts under its folder): the 100,000-point run alone, then the
    97,999-run experiment, each for a fixed time; the exporting process's RSS sampled all along."""
    r: dict[str, Any] = {}
    for label, before in (("after", ""), ("before", BEFORE)):
        with tempfile.TemporaryDirectory(dir=S["cache"]) as tmp:
            uri = f"sqlite:///{tmp}/mlflow.db"
            for what, seconds in (("big", S["export_seconds"] * 1.5), ("scale", S["export_seconds"])):
                log(f"export ({label}) of {what!r}" + (f" for {seconds:.0f} s" if seconds else ""))
                out = export_child(root, made, uri, what, before, seconds, Path(tmp))
                out["arrived"] = mlflow_count(uri, "scale") if what == "scale" else mlflow_points(uri, "export")
                r[f"{label}_{what}"] = out
                peak = max(v for _, v in out["samples"]) if out["samples"] else 0
                log(f"  {out['elapsed']:.1f} s, arrived {out['arrived']}, RSS {out['base'] / 1024:.0f} -> "
                    f"peak {peak / 1024:.0f} MiB, {out['result'].get('summary', '')}")
    return r


def rss_row(name: str, out: dict[str, Any], unit: str) -> str:
    samples = out["samples"] or [(0.0, out["base"])]
    at = [samples[min(len(samples) - 1, int(len(samples) * f))][1] / 1024 for f in (0.05, 0.25, 0.5, 1.0)]
    peak = max(v for _, v in samples) / 1024
    return (f"| {name} | {' / '.join(f'{v:.0f}' for v in at)} | {peak - out['base'] / 1024:+.0f} MiB | "
            f"{out['arrived']:,} {unit} |")


def report(S: dict[str, Any], made: dict[str, Any], local: dict[str, Any], export: dict[str, Any],
           load: list[float]) -> tuple[str, list[str]]:
    """The section's Markdown and the targets missed."""
    lines = [SECTION, "", machine(PACKAGES, extra=f"1-minute load average during the run: "
                                  f"{min(load):.1f}-{max(load):.1f} (2 cores shared: above ~2, other work competed)."),
             "", f"Store: {made['runs']:,} runs and {made['points']:,} metric points, filled once and cached "
             f"(see the script's docstring for how). Each measurement in a fresh process, medians of 3 rounds.", ""]
    failed = []
    if local:
        o, se, c, g = local["open"], local["startend"], local["curve"], local["get_run"]
        lines += ["| what | result |", "| --- | --- |",
                  f"| open: `set_store` + stale-run sweep + tmp/ cleaned | {o['sweep'] * 1e3:.0f} ms |",
                  f"| the same with one dead run left RUNNING (marked KILLED) | "
                  f"{local['sweep_dead']['sweep'] * 1e3:.0f} ms |",
                  f"| first listing, `list_experiments()` | {o['open'] - o['sweep']:.2f} s |",
                  f"| start+end of a run in the biggest experiment, median of {S['startend_reps']} (CPU) | "
                  f"{se['median'] * 1e3:.1f} ms ({se.get('cpu', float('nan')) * 1e3:.1f} ms) |",
                  f"| `get_run` first / repeated | {g['first'] * 1e3:.0f} ms / {g['again'] * 1e3:.2f} ms |",
                  f"| {S['big_points']:,}-point curve, `metric_curves` first (CPU) / log read again / cached | "
                  f"{c['curve_first']:.2f} s ({c.get('curve_first_cpu', float('nan')):.2f} s) / "
                  f"{c['curve_reread']:.2f} s / {c['curve_cached'] * 1e3:.2f} ms |",
                  f"| parsing that log: block reader vs line by line (same process) | {c['parse_blocks']:.2f} s vs "
                  f"{c['parse_lines']:.2f} s ({c['parse_lines'] / c['parse_blocks']:.1f}×) |",
                  f"| `metric_history()` first / again | {c['history_first']:.2f} s / {c['history_again']:.2f} s |", ""]
        for key, value in (("open", o["sweep"]), ("startend", se["median"])):
            limit, text = TARGETS[key]
            lines.append(f"- {text}: {'pass' if value < limit else 'FAIL'}")
            if value >= limit:
                failed.append(text)
        lines.append("")
    if export:
        lines += ["Export to MLflow (sqlite), before this round (`" + BEFORE + "`) and after, each phase a fresh "
                  "process stopped after a fixed time, RSS sampled every 0.2 s:", "",
                  "| phase | RSS at 5% / 25% / 50% / 100% of the time (MiB) | peak over baseline | arrived |",
                  "| --- | --- | --- | --- |"]
        for label in ("after", "before"):
            lines.append(rss_row(f"{S['big_points']:,}-point run, {label}", export[f"{label}_big"], "points"))
            lines.append(rss_row(f"biggest experiment, {label}", export[f"{label}_scale"], "runs"))
    return "\n".join(lines) + "\n", failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rebuild", action="store_true", help="fill the cached store anew")
    ap.add_argument("--results", type=Path, help="write the section into this markdown file")
    ap.add_argument("--only", choices=("local", "export"), help="measure only one part")
    args = ap.parse_args()
    S = QUICK if args.quick else FULL
    root, made = cached_store(S, args.rebuild)
    import nbmlops
    from nbmlops.store import current_store

    nbmlops.set_store(root)
    scale_exp = made["experiments"]["scale"]
    shards = current_store().run_files(scale_exp)
    made["some_run"] = shards[len(shards) // 2].all()[0]["id"]
    saved = {part: json.loads((S["cache"] / f"{part}.json").read_text()) if (S["cache"] / f"{part}.json").exists()
             else {} for part in ("local", "export")}  # a part not measured this time: its last results
    for part, measure in (("local", measure_local), ("export", measure_export)):
        if args.only in (None, part):
            load = [os.getloadavg()[0]]
            results = measure(root, made, S)
            load.append(os.getloadavg()[0])
            saved[part] = {"results": results, "load": load}
            (S["cache"] / f"{part}.json").write_text(json.dumps(saved[part]))
    text, failed = report(S, made, saved["local"].get("results", {}), saved["export"].get("results", {}),
                          saved["local"].get("load", []) + saved["export"].get("load", []) or [0.0])
    publish(text, args.results, SECTION, failed)


if __name__ == "__main__":
    main()
