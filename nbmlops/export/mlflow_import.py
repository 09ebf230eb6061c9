"""Runs from an MLflow tracking server into the store (the way back from ``export.mlflow``).

Params, full metric histories, tags, status, times and artifacts come over. A run that this
store exported (tag ``nbmlops.run_id``) or imported before (our tag ``nbmlops.mlflow_run_id``)
is skipped, so importing twice adds nothing. Logged models come as plain artifacts at most and
are never unpickled: a model file from a server is code, and the store's hash only proves it
did not change after it arrived.

The source never chooses which of the importer's own files are copied. MLflow's client opens a
``file://`` (or bare path) artifact URI on the machine it runs on, whatever server named it, so:

- from a remote tracking server (``http(s)://``, ``databricks``), artifacts come only through the
  server or a remote store (``mlflow-artifacts:``, ``s3://``, ...); a run whose artifact URI is a
  local path is imported without its artifacts;
- from a local store (``sqlite:``, ``file:``, a database URI), a local artifact folder must lie
  inside its experiment's ``artifact_location`` (the source's artifact root, as the store records
  it), and is read by nbmlops itself: symbolic links, and anything but regular files, are left out;
- ``runs:/`` and ``models:/`` artifact URIs (which MLflow resolves through another run) are refused.

Each refusal is a warning and a note in the summary naming the run and the reason, and the run's
tag ``nbmlops.artifacts_refused`` keeps the reason; the rest of the import goes on.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._util import check_key, new_id
from ..errors import InvalidInput, NotFound
from ..store import SCHEMA, AppendLog, Store, current_store
from ..store.blobs import HashingWriter
from ..store.records import ArtifactEntry, ExperimentRecord, MetricSummary, RunRecord
from ..tracking import experiments as exps
from ..tracking.lookup import insert_run
from . import Summary
from .mlflow import TAG_IMPORTED, TAG_RUN, _check_uri, _mlflow

TAG_REFUSED = "nbmlops.artifacts_refused"  # on an imported run: why (some of) its artifacts were left out
_REMOTE = ("http://", "https://", "databricks")
_INDIRECT = ("runs", "models")  # artifact URIs MLflow resolves through another run or model


def import_mlflow(tracking_uri: str, experiment: str | None = None) -> Summary:
    """Bring runs from an MLflow tracking server into the store: params, metric histories, tags,
    status, times and artifacts. Runs exported from this store, and runs imported before, are
    skipped. Logged models come as artifacts, never unpickled. Artifacts that are files of this
    machine named by a remote server, lie outside a local store's artifact root, or are symbolic
    links are refused: the run comes without them, with a warning and the tag
    ``nbmlops.artifacts_refused`` saying why.

    >>> nbmlops.import_mlflow("http://127.0.0.1:5000", experiment="churn")
    """
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
                    _import_run(store, client, mlflow, exp, r, summary, _Source(uri, mexp))
                token = page.token
                if not token:
                    break
    return summary


class _Refusal(Exception):
    """Why a run's artifacts are not imported."""


class _Source:
    """Where a run's artifacts may come from: the tracking URI and the experiment's artifact root."""

    def __init__(self, uri: str, mexp: Any) -> None:
        self.uri = uri
        self.remote = uri.startswith(_REMOTE)
        self.root = mexp.artifact_location or ""


def _scheme(uri: str) -> str:
    scheme = urllib.parse.urlparse(uri).scheme.lower()
    return "" if len(scheme) == 1 else scheme  # C:\\path is a local path


def _local_path(uri: str) -> Path:
    """The folder of a ``file:`` or bare-path artifact URI."""
    parsed = urllib.parse.urlparse(uri)
    if _scheme(uri) != "file":
        return Path(uri)
    if parsed.netloc not in ("", "localhost"):
        raise _Refusal(f"its artifact URI {uri} names another host's files")
    return Path(urllib.request.url2pathname(parsed.path))


def _artifact_plan(src: _Source, artifact_uri: str) -> tuple[str, Path | None]:
    """(URI to download through MLflow, None) or (URI, the checked local folder to read ourselves);
    raises _Refusal with the reason."""
    scheme = _scheme(artifact_uri)
    if scheme in _INDIRECT:
        raise _Refusal(f"its artifact URI {artifact_uri} points through another run or model ({scheme}:/), "
                       "which nbmlops does not follow")
    if scheme not in ("", "file"):
        return artifact_uri, None
    if src.remote:
        raise _Refusal(f"its artifact URI {artifact_uri} is a path on this machine, and {src.uri} is a remote "
                       "server: a server may not choose which of your files are copied")
    if not src.root or _scheme(src.root) not in ("", "file"):
        raise _Refusal(f"its artifact URI {artifact_uri} is a local path, but its experiment's artifact root "
                       f"{src.root!r} is not")
    root, folder = _local_path(src.root).resolve(), _local_path(artifact_uri).resolve()
    if not folder.is_relative_to(root):
        raise _Refusal(f"its artifact folder {folder} is outside its experiment's artifact root {root}")
    return artifact_uri, folder


