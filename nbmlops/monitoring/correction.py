"""Multiple-testing correction of the p-values of one report (Evidently has none).

With 25 columns each tested at the 0.05 level, a report of data that did not drift flags at
least one column 72% of the time. Bonferroni bounds the chance of any false flag by the level;
Benjamini-Hochberg bounds the expected share of false flags among the flagged (less strict,
more power). Distances are not p-values and are left as they are.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInput

CORRECTIONS = {"bonferroni": "Bonferroni", "bh": "Benjamini-Hochberg"}
_ALIASES = {"bonferroni": "bonferroni", "bonf": "bonferroni", "bh": "bh", "fdr": "bh", "fdr_bh": "bh",
            "benjamini_hochberg": "bh", "benjamini-hochberg": "bh", "none": None, "": None}


def check_correction(name: str | None) -> str | None:
    if name is None:
        return None
    key = str(name).strip().lower()
    if key not in _ALIASES:
        raise InvalidInput(f"unknown correction {name!r}; choose bonferroni or bh (Benjamini-Hochberg)")
    return _ALIASES[key]


def adjust(p_values: list[float], method: str | None) -> list[float]:
    """Adjusted p-values (the same as ``statsmodels.stats.multitest.multipletests``' ``pvals_corrected``)."""
    p = np.asarray(p_values, dtype=float)
    if method is None or len(p) == 0:
        return p.tolist()
    m = len(p)
    if method == "bonferroni":
        return np.minimum(p * m, 1.0).tolist()
    if method == "bh":
        order = np.argsort(p)
        ranked = p[order] * m / np.arange(1, m + 1)
        ranked = np.minimum.accumulate(ranked[::-1])[::-1]
        out = np.empty(m)
        out[order] = np.minimum(ranked, 1.0)
        return out.tolist()
    raise InvalidInput(f"unknown correction {method!r}")
