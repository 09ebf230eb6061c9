"""Small helpers shared by the store and the domain."""

from __future__ import annotations

import math
import re
import time
import uuid
from typing import Any

from .errors import InvalidInput

VERSION = "0.1.0"  # nbmlops.__version__ (pyproject.toml says it too)
_KEY = re.compile(r"^[A-Za-z0-9_\-. /:]{1,250}$")


def new_id() -> str:
    """A fresh 32-hex-digit id (uuid4): ours, never TinyDB's per-instance doc_id."""
    return uuid.uuid4().hex


def now_ms() -> int:
    """Wall-clock time in integer milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


def check_key(kind: str, key: object) -> str:
    """Validate a param/metric/tag/artifact name; return it unchanged."""
    if not isinstance(key, str) or not _KEY.match(key) or key.startswith(("/", " ")) or ".." in key:
        raise InvalidInput(
            f"invalid {kind} name {key!r}: use 1-250 letters, digits, '_', '-', '.', ' ', '/' or ':' "
            "(no leading '/', no '..')"
        )
    return key


def fmt_duration(seconds: float | None) -> str:
    """'512 ms', '3.2 s', '4 min 05 s', '2 h 01 min'."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def fmt_time(ms: int | None) -> str:
    """Local time of a millisecond timestamp, to the second."""
    if ms is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def json_ready(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python, NaN and infinities to None, keys to strings."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