def _regular_files(folder: Path, left_out: list[str]) -> Iterator[tuple[str, int]]:
    """(relative name, open descriptor) of each regular file under ``folder``, never following a
    symbolic link (each one, and each special file, is named in ``left_out``); the caller closes."""
    if not folder.is_dir():
        return
    for top, dirs, files, dfd in os.fwalk(folder, follow_symlinks=False):
        rel = Path(top).relative_to(folder)
        for name in sorted(dirs + files):
            label = (rel / name).as_posix()
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except OSError as exc:
                left_out.append(f"{label} ({exc.strerror})")
                continue
            if stat.S_ISDIR(st.st_mode):
                continue
            if stat.S_ISLNK(st.st_mode):
                left_out.append(f"{label} (a symbolic link)")
                continue
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
            except OSError as exc:
                left_out.append(f"{label} ({exc.strerror})")
                continue
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                left_out.append(f"{label} (not a regular file)")
                continue
            yield label, fd


def _put_fd(store: Store, fd: int) -> tuple[str, int]:
    tmp = store.blobs.tmp_path()
    with os.fdopen(fd, "rb") as src, open(tmp, "wb") as f:
        writer = HashingWriter(f)
        for chunk in iter(lambda: src.read(1 << 20), b""):
            writer.write(chunk)
    return store.blobs.put_path(tmp, writer.hexdigest())


def _download(mlflow: Any, uri: str, tmp: str) -> Path | None:
    """The artifacts at ``uri`` downloaded by MLflow into ``tmp`` (None if there are none); a
    download MLflow gives up on refuses this run's artifacts, not the whole import."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    try:
        if not get_artifact_repository(uri).list_artifacts():
            return None
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)).resolve()
    except (mlflow.exceptions.MlflowException, OSError) as exc:
        raise _Refusal(f"MLflow could not download its artifacts from {uri} ({str(exc).splitlines()[0][:300]}); "
                       "delete the run here and import again to retry") from None


def _copy_artifacts(store: Store, mlflow: Any, src: _Source, artifact_uri: str,
                    ok: Any, left_out: list[str]) -> list[ArtifactEntry]:
    """The run's artifacts as blobs; raises _Refusal when none may be read."""
    uri, folder = _artifact_plan(src, artifact_uri)
    with tempfile.TemporaryDirectory(prefix="nbmlops-mlflow-") as tmp:
        if folder is None:
            folder = _download(mlflow, uri, tmp)
            if folder is None:
                return []
            if not folder.is_relative_to(Path(tmp).resolve()):
                raise _Refusal(f"MLflow downloaded its artifacts to {folder}, outside {tmp}")
        artifacts = []
        for name, fd in _regular_files(folder, left_out):
            if not ok("artifact", name):
                os.close(fd)
                continue
            sha, size = _put_fd(store, fd)
            artifacts.append({"name": name, "sha256": sha, "size": size, "kind": "file"})
    return artifacts


def _import_run(store: Store, client: Any, mlflow: Any, exp: ExperimentRecord, r: Any, summary: Summary,
                src: _Source) -> None:
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
    summaries: dict[str, MetricSummary] = {}
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
    artifacts: list[ArtifactEntry] = []
    left_out: list[str] = []
    refused = None
    if info.artifact_uri:
        try:
            artifacts = _copy_artifacts(store, mlflow, src, info.artifact_uri, ok, left_out)
        except _Refusal as exc:
            refused = f"artifacts not imported: {exc}"
    if left_out:
        refused = "; ".join(filter(None, [refused, f"left out {', '.join(left_out[:10])}"
                                                   f"{' and more' if len(left_out) > 10 else ''}"]))
    if refused:
        tags[TAG_REFUSED] = refused[:5000]
    end = info.end_time
    doc: RunRecord = {
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
    insert_run(store, doc)  # with its identity
    summary.add("runs_imported")
    summary.add("metric_points", points)
    summary.add("artifacts", len(artifacts))
    if refused:
        message = f"run {doc['name']} (MLflow run {info.run_id}): {refused}"
        summary.add("runs_with_artifacts_refused")
        summary.notes.append(message)
        warnings.warn(message, stacklevel=3)
    if skipped:
        summary.notes.append(f"run {doc['name']}: left out {', '.join(skipped[:5])} (names nbmlops does not accept)")
