"""Runs browser benchmark: the widget over a store of 10,000 runs, driven as a user drives it.

    python benchmarks/runs_browser.py            # full run (10,000 runs), writes its section of RESULTS.md
    python benchmarks/runs_browser.py --quick    # 1,000 runs, prints the table only
    python benchmarks/runs_browser.py --mlflow   # also mlflow.search_runs over the same runs in an MLflow file store

The store is built with the public API (5 params, 3 metrics and a tag per run, as benchmarks/tracking.py
does) in a fresh folder under ``benchmarks/.work/`` (removed at the end). Each step sets the value of a
control or clicks a button of one ``RunsBrowser`` and is timed until its HTML is ready; medians of
several repetitions. "Cold" opens empty nbmlops' parsed-file cache first (what a fresh kernel pays;
the OS page cache stays warm). There is no peer widget (MLflow's UI is a web app): ``search_runs``
of both tools is shown as the cost a browser would pay if it searched the store on every change.

Only the section "## Runs browser (benchmarks/runs_browser.py)" of RESULTS.md is replaced.
"""

from __future__ import annotations

import os

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
os.environ.setdefault("MPLBACKEND", "Agg")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import logging  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

if __package__:  # python -m benchmarks.runs_browser
    from ._common import log, machine, publish
else:  # python benchmarks/runs_browser.py
    from _common import log, machine, publish

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
RESULTS = HERE / "RESULTS.md"
SECTION = "## Runs browser (benchmarks/runs_browser.py)"
PACKAGES = ("nbmlops", "ipywidgets", "pandas", "matplotlib", "tinydb", "mlflow")
FULL = dict(runs=10_000, reps=7, mlflow_batch=1_000)
QUICK = dict(runs=1_000, reps=3, mlflow_batch=500)
FILTERS = ("metrics.acc > 0.5 and params.model = 'rf'", "metrics.auc < 0.3 and params.depth >= 5")
TARGETS = {  # key -> (limit in seconds, text)
    "open_cold": (1.0, "open the browser on {runs:,} runs < 1 s (parsed-file cache empty)"),
    "filter": (0.2, "apply a filter < 200 ms"),
    "sort": (0.2, "sort by a metric < 200 ms"),
    "page": (0.1, "next page < 100 ms"),
}


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def median_of(fn: Callable[[int], Any], reps: int, warmup: int = 1) -> float:
    """Median time of ``fn(i)``; ``i`` lets a step alternate its input so every call does real work."""
    for i in range(warmup):
        fn(-1 - i)
    return statistics.median(timed(lambda i=i: fn(i)) for i in range(reps))


def run_params(k: int) -> dict[str, Any]:
    return {"model": ("rf", "gbm", "lr")[k % 3], "depth": k % 10, "lr": round(0.001 * (k % 50 + 1), 4),
            "seed": k, "features": f"set-{k % 7}"}


def run_metrics(rng: random.Random) -> dict[str, float]:
    return {"acc": rng.random(), "auc": rng.random(), "loss": rng.random() * 2}


def build(S: dict[str, Any], root: Path) -> float:
    import nbmlops

    nbmlops.set_store(root / "store")
    rng = random.Random(0)
    t = time.perf_counter()
    for k in range(S["runs"]):
        with nbmlops.start_run(experiment="bench", tags={"team": ("red", "blue", "green")[k % 3]}):
            nbmlops.log_params(run_params(k))
            nbmlops.log_metrics(run_metrics(rng))
        if (k + 1) % 1000 == 0:
            log(f"built {k + 1:,} runs")
    return (time.perf_counter() - t) / S["runs"]


