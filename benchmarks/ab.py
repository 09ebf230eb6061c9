"""Old code against new code: nbmlops' own side of one benchmark, both run in the same session, alternately.

    python benchmarks/ab.py BENCH --old REF_OR_PATH [--new PATH] [--rounds N] [--quick] [--json FILE] [--keep]

    python benchmarks/ab.py tracking --old 67a2daf --rounds 2   # a git ref: checked out once as a worktree
    python benchmarks/ab.py serving --old /work/baseline           # or a checkout's path
    python benchmarks/ab.py all --old 67a2daf --quick              # every benchmark, one after the other

BENCH is one of tracking, registry, features, drift, pipelines, runs_browser, dashboard, serving, batch
(or ``all``). OLD is a git ref (checked out under ``benchmarks/.work/ab-tree-<sha>``, kept for the next
call) or the path of a checkout; NEW is a checkout's path, by default the working tree this file is in.

Each side runs in its own interpreter with ``PYTHONPATH=<its tree>`` (so ``import nbmlops`` and every
subprocess a benchmark starts, such as a model server, get that tree's code; the child checks it) and
calls the functions of *its own tree's* benchmark module (``<tree>/benchmarks/<BENCH>.py``) at that
module's FULL sizes (``--quick``: its QUICK sizes). Only nbmlops' side is run -- no MLflow, Feast or
Evidently -- except controls that do not use nbmlops at all (the registry's joblib floor, batch's
pyarrow floor): their old/new ratio shows how much the machine alone moved between the two sides.

* tracking, registry, features, drift, runs_browser, batch: one child process per side per round,
  the sides alternating (old, new, then new, old, ...). registry runs the same nbmlops calls and floor
  as ``registry.bench`` with the module's helpers, without the MLflow calls between them. runs_browser
  and batch build their store (and batch its input) once per side and reuse it in later rounds.
* pipelines: the tree's own ``pipelines.py --quick --rounds K`` (K = 1 unless given by ``--inner``),
  its printed table parsed (it has no function to call); it runs papermill too, as the overhead row
  needs it.
* dashboard, serving: both sides' servers are started once and stay up together; every request
  (dashboard) or measurement (serving: sequential latency, wrk at 8 and 32 clients) goes to the old
  and the new server back to back, their order alternating. ``--rounds`` is the number of such rounds.

The table gives, per row, the median of the old and the new side and new/old as a time ratio: above 1
the new code is slower (for a rate such as rows/s it is old rate / new rate; for memory, new / old).
Medians over few rounds on a shared 2-core machine: a ratio within ~10% of 1 on a single round is
noise; re-run the row's benchmark with more rounds before concluding anything.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCHES = ("tracking", "registry", "features", "drift", "pipelines", "runs_browser", "dashboard", "serving", "batch")
TAG = "AB-RESULT "
Metrics = dict[str, list[Any]]  # label -> [value, unit]; unit "s" (lower is better), "B" (bytes), "/s" (a rate)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] ab: {msg}", file=sys.stderr, flush=True)


# -- the child: one side, one tree -----------------------------------------------------------------
def load_module(tree: Path, bench: str) -> Any:
    """``<tree>/benchmarks/<bench>.py`` as a module, with its ``_common`` (the tree's own)."""
    rest = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # this file's folder: maybe another tree's
    sys.path[:] = [str(tree / "benchmarks"), *rest]
    return importlib.import_module(bench)


def check_tree(tree: Path) -> None:
    import nbmlops

    where = Path(nbmlops.__file__).resolve()
    if tree.resolve() not in where.parents:
        raise SystemExit(f"ab: nbmlops was imported from {where}, not from {tree}")


def child_tracking(mod: Any, S: dict[str, Any], root: Path, args: argparse.Namespace) -> Metrics:
    model, X = mod.make_model(S["trees"], S["samples"])
    tr = mod.bench_track(S, root)
    nb = mod.bench_nbmlops(S, root, model, X)
    n1, n2 = S["search_runs"], S["search_runs_big"]
    rows = {
        "empty run": nb["empty"], "`%%track` on an empty cell, added": tr["added"],
        "`%%track` cell (with the magic)": tr["tracked"],
        f"`log_metric` × {S['metric_points']:,}, total": nb["metric_total"], "`log_params`, 50 params": nb["params"],
        f"make a run (mean while filling {n1:,})": nb["create_run"],
        f"make a run (mean while filling {n1:,} → {n2:,})": nb["create_run_big"],
        f"`search_runs` {n1:,} runs, first call": nb["search_cold"],
        f"`search_runs` {n1:,} runs, repeated": nb["search_warm"],
        f"`search_runs` {n1:,} runs, filtered, first call": nb["search_filter_cold"],
        f"`search_runs` {n2:,} runs, first call": nb["search_big_cold"],
        f"`search_runs` {n2:,} runs, repeated": nb["search_big_warm"],
        f"`search_runs` {n2:,} runs, filtered, first call": nb["search_big_filter_cold"],
        f"start+end of a run, store of {n1:,}": nb["startend"],
        f"start+end of a run, store of {n2:,}": nb["startend_big"],
        "`log_model` forest": nb["log_model"], "`run.load_model` forest": nb["load_model"],
    }
    return {k: [v, "s"] for k, v in rows.items()}


def child_registry(mod: Any, S: dict[str, Any], root: Path, args: argparse.Namespace) -> Metrics:
    """registry.bench's nbmlops calls and joblib floor, interleaved the same way, without the MLflow calls."""
    import joblib

    import nbmlops

    model, X = mod.make_model(S)
    row = X[:1]
    floor = root / "floor"
    floor.mkdir()
    nbmlops.set_store(root / "store")
    tags = iter(range(10**9))
    register_steps: list[float] = []
    alias = "forest@champion"

    def fresh() -> None:
        mod.variant(model, next(tags))

    def joblib_dump() -> None:
        p = floor / f"j-{model._bench_rep}.joblib"
        joblib.dump(model, p)
        mod.sha256_file(p)

    def joblib_load() -> Any:
        mod.sha256_file(floor / "j-v1.joblib")
        return joblib.load(floor / "j-v1.joblib")

    def nb_run() -> None:
        with nbmlops.start_run() as run:
            nbmlops.log_model(model, "m")
        t = time.perf_counter()
        nbmlops.register_model(run.id, "forest-run")
        register_steps.append(time.perf_counter() - t)

    mod.variant(model, "v1")
    nbmlops.register_model(model, "forest")
    nbmlops.set_alias("forest", "champion", 1)
    joblib_dump()
    r = mod.interleaved({"floor_dump": (fresh, joblib_dump),
                         "register": (fresh, lambda: nbmlops.register_model(model, "forest")),
                         "run": (fresh, nb_run)}, S["reps"])
    r["run_register"] = statistics.median(register_steps[1:])
    r.update(mod.interleaved({"floor_load": (None, joblib_load),
                              "load": (None, lambda: nbmlops.load_model(alias)),
                              "load_raw": (None, lambda: nbmlops.load_model(alias, raw=True)),
                              "load_predict": (None, lambda: nbmlops.load_model(alias).predict(row))}, S["load_reps"]))
    loaded = {"floor_predict": joblib_load(), "predict": nbmlops.load_model(alias)}
    expected = loaded["floor_predict"].predict(X[:50])
    assert (loaded["predict"].predict(X[:50]) == expected).all()
    def predict(m: Any) -> Callable[[], Any]:
        return lambda: m.predict(row)

    r.update(mod.interleaved({k: (None, predict(m)) for k, m in loaded.items()}, S["predict_reps"]))
    n_versions = nbmlops.get_model_version("forest").version
    moves = iter(range(10**9))
    def move() -> None:
        nbmlops.set_alias("forest", "champion", 1 + next(moves) % n_versions)

    r.update(mod.interleaved({"alias": (None, move)}, S["alias_reps"]))
    nbmlops.set_store(None)
    labels = {"floor_dump": "control, no nbmlops: `joblib.dump` + sha256",
              "register": "`register_model(model, name)`",
              "run": "`start_run` + `log_model` + `register_model(run.id)`",
              "run_register": "… the register step alone",
              "floor_load": "control, no nbmlops: sha256 + `joblib.load`", "load": "`load_model(uri)`",
              "load_raw": "`load_model(uri, raw=True)`", "load_predict": "`load_model(uri)` + one-row predict",
              "floor_predict": "control, no nbmlops: one-row predict, bare estimator",
              "predict": "one-row predict on the loaded model", "alias": "`set_alias` (alias move)"}
    return {labels[k]: [v, "s"] for k, v in r.items()}


def child_features(mod: Any, S: dict[str, Any], root: Path, args: argparse.Namespace) -> Metrics:
    path = root / "user_activity.parquet"
    _, entity_dfs = mod.make_data(S, path)
    nb = mod.bench_nbmlops(S, root / "nbmlops", path, entity_dfs)
    out: Metrics = {}
    for m, (cold, warm) in nb["hist"].items():
        out[f"historical retrieval, {m:,} entity rows, cold"] = [cold, "s"]
        out[f"historical retrieval, {m:,} entity rows, warm"] = [warm, "s"]
    out["materialize (cold)"] = [nb["mat"], "s"]
    out["online lookup, 1 entity"] = [nb["online1"], "s"]
    out["online lookup, 100 entities"] = [nb["online100"], "s"]
    return out


def child_drift(mod: Any, S: dict[str, Any], root: Path, args: argparse.Namespace) -> Metrics:
    out: Metrics = {}
    for rows in ((10_000, 50_000) if args.quick else (100_000, 1_000_000)):
        r = mod.measure("nbmlops", rows, seed=0)
        out[f"{rows:,} rows: compute the report"] = [r["compute"], "s"]
        out[f"{rows:,} rows: save the HTML, first"] = [r["save"], "s"]
        out[f"{rows:,} rows: save the HTML again"] = [r["save_warm"], "s"]
        out[f"{rows:,} rows: peak memory, frames + report"] = [r["peak"] - r["base_rss"], "B"]
    return out


VALUE = re.compile(r"(-?[\d,]+(?:\.\d+)?)\s*(s|ms|µs)\b")


def seconds(text: str) -> float | None:
    """'17.27 s', '**308 ms** (+6%)', '22.9 µs' -> seconds; None when the cell holds no time."""
    m = VALUE.search(text.replace("*", ""))
    if m is None:
        return None
    return float(m.group(1).replace(",", "")) * {"s": 1.0, "ms": 1e-3, "µs": 1e-6}[m.group(2)]


def child_pipelines(mod: Any, S: dict[str, Any], root: Path, args: argparse.Namespace) -> Metrics:
    """The tree's pipelines.py, one run (``--quick``: RESULTS.md untouched), its table parsed."""
    cmd = [sys.executable, mod.__file__, "--quick", "--rounds", str(args.inner or 1)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
    if proc.returncode != 0:
        raise SystemExit(f"ab: {cmd} failed:\n{proc.stderr[-3000:]}")
    out: Metrics = {}
    for line in proc.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0] not in ("work", "---") and (v := seconds(cells[1])) is not None:
            out[cells[0].replace("**", "")] = [v, "s"]
    return out


def child_runs_browser(mod: Any, S: dict[str, Any], root: Path, args: argparse.Namespace) -> Metrics:
    import nbmlops

    out: Metrics = {}
    if not (root / "built").exists():  # the side's store is built in its first round, then reused
        out["build the store, per run"] = [mod.build(S, root), "s"]
        (root / "built").write_text("")
    nbmlops.set_store(root / "store")
    r = mod.bench_browser(S)
    out.update({BROWSER_LABELS.get(k, k): [v, "s"] for k, v in r.items() if isinstance(v, float)})
    return out


BROWSER_LABELS = {
    "open_first": "open `runs_browser`, first call in the process",
    "open_cold": "open it again, parsed-file cache emptied",
    "open_warm": "open it again, warm", "filter": "apply a filter", "words": "find words", "bad": "malformed filter",
    "sort": "sort by a column", "sort_dir": "flip the sort direction", "page": "next / previous page (50 rows)",
    "page_last": "jump to the last page and back", "page_200": "next / previous page (200 rows)",
    "select": "select 5 runs in the picker", "compare": "Compare 5 runs", "snapshot": "static snapshot",
    "refresh": "Refresh", "search": "`search_runs` over the runs", "search_filter": "`search_runs` with the filter"}


def child_batch(mod: Any, S: dict[str, Any], root: Path, args: argparse.Namespace) -> Metrics:
    """Floor (a control: pyarrow + the estimator), parallelism 1 and 2 on the shared input; in the side's
    first round also the output check, peak memory at the other chunk sizes and the per-chunk breakdown."""
    import nbmlops

    N, C = S["rows"], S["chunk"]
    store = root / "store"
    first = not (root / "registered").exists()
    model = mod.make_model()
    if first:
        nbmlops.set_store(store)
        nbmlops.register_model(model, "bench")
        (root / "registered").write_text("")
    inp = root.parent / f"input-{N}.parquet"  # shared by both sides: pyarrow only
    if not inp.exists():
        mod.generate(inp, N)
    out: Metrics = {}

    def job(key: str, chunk: int) -> dict[str, Any]:
        spec = {"kind": "floor" if key == "floor" else "nbmlops", "pre_buffer": False,
                "parallelism": {"p1": 1, "p2": 2}.get(key, 1), "chunk": chunk, "rows": N, "input": str(inp),
                "output": str(root / "out.parquet"), "store": str(store), "uri": "bench/1", "cwd": str(root)}
        r = mod.run_job(spec)
        if spec["kind"] != "floor":
            if first and chunk == C:
                c = mod.check_output(inp, Path(spec["output"]), N, model, r["result"])
                if not c["ok"]:
                    raise SystemExit(f"ab: batch output wrong ({key}): {c['problems']}")
            Path(spec["output"]).unlink()
            Path(r["result"]["rejects"]).unlink(missing_ok=True)
        return r

    keys = ["floor", "p1", "p2"]
    for key in keys if args.round % 2 == 0 else keys[::-1]:
        r = job(key, C)
        name = "control, no nbmlops: pyarrow floor" if key == "floor" else f"`batch_predict`, parallelism={key[1]}"
        out[f"{name}, rows/s"] = [r["rows_per_s"], "/s"]
        out[f"{name}, CPU of all its processes"] = [r["cpu"], "s"]
        out[f"{name}, peak RSS of the tree, chunk {C:,}"] = [r["peak_tree"], "B"]
        if key != "floor":
            out[f"{name}, final join"] = [r["join"], "s"]
    if first and not args.quick:
        for chunk in S["mem_chunks"]:
            for key in ("p1", "p2"):
                out[f"`batch_predict`, parallelism={key[1]}, peak RSS of the tree, chunk {chunk:,}"] = \
                    [job(key, chunk)["peak_tree"], "B"]
        try:  # reaches into batch's private functions: a restructured tree may lack them
            bd = mod.breakdown(store, inp, C, S["breakdown_reps"], root / "scratch")
        except Exception as exc:  # noqa: BLE001
            log(f"batch: the per-chunk breakdown failed: {exc!r}")
            bd = {}
        for k in ("read", "score", "predict_proba", "write_part", "send", "pickle", "pool_start"):
            if k in bd:
                out[f"per chunk (CPU): {k}"] = [bd[k], "s"]
    return out


CHILDREN: dict[str, Callable[[Any, dict[str, Any], Path, argparse.Namespace], Metrics]] = {
    "tracking": child_tracking, "registry": child_registry, "features": child_features, "drift": child_drift,
    "pipelines": child_pipelines, "runs_browser": child_runs_browser, "batch": child_batch}


def child(args: argparse.Namespace) -> None:
    tree, root = Path(args.tree), Path(args.scratch)
    mod = load_module(tree, args.bench)
    if args.bench != "pipelines":  # pipelines.py imports nbmlops in its own process
        check_tree(tree)
    import warnings

    warnings.filterwarnings("ignore")
    S = getattr(mod, "QUICK" if args.quick else "FULL", {})
    if args.bench not in REUSE:
        root = root / f"round-{args.round}"
    root.mkdir(parents=True, exist_ok=True)
    os.chdir(root)
    if args.bench in ("dashboard", "serving"):
        return SERVER_CHILDREN[args.bench](mod, S, root, args)
    metrics = CHILDREN[args.bench](mod, S, root, args)
    print(TAG + json.dumps(metrics), flush=True)


def child_dashboard(mod: Any, S: dict[str, Any], root: Path, args: argparse.Namespace) -> None:
    per_run, hist_id = mod.build_nbmlops(mod.make_runs(S), root / "store")
    print(TAG + json.dumps({"per_run": per_run, "hist_id": hist_id}), flush=True)


NB_SERVERS = ("nb-lr", "nb-lr-nolog", "nb-rf", "nb-rf-nobatch")


def child_serving(mod: Any, S: dict[str, Any], root: Path, args: argparse.Namespace) -> None:
    """Start the side's four nbmlops servers, say where they are, keep them up until stdin closes."""
    import nbmlops

    models, X = mod.make_models(S)
    nbmlops.set_store(root / "store")
    for kind, model in models.items():
        nbmlops.register_model(model, f"bench-{kind}")
    try:  # reaches into the request log's internals: a restructured tree may lack them
        probe = mod.logging_probe(root, X[0].tolist())
    except Exception as exc:  # noqa: BLE001
        log(f"serving: the in-process request-log probe failed: {exc!r}")
        probe = {}
    servers = mod.Servers(root)
    try:
        for name in NB_SERVERS:
            servers.start(name)
        info = {"ports": {n: servers.ports[n] for n in NB_SERVERS}, "pids": {n: servers.pid(n) for n in NB_SERVERS},
                "startup": {n: servers.started[n] for n in NB_SERVERS}, "rows": X[:64].tolist(),
                "expected": {k: m.predict(X[:16]).tolist() for k, m in models.items()}, "probe": probe}
        print(TAG + json.dumps(info), flush=True)
        sys.stdin.read()
    finally:
        servers.stop_all()
        nbmlops.set_store(None)


SERVER_CHILDREN = {"dashboard": child_dashboard, "serving": child_serving}
REUSE = ("runs_browser", "batch", "dashboard", "serving")  # a side's scratch kept from round to round


# -- the parent ------------------------------------------------------------------------------------
def resolve_old(ref: str) -> Path:
    """A checkout's path as given, or the git ref checked out (once) as a worktree under .work/."""
    if Path(ref).is_dir():
        return Path(ref).resolve()
    sha = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--verify", f"{ref}^{{commit}}"], check=True,
                         capture_output=True, text=True).stdout.strip()
    tree = HERE / ".work" / f"ab-tree-{sha[:12]}"
    if not tree.exists():
        tree.parent.mkdir(exist_ok=True)
        subprocess.run(["git", "-C", str(HERE), "worktree", "add", "--detach", str(tree), sha], check=True,
                       capture_output=True)
    return tree


