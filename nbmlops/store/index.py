"""A summary index of an experiment's runs: what searches and listings need, one column per field.

``search_runs`` over 100,000 runs would parse every run document (over 100 MB of JSON); the index
keeps, per run shard (``db/runs/<experiment>/<xx>.json``), the fields a search filters, sorts and
shows (id, name, status, times, user, params, metric values, tags), in columns. It is never the
source of truth: the run documents are.

- Fresh or not, per shard: the index records each shard's (mtime_ns, size, inode) as stat'ed before
  the shard was read. A shard whose stat differs is read again. A shard modified less than
  ``RACY_NS`` before it was read is "racy" (a later write in the same clock tick, of the same size,
  into a reused inode, could keep its stat): it is read again on every load until it has been quiet
  that long (git's racily-clean rule).
- Kept in ``index/runs/<experiment>.idx``: one line of header (format, length and sha256 of the
  body), then the body as JSON; metric columns of floats as base64 float64. Written atomically
  (``atomic_write``, not fsynced: it can be rebuilt), by any process that read enough shards again.
  No lock: every writer writes a whole, consistent snapshot with the stats it read under.
- A missing, truncated, damaged or foreign index file is ignored and rebuilt from the documents.
- In memory, per process: the columns of the last load, reused while every shard's stat is the same.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
import warnings
from collections.abc import Iterable
from itertools import chain
from pathlib import Path
from typing import Any

from ..errors import StoreError
from .documents import DamagedFile, DocFile, atomic_write

FORMAT = "nbmlops-run-index"
VERSION = 1
RACY_NS = 2_000_000_000  # a shard written this recently is read again next time (coarse file clocks)
REWRITE_ROWS = 1_000  # rewrite the index file once this many rows were read from changed shards
ATTRS = ("id", "name", "status", "start_time", "end_time", "duration", "user", "notebook", "git_commit")
KINDS = ("params", "metrics", "tags")

Key = tuple[int, int, int]


class Column:
    """One param, metric or tag over the rows: ``values`` is a float64 array (NaN where a run has no
    value; a metric column of floats) or a list (None where a run has no value); ``present`` says
    which runs have the key at all (a param logged as None is present)."""

    __slots__ = ("values", "present")

    def __init__(self, values: Any, present: Any) -> None:
        self.values = values
        self.present = present

    @property
    def numeric(self) -> bool:
        return not isinstance(self.values, list)

    def python(self, rows: Any) -> list[Any]:
        """The values of ``rows`` as the documents hold them (None: no value)."""
        if isinstance(self.values, list):
            vals = self.values
            return vals[rows] if isinstance(rows, slice) else [vals[i] for i in rows]
        import numpy as np  # numpy: heavy, only once a search runs

        picked = self.values[rows]
        return [None if v != v else v for v in picked.tolist()] if np.isnan(picked).any() else picked.tolist()


class RunTable:
    """The indexed runs of one or more experiments, in the order the documents are read (shard by
    shard, each in file order): ``attrs`` (lists; ``start_time`` an int64 array), ``deleted`` (bool
    array), ``experiment_id`` (list) and ``params``/``metrics``/``tags`` (name -> ``Column``)."""

    def __init__(self, n: int, attrs: dict[str, Any], deleted: Any, experiment_id: list[str],
                 kinds: dict[str, dict[str, Column]]) -> None:
        self.n = n
        self.attrs = attrs
        self.deleted = deleted
        self.experiment_id = experiment_id
        self.params, self.metrics, self.tags = kinds["params"], kinds["metrics"], kinds["tags"]
        self._encoded: dict[tuple[str, str], tuple[list[Any], Any]] = {}

    def kind(self, kind: str) -> dict[str, Column]:
        return {"params": self.params, "metrics": self.metrics, "tags": self.tags}[kind]

    def encoded(self, kind: str, key: str) -> tuple[list[Any], Any]:
        """(distinct values, int32 code of each row's value in them): a condition or a sort order is
        then worked out once per distinct value. Values that compare equal but differ in type
        (1, 1.0, True) stay distinct. Cached: a table is never changed."""
        hit = self._encoded.get((kind, key))
        if hit is None:
            import numpy as np  # numpy: heavy, only once a search runs

            if kind == "attributes":
                vals = self.experiment_id if key == "experiment_id" else self.attrs[key]
                if not isinstance(vals, list):
                    vals = vals.tolist()
            else:
                col = self.kind(kind).get(key)
                vals = [None] * self.n if col is None else col.python(slice(None))
            index: dict[Any, int] = {}
            uniques: list[Any] = []
            codes = np.empty(self.n, dtype=np.int32)
            for i, v in enumerate(vals):
                k = (type(v), v)
                c = index.get(k)
                if c is None:
                    c = index[k] = len(uniques)
                    uniques.append(v)
                codes[i] = c
            hit = self._encoded[(kind, key)] = (uniques, codes)
        return hit


# -- one shard's rows ---------------------------------------------------------------------------
def _chunk(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The columns of one shard's documents (a param logged as None is listed in ``null``)."""
    n = len(docs)
    chunk: dict[str, Any] = {"n": n, "deleted": [bool(d.get("deleted")) for d in docs]}
    for a in ("id", "name", "status", "start_time", "end_time", "duration", "user"):
        chunk[a] = [d[a] for d in docs]
    for a in ("notebook", "git_commit"):
        chunk[a] = [d.get(a) for d in docs]
    nulls: dict[str, dict[str, list[int]]] = {}
    for kind in KINDS:
        cols: dict[str, list[Any]] = {}
        for i, d in enumerate(docs):
            for k, v in d[kind].items():
                if kind == "metrics":
                    v = (v or {}).get("value")
                col = cols.get(k)
                if col is None:
                    col = cols[k] = [None] * n
                col[i] = v
                if v is None:
                    nulls.setdefault(kind, {}).setdefault(k, []).append(i)
        chunk[kind] = {k: _floats(v) for k, v in cols.items()} if kind == "metrics" else cols
    chunk["null"] = nulls
    return chunk


def _floats(vals: list[Any]) -> Any:
    """A metric column of floats (None: no value) as a float64 array with NaN for None; other
    columns (ints, NaN from an import, odd values) stay lists, so no value changes type."""
    import numpy as np  # numpy: heavy, only once a search runs

    if not all(type(v) is float and v == v or v is None for v in vals):
        return vals
    return np.array([np.nan if v is None else v for v in vals], dtype="<f8")


def _encode(chunk: dict[str, Any]) -> dict[str, Any]:
    """A chunk as JSON can hold it: float64 arrays as base64."""
    metrics = {k: v if isinstance(v, list) else {"f8": base64.b64encode(v.tobytes()).decode()}
               for k, v in chunk["metrics"].items()}
    return {**chunk, "metrics": metrics, "key": list(chunk["key"])}


def _decode_metric(col: Any) -> Any:
    import numpy as np  # numpy: heavy, only once a search runs

    if isinstance(col, dict):
        return np.frombuffer(base64.b64decode(col["f8"]), dtype="<f8")
    return col


# -- loading, refreshing, saving ----------------------------------------------------------------
class _Loaded:
    """An experiment's index in this process: chunks by shard name, with their stat and raciness."""

    def __init__(self, chunks: dict[str, dict[str, Any]], table: RunTable) -> None:
        self.chunks = chunks
        self.table = table


_memory: dict[Path, _Loaded] = {}
_memory_lock = threading.Lock()


def _stat(path: Path) -> Key | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _read_file(path: Path) -> dict[str, dict[str, Any]]:
    """The chunks of an index file; {} when it is missing, damaged or not ours (it is then rebuilt)."""
    try:
        raw = path.read_bytes()
    except OSError:
        return {}
    head, sep, body = raw.partition(b"\n")
    try:
        meta = json.loads(head)
        if (not sep or meta.get("format") != FORMAT or meta.get("version") != VERSION
                or meta.get("length") != len(body) or meta.get("sha256") != hashlib.sha256(body).hexdigest()):
            return {}
        chunks = json.loads(body)["shards"]
        for c in chunks.values():
            c["metrics"] = {k: _decode_metric(v) for k, v in c["metrics"].items()}
            c["key"] = tuple(c["key"])
        return chunks
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}


