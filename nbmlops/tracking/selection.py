"""Filter, sort and show runs from the store's summary index (``store.run_table``), not their documents.

A search keeps row numbers of a ``RunTable``: each condition of a filter is worked out once per
distinct value of its column (or on a whole float column at once), a sort ranks the distinct
values with Python's own comparisons, and a DataFrame is built only for the rows returned. The
answers are those of the conditions and orders of ``search.py`` applied run by run: the same
``_compare``, runs without a value last, values of mixed types ordered as text.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..store import Store
from ..store.index import RunTable, concat

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from .search import Clause

_NUMERIC_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq, "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}
_EXACT = 2 ** 53  # integers a float64 holds exactly


def runs_table(store: Store, experiment_ids: list[str]) -> RunTable:
    return concat([store.run_table(e) for e in experiment_ids])


def select(table: RunTable, clauses: list[Clause], include_deleted: bool = False) -> np.ndarray:
    """Row numbers (in table order) of the runs every clause keeps."""
    import numpy as np

    keep = np.ones(table.n, dtype=bool) if include_deleted else ~table.deleted
    return np.flatnonzero(keep & matches(table, clauses))


def matches(table: RunTable, clauses: list[Clause]) -> np.ndarray:
    """Whether each row passes every clause."""
    import numpy as np

    keep = np.ones(table.n, dtype=bool)
    for c in clauses:
        keep &= _mask(table, c)
    return keep


def _numeric(table: RunTable, kind: str, key: str) -> np.ndarray | None:
    """The column as numbers, NaN for no value, when it is one (float metrics, start times)."""
    col = table.kind(kind).get(key) if kind != "experiment" else None
    return col.values if col is not None and col.numeric else None


def _encoding(table: RunTable, kind: str, key: str, names: dict[str, str] | None = None) -> tuple[list[Any], Any]:
    """(distinct values, None last; each row's code, -1 for no value) of a column; "experiment": names."""
    import numpy as np

    if kind == "experiment":
        uniques, codes = table.attrs["experiment_id"].encoding()
        return [None if u is None else (names or {}).get(u) for u in uniques], codes
    col = table.kind(kind).get(key)
    if col is None:
        return [None], np.full(table.n, -1, dtype=np.int32)
    return col.encoding()


def _mask(table: RunTable, c: Clause) -> np.ndarray:
    import numpy as np

    values = _numeric(table, c.kind, c.key)
    number = isinstance(c.value, (int, float)) and not isinstance(c.value, bool) and abs(c.value) <= _EXACT
    if values is not None and number and c.op in _NUMERIC_OPS:
        # NaN (no value) compares False, except != (True): what _compare answers for None
        with np.errstate(invalid="ignore"):
            return np.asarray(_NUMERIC_OPS[c.op](values, c.value))
    uniques, codes = _encoding(table, c.kind, c.key)
    passes = np.fromiter((bool(c.test(u)) for u in uniques), dtype=bool, count=len(uniques))
    return passes[codes]


def order(table: RunTable, rows: np.ndarray, kind: str, key: str, descending: bool,
          names: dict[str, str] | None = None) -> np.ndarray:
    """``rows`` stably sorted by one column; rows without a value last, either way. ``kind``
    "experiment" sorts by experiment name (``names``)."""
    import numpy as np

    values = _numeric(table, kind, key)
    if values is not None:
        picked = values[rows]
        present = ~np.isnan(picked) if picked.dtype.kind == "f" else np.ones(len(rows), dtype=bool)
        got = picked[present]
        by = np.argsort(-got if descending else got, kind="stable")
        return np.concatenate([rows[present][by], rows[~present]])
    uniques, codes = _encoding(table, kind, key, names)
    rank = _ranks(uniques)
    if rank is None:  # NaN among the values: Python's own sort of the rows' values decides
        vals = [uniques[i] for i in codes[rows].tolist()]
        present_rows = [(v, r) for v, r in zip(vals, rows.tolist()) if v is not None]
        try:
            present_rows.sort(key=_first, reverse=descending)
        except TypeError:
            present_rows.sort(key=lambda p: str(p[0]), reverse=descending)
        missing = [r for v, r in zip(vals, rows.tolist()) if v is None]
        return np.array([r for _, r in present_rows] + missing, dtype=np.int64)
    r = rank[codes[rows]]
    present = r >= 0
    by = np.argsort(-r[present] if descending else r[present], kind="stable")
    return np.concatenate([rows[present][by], rows[~present]])


def _first(p: tuple[Any, Any]) -> Any:
    return p[0]


def _ranks(uniques: list[Any]) -> np.ndarray | None:
    """The rank of each distinct value (equal values, such as 1 and 1.0, share one; -1 for None), by
    Python's comparisons, or by text when the values do not compare (a param logged as 3 and "3").
    None when a value is NaN, which has no place in an order."""
    import numpy as np

    idx = [i for i, u in enumerate(uniques) if u is not None]
    if any(uniques[i] != uniques[i] for i in idx):
        return None
    keys = uniques
    try:
        idx.sort(key=uniques.__getitem__)
    except TypeError:
        keys = [str(u) for u in uniques]
        idx.sort(key=keys.__getitem__)
    rank = np.full(len(uniques), -1, dtype=np.int64)
    current, prev = -1, None
    for i in idx:
        if prev is None or keys[prev] < keys[i]:
            current += 1
        rank[i] = current
        prev = i
    return rank


def keys_of(table: RunTable, kind: str, rows: np.ndarray | None = None) -> list[str]:
    """The names of the params, metrics or tags that the ``rows`` (all if None) have, sorted."""
    cols = table.kind(kind)
    if rows is None:
        return [k for k, c in cols.items() if c.present.any()]
    return [k for k, c in cols.items() if c.present[rows].any()]


def frame(table: RunTable, rows: np.ndarray, names: dict[str, str], params: list[str] | None = None,
          metrics: list[str] | None = None, tags: list[str] | None = None) -> pd.DataFrame:
    """The ``rows`` as ``search_runs``' DataFrame; the key lists default to those the rows use."""
    import pandas as pd

    params = keys_of(table, "params", rows) if params is None else params
    metrics = keys_of(table, "metrics", rows) if metrics is None else metrics
    tags = keys_of(table, "tags", rows) if tags is None else tags
    data = {"run_id": _shown(table, rows, "attributes", "id"),
            "experiment": _shown(table, rows, "experiment", "", names)}
    for name, key in (("run_name", "name"), ("status", "status"), ("start_time", "start_time"),
                      ("end_time", "end_time"), ("duration", "duration"), ("user", "user")):
        data[name] = _shown(table, rows, "attributes", key)
    for kind, keys in (("params", params), ("metrics", metrics), ("tags", tags)):
        for k in keys:
            data[f"{kind}.{k}"] = _shown(table, rows, kind, k)
    return pd.DataFrame(data, copy=False)  # fresh arrays: no copy, no consolidation (half the cost)


def _shown(table: RunTable, rows: np.ndarray, kind: str, key: str, names: dict[str, str] | None = None) -> Any:
    """A column of ``rows`` as the DataFrame holds it: the type pandas infers from these rows' values
    (as a frame built from lists does), times as datetime64[ms], metrics as float64."""
    import numpy as np
    import pandas as pd

    values = _numeric(table, kind, key)
    if values is not None:
        picked = values[rows]
        return picked.view("datetime64[ms]") if key == "start_time" else picked
    if kind == "experiment":
        uniques, codes = _encoding(table, kind, key, names)
        objects = np.empty(len(uniques), dtype=object)
        objects[:] = uniques
    else:
        col = table.kind(kind)[key]  # the keys shown are the table's
        objects, codes = col.objects(), col.codes
    which = codes[rows]
    if key == "end_time" and kind == "attributes":
        return _typed(table, kind, key, objects)[1][which]
    types, typed = _typed(table, kind, key, objects)
    if typed is not None and (kind == "metrics" or (which >= 0).all()):
        return typed[which]  # every value one type: int64, float64, bool (metrics: float64, NaN for none)
    picked = objects[which]
    if types <= {str, type(None)}:  # text (or no value): object, as pandas infers it
        return picked
    return pd.Series(picked, dtype=object).infer_objects().to_numpy()


def _typed(table: RunTable, kind: str, key: str, objects: np.ndarray) -> tuple[set[type], np.ndarray | None]:
    """The types of a column's values (NoneType: a value logged as None) and, when they are all of
    one type pandas stores unboxed, the values as such an array indexed by code; once per table."""
    import numpy as np

    got = table.derived.get((kind, key))
    if got is None:
        values = objects.tolist()
        types = {str} if kind == "attributes" and key in ("id", "name") else set(map(type, values[:-1]))
        typed = None
        if key == "end_time" and kind == "attributes":
            typed = _times(values)
        elif kind == "metrics":
            typed = np.array([np.nan if v is None else v for v in values], dtype="float64")
        elif len(types) == 1 and types <= {int, float, bool}:
            try:
                typed = np.array(values[:-1] + [values[0]], dtype=next(iter(types)))
            except OverflowError:  # ints beyond int64: pandas decides
                typed = None
        got = table.derived[(kind, key)] = (types, typed)
    return got


def column(table: RunTable, kind: str, key: str, rows: np.ndarray, names: dict[str, str]) -> list[Any]:
    """One column's value for each of ``rows`` (None where a run has none)."""
    uniques, codes = _encoding(table, kind, key, names)
    return [uniques[c] for c in codes[rows].tolist()]


def words(table: RunTable, words: list[str]) -> np.ndarray:
    """Whether each row's name, id and tags (``key=value``), lower case, hold every one of ``words``."""
    import numpy as np

    hay = table.derived.get("haystack")
    if hay is None:
        rows = np.arange(table.n)
        parts = [column(table, "attributes", "name", rows, {}), column(table, "attributes", "id", rows, {})]
        parts += [[None if v is None else f"{k}={v}" for v in column(table, "tags", k, rows, {})] for k in table.tags]
        hay = table.derived["haystack"] = np.array(
            [" ".join(p for p in run if p is not None).lower() for run in zip(*parts)] or [""], dtype=str)[:table.n]
    keep = np.ones(table.n, dtype=bool)
    for w in words:
        keep &= np.strings.find(hay, w) >= 0
    return keep


def distinct(table: RunTable, kind: str, key: str, rows: np.ndarray, names: dict[str, str]) -> list[Any]:
    """The values one column takes over ``rows``, each once (equal values of two shards may both
    appear), in the order the rows first show them (None where a run has none)."""
    import numpy as np

    uniques, codes = _encoding(table, kind, key, names)
    picked = codes[rows]
    first = np.full(len(uniques), len(picked))
    first[picked[::-1]] = np.arange(len(picked) - 1, -1, -1)  # the last write of a code wins: its first row
    found = np.flatnonzero(first < len(picked))  # code -1 (no value) is the last item
    return [uniques[c] for c in found[np.argsort(first[found], kind="stable")].tolist()]


def _times(ms: list[int | None]) -> Any:
    """Milliseconds (None for a run still going) as datetime64, NaT for None. Not through floats:
    pandas < 3 overflows on NaN there now and then (pandas-dev/pandas#58419)."""
    import numpy as np

    nat = np.iinfo(np.int64).min
    return np.array([nat if v is None else v for v in ms], dtype=np.int64).view("datetime64[ms]")
