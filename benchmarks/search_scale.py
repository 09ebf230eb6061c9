"""Search at 100,000 runs: ``search_runs``, the runs browser and the dashboard's runs API, with MLflow sqlite.

    python benchmarks/search_scale.py                 # 100,000 runs, prints its section (Markdown)
    python benchmarks/search_scale.py --runs 10000    # another size

The stores come from benchmarks/_fill.py (filled once, cached under /work/bench-cache/; how they are
filled is said there): experiment ``bench-search``, 5 params, 3 metrics, 1 tag per run, the same runs
in nbmlops and in MLflow's sqlite store. Rounds are interleaved (nbmlops, then MLflow, each round);
medians. "Cold" is the first call in a process that already imported pandas: nbmlops' index and
parsed files are forgotten in memory first (read again from the index file; the OS page cache stays
warm, as for MLflow's database). CPU seconds of this process are given beside nbmlops' times: the
cores are shared with other work and the load average is printed.
"""

from __future__ import annotations

import os

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
os.environ.setdefault("MPLBACKEND", "Agg")

import argparse  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import urlencode  # noqa: E402

if __package__:  # python -m benchmarks.search_scale
    from . import _fill
    from ._common import log, machine
    from .dashboard import group_cpu, start_jupyter
else:  # python benchmarks/search_scale.py
    import _fill
    from _common import log, machine
    from dashboard import group_cpu, start_jupyter

SECTION = "### Search at {n:,} runs (benchmarks/search_scale.py)"
PACKAGES = ("nbmlops", "mlflow", "pandas", "numpy", "sqlalchemy", "ipywidgets")
FILTER = "metrics.acc > 0.5 and params.model = 'rf'"
ORDER = "metrics.auc desc"
FILTERS = (FILTER, "metrics.auc < 0.3 and params.depth >= 5")


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, result)."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def median(values: list[float]) -> float:
    return statistics.median(values)


def load() -> str:
    return "{:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg())


def bench_search(n: int, store: Path, uri: str, exp_id: str, rounds: int) -> dict[str, Any]:
    import mlflow

    import nbmlops
    from nbmlops.store import documents, index

    nbmlops.set_store(store)
    mlflow.set_tracking_uri(uri)
    r: dict[str, list[float]] = {}

    def add(key: str, wall: float, cpu: float | None = None) -> None:
        r.setdefault(key, []).append(wall)
        if cpu is not None:
            r.setdefault(key + "_cpu", []).append(cpu)

    def cold(fn: Callable[[], Any]) -> Callable[[], Any]:
        def go() -> Any:
            index.forget()
            documents._cache.clear()
            return fn()
        return go

    def full() -> Any:
        df = nbmlops.search_runs("bench-search")
        assert len(df) == n, len(df)
        return df

    def page() -> Any:
        return nbmlops.search_runs("bench-search", FILTER, order_by=ORDER, max_results=50)

    def filtered() -> Any:
        return nbmlops.search_runs("bench-search", FILTER, order_by=ORDER)

    idx = store / "index" / "runs" / f"{nbmlops.get_experiment('bench-search').id}.idx"
    idx.unlink(missing_ok=True)
    wall, cpu, _ = timed(cold(full))
    r["rebuild"], r["rebuild_cpu"] = [wall], [cpu]
    log(f"index rebuilt from the documents: {wall:.2f} s ({cpu:.2f} s CPU), {idx.stat().st_size / 1e6:.1f} MB")
    nb_page = mf_page = None
    for k in range(rounds):
        for key, fn in (("cold", cold(full)), ("warm", full), ("page_cold", cold(page)), ("page", page),
                        ("filtered", filtered)):
            wall, cpu, out = timed(fn)
            add(key, wall, cpu)
            if key == "page":
                nb_page = list(out["run_name"])
            if key == "filtered":
                r["matching"] = [float(len(out))]
        wall, _, out = timed(lambda: mlflow.search_runs(experiment_ids=[exp_id], filter_string=FILTER,
                                                        order_by=[ORDER.replace("desc", "DESC")], max_results=50))
        r.setdefault("mf_page", []).append(wall)
        mf_page = list(out["tags.mlflow.runName"])
        if k == 0:  # MLflow pages 1,000 runs at a time: minutes at 100,000 runs here, so within a time budget
            r["mf_full"], r["mf_full_runs"] = mlflow_pages(exp_id, None, None, n)
            r["mf_filtered"], r["mf_filtered_runs"] = mlflow_pages(exp_id, FILTER, ORDER, n)
        log(f"round {k + 1}: " + ", ".join(f"{key} {v[-1]:.3f}" for key, v in r.items() if not key.endswith("cpu")))
    res: dict[str, Any] = {key: median(v) for key, v in r.items()}
    res["same_page"] = nb_page == mf_page
    log(f"the filtered, ordered page of 50 is the same runs in both: {res['same_page']}")
    nbmlops.set_store(None)
    return res


