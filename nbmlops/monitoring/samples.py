"""Columns prepared once for every test: numeric values sorted, categories counted.

Evidently recomputes each column's values for every statistic (and counts unique values
again and again). Here a numeric column is sorted once; minimum, maximum, distinct values,
histograms, empirical CDFs and quantile functions all come from that sorted array, and
every test of a :class:`Pair` shares what another already computed (cached on the pair).
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from .columns import CATEGORICAL, NUMERIC


class NumericSample:
    """The finite values of a numeric column, sorted, with its missing and infinite counts."""

    kind = NUMERIC
    row_hash: np.ndarray | None = None

    def __init__(self, values: np.ndarray, rows: int, missing: int, infinite: int = 0, dtype: str = "float64") -> None:
        self.values = values  # sorted, finite, float64
        self.rows = rows
        self.missing = missing
        self.infinite = infinite
        self.dtype = dtype

    @classmethod
    def from_series(cls, series: pd.Series, row_hash: bool = False) -> NumericSample:
        """With ``row_hash``, also a 64-bit hash of each row's value (``.row_hash``, for duplicate rows)."""
        if pd.api.types.is_bool_dtype(series.dtype):
            series = series.astype("float64")
        try:
            arr = series.to_numpy(dtype="float64", na_value=np.nan)
        except (TypeError, ValueError):
            arr = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        finite = np.isfinite(arr)
        n_finite = int(np.count_nonzero(finite))
        if n_finite == len(arr):
            values = np.sort(arr)
            missing = infinite = 0
        else:
            missing = int(np.count_nonzero(np.isnan(arr)))
            infinite = len(arr) - n_finite - missing
            values = np.sort(arr[finite])
        sample = cls(values, len(arr), missing, infinite, str(series.dtype))
        if row_hash:
            if pd.api.types.is_integer_dtype(series.dtype) and not series.hasnans:
                bits = series.to_numpy().astype(np.int64).view(np.uint64)
            else:
                canonical = arr + 0.0                      # -0.0 and 0.0 are one value
                if missing:
                    canonical[np.isnan(canonical)] = np.nan  # one NaN
                bits = canonical.view(np.uint64)
            sample.row_hash = mix64(bits)
        return sample

    @classmethod
    def from_values(cls, values: Any) -> NumericSample:
        return cls.from_series(pd.Series(np.asarray(values, dtype="float64")))

    @property
    def n(self) -> int:
        return len(self.values)

    @cached_property
    def n_unique(self) -> int:
        v = self.values
        return 0 if not len(v) else 1 + int(np.count_nonzero(v[1:] != v[:-1]))

    @cached_property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.n else math.nan

    @cached_property
    def std(self) -> float:
        return float(np.std(self.values)) if self.n else math.nan

    @property
    def min(self) -> float:
        return float(self.values[0]) if self.n else math.nan

    @property
    def max(self) -> float:
        return float(self.values[-1]) if self.n else math.nan

    def quantile(self, q: float) -> float:
        """``np.quantile(values, q)`` (linear interpolation), read off the sorted values."""
        if not self.n:
            return math.nan
        pos = q * (self.n - 1)
        lo = int(math.floor(pos))
        hi = min(lo + 1, self.n - 1)
        a, b = float(self.values[lo]), float(self.values[hi])
        return a + (b - a) * (pos - lo) if b != a else a

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct values (ascending) and how often each occurs."""
        v = self.values
        if not len(v):
            return v, np.zeros(0, dtype=np.int64)
        starts = np.flatnonzero(np.r_[True, v[1:] != v[:-1]])
        return v[starts], np.diff(np.r_[starts, len(v)])

    def count_below(self, x: Any, side: str = "left") -> np.ndarray:
        """How many values are < x (side='left') or <= x (side='right'), for each x."""
        return np.searchsorted(self.values, x, side=side)

    def stats(self) -> dict[str, Any]:
        return {"rows": self.rows, "count": self.n, "missing": self.missing, "infinite": self.infinite,
                "mean": self.mean, "std": self.std, "min": self.min, "p25": self.quantile(0.25),
                "median": self.quantile(0.5), "p75": self.quantile(0.75), "max": self.max, "unique": self.n_unique}


class CategoricalSample:
    """The value counts of a categorical column (most frequent first), with its missing count."""

    kind = CATEGORICAL
    row_hash: np.ndarray | None = None

    def __init__(self, keys: list[Any], counts: np.ndarray, rows: int, missing: int, dtype: str = "object") -> None:
        self.keys = keys
        self.counts_ = counts
        self.rows = rows
        self.missing = missing
        self.infinite = 0
        self.dtype = dtype

    @classmethod
    def from_series(cls, series: pd.Series, row_hash: bool = False) -> CategoricalSample:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        present = codes[codes >= 0] if len(codes) and codes.min() < 0 else codes
        counts = np.bincount(present, minlength=len(uniques)).astype(np.int64)
        order = np.argsort(-counts, kind="stable")
        order = order[counts[order] > 0]
        values = np.asarray(uniques, dtype=object)
        keys = [_plain(values[i]) for i in order]
        sample = cls(keys, counts[order], len(series), len(series) - len(present), str(series.dtype))
        if row_hash:
            sample.row_hash = mix64(codes.astype(np.int64).view(np.uint64))
        return sample

    @classmethod
    def from_values(cls, values: Any) -> CategoricalSample:
        return cls.from_series(pd.Series(list(values), dtype=object))

    @property
    def n(self) -> int:
        return int(self.counts_.sum())

    @property
    def n_unique(self) -> int:
        return len(self.keys)

    def counts(self) -> tuple[list[Any], np.ndarray]:
        return self.keys, self.counts_

    def stats(self) -> dict[str, Any]:
        top = [[str(k), int(c)] for k, c in zip(self.keys[:5], self.counts_[:5])]
        return {"rows": self.rows, "count": self.n, "missing": self.missing, "unique": self.n_unique, "top": top}


def _plain(value: Any) -> Any:
    """numpy scalars to Python ones, so keys compare and serialize simply."""
    return value.item() if isinstance(value, np.generic) else value


_K1, _K2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S27, _S30, _S31 = np.uint64(27), np.uint64(30), np.uint64(31)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer over uint64 values (a new array): a well-spread 64-bit hash of each."""
    y = x >> _S30
    np.bitwise_xor(y, x, out=y)
    np.multiply(y, _K1, out=y)
    t = y >> _S27
    np.bitwise_xor(y, t, out=y)
    np.multiply(y, _K2, out=y)
    np.right_shift(y, _S31, out=t)
    np.bitwise_xor(y, t, out=y)
    return y


