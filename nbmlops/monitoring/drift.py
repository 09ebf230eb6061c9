"""``drift_report``: compare current data with a reference, column by column.

Each column is read once: numeric values sorted, categories counted (``samples``). From that
one pass come its test (``stattests``, chosen as Evidently would by ``selection`` unless told),
its data-quality numbers and the binned distribution the report draws. Columns run in a few
threads (numpy's sorting and arithmetic release the GIL).
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InvalidInput
from . import quality as dq
from .columns import CATEGORICAL, NUMERIC, ColumnMapping, Schema, resolve
from .correction import CORRECTIONS, adjust, check_correction
from .performance import evaluate
from .report import ColumnDrift, DriftReport
from .samples import CategoricalSample, NumericSample, Pair, histogram_sorted, prepare
from .selection import DEFAULTS_TEXT, SMALL, default_stattest
from .sources import Source, load
from .stattests import P_VALUE, StatTest, get_stattest
from .windows import check as check_windows, over_time

PLOT_BINS = 40
TOP_CATEGORIES = 20
Progress = Callable[[int, int], None]


def drift_report(reference: Any, current: Any, column_mapping: ColumnMapping | dict[str, Any] | None = None,
                 stattest: str | dict[str, str] | None = None, threshold: float | dict[str, float] | None = None, *,
                 columns: list[str] | None = None, num_stattest: str | None = None, cat_stattest: str | None = None,
                 correction: str | None = None, drift_share: float = 0.5, by_time: str | None = None,
                 window: str | int | None = None, quality: bool = True, performance: bool = True,
                 progress: bool | Progress | None = None, workers: int | None = None,
                 default_by: str = "reference") -> DriftReport:
    """Compare ``current`` with ``reference`` (DataFrames, CSV/Parquet paths, or ``"model:NAME@ALIAS"``).

    >>> report = nbmlops.drift_report(train, last_month, stattest="ks", correction="bh")
    >>> report.drifted_columns, report.summary["dataset_drift"]
    >>> report.save("reports/drift.html")

    ``stattest`` names one test for every column or maps columns to tests (``ks``, ``chisquare``,
    ``z``, ``psi``, ``wasserstein``, ``jensenshannon``, ``kl_div``, ``anderson``, ``cramer_von_mises``,
    ``energy``); by default each column gets Evidently's default for its kind and size.
    ``threshold`` likewise (default: the test's own). ``correction`` (``"bonferroni"`` or ``"bh"``)
    adjusts p-values for the number of columns tested. The dataset drifts when the share of drifted
    columns reaches ``drift_share``. ``by_time``/``window`` add drift per time window of current.
    ``default_by="smaller"`` sizes the default tests by the smaller side instead of the reference
    (:func:`smaller_side_stattest`: windows of traffic against a large reference).
    """
    started = time.perf_counter()
    check_options(drift_share, correction, default_by)
    return compare(load(reference, "reference"), load(current, "current"), dict(
        column_mapping=column_mapping, stattest=stattest, threshold=threshold, columns=columns,
        num_stattest=num_stattest, cat_stattest=cat_stattest, correction=correction, drift_share=drift_share,
        by_time=by_time, window=window, quality=quality, performance=performance, default_by=default_by),
        progress, workers, started=started)


def check_options(drift_share: Any, correction: str | None, default_by: str) -> None:
    """The options every comparison needs right, checked before any data is read."""
    if not (isinstance(drift_share, (int, float)) and 0 < drift_share <= 1):
        raise InvalidInput(f"drift_share must be in (0, 1], not {drift_share!r}")
    check_correction(correction)
    if default_by not in DEFAULTS_BY:
        raise InvalidInput(f"default_by must be one of {', '.join(DEFAULTS_BY)}, not {default_by!r}")


def compare(ref_src: Source, cur_src: Source, options: dict[str, Any], progress: bool | Progress | None = None,
            workers: int | None = None, kept: KeptReference | None = None,
            started: float | None = None) -> DriftReport:
    """:func:`drift_report` of two loaded sources with its keyword options; ``kept`` holds the
    reference side of earlier comparisons with the same reference (``PreparedReference``)."""
    started = time.perf_counter() if started is None else started
    o = options
    ref, cur = ref_src.frame, cur_src.frame
    stattest, threshold, columns = o["stattest"], o["threshold"], o["columns"]
    num_stattest, cat_stattest, drift_share = o["num_stattest"], o["cat_stattest"], o["drift_share"]
    by_time, window, quality, performance = o["by_time"], o["window"], o["quality"], o["performance"]
    mapping = ColumnMapping.coerce(o["column_mapping"])
    if by_time is not None:
        mapping = replace(mapping, timestamp=by_time)
    method = check_correction(o["correction"])
    schema = resolve(ref, cur, mapping, columns)
    chooser = _Chooser(stattest, threshold, num_stattest, cat_stattest, schema.features, DEFAULTS_BY[o["default_by"]])
    windows_wanted = by_time is not None or window is not None
    if windows_wanted:
        check_windows(cur, schema.timestamp, window)

    tasks, notes = _tasks(schema, ref, cur, performance)
    tick = _progress(progress, len(tasks))
    n_workers = workers or (min(4, os.cpu_count() or 1) if len(ref) + len(cur) >= 20_000 and len(tasks) > 1 else 1)
    keep = windows_wanted
    jobs = [(_column, (name, kind, role, ref[name], cur[name], chooser, name in schema.kind_changes, keep, quality,
                       kept)) for name, kind, role in tasks]
    ref_hash = cur_hash = None
    results = []
    with warnings.catch_warnings():  # scipy's notes on capped p-values and ties; the report says what matters
        warnings.simplefilter("ignore")
        for result in _run_all(jobs, n_workers, tick):
            cd, q, sample, (rh, ch) = result
            if quality and rh is not None and ch is not None:
                ref_hash, cur_hash = dq.combine(ref_hash, rh), dq.combine(cur_hash, ch)
            results.append((cd, q, sample))
    dataset_q = dq.dataset_quality(ref_hash, cur_hash, ref, cur, {t[0] for t in tasks}, schema.only_in_reference,
                                   schema.only_in_current) if quality else None

    features = [r for r, t in zip(results, tasks) if t[2] == "feature"]
    target = next((r[0] for r, t in zip(results, tasks) if t[2] == "target"), None)
    predictions = [r[0] for r, t in zip(results, tasks) if t[2] == "prediction"]
    cols = [r[0] for r in features]
    cols += [ColumnDrift(column=c, kind="—", note=f"not tested: {why}") for c, why in schema.skipped.items()]
    _correct(cols, method)

    quality_out = None
    if quality and dataset_q is not None:
        per_column = {str(r[0].column): r[1] for r in features}
        issues = [i for r in features for i in dq.issues(str(r[0].column), r[1])]
        issues += dq.dataset_issues(dataset_q, {"reference": len(ref), "current": len(cur)})
        quality_out = {**dataset_q, "columns": per_column, "issues": issues}
    perf = None
    if performance:
        perf = evaluate(ref, cur, schema.target, schema.prediction, schema.target_kind, mapping)
    windows_out = None
    if windows_wanted:
        tests = {r[0].column: (r[0].kind, r[2], get_stattest(r[0].stattest), r[0].threshold,
                               r[0].column in schema.kind_changes) for r in features if r[0].tested}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            windows_out = over_time(cur, schema.timestamp, window, tests, method, drift_share)

    used_default = any(c.reason.startswith("default") for c in cols if c.tested)
    options = {"stattest": _describe(stattest), "threshold": _describe(threshold),
               "num_stattest": num_stattest, "cat_stattest": cat_stattest, "correction": method,
               "correction_label": CORRECTIONS.get(method or ""), "drift_share": float(drift_share),
               "defaults": (SMALLER_TEXT if o["default_by"] == "smaller" else DEFAULTS_TEXT) if used_default else None,
               "default_by": o["default_by"],
               "mapping": {"target": None if schema.target is None else str(schema.target),
                           "prediction": [str(p) for p in schema.prediction],
                           "timestamp": None if schema.timestamp is None else str(schema.timestamp),
                           "id": [str(i) for i in mapping.ids()]}}
    sources = {"reference": ref_src.label, "current": cur_src.label}
    model = ref_src.model or cur_src.model
    if model:
        sources["model"] = model
    return DriftReport(columns=cols, rows={"reference": len(ref), "current": len(cur)}, options=options,
                       target=target, prediction=predictions, quality=quality_out, performance=perf,
                       windows=windows_out, skipped={str(k): v for k, v in schema.skipped.items()},
                       notes=notes + (perf or {}).get("notes", []), sources=sources,
                       created=datetime.now(UTC).isoformat(timespec="seconds"),
                       elapsed=time.perf_counter() - started)


def _tasks(schema: Schema, ref: pd.DataFrame, cur: pd.DataFrame,
           performance: bool) -> tuple[list[tuple[Any, str, str]], list[str]]:
    """(column, kind, role) of every column to test, and the notes the schema calls for."""
    tasks: list[tuple[Any, str, str]] = [(c, k, "feature") for c, k in schema.features.items()]
    notes: list[str] = []
    if schema.target is not None:
        if schema.target in ref.columns and schema.target in cur.columns:
            tasks.append((schema.target, schema.target_kind or CATEGORICAL, "target"))
        else:
            side = "current" if schema.target not in cur.columns else "reference"
            notes.append(f"target {schema.target!r} is not in {side}: no target drift"
                         + (" and no performance there" if performance else ""))
    for p in schema.prediction:
        if p in ref.columns and p in cur.columns:
            kind = NUMERIC if len(schema.prediction) > 1 else (schema.prediction_kind or NUMERIC)
            tasks.append((p, kind, "prediction"))
    for name, (kr, kc) in schema.kind_changes.items():
        notes.append(f"column {name!r} is {kr} in reference but {kc} in current: compared as text categories")
    if schema.only_in_reference:
        notes.append(f"{len(schema.only_in_reference)} column(s) only in reference, not tested: "
                     + _names(schema.only_in_reference))
    if schema.only_in_current:
        notes.append(f"{len(schema.only_in_current)} column(s) only in current, not tested: "
                     + _names(schema.only_in_current))
    if schema.skipped:
        notes.append(f"{len(schema.skipped)} column(s) not tested: "
                     + "; ".join(f"{k} ({v})" for k, v in list(schema.skipped.items())[:10])
                     + (" …" if len(schema.skipped) > 10 else ""))
    return tasks, notes


class _Chooser:
    """Which test and threshold each column gets; every name is checked before any work."""

    def __init__(self, stattest: Any, threshold: Any, num: str | None, cat: str | None,
                 features: dict[Any, str], default: Callable[[Pair], tuple[StatTest, str]] = default_stattest) -> None:
        self.default = default
        self.per_column: dict[Any, StatTest] = {}
        self.all: StatTest | None = None
        if isinstance(stattest, dict):
            for col, name in stattest.items():
                if col not in features:
                    raise InvalidInput(f"stattest names column {col!r}, which is not compared "
                                       f"(compared: {_names(list(features))})")
                test = get_stattest(name)
                if features[col] not in test.kinds:
                    raise InvalidInput(f"stattest {test.name} cannot test {features[col]} column {col!r}: it applies "
                                       f"to {' and '.join(sorted(test.kinds))} columns")
                self.per_column[col] = test
        elif stattest is not None:
            self.all = get_stattest(stattest)
        self.by_kind = {NUMERIC: get_stattest(num) if num else None, CATEGORICAL: get_stattest(cat) if cat else None}
        self.thresholds: dict[Any, float] = {}
        self.threshold: float | None = None
        if isinstance(threshold, dict):
            for col, value in threshold.items():
                if col not in features:
                    raise InvalidInput(f"threshold names column {col!r}, which is not compared")
                self.thresholds[col] = _check_threshold(value)
        elif threshold is not None:
            self.threshold = _check_threshold(threshold)

    def pick(self, column: Any, pair: Pair, role: str) -> tuple[StatTest, str, str | None]:
        """(test, why it was chosen, a note when the asked-for test could not be used)."""
        if role == "feature" and column in self.per_column:
            return self.per_column[column], "chosen for this column", None
        wanted = (self.all or self.by_kind.get(pair.kind)) if role == "feature" else None
        if wanted is not None:
            problem = wanted.check(pair)
            if problem is None:
                return wanted, "chosen", None
            test, why = self.default(pair)
            return test, f"default ({why})", f"{wanted.name} not used: {problem}"
        test, why = self.default(pair)
        return test, f"default ({why})", None

    def threshold_for(self, column: Any, test: StatTest) -> float:
        value = self.thresholds.get(column, self.threshold)
        if value is None:
            return test.default_threshold
        if test.score_kind == P_VALUE and value >= 1:
            raise InvalidInput(f"threshold {value} for the p-value of {test.name} on {column!r} must be below 1")
        return value


def _check_threshold(value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"threshold must be a number, not {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise InvalidInput(f"threshold must be a positive number, not {value!r}")
    return v


def _column(name: Any, kind: str, role: str, ref_s: pd.Series, cur_s: pd.Series, chooser: _Chooser,
            as_text: bool, keep: bool, row_hash: bool,
            kept: KeptReference | None) -> tuple[ColumnDrift, dict[str, Any], Any, tuple[Any, Any]]:
    """One column: prepared once (the reference side taken from ``kept`` when it has it), tested,
    described. Returns (result, quality numbers, the reference sample when windows need it, the rows'
    hashes of this column for duplicate counting)."""
    if as_text:
        cur_s = _text(cur_s)
    if kept is not None:
        ref, ref_hash = kept.sample(name, kind, as_text, row_hash, ref_s)
    else:
        ref = prepare(_text(ref_s) if as_text else ref_s, kind, row_hash)
        ref_hash, ref.row_hash = ref.row_hash, None
    cur = prepare(cur_s, kind, row_hash)
    hashes = (ref_hash, cur.row_hash)
    cur.row_hash = None
    cd, q = _test_column(name, kind, role, ref, cur, chooser, str(ref_s.dtype), str(cur_s.dtype))
    return cd, q, ref if keep else None, hashes


def _test_column(name: Any, kind: str, role: str, ref: Any, cur: Any, chooser: _Chooser, ref_dtype: str,
                 cur_dtype: str) -> tuple[ColumnDrift, dict[str, Any]]:
    pair = Pair(ref, cur)
    q = dq.column_quality(ref, cur, ref_dtype, cur_dtype)
    cd = ColumnDrift(column=name, kind=kind, role=role, reference=ref.stats(), current=cur.stats(),
                     distribution=distribution(pair))
    if ref.n == 0 or cur.n == 0:
        side = " and ".join(s for s, x in (("reference", ref), ("current", cur)) if x.n == 0)
        cd.note = f"not tested: every value is missing in {side}"
        return cd, q
    test, why, note = chooser.pick(name, pair, role)
    cd.stattest, cd.stattest_label, cd.score_kind = test.name, test.label, test.score_kind
    cd.reason, cd.note = why, note
    cd.threshold = chooser.threshold_for(name, test) if role == "feature" else test.default_threshold
    problem = test.check(pair)
    if problem is not None:
        cd.note = f"not tested: {problem}"
        return cd, q
    cd.statistic, cd.p_value = test.run(pair)
    cd.score = test.score(cd.statistic, cd.p_value)
    if cd.score is None or math.isnan(cd.score):
        cd.note = "not tested: the test gave no number (too few values?)"
        cd.score = None
    else:
        cd.drifted = test.drifted(cd.score, cd.threshold)
        if test.name == "chisquare" and math.isinf(cd.statistic):
            new = [str(k) for k, r in zip(pair.union_counts[0], pair.union_counts[1]) if r == 0][:5]
            cd.note = f"values never seen in reference ({', '.join(new)}): chi-square is infinite, p = 0"
    return cd, q


class KeptReference:
    """The reference side of each column, prepared on first use and kept for the next comparisons with
    the same reference: its sample (sorted values or counted categories, with their cached mean,
    standard deviation and distinct count) and its rows' hashes."""

    def __init__(self) -> None:
        self._samples: dict[tuple[Any, str, bool, bool], tuple[Any, np.ndarray | None]] = {}

    def sample(self, name: Any, kind: str, as_text: bool, row_hash: bool,
               series: pd.Series) -> tuple[NumericSample | CategoricalSample, np.ndarray | None]:
        key = (name, kind, as_text, row_hash)
        hit = self._samples.get(key)
        if hit is None:
            sample = prepare(_text(series) if as_text else series, kind, row_hash)
            hit = self._samples[key] = (sample, sample.row_hash)
            sample.row_hash = None
        return hit


def smaller_side_stattest(pair: Pair) -> tuple[StatTest, str]:
    """:func:`~nbmlops.monitoring.selection.default_stattest`'s rule (Evidently's) sized by the smaller
    side rather than the reference. A distance's chance level is set by the smaller sample: 300 rows drawn
    from a 5,000-row normal reference's own distribution are at a normed Wasserstein distance of 0.08 on
    average and at 0.1 or more one time in seven (100 rows: 0.13, seven times in ten), while K-S's p-value
    accounts for both sizes. Up to 1,000 values on the smaller side: K-S, chi-square, Z; above: the
    distances, whose chance level is then under 0.05."""
    n = min(pair.ref.n, pair.cur.n)
    size = f"{n:,} values on the smaller side"
    if n <= SMALL:
        if pair.kind == NUMERIC and pair.n_values > 5:
            return get_stattest("ks"), f"numeric, {size}"
        return get_stattest("chisquare" if pair.n_values > 2 else "z"), f"{pair.n_values} distinct values, {size}"
    if pair.kind == NUMERIC and pair.n_values > 5:
        return get_stattest("wasserstein"), f"numeric, {size}"
    what = "categorical" if pair.kind != NUMERIC else f"{pair.n_values} distinct values"
    return get_stattest("jensenshannon"), f"{what}, {size}"


DEFAULTS_BY: dict[str, Callable[[Pair], tuple[StatTest, str]]] = {
    "reference": default_stattest, "smaller": smaller_side_stattest}
SMALLER_TEXT = ("tests chosen by Evidently's default rule sized by the smaller side: for up to 1,000 values there, "
                "K-S (numeric) or chi-square (categorical), Z-test for two values (p < 0.05 is drift); above 1,000, "
                "normed Wasserstein (numeric) or Jensen-Shannon (categorical, or up to 5 values) (distance >= 0.1 "
                "is drift)")


def _run_all(jobs: list[tuple[Callable, tuple]], workers: int, tick: Progress | None) -> Any:
    """Each job's result, in order, as they come; in a thread pool when workers > 1."""
    total = len(jobs)
    if workers <= 1:
        for i, (fn, args) in enumerate(jobs):
            yield fn(*args)
            if tick:
                tick(i + 1, total)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        window = workers * 2       # a few ahead, not all: each result holds row hashes until folded in
        futures = [pool.submit(fn, *args) for fn, args in jobs[:window]]
        for i in range(total):
            result = futures[i].result()
            futures[i] = None
            if i + window < total:
                fn, args = jobs[i + window]
                futures.append(pool.submit(fn, *args))
            yield result
            if tick:
                tick(i + 1, total)


def _text(s: pd.Series) -> pd.Series:
    """Values as strings (missing stay missing): for a column whose kind differs between the frames."""
    return s.astype(object).where(s.isna(), s.astype(str))


def _correct(columns: list[ColumnDrift], method: str | None) -> None:
    """Adjust the p-values of the tested columns for their number, then re-judge them."""
    if method is None:
        return
    tested = [c for c in columns if c.tested and c.score_kind == P_VALUE and c.p_value is not None]
    for c, p in zip(tested, adjust([c.p_value for c in tested], method)):
        c.p_value_adjusted = p
        c.score = p
        c.drifted = p < (c.threshold or 0.05)


def distribution(pair: Pair) -> dict[str, Any]:
    """What the report draws: binned shares of both sides (numbers) or the top categories."""
    if pair.kind == NUMERIC:
        r, c = pair.ref, pair.cur
        assert isinstance(r, NumericSample) and isinstance(c, NumericSample)
        present = [s for s in (r, c) if s.n]
        if not present:
            return {}
        lo = min(s.quantile(0.001) for s in present)
        hi = max(s.quantile(0.999) for s in present)
        if not hi > lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, PLOT_BINS + 1)
        out: dict[str, Any] = {"edges": edges.tolist()}
        for side, s in (("reference", r), ("current", c)):
            counts = histogram_sorted(s.values, edges)
            if s.n:
                counts[0] += int(s.count_below(edges[0], "left"))
                counts[-1] += int(s.n - s.count_below(edges[-1], "right"))
            out[side] = counts.tolist()
        return out
    assert isinstance(pair.ref, CategoricalSample)
    keys, rc, cc = pair.union_counts
    order = np.argsort(-(rc / max(rc.sum(), 1) + cc / max(cc.sum(), 1)), kind="stable")[:TOP_CATEGORIES]
    other = (int(rc.sum() - rc[order].sum()), int(cc.sum() - cc[order].sum()))
    return {"categories": [str(keys[i]) for i in order], "reference": rc[order].tolist(),
            "current": cc[order].tolist(), "other": list(other), "n_categories": len(keys)}


def _names(cols: list[Any], limit: int = 10) -> str:
    names = [str(c) for c in cols]
    return ", ".join(names[:limit]) + (f" … (+{len(names) - limit})" if len(names) > limit else "")


def _describe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): (v.name if isinstance(v, StatTest) else v) for k, v in value.items()}
    return value.name if isinstance(value, StatTest) else value


class _TextProgress:
    """A plain-text progress bar on stderr (no tqdm needed)."""

    def __init__(self, total: int) -> None:
        self.total, self.last = total, -1.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < 0.2:
            return
        self.last = now
        width = 30
        filled = int(width * done / max(total, 1))
        sys.stderr.write(f"\rdrift: [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} columns")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _progress(progress: bool | Progress | None, total: int) -> Progress | None:
    if callable(progress):
        return progress
    if progress is None:
        progress = total >= 100
    return _TextProgress(total) if progress else None
