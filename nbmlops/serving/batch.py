"""Batch prediction jobs: score a file in chunks with N worker processes, resumable and lossless.

Chunks of ``chunk_rows`` rows are read one after another (memory is bounded by the chunk
size, not the file) and scored by worker processes that each load the model once (hash
verified). With Parquet input and parallelism ≥ 2 the parent only plans the chunks from the
file's metadata and each worker reads its own rows (shipping chunks to workers costs more
than it saves): it decodes the row groups a chunk overlaps and slices. A worker writes its
chunk's predictions and rejects as files in ``OUTPUT.parts/`` (rejects first, then
predictions, each by atomic rename): a chunk whose predictions file exists is done, so a
rerun after a crash skips it. A failed chunk is retried up to ``max_retries`` times. At the
end the parts are joined in input order into OUTPUT and OUTPUT's rejects file, and every
input row is checked to be in exactly one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from itertools import accumulate
from pathlib import Path
from typing import Any

from ..errors import InvalidInput, ServingError
from ..registry import get_model_version
from ..store import current_store, set_store
from .model import ServedModel

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def _format(path: Path, what: str) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInput(f"{what} {str(path)!r} must end in .csv, .parquet or .jsonl")
    return fmt


def _chunks(path: Path, fmt: str, rows: int, read: bool = True) -> Iterator[Any]:
    """The input's chunks as DataFrames; with ``read=False`` (Parquet only), their row counts from the metadata."""
    import pandas as pd

    if not read:
        import pyarrow.parquet as pq

        total = pq.read_metadata(path).num_rows
        yield from (min(rows, total - start) for start in range(0, total, rows))
    elif fmt == "csv":
        yield from pd.read_csv(path, chunksize=rows)
    elif fmt == "jsonl":
        yield from pd.read_json(path, lines=True, chunksize=rows)
    else:
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=rows):
            yield batch.to_pandas()


# -- the worker side ------------------------------------------------------------------------------
_model: Any = None


def _init(store: str, uri: str, threads: int = 0) -> None:
    global _model
    set_store(store)
    _model = ServedModel(uri)
    if threads:  # a worker: share the cores with the others (BLAS/OpenMP threads would spin against them)
        from threadpoolctl import threadpool_limits  # installed with scikit-learn

        threadpool_limits(threads)


_files: dict[str, Any] = {}


def _score_rows(index: int, start: int, n: int, path: str, parts: str) -> tuple[int, int, int]:
    """Read rows [start, start + n) of a Parquet file (kept open in this worker), then ``_score`` them."""
    import pyarrow.parquet as pq

    f = _files.get(path) or _files.setdefault(path, pq.ParquetFile(path, pre_buffer=False))
    meta = f.metadata
    bounds = [0, *accumulate(meta.row_group(i).num_rows for i in range(meta.num_row_groups))]
    groups = [i for i in range(meta.num_row_groups) if bounds[i] < start + n and bounds[i + 1] > start]
    table = f.read_row_groups(groups, use_threads=False).slice(start - bounds[groups[0]], n)
    return _score(index, start, table.to_pandas(), parts)


