"""Tracking benchmark: nbmlops against MLflow (file store and sqlite store), side by side in one run.

    python benchmarks/tracking.py            # full run (a few minutes on 2 cores), writes benchmarks/RESULTS.md
    python benchmarks/tracking.py --quick    # smoke test at small sizes (< 60 s), prints the table only

The same work is done by each tool, each in a fresh store under ``benchmarks/.work/`` (removed at the
end): empty runs, ``%%track`` on an empty cell (nbmlops only: MLflow has no equivalent), ``log_metric``
per point, ``log_params``, ``search_runs``, start+end of a run in a store that already holds many runs,
and ``log_model``/load of a 100-tree random forest. Small operations are repeated and reported as
medians. "MLflow best / nbmlops" is the faster MLflow backend's time divided by nbmlops' time, i.e.
how many times faster nbmlops is (below 1: nbmlops is slower).

Only the section "## Tracking (benchmarks/tracking.py)" of RESULTS.md is replaced; other sections stay.
Search at 100,000 runs (with MLflow sqlite, the runs browser and the dashboard's runs API) is
benchmarks/search_scale.py, from stores filled once and cached (benchmarks/_fill.py).
"""

from __future__ import annotations

import os

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import io  # noqa: E402
import logging  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

if __package__:  # python -m benchmarks.tracking
    from ._common import log, machine, publish
else:  # python benchmarks/tracking.py
    from _common import log, machine, publish

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
RESULTS = HERE / "RESULTS.md"
PACKAGES = ("nbmlops", "mlflow", "scikit-learn", "numpy", "pandas", "tinydb", "ipython", "sqlalchemy")
SECTION = "## Tracking (benchmarks/tracking.py)"

FULL = dict(empty_runs=50, track_cells=50, metric_points=100_000, mlflow_points_file=100_000,
            mlflow_points_sqlite=2_000, batch_points=100_000, batch_size=1_000, params=50, params_reps=20,
            search_runs=1_000, search_runs_big=10_000, search_reps=5, startend_reps=30,
            trees=100, samples=2_000, model_reps=3, load_reps=5)
QUICK = dict(empty_runs=10, track_cells=10, metric_points=10_000, mlflow_points_file=500,
             mlflow_points_sqlite=200, batch_points=10_000, batch_size=1_000, params=50, params_reps=5,
             search_runs=100, search_runs_big=1_000, search_reps=3, startend_reps=10,
             trees=10, samples=500, model_reps=1, load_reps=2)

TARGETS = {  # key -> (limit in seconds, text)
    "track": (0.020, "`%%track` on an empty cell adds < 20 ms"),
    "metric": (1.0, "`log_metric` × {metric_points:,} points < 1 s in total"),
    "search_big_cold": (0.5, "`search_runs` over {search_runs_big:,} runs < 0.5 s (first call in a process)"),
    "search_big_warm": (0.5, "`search_runs` over {search_runs_big:,} runs < 0.5 s (repeated call)"),
    "startend_big": (0.020, "start+end of a run in a store of {search_runs_big:,} runs < 20 ms"),
}


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def median_of(fn: Callable[[], Any], reps: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn) for _ in range(reps))


def run_params(k: int) -> dict[str, Any]:
    return {"model": ("rf", "gbm", "lr")[k % 3], "depth": k % 10, "lr": round(0.001 * (k % 50 + 1), 4),
            "seed": k, "features": f"set-{k % 7}"}


def run_metrics(rng: random.Random) -> dict[str, float]:
    return {"acc": rng.random(), "auc": rng.random(), "loss": rng.random() * 2}


def make_model(trees: int, samples: int) -> Any:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    X, y = make_classification(n_samples=samples, n_features=20, n_informative=10, random_state=0)
    return RandomForestClassifier(n_estimators=trees, random_state=0, n_jobs=1).fit(X, y), X


