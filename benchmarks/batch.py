"""Batch prediction benchmark: ``nbmlops.batch_predict`` on a Parquet file of 10,000,000 rows × 20 features.

    python benchmarks/batch.py                  # full run (~7 min on 2 cores), writes benchmarks/RESULTS.md
    python benchmarks/batch.py --quick          # 1,000,000 rows (< 90 s), prints the table only
    python benchmarks/batch.py --quick --results PATH   # ... and writes the section into PATH
    python benchmarks/batch.py --profile        # cProfile of batch_predict(parallelism=1) in-process, 1,000,000 rows

Everything lives in a fresh folder under ``benchmarks/.work/`` (removed at the end): a store where a
scikit-learn LogisticRegression on 20 features (fitted on a DataFrame, fixed seed) is registered as
``bench/1``, and the input, generated chunk by chunk with a fixed seed (the whole array is never in
memory) and written as Parquet in row groups of 100,000 rows. Each measurement is one job in a fresh
subprocess:

- ``batch_predict("bench/1", input, output, parallelism=1 or 2, chunk_rows=C, progress=False)``;
  rows/s = input rows / the call's wall time (model load, worker start-up and the final join included);
- the floor, for context: the same file read in the same chunks with pyarrow
  (``iter_batches`` + ``to_pandas``) and ``model.predict_proba`` on each, writing nothing;
- peak memory: the sum of the RSS of the job's process tree (the job and its workers), polled from
  /proc every 25 ms, with the job's own and its largest worker's ``ru_maxrss``; for chunk sizes of
  50,000, 100,000 and 500,000 rows, and (full run) for 3,000,000 against 10,000,000 input rows, to
  show memory follows the chunk size and not the input size.

Throughput rounds are interleaved (floor, parallelism 1, parallelism 2, order reversed every other
round) and reported as medians. Every output is checked: as many rows as the input, ``row`` = 0…N-1
in order, one model version, no rejects, and predictions and probabilities equal to the model's own
``predict_proba`` on the same input rows. A per-chunk breakdown of where the time of
``parallelism=1`` goes is measured in-process with nbmlops' own functions.

Only the section "## Batch prediction (benchmarks/batch.py)" of RESULTS.md is replaced; other sections stay.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

if __package__:  # python -m benchmarks.batch
    from ._common import log, machine, publish
else:  # python benchmarks/batch.py
    from _common import log, machine, publish

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
RESULTS = HERE / "RESULTS.md"
PACKAGES = ("nbmlops", "scikit-learn", "numpy", "pandas", "pyarrow", "tqdm")
SECTION = "## Batch prediction (benchmarks/batch.py)"

FEATURES = 20
SEED = 0
GEN_ROWS = 100_000  # rows generated at a time = rows per Parquet row group
FULL = dict(rows=10_000_000, small_rows=3_000_000, chunk=100_000, mem_chunks=(50_000, 500_000), rounds=3,
            breakdown_reps=5)
QUICK = dict(rows=1_000_000, small_rows=None, chunk=100_000, mem_chunks=(500_000,), rounds=1,
             breakdown_reps=3)
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")
COLUMNS = [f"x{i:02d}" for i in range(FEATURES)]


# -- data and model -------------------------------------------------------------------------------
def make_model() -> Any:
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    X, y = make_classification(n_samples=20_000, n_features=FEATURES, n_informative=10, random_state=SEED)
    return LogisticRegression(max_iter=1_000).fit(pd.DataFrame(X.astype(np.float64), columns=COLUMNS), y)


def generate(path: Path, rows: int) -> None:
    """rows × 20 float64 columns, GEN_ROWS at a time (one row group each), from a fixed seed:
    a smaller file is the first rows of a bigger one."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(SEED)
    schema = pa.schema([(c, pa.float64()) for c in COLUMNS])
    tmp = path.with_name(f".{path.name}.tmp")
    with pq.ParquetWriter(tmp, schema) as writer:
        for start in range(0, rows, GEN_ROWS):
            block = rng.normal(0.0, 2.0, size=(min(GEN_ROWS, rows - start), FEATURES))
            writer.write_table(pa.Table.from_arrays([pa.array(block[:, i]) for i in range(FEATURES)], schema=schema),
                               row_group_size=GEN_ROWS)
    os.replace(tmp, path)