def _score(index: int, start: int, df: Any, parts: str) -> tuple[int, int, int]:
    """Score one chunk, write its rejects and predictions files; return (index, scored, rejected)."""
    import numpy as np
    import pandas as pd

    model = _model
    features = model.schema.features or [c for c in df.columns][: model.schema.n or len(df.columns)]
    rows = np.arange(start, start + len(df))
    reasons = pd.Series([None] * len(df), dtype=object)
    X = df.reindex(columns=features).reset_index(drop=True)
    numeric_flags = model.schema.numeric or [True] * len(features)
    if all(numeric_flags) and all(X[c].dtype.kind == "f" for c in features):  # the common case, vectorized
        finite = np.isfinite(X.to_numpy()) | X.isna().to_numpy()
        numeric_flags = [not finite[:, j].all() for j in range(len(features))]  # only columns with ±inf
    for name, numeric in zip(features, numeric_flags):
        if not numeric:
            continue
        raw = X[name]
        values = pd.to_numeric(raw, errors="coerce")
        bad = (values.isna() & raw.notna()) | np.isinf(values.to_numpy(dtype=float, na_value=np.nan))
        for i in np.flatnonzero(bad.to_numpy() & reasons.isna().to_numpy()):
            reasons.iloc[i] = f"feature {name!r} is not a finite number: {str(raw.iloc[i])[:40]!r}"
        X[name] = values
    ok = reasons.isna().to_numpy()
    est = model.estimator

    def scores(idx: Any) -> tuple[Any, Any]:
        part = X if len(idx) == len(X) else X.iloc[idx]
        part = part if model.schema.features else part.to_numpy(dtype=float)
        if model.proba:
            p = est.predict_proba(part)
            top = p.argmax(axis=1)
            return est.classes_[top], p[np.arange(len(top)), top]
        return np.asarray(est.predict(part)), None

    good = np.flatnonzero(ok)
    pred = np.empty(len(df), dtype=object)
    proba = np.full(len(df), np.nan)
    if len(good):
        try:
            values, best = scores(good)
            pred[good] = values
            if best is not None:
                proba[good] = best
        except Exception:  # find the rows the model refuses, one by one
            for i in good:
                try:
                    values, best = scores([i])
                    pred[i] = values[0]
                    if best is not None:
                        proba[i] = best[0]
                except Exception as exc:
                    reasons.iloc[i] = f"{type(exc).__name__}: {str(exc)[:200]}"
                    ok[i] = False
    out = pd.DataFrame({"row": rows[ok], "prediction": pd.Series(pred[ok]).infer_objects().to_numpy()})
    if model.proba:
        out["probability"] = proba[ok]
    out["model_version"] = model.version
    rejects = df.reset_index(drop=True)[~ok].copy()
    rejects.insert(0, "row", rows[~ok])
    for col in rejects.columns[1:]:
        rejects[col] = rejects[col].astype(str)  # rejects keep the raw values, as text
    rejects["reason"] = reasons[~ok].astype(str).to_numpy()
    folder = Path(parts)
    if len(rejects):
        _write_atomic(rejects, folder / f"rejects-{index:06d}.parquet")
    _write_atomic(out, folder / f"part-{index:06d}.parquet")  # last: marks the chunk done
    return index, int(ok.sum()), int((~ok).sum())


