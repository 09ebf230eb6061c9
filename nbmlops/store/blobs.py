"""Content-addressed blobs: ``blobs/sha256/ab/cdef…``, written once, checked on read."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path
from typing import Any

from ..errors import IntegrityError, InvalidInput, NotFound
from .procs import own_start, pid_space

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """The sha256 hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class HashingWriter:
    """A binary file that hashes what is written to it (for ``pickle.dump`` and the like)."""

    def __init__(self, f: Any) -> None:
        self.f = f
        self.h = hashlib.sha256()

    def write(self, data: Any) -> int:
        self.h.update(data)
        return self.f.write(data)

    def hexdigest(self) -> str:
        return self.h.hexdigest()


class BlobStore:
    """Immutable files named by their sha256: storing the same bytes twice stores them once."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = root
        self.tmp = tmp

    def path(self, sha: str) -> Path:
        if not isinstance(sha, str) or not _HEX64.match(sha):
            raise InvalidInput(f"not a sha256 hex digest: {sha!r}")
        return self.root / sha[:2] / sha[2:]

    def tmp_path(self, suffix: str = "") -> Path:
        """A fresh path on the store's file system to write a blob to before ``put_path``."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        # pid, its pid space and start tick name the writer, even after its pid is reused or seen from
        # a container (``Store.clean_tmp``)
        start = own_start()
        return self.tmp / f"{os.getpid()}-{start + '-' if start else ''}{os.urandom(8).hex()}_{pid_space()}{suffix}"

    def put_path(self, tmp: Path, sha: str | None = None) -> tuple[str, int]:
        """Move a finished temporary file into the store; return (sha256, size). Pass ``sha``
        when it was computed while writing (``HashingWriter``) to skip reading the file again."""
        sha = sha or sha256_file(tmp)
        size = tmp.stat().st_size
        dest = self.path(sha)
        if dest.exists():
            tmp.unlink()
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.chmod(tmp, 0o444)
            os.replace(tmp, dest)
        return sha, size

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        sha = hashlib.sha256(data).hexdigest()
        if self.path(sha).exists():
            return sha, len(data)
        tmp = self.tmp_path()
        tmp.write_bytes(data)
        return self.put_path(tmp)

    def put_file(self, src: Path) -> tuple[str, int]:
        tmp = self.tmp_path()
        shutil.copyfile(src, tmp)
        return self.put_path(tmp)

    def verified_path(self, sha: str) -> Path:
        """The blob's path after checking its bytes still hash to ``sha``."""
        path = self.path(sha)
        if not path.exists():
            raise NotFound(f"blob {sha[:12]}… is missing from the store")
        actual = sha256_file(path)
        if actual != sha:
            raise IntegrityError(
                f"blob {sha[:12]}… was modified on disk (its content now hashes to {actual[:12]}…); refusing to use it"
            )
        return path

    def read_bytes(self, sha: str) -> bytes:
        return self.verified_path(sha).read_bytes()

    def stats(self) -> tuple[int, int]:
        """(number of blobs, total bytes)."""
        n = size = 0
        if self.root.exists():
            for p in self.root.glob("*/*"):
                n += 1
                size += p.stat().st_size
        return n, size
