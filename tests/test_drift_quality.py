"""Data quality, model performance (against sklearn.metrics) and drift over time windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics

from nbmlops import drift_report
from nbmlops.monitoring.performance import classification, regression


def issues_of(report):
    return {(i["column"], i["issue"]) for i in report.quality["issues"]}


def test_data_quality_issues():
    rng = np.random.default_rng(0)
    n = 2_000
    ref = pd.DataFrame({"x": rng.normal(size=n), "k": rng.integers(0, 100, n), "plan": rng.choice(["a", "b"], n),
                        "const": 1.0, "y": rng.normal(size=n)})
    cur = ref.copy()
    cur.loc[:299, "x"] = np.nan                               # 15% missing
    cur.loc[:99, "y"] = 50.0                                  # 5% outside the reference range
    cur.loc[:199, "plan"] = "enterprise"                      # a category never seen
    cur["k"] = cur["k"].astype(float)                         # int64 -> float64
    cur = pd.concat([cur, cur.iloc[:40]], ignore_index=True)  # 40 duplicated rows
    report = drift_report(ref, cur)
    got = issues_of(report)
    assert {("x", "more missing values"), ("y", "outside reference range"), ("plan", "new categories"),
            ("k", "dtype changed"), ("const", "constant"), ("(rows)", "duplicated rows")} <= got
    q = report.quality
    assert q["columns"]["x"]["missing_share"] == [0.0, pytest.approx(340 / 2040)]
    assert q["columns"]["plan"]["new_categories"]["examples"] == [["enterprise", 240]]
    assert q["columns"]["y"]["out_of_range"]["above"] == 140
    assert q["duplicated_rows"] == {"reference": int(ref.duplicated().sum()), "current": int(cur.duplicated().sum())}
    assert ("x", "more missing values") not in issues_of(drift_report(ref, ref))


def test_duplicates_match_pandas_with_missing_values_and_mixed_columns():
    rng = np.random.default_rng(1)
    n = 3_000
    df = pd.DataFrame({"a": rng.integers(0, 3, n).astype(float), "b": rng.choice(["x", "y", None], n),
                       "c": rng.integers(0, 2, n), "d": rng.choice([-0.0, 0.0, np.nan], n),
                       "t": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 2, n), "D"),
                       "text": rng.choice([f"note {i}" for i in range(3)], n)})
    report = drift_report(df, df.iloc[::-1].reset_index(drop=True))
    assert report.quality["duplicated_rows"]["reference"] == int(df.duplicated().sum())
    assert report.quality["duplicated_rows"]["current"] == int(df.duplicated().sum())


def test_classification_metrics_match_sklearn():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 500)
    proba = np.clip(y * 0.3 + rng.random(500) * 0.7, 0, 1)
    got = classification(pd.Series(y), pd.DataFrame({"p": proba}))
    pred = (proba >= 0.5).astype(int)
    assert got["accuracy"] == pytest.approx(metrics.accuracy_score(y, pred))
    assert got["precision"] == pytest.approx(metrics.precision_score(y, pred))
    assert got["recall"] == pytest.approx(metrics.recall_score(y, pred))
    assert got["f1"] == pytest.approx(metrics.f1_score(y, pred))
    assert got["roc_auc"] == pytest.approx(metrics.roc_auc_score(y, proba))
    assert got["confusion_matrix"]["matrix"] == metrics.confusion_matrix(y, pred).tolist()

    labels = rng.choice(["cat", "dog", "eel"], 600)
    guess = np.where(rng.random(600) < 0.7, labels, rng.choice(["cat", "dog", "eel"], 600))
    got = classification(pd.Series(labels), pd.DataFrame({"pred": guess}))
    assert got["accuracy"] == pytest.approx(metrics.accuracy_score(labels, guess))
    for name in ("precision", "recall", "f1"):
        want = getattr(metrics, f"{name}_score")(labels, guess, average="macro")
        assert got[name] == pytest.approx(want)
    assert got["confusion_matrix"]["matrix"] == metrics.confusion_matrix(labels, guess, labels=["cat", "dog", "eel"]).tolist()
    assert "roc_auc" not in got

    probs = rng.dirichlet([1, 1, 1], 600)
    got = classification(pd.Series(labels), pd.DataFrame(probs, columns=["cat", "dog", "eel"]))
    assert got["roc_auc"] == pytest.approx(metrics.roc_auc_score(labels, probs, multi_class="ovr"))
    assert got["accuracy"] == pytest.approx(metrics.accuracy_score(labels, np.array(["cat", "dog", "eel"])[probs.argmax(1)]))


def test_regression_metrics_match_sklearn():
    rng = np.random.default_rng(3)
    y = rng.normal(10, 3, 1_000)
    pred = y + rng.normal(0.5, 1, 1_000)
    got = regression(y, pred)
    assert got["mae"] == pytest.approx(metrics.mean_absolute_error(y, pred))
    assert got["rmse"] == pytest.approx(metrics.mean_squared_error(y, pred) ** 0.5)
    assert got["r2"] == pytest.approx(metrics.r2_score(y, pred))
    assert got["mape"] == pytest.approx(metrics.mean_absolute_percentage_error(y, pred))
    assert got["mean_error"] == pytest.approx(0.5, abs=0.1) and sum(got["error_histogram"]["counts"]) == 1_000


def test_performance_section_in_the_report_on_both_sides():
    rng = np.random.default_rng(4)
    n = 3_000
    ref = pd.DataFrame({"x": rng.normal(size=n)})
    ref["target"] = (ref.x + rng.normal(0, 0.5, n) > 0).astype(int)
    ref["prediction"] = 1 / (1 + np.exp(-3 * ref.x))
    cur = pd.DataFrame({"x": rng.normal(size=n)})
    cur["target"] = (cur.x + rng.normal(0, 1.5, n) > 0).astype(int)  # labels noisier: the model got worse
    cur["prediction"] = 1 / (1 + np.exp(-3 * cur.x))
    cur.loc[:9, "target"] = np.nan
    report = drift_report(ref, cur)
    perf = report.performance
    assert perf["task"] == "classification" and "roc_auc" in perf["reference"]
    assert perf["current"]["accuracy"] < perf["reference"]["accuracy"]
    assert perf["current"]["rows"] == n - 10 and any("10 rows without target" in x for x in perf["notes"])
    assert report.summary["performance"]["current"]["accuracy"] == perf["current"]["accuracy"]
    html = report._repr_html_()
    assert "Model performance" in html and "roc_auc" in html

    reg = pd.DataFrame({"x": rng.normal(size=n), "target": rng.normal(size=n)})
    reg["prediction"] = reg.target + rng.normal(0, 0.1, n)
    out = drift_report(reg, reg.assign(prediction=reg.prediction + 1))
    assert out.performance["task"] == "regression"
    assert out.performance["current"]["mean_error"] == pytest.approx(out.performance["reference"]["mean_error"] + 1)
    assert "error distribution" in out._repr_html_()


def stream(days: int = 10, per_day: int = 600, drift_from: int = 6, seed: int = 5):
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(days):
        shift = 1.0 if d >= drift_from else 0.0
        rows.append(pd.DataFrame({
            "ts": pd.Timestamp("2024-03-01") + pd.to_timedelta(rng.random(per_day) * 86_400, "s") + pd.Timedelta(d, "D"),
            "x": rng.normal(shift, 1, per_day), "z": rng.normal(0, 1, per_day),
            "c": rng.choice(["a", "b"], per_day, p=[0.5, 0.5] if not shift else [0.2, 0.8])}))
    return pd.concat(rows, ignore_index=True).sample(frac=1, random_state=0)


def test_drift_over_daily_windows_finds_when_it_started():
    rng = np.random.default_rng(6)
    ref = pd.DataFrame({"x": rng.normal(size=5_000), "z": rng.normal(size=5_000), "c": rng.choice(["a", "b"], 5_000)})
    report = drift_report(ref, stream(), by_time="ts", window="1d")
    w = report.windows
    assert len(w["windows"]) == 10 and [r["rows"] for r in w["windows"]] == [600] * 10
    assert w["windows"][0]["start"].startswith("2024-03-01")
    assert w["drifted"]["x"] == [False] * 6 + [True] * 4
    assert w["drifted"]["z"] == [False] * 10
    assert w["stattests"]["x"] == report["x"].stattest == "wasserstein"
    assert "ts" not in [c.name for c in report.columns]
    html = report._repr_html_()
    assert "Drift over time" in html and "windows of 1d" in html
    rows = drift_report(ref, stream(), window=1500)
    assert [r["rows"] for r in rows.windows["windows"]] == [1500] * 4


def test_weekly_and_hourly_windows_and_too_many():
    from nbmlops import InvalidInput

    ref = stream(days=2, drift_from=99)
    cur = stream(days=14, per_day=50, drift_from=99)
    weekly = drift_report(ref, cur, by_time="ts", window="1w")
    assert all(pd.Timestamp(r["start"]).dayofweek == 0 for r in weekly.windows["windows"])
    assert sum(r["rows"] for r in weekly.windows["windows"]) == len(cur)
    with pytest.raises(InvalidInput, match="at most 500"):
        drift_report(ref, cur, by_time="ts", window="1min")
