"""Hardening of the ways in and out (issue 16, points 7 and 10, and a small one):

- ``import_mlflow`` from a hostile tracking server (a real ``mlflow server``) or a local sqlite
  store never copies the importer's own files: ``file://`` artifact URIs from a remote server,
  symlinks and paths outside the source's artifact root are refused, run by run;
- every model load in generated code checks the recorded sha256 first: the Kubeflow component
  (run by kfp's local runner) and the KServe batch script refuse a swapped pickle without running it;
- an unbalanced quote in any magic's line is one line (UsageError), not shlex's traceback.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
import warnings
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from mlflow_support import mlflow_server as start_mlflow_server

MAGICS = ["drift", "features", "pipeline", "register", "serve", "nbmlops"]


# -- magics: an unterminated quote ---------------------------------------------------------------------
@pytest.mark.parametrize("magic", MAGICS)
def test_unterminated_quote_is_one_line_in_every_magic(ip, magic, capsys):
    with pytest.raises(UsageError, match=rf"%{magic}: No closing quotation .*close the quote"):
        ip.run_line_magic(magic, '"unterminated')


def test_unterminated_quote_in_track_is_one_line(ip):
    with pytest.raises(UsageError, match=r"%track: No closing quotation"):
        ip.run_cell_magic("track", '-e "unterminated', "x = 1\n")


# -- swapped pickles: the Kubeflow component and the KServe batch script -------------------------------
class Hostile:
    """Unpickling this writes ``marker``: the proof that a swapped pickle's code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('pwned')",)


def _hostile_pickle(path, marker) -> None:
    import pickle

    path.write_bytes(pickle.dumps(Hostile(str(marker))))


@pytest.fixture
def scored(store, calls):
    """A pipeline scoring a registered model (an input no step produces: imported from a URI parameter)."""
    from sklearn.linear_model import LogisticRegression

    import _pipeline_steps as steps
    import nbmlops

    raw = steps.raw_data()
    nbmlops.log_dataset(raw, "raw", snapshot=True)
    nbmlops.register_model(LogisticRegression().fit(raw[["x1", "x2"]], raw["y"]), "churn", alias="production")
    return nbmlops.Pipeline("score", [nbmlops.step(steps.evaluate, inputs={"features": "raw",
                                                                            "model": "model:churn@production"})])


@pytest.mark.slow
def test_kfp_component_refuses_a_swapped_model_pickle_unread(scored, tmp_path, calls, capfd):
    import nbmlops

    pytest.importorskip("kfp")
    from kfp import components, local

    out = nbmlops.export_kfp(scored, tmp_path / "score.yaml", packages=[], install_kfp_package=False)
    component = components.load_component_from_file(str(out))
    [uri_param] = [p for p in component.component_spec.inputs if p.endswith("_uri") and p != "raw_uri"]
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"),
               raise_on_error=True)
    component()  # the snapshot the export wrote: checked, loaded, scored
    assert calls() == ["evaluate"]

    marker = tmp_path / "PWNED"
    evil = tmp_path / "other.pkl"
    _hostile_pickle(evil, marker)
    with pytest.raises(RuntimeError, match="FAILURE"):  # the documented parameter pointed at another pickle
        component(**{uri_param: str(evil)})
    logs = capfd.readouterr()
    assert "IntegrityError" in logs.out + logs.err and "refusing to load it" in logs.out + logs.err
    assert not marker.exists(), "the swapped pickle's code ran"
    assert calls() == ["evaluate"]  # the step itself never started


