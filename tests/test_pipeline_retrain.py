"""retrain_on_drift: drift against the model's reference → pipeline → candidate → compare → decision."""

from __future__ import annotations

import pytest

import _pipeline_steps as steps
import nbmlops
from nbmlops import InvalidInput, NotFound
from nbmlops.pipelines import retrain_decisions


pytestmark = pytest.mark.usefixtures("calls")  # step executions counted per test (conftest.py)


@pytest.fixture
def deployed(store):
    """raw@1 → features → train → evaluate; its model registered as churn@production."""
    nbmlops.log_dataset(steps.raw_data(400), "raw", snapshot=True)
    p = steps.churn_pipeline({"scale": 1.0, "C": 1.0, "shuffle_labels": False})
    p.run(progress=False).register_model("model", "churn", alias="production")
    return p


def drifted(n=800, seed=7):
    return steps.raw_data(n, seed=seed, shift=1.5)


def test_no_drift_retrains_nothing_and_says_so(deployed, calls):
    d = nbmlops.retrain_on_drift("churn@production", steps.raw_data(400, seed=1), deployed, target="y", progress=False)
    assert d.decision == "no-drift" and not d.promoted and d.candidate is None and d.run is None
    assert d.reason.startswith("no retraining: 0 of 2 input columns drifted (0%), below the threshold of 50%")
    assert calls() == ["features", "train", "evaluate"]  # only the first run
    assert list(nbmlops.list_datasets("raw").version) == [1]
    monitoring = nbmlops.get_model_version("churn/1").doc["monitoring"]
    assert len(monitoring) == 1 and monitoring[0]["dataset_drift"] is False  # the drift summary, against the version
    assert retrain_decisions("churn").decision.tolist() == ["no-drift"]


def test_drift_retrains_registers_a_candidate_and_promotes_when_better(deployed, calls):
    current = drifted()
    d = nbmlops.retrain_on_drift("churn@production", current, "churn", target="y", auto_promote=True, margin=0.01,
                                 progress=False)
    assert d.decision == "promoted" and d.promoted, d.reason
    assert d.candidate == "churn/2" and d.production == "churn/1"
    assert nbmlops.get_model_version("churn@production").version == 2
    assert nbmlops.get_model_version("churn@candidate").version == 2
    m = d.metrics
    assert m["metric"] == "roc_auc" and m["candidate"] > m["production"] + 0.01 and m["rows"] == 200
    assert "2 of 2 input columns drifted (100%)" in d.reason and "promoted churn/2 to production" in d.reason
    # trained on the new data minus the held-out rows, through the pipeline (every step re-ran)
    assert d.run.executed == ["features", "train", "evaluate"]
    assert nbmlops.load_dataset("raw@2").shape == (600, 3)
    cand = nbmlops.get_model_version("churn/2")
    assert [(x["name"], x["version"]) for x in cand.datasets] == [("features", 2)]
    assert cand.doc["tags"]["nbmlops.retrain"] == d.doc["id"] and cand.doc["tags"]["nbmlops.dataset"] == "raw@2"
    stored = nbmlops.pipelines.records.list_decisions(nbmlops.store.current_store(), "churn")[0]
    assert stored["drift"]["n_drifted"] == 2 and stored["metrics"]["candidate"] == m["candidate"]
    assert stored["pipeline_run"] == d.run.id and stored["dataset"] == "raw@2"
    html = d._repr_html_()
    assert "promoted" in html and "<script" not in html
    # the next drifted month is measured against the promoted model's own reference
    again = nbmlops.retrain_on_drift("churn@production", drifted(400, seed=8), "churn", target="y", progress=False)
    assert again.decision == "no-drift" and again.production == "churn/2"


def test_without_auto_promote_the_decision_says_how_to_promote(deployed):
    d = nbmlops.retrain_on_drift("churn@production", drifted(), deployed, target="y", progress=False)
    assert d.decision == "candidate-better" and not d.promoted
    assert "nbmlops.set_alias('churn', 'production', 2)" in d.reason
    assert nbmlops.get_model_version("churn@production").version == 1


def test_a_worse_candidate_is_not_promoted(deployed):
    d = nbmlops.retrain_on_drift("churn@production", drifted(), deployed, target="y", auto_promote=True,
                                 params={"shuffle_labels": True}, progress=False)
    assert d.decision == "kept-production" and "kept churn/1 as production" in d.reason
    assert d.metrics["candidate"] < d.metrics["production"]
    assert nbmlops.get_model_version("churn@production").version == 1
    assert nbmlops.get_model_version("churn@candidate").version == 2


def test_margin_held_out_and_train_data(deployed):
    held = drifted(300, seed=11)
    both = steps.raw_data(400).sample(frac=1, random_state=0)  # old and new data together
    import pandas as pd

    both = pd.concat([both, drifted(400, seed=12)], ignore_index=True)
    d = nbmlops.retrain_on_drift("churn@production", drifted(), deployed, target="y", held_out=held, train_data=both,
                                 margin=0.99, auto_promote=True, metric="accuracy", progress=False)
    assert d.decision == "kept-production" and "(margin 0.99)" in d.reason and d.metrics["rows"] == 300
    assert nbmlops.load_dataset("raw@2").shape == (800, 3)


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "churn"}, r"name the deployed version, e.g. churn@production"),
    ({"model": "nope@production"}, r"no registered model named 'nope'"),
    ({"threshold": 0}, r"threshold is the share of columns that must drift"),
    ({"threshold": 1.5}, r"threshold is the share"),
    ({"metric": "auc"}, r"unknown metric 'auc'"),
    ({"margin": -1}, r"margin is how much better"),
    ({"holdout": 1.0}, r"holdout is the fraction"),
    ({"dataset": "other"}, r"pipeline churn does not read dataset 'other' \(it reads: raw\)"),
    ({"target": "label"}, r"target column 'label' is not in current"),
    ({"target": None, "current": "with_extra"}, r"say which column holds the labels with target="),
    ({"current": 42}, r"current is a DataFrame, a dataset reference"),
    ({"pipeline": "nope"}, r"no pipeline named 'nope'"),
    ({"params": {"zoom": 1}}, r"unknown parameter 'zoom'"),
    ({"output": "other"}, r"must have one model output to register \(model outputs: model\)"),
    ({"candidate_alias": "bad alias"}, r"invalid alias"),
])
def test_bad_input_is_refused_before_anything_is_written(deployed, calls, kwargs, message):
    store = nbmlops.store.current_store()
    before = sorted(p for p in store.root.rglob("*") if p.is_file() and "tmp" not in p.parts)
    args = {"model": "churn@production", "current": drifted(), "pipeline": deployed, "target": "y", "progress": False}
    args.update(kwargs)
    if isinstance(args["current"], str) and args["current"] == "with_extra":
        args["current"] = drifted().assign(extra=1)
    with pytest.raises((InvalidInput, NotFound), match=message):
        nbmlops.retrain_on_drift(**args)
    assert sorted(p for p in store.root.rglob("*") if p.is_file() and "tmp" not in p.parts) == before
    assert calls() == ["features", "train", "evaluate"]
