"""The data engine: a source's rows sorted once into a point-in-time index, typed columns, keys.

``Prepared`` holds one source's rows ordered by (entity key, event time, created time, row
order). A lookup "latest row of key k at or before time t" is then one binary search, for
all entity rows at once (``np.searchsorted``). Sorting is the expensive part, so prepared
sources are cached in-process, keyed by the source's identity (a DataFrame snapshot's hash,
or a file's path, size and mtime): the first retrieval from a source pays for reading and
sorting it, later ones only for the search. The cache holds the last ``CACHE_SIZE`` sources.

The sort packs (key code, time) into one int64 when they fit — times are stored relative to
the earliest one, in the coarsest unit (s, ms, µs or ns) that keeps them exact — and sorts
that with an unstable quicksort, then orders the rare exact ties by created time and row
order. When they do not fit it falls back to a stable ``np.lexsort``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ..errors import InvalidInput
from .definitions import source_from_doc
from .timeutil import NAT, to_utc_ns

CACHE_SIZE = 8
_cache: OrderedDict[tuple[Any, ...], Prepared] = OrderedDict()
FAST_SORT = True  # tests switch this off to check the fallback path gives the same answers


# -- typed columns -------------------------------------------------------------------
def normalize(series: Any, dtype: str, what: str) -> tuple[Any, Any]:
    """A column as (numpy values, null mask or None) in the representation of ``dtype``."""
    import numpy as np
    import pandas as pd

    s = series if isinstance(series, pd.Series) else pd.Series(series)
    if dtype in ("float64", "float32"):
        if pd.api.types.is_bool_dtype(s.dtype) or (s.dtype == object and s.map(type).eq(str).any()):
            raise InvalidInput(f"{what} holds {s.dtype} values, not numbers")
        try:
            return s.to_numpy(dtype=np.float64, na_value=np.nan), None
        except (TypeError, ValueError):
            raise InvalidInput(f"{what} holds values that are not numbers") from None
    if dtype in ("int64", "int32"):
        mask = s.isna().to_numpy()
        if pd.api.types.is_bool_dtype(s.dtype):
            raise InvalidInput(f"{what} holds booleans, not integers")
        try:
            values = s.to_numpy(dtype=np.float64, na_value=0.0) if not pd.api.types.is_integer_dtype(s.dtype) \
                else s.to_numpy(dtype=np.int64, na_value=0)
        except (TypeError, ValueError):
            raise InvalidInput(f"{what} holds values that are not integers") from None
        if values.dtype == np.float64:
            if not np.array_equal(values, np.floor(values)):
                raise InvalidInput(f"{what} holds fractions; declare the feature float64")
            values = values.astype(np.int64)
        return values, (mask if mask.any() else None)
    if dtype == "bool":
        mask = s.isna().to_numpy()
        if not (pd.api.types.is_bool_dtype(s.dtype) or s.dtype == object):
            raise InvalidInput(f"{what} holds {s.dtype}, not booleans")
        vals = s.to_numpy(dtype=object)
        if not all(isinstance(v, (bool, np.bool_)) for v in vals[~mask]):
            raise InvalidInput(f"{what} holds values that are not booleans")
        return np.where(mask, False, vals).astype(bool), (mask if mask.any() else None)
    if dtype == "string":
        vals = s.to_numpy(dtype=object, na_value=None)
        mask = s.isna().to_numpy()
        if mask.any():
            vals[mask] = None
        return vals, None
    if dtype == "timestamp":
        values = to_utc_ns(s, what)
        mask = values == NAT
        return values, (mask if mask.any() else None)
    raise InvalidInput(f"unknown feature dtype {dtype!r}")


def finish(dtype: str, values: Any, mask: Any) -> Any:
    """The pandas array a retrieval returns for ``dtype`` (historical and online alike):
    float64/float32 with NaN, nullable Int64/Int32, nullable boolean, object strings with None,
    datetime64[ns, UTC] with NaT."""
    import numpy as np
    import pandas as pd

    if dtype in ("float64", "float32"):
        out = values.astype(dtype, copy=False)
        if mask is not None and mask.any():
            out = out.copy() if out is values else out
            out[mask] = np.nan
        return out
    if dtype in ("int64", "int32"):
        m = np.zeros(len(values), bool) if mask is None else mask
        return pd.arrays.IntegerArray(values.astype(dtype, copy=False), m)
    if dtype == "bool":
        m = np.zeros(len(values), bool) if mask is None else mask
        return pd.arrays.BooleanArray(values.astype(bool, copy=False), m)
    if dtype == "string":
        out = values.astype(object, copy=False)
        if mask is not None and mask.any():
            out = out.copy()
            out[mask] = None
        return pd.array(out, dtype=object)
    if dtype == "timestamp":
        v = values.astype(np.int64, copy=True)
        if mask is not None:
            v[mask] = NAT
        return pd.DatetimeIndex(v.view("datetime64[ns]")).tz_localize("UTC").array
    raise InvalidInput(f"unknown feature dtype {dtype!r}")


def gather(dtype: str, column: tuple[Any, Any], idx: Any) -> Any:
    """Rows ``idx`` of a normalized column (-1: no row, a null)."""
    import numpy as np

    values, mask = column
    miss = idx < 0
    if len(values) == 0:
        empty = np.zeros(len(idx), dtype=values.dtype if values.dtype != object else object)
        return finish(dtype, empty, np.ones(len(idx), bool))
    safe = np.where(miss, 0, idx) if miss.any() else idx
    out = values[safe]
    m = miss if mask is None else (miss | mask[safe])
    return finish(dtype, out, m if m.any() else None)


# -- keys ------------------------------------------------------------------------------
def key_values(series: Any, key_type: str, what: str) -> tuple[Any, Any]:
    """Join-key values as (numpy array, valid mask): int64 for int64 keys, str objects for
    string keys. The wrong type is an error (a string id never matches an integer one)."""
    import numpy as np
    import pandas as pd

    s = series if isinstance(series, pd.Series) else pd.Series(series)
    valid = s.notna().to_numpy()
    t = s.dtype
    if key_type == "int64":
        if pd.api.types.is_bool_dtype(t):
            raise InvalidInput(f"{what} holds booleans, but the key is int64")
        if pd.api.types.is_integer_dtype(t):
            return s.to_numpy(dtype=np.int64, na_value=0), valid
        if pd.api.types.is_float_dtype(t):
            v = s.to_numpy(dtype=np.float64, na_value=0.0)
            if np.array_equal(v, np.floor(v)):
                return v.astype(np.int64), valid
            raise InvalidInput(f"{what} holds fractions, but the key is int64")
        sample = s[valid]
        if len(sample) and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in sample):
            return s.to_numpy(dtype=object, na_value=0).astype(np.int64), valid
        raise InvalidInput(f"{what} holds {_kinds(sample, str(t))} values, but the key is int64")
    if pd.api.types.is_string_dtype(t) or t == object or isinstance(t, pd.CategoricalDtype):  # noqa: E721 (a dtype)
        vals = s.astype(object).to_numpy(dtype=object)
        sample = vals[valid]
        if all(isinstance(v, str) for v in sample):
            return vals, valid
        raise InvalidInput(f"{what} holds {_kinds(sample, str(t))} values, but the key is a string")
    raise InvalidInput(f"{what} holds {t} values, but the key is a string")


def _kinds(sample: Any, default: str) -> str:
    """The Python types among key values, mixed ones named with a count: 'int and str (3 str)'."""
    counts: dict[str, int] = {}
    for v in sample:
        counts[type(v).__name__] = counts.get(type(v).__name__, 0) + 1
    if not counts:
        return default
    if len(counts) == 1:
        return next(iter(counts))
    names = sorted(counts)
    return f"mixed {', '.join(names[:-1])} and {names[-1]} (" + ", ".join(f"{counts[n]} {n}" for n in names) + ")"


class KeyCodes:
    """Dense codes 0..G-1 of a source's (composite) keys, in sorted key order."""

    def __init__(self, arrays: list[Any]) -> None:
        import numpy as np
        import pandas as pd

        self.levels, self.steps = [], []
        codes = None
        for arr in arrays:
            c, uniq = pd.factorize(arr, sort=True)
            self.levels.append(pd.Index(uniq))
            if codes is None:
                codes = c.astype(np.int64)
            else:
                combined = codes * len(uniq) + c
                step, codes = np.unique(combined, return_inverse=True)
                self.steps.append(step)
        self.codes = codes if codes is not None else np.zeros(0, np.int64)
        self.count = len(self.levels[0]) if not self.steps else len(self.steps[-1])

    def encode(self, arrays: list[Any], valid: Any) -> Any:
        """Codes for other key values; -1 where the key is unknown or missing."""
        import numpy as np

        codes = None
        bad = ~valid
        for i, (arr, level) in enumerate(zip(arrays, self.levels)):
            c = level.get_indexer(arr).astype(np.int64)
            bad |= c < 0
            if codes is None:
                codes = c
                continue
            combined = codes * len(level) + c
            step = self.steps[i - 1]
            pos = np.searchsorted(step, combined).clip(0, max(len(step) - 1, 0))
            found = step[pos] == combined if len(step) else np.zeros(len(combined), bool)
            bad |= ~found
            codes = pos
        codes = np.where(bad, -1, codes)
        return codes

    def values_of(self, code_array: Any) -> list[Any]:
        """The key column values of the given codes (one array per join key)."""
        import numpy as np

        cols: list[Any] = [None] * len(self.levels)
        codes = np.asarray(code_array)
        for i in range(len(self.levels) - 1, 0, -1):
            combined = self.steps[i - 1][codes]
            n = len(self.levels[i])
            cols[i] = self.levels[i].to_numpy()[combined % n]
            codes = combined // n
        cols[0] = self.levels[0].to_numpy()[codes]
        return cols