def test_kfp_input_from_an_upstream_task_is_checked_against_its_recorded_hash(tmp_path):
    """A model flowing between tasks is checked against the sha256 its producer recorded in the
    artifact's metadata (the real chain runs in test_pipeline_kfp: train -> evaluate)."""
    import hashlib
    import pickle

    from nbmlops.errors import IntegrityError
    from nbmlops.pipelines.kfp_runtime import FILE_SHA, verified_copy

    class Art:
        def __init__(self, path, metadata):
            self.path, self.metadata = str(path), metadata

    good = tmp_path / "model.pkl"
    good.write_bytes(pickle.dumps({"a": 1}))
    sha = hashlib.sha256(good.read_bytes()).hexdigest()
    port = {"kind": "model", "name": "model", "spec": "model:model"}
    assert verified_copy("t", port, Art(good, {FILE_SHA: sha}), tmp_path / "copy").read_bytes() == good.read_bytes()
    marker = tmp_path / "PWNED"
    _hostile_pickle(good, marker)  # swapped in the pipeline root after the producer wrote it
    with pytest.raises(IntegrityError, match="refusing to load it"):
        verified_copy("t", port, Art(good, {FILE_SHA: sha}), tmp_path / "copy2")
    with pytest.raises(IntegrityError, match="carries no recorded sha256"):
        verified_copy("t", port, Art(good, {}), tmp_path / "copy3")
    assert not (tmp_path / "copy2").exists() and not (tmp_path / "copy3").exists() and not marker.exists()


def test_kserve_batch_job_refuses_a_swapped_model_file(store, tmp_path):
    import subprocess
    import sys

    import yaml
    from sklearn.linear_model import LogisticRegression

    import _pipeline_steps as steps
    import nbmlops

    raw = steps.raw_data(50)
    nbmlops.register_model(LogisticRegression().fit(raw[["x1", "x2"]], raw["y"]), "churn", alias="production")
    out = tmp_path / "deploy"
    nbmlops.export_kserve("churn@production", out, batch=("s3://data/in.csv", "pvc://results/run1"))
    config, job = yaml.safe_load_all((out / "batch-job.yaml").read_text())
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    sha = nbmlops.get_model_version("churn@production").sha256
    assert args[args.index("--sha256") + 1] == sha  # the Job pins the registered file's hash
    script = tmp_path / "kserve_batch.py"
    script.write_text(config["data"]["kserve_batch.py"])  # what the pod runs, from its ConfigMap
    (tmp_path / "input").mkdir()
    raw[["x1", "x2"]].to_csv(tmp_path / "input" / "in.csv", index=False)
    pod = tmp_path / "mnt-models"  # the Job's model folder: only the model file, no export marker
    pod.mkdir()
    (pod / "model.joblib").write_bytes((out / "model" / "model.joblib").read_bytes())

    def job_run(model_dir, *extra):
        argv = [a.replace("/mnt/models", str(model_dir)).replace("/mnt/input", str(tmp_path / "input"))
                .replace("/mnt/output", str(tmp_path / "output")) for a in args]
        return subprocess.run([sys.executable, str(script), *argv, *extra], capture_output=True, text=True)

    ok = job_run(pod)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "output" / "run1" / "part-00000.csv").exists()

    marker = tmp_path / "PWNED"
    _hostile_pickle(pod / "model.joblib", marker)  # the storage URI now serves another pickle
    bad = job_run(pod)
    assert bad.returncode != 0 and "refusing to unpickle it" in bad.stderr and "Traceback" not in bad.stderr
    _hostile_pickle(out / "model" / "model.joblib", marker)  # run on the export folder: its marker pins the hash
    bad = subprocess.run([sys.executable, str(script), "--model-dir", str(out / "model"), "--input",
                          str(tmp_path / "input"), "--output", str(tmp_path / "o2")], capture_output=True, text=True)
    assert bad.returncode != 0 and "refusing to unpickle it" in bad.stderr
    bare = tmp_path / "bare"  # no hash anywhere: refused, not trusted
    bare.mkdir()
    _hostile_pickle(bare / "model.pkl", marker)
    bad = subprocess.run([sys.executable, str(script), "--model-dir", str(bare), "--input", str(tmp_path / "input"),
                          "--output", str(tmp_path / "o3")], capture_output=True, text=True)
    assert bad.returncode != 0 and "no recorded sha256" in bad.stderr
    assert not marker.exists(), "the swapped pickle's code ran"


