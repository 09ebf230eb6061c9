"""export/import mlflow against a real `mlflow server` (sqlite backend) on loopback, checked with
MLflow's own client: runs, metric histories point for point, artifacts, registered models with
versions and aliases, and `pyfunc.load_model("models:/name@alias")` predicting like nbmlops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import nbmlops
from nbmlops.errors import InvalidInput, NotFound

from mlflow_support import mlflow_server

pytest.importorskip("mlflow")

pytestmark = pytest.mark.process  # a real mlflow server

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
T = 1_700_000_000_000  # explicit metric timestamps (ms)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real MLflow tracking server, sqlite backend, serving artifacts."""
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A store with several experiments, runs of every status, a nested and a deleted run, and
    registered models (one from a run, one from a fitted forest, a deleted version)."""
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    started = time.perf_counter()
    root = tmp_path_factory.mktemp("store") / ".nbmlops"
    nbmlops.set_store(root)
    X, y = load_iris(return_X_y=True, as_frame=True)
    ids = {}
    for i, C in enumerate([0.1, 1.0]):
        with nbmlops.start_run(experiment="iris", name=f"lr-{C}", tags={"team": "ml"}, description="sweep") as run:
            nbmlops.log_params({"C": C, "solver": "lbfgs", "balanced": False, "seed": None, "max_iter": 500})
            for step in range(400):
                nbmlops.log_metric("loss", 1.0 / (step + 1 + i), step=step, timestamp=T + 10 * step)
                if step % 4 == 0:
                    nbmlops.log_metric("val/acc", step // 4, step=step, timestamp=T + 10 * step + 1)
            nbmlops.log_metric("loss", 0.5, step=3, timestamp=T + 99_999)  # a second point at one step
            nbmlops.log_dataset(X, "train", role="training")
            nbmlops.log_text("C sweep notes", "notes/readme.txt")
            model = LogisticRegression(C=C, max_iter=500).fit(X, y)
            nbmlops.log_model(model, "model", reference=(X, y))
            with nbmlops.start_run(experiment="iris", name=f"fold-{i}", nested=True) as child:
                nbmlops.log_metric("fold_acc", 0.9)
        ids[f"lr{i}"], ids[f"child{i}"] = run.id, child.id
        nbmlops.register_model(f"{run.id}:model", "iris", alias=("staging", "production")[i])
    with pytest.raises(ValueError):
        with nbmlops.start_run(experiment="other", name="boom") as failed:
            nbmlops.log_metric("x", 1.0)
            raise ValueError("boom")
    ids["failed"] = failed.id
    with nbmlops.start_run(experiment="other", name="gone") as gone:
        nbmlops.log_param("p", 1)
    nbmlops.delete_run(gone.id)
    ids["deleted"] = gone.id
    v3 = nbmlops.register_model(LogisticRegression(C=5, max_iter=500).fit(X, y), "iris")
    nbmlops.delete_version("iris", v3.version)
    rf = RandomForestClassifier(n_estimators=15, random_state=0).fit(X.to_numpy(), y)
    nbmlops.register_model(rf, "iris-rf", alias="champion")
    print(f"\nsource store built in {time.perf_counter() - started:.1f} s")
    yield root, ids, X
    nbmlops.set_store(None)


@pytest.fixture(scope="module")
def exported(server, source):
    root, ids, X = source
    nbmlops.set_store(root)
    t = time.perf_counter()
    summary = nbmlops.export_mlflow(server)
    print(f"\nfirst export: {time.perf_counter() - t:.1f} s: {summary!r}")
    return summary


def _mlflow_run(client, our_id):
    from mlflow.entities import ViewType

    found = client.search_runs([e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)],
                               f"tags.`nbmlops.run_id` = '{our_id}'", run_view_type=ViewType.ALL)
    assert len(found) == 1, f"{len(found)} MLflow runs for {our_id}"
    return found[0]


@pytest.mark.slow
def test_export_arrives_intact_as_mlflow_sees_it(server, source, exported):
    from mlflow import MlflowClient

    root, ids, X = source
    client = MlflowClient(server)
    assert exported["runs_created"] == 6 and exported["model_versions"] == 4 and exported["aliases_set"] == 3
    for key in ("lr0", "lr1", "child0", "failed", "deleted"):
        ours = nbmlops.get_run(ids[key])
        theirs = _mlflow_run(client, ours.id)
        info = theirs.info
        assert (info.run_name, info.status, info.start_time, info.end_time) == (
            ours.name, ours.status, ours.info["start_time"], ours.info["end_time"])
        assert theirs.data.params == {k: str(v) for k, v in ours.params.items()}  # as mlflow.log_param does
        assert ours.tags.items() <= theirs.data.tags.items()
        for metric in ours.info["metrics"]:
            mine = ours.metric_history(metric)
            a = sorted(zip(mine["step"], mine["timestamp"].astype("int64") // 10**6, mine["value"].astype(float)))
            b = sorted((m.step, m.timestamp, m.value) for m in client.get_metric_history(info.run_id, metric))
            assert a == b, metric  # point for point
    lr = _mlflow_run(client, ids["lr1"])
    assert len(client.get_metric_history(lr.info.run_id, "loss")) == 401
    assert lr.data.tags["mlflow.note.content"] == "sweep"
    assert _mlflow_run(client, ids["child1"]).data.tags["mlflow.parentRunId"] == lr.info.run_id
    assert _mlflow_run(client, ids["deleted"]).info.lifecycle_stage == "deleted"
    assert "ValueError: boom" in _mlflow_run(client, ids["failed"]).data.tags["nbmlops.error"]
    paths = {f.path for f in client.list_artifacts(lr.info.run_id, "notes")}
    assert paths == {"notes/readme.txt"}
    local = Path(client.download_artifacts(lr.info.run_id, "notes/readme.txt", str(root.parent)))
    assert local.read_text() == "C sweep notes"
    [ds] = lr.inputs.dataset_inputs
    assert ds.dataset.name == "train" and ds.tags[0].value == "training"

    import mlflow

    rm = client.get_registered_model("iris")
    assert rm.aliases == {"staging": "1", "production": "2"}
    live = sorted(int(v.version) for v in client.search_model_versions("name='iris'"))
    assert live == [1, 2]  # version 3 was exported, then deleted, as in nbmlops
    v2 = client.get_model_version("iris", "2")
    assert v2.run_id == lr.info.run_id and v2.tags["nbmlops.sha256"] == nbmlops.get_model_version("iris/2").sha256
    mlflow.set_tracking_uri(server)
    for uri, data in (("iris@production", X), ("iris@staging", X), ("iris-rf@champion", X.to_numpy())):
        pyfunc = mlflow.pyfunc.load_model(f"models:/{uri}")
        expected = nbmlops.load_model(uri).predict(data)
        assert np.array_equal(np.asarray(pyfunc.predict(data)).ravel(), expected), uri
    assert pyfunc.metadata.get_input_schema() is not None  # signatures came along


@pytest.mark.slow
def test_second_export_adds_only_what_is_new(server, source, exported):
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    root, ids, X = source
    client = MlflowClient(server)

    def count() -> int:
        exps = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
        return len(client.search_runs(exps, run_view_type=ViewType.ALL))

    before = count()
    again = nbmlops.export_mlflow(server)
    assert again.get("runs_created", 0) == 0 and again.get("model_versions", 0) == 0
    assert again["runs_unchanged"] == 6 and count() == before
    with nbmlops.start_run(experiment="iris", name="late") as late:
        nbmlops.log_metric("loss", 0.1)
    nbmlops.set_alias("iris", "production", 1)
    nbmlops.delete_alias("iris", "staging")
    third = nbmlops.export_mlflow(server, experiment="iris")
    assert third["runs_created"] == 1 and third["runs_unchanged"] == 4 and count() == before + 1
    assert client.get_registered_model("iris").aliases == {"production": "1"}
    assert _mlflow_run(client, late.id).data.metrics == {"loss": 0.1}

    with nbmlops.start_run(experiment="iris", name="in-progress") as live:  # exported while it runs…
        for step in range(50):
            live.log_metric("loss", 1 / (step + 1), step=step, timestamp=T + step)
        nbmlops.export_mlflow(server, experiment="iris", registry=False)
        assert _mlflow_run(client, live.id).info.status == "RUNNING"
        for step in range(50, 80):
            live.log_metric("loss", 1 / (step + 1), step=step, timestamp=T + step)
    update = nbmlops.export_mlflow(server, experiment="iris", registry=False)  # …then again when it ended
    assert update["runs_updated"] == 1 and update["metric_points"] == 30
    theirs = _mlflow_run(client, live.id)
    assert (theirs.info.status, theirs.info.end_time) == ("FINISHED", nbmlops.get_run(live.id).info["end_time"])
    assert sorted((m.step, m.value) for m in client.get_metric_history(theirs.info.run_id, "loss")) == \
        [(s, 1 / (s + 1)) for s in range(80)]


@pytest.mark.slow
def test_import_brings_mlflow_runs_back_once(server, source, exported, tmp_path):
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(server)
    exp = client.create_experiment("native")
    run = client.create_run(exp, start_time=T, run_name="trained-elsewhere", tags={"owner": "bob"})
    rid = run.info.run_id
    client.log_batch(rid, metrics=[Metric("rmse", 10.0 / (s + 1), T + s, s) for s in range(250)],
                     params=[Param("depth", "6"), Param("lr", "0.05")])
    (tmp_path / "report.md").write_text("# trained elsewhere\n")
    client.log_artifact(rid, str(tmp_path / "report.md"), "docs")
    client.set_terminated(rid, "FINISHED", end_time=T + 5000)

    from mlflow.entities import ViewType

    def listed(*names: str) -> int:  # active runs of active experiments, as import sees them
        exps = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
                if not names or e.name in names]
        return len(client.search_runs(exps))

    nbmlops.set_store(tmp_path / "fresh")
    first = nbmlops.import_mlflow(server)  # everything: the runs exported before (not this store's) and this one
    assert first["runs_imported"] == listed() and first["metric_points"] > 250
    df = nbmlops.search_runs("native")
    assert df["run_name"].tolist() == ["trained-elsewhere"]
    ours = nbmlops.get_run(df["run_id"][0])
    assert (ours.status, ours.info["start_time"], ours.info["end_time"]) == ("FINISHED", T, T + 5000)
    assert ours.params == {"depth": "6", "lr": "0.05"} and ours.tags["owner"] == "bob"
    hist = ours.metric_history("rmse")
    assert list(zip(hist["step"], hist["timestamp"].astype("int64") // 10**6, hist["value"])) == \
        [(s, T + s, 10.0 / (s + 1)) for s in range(250)]
    assert ours.artifact("docs/report.md").read_text() == "# trained elsewhere\n"
    again = nbmlops.import_mlflow(server, experiment="native")
    assert "runs_imported" not in again and again["runs_already_here"] == 1

    nbmlops.set_store(source[0])  # runs that came from this store are not brought back
    back = nbmlops.import_mlflow(server, experiment="iris")
    assert "runs_imported" not in back and back["runs_already_here"] == listed("iris")
    nbmlops.set_store(tmp_path / "fresh")
    sent = nbmlops.export_mlflow(server, experiment="native", registry=False)  # an imported run is not sent back
    assert sent["runs_from_mlflow_skipped"] == 1 and "runs_created" not in sent
    assert len(client.search_runs([exp])) == 1


def test_unreachable_or_wrong_tracking_uri_is_one_clear_error(store):
    from nbmlops.export import ExportError

    port = _free_port()  # nothing listens there
    t = time.perf_counter()
    with pytest.raises(ExportError, match=f"cannot reach an MLflow tracking server at http://127.0.0.1:{port}"):
        nbmlops.export_mlflow(f"http://127.0.0.1:{port}")
    assert time.perf_counter() - t < 10
    with pytest.raises(InvalidInput, match="not an MLflow tracking URI"):
        nbmlops.export_mlflow("ftp://example/x")
    with pytest.raises(InvalidInput, match="tracking URI"):
        nbmlops.import_mlflow("")
    out = subprocess.run([sys.executable, "-m", "nbmlops.cli", "export", "mlflow", "--tracking-uri",
                          f"http://127.0.0.1:{port}"], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


@pytest.mark.slow
def test_unknown_experiment_is_refused(server, source):
    nbmlops.set_store(source[0])
    with pytest.raises(NotFound, match="no experiment named 'nope'"):
        nbmlops.export_mlflow(server, experiment="nope")
    with pytest.raises(NotFound, match="has no experiment named 'nope'"):
        nbmlops.import_mlflow(server, experiment="nope")
