"""The local store: TinyDB documents, append-only logs and content-addressed blobs in one folder.

Layout of a store folder (``.nbmlops/`` by default)::

    STORE.json                      format marker and schema version
    db/experiments.json             experiments (TinyDB)
    db/runs/<experiment>/<xx>.json  runs, sharded by the first two hex digits of their id
    db/active.json                  runs in progress, with their owner's pid (stale-run sweep)
    db/cells.json                   last run of each notebook cell (re-run links)
    db/datasets.json                datasets; db/datasets/<dataset>.json their versions
    db/models.json                  registered models (aliases, history); db/models/<model>.json versions
    db/features.json                feature views and entities; db/online.json online tables
    db/drift/<YYYY-MM>.json         drift report summaries, by month
    db/pipelines/definitions.json   pipelines; runs/<xx>.json, cache/<xx>.json, decisions/<YYYY-MM>.json
    db/deployments.json             model servers
    logs/metrics/<run>.jsonl        metric histories, append-only
    logs/serving/<deployment>/      a server's request log (requests-NNNNNN.jsonl) and server.log
    blobs/sha256/ab/cdef…           artifacts, models, figures, cell sources
    tmp/                            files being written before they move into blobs/
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import InvalidInput, StoreError
from .blobs import BlobStore
from .documents import DamagedFile, DocFile, Docs, atomic_write, readable_docs
from .index import RunTable, run_table
from .logs import AppendLog, RotatingLog, read_blocks, read_lines
from .procs import own_start, pid_alive, pid_space, proc_start
from .records import (
    CacheEntryRecord,
    DatasetRecord,
    DatasetVersionRecord,
    DeploymentRecord,
    DriftSummaryRecord,
    ModelVersionRecord,
    OnlineTableRecord,
    PipelineDefinitionRecord,
    PipelineRunRecord,
    RegisteredModelRecord,
    RetrainDecisionRecord,
    RunRecord,
)

__all__ = ["Store", "DocFile", "Docs", "DamagedFile", "readable_docs", "AppendLog", "RotatingLog", "read_lines",
           "read_blocks", "SCHEMA", "current_store", "set_store", "locate", "check_id", "resolve_named", "pid_alive",
           "pid_space", "proc_start", "own_start", "chosen_store"]

SCHEMA = 1
MARKER = "STORE.json"
DIRNAME = ".nbmlops"
_HEX32 = re.compile(r"^[0-9a-f]{32}$")

# Upgrades from an older schema, run once under the store lock: {old_version: function(store)}.
MIGRATIONS: dict[int, Any] = {}


def check_id(kind: str, value: object) -> str:
    """Ids reach file names: accept only our own 32-hex-digit ids."""
    if not isinstance(value, str) or not _HEX32.match(value):
        raise InvalidInput(f"{kind} id must be 32 hex digits, got {value!r}")
    return value


class Store:
    """One store folder. Cheap to construct; creates its folders on first write."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.blobs = BlobStore(self.root / "blobs" / "sha256", self.root / "tmp")
        self.experiments = DocFile(self.root / "db" / "experiments.json")
        # indexes that can be rebuilt: atomic, but not fsynced (a power cut may lose a recent entry;
        # a killed process cannot)
        self.active = DocFile(self.root / "db" / "active.json", durable=False, rebuildable=True)
        self.cells = DocFile(self.root / "db" / "cells.json", durable=False, rebuildable=True)
        self._checked = False
        self._files: dict[tuple[str, ...], DocFile] = {}  # by the parts under db/: no Path built per lookup

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # -- opening ------------------------------------------------------------
    def exists(self) -> bool:
        return (self.root / MARKER).exists()

    def ensure(self) -> Store:
        """Create the store if needed and check that this nbmlops can read it."""
        if self._checked:
            return self
        marker = self.root / MARKER
        if not marker.exists():
            if self.root.exists() and not self.root.is_dir():
                raise StoreError(f"{self.root} is a file, not a store folder")
            self.root.mkdir(parents=True, exist_ok=True)
            lock = DocFile(self.root / MARKER)._lock
            with lock:
                if not marker.exists():
                    atomic_write(marker, json.dumps({"format": "nbmlops", "schema": SCHEMA}).encode())
        self._check_schema()
        self._checked = True
        try:
            self.clean_tmp()
        except OSError:  # a read-only store still opens
            pass
        return self

    def _check_schema(self) -> None:
        marker = self.root / MARKER
        try:
            meta = json.loads(marker.read_text())
            version = int(meta["schema"])
            ours = meta.get("format") == "nbmlops"
        except (ValueError, KeyError, TypeError, OSError):  # OSError: a folder named STORE.json, no permission
            ours = False
        if not ours:
            raise StoreError(f"{marker} is not an nbmlops store marker; refusing to use {self.root} as a store")
        if version > SCHEMA:
            raise StoreError(
                f"the store at {self.root} has schema {version}, newer than this nbmlops understands ({SCHEMA}): "
                "upgrade nbmlops (pip install -U nbmlops) rather than risk misreading it"
            )
        if version < SCHEMA:
            with DocFile(marker)._lock:
                meta = json.loads(marker.read_text())
                for v in range(int(meta["schema"]), SCHEMA):
                    if v not in MIGRATIONS:
                        raise StoreError(f"no migration from store schema {v} to {v + 1}")
                    MIGRATIONS[v](self)
                    meta["schema"] = v + 1
                    atomic_write(marker, json.dumps(meta).encode())

    def clean_tmp(self) -> int:
        """Remove temporary files left by writers that were killed mid-write (their process is
        gone); a live writer's files stay. Runs on every first open of the store in a process."""
        removed = 0
        # tmp/<pid>-[<start tick>-]<random>[_<pid space>]<suffix> and db/**/.<name>.<pid>[_<pid space>].<thread>.tmp
        candidates = []
        for p in self.root.glob("tmp/*"):
            parts = p.name.split("-")
            space = p.name.partition("_")[2][:8] or None
            candidates.append((p, parts[0], space, parts[1] if len(parts) >= 3 and parts[1].isdigit() else None))
        candidates += [(p, *_writer(p.name.split(".")[-3]), None)
                       for p in [*self.root.glob("db/**/.*.tmp"), *self.root.glob("index/**/.*.tmp")]]
        here = pid_space()
        for path, pid_text, space, start in candidates:
            pid = int(pid_text) if pid_text.isdigit() else None
            if space not in (None, here):  # written in a container or another host: its pid means nothing here
                continue
            if pid is None or pid == os.getpid() or pid_alive(pid, start) or not path.is_file():
                continue
            try:
                path.unlink()
            except FileNotFoundError:  # another process cleaned it first
                continue
            removed += 1
        return removed

    # -- places -------------------------------------------------------------
    def runs_dir(self, experiment_id: str) -> Path:
        return self.root / "db" / "runs" / check_id("experiment", experiment_id)

    def run_file(self, experiment_id: str, run_id: str) -> DocFile[RunRecord]:
        return self._doc("runs", check_id("experiment", experiment_id), f"{check_id('run', run_id)[:2]}.json")

    def run_files(self, experiment_id: str) -> list[DocFile[RunRecord]]:
        """The experiment's run shards, each the same cached DocFile as ``run_file``'s (a listing of
        10,000 runs builds no new FileLocks)."""
        d = self.runs_dir(experiment_id)
        if not d.exists():
            return []
        return [self._doc("runs", d.name, p.name) for p in sorted(d.glob("??.json"))]

    def run_docs(self, experiment_id: str) -> list[RunRecord]:
        """Every run document of an experiment; a damaged shard is reported and left out."""
        return readable_docs(self.run_files(experiment_id))

    def run_table(self, experiment_id: str) -> RunTable:
        """The experiment's runs as columns (``store/index.py``): what searches filter, sort and show,
        from the summary index and the run shards changed since it was written."""
        return run_table(self.root, check_id("experiment", experiment_id), self.run_files(experiment_id))

    def metric_log(self, run_id: str) -> Path:
        return self.root / "logs" / "metrics" / f"{check_id('run', run_id)}.jsonl"

    def _doc(self, *parts: str) -> DocFile[Any]:
        """One document file under ``db/``, built once (a DocFile makes a FileLock, which is not free)."""
        f = self._files.get(parts)
        if f is None:
            f = self._files[parts] = DocFile(self.root.joinpath("db", *parts))
        return f

    def _docs_in(self, folder: str, pattern: str = "*.json", newest_first: bool = False) -> list[DocFile[Any]]:
        d = self.root / "db" / folder
        if not d.exists():
            return []
        parts = tuple(folder.split("/"))  # the same cache key as the accessor of one file there
        return [self._doc(*parts, p.name) for p in sorted(d.glob(pattern), reverse=newest_first)]

    # registry
    def models(self) -> DocFile[RegisteredModelRecord]:
        return self._doc("models.json")

    def model_versions(self, model_id: str) -> DocFile[ModelVersionRecord]:
        return self._doc("models", f"{check_id('model', model_id)}.json")

    # datasets
    def datasets(self) -> DocFile[DatasetRecord]:
        return self._doc("datasets.json")

    def dataset_versions(self, dataset_id: str) -> DocFile[DatasetVersionRecord]:
        return self._doc("datasets", f"{check_id('dataset', dataset_id)}.json")

    # features
    def feature_definitions(self) -> DocFile:
        return self._doc("features.json")

    def online_tables(self) -> DocFile[OnlineTableRecord]:
        return self._doc("online.json")

    # drift summaries: one file per month
    def drift_summaries(self, when_ms: int) -> DocFile[DriftSummaryRecord]:
        return self._doc("drift", f"{_month(when_ms)}.json")

    def drift_summary_files(self) -> list[DocFile[DriftSummaryRecord]]:
        """Newest month first."""
        return self._docs_in("drift", newest_first=True)

    # pipelines
    def pipeline_definitions(self) -> DocFile[PipelineDefinitionRecord]:
        return self._doc("pipelines", "definitions.json")

    def pipeline_runs(self, run_id: str) -> DocFile[PipelineRunRecord]:
        return self._doc("pipelines", "runs", f"{check_id('pipeline run', run_id)[:2]}.json")

    def pipeline_run_files(self) -> list[DocFile[PipelineRunRecord]]:
        return self._docs_in("pipelines/runs", "??.json")

    def pipeline_cache(self, key: str) -> DocFile[CacheEntryRecord]:
        return self._doc("pipelines", "cache", f"{check_id('cache key', key[:32])[:2]}.json")

    def pipeline_decisions(self, when_ms: int) -> DocFile[RetrainDecisionRecord]:
        return self._doc("pipelines", "decisions", f"{_month(when_ms)}.json")

    def pipeline_decision_files(self) -> list[DocFile[RetrainDecisionRecord]]:
        return self._docs_in("pipelines/decisions")

    # serving
    def deployments(self) -> DocFile[DeploymentRecord]:
        return self._doc("deployments.json")

    def deployment_dir(self, deployment_id: str) -> Path:
        """The folder of a deployment's request log and ``server.log`` (made by their writers)."""
        return self.root / "logs" / "serving" / check_id("deployment", deployment_id)

    def server_log(self, deployment_id: str) -> Path:
        return self.deployment_dir(deployment_id) / "server.log"

    def open_server_log(self, deployment_id: str) -> BinaryIO:
        """``server.log`` opened for appending (the server process's output goes there)."""
        path = self.server_log(deployment_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "ab")

    def request_log(self, deployment_id: str, max_bytes: int = 64 << 20, keep: int = 8) -> RotatingLog:
        return RotatingLog(self.deployment_dir(deployment_id), "requests", max_bytes, keep)


