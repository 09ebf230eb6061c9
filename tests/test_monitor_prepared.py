"""A reference prepared once (``PreparedReference``) gives, window after window, the very report
``drift_report`` gives: every verdict, statistic, p-value, distribution and quality number, on numeric
and categorical columns, windows with categories never seen, all-null columns, kinds that change and
every option the live monitor passes; and the smaller-side default tests the live monitor uses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbmlops import InvalidInput
from nbmlops.monitoring.columns import ColumnMapping
from nbmlops.monitoring.drift import drift_report
from nbmlops.monitoring.prepared import PreparedReference


def _frame(n: int, rng: np.random.Generator, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame({
        "num": rng.normal(shift, 1, n),
        "skewed": rng.exponential(1 + shift, n),
        "few": rng.integers(0, 4, n).astype(float),              # numeric with 4 values: chi-square / JS
        "count": rng.integers(0, 50 + int(10 * shift), n),      # integers above 10 values: numeric
        "plan": rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3 - 0.1 * shift, 0.2 + 0.1 * shift]),
        "flag": rng.random(n) < 0.3 + 0.2 * shift,
        "region": pd.Categorical(rng.choice(["n", "s", "e", "w"], n)),
        "gappy": np.where(rng.random(n) < 0.2, np.nan, rng.normal(0, 1, n)),
        "prediction": rng.integers(0, 2, n),
    })


def _windows(rng: np.random.Generator) -> list[pd.DataFrame]:
    same, drifted = _frame(300, rng), _frame(400, rng, shift=1.0)
    unseen = _frame(200, rng)
    unseen.loc[::7, "plan"] = "enterprise"                       # a category the reference never had
    unseen["region"] = pd.Categorical(rng.choice(["n", "s", "mars"], 200))
    empty = _frame(150, rng)
    empty["gappy"] = np.nan                                      # an all-null column
    empty["plan"] = None                                         # an all-null categorical column
    kinds = _frame(120, rng)
    kinds["few"] = rng.choice(["a", "b"], 120)                  # numeric in reference, text here
    big = _frame(3000, rng, shift=0.3)                           # above 1,000 rows: the distances
    return [same, drifted, unseen, empty, kinds, big, _frame(31, rng), same]


def _numbers(report) -> dict:
    d = report.to_dict()
    d.pop("elapsed"), d.pop("created")
    return d


@pytest.mark.parametrize("options", [
    {},
    {"correction": "bh", "default_by": "smaller"},
    {"stattest": "psi", "correction": "bonferroni"},
    {"num_stattest": "ks", "cat_stattest": "jensenshannon", "threshold": 0.2, "drift_share": 0.3},
    {"stattest": {"num": "anderson", "plan": "chisquare"}, "default_by": "smaller", "quality": False},
], ids=["defaults", "bh-smaller", "psi", "per-kind", "per-column"])
def test_prepared_reference_gives_drift_reports_numbers_on_every_window(options):
    rng = np.random.default_rng(7)
    reference = _frame(5000, rng)
    mapping = ColumnMapping(target=None)
    prepared = PreparedReference(reference, mapping, **options)
    verdicts = []
    for window in _windows(rng):
        expected = drift_report(reference, window, mapping, performance=False, progress=False, **options)
        got = prepared.compare(window)
        assert _numbers(got) == _numbers(expected)
        verdicts.append(got.dataset_drift)
    assert True in verdicts and False in verdicts      # windows that drift and windows that do not
    assert prepared.frame is reference                   # the reference itself, not a copy


def test_windows_that_differ_from_the_reference_in_the_ways_the_monitor_meets():
    rng = np.random.default_rng(3)
    reference = _frame(5000, rng)
    prepared = PreparedReference(reference, ColumnMapping(target=None), default_by="smaller")
    unseen, empty, kinds = _windows(rng)[2:5]
    report = prepared.compare(unseen)
    assert report.quality["columns"]["plan"]["new_categories"]["examples"][0][0] == "enterprise"
    assert report["plan"].statistic == float("inf") and report["plan"].drifted  # chi-square: p = 0
    report = prepared.compare(empty)
    assert report.not_tested["gappy"] == "not tested: every value is missing in current"
    assert "all missing" in {i["issue"] for i in report.quality["issues"] if i["column"] == "plan"}
    report = prepared.compare(kinds)
    assert any("compared as text categories" in n for n in report.notes)
    assert prepared.compare(unseen).to_dict()["columns"] == drift_report(
        reference, unseen, ColumnMapping(target=None), performance=False, default_by="smaller").to_dict()["columns"]


def test_smaller_side_defaults_pick_p_values_for_small_windows_and_distances_for_large_ones():
    rng = np.random.default_rng(1)
    reference = _frame(5000, rng)
    small, large = _frame(300, rng), _frame(2000, rng)
    by_reference = drift_report(reference, small, ColumnMapping(target=None), performance=False)
    by_smaller = drift_report(reference, small, ColumnMapping(target=None), performance=False, default_by="smaller")
    assert {by_reference[c].stattest for c in ("num", "plan")} == {"wasserstein", "jensenshannon"}
    assert (by_smaller["num"].stattest, by_smaller["plan"].stattest, by_smaller["flag"].stattest) == \
        ("ks", "chisquare", "z")
    assert by_smaller["num"].reason == "default (numeric, 300 values on the smaller side)"
    assert "smaller side" in by_smaller.options["defaults"]
    large_report = drift_report(reference, large, ColumnMapping(target=None), performance=False,
                                default_by="smaller")
    assert large_report["num"].stattest == "wasserstein"


def test_normed_wasserstein_flags_small_same_distribution_windows_and_the_window_default_does_not():
    """Why the live monitor sizes its default tests by the window: 200-row windows drawn from the
    reference's own distribution, 20 numeric columns, 20 windows."""
    rng = np.random.default_rng(11)
    cols = [f"x{i}" for i in range(20)]
    reference = pd.DataFrame(rng.normal(size=(5000, 20)), columns=cols)
    by_reference = PreparedReference(reference, ColumnMapping(target=None))
    by_window = PreparedReference(reference, ColumnMapping(target=None), default_by="smaller", correction="bh")
    flagged = {"reference": 0, "window": 0}
    for _ in range(20):
        window = pd.DataFrame(rng.normal(size=(200, 20)), columns=cols)
        flagged["reference"] += len(by_reference.compare(window).drifted_columns)
        flagged["window"] += len(by_window.compare(window).drifted_columns)
    assert flagged["reference"] > 40      # about a third of 400 column-windows (0.1 is crossed by chance)
    assert flagged["window"] <= 4         # K-S with Benjamini-Hochberg over 20 columns: a false flag is rare


@pytest.mark.parametrize("options, message", [
    ({"stattest": "nope"}, "unknown stattest 'nope'"),
    ({"num_stattest": "t-test"}, "unknown stattest 't-test'"),
    ({"correction": "holm"}, "unknown correction 'holm'"),
    ({"default_by": "current"}, "default_by must be one of reference, smaller"),
    ({"drift_share": 0}, "drift_share must be in (0, 1]"),
])
def test_bad_options_are_refused_before_any_comparison(options, message):
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        PreparedReference(pd.DataFrame({"a": [1.0, 2.0]}), **options)
