"""Runs from an MLflow tracking server into the store (the way back from ``export.mlflow``).

Params, full metric histories, tags, status, times and artifacts come over. A run that this
store exported (tag ``nbmlops.run_id``) or imported before (our tag ``nbmlops.mlflow_run_id``)
is skipped, so importing twice adds nothing. Logged models come as plain artifacts at most and
are never unpickled: a model file from a server is code, and the store's hash only proves it
did not change after it arrived.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from ..errors import InvalidInput, NotFound
from ..store import Store, current_store
from . import Summary
from .mlflow import TAG_IMPORTED, TAG_RUN, _artifact_paths, _check_uri, _mlflow


def import_mlflow(tracking_uri: str, experiment: str | None = None) -> Summary:
    """Bring runs from an MLflow tracking server into the store: params, metric histories, tags,
    status, times and artifacts. Runs exported from this store, and runs imported before, are
    skipped. Logged models come as artifacts, never unpickled.

    >>> nbmlops.import_mlflow("http://127.0.0.1:5000", experiment="churn")
    """
    from ..tracking import experiments as exps

    uri = _check_uri(tracking_uri)
    store = current_store()
    summary = Summary(f"import from mlflow {uri}")
    with _mlflow(uri) as mlflow:
        from mlflow.entities import ViewType

        client = mlflow.MlflowClient(uri)
        if experiment is not None:
            found = client.get_experiment_by_name(experiment)
            if found is None:
                raise NotFound(f"MLflow at {uri} has no experiment named {experiment!r}")
            chosen = [found]
        else:
            chosen = client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
        local = {d["id"]: d for e in store.experiments.all() for f in store.run_files(e["id"]) for d in f.all()}
        imported = {d["tags"].get(TAG_IMPORTED) for d in local.values()} - {None}
        for mexp in chosen:
            exp = exps.get_or_create(store, mexp.name)
            token = None
            while True:
                page = client.search_runs([mexp.experiment_id], max_results=10000, page_token=token)
                for r in page:
                    if r.data.tags.get(TAG_RUN) in local or r.info.run_id in imported:
                        summary.add("runs_already_here")
                        continue
                    _import_run(store, client, mlflow, exp, r, summary)
                token = page.token
                if not token:
                    break
    return summary


def _import_run(store: Store, client: Any, mlflow: Any, exp: dict[str, Any], r: Any, summary: Summary) -> None:
    from .._util import check_key, new_id
    from ..store import SCHEMA, AppendLog
    from ..tracking.runs import _identity

    info, data = r.info, r.data
    run_id = new_id()
    skipped: list[str] = []

    def ok(kind: str, key: str) -> bool:
        try:
            check_key(kind, key)
            return True
        except InvalidInput:
            skipped.append(f"{kind} {key!r}")
            return False

    tags = {k: v for k, v in data.tags.items() if ok("tag", k) and not k.startswith("nbmlops.")}
    tags[TAG_IMPORTED] = info.run_id
    points = 0
    log = None
    summaries: dict[str, dict[str, Any]] = {}
    for key in sorted(data.metrics):
        if not ok("metric", key):
            continue
        hist = sorted(client.get_metric_history(info.run_id, key), key=lambda m: (m.timestamp, m.step))
        log = log or AppendLog(store.metric_log(run_id))
        log.write("".join(f"[{json.dumps(key)},{m.step},{m.timestamp},{m.value!r}]\n" for m in hist))
        points += len(hist)
        last = max(hist, key=lambda m: (m.step, m.timestamp))
        values = [m.value for m in hist]
        summaries[key] = {"value": last.value, "step": last.step, "timestamp": last.timestamp,
                          "min": min(values), "max": max(values), "count": len(values)}
    if log is not None:
        log.close()
    artifacts = []
    if info.artifact_uri:
        with tempfile.TemporaryDirectory(prefix="nbmlops-mlflow-") as tmp:
            if _artifact_paths(client, info.run_id):
                mlflow.artifacts.download_artifacts(run_id=info.run_id, dst_path=tmp)
            for f in sorted(Path(tmp).rglob("*")):
                if f.is_file() and ok("artifact", name := f.relative_to(tmp).as_posix()):
                    sha, size = store.blobs.put_file(f)
                    artifacts.append({"name": name, "sha256": sha, "size": size, "kind": "file"})
    end = info.end_time
    doc = {
        "schema": SCHEMA, "id": run_id, "experiment_id": exp["id"], "name": info.run_name or info.run_id[:8],
        "status": info.status if info.status in ("RUNNING", "FINISHED", "FAILED", "KILLED") else "FINISHED",
        "start_time": info.start_time, "end_time": end,
        "duration": None if end is None else (end - info.start_time) / 1000,
        "user": data.tags.get("mlflow.user") or info.user_id, "host": None, "pid": None,
        "description": data.tags.get("mlflow.note.content"), "tags": tags,
        "params": {k: v for k, v in data.params.items() if ok("param", k)}, "metrics": summaries,
        "artifacts": artifacts, "models": [], "datasets": [], "source_sha": None, "env_sha": None, "python": None,
        "git_commit": data.tags.get("mlflow.source.git.commit"), "notebook": None, "cell_key": None,
        "previous_run": None, "same_as": None, "error": None, "parent_run": None, "deleted": False,
    }
    doc["identity"] = _identity(doc)
    with store.run_file(exp["id"], run_id).table() as t:
        t.insert(doc)
    summary.add("runs_imported")
    summary.add("metric_points", points)
    summary.add("artifacts", len(artifacts))
    if skipped:
        summary.notes.append(f"run {doc['name']}: left out {', '.join(skipped[:5])} (names nbmlops does not accept)")