def mlflow_pages(exp_id: str, filter_string: str | None, order: str | None, n: int,
                 budget: float = 90.0) -> tuple[list[float], list[float]]:
    """``mlflow.search_runs``' work (its client's ``search_runs``, 1,000 runs a page, page tokens) for
    every matching run, stopped after ``budget`` seconds: ([seconds], [runs read])."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    t = time.perf_counter()
    token, got = None, 0
    while True:
        page = client.search_runs([exp_id], filter_string or "", max_results=1000, page_token=token,
                                  order_by=[order.replace("desc", "DESC")] if order else None)
        got += len(page)
        token = page.token
        if not token or time.perf_counter() - t > budget:
            break
    return [time.perf_counter() - t], [float(got)]


def bench_browser(n: int, store: Path, rounds: int) -> dict[str, Any]:
    import nbmlops
    from nbmlops.store import documents, index

    nbmlops.set_store(store)
    r: dict[str, list[float]] = {}

    def open_cold() -> Any:
        index.forget()
        documents._cache.clear()
        return nbmlops.runs_browser("bench-search")

    b = nbmlops.runs_browser("bench-search")  # imports ipywidgets
    assert b.selection.total == n
    steps: list[tuple[str, Callable[[int], Any]]] = [
        ("open_cold", lambda i: open_cold()),
        ("open_warm", lambda i: nbmlops.runs_browser("bench-search")),
        ("filter", lambda i: setattr(b.query, "value", FILTERS[i % 2])),
        ("words", lambda i: setattr(b.query, "value", ("red", "blue")[i % 2])),
        ("clear", lambda i: setattr(b.query, "value", "")),
        ("sort", lambda i: setattr(b.sort, "value", ("metrics.auc", "params.depth")[i % 2])),
        ("sort_dir", lambda i: setattr(b.descending, "value", bool(i % 2))),
        ("page", lambda i: (b.next_button if i % 2 == 0 else b.prev_button).click()),
        ("page_last", lambda i: b.go(10**9 if i % 2 == 0 else 0)),
    ]
    for k in range(rounds):
        for key, fn in steps:
            wall, cpu, _ = timed(lambda fn=fn, k=k: fn(k))
            r.setdefault(key, []).append(wall)
            r.setdefault(key + "_cpu", []).append(cpu)
            assert not b.message.value, b.message.value
    nbmlops.set_store(None)
    return {key: median(v) for key, v in r.items()}


def bench_dashboard(n: int, store: Path, rounds: int) -> dict[str, Any]:
    runs = "/nbmlops/api/experiments/bench-search/runs?"
    asks = [("newest", runs + urlencode({"max_results": 50})),
            ("order", runs + urlencode({"max_results": 50, "order_by": ORDER})),
            ("filter", runs + urlencode({"max_results": 50, "filter": FILTER})),
            ("page5", runs + urlencode({"max_results": 50, "offset": 200})),
            ("filter_order_page3", runs + urlencode({"max_results": 50, "filter": FILTER, "order_by": ORDER,
                                                     "offset": 100}))]
    r: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="search-scale-") as root:
        server = start_jupyter(Path(root), store)
        try:
            cpu = group_cpu(server.proc.pid)
            wall, answer = server.ask("GET", asks[0][1])  # the server process's first read of the runs
            assert len(answer["runs"]) == 50
            r["open"], r["open_cpu"] = [wall], [group_cpu(server.proc.pid) - cpu]
            for _ in range(rounds):
                for key, path in asks:
                    cpu = group_cpu(server.proc.pid)
                    wall, answer = server.ask("GET", path)
                    r.setdefault(key, []).append(wall)
                    r.setdefault(key + "_cpu", []).append(group_cpu(server.proc.pid) - cpu)
        finally:
            server.stop()
    # the server's CPU is counted in clock ticks (10 ms): the mean over the rounds, not the median
    return {key: (sum(v) / len(v) if key.endswith("_cpu") else median(v)) for key, v in r.items()}


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1e3:.3g} ms" if seconds < 0.1 else f"{seconds * 1e3:.0f} ms"


def report(n: int, s: dict[str, Any], b: dict[str, Any], d: dict[str, Any], loads: list[str], rounds: int,
           fill: dict[str, str]) -> str:
    def ratio(mf: float, nb: float) -> str:
        return f"**{mf / nb:.0f}×**" if mf / nb >= 10 else f"{mf / nb:.1f}×"

    def both(key: str, src: dict[str, Any]) -> str:
        return f"{fmt(src[key])} ({fmt(src[key + '_cpu'])} CPU)"

    def whole(key: str, total: float) -> tuple[float, str]:
        """MLflow's time for every run: measured, or scaled from the runs its time budget covered."""
        got = s[key + "_runs"]
        if got >= total:
            return s[key], fmt(s[key])
        est = s[key] * total / got
        return est, f"≥ {fmt(est)} † ({got:,.0f} runs in {fmt(s[key])})"

    full_s, full_t = whole("mf_full", n)
    filt_s, filt_t = whole("mf_filtered", s["matching"])

    out = [SECTION.format(n=n), "", machine(PACKAGES, extra=f"Load average (1/5/15 min) at start, after the "
                                            f"searches, after the browser, at the end: {'; '.join(loads)}."), "",
           f"| `search_runs` at {n:,} runs (medians of {rounds}) | nbmlops (its CPU) | MLflow sqlite | "
           "MLflow / nbmlops | goal |", "| --- | --- | --- | --- | --- |",
           f"| all runs, first call in a process (index file read) | {both('cold', s)} | {full_t} | "
           f"{ratio(full_s, s['cold'])} | < 0.5 s |",
           f"| all runs, repeated | {both('warm', s)} | {full_t} | {ratio(full_s, s['warm'])} "
           "| < 0.1 s |",
           f"| `{FILTER}` ordered by `{ORDER}`, a page of 50, repeated | {both('page', s)} | {fmt(s['mf_page'])} "
           f"| {ratio(s['mf_page'], s['page'])} | < 50 ms |",
           f"| the same page, first call in a process | {both('page_cold', s)} | {fmt(s['mf_page'])} | "
           f"{ratio(s['mf_page'], s['page_cold'])} | — |",
           f"| the filter and order, every matching run | {both('filtered', s)} | {filt_t} | "
           f"{ratio(filt_s, s['filtered'])} | — |",
           f"| first search after the index file is deleted (reads every run document, writes the index) | "
           f"{both('rebuild', s)} | — | — | — |", "",
           f"Both tools return the same 50 runs, in the same order, for the page: {'yes' if s['same_page'] else 'NO'}. "
           "MLflow's \"every run\" rows are what `mlflow.search_runs` does (its client's `search_runs`, 1,000 runs a "
           "page, page tokens), one round, stopped after 90 s: † scaled linearly from the runs read by then, a lower "
           "bound (each page's SQL offset grows).", "",
           f"| runs browser (`runs_browser`) at {n:,} runs, medians of {rounds} | time (its CPU) | goal |",
           "| --- | --- | --- |",
           f"| open, first call in a process (index file read) | {both('open_cold', b)} | < 1 s |",
           f"| open again | {both('open_warm', b)} | < 1 s |",
           f"| apply a filter (`{FILTERS[0]}` ⇄ `{FILTERS[1]}`) | {both('filter', b)} | < 100 ms |",
           f"| find words (`red` ⇄ `blue`) | {both('words', b)} | < 100 ms |",
           f"| clear the filter (all {n:,} runs) | {both('clear', b)} | < 100 ms |",
           f"| sort by a column (`metrics.auc` ⇄ `params.depth`) | {both('sort', b)} | < 100 ms |",
           f"| flip the sort direction | {both('sort_dir', b)} | < 100 ms |",
           f"| next / previous page | {both('page', b)} | < 100 ms |",
           f"| last page and back | {both('page_last', b)} | < 100 ms |", "",
           f"| dashboard runs API at {n:,} runs (`GET /nbmlops/api/experiments/<e>/runs`, whole body read), "
           f"medians of {rounds} | time (the server's CPU, mean) | goal |", "| --- | --- | --- |",
           f"| first request of the server process (its first read of the runs) | {both('open', d)} | < 1 s |",
           f"| first page of 50, newest first | {both('newest', d)} | < 100 ms |",
           f"| a page ordered by `{ORDER}` | {both('order', d)} | < 100 ms |",
           f"| a filtered page (`{FILTER}`) | {both('filter', d)} | < 100 ms |",
           f"| page 5, newest first | {both('page5', d)} | < 100 ms |",
           f"| filtered, ordered, page 3 | {both('filter_order_page3', d)} | < 100 ms |", "",
           f"Stores (benchmarks/_fill.py, cached): nbmlops filled in {fill['nbmlops']}, MLflow sqlite in "
           f"{fill['mlflow']}; {_fill.REAL} runs through each tool's API, the rest in bulk through the store's own "
           "document writes (nbmlops: `DocFile.edit` + `Docs.insert_many`, one write per shard) and MLflow's own "
           "SQLAlchemy models (the rows `log_batch` writes).", ""]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="mlflow")
    n = args.runs
    store = _fill.nbmlops_store(n, log)
    uri, exp_id = _fill.mlflow_store(n, log)
    fill = {k: (_fill.CACHE / f"{k}-{n}" / "FILL-TIME.txt").read_text().strip() for k in ("nbmlops", "mlflow")}
    loads = [load()]
    s = bench_search(n, store, uri, exp_id, args.rounds)
    loads.append(load())
    b = bench_browser(n, store, args.rounds)
    loads.append(load())
    d = bench_dashboard(n, store, args.rounds)
    loads.append(load())
    print(report(n, s, b, d, loads, args.rounds, fill))
    return 0


if __name__ == "__main__":
    sys.exit(main())
