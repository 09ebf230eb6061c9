"""%drift through a real IPython shell, the drift widget, and the summaries in the store."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _drift_data import frames, shifted_columns
from IPython.core.error import UsageError

import nbmlops


@pytest.fixture
def data(ip):
    ref, cur = frames(3_000, seed=21, numeric=6, categorical=2)
    ip.user_ns.update(ref=ref, cur=cur)
    return ref, cur


def test_drift_magic_shows_keeps_saves_and_logs(ip, data, store, tmp_path, capsys):
    ip.run_line_magic("drift", f"ref cur -o rep --save {tmp_path}/reports/drift.html")
    report = ip.user_ns["rep"]
    assert set(report.drifted_columns) == shifted_columns() & {c for c in data[0].columns}
    assert report.sources == {"reference": "ref", "current": "cur"}
    saved = (tmp_path / "reports" / "drift.html").read_text()
    assert "columns drifted" in saved and "<!DOCTYPE html>" in saved
    assert f"saved {tmp_path}/reports/drift.html" in capsys.readouterr().out
    history = nbmlops.drift_history()
    assert len(history) == 1 and history.n_drifted[0] == len(report.drifted_columns)
    (doc,) = [d for f in (store.root / "db" / "drift").glob("*.json") for d in json.loads(f.read_text())["docs"].values()]
    assert doc["summary"]["drifted_columns"] == report.drifted_columns and doc["run_id"] is None
    full = json.loads(store.blobs.read_bytes(doc["report"]["sha256"]))
    assert [c["column"] for c in full["columns"]] == [c.name for c in report.columns]


def test_drift_magic_options_reach_the_report(ip, data):
    ip.run_line_magic("drift", "ref cur --columns n0,n1,c0 --stattest n0=ks,n1=psi --threshold 0.2 "
                               "--correction bh --drift-share 0.3 -o rep --no-log")
    report = ip.user_ns["rep"]
    assert [c.name for c in report.columns] == ["n0", "n1", "c0"]
    assert report["n0"].stattest == "ks" and report["n1"].stattest == "psi" and report["c0"].threshold == 0.2
    assert report.options["correction"] == "bh" and report.drift_share == 0.3
    assert nbmlops.drift_history().empty


def test_drift_magic_files_and_time_windows(ip, tmp_path):
    rng = np.random.default_rng(22)
    ref = pd.DataFrame({"x": rng.normal(size=2_000), "c": rng.choice(["a", "b"], 2_000)})
    cur = pd.DataFrame({"x": rng.normal(0.5, 1, 2_000), "c": rng.choice(["a", "b"], 2_000),
                        "when": pd.Timestamp("2024-05-01") + pd.to_timedelta(np.arange(2_000) * 300, "s")})
    ref.to_parquet(tmp_path / "ref.parquet")
    cur.to_csv(tmp_path / "cur.csv", index=False)
    ip.run_line_magic("drift", f"{tmp_path}/ref.parquet {tmp_path}/cur.csv --by-time when --window 1d -o rep")
    report = ip.user_ns["rep"]
    assert report.drifted_columns == ["x"] and len(report.windows["windows"]) == 7


@pytest.mark.parametrize("line, message", [
    ("ref", "the following arguments are required"),
    ("ref nothere", "CURRENT 'nothere': no such variable in the notebook, and no such file"),
    ("ref cur[0]", "not a notebook variable, an existing file, or model:NAME@ALIAS"),
    ("ref cur --stattest nope", "unknown stattest 'nope'"),
    ("ref cur --stattest c0=ks", "cannot test categorical column 'c0'"),
    ("ref cur --threshold high", "--threshold takes a value or COLUMN=VALUE pairs"),
    ("ref cur --columns zz", "column 'zz' is in neither frame"),
    ("ref cur --correction holm", "unknown correction"),
    ("ref cur --window 1d", "--window with a time span needs --by-time"),
    ("ref cur --by-time n0", "does not hold times"),
    ("ref cur -o 2x", "-o takes a variable name"),
    ("ref other", "no columns in common"),
    ("ref empty", "current has no rows"),
    ("model:nosuchmodel@production cur", "nosuchmodel"),
])
def test_drift_magic_bad_input_is_one_line_and_writes_nothing(ip, data, store, line, message):
    ip.user_ns.update(other=pd.DataFrame({"zz": [1.0]}), empty=data[1].iloc[:0])
    with pytest.raises(UsageError, match=message):
        ip.run_line_magic("drift", line)
    assert nbmlops.drift_history().empty


def test_drift_magic_notes_per_column_problems_and_still_reports(ip, data):
    ref, cur = data
    ip.user_ns["cur2"] = cur.assign(n1=np.nan).drop(columns=["n2"])
    ip.run_line_magic("drift", "ref cur2 -o rep --no-log")
    report = ip.user_ns["rep"]
    assert "every value is missing in current" in report["n1"].note
    assert any("only in reference" in n and "n2" in n for n in report.notes)


def test_model_reference_from_the_registry_and_summary_against_the_version(ip, store):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(23)
    X = pd.DataFrame({"tenure": rng.normal(24, 6, 2_000), "spend": rng.normal(50, 10, 2_000),
                      "plan": rng.choice([0, 1, 2], 2_000)})
    y = (X.tenure + rng.normal(0, 5, 2_000) < 22).astype(int)
    model = LogisticRegression(max_iter=500).fit(X, y)
    nbmlops.register_model(model, "churn", alias="production", reference=(X, y))
    month = X.assign(tenure=X.tenure - 6)
    month["prediction"] = model.predict(month)
    ip.user_ns["month"] = month
    ip.run_line_magic("drift", "model:churn@production month -o rep")
    report = ip.user_ns["rep"]
    assert "tenure" in report.drifted_columns and report.sources["model"] == "churn@production"
    assert report.prediction and report.prediction[0].name == "prediction"
    assert report.target is None and any("target" in n for n in report.notes)
    version = nbmlops.get_model_version("churn@production")
    (entry,) = version.doc["monitoring"]
    assert entry["drifted_columns"] == report.drifted_columns and entry["drift_id"]
    history = nbmlops.drift_history("churn")
    assert list(history.model) == ["churn@production"] and list(history.version) == [version.version]
    assert nbmlops.drift_history("other").empty


def test_report_log_inside_a_run_adds_artifacts(store):
    ref, cur = frames(500, seed=24, numeric=2, categorical=1)
    with nbmlops.start_run(experiment="monitor") as run:
        doc = nbmlops.drift_report(ref, cur).log()
    assert doc["run_id"] == run.id
    names = [a["name"] for a in nbmlops.get_run(run.id).info["artifacts"]]
    assert names == ["drift_summary.json", "drift_report.html"]


def test_wide_report_in_the_magic_shows_a_widget_progress_bar(ip, monkeypatch):
    import ipywidgets

    shown, updates = [], []

    class Handle:
        def update(self, obj, **kwargs):
            updates.append(obj)

    def fake_display(obj, **kw):
        shown.append(obj)
        return Handle() if kw.get("display_id") else None

    monkeypatch.setattr("nbmlops.magics.drift.display", fake_display)
    monkeypatch.setattr("nbmlops.magics._progress.display", fake_display)
    ref, cur = frames(200, seed=25, numeric=150, categorical=0)
    ip.user_ns.update(wref=ref, wcur=cur)
    ip.run_line_magic("drift", "wref wcur --no-log")
    bars = [o for o in shown if isinstance(o, ipywidgets.IntProgress)]
    assert len(bars) == 1 and bars[0].value == 150 and bars[0].max == 150
    assert updates == [{"text/plain": ""}]  # once done, the bar's output is emptied: no dead widget in a report


def test_drift_widget_rerenders_on_each_control(ip, data):
    ref, cur = data
    panel = nbmlops.drift_widget(ref, cur)
    first = panel.view.value
    assert "columns drifted" in first and len(panel.columns.options) == 8
    panel.stattest.value = "ks"
    assert panel.report["n0"].stattest == "ks" and panel.view.value != first
    panel.threshold.value = "0.000001"
    assert panel.report["n1"].threshold == 1e-6
    panel.columns.value = ("n0", "c0")
    assert [c.name for c in panel.report.columns] == ["n0", "c0"]
    panel.correction.value = "bonferroni"
    assert panel.report.options["correction"] == "bonferroni"
    panel.threshold.value = "abc"
    assert "threshold must be a number, not &#x27;abc&#x27;" in panel.status.value
    ip.run_line_magic("drift", "ref cur --widget")  # the magic's face to the same panel
