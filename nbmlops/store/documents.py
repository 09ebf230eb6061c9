"""TinyDB documents that many processes can share and a crash cannot corrupt.

TinyDB is not process-safe and rewrites its whole file on each write. So every
write here holds a cross-process lock on a separate ``.lock`` file around the
whole read-modify-write, opens TinyDB afresh over ``AtomicJSONStorage`` (which
rereads the file and replaces it atomically), and closes it again. Reads need no
lock: a file is only ever replaced whole, never written in place.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

from filelock import FileLock
from tinydb import TinyDB, where
from tinydb.queries import QueryInstance
from tinydb.storages import Storage
from tinydb.table import Table

from ..errors import StoreError
from .procs import pid_space

_TABLE = "docs"
D = TypeVar("D", bound=Mapping[str, object])  # the record type of a file's documents (nbmlops.store.records)


def atomic_write(path: Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part.
    ``durable`` also fsyncs it first, so it survives a power cut, not only a killed process."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}_{pid_space()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class AtomicJSONStorage(Storage):
    """A TinyDB storage that reads the file on every ``read`` and replaces it on every ``write``."""

    def __init__(self, path: str | Path, durable: bool = True, rebuildable: bool = False) -> None:
        self.path = Path(path)
        self.durable = durable
        self.rebuildable = rebuildable

    def read(self) -> dict[str, dict[str, Any]] | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None  # not written yet: legitimately empty
        except OSError as exc:  # a folder where the file should be, no permission...
            raise StoreError(f"{self.path} cannot be read ({exc.strerror}); "
                             "it is not a document file of nbmlops") from None
        if not raw:
            self._empty()  # raises, unless the file is a rebuildable index
            return None
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise StoreError(f"{self.path} is not valid JSON ({exc}); it was not written by nbmlops") from None
        # nbmlops always writes {"docs": {id: {...}, ...}}: anything else (``{}``, another table, a
        # document that is not an object) was not written by it and must not read as "nothing here"
        table = data.get(_TABLE) if isinstance(data, dict) and set(data) == {_TABLE} else None
        if not isinstance(table, dict) or not all(isinstance(d, dict) for d in table.values()):
            raise StoreError(f"{self.path} holds JSON that is not a table of documents; it was not written by nbmlops")
        return data

    def _empty(self) -> None:
        """A file that exists with 0 bytes was damaged: ``atomic_write`` never leaves one (a file
        is absent or whole). Resetting it would silently forget what it held (and, for a counter
        like the next version number, reuse numbers), so refuse, unless it is an index the store
        rebuilds (runs in progress, last run of each cell), which is then read as empty."""
        if self.rebuildable:
            warnings.warn(f"{self.path} was empty (0 bytes, damaged); nbmlops rebuilds this index", stacklevel=4)
            return
        raise StoreError(f"{self.path} is empty (0 bytes), but nbmlops never writes an empty document: the file "
                         "was damaged (truncated by another program, or lost in a crash of the machine). Nothing "
                         "was read or written; restore it from a backup, or move it aside only if losing what it "
                         "held is acceptable")

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        atomic_write(self.path, json.dumps(data, separators=(",", ":"), default=str).encode(), self.durable)

    def close(self) -> None:
        pass


_thread_locks: dict[Path, threading.RLock] = {}
_thread_locks_guard = threading.Lock()


def _thread_lock(path: Path) -> Any:
    """One lock per file for the threads of this process: a FileLock object shared between threads
    counts them as re-entries of one holder and lets them all in."""
    with _thread_locks_guard:
        lock = _thread_locks.get(path)
        if lock is None:
            lock = _thread_locks[path] = threading.RLock()
        return lock


_cache: dict[Path, tuple[tuple[int, int, int], list[dict[str, Any]]]] = {}
_cache_lock = threading.Lock()


class DocFile(Generic[D]):
    """One small TinyDB file of documents, with a lock and a read cache.

    >>> f = DocFile(tmp / "runs.json")
    >>> with f.table() as t:
    ...     t.insert({"id": "ab12", "status": "RUNNING"})
    """

    def __init__(self, path: Path, durable: bool = True, rebuildable: bool = False) -> None:
        self.path = path
        self.durable = durable
        self.rebuildable = rebuildable
        self._lock = FileLock(str(path) + ".lock", thread_local=False)

    @contextmanager
    def table(self, durable: bool | None = None) -> Iterator[Table]:
        """The file's table for one read-modify-write, under the cross-process lock.
        ``durable=False`` skips the fsync of this write (it stays atomic)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _thread_lock(self.path), self._lock:  # threads of this process, then other processes
            db = TinyDB(self.path, storage=AtomicJSONStorage, durable=self.durable if durable is None else durable,
                        rebuildable=self.rebuildable)
            try:
                yield db.table(_TABLE, cache_size=0)
            finally:
                db.close()

    @contextmanager
    def edit(self, durable: bool | None = None) -> Iterator[Docs[D]]:
        """The file's documents for one read-modify-write, under the cross-process lock: every
        check that guards the write belongs inside this block. ``durable=False`` skips the fsync."""
        with self.table(durable) as t:
            yield Docs(t)

    def all(self) -> list[D]:
        """Every document, from a cache refreshed when the file changes. Do not mutate them."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return []
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        with _cache_lock:
            hit = _cache.get(self.path)
        if hit is not None and hit[0] == key:
            return cast(list[D], hit[1])
        data = AtomicJSONStorage(self.path, rebuildable=self.rebuildable).read() or {}
        docs = list(data.get(_TABLE, {}).values())
        with _cache_lock:
            _cache[self.path] = (key, docs)
        return cast(list[D], docs)

    def fresh(self) -> list[D]:
        """Every document, read from the file now (no cache): for checks made under the lock, where
        a reused inode with the same size and time stamp must not pass for the old file."""
        data = AtomicJSONStorage(self.path, rebuildable=self.rebuildable).read() or {}
        return cast(list[D], list(data.get(_TABLE, {}).values()))

    def get(self, field: str, value: Any) -> D | None:
        """The first document whose ``field`` equals ``value`` (a copy), or None."""
        for doc in self.all():
            if doc.get(field) == value:
                return cast(D, json.loads(json.dumps(doc)))
        return None


class Docs(Generic[D]):
    """The documents of one file inside ``DocFile.edit()``, matched by field values, so that no
    code outside the store needs TinyDB's queries.

    >>> with f.edit() as docs:
    ...     docs.update({"status": "FINISHED"}, id=run_id)
    """

    def __init__(self, table: Table) -> None:
        self._t = table

    def all(self) -> list[D]:
        return [cast(D, dict(d)) for d in self._t.all()]

    def find(self, **match: Any) -> list[D]:
        """Every document whose fields equal ``match`` (copies: change them, then ``update``)."""
        return [cast(D, dict(d)) for d in self._t.search(_query(match))]

    def get(self, **match: Any) -> D | None:
        """The first document matching, or None."""
        found = self.find(**match)
        return found[0] if found else None

    def insert(self, doc: D) -> None:
        self._t.insert(doc)

    def insert_many(self, docs: Iterable[D]) -> None:
        """Insert several documents in one write (``insert`` rewrites the file once per document)."""
        self._t.insert_multiple(docs)

    def update(self, fields: dict[str, Any], **match: Any) -> int:
        """Set ``fields`` on every document matching; how many were changed."""
        return len(self._t.update(fields, _query(match)))

    def upsert(self, doc: D | dict[str, Any], **match: Any) -> None:
        """Replace the fields of the document matching, or insert ``doc``."""
        self._t.upsert(doc, _query(match))

    def remove(self, **match: Any) -> int:
        return len(self._t.remove(_query(match)))

    def remove_any(self, field: str, values: Iterable[Any]) -> int:
        """Remove every document whose ``field`` is one of ``values``."""
        return len(self._t.remove(where(field).one_of(list(values))))


def _query(match: dict[str, Any]) -> QueryInstance:
    if not match:
        raise ValueError("match at least one field")
    items = iter(match.items())
    field, value = next(items)
    q = where(field) == value
    for field, value in items:
        q &= where(field) == value
    return q


class DamagedFile(UserWarning):
    """A document file that cannot be read was left out of a listing."""


def readable_docs(files: Iterable[DocFile[D]]) -> list[D]:
    """The documents of several files, for a listing: a damaged file is reported (a ``DamagedFile``
    warning naming it) and left out, so damage in one place does not hide everything else."""
    out: list[D] = []
    for f in files:
        try:
            out.extend(f.all())
        except StoreError as exc:
            warnings.warn(f"left out of the listing: {exc}", DamagedFile, stacklevel=2)
    return out
