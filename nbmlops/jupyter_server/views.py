"""What the dashboard's pages answer beyond the lists: a comparison of runs, a model version with its
lineage, a deployment read live from its ``/metrics``, a model version's drift over time. Plain
JSON-ready dicts from public nbmlops calls (no tornado here)."""

from __future__ import annotations

import time
from typing import Any

import nbmlops

from ..errors import InvalidInput, NotFound, ServingError
from ..monitoring.timeline import monitor_timeline
from ..registry.uri import check_name, parse
from ..tracking.curves import metric_curves
from . import prom
from .data import _clean, _ms, _records, param_columns

MAX_COMPARE = 10
LIVE = ("starting", "running", "not answering")

# the model server's series (nbmlops/serving/metrics.py); the first name present is used (older servers
# have no whole-request series: their prediction latency and prediction counts stand in)
REQUESTS = ("model_http_requests_total",)
REQUEST_LATENCY = ("model_http_request_duration_seconds", "model_prediction_latency_seconds")
PREDICTIONS = "model_predictions_total"
ACCURACY = "model_accuracy"
ACCURACY_WINDOWED = "model_accuracy_windowed"
WEIGHT = "model_traffic_weight"
ERRORS = "model_request_errors_total"
IN_FLIGHT = "model_requests_in_flight"
NOT_TRAFFIC = ("/admin/", "/feedback")  # POSTs that are not scoring requests


def _traffic(labels: dict[str, str]) -> bool:
    """Scoring requests: POSTs but the admin and feedback ones. Every GET is a probe, a metadata read or a
    metrics scrape (this page's own among them)."""
    if "method" not in labels:
        return True
    return labels["method"] == "POST" and not labels.get("route", "").startswith(NOT_TRAFFIC)


# ------------------------------------------------------------------ compare
def compare(run_ids: list[str], max_points: int) -> dict[str, Any]:
    """2-10 runs side by side: their params (varying ones first), metrics and every metric's curves."""
    ids = list(dict.fromkeys(r for r in run_ids if r))
    if not 2 <= len(ids) <= MAX_COMPARE:
        raise InvalidInput(f"compare takes 2 to {MAX_COMPARE} different run ids (runs=a,b,c), got {len(ids)}")
    runs = []
    for run_id in ids:
        r = nbmlops.get_run(run_id)
        runs.append({"id": r.id, "name": r.name, "status": r.status, "experiment_id": r.experiment_id,
                     "start_time": r.info.get("start_time"), "params": r.params,
                     "metrics": {k: _clean(v) for k, v in r.metrics.items()}})
    columns = param_columns([r["params"] for r in runs])
    keys = sorted({k for r in runs for k in r["metrics"]})
    curves: dict[str, dict[str, Any]] = {k: {} for k in keys}
    for r in runs:
        for key, curve in metric_curves(r["id"], max_points=max_points)["curves"].items():
            curves.setdefault(key, {})[r["id"]] = curve
    shared = [k for k in keys if all(k in r["metrics"] for r in runs)]
    return {"runs": runs, "metrics": keys, "shared_metrics": shared, "params": columns,
            "diff": [{"key": k, "values": [r["params"].get(k) for r in runs]} for k in columns["varying"]],
            "curves": curves}


# ------------------------------------------------------------------ model version and its lineage
def _deployments_of(name: str, version: int | None = None) -> list[dict[str, Any]]:
    out = []
    for row in nbmlops.list_deployments(all=True).to_dict(orient="records"):
        try:
            model = parse(row["model"]).name
        except InvalidInput:
            continue
        if model != name or (version is not None and _clean(row["version"]) != version):
            continue
        live = row["status"] in LIVE
        out.append({"name": row["name"], "model": row["model"], "version": _clean(row["version"]),
                    "status": row["status"], "url": row["url"] if live else None, "started": _ms(row["started"])})
    return out


def model_version(name: str, version: int) -> dict[str, Any]:
    """One version: its record, its lineage (datasets -> run -> version -> deployments -> drift reports)
    and the model's alias history."""
    mv = nbmlops.get_model_version(f"{check_name(name)}/{version}")
    doc = mv.doc
    run = None
    if doc.get("run_id"):
        try:
            r = nbmlops.get_run(doc["run_id"])
            run = {"id": r.id, "name": r.name, "status": r.status, "experiment_id": r.experiment_id}
        except NotFound:  # the run's store was another one (a copied model): name it, without a link
            run = {"id": doc["run_id"], "name": doc.get("run_name"), "status": None, "missing": True}
    drift = [{"id": m.get("drift_id"), "time": m.get("time"), "share_drifted": m.get("share_drifted"),
              "dataset_drift": m.get("dataset_drift")} for m in doc.get("monitoring", [])]
    history = _records(nbmlops.model_history(mv.name))
    out = {k: doc.get(k) for k in ("version", "sha256", "size", "class", "created", "user", "description", "tags",
                                   "params", "metrics")}
    out.update({"name": mv.name, "aliases": mv.aliases, "run": run, "datasets": doc.get("datasets", []),
                "signature": _signature(doc.get("signature") or {}),
                "versions": [int(v) for v in nbmlops.list_versions(mv.name)["version"]],
                "deployments": _deployments_of(mv.name, mv.version), "drift": drift[-20:], "drift_count": len(drift),
                "history": [h for h in history if mv.version in (h.get("version"), h.get("from"), h.get("to"))],
                "alias_history": [h for h in history if h.get("action") == "alias"]})
    return _json(out)


