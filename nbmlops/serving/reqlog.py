"""The request log of a deployment, written off the request path.

Handlers encode a record (orjson, about 2 µs) and append the line to an in-memory deque; a
background thread appends the lines every 100 ms to the store's ``RotatingLog``
(``Store.request_log``: files rotate at ``max_bytes``, at most ``keep`` are kept). Encoding on
the request path rather than in the thread keeps the thread's hold on the GIL short (a join
and a write, which releases it) and keeps no record's lists alive for the garbage collector.
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path

import orjson

from ..store import RotatingLog, current_store
from ..store.records import RequestRecord

STEM = "requests"  # requests-NNNNNN.jsonl, as Store.request_log names them
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE


class RequestLog:
    """Records queued by ``add`` and written by a thread; ``log`` is ``store.request_log(id)``
    (or a folder, for a log outside a store)."""

    def __init__(self, log: RotatingLog | Path, max_bytes: int = 64 << 20, keep: int = 8) -> None:
        self.log = log if isinstance(log, RotatingLog) else RotatingLog(Path(log), STEM, max_bytes, keep)
        self.log.folder.mkdir(parents=True, exist_ok=True)
        self.pending: deque[bytes] = deque()
        self.unwritable = 0  # records that could not be serialized: left out, counted
        self._stop = threading.Event()
        self._writing = threading.Lock()  # the flush thread and close() share the log's open file
        self._thread = threading.Thread(target=self._run, name="nbmlops-request-log", daemon=True)
        self._thread.start()

    def add(self, record: RequestRecord) -> None:
        try:
            self.pending.append(orjson.dumps(record, option=_OPTIONS))
        except (TypeError, orjson.JSONEncodeError):  # one record that cannot be written costs only itself
            self.unwritable += 1

    def flush(self) -> None:
        pending = self.pending
        if not pending:
            return
        with self._writing:  # one flusher at a time, so lines keep their order
            chunks = []
            while pending:
                chunks.append(pending.popleft())
            self.log.append(b"".join(chunks))

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self.flush()
            except Exception:
                pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.flush()
        with self._writing:
            self.log.close()


def deployment_requests(deployment_id: str) -> list[RequestRecord]:
    """Every request a deployment logged, oldest first (lines cut by a crash are skipped)."""
    return current_store().request_log(deployment_id).read()  # type: ignore[return-value]


def read_requests(folder: Path) -> list[RequestRecord]:
    """Every request logged in ``folder`` (a request log outside a store), oldest first."""
    return RotatingLog(folder, STEM).read()  # type: ignore[return-value]
