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
    """The column as float64 with NaN for no value, when it is one (float metrics, start times)."""
    if kind == "metrics":
        col = table.metrics.get(key)
        return col.values if col is not None and col.numeric else None
    return table.attrs["start_time"] if (kind, key) == ("attributes", "start_time") else None


def _mask(table: RunTable, c: Clause) -> np.ndarray:
    import numpy as np

    values = _numeric(table, c.kind, c.key)
    number = isinstance(c.value, (int, float)) and not isinstance(c.value, bool) and abs(c.value) <= _EXACT
    if values is not None and number and c.op in _NUMERIC_OPS:
        # NaN (no value) compares False, except != (True): what _compare answers for None
        with np.errstate(invalid="ignore"):
            return np.asarray(_NUMERIC_OPS[c.op](values, c.value))
    uniques, codes = table.encoded(c.kind, c.key)
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
    if kind == "experiment":
        uniques, codes = table.encoded("attributes", "experiment_id")
        uniques = [(names or {}).get(u) for u in uniques]
    else:
        uniques, codes = table.encoded(kind, key)
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
    import numpy as np
    import pandas as pd

    params = keys_of(table, "params", rows) if params is None else params
    metrics = keys_of(table, "metrics", rows) if metrics is None else metrics
    tags = keys_of(table, "tags", rows) if tags is None else tags
    ids = rows.tolist()
    a = table.attrs
    exp = table.experiment_id
    data: dict[str, Any] = {
        "run_id": [a["id"][i] for i in ids], "experiment": [names[exp[i]] for i in ids],
        "run_name": [a["name"][i] for i in ids], "status": [a["status"][i] for i in ids],
        "start_time": a["start_time"][rows].view("datetime64[ms]"),
        "end_time": _times([a["end_time"][i] for i in ids]),
        "duration": [a["duration"][i] for i in ids], "user": [a["user"][i] for i in ids]}
    for kind, keys in (("params", params), ("metrics", metrics), ("tags", tags)):
        cols = table.kind(kind)
        for k in keys:
            col = cols.get(k)
            if col is None:
                values: Any = [None] * len(ids)
            elif kind == "metrics" and col.numeric:
                values = col.values[rows]
            else:
                values = col.python(ids)
            data[f"{kind}.{k}"] = np.asarray(values, dtype="float64") if kind == "metrics" else values
    if not ids:  # no rows: the columns' types as a frame built from no rows has them
        return pd.DataFrame({c: pd.Series([], dtype="datetime64[ms]" if c in ("start_time", "end_time") else
                                          "float64" if c.startswith("metrics.") else object) for c in data})
    return pd.DataFrame(data)


def column(table: RunTable, kind: str, key: str, rows: np.ndarray, names: dict[str, str]) -> list[Any]:
    """One column's value for each of ``rows`` (None where a run has none)."""
    if kind == "experiment":
        return [names.get(table.experiment_id[i]) for i in rows.tolist()]
    if kind == "attributes":
        vals = table.experiment_id if key == "experiment_id" else table.attrs[key]
        if not isinstance(vals, list):
            return vals[rows].tolist()
        return [vals[i] for i in rows.tolist()]
    col = table.kind(kind).get(key)
    return [None] * len(rows) if col is None else col.python(rows)


def _times(ms: list[int | None]) -> Any:
    """Milliseconds (None for a run still going) as datetime64, NaT for None. Not through floats:
    pandas < 3 overflows on NaN there now and then (pandas-dev/pandas#58419)."""
    import numpy as np

    nat = np.iinfo(np.int64).min
    return np.array([nat if v is None else v for v in ms], dtype=np.int64).view("datetime64[ms]")
