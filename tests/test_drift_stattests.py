"""The drift tests as a family: every member against scipy (or a hand computation) on small cases,
the default choice against Evidently's rule, and the multiple-testing corrections."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats as ss
from scipy.spatial import distance

from nbmlops.errors import InvalidInput
from nbmlops.monitoring.correction import adjust, check_correction
from nbmlops.monitoring.samples import CategoricalSample, NumericSample, Pair, wasserstein_sorted
from nbmlops.monitoring.selection import default_stattest
from nbmlops.monitoring.stattests import STATTESTS, get_stattest


def evidently_binned(a, b, kind, fill):
    """Evidently's get_binned_data, written out plainly (np.histogram, value_counts)."""
    a, b = pd.Series(a), pd.Series(b)
    if kind == "numeric" and a.nunique() > 20:
        edges = np.histogram_bin_edges(pd.concat([a, b]).to_numpy(), bins="sturges")
        p, q = np.histogram(a, edges)[0] / len(a), np.histogram(b, edges)[0] / len(b)
    else:
        keys = sorted(set(a) | set(b), key=str)
        p = np.array([(a == k).sum() / len(a) for k in keys])
        q = np.array([(b == k).sum() / len(b) for k in keys])
    if fill:
        for arr in (p, q):
            small = arr[arr > 0].min()
            arr[arr == 0] = small / 1e6 if small <= 1e-4 else 1e-4
    return p, q


def ref_chisquare(a, b, kind):
    keys = sorted(set(a) | set(b), key=str)
    ra = np.array([list(a).count(k) for k in keys], float)
    cb = np.array([list(b).count(k) for k in keys], float)
    res = ss.chisquare(cb, ra * len(b) / len(a))
    return res.statistic, res.pvalue


def ref_z(a, b, kind):
    """By hand: share of the first value (sorted), pooled two-proportion z, two-sided."""
    first = sorted(set(a) | set(b), key=str)[0]
    n1, n2 = len(a), len(b)
    p1 = sum(x != first for x in a) / n1
    p2 = sum(x != first for x in b) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return z, 2 * (1 - ss.norm.cdf(abs(z)))


def ref_anderson(a, b, kind):
    res = ss.anderson_ksamp([np.asarray(a), np.asarray(b)], variant="midrank")
    return res.statistic, res.pvalue


# name -> expected (statistic, p-value or None) from the raw values, independently of nbmlops
REFERENCE = {
    "ks": lambda a, b, k: tuple(ss.ks_2samp(a, b)[:2]),
    "chisquare": ref_chisquare,
    "z": ref_z,
    "anderson": ref_anderson,
    "cramer_von_mises": lambda a, b, k: (ss.cramervonmises_2samp(a, b).statistic, ss.cramervonmises_2samp(a, b).pvalue),
    "wasserstein": lambda a, b, k: (ss.wasserstein_distance(a, b) / max(np.std(a), 0.001), None),
    "jensenshannon": lambda a, b, k: (distance.jensenshannon(*evidently_binned(a, b, k, False)), None),
    "psi": lambda a, b, k: (float(np.sum((lambda p, q: (p - q) * np.log(p / q))(*evidently_binned(a, b, k, True)))), None),
    "kl_div": lambda a, b, k: (ss.entropy(*evidently_binned(a, b, k, True)), None),
    "energy": lambda a, b, k: (ss.energy_distance(a, b), None),
}

rng = np.random.default_rng(7)
NUMERIC_CASES = {
    "continuous": (rng.normal(0, 1, 60), rng.normal(0.4, 1.3, 45)),
    "ties": (rng.integers(0, 30, 80).astype(float), rng.integers(3, 33, 70).astype(float)),
    "unequal": (rng.exponential(2, 23), rng.exponential(2.5, 101)),
    "large": (rng.normal(0, 1, 12_000), rng.normal(0.05, 1, 11_000)),
}
FEW_CASES = {  # numbers with few distinct values (chi-square / Z on numbers)
    "three": (rng.integers(0, 3, 200).astype(float), rng.integers(0, 3, 150).astype(float)),
    "two": (rng.integers(0, 2, 200).astype(float), (rng.random(150) < 0.6).astype(float)),
}
CATEGORICAL_CASES = {
    "letters": (rng.choice(list("abcd"), 300, p=[.4, .3, .2, .1]), rng.choice(list("abcd"), 250, p=[.3, .3, .2, .2])),
    "binary": (rng.choice(["yes", "no"], 120), rng.choice(["yes", "no"], 140, p=[.7, .3])),
}


def cases():
    for name, test in STATTESTS.items():
        for kind, table in (("numeric", NUMERIC_CASES), ("numeric", FEW_CASES), ("categorical", CATEGORICAL_CASES)):
            if kind not in test.kinds:
                continue
            for case, (a, b) in table.items():
                yield pytest.param(name, kind, a, b, id=f"{name}-{case}")


def test_every_registered_test_has_a_reference():
    assert set(STATTESTS) == set(REFERENCE)