def _signature(sig: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of a signature: the input columns (the first 50), their count, the output."""
    features = sig.get("features") or []
    return {"features": features[:50], "n_inputs": sig.get("n_features") or len(features),
            "output": sig.get("output"), "classes": (sig.get("classes") or [])[:20]}


def drift_timeline(name: str, version: int) -> dict[str, Any]:
    """One version's monitoring timeline (``monitor_timeline``), oldest first: the live windows and logged
    reports (share of drifted columns against the threshold, estimated vs realized performance) and the
    moves of the aliases its deployments follow, to and from it. ``share_drifted`` is a point's share,
    ``drift_share`` the threshold (the names of the stored summary)."""
    mv = nbmlops.get_model_version(f"{check_name(name)}/{version}")
    tl = monitor_timeline(mv.name, mv.version)
    points = []
    for w in tl.window_records:
        point = {"time": w["time"], "id": w["id"], "kind": w["kind"], "deployment": w["deployment"],
                 "first": w["first"], "last": w["last"], "rows": w["rows"], "share_drifted": w["drift_share"],
                 "drift_share": w["threshold"], "dataset_drift": w["drifted"], "n_drifted": w["n_drifted"],
                 "n_columns": w["n_columns"], "drifted_columns": w["drifted_columns"][:10], "page": w["page"],
                 "labels": w["labels"], "method": w["method"]}
        for side in ("estimated", "realized"):  # estimated (CBPE, DLE) vs realized (from labels)
            point[side] = {m: w[f"{side}_{m}"] for m in ("accuracy", "roc_auc", "f1", "mae")
                           if w.get(f"{side}_{m}") is not None}
        points.append(point)
    return _json({"name": mv.name, "version": mv.version, "aliases": mv.aliases, "metric": tl.metric,
                  "threshold": tl.threshold, "followed": tl.aliases, "truncated": tl.truncated,
                  "deployments": tl.deployments, "switches": tl.switch_records, "points": points})


# ------------------------------------------------------------------ deployment, live
def _ask(dep: Any, path: str) -> tuple[int, Any]:
    try:
        return dep.request("GET", path, timeout=3)
    finally:
        conn = getattr(dep, "_conn", None)  # one request per page refresh: do not keep its connection
        if conn is not None:
            conn.close()
            dep._conn = None


def _first(samples: list[prom.Sample], names: tuple[str, ...]) -> str | None:
    present = {n for n, _, _ in samples}
    return next((n for n in names if n in present or f"{n}_bucket" in present), None)


def live_metrics(text: str) -> dict[str, Any]:
    """What the deployment page draws, from a model server's ``/metrics`` text."""
    samples = prom.parse(text)
    requests = _first(samples, REQUESTS)
    latency = _first(samples, REQUEST_LATENCY)
    buckets = prom.buckets(samples, latency, _traffic) if latency else []
    p50, p99 = prom.quantile(0.5, buckets), prom.quantile(0.99, buckets)
    predictions = prom.by_label(samples, PREDICTIONS, "model_version")
    return {"requests": prom.total(samples, requests, _traffic) if requests else (sum(predictions.values()) or None),
            "requests_series": requests,
            "latency": {"series": latency, "buckets": prom.to_json(buckets),
                        "count": prom.total(samples, f"{latency}_count", _traffic) if latency else None,
                        "p50_ms": None if p50 is None else p50 * 1000, "p99_ms": None if p99 is None else p99 * 1000},
            "predictions": predictions, "accuracy": prom.by_label(samples, ACCURACY, "model_version"),
            "accuracy_windowed": prom.by_label(samples, ACCURACY_WINDOWED, "model_version"),
            "weights": prom.by_label(samples, WEIGHT, "model_version"),
            "errors": prom.by_label(samples, ERRORS, "reason"), "in_flight": prom.total(samples, IN_FLIGHT)}


def deployment(name: str) -> dict[str, Any]:
    """A deployment's record (never its tokens) and, while it runs, its live numbers."""
    dep = nbmlops.get_deployment(check_name(name))
    doc = dep.doc
    out = {k: doc.get(k) for k in ("name", "model_uri", "model", "version", "status", "started", "stopped",
                                   "weights", "shadow", "follows_alias", "switches", "error", "batching", "auth")}
    out["url"] = dep.url if doc["status"] in LIVE and doc.get("port") else None
    out["time"] = int(time.time() * 1000)
    out["live"] = None
    if doc["status"] in LIVE:
        try:
            code, text = _ask(dep, "/metrics")
            if code != 200:
                raise ServingError(f"{dep.name} answered {code} on /metrics")
            out["live"] = live_metrics(text if isinstance(text, str) else "")
        except ServingError as e:
            out["status"] = "not answering"
            out["live_error"] = str(e)
    out["weights"] = {str(k): v for k, v in (doc.get("weights") or {}).items()}
    return _json(out)


def _json(value: Any) -> Any:
    """Nested values JSON-ready (NaN and numpy scalars included)."""
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    return _clean(value)