def _write_file(path: Path, chunks: dict[str, dict[str, Any]]) -> None:
    body = json.dumps({"shards": {name: _encode(c) for name, c in chunks.items()}},
                      separators=(",", ":"), default=str).encode()
    head = json.dumps({"format": FORMAT, "version": VERSION, "length": len(body),
                       "sha256": hashlib.sha256(body).hexdigest()}).encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, head + b"\n" + body, durable=False)
    except OSError:  # a read-only store: searches still work, from the documents
        pass


def run_table(root: Path, experiment_id: str, shards: list[DocFile[Any]]) -> RunTable:
    """The runs of one experiment (its ``shards``, in name order) as columns, read from the index
    and from the shards that changed since it was written; a damaged shard is reported (a
    ``DamagedFile`` warning) and left out, as ``readable_docs`` does."""
    path = root / "index" / "runs" / f"{experiment_id}.idx"
    now = time.time_ns()
    keys = {f.path.name: _stat(f.path) for f in shards}
    with _memory_lock:
        loaded = _memory.get(path)
    if loaded is not None and _unchanged(loaded.chunks, keys):
        return loaded.table
    old = loaded.chunks if loaded is not None else _read_file(path)
    chunks: dict[str, dict[str, Any]] = {}
    reread = 0
    for f in shards:
        name, key = f.path.name, keys[f.path.name]
        c = old.get(name)
        if c is not None and not c.get("racy") and c["key"] == key:
            chunks[name] = c
            continue
        if key is None:  # removed since it was listed
            continue
        try:
            docs = f.fresh()
        except StoreError as exc:
            warnings.warn(f"left out of the listing: {exc}", DamagedFile, stacklevel=3)
            continue
        c = _chunk(docs)
        c["key"], c["racy"] = key, key[0] >= now - RACY_NS
        chunks[name] = c
        reread += c["n"]
    table = _table(chunks.values(), experiment_id)
    with _memory_lock:
        _memory[path] = _Loaded(chunks, table)
    if reread >= REWRITE_ROWS or (reread and loaded is None and not old):
        _write_file(path, chunks)
    return table


