"""Which test a column gets when none is chosen: Evidently's rule, so results are familiar.

As ``evidently.legacy.calculations.stattests.registry._get_default_stattest`` decides it, from
the column's kind, the reference size (values present) and the distinct values of both sides:

=================  ==========================================  =========================================
reference values   numeric                                     categorical
=================  ==========================================  =========================================
<= 1,000           K-S; chi-square if 3-5 values; Z if <= 2     chi-square; Z-test if <= 2 values
> 1,000            normed Wasserstein; Jensen-Shannon if <= 5   Jensen-Shannon
=================  ==========================================  =========================================

p-value tests at the 0.05 level, distances at 0.1.
"""

from __future__ import annotations

from .columns import NUMERIC
from .samples import Pair
from .stattests import StatTest, get_stattest

SMALL = 1000

DEFAULTS_TEXT = ("tests chosen as Evidently does by default: for up to 1,000 reference values, K-S (numeric) "
                 "or chi-square (categorical), Z-test for two values (p < 0.05 is drift); above 1,000, normed "
                 "Wasserstein (numeric) or Jensen-Shannon (categorical, or up to 5 values) (distance >= 0.1 is drift)")


def default_stattest(pair: Pair) -> tuple[StatTest, str]:
    """The default test for this column and why (a short phrase for the report)."""
    n_ref, n_values = pair.ref.n, pair.n_values
    size = f"{n_ref:,} reference values"
    if n_ref <= SMALL:
        if pair.kind == NUMERIC and n_values > 5:
            return get_stattest("ks"), f"numeric, {size}"
        name = "chisquare" if n_values > 2 else "z"
        return get_stattest(name), f"{n_values} distinct values, {size}"
    if pair.kind == NUMERIC and n_values > 5:
        return get_stattest("wasserstein"), f"numeric, {size}"
    what = "categorical" if pair.kind != NUMERIC else f"{n_values} distinct values"
    return get_stattest("jensenshannon"), f"{what}, {size}"
