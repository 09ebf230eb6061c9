"""First contact (issue 15, points 4 and 5): autolog logs the user's own fits only, ``run.info`` /
``run.data`` in MLflow's shape, a stale online table warns, ``log_dataset`` outside a run says
what works, and data is refused as a model before anything is written."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError

import nbmlops
from nbmlops.errors import InvalidInput
from nbmlops.features.online import StaleOnlineTable
from nbmlops.tracking import autolog

# the seed tutorial's §1.2 cell, as a user types it
SEED_CELL = """
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

X, y = load_wine(return_X_y=True, as_frame=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42)
model = RandomForestClassifier(n_estimators=100, random_state=42)
model.fit(X_train, y_train)
pred = model.predict(X_test)
accuracy = accuracy_score(y_test, pred)
f1 = f1_score(y_test, pred, average="weighted")
"""


def last_run():
    return nbmlops.get_run(nbmlops.search_runs(max_results=1)["run_id"][0])


def blob_files(store):
    root = store.root / "blobs"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# -- 4. autolog: the user's fits only ---------------------------------------------------------
def test_seed_cell_logs_one_model_and_its_params_are_searchable_by_plain_name(ip):
    ip.run_cell_magic("track", "-e wine -m accuracy f1", SEED_CELL)
    run = last_run()
    assert [m["name"] for m in run.info["models"]] == ["RandomForestClassifier"]  # no LabelEncoder
    assert run.params["n_estimators"] == 100 and not any("." in k for k in run.params)
    assert run.tags["estimator"] == "sklearn.ensemble._forest.RandomForestClassifier"
    found = nbmlops.search_runs("wine", "params.n_estimators = '100'")
    assert list(found["run_id"]) == [run.id]
    assert 0.8 < run.metrics["f1"] <= 1.0


def test_cross_val_score_and_metrics_in_the_cell_fit_nothing_that_is_logged(ip):
    ip.run_cell_magic("track", "-e cv", """
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, precision_score
from sklearn.model_selection import cross_val_score, cross_validate
X, y = load_iris(return_X_y=True)
rf = RandomForestClassifier(n_estimators=20, random_state=0)
scores = cross_val_score(rf, X, y, cv=3)
other = cross_validate(LogisticRegression(max_iter=300), X, y, cv=3, return_estimator=True)
rf.fit(X, y)
p = precision_score(y, rf.predict(X), average="macro") + f1_score(y, rf.predict(X), average="weighted")
""")
    run = last_run()
    assert [m["name"] for m in run.info["models"]] == ["RandomForestClassifier"]
    assert run.params["n_estimators"] == 20 and "max_iter" not in run.params
    assert [d["name"] for d in run.info["datasets"]] == ["RandomForestClassifier.X", "RandomForestClassifier.y"]


def test_a_pipeline_is_one_model_with_plain_step_params(ip):
    ip.run_cell_magic("track", "-e pipe", """
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import f1_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
X, y = load_wine(return_X_y=True, as_frame=True)
pipe = Pipeline([("scale", StandardScaler()), ("rf", RandomForestClassifier(n_estimators=30, random_state=0))])
pipe.fit(X, y)
f1 = f1_score(y, pipe.predict(X), average="weighted")
""")
    run = last_run()
    assert [m["name"] for m in run.info["models"]] == ["Pipeline"]
    assert run.params["rf__n_estimators"] == 30 and run.params["scale"] == "StandardScaler"
    assert list(nbmlops.search_runs("pipe", "params.rf__n_estimators = '30'")["run_id"]) == [run.id]


def test_a_transformer_the_user_defines_and_fits_is_the_users_fit(ip):
    # defined after autolog patched scikit-learn: sklearn's set_output wrapper sits above ours
    ip.run_cell_magic("track", "-e own", """
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
class Doubler(TransformerMixin, BaseEstimator):
    def __init__(self, factor=2):
        self.factor = factor
    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self
    def transform(self, X):
        return np.asarray(X) * self.factor
