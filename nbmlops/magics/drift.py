"""``%drift``: a drift and data-quality report of CURRENT against REFERENCE, inline, logged to the store.

Thin: resolve the two data arguments (notebook variable, file path or ``model:NAME@ALIAS``), call
``nbmlops.drift_report``, log the summary (``DriftReport.log``), display. Mistakes are one red line.
"""

from __future__ import annotations

import sys
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display

import nbmlops

from ..errors import NbmlopsError
from ._args import parse, usage_errors, variable_or_path
from ._progress import WidgetProgress

WIDE = 100  # columns from which a progress bar is shown


def _pairs(text: str | None, what: str, cast: Any) -> Any:
    """``ks`` -> "ks"; ``age=psi,plan=chisquare`` -> {"age": "psi", "plan": "chisquare"}."""
    if text is None or "=" not in text:
        try:
            return None if text is None else cast(text)
        except ValueError:
            raise UsageError(f"{what} takes a value or COLUMN=VALUE pairs, got {text!r}") from None
    out = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(f"{what} takes a value or COLUMN=VALUE pairs separated by commas, got {item!r}")
        try:
            out[key.strip()] = cast(value.strip())
        except ValueError:
            raise UsageError(f"{what}: {value.strip()!r} for {key.strip()!r} is not a valid value") from None
    return out


def _number(text: str) -> float:
    return float(text)


def _list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise UsageError("--columns takes a comma-separated list of column names")
    return items


@magics_class
class Drift(Magics):
    """``%drift REFERENCE CURRENT``: is CURRENT drifting away from REFERENCE?"""

    def resolve(self, text: str, role: str) -> Any:
        """A notebook variable, a file path, or a model: URI (passed on as a string)."""
        text = text or ""
        if text.startswith(("model:", "serving:")):
            return text
        kind, value = variable_or_path(self.shell, text)
        if kind != "text":
            return value
        if text.isidentifier():
            raise UsageError(f"{role} {text!r}: no such variable in the notebook, and no such file")
        raise UsageError(f"{role} {text!r}: not a notebook variable, an existing file, or model:NAME@ALIAS "
                         "(for an expression, assign it to a variable first)")

    @magic_arguments()
    @argument("reference", help="reference data: a notebook variable, a CSV/Parquet path, or model:NAME@ALIAS "
                                "(model:NAME/VERSION, model:NAME) for the reference stored with a model version")
    @argument("current", help="current data, the same kinds, or serving:DEPLOYMENT for the traffic a deployment served")
    @argument("--target", help="target (label) column (default: a column named 'target')")
    @argument("--prediction", help="prediction column, or comma-separated class-probability columns "
                                   "(default: a column named 'prediction')")
    @argument("--columns", help="comma-separated feature columns to compare (default: every common column)")
    @argument("--stattest", help="test for every column (ks, chisquare, z, psi, wasserstein, jensenshannon, kl_div, "
                                 "anderson, cramer_von_mises, energy) or COLUMN=TEST pairs; "
                                 "default: Evidently's choice")
    @argument("--threshold", help="drift threshold for every column, or COLUMN=X pairs (default: the test's own)")
    @argument("--correction", help="multiple-testing correction of p-values: bonferroni or bh (Benjamini-Hochberg)")
    @argument("--drift-share", type=float, default=0.5, help="share of drifted columns that means dataset drift (0.5)")
    @argument("--by-time", metavar="COL", help="also test each time window of CURRENT, by this time column")
    @argument("--window", help="window for --by-time: 1h, 6h, 1d, 1w, 30min, or a number of rows (default 1d)")
    @argument("--save", metavar="PATH", help="also write the report to PATH (.html, or .json for the numbers)")
    @argument("-o", "--output", metavar="VAR", help="keep the report in this notebook variable")
    @argument("--widget", action="store_true", help="show an interactive widget (columns, test, threshold)")
    @argument("--no-log", action="store_true", help="do not log the summary to the store")
    @line_magic
    def drift(self, line: str) -> None:
        """Compare CURRENT with REFERENCE: per-column drift tests (Evidently's defaults unless --stattest),
        dataset drift, target and prediction drift, data quality and model performance; inline, and its
        summary logged to the store (and against the model version with model:NAME@ALIAS)."""
        args = parse(self.drift, line)
        out = args.output
        if out is not None and not out.isidentifier():
            raise UsageError(f"-o takes a variable name, got {out!r}")
        if args.window and not args.by_time and not args.window.strip().isdigit():
            raise UsageError("--window with a time span needs --by-time COL (or give a number of rows)")
        reference = self.resolve(args.reference, "REFERENCE")
        current = self.resolve(args.current, "CURRENT")
        kwargs = _options(args)
        if args.widget:
            with usage_errors():
                display(nbmlops.drift_widget(reference, current, **kwargs))
            return
        bar = WidgetProgress("drift", minimum=WIDE)
        try:
            with usage_errors():
                report = nbmlops.drift_report(reference, current, progress=bar, **kwargs)
        finally:
            bar.close()
        for role, text, value in (("reference", args.reference, reference), ("current", args.current, current)):
            if not isinstance(value, str):
                report.sources[role] = text  # the variable's name, not "DataFrame"
        if out is not None:
            self.shell.user_ns[out] = report
        display(report)
        if args.save:
            with usage_errors("--save: ", OSError):
                path = report.save(args.save)
            print(f"saved {path}")
        if not args.no_log:
            try:
                report.log()
            except NbmlopsError as exc:  # the report is shown; say why it was not stored
                print(f"drift summary not logged: {exc}", file=sys.stderr)


def _options(args: Any) -> dict[str, Any]:
    """The keyword arguments of ``drift_report`` / ``drift_widget`` that the options give."""
    mapping: dict[str, Any] = {}
    if args.target:
        mapping["target"] = args.target
    if args.prediction:
        preds = _list(args.prediction) or []
        mapping["prediction"] = preds[0] if len(preds) == 1 else preds
    return dict(column_mapping=mapping or None, stattest=_pairs(args.stattest, "--stattest", str),
                threshold=_pairs(args.threshold, "--threshold", _number), columns=_list(args.columns),
                correction=args.correction, drift_share=args.drift_share, by_time=args.by_time, window=args.window)