def variant(model: Any, i: int) -> Any:
    """The same forest with a distinct attribute, so content-addressed stores cannot dedupe reps."""
    model._bench_rep = i
    return model


# -- nbmlops -------------------------------------------------------------------------------------
def bench_nbmlops(S: dict[str, Any], root: Path, model: Any, X: Any) -> dict[str, Any]:
    import nbmlops
    from nbmlops.store import documents

    r: dict[str, Any] = {}
    nbmlops.set_store(root / "store")

    def empty() -> None:
        with nbmlops.start_run():
            pass

    r["empty"] = median_of(empty, S["empty_runs"], warmup=2)
    log(f"nbmlops empty run {r['empty'] * 1e3:.2f} ms")

    with nbmlops.start_run():
        n = S["metric_points"]
        lm = nbmlops.log_metric
        t = time.perf_counter()
        for i in range(n):
            lm("loss", 1.0 / (i + 1), step=i)
        r["metric_total"] = time.perf_counter() - t
    r["metric_point"] = r["metric_total"] / n
    r["metric_n"] = n
    log(f"nbmlops log_metric x{n}: {r['metric_total']:.3f} s")

    params = {f"param_{i}": i * 0.5 for i in range(S["params"])}
    times = []
    for _ in range(S["params_reps"] + 1):
        with nbmlops.start_run():
            times.append(timed(lambda: nbmlops.log_params(params)))
    r["params"] = statistics.median(times[1:])
    log(f"nbmlops log_params {r['params'] * 1e3:.2f} ms")

    rng = random.Random(0)

    def populate(start: int, stop: int) -> float:
        t = time.perf_counter()
        for k in range(start, stop):
            with nbmlops.start_run(experiment="bench-search"):
                nbmlops.log_params(run_params(k))
                nbmlops.log_metrics(run_metrics(rng))
        return (time.perf_counter() - t) / (stop - start)

    def search_set(size_key: str) -> None:
        def search() -> Any:
            df = nbmlops.search_runs("bench-search")
            assert len(df) == S[size_key], (len(df), S[size_key])
            return df

        def filtered() -> Any:
            return nbmlops.search_runs("bench-search", "metrics.acc > 0.5 and params.model = 'rf'",
                                       order_by="metrics.auc desc")

        def cold(fn: Callable[[], Any]) -> Callable[[], Any]:
            def go() -> Any:
                documents._cache.clear()  # forget parsed files: what a fresh kernel pays
                return fn()
            return go

        tag = "" if size_key == "search_runs" else "_big"
        cold_times = []
        for _ in range(S["search_reps"]):
            documents._cache.clear()
            cold_times.append(timed(search))
        r[f"search{tag}_cold"] = statistics.median(cold_times)
        r[f"search{tag}_warm"] = median_of(search, S["search_reps"])
        r[f"search{tag}_filter_cold"] = median_of(cold(filtered), S["search_reps"], warmup=0)
        r[f"search{tag}_filter_warm"] = median_of(filtered, S["search_reps"])

        def startend() -> None:
            with nbmlops.start_run(experiment="bench-search"):
                pass

        # runs created here are deleted right after, so the store keeps its size for the search above
        times = [timed(startend) for _ in range(S["startend_reps"])]
        r[f"startend{tag}"] = statistics.median(times)
        log(f"nbmlops at {S[size_key]} runs: search cold {r[f'search{tag}_cold']:.3f} s, warm "
            f"{r[f'search{tag}_warm']:.3f} s; start+end {r[f'startend{tag}'] * 1e3:.2f} ms")

    n1, n2 = S["search_runs"], S["search_runs_big"]
    r["create_run"] = populate(0, n1)
    log(f"nbmlops created {n1} runs, {r['create_run'] * 1e3:.2f} ms each")
    search_set_clean(nbmlops, search_set, "search_runs")
    r["create_run_big"] = populate(n1, n2)
    log(f"nbmlops created {n2 - n1} more runs, {r['create_run_big'] * 1e3:.2f} ms each")
    search_set_clean(nbmlops, search_set, "search_runs_big")

    log_times, load_times = [], []
    with nbmlops.start_run() as run:
        nbmlops.log_model(variant(model, -1), "warmup")
        for i in range(S["model_reps"]):
            m = variant(model, i)
            log_times.append(timed(lambda: nbmlops.log_model(m, f"forest-{i}")))
        entry = run.info["models"][-1]
    r["model_size"] = entry["size"]
    run = nbmlops.get_run(run.id)
    run.load_model("forest-0")
    for _ in range(S["load_reps"]):
        t = time.perf_counter()
        loaded = run.load_model("forest-0")
        load_times.append(time.perf_counter() - t)
    assert (loaded.predict(X[:50]) == model.predict(X[:50])).all()
    r["log_model"], r["load_model"] = statistics.median(log_times), statistics.median(load_times)
    log(f"nbmlops log_model {r['log_model']:.3f} s, load {r['load_model'] * 1e3:.1f} ms")
    nbmlops.set_store(None)
    return r