# -- one job, in its own process ------------------------------------------------------------------
def rss_self() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE


def job(spec: dict[str, Any]) -> dict[str, Any]:
    """Run in a fresh interpreter: one floor pass or one batch_predict call; returns its figures."""
    import resource

    import numpy  # noqa: F401  (imported before the baseline RSS, as the job itself would)
    import pandas  # noqa: F401
    import pyarrow.parquet as pq
    import sklearn.linear_model  # noqa: F401

    import nbmlops
    from nbmlops.registry import get_model_version

    nbmlops.set_store(spec["store"])
    r: dict[str, Any] = {"baseline_rss": rss_self()}
    before = resource.getrusage(resource.RUSAGE_SELF)
    if spec["kind"] == "floor":
        est = get_model_version(spec["uri"]).load_estimator()
        rows = 0
        t = time.perf_counter()
        # pre_buffer=False as nbmlops' reader (_chunks) opens the file; True (pyarrow's default) for context
        reader = pq.ParquetFile(spec["input"], pre_buffer=spec["pre_buffer"])
        for batch in reader.iter_batches(batch_size=spec["chunk"]):
            est.predict_proba(batch.to_pandas())
            rows += batch.num_rows
        r["elapsed"] = time.perf_counter() - t
        r["rows"] = rows
    else:
        from nbmlops.serving import batch as B

        join_time = [0.0]
        join = B._join

        def timed_join(*a: Any, **k: Any) -> Any:  # measures the final join; nbmlops' own code runs unchanged
            t0 = time.perf_counter()
            try:
                return join(*a, **k)
            finally:
                join_time[0] += time.perf_counter() - t0

        B._join = timed_join
        t = time.perf_counter()
        res = nbmlops.batch_predict(spec["uri"], spec["input"], spec["output"], parallelism=spec["parallelism"],
                                    chunk_rows=spec["chunk"], progress=False)
        r["elapsed"] = time.perf_counter() - t
        r["join"] = join_time[0]
        r["result"] = dict(res)
        r["rows"] = res["rows"]
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    r["cpu_total"] = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    # CPU of the measured part: this process since the baseline, and its workers (reaped by then)
    r["cpu"] = own.ru_utime + own.ru_stime - before.ru_utime - before.ru_stime + kids.ru_utime + kids.ru_stime
    return r


class TreeRSS:
    """Polls the summed RSS of a process and its descendants (tree re-read every 0.5 s, RSS every 25 ms)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self.samples = pid, 0, 0
        self.per_pid: dict[int, int] = {}  # each process's own peak (ru_maxrss would not do: Linux carries it
        # across fork+exec, so a child started by a big parent reports the parent's size)
        self.pids = [pid]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
        out, todo = [], [self.pid]
        while todo:
            p = todo.pop()
            out.append(p)
            todo.extend(children.get(p, []))
        return out

    def _run(self) -> None:
        last_tree = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now - last_tree > 0.5:
                self.pids, last_tree = self._tree(), now
            total = 0
            for p in self.pids:
                try:
                    rss = int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE
                except (OSError, IndexError, ValueError):
                    continue
                total += rss
                self.per_pid[p] = max(self.per_pid.get(p, 0), rss)
            self.peak = max(self.peak, total)
            self.samples += 1
            self._stop.wait(0.025)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def machine_cpu() -> float:
    """Busy CPU seconds of the whole machine so far, all cores."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(v) - v[3] - v[4]) / TICK


def run_job(spec: dict[str, Any]) -> dict[str, Any]:
    load, busy0, t0 = os.getloadavg()[0], machine_cpu(), time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--job", json.dumps(spec)],
                            stdout=subprocess.PIPE, text=True, cwd=spec["cwd"])
    poll = TreeRSS(proc.pid)
    out, _ = proc.communicate()
    peak = poll.stop()
    wall, busy = time.perf_counter() - t0, machine_cpu() - busy0
    if proc.returncode != 0:
        raise RuntimeError(f"job {spec} failed with exit code {proc.returncode}")
    r = json.loads(out.strip().splitlines()[-1])
    r["peak_job"] = poll.per_pid.get(proc.pid, 0)
    r["peak_worker"] = max((v for k, v in poll.per_pid.items() if k != proc.pid), default=0)
    r.update(peak_tree=peak, wall=wall, load=load, others=max(0.0, busy - r["cpu_total"]) / wall, spec=spec,
             rows_per_s=r["rows"] / r["elapsed"])
    return r


