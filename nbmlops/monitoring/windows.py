"""Drift over time: the current data cut into windows (an hour, a day, a week, or N rows), each
window tested against the whole reference with the test each column got in the full report,
so that scores of one column are comparable from window to window."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InvalidInput
from .correction import adjust
from .samples import Pair, prepare
from .stattests import P_VALUE, StatTest

MAX_WINDOWS = 500
_ROWS = re.compile(r"^\s*(\d+)\s*(rows?)?\s*$", re.I)
_UNITS = {"min": "min", "m": "min", "h": "h", "hour": "h", "d": "D", "day": "D", "w": "W", "week": "W"}
_TIME = re.compile(r"^\s*(\d*)\s*(min|m|h|hour|d|day|w|week)s?\s*$", re.I)


def parse_window(window: str | int | None) -> tuple[str, Any]:
    """("rows", N) or ("time", pandas offset string). Default: one day."""
    if window is None:
        return "time", "1D"
    if isinstance(window, (int, np.integer)) and not isinstance(window, bool):
        if window < 1:
            raise InvalidInput(f"a window of {window} rows is empty; give a positive number")
        return "rows", int(window)
    text = str(window)
    m = _ROWS.match(text)
    if m:
        return parse_window(int(m.group(1)))
    m = _TIME.match(text)
    if m:
        count = int(m.group(1) or 1)
        if count < 1:
            raise InvalidInput(f"window {window!r} is empty")
        return "time", f"{count}{_UNITS[m.group(2).lower()]}"
    raise InvalidInput(f"window {window!r} not understood: use 1h, 6h, 1d, 1w, 30min or a number of rows (e.g. 5000)")


def check(current: pd.DataFrame, column: str | None, window: str | int | None) -> pd.Series | None:
    """Validate the window and the time column before any work; the column as datetimes."""
    kind, _ = parse_window(window)
    if column is None:
        if kind == "time":
            raise InvalidInput("a time window needs a time column (by_time=...); without one give a number of rows")
        return None
    ts = current[column]
    if not pd.api.types.is_datetime64_any_dtype(ts.dtype):
        if pd.api.types.is_numeric_dtype(ts.dtype) or pd.api.types.is_bool_dtype(ts.dtype):
            raise InvalidInput(f"time column {column!r} does not hold times (dtype {ts.dtype}); "
                               "convert it with pd.to_datetime first")
        try:
            ts = pd.to_datetime(ts)
        except (ValueError, TypeError):
            raise InvalidInput(f"time column {column!r} does not hold times (dtype {current[column].dtype})") from None
    if ts.isna().all():
        raise InvalidInput(f"time column {column!r} has no values")
    return ts


def split(current: pd.DataFrame, column: str | None, window: str | int | None) -> list[tuple[str, str, np.ndarray]]:
    """(start, end, row positions) of each non-empty window, in time order."""
    kind, size = parse_window(window)
    ts = check(current, column, window)
    if ts is None:
        return [(str(i), str(min(i + size, len(current)) - 1), np.arange(i, min(i + size, len(current))))
                for i in range(0, len(current), size)]
    order = np.argsort(ts.to_numpy(), kind="stable")
    ordered = ts.iloc[order]
    valid = ordered.notna().to_numpy()
    order, ordered = order[valid], ordered[valid]
    if kind == "rows":
        out = []
        for i in range(0, len(order), size):
            part = ordered.iloc[i:i + size]
            out.append((str(part.iloc[0]), str(part.iloc[-1]), order[i:i + size]))
        return out
    count, unit = int(re.match(r"\d+", size).group()), size.lstrip("0123456789")
    step = pd.Timedelta(count * 7, "D") if unit == "W" else pd.Timedelta(count, unit)
    origin = ordered.iloc[0].normalize()          # midnight of the first day; Monday of its week for weeks
    if unit == "W":
        origin -= pd.Timedelta(origin.dayofweek, "D")
    starts = origin + ((ordered - origin) // step) * step
    keys = starts.to_numpy()
    cuts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
    if len(cuts) - 1 > MAX_WINDOWS:
        raise InvalidInput(f"window {window!r} cuts current into {len(cuts) - 1:,} windows (at most {MAX_WINDOWS}); "
                           "choose a larger one")
    return [(str(pd.Timestamp(keys[a])), str(pd.Timestamp(keys[a]) + step), order[a:b])
            for a, b in zip(cuts[:-1], cuts[1:])]


def over_time(current: pd.DataFrame, column: str | None, window: str | int | None,
              tests: dict[Any, tuple[str, Any, StatTest, float]], correction: str | None,
              drift_share: float) -> dict[str, Any]:
    """Per window: rows, each column's score and verdict, the share drifted.

    ``tests`` maps a column to (kind, its prepared reference sample, its test, its threshold, whether its
    values are compared as text)."""
    windows = split(current, column, window)
    names = list(tests)
    scores = {str(c): [] for c in names}
    drifted = {str(c): [] for c in names}
    rows = []
    for start, end, idx in windows:
        part = current.iloc[idx]
        results = []
        for c in names:
            kind, ref, test, _, as_text = tests[c]
            values = part[c]
            if as_text:
                values = values.astype(object).where(values.isna(), values.astype(str))
            cur = prepare(values, kind)
            pair = Pair(ref, cur)
            if test.check(pair) is not None:
                results.append((c, None, None))
                continue
            stat, p = test.run(pair)
            results.append((c, test.score(stat, p), test.score_kind))
        pv = [s for _, s, k in results if k == P_VALUE and s is not None]
        adjusted = iter(adjust(pv, correction))
        n_drift = n_tested = 0
        for c, s, k in results:
            if s is not None and k == P_VALUE:
                s = next(adjusted)
            _, _, test, threshold, _ = tests[c]
            flag = None if s is None else test.drifted(s, threshold)
            scores[str(c)].append(s)
            drifted[str(c)].append(flag)
            n_tested += flag is not None
            n_drift += bool(flag)
        share = n_drift / n_tested if n_tested else 0.0
        rows.append({"start": start, "end": end, "rows": int(len(idx)), "drifted": n_drift, "tested": n_tested,
                     "share": share, "dataset_drift": bool(n_tested) and share >= drift_share})
    return {"column": None if column is None else str(column), "window": str(window) if window is not None else "1d",
            "windows": rows, "scores": scores, "drifted": drifted,
            "stattests": {str(c): tests[c][2].name for c in names},
            "thresholds": {str(c): tests[c][3] for c in names},
            "score_kinds": {str(c): tests[c][2].score_kind for c in names}}
