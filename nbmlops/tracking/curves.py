"""Metric curves cut to what a chart can draw: at most ``max_points`` points per metric, the shape
kept (each bucket's lowest and highest point), so a 100,000-point history draws as fast as a short one.

A finished run's log no longer grows, so its curves are kept in memory (a small LRU keyed by the
store, the run and its end time); a running run's log is read on every call.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from ..errors import InvalidInput, NotFound
from ..store import current_store
from .lookup import find_run_doc
from .stale import metric_points

MAX_POINTS = 1000
_CACHE_RUNS = 64
_cache: OrderedDict[tuple[str, str, int], dict[str, Any]] = OrderedDict()
_lock = threading.Lock()


def downsample(n: int, values: list[float], max_points: int = MAX_POINTS) -> list[int]:
    """Indexes of at most ``max_points`` of ``n`` points (in order): the first, the last, and the
    lowest and highest of each of ``(max_points - 2) // 2`` equal buckets between them."""
    if n <= max_points:
        return list(range(n))
    import numpy as np  # lazy: numpy only for long curves

    y = np.asarray(values, dtype=float)
    edges = np.linspace(1, n - 1, (max_points - 2) // 2 + 1).astype(int)
    keep = [0]
    for a, b in zip(edges[:-1], edges[1:]):
        if b > a:
            seg = y[a:b]
            keep.extend(sorted({a + int(seg.argmin()), a + int(seg.argmax())}))
    keep.append(n - 1)
    return keep


def _curves(path: Any, max_points: int) -> dict[str, dict[str, Any]]:
    points: dict[str, list[list[Any]]] = {}
    for key, step, ts, value in metric_points(path):
        points.setdefault(key, []).append([step, ts, value])
    out = {}
    for key, rows in points.items():
        rows.sort(key=lambda r: r[0])  # stable: points of one step stay in logging order
        keep = downsample(len(rows), [r[2] for r in rows], max_points)
        out[key] = {"step": [rows[i][0] for i in keep], "timestamp": [rows[i][1] for i in keep],
                    "value": [rows[i][2] for i in keep], "points": len(rows)}
    return out


def metric_curves(run_id: str, keys: list[str] | None = None, max_points: int = MAX_POINTS) -> dict[str, Any]:
    """Each metric of a run as ``{"step", "timestamp" (ms), "value", "points" (before cutting)}``,
    ordered by step, at most ``max_points`` points each; ``keys`` picks metrics (each must exist).

    >>> nbmlops.tracking.curves.metric_curves("3f2a9c1e", ["loss"])["curves"]["loss"]["points"]
    100000
    """
    if not isinstance(max_points, int) or max_points < 4:
        raise InvalidInput(f"max_points must be a whole number of at least 4, got {max_points!r}")
    store = current_store(create=False)
    doc = find_run_doc(store, run_id)
    cache_key = (str(store.root), doc["id"], max_points)
    curves = None
    if doc["status"] != "RUNNING":
        with _lock:
            hit = _cache.get(cache_key)
            if hit is not None and hit["end"] == doc.get("end_time"):
                _cache.move_to_end(cache_key)
                curves = hit["curves"]
    if curves is None:
        curves = _curves(store.metric_log(doc["id"]), max_points)
        if doc["status"] != "RUNNING":
            with _lock:
                _cache[cache_key] = {"end": doc.get("end_time"), "curves": curves}
                while len(_cache) > _CACHE_RUNS:
                    _cache.popitem(last=False)
    if keys:
        missing = [k for k in keys if k not in curves]
        if missing:
            have = ", ".join(sorted(curves)) or "none"
            raise NotFound(f"run {doc['name']} has no metric {missing[0]!r} (metrics: {have})")
        curves = {k: curves[k] for k in keys}
    return {"run_id": doc["id"], "name": doc["name"], "curves": curves}