def side_env(tree: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(tree), MPLBACKEND="Agg")
    return env


def child_cmd(bench: str, tree: Path, scratch: Path, args: argparse.Namespace, rnd: int = 0) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), bench, "--child", "--tree", str(tree),
           "--scratch", str(scratch), "--round", str(rnd)]
    if args.quick:
        cmd.append("--quick")
    if args.inner:
        cmd += ["--inner", str(args.inner)]
    return cmd


def run_child(bench: str, side: str, tree: Path, scratch: Path, args: argparse.Namespace, rnd: int) -> dict[str, Any]:
    cmd = child_cmd(bench, tree, scratch, args, rnd)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=side_env(tree), cwd=scratch.parent)
    line = next((x for x in reversed(proc.stdout.splitlines()) if x.startswith(TAG)), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"ab: {bench} {side} failed (exit {proc.returncode}): {proc.stdout[-2000:]}")
    return json.loads(line[len(TAG):])


def ab_children(bench: str, trees: dict[str, Path], work: Path, args: argparse.Namespace) -> dict[str, list[Metrics]]:
    runs: dict[str, list[Metrics]] = {"old": [], "new": []}
    rounds = args.rounds or 2
    for rnd in range(rounds):
        for side in ("old", "new") if rnd % 2 == 0 else ("new", "old"):
            t = time.perf_counter()
            runs[side].append(run_child(bench, side, trees[side], work / side, args, rnd))
            log(f"{bench} round {rnd + 1}/{rounds} {side}: {time.perf_counter() - t:.0f} s, load {load():.1f}")
    return runs


