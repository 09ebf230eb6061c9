"""Data quality of current against reference: what changed besides the distributions.

Per column: missing-value share, dtype, distinct values, constant columns, categories never
seen in reference, numbers outside the reference range. Per dataset: duplicated rows (by a
64-bit hash of each row: two different rows share one with probability ~n²/2⁶⁵, about 3e-8
for a million rows), and columns present on one side only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .samples import CategoricalSample, NumericSample

MISSING_JUMP = 0.01      # missing share up by more than 1 point is an issue
# current values beyond the reference's min/max: by chance alone about 2/(n+1) of them are (n reference
# values), i.e. a handful in any large sample; an issue from 0.1% on
OUT_OF_RANGE = 0.001
EXAMPLES = 10


def column_quality(ref: NumericSample | CategoricalSample, cur: NumericSample | CategoricalSample,
                   ref_dtype: str, cur_dtype: str) -> dict[str, Any]:
    """The quality numbers of one column (computed from the prepared samples, no second pass)."""
    q: dict[str, Any] = {
        "dtype": [ref_dtype, cur_dtype],
        "missing_share": [_share(ref.missing, ref.rows), _share(cur.missing, cur.rows)],
        "unique": [ref.n_unique, cur.n_unique],
    }
    if ref.infinite or cur.infinite:
        q["infinite"] = [ref.infinite, cur.infinite]
    if isinstance(ref, NumericSample) and isinstance(cur, NumericSample):
        if ref.n and cur.n:
            below = int(cur.count_below(ref.min, "left"))
            above = int(cur.n - cur.count_below(ref.max, "right"))
            q["out_of_range"] = {"below": below, "above": above, "share": _share(below + above, cur.n),
                                 "range": [ref.min, ref.max]}
    elif isinstance(ref, CategoricalSample) and isinstance(cur, CategoricalSample):
        known = set(ref.keys)
        new = [(k, int(c)) for k, c in zip(cur.keys, cur.counts_) if k not in known]
        if new:
            q["new_categories"] = {"count": len(new), "rows": sum(c for _, c in new),
                                   "share": _share(sum(c for _, c in new), cur.n),
                                   "examples": [[str(k), c] for k, c in new[:EXAMPLES]]}
        gone = [str(k) for k in ref.keys if k not in set(cur.keys)]
        if gone:
            q["missing_categories"] = {"count": len(gone), "examples": gone[:EXAMPLES]}
    return q


def issues(name: str, q: dict[str, Any]) -> list[dict[str, Any]]:
    """The problems a column's quality numbers show, one line each."""
    out = []
    ref_miss, cur_miss = q["missing_share"]
    if cur_miss == 1.0:
        out.append(_issue(name, "all missing", "every value is missing in current"))
    elif cur_miss - ref_miss > MISSING_JUMP:
        out.append(_issue(name, "more missing values", f"{ref_miss:.1%} → {cur_miss:.1%}"))
    if ref_miss == 1.0:
        out.append(_issue(name, "all missing in reference", "every value is missing in reference"))
    if q["dtype"][0] != q["dtype"][1]:
        out.append(_issue(name, "dtype changed", f"{q['dtype'][0]} → {q['dtype'][1]}"))
    ref_u, cur_u = q["unique"]
    if cur_u == 1 and ref_u > 1:
        out.append(_issue(name, "constant", "one value only in current"))
    elif ref_u == 1 and cur_u == 1:
        out.append(_issue(name, "constant", "one value only, in both"))
    if q.get("infinite") and q["infinite"][1] > 0:
        out.append(_issue(name, "infinite values", f"{q['infinite'][1]:,} in current"))
    oor = q.get("out_of_range")
    if oor and oor["share"] > OUT_OF_RANGE:
        lo, hi = oor["range"]
        out.append(_issue(name, "outside reference range",
                          f"{oor['share']:.2%} of current ({oor['below']:,} below {lo:.4g}, "
                          f"{oor['above']:,} above {hi:.4g})"))
    new = q.get("new_categories")
    if new:
        ex = ", ".join(k for k, _ in new["examples"][:5])
        out.append(_issue(name, "new categories", f"{new['count']} ({new['share']:.2%} of current): {ex}"))
    return out


def dataset_quality(ref_hash: np.ndarray | None, cur_hash: np.ndarray | None, reference: pd.DataFrame,
                    current: pd.DataFrame, hashed: set[Any], only_in_reference: list[Any],
                    only_in_current: list[Any]) -> dict[str, Any]:
    """Duplicated rows and one-sided columns. ``ref_hash``/``cur_hash`` are the row hashes of the
    columns in ``hashed`` (made while those columns were read); the other columns are added here."""
    out: dict[str, Any] = {"duplicated_rows": {}, "only_in_reference": [str(c) for c in only_in_reference],
                           "only_in_current": [str(c) for c in only_in_current], "notes": []}
    for side, df, h in (("reference", reference, ref_hash), ("current", current, cur_hash)):
        rest = [c for c in df.columns if c not in hashed]
        try:
            if rest:
                h = combine(h, pd.util.hash_pandas_object(df[rest], index=False).to_numpy())
            out["duplicated_rows"][side] = count_duplicates(h) if h is not None else 0
        except TypeError as exc:  # unhashable cells (lists, dicts)
            out["notes"].append(f"duplicated rows of {side} not counted: {exc}")
    return out


def combine(h: np.ndarray | None, part: np.ndarray) -> np.ndarray:
    """Fold one column's 64-bit hashes into the rows' hashes (order matters, as in a tuple)."""
    if h is None:
        return part.copy()
    h *= np.uint64(0x9E3779B97F4A7C15)
    h += part
    return h


def count_duplicates(h: np.ndarray) -> int:
    """Rows whose hash equals an earlier row's (``df.duplicated().sum()`` up to hash collisions)."""
    if len(h) < 2:
        return 0
    h = np.sort(h)
    return int(np.count_nonzero(h[1:] == h[:-1]))


def dataset_issues(d: dict[str, Any], rows: dict[str, int]) -> list[dict[str, Any]]:
    out = []
    for c in d["only_in_reference"]:
        out.append(_issue(c, "missing column", "in reference, not in current"))
    for c in d["only_in_current"]:
        out.append(_issue(c, "new column", "in current, not in reference"))
    dup = d["duplicated_rows"]
    if "current" in dup and rows.get("current"):
        ref_share = dup.get("reference", 0) / max(rows.get("reference", 1), 1)
        cur_share = dup["current"] / rows["current"]
        if cur_share - ref_share > MISSING_JUMP:
            out.append(_issue("(rows)", "duplicated rows", f"{ref_share:.1%} → {cur_share:.1%}"))
    return out


def _issue(column: Any, issue: str, detail: str) -> dict[str, Any]:
    return {"column": str(column), "issue": issue, "detail": detail}


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0
