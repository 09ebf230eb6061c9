"""What a feature view holds: rows, time range, freshness, per-feature null share and range."""

from __future__ import annotations

from typing import Any

from .frames import prepared
from .online import online_state
from .timeutil import NAT, now_ns


def view_stats(view: Any) -> dict[str, Any]:
    """Statistics of a FeatureView's source as it is now (cached with the prepared source)."""
    import numpy as np

    doc = {"name": view.name, "join_keys": view.join_keys, "key_types": view.key_types,
           "features": [{"name": k, "dtype": v} for k, v in view.features.items()], "ttl": view.ttl,
           "source": {"kind": view.source.kind}}
    prep = prepared(doc, view.source)
    cached = getattr(prep, "_stats", None)
    if cached is None:
        features = {}
        for name, dtype in prep.dtypes.items():
            values, mask = prep.columns[name]
            n = len(values)
            if dtype in ("float64", "float32"):
                null = np.isnan(values)
            elif dtype == "string":
                null = np.fromiter((v is None for v in values), bool, n)
            else:
                null = mask if mask is not None else np.zeros(n, bool)
            present = values[~null]
            entry: dict[str, Any] = {"dtype": dtype, "null_share": float(null.mean()) if n else 0.0,
                                     "min": None, "max": None, "distinct": None}
            if len(present):
                if dtype == "string":
                    entry["distinct"] = int(len(set(present.tolist())))
                elif dtype == "bool":
                    entry["min"], entry["max"] = bool(present.min()), bool(present.max())
                elif dtype == "timestamp":
                    entry["min"], entry["max"] = int(present.min()), int(present.max())
                else:
                    entry["min"], entry["max"] = present.min().item(), present.max().item()
            features[name] = entry
        first, last = prep.time_range
        cached = prep._stats = {"rows": prep.rows, "usable_rows": len(prep.ts_s), "entities": prep.keys.count,
                                "first": first, "last": last, "features": features}
    stats = dict(cached)
    stats["age_s"] = None if stats["last"] in (None, NAT) else (now_ns() - stats["last"]) / 1e9
    stats["online"] = online_state(view.name) if getattr(view, "version", None) else None
    return stats