@pytest.mark.filterwarnings("ignore:p-value (floored|capped)")
@pytest.mark.parametrize("name, kind, a, b", list(cases()))
def test_statistic_matches_reference(name, kind, a, b):
    test = get_stattest(name)
    sample = NumericSample.from_values if kind == "numeric" else CategoricalSample.from_values
    pair = Pair(sample(a), sample(b))
    problem = test.check(pair)
    if problem is not None:  # e.g. Z on three values, chi-square on a continuous column
        assert "distinct values" in problem
        return
    stat, p = test.run(pair)
    want_stat, want_p = REFERENCE[name](a, b, kind)
    assert stat == pytest.approx(want_stat, rel=1e-9, abs=1e-12)
    if want_p is None:
        assert p is None and test.score_kind == "distance"
    else:
        assert p == pytest.approx(want_p, rel=1e-7, abs=1e-12) and test.score_kind == "p_value"
    score = test.score(stat, p)
    assert test.drifted(score, test.default_threshold) == (
        score < test.default_threshold if test.score_kind == "p_value" else score >= test.default_threshold)


def test_small_cases_by_hand():
    pair = Pair(NumericSample.from_values([0, 1, 3]), NumericSample.from_values([5, 6, 8]))
    assert wasserstein_sorted(pair.ref.values, pair.cur.values) == pytest.approx(5.0)
    assert get_stattest("wasserstein").run(pair)[0] == pytest.approx(5 / np.std([0, 1, 3]))
    # PSI of shares (0.5, 0.5) against (0.25, 0.75): 0.25*ln 2 + (-0.25)*ln(2/3)
    cat = Pair(CategoricalSample.from_values(["a", "b"] * 50), CategoricalSample.from_values(["a"] * 25 + ["b"] * 75))
    assert get_stattest("psi").run(cat)[0] == pytest.approx(0.25 * math.log(2) - 0.25 * math.log(2 / 3))
    # KS of disjoint samples is 1
    assert get_stattest("ks").run(pair)[0] == 1.0


@pytest.mark.parametrize("n, m", [(1, 1), (2, 5), (7, 3), (10, 10), (1000, 777), (4, 6)])
def test_wasserstein_by_quantile_merge_matches_scipy_for_any_sizes(n, m):
    a = np.sort(rng.integers(0, 5, n).astype(float))
    b = np.sort(rng.normal(0.5, 1, m).round(1))
    assert wasserstein_sorted(a, b) == pytest.approx(ss.wasserstein_distance(a, b), rel=1e-12, abs=1e-12)


def test_new_category_gives_chisquare_p_zero_and_a_note_in_the_report():
    from nbmlops import drift_report

    ref = pd.DataFrame({"c": ["a", "b"] * 100})
    cur = pd.DataFrame({"c": ["a", "b", "z"] * 60})
    col = drift_report(ref, cur, stattest="chisquare")["c"]
    assert col.p_value == 0.0 and col.drifted and "never seen in reference" in col.note


def test_names_and_aliases_and_unknown():
    assert get_stattest("KS").name == "ks" and get_stattest("chi2").name == "chisquare"
    assert get_stattest("js").name == "jensenshannon" and get_stattest("Cramer-von-Mises").name == "cramer_von_mises"
    with pytest.raises(InvalidInput, match="unknown stattest 'nope'; choose one of: ks, "):
        get_stattest("nope")


def pair_of(kind, n_ref, n_values, n_cur=50):
    if kind == "numeric":
        a = np.arange(n_ref) % n_values
        return Pair(NumericSample.from_values(a), NumericSample.from_values(np.arange(n_cur) % n_values))
    a = [f"v{i % n_values}" for i in range(n_ref)]
    return Pair(CategoricalSample.from_values(a), CategoricalSample.from_values([f"v{i % n_values}" for i in range(n_cur)]))


@pytest.mark.parametrize("kind, n_ref, n_values, expected", [
    ("numeric", 1000, 50, "ks"), ("numeric", 1000, 5, "chisquare"), ("numeric", 1000, 2, "z"),
    ("numeric", 1001, 50, "wasserstein"), ("numeric", 1001, 5, "jensenshannon"), ("numeric", 1001, 6, "wasserstein"),
    ("categorical", 1000, 3, "chisquare"), ("categorical", 1000, 2, "z"), ("categorical", 500, 40, "chisquare"),
    ("categorical", 1001, 2, "jensenshannon"), ("categorical", 100_000, 7, "jensenshannon"),
])
def test_default_choice_follows_evidently(kind, n_ref, n_values, expected):
    test, why = default_stattest(pair_of(kind, n_ref, n_values))
    assert test.name == expected and f"{n_ref:,} reference values" in why


def test_bonferroni_and_benjamini_hochberg_by_hand():
    p = [0.01, 0.04, 0.03, 0.20]
    assert adjust(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 0.80])
    # BH: sorted 0.01, 0.03, 0.04, 0.20 -> 0.04, 0.06, 0.0533, 0.20 -> monotone from the top: 0.04, 0.0533, 0.0533, 0.2
    assert adjust(p, "bh") == pytest.approx([0.04, 4 * 0.04 / 3, 4 * 0.04 / 3, 0.20])
    assert adjust(p, None) == p
    assert check_correction("BH") == "bh" and check_correction("fdr") == "bh" and check_correction(None) is None
    with pytest.raises(InvalidInput, match="unknown correction 'holm'"):
        check_correction("holm")


def test_corrections_match_statsmodels():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    p = rng.random(40) ** 3
    for ours, theirs in (("bonferroni", "bonferroni"), ("bh", "fdr_bh")):
        assert adjust(list(p), ours) == pytest.approx(multitest.multipletests(p, method=theirs)[1])
