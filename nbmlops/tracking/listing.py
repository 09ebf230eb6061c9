"""A run listing: read the runs once, then filter, sort and page them many times cheaply.

What a runs browser (the widget, the dashboard) needs: ``search_runs`` builds one DataFrame of
every run on each call; a ``RunListing`` keeps the runs it read (the store's summary index, as
columns: ``tracking/selection.py``), answers a query (a ``search_runs`` filter, or plain text
matched against run names, ids and tags) with a ``RunSelection`` of row numbers, and builds a
DataFrame only for the page shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput
from ..store import current_store
from . import experiments, selection
from .lookup import find_run_doc
from .search import _ATTRS, Clause, _field, parse_clauses

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

BASE_COLUMNS = ("run_name", "status", "start_time", "duration")
# text that means to be a filter, so a parse error is reported rather than searched for as words:
# a comparison, a prefixed name or run attribute first, IN/LIKE before a value, = before a literal
# (``team=red`` stays words, found in the tags as team=red)
_FILTER_LIKE = re.compile(r"[<>!`]|^\s*(?:(?:metrics?|params?|tags?|attributes?|run)\.\S"
                          r"|(?:" + "|".join(_ATTRS) + r")\s*(?:=|\bnot\b|\bin\b|\bi?like\b))"
                          r"|\b(?:not\s+in|in|i?like)\s*[('\"]|=\s*['\"\d(+-.]", re.I)


def looks_like_filter(text: str) -> bool:
    """Whether ``text`` is meant as a ``search_runs`` filter rather than words to find."""
    return bool(_FILTER_LIKE.search(text))


def _column_field(column: str) -> tuple[str, str]:
    if column == "experiment":
        return "experiment", ""
    if column == "run_id":
        return "attributes", "id"
    return _field(column)


class RunSelection:
    """The runs a query kept, in order: ``total``, ``ids``, ``page(offset, limit)``, ``values(column)``."""

    def __init__(self, listing: RunListing, rows: np.ndarray) -> None:
        self.listing = listing
        self._rows = rows

    @property
    def total(self) -> int:
        return len(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def ids(self) -> list[str]:
        return selection.column(self.listing.table, "attributes", "id", self._rows, {})

    def page(self, offset: int = 0, limit: int = 50) -> pd.DataFrame:
        """Rows ``offset`` to ``offset + limit`` as ``search_runs``' DataFrame; its columns are every
        param, metric and tag of the listing, so they stay the same from page to page."""
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidInput(f"offset must be a non-negative integer, got {offset!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidInput(f"limit must be a positive integer, got {limit!r}")
        lst = self.listing
        return selection.frame(lst.table, self._rows[offset:offset + limit], lst.experiments, lst.params,
                               lst.metrics, lst.tags)

    def values(self, column: str) -> list[Any]:
        """One column's value for every selected run, in order (None where a run has none)."""
        kind, key = _column_field(column)
        return selection.column(self.listing.table, kind, key, self._rows, self.listing.experiments)

    def distinct(self, column: str) -> list[Any]:
        """The values ``values(column)`` holds, each once, in the order the runs first show them: what
        tells whether a column varies, without a value per run."""
        kind, key = _column_field(column)
        return selection.distinct(self.listing.table, kind, key, self._rows, self.listing.experiments)


