"""Append-only JSON Lines: one writer per file, any number of readers.

Each record is one ``os.write`` of one line to a file opened with ``O_APPEND``,
so a record is in the file (in the page cache) as soon as the call returns and a
kill -9 loses nothing already appended. A line cut short by a crash, or one that
does not parse, is skipped on read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class AppendLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(self._fd).st_size
        if size and os.pread(self._fd, 1, size - 1) != b"\n":
            os.write(self._fd, b"\n")  # end a line a crash cut short, so it cannot swallow ours

    def write(self, line: str) -> None:
        """Append one record; ``line`` must end with a newline."""
        self.write_bytes(line.encode())

    def write_bytes(self, lines: bytes) -> None:
        """Append whole lines (each ending with a newline) in one write."""
        os.write(self._fd, lines)  # type: ignore[arg-type]

    def size(self) -> int:
        return os.fstat(self._fd).st_size  # type: ignore[arg-type]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def read_lines(path: Path, counts: dict[str, int] | None = None) -> Iterator[Any]:
    """Yield each complete, parseable JSON line of ``path``; nothing if it does not exist.
    With ``counts``, ``counts["skipped"]`` counts the lines skipped (cut short or unparseable)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    end = data.rfind(b"\n")
    skipped = int(end < len(data) - 1)  # a last line without its newline: still being written, or cut
    for raw in data[: end + 1].splitlines() if end >= 0 else []:
        try:
            yield json.loads(raw)
        except ValueError:
            skipped += 1
    if counts is not None:
        counts["skipped"] = counts.get("skipped", 0) + skipped


class RotatingLog:
    """Append-only JSON Lines split over numbered files (``<stem>-000001.jsonl``, …), each an
    ``AppendLog``: a new file starts when the last reaches ``max_bytes`` and at most ``keep`` files
    stay, so the log is bounded. One writer (a process's flush thread); any number of readers."""

    def __init__(self, folder: Path, stem: str, max_bytes: int = 64 << 20, keep: int = 8) -> None:
        self.folder = folder
        self.stem = stem
        self.max_bytes = max_bytes
        self.keep = keep
        self._log: AppendLog | None = None

    def files(self) -> list[Path]:
        return sorted(self.folder.glob(f"{self.stem}-*.jsonl"))

    def _current(self) -> AppendLog:
        if self._log is not None and self._log.path.exists() and self._log.size() < self.max_bytes:
            return self._log
        if self._log is not None:
            self._log.close()
        files = self.files()
        if files and files[-1].stat().st_size < self.max_bytes:
            path = files[-1]
        else:
            n = int(files[-1].stem.rsplit("-", 1)[1]) + 1 if files else 1
            for old in files[: max(0, len(files) + 1 - self.keep)]:
                old.unlink(missing_ok=True)
            path = self.folder / f"{self.stem}-{n:06d}.jsonl"
        self._log = AppendLog(path)
        return self._log

    def append(self, lines: bytes) -> None:
        """Append whole lines (each ending with a newline) in one write."""
        self._current().write_bytes(lines)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def read(self) -> list[dict[str, Any]]:
        """Every record, oldest first (lines cut by a crash are skipped)."""
        out: list[dict[str, Any]] = []
        for path in self.files():
            out.extend(r for r in read_lines(path) if isinstance(r, dict))
        return out
