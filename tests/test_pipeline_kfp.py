"""Kubeflow Pipelines export: compiled by kfp's compiler, loaded back by kfp's own loader, and run
by kfp's local SubprocessRunner with outputs equal to those of ``nbmlops pipeline run``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

import _pipeline_steps as steps
import nbmlops
from nbmlops import InvalidInput

kfp = pytest.importorskip("kfp")
pytestmark = pytest.mark.usefixtures("calls")  # step executions counted per test (conftest.py)


@pytest.fixture
def churn(store):
    nbmlops.log_dataset(steps.raw_data(), "raw", snapshot=True)
    return steps.churn_pipeline({"scale": 2.0, "C": 0.5}, retries=2, resources={"cpu": "2", "memory": "1Gi"})


def run_locally(package, root, **arguments):
    from kfp import components, local

    component = components.load_component_from_file(str(package))  # kfp's own loader validates the IR
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    return component(**arguments)


def test_compiled_package_has_the_same_dag_parameters_and_cache_keys(churn, tmp_path):
    out = nbmlops.export_kfp(churn, tmp_path / "kfp" / "churn.yaml", packages=["nbmlops[pipelines]"])
    spec = yaml.safe_load(out.read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"importer", "features", "train", "evaluate"}
    assert tasks["train"]["dependentTasks"] == ["features"]
    assert sorted(tasks["evaluate"]["dependentTasks"]) == ["features", "train"]
    assert tasks["features"]["retryPolicy"]["maxRetryCount"] == 2
    assert all(t["cachingOptions"]["enableCache"] for t in tasks.values())
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["scale"]["defaultValue"] == 2.0 and params["C"]["defaultValue"] == 0.5
    assert params["raw_uri"]["defaultValue"].endswith("churn.data/raw@1.parquet")
    plan = churn.plan()
    executors = spec["deploymentSpec"]["executors"]
    for name in ("features", "train", "evaluate"):
        container = executors[f"exec-{name}"]["container"]
        assert {"name": "NBMLOPS_CODE_SHA", "value": plan.code[name]} in container["env"]
        assert "nbmlops[pipelines]" in " ".join(container["command"])
    assert executors["exec-features"]["container"]["resources"]["resourceCpuLimit"] == "2"
    assert executors["exec-features"]["container"]["resources"]["resourceMemoryLimit"] == "1Gi"
    assert out.with_suffix(".py").exists()  # the generated components module
    loaded = kfp.components.load_component_from_file(str(out))
    assert loaded.name == "churn" and {"scale", "C", "raw_uri"} <= set(loaded.component_spec.inputs)
    assert set(loaded.component_spec.outputs) == {"features", "model"}


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Task 'features'. settings")
def test_the_local_kfp_run_gives_the_outputs_of_nbmlops_run(churn, tmp_path, calls):
    ours = churn.run(progress=False)
    out = nbmlops.export_kfp(churn, tmp_path / "churn.yaml", packages=[], install_kfp_package=False)
    task = run_locally(out, tmp_path / "kfp-root")
    theirs = pd.read_parquet(task.outputs["features"].path)
    pd.testing.assert_frame_equal(theirs, ours.output("features"))
    import pickle

    with open(task.outputs["model"].path, "rb") as f:
        model = pickle.load(f)
    X = steps.raw_data(50, seed=3)[["x1", "x2"]]
    assert np.array_equal(model.predict_proba(X), ours.output("model").predict_proba(X))
    assert calls() == ["features", "train", "evaluate"] * 2  # both really ran each step
    # parameters flow: another scale gives other features, as in nbmlops
    task2 = run_locally(out, tmp_path / "kfp-root2", scale=1.0)
    pd.testing.assert_frame_equal(pd.read_parquet(task2.outputs["features"].path),
                                  churn.run(scale=1.0, progress=False).output("features"))


@pytest.mark.slow
def test_notebook_steps_run_under_kfp_like_under_nbmlops(store, tmp_path):
    from test_pipeline_notebooks import SCALE, notebook

    nbmlops.log_dataset(steps.raw_data(30), "raw", snapshot=True)
    nb = notebook(tmp_path / "steps" / "scale.ipynb", SCALE, params="factor = 1")
    p = nbmlops.Pipeline("nbk", [nbmlops.step(nb, inputs=["raw"], outputs=["scaled"])], params={"factor": 4})
    ours = p.run(progress=False, reports=tmp_path / "reports").output("scaled")
    out = nbmlops.export_kfp(p, tmp_path / "nbk.yaml", packages=[], install_kfp_package=False)
    task = run_locally(out, tmp_path / "kfp-root")
    pd.testing.assert_frame_equal(pd.read_parquet(task.outputs["scaled"].path), ours)
    reports = list((tmp_path / "kfp-root").rglob("report"))
    assert reports and "# Parameters" in reports[0].read_text()  # the executed notebook's HTML, as an artifact


def test_bad_input_writes_nothing(churn, tmp_path):
    with pytest.raises(InvalidInput, match=r"unknown parameter 'zoom'"):
        nbmlops.export_kfp(churn, tmp_path / "x.yaml", {"zoom": 1})
    with pytest.raises(InvalidInput, match=r"a Kubeflow package is a .yaml file"):
        nbmlops.export_kfp(churn, tmp_path / "x.json")

    def local_fn(raw):  # defined inside a function: not something a component can import
        return raw

    p = nbmlops.Pipeline("inner", [nbmlops.step(local_fn, inputs=["raw"], outputs=["o"])])
    with pytest.raises(InvalidInput, match=r"defined inside another function"):
        nbmlops.export_kfp(p, tmp_path / "y.yaml")
    assert not [f for f in tmp_path.iterdir() if f.name not in ("calls.txt", ".nbmlops")]


def test_names_that_clash_in_python_still_compile(store, tmp_path):
    nbmlops.log_dataset(steps.raw_data(20), "my-data.v2", snapshot=True)

    p = nbmlops.Pipeline("odd-names.v1", [
        nbmlops.step(steps.features, name="pipeline", inputs={"raw": "my-data.v2"}, outputs=["features"]),
        nbmlops.step(steps.train, name="train", inputs=["features"], outputs=["model:model"], params=["C"]),
    ], params={"scale": 1.0, "C": 1.0, "train": 3})
    out = nbmlops.export_kfp(p, tmp_path / "odd.yaml", packages=[], install_kfp_package=False)
    loaded = kfp.components.load_component_from_file(str(out))
    assert {"scale", "C", "train", "my_data_v2_uri"} <= set(loaded.component_spec.inputs)
    tasks = yaml.safe_load(out.read_text())["root"]["dag"]["tasks"]
    assert set(tasks) == {"importer", "pipeline", "train-2"}  # kfp names tasks after the (renamed) components
    assert tasks["train-2"]["dependentTasks"] == ["pipeline"] and tasks["pipeline"]["dependentTasks"] == ["importer"]
