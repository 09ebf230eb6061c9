"""Stores of 100,000 runs for the search, runs-browser and dashboard rows, filled once and cached.

Filling 100,000 runs one by one takes most of an hour on 2 shared cores (nbmlops ~6 ms a run, MLflow's
sqlite store ~30 ms), so both stores are filled in bulk and kept under ``/work/bench-cache/`` (outside
the repository; ``NBMLOPS_BENCH_CACHE`` moves it) between runs:

- nbmlops: the first ``REAL`` runs through the public API (``start_run``, ``log_params``,
  ``log_metrics``, ``set_tag``); the others are documents of the same shape (a copy of a real run's
  document with its own id, name, times, params, metric summaries, tag and identity) inserted one
  shard at a time through the store's own ``DocFile.edit()`` (``Docs.insert_many``), with their
  metric-history lines appended to ``logs/metrics/<run>.jsonl`` as ``log_metric`` writes them.
- MLflow (sqlite): the first ``REAL`` runs through ``MlflowClient`` (``create_run``, ``log_batch``,
  ``set_terminated``); the others as rows of MLflow's own SQLAlchemy models (``SqlRun``, ``SqlParam``,
  ``SqlMetric``, ``SqlLatestMetric``, ``SqlTag``) added through its ``SqlAlchemyStore``'s session,
  the rows ``log_batch`` would write.

Every run k has the params of ``run_params(k)``, the metrics ``acc``, ``auc``, ``loss`` drawn from
``random.Random(0)`` in order, and the tag ``team`` (red, blue, green): the same in both stores.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

CACHE = Path(os.environ.get("NBMLOPS_BENCH_CACHE", "/work/bench-cache"))
REAL = 200  # runs made through each tool's API before the bulk part
EXPERIMENT = "bench-search"
FORMAT = 1  # bump when the content changes: older caches are then refilled


def run_params(k: int) -> dict[str, Any]:
    return {"model": ("rf", "gbm", "lr")[k % 3], "depth": k % 10, "lr": round(0.001 * (k % 50 + 1), 4),
            "seed": k, "features": f"set-{k % 7}"}


def runs(n: int) -> list[dict[str, Any]]:
    """What run k holds: params, metrics, tag, name, start time (ms, one second apart)."""
    rng = random.Random(0)
    base = 1_700_000_000_000
    return [{"params": run_params(k), "metrics": {"acc": rng.random(), "auc": rng.random(), "loss": rng.random() * 2},
             "tags": {"team": ("red", "blue", "green")[k % 3]}, "name": f"run-{k:06d}", "start": base + k * 1000}
            for k in range(n)]


def _ready(path: Path, n: int) -> bool:
    try:
        return json.loads((path / "FILLED.json").read_text()) == {"runs": n, "format": FORMAT}
    except (OSError, ValueError):
        return False


def _mark(path: Path, n: int, seconds: float) -> None:
    (path / "FILLED.json").write_text(json.dumps({"runs": n, "format": FORMAT}))
    (path / "FILL-TIME.txt").write_text(f"{seconds:.1f} s\n")


def nbmlops_store(n: int, log: Any = print) -> Path:
    """A store folder holding experiment ``bench-search`` with ``n`` finished runs (filled once)."""
    path = CACHE / f"nbmlops-{n}"
    if _ready(path, n):
        return path / "store"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    t = time.perf_counter()
    import nbmlops
    from nbmlops.store import current_store
    from nbmlops.tracking.runs import run_identity

    nbmlops.set_store(path / "store")
    spec = runs(n)
    for s in spec[:REAL]:
        with nbmlops.start_run(experiment=EXPERIMENT, name=s["name"], tags=s["tags"]):
            nbmlops.log_params(s["params"])
            nbmlops.log_metrics(s["metrics"])
    store = current_store()
    exp = nbmlops.get_experiment(EXPERIMENT)
    template = store.run_docs(exp.id)[0]
    shards: dict[str, list[Any]] = defaultdict(list)
    rng = random.Random(1)
    for s in spec[REAL:]:
        run_id = f"{rng.getrandbits(128):032x}"
        end = s["start"] + 500
        metrics = {k: {"value": v, "step": 0, "timestamp": s["start"], "min": v, "max": v, "count": 1}
                   for k, v in s["metrics"].items()}
        doc = {**template, "id": run_id, "name": s["name"], "start_time": s["start"], "end_time": end,
               "duration": 0.5, "params": s["params"], "metrics": metrics, "tags": s["tags"]}
        doc["identity"] = run_identity(doc)
        shards[run_id[:2]].append(doc)
        with open(store.metric_log(run_id), "w") as f:
            f.writelines(f"[{json.dumps(k)},0,{s['start']},{v!r}]\n" for k, v in s["metrics"].items())
    for docs in shards.values():
        with store.run_file(exp.id, docs[0]["id"]).edit() as table:
            table.insert_many(docs)
    nbmlops.set_store(None)
    seconds = time.perf_counter() - t
    _mark(path, n, seconds)
    log(f"filled nbmlops store of {n:,} runs in {seconds:.0f} s: {path}")
    return path / "store"


def mlflow_store(n: int, log: Any = print) -> tuple[str, str]:
    """(tracking URI, experiment id) of an MLflow sqlite store holding ``n`` finished runs (filled once)."""
    path = CACHE / f"mlflow-{n}"
    uri = f"sqlite:///{path / 'mlflow.db'}"
    if _ready(path, n):
        return uri, (path / "EXPERIMENT").read_text()
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    t = time.perf_counter()
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment(EXPERIMENT, artifact_location=(path / "artifacts").as_uri())
    spec = runs(n)
    for s in spec[:REAL]:
        run_id = client.create_run(exp_id, start_time=s["start"], run_name=s["name"]).info.run_id
        client.log_batch(run_id, metrics=[Metric(k, v, s["start"], 0) for k, v in s["metrics"].items()],
                         params=[Param(k, str(v)) for k, v in s["params"].items()],
                         tags=[RunTag(k, v) for k, v in s["tags"].items()])
        client.set_terminated(run_id, end_time=s["start"] + 500)
    store = SqlAlchemyStore(uri, (path / "artifacts").as_uri())
    rng = random.Random(1)
    batch = 5_000
    for lo in range(REAL, n, batch):
        with store.ManagedSessionMaker() as session:
            rows: list[Any] = []
            for s in spec[lo:lo + batch]:
                run_id = f"{rng.getrandbits(128):032x}"
                rows.append(SqlRun(run_uuid=run_id, name=s["name"], experiment_id=int(exp_id), user_id="bench",
                                   status="FINISHED", start_time=s["start"], end_time=s["start"] + 500,
                                   source_type="LOCAL", source_name="", entry_point_name="", source_version="",
                                   lifecycle_stage="active",
                                   artifact_uri=(path / "artifacts" / exp_id / run_id / "artifacts").as_uri()))
                rows += [SqlParam(key=k, value=str(v), run_uuid=run_id) for k, v in s["params"].items()]
                for k, v in s["metrics"].items():
                    rows.append(SqlMetric(key=k, value=v, timestamp=s["start"], step=0, is_nan=False, run_uuid=run_id))
                    rows.append(SqlLatestMetric(key=k, value=v, timestamp=s["start"], step=0, is_nan=False,
                                                run_uuid=run_id))
                rows += [SqlTag(key=k, value=v, run_uuid=run_id) for k, v in s["tags"].items()]
                rows.append(SqlTag(key="mlflow.runName", value=s["name"], run_uuid=run_id))
            session.add_all(rows)
    (path / "EXPERIMENT").write_text(exp_id)
    seconds = time.perf_counter() - t
    _mark(path, n, seconds)
    log(f"filled MLflow sqlite store of {n:,} runs in {seconds:.0f} s: {path}")
    return uri, exp_id


if __name__ == "__main__":  # python benchmarks/_fill.py [N]: fill both caches ahead of the benchmarks
    import sys

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    nbmlops_store(count)
    mlflow_store(count)
