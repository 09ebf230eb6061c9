"""Runs: one piece of training work, with params, metrics, tags, artifacts, models and datasets.

A run is a small TinyDB document (sharded by id so its file stays small) plus an
append-only metric history. Params and tags are written as they are logged;
metric points are appended one line each, and their summaries (last, min, max,
count) reach the document when the run ends and every few seconds meanwhile.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Literal

from .._util import check_key, fmt_duration, new_id, now_ms
from ..errors import InvalidInput, NotFound
from ..store import SCHEMA, AppendLog, Store
from ..store.records import ArtifactEntry, MetricSummary, ModelEntry, RunDataset, RunRecord
from . import environment, experiments, modelfiles
from .autolog import Autolog
from .datasets import log_version
from .entities import RunData, RunInfo
from .fingerprint import fingerprint
from .names import random_name
from .session import active_run, pop_run, push_run, tracking_store
from .stale import FLOAT_MAX, metric_points, metric_summaries, register_active, unregister_active

# old names, until tests/conftest.py uses session's public ones

STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")
_MISSING = object()
_PERSIST_EVERY = 5.0  # seconds between metric-summary writes while a run logs


def _param_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and getattr(value, "shape", None) == ():
        return _param_value(item())
    text = str(value)
    return text if len(text) <= 6000 else text[:5999] + "…"


def _metric_value(key: str, value: Any) -> float | int:
    t = type(value)
    if t is float:
        if value - value != 0.0:  # NaN or ±inf
            raise InvalidInput(f"metric {key!r} is {value}: metrics must be finite numbers")
        return value
    if t is int:
        if -FLOAT_MAX <= value <= FLOAT_MAX:
            return value
        raise InvalidInput(f"metric {key!r} is an integer of {value.bit_length()} bits: too large for a float")
    if isinstance(value, (str, bytes, bool)) or not hasattr(value, "__float__"):
        raise InvalidInput(f"metric {key!r} must be a number, got {type(value).__name__} {value!r:.80}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidInput(f"metric {key!r} is {number}: metrics must be finite numbers")
    return int(value) if number.is_integer() and "int" in t.__name__ else number


class Run:
    """A tracked run. Get one from ``start_run`` (to log) or ``get_run`` (to read)."""

    def __init__(self, store: Store, doc: RunRecord, owned: bool = False) -> None:
        self._store = store
        self._doc = doc
        self._file = store.run_file(doc["experiment_id"], doc["id"])
        self._owned = owned
        self._lock = threading.RLock()
        self._log: AppendLog | None = None
        self._msum: dict[str, list[Any]] = {}  # key -> [last, step, timestamp, min, max, count]
        self._keyjson: dict[str, str] = {}
        self._persisted = time.monotonic()
        self.autolog: Any = None

    # -- reading --------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._doc["id"]

    @property
    def name(self) -> str:
        return self._doc["name"]

    @property
    def experiment_id(self) -> str:
        return self._doc["experiment_id"]

    @property
    def status(self) -> str:
        return self._doc["status"]

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._doc["params"])

    @property
    def tags(self) -> dict[str, str]:
        return dict(self._doc["tags"])

    @property
    def metrics(self) -> dict[str, float]:
        """The last value of each metric."""
        with self._lock:
            if self._msum:
                return {k: s[0] for k, s in self._msum.items()}
        return {k: m["value"] for k, m in self._read_metric_docs().items()}

    @property
    def info(self) -> RunInfo:
        """The whole run document (a copy), with MLflow's names too: ``run.info.run_id``, ``.status``…"""
        with self._lock:  # another thread may be logging: copy a document that does not change meanwhile
            if self._owned:
                self._doc["metrics"] = self._metric_docs()
            return RunInfo(json.loads(json.dumps({**self._doc, "metrics": self._read_metric_docs()})))

    def _read_metric_docs(self) -> dict[str, MetricSummary]:
        """The metric summaries of the document; for a run going on in another process, brought up
        to date from its log (the document gets them every few seconds only while the run logs)."""
        if self._owned or self._doc["status"] != "RUNNING":
            return self._doc["metrics"]
        return {**self._doc["metrics"], **metric_summaries(self._store, self.id)}

    @property
    def data(self) -> RunData:
        """MLflow's ``run.data``: ``params`` and ``tags`` (strings), ``metrics`` (latest values)."""
        return RunData.of(self.params, self.metrics, self.tags)

    @property
    def duration(self) -> float | None:
        end = self._doc.get("end_time") or (now_ms() if self.status == "RUNNING" else None)
        return None if end is None else (end - self._doc["start_time"]) / 1000

    def metric_history(self, key: str | None = None) -> Any:
        """Every logged point (``key``, ``step``, ``timestamp``, ``value``) as a DataFrame."""
        import pandas as pd

        skipped = [0]
        rows = [r for r in metric_points(self._store.metric_log(self.id), skipped) if key is None or r[0] == key]
        df = pd.DataFrame(rows, columns=["key", "step", "timestamp", "value"])
        df["timestamp"] = pd.to_datetime(df["timestamp"], unit="ms")
        df.attrs["skipped_lines"] = skipped[0]  # cut short by a crash, or not a metric point
        return df

    def artifact(self, name: str) -> Path:
        """The stored file of an artifact or model (read-only), after checking its hash."""
        for entry in (*self._doc["artifacts"], *self._doc["models"]):
            if entry["name"] == name:
                return self._store.blobs.verified_path(entry["sha256"])
        have = ", ".join(e["name"] for e in (*self._doc["artifacts"], *self._doc["models"])) or "none"
        raise NotFound(f"run {self.name} has no artifact {name!r} (it has: {have})")

    def load_model(self, name: str = "model") -> Any:
        """Load a model logged with ``log_model``, refusing it if its bytes changed since."""
        for entry in self._doc["models"]:
            if entry["name"] == name:
                return modelfiles.read_model(self._store, entry["sha256"], entry.get("format", modelfiles.FORMAT))
        have = ", ".join(e["name"] for e in self._doc["models"]) or "none"
        raise NotFound(f"run {self.name} has no model {name!r} (models: {have})")

    # -- writing --------------------------------------------------------------
    def _check_open(self) -> None:
        if not self._owned:
            raise InvalidInput(f"run {self.name} was opened for reading; log inside `with start_run():`")
        if self._doc["status"] != "RUNNING":
            raise InvalidInput(f"run {self.name} has ended ({self._doc['status']}); start a new run to log more")

    def _save(self, fields: dict[str, Any], durable: bool = False) -> None:
        """Write fields of the run document: atomically always (a killed process loses nothing
        written), fsynced when the run ends (a finished run survives a power cut)."""
        with self._file.edit(durable) as docs:
            docs.update(fields, id=self.id)
        self._doc.update(fields)  # type: ignore[typeddict-item]

    def log_param(self, key: str, value: Any) -> None:
        """Record a parameter. Params are immutable: logging a different value for a key raises."""
        self.log_params({key: value})

    def log_params(self, params: dict[str, Any]) -> None:
        if not isinstance(params, dict):
            raise InvalidInput(f"log_params takes a dict of name -> value, got {type(params).__name__}")
        self._check_open()
        new = {}
        for key, value in params.items():
            check_key("param", key)
            value = _param_value(value)
            old = self._doc["params"].get(key, _MISSING)
            if old is not _MISSING and old != value:
                raise InvalidInput(
                    f"param {key!r} is already {old!r} in run {self.name}; params cannot change within a run: "
                    "log a value that changes as a metric, or start a new run"
                )
            if old is _MISSING:
                new[key] = value
        if new:
            with self._lock:
                self._save({"params": {**self._doc["params"], **new}})

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: dict[str, Any]) -> None:
        """Set tags (strings; unlike params, tags may change)."""
        if not self._owned:
            raise InvalidInput(f"run {self.name} was opened for reading; use nbmlops.set_run_tags(run_id, ...)")
        clean = {check_key("tag", k): str(v) for k, v in tags.items()}
        with self._lock, self._file.edit() as docs:  # merged under the lock with tags set_run_tags wrote meanwhile
            current = docs.get(id=self.id)
            merged = {**(current or self._doc)["tags"], **clean}
            docs.update({"tags": merged}, id=self.id)
            self._doc["tags"] = merged

    def log_metric(self, key: str, value: float, step: int | None = None, timestamp: int | None = None) -> None:
        """Append one point to a metric's history. ``step`` defaults to the metric's point count,
        ``timestamp`` (ms since the epoch) to now."""
        value = _metric_value(key, value)
        with self._lock:
            s = self._msum.get(key)
            if s is None:
                self._check_open()
                check_key("metric", key)
                s = self._msum[key] = [value, -1, 0, value, value, 0]
                self._keyjson[key] = json.dumps(key)
            elif self._doc["status"] != "RUNNING":
                self._check_open()
            if step is None:
                step = s[5]
            elif type(step) is not int:
                if isinstance(step, bool) or not hasattr(step, "__index__"):
                    raise InvalidInput(f"step of metric {key!r} must be an integer, got {step!r}")
                step = int(step)
            if timestamp is None:
                timestamp = time.time_ns() // 1_000_000
            if self._log is None:
                self._log = AppendLog(self._store.metric_log(self.id))
            self._log.write(f"[{self._keyjson[key]},{step},{int(timestamp)},{value!r}]\n")
            if step >= s[1]:
                s[0], s[1], s[2] = value, step, timestamp
            if value < s[3]:
                s[3] = value
            if value > s[4]:
                s[4] = value
            s[5] += 1
            if time.monotonic() - self._persisted > _PERSIST_EVERY:
                self._persist_metrics()

    def log_metrics(self, metrics: dict[str, float], step: int | None = None, timestamp: int | None = None) -> None:
        """Log several metrics at one step; nothing is logged if any value is invalid."""
        if not isinstance(metrics, dict):
            raise InvalidInput(f"log_metrics takes a dict of name -> number, got {type(metrics).__name__}")
        for key, value in metrics.items():
            check_key("metric", key)
            _metric_value(key, value)
        for key, value in metrics.items():
            self.log_metric(key, value, step, timestamp)

    def _metric_docs(self) -> dict[str, MetricSummary]:
        docs = dict(self._doc["metrics"])
        for k, s in self._msum.items():
            docs[k] = {"value": s[0], "step": s[1], "timestamp": s[2], "min": s[3], "max": s[4], "count": s[5]}
        return docs

    def _persist_metrics(self) -> None:
        self._persisted = time.monotonic()
        self._save({"metrics": self._metric_docs()})

    def _put_entry(self, field: Literal["artifacts", "models"], entry: ArtifactEntry | ModelEntry) -> None:
        with self._lock:
            entries = [e for e in self._doc[field] if e["name"] != entry["name"]] + [entry]
            self._save({field: entries})

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None) -> list[ArtifactEntry]:
        """Copy a file (or every file of a folder) into the store, under ``name`` (default: its file name)."""
        self._check_open()
        p = Path(path)
        if not p.exists():
            raise InvalidInput(f"cannot log artifact: {os.fspath(path)!r} does not exist "
                               "(give an existing file or folder)")
        base = check_key("artifact", name or p.name)
        files = [(base, p)] if p.is_file() else [(f"{base}/{f.relative_to(p).as_posix()}", f)
                                                  for f in sorted(p.rglob("*")) if f.is_file()]
        entries: list[ArtifactEntry] = []
        for artifact_name, f in files:
            sha, size = self._store.blobs.put_file(f)
            entries.append({"name": artifact_name, "sha256": sha, "size": size, "kind": "file"})
        for e in entries:
            self._put_entry("artifacts", e)
        return entries

    def log_text(self, text: str, name: str) -> ArtifactEntry:
        """Store a string as an artifact named ``name``."""
        self._check_open()
        sha, size = self._store.blobs.put_bytes(str(text).encode())
        entry: ArtifactEntry = {"name": check_key("artifact", name), "sha256": sha, "size": size, "kind": "text"}
        self._put_entry("artifacts", entry)
        return entry

    def log_figure(self, fig: Any, name: str | None = None) -> ArtifactEntry:
        """Store a matplotlib figure as a PNG artifact (``figure_N.png`` by default)."""
        self._check_open()
        if not hasattr(fig, "savefig"):
            raise InvalidInput(f"log_figure takes a matplotlib Figure, got {type(fig).__name__}")
        n = sum(1 for e in self._doc["artifacts"] if e.get("kind") == "figure") + 1
        name = check_key("artifact", name or f"figure_{n}.png")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        sha, size = self._store.blobs.put_bytes(buf.getvalue())
        entry: ArtifactEntry = {"name": name, "sha256": sha, "size": size, "kind": "figure"}
        self._put_entry("artifacts", entry)
        return entry

    def log_model(self, model: Any, name: str = "model", datasets: list[str] | None = None,
                  reference: Any = None) -> ModelEntry:
        """Store a fitted model (pickled, content-addressed); returns its entry (with ``sha256``).
        ``datasets`` names the fingerprints (sha256) of the data it was trained on; ``reference``
        (``X`` or ``(X, y)``) keeps a bounded sample of it for monitoring."""
        self._check_open()
        check_key("model", name)
        sha, size = modelfiles.dump_model(self._store, model, name)
        cls = type(model)
        entry: ModelEntry = {"name": name, "sha256": sha, "size": size, "format": modelfiles.FORMAT,
                 "class": f"{cls.__module__}.{cls.__qualname__}", "datasets": list(datasets or []),
                 "versions": {k: v for k, v in environment.versions().items()
                              if k in ("scikit-learn", "numpy", "python")}}
        try:
            entry.update(modelfiles.describe(self._store, model, reference))  # type: ignore[typeddict-item]
        except Exception:  # not a scikit-learn-like model: stored, without a signature
            pass
        self._put_entry("models", entry)
        modelfiles.remember(model, self.id, name, sha)
        return entry

    def log_dataset(self, data: Any, name: str, role: str | None = None, snapshot: bool = False,
                    max_bytes: Any = None) -> Any:
        """Record a dataset's fingerprint (content hash, shape, columns, dtypes) on the run; with
        ``snapshot=True`` also store the data as the next version of dataset ``name`` and return
        that ``DatasetVersion`` (see ``tracking.datasets``)."""
        self._check_open()
        check_key("dataset", name)
        if snapshot:
            return log_version(data, name, run=self, role=role, max_bytes=max_bytes)
        fp: RunDataset = {"name": name, **fingerprint(data), **({"role": role} if role else {})}  # type: ignore[typeddict-item]
        with self._lock:
            if not any(d["name"] == name and d["sha256"] == fp["sha256"] for d in self._doc["datasets"]):
                self._save({"datasets": [d for d in self._doc["datasets"] if d["name"] != name] + [fp]})
        return fp

    # -- ending ---------------------------------------------------------------
    def end(self, status: str = "FINISHED", error: str | None = None) -> None:
        """End the run (idempotent). Autologged models and figures are saved first."""
        if status not in STATUSES[1:]:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES[1:])}, got {status!r}")
        if not self._owned or self._doc["status"] != "RUNNING":
            pop_run(self)
            return
        if self.autolog is not None:
            autolog, self.autolog = self.autolog, None
            try:
                autolog.finish()
            except Exception as exc:  # whatever autolog meets, the run ends and stops being active
                warnings.warn(f"autolog did not finish: {type(exc).__name__}: {exc}", stacklevel=2)
        with self._lock:
            end = now_ms()
            fields: dict[str, Any] = {"status": status, "end_time": end, "metrics": self._metric_docs(),
                                      "duration": (end - self._doc["start_time"]) / 1000}
            if error:
                fields["error"] = error
            fields["identity"] = run_identity(self._doc | fields)  # type: ignore[arg-type]
            fields["same_as"] = _same_as(self._store, self._doc, fields["identity"])
            if self._log is not None:
                self._log.close()
            self._save(fields, durable=True)
        pop_run(self)  # ended is no longer active, however it was ended (``with``, ``end()``, %%track)
        _finish_bookkeeping(self)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, etype: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.end("FINISHED")
        elif isinstance(exc, KeyboardInterrupt):
            self.end("KILLED", "KeyboardInterrupt")
        else:
            self.end("FAILED", "".join(traceback.format_exception(etype, exc, tb)))
        pop_run(self)

    # -- display --------------------------------------------------------------
    def __repr__(self) -> str:
        metrics = " ".join(f"{k}={v:.4g}" for k, v in list(self.metrics.items())[:6])
        return (f"<Run {self.name} id={self.id[:8]} {self.status} {fmt_duration(self.duration)}"
                f"{' ' + metrics if metrics else ''}>")

    def _repr_html_(self) -> str:
        from ..display.html import run_card  # display sits above the domain: only this delegation

        return run_card(self)


