"""The request log of a deployment: append-only JSON Lines, written off the request path.

Handlers only append a record to an in-memory deque; a background thread writes the
records every 100 ms. Files rotate at ``max_bytes`` and at most ``keep`` files are
kept, so the log stays bounded.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from pathlib import Path
from typing import Any

from ..store import read_lines


class RequestLog:
    def __init__(self, folder: Path, max_bytes: int = 64 << 20, keep: int = 8) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.keep = keep
        folder.mkdir(parents=True, exist_ok=True)
        self.pending: deque[dict[str, Any]] = deque()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nbmlops-request-log", daemon=True)
        self._thread.start()

    def add(self, record: dict[str, Any]) -> None:
        self.pending.append(record)

    def _current(self) -> Path:
        files = sorted(self.folder.glob("requests-*.jsonl"))
        if files and files[-1].stat().st_size < self.max_bytes:
            return files[-1]
        n = int(files[-1].stem.split("-")[1]) + 1 if files else 1
        for old in files[: max(0, len(files) + 1 - self.keep)]:
            old.unlink(missing_ok=True)
        return self.folder / f"requests-{n:06d}.jsonl"

    def flush(self) -> None:
        import orjson

        if not self.pending:
            return
        chunks = []
        while self.pending:
            try:
                chunks.append(orjson.dumps(self.pending.popleft(), option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
            except (TypeError, orjson.JSONEncodeError):  # one record that cannot be written costs only itself
                continue
        if not chunks:
            return
        fd = os.open(self._current(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, b"".join(chunks))
        finally:
            os.close(fd)

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


def read_requests(folder: Path) -> list[dict[str, Any]]:
    """Every logged request, oldest first (lines cut by a crash are skipped)."""
    out: list[dict[str, Any]] = []
    for path in sorted(folder.glob("requests-*.jsonl")):
        out.extend(r for r in read_lines(path) if isinstance(r, dict))
    return out
