"""The drift tests: one family, one registry.

Every test takes a :class:`~nbmlops.monitoring.samples.Pair` (reference and current of one
column, already sorted or counted) and returns ``(statistic, p_value)``; a distance returns
``(distance, None)``. A column drifts when its p-value is below the threshold, or its
distance at or above it. Names, thresholds and definitions are Evidently's, so the numbers
match what its users know; the contract tests check each one against scipy.

>>> from nbmlops.monitoring.stattests import STATTESTS, get_stattest
>>> get_stattest("ks").default_threshold
0.05
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidInput
from .columns import CATEGORICAL, NUMERIC
from .samples import Pair

P_VALUE, DISTANCE = "p_value", "distance"
BOTH = frozenset({NUMERIC, CATEGORICAL})


@dataclass(frozen=True)
class StatTest:
    name: str
    label: str
    kinds: frozenset[str]
    score_kind: str                 # P_VALUE or DISTANCE
    default_threshold: float
    func: Callable[[Pair], tuple[float, float | None]] = field(repr=False, compare=False)
    aliases: tuple[str, ...] = ()
    max_values: int | None = None   # at most this many distinct values (tests over counts of numbers)
    min_values: int | None = None

    def check(self, pair: Pair) -> str | None:
        """Why this test cannot judge this column, or None when it can."""
        if pair.kind not in self.kinds:
            return f"{self.name} applies to {' and '.join(sorted(self.kinds))} columns, not {pair.kind} ones"
        if pair.ref.n == 0 or pair.cur.n == 0:
            side = "reference" if pair.ref.n == 0 else "current"
            return f"all values are missing in {side}"
        if self.max_values is not None and pair.n_values > self.max_values and \
                (pair.kind == NUMERIC or self.name == "z"):
            return f"{self.name} needs at most {self.max_values} distinct values; this column has {pair.n_values}"
        return None

    def run(self, pair: Pair) -> tuple[float, float | None]:
        """(statistic, p-value or None). scipy's warnings (capped p-values, ties) are the caller's to
        silence: ``warnings.catch_warnings`` is not thread-safe, so ``drift_report`` does it once."""
        with np.errstate(all="ignore"):
            stat, p = self.func(pair)
        return float(stat), (None if p is None else float(p))

    def score(self, statistic: float, p_value: float | None) -> float:
        return p_value if self.score_kind == P_VALUE else statistic  # type: ignore[return-value]

    def drifted(self, score: float, threshold: float) -> bool:
        if math.isnan(score):
            return False
        return score < threshold if self.score_kind == P_VALUE else score >= threshold


STATTESTS: dict[str, StatTest] = {}
_ALIASES: dict[str, str] = {}


def register_stattest(test: StatTest) -> StatTest:
    """Add a test to the family (a custom one too); it is then usable by name everywhere."""
    STATTESTS[test.name] = test
    for alias in (test.name, *test.aliases):
        _ALIASES[alias.lower()] = test.name
    return test


def get_stattest(name: str | StatTest) -> StatTest:
    if isinstance(name, StatTest):
        return name
    key = str(name).strip().lower().replace("-", "_")
    if key not in _ALIASES:
        raise InvalidInput(f"unknown stattest {name!r}; choose one of: {', '.join(STATTESTS)}")
    return STATTESTS[_ALIASES[key]]


def _stattest(name: str, label: str, kinds: frozenset[str], score_kind: str, threshold: float, *,
              aliases: tuple[str, ...] = (), max_values: int | None = None) -> Callable:
    def wrap(func: Callable[[Pair], tuple[float, float | None]]) -> Callable:
        register_stattest(StatTest(name, label, kinds, score_kind, threshold, func, aliases, max_values))
        return func
    return wrap


# -- p-values ------------------------------------------------------------------------------

_KS_EXACT: OrderedDict[tuple[int, int, int], tuple[float, float]] = OrderedDict()  # (n, m, h) -> scipy's (D, p)
KS_EXACT_KEPT = 20_000  # entries of _KS_EXACT (about 2 MB)


@_stattest("ks", "K-S p-value", frozenset({NUMERIC}), P_VALUE, 0.05, aliases=("kolmogorov_smirnov", "ks_2samp"))
def ks(pair: Pair) -> tuple[float, float]:
    """Two-sample Kolmogorov–Smirnov, as ``scipy.stats.ks_2samp`` (exact up to 10,000 values a side).

    scipy's exact two-sided result depends only on the sizes and on ``h``, the statistic in units of
    1/lcm(n, m); its computation takes milliseconds (5 ms at 1,000 against 5,000 values), so it is kept
    per (n, m, h): windows of one size compared with one reference meet the same few hundred ``h``."""
    a, b = pair.ref.values, pair.cur.values  # type: ignore[union-attr]
    n, m = len(a), len(b)
    _, _, fa, fb = pair.cdfs
    diff = fa - fb
    d = float(max(diff.max(initial=0.0), -diff.min(initial=0.0)))  # scipy's D, from the same CDF differences
    if max(n, m) <= 10_000:
        key = (n, m, int(np.round(d * (n // math.gcd(n, m)) * m)))
        hit = _KS_EXACT.get(key)
        if hit is None:
            from scipy.stats import ks_2samp

            res = ks_2samp(a, b)
            hit = _KS_EXACT[key] = (float(res.statistic), float(res.pvalue))
            if len(_KS_EXACT) > KS_EXACT_KEPT:
                _KS_EXACT.popitem(last=False)
        return hit
    from scipy.stats import distributions

    big, small = max(n, m), min(n, m)
    en = big * small / (big + small)
    return d, float(np.clip(distributions.kstwo.sf(d, np.round(en)), 0, 1))


@_stattest("chisquare", "chi-square p-value", BOTH, P_VALUE, 0.05, aliases=("chi2", "chi_square", "chisq"),
           max_values=20)
def chisquare(pair: Pair) -> tuple[float, float]:
    """Pearson's chi-square of current counts against reference shares scaled to the current size
    (Evidently's ``chisquare``; ``scipy.stats.chisquare(f_obs, f_exp)``). A value never seen in
    reference gives p = 0."""
    from scipy.stats import chi2

    _, ref, cur = pair.union_counts
    expected = ref * (cur.sum() / ref.sum())
    if np.any((expected == 0) & (cur > 0)):
        return math.inf, 0.0
    keep = expected > 0
    stat = float(np.sum((cur[keep] - expected[keep]) ** 2 / expected[keep]))
    dof = int(keep.sum()) - 1
    return stat, (1.0 if dof < 1 else float(chi2.sf(stat, dof)))


@_stattest("z", "Z-test p-value", BOTH, P_VALUE, 0.05, aliases=("ztest", "z_test", "proportions_z"), max_values=2)
def z(pair: Pair) -> tuple[float, float]:
    """Two-proportion Z-test for a column of two values (Evidently's ``z``): the share of the
    first value (in sorted order) in reference against current, pooled variance, two-sided."""
    from scipy.stats import norm

    keys, ref, cur = pair.union_counts
    if len(keys) < 2:
        return 0.0, 1.0
    first = min(range(len(keys)), key=lambda i: (str(type(keys[i])), keys[i]))
    n1, n2 = ref.sum(), cur.sum()
    p1, p2 = 1 - ref[first] / n1, 1 - cur[first] / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    stat = (p1 - p2) / se if se > 0 else 0.0
    return stat, float(2 * norm.sf(abs(stat)))


@_stattest("anderson", "Anderson-Darling p-value", frozenset({NUMERIC}), P_VALUE, 0.1,
           aliases=("anderson_darling", "ad"))
def anderson(pair: Pair) -> tuple[float, float]:
    """k-sample Anderson–Darling (``scipy.stats.anderson_ksamp``; its p-value is floored at 0.001
    and capped at 0.25)."""
    from scipy.stats import anderson_ksamp

    samples = [pair.ref.values, pair.cur.values]  # type: ignore[union-attr]
    try:
        res = anderson_ksamp(samples, variant="midrank")
    except TypeError:  # scipy < 1.17
        res = anderson_ksamp(samples)
    return res.statistic, res.pvalue if hasattr(res, "pvalue") else res.significance_level


@_stattest("cramer_von_mises", "Cramér-von Mises p-value", frozenset({NUMERIC}), P_VALUE, 0.1,
           aliases=("cvm", "cramer", "cramervonmises"))
def cramer_von_mises(pair: Pair) -> tuple[float, float]:
    """Two-sample Cramér–von Mises (``scipy.stats.cramervonmises_2samp``)."""
    from scipy.stats import cramervonmises_2samp

    res = cramervonmises_2samp(pair.ref.values, pair.cur.values)  # type: ignore[union-attr]
    return res.statistic, res.pvalue


# -- distances -----------------------------------------------------------------------------

@_stattest("wasserstein", "Wasserstein distance (normed)", frozenset({NUMERIC}), DISTANCE, 0.1,
           aliases=("wasserstein_distance", "wd", "wasserstein_norm"))
def wasserstein(pair: Pair) -> tuple[float, None]:
    """First Wasserstein distance divided by the reference standard deviation (at least 0.001)."""
    return pair.wasserstein / max(pair.ref.std, 0.001), None  # type: ignore[union-attr]


@_stattest("jensenshannon", "Jensen-Shannon distance", BOTH, DISTANCE, 0.1, aliases=("js", "jensen_shannon"))
def jensenshannon(pair: Pair) -> tuple[float, None]:
    """``scipy.spatial.distance.jensenshannon`` (natural log) of the binned shares."""
    p, q = pair.binned(fill_zeros=False)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log(p / m), 0.0).sum()
        right = np.where(q > 0, q * np.log(q / m), 0.0).sum()
    return math.sqrt(max((left + right) / 2, 0.0)), None


@_stattest("psi", "PSI", BOTH, DISTANCE, 0.1, aliases=("population_stability_index",))
def psi(pair: Pair) -> tuple[float, None]:
    """Population stability index, Σ (ref − cur) · ln(ref / cur), over binned shares (zeros filled)."""
    p, q = pair.binned(fill_zeros=True)
    return float(np.sum((p - q) * np.log(p / q))), None


@_stattest("kl_div", "Kullback-Leibler divergence", BOTH, DISTANCE, 0.1, aliases=("kl", "kullback_leibler"))
def kl_div(pair: Pair) -> tuple[float, None]:
    """KL(ref ‖ cur) of binned shares with zeros filled (``scipy.stats.entropy(ref, cur)``)."""
    p, q = pair.binned(fill_zeros=True)
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(np.where(p > 0, p * np.log(p / q), 0.0))), None


@_stattest("energy", "Energy distance", frozenset({NUMERIC}), DISTANCE, 0.1, aliases=("ed", "energy_distance"))
def energy(pair: Pair) -> tuple[float, None]:
    """``scipy.stats.energy_distance``: √2 times the L2 distance between the two empirical CDFs."""
    _, widths, fa, fb = pair.cdfs
    return math.sqrt(2 * float(np.dot((fa - fb) ** 2, widths))), None