out = Doubler(factor=3).fit_transform(np.ones((4, 2)))
""")
    run = last_run()
    # (its model is not pickled here: under pytest, __main__ is not the shell's namespace)
    assert run.params == {"factor": 3} and run.tags["estimator"] == "__main__.Doubler"
    assert [d["name"] for d in run.info["datasets"]] == ["Doubler.X"]


GRID = """
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import GridSearchCV
X, y = load_iris(return_X_y=True, as_frame=True)
grid = GridSearchCV(RandomForestClassifier(random_state=0),
                    {"n_estimators": [5, 10, 20], "max_depth": [1, 2, 3]}, cv=3)
grid.fit(X, y)
"""


def test_grid_search_logs_the_best_estimator_its_score_the_table_and_child_runs(ip):
    ip.run_cell_magic("track", "-e grid", GRID)
    grid = ip.user_ns["grid"]
    parent = nbmlops.get_run(ip.user_ns["run"].id)
    assert [m["name"] for m in parent.info["models"]] == ["RandomForestClassifier"]  # the best estimator
    best = grid.best_params_
    assert parent.params["n_estimators"] == best["n_estimators"] and parent.params["max_depth"] == best["max_depth"]
    assert parent.params["search.candidates"] == 9 and parent.params["search.class"] == "GridSearchCV"
    assert parent.metrics["best_cv_score"] == pytest.approx(grid.best_score_)
    assert parent.tags["search"].endswith("GridSearchCV")
    table = pd.read_csv(parent.artifact("cv_results.csv"))
    assert len(table) == 9 and "mean_test_score" in table.columns
    loaded = parent.load_model("RandomForestClassifier")
    assert loaded.get_params() == grid.best_estimator_.get_params()

    runs = nbmlops.search_runs("grid")
    children = runs[runs["run_id"] != parent.id]
    assert len(children) == autolog.MAX_TUNING_RUNS == 5  # MLflow's max_tuning_runs default
    docs = [nbmlops.get_run(r).info for r in children["run_id"]]
    assert {d["parent_run"] for d in docs} == {parent.id}
    by_order = sorted(docs, key=lambda d: int(d["tags"]["search.rank_order"]))
    scores = [d["metrics"]["mean_test_score"]["value"] for d in by_order]
    assert scores == pytest.approx(sorted(table["mean_test_score"], reverse=True)[:5])
    top = by_order[0]
    assert top["params"]["n_estimators"] == best["n_estimators"] and top["params"]["random_state"] == 0
    assert not any(k.startswith(("split", "param")) for k in top["metrics"])
    # the best run is found by its plain param name, and registers from the run in one step
    hit = nbmlops.search_runs("grid", f"params.max_depth = '{best['max_depth']}' and metrics.best_cv_score > 0")
    assert list(hit["run_id"]) == [parent.id]
    assert nbmlops.register_model(parent.id, "iris-grid").version == 1


def test_max_tuning_runs_bounds_the_child_runs(ip, monkeypatch):
    monkeypatch.setattr(autolog, "MAX_TUNING_RUNS", 2)
    ip.run_cell_magic("track", "-e grid2", GRID)
    assert len(nbmlops.search_runs("grid2")) == 3
    monkeypatch.setattr(autolog, "MAX_TUNING_RUNS", 0)
    ip.run_cell_magic("track", "-e grid0", GRID)
    assert len(nbmlops.search_runs("grid0")) == 1


# -- 5. MLflow's shape of a run -------------------------------------------------------------------
def test_run_info_and_data_in_mlflows_shape_for_the_active_and_a_fetched_run(store):
    with nbmlops.start_run(experiment="shape", name="first", tags={"team": "ds"}) as run:
        nbmlops.log_params({"C": 0.5, "kind": "rf", "none": None})
        nbmlops.log_metric("loss", 0.9)
        nbmlops.log_metric("loss", 0.4)
        info = run.info
        assert info.run_id == run.id and info.status == "RUNNING" and info.end_time is None
        assert run.data.metrics == {"loss": 0.4}
    got = nbmlops.get_run(run.info.run_id)
    for r in (run, got):
        assert r.info.run_id == run.id and r.info.run_uuid == run.id and r.info.run_name == "first"
        assert r.info.status == "FINISHED" and r.info.experiment_id == run.experiment_id
        assert r.info.start_time <= r.info.end_time and r.info.lifecycle_stage == "active"
        assert r.data.params == {"C": "0.5", "kind": "rf", "none": "None"}  # strings, as MLflow's
        assert r.data.metrics == {"loss": 0.4} and r.data.tags == {"team": "ds"}
        assert r.info["params"]["C"] == 0.5 and r.params["C"] == 0.5  # nbmlops' own shape is kept
    with pytest.raises(AttributeError):
        got.info.run_id = "x"
    with pytest.raises(AttributeError):
        got.data.params = {}


def test_track_cell_run_variable_answers_run_info_run_id(ip):
    ip.run_cell_magic("track", "-e shape", "x = 1")
    run = ip.user_ns["run"]
    assert run.info.run_id == run.id and run.info.status == "FINISHED"


# -- 5. online lookups of a stale view warn once --------------------------------------------------
@pytest.fixture
def parquet_view(store, tmp_path):
    src = tmp_path / "activity.parquet"
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    pd.DataFrame({"user_id": [1, 2], "event_timestamp": [t0, t0], "orders": [3, 4]}).to_parquet(src)
    user = nbmlops.Entity("user", ["user_id"], "int64")
    nbmlops.apply_features([user, nbmlops.FeatureView("stats", [user], str(src), online=True)])
    return src


def lookup():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        values = nbmlops.get_online_features(["stats:orders"], [{"user_id": 1}]).to_dict()["orders"]
    return values, [str(w.message) for w in seen if issubclass(w.category, StaleOnlineTable)]


def test_online_lookup_of_a_view_never_materialized_warns_once_naming_materialize(parquet_view):
    values, said = lookup()
    assert values == [None] and len(said) == 1
    assert "'stats'" in said[0] and "never materialized" in said[0] and "%features materialize" in said[0]
    assert lookup() == ([None], [])  # once per view and process
    nbmlops.materialize_incremental()
    assert lookup() == ([3], [])


def test_online_lookup_after_the_source_file_changed_warns_once(parquet_view, monkeypatch):
    nbmlops.materialize_incremental()
    assert lookup() == ([3], [])
    monkeypatch.setattr("nbmlops.features.online._checked", {})  # the check runs at most once a second
    t1 = pd.Timestamp("2026-01-02", tz="UTC")
    pd.DataFrame({"user_id": [1, 2], "event_timestamp": [t1, t1], "orders": [30, 40]}).to_parquet(parquet_view)
    later = os.stat(parquet_view).st_mtime_ns + 10**9
    os.utime(parquet_view, ns=(later, later))  # newer than the materialization, whatever the clock's grain
    values, said = lookup()
    assert values == [3] and len(said) == 1
    assert "changed after its last materialization" in said[0] and "%features materialize" in said[0]
    monkeypatch.setattr("nbmlops.features.online._checked", {})
    assert lookup() == ([3], [])


# -- 5. log_dataset outside a run -----------------------------------------------------------------
def test_log_dataset_outside_a_run_says_snapshot_works_without_one(store):
    df = pd.DataFrame({"a": [1, 2]})
    with pytest.raises(InvalidInput, match=r"no active run.*snapshot=True\) works without one"):
        nbmlops.log_dataset(df, "x")
    assert not store.root.exists()
    assert nbmlops.log_dataset(df, "x", snapshot=True).version == 1


# -- 5. data is not a model -----------------------------------------------------------------------
NOT_MODELS = {
    "frame": pd.DataFrame({"a": [1.0, 2.0]}), "series": pd.Series([1.0, 2.0]), "array": np.zeros((2, 2)),
    "mapping": {"weights": [1, 2]}, "items": [1, 2, 3], "text": "hello world",
}


@pytest.mark.parametrize("variable", sorted(NOT_MODELS))
def test_register_magic_refuses_data_in_one_line_and_writes_nothing(ip, store, capsys, variable):
    ip.run_cell_magic("track", "-e reg", "x = 1")  # a store with something in it
    before = blob_files(store)
    ip.user_ns.update(NOT_MODELS)
    capsys.readouterr()
    result = ip.run_cell(f"%register {variable} churn")
    out = capsys.readouterr()
    text = out.out + out.err
    assert isinstance(result.error_in_exec, UsageError) and "Traceback" not in text
    assert len([line for line in text.strip().splitlines() if line.strip()]) == 1
    expected = "neither a fitted model nor a run id" if variable == "text" else "is data, not a model"
    assert expected in text
    assert blob_files(store) == before and nbmlops.list_models().empty


def test_register_model_refuses_data_and_classes_before_touching_the_store(store):
    from sklearn.ensemble import RandomForestClassifier

    for obj in (*NOT_MODELS.values(), RandomForestClassifier):
        if isinstance(obj, str):
            continue
        with pytest.raises(InvalidInput, match="is data, not a model|is a class"):
            nbmlops.register_model(obj, "churn")
    assert not store.root.exists()


def test_log_model_refuses_data_and_unfitted_estimators_but_keeps_a_dict(store):
    from sklearn.linear_model import LogisticRegression

    with nbmlops.start_run(experiment="lm") as run:
        before = blob_files(store)
        for obj, message in ((NOT_MODELS["frame"], "is data"), (np.zeros(3), "is data"),
                             (LogisticRegression(), "not fitted"), (LogisticRegression, "is a class")):
            with pytest.raises(InvalidInput, match=message):
                nbmlops.log_model(obj, "m")
        assert blob_files(store) == before and run.info["models"] == []
        nbmlops.log_model({"weights": [1, 2]}, "weights")  # a plain dict of weights is still a payload
    assert nbmlops.get_run(run.id).load_model("weights") == {"weights": [1, 2]}


def test_online_lookup_after_a_window_that_ends_before_the_latest_rows_warns_once(parquet_view):
    t1 = pd.Timestamp("2026-01-05", tz="UTC")
    pd.DataFrame({"user_id": [1, 1], "event_timestamp": [pd.Timestamp("2026-01-01", tz="UTC"), t1],
                  "orders": [3, 7]}).to_parquet(parquet_view)
    nbmlops.materialize("2025-12-01", "2026-01-02")
    values, said = lookup()
    assert values == [3] and len(said) == 1 and "after its last materialization" in said[0]
    nbmlops.materialize("2026-01-02", "2026-02-01")
    from nbmlops.features import online

    online._warned.clear()
    online._checked.clear()
    assert lookup() == ([7], [])


def test_randomized_search_with_scorer_functions_logs_names_that_repeat_across_processes(ip):
    ip.run_cell_magic("track", "-e rand", """
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, make_scorer
from sklearn.model_selection import KFold, RandomizedSearchCV
X, y = load_iris(return_X_y=True)
def weighted_f1(est, X, y):
    return f1_score(y, est.predict(X), average="weighted")
search = RandomizedSearchCV(LogisticRegression(max_iter=300), {"C": [0.01, 0.1, 1, 10]}, n_iter=3,
                            scoring=weighted_f1, cv=KFold(3, shuffle=True, random_state=0), random_state=0)
search.fit(X, y)
""")
    run = nbmlops.get_run(ip.user_ns["run"].id)
    assert [m["name"] for m in run.info["models"]] == ["LogisticRegression"]
    assert run.params["search.scoring"] == "weighted_f1" and run.params["search.class"] == "RandomizedSearchCV"
    assert run.params["search.cv"].startswith("KFold(") and run.params["C"] == ip.user_ns["search"].best_params_["C"]
    assert len(nbmlops.search_runs("rand")) == 1 + 3


def test_a_dict_a_run_logged_is_not_registered_from_the_run(store):
    with nbmlops.start_run(experiment="lm") as run:
        nbmlops.log_model({"weights": [1, 2]}, "weights")
    with pytest.raises(InvalidInput, match="a dict is data, not a model"):
        nbmlops.register_model(f"{run.id}:weights", "churn")
    assert nbmlops.list_models().empty