# -- import_mlflow: the source never chooses which of the importer's files are copied ---------------
@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real MLflow tracking server (sqlite backend, serving artifacts from its own root) on
    loopback; yields (URI, its sqlite file, its artifact root)."""
    pytest.importorskip("mlflow")
    root = tmp_path_factory.mktemp("mlflow-hostile")
    with start_mlflow_server(root) as uri:
        yield uri, root / "mlflow.db", root / "artifacts"


def _victim(tmp_path):
    """A fake ~/.ssh of the importing machine: (folder, the secret its id_rsa holds)."""
    secret = f"-----BEGIN OPENSSH PRIVATE KEY----- fake {uuid.uuid4().hex}".encode()
    ssh = tmp_path / "home" / ".ssh"
    ssh.mkdir(parents=True)
    (ssh / "id_rsa").write_bytes(secret)
    (ssh / "config").write_text("Host *\n")
    return ssh, secret


def _set_artifact_uri(db, run_id, artifact_uri) -> None:
    """What a hostile server (or whoever wrote its database) answers as the run's artifact URI."""
    with sqlite3.connect(db) as con:
        assert con.execute("UPDATE runs SET artifact_uri = ? WHERE run_uuid = ?", (artifact_uri, run_id)).rowcount == 1


def _assert_nowhere_in_store(store, secret) -> None:
    for f in store.root.rglob("*"):
        if f.is_file() and not f.is_symlink():
            assert secret not in f.read_bytes(), f"{f} holds the importer's secret"


def _imported(name):
    import nbmlops

    df = nbmlops.search_runs()
    [run_id] = df.loc[df["run_name"] == name, "run_id"].tolist()
    return nbmlops.get_run(run_id)


@pytest.mark.slow
def test_hostile_mlflow_server_cannot_make_import_copy_the_importers_files(mlflow_server, store, tmp_path):
    import nbmlops
    from mlflow import MlflowClient

    uri, db, served = mlflow_server
    ssh, secret = _victim(tmp_path)
    client = MlflowClient(uri)
    exp = client.create_experiment("hostile")
    linked = client.create_run(exp, run_name="served-symlink").info.run_id  # in the server's own root
    client.log_artifact(linked, str(ssh / "config"))
    [served_file] = served.rglob(f"{linked}/**/config")
    served_file.unlink()
    os.symlink(ssh / "id_rsa", served_file)  # MLflow's server refuses to follow it: that run alone fails
    honest = client.create_run(exp, run_name="honest").info.run_id
    (tmp_path / "report.md").write_text("# honest\n")
    client.log_artifact(honest, str(tmp_path / "report.md"))  # through the server (mlflow-artifacts:)
    hostile = {name: client.create_run(exp, run_name=name).info.run_id
               for name in ("file-uri", "bare-path", "through-runs-uri", "dotdot")}
    _set_artifact_uri(db, hostile["file-uri"], ssh.as_uri())
    _set_artifact_uri(db, hostile["bare-path"], str(ssh))
    _set_artifact_uri(db, hostile["through-runs-uri"], f"runs:/{hostile['file-uri']}/")
    _set_artifact_uri(db, hostile["dotdot"], "file:///../../" + str(ssh).lstrip("/"))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = nbmlops.import_mlflow(uri, experiment="hostile")
    _assert_nowhere_in_store(store, secret)  # before: id_rsa came in, twice
    assert summary["runs_imported"] == 6 and summary["runs_with_artifacts_refused"] == 5
    assert _imported("honest").artifact("report.md").read_text() == "# honest\n"
    assert "nbmlops.artifacts_refused" not in _imported("honest").tags
    messages = [str(w.message) for w in caught]
    for name, why in [("file-uri", "is a path on this machine"), ("bare-path", "is a path on this machine"),
                      ("dotdot", "is a path on this machine"), ("through-runs-uri", "through another run"),
                      ("served-symlink", "MLflow could not download its artifacts")]:
        run = _imported(name)
        assert run.info["artifacts"] == [] and why in run.tags["nbmlops.artifacts_refused"], name
        assert any(m.startswith(f"run {name} (MLflow run ") and why in m for m in messages), name
        assert any(n.startswith(f"run {name} ") for n in summary.notes)