def run_identity(doc: RunRecord) -> str:
    """What makes two runs 'the same': cell source, params and input data."""
    key = json.dumps([doc.get("source_sha"), sorted(doc["params"].items()),
                      sorted(d["sha256"] for d in doc["datasets"])], default=str)
    return hashlib.sha256(key.encode()).hexdigest()



def start_run(experiment: str | None = None, name: str | None = None, tags: dict[str, Any] | None = None, *,
              nested: bool = False, autolog: bool = False, description: str | None = None,
              source: str | None = None, cell_key: str | None = None, notebook: str | None = None) -> Run:
    """Start a run; use it as a context manager so it ends FINISHED, FAILED or KILLED.

    >>> with nbmlops.start_run(experiment="churn", name="rf-baseline") as run:
    ...     nbmlops.log_metric("accuracy", 0.93)
    """
    outer = active_run()
    if outer is not None and not nested and not getattr(outer, "nest_children", False):  # a pipeline step's run
        raise InvalidInput(f"run {outer.name} is still active: end it first, or pass nested=True")
    if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > 200):
        raise InvalidInput(f"run name must be a non-empty string of at most 200 characters, got {name!r}")
    clean_tags = {check_key("tag", k): str(v) for k, v in (tags or {}).items()}
    exp_name = experiments.check_name(experiments.default_name() if experiment is None else experiment)
    store = tracking_store()
    exp = experiments.get_or_create(store, exp_name)
    run_id = new_id()
    env = environment.versions()
    env_sha, _ = store.blobs.put_bytes(json.dumps(env, sort_keys=True).encode())
    source_sha = store.blobs.put_bytes(source.encode())[0] if source is not None else None
    previous = None
    if cell_key:
        cell = store.cells.get("key", cell_key)
        previous = cell["run_id"] if cell else None
    doc: RunRecord = {
        "schema": SCHEMA, "id": run_id, "experiment_id": exp["id"], "name": name or random_name(run_id),
        "status": "RUNNING", "start_time": now_ms(), "end_time": None, "duration": None,
        "user": environment.user(), "host": environment.host(), "pid": os.getpid(),
        "description": description, "tags": clean_tags, "params": {}, "metrics": {},
        "artifacts": [], "models": [], "datasets": [],
        "source_sha": source_sha, "env_sha": env_sha, "python": env["python"],
        "git_commit": environment.git_commit(), "notebook": notebook,
        "cell_key": cell_key, "previous_run": previous, "same_as": None, "error": None,
        "parent_run": outer.id if outer is not None else None, "deleted": False,
    }
    run = Run(store, doc, owned=True)
    register_active(store, doc)  # first: a crash before the run document exists leaves nothing RUNNING
    with run._file.edit(durable=False) as docs:
        docs.insert(dict(doc))
    push_run(run)
    if autolog:
        run.autolog = Autolog(run, hint=source, start_run=start_run).start()
    return run


def _same_as(store: Store, doc: RunRecord, identity: str) -> str | None:
    """The earlier run this re-run of a cell repeats (same source, params and inputs), if any."""
    key, prev_id = doc.get("cell_key"), doc.get("previous_run")
    if not key or not prev_id:
        return None
    prev = store.cells.get("key", key)
    if prev and prev.get("run_id") == prev_id and prev.get("identity") == identity:
        return prev.get("same_as") or prev_id
    return None


def _finish_bookkeeping(run: Run) -> None:
    store = run._store
    unregister_active(store, run.id)
    key = run._doc.get("cell_key")
    if key:
        with store.cells.edit() as docs:
            docs.upsert({"schema": SCHEMA, "key": key, "run_id": run.id, "identity": run._doc["identity"],
                         "same_as": run._doc["same_as"]}, key=key)
