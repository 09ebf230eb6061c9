"""%pipeline run / show / runs / retrain / export, driven as a notebook user would."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

import _pipeline_steps as steps
import nbmlops


pytestmark = pytest.mark.usefixtures("calls")  # step executions counted per test (conftest.py)


@pytest.fixture
def session(ip):
    nbmlops.log_dataset(steps.raw_data(), "raw", snapshot=True)
    ip.user_ns["churn"] = steps.churn_pipeline({"scale": 1.0, "C": 1.0})
    return ip


def test_run_rerun_with_a_parameter_show_and_runs(session, calls, capsys):
    ip = session
    ip.run_line_magic("pipeline", "run churn -o first")
    first = ip.user_ns["first"]
    assert first.status == "FINISHED" and calls() == ["features", "train", "evaluate"]
    ip.run_line_magic("pipeline", "run churn -o again")
    assert ip.user_ns["again"].cached == ["features", "train", "evaluate"]
    ip.run_line_magic("pipeline", "run churn -p C=0.25 -o changed")
    changed = ip.user_ns["changed"]
    assert changed.executed == ["train", "evaluate"] and changed.params["C"] == 0.25
    ip.run_line_magic("pipeline", "run churn --no-cache -o forced")
    assert ip.user_ns["forced"].executed == ["features", "train", "evaluate"]
    capsys.readouterr()
    ip.run_line_magic("pipeline", "show churn")
    out = capsys.readouterr().out
    assert "train (function): features → model:model" in out
    ip.run_line_magic("pipeline", f"show churn --run {first.id[:8]}")
    ip.run_line_magic("pipeline", "runs churn")
    out = capsys.readouterr().out
    assert out.count("FINISHED") == 4 and first.id[:8] in out


def test_a_failing_step_is_one_red_line_and_the_run_is_kept(session):
    ip = session
    ip.user_ns["bad"] = nbmlops.Pipeline("bad", [nbmlops.step(steps.broken, inputs={"features": "raw"},
                                                              outputs=["x"])])
    with pytest.raises(UsageError, match=r"step broken failed: ValueError: bad column 'x9'"):
        ip.run_line_magic("pipeline", "run bad -o failed")
    assert ip.user_ns["failed"].status == "FAILED"


@pytest.mark.parametrize("line, message", [
    ("", "the following arguments are required|usage"),
    ("run", "usage: %pipeline run NAME"),
    ("run nope", "no pipeline named 'nope'"),
    ("run churn -p C", "-p takes KEY=VALUE"),
    ("run churn -p zoom=2", r"unknown parameter 'zoom' for pipeline churn \(parameters: scale, C\)"),
    ("show", "usage: %pipeline show NAME"),
    ("show churn --run abc", "at least 6 hex digits"),
    ("runs a b", "usage: %pipeline runs"),
    ("runs churn -p C=1", "-p and --no-cache go with %pipeline run"),
    ("retrain churn@production", "usage: %pipeline retrain"),
    ("retrain churn@production --current raw --pipeline churn", "no registered model named 'churn'"),
    ("export kfp churn", "usage: %pipeline export kfp"),
    ("export kfp churn out.txt", "a Kubeflow package is a .yaml file"),
])
def test_bad_input_is_one_line_and_writes_nothing(session, calls, line, message, tmp_path):
    store = nbmlops.store.current_store()
    before = sorted(p for p in store.root.rglob("*") if p.is_file() and "tmp" not in p.parts)
    with pytest.raises(UsageError, match=message):
        session.run_line_magic("pipeline", line)
    assert sorted(p for p in store.root.rglob("*") if p.is_file() and "tmp" not in p.parts) == before
    assert calls() == [] and not (tmp_path / "out.txt").exists()


def test_retrain_magic(session, capsys):
    ip = session
    ip.run_line_magic("pipeline", "run churn -o first")
    ip.user_ns["first"].register_model("model", "churn", alias="production")
    ip.user_ns["month"] = steps.raw_data(400, seed=3, shift=1.5)
    ip.run_line_magic("pipeline", "retrain churn@production --current month --pipeline churn --target y "
                                  "--auto-promote -o decision")
    decision = ip.user_ns["decision"]
    assert decision.decision in ("promoted", "kept-production") and decision.candidate == "churn/2"
    assert "retrain on drift" in capsys.readouterr().out
    with pytest.raises(UsageError, match="no dataset named 'nothere'"):
        ip.run_line_magic("pipeline", "retrain churn@production --current nothere --pipeline churn")
