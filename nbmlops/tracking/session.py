"""Process-wide tracking state: the stack of active runs, the stores already swept, and the
dataset resolver a pipeline step installs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import InvalidInput
from ..store import Store, current_store
from .stale import sweep_stale_runs

if TYPE_CHECKING:
    from .runs import Run

_active: list[Run] = []
_swept: set[Path] = set()


class DatasetResolver(Protocol):
    """What a pipeline step tells ``load_dataset``: the version it passes in, or data from a file."""

    def pinned(self, name: str) -> str | None:
        """``name@N`` when the running step receives dataset ``name``, else None."""

    def load_local(self, ref: str) -> Any:
        """The data of an input dataset read from a file (a Kubeflow component), else None."""


_resolver: DatasetResolver | None = None


def set_dataset_resolver(resolver: DatasetResolver | None) -> None:
    """Install the resolver that ``load_dataset`` asks first (None: none)."""
    global _resolver
    _resolver = resolver


def dataset_resolver() -> DatasetResolver | None:
    """The installed dataset resolver, or None."""
    return _resolver


def tracking_store() -> Store:
    """The store in effect, swept once per process of runs whose process died."""
    store = current_store()
    if store.root not in _swept:
        _swept.add(store.root)
        sweep_stale_runs(store)
        store.clean_tmp()
    return store


def push_run(run: Run) -> None:
    """Make ``run`` the innermost active run of this process."""
    _active.append(run)


def pop_run(run: Run) -> None:
    """Take ``run`` off this process's stack of active runs (wherever it is in it)."""
    if run in _active:
        _active.remove(run)


def active_runs() -> list[Run]:
    """The runs in progress in this process, outermost first (a copy)."""
    return list(_active)


def active_run() -> Run | None:
    """The innermost run in progress in this process, or None."""
    return _active[-1] if _active else None


def require_active(hint: str = "") -> Run:
    if not _active:
        raise InvalidInput("no active run: log inside `with nbmlops.start_run():` or a %%track cell "
                           f"(nbmlops never starts a run implicitly){hint}")
    return _active[-1]
