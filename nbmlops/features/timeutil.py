"""Times and durations of the feature store, in one convention.

Every timestamp is compared as integer nanoseconds since the epoch, in UTC:

- timezone-aware values (``2024-01-05 10:00+02:00``) are converted to UTC;
- timezone-naive values (``2024-01-05 10:00``) are taken to *be* UTC, as Feast does,
  on both sides of a join (the entity DataFrame and the feature source), and for the
  ``start``/``end`` of ``materialize``. So a naive 10:00 and an aware 10:00+00:00 are the same
  instant, and mixing naive entity times with aware feature times just works.
- strings are parsed (ISO 8601, with or without an offset; ``"now"`` is now).

Numbers are refused as timestamps (seconds or milliseconds? we would have to guess):
convert them with ``pd.to_datetime(col, unit="s")`` first.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from ..errors import InvalidInput

NAT = -(2**63)  # numpy's NaT as int64: "no time"

_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "min": 60, "s": 1}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|min|m|s)")


def parse_ttl(value: Any) -> float | None:
    """A ttl in seconds, or None for "no limit".

    Accepts ``timedelta``, a number of seconds, or text such as ``"7d"``, ``"12h"``, ``"1d12h"``,
    ``"90m"``, ``"30s"``, ``"2w"``; ``None``, ``0``, ``"0"`` and ``"none"`` mean no limit (as Feast's ttl=0).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidInput(f"ttl must be a duration such as '7d' or a timedelta, got {value!r}")
    if isinstance(value, dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)):
        seconds = float(value)
    elif hasattr(value, "total_seconds"):  # pandas Timedelta
        seconds = float(value.total_seconds())
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in ("0", "none", "inf", "forever", ""):
            return None if text != "" else _bad_ttl(value)
        pos, seconds = 0, 0.0
        for m in _PART.finditer(text):
            if text[pos:m.start()].strip():
                _bad_ttl(value)
            seconds += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if pos == 0 or text[pos:].strip():
            _bad_ttl(value)
    else:
        raise InvalidInput(f"ttl must be a duration such as '7d' or a timedelta, got {type(value).__name__}")
    if seconds != seconds or seconds < 0:
        raise InvalidInput(f"ttl must be a positive duration, got {value!r}")
    return None if seconds == 0 else seconds


def _bad_ttl(value: Any) -> None:
    raise InvalidInput(f"cannot read ttl {value!r}: write a duration such as 7d, 12h, 1d12h, 90m or 30s (or 'none')")


def fmt_ttl(seconds: float | None) -> str:
    """'7d', '1d12h', '90s', 'none'."""
    if seconds is None:
        return "none"
    rest, parts = float(seconds), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if rest >= size:
            n = int(rest // size)
            parts.append(f"{n}{unit}")
            rest -= n * size
    if rest or not parts:
        parts.append(f"{rest:g}s")
    return "".join(parts)


def parse_time(value: Any, what: str = "time") -> int:
    """One point in time as UTC nanoseconds (naive = UTC; ``"now"`` = now)."""
    import pandas as pd

    if isinstance(value, str) and value.strip().lower() == "now":
        return now_ns()
    if value is None or isinstance(value, (bool, int, float)):
        raise InvalidInput(f"{what} must be a date/time such as '2024-05-01' or '2024-05-01T12:00:00Z', got {value!r}")
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        raise InvalidInput(f"cannot read {what} {value!r}: write a date/time such as 2024-05-01 or "
                           "2024-05-01T12:00:00+02:00 (naive times are UTC)") from None
    if ts is pd.NaT:
        raise InvalidInput(f"{what} is missing (NaT)")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value)


def now_ns() -> int:
    import time

    return time.time_ns()


def to_utc_ns(values: Any, what: str) -> Any:
    """A column of times as an int64 numpy array of UTC nanoseconds (``NAT`` where missing)."""
    import numpy as np
    import pandas as pd

    s = values if isinstance(values, pd.Series) else pd.Series(values)
    dtype = s.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        # aware values are stored as UTC instants, naive ones are taken as UTC: either way the
        # integers are what we want (NaT is the int64 minimum)
        arr = s.array
        arr = arr.as_unit("ns") if getattr(arr, "unit", "ns") != "ns" else arr
        return np.asarray(arr.asi8, dtype=np.int64)
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        raise InvalidInput(f"{what} holds numbers ({dtype}), not times: convert it first, e.g. "
                           "pd.to_datetime(df[col], unit='s')")
    else:
        if s.isna().all():
            return np.full(len(s), NAT, dtype=np.int64)
        try:
            s = pd.to_datetime(s, utc=True, format="ISO8601").dt.tz_localize(None)
        except (ValueError, TypeError, OverflowError):
            try:
                s = pd.to_datetime(s, utc=True, format="mixed").dt.tz_localize(None)
            except (ValueError, TypeError, OverflowError) as exc:
                raise InvalidInput(f"{what} cannot be read as times ({str(exc).splitlines()[0][:120]})") from None
    arr = s.to_numpy()
    if arr.dtype != "datetime64[ns]":
        arr = arr.astype("datetime64[ns]")
    return arr.view(np.int64)


def ns_to_timestamp(ns: int | None) -> Any:
    """A UTC pandas Timestamp (or None)."""
    import pandas as pd

    if ns is None or ns == NAT:
        return None
    return pd.Timestamp(ns, unit="ns", tz="UTC")


def fmt_ns(ns: int | None) -> str:
    if ns is None or ns == NAT:
        return "—"
    return ns_to_timestamp(ns).strftime("%Y-%m-%d %H:%M:%S UTC")
