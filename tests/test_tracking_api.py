"""The tracking API as a script would use it."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import nbmlops
from nbmlops import InvalidInput, NotFound


def test_run_records_status_times_user_and_environment(store):
    with nbmlops.start_run(experiment="iris", name="first", tags={"team": "ds"}) as run:
        assert nbmlops.active_run() is run
        nbmlops.log_param("C", 0.5)
    assert nbmlops.active_run() is None
    info = nbmlops.get_run(run.id).info
    assert info["status"] == "FINISHED"
    assert info["end_time"] >= info["start_time"]
    assert info["duration"] == pytest.approx((info["end_time"] - info["start_time"]) / 1000)
    assert info["user"] and info["python"] == ".".join(map(str, sys.version_info[:3]))
    assert info["tags"] == {"team": "ds"} and info["params"] == {"C": 0.5}
    env = store.blobs.read_bytes(info["env_sha"])
    assert b"scikit-learn" in env and b"numpy" in env


def test_git_commit_is_recorded_inside_a_repository(store, tmp_path):
    git = ["git", "-c", "user.email=a@b", "-c", "user.name=a", "-C", str(tmp_path)]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f.txt").write_text("x")
    subprocess.run([*git, "add", "f.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    with nbmlops.start_run() as run:
        pass
    assert run.info["git_commit"] == head


def test_exception_marks_run_failed_with_traceback_and_reraises(store):
    with pytest.raises(ZeroDivisionError):
        with nbmlops.start_run(name="boom") as run:
            1 / 0
    info = nbmlops.get_run(run.id).info
    assert info["status"] == "FAILED"
    assert "ZeroDivisionError" in info["error"] and "Traceback" in info["error"]


def test_keyboard_interrupt_marks_run_killed(store):
    with pytest.raises(KeyboardInterrupt):
        with nbmlops.start_run() as run:
            raise KeyboardInterrupt
    assert nbmlops.get_run(run.id).status == "KILLED"


def test_metrics_keep_full_history_with_steps_and_timestamps(store):
    with nbmlops.start_run() as run:
        for i in range(5):
            nbmlops.log_metric("loss", 1.0 / (i + 1))
        nbmlops.log_metric("acc", 0.5, step=10, timestamp=1_700_000_000_000)
        nbmlops.log_metric("acc", 0.7, step=20)
        nbmlops.log_metrics({"f1": np.float32(0.25), "n": np.int64(3)}, step=1)
    hist = nbmlops.get_run(run.id).metric_history("loss")
    assert list(hist["step"]) == [0, 1, 2, 3, 4]
    assert list(hist["value"]) == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    info = nbmlops.get_run(run.id).info
    assert info["metrics"]["loss"] == {**info["metrics"]["loss"], "value": 0.2, "min": 0.2, "max": 1.0, "count": 5}
    acc = nbmlops.get_run(run.id).metric_history("acc")
    assert acc["timestamp"].iloc[0] == pd.Timestamp(1_700_000_000_000, unit="ms")
    assert info["metrics"]["acc"]["value"] == 0.7 and info["metrics"]["n"]["value"] == 3


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "0.9", None, True, [1.0]])
def test_bad_metric_value_raises_and_writes_nothing(store, value):
    with nbmlops.start_run() as run:
        with pytest.raises(InvalidInput, match="metric 'acc'"):
            nbmlops.log_metric("acc", value)
        with pytest.raises(InvalidInput):
            nbmlops.log_metrics({"ok": 1.0, "acc": value})
    assert nbmlops.get_run(run.id).info["metrics"] == {}
    assert nbmlops.get_run(run.id).metric_history().empty


def test_param_cannot_change_within_a_run(store):
    with nbmlops.start_run() as run:
        nbmlops.log_params({"lr": 0.1, "layers": 3})
        nbmlops.log_param("lr", 0.1)  # same value again is fine
        with pytest.raises(InvalidInput, match="already 0.1"):
            nbmlops.log_param("lr", 0.2)
        with pytest.raises(InvalidInput):
            nbmlops.log_params({"new": 1, "layers": 4})
    assert nbmlops.get_run(run.id).params == {"lr": 0.1, "layers": 3}


@pytest.mark.parametrize("key", ["", "../x", "/abs", "a" * 251, "semi;colon", 3])
def test_invalid_names_are_refused(store, key):
    with nbmlops.start_run() as run:
        with pytest.raises(InvalidInput, match="invalid"):
            nbmlops.log_metric(key, 1.0)
        with pytest.raises(InvalidInput, match="invalid"):
            nbmlops.log_param(key, 1)
    assert nbmlops.get_run(run.id).info["params"] == {}


def test_logging_without_an_active_run_raises_and_creates_nothing(store):
    for call in (lambda: nbmlops.log_metric("a", 1.0), lambda: nbmlops.log_param("a", 1),
                 lambda: nbmlops.set_tag("a", "b"), lambda: nbmlops.log_model(object())):
        with pytest.raises(InvalidInput, match="no active run"):
            call()
    assert not store.root.exists()


def test_nested_run_needs_nested_true(store):
    with nbmlops.start_run() as outer:
        with pytest.raises(InvalidInput, match="still active"):
            nbmlops.start_run()
        with nbmlops.start_run(nested=True) as inner:
            nbmlops.log_metric("x", 1.0)
        assert nbmlops.active_run() is outer
    assert inner.info["parent_run"] == outer.id
    assert "x" not in outer.metrics


def test_logging_to_an_ended_run_raises(store):
    with nbmlops.start_run() as run:
        pass
    with pytest.raises(InvalidInput, match="has ended"):
        run.log_metric("a", 1.0)


def test_artifacts_are_content_addressed_and_verified(store, tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("hello")
    d = tmp_path / "folder"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("hello")
    (d / "sub" / "b.txt").write_text("bye")
    with nbmlops.start_run() as run:
        nbmlops.log_artifact(f)
        nbmlops.log_artifact(d)
        with pytest.raises(InvalidInput, match="does not exist"):
            nbmlops.log_artifact(tmp_path / "missing.csv")
    names = sorted(a["name"] for a in run.info["artifacts"])
    assert names == ["folder/a.txt", "folder/sub/b.txt", "notes.txt"]
    assert run.artifact("notes.txt").read_text() == "hello"
    shas = {a["sha256"] for a in run.info["artifacts"]}
    assert len(shas) == 2  # "hello" stored once
    with pytest.raises(NotFound, match="missing.csv"):
        run.artifact("missing.csv")


def test_model_round_trip_and_dedupe(store):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=300).fit(X, y)
    with nbmlops.start_run() as r1:
        e1 = nbmlops.log_model(model, "clf")
    with nbmlops.start_run() as r2:
        e2 = nbmlops.log_model(model, "clf")
    assert e1["sha256"] == e2["sha256"]
    loaded = nbmlops.get_run(r1.id).load_model("clf")
    assert (loaded.predict(X) == model.predict(X)).all()
    assert e1["class"] == "sklearn.linear_model._logistic.LogisticRegression"
    with pytest.raises(NotFound, match="no model 'other'"):
        r2.load_model("other")


def test_dataset_fingerprints_follow_content(store):
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    with nbmlops.start_run() as run:
        f1 = nbmlops.log_dataset(df, "train")
        f2 = nbmlops.log_dataset(df.copy(), "train-copy")
        changed = df.copy()
        changed.loc[1, "a"] = 5
        f3 = nbmlops.log_dataset(changed, "changed")
        f4 = nbmlops.log_dataset(np.arange(6).reshape(2, 3), "array")
    assert f1["sha256"] == f2["sha256"] != f3["sha256"]
    assert f1["shape"] == [3, 2] and f1["columns"] == ["a", "b"] and f1["dtypes"][0] == "int64"
    assert f4["shape"] == [2, 3] and f4["kind"] == "ndarray"
    assert len(run.info["datasets"]) == 4


def test_log_figure_stores_a_png(store):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    with nbmlops.start_run() as run:
        entry = nbmlops.log_figure(fig, "curve.png")
        with pytest.raises(InvalidInput, match="matplotlib Figure"):
            nbmlops.log_figure("not a figure")
    plt.close(fig)
    assert run.artifact("curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert entry["kind"] == "figure"


def _make_runs(n=6):
    ids = []
    for i in range(n):
        with nbmlops.start_run(experiment="exp" if i < 4 else "other", name=f"r{i}",
                               tags={"parity": "even" if i % 2 == 0 else "odd"}) as run:
            nbmlops.log_params({"model": "rf" if i < 3 else "lr", "depth": i})
            nbmlops.log_metric("acc", i / 10)
        ids.append(run.id)
    return ids


def test_search_runs_columns_filter_order_and_limit(store):
    ids = _make_runs()
    df = nbmlops.search_runs()
    assert len(df) == 6 and list(df["run_id"]) == ids[::-1]  # newest first
    assert {"params.model", "params.depth", "metrics.acc", "tags.parity", "status", "duration"} <= set(df.columns)
    df = nbmlops.search_runs("exp", "metrics.acc >= 0.1 and params.model = 'rf'", order_by="metrics.acc desc")
    assert list(df["run_name"]) == ["r2", "r1"]
    df = nbmlops.search_runs(["exp", "other"], "tags.parity != 'odd'", order_by=["metrics.acc"], max_results=2)
    assert list(df["run_name"]) == ["r0", "r2"]
    assert list(nbmlops.search_runs(filter="params.depth > 3")["run_name"]) == ["r5", "r4"]
    assert list(nbmlops.search_runs(filter="run_name like 'r%' and status in ('FINISHED')",
                                    order_by="run_name")["run_name"]) == [f"r{i}" for i in range(6)]
    assert nbmlops.search_runs(filter="metrics.missing > 1").empty


@pytest.mark.parametrize("bad", ["metrics.acc >", "acc ~ 3", "metrics.acc > 1 or metrics.acc < 0", "nonsense = 1",
                                 "params.x in 'a'"])
def test_bad_filter_is_a_clear_error(store, bad):
    _make_runs(1)
    with pytest.raises(InvalidInput):
        nbmlops.search_runs(filter=bad)


def test_search_unknown_experiment_names_the_existing_ones(store):
    _make_runs(1)
    with pytest.raises(NotFound, match="'exp'"):
        nbmlops.search_runs("nope")


def test_delete_and_restore_run(store):
    ids = _make_runs(2)
    nbmlops.delete_run(ids[0])
    assert list(nbmlops.search_runs()["run_id"]) == [ids[1]]
    assert len(nbmlops.search_runs(include_deleted=True)) == 2
    nbmlops.restore_run(ids[0][:8])
    assert len(nbmlops.search_runs()) == 2
    with pytest.raises(NotFound):
        nbmlops.get_run("abcdef12")
    with pytest.raises(InvalidInput, match="hex"):
        nbmlops.get_run("../../etc")


def test_run_kept_running_by_a_dead_process_is_marked_killed(store):
    script = textwrap.dedent("""
        import os, signal, nbmlops
        run = nbmlops.start_run(name="doomed")
        for i in range(10):
            nbmlops.log_metric("loss", 1.0 / (i + 1))
        print(run.id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "NBMLOPS_STORE": str(store.root)})
    assert proc.returncode == -signal.SIGKILL
    run_id = proc.stdout.strip()
    from nbmlops.tracking import session

    session._swept.clear()  # "the next time the store is opened", in this process
    assert nbmlops.store_info()["runs_by_status"] == {"KILLED": 1}
    info = nbmlops.get_run(run_id).info
    assert info["status"] == "KILLED" and "exited" in info["error"]
    assert info["metrics"]["loss"]["count"] == 10 and info["metrics"]["loss"]["value"] == pytest.approx(0.1)


def test_run_and_experiment_display_escapes_names(store):
    with nbmlops.start_run(experiment="<b>exp</b>", name="<script>x</script>") as run:
        nbmlops.log_metric("acc", 0.5)
        nbmlops.set_tag("note", "<img src=x>")
    html = run._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html and "<img" not in html
    assert "FINISHED" in html and "acc" in html
    assert "acc=0.5" in repr(run)
    exp = nbmlops.get_experiment("<b>exp</b>")
    assert "&lt;b&gt;exp" in exp._repr_html_() and "<b>exp</b>" not in exp._repr_html_()
    assert math.isclose(nbmlops.list_experiments()["runs"].iloc[0], 1)


def test_store_is_found_like_git(tmp_path, monkeypatch):
    from nbmlops.store import current_store, locate, set_store

    monkeypatch.delenv("NBMLOPS_STORE", raising=False)
    set_store(None)
    project = tmp_path / "project"
    deep = project / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(project)
    current_store()  # created in the working directory
    monkeypatch.chdir(deep)
    assert locate() == project / ".nbmlops"
    monkeypatch.setenv("NBMLOPS_STORE", str(tmp_path / "elsewhere"))
    assert locate() == tmp_path / "elsewhere"