@pytest.mark.slow
def test_mlflow_server_with_a_local_artifact_folder_holding_a_symlink(mlflow_server, store, tmp_path):
    """A server whose experiment keeps artifacts in a local folder (no proxy): its client reads this
    machine's folder of that name, here with a symbolic link to the importer's key in it."""
    import nbmlops
    from mlflow import MlflowClient

    uri, _, _ = mlflow_server
    ssh, secret = _victim(tmp_path)
    client = MlflowClient(uri)
    shared = tmp_path / "shared-root"
    exp = client.create_experiment("local-location", artifact_location=shared.as_uri())
    linked = client.create_run(exp, run_name="symlink").info.run_id
    (shared / linked / "artifacts").mkdir(parents=True)
    os.symlink(ssh / "id_rsa", shared / linked / "artifacts" / "id_rsa")
    plain = client.create_run(exp, run_name="plain-copy").info.run_id
    (shared / plain / "artifacts").mkdir(parents=True)
    (shared / plain / "artifacts" / "id_rsa").write_bytes(secret)

    with pytest.warns(UserWarning, match=r"run symlink \(MLflow run \w+\): artifacts not imported: its artifact "
                                         r"URI file://\S+ is a path on this machine, and http://127.0.0.1:\d+ is a "
                                         r"remote server"):
        summary = nbmlops.import_mlflow(uri, experiment="local-location")  # before: MLflow's error ended it all
    _assert_nowhere_in_store(store, secret)
    assert summary["runs_imported"] == 2 and summary["runs_with_artifacts_refused"] == 2
    assert all(_imported(n).info["artifacts"] == [] for n in ("symlink", "plain-copy"))


@pytest.mark.slow
def test_local_mlflow_store_symlinks_and_paths_outside_the_artifact_root_are_refused(store, tmp_path):
    import nbmlops
    from mlflow import MlflowClient

    ssh, secret = _victim(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    db, root = src / "mlflow.db", src / "artifacts"
    client = MlflowClient(f"sqlite:///{db}")
    exp = client.create_experiment("local", artifact_location=root.as_uri())
    mixed = client.create_run(exp, run_name="mixed").info.run_id
    (tmp_path / "report.md").write_text("# mine\n")
    client.log_artifact(mixed, str(tmp_path / "report.md"), "docs")
    folder = root / mixed / "artifacts"
    os.symlink(ssh / "id_rsa", folder / "id_rsa")  # a file link
    os.symlink(ssh, folder / "keys")  # a folder link
    os.symlink(ssh / "id_rsa", folder / "docs" / "notes.md")
    outside = client.create_run(exp, run_name="outside").info.run_id
    _set_artifact_uri(db, outside, ssh.as_uri())
    dotdot = client.create_run(exp, run_name="dotdot").info.run_id
    _set_artifact_uri(db, dotdot, f"{root.as_uri()}/../../home/.ssh")
    relinked = client.create_run(exp, run_name="linked-folder").info.run_id
    os.symlink(ssh, root / relinked)  # the run's own folder is a link out of the root

    with pytest.warns(UserWarning, match=r"run mixed \(MLflow run \w+\): left out .*id_rsa \(a symbolic link\)"):
        summary = nbmlops.import_mlflow(f"sqlite:///{db}")  # MLflow's own download gave up on the whole import
    _assert_nowhere_in_store(store, secret)
    assert summary["runs_imported"] == 4 and summary["runs_with_artifacts_refused"] == 4
    run = _imported("mixed")
    assert [a["name"] for a in run.info["artifacts"]] == ["docs/report.md"]
    assert run.artifact("docs/report.md").read_text() == "# mine\n"
    why = run.tags["nbmlops.artifacts_refused"]
    assert all(f"{n} (a symbolic link)" in why for n in ("id_rsa", "keys", "docs/notes.md"))
    for name in ("outside", "dotdot", "linked-folder"):
        r = _imported(name)
        assert r.info["artifacts"] == [] and "outside its experiment's artifact root" in r.tags["nbmlops.artifacts_refused"]