# -- correctness ----------------------------------------------------------------------------------
def check_output(inp: Path, out: Path, rows: int, est: Any, result: dict[str, Any]) -> dict[str, Any]:
    """Stream input and output side by side: count, order, version, no rejects, same predictions as the model."""
    import numpy as np
    import pyarrow.parquet as pq

    problems: list[str] = []
    pf = pq.ParquetFile(out)
    cols = pf.schema_arrow.names
    if cols != ["row", "prediction", "probability", "model_version"]:
        problems.append(f"output columns {cols}")
    if pf.metadata.num_rows != rows:
        problems.append(f"output has {pf.metadata.num_rows:,} rows, input {rows:,}")
    if result.get("rejected") or result.get("scored") != rows:
        problems.append(f"scored {result.get('scored')}, rejected {result.get('rejected')}")
    rejects = Path(result["rejects"])
    if rejects.exists():
        problems.append(f"a rejects file exists ({pq.ParquetFile(rejects).metadata.num_rows} rows)")
    seen, worst, classes = 0, 0.0, est.classes_
    src = pq.ParquetFile(inp, pre_buffer=False)  # pyarrow's default pre-buffering would hold the whole file
    out_pf = pq.ParquetFile(out, pre_buffer=False)
    for a, b in zip(src.iter_batches(batch_size=GEN_ROWS), out_pf.iter_batches(batch_size=GEN_ROWS)):
        if a.num_rows != b.num_rows:
            problems.append("batches out of step")
            break
        proba = est.predict_proba(a.to_pandas())
        got = b.to_pandas()
        if not np.array_equal(got["row"].to_numpy(), np.arange(seen, seen + len(got))):
            problems.append(f"rows out of order near {seen:,}")
            break
        if not (got["model_version"] == 1).all():
            problems.append(f"model_version not 1 near {seen:,}")
            break
        if not np.array_equal(got["prediction"].to_numpy(), classes[proba.argmax(axis=1)]):
            problems.append(f"predictions differ from the model's near row {seen:,}")
            break
        worst = max(worst, float(np.abs(got["probability"].to_numpy() - proba.max(axis=1)).max()))
        seen += len(got)
    if worst > 1e-9:
        problems.append(f"probabilities differ from the model's by up to {worst:.3g}")
    if seen != rows and not problems:
        problems.append(f"compared {seen:,} of {rows:,} rows")
    return {"ok": not problems, "problems": problems, "max_abs_diff": worst}


# -- where the time of parallelism=1 goes ---------------------------------------------------------
def breakdown(store: Path, inp: Path, chunk: int, reps: int, scratch: Path) -> dict[str, Any]:
    """Per chunk of ``chunk`` rows, in this process, nbmlops' own functions timed one by one (medians)."""
    import pickle

    import nbmlops
    from nbmlops.serving import batch_io as IO, batch_score as S
    from nbmlops.serving.model import ServedModel

    nbmlops.set_store(store)
    model = ServedModel("bench/1")
    est = model.estimator

    def med(fn: Any) -> float:
        """Median CPU time of this process (steady under the machine's other load, unlike wall time)."""
        fn()
        times = []
        for _ in range(reps):
            t = time.process_time()
            fn()
            times.append(time.process_time() - t)
        return statistics.median(times)

    def peak(fn: Any) -> int:
        """Peak bytes allocated while fn runs, beyond what was allocated before (tracemalloc: Python objects
        and NumPy buffers; pyarrow's own pool is not traced)."""
        import gc
        import tracemalloc

        gc.collect()
        tracemalloc.start()
        try:
            fn()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    def read() -> Any:
        return IO.ParquetRows(inp, use_threads=True).read(0, chunk)  # a fresh reader: no row group cached

    table = read()
    df = table.to_pandas()
    scratch.mkdir(parents=True, exist_ok=True)
    X = df[model.schema.features]  # one float64 block, as score_table builds it

    def predict_proba() -> Any:
        with S._finite_checked():  # as score_table calls it: the values were checked finite just before
            return est.predict_proba(X)

    out, _ = S.score_table(model, table, 0)
    writer = IO._ParquetOut(scratch / "out.parquet", out.schema)
    r: dict[str, Any] = {"chunk": chunk}
    r["read"] = med(read)
    r["score"] = med(lambda: S.score_table(model, table, 0))
    r["predict_proba"] = med(predict_proba)
    r["general"] = med(lambda: S.score_pandas(model, table.to_pandas(), 0))
    r["write_part"] = med(lambda: IO.write_part(out, scratch / "part.parquet"))
    r["append"] = med(lambda: writer.write_table(out))
    writer.close()
    r["pickle_mb"] = len(pickle.dumps(df, protocol=pickle.HIGHEST_PROTOCOL)) / 2**20
    r["pickle"] = med(lambda: pickle.loads(pickle.dumps(df, protocol=pickle.HIGHEST_PROTOCOL)))
    r.update(pool_costs(store, df))
    for key, fn in (("predict_proba", predict_proba), ("score", lambda: S.score_table(model, table, 0)),
                    ("general", lambda: S.score_pandas(model, table.to_pandas(), 0))):
        r[f"{key}_peak"] = peak(fn)
    r["chunk_bytes"] = int(df.memory_usage(index=False).sum())
    shutil.rmtree(scratch)
    return r