def search_set_clean(nbmlops: Any, search_set: Callable[[str], None], size_key: str) -> None:
    """Measure, then delete the runs the start+end timing added, so later searches see the exact count."""
    before = set(nbmlops.search_runs("bench-search")["run_id"])
    search_set(size_key)
    for run_id in set(nbmlops.search_runs("bench-search")["run_id"]) - before:
        nbmlops.delete_run(run_id)


def bench_track(S: dict[str, Any], root: Path) -> dict[str, Any]:
    """%%track on an empty cell through a real IPython shell, against the same cell without the magic."""
    import nbmlops
    from IPython.testing.globalipapp import start_ipython

    shell = start_ipython()
    nbmlops.set_store(root / "track-store")
    shell.run_line_magic("load_ext", "nbmlops")
    sink = io.StringIO()

    def cell(src: str) -> float:
        with contextlib.redirect_stdout(sink):
            t = time.perf_counter()
            result = shell.run_cell(src, store_history=True)
            elapsed = time.perf_counter() - t
        if not result.success:
            raise RuntimeError(f"cell failed: {result.error_before_exec or result.error_in_exec!r}")
        return elapsed

    for _ in range(3):  # warm up: imports, the notebook lookup, the store
        cell("pass\n")
        cell("%%track\npass\n")
    plain, tracked = [], []
    for _ in range(S["track_cells"]):  # interleaved, so drift hits both equally
        plain.append(cell("pass\n"))
        tracked.append(cell("%%track\npass\n"))
    nbmlops.set_store(None)
    r = {"plain": statistics.median(plain), "tracked": statistics.median(tracked)}
    r["added"] = r["tracked"] - r["plain"]
    log(f"%%track: plain {r['plain'] * 1e3:.3f} ms, tracked {r['tracked'] * 1e3:.2f} ms")
    return r


