"""Which store the dashboard and the server's kernels share, and the other stores found below the root.

At start the extension resolves ONE store — ``--NbmlopsDashboard.store``, else ``$NBMLOPS_STORE``, else the
nearest ``.nbmlops/`` at or above the server's root, else ``<root>/.nbmlops`` (made by the first write) — and
puts it in the server's ``NBMLOPS_STORE``, which every kernel the server starts inherits (jupyter_server
starts kernels with a copy of its environment). So a notebook in ``notebooks/`` writes where the dashboard
reads. Stores elsewhere below the root (a shallow, bounded scan) are listed so the user can switch the
dashboard to one; the kernels keep the store they were handed.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbmlops

from ..errors import InvalidInput
from ..store import DIRNAME, MARKER, locate, resolve_named

MAX_DEPTH = 3  # root/.nbmlops is depth 0, root/a/b/c/.nbmlops depth 3
MAX_DIRS = 3000  # folders looked into, at most: the scan stays in milliseconds on a big home folder
SKIP = {"node_modules", "__pycache__", "site-packages", "build", "dist"}


@dataclass
class Stores:
    """The server's root, the store its kernels are handed and how it was chosen, and what the dashboard shows."""

    root_dir: Path
    kernels: Path
    source: str  # "option" | "environment" | "found" | "new"
    shown: Path | None = None
    found: list[Path] = field(default_factory=list)

    @property
    def active(self) -> Path:
        return self.shown or self.kernels


def resolve(configured: str, root_dir: str | os.PathLike[str]) -> tuple[Path, str]:
    """The one store of this server and where the choice came from (see the module doc)."""
    if configured:
        return resolve_named(Path(configured)), "option"
    env = os.environ.get("NBMLOPS_STORE")
    if env:
        return resolve_named(Path(env)), "environment"
    path = locate(Path(root_dir).expanduser())
    return path, "found" if (path / MARKER).exists() else "new"


def scan(root: Path, depth: int = MAX_DEPTH, max_dirs: int = MAX_DIRS) -> list[Path]:
    """Stores (``.nbmlops/`` folders holding a store) at most ``depth`` folders below ``root``: breadth
    first, hidden folders, virtual environments and build folders skipped, symlinks not followed."""
    found: list[Path] = []
    queue = deque([(root, 0)])
    seen = 0
    while queue and seen < max_dirs:
        folder, level = queue.popleft()
        seen += 1
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            if entry.name == DIRNAME:
                if os.path.exists(os.path.join(entry.path, MARKER)):
                    found.append(Path(entry.path))
            elif level < depth and not entry.name.startswith(".") and entry.name not in SKIP \
                    and not os.path.exists(os.path.join(entry.path, "pyvenv.cfg")):
                queue.append((Path(entry.path), level + 1))
    return found


def describe(stores: Stores) -> dict[str, Any]:
    """What ``GET /nbmlops/api/store`` answers: the store shown, whether it exists, the kernels' store,
    the stores found below the root, and, when the shown store does not exist yet, what to do."""
    stores.found = scan(stores.root_dir)
    active = stores.active
    listed = list(dict.fromkeys([stores.kernels, *stores.found]))
    exists = (active / MARKER).exists()
    hint = None
    if not exists:
        others = [p for p in stores.found if p != active]
        hint = (f"no store at {active} yet. Notebooks this server starts write there (their kernels get "
                f"NBMLOPS_STORE={stores.kernels}). To show another store, start the server with "
                "--NbmlopsDashboard.store=PATH (or NBMLOPS_STORE=PATH)"
                + (f", or pick a store found below {stores.root_dir} ({len(others)} in the menu)" if others else "")
                + ".")
    return {"path": str(active), "exists": exists, "kernels": str(stores.kernels), "source": stores.source,
            "root": str(stores.root_dir), "hint": hint,
            "stores": [{"path": str(p), "relative": _relative(p, stores.root_dir), "exists": (p / MARKER).exists(),
                        "kernels": p == stores.kernels, "shown": p == active} for p in listed]}


def switch(stores: Stores, path: str) -> Path:
    """Show ``path`` in the dashboard: the kernels' store, or one of the stores the scan finds below the root."""
    wanted = resolve_named(Path(path)) if Path(path).is_absolute() else resolve_named(stores.root_dir / path)
    allowed = [stores.kernels, *scan(stores.root_dir)]
    if wanted not in allowed:
        raise InvalidInput(f"{path!r} is not a store the dashboard knows: give the kernels' store "
                           f"{stores.kernels} or one found below {stores.root_dir} (GET nbmlops/api/store lists them)")
    stores.shown = None if wanted == stores.kernels else wanted
    nbmlops.set_store(wanted)
    return wanted


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