def pool_costs(store: Path, df: Any, sends: int = 50) -> dict[str, float]:
    """What parallelism=2 adds, in CPU seconds of this process and its worker: starting the pool exactly as
    batch_predict does (1 spawned interpreter that imports nbmlops and loads the model), and sending chunks to
    the worker through the pool (pickle, pipe, unpickle) with a task that does nothing else (``len``)."""
    import resource
    from concurrent.futures import ProcessPoolExecutor, wait

    from nbmlops.serving import batch as B, batch_score as S

    def cpu() -> float:
        return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                      resource.getrusage(resource.RUSAGE_CHILDREN)))

    def run(n: int) -> tuple[float, float]:
        """CPU of this process and the pool's worker (reaped at shutdown) for start-up + n sends; wall time."""
        c, t = cpu(), time.perf_counter()
        pool = ProcessPoolExecutor(1, initializer=S.init, initargs=(str(store), "bench/1", 1), mp_context=B._spawn())
        wait([pool.submit(time.sleep, 1.0)])  # the worker is up (the sleep costs no CPU)
        for _ in range(n):
            pool.submit(len, df).result()
        pool.shutdown()
        return cpu() - c, time.perf_counter() - t

    start, wall = run(0)
    total, _ = run(sends)
    return {"pool_start": start, "pool_start_wall": wall - 1.0, "send": max(0.0, total - start) / sends}


