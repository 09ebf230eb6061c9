"""Pipelines of function steps through the API: order, tracking, caching, parameters, retries,
failures, resume after kill -9, YAML, stored definitions, the DAG, and every bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

import _pipeline_steps as steps
import nbmlops
from nbmlops import InvalidInput
from nbmlops.pipelines import StepFailed


pytestmark = pytest.mark.usefixtures("calls")  # step executions counted per test (conftest.py)


@pytest.fixture
def raw(store):
    return nbmlops.log_dataset(steps.raw_data(), "raw", snapshot=True)


def churn(**kw):
    return steps.churn_pipeline({"scale": 1.0, "C": 1.0, **kw})


def test_steps_run_in_order_as_tracked_runs_linked_to_the_pipeline_run(raw, calls):
    run = churn().run(progress=False)
    assert run.status == "FINISHED" and calls() == ["features", "train", "evaluate"]
    assert run.executed == ["features", "train", "evaluate"] and run.cached == []
    tr = run.step_run("train")
    assert tr.status == "FINISHED" and tr.params == {"C": 1.0}
    assert tr.tags["nbmlops.pipeline"] == "churn" and tr.tags["nbmlops.pipeline_run"] == run.id
    assert tr.tags["nbmlops.step"] == "train"
    (inp,) = tr.info["datasets"]  # the exact input version: lineage
    assert (inp["name"], inp["version"], inp["role"]) == ("features", 1, "input")
    assert run.step_run("evaluate").metrics["accuracy"] > 0.7
    assert run.outputs["features"]["version"] == 1 and run.outputs["model"]["kind"] == "model"
    pd.testing.assert_frame_equal(run.output("features"), steps.features(steps.raw_data()))
    assert run.output("model").predict(steps.raw_data()[["x1", "x2"]]).shape == (200,)
    # a model registered from the run's output names the exact training data version
    mv = run.register_model("model", "churn", alias="production")
    assert [(d["name"], d["version"]) for d in mv.datasets] == [("features", 1)]
    assert "ran in" in repr(run) and run._repr_html_().count("<svg") == 1


def test_rerun_is_fully_cached_and_says_where_from(raw, calls):
    first = churn().run(progress=False)
    n_runs = len(nbmlops.search_runs("churn"))
    again = churn().run(progress=False)
    assert calls() == ["features", "train", "evaluate"]  # nothing ran the second time
    assert again.cached == ["features", "train", "evaluate"] and again.executed == []
    assert len(nbmlops.search_runs("churn")) == n_runs  # no new tracked runs
    for step in ("features", "train", "evaluate"):
        src = again.steps[step]["cached_from"]
        assert src["pipeline_run"] == first.id and src["run_id"] == first.steps[step]["run_id"]
    assert f"cached from run {first.steps['train']['run_id'][:8]}" in repr(again)
    assert again.outputs == first.outputs
    assert (again.duration or 0) < first.duration
    forced = churn().run(cache=False, progress=False)
    assert forced.executed == ["features", "train", "evaluate"] and calls().count("train") == 2


def test_a_parameter_change_reruns_only_the_steps_that_use_it_and_what_follows(raw, calls):
    churn().run(progress=False)
    run = churn().run(C=0.1, progress=False)
    assert run.cached == ["features"] and run.executed == ["train", "evaluate"]
    assert run.step_run("train").params == {"C": 0.1}
    back = churn().run(progress=False)  # the first parameters again: all cached, from the first run
    assert back.cached == ["features", "train", "evaluate"]
    run = churn().run({"scale": 2.0}, progress=False)
    assert run.executed == ["features", "train", "evaluate"]


def test_input_versions_and_code_are_in_the_cache_key(raw, calls, tmp_path):
    churn().run(progress=False)
    nbmlops.log_dataset(steps.raw_data(seed=1), "raw", snapshot=True)  # new data: everything downstream runs
    run = churn().run(progress=False)
    assert run.executed == ["features", "train", "evaluate"] and run.steps["features"]["inputs"]["raw"]["version"] == 2
    # a step's code changes: that step runs; an unchanged output keeps the next steps cached
    module = tmp_path / "mysteps.py"
    module.write_text("def features(raw, scale=1.0):\n    return raw.assign(x1=raw.x1 * scale)\n")
    p = lambda: nbmlops.Pipeline("code", [  # noqa: E731
        nbmlops.step(f"{module}:features", inputs=["raw"], outputs=["features2"]),
        nbmlops.step(steps.summary, inputs={"features": "features2"}, outputs=["summary"])], params={"scale": 1.0})
    assert p().run(progress=False).executed == ["features", "summary"]
    module.write_text("def features(raw, scale=1.0):\n    # same result, other code\n    return raw.assign(x1=raw.x1 * scale)\n")
    run = p().run(progress=False)
    assert run.executed == ["features"] and run.cached == ["summary"]  # its input content did not change
    assert run.outputs["features2"]["version"] == 1  # the same data is the same version


def test_retries_then_success(raw, calls):
    p = nbmlops.Pipeline("retry", [
        nbmlops.step(steps.features, inputs=["raw"], outputs=["features"]),
        nbmlops.step(steps.flaky, inputs=["features"], outputs=["head"], retries=2),
    ], params={"fail_times": 2})
    run = p.run(progress=False)
    rec = run.steps["flaky"]
    assert run.status == "FINISHED" and rec["attempts"] == 3 and len(rec["runs"]) == 3
    statuses = [nbmlops.get_run(r).status for r in rec["runs"]]
    assert statuses == ["FAILED", "FAILED", "FINISHED"]
    assert "flaky failure" in nbmlops.get_run(rec["runs"][0]).info["error"]
    assert "3 attempts" in repr(run)


def test_a_failed_step_stops_the_pipeline_with_its_error(raw, calls):
    p = nbmlops.Pipeline("fails", [
        nbmlops.step(steps.features, inputs=["raw"], outputs=["features"]),
        nbmlops.step(steps.broken, inputs=["features"], outputs=["fixed"], retries=1),
        nbmlops.step(steps.summary, inputs={"features": "fixed"}, outputs=["summary"]),
    ])
    with pytest.raises(StepFailed, match=r"step broken failed after 2 attempts: ValueError: bad column 'x9'") as info:
        p.run(progress=False)
    run = info.value.run
    assert run.status == "FAILED" and run.states == {"features": "done", "broken": "failed", "summary": "skipped"}
    assert "summary" not in calls() and calls().count("broken") == 2
    assert nbmlops.pipeline_runs("fails").status[0] == "FAILED"
    assert "not run: step broken failed" in repr(run)


def test_outputs_by_dict_tuple_and_step_output(raw):
    p = nbmlops.Pipeline("outs", [
        nbmlops.step(steps.two_outputs, inputs=["raw"], outputs=["left", "right"]),
        nbmlops.step(steps.pair, inputs={"raw": "left"}, outputs=["head", "tail"]),
    ])
    run = p.run(progress=False)
    assert list(run.output("left").columns) == ["x1"] and list(run.output("right").columns) == ["x2"]
    assert len(run.output("head")) == 2 and run.outputs["tail"]["version"] == 1

    def explicit(raw):
        nbmlops.step_output("small", raw.head(1))
        assert nbmlops.load_dataset("raw").equals(raw)  # inside a step: the version passed in

    run = nbmlops.Pipeline("explicit", [nbmlops.step(explicit, inputs=["raw"], outputs=["small"])]).run(progress=False)
    assert len(run.output("small")) == 1

    def forgets(raw):
        return None

    with pytest.raises(StepFailed, match=r"did not produce dataset 'nothing'"):
        nbmlops.Pipeline("forgets", [nbmlops.step(forgets, inputs=["raw"], outputs=["nothing"])]).run(progress=False)


def test_pinned_versions_and_registry_models_as_inputs(raw, calls):
    nbmlops.log_dataset(steps.raw_data(seed=5), "raw", snapshot=True)
    run = churn().run(progress=False)
    run.register_model("model", "clf", alias="production")

    def score(data, model):
        nbmlops.log_metric("rows", len(data))

    p = nbmlops.Pipeline("score", [nbmlops.step(score, inputs={"data": "raw@1", "model": "model:clf@production"})])
    run2 = p.run(progress=False)
    assert run2.steps["score"]["inputs"]["data"]["version"] == 1
    assert run2.steps["score"]["inputs"]["model"]["uri"] == "clf/1"
    assert run2.step_run("score").tags["nbmlops.input.model"] == "clf/1"


def test_yaml_round_trip_and_the_store_remembers_definitions(raw, calls, tmp_path):
    import yaml

    from nbmlops.pipelines import pipeline as pipeline_module

    p = churn()
    path = tmp_path / "defs" / "churn.yaml"
    path.parent.mkdir()
    p.to_yaml(path)
    data = yaml.safe_load(path.read_text())
    assert data["pipeline"] == "churn" and data["steps"][0]["function"] == "_pipeline_steps:features"
    loaded = nbmlops.load_pipeline(path)
    assert [s.name for s in loaded.steps] == ["features", "train", "evaluate"] and loaded.params == p.params
    loaded.run(progress=False)
    pipeline_module._defined.clear()
    again = nbmlops.get_pipeline("churn")  # from the store: the definition of its last run
    assert again.run(progress=False).cached == ["features", "train", "evaluate"]
    with pytest.raises(nbmlops.NotFound, match=r"no pipeline named 'other'.*pipelines: churn"):
        nbmlops.get_pipeline("other")


def test_dag_is_drawn_with_states_and_escaped(raw):
    def weird(raw):
        return raw

    p = nbmlops.Pipeline("dag", [
        nbmlops.step(steps.features, inputs=["raw"], outputs=["features"]),
        nbmlops.step(weird, name="x<script>", inputs=["features"], outputs=["w"]),
        nbmlops.step(steps.summary, inputs=["features"], outputs=["summary"]),
    ]) if False else None  # a step name cannot carry markup at all:
    with pytest.raises(InvalidInput, match="invalid step name"):
        nbmlops.step(weird, name="x<script>")
    p = nbmlops.Pipeline("dag", [
        nbmlops.step(steps.features, inputs=["raw"], outputs=["features"]),
        nbmlops.step(steps.summary, inputs=["features"], outputs=["summary"]),
        nbmlops.step(steps.pair, inputs={"raw": "features"}, outputs=["head", "tail"]),
    ])
    html = p.show()._repr_html_()
    assert html.count("<rect") == 4 and "features" in html and "<script" not in html  # 3 steps + the raw input
    run = p.run(progress=False)
    drawn = p.show(run)._repr_html_()
    assert drawn.count('fill="#dafbe1"') == 3  # every step done (green)
    text = repr(p.show())
    assert "summary (function): features → summary" in text
    from nbmlops.display.pipelines import layout

    boxes, edges, _ = layout(p)
    assert ("features", "summary", "features") in edges and len(edges) == 3
    rects = list(boxes.values())
    for i, a in enumerate(rects):  # no two boxes overlap
        for b in rects[i + 1:]:
            assert a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0] or a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1]


def _files(store):
    return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file() and "tmp" not in p.parts)


BAD = {
    "cycle": (lambda: nbmlops.Pipeline("c", [nbmlops.step(steps.features, name="a", inputs={"raw": "b_out"},
                                                          outputs=["a_out"]),
                                             nbmlops.step(steps.features, name="b", inputs={"raw": "a_out"},
                                                          outputs=["b_out"])]),
              r"the steps form a cycle: (a → b → a|b → a → b)"),
    "no producer": (lambda: nbmlops.Pipeline("n", [nbmlops.step(steps.summary, inputs=["features"])]).run(),
                    r"step summary needs dataset 'features', which no step produces: no dataset named 'features'"),
    "missing notebook": (lambda: nbmlops.Pipeline("m", [nbmlops.step("nowhere.ipynb", inputs=["raw"])]).run(),
                         r"step nowhere: notebook '.*nowhere.ipynb' not found"),
    "unknown parameter": (lambda: churn().run(alpha=1),
                          r"unknown parameter 'alpha' for pipeline churn \(parameters: scale, C\)"),
    "missing version": (lambda: nbmlops.Pipeline("v", [nbmlops.step(steps.summary, inputs={"features": "raw@9"})]).run(),
                        r"step summary: dataset 'raw' has no version 9 \(versions: 1\)"),
    "two producers": (lambda: nbmlops.Pipeline("t", [nbmlops.step(steps.features, inputs=["raw"], outputs=["f"]),
                                                     nbmlops.step(steps.summary, inputs={"features": "raw"},
                                                                  outputs=["f"])]),
                      r"dataset 'f' is an output of both step features and step summary"),
    "undeclared param": (lambda: nbmlops.Pipeline("u", [nbmlops.step(steps.features, inputs=["raw"], params=["zoom"])]),
                         r"step features uses parameter 'zoom', which pipeline u does not define"),
    "function argument": (lambda: nbmlops.Pipeline("f", [nbmlops.step(steps.train, inputs={"raw": "raw"})]).run(),
                          r"function train takes 'features', which is neither an input nor a pipeline parameter"),
    "registry model": (lambda: nbmlops.Pipeline("r", [nbmlops.step(steps.evaluate,
                                                                   inputs={"features": "raw",
                                                                           "model": "model:nope@production"})]).run(),
                       r"step evaluate needs model 'nope@production'"),
    "not json": (lambda: churn().run(C=object()), r"parameter C = .* is not JSON"),
    "bad step": (lambda: nbmlops.step(42), r"a step is a notebook path \(.ipynb\), a function"),
    "bad ref": (lambda: nbmlops.step("nomodule_xyz:func"), r"cannot import 'nomodule_xyz'"),
    "pinned output": (lambda: nbmlops.step(steps.features, outputs=["f@2"]), r"pins a version"),
    "retries": (lambda: nbmlops.step(steps.features, retries=-1), r"retries is a number of extra attempts"),
    "reads own output": (lambda: nbmlops.step(steps.features, inputs=["raw"], outputs=["raw"]),
                         r"both reads and writes 'raw'"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_is_one_clear_message_before_anything_runs(raw, calls, case, tmp_path):
    call, message = BAD[case]
    before = _files(raw.store)
    with pytest.raises(InvalidInput, match=message) as info:
        call()
    assert "\n" not in str(info.value)
    assert _files(raw.store) == before and calls() == []
    assert not (tmp_path / "reports").exists()


RESUME = """
import sys
sys.path.insert(0, {tests!r})
import nbmlops, _pipeline_steps as steps
p = nbmlops.Pipeline("resumable", [
    nbmlops.step(steps.features, inputs=["raw"], outputs=["features"]),
    nbmlops.step(steps.slow, inputs=["features"], outputs=["tail"]),
    nbmlops.step(steps.summary, inputs={{"features": "tail"}}, outputs=["summary"]),
], params={{"gate": {gate!r}}})
if __name__ == "__main__":
    p.run(progress=False)
