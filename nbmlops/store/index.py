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
VERSION = 2
RACY_NS = 2_000_000_000  # a shard written this recently is read again next time (coarse file clocks)
REWRITE_ROWS = 1_000  # rewrite the index file once this many rows (or a tenth) were read from changed shards
ATTRS = ("status", "end_time", "duration", "user", "notebook", "git_commit")  # dictionary-encoded per shard
KINDS = ("params", "metrics", "tags")

Key = tuple[int, int, int]
Encoded = tuple[list[Any], Any]  # (distinct values, int32 code per row: -1 where a run has no value)


class Column:
    """One field over the rows: numeric (``values``: float64 with NaN where a run has no value, or
    the int64 start times) or dictionary-encoded (``uniques`` and ``codes``, -1: no value). A value
    logged as None is a value (``present``), distinct from no value only for the columns shown."""

    __slots__ = ("values", "uniques", "codes", "_encoding", "_objects")

    def __init__(self, values: Any = None, uniques: list[Any] | None = None, codes: Any = None) -> None:
        self.values, self.uniques, self.codes = values, uniques, codes
        self._encoding: Encoded | None = None
        self._objects: Any = None

    def objects(self) -> Any:
        """The values as an object array indexed by code (the last item None, for code -1)."""
        if self._objects is None:
            import numpy as np  # numpy: heavy, only once a search runs

            uniques = self.encoding()[0]
            self._objects = np.empty(len(uniques), dtype=object)
            self._objects[:] = uniques
        return self._objects

    @property
    def numeric(self) -> bool:
        return self.codes is None

    @property
    def present(self) -> Any:
        if self.codes is not None:
            return self.codes >= 0
        import numpy as np  # numpy: heavy, only once a search runs

        return ~np.isnan(self.values) if self.values.dtype.kind == "f" else np.ones(len(self.values), dtype=bool)

    def python(self, rows: Any) -> list[Any]:
        """The values of ``rows`` as the documents hold them (None: no value)."""
        uniques, codes = self.encoding()
        return [uniques[c] for c in codes[rows].tolist()]

    def encoding(self) -> Encoded:
        """(values with None last, code of each row: -1, the last, for no value): a condition or an
        order is worked out once per value listed. Values equal but of other types (1, 1.0, True)
        have their own codes; a value may be listed more than once (from several shards)."""
        if self._encoding is None:
            import numpy as np  # numpy: heavy, only once a search runs

            if self.codes is not None:
                self._encoding = ([*self.uniques, None], self.codes)
            else:
                have = self.present
                distinct, inverse = np.unique(self.values[have], return_inverse=True)
                codes = np.full(len(self.values), -1, dtype=np.int32)
                codes[have] = inverse
                self._encoding = ([*distinct.tolist(), None], codes)
        return self._encoding


class RunTable:
    """The indexed runs of one or more experiments, in the order the documents are read (shard by
    shard, each in file order): ``attrs`` (run document field -> ``Column``: id, name, status,
    start_time, ..., experiment_id), ``deleted`` (bool array) and ``params``/``metrics``/``tags``
    (name -> ``Column``)."""

    def __init__(self, n: int, attrs: dict[str, Column], deleted: Any, kinds: dict[str, dict[str, Column]]) -> None:
        self.n = n
        self.attrs = attrs
        self.deleted = deleted
        self.params, self.metrics, self.tags = kinds["params"], kinds["metrics"], kinds["tags"]
        self.derived: dict[Any, Any] = {}  # what readers work out once per table (a table never changes)

    def kind(self, kind: str) -> dict[str, Column]:
        return {"params": self.params, "metrics": self.metrics, "tags": self.tags, "attributes": self.attrs}[kind]


# -- one shard's rows ---------------------------------------------------------------------------
def _encode_values(values: list[Any]) -> Encoded:
    import numpy as np  # numpy: heavy, only once a search runs

    index: dict[tuple[type, Any], int] = {}
    uniques: list[Any] = []
    codes = np.empty(len(values), dtype=np.int32)
    for i, v in enumerate(values):
        k = (type(v), v)
        c = index.get(k)
        if c is None:
            c = index[k] = len(uniques)
            uniques.append(v)
        codes[i] = c
    return uniques, codes