def prepare(series: pd.Series, kind: str, row_hash: bool = False) -> NumericSample | CategoricalSample:
    if kind == NUMERIC:
        return NumericSample.from_series(series, row_hash)
    if isinstance(series.dtype, pd.CategoricalDtype) or pd.api.types.is_numeric_dtype(series.dtype) \
            or pd.api.types.is_bool_dtype(series.dtype):
        return CategoricalSample.from_series(series, row_hash)
    # mixed object columns: compare values as text so '1' and 1 are not two unorderable kinds
    kinds = {type(v) for v in series.iloc[:1000].dropna()} | {type(v) for v in series.iloc[-1000:].dropna()}
    if len(kinds) > 1:
        series = series.map(lambda v: v if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    return CategoricalSample.from_series(series, row_hash)


class Pair:
    """Reference and current samples of one column; shared, cached computations for the tests."""

    def __init__(self, ref: NumericSample | CategoricalSample, cur: NumericSample | CategoricalSample) -> None:
        if ref.kind != cur.kind:
            raise TypeError("both samples of a pair must be of one kind")
        self.ref, self.cur, self.kind = ref, cur, ref.kind

    @cached_property
    def union_counts(self) -> tuple[list[Any], np.ndarray, np.ndarray]:
        """Every distinct value of either side, with its count in reference and in current."""
        if self.kind == NUMERIC:
            (rk, rc), (ck, cc) = self.ref.counts(), self.cur.counts()
            keys = np.union1d(rk, ck)
            ref = np.zeros(len(keys), np.int64)
            cur = np.zeros(len(keys), np.int64)
            ref[np.searchsorted(keys, rk)] = rc
            cur[np.searchsorted(keys, ck)] = cc
            return keys.tolist(), ref, cur
        rk, rc = self.ref.counts()
        ck, cc = self.cur.counts()
        index = {k: i for i, k in enumerate(rk)}
        keys = list(rk)
        for k in ck:
            if k not in index:
                index[k] = len(keys)
                keys.append(k)
        ref = np.zeros(len(keys), np.int64)
        ref[: len(rk)] = rc
        cur = np.zeros(len(keys), np.int64)
        cur[[index[k] for k in ck]] = cc
        return keys, ref, cur

    @cached_property
    def n_values(self) -> int:
        """Distinct values of both sides together (Evidently's ``pd.concat([ref, cur]).nunique()``)."""
        if self.kind == NUMERIC and (self.ref.n_unique > 5 or self.cur.n_unique > 5):
            return max(self.ref.n_unique, self.cur.n_unique)  # enough to know it is more than 5
        return len(self.union_counts[0])

    def binned(self, fill_zeros: bool) -> tuple[np.ndarray, np.ndarray]:
        """Evidently's ``get_binned_data``: shares per Sturges bin over both sides for numeric columns with
        more than 20 distinct reference values, else per value; zero shares replaced when ``fill_zeros``."""
        key = ("binned", fill_zeros)
        hit = self.__dict__.get(key)
        if hit is not None:
            return hit
        if self.kind == NUMERIC and self.ref.n_unique > 20:
            r, c = self.ref.values, self.cur.values  # type: ignore[union-attr]
            edges = sturges_edges(min(r[0], c[0]), max(r[-1], c[-1]), len(r) + len(c))
            ref_p = histogram_sorted(r, edges) / len(r)
            cur_p = histogram_sorted(c, edges) / len(c)
        else:
            _, rc, cc = self.union_counts
            ref_p, cur_p = rc / self.ref.n, cc / self.cur.n
        if fill_zeros:
            ref_p, cur_p = _fill_zeros(ref_p), _fill_zeros(cur_p)
        self.__dict__[key] = (ref_p, cur_p)
        return ref_p, cur_p

    @cached_property
    def cdfs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(points, widths, F_ref, F_cur): both empirical CDFs at every value of either side, and the
        width of the interval that starts there (as scipy's ``_cdf_distance`` lays them out)."""
        a, b = self.ref.values, self.cur.values  # type: ignore[union-attr]
        points = np.sort(np.concatenate([a, b]))
        widths = np.diff(points)
        fa = np.searchsorted(a, points[:-1], side="right") / len(a)
        fb = np.searchsorted(b, points[:-1], side="right") / len(b)
        return points, widths, fa, fb

    @cached_property
    def wasserstein(self) -> float:
        """First Wasserstein distance (as ``scipy.stats.wasserstein_distance``)."""
        return wasserstein_sorted(self.ref.values, self.cur.values)  # type: ignore[union-attr]


def wasserstein_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """∫|Q_a(u) − Q_b(u)| du over the quantile functions of two sorted samples.

    Both quantile functions are step functions, with steps at i/n and j/m. In units of
    1/lcm(n, m) the steps are integers whose merged order follows by arithmetic, so no search
    and no second sort is needed: O(n + m) after the one sort each sample already had."""
    n, m = len(a), len(b)
    if n == m:
        return float(np.mean(np.abs(a - b)))
    g = math.gcd(n, m)
    ua, ub = m // g, n // g                                  # one step of a, of b, in units of 1/lcm
    jb = np.arange(1, m + 1, dtype=np.int64) * ub            # b's steps
    pos_b = jb // ua                                          # a's steps at or before each (ties: a first)
    pos_b += np.arange(m, dtype=np.int64)                     # = its place in the merged order
    is_a = np.ones(n + m, dtype=bool)
    is_a[pos_b] = False
    pos_a = np.flatnonzero(is_a)
    steps = np.empty(n + m, dtype=np.int64)
    steps[pos_b] = jb
    steps[pos_a] = np.arange(1, n + 1, dtype=np.int64) * ua
    qa, qb = np.empty(n + m), np.empty(n + m)                 # both quantile functions on each interval
    qa[pos_a] = a
    qb[pos_b] = b
    ib = pos_a - np.arange(n)                                 # b's steps before each of a's
    qb[pos_a] = b[np.minimum(ib, m - 1, out=ib)]
    ia = pos_b - np.arange(m)
    qa[pos_b] = a[np.minimum(ia, n - 1, out=ia)]
    np.subtract(qa, qb, out=qa)
    np.abs(qa, out=qa)
    return float(np.dot(qa, np.diff(steps, prepend=0)) / (n * ua))


def sturges_edges(lo: float, hi: float, n: int) -> np.ndarray:
    """``np.histogram_bin_edges(x, bins="sturges")`` for n values from lo to hi, without x."""
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    width = (hi - lo) / (np.log2(n) + 1.0)
    bins = int(np.ceil((hi - lo) / width)) if width else 1
    return np.linspace(lo, hi, bins + 1, endpoint=True)


def histogram_sorted(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``np.histogram(values, edges)[0]`` for sorted values: half-open bins, the last one closed."""
    idx = np.searchsorted(sorted_values, edges, side="left")
    idx[-1] = np.searchsorted(sorted_values, edges[-1], side="right")
    return np.diff(idx)


def _fill_zeros(p: np.ndarray) -> np.ndarray:
    p = p.astype(float)
    nonzero = p[p != 0]
    if not len(nonzero):
        return p
    small = nonzero.min()
    p[p == 0] = small / 10**6 if small <= 0.0001 else 0.0001
    return p
