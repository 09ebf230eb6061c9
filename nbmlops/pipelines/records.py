"""Pipeline documents in the store (``Store.pipeline_*`` accessors).

    db/pipelines/definitions.json     the latest definition of each pipeline (to run it from a shell)
    db/pipelines/runs/<xx>.json       pipeline runs, sharded by the first two hex digits of their id:
                                      params, status, owner process, and per step its state, cache
                                      key, tracked run, inputs, outputs, attempts, error and report
    db/pipelines/cache/<xx>.json      cache entries by key (sharded the same way): the outputs of
                                      the step execution that a later run with the same key reuses
    db/pipelines/decisions/<YYYY-MM>.json   retrain-on-drift decisions with their evidence

Every write holds the file's cross-process lock and a thread lock, as steps finish in worker threads.
"""

from __future__ import annotations

import json
import threading
from typing import Any, TypeVar

from .._util import now_ms
from ..store import SCHEMA, Store
from ..store.records import CacheEntryRecord, PipelineDefinitionRecord, PipelineRunRecord, RetrainDecisionRecord

_write = threading.Lock()
_R = TypeVar("_R")


def _copy(doc: _R) -> _R:
    return json.loads(json.dumps(doc))


# -- definitions -------------------------------------------------------------------------------
def save_definition(store: Store, name: str, definition: dict[str, Any]) -> None:
    doc: PipelineDefinitionRecord = {"schema": SCHEMA, "name": name, "definition": definition, "updated": now_ms()}
    with _write, store.pipeline_definitions().edit() as docs:
        docs.upsert(dict(doc), name=name)


def load_definition(store: Store, name: str) -> dict[str, Any] | None:
    if not store.exists():
        return None
    doc = store.pipeline_definitions().get("name", name)
    return doc["definition"] if doc else None


def definition_names(store: Store) -> list[str]:
    return sorted(d["name"] for d in store.pipeline_definitions().all()) if store.exists() else []


# -- runs --------------------------------------------------------------------------------------
def insert_run(store: Store, doc: PipelineRunRecord) -> None:
    with _write, store.pipeline_runs(doc["id"]).edit() as docs:
        docs.insert(dict(doc))


def update_run(store: Store, run_id: str, fields: dict[str, Any] | None = None,
               step: str | None = None, step_fields: dict[str, Any] | None = None) -> PipelineRunRecord:
    """Update fields of a pipeline run and/or of one of its steps; return the new document."""
    with _write, store.pipeline_runs(run_id).edit() as docs:
        doc: dict[str, Any] = docs.find(id=run_id)[0]
        if fields:
            doc.update(fields)
        if step is not None:
            steps = dict(doc["steps"])
            steps[step] = {**steps[step], **(step_fields or {})}
            doc["steps"] = steps
        docs.update(doc, id=run_id)
    return _copy(doc)  # type: ignore[return-value]


def get_run(store: Store, run_id: str) -> PipelineRunRecord | None:
    for doc in store.pipeline_runs(run_id).all():
        if doc["id"] == run_id:
            return _copy(doc)
    return None


def find_run(store: Store, prefix: str) -> list[PipelineRunRecord]:
    if len(prefix) < 2:
        return []
    return [_copy(d) for d in store.pipeline_runs(prefix[:2] + "0" * 30).all()
            if d["id"].startswith(prefix)]


def list_runs(store: Store, pipeline: str | None = None) -> list[PipelineRunRecord]:
    """Pipeline runs, newest first."""
    docs = [d for f in store.pipeline_run_files() for d in f.all() if pipeline is None or d["pipeline"] == pipeline]
    return sorted((_copy(d) for d in docs), key=lambda d: d["start_time"], reverse=True)


# -- cache -------------------------------------------------------------------------------------
def cache_get(store: Store, key: str) -> CacheEntryRecord | None:
    return store.pipeline_cache(key).get("key", key)


def cache_put(store: Store, entry: dict[str, Any]) -> None:
    """Store a cache entry (every field of ``CacheEntryRecord`` but ``schema``)."""
    with _write, store.pipeline_cache(entry["key"]).edit() as docs:
        docs.upsert({"schema": SCHEMA, **entry}, key=entry["key"])


# -- decisions ---------------------------------------------------------------------------------
def insert_decision(store: Store, doc: RetrainDecisionRecord) -> None:
    with _write, store.pipeline_decisions(doc["time"]).edit() as docs:
        docs.insert(dict(doc))


def list_decisions(store: Store, model: str | None = None) -> list[RetrainDecisionRecord]:
    docs: list[dict[str, Any]] = [d for f in store.pipeline_decision_files() for d in f.all()]
    if model:
        docs = [d for d in docs if d.get("model_name") == model.split("@", 1)[0].rsplit("/", 1)[0]]
    return sorted((_copy(d) for d in docs), key=lambda d: d["time"], reverse=True)  # type: ignore[misc]