def load() -> float:
    return os.getloadavg()[0]


@contextlib.contextmanager
def pythonpath(tree: Path) -> Any:
    """PYTHONPATH of this process set to ``tree`` while a server is started (its command inherits it)."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(tree)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def ab_dashboard(trees: dict[str, Path], work: Path, args: argparse.Namespace) -> dict[str, list[Metrics]]:
    """Each side's store built by its own code; both jupyter_servers up; every request old/new back to back."""
    mod = load_module(trees["new"], "dashboard")
    S = mod.QUICK if args.quick else mod.FULL
    built = {}
    for side in ("old", "new"):
        t = time.perf_counter()
        built[side] = run_child("dashboard", side, trees[side], work / side, args, 0)
        log(f"dashboard {side}: built {S['runs']:,} runs in {time.perf_counter() - t:.0f} s")
    servers: dict[str, Any] = {}
    times: dict[str, dict[str, list[float]]] = {"old": {}, "new": {}}
    try:
        for side in ("old", "new"):
            with pythonpath(trees[side]):
                servers[side] = mod.start_jupyter(work / side, work / side / "store")
        mod.settle(list(servers.values()))
        plans = {side: mod.steps("0", built[side]["hist_id"], "0", "") for side in servers}
        for side in servers:
            first = plans[side][0][2]
            times[side]["the first runs request after the server started"] = [servers[side].ask(*first)[0]]
        for (key, _, req_old, _), (_, _, req_new, _) in zip(plans["old"], plans["new"]):  # same answers
            a, b = servers["old"].ask(*req_old)[1], servers["new"].ask(*req_new)[1]
            if gist(key, a) != gist(key, b):
                log(f"dashboard: old and new answer {key} differently: {gist(key, a)!r:.300} / {gist(key, b)!r:.300}")
        rounds = args.rounds or S["rounds"]
        for rnd in range(rounds):
            for (_, label, req_old, _), (_, _, req_new, _) in zip(plans["old"], plans["new"]):
                pair = [("old", req_old), ("new", req_new)]
                for side, req in pair if rnd % 2 == 0 else pair[::-1]:
                    times[side].setdefault(label, []).append(servers[side].ask(*req)[0])
        log(f"dashboard: {rounds} rounds, load {load():.1f}")
    finally:
        for s in servers.values():
            s.stop()
    out: dict[str, list[Metrics]] = {}
    for side in ("old", "new"):
        m = {label: [statistics.median(v), "s"] for label, v in times[side].items()}
        m["building the store, per run (API)"] = [built[side]["per_run"], "s"]
        m["jupyter_server answering after start"] = [servers[side].ready, "s"]
        out[side] = [m]
    return out


