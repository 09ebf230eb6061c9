"""Runs, models and the registry to an MLflow tracking server, and runs back from one.

Export is idempotent: every MLflow run carries the tag ``nbmlops.run_id`` and a digest of what
was exported (``nbmlops.sync``), so a second export skips what is unchanged and, for a run
that changed (it was still running, or got new tags), adds only the missing params, metric
points, datasets, artifacts and models. A registered model records the MLflow version of each
of our versions in its tag ``nbmlops.versions``. Version numbers stay equal when the MLflow
model starts empty: deleted versions are exported too, then deleted there.

``import_mlflow`` (in ``mlflow_import``) goes the other way, for runs.

Models are logged as MLflow sklearn-flavor models (``serialization_format="cloudpickle"``,
a signature inferred from the version's own input example or reference sample), after their
bytes are checked against the sha256 the store recorded. ``pip_requirements`` are the versions
the model was fitted with, so MLflow does not start a subprocess to guess them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from ..errors import InvalidInput, NotFound
from ..registry.models import model_versions_of
from ..store import Store, current_store
from ..store.records import ExperimentRecord, RegisteredModelRecord, RunRecord
from ..tracking import experiments as exps, modelfiles, signature as sig
from ..tracking.lookup import find_run_doc
from ..tracking.stale import metric_points
from . import ExportError, Summary, require

TAG_RUN, TAG_SYNC, TAG_MODELS, TAG_VERSIONS = "nbmlops.run_id", "nbmlops.sync", "nbmlops.models", "nbmlops.versions"
TAG_IMPORTED = "nbmlops.mlflow_run_id"  # on a local run that came from MLflow
REGISTRY_EXPERIMENT = "nbmlops registry"  # holds models registered without a run
_TAG_MAX = 8000


# -- connecting -------------------------------------------------------------------------------------
def _check_uri(uri: object) -> str:
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidInput(f"give the MLflow tracking URI (e.g. http://127.0.0.1:5000), got {uri!r}")
    uri = uri.strip().rstrip("/")
    if uri.startswith(("http://", "https://")):
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=10) as resp:
                resp.read(100)
        except urllib.error.HTTPError as exc:
            if exc.code >= 500:
                raise ExportError(f"the MLflow tracking server at {uri} answered {exc.code} to /health") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ExportError(f"cannot reach an MLflow tracking server at {uri} ({reason}); "
                              "start one (mlflow server --host 127.0.0.1 --port 5000) or check the URI") from None
    elif not uri.startswith(("sqlite:", "postgresql", "mysql", "mssql", "file:", "databricks")):
        raise InvalidInput(f"{uri!r} is not an MLflow tracking URI: use http(s)://host:port, sqlite:///path.db, "
                           "or another MLflow store URI")
    return uri


@contextlib.contextmanager
def _mlflow(uri: str) -> Iterator[Any]:
    """MLflow pointed at ``uri`` for the duration (and put back after), quietly."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # only loopback is reachable, and it is not ours to send
    mlflow = require("mlflow", "exporting to MLflow")
    previous = mlflow.get_tracking_uri()
    saved = {k: os.environ.get(k) for k in ("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
                                            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")}
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = saved["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] or "2"
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    mlflow.set_tracking_uri(uri)
    try:
        yield mlflow
    except mlflow.exceptions.MlflowException as exc:
        raise ExportError(f"MLflow at {uri} refused: {str(exc).splitlines()[0][:500]}") from None
    finally:
        mlflow.set_tracking_uri(previous)
        logger.setLevel(level)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_BATCH = 1000  # metric points per log_batch (MLflow's limit)
_RECENT = 10_000  # MLflow run ids kept for parents and registered versions; older ones are looked up again


def _chunks(items: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


# -- export -----------------------------------------------------------------------------------------
def export_mlflow(tracking_uri: str, experiment: str | None = None, registry: bool = True) -> Summary:
    """Copy experiments, runs (params, metric histories, tags, status, times, artifacts, datasets,
    models) and registered models (versions, aliases) to an MLflow tracking server.

    >>> nbmlops.export_mlflow("http://127.0.0.1:5000")
    mlflow http://127.0.0.1:5000 — experiments: 2; runs created: 14; metric points: 12,000; …

    Run it again to add what is new: nothing is duplicated. ``experiment`` limits the runs to
    one experiment; ``registry=False`` leaves the registered models out.
    """
    uri = _check_uri(tracking_uri)
    store = current_store(create=False)
    if not store.exists():
        raise NotFound(f"no nbmlops store at {store.root}: nothing to export")
    chosen = [exps.find(store, experiment)] if experiment is not None else store.experiments.all()
    summary = Summary(f"mlflow {uri}")
    with _mlflow(uri) as mlflow:
        ex = _Exporter(store, mlflow.MlflowClient(uri), mlflow, summary)
        for exp in sorted(chosen, key=lambda e: e["created"]):
            ex.experiment(exp)
        if registry:
            for model in sorted(store.models().all(), key=lambda d: d["created"]):
                ex.registered_model(model)
    return summary


class _Exporter:
    """Exports run by run, a run shard at a time: what it holds does not grow with the number of
    runs (one shard's documents and their MLflow runs, a bounded map of recent ids) or of metric
    points (sent in batches of 1,000 as they are read)."""

    def __init__(self, store: Store, client: Any, mlflow: Any, summary: Summary) -> None:
        self.store, self.client, self.mlflow, self.summary = store, client, mlflow, summary
        self.exp_ids: dict[str, str] = {}  # our experiment id -> MLflow's
        self.ids: OrderedDict[str, str] = OrderedDict()  # our run id -> MLflow run id, the latest _RECENT runs
        self.early: set[str] = set()  # runs exported before their shard's turn (a child's parent)

    # experiments and runs --------------------------------------------------------------------------
    def _mlflow_experiment(self, name: str, tags: dict[str, str]) -> str:
        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            self.summary.add("experiments_created")
            return self.client.create_experiment(name, tags=tags)
        if exp.lifecycle_stage == "deleted":
            self.client.restore_experiment(exp.experiment_id)
        return exp.experiment_id

    def _exp_id(self, exp: ExperimentRecord) -> str:
        if exp["id"] not in self.exp_ids:
            self.exp_ids[exp["id"]] = self._mlflow_experiment(exp["name"], {"nbmlops.experiment_id": exp["id"]})
            self.summary.add("experiments")
        return self.exp_ids[exp["id"]]

    def experiment(self, exp: ExperimentRecord) -> None:
        """Export an experiment's runs shard by shard (parents before their children within a shard;
        a child whose parent comes later exports it first), each shard read from its file, not kept."""
        mid = self._exp_id(exp)
        for f in self.store.run_files(exp["id"]):
            docs = f.fresh()
            if not docs:
                continue
            remote = self._search(mid, f"tags.`{TAG_RUN}` LIKE '{docs[0]['id'][:2]}%'")
            for doc in sorted(docs, key=lambda d: (d["parent_run"] is not None, d["start_time"])):
                if doc["id"] in self.early:
                    self.early.discard(doc["id"])
                    continue
                self.run(doc, mid, remote)

    def _search(self, mid: str, filter_string: str) -> dict[str, Any]:
        """{our run id: MLflow Run} of the MLflow runs of experiment ``mid`` that match, deleted ones too."""
        from mlflow.entities import ViewType

        found: dict[str, Any] = {}
        token = None
        while True:
            page = self.client.search_runs([mid], filter_string, run_view_type=ViewType.ALL, max_results=1000,
                                           page_token=token)
            for r in page:
                found[r.data.tags.get(TAG_RUN) or f"mlflow:{r.info.run_id}"] = r
            token = page.token
            if not token:
                return found

    def _remember(self, run_id: str, mlflow_id: str) -> str:
        self.ids[run_id] = mlflow_id
        self.ids.move_to_end(run_id)
        while len(self.ids) > _RECENT:
            self.ids.popitem(last=False)
        return mlflow_id

    def _from_mlflow(self, doc: RunRecord, mid: str) -> str | None:
        """The MLflow run id of a run imported from this server's experiment ``mid``, else None."""
        from mlflow.exceptions import MlflowException

        origin = doc["tags"].get(TAG_IMPORTED)
        if not origin:
            return None
        try:
            run = self.client.get_run(origin)
        except MlflowException:  # imported from another server, or deleted there for good
            return None
        return origin if run.info.experiment_id == mid else None

    def mlflow_id(self, doc: RunRecord) -> str:
        """The MLflow run id of one of our runs, exported first (or brought up to date) if needed."""
        if doc["id"] in self.ids:
            return self.ids[doc["id"]]
        self.early.add(doc["id"])
        return self.run(doc)

    def run(self, doc: RunRecord, mid: str | None = None, remote: dict[str, Any] | None = None) -> str:
        """Export one run (or bring an exported one up to date); returns its MLflow run id.
        ``remote`` holds the MLflow runs that may be this one (looked up by its id when None)."""
        if doc["id"] in self.ids:
            return self.ids[doc["id"]]
        if mid is None:  # a run outside the chosen experiment that a registered version comes from
            mid = self._exp_id(next(e for e in self.store.experiments.all() if e["id"] == doc["experiment_id"]))
        origin = self._from_mlflow(doc, mid)
        if origin is not None:  # it came from this server: it is already there
            self.summary.add("runs_from_mlflow_skipped")
            return self._remember(doc["id"], origin)
        if remote is None:
            remote = self._search(mid, f"tags.`{TAG_RUN}` = '{doc['id']}'")
        log = self.store.metric_log(doc["id"])
        digest = _digest(doc, sum(1 for _ in metric_points(log)))
        existing = remote.get(doc["id"])
        if existing is not None and existing.data.tags.get(TAG_SYNC) == digest:
            self.summary.add("runs_unchanged")
            return self._remember(doc["id"], existing.info.run_id)
        c = self.client
        if existing is None:
            existing = c.create_run(mid, start_time=doc["start_time"], run_name=doc["name"], tags={TAG_RUN: doc["id"]})
            self.summary.add("runs_created")
        else:
            self.summary.add("runs_updated")
        rid = existing.info.run_id
        if existing.info.lifecycle_stage == "deleted":
            c.restore_run(rid)  # a deleted run takes no writes
        from mlflow.entities import Metric, Param, RunTag

        have_params = existing.data.params
        params = [Param(k, _param_text(v)) for k, v in doc["params"].items() if k not in have_params]
        parent = self.mlflow_id(find_run_doc(self.store, doc["parent_run"])) if doc.get("parent_run") else None
        tags = [RunTag(k, v) for k, v in _run_tags(doc, parent).items() if existing.data.tags.get(k) != v]
        for chunk in _chunks(params, 100):
            c.log_batch(rid, params=chunk)
        for chunk in _chunks(tags, 100):
            c.log_batch(rid, tags=chunk)
        have: set[tuple[str, int, int, float]] = set()  # an update: the points already there (one run's)
        for key in existing.data.metrics:
            have |= {(key, m.step, m.timestamp, m.value) for m in c.get_metric_history(rid, key)}
        sent = 0
        points = (Metric(k, float(v), ts, step) for k, step, ts, v in metric_points(log)
                  if not have or (k, step, ts, float(v)) not in have)
        while batch := list(islice(points, _BATCH)):
            c.log_batch(rid, metrics=batch)
            sent += len(batch)
        self.summary.add("metric_points", sent)
        self._datasets(rid, doc, existing)
        self._artifacts(rid, doc, existing)
        models = json.loads(existing.data.tags.get(TAG_MODELS) or "{}")
        for entry in doc["models"]:
            if models.get(entry["name"], {}).get("sha256") != entry["sha256"]:
                info = self._log_model(entry, entry["name"], run_id=rid)
                models[entry["name"]] = {"sha256": entry["sha256"], "model_id": info.model_id}
                c.set_tag(rid, TAG_MODELS, json.dumps(models, separators=(",", ":")))
        if doc["status"] == "RUNNING":
            c.update_run(rid, status="RUNNING")
        else:
            c.set_terminated(rid, doc["status"], end_time=doc["end_time"])
        c.set_tag(rid, TAG_SYNC, digest)  # last: an export cut short is completed by the next one
        if doc.get("deleted"):
            c.delete_run(rid)
        return self._remember(doc["id"], rid)

    def _datasets(self, rid: str, doc: RunRecord, existing: Any) -> None:
        from mlflow.entities import Dataset, DatasetInput, InputTag

        have = {d.dataset.digest for d in (existing.inputs.dataset_inputs if existing.inputs else [])}
        inputs = []
        for d in doc["datasets"]:
            if d["sha256"][:32] in have:
                continue
            schema = {"columns": d.get("columns"), "dtypes": d.get("dtypes")}
            ds = Dataset(name=d["name"], digest=d["sha256"][:32], source_type="nbmlops",
                         source=json.dumps({"sha256": d["sha256"], "kind": d.get("kind")}),
                         schema=json.dumps(schema, default=str), profile=json.dumps({"shape": d.get("shape")}))
            inputs.append(DatasetInput(ds, [InputTag("mlflow.data.context", d["role"])] if d.get("role") else []))
        if inputs:
            self.client.log_inputs(rid, datasets=inputs)
            self.summary.add("datasets", len(inputs))

    def _artifacts(self, rid: str, doc: RunRecord, existing: Any) -> None:
        wanted = {a["name"]: a["sha256"] for a in doc["artifacts"]}
        if doc.get("source_sha"):
            wanted["nbmlops/cell_source.py"] = doc["source_sha"]
        if doc.get("env_sha"):
            wanted["nbmlops/environment.json"] = doc["env_sha"]
        have = _artifact_paths(self.client, rid) if existing.data.tags.get(TAG_SYNC) else set()
        missing = {n: sha for n, sha in wanted.items() if n not in have}
        if not missing:
            return
        with tempfile.TemporaryDirectory(prefix="nbmlops-mlflow-") as tmp:
            root = Path(tmp)
            for name, sha in missing.items():
                dest = (root / name).resolve()
                if not dest.is_relative_to(root):
                    raise InvalidInput(f"artifact name {name!r} escapes its folder")
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.store.blobs.verified_path(sha), dest)
            self.client.log_artifacts(rid, tmp)
        self.summary.add("artifacts", len(missing))

    # models --------------------------------------------------------------------------------------
    def _log_model(self, entry: dict[str, Any], name: str, run_id: str) -> Any:
        model = modelfiles.read_model(self.store, entry["sha256"], entry.get("format", modelfiles.FORMAT))
        signature = _signature(self.store, model, entry)
        versions = entry.get("versions") or {}
        reqs = [f"scikit-learn=={versions.get('scikit-learn') or _version('scikit-learn')}",
                f"numpy=={versions.get('numpy') or _version('numpy')}", f"cloudpickle=={_version('cloudpickle')}"]
        with self.mlflow.start_run(run_id=run_id):
            info = self.mlflow.sklearn.log_model(
                model, name=name, signature=signature, serialization_format="cloudpickle", pip_requirements=reqs,
                tags={"nbmlops.sha256": entry["sha256"], "nbmlops.class": entry.get("class", "")})
        self.summary.add("models_logged")
        return info

    def registered_model(self, model: RegisteredModelRecord) -> None:
        from mlflow.exceptions import MlflowException

        c, name = self.client, model["name"]
        try:
            rm = c.get_registered_model(name)
        except MlflowException:
            rm = c.create_registered_model(name, tags={"nbmlops.model_id": model["id"]},
                                           description=model.get("description") or None)
            self.summary.add("registered_models_created")
        mapping: dict[str, str] = json.loads(rm.tags.get(TAG_VERSIONS) or "{}")
        for v in model_versions_of(self.store, model, deleted=True):
            key = str(v["version"])
            if key in mapping:
                continue
            source_run, model_id = self._version_source(v)
            tags = {**v["tags"], "nbmlops.version_id": v["id"], "nbmlops.version": key, "nbmlops.sha256": v["sha256"]}
            mv = c.create_model_version(name, source=f"models:/{model_id}", run_id=source_run, tags=tags,
                                        description=v.get("description") or None, model_id=model_id)
            if v.get("deleted"):
                c.delete_model_version(name, mv.version)
            mapping[key] = str(mv.version)
            c.set_registered_model_tag(name, TAG_VERSIONS, json.dumps(mapping, separators=(",", ":")))
            self.summary.add("model_versions")
        current = dict(c.get_registered_model(name).aliases)
        for alias, number in model["aliases"].items():
            if current.get(alias) != mapping[str(number)]:
                c.set_registered_model_alias(name, alias, mapping[str(number)])
                self.summary.add("aliases_set")
        if rm.tags.get("nbmlops.model_id") == model["id"]:  # ours: its aliases follow ours
            for alias in set(current) - set(model["aliases"]):
                c.delete_registered_model_alias(name, alias)
                self.summary.add("aliases_deleted")

    def _version_source(self, v: dict[str, Any]) -> tuple[str, str]:
        """(MLflow run id, logged model id) that holds this version's model file."""
        if v.get("run_id"):
            try:
                doc = find_run_doc(self.store, v["run_id"])
            except NotFound:
                doc = None
            if doc is not None:
                rid = self.mlflow_id(doc)
                models = json.loads(self.client.get_run(rid).data.tags.get(TAG_MODELS) or "{}")
                for info in models.values():
                    if info["sha256"] == v["sha256"]:
                        return rid, info["model_id"]
        # registered from a fitted object (or the run's file differs): a run of its own holds it
        mid = self._mlflow_experiment(REGISTRY_EXPERIMENT, {})
        label = f"{v['model']}/{v['version']}"
        holder = self.client.create_run(mid, start_time=v["created"], run_name=label,
                                        tags={"nbmlops.version_id": v["id"], "mlflow.user": v.get("user") or ""})
        rid = holder.info.run_id
        info = self._log_model(v, "model", run_id=rid)
        self.client.set_terminated(rid, "FINISHED", end_time=v["created"])
        return rid, info.model_id


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def _param_text(value: Any) -> str:
    return str(value)  # as mlflow.log_param records it


def _run_tags(doc: RunRecord, parent: str | None) -> dict[str, str]:
    tags = {k: str(v)[:_TAG_MAX] for k, v in doc["tags"].items()}
    tags[TAG_RUN] = doc["id"]
    tags["mlflow.user"] = doc.get("user") or ""
    if doc.get("description"):
        tags["mlflow.note.content"] = doc["description"][:_TAG_MAX]
    if doc.get("git_commit"):
        tags["mlflow.source.git.commit"] = doc["git_commit"]
    if doc.get("notebook"):
        tags["mlflow.source.name"], tags["mlflow.source.type"] = doc["notebook"], "NOTEBOOK"
    if doc.get("error"):
        tags["nbmlops.error"] = doc["error"][-_TAG_MAX:]
    if parent is not None:
        tags["mlflow.parentRunId"] = parent
    return tags


def _digest(doc: RunRecord, points: int) -> str:
    """Changes whenever anything export would send changes."""
    key = [doc["status"], doc["end_time"], doc.get("deleted"), points, sorted(doc["params"].items()),
           sorted(doc["tags"].items()), [(a["name"], a["sha256"]) for a in doc["artifacts"]],
           [(m["name"], m["sha256"]) for m in doc["models"]], [d["sha256"] for d in doc["datasets"]],
           doc.get("description"), doc.get("parent_run")]
    return hashlib.sha256(json.dumps(key, default=str).encode()).hexdigest()[:32]


def _artifact_paths(client: Any, rid: str, path: str | None = None) -> set[str]:
    out: set[str] = set()
    for f in client.list_artifacts(rid, path):
        out |= _artifact_paths(client, rid, f.path) if f.is_dir else {f.path}
    return out


def _signature(store: Store, model: Any, entry: dict[str, Any]) -> Any:
    """An MLflow signature from the model's own input example, else its reference sample."""
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature

    sigdoc = entry.get("signature") or {}
    example = None
    if sigdoc.get("input_example"):
        example = pd.DataFrame(sigdoc["input_example"])
        for col, dtype in (sigdoc.get("dtypes") or {}).items():
            if col in example.columns:
                with contextlib.suppress(TypeError, ValueError):
                    example[col] = example[col].astype(dtype)
    elif entry.get("reference"):
        frame = modelfiles.load_frame(store, entry["reference"]["sha256"])
        labels = [c for c in (modelfiles.TARGET, modelfiles.PREDICTION) if c in frame.columns]
        example = frame.drop(columns=labels).head(5)
    elif sigdoc.get("n_features"):
        example = np.zeros((1, sigdoc["n_features"]))
    if example is None:
        return None
    try:
        X = sig.validate(sigdoc, example, "the input example")
        return infer_signature(X, model.predict(X))
    except Exception:  # a model that cannot score its own example still exports, without a signature
        return None