def _month(when_ms: int) -> str:
    return time.strftime("%Y-%m", time.gmtime(when_ms / 1000))


def _writer(text: str) -> tuple[str, str | None]:
    """(pid, pid space or None) from the writer part of a temporary document's name."""
    pid, _, space = text.partition("_")
    return pid, space or None


_explicit: Path | None = None
_stores: dict[Path, Store] = {}


def locate(start: str | Path | None = None) -> Path:
    """Where the store is: ``set_store``, else ``$NBMLOPS_STORE``, else the nearest ``.nbmlops/``
    in the working directory or a parent (like git), else ``./.nbmlops`` (created on first write)."""
    if _explicit is not None:
        return _explicit
    env = os.environ.get("NBMLOPS_STORE")
    if env:
        return resolve_named(Path(env))
    here = Path(start or os.getcwd()).resolve()
    for d in (here, *here.parents):
        if (d / DIRNAME / MARKER).exists():
            return d / DIRNAME
    return here / DIRNAME


def resolve_named(path: Path) -> Path:
    path = path.expanduser().resolve()
    if not (path / MARKER).exists() and (path / DIRNAME / MARKER).exists():
        return path / DIRNAME
    return path


def set_store(path: str | Path | None) -> Path:
    """Use the store at ``path`` (a store folder, or a folder holding ``.nbmlops/``) from now on
    in this process; ``None`` goes back to finding it. Returns the store folder."""
    global _explicit
    if path is None:
        _explicit = None
        return locate()
    p = resolve_named(Path(path))
    if p.exists() and not p.is_dir():
        raise InvalidInput(f"{p} is a file; give a folder for the store")
    _explicit = p
    return p


def chosen_store() -> Path | None:
    """The folder ``set_store`` chose in this process, or None (the store is then found)."""
    return _explicit


def current_store(create: bool = True) -> Store:
    """The store in effect; with ``create``, make its folder if it does not exist yet."""
    root = locate()
    store = _stores.get(root)
    if store is None:
        store = _stores[root] = Store(root)
    if create or store.exists():
        store.ensure()  # checks the schema (and migrates) before anything reads the store
    return store