# -- MLflow --------------------------------------------------------------------------------------
def bench_mlflow(backend: str, S: dict[str, Any], root: Path, model: Any, X: Any) -> dict[str, Any]:
    import mlflow
    import mlflow.sklearn
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.ERROR)  # after import: mlflow configures its loggers then
    r: dict[str, Any] = {}
    uri = (root / "mlruns").as_uri() if backend == "file" else f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    art = (root / "artifacts").as_uri()

    def experiment(name: str) -> str:
        exp_id = client.create_experiment(name, artifact_location=f"{art}/{name}")
        mlflow.set_experiment(experiment_id=exp_id)
        return exp_id

    experiment("bench")

    def empty() -> None:
        with mlflow.start_run():
            pass

    r["empty"] = median_of(empty, S["empty_runs"], warmup=2)
    log(f"MLflow {backend} empty run {r['empty'] * 1e3:.2f} ms")

    n = S[f"mlflow_points_{backend}"]
    with mlflow.start_run():
        lm = mlflow.log_metric
        t = time.perf_counter()
        for i in range(n):
            lm("loss", 1.0 / (i + 1), step=i)
        total = time.perf_counter() - t
    r["metric_point"] = total / n
    r["metric_n"] = n
    r["metric_total"] = r["metric_point"] * S["metric_points"]  # extrapolated when n is smaller
    log(f"MLflow {backend} log_metric x{n}: {total:.3f} s ({r['metric_point'] * 1e3:.3f} ms/point)")

    with mlflow.start_run() as run:
        nb, bs = S["batch_points"], S["batch_size"]
        ts = int(time.time() * 1000)
        t = time.perf_counter()
        for start in range(0, nb, bs):
            client.log_batch(run.info.run_id,
                             metrics=[Metric("loss", 1.0 / (i + 1), ts, i) for i in range(start, min(start + bs, nb))])
        r["batch_total"] = time.perf_counter() - t
    log(f"MLflow {backend} log_batch x{nb}: {r['batch_total']:.3f} s")

    params = {f"param_{i}": i * 0.5 for i in range(S["params"])}
    times = []
    for _ in range(S["params_reps"] + 1):
        with mlflow.start_run():
            times.append(timed(lambda: mlflow.log_params(params)))
    r["params"] = statistics.median(times[1:])
    log(f"MLflow {backend} log_params {r['params'] * 1e3:.2f} ms")

    exp_id = experiment("bench-search")
    rng = random.Random(0)
    n1 = S["search_runs"]
    t = time.perf_counter()
    for k in range(n1):  # MLflow's quickest way to make a run with 5 params and 3 metrics
        run_id = client.create_run(exp_id).info.run_id
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(key, v, now, 0) for key, v in run_metrics(rng).items()],
                         params=[Param(key, str(v)) for key, v in run_params(k).items()])
        client.set_terminated(run_id)
    r["create_run"] = (time.perf_counter() - t) / n1
    log(f"MLflow {backend} created {n1} runs, {r['create_run'] * 1e3:.2f} ms each")

    def search() -> Any:
        df = mlflow.search_runs(experiment_ids=[exp_id])
        assert len(df) == n1, len(df)
        return df

    def filtered() -> Any:
        return mlflow.search_runs(experiment_ids=[exp_id], filter_string="metrics.acc > 0.5 and params.model = 'rf'",
                                  order_by=["metrics.auc DESC"])

    r["search_cold"] = r["search_warm"] = median_of(search, S["search_reps"])
    r["search_filter_cold"] = r["search_filter_warm"] = median_of(filtered, S["search_reps"])

    def startend() -> None:
        with mlflow.start_run():
            pass

    r["startend"] = median_of(startend, S["startend_reps"], warmup=0)
    log(f"MLflow {backend} at {n1} runs: search {r['search_warm']:.3f} s, start+end {r['startend'] * 1e3:.2f} ms")

    experiment("bench-model")
    log_times, load_times = [], []
    with mlflow.start_run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlflow.sklearn.log_model(variant(model, -1), name="warmup", serialization_format="cloudpickle")
            infos = []
            for i in range(S["model_reps"]):
                m = variant(model, i)
                t = time.perf_counter()
                infos.append(mlflow.sklearn.log_model(m, name=f"forest-{i}", serialization_format="cloudpickle"))
                log_times.append(time.perf_counter() - t)
    uri0 = infos[0].model_uri
    mlflow.pyfunc.load_model(uri0)
    for _ in range(S["load_reps"]):
        t = time.perf_counter()
        loaded = mlflow.pyfunc.load_model(uri0)
        load_times.append(time.perf_counter() - t)
    assert (loaded.predict(X[:50]) == model.predict(X[:50])).all()
    r["log_model"], r["load_model"] = statistics.median(log_times), statistics.median(load_times)
    log(f"MLflow {backend} log_model {r['log_model']:.3f} s, load {r['load_model'] * 1e3:.1f} ms")
    return r


