"""The drift widget: pick columns, test, threshold and correction; the report re-renders.

A thin face over ``nbmlops.drift_report``: the data is read once (a ``model:`` reference too), each
change of a control computes a new report of the chosen columns and shows its HTML.
"""

from __future__ import annotations

from html import escape
from typing import Any

import ipywidgets as w

import nbmlops

from ..display.style import AMBER, RED
from ..errors import NbmlopsError
from ..monitoring.sources import load
from ..monitoring.stattests import STATTESTS
from ._static import StaticFallback

DEFAULT = "default (Evidently's choice)"


class DriftWidget(StaticFallback, w.VBox):
    """Controls over one reference/current pair; ``.report`` is the report shown."""

    def __init__(self, reference: Any, current: Any, **kwargs: Any) -> None:
        self.kwargs = dict(kwargs)
        self._sources = (load(reference, "reference"), load(current, "current"))
        self.report = self._compute(self.kwargs)  # mistakes reach the caller, before any control exists
        special = {*self.report.options["mapping"]["prediction"], *self.report.options["mapping"]["id"],
                   self.report.options["mapping"]["target"], self.report.options["mapping"]["timestamp"]}
        cur_cols = set(self._sources[1].frame.columns)
        names = [c for c in self._sources[0].frame.columns if c in cur_cols and str(c) not in special]
        chosen = self.kwargs.pop("columns", None)
        self.columns = w.SelectMultiple(options=names, value=tuple(chosen or names), rows=min(8, max(len(names), 2)),
                                        description="columns")
        given = self.kwargs.pop("stattest", None)
        self.stattest = w.Dropdown(options=[DEFAULT, *STATTESTS], description="test",
                                   value=given if isinstance(given, str) and given in STATTESTS else DEFAULT)
        given_t = self.kwargs.pop("threshold", None)
        self.threshold = w.Text(value="" if not isinstance(given_t, (int, float)) else str(given_t),
                                placeholder="test's default", description="threshold", continuous_update=False)
        corrections = [("none", None), ("Bonferroni", "bonferroni"), ("Benjamini-Hochberg", "bh")]
        self.correction = w.Dropdown(options=corrections,
                                     value=self.kwargs.pop("correction", None), description="correction")
        self.status = w.HTML()
        self.view = w.HTML(self.report._repr_html_())
        for control in (self.columns, self.stattest, self.threshold, self.correction):
            control.observe(lambda _: self.update(), names="value")
        super().__init__([w.HBox([self.columns, w.VBox([self.stattest, self.threshold, self.correction])]),
                          self.status, self.view])

    def _compute(self, options: dict[str, Any]) -> Any:
        ref, cur = self._sources
        report = nbmlops.drift_report(ref.frame, cur.frame, **options)
        report.sources = {"reference": ref.label, "current": cur.label,
                          **({"model": ref.model or cur.model} if ref.model or cur.model else {})}
        return report

    def options(self) -> dict[str, Any]:
        text = self.threshold.value.strip()
        try:
            threshold = float(text) if text else None
        except ValueError:
            raise ValueError(f"threshold must be a number, not {text!r} (empty: the test's default)") from None
        return {**self.kwargs, "columns": list(self.columns.value),
                "stattest": None if self.stattest.value == DEFAULT else self.stattest.value,
                "threshold": threshold, "correction": self.correction.value}

    def update(self) -> None:
        if not self.columns.value:
            self.status.value = f'<span style="color:{AMBER}">choose at least one column</span>'
            return
        try:
            self.report = self._compute(self.options())
        except (NbmlopsError, ValueError) as exc:
            self.status.value = f'<span style="color:{RED}">{escape(str(exc))}</span>'
            return
        self.status.value = ""
        self.view.value = self.report._repr_html_()

    def _static_html(self) -> str:
        """The report shown: its own ``_repr_html_()``, pictures embedded."""
        return self.view.value


def drift_widget(reference: Any, current: Any, **kwargs: Any) -> DriftWidget:
    """An ipywidgets panel over ``drift_report(reference, current, **kwargs)``."""
    return DriftWidget(reference, current, **kwargs)
