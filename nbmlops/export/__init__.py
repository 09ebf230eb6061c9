"""Graduating beyond one machine: the store's contents, handed to the established engines.

- ``mlflow``: runs (params, full metric histories, tags, status, times, artifacts, datasets),
  logged models (MLflow sklearn flavor, with signatures) and registered models (versions,
  aliases) to an MLflow tracking server; idempotent. ``import_mlflow`` brings runs back.
- ``feast``: a Feast feature repository (``feature_store.yaml``, Python definitions, Parquet
  sources) for the store's feature views.
- ``kserve``: a model directory KServe's scikit-learn runtime loads, an ``InferenceService``
  manifest and, optionally, a batch-scoring Job.

The engines themselves are heavy optional dependencies (``pip install nbmlops[graduate]``);
each is imported only inside the function that needs it.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from .._util import now_ms
from ..errors import InvalidInput, NbmlopsError
from ..store import current_store

__all__ = ["ExportError", "Summary", "prepare_dir", "inside", "require"]

MARKER = ".nbmlops-export.json"


class ExportError(NbmlopsError):
    """The target engine refused the export or could not be reached; the message says which and why."""


class Summary(dict):
    """What an export or import did: counts by kind, plus notes about what was left out."""

    def __init__(self, target: str, **counts: Any) -> None:
        super().__init__(counts)
        self.target = target
        self.notes: list[str] = []

    def add(self, key: str, n: int = 1) -> None:
        self[key] = self.get(key, 0) + n

    def __repr__(self) -> str:
        parts = [f"{k.replace('_', ' ')}: {v:,}" if isinstance(v, int) else f"{k.replace('_', ' ')}: {v}"
                 for k, v in self.items()]
        lines = [f"{self.target} — " + ("; ".join(parts) if parts else "nothing to do")]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def require(module: str, what: str) -> Any:
    """Import an optional engine, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ExportError(f"{what} needs the {module.split('.')[0]!r} package ({exc}): "
                          "pip install 'nbmlops[graduate]'") from None


def prepare_dir(path: str | os.PathLike[str], force: bool, kind: str) -> Path:
    """The export folder, resolved and ready. Refuses a file, a folder inside the store, and a
    non-empty folder unless ``force``; with ``force`` a folder written by an earlier export (it
    holds our marker) is emptied first, any other folder only gets our files written over it."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path).strip():
        raise InvalidInput(f"give the folder to export the {kind} to, got {path!r}")
    target = Path(path).expanduser().resolve()
    store = current_store(create=False).root
    if target == store or target.is_relative_to(store):
        raise InvalidInput(f"{target} is inside the store ({store}); export the {kind} to a folder outside it")
    if store.is_relative_to(target) and force:
        raise InvalidInput(f"{target} holds the store ({store}); export the {kind} to a folder of its own")
    if target.exists() and not target.is_dir():
        raise InvalidInput(f"{target} is a file; give a folder to export the {kind} to")
    if target.exists() and any(target.iterdir()):
        if not force:
            raise InvalidInput(f"{target} exists and is not empty: choose a new folder, or pass force=True "
                               "(--force) to write over it")
        if (target / MARKER).is_file():
            for child in target.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    target.mkdir(parents=True, exist_ok=True)
    return target


def mark(target: Path, kind: str, **info: Any) -> None:
    (target / MARKER).write_text(json.dumps({"kind": kind, "exported": now_ms(), **info}, indent=1, default=str) + "\n")


def inside(root: Path, *parts: str) -> Path:
    """``root/parts…``, refused if it would land outside ``root`` (names reach file paths)."""
    p = root.joinpath(*parts).resolve()
    if not p.is_relative_to(root):
        raise InvalidInput(f"{'/'.join(parts)!r} would be written outside {root}")
    return p
