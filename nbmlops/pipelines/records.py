"""Pipeline documents in the store.

    db/pipelines/definitions.json     the latest definition of each pipeline (to run it from a shell)
    db/pipelines/runs/<xx>.json       pipeline runs, sharded by the first two hex digits of their id:
                                      params, status, owner process, and per step its state, cache
                                      key, tracked run, inputs, outputs, attempts, error and report
    db/pipelines/cache/<xx>.json      cache entries by key (sharded the same way): the outputs of
                                      the step execution that a later run with the same key reuses
    db/pipelines/decisions/<YYYY-MM>.json   retrain-on-drift decisions with their evidence

Every write goes through a fresh ``DocFile`` (its own cross-process lock) and a thread lock, as
steps finish in worker threads.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from tinydb import where

from .._util import now_ms
from ..store import SCHEMA, DocFile, Store, check_id

_write = threading.Lock()


def definitions_file(store: Store) -> DocFile:
    return DocFile(store.root / "db" / "pipelines" / "definitions.json")


def runs_file(store: Store, run_id: str) -> DocFile:
    return DocFile(store.root / "db" / "pipelines" / "runs" / f"{check_id('pipeline run', run_id)[:2]}.json")


def cache_file(store: Store, key: str) -> DocFile:
    return DocFile(store.root / "db" / "pipelines" / "cache" / f"{key[:2]}.json")


def decisions_file(store: Store, when_ms: int) -> DocFile:
    month = time.strftime("%Y-%m", time.gmtime(when_ms / 1000))
    return DocFile(store.root / "db" / "pipelines" / "decisions" / f"{month}.json")


def _copy(doc: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(doc))


# -- definitions -------------------------------------------------------------------------------
def save_definition(store: Store, name: str, definition: dict[str, Any]) -> None:
    doc = {"schema": SCHEMA, "name": name, "definition": definition, "updated": now_ms()}
    with _write, definitions_file(store).table() as t:
        t.upsert(doc, where("name") == name)


def load_definition(store: Store, name: str) -> dict[str, Any] | None:
    if not store.exists():
        return None
    doc = definitions_file(store).get("name", name)
    return doc["definition"] if doc else None


def definition_names(store: Store) -> list[str]:
    return sorted(d["name"] for d in definitions_file(store).all()) if store.exists() else []


# -- runs --------------------------------------------------------------------------------------
def insert_run(store: Store, doc: dict[str, Any]) -> None:
    with _write, runs_file(store, doc["id"]).table() as t:
        t.insert(doc)


def update_run(store: Store, run_id: str, fields: dict[str, Any] | None = None,
               step: str | None = None, step_fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """Update fields of a pipeline run and/or of one of its steps; return the new document."""
    with _write, runs_file(store, run_id).table() as t:
        doc = dict(t.search(where("id") == run_id)[0])
        if fields:
            doc.update(fields)
        if step is not None:
            steps = dict(doc["steps"])
            steps[step] = {**steps[step], **(step_fields or {})}
            doc["steps"] = steps
        t.update(doc, where("id") == run_id)
    return _copy(doc)


def get_run(store: Store, run_id: str) -> dict[str, Any] | None:
    for doc in runs_file(store, run_id).all():
        if doc["id"] == run_id:
            return _copy(doc)
    return None


def find_run(store: Store, prefix: str) -> list[dict[str, Any]]:
    if len(prefix) < 2:
        return []
    return [_copy(d) for d in runs_file(store, prefix[:2] + "0" * 30).all() if d["id"].startswith(prefix)]


def list_runs(store: Store, pipeline: str | None = None) -> list[dict[str, Any]]:
    """Pipeline runs, newest first."""
    folder = store.root / "db" / "pipelines" / "runs"
    docs: list[dict[str, Any]] = []
    if folder.exists():
        for path in sorted(folder.glob("??.json")):
            docs.extend(d for d in DocFile(path).all() if pipeline is None or d["pipeline"] == pipeline)
    return sorted((_copy(d) for d in docs), key=lambda d: d["start_time"], reverse=True)


# -- cache -------------------------------------------------------------------------------------
def cache_get(store: Store, key: str) -> dict[str, Any] | None:
    doc = cache_file(store, key).get("key", key)
    return doc


def cache_put(store: Store, entry: dict[str, Any]) -> None:
    with _write, cache_file(store, entry["key"]).table() as t:
        t.upsert({"schema": SCHEMA, **entry}, where("key") == entry["key"])


# -- decisions ---------------------------------------------------------------------------------
def insert_decision(store: Store, doc: dict[str, Any]) -> None:
    with _write, decisions_file(store, doc["time"]).table() as t:
        t.insert(doc)


def list_decisions(store: Store, model: str | None = None) -> list[dict[str, Any]]:
    folder = store.root / "db" / "pipelines" / "decisions"
    docs: list[dict[str, Any]] = []
    if folder.exists():
        for path in sorted(folder.glob("*.json")):
            docs.extend(DocFile(path).all())
    if model:
        docs = [d for d in docs if d.get("model_name") == model.split("@", 1)[0].rsplit("/", 1)[0]]
    return sorted((_copy(d) for d in docs), key=lambda d: d["time"], reverse=True)