# -- report --------------------------------------------------------------------------------------
def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms" if seconds < 0.1 else f"{seconds * 1e3:.0f} ms"
    return f"{seconds * 1e6:.3g} µs"


def ratio(nb: float | None, mf: list[float | None]) -> str:
    vals = [v for v in mf if v is not None]
    if nb is None or not vals or nb <= 0:
        return "—"
    x = min(vals) / nb
    return f"**{x:.0f}×**" if x >= 10 else f"**{x:.1f}×**" if x >= 1 else f"{x:.2f}× (nbmlops slower)"


def report(S: dict[str, Any], nb: dict[str, Any], tr: dict[str, Any], mf: dict[str, dict[str, Any]],
           quick: bool, wall: float) -> tuple[str, list[tuple[str, bool, str]]]:
    f, s = mf["file"], mf["sqlite"]
    n1, n2, N = S["search_runs"], S["search_runs_big"], S["metric_points"]

    def ext(r: dict[str, Any]) -> str:
        return "" if r["metric_n"] >= N else f" † ({r['metric_n']:,} timed)"

    rows: list[tuple[str, float | None, float | None, float | None, str]] = [
        (f"empty run (`with start_run(): pass`), median of {S['empty_runs']}", nb["empty"], f["empty"], s["empty"], ""),
        ("`%%track` on an empty cell, added to the same cell without it (IPython shell)", tr["added"], None, None, ""),
        ("`log_metric`, per point (total / points)", nb["metric_point"], f["metric_point"],
         s["metric_point"], ""),
        (f"`log_metric` × {N:,} points, total", nb["metric_total"], f["metric_total"], s["metric_total"], "ext"),
        (f"{N:,} points, each tool's best way (nbmlops `log_metric` loop; MLflow `log_batch` of "
         f"{S['batch_size']:,})", nb["metric_total"], f["batch_total"], s["batch_total"], ""),
        (f"`log_params`, {S['params']} params, median of {S['params_reps']}", nb["params"], f["params"], s["params"], ""),
        (f"make a run with 5 params + 3 metrics (mean while filling {n1:,}; MLflow: client `log_batch`)",
         nb["create_run"], f["create_run"], s["create_run"], ""),
        (f"`search_runs` over {n1:,} runs (5 params, 3 metrics), first call in a process", nb["search_cold"],
         f["search_cold"], s["search_cold"], ""),
        (f"`search_runs` over {n1:,} runs, repeated call", nb["search_warm"], f["search_warm"], s["search_warm"], ""),
        (f"`search_runs` over {n1:,} runs, filter `metrics.acc > 0.5 and params.model = 'rf'` + order by, first call",
         nb["search_filter_cold"], f["search_filter_cold"], s["search_filter_cold"], ""),
        (f"`search_runs` over {n2:,} runs, first call in a process", nb["search_big_cold"], None, None, ""),
        (f"`search_runs` over {n2:,} runs, repeated call", nb["search_big_warm"], None, None, ""),
        (f"`search_runs` over {n2:,} runs, filtered + ordered, first call", nb["search_big_filter_cold"], None, None, ""),
        (f"start+end of a run in a store of {n1:,} runs, median of {S['startend_reps']}", nb["startend"],
         f["startend"], s["startend"], ""),
        (f"start+end of a run in a store of {n2:,} runs, median of {S['startend_reps']}", nb["startend_big"],
         None, None, ""),
        (f"`log_model`, {S['trees']}-tree RandomForest ({nb['model_size'] / 2**20:.1f} MiB joblib), median of "
         f"{S['model_reps']}", nb["log_model"], f["log_model"], s["log_model"], ""),
        (f"load it back (`run.load_model` / `mlflow.pyfunc.load_model`), median of {S['load_reps']}",
         nb["load_model"], f["load_model"], s["load_model"], ""),
    ]
    out = [SECTION, "", machine(PACKAGES, f"Mode: {'--quick (small sizes)' if quick else 'full'}."), "",
           "| work | nbmlops | MLflow file store | MLflow sqlite | MLflow best / nbmlops |",
           "| --- | --- | --- | --- | --- |"]
    for label, a, b, c, kind in rows:
        cb = fmt(b) + (ext(f) if kind == "ext" and b is not None else "")
        cc = fmt(c) + (ext(s) if kind == "ext" and c is not None else "")
        out.append(f"| {label} | {fmt(a)} | {cb} | {cc} | {ratio(a, [b, c])} |")
    out += ["",
            f"† extrapolated: MLflow `log_metric` was timed over {f['metric_n']:,} points on the file store and "
            f"{s['metric_n']:,} on sqlite; a store timed over fewer than {N:,} points is scaled to {N:,} "
            "(the full run would take minutes). "
            f"`%%track` cell: {fmt(tr['tracked'])} with the magic against {fmt(tr['plain'])} without "
            f"(cell body `pass`, medians of {S['track_cells']}, interleaved); MLflow has no equivalent. "
            "\"First call in a process\": nbmlops' parsed-file cache emptied before each call (the OS page cache "
            "stays warm, as for MLflow, which has no such cache, so its two rows are the same measurement). "
            "MLflow rows at "
            f"{n2:,} runs are left out (filling MLflow with that many runs takes too long). "
            "MLflow `log_model` uses `serialization_format=\"cloudpickle\"` (its default skops format refuses a "
            "forest) and otherwise its defaults (it infers pip requirements). Each saved forest differs by one "
            "attribute, so neither store can deduplicate repeats.", ""]
    targets = []
    for key, (limit, text) in TARGETS.items():
        value = {"track": tr["added"], "metric": nb["metric_total"]}.get(key, nb.get(key))
        targets.append((text.format(**S), value < limit, fmt(value)))
    out += ["| target (nbmlops) | measured | status |", "| --- | --- | --- |"]
    out += [f"| {t} | {v} | {'pass' if ok else '**FAIL**'} |" for t, ok, v in targets]
    out += ["", f"Whole benchmark: {wall:.0f} s.", ""]
    return "\n".join(out), targets


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke test (< 60 s)")
    ap.add_argument("--results", type=Path, default=None,
                    help="markdown file to update (default: benchmarks/RESULTS.md for a full run; "
                         "a --quick run only prints its table unless this is given)")
    args = ap.parse_args()
    S = QUICK if args.quick else FULL
    out = args.results if args.results is not None else (None if args.quick else RESULTS)

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="mlflow")
    t0 = time.perf_counter()
    WORK.mkdir(exist_ok=True)
    dirs = {k: Path(tempfile.mkdtemp(prefix=f"tracking-{k}-", dir=WORK)) for k in ("nbmlops", "file", "sqlite")}
    cwd = os.getcwd()
    try:
        os.chdir(dirs["nbmlops"])  # nothing either tool drops in the working directory lands in the repo
        log(f"fitting a {S['trees']}-tree forest")
        model, X = make_model(S["trees"], S["samples"])
        gc.collect()
        tr = bench_track(S, dirs["nbmlops"])
        nb = bench_nbmlops(S, dirs["nbmlops"], model, X)
        mf = {}
        for backend in ("file", "sqlite"):
            os.chdir(dirs[backend])
            gc.collect()
            mf[backend] = bench_mlflow(backend, S, dirs[backend], model, X)
    finally:
        os.chdir(cwd)
        for d in dirs.values():
            shutil.rmtree(d, ignore_errors=True)
        with contextlib.suppress(OSError):
            WORK.rmdir()  # only if no other benchmark is using it
    text, targets = report(S, nb, tr, mf, args.quick, time.perf_counter() - t0)
    failed = [t for t, ok, _ in targets if not ok]
    publish(text, out, SECTION, failed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