def _chunk(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The columns of one shard's documents."""
    import numpy as np  # numpy: heavy, only once a search runs

    n = len(docs)
    chunk: dict[str, Any] = {"n": n, "id": [d["id"] for d in docs], "name": [d["name"] for d in docs],
                             "start_time": [d["start_time"] for d in docs],
                             "deleted": [bool(d.get("deleted")) for d in docs],
                             "attrs": {a: _encode_values([d.get(a) for d in docs] if a in ("notebook", "git_commit")
                                                         else [d[a] for d in docs]) for a in ATTRS}}
    for kind in KINDS:
        index: dict[str, dict[tuple[type, Any], int]] = {}
        cols: dict[str, Encoded] = {}
        for i, d in enumerate(docs):
            for k, v in d[kind].items():
                if kind == "metrics":
                    v = (v or {}).get("value")
                col = cols.get(k)
                if col is None:
                    col = cols[k] = ([], np.full(n, -1, dtype=np.int32))
                    index[k] = {}
                c = index[k].get((type(v), v))
                if c is None:
                    c = index[k][(type(v), v)] = len(col[0])
                    col[0].append(v)
                col[1][i] = c
        chunk[kind] = {k: _floats(v) for k, v in cols.items()} if kind == "metrics" else cols
    return chunk


def _floats(col: Encoded) -> Any:
    """A metric column of floats as a float64 array, NaN where a run has no value; other columns (ints,
    NaN from an import, a summary without a value) stay encoded, so no value changes type."""
    import numpy as np  # numpy: heavy, only once a search runs

    uniques, codes = col
    if not all(type(v) is float and v == v for v in uniques):
        return col
    return np.array([*uniques, np.nan], dtype="<f8")[codes]


def _to_json(chunk: dict[str, Any]) -> dict[str, Any]:
    """A chunk as JSON can hold it: arrays as base64."""
    def enc(col: Any) -> Any:
        if isinstance(col, tuple):  # codes + 1 (0: no value) in the smallest unsigned type that holds them
            width = "<u1" if len(col[0]) < 255 else "<u2" if len(col[0]) < 65535 else "<u4"
            return {"u": col[0], width: base64.b64encode((col[1] + 1).astype(width).tobytes()).decode()}
        return {"f8": base64.b64encode(col.astype("<f8").tobytes()).decode()}

    out = {k: chunk[k] for k in ("n", "id", "name", "start_time", "deleted", "racy")}
    out["key"] = list(chunk["key"])
    out["attrs"] = {a: enc(c) for a, c in chunk["attrs"].items()}
    for kind in KINDS:
        out[kind] = {k: enc(c) for k, c in chunk[kind].items()}
    return out


def _from_json(chunk: dict[str, Any]) -> dict[str, Any]:
    import numpy as np  # numpy: heavy, only once a search runs

    def dec(col: dict[str, Any]) -> Any:
        if "f8" in col:
            return np.frombuffer(base64.b64decode(col["f8"]), dtype="<f8")
        width = next(w for w in ("<u1", "<u2", "<u4") if w in col)
        return col["u"], np.frombuffer(base64.b64decode(col[width]), dtype=width).astype(np.int32) - 1

    n = chunk["n"]
    for field in ("id", "name", "start_time", "deleted"):
        if len(chunk[field]) != n:
            raise ValueError(f"{field} has {len(chunk[field])} rows, not {n}")
    chunk["key"] = tuple(chunk["key"])
    chunk["attrs"] = {a: dec(chunk["attrs"][a]) for a in ATTRS}
    for kind in KINDS:
        chunk[kind] = {k: dec(c) for k, c in chunk[kind].items()}
    for col in [*chunk["attrs"].values(), *(c for kind in KINDS for c in chunk[kind].values())]:
        codes = col[1] if isinstance(col, tuple) else col
        if len(codes) != n or (isinstance(col, tuple) and len(codes) and codes.max() >= len(col[0])):
            raise ValueError("a column does not fit its rows")
    return chunk


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
        return {name: _from_json(c) for name, c in json.loads(body)["shards"].items()}
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, StopIteration):
        return {}


