"""Batch prediction jobs: score a file in chunks, in this process and N-1 workers, resumable and lossless.

Chunks of ``chunk_rows`` rows are read by a thread one chunk ahead of the scoring (memory is bounded
by the chunk size, not the file; pyarrow decodes without holding the GIL) and scored in this process;
with parallelism ≥ 2, worker processes (each loads the model once, hash verified) score chunks too,
whichever is free taking the next. With Parquet input each worker reads its own chunks' row groups
(shipping chunks to workers costs more than it saves); CSV and JSON Lines are parsed here and sent.
Each chunk's predictions and rejects are written as files in ``OUTPUT.parts/`` (rejects first, then
predictions, each by atomic rename): a chunk whose predictions file exists is done, so a rerun after
a crash skips it. A failed chunk is retried up to ``max_retries`` times. As chunks finish they are
appended in input order to OUTPUT and OUTPUT's rejects file (written in the parts folder, moved into
place at the end), and every input row is checked to be in exactly one.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from ..errors import InvalidInput, ServingError
from ..registry import get_model_version
from ..store import current_store
from . import batch_score as score
from .batch_io import Behind, OrderedOutput, ParquetRows, ReadAhead, file_format, parquet_rows, part_path, text_chunks
from .model import ServedModel

MIN_ROWS_PER_PROCESS = 2_000_000  # below this, starting a worker (≈1.5 s of CPU) costs more than it saves
CORES_PER_PROCESS = 2  # a scoring process keeps about two cores busy: its reader and writer threads overlap it


def choose_parallelism(rows: int | None, fmt: str, cpus: int | None = None, load: float | None = None) -> int:
    """The parallelism ``batch_predict`` uses when not given: 1 for CSV and JSON Lines (parsed in this
    process, which is the bottleneck) and for Parquet under ``MIN_ROWS_PER_PROCESS`` rows per process;
    else one process per ``CORES_PER_PROCESS`` idle cores (``cpus`` minus the 1-minute load average)."""
    if fmt != "parquet" or not rows:
        return 1
    cpus = cpus or _cpus()
    load = os.getloadavg()[0] if load is None else load
    return max(1, min(int((cpus - load) // CORES_PER_PROCESS), rows // MIN_ROWS_PER_PROCESS))


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class BatchResult(dict):
    def __repr__(self) -> str:
        return (f"batch job {self['model']}/{self['version']}: {self['rows']} rows → {self['scored']} scored "
                f"({self['output']}), {self['rejected']} rejected ({self['rejects']}); "
                f"{self['chunks_skipped']} of {self['chunks']} chunks were already done")


def batch_predict(model_uri: str, input: str | os.PathLike[str], output: str | os.PathLike[str],
                  parallelism: int | None = None, max_retries: int = 3, chunk_rows: int = 100_000,
                  progress: bool | Callable[[int, int | None], None] = True) -> BatchResult:
    """Score ``input`` (CSV, Parquet or JSON Lines) into ``output`` in input order (``row``,
    ``prediction``, [``probability``], ``model_version``); rows that cannot be scored go to
    ``OUTPUT.rejects.parquet`` with the reason. Rerun after a crash to resume.

    ``parallelism``: processes scoring (this one and parallelism - 1 workers); by default chosen from the
    input's format and size and the idle cores (``choose_parallelism``).
    ``progress``: a tqdm bar (True), none (False), or a function called with (rows done, total rows or None)."""
    src, dst = Path(input), Path(output)
    in_fmt, out_fmt = file_format(src, "input"), file_format(dst, "output")
    if not src.is_file():
        raise InvalidInput(f"input {str(src)!r} does not exist")
    for name, value, low in (("parallelism", 1 if parallelism is None else parallelism, 1),
                             ("chunk_rows", chunk_rows, 1), ("max_retries", max_retries, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidInput(f"{name} must be an integer ≥ {low}, got {value!r}")
    version = get_model_version(model_uri)
    uri = f"{version.name}/{version.version}"
    parts = dst.with_name(dst.name + ".parts")
    rejects_path = dst.with_name(dst.stem + ".rejects.parquet")
    stat = src.stat()
    manifest = {"model": version.name, "version": version.version, "sha256": version.sha256,
                "input": str(src.resolve()), "input_size": stat.st_size, "input_mtime_ns": stat.st_mtime_ns,
                "chunk_rows": chunk_rows}
    mfile = parts / "manifest.json"
    if mfile.exists():
        old = json.loads(mfile.read_text())
        if {k: old.get(k) for k in manifest} != manifest:
            raise InvalidInput(f"{parts} holds an unfinished job with another model, input or chunk size; "
                               "remove it to start over")
    else:
        parts.mkdir(parents=True, exist_ok=True)
        mfile.write_text(json.dumps(manifest))
    total = parquet_rows(src) if in_fmt == "parquet" else None
    job = _Job(ServedModel(uri), str(current_store(create=False).root), src, in_fmt, parts, max_retries,
               parallelism or choose_parallelism(total, in_fmt), _bar(progress, src, total))
    plan = [(s, min(chunk_rows, total - s)) for s in range(0, total, chunk_rows)] if total is not None else []
    out = OrderedOutput(parts, dst, out_fmt, rejects_path, plan)
    try:
        job.run(out, plan, chunk_rows)
        scored, rejected = _join(out, len(plan), sum(n for _, n in plan))
    finally:
        out.close()
    shutil.rmtree(parts)
    return BatchResult(model=version.name, version=version.version, rows=sum(n for _, n in plan), scored=scored,
                       rejected=rejected, output=str(dst), rejects=str(rejects_path), chunks=len(plan),
                       chunks_skipped=job.skipped, parallelism=job.parallelism)


def _join(out: OrderedOutput, chunks: int, rows: int) -> tuple[int, int]:
    """Close OUTPUT and its rejects file and move them into place, checked: every chunk and row came out once."""
    return out.finish(chunks, rows)


class _Job:
    """One run of a batch job: the chunks' scheduling between this process and the workers."""

    def __init__(self, model: ServedModel, store: str, src: Path, fmt: str, parts: Path, max_retries: int,
                 parallelism: int, bar: Any) -> None:
        self.model, self.store, self.src, self.fmt, self.parts = model, store, src, fmt, parts
        self.max_retries, self.parallelism, self.bar = max_retries, parallelism, bar
        self.tries: dict[int, int] = {}
        self.pending: dict[Future[Any], tuple[int, int, int, Any]] = {}
        self.pool: ProcessPoolExecutor | None = None
        self.skipped = 0
        self.threads = max(1, _cpus() // parallelism)

    def run(self, out: OrderedOutput, plan: list[tuple[int, int]], chunk_rows: int) -> None:
        self.out = out
        self.writes = Behind()
        if self.parallelism > 1:
            self.pool = self._new_pool()
        try:
            with self._limit_threads():
                if self.fmt == "parquet":
                    self._run_parquet(plan)
                else:
                    self._run_text(plan, chunk_rows)
                self._collect()
                self.writes.drain()
        finally:
            self.writes.close()
            if self.pool is not None:
                self.pool.shutdown(cancel_futures=True)
            if self.bar is not None:
                self.bar.close()

    def _run_parquet(self, plan: list[tuple[int, int]]) -> None:
        todo = []
        for i, (_, n) in enumerate(plan):
            if part_path(self.parts, i).exists():
                self._done(i, n, None)
                self.skipped += 1
            else:
                todo.append(i)
        lock = threading.Lock()
        next_chunk = iter(todo)

        def take() -> int | None:
            with lock:
                return next(next_chunk, None)

        def produce(put: Callable[[Any], bool]) -> None:  # this process's chunks, read one ahead
            reader = ParquetRows(self.src, use_threads=self.pool is None)
            while (i := take()) is not None:
                if not put((i, *plan[i], reader.read(*plan[i]))):  # the consumer stopped: read no further
                    return

        ahead = ReadAhead(produce)
        try:
            while True:
                while self._worker_free() and (i := take()) is not None:
                    self._submit((i, *plan[i], None))
                item = ahead.get()
                if item is None:
                    break
                self._wait_for_laggards(item[0])
                self._local(item)
                self._collect(block=False)
        finally:
            ahead.close()

    def _run_text(self, plan: list[tuple[int, int]], chunk_rows: int) -> None:
        def produce(put: Callable[[Any], bool]) -> None:  # every chunk in order, parsed one ahead
            start = 0
            for i, df in enumerate(text_chunks(self.src, self.fmt, chunk_rows)):
                plan.append((start, len(df)))
                if not put((i, start, len(df), None if part_path(self.parts, i).exists() else df)):
                    return
                start += len(df)

        ahead = ReadAhead(produce)
        try:
            while (item := ahead.get()) is not None:
                if item[3] is None:
                    self._done(item[0], item[2], None)
                    self.skipped += 1
                elif self._worker_free():
                    self._submit(item)
                else:
                    self._wait_for_laggards(item[0])
                    self._local(item)
                self._collect(block=False)
        finally:
            ahead.close()

    def _worker_free(self) -> bool:
        """A worker is up (chunks never wait for one to start: this process scores meanwhile) and has
        fewer than two chunks."""
        return self.pool is not None and self.ready.done() and len(self.pending) < 2 * (self.parallelism - 1)

    def _wait_for_laggards(self, index: int) -> None:
        """Before this process scores chunk ``index``, wait for workers' chunks more than ``4 × parallelism``
        before it: the output holds every chunk after the oldest unfinished one, so this bounds memory."""
        while self.pending and index - min(t[0] for t in self.pending.values()) > 4 * self.parallelism:
            self._collect(len(self.pending) - 1)

    def _done(self, index: int, n: int, tables: tuple[Any, Any] | None, write: bool = False) -> None:
        """Chunk ``index`` is scored: hand it to the writer thread (its part files first if ``write``)."""
        self.writes.call(self._write if write else self.out.add, index, tables)
        if self.bar is not None:
            self.bar.update(n)

    def _failed(self, index: int, exc: BaseException) -> None:
        self.tries[index] = self.tries.get(index, 0) + 1
        if self.tries[index] > self.max_retries:
            raise ServingError(f"chunk {index} failed {self.tries[index]} times ({type(exc).__name__}: {exc}); "
                               "finished chunks are kept: rerun to resume") from None

    def _local(self, task: tuple[int, int, int, Any]) -> None:
        index, start, n, data = task
        while True:
            try:
                if self.fmt == "parquet":
                    tables = score.score_table(self.model, data, start)
                else:
                    tables = score.score_pandas(self.model, data, start)
                break
            except Exception as exc:
                self._failed(index, exc)
        self._done(index, n, tables, write=True)

    def _write(self, index: int, tables: tuple[Any, Any]) -> None:
        """In the writer thread: a chunk scored here gets its part files, then goes to the output."""
        while True:
            try:
                score.finish_chunk(index, *tables, str(self.parts))
                break
            except Exception as exc:
                self._failed(index, exc)
        self.out.add(index, tables)

    def _limit_threads(self) -> Any:
        """With workers, this process's BLAS/OpenMP threads share the cores too (as the workers' do)."""
        if self.pool is None:
            from contextlib import nullcontext

            return nullcontext()
        from threadpoolctl import threadpool_limits  # installed with scikit-learn

        return threadpool_limits(self.threads)

    def _new_pool(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(self.parallelism - 1, initializer=score.init, mp_context=_spawn(),
                                   initargs=(self.store, f"{self.model.name}/{self.model.version}", self.threads))
        self.ready = pool.submit(os.getpid)  # done once a worker has started and loaded the model
        return pool

    def _submit(self, task: tuple[int, int, int, Any]) -> None:  # (index, start row, rows, DataFrame or None: read it)
        index, first, n, df = task
        work = (score.score_frame, index, first, df, str(self.parts)) if df is not None else \
            (score.score_rows, index, first, n, str(self.src), str(self.parts))
        assert self.pool is not None
        try:
            self.pending[self.pool.submit(*work)] = task
        except BrokenProcessPool:
            self.pool = self._new_pool()
            self.pending[self.pool.submit(*work)] = task

    def _collect(self, keep: int = 0, block: bool = True) -> None:
        """Take finished workers' chunks until at most ``keep`` are pending (without ``block``: only those done)."""
        while len(self.pending) > (keep if block else 0):
            done, _ = wait(list(self.pending), timeout=None if block else 0, return_when=FIRST_COMPLETED)
            if not done:
                return
            for fut in sorted(done, key=lambda f: self.pending[f][0]):
                task = self.pending.pop(fut)
                try:
                    result = fut.result()
                except Exception as exc:
                    self._failed(task[0], exc)
                    if isinstance(exc, BrokenProcessPool):
                        self.pool = self._new_pool()
                    self._submit(task)
                    continue
                self._done(task[0], task[2], result[3:])
            if not block:
                return


def _spawn() -> Any:
    import multiprocessing

    return multiprocessing.get_context("spawn")


class _CallbackBar:
    """tqdm's ``update``/``close`` over a plain ``progress(done, total)`` function."""

    def __init__(self, fn: Callable[[int, int | None], None], total: int | None) -> None:
        self.fn, self.total, self.done = fn, total, 0

    def update(self, n: int) -> None:
        self.done += n
        self.fn(self.done, self.total)

    def close(self) -> None:
        pass


def _bar(progress: bool | Callable[[int, int | None], None], src: Path, total: int | None) -> Any:
    if not progress:
        return None
    if callable(progress):
        return _CallbackBar(progress, total)
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="rows", desc=f"scoring {src.name}")
