"""What CBPE and DLE share: the smallest window, the confidence band, checked vectors, the result's shape."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import InvalidInput

MIN_WINDOW = 100          # rows; below it the sampling error is of the order of the changes to detect
SAMPLING_ERROR_RANGE = 3  # the band is estimate ± 3 sampling errors (NannyML's)


def _vector(values: Any, name: str) -> np.ndarray:
    try:
        v = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"{name} must be numbers: {e}") from None
    if v.ndim == 2 and v.shape[1] == 1:
        v = v[:, 0]
    if v.ndim != 1:
        raise InvalidInput(f"{name} must be one value per row, got shape {v.shape}")
    return v




def _result(method: str, n: int, values: dict[str, float], errors: dict[str, float], reference: dict[str, float],
            unavailable: dict[str, str], notes: list[str], lower_bound: float = 0.0, upper_bound: float = 1.0,
            **extra: Any) -> dict[str, Any]:
    metrics = {}
    for m, v in values.items():
        se = float(errors[m])
        metrics[m] = {"estimated": v, "sampling_error": se,
                      "lower": float(max(lower_bound, v - SAMPLING_ERROR_RANGE * se)),
                      "upper": float(min(upper_bound, v + SAMPLING_ERROR_RANGE * se)),
                      "reference": reference.get(m)}
    return {"method": method, "rows": int(n), "metrics": metrics, "unavailable": unavailable, "notes": notes,
            **extra}


def _is_null_value(v: Any) -> bool:
    return v is None or (isinstance(v, (float, np.floating)) and np.isnan(v))


def _is_null(values: np.ndarray) -> np.ndarray:
    return np.fromiter((_is_null_value(v) for v in values), dtype=bool, count=len(values))


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v