def _unchanged(chunks: dict[str, dict[str, Any]], keys: dict[str, Key | None]) -> bool:
    if len(chunks) != sum(k is not None for k in keys.values()):
        return False
    return all((c := chunks.get(name)) is not None and not c.get("racy") and c["key"] == key
               for name, key in keys.items() if key is not None)


def _table(chunks: Iterable[dict[str, Any]], experiment_id: str) -> RunTable:
    import numpy as np  # numpy: heavy, only once a search runs

    chunks = list(chunks)
    n = sum(c["n"] for c in chunks)
    attrs: dict[str, Any] = {a: list(chain.from_iterable(c[a] for c in chunks)) for a in ATTRS}
    attrs["start_time"] = np.array(attrs["start_time"], dtype=np.int64)
    deleted = np.array(list(chain.from_iterable(c["deleted"] for c in chunks)), dtype=bool)
    kinds: dict[str, dict[str, Column]] = {}
    for kind in KINDS:
        names = sorted({k for c in chunks for k in c[kind]})
        kinds[kind] = {k: _column(chunks, kind, k, n) for k in names}
    return RunTable(n, attrs, deleted, [experiment_id] * n, kinds)


def _column(chunks: list[dict[str, Any]], kind: str, key: str, n: int) -> Column:
    import numpy as np  # numpy: heavy, only once a search runs

    parts = [c[kind].get(key) for c in chunks]
    if all(p is None or not isinstance(p, list) for p in parts):  # float arrays: NaN is no value
        values: Any = np.concatenate([np.full(c["n"], np.nan) if p is None else p for c, p in zip(chunks, parts)])
        present = ~np.isnan(values)
    else:
        values = list(chain.from_iterable([None] * c["n"] if p is None else
                                          (p if isinstance(p, list) else Column(p, None).python(slice(None)))
                                          for c, p in zip(chunks, parts)))
        present = np.fromiter((v is not None for v in values), dtype=bool, count=n)
    offset = 0
    for c in chunks:
        for i in c["null"].get(kind, {}).get(key, ()):
            present[offset + i] = True
        offset += c["n"]
    return Column(values, present)


def concat(tables: list[RunTable]) -> RunTable:
    """Several experiments' tables as one, in the order given."""
    import numpy as np  # numpy: heavy, only once a search runs

    if len(tables) == 1:
        return tables[0]
    n = sum(t.n for t in tables)
    attrs = {a: list(chain.from_iterable(t.attrs[a] for t in tables)) for a in ATTRS if a != "start_time"}
    attrs["start_time"] = np.concatenate([t.attrs["start_time"] for t in tables] or [np.empty(0, np.int64)])
    deleted = np.concatenate([t.deleted for t in tables] or [np.empty(0, bool)])
    kinds: dict[str, dict[str, Column]] = {}
    for kind in KINDS:
        names = sorted({k for t in tables for k in t.kind(kind)})
        cols = {}
        for k in names:
            parts = [t.kind(kind).get(k) for t in tables]
            if all(p is None or p.numeric for p in parts):
                values = np.concatenate([np.full(t.n, np.nan) if p is None else p.values
                                         for t, p in zip(tables, parts)])
            else:
                values = list(chain.from_iterable([None] * t.n if p is None else p.python(slice(None))
                                                  for t, p in zip(tables, parts)))
            present = np.concatenate([np.zeros(t.n, bool) if p is None else p.present for t, p in zip(tables, parts)])
            cols[k] = Column(values, present)
        kinds[kind] = cols
    return RunTable(n, attrs, deleted, list(chain.from_iterable(t.experiment_id for t in tables)), kinds)


def forget(root: Path | None = None) -> None:
    """Drop the indexes held in memory (all, or a store's): the next load reads the index files, as a
    new process does."""
    with _memory_lock:
        for path in list(_memory):
            if root is None or path.is_relative_to(root):
                del _memory[path]
