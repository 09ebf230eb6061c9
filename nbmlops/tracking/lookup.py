"""Finding runs by id (or a unique prefix), and soft deletion."""

from __future__ import annotations

import json
import warnings
from typing import Any

from .._util import check_key
from ..errors import InvalidInput, NotFound, StoreError
from ..store import DamagedFile, Store, current_store
from ..store.records import ArtifactEntry, RunRecord
from .runs import Run, run_identity
from .session import active_runs
from .stale import metric_summaries


def get_run(run_id: str) -> Run:
    """The run with this id (or a unique prefix of at least 6 hex digits), to read."""
    store = current_store(create=False)
    doc = find_run_doc(store, run_id)
    return Run(store, doc)


def find_run_doc(store: Store, run_id: str) -> RunRecord:
    """The document of the run with this id (or a unique prefix of at least 6 hex digits), a copy."""
    if not isinstance(run_id, str) or len(run_id) < 6 or not all(c in "0123456789abcdef" for c in run_id):
        raise InvalidInput(f"run id must be at least 6 hex digits, got {run_id!r}")
    matches: list[dict[str, Any]] = []
    damaged: list[str] = []
    for exp in store.experiments.all():
        try:
            docs = store.run_file(exp["id"], run_id[:32].ljust(32, "0")).all()  # the shard of every id with this prefix
        except StoreError as exc:  # a damaged shard of another experiment must not hide this run
            damaged.append(str(exc))
            continue
        matches.extend(doc for doc in docs if doc["id"].startswith(run_id))
    if not matches and damaged:
        raise StoreError(f"no run with id {run_id!r} in the readable files; damaged: {'; '.join(damaged)}")
    if not matches:
        raise NotFound(f"no run with id {run_id!r} in the store at {store.root}")
    for reason in damaged:
        warnings.warn(f"skipped while looking up run {run_id!r}: {reason}", DamagedFile, stacklevel=2)
    if len(matches) > 1:
        raise InvalidInput(f"run id prefix {run_id!r} is ambiguous ({len(matches)} runs); give more digits")
    return json.loads(json.dumps(matches[0]))


def delete_run(run_id: str) -> None:
    """Mark a run deleted: searches skip it, its data stays (``restore_run`` brings it back)."""
    _set_deleted(run_id, True)


def restore_run(run_id: str) -> None:
    _set_deleted(run_id, False)


def set_run_tags(run_id: str, tags: dict[str, Any]) -> None:
    """Set tags on a run by id, a finished one too (tags may change; params may not). A run still
    going in another process keeps its own copy of its tags and may write them over these.

    >>> nbmlops.set_run_tags("3f2a9c1e", {"reviewed": "yes"})
    """
    if not isinstance(tags, dict):
        raise InvalidInput(f"set_run_tags takes a dict of name -> value, got {type(tags).__name__}")
    clean = {check_key("tag", k): str(v) for k, v in tags.items()}
    store = current_store(create=False)
    doc = find_run_doc(store, run_id)
    for run in active_runs():
        if run.id == doc["id"]:  # this process writes that run: go through it, so its next save keeps the tags
            run.set_tags(clean)
            return
    if clean:
        with store.run_file(doc["experiment_id"], doc["id"]).edit() as docs:
            current = docs.get(id=doc["id"])
            docs.update({"tags": {**current["tags"], **clean}}, id=doc["id"])  # type: ignore[index]


def set_run_tag(run_id: str, key: str, value: Any) -> None:
    """Set one tag on a run by id (see ``set_run_tags``)."""
    set_run_tags(run_id, {key: value})


def _set_deleted(run_id: str, deleted: bool) -> None:
    store = current_store(create=False)
    doc = find_run_doc(store, run_id)
    if deleted and any(r.id == doc["id"] for r in active_runs()):
        raise InvalidInput(f"run {doc['name']} is active in this process; end it before deleting it")
    with store.run_file(doc["experiment_id"], doc["id"]).edit() as docs:
        docs.update({"deleted": deleted}, id=doc["id"])


# -- edits of a run by the code that ran it elsewhere (a pipeline's runner, an import) ------------
def fail_run(store: Store, run_id: str, error: str) -> None:
    """End a run FAILED that its process left RUNNING (a cell raised, a kernel died): its metric
    summaries are rebuilt from its log. A FINISHED run becomes FAILED with ``error`` (it ran to the
    end but did not give what was asked of it); a run already FAILED or KILLED stays as it is."""
    doc = find_run_doc(store, run_id)
    if doc["status"] == "FINISHED":
        with store.run_file(doc["experiment_id"], run_id).edit() as docs:
            docs.update({"status": "FAILED", "error": error}, id=run_id, status="FINISHED")
        return
    if doc["status"] != "RUNNING":
        return
    doc["metrics"] = {**doc["metrics"], **metric_summaries(store, run_id)}
    Run(store, doc, owned=True).end("FAILED", error)


def add_run_artifacts(store: Store, run_id: str, entries: list[ArtifactEntry]) -> None:
    """Add artifact entries (blobs already in the store) to a run, replacing same-named ones, after
    its own process ended it."""
    doc = find_run_doc(store, run_id)
    names = {e["name"] for e in entries}
    with store.run_file(doc["experiment_id"], run_id).edit() as docs:
        current = docs.find(id=run_id)[0]
        docs.update({"artifacts": [a for a in current["artifacts"] if a["name"] not in names] + entries}, id=run_id)


def insert_run(store: Store, doc: RunRecord) -> None:
    """Store a whole run document made elsewhere (an import from MLflow), with its identity."""
    doc["identity"] = run_identity(doc)
    with store.run_file(doc["experiment_id"], doc["id"]).edit() as docs:
        docs.insert(dict(doc))
