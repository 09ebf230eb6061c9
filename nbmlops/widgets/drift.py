"""The drift widgets: pick columns, test, threshold and correction and the report re-renders; or watch a
model's monitoring timeline, version by version.

Thin faces over ``nbmlops.drift_report`` (the data is read once, a ``model:`` reference too; each change
of a control computes a new report of the chosen columns and shows its HTML) and over
``monitor_timeline`` (each refresh reads the store again).
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
from ..monitoring.timeline import monitor_timeline
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


class TimelineWidget(StaticFallback, w.VBox):
    """A model's monitoring timeline: pick a version (or all) and the alias whose moves are marked,
    refresh to read new windows; ``.timeline`` is the one shown."""

    ALL = "all versions"

    def __init__(self, model: str, version: int | None = None, alias: str | None = None) -> None:
        self.timeline = monitor_timeline(model, version, alias)  # mistakes reach the caller, before any control
        versions = monitor_timeline(self.timeline.model).versions
        self.version = w.Dropdown(description="version", options=[self.ALL, *versions],
                                  value=self.timeline.version if self.timeline.version in versions else self.ALL)
        alias = alias or (model.split("@", 1)[1] if "@" in model else None)  # "churn@production": its moves
        self.alias = w.Text(value=alias or "", placeholder="the deployments' aliases", description="alias",
                            continuous_update=False)
        self.refresh_button = w.Button(description="Refresh", icon="refresh", layout=w.Layout(width="auto"))
        self.status = w.HTML()
        self.view = w.HTML(self.timeline.html())
        self.version.observe(lambda _: self.refresh(), names="value")
        self.alias.observe(lambda _: self.refresh(), names="value")
        self.refresh_button.on_click(lambda _: self.refresh())
        wrap = w.Layout(flex_flow="row wrap", align_items="center")
        super().__init__([w.HBox([self.version, self.alias, self.refresh_button], layout=wrap), self.status, self.view])

    def refresh(self) -> None:
        version = None if self.version.value == self.ALL else int(self.version.value)
        try:
            self.timeline = monitor_timeline(self.timeline.model, version, self.alias.value.strip() or None)
        except NbmlopsError as exc:
            self.status.value = f'<span style="color:{RED}">{escape(str(exc))}</span>'
            return
        self.status.value = ""
        self.view.value = self.timeline.html()

    def _static_html(self) -> str:
        return self.view.value


def timeline_widget(model: str, version: int | None = None, alias: str | None = None) -> TimelineWidget:
    """An ipywidgets panel over ``monitor_timeline(model, version, alias)``, refreshed on demand."""
    return TimelineWidget(model, version, alias)
