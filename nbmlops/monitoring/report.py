"""The drift report: per-column results, the dataset verdict, summary, JSON and HTML.

A report holds aggregates only (statistics, binned counts, category counts), never rows, so
a report of 1,000,000 rows is as small as one of 1,000.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._util import json_ready as clean
from ..errors import InvalidInput
from .log import log_report

SCHEMA = 1
SUMMARY_LIST_LIMIT = 50


@dataclass
class ColumnDrift:
    """The drift test of one column."""

    column: Any
    kind: str                        # numeric | categorical
    role: str = "feature"            # feature | target | prediction
    stattest: str | None = None
    stattest_label: str | None = None
    score_kind: str | None = None    # p_value | distance
    reason: str = ""                 # why this test
    statistic: float | None = None
    p_value: float | None = None
    p_value_adjusted: float | None = None
    score: float | None = None       # what the threshold is compared with
    threshold: float | None = None
    drifted: bool | None = None      # None: not tested (see note)
    note: str | None = None
    reference: dict[str, Any] = field(default_factory=dict)
    current: dict[str, Any] = field(default_factory=dict)
    distribution: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.column)

    @property
    def tested(self) -> bool:
        return self.drifted is not None

    @property
    def severity(self) -> float:
        """How far past (positive) or short of (negative) its threshold, comparable across tests."""
        if self.score is None or self.threshold is None or not self.tested:
            return -math.inf
        s, t = self.score, self.threshold
        if self.score_kind == "p_value":
            return math.log10(t / max(s, 1e-300))
        return math.log10(max(s, 1e-300) / t) if t > 0 else s

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["column"] = self.name
        return clean(d)


@dataclass
class DriftReport:
    """Result of :func:`nbmlops.drift_report`: ``summary``, ``to_dict()``, ``to_json()``, ``save(path)``,
    ``as_frame()``, ``report["col"]``; shown as HTML in a notebook.

    Immutable once computed: its HTML (tables and pictures) is drawn on first use and kept, so the
    inline view, ``html()``, ``save()`` and ``log()`` share one drawing. A face may label
    ``sources`` before the report is first shown; assigning a field after that is refused, and
    nothing may change a field's contents in place."""

    columns: list[ColumnDrift]
    rows: dict[str, int]
    options: dict[str, Any]
    target: ColumnDrift | None = None
    prediction: list[ColumnDrift] = field(default_factory=list)
    quality: dict[str, Any] | None = None
    performance: dict[str, Any] | None = None
    windows: dict[str, Any] | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    sources: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    elapsed: float = 0.0
    _drawn: dict[bool, str] = field(default_factory=dict, init=False, repr=False, compare=False)  # full_page -> HTML

    def __setattr__(self, name: str, value: Any) -> None:
        if getattr(self, "_drawn", None):
            raise InvalidInput(f"a DriftReport is immutable once shown or saved; cannot set {name!r} "
                               "(compute a new report instead)")
        super().__setattr__(name, value)

    # -- verdicts ----------------------------------------------------------------
    @property
    def tested_columns(self) -> list[ColumnDrift]:
        return [c for c in self.columns if c.tested]

    @property
    def drifted_columns(self) -> list[str]:
        return [c.name for c in self.ranked() if c.drifted]

    @property
    def not_tested(self) -> dict[str, str]:
        return {c.name: c.note or "" for c in self.columns if not c.tested}

    @property
    def share_drifted(self) -> float:
        tested = self.tested_columns
        return sum(bool(c.drifted) for c in tested) / len(tested) if tested else 0.0

    @property
    def drift_share(self) -> float:
        return float(self.options.get("drift_share", 0.5))

    @property
    def dataset_drift(self) -> bool:
        """True when the share of drifted columns reaches ``drift_share`` (Evidently's rule, default 0.5)."""
        return bool(self.tested_columns) and self.share_drifted >= self.drift_share

    def ranked(self) -> list[ColumnDrift]:
        """Columns, drifted first, most drifted first; untested last."""
        return sorted(self.columns, key=lambda c: (not c.drifted, not c.tested, -c.severity))

    def __getitem__(self, column: Any) -> ColumnDrift:
        for c in (*self.columns, *([self.target] if self.target else []), *self.prediction):
            if c.column == column or c.name == str(column):
                return c
        raise KeyError(column)

    def __len__(self) -> int:
        return len(self.columns)

    # -- numbers -------------------------------------------------------------------
    @property
    def summary(self) -> dict[str, Any]:
        """A small dict to store (no distributions): the verdicts and the headline numbers."""
        from collections import Counter

        drifted = self.drifted_columns
        tests = Counter(c.stattest for c in self.tested_columns)
        out: dict[str, Any] = {
            "schema": SCHEMA, "created": self.created, "rows": dict(self.rows),
            "dataset_drift": self.dataset_drift, "share_drifted": round(self.share_drifted, 6),
            "drift_share": self.drift_share, "n_columns": len(self.tested_columns), "n_drifted": len(drifted),
            "drifted_columns": drifted[:SUMMARY_LIST_LIMIT], "not_tested": list(self.not_tested)[:SUMMARY_LIST_LIMIT],
            "stattests": dict(tests), "correction": self.options.get("correction"),
            "target_drift": _brief(self.target), "prediction_drift": [_brief(p) for p in self.prediction] or None,
        }
        if self.performance:
            out["performance"] = {"task": self.performance.get("task"),
                                  **{side: _scalars(self.performance.get(side))
                                     for side in ("reference", "current") if self.performance.get(side)}}
        if self.quality:
            out["quality"] = {"issues": len(self.quality.get("issues", [])),
                              "duplicated_rows": self.quality.get("duplicated_rows")}
        if self.windows:
            out["windows"] = {"count": len(self.windows.get("windows", [])),
                              "drifted": sum(bool(w.get("dataset_drift")) for w in self.windows.get("windows", []))}
        if self.sources:
            out["sources"] = self.sources
        return clean(out)

    def to_dict(self) -> dict[str, Any]:
        """Every number of the report (distributions included), JSON-ready."""
        return clean({
            "schema": SCHEMA, "created": self.created, "elapsed": self.elapsed, "rows": self.rows,
            "options": self.options, "sources": self.sources,
            "dataset_drift": self.dataset_drift, "share_drifted": self.share_drifted,
            "columns": [c.to_dict() for c in self.columns],
            "target": self.target.to_dict() if self.target else None,
            "prediction": [p.to_dict() for p in self.prediction],
            "quality": self.quality, "performance": self.performance, "windows": self.windows,
            "skipped": {str(k): v for k, v in self.skipped.items()}, "notes": self.notes,
        })

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def as_frame(self) -> Any:
        """The per-column table as a DataFrame (sortable, filterable)."""
        import pandas as pd

        rows = [{"column": c.name, "kind": c.kind, "role": c.role, "stattest": c.stattest, "score": c.score,
                 "threshold": c.threshold, "drifted": c.drifted, "statistic": c.statistic, "p_value": c.p_value,
                 "p_value_adjusted": c.p_value_adjusted, "missing_ref": _share(c.reference, "missing"),
                 "missing_cur": _share(c.current, "missing"), "note": c.note}
                for c in (*self.ranked(), *([self.target] if self.target else []), *self.prediction)]
        return pd.DataFrame(rows)

    # -- faces ---------------------------------------------------------------------
    def html(self, full_page: bool = False) -> str:
        from ..display.drift import render_page, render_report  # display delegation (listed in pyproject)

        if full_page not in self._drawn:
            body = self._drawn.get(False) or render_report(self)
            self._drawn[False] = body
            if full_page:
                self._drawn[True] = render_page(self, body)
        return self._drawn[full_page]

    def _repr_html_(self) -> str:
        return self.html()

    def __repr__(self) -> str:
        verdict = "DRIFT" if self.dataset_drift else "no dataset drift"
        drifted = self.drifted_columns
        shown = ", ".join(drifted[:8]) + (" …" if len(drifted) > 8 else "")
        untested = f", {len(self.not_tested)} not tested" if self.not_tested else ""
        return (f"<DriftReport {verdict}: {len(drifted)} of {len(self.tested_columns)} columns drifted"
                f"{' (' + shown + ')' if drifted else ''}{untested}; reference {self.rows['reference']:,} rows, "
                f"current {self.rows['current']:,} rows>")

    def save(self, path: str | Path) -> Path:
        """Write one self-contained HTML file (``.html``) or the numbers (``.json``)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".html", ".htm", ".json"):
            raise InvalidInput(f"save to a .html or .json path, not {path.name!r}")
        if path.exists() and path.is_dir():
            raise InvalidInput(f"{path} is a folder; give a file name ending in .html or .json")
        path.parent.mkdir(parents=True, exist_ok=True)
        text = self.to_json(indent=1) if suffix == ".json" else self.html(full_page=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        return path

    def log(self, model: str | None = None) -> dict[str, Any]:
        """Store the summary (and the full numbers as a blob) in the store; with ``model`` (a model
        URI such as ``"churn@production"``), also against that model version. See ``monitoring.log``."""
        return log_report(self, model=model)


def _share(stats: dict[str, Any], key: str) -> float | None:
    rows = stats.get("rows")
    return stats.get(key, 0) / rows if rows else None


def _brief(c: ColumnDrift | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"column": c.name, "stattest": c.stattest, "score": c.score, "threshold": c.threshold, "drifted": c.drifted}


def _scalars(d: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (d or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
