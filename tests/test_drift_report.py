"""drift_report end to end: verdicts on data with known shifts, false positives, bad input,
escaping, size, wide data, and the report's faces (summary, JSON, HTML, frame)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _drift_data import frames, shifted_columns

import nbmlops
from nbmlops import InvalidInput, drift_report


def test_shifted_columns_are_flagged_and_only_they_with_evidently_defaults():
    ref, cur = frames(10_000, seed=1)
    report = drift_report(ref, cur)
    assert set(report.drifted_columns) == shifted_columns()
    assert report.drifted_columns[:5] != []  # ranked: drifted first
    assert {c.stattest for c in report.columns if c.kind == "numeric"} == {"wasserstein"}
    assert {c.stattest for c in report.columns if c.kind == "categorical"} == {"jensenshannon"}
    assert report.share_drifted == pytest.approx(6 / 25) and not report.dataset_drift
    assert report["n0"].score == pytest.approx(0.3, abs=0.04) and report["n0"].threshold == 0.1
    assert "Evidently" in report.options["defaults"]


@pytest.mark.parametrize("stattest", ["ks", "anderson", "cramer_von_mises", "wasserstein", "energy"])
def test_a_03_sd_mean_shift_on_10000_rows_is_flagged_by_each_numeric_test(stattest):
    ref, cur = frames(10_000, seed=2, numeric=6, categorical=0, shift_numeric=1)
    report = drift_report(ref, cur, stattest=stattest, quality=False)
    assert report.drifted_columns == ["n0"], report.as_frame()


def test_no_drift_is_not_flagged_with_defaults_at_10000_rows():
    for seed in range(3):
        ref, cur = frames(10_000, seed=10 + seed, shift_numeric=0, shift_categorical=0)
        report = drift_report(ref, cur)
        assert report.drifted_columns == [] and not report.dataset_drift
        assert max(c.score for c in report.columns) < 0.05  # far below the 0.1 threshold


def test_false_positive_rate_of_p_value_tests_is_the_level():
    """400 rows a side (K-S by default): on data that did not drift, about 5% of columns are flagged."""
    ref, cur = frames(400, seed=3, numeric=300, categorical=0, shift_numeric=0)
    report = drift_report(ref, cur, quality=False)
    assert {c.stattest for c in report.columns} == {"ks"}
    rate = len(report.drifted_columns) / 300
    assert rate <= 0.05 + 3 * (0.05 * 0.95 / 300) ** 0.5  # the level plus three standard errors
    corrected = drift_report(ref, cur, correction="bonferroni", quality=False)
    assert corrected.drifted_columns == []  # family-wise: any false flag has probability <= 0.05


def test_correction_adjusts_p_values_and_verdicts_but_not_distances():
    ref, cur = frames(500, seed=4, numeric=10, categorical=2, shift_numeric=1, shift=0.5)
    plain = drift_report(ref, cur)
    bh = drift_report(ref, cur, correction="bh")
    assert bh.options["correction"] == "bh" and "n0" in bh.drifted_columns
    for c in bh.columns:
        assert c.p_value_adjusted is not None and c.p_value_adjusted >= c.p_value and c.score == c.p_value_adjusted
    assert len(bh.drifted_columns) <= len(plain.drifted_columns)
    big_ref, big_cur = frames(5_000, seed=4, numeric=3, categorical=1)
    wd = drift_report(big_ref, big_cur, correction="bonferroni")
    assert all(c.p_value_adjusted is None for c in wd.columns)  # distances are not corrected


def test_stattest_threshold_per_report_and_per_column():
    ref, cur = frames(3_000, seed=5, numeric=3, categorical=2, shift_numeric=1)
    report = drift_report(ref, cur, stattest={"n1": "psi", "c0": "chisquare"}, threshold={"n2": 0.001})
    assert report["n1"].stattest == "psi" and report["c0"].stattest == "chisquare"
    assert report["n0"].stattest == "wasserstein" and report["n2"].threshold == 0.001 and report["n2"].drifted
    ks_all = drift_report(ref, cur, stattest="ks", threshold=0.01)
    assert report["c1"].stattest == "jensenshannon"
    assert ks_all["c1"].stattest == "jensenshannon" and "ks not used" in ks_all["c1"].note  # not for categories
    assert ks_all["n0"].threshold == 0.01
    by_kind = drift_report(ref, cur, num_stattest="anderson", cat_stattest="psi")
    assert by_kind["n1"].stattest == "anderson" and by_kind["c1"].stattest == "psi"


@pytest.mark.parametrize("kwargs, message", [
    ({"stattest": "nope"}, "unknown stattest 'nope'"),
    ({"stattest": {"c0": "ks"}}, "cannot test categorical column 'c0'"),
    ({"stattest": {"zz": "ks"}}, "names column 'zz'"),
    ({"threshold": -1}, "positive number"),
    ({"threshold": "x"}, "must be a number"),
    ({"stattest": "ks", "threshold": 1.5}, "must be below 1"),
    ({"correction": "holm"}, "unknown correction"),
    ({"drift_share": 0}, "drift_share"),
    ({"columns": ["zz"]}, "column 'zz' is in neither frame"),
    ({"column_mapping": {"bogus": 1}}, "column_mapping has no field 'bogus'"),
    ({"column_mapping": {"target": "nope"}}, "target column 'nope' is in neither frame"),
    ({"by_time": "n0"}, "does not hold times"),
    ({"window": "fortnight"}, "not understood"),
])
def test_bad_options_are_one_clear_message(kwargs, message):
    ref, cur = frames(200, seed=6, numeric=2, categorical=1)
    with pytest.raises(InvalidInput, match=message):
        drift_report(ref, cur, **kwargs)


def test_bad_frames_are_one_clear_message():
    ref = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    with pytest.raises(InvalidInput, match=r"no columns in common \(reference: a, b; current: c\)"):
        drift_report(ref, pd.DataFrame({"c": [1.0]}))
    with pytest.raises(InvalidInput, match="current has no rows"):
        drift_report(ref, ref.iloc[:0])
    with pytest.raises(InvalidInput, match="reference has no rows"):
        drift_report(ref.iloc[:0], ref)
    with pytest.raises(InvalidInput, match="reference must be a DataFrame, a CSV/Parquet path or model:NAME@ALIAS, not int"):
        drift_report(42, ref)
    with pytest.raises(InvalidInput, match="no file 'missing.csv'"):
        drift_report("missing.csv", ref)
    with pytest.raises(InvalidInput, match="column 'b' is not in current"):
        drift_report(ref, ref[["a"]], columns=["a", "b"])


def test_a_column_in_one_frame_only_is_a_note_and_a_quality_issue():
    ref, cur = frames(300, seed=7, numeric=2, categorical=1)
    ref["old"] = 1.0
    cur["new"] = "x"
    report = drift_report(ref, cur)
    assert "old" not in [c.name for c in report.columns] and len(report.columns) == 3
    assert any("only in reference" in n and "old" in n for n in report.notes)
    assert any("only in current" in n and "new" in n for n in report.notes)
    issues = {(i["column"], i["issue"]) for i in report.quality["issues"]}
    assert ("old", "missing column") in issues and ("new", "new column") in issues


def test_all_missing_columns_are_not_tested_and_say_why():
    ref, cur = frames(300, seed=8, numeric=2, categorical=1, shift_numeric=0, shift_categorical=0)
    cur["n1"] = np.nan
    cur["c0"] = None
    ref["gone"] = np.nan
    cur["gone"] = np.nan
    report = drift_report(ref, cur)
    for name in ("n1", "c0"):
        col = report[name]
        assert col.drifted is None and "every value is missing in current" in col.note
    assert report["gone"].drifted is None and report["gone"].note
    assert len(report.tested_columns) == 1 and report.share_drifted == 0.0
    assert set(report.summary["not_tested"]) == {"n1", "c0", "gone"}
    assert ("n1", "all missing") in {(i["column"], i["issue"]) for i in report.quality["issues"]}
    html = report._repr_html_()
    assert "not tested" in html and "every value is missing in current" in html


def test_types_inferred_and_mapped():
    rng = np.random.default_rng(9)
    n = 2_000
    df = pd.DataFrame({"f": rng.normal(size=n), "i_few": rng.integers(0, 4, n), "i_many": rng.integers(0, 500, n),
                       "flag": rng.random(n) < 0.3, "cat": pd.Categorical(rng.choice(["u", "v"], n)),
                       "s": rng.choice(["p", "q", "r"], n), "text": [f"free text {i}" for i in range(n)],
                       "when": pd.date_range("2024-01-01", periods=n, freq="min"), "uid": np.arange(n)})
    report = drift_report(df, df, column_mapping={"id": "uid", "categorical_features": ["i_many"]})
    kinds = {c.name: c.kind for c in report.columns if c.tested}
    assert kinds == {"f": "numeric", "i_few": "categorical", "i_many": "categorical", "flag": "categorical",
                     "cat": "categorical", "s": "categorical"}
    assert set(report.skipped) == {"text", "when"} and "uid" not in report.skipped
    assert report.drifted_columns == []


def test_target_and_prediction_drift_have_their_own_sections():
    ref, cur = frames(3_000, seed=11, numeric=3, categorical=1, shift_numeric=1, shift=1.0)
    ref["target"] = (ref.n0 > 0).astype(int)
    cur["target"] = (cur.n0 > 0).astype(int)
    ref["prediction"] = ref.n0
    cur["prediction"] = cur.n0
    report = drift_report(ref, cur, performance=False)
    assert report.target.role == "target" and report.target.kind == "categorical" and report.target.drifted
    assert [p.name for p in report.prediction] == ["prediction"] and report.prediction[0].drifted
    assert {"target", "prediction"}.isdisjoint(c.name for c in report.columns)
    assert report.summary["target_drift"]["drifted"] is True
    no_labels = drift_report(ref, cur.drop(columns="target"))
    assert no_labels.target is None and any("target 'target' is not in current" in n for n in no_labels.notes)


EVIL = "<script>alert(1)</script>"
EVIL_CAT = '<img src=x onerror="alert(2)">'


def test_user_strings_are_escaped_inline_and_in_the_saved_file(tmp_path):
    ref = pd.DataFrame({EVIL: np.arange(50.0), "c": [EVIL_CAT, "ok"] * 25})
    cur = pd.DataFrame({EVIL: np.arange(50.0) + 30, "c": [EVIL_CAT] * 50})
    report = drift_report(ref, cur, column_mapping={"target": EVIL}) if False else drift_report(ref, cur)
    inline = report._repr_html_()
    report.save(tmp_path / "r.html")
    saved = (tmp_path / "r.html").read_text()
    for html in (inline, saved):
        assert EVIL not in html and EVIL_CAT not in html and "onerror=\"" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in inline  # nothing runs inline; the saved page's own sorter is ours
    assert saved.count("<script>") == 1


def test_report_carries_aggregates_only_and_its_size_does_not_grow_with_rows(tmp_path):
    small = drift_report(*frames(20_000, seed=12))
    big = drift_report(*frames(200_000, seed=12))
    sizes = []
    for i, report in enumerate((small, big)):
        report.save(tmp_path / f"{i}.html")
        sizes.append((tmp_path / f"{i}.html").stat().st_size + len(report.to_json()))
    assert sizes[1] < 2_000_000 and sizes[1] < 1.3 * sizes[0]
    data = big.to_dict()
    assert max(len(c["distribution"].get("edges", c["distribution"].get("categories", [])))
               for c in data["columns"]) <= 41


def test_summary_json_frame_and_save(tmp_path):
    ref, cur = frames(2_000, seed=13, numeric=4, categorical=2)
    report = drift_report(ref, cur)
    summary = report.summary
    assert summary["n_columns"] == 6 and summary["drifted_columns"] == report.drifted_columns
    assert len(json.dumps(summary)) < 2_000
    data = json.loads(report.to_json())
    assert data["columns"][0]["column"] == "n0" and data["rows"] == {"reference": 2000, "current": 2000}
    frame = report.as_frame()
    assert list(frame.column[:3]) == report.drifted_columns[:3] and "score" in frame
    path = report.save(tmp_path / "out" / "drift.json")
    assert json.loads(path.read_text())["share_drifted"] == report.share_drifted
    with pytest.raises(InvalidInput, match=".html or .json"):
        report.save(tmp_path / "drift.pdf")
    assert "columns drifted" in repr(report)


def test_files_are_sources(tmp_path):
    ref, cur = frames(500, seed=14, numeric=2, categorical=1)
    ref.to_csv(tmp_path / "ref.csv", index=False)
    cur.to_parquet(tmp_path / "cur.parquet")
    report = drift_report(str(tmp_path / "ref.csv"), tmp_path / "cur.parquet")
    assert len(report.tested_columns) == 3 and report.sources["current"].endswith("cur.parquet")


def test_wide_data_shows_progress_drifted_first_and_the_rest_collapsed():
    ref, cur = frames(300, seed=15, numeric=1000, categorical=0, shift_numeric=10, shift=1.5)
    calls = []
    report = drift_report(ref, cur, progress=lambda done, total: calls.append((done, total)), quality=False)
    assert calls[-1] == (1000, 1000) and len(calls) == 1000
    assert set(report.drifted_columns) >= {f"n{i}" for i in range(10)}
    html = report._repr_html_()
    from nbmlops.display.drift import MAX_PLOTS

    assert html.count("<svg") == MAX_PLOTS and "pictures of 940 more columns left out" in html
    assert html.index("<b>n0</b>") < html.index("columns without drift</summary>")
    assert "<details style" in html  # collapsed, not open
    assert len(html) < 2_000_000


def test_text_progress_bar_on_stderr_for_many_columns(capsys):
    ref, cur = frames(50, seed=16, numeric=120, categorical=0)
    drift_report(ref, cur, quality=False)
    err = capsys.readouterr().err
    assert "120/120 columns" in err and "drift: [" in err


def test_import_nbmlops_stays_light():
    import subprocess
    import sys

    code = "import nbmlops, sys; nbmlops.drift_report; print('scipy' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
    assert "drift_report" in nbmlops.__all__