class RunListing:
    """The runs of one experiment (or of all), read once.

    >>> runs = nbmlops.run_listing("churn")
    >>> sel = runs.query("metrics.auc > 0.8", sort="metrics.auc", descending=True)
    >>> sel.total, sel.page(0, 50)
    """

    def __init__(self, experiment: str | None = None, include_deleted: bool = False) -> None:
        store = current_store(create=False)
        exps = store.experiments.all()
        if experiment is not None:
            exps = [experiments.find(store, experiment)]
        self.experiment: str | None = exps[0]["name"] if experiment is not None else None
        self.experiments: dict[str, str] = {e["id"]: e["name"] for e in exps}
        self.include_deleted = include_deleted
        self.table = selection.runs_table(store, list(self.experiments))
        rows = selection.select(self.table, [], include_deleted)
        self._rows = selection.order(self.table, rows, "attributes", "start_time", True)  # newest first: ties
        self._keys()

    def _keys(self) -> None:
        self.params: list[str] = selection.keys_of(self.table, "params", self._rows)
        self.metrics: list[str] = selection.keys_of(self.table, "metrics", self._rows)
        self.tags: list[str] = selection.keys_of(self.table, "tags", self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def columns(self) -> list[str]:
        """Every column a selection can be sorted by: name, status, start, duration, then each
        ``params.*``, ``metrics.*`` and ``tags.*`` (and ``experiment`` when it spans several)."""
        return [*BASE_COLUMNS, *(["experiment"] if self.experiment is None else []),
                *(f"params.{k}" for k in self.params), *(f"metrics.{k}" for k in self.metrics),
                *(f"tags.{k}" for k in self.tags)]

    def query(self, query: str | None = None, sort: str | None = None, descending: bool = False) -> RunSelection:
        """The runs that ``query`` keeps, sorted by the column ``sort`` (newest first otherwise and
        among ties; runs without a value last). ``query`` is a ``search_runs`` filter
        (``metrics.acc > 0.9 and params.model = 'rf'``) or plain words, found case-insensitively in
        run names, ids and tags (``key=value``). A malformed filter raises ``InvalidInput``."""
        rows = self._rows
        text = (query or "").strip()
        if text:
            try:
                clauses: list[Clause] | None = parse_clauses(text)
            except InvalidInput:
                if looks_like_filter(text):
                    raise
                clauses = None
            if clauses is not None:
                rows = rows[selection.matches(self.table, clauses)[rows]]
            else:
                rows = rows[selection.words(self.table, text.lower().split())[rows]]
        if sort:
            rows = self._sorted(rows, sort, descending)
        return RunSelection(self, rows)

    def _sorted(self, rows: np.ndarray, column: str, descending: bool) -> np.ndarray:
        if column not in self.columns and column != "run_id":
            raise InvalidInput(f"cannot sort by {column!r}: choose one of the columns "
                               f"({', '.join(self.columns[:12])}{', …' if len(self.columns) > 12 else ''})")
        kind, key = _column_field(column)
        return selection.order(self.table, rows, kind, key, descending, self.experiments)

    def update(self, run_ids: Iterable[str]) -> None:
        """Read these runs again (after tagging or deleting them): changed ones are replaced in
        place, deleted ones leave the listing (unless it includes deleted runs); no other run
        joins or leaves it."""
        import numpy as np  # numpy: heavy, imported by the first search that needs it

        store = current_store(create=False)
        for run_id in run_ids:
            find_run_doc(store, run_id)  # an unknown id is refused, as before
        old = selection.column(self.table, "attributes", "id", self._rows, {})
        self.table = selection.runs_table(store, list(self.experiments))
        where = {run_id: i for i, run_id in enumerate(self.table.attrs["id"].uniques or [])}
        rows = [where[r] for r in old if r in where]
        if not self.include_deleted:
            rows = [r for r in rows if not self.table.deleted[r]]
        self._rows = np.array(rows, dtype=np.int64)
        self._keys()


def run_listing(experiment: str | None = None, include_deleted: bool = False) -> RunListing:
    """The runs of ``experiment`` (name or id; all experiments if None), read once, to query and page.

    >>> runs = nbmlops.run_listing("churn")
    >>> runs.query("rf", sort="metrics.auc", descending=True).page(0, 50)
    """
    return RunListing(experiment, include_deleted)


def experiment_names() -> list[str]:
    """The names of every experiment, in the order they were made (no run is read, unlike
    ``list_experiments``, which counts them)."""
    return [e["name"] for e in current_store(create=False).experiments.all()]