# -- the point-in-time index ------------------------------------------------------------
class Prepared:
    """One source's rows, sorted for point-in-time lookups, with its feature columns."""

    def __init__(self, df: Any, join_keys: list[str], key_types: dict[str, str], ts_field: str,
                 created_field: str | None, features: dict[str, str], label: str) -> None:
        import numpy as np

        self.label = label
        self.rows = len(df)
        ts = to_utc_ns(df[ts_field], f"event timestamp column {ts_field!r} of {label}")
        created = to_utc_ns(df[created_field], f"created timestamp column {created_field!r} of {label}") \
            if created_field else None
        keys, valid = [], ts != NAT
        for k in join_keys:
            v, ok = key_values(df[k], key_types[k], f"join key column {k!r} of {label}")
            keys.append(v)
            valid &= ok
        self.columns = {f: normalize(df[f], dt, f"column {f!r} of {label}") for f, dt in features.items()}
        self.dtypes = dict(features)
        rows = np.flatnonzero(valid) if not valid.all() else None  # None: every row (no copies)
        if rows is not None:
            keys, ts = [k[rows] for k in keys], ts[rows]
            created = created[rows] if created is not None else None
        if created is not None:
            created = np.where(created == NAT, np.iinfo(np.int64).min + 1, created)
        self.keys = KeyCodes(keys)
        codes = self.keys.codes
        self.comb_s = None
        self.tmin = int(ts.min()) if len(ts) else 0
        order = None
        if FAST_SORT and len(ts):
            rel = ts - self.tmin
            self.unit = next(u for u in (10**9, 10**6, 10**3, 1) if not (rel % u).any())
            self.span = int(rel.max()) // self.unit + 1
            if self.count_or_one() * self.span < 2**62:
                comb = codes * self.span + rel // self.unit
                order = np.argsort(comb, kind="quicksort")
                comb_s = comb[order]
                ties = comb_s[1:] == comb_s[:-1]
                if ties.any():  # same key, same time: created time, then row order, decides
                    at = np.zeros(len(comb_s), bool)
                    at[1:] |= ties
                    at[:-1] |= ties
                    pos = np.flatnonzero(at)
                    sub = order[pos]
                    second = created[sub] if created is not None else sub
                    order[pos] = sub[np.lexsort((sub, second, comb_s[pos]))]
                self.comb_s = comb_s
        if order is None:
            order = np.lexsort((created, ts, codes)) if created is not None else np.lexsort((ts, codes))
        self.codes_s = codes[order]
        self.ts_s = ts[order]
        self.created_s = created[order] if created is not None else None
        self.raw = order if rows is None else rows[order]  # sorted position -> row of the source
        groups = np.arange(self.keys.count)
        self.starts = np.searchsorted(self.codes_s, groups, "left")
        self.ends = np.searchsorted(self.codes_s, groups, "right")

    def count_or_one(self) -> int:
        return max(self.keys.count, 1)

    @property
    def time_range(self) -> tuple[int | None, int | None]:
        if not len(self.ts_s):
            return None, None
        return int(self.ts_s.min()), int(self.ts_s.max())

    def last_at_or_before(self, g: Any, t: Any) -> Any:
        """Sorted position of the last row of group g with time <= t (-1: none)."""
        import numpy as np

        n = len(g)
        pos = np.full(n, -1, np.int64)
        ok = (g >= 0) & (t != NAT)
        if not len(self.ts_s) or not ok.any():
            return pos
        gi, ti = g[ok], t[ok]
        if self.comb_s is not None:
            rel = np.clip((ti - self.tmin) // self.unit, -1, self.span - 1)
            p = np.searchsorted(self.comb_s, gi * self.span + rel, "right") - 1
            hit = (p >= 0) & (self.codes_s[np.maximum(p, 0)] == gi)
        else:  # binary search inside each group, all rows at once
            lo, hi = self.starts[gi].copy(), self.ends[gi].copy()
            while True:
                active = lo < hi
                if not active.any():
                    break
                mid = (lo + hi) // 2
                le = active & (self.ts_s[np.minimum(mid, len(self.ts_s) - 1)] <= ti)
                lo = np.where(le, mid + 1, lo)
                hi = np.where(active & ~le, mid, hi)
            p = lo - 1
            hit = p >= self.starts[gi]
        pos[ok] = np.where(hit, p, -1)
        return pos

    def lookup(self, g: Any, t: Any, ttl_ns: int | None, created_cutoff: bool = False) -> Any:
        """Row of the source (-1: none) for each (group, time): the latest row at or before t,
        no older than ttl; with ``created_cutoff`` only rows created at or before t count."""
        import numpy as np

        pos = self.last_at_or_before(g, t)
        if not len(self.ts_s):
            return pos
        if created_cutoff and self.created_s is not None:
            pending = np.flatnonzero(pos >= 0)
            while len(pending):  # step back past rows that were not known yet at t
                p = pos[pending]
                late = self.created_s[p] > t[pending]
                pending = pending[late]
                if not len(pending):
                    break
                p = pos[pending] - 1
                same = (p >= 0) & (self.codes_s[np.maximum(p, 0)] == g[pending])
                pos[pending] = np.where(same, p, -1)
                pending = pending[same]
        found = pos >= 0
        if ttl_ns is not None:
            found &= self.ts_s[np.maximum(pos, 0)] >= t - ttl_ns
        return np.where(found, self.raw[np.maximum(pos, 0)], -1)

    def latest_in_window(self, start: int | None, end: int) -> Any:
        """For each group with a row in [start, end]: (group codes, source rows) of its latest row."""
        import numpy as np

        g = np.arange(self.keys.count, dtype=np.int64)
        pos = self.last_at_or_before(g, np.full(len(g), end, np.int64))
        found = pos >= 0
        if start is not None:
            found &= self.ts_s[np.maximum(pos, 0)] >= start
        return g[found], self.raw[pos[found]], self.ts_s[pos[found]], \
            (self.created_s[pos[found]] if self.created_s is not None else None)


def prepared(view: dict[str, Any], source: Any = None) -> Prepared:
    """The point-in-time index of a view's source (cached while the source is unchanged);
    ``source``: the Source object of a view not applied yet (default: the stored one)."""
    src = source if source is not None else source_from_doc(view["source"])
    feats = {f["name"]: f["dtype"] for f in view["features"]}
    try:
        ident = src.identity()
    except FileNotFoundError:
        raise InvalidInput(f"the source of feature view {view['name']!r} is gone: {src.describe()}") from None
    key = (ident, tuple(view["join_keys"]), tuple(sorted(view["key_types"].items())), src.timestamp_field,
           src.created_timestamp_column, tuple(feats.items()))
    hit = _cache.get(key)
    if hit is not None:
        _cache.move_to_end(key)
        return hit
    cols = list(dict.fromkeys([*view["join_keys"], src.timestamp_field,
                               *([src.created_timestamp_column] if src.created_timestamp_column else []), *feats]))
    try:
        df = src.read(cols)
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidInput(f"cannot read the source of feature view {view['name']!r} "
                           f"({src.describe()}): {exc}") from None
    prep = Prepared(df, view["join_keys"], view["key_types"], src.timestamp_field, src.created_timestamp_column,
                    feats, f"feature view {view['name']!r}")
    _cache[key] = prep
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return prep


def clear_cache() -> None:
    """Forget every prepared source (the next retrieval reads and sorts them again)."""
    _cache.clear()