def profile(S: dict[str, Any], root: Path, store: Path) -> None:
    import cProfile
    import pstats

    import nbmlops

    inp = root / "profile.parquet"
    generate(inp, 1_000_000)
    nbmlops.set_store(store)
    prof = cProfile.Profile()
    prof.enable()
    nbmlops.batch_predict("bench/1", inp, root / "profile-out.parquet", parallelism=1, chunk_rows=S["chunk"],
                          progress=False)
    prof.disable()
    stats = pstats.Stats(prof, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats("nbmlops", 25)


# -- report ---------------------------------------------------------------------------------------
def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def secs(s: float) -> str:
    return f"{s:.2f} s" if s >= 1 else f"{s * 1e3:.3g} ms" if s >= 1e-3 else f"{s * 1e6:.3g} µs"


def rate(x: float) -> str:
    return f"{x / 1e6:.2f} M" if x >= 1e6 else f"{x / 1e3:,.0f} k"


def label(spec: dict[str, Any]) -> str:
    if spec["kind"] == "floor":
        return ("floor: pyarrow chunks + `predict_proba`, writes nothing" if not spec["pre_buffer"] else
                "floor, reading with pyarrow's default `pre_buffer=True`")
    if spec["parallelism"] is None:
        return "`batch_predict`, parallelism not given (chosen by `choose_parallelism`)"
    return f"`batch_predict`, parallelism={spec['parallelism']}"


def report(S: dict[str, Any], info: dict[str, Any], tput: dict[str, list[dict[str, Any]]],
           mem: list[dict[str, Any]], bd: dict[str, Any], checks: list[dict[str, Any]], quick: bool,
           wall: float) -> tuple[str, list[tuple[str, bool, str]]]:
    N, C = S["rows"], S["chunk"]
    out = [SECTION, "", machine(PACKAGES, f"Mode: {'--quick (1,000,000 rows)' if quick else 'full'}."), "",
           f"Input: {N:,} rows × {FEATURES} float64 features, Parquet (snappy, {info['row_groups']} row groups of "
           f"{GEN_ROWS:,} rows, {mib(info['input_bytes'])} on disk; {info['gen_time']:.0f} s to generate). Model: "
           "scikit-learn `LogisticRegression` on 20 named features, registered as `bench/1`. Output: Parquet "
           f"({mib(info['output_bytes'])}). 1-minute load average at start / end: {info['load'][0]:.1f} / "
           f"{info['load'][1]:.1f} (the machine is shared; above ~1, other work competed for the 2 cores).", "",
           f"### Throughput: {N:,} rows, chunks of {C:,} rows, median of {S['rounds']} interleaved rounds", "",
           "| job | rows/s | time | vs floor | vs parallelism=1 | CPU, all its processes | CPU per row | "
           "cores busy (CPU / time) | peak RSS, process tree | other work on the machine |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    med = {k: statistics.median(r["rows_per_s"] for r in v) for k, v in tput.items()}
    for key in (k for k in ("floor", "floor_prebuf", "p1", "p2", "auto") if k in tput):
        runs = tput[key]
        t = statistics.median(r["elapsed"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        vs_floor = "—" if key == "floor" else f"**{med[key] / med['floor']:.2f}×**" if key == "p1" else \
            f"{med[key] / med['floor']:.2f}×"
        vs_p1 = f"**{med[key] / med['p1']:.2f}×**" if key in ("p2", "auto") else "—"
        out.append(f"| {label(runs[0]['spec'])} | {rate(med[key])}/s | {secs(t)} | {vs_floor} | {vs_p1} | "
                   f"{secs(cpu)} | {statistics.median(r['cpu'] / r['rows'] for r in runs) * 1e9:,.0f} ns | "
                   f"{statistics.median(r['cpu'] / r['elapsed'] for r in runs):.2f} | "
                   f"{mib(max(r['peak_tree'] for r in runs))} | "
                   f"{statistics.median(r['others'] for r in runs):.2f} cores |")
    out += ["", "Every run (rows/s, in round order): " + "; ".join(
        f"{k}: " + ", ".join(rate(r["rows_per_s"]) for r in v) for k, v in tput.items()) + ". "
        "\"Other work on the machine\": the machine's busy CPU during the job minus the job's own, per second "
        "(out of 2 cores). Closing the output at the end (`_join`: the chunks are appended to it in order as they "
        "finish; inside the times above): "
        + ", ".join(f"{k} {secs(statistics.median(r['join'] for r in tput[k]))}" for k in ("p1", "p2", "auto")
                    if k in tput) + "."
        + (" Parallelism chosen when not given: " + ", ".join(str(r["result"]["parallelism"]) for r in tput["auto"])
           + " (1-minute load average at each job's start: "
           + ", ".join(f"{r['load']:.1f}" for r in tput["auto"]) + ")." if "auto" in tput else ""), ""]

    out += ["### Peak memory against chunk size and input size", "",
            "| job | chunk rows | input rows | peak RSS, process tree | job process alone | "
            "largest worker | rows/s |", "| --- | --- | --- | --- | --- | --- | --- |"]
    order = {"floor": 0, "floor_prebuf": 1, "p1": 2, "p2": 3, "auto": 4}
    for r in sorted(mem, key=lambda r: (order[r["key"]], r["spec"]["chunk"], r["spec"]["rows"])):
        worker = mib(r["peak_worker"]) if r["key"] == "p2" else "—"
        out.append(f"| {label(r['spec'])} | {r['spec']['chunk']:,} | {r['spec']['rows']:,} | {mib(r['peak_tree'])} | "
                   f"{mib(r['peak_job'])} | {worker} | {rate(r['rows_per_s'])}/s |")
    base = statistics.median(r["baseline_rss"] for r in mem)
    out += ["", f"A job process holds {mib(base)} before it starts (Python, pandas, pyarrow, scikit-learn, "
            "nbmlops imported); the parallelism=2 worker is a spawned interpreter of about that size, and the "
            "tree also counts multiprocessing's resource tracker. RSS of each process of the tree read from /proc every "
            "25 ms: the tree's peak sum, and each process's own peak. nbmlops' reader (`ParquetRows`) and the floor open the "
            "file with `pre_buffer=False`; the second floor shows why: with pyarrow's default `pre_buffer=True`, "
            "`iter_batches` keeps the pre-buffered bytes of every row group already read until the file is closed "
            "(arrow's `ReadRangeCache` has no eviction: apache/arrow#39808, #6744), so memory follows the input size.",
            ""]

    per_row = bd["chunk"]
    rest = bd["score"] - bd["predict_proba"]
    out += [f"### Where the time goes (parallelism=1, per chunk of {per_row:,} rows, in-process)", "",
            "| step (nbmlops function) | thread | CPU time per chunk | CPU ns per row | "
            "peak memory allocated, bytes per row |",
            "| --- | --- | --- | --- | --- |"]
    steps = [
        (("read the chunk's row groups (`batch_io.ParquetRows.read`: pyarrow `read_row_groups`, no pandas; with "
          "parallelism ≥ 2 each worker reads its own chunks the same way)"), "reader, one chunk ahead", bd["read"],
         bd["chunk_bytes"]),
        ("score it (`batch_score.score_table`: float64 block from the arrow columns, finite check, DataFrame "
         "over the block without a copy, `predict_proba`, arrow output table)", "job's main", bd["score"],
         bd["score_peak"]),
        ("  of which the estimator's `predict_proba` (on the chunk's 20 columns)", "", bd["predict_proba"],
         bd["predict_proba_peak"]),
        ("  of which the rest (input block, finite check, top class, output table)", "", rest, None),
        ("write the chunk's part file (`batch_io.write_part`: plain Parquet, read back only on resume)", "writer",
         bd["write_part"], None),
        ("append the chunk to OUTPUT (`OrderedOutput`: snappy Parquet, dictionaries for `prediction` and "
         "`model_version`)", "writer", bd["append"], None),
        ("for comparison: the general path a chunk with ±inf, NaN, text or a refused row takes "
         "(`to_pandas` + `batch_score.score_pandas`; the whole of the old `_score` but the write)", "job's main",
         bd["general"], bd["general_peak"]),
        ("parallelism ≥ 2 with CSV or JSON Lines input (not Parquet): sending the chunk to a worker "
         f"(`pool.submit(len, chunk)`: pickle, pipe, unpickle; {bd['pickle_mb']:.1f} MiB pickled), CPU of both ends",
         "job's main", bd["send"], None),
        ("&nbsp;&nbsp;of which pickling + unpickling alone", "", bd["pickle"], None),
    ]
    for name, thread, sec, mem_b in steps:
        m = "—" if mem_b is None else f"{mem_b / per_row:,.0f}"
        out.append(f"| {name.replace('  ', '&nbsp;&nbsp;')} | {thread} | {secs(sec)} | {sec / per_row * 1e9:,.0f} | "
                   f"{m} |")
    out.append(f"| parallelism ≥ 2 only, once per job: starting a spawned worker as `batch_predict` does "
               f"(an interpreter importing nbmlops, pandas, pyarrow, scikit-learn, then loading the model; the job's "
               f"process scores meanwhile) | worker | {secs(bd['pool_start'])} ({secs(bd['pool_start_wall'])} wall) "
               "| — | — |")
    out += ["", f"CPU times of this process (medians of {S['breakdown_reps']}), steadier than wall times on a shared "
            "machine. Peak memory: tracemalloc's peak during the call (Python objects and NumPy buffers, not "
            f"pyarrow's pool), per row; the chunk itself is {bd['chunk_bytes'] / per_row:.0f} bytes per row. The "
            "reader and writer threads run while the main thread scores (pyarrow decodes and encodes without the "
            "GIL), so with parallelism=1 a job keeps up to about two cores busy.", ""]

    targets: list[tuple[str, bool, str]] = []
    bad = [c for c in checks if not c["ok"]]
    targets.append((f"every output correct ({len(checks)} outputs: {N:,} rows, `row` 0…N-1 in order, version 1, "
                    "no rejects, predictions equal to the model's)", not bad,
                    "all correct, probabilities within "
                    f"{max(c['max_abs_diff'] for c in checks):.1g}" if not bad else
                    "; ".join(p for c in bad for p in c["problems"])))
    targets.append(("parallelism=1 ≥ 0.7× the floor", med["p1"] >= 0.7 * med["floor"],
                    f"{med['p1'] / med['floor']:.2f}×"))
    targets.append(("parallelism=2 ≥ 1.6× parallelism=1", med["p2"] >= 1.6 * med["p1"],
                    f"{med['p2'] / med['p1']:.2f}×"))
    if "auto" in tput:
        targets.append(("parallelism not given: never slower than parallelism=1 (within 5%)",
                        med["auto"] >= 0.95 * med["p1"], f"{med['auto'] / med['p1']:.2f}×"))
    nb_mem = [r for r in mem if r["key"] in ("p1", "p2")]
    chunks = sorted({r["spec"]["chunk"] for r in nb_mem})
    grows = all(
        max(r["peak_tree"] for r in nb_mem if r["key"] == k and r["spec"]["chunk"] == chunks[-1]) >
        max(r["peak_tree"] for r in nb_mem if r["key"] == k and r["spec"]["chunk"] == chunks[0])
        for k in ("p1", "p2") if any(r["key"] == k for r in nb_mem))
    targets.append((f"peak memory grows with the chunk size ({chunks[0]:,} → {chunks[-1]:,} rows)", grows,
                    ", ".join(f"{k}: {mib(min(r['peak_tree'] for r in nb_mem if r['key'] == k and r['spec']['chunk'] == chunks[0]))}"
                              f" → {mib(max(r['peak_tree'] for r in nb_mem if r['key'] == k and r['spec']['chunk'] == chunks[-1]))}"
                              for k in ("p1", "p2"))))
    if S["small_rows"]:
        diffs = []
        for r in nb_mem:
            if r["spec"]["rows"] != S["small_rows"]:
                continue
            big = [b for b in nb_mem if b["key"] == r["key"] and b["spec"]["chunk"] == r["spec"]["chunk"]
                   and b["spec"]["rows"] == N]
            if big:
                diffs.append((r["key"], r["spec"]["chunk"], r["peak_tree"], max(b["peak_tree"] for b in big)))
        ok = all(b <= 1.15 * s for _, _, s, b in diffs)
        targets.append((f"peak memory does not grow with the input ({S['small_rows']:,} → {N:,} rows, same chunk size;"
                        " within 15%)", ok,
                        ", ".join(f"{k} chunk {c:,}: {mib(s)} → {mib(b)}" for k, c, s, b in diffs)))
    out += ["| check | measured | status |", "| --- | --- | --- |"]
    out += [f"| {t} | {v} | {'pass' if ok else '**FAIL**'} |" for t, ok, v in targets]
    out += ["", f"Whole benchmark: {wall:.0f} s.", ""]
    return "\n".join(out), targets


# -- main -----------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1,000,000 rows, one round (< 90 s)")
    ap.add_argument("--results", type=Path, default=None,
                    help="markdown file to update (default: benchmarks/RESULTS.md for a full run; "
                         "a --quick run only prints its table unless this is given)")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of batch_predict(parallelism=1) "
                    "on 1,000,000 rows, in-process, and stop")
    ap.add_argument("--rounds", type=int, default=None, help="throughput rounds (default: 3, --quick: 1)")
    ap.add_argument("--mem-chunks", default=None, help="chunk sizes of the memory runs, comma-separated "
                    "(default 50000,500000; --quick: 500000; empty: none)")
    ap.add_argument("--skip-prebuf", action="store_true", help="leave out the floor with pre_buffer=True "
                    "(slow, 2+ GiB; it only shows why nbmlops reads with pre_buffer=False)")
    ap.add_argument("--job", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.job:
        print(json.dumps(job(json.loads(args.job))))
        return 0
    S = dict(QUICK if args.quick else FULL)
    if args.rounds:
        S["rounds"] = args.rounds
    if args.mem_chunks is not None:
        S["mem_chunks"] = tuple(int(c) for c in args.mem_chunks.split(",") if c)
    out = args.results if args.results is not None else (None if args.quick or args.profile else RESULTS)
    N = S["rows"]

    t0 = time.perf_counter()
    WORK.mkdir(exist_ok=True)
    need = (N + (S["small_rows"] or 0)) * FEATURES * 8 * 1.3 + N * 64  # input(s) + output + its parts, with slack
    free = shutil.disk_usage(WORK).free
    if free < need:
        log(f"only {free / 2**30:.1f} GiB free under {WORK}; this run needs about {need / 2**30:.1f} GiB")
        return 1
    root = Path(tempfile.mkdtemp(prefix="batch-", dir=WORK))
    load0 = os.getloadavg()[0]
    try:
        import pyarrow.parquet as pq

        import nbmlops

        store = root / "store"
        nbmlops.set_store(store)
        model = make_model()
        nbmlops.register_model(model, "bench")
        log(f"registered bench/1 in {store}")
        if args.profile:
            profile(S, root, store)
            return 0

        info: dict[str, Any] = {}
        inp = root / f"input-{N}.parquet"
        t = time.perf_counter()
        generate(inp, N)
        info["gen_time"] = time.perf_counter() - t
        info["input_bytes"] = inp.stat().st_size
        info["row_groups"] = pq.ParquetFile(inp).metadata.num_row_groups
        log(f"generated {N:,} rows: {mib(info['input_bytes'])} in {info['gen_time']:.1f} s")
        inputs = {N: inp}
        if S["small_rows"]:
            inputs[S["small_rows"]] = root / f"input-{S['small_rows']}.parquet"
            generate(inputs[S["small_rows"]], S["small_rows"])

        checks: list[dict[str, Any]] = []
        info["output_bytes"] = 0

        def one(key: str, rows: int, chunk: int) -> dict[str, Any]:
            spec = {"kind": "floor" if key.startswith("floor") else "nbmlops", "pre_buffer": key == "floor_prebuf",
                    "parallelism": {"p1": 1, "p2": 2, "auto": None}.get(key, 1),
                    "chunk": chunk, "rows": rows, "input": str(inputs[rows]), "output": str(root / "out.parquet"),
                    "store": str(store), "uri": "bench/1", "cwd": str(root)}
            r = run_job(spec)
            r["key"] = key
            assert r["rows"] == rows, (r["rows"], rows)
            msg = ""
            if spec["kind"] != "floor":
                outp = Path(spec["output"])
                info["output_bytes"] = max(info["output_bytes"], outp.stat().st_size)
                c = check_output(inputs[rows], outp, rows, model, r["result"])
                checks.append(c)
                msg = ", output correct" if c["ok"] else f", OUTPUT WRONG: {'; '.join(c['problems'])}"
                outp.unlink()
                Path(r["result"]["rejects"]).unlink(missing_ok=True)
            log(f"{key} chunk {chunk:,} rows {rows:,}: {r['rows_per_s']:,.0f} rows/s ({r['elapsed']:.1f} s), peak tree "
                f"{mib(r['peak_tree'])}, others {r['others']:.2f} cores{msg}")
            return r

        keys = ["floor", *([] if args.skip_prebuf else ["floor_prebuf"]), "p1", "p2", "auto"]
        tput: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
        for rnd in range(S["rounds"]):
            for key in (keys if rnd % 2 == 0 else keys[::-1]):
                tput[key].append(one(key, N, S["chunk"]))
        mem = [r for v in tput.values() for r in v]
        for chunk in S["mem_chunks"]:
            for rows in sorted(inputs):
                for key in keys:
                    if key == "auto" or key.startswith("floor") and not S["small_rows"]:  # quick: no floor here
                        continue
                    mem.append(one(key, rows, chunk))
        # one entry per (job, chunk, input): the throughput runs at the default chunk count once, with their max
        seen: dict[tuple[str, int, int], dict[str, Any]] = {}
        for r in mem:
            k = (r["key"], r["spec"]["chunk"], r["spec"]["rows"])
            if k not in seen or r["peak_tree"] > seen[k]["peak_tree"]:
                seen[k] = r
        log("timing the steps of parallelism=1 on one chunk")
        bd = breakdown(store, inp, S["chunk"], S["breakdown_reps"], root / "scratch")
        info["load"] = (load0, os.getloadavg()[0])
    finally:
        shutil.rmtree(root, ignore_errors=True)
        try:
            WORK.rmdir()  # only if no other benchmark is using it
        except OSError:
            pass
    text, targets = report(S, info, tput, list(seen.values()), bd, checks, args.quick, time.perf_counter() - t0)
    failed = [t for t, ok, _ in targets if not ok]
    publish(text, out, SECTION, failed, what="checks failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