def _write_file(path: Path, chunks: dict[str, dict[str, Any]]) -> None:
    body = json.dumps({"shards": {name: _to_json(c) for name, c in chunks.items()}},
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
    if reread >= min(REWRITE_ROWS, max(1, table.n // 10)) or (reread and loaded is None and not old):
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
    sizes = [c["n"] for c in chunks]
    n = sum(sizes)
    attrs = {a: _merge(sizes, [c["attrs"][a] for c in chunks]) for a in ATTRS}
    for a in ("id", "name"):  # one value per run: its own code
        attrs[a] = Column(uniques=list(chain.from_iterable(c[a] for c in chunks)), codes=np.arange(n, dtype=np.int32))
    attrs["start_time"] = Column(values=np.array(list(chain.from_iterable(c["start_time"] for c in chunks)),
                                                 dtype=np.int64))
    attrs["experiment_id"] = Column(uniques=[experiment_id], codes=np.zeros(n, dtype=np.int32))
    deleted = np.array(list(chain.from_iterable(c["deleted"] for c in chunks)), dtype=bool)
    kinds = {kind: {k: _merge(sizes, [c[kind].get(k) for c in chunks])
                    for k in sorted({k for c in chunks for k in c[kind]})} for kind in KINDS}
    return RunTable(n, attrs, deleted, kinds)


def _merge(sizes: list[int], parts: list[Any]) -> Column:
    """One column from its parts (a float64 array, an encoding, or None: no value in that part)."""
    import numpy as np  # numpy: heavy, only once a search runs

    if all(p is None or not isinstance(p, tuple) for p in parts):
        return Column(values=np.concatenate([np.full(k, np.nan) if p is None else p for k, p in zip(sizes, parts)]
                                            or [np.empty(0)]))
    uniques: list[Any] = []  # not made distinct: a value may repeat (from several shards), each with its code
    out = []
    for k, p in zip(sizes, parts):
        if p is None:
            out.append(np.full(k, -1, dtype=np.int32))
            continue
        if not isinstance(p, tuple):  # floats among encoded parts: encoded too
            p = Column(values=p).encoding()
            p = (p[0][:-1], p[1])
        local, codes = p
        out.append(np.where(codes >= 0, codes + len(uniques), -1).astype(np.int32))
        uniques.extend(local)
    return Column(uniques=uniques, codes=np.concatenate(out) if out else np.empty(0, dtype=np.int32))


def concat(tables: list[RunTable]) -> RunTable:
    """Several experiments' tables as one, in the order given."""
    import numpy as np  # numpy: heavy, only once a search runs

    if len(tables) == 1:
        return tables[0]
    sizes = [t.n for t in tables]

    def part(c: Column | None) -> Any:
        return None if c is None else c.values if c.numeric else (c.uniques, c.codes)

    attrs = {a: _merge(sizes, [part(t.attrs[a]) for t in tables]) for a in [*ATTRS, "experiment_id"]}
    for a in ("id", "name"):
        attrs[a] = Column(uniques=list(chain.from_iterable(t.attrs[a].uniques for t in tables)),
                          codes=np.arange(sum(sizes), dtype=np.int32))
    attrs["start_time"] = Column(values=np.concatenate([t.attrs["start_time"].values for t in tables]
                                                       or [np.empty(0, dtype=np.int64)]))
    kinds = {kind: {k: _merge(sizes, [part(t.kind(kind).get(k)) for t in tables])
                    for k in sorted({k for t in tables for k in t.kind(kind)})} for kind in KINDS}
    deleted = np.concatenate([t.deleted for t in tables] or [np.empty(0, dtype=bool)])
    return RunTable(sum(sizes), attrs, deleted, kinds)


def forget(root: Path | None = None) -> None:
    """Drop the indexes held in memory (all, or a store's): the next load reads the index files, as a
    new process does."""
    with _memory_lock:
        for path in list(_memory):
            if root is None or path.is_relative_to(root):
                del _memory[path]