"""


def test_a_run_killed_mid_step_resumes_from_the_first_unfinished_step(raw, calls, tmp_path):
    gate = tmp_path / "gate"
    script = tmp_path / "resumable.py"
    script.write_text(RESUME.format(tests=str(Path(__file__).parent), gate=str(gate)))
    proc = subprocess.Popen([sys.executable, str(script)], env={**os.environ}, start_new_session=True)
    try:
        deadline = time.time() + 60
        while "slow" not in calls() and time.time() < deadline:
            time.sleep(0.05)
        assert "slow" in calls(), "the step to kill never started"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    (doc,) = nbmlops.pipelines.records.list_runs(raw.store, "resumable")
    assert doc["status"] == "RUNNING" and doc["steps"]["slow"]["state"] == "running"
    killed_run = doc["steps"]["slow"]["run_id"]
    gate.touch()
    sys.path.insert(0, str(tmp_path))
    try:
        import resumable
    finally:
        sys.path.remove(str(tmp_path))
    run = resumable.p.run(cache=False, progress=False)  # no cache: what is kept is kept by the resume
    assert run.id == doc["id"] and run.status == "FINISHED" and run.doc["resumed"] == 1
    assert run.states == {"features": "done", "slow": "done", "summary": "done"}
    assert run.steps["features"].get("resumed") and run.executed == ["slow", "summary"]
    assert calls() == ["features", "slow", "slow", "summary"]
    assert nbmlops.get_run(killed_run).status == "KILLED"  # swept: its process died
    assert "done before the interruption" in repr(run)
    assert nbmlops.pipeline_runs("resumable").resumed[0] == 1


def test_terminal_progress_line(raw, capsys):
    from nbmlops.pipelines.progress import TerminalProgress

    churn().run(progress=True)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("churn ") and "features ·" in err[0]
    assert err[-1].startswith("churn ") and " finished " in err[-1] and "train ✓" in err[-1]
    assert len(err) >= 4
    assert TerminalProgress().line(nbmlops.get_pipeline("churn").last_run()).count("✓") == 3
    json.dumps(nbmlops.pipeline_runs("churn").drop(columns=["started"]).to_dict("records"))
