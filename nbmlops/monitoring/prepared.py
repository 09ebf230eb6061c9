"""A reference prepared once for many comparisons (the live monitor's windows).

``drift_report`` prepares both sides of every column on each call: for one reference compared with
window after window, its columns are sorted, its categories counted and its mean, standard deviation
and distinct values computed again each time. :class:`PreparedReference` keeps that reference side
and prepares only the current side of each comparison; ``compare(current)`` gives what
``drift_report(reference, current, **options)`` gives (``tests/test_monitor_prepared.py`` checks it).
"""

from __future__ import annotations

from typing import Any

from .columns import ColumnMapping
from .drift import KeptReference, check_options, compare
from .report import DriftReport
from .sources import load
from .stattests import get_stattest


class PreparedReference:
    """``reference`` with ``drift_report``'s options, ready to be compared with many current frames.

    >>> prepared = PreparedReference(train, ColumnMapping(target=None), correction="bh", default_by="smaller")
    >>> prepared.compare(last_hour).share_drifted
    """

    def __init__(self, reference: Any, column_mapping: ColumnMapping | dict[str, Any] | None = None,
                 stattest: str | dict[str, str] | None = None, threshold: float | dict[str, float] | None = None, *,
                 columns: list[str] | None = None, num_stattest: str | None = None, cat_stattest: str | None = None,
                 correction: str | None = None, drift_share: float = 0.5, quality: bool = True,
                 performance: bool = False, default_by: str = "reference", workers: int = 1) -> None:
        check_options(drift_share, correction, default_by)
        for name in ([*stattest.values()] if isinstance(stattest, dict) else [stattest]) + [num_stattest, cat_stattest]:
            if name is not None:
                get_stattest(name)  # an unknown name fails here, not at the first comparison
        self.source = load(reference, "reference")
        self.options = dict(column_mapping=ColumnMapping.coerce(column_mapping), stattest=stattest,
                            threshold=threshold, columns=columns, num_stattest=num_stattest,
                            cat_stattest=cat_stattest, correction=correction, drift_share=drift_share, by_time=None,
                            window=None, quality=quality, performance=performance, default_by=default_by)
        self.workers = workers
        self.kept = KeptReference()

    @property
    def frame(self) -> Any:
        return self.source.frame

    def compare(self, current: Any) -> DriftReport:
        """The drift report of ``current`` against the prepared reference."""
        return compare(self.source, load(current, "current"), self.options, progress=False, workers=self.workers,
                       kept=self.kept)
