"""Closing the loop from the live monitor: a recorded window keeps its rows (``window_data``) and its
full report can be drawn again (``window_report``); ``serve(..., on_drift="retrain:PIPELINE")`` hands
a drifted window's labelled rows to ``retrain_on_drift`` in a job of its own, which registers a
candidate and promotes nothing by itself; a window without labels waits for them; bad settings are
one line."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import _pipeline_steps as steps
import nbmlops
from nbmlops import InvalidInput, NotFound
from nbmlops.jupyter_server.data import drift_report_html
from nbmlops.monitoring.log import get_summary
from nbmlops.pipelines import retrain_decisions
from nbmlops.pipelines.__main__ import TOO_FEW, main as retrain_job
from nbmlops.serving.metrics import Metrics
from nbmlops.serving.model import ServedModel
from nbmlops.serving.monitor import Monitor

from test_serving import call


@pytest.fixture
def churn(store, monkeypatch):
    """raw@1 → features → train → evaluate, its model churn@production (with a labelled reference);
    the steps' module importable by the processes the test starts (server, retrain job)."""
    here = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))
    nbmlops.log_dataset(steps.raw_data(400), "raw", snapshot=True)
    p = steps.churn_pipeline({"scale": 1.0, "C": 1.0, "shuffle_labels": False})
    p.run(progress=False).register_model("model", "churn", alias="production")
    return store


def _wait(check, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.25)
    raise AssertionError(f"{what} within {timeout} s")


@pytest.mark.slow
def test_a_drifted_window_with_labels_retrains_through_the_pipeline_in_a_job_of_its_own(churn):
    dep = nbmlops.serve("churn@production", monitor=True, monitor_window=200, monitor_every=200, monitor_cpu=0.5,
                        log_requests=False, on_drift="retrain:churn")
    try:
        drifted = steps.raw_data(200, seed=7, shift=1.5)
        for i in range(0, 200, 50):  # labels arrive after each answer: the window is cut before the last ones
            part = drifted.iloc[i:i + 50]
            answer = dep.predict(part[["x1", "x2"]])
            dep.feedback(answer["request_id"], labels=part.y.tolist())
        try:
            _wait(lambda: not retrain_decisions("churn").empty, 90, "no retrain decision was recorded")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; /monitor: {call(dep, 'GET', '/monitor')[1]}; log: {dep.logs(30)}") from None
        decisions = retrain_decisions("churn")
        monitor = call(dep, "GET", "/monitor")[1]
    finally:
        dep.stop()
    d = decisions.iloc[0]
    assert d.decision in ("candidate-better", "kept-production"), d.reason  # never promoted without being asked
    assert d.candidate == "churn/2" and d.production == "churn/1"
    assert nbmlops.get_model_version("churn@production").version == 1
    assert nbmlops.get_model_version("churn@candidate").version == 2
    stored = nbmlops.pipelines.records.list_decisions(nbmlops.store.current_store(), "churn")[0]
    window = stored["drift"]["window"]
    history = nbmlops.drift_history("churn")
    assert window in set(history.id) and history.set_index("id").loc[window, "deployment"] == "churn"
    # the job trained on the window's labelled rows, as the next version of the pipeline's dataset
    rows = nbmlops.window_data(window)
    assert list(rows.columns) == ["x1", "x2", "prediction", "target"] and len(rows) == 200
    labelled = int(rows.target.notna().sum())
    assert 150 <= labelled <= 200  # the last request's labels may come after its window was cut
    trained = nbmlops.load_dataset("raw@2")
    assert list(trained.columns) == ["x1", "x2", "y"] and len(trained) == labelled - round(labelled * 0.25)
    assert monitor["retrain"]["on_drift"] == "retrain:churn"
    job = monitor["retrain"]["jobs"]["1"]
    assert job["window"] == window and job["state"] in ("running", "decided")
    # the full report of that window, drawn again from its rows
    report = nbmlops.window_report(window)
    assert report.dataset_drift and {c.column for c in report.columns if c.drifted} >= {"x1", "x2"}
    assert "<svg" in report.html() or "<img" in report.html()


def _recorded_window(uri: str, frame, labels=None) -> str:
    """A window of ``frame`` judged and recorded by a Monitor in this process; its drift id."""
    served = ServedModel(uri)
    monitor = Monitor(Metrics(served.name), len(frame), 10_000, "test")
    out = served.predict_frame(frame)
    monitor.add(served, frame.to_numpy(dtype=object).tolist(), out, "r1")
    if labels is not None:
        monitor.label("r1", served.version, list(labels))
    summary = monitor.judge(monitor.versions[served.version])
    return summary["drift_id"]


def test_a_window_without_labels_waits_for_them_and_writes_nothing(churn, capsys):
    drifted = steps.raw_data(120, seed=3, shift=1.5)
    window = _recorded_window("churn@production", drifted[["x1", "x2"]])
    assert nbmlops.window_data(window).target.isna().all()
    args = ["retrain", "--store", str(nbmlops.store.current_store().root), "--window", window,
            "--pipeline", "churn", "--model", "churn@production"]
    assert retrain_job(args) == TOO_FEW
    assert "0 of its 120 rows have a label" in capsys.readouterr().err
    assert retrain_decisions("churn").empty and list(nbmlops.list_datasets("raw").version) == [1]
    with pytest.raises(InvalidInput, match="has no labels yet"):
        nbmlops.retrain_on_drift("churn@production", f"window:{window}", "churn", progress=False)
    # drawn again, with the tests the monitor chose for a window of its size: the same numbers as recorded
    recorded = get_summary(window)
    again = nbmlops.window_report(window)
    assert again.share_drifted == recorded["window"]["drift_share"] and again.options["default_by"] == "smaller"
    kept = json.loads(nbmlops.store.current_store().blobs.read_bytes(recorded["report"]["sha256"]))
    assert [(c.column, c.stattest, c.score) for c in again.columns] == \
        [(c["column"], c["stattest"], c["score"]) for c in kept["columns"]]
    # the dashboard's "open report" of a window: its full report drawn again from the rows it kept
    page = drift_report_html(window)
    assert page.lstrip().lower().startswith(("<!doctype", "<html")) and "<svg" in page and "x1" in page


def test_window_report_of_a_report_that_is_not_a_window_is_refused(churn):
    logged = nbmlops.drift_report(steps.raw_data(100), steps.raw_data(100, seed=1), progress=False).log()
    with pytest.raises(InvalidInput, match="not a window"):
        nbmlops.window_report(logged["id"])
    with pytest.raises(NotFound):
        nbmlops.window_data("0" * 32)


@pytest.mark.parametrize("options, message", [
    ({"on_drift": "retrain:churn"}, "on_drift acts on the live monitor's windows: it needs monitor=True"),
    ({"monitor": True, "on_drift": "retrain:nope"}, "on_drift names pipeline 'nope', which is not in the store"),
    ({"monitor": True, "on_drift": "promote:churn"}, "on_drift takes 'retrain:PIPELINE' or 'retrain+promote"),
    ({"monitor": True, "on_drift": 3}, "on_drift takes 'retrain:PIPELINE'"),
])
def test_bad_on_drift_is_refused_in_one_line_before_anything_starts(churn, options, message):
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace("+", r"\+")) as err:
        nbmlops.serve("churn@production", **options)
    assert "\n" not in str(err.value)
    assert nbmlops.list_deployments(all=True).empty