def _write_atomic(df: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


# -- the job --------------------------------------------------------------------------------------
class BatchResult(dict):
    def __repr__(self) -> str:
        return (f"batch job {self['model']}/{self['version']}: {self['rows']} rows → {self['scored']} scored "
                f"({self['output']}), {self['rejected']} rejected ({self['rejects']}); "
                f"{self['chunks_skipped']} of {self['chunks']} chunks were already done")


def batch_predict(model_uri: str, input: str | os.PathLike[str], output: str | os.PathLike[str],
                  parallelism: int = 1, max_retries: int = 3, chunk_rows: int = 100_000,
                  progress: bool | Callable[[int, int | None], None] = True) -> BatchResult:
    """Score ``input`` (CSV, Parquet or JSON Lines) into ``output`` in input order (``row``,
    ``prediction``, [``probability``], ``model_version``); rows that cannot be scored go to
    ``OUTPUT.rejects.parquet`` with the reason. Rerun after a crash to resume.

    ``progress``: a tqdm bar (True), none (False), or a function called with (rows done, total rows or None)."""
    src, dst = Path(input), Path(output)
    in_fmt, out_fmt = _format(src, "input"), _format(dst, "output")
    if not src.is_file():
        raise InvalidInput(f"input {str(src)!r} does not exist")
    for name, value, low in (("parallelism", parallelism, 1), ("chunk_rows", chunk_rows, 1),
                             ("max_retries", max_retries, 0)):
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
    store = str(current_store(create=False).root)
    bar = _bar(progress, src, in_fmt)
    counts = {"chunks": 0, "skipped": 0}
    tries: dict[int, int] = {}
    pending: dict[Future[Any], tuple[int, int, int, Any]] = {}
    threads = max(1, (os.cpu_count() or 1) // parallelism)

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(parallelism, initializer=_init, initargs=(store, uri, threads), mp_context=_spawn())

    pool = None if parallelism == 1 else new_pool()
    if pool is None:
        _init(store, uri)

    def submit(task: tuple[int, int, int, Any]) -> None:  # (index, start row, rows, DataFrame or None: read it)
        nonlocal pool
        index, first, n, df = task
        work = (_score, index, first, df, str(parts)) if df is not None else \
            (_score_rows, index, first, n, str(src), str(parts))
        if pool is None:
            _finish(task, lambda: work[0](*work[1:]))
            return
        try:
            pending[pool.submit(*work)] = task
        except BrokenProcessPool:
            pool = new_pool()
            pending[pool.submit(*work)] = task

    def _finish(task: tuple[int, int, int, Any], call: Any) -> None:
        while True:
            try:
                call()
                break
            except Exception as exc:
                tries[task[0]] = tries.get(task[0], 0) + 1
                if tries[task[0]] > max_retries:
                    raise ServingError(f"chunk {task[0]} failed {tries[task[0]]} times ({type(exc).__name__}: {exc}); "
                                       "finished chunks are kept: rerun to resume") from None
        if bar is not None:
            bar.update(task[2])

    def drain(block_until: int) -> None:
        nonlocal pool
        while len(pending) > block_until:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in done:
                task = pending.pop(fut)
                try:
                    fut.result()
                    if bar is not None:
                        bar.update(task[2])
                except Exception as exc:
                    tries[task[0]] = tries.get(task[0], 0) + 1
                    if tries[task[0]] > max_retries:
                        raise ServingError(f"chunk {task[0]} failed {tries[task[0]]} times ({type(exc).__name__}: "
                                           f"{exc}); finished chunks are kept: rerun to resume") from None
                    if isinstance(exc, BrokenProcessPool):
                        pool = new_pool()
                    submit(task)

    try:
        start = 0
        read = in_fmt != "parquet" or pool is None  # else the workers read their own rows
        for index, chunk in enumerate(_chunks(src, in_fmt, chunk_rows, read)):
            n = len(chunk) if read else chunk
            counts["chunks"] += 1
            if (parts / f"part-{index:06d}.parquet").exists():
                counts["skipped"] += 1
                if bar is not None:
                    bar.update(n)
            else:
                submit((index, start, n, chunk if read else None))
                drain(2 * parallelism)
            start += n
        drain(0)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        if bar is not None:
            bar.close()
    result = _join(parts, counts["chunks"], start, dst, out_fmt, rejects_path)
    shutil.rmtree(parts)
    return BatchResult(model=version.name, version=version.version, rows=start, scored=result[0], rejected=result[1],
                       output=str(dst), rejects=str(rejects_path), chunks=counts["chunks"],
                       chunks_skipped=counts["skipped"])


def _join(parts: Path, chunks: int, rows: int, dst: Path, fmt: str, rejects_path: Path) -> tuple[int, int]:
    """Join the parts in order, streaming; check every input row is in exactly one output."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    seen = 0
    scored = rejected = 0
    tmp = dst.with_name(f".{dst.name}.tmp")
    writer: Any = None
    rwriter: Any = None
    rtmp = rejects_path.with_name(f".{rejects_path.name}.tmp")
    try:
        for i in range(chunks):
            part = pq.read_table(parts / f"part-{i:06d}.parquet")
            rpath = parts / f"rejects-{i:06d}.parquet"
            rej = pq.read_table(rpath) if rpath.exists() else pa.table({"row": pa.array([], pa.int64())})
            import numpy as np

            got = np.sort(np.concatenate([part.column("row").to_numpy(), rej.column("row").to_numpy()]))
            if not np.array_equal(got, np.arange(seen, seen + len(got))):
                raise ServingError(f"chunk {i} does not hold rows {seen}… exactly once; remove {parts} and rerun")
            seen += len(got)
            scored += part.num_rows
            rejected += rej.num_rows
            writer = _append(writer, tmp, fmt, part)
            if rej.num_rows:
                rwriter = _append(rwriter, rtmp, "parquet", rej if rwriter is None else rej.cast(rwriter.schema))
    finally:
        for w in (writer, rwriter):
            if w is not None and hasattr(w, "close"):
                w.close()
    if seen != rows:
        raise ServingError(f"{rows} rows were read but {seen} came out; remove {parts} and rerun")
    if writer is None:
        writer = _append(None, tmp, fmt, pa.table({"row": pa.array([], pa.int64())}))
        if hasattr(writer, "close"):
            writer.close()
    os.replace(tmp, dst)
    if rwriter is not None:
        os.replace(rtmp, rejects_path)
    else:
        rejects_path.unlink(missing_ok=True)
    return scored, rejected


class _TextWriter:
    def __init__(self, path: Path, fmt: str) -> None:
        self.f = open(path, "w")  # noqa: SIM115 (closed by close())
        self.fmt = fmt
        self.header = True

    def write_table(self, table: Any) -> None:
        df = table.to_pandas()
        if self.fmt == "csv":
            df.to_csv(self.f, index=False, header=self.header)
        else:
            df.to_json(self.f, orient="records", lines=True)
        self.header = False

    def close(self) -> None:
        self.f.close()


def _append(writer: Any, path: Path, fmt: str, table: Any) -> Any:
    import pyarrow.parquet as pq

    if writer is None:
        writer = pq.ParquetWriter(path, table.schema) if fmt == "parquet" else _TextWriter(path, fmt)
    writer.write_table(table)
    return writer


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


def _bar(progress: bool | Callable[[int, int | None], None], src: Path, fmt: str) -> Any:
    if not progress:
        return None
    total = None
    if fmt == "parquet":
        import pyarrow.parquet as pq

        total = pq.ParquetFile(src).metadata.num_rows
    if callable(progress):
        return _CallbackBar(progress, total)
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="rows", desc=f"scoring {src.name}")
