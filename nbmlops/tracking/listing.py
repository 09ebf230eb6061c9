"""A run listing: read the runs once, then filter, sort and page them many times cheaply.

What a runs browser (the widget, the dashboard) needs: ``search_runs`` builds one DataFrame of
every run on each call; a ``RunListing`` keeps the run documents it read, answers a query (a
``search_runs`` filter, or plain text matched against run names, ids and tags) with a
``RunSelection``, and builds a DataFrame only for the page shown.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput
from ..store import current_store
from . import experiments
from .lookup import find_run_doc
from .search import _ATTRS, _getter, parse_filter, runs_frame

if TYPE_CHECKING:
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


def _sort_key(column: str, names: dict[str, str]) -> Callable[[dict[str, Any]], Any]:
    if column == "experiment":
        return lambda d: names.get(d["experiment_id"])
    if column == "run_id":
        return lambda d: d["id"]
    return _getter(column)


class RunSelection:
    """The runs a query kept, in order: ``total``, ``ids``, ``page(offset, limit)``, ``values(column)``."""

    def __init__(self, listing: RunListing, docs: list[dict[str, Any]]) -> None:
        self.listing = listing
        self._docs = docs

    @property
    def total(self) -> int:
        return len(self._docs)

    def __len__(self) -> int:
        return len(self._docs)

    @property
    def ids(self) -> list[str]:
        return [d["id"] for d in self._docs]

    def page(self, offset: int = 0, limit: int = 50) -> pd.DataFrame:
        """Rows ``offset`` to ``offset + limit`` as ``search_runs``' DataFrame; its columns are every
        param, metric and tag of the listing, so they stay the same from page to page."""
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidInput(f"offset must be a non-negative integer, got {offset!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidInput(f"limit must be a positive integer, got {limit!r}")
        lst = self.listing
        return runs_frame(self._docs[offset:offset + limit], lst.experiments, lst.params, lst.metrics, lst.tags)

    def values(self, column: str) -> list[Any]:
        """One column's value for every selected run, in order (None where a run has none)."""
        get = _sort_key(column, self.listing.experiments)
        return [get(d) for d in self._docs]


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
        docs = [d for e in exps for d in store.run_docs(e["id"]) if include_deleted or not d.get("deleted")]
        docs.sort(key=lambda d: d["start_time"], reverse=True)  # newest first: the order of ties in any sort
        self._docs = docs
        self._keys()

    def _keys(self) -> None:
        docs = self._docs
        self.params: list[str] = sorted({k for d in docs for k in d["params"]})
        self.metrics: list[str] = sorted({k for d in docs for k in d["metrics"]})
        self.tags: list[str] = sorted({k for d in docs for k in d["tags"]})
        self._text: list[str] | None = None

    def __len__(self) -> int:
        return len(self._docs)

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
        docs = self._docs
        text = (query or "").strip()
        if text:
            try:
                keep: Callable[[dict[str, Any]], bool] | None = parse_filter(text)
            except InvalidInput:
                if looks_like_filter(text):
                    raise
                keep = None
            if keep is not None:
                docs = [d for d in docs if keep(d)]
            else:
                words = text.lower().split()
                hay = self._haystack()
                docs = [d for d, h in zip(docs, hay) if all(w in h for w in words)]
        if sort:
            docs = self._sorted(docs, sort, descending)
        return RunSelection(self, docs)

    def _haystack(self) -> list[str]:
        if self._text is None:
            self._text = [" ".join([d["name"], d["id"], *(f"{k}={v}" for k, v in d["tags"].items())]).lower()
                          for d in self._docs]
        return self._text

    def _sorted(self, docs: list[dict[str, Any]], column: str, descending: bool) -> list[dict[str, Any]]:
        if column not in self.columns and column != "run_id":
            raise InvalidInput(f"cannot sort by {column!r}: choose one of the columns "
                               f"({', '.join(self.columns[:12])}{', …' if len(self.columns) > 12 else ''})")
        get = _sort_key(column, self.experiments)
        keyed = [(get(d), d) for d in docs]
        present = [p for p in keyed if p[0] is not None]
        missing = [d for v, d in keyed if v is None]
        try:
            present.sort(key=lambda p: p[0], reverse=descending)
        except TypeError:  # mixed types (a param logged as 3 in one run and "3" in another): as text
            present.sort(key=lambda p: str(p[0]), reverse=descending)
        return [d for _, d in present] + missing

    def update(self, run_ids: Iterable[str]) -> None:
        """Read these runs again (after tagging or deleting them): changed ones are replaced in
        place, deleted ones leave the listing (unless it includes deleted runs)."""
        store = current_store(create=False)
        fresh = {}
        for run_id in run_ids:
            doc = find_run_doc(store, run_id)
            fresh[doc["id"]] = doc
        docs = []
        for d in self._docs:
            new = fresh.get(d["id"], d)
            if self.include_deleted or not new.get("deleted"):
                docs.append(new)
        self._docs = docs
        self._keys()


def run_listing(experiment: str | None = None, include_deleted: bool = False) -> RunListing:
    """The runs of ``experiment`` (name or id; all experiments if None), read once, to query and page.

    >>> runs = nbmlops.run_listing("churn")
    >>> runs.query("rf", sort="metrics.auc", descending=True).page(0, 50)
    """
    return RunListing(experiment, include_deleted)