def gist(key: str, answer: Any) -> Any:
    """What two stores built alike must agree on (ids and times differ): the runs' names, params and metrics,
    a history's values, the models' names and versions."""
    def values(metrics: Any) -> Any:
        return {k: v.get("value") for k, v in (metrics or {}).items()}

    if "runs" in answer:
        return [(r.get("name"), r.get("params"), values(r.get("metrics"))) for r in answer["runs"]]
    if key == "history":
        return values(answer.get("metrics"))
    if key == "models":
        return sorted((m.get("name"), m.get("latest_version")) for m in answer.get("models", []))
    return (answer.get("name"), answer.get("params"), values(answer.get("metrics"))) if key == "run" else None


def ab_serving(trees: dict[str, Path], work: Path, args: argparse.Namespace) -> dict[str, list[Metrics]]:
    """Both sides' four servers up together; each measurement on old and new back to back."""
    mod = load_module(trees["new"], "serving")
    S = mod.QUICK if args.quick else mod.FULL
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("ab: serving needs wrk (apt-get install wrk)")
    procs: dict[str, subprocess.Popen[str]] = {}
    info: dict[str, dict[str, Any]] = {}
    samples: dict[str, dict[str, list[float]]] = {"old": {}, "new": {}}

    def add(side: str, label: str, value: float) -> None:
        samples[side].setdefault(label, []).append(value)

    try:
        for side in ("old", "new"):
            (work / side).mkdir(parents=True, exist_ok=True)
            procs[side] = subprocess.Popen(child_cmd("serving", trees[side], work / side, args), stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, text=True, env=side_env(trees[side]), cwd=work)
            assert procs[side].stdout is not None
            line = ""
            while not line.startswith(TAG):
                line = procs[side].stdout.readline()
                if not line:
                    raise SystemExit(f"ab: the {side} servers did not start (see above)")
            info[side] = json.loads(line[len(TAG):])
            log(f"serving {side}: servers up on {info[side]['ports']}")
        rows = info["new"]["rows"]
        for side in ("old", "new"):  # both sides answer the fitted models' predictions
            for name in NB_SERVERS:
                port, kind = info[side]["ports"][name], name.split("-")[1]
                conn = mod.RawConnection(port)
                try:
                    got = [json.loads(conn.call(mod.request_bytes(port, "/predict", b))[1])["prediction"]
                           for b in mod.bodies(name, rows[:16])]
                finally:
                    conn.close()
                if got != info["new"]["expected"][kind]:
                    raise SystemExit(f"ab: {side} {name} predicts {got}")
            for name in NB_SERVERS:  # warm up under load
                mod.run_wrk(wrk, info[side]["ports"][name], "/predict", mod.bodies(name, rows[:1])[0], 8,
                            S["warmup"], work)
        for rnd in range(args.rounds or 3):
            pairs = ("old", "new") if rnd % 2 == 0 else ("new", "old")
            for name in NB_SERVERS:
                for side in pairs:
                    res = mod.sequential(info[side]["ports"][name], "/predict", mod.bodies(name, rows), S["seq"],
                                         S["seq_warmup"])
                    add(side, f"{name}: single-row latency p50", res["p50"])
                    add(side, f"{name}: single-row latency p99", res["p99"])
            for clients in (8, 32):
                for name in NB_SERVERS:
                    for side in pairs:
                        port, pid = info[side]["ports"][name], info[side]["pids"][name]
                        c0 = mod.group_cpu(pid)
                        res = mod.run_wrk(wrk, port, "/predict", mod.bodies(name, rows[:1])[0], clients,
                                          S["duration"], work)
                        if res["errors"]:
                            raise SystemExit(f"ab: {side} {name} {clients} clients: {res['errors']} errors")
                        add(side, f"{name}, {clients} clients: throughput", res["rps"])
                        add(side, f"{name}, {clients} clients: latency p50", res["p50"])
                        add(side, f"{name}, {clients} clients: server CPU per request",
                            (mod.group_cpu(pid) - c0) / res["requests"])
            log(f"serving round {rnd + 1} done, load {load():.1f}")
    finally:
        for p in procs.values():
            with contextlib.suppress(OSError):
                assert p.stdin is not None
                p.stdin.close()
        for p in procs.values():
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
    out: dict[str, list[Metrics]] = {}
    for side in ("old", "new"):  # one Metrics per round
        n = max(len(v) for v in samples[side].values())
        out[side] = [{k: [v[i], "/s" if k.endswith("throughput") else "s"] for k, v in samples[side].items()
                      if i < len(v)} for i in range(n)]
        probe = info[side]["probe"]
        if probe:
            out[side][0]["request log in-process: add, per record"] = [probe["add"], "s"]
            out[side][0]["request log in-process: flush, per record"] = [probe["flush"], "s"]
    return out


