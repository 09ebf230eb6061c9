"""Experiments: named groups of runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from .._util import new_id, now_ms
from ..errors import InvalidInput, NotFound
from ..store import SCHEMA, Store, current_store
from ..store.records import ExperimentRecord

if TYPE_CHECKING:
    import pandas as pd

DEFAULT = "Default"
_default_name = DEFAULT


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or "\n" in name:
        raise InvalidInput("experiment name must be a non-empty one-line string of at most 200 characters, "
                           f"got {name!r}")
    return name.strip()


def set_experiment(name: str) -> Experiment:
    """Make ``name`` the experiment that new runs go to (created if needed)."""
    global _default_name
    exp = get_or_create(current_store(), check_name(name))
    _default_name = exp["name"]
    return Experiment(exp)


def default_name() -> str:
    return _default_name


def get_or_create(store: Store, name: str) -> ExperimentRecord:
    name = check_name(name)
    for known in _experiments(store):
        if known["name"] == name:
            return known
    with store.experiments.edit() as docs:
        found = docs.get(name=name)  # another process may have created it since we looked
        if found is not None:
            return cast(ExperimentRecord, found)
        doc: ExperimentRecord = {"schema": SCHEMA, "id": new_id(), "name": name, "created": now_ms(), "tags": {}}
        docs.insert(dict(doc))
    return doc


def _experiments(store: Store) -> list[ExperimentRecord]:
    return cast(list[ExperimentRecord], store.experiments.all())


def find(store: Store, name_or_id: str) -> ExperimentRecord:
    docs = _experiments(store)
    for doc in docs:
        if doc["name"] == name_or_id or doc["id"] == name_or_id:
            return doc
    names = ", ".join(repr(d["name"]) for d in docs) or "none yet"
    raise NotFound(f"no experiment named {name_or_id!r} (experiments: {names})")


def get_experiment(name_or_id: str) -> Experiment:
    """The experiment with this name or id."""
    return Experiment(find(current_store(create=False), name_or_id))


def list_experiments() -> pd.DataFrame:
    """All experiments with their run counts, as a DataFrame."""
    import pandas as pd

    store = current_store(create=False)
    rows = []
    for doc in store.experiments.all():
        runs = int((~store.run_table(doc["id"]).deleted).sum())  # the summary index: no run document parsed
        rows.append({"experiment_id": doc["id"], "name": doc["name"], "runs": runs,
                     "created": pd.Timestamp(doc["created"], unit="ms")})
    return pd.DataFrame(rows, columns=["experiment_id", "name", "runs", "created"])


class Experiment:
    """A named group of runs; ``.runs()`` searches it."""

    def __init__(self, doc: ExperimentRecord) -> None:
        self.id: str = doc["id"]
        self.name: str = doc["name"]
        self.created: int = doc["created"]

    def runs(self, **kwargs: Any) -> pd.DataFrame:
        from .search import search_runs  # cycle: search imports this module (experiment names)

        return search_runs(self.id, **kwargs)

    def __repr__(self) -> str:
        return f"<Experiment {self.name!r} id={self.id[:8]}>"

    def _repr_html_(self) -> str:
        from ..display.html import experiment_card  # display sits above the domain: only this delegation

        return experiment_card(self)
