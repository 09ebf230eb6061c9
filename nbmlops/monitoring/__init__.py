"""Monitoring: drift and data-quality reports of current data against a reference.

One module per concept:

- ``columns``      column mapping (target, prediction, features, time, ids) and type inference
- ``samples``      each column read once: numbers sorted, categories counted; shared computations
- ``stattests``    the family of tests, one registry (KS, chi-square, Z, PSI, Wasserstein, ...)
- ``selection``    the default test per column, as Evidently picks it
- ``correction``   Bonferroni / Benjamini-Hochberg over the p-values of a report
- ``quality``      missing values, new categories, out-of-range values, dtype changes, duplicates
- ``performance``  classification and regression metrics on both sides
- ``windows``      the same tests per time window of current
- ``drift``        ``drift_report()``, which puts these together
- ``report``       ``DriftReport``: summary, ``to_dict``/``to_json``, ``save`` (its HTML: ``display.drift``)
- ``sources``      DataFrames, files, ``model:NAME@ALIAS`` references and ``serving:NAME`` traffic
- ``traffic``      a deployment's request log as a table (read through the store)
- ``log``          summaries into the store (and against a model version)
- ``live``         a deployment's live windows judged; recorded windows back (``window_data``, ``window_report``)
- ``timeline``     a model's windows and logged reports over time, with its alias moves (``monitor_timeline``)
- ``estimate``     performance without labels: CBPE (classifiers), DLE (regressors); imported when used
"""

from __future__ import annotations

from .columns import ColumnMapping
from .drift import drift_report
from .log import history
from .report import ColumnDrift, DriftReport
from .stattests import STATTESTS, StatTest, get_stattest, register_stattest

__all__ = ["drift_report", "DriftReport", "ColumnDrift", "ColumnMapping", "STATTESTS", "StatTest",
           "get_stattest", "register_stattest", "drift_history"]


def drift_history(model: str | None = None, limit: int = 100) -> object:
    """Logged drift summaries, newest first, as a DataFrame (``model`` filters by model name)."""
    return history(model, limit)
