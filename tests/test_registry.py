"""The model registry through its API, as a script or notebook uses it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import nbmlops
from nbmlops import IntegrityError, InvalidInput, NotFound


@pytest.fixture(scope="module")
def data():
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture
def tracked(store, data):
    """A forest fitted inside an autologged run (as %%track does)."""
    from sklearn.ensemble import RandomForestClassifier

    X, y = data
    with nbmlops.start_run(experiment="bc", name="forest", autolog=True) as run:
        model = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
        nbmlops.log_metric("auc", 0.98)
    return model, run


def test_register_tracked_model_keeps_lineage_signature_and_reference(tracked, data):
    model, run = tracked
    X, y = data
    v = nbmlops.register_model(model, "churn", alias="staging", tags={"owner": "ds"}, description="first")
    assert (v.name, v.version, v.aliases) == ("churn", 1, ["staging"])
    assert v.run_id == run.id and v.metrics["auc"] == 0.98 and v.params["n_estimators"] == 20
    assert sorted(d["name"] for d in v.datasets) == ["RandomForestClassifier.X", "RandomForestClassifier.y"]
    s = v.signature
    assert s["features"] == list(X.columns) and s["n_features"] == 30 and s["classes"] == [0, 1]
    assert s["output"] == "probability" and s["predict_proba"] is True
    assert s["dtypes"]["mean radius"] == "float64" and len(s["input_example"]) == 3
    ref = nbmlops.load_reference("churn@staging")
    assert list(ref.columns) == [*X.columns, "target", "prediction"] and len(ref) == len(X)
    assert (ref["prediction"].to_numpy() == model.predict(X)).all()
    assert (ref["target"].to_numpy() == y.to_numpy()).all()


def test_load_by_alias_version_and_latest(tracked, data):
    model, run = tracked
    X, _ = data
    nbmlops.register_model(model, "churn", alias="production")
    nbmlops.register_model(run.id, "churn")  # from the run, same bytes
    for uri in ("churn", "churn@production", "churn/1", "churn/2", "models:/churn@production"):
        loaded = nbmlops.load_model(uri)
        assert (loaded.predict(X) == model.predict(X)).all()
    assert nbmlops.load_model("churn").version.version == 2
    assert nbmlops.load_model("churn@production").version.version == 1
    assert type(nbmlops.load_model("churn", raw=True)).__name__ == "RandomForestClassifier"


def test_signature_mismatch_names_the_features(tracked, data):
    model, _ = tracked
    X, _ = data
    nbmlops.register_model(model, "churn")
    loaded = nbmlops.load_model("churn")
    with pytest.raises(InvalidInput, match=r"lacks \['mean radius'\] and has unexpected \['age'\]"):
        loaded.predict(X.drop(columns=["mean radius"]).assign(age=1))
    with pytest.raises(InvalidInput, match="expects 30 features"):
        loaded.predict(X.to_numpy()[:, :5])
    with pytest.raises(InvalidInput, match="'mean area' must be numeric"):
        loaded.predict(X.head(2).astype({"mean area": object}).assign(**{"mean area": ["big", "small"]}))
    shuffled = X[X.columns[::-1]].assign(extra=1)  # extra columns dropped, order fixed
    assert (loaded.predict(shuffled) == model.predict(X)).all()
    assert loaded.predict_proba(X.head(1).to_dict("records")).shape == (1, 2)


def test_versions_are_never_reused(tracked):
    model, _ = tracked
    for _ in range(3):
        nbmlops.register_model(model, "m")
    nbmlops.delete_version("m", 3)
    assert nbmlops.register_model(model, "m").version == 4
    assert list(nbmlops.list_versions("m")["version"]) == [1, 2, 4]
    with pytest.raises(NotFound, match="version 3 of 'm' was deleted"):
        nbmlops.load_model("m/3")


def test_aliases_move_atomically_and_are_recorded(tracked):
    model, _ = tracked
    nbmlops.register_model(model, "m", alias="production")
    nbmlops.register_model(model, "m")
    nbmlops.set_alias("m", "production", 2)
    assert nbmlops.get_model_version("m@production").version == 2
    with pytest.raises(InvalidInput, match="points at version 2"):
        nbmlops.delete_version("m", 2)
    nbmlops.delete_alias("m", "production")
    with pytest.raises(NotFound, match="no alias 'production'"):
        nbmlops.load_model("m@production")
    history = nbmlops.model_history("m")
    moves = history[history.action == "alias"]
    assert list(moves["to"].astype("Int64")) == [1, 2, pd.NA] and (history["user"] != "").all()


def test_compare_versions_shows_params_metrics_and_signature(store, data):
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    X, y = data
    with nbmlops.start_run(autolog=True):
        a = DecisionTreeClassifier(max_depth=2).fit(X, y)
        nbmlops.log_metric("acc", 0.9)
    nbmlops.register_model(a, "cmp")
    with nbmlops.start_run(autolog=True):
        b = LogisticRegression(max_iter=1000).fit(X[X.columns[:5]], y)
        nbmlops.log_metric("acc", 0.8)
    nbmlops.register_model(b, "cmp")
    c = nbmlops.compare_versions("cmp", 1, 2)
    assert c.metrics["acc"] == (0.9, 0.8) and c.params["max_depth"] == (2, None)
    assert len(c.signature["features"]["removed"]) == 25
    assert "metrics.acc" in c.table().index and "v1" in c._repr_html_()


@pytest.mark.parametrize("bad", ["../x", "/abs/path", "a/b", "nul\x00byte", "", "..", " spaced", "a" * 101])
def test_path_like_names_are_rejected_and_nothing_written(store, tracked, bad):
    model, _ = tracked
    with pytest.raises(InvalidInput, match="invalid model name"):
        nbmlops.register_model(model, bad)
    assert nbmlops.list_models().empty


@pytest.mark.parametrize("bad", ["1st", "has space", "a/b", "", "@x"])
def test_bad_aliases_are_rejected(tracked, bad):
    model, _ = tracked
    with pytest.raises(InvalidInput, match="invalid alias"):
        nbmlops.register_model(model, "m", alias=bad)
    assert nbmlops.list_models().empty


def test_unfitted_or_non_models_are_refused_before_the_store_exists(store):
    from sklearn.ensemble import RandomForestClassifier

    with pytest.raises(InvalidInput, match="not fitted"):
        nbmlops.register_model(RandomForestClassifier(), "m")
    with pytest.raises(InvalidInput, match="not a model"):
        nbmlops.register_model({"weights": [1, 2]}, "m")
    with pytest.raises(InvalidInput, match="neither a fitted model nor a run id"):
        nbmlops.register_model("not-a-run", "m")
    assert not store.root.exists()


def test_unknown_run_version_and_missing_alias_target(tracked):
    model, run = tracked
    with pytest.raises(NotFound, match="no run"):
        nbmlops.register_model("abcdef0123", "m")
    with pytest.raises(NotFound, match="no model 'nope'"):
        nbmlops.register_model(f"{run.id}:nope", "m")
    nbmlops.register_model(model, "m")
    with pytest.raises(NotFound, match="no version 7"):
        nbmlops.set_alias("m", "production", 7)
    with pytest.raises(NotFound, match="no registered model named 'other'"):
        nbmlops.load_model("other")
    assert nbmlops.model_history("m")["action"].tolist() == ["register"]


def test_tampered_blob_is_refused(tracked):
    model, _ = tracked
    v = nbmlops.register_model(model, "m")
    path = v.store.blobs.path(v.sha256)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    with pytest.raises(IntegrityError, match="model 'm' version 1.*changed"):
        nbmlops.load_model("m")


def test_explicit_reference_for_a_model_fitted_outside_track(store):
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200_500, 3))
    y = X @ [1.0, 2.0, 3.0]
    model = LinearRegression().fit(X, y)
    v = nbmlops.register_model(model, "reg", reference=(X, y))
    ref = nbmlops.load_reference("reg")
    assert len(ref) == 100_000 and list(ref.columns) == ["x0", "x1", "x2", "target", "prediction"]
    assert np.allclose(ref["prediction"], ref["target"])
    assert v.signature["output"] == "regression" and v.run_id is None
    with pytest.raises(NotFound, match="no monitoring reference"):
        nbmlops.load_reference(nbmlops.register_model(model, "noref").uri)


def test_drift_summary_is_stored_against_the_version(tracked):
    model, _ = tracked
    nbmlops.register_model(model, "m", alias="production")
    nbmlops.registry.record_drift_summary("m@production", {"drifted": 3, "columns": 30})
    assert nbmlops.get_model_version("m/1").doc["monitoring"][-1]["drifted"] == 3


def test_cards_escape_user_strings(tracked):
    model, _ = tracked
    v = nbmlops.register_model(model, "m", description="<script>alert(1)</script>")
    html = v._repr_html_()
    assert "version <b>1</b>" in html and "<script>" not in html


def test_two_processes_moving_one_alias_keep_every_move(tracked, store):
    model, _ = tracked
    nbmlops.register_model(model, "m")
    nbmlops.register_model(model, "m")
    script = textwrap.dedent("""
        import sys, nbmlops
        version = int(sys.argv[1])
        for _ in range(100):
            nbmlops.set_alias("m", "production", version)
    """)
    env = {**os.environ, "NBMLOPS_STORE": str(store.root)}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(v)], env=env) for v in (1, 2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    final = nbmlops.get_model_version("m@production").version
    assert final in (1, 2)
    moves = nbmlops.model_history("m").query("action == 'alias'")
    assert len(moves) == 200
    assert sorted(moves["to"].value_counts().to_dict().items()) == [(1, 100), (2, 100)]
    assert moves["to"].iloc[-1] == final
