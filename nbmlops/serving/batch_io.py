"""Batch prediction I/O: input chunks (read ahead in a thread), part files, and the ordered output.

Reading and writing go through pyarrow without pandas where the data allows: pyarrow releases the
GIL while it decodes and encodes, so a reader thread overlaps the next chunk's I/O with this chunk's
scoring. pandas, NumPy and pyarrow are imported inside the functions that use them, so importing
``nbmlops.serving`` stays light.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from itertools import accumulate
from pathlib import Path
from typing import Any

from ..errors import InvalidInput, ServingError

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def file_format(path: Path, what: str) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInput(f"{what} {str(path)!r} must end in .csv, .parquet or .jsonl")
    return fmt


def parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.read_metadata(path).num_rows


def text_chunks(path: Path, fmt: str, rows: int) -> Iterator[Any]:
    """A CSV or JSON Lines file's chunks as DataFrames (pandas' type inference, as before)."""
    import pandas as pd

    if fmt == "csv":
        yield from pd.read_csv(path, chunksize=rows)
    else:
        yield from pd.read_json(path, lines=True, chunksize=rows)


class ParquetRows:
    """Rows [start, start + n) of a Parquet file as an arrow Table: decodes only the row groups the rows
    overlap and keeps the last ones decoded, so chunks that split a row group decode it once."""

    def __init__(self, path: str | Path, use_threads: bool = False) -> None:
        import pyarrow.parquet as pq

        self.file = pq.ParquetFile(path, pre_buffer=False)  # pre-buffering would keep every row group read
        meta = self.file.metadata
        self.bounds = [0, *accumulate(meta.row_group(i).num_rows for i in range(meta.num_row_groups))]
        self.use_threads = use_threads
        self.cached: tuple[int, int, Any] | None = None  # (first group, last group, table)

    def read(self, start: int, n: int) -> Any:
        b = self.bounds
        groups = [i for i in range(len(b) - 1) if b[i] < start + n and b[i + 1] > start]
        first, last = groups[0], groups[-1]
        if self.cached is None or not (self.cached[0] <= first and last <= self.cached[1]):
            self.cached = (first, last, self.file.read_row_groups(groups, use_threads=self.use_threads))
        return self.cached[2].slice(start - b[self.cached[0]], n)


class ReadAhead:
    """Runs ``produce(put)`` in a thread that stays at most ``depth`` items ahead of ``get()``;
    ``get()`` returns None at the end and re-raises the thread's exception."""

    _END = object()

    def __init__(self, produce: Any, depth: int = 1) -> None:
        self.q: queue.Queue[Any] = queue.Queue(depth)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(produce,), daemon=True, name="nbmlops-batch-reader")
        self.thread.start()

    def _put(self, item: Any) -> bool:
        while not self.stopped.is_set():
            try:
                self.q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, produce: Any) -> None:
        try:
            produce(self._put)
            self._put(self._END)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(exc)

    def get(self) -> Any:
        item = self.q.get()
        if item is self._END:
            self.q.put(item)  # later calls see the end too
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self.stopped.set()
        self.thread.join()


class Behind:
    """Runs calls one after another in a thread, at most ``depth`` behind the caller (pyarrow encodes and
    writes without holding the GIL); a call's exception is raised by the next ``call`` or by ``drain``."""

    def __init__(self, depth: int = 2) -> None:
        self.q: queue.Queue[Any] = queue.Queue(depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="nbmlops-batch-writer")
        self.thread.start()

    def _run(self) -> None:
        while (item := self.q.get()) is not None:
            if self.error is None:
                try:
                    item[0](*item[1:])
                except BaseException as exc:  # handed to the caller, which re-raises it
                    self.error = exc
            self.q.task_done()
        self.q.task_done()

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def call(self, fn: Any, *args: Any) -> None:
        self._raise()
        self.q.put((fn, *args))

    def drain(self) -> None:
        """Wait for every call made so far."""
        self.q.join()
        self._raise()

    def close(self) -> None:
        self.q.put(None)
        self.thread.join()


# -- parts and the output --------------------------------------------------------------------------
def write_part(table: Any, path: Path) -> None:
    """Write a part file atomically; parts are read once, so they are written plain (no compression,
    no dictionaries, no statistics), which is several times cheaper than the output's encoding."""
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    pq.write_table(table, tmp, compression="none", use_dictionary=False, write_statistics=False)
    os.replace(tmp, path)