# -- the table -------------------------------------------------------------------------------------
def fmt(v: float, unit: str) -> str:
    if unit == "B":
        return f"{v / 2**20:,.0f} MiB"
    if unit == "/s":
        return f"{v / 1e6:.2f} M/s" if v >= 1e6 else f"{v / 1e3:.1f} k/s" if v >= 1e3 else f"{v:,.0f}/s"
    a = abs(v)
    return f"{v:.2f} s" if a >= 1 else f"{v * 1e3:.3g} ms" if a >= 1e-3 else f"{v * 1e6:.3g} µs"


def ratio(old: float, new: float, unit: str) -> float | None:
    """new/old as a time ratio (above 1: the new code is slower)."""
    if unit == "/s":
        old, new = new, old
    if old <= 0 or new < 0:
        return None
    return new / old


def table(bench: str, runs: dict[str, list[Metrics]]) -> tuple[str, list[dict[str, Any]]]:
    rows = []
    labels = list(dict.fromkeys(k for side in ("old", "new") for r in runs[side] for k in r))
    for label in labels:
        vals = {s: [r[label][0] for r in runs[s] if label in r] for s in ("old", "new")}
        unit = next(r[label][1] for s in ("old", "new") for r in runs[s] if label in r)
        if not vals["old"] or not vals["new"]:
            continue
        o, n = statistics.median(vals["old"]), statistics.median(vals["new"])
        rows.append({"bench": bench, "row": label, "unit": unit, "old": o, "new": n, "ratio": ratio(o, n, unit),
                     "old_runs": vals["old"], "new_runs": vals["new"]})
    lines = [f"### {bench}", "", "| row | old | new | new/old | every run, old; new |",
             "| --- | --- | --- | --- | --- |"]
    for r in rows:
        x = r["ratio"]
        cell = "—" if x is None else f"**{x:.2f}**" if x > 1.10 else f"{x:.2f}"
        each = ", ".join(fmt(v, r["unit"]) for v in r["old_runs"]) + "; " + ", ".join(fmt(v, r["unit"])
                                                                                   for v in r["new_runs"])
        lines.append(f"| {r['row']} | {fmt(r['old'], r['unit'])} | {fmt(r['new'], r['unit'])} | {cell} | {each} |")
    return "\n".join(lines) + "\n", rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", choices=(*BENCHES, "all"))
    ap.add_argument("--old", default="HEAD", help="git ref or checkout path of the old code (default HEAD)")
    ap.add_argument("--new", default=str(HERE.parent), help="checkout path of the new code (default: this tree)")
    ap.add_argument("--rounds", type=int, default=0,
                    help="alternating rounds (default 2; serving 3; dashboard: the module's request rounds)")
    ap.add_argument("--inner", type=int, default=0, help="pipelines: rounds inside each run (default 1)")
    ap.add_argument("--quick", action="store_true", help="the benchmarks' QUICK sizes")
    ap.add_argument("--json", type=Path, help="also write every run's figures here")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tree", help=argparse.SUPPRESS)
    ap.add_argument("--scratch", help=argparse.SUPPRESS)
    ap.add_argument("--round", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return 0
    trees = {"old": resolve_old(args.old), "new": Path(args.new).resolve()}
    quick = ", quick" if args.quick else ""
    log(f"old: {trees['old']}, new: {trees['new']}, rounds {args.rounds or 'default'}{quick}, load {load():.1f}")
    texts, all_rows = [], []
    for bench in BENCHES if args.bench == "all" else (args.bench,):
        work = HERE / ".work" / f"ab-{bench}-{os.getpid()}"
        for side in ("old", "new"):
            (work / side).mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        try:
            if bench == "dashboard":
                runs = ab_dashboard(trees, work, args)
            elif bench == "serving":
                runs = ab_serving(trees, work, args)
            else:
                runs = ab_children(bench, trees, work, args)
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        text, rows = table(bench, runs)
        log(f"{bench}: {time.perf_counter() - t:.0f} s")
        print(text, flush=True)
        texts.append(text)
        all_rows += rows
        if args.json:
            args.json.write_text(json.dumps(all_rows, indent=1))
    with contextlib.suppress(OSError):
        (HERE / ".work").rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