def bench_browser(S: dict[str, Any]) -> dict[str, Any]:
    import nbmlops
    from nbmlops.store import documents

    r: dict[str, Any] = {}
    reps = S["reps"]

    def open_cold(_: int) -> Any:
        documents._cache.clear()
        return nbmlops.runs_browser("bench")

    t = time.perf_counter()
    b = nbmlops.runs_browser("bench")  # imports ipywidgets, pandas: a kernel's first call
    r["open_first"] = time.perf_counter() - t
    r["open_cold"] = median_of(open_cold, reps, warmup=0)
    r["open_warm"] = median_of(lambda _: nbmlops.runs_browser("bench"), reps)
    assert b.selection.total == S["runs"], b.selection.total
    log(f"open: first {r['open_first']:.3f} s, cold {r['open_cold']:.3f} s, warm {r['open_warm']:.3f} s")

    def filt(i: int) -> None:
        b.query.value = FILTERS[i % 2]
        assert not b.message.value, b.message.value

    r["filter"] = median_of(filt, reps)
    r["filter_rows"] = b.selection.total
    r["words"] = median_of(lambda i: setattr(b.query, "value", ("red", "blue")[i % 2]), reps)
    r["bad"] = median_of(lambda i: setattr(b.query, "value", ("metrics.acc >", "params.model = rf")[i % 2]), reps)
    assert "cannot parse" in b.message.value or "must be" in b.message.value
    b.query.value = ""

    def sort(i: int) -> None:
        b.sort.value = ("metrics.auc", "params.depth")[i % 2]

    r["sort"] = median_of(sort, reps)
    r["sort_dir"] = median_of(lambda i: setattr(b.descending, "value", bool(i % 2)), reps)
    b.sort.value = "metrics.auc"

    def page(i: int) -> None:
        (b.next_button if i % 2 == 0 else b.prev_button).click()

    b.go(0)
    r["page"] = median_of(page, reps, warmup=0)
    r["page_last"] = median_of(lambda i: b.go(10**9 if i % 2 == 0 else 0), reps)
    b.page_size.value = 200
    r["page_200"] = median_of(page, reps, warmup=0)
    b.page_size.value = 50
    b.go(0)
    r["select"] = median_of(lambda i: setattr(b.runs, "value", tuple(o[1] for o in b.runs.options[i % 2:5 + i % 2])),
                            reps)
    b.scatter_param.value, b.scatter_metric.value, b.curve_metric.value = "depth", "auc", "acc"
    r["compare"] = median_of(lambda _: b.compare_button.click(), max(3, reps // 2))
    assert b.curves.value and b.scatter.value
    r["snapshot"] = median_of(lambda _: b._repr_mimebundle_(), reps)

    r["refresh"] = median_of(lambda _: b.refresh_button.click(), reps)
    r["search"] = median_of(lambda _: nbmlops.search_runs("bench"), reps)
    r["search_filter"] = median_of(lambda i: nbmlops.search_runs("bench", FILTERS[i % 2]), reps)
    for k, v in r.items():
        if isinstance(v, float):
            log(f"{k}: {v * 1e3:.1f} ms")
    nbmlops.set_store(None)
    return r


def bench_mlflow(S: dict[str, Any], root: Path) -> dict[str, Any]:
    """The same runs logged into an MLflow file store (client ``log_batch``), then ``mlflow.search_runs``."""
    import mlflow
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    uri = (root / "mlruns").as_uri()
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp = client.create_experiment("bench")
    rng = random.Random(0)
    t = time.perf_counter()
    for k in range(S["runs"]):
        run = client.create_run(exp, tags={"team": ("red", "blue", "green")[k % 3]})
        now = int(time.time() * 1000)
        client.log_batch(run.info.run_id, params=[Param(a, str(v)) for a, v in run_params(k).items()],
                         metrics=[Metric(a, v, now, 0) for a, v in run_metrics(rng).items()],
                         tags=[RunTag("mlflow.runName", f"run-{k}")])
        client.set_terminated(run.info.run_id)
        if (k + 1) % 1000 == 0:
            log(f"MLflow: {k + 1:,} runs")
    r: dict[str, Any] = {"create": (time.perf_counter() - t) / S["runs"]}
    reps = max(3, S["reps"] // 2)
    r["search"] = median_of(lambda _: mlflow.search_runs([exp]), reps)
    mf_filters = ("metrics.acc > 0.5 and params.model = 'rf'", "metrics.auc < 0.3 and params.depth = '5'")
    r["search_filter"] = median_of(lambda i: mlflow.search_runs([exp], mf_filters[i % 2]), reps)
    r["search_page"] = median_of(lambda _: client.search_runs([exp], max_results=50, order_by=["metrics.auc DESC"]),
                                 reps)
    log(f"MLflow search_runs {r['search']:.3f} s, filtered {r['search_filter']:.3f} s, "
        f"one page ordered {r['search_page']:.3f} s")
    return r


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms" if seconds < 0.1 else f"{seconds * 1e3:.0f} ms"
    return f"{seconds * 1e6:.3g} µs"


def report(S: dict[str, Any], r: dict[str, Any], mf: dict[str, Any] | None, per_run: float, quick: bool,
           wall: float, load: str) -> tuple[str, list[tuple[str, bool, str]]]:
    n, reps = S["runs"], S["reps"]
    rows = [
        (f"open `runs_browser('bench')` over {n:,} runs, first call in the kernel (imports ipywidgets, pandas)",
         r["open_first"]),
        ("open it again, parsed-file cache emptied first (a fresh kernel that already imported)", r["open_cold"]),
        ("open it again, warm", r["open_warm"]),
        (f"apply a filter (`{FILTERS[0]}` ⇄ `{FILTERS[1]}`, about {r['filter_rows']:,} rows kept), Enter in the box",
         r["filter"]),
        ("find words (`red` ⇄ `blue` in names and tags)", r["words"]),
        ("malformed filter → one-line error", r["bad"]),
        ("sort by a column (`metrics.auc` ⇄ `params.depth`)", r["sort"]),
        ("flip the sort direction", r["sort_dir"]),
        ("next / previous page (50 rows)", r["page"]),
        ("jump to the last page and back", r["page_last"]),
        ("next / previous page (200 rows)", r["page_200"]),
        ("select 5 runs in the picker", r["select"]),
        (f"Compare 5 runs: curves, param against metric over all {n:,} runs (matplotlib PNGs), param diff",
         r["compare"]),
        ("static snapshot (`_repr_mimebundle_`, text/html with the page and the comparison)", r["snapshot"]),
        ("Refresh (read the runs again)", r["refresh"]),
        (f"for scale: `nbmlops.search_runs` over the {n:,} runs", r["search"]),
        ("for scale: `nbmlops.search_runs` with the filter", r["search_filter"]),
    ]
    if mf:
        rows += [(f"for scale: `mlflow.search_runs` over the same {n:,} runs (MLflow file store)", mf["search"]),
                 ("for scale: `mlflow.search_runs` with the filter", mf["search_filter"]),
                 ("for scale: MLflow client `search_runs`, 50 runs ordered by `metrics.auc`", mf["search_page"])]
    mode = "Mode: --quick (small sizes)." if quick else "Mode: full."
    out = [SECTION, "", machine(PACKAGES, extra=mode) + load, "",
           f"| step (medians of {reps} unless the step says otherwise) | time |", "| --- | --- |"]
    out += [f"| {label} | {fmt(v)} |" for label, v in rows]
    out += ["", f"The store was built with the API at {fmt(per_run)} per run (5 params, 3 metrics, 1 tag). "
            "Every step ends with the page's HTML in the widget (and the picker's options); nothing runs per "
            "keystroke: the filter box applies on Enter (`continuous_update=False`). The runs are read once "
            "(`nbmlops.run_listing`) and again only on Refresh or a change of experiment; a filter, sort or page "
            "queries that listing and builds a DataFrame of one page only." +
            ("" if mf else " MLflow rows: run with `--mlflow`."), ""]
    targets = []
    for key, (limit, text) in TARGETS.items():
        targets.append((text.format(**S), r[key] < limit, fmt(r[key])))
    out += ["| target | measured | status |", "| --- | --- | --- |"]
    out += [f"| {t} | {v} | {'pass' if ok else '**FAIL**'} |" for t, ok, v in targets]
    out += ["", f"Whole benchmark: {wall:.0f} s.", ""]
    return "\n".join(out), targets


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1,000 runs, fewer repetitions")
    ap.add_argument("--mlflow", action="store_true", help="also fill an MLflow file store and time mlflow.search_runs")
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
    root = Path(tempfile.mkdtemp(prefix="runs-browser-", dir=WORK))
    cwd = os.getcwd()
    try:
        os.chdir(root)
        per_run = build(S, root)
        log(f"built {S['runs']:,} runs, {per_run * 1e3:.2f} ms each")
        load = f" Load average when the timing began: {os.getloadavg()[0]:.1f} (the cores are shared with other work)."
        r = bench_browser(S)
        mf = bench_mlflow(S, root) if args.mlflow else None
    finally:
        os.chdir(cwd)
        shutil.rmtree(root, ignore_errors=True)
        with contextlib.suppress(OSError):
            WORK.rmdir()  # only if no other benchmark is using it
    text, targets = report(S, r, mf, per_run, args.quick, time.perf_counter() - t0, load)
    publish(text, out, SECTION, [t for t, ok, _ in targets if not ok])
    return 0


if __name__ == "__main__":
    sys.exit(main())