def part_path(parts: Path, index: int, kind: str = "part") -> Path:
    return parts / f"{kind}-{index:06d}.parquet"


class OrderedOutput:
    """Appends chunks' predictions and rejects to OUTPUT and its rejects file in input order, as they
    arrive in any order (holding the early ones), and checks every input row comes out exactly once."""

    def __init__(self, parts: Path, dst: Path, fmt: str, rejects_path: Path, plan: list[tuple[int, int]]) -> None:
        self.parts, self.dst, self.fmt, self.rejects_path, self.plan = parts, dst, fmt, rejects_path, plan
        self.tmp = parts / f"output.{fmt}.tmp"
        self.rtmp = parts / "rejects.parquet.tmp"
        self.writer: Any = None
        self.rwriter: Any = None
        self.waiting: dict[int, Any] = {}
        self.next = 0
        self.scored = self.rejected = 0

    def add(self, index: int, tables: tuple[Any, Any] | None) -> None:
        """Chunk ``index`` is done: its (predictions, rejects or None) tables, or None to read its part files."""
        self.waiting[index] = tables
        while self.next in self.waiting:
            self._append(self.next, self.waiting.pop(self.next))
            self.next += 1

    def _append(self, index: int, tables: tuple[Any, Any] | None) -> None:
        import numpy as np
        import pyarrow.parquet as pq

        if tables is None:
            rpath = part_path(self.parts, index, "rejects")
            tables = (pq.read_table(part_path(self.parts, index)), pq.read_table(rpath) if rpath.exists() else None)
        part, rej = tables
        start, n = self.plan[index]
        rows = part.column("row").to_numpy()
        if rej is not None and rej.num_rows:
            rows = np.sort(np.concatenate([rows, rej.column("row").to_numpy()]), kind="stable")
        if not np.array_equal(rows, np.arange(start, start + n)):
            raise ServingError(f"chunk {index} does not hold rows {start}…{start + n - 1} exactly once; "
                               f"remove {self.parts} and rerun")
        self.scored += part.num_rows
        if part.num_rows or self.writer is None:
            self.writer = _append(self.writer, self.tmp, self.fmt, part)
        if rej is not None and rej.num_rows:
            self.rejected += rej.num_rows
            self.rwriter = _append(self.rwriter, self.rtmp, "parquet", rej)

    def finish(self, chunks: int, rows: int) -> tuple[int, int]:
        """Close the files and move them into place; (scored, rejected)."""
        self.close()
        if self.next != chunks or self.waiting:
            raise ServingError(f"{chunks} chunks were planned but {self.next} came out; remove {self.parts} and rerun")
        if self.scored + self.rejected != rows:
            raise ServingError(f"{rows} rows were read but {self.scored + self.rejected} came out; "
                               f"remove {self.parts} and rerun")
        if self.writer is None:
            import pyarrow as pa

            _append(None, self.tmp, self.fmt, pa.table({"row": pa.array([], pa.int64())})).close()
        os.replace(self.tmp, self.dst)
        if self.rwriter is not None:
            os.replace(self.rtmp, self.rejects_path)
        else:
            self.rejects_path.unlink(missing_ok=True)
        return self.scored, self.rejected

    def close(self) -> None:
        for w in (self.writer, self.rwriter):
            if w is not None:
                w.close()


class _ParquetOut:
    """The output Parquet file: snappy (pyarrow's default), dictionaries only where values repeat."""

    def __init__(self, path: Path, schema: Any) -> None:
        import pyarrow.parquet as pq

        schema = schema.remove_metadata()  # the same file whichever scoring path wrote the first chunk
        repeat = [c for c in schema.names if c not in ("row", "probability")]
        self.w = pq.ParquetWriter(path, schema, use_dictionary=repeat)
        self.schema = schema

    def write_table(self, table: Any) -> None:
        if not table.schema.equals(self.schema, check_metadata=False):
            table = table.cast(self.schema)  # e.g. a chunk whose every row was rejected (an untyped prediction)
        self.w.write_table(table)

    def close(self) -> None:
        self.w.close()


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
    if writer is None:
        writer = _ParquetOut(path, table.schema) if fmt == "parquet" else _TextWriter(path, fmt)
    writer.write_table(table)
    return writer
