"""Append-only JSON Lines: one writer per file, any number of readers.

Each record is one ``os.write`` of one line to a file opened with ``O_APPEND``,
so a record is in the file (in the page cache) as soon as the call returns and a
kill -9 loses nothing already appended. A line cut short by a crash, or one that
does not parse, is skipped on read. Reading parses a block of lines at a time.
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


_BLOCK = 1 << 20  # bytes read at a time: a reader's memory stays bounded however long the log


def read_lines(path: Path, counts: dict[str, int] | None = None) -> Iterator[Any]:
    """Yield each complete, parseable JSON line of ``path``; nothing if it does not exist.
    With ``counts``, ``counts["skipped"]`` counts the lines skipped (cut short or unparseable)."""
    for items in read_blocks(path, counts):
        yield from items


def read_blocks(path: Path, counts: dict[str, int] | None = None) -> Iterator[list[Any]]:
    """``read_lines`` a block at a time: the parsed lines of each block of about 1 MiB of the file
    (up to its size when reading began), so memory stays bounded however long the log. The whole
    lines of a block are parsed at once (``parse_block``)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - a missing log reads as empty; the with below closes it
    except FileNotFoundError:
        return
    skipped = 0
    with f:
        left = os.fstat(f.fileno()).st_size
        rest = b""
        while left > 0:
            block = f.read(min(_BLOCK, left))
            if not block:  # the file shrank meanwhile (nbmlops never truncates a log)
                break
            left -= len(block)
            block = rest + block if rest else block
            end = block.rfind(b"\n")
            if end < 0:
                rest = block
                continue
            rest = block[end + 1:]
            items, bad = parse_block(block[:end + 1])
            skipped += bad
            yield items
    skipped += bool(rest)  # a last line without its newline: still being written, or cut
    if counts is not None:
        counts["skipped"] = counts.get("skipped", 0) + skipped


def parse_block(block: bytes) -> tuple[list[Any], int]:
    """The parsed lines of ``block`` (whole lines, each ending with a newline) and how many did not
    parse. One ``json.loads`` over the lines joined as one array (a 100,000-point metric log parses
    ten times faster than line by line); if that fails or finds another number of values than
    lines (a damaged line), line by line, skipping the lines that do not parse."""
    n = block.count(b"\n")
    try:
        items = json.loads(b"[" + block[:-1].replace(b"\n", b",") + b"]")
    except ValueError:  # UnicodeDecodeError too
        items = None
    if isinstance(items, list) and len(items) == n:
        return items, 0
    items, bad = [], 0
    for raw in block.splitlines():
        try:
            items.append(json.loads(raw))
        except ValueError:
            bad += 1
    return items, bad


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
