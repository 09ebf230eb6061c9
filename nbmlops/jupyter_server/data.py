"""What the dashboard API answers: domain calls turned into plain JSON-ready dicts (no tornado here)."""

from __future__ import annotations

import json
import math
from typing import Any

import nbmlops

from ..errors import NotFound
from ..registry.uri import check_name
from ..store import current_store
from ..tracking.curves import MAX_POINTS, metric_curves
from . import artifacts

MAX_RESULTS = 1000
MAX_SOURCE = 100_000  # characters of a run's cell source shown on its page


def _clean(value: Any) -> Any:
    """NaN / NaT / numpy scalars / Timestamps as JSON values (None, int, float, ms since the epoch)."""
    if value is None or type(value).__name__ == "NAType":  # pandas' NA (nullable integer columns)
        return None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "isoformat"):
        return _ms(value)
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():
        return _clean(item())
    return value


def _records(df: Any) -> list[dict[str, Any]]:
    return [{str(k): _clean(v) for k, v in row.items()} for row in df.to_dict(orient="records")]


def _ms(value: Any) -> int | None:
    """A pandas Timestamp (or NaT) as milliseconds since the epoch."""
    try:
        import pandas as pd

        if value is None or pd.isna(value):
            return None
        return int(pd.Timestamp(value).value // 1_000_000)
    except (TypeError, ValueError):
        return None


def store() -> dict[str, Any]:
    s = current_store(create=False)
    return {"path": str(s.root), "exists": s.exists()}


def experiments() -> list[dict[str, Any]]:
    df = nbmlops.list_experiments()
    return [{"id": r["experiment_id"], "name": r["name"], "runs": int(r["runs"]), "created": _ms(r["created"])}
            for r in df.to_dict(orient="records")]


def param_columns(params: list[dict[str, Any]]) -> dict[str, Any]:
    """Which params a table of these runs shows: ``varying`` (two or more values among the runs that
    have it), folded ``constant`` ones (one value, in every run) and ``partial`` ones (one value, in
    some runs only: typically an estimator's defaults that another estimator does not have)."""
    values: dict[str, set[str]] = {}
    seen: dict[str, int] = {}
    first: dict[str, Any] = {}
    for p in params:
        for k, v in p.items():
            values.setdefault(k, set()).add(json.dumps(v, sort_keys=True, default=str))
            seen[k] = seen.get(k, 0) + 1
            first.setdefault(k, v)
    varying = sorted(k for k, vs in values.items() if len(vs) > 1)
    constant = {k: first[k] for k in sorted(values) if len(values[k]) == 1 and seen[k] == len(params)}
    partial = {k: {"value": first[k], "runs": seen[k]} for k in sorted(values)
               if len(values[k]) == 1 and seen[k] < len(params)}
    return {"varying": varying, "constant": constant, "partial": partial}


def runs(experiment: str, filter: str | None, order_by: list[str], max_results: int, offset: int) -> dict[str, Any]:
    """One page of an experiment's runs (search in MLflow's filter syntax), newest first by default,
    with the columns to show: every metric, then the params that vary across the page's runs."""
    exp = nbmlops.get_experiment(experiment)
    df = nbmlops.search_runs(exp.id, filter=filter or None, order_by=order_by or None,
                             max_results=offset + max_results + 1)
    more = len(df) > offset + max_results
    page = df.iloc[offset:offset + max_results]
    out = []
    for row in page.to_dict(orient="records"):
        item: dict[str, Any] = {"id": row["run_id"], "name": row["run_name"], "status": row["status"],
                                "start_time": _ms(row["start_time"]), "end_time": _ms(row["end_time"]),
                                "duration": _clean(row["duration"]), "user": row["user"],
                                "params": {}, "metrics": {}, "tags": {}}
        for key, value in row.items():
            kind, _, name = str(key).partition(".")
            if kind in ("params", "metrics", "tags") and name:
                value = _clean(value)
                if value is not None:
                    item[kind][name] = value
        out.append(item)
    columns = param_columns([r["params"] for r in out])
    columns["metrics"] = sorted({k for r in out for k in r["metrics"]})
    return {"experiment": {"id": exp.id, "name": exp.name}, "runs": out, "offset": offset,
            "max_results": max_results, "next_offset": offset + max_results if more else None, "columns": columns}


def run(run_id: str) -> dict[str, Any]:
    r = nbmlops.get_run(run_id)
    doc = r.info
    exp = nbmlops.get_experiment(doc["experiment_id"])
    keep = ("id", "name", "status", "start_time", "end_time", "duration", "user", "host", "description", "params",
            "metrics", "tags", "datasets", "notebook", "git_commit", "python", "parent_run", "same_as", "error",
            "deleted")
    out = {k: doc.get(k) for k in keep}
    out["experiment"] = {"id": exp.id, "name": exp.name}
    out["artifacts"] = [{**{k: a.get(k) for k in ("name", "kind", "size", "sha256")},
                         "show": artifacts.kind(a["name"], a.get("kind"))} for a in doc["artifacts"]]
    out["models"] = [{k: m.get(k) for k in ("name", "class", "size", "sha256", "format", "datasets")}
                     for m in doc["models"]]
    out["source"] = None
    if doc.get("source_sha"):
        # the cell's source, a blob named in the run document (read through the store, hash checked)
        text = current_store(create=False).blobs.read_bytes(doc["source_sha"]).decode(errors="replace")
        out["source"] = text[:MAX_SOURCE]
        out["source_truncated"] = len(text) > MAX_SOURCE
    return json.loads(json.dumps(out, default=str))


def metric_history(run_id: str, key: str | None = None, max_points: int = MAX_POINTS) -> dict[str, Any]:
    """Each metric's curve by step, at most ``max_points`` points (the lowest and highest of each
    bucket kept): {key: {"step": [...], "timestamp": [...], "value": [...], "points": n logged}}."""
    got = metric_curves(run_id, [key] if key is not None else None, max_points)
    return {"run_id": got["run_id"], "metrics": got["curves"]}


def _model(name: str, latest: int | None = None, description: Any = None, updated: Any = None) -> dict[str, Any]:
    versions = []
    for row in _records(nbmlops.list_versions(name)):
        metrics = {k.split(".", 1)[1]: v for k, v in row.items() if k.startswith("metrics.") and v is not None}
        versions.append({"version": int(row["version"]),
                         "aliases": [a for a in (row.get("aliases") or "").split(", ") if a],
                         "created": row.get("created"), "run": row.get("run"), "class": row.get("class"),
                         "sha256": row.get("sha256"), "metrics": metrics})
    try:
        aliases = dict(nbmlops.get_model_version(name).model_doc["aliases"])
    except NotFound:  # no live versions left
        aliases = {}
    if latest is None and versions:
        latest = versions[-1]["version"]
    return {"name": name, "latest_version": latest,
            "aliases": aliases, "versions": versions, "description": description, "updated": updated}


def models() -> list[dict[str, Any]]:
    return [_model(r["name"], None if r["latest_version"] is None else int(r["latest_version"]), r["description"],
                   r["updated"]) for r in _records(nbmlops.list_models())]


def model(name: str) -> dict[str, Any]:
    out = _model(check_name(name))
    out["history"] = _records(nbmlops.model_history(name))
    return out


def set_alias(name: str, alias: str, version: int) -> dict[str, Any]:
    mv = nbmlops.set_alias(name, alias, version)
    return {"name": mv.name, "alias": alias, "version": mv.version, "aliases": dict(mv.model_doc["aliases"])}


def _status(dep: Any) -> dict[str, Any]:
    try:
        return dep.status()
    finally:
        conn = getattr(dep, "_conn", None)  # one status call per request: do not keep its connection
        if conn is not None:
            conn.close()
            dep._conn = None


def deployments(include_stopped: bool = True, live: bool = True) -> list[dict[str, Any]]:
    """Deployments, newest first; ``live`` asks each running server for its state."""
    out = []
    seen: set[str] = set()
    for row in nbmlops.list_deployments(all=include_stopped).to_dict(orient="records"):
        item = {k: _clean(row[k]) for k in ("name", "model", "version", "status", "url", "pid")}
        item["started"] = _ms(row["started"])
        if row["status"] not in ("starting", "running"):
            item["url"] = None  # a stopped server's address answers nothing (or, later, someone else)
        newest = row["name"] not in seen  # get_deployment(name) reaches the newest record of a name
        seen.add(row["name"])
        if live and newest and row["status"] in ("starting", "running"):
            item.update({k: _clean(v) for k, v in _status(nbmlops.get_deployment(row["name"])).items()
                         if k in ("status", "uptime", "requests", "sha256")})
        out.append(item)
    return out


def stop_deployment(name: str) -> dict[str, Any]:
    dep = nbmlops.get_deployment(check_name(name))
    dep.stop()
    return {"name": dep.name, "status": dep.doc["status"]}


def drift_reports(model: str | None, limit: int) -> list[dict[str, Any]]:
    out = []
    for r in nbmlops.drift_history(model, limit).to_dict(orient="records"):
        item = {k: _clean(v) for k, v in r.items()}
        item["time"] = _ms(r["time"])
        item["version"] = None if item["version"] is None else int(item["version"])
        out.append(item)
    return out


def drift_report_html(drift_id: str) -> str:
    """A logged report's saved page; a live window's report drawn again from its rows (``window_report``)."""
    from ..monitoring.log import get_summary, report_html  # lazy: loads pandas; the extension warms it in a thread

    doc = get_summary(drift_id)
    if doc.get("window") and not doc.get("html"):
        return nbmlops.window_report(drift_id).html(full_page=True)
    return report_html(drift_id)
