"""Drift summaries in the store.

Every logged report leaves:

- a summary document in ``db/drift/<YYYY-MM>.json`` (TinyDB, sharded by month so each file
  stays small): id, time, sources, model URI and resolved version, the report's ``summary``,
  and the sha256 of the full numbers;
- the full numbers (``report.to_dict()``, aggregates only) as a JSON blob;
- the saved page (``report.html(full_page=True)``: self-contained, images inline) as a blob,
  referenced from the summary as ``html`` (``report_html(id)`` reads it back);
- with a model named: the summary against that version, through the registry
  (``nbmlops.registry.record_drift_summary``);
- with a run active: ``drift_summary.json`` and ``drift_report.html`` as artifacts of the run.
"""

from __future__ import annotations

import json
from typing import Any

from .._util import new_id, now_ms
from ..errors import NotFound
from ..registry import get_model_version, record_drift_summary
from ..store import Store, check_id, current_store, readable_docs
from ..store.records import DriftSummaryRecord
from ..tracking.session import active_run


def log_report(report: Any, model: str | None = None) -> DriftSummaryRecord:
    """Store the report's summary (see the module doc); return the stored document."""
    model = model or report.sources.get("model")
    version = None
    if model:
        mv = get_model_version(model)
        version = getattr(mv, "version", None)
    store = current_store()
    full = report.to_json().encode()
    sha, size = store.blobs.put_bytes(full)
    page = report.html(full_page=True)
    html_sha, html_size = store.blobs.put_bytes(page.encode())
    summary = report.summary
    doc: DriftSummaryRecord = {
        "schema": 1, "id": new_id(), "time": now_ms(), "model": model, "model_name": _name(model),
        "model_version": version, "sources": report.sources, "summary": summary,
        "report": {"sha256": sha, "size": size}, "html": {"sha256": html_sha, "size": html_size}, "run_id": None}
    run = active_run()
    if run is not None:
        doc["run_id"] = run.id
        run.log_text(json.dumps(summary, indent=1), "drift_summary.json")
        run.log_text(page, "drift_report.html")
    with store.drift_summaries(doc["time"]).edit() as docs:
        docs.insert(doc)
    if model:
        record_drift_summary(model, {"drift_id": doc["id"], **summary})
    return doc


def _name(model: str | None) -> str | None:
    if not model:
        return None
    text = model[len("models:/"):] if model.startswith("models:/") else model
    return text.split("@", 1)[0].rsplit("/", 1)[0]


def _docs(store: Store) -> list[DriftSummaryRecord]:
    """Every summary, newest month first (a damaged month is reported and left out)."""
    return readable_docs(store.drift_summary_files())


def get_summary(drift_id: str) -> DriftSummaryRecord:
    """The stored summary document of one logged report."""
    check_id("drift report", drift_id)
    for doc in _docs(current_store(create=False)):
        if doc["id"] == drift_id:
            return doc
    raise NotFound(f"no drift report with id {drift_id!r} in the store (nbmlops.drift_history() lists them)")


def report_html(drift_id: str) -> str:
    """The saved HTML page of a logged report (hash checked), as logged."""
    doc = get_summary(drift_id)
    if not doc.get("html"):
        if doc.get("window"):
            raise NotFound(f"drift report {drift_id} is a window a deployment's monitor judged: it keeps its numbers "
                           "(nbmlops.monitoring.log.get_summary), not an HTML page")
        raise NotFound(f"drift report {drift_id} was logged before reports kept their HTML page; "
                       "log the report again to keep it")
    return current_store(create=False).blobs.read_bytes(doc["html"]["sha256"]).decode()


def history(model: str | None = None, limit: int = 100) -> Any:
    """Logged summaries, newest first: one row per report."""
    import pandas as pd

    docs = _docs(current_store(create=False))
    name = _name(model)
    if name:
        docs = [d for d in docs if d.get("model_name") == name]
    docs.sort(key=lambda d: d["time"], reverse=True)
    rows = [{"id": d["id"], "time": pd.Timestamp(d["time"], unit="ms"), "model": d.get("model"),
             "version": d.get("model_version"), "dataset_drift": d["summary"].get("dataset_drift"),
             "n_drifted": d["summary"].get("n_drifted"), "n_columns": d["summary"].get("n_columns"),
             "drifted_columns": ", ".join(d["summary"].get("drifted_columns", [])[:10]),
             "reference": d.get("sources", {}).get("reference"), "current": d.get("sources", {}).get("current"),
             "run_id": d.get("run_id"), **_live(d.get("window"))} for d in docs[:limit]]
    return pd.DataFrame(rows, columns=["id", "time", "model", "version", "dataset_drift", "n_drifted", "n_columns",
                                       "drifted_columns", "reference", "current", "run_id", "deployment",
                                       "drift_share", "estimated_accuracy", "realized_accuracy"])


def _live(window: Any) -> dict[str, Any]:
    """A live window's numbers (a deployment's monitor judged it): drift share, estimated and realized
    accuracy (None where a report was not live, or an estimate or label was not available)."""
    if not isinstance(window, dict):
        return {}
    return {"deployment": window.get("deployment"), "drift_share": window.get("drift_share"),
            "estimated_accuracy": (window.get("estimated") or {}).get("accuracy"),
            "realized_accuracy": (window.get("realized") or {}).get("accuracy")}
