"""Live monitoring: one window of served traffic against a model version's monitoring reference.

The serving process keeps the window; this module judges it, with nothing of HTTP in it:
per-column drift, the drift share, prediction drift and data-quality numbers come from
:func:`~nbmlops.monitoring.drift.drift_report` itself (same tests, same corrections; the reference
side prepared once, :class:`~nbmlops.monitoring.prepared.PreparedReference`), estimated
performance from :mod:`~nbmlops.monitoring.estimate` (CBPE or DLE, fitted once per version on the
reference), realized performance from the labels that arrived for rows of the window.
:func:`record_window` adds the window to the drift history of the version.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .._util import new_id, now_ms
from ..errors import InvalidInput, NotFound
from ..registry import get_model_version, record_drift_summary
from ..store import current_store
from ..store.records import DriftSummaryRecord, LiveWindowRecord
from .columns import ColumnMapping
from .drift import drift_report
from .estimate import CBPE, estimator_for
from .prepared import PreparedReference
from .stattests import BOTH, get_stattest

MIN_ROWS = 30  # below this a window is not tested: the tests' p-values say little about 30 values or fewer
TARGET, PREDICTION = "target", "prediction"  # the reference's columns besides the features (tracking.modelfiles)


class LiveReference:
    """What the windows of one version are compared with: its reference's features and predictions,
    prepared once for the drift tests (``stattest``: one test for every column it applies to, else the
    default tests sized by the window, see :func:`window_drift_options`), and a performance estimator
    fitted once on it (``unavailable`` says why there is none)."""

    def __init__(self, uri: str, model: Any, named_features: bool, stattest: str | None = None,
                 correction: str | None = None) -> None:
        frame = get_model_version(uri).reference()  # NotFound when the version was registered without one
        self.uri = uri
        target = frame.pop(TARGET) if TARGET in frame.columns else None
        self.frame = frame
        self.features = [c for c in frame.columns if c != PREDICTION]
        self.drift = PreparedReference(frame, ColumnMapping(target=None), **window_drift_options(stattest, correction))
        self.estimator: Any = None
        self.unavailable: str | None = None
        if target is None or target.isna().all():
            self.unavailable = ("the reference has no labels (register_model(..., reference=(X, y))): estimated "
                                "performance needs them to calibrate, so none is given")
            return
        X = frame[self.features] if named_features else frame[self.features].to_numpy()
        try:
            self.estimator = estimator_for(model, X, target.to_numpy())
        except InvalidInput as exc:
            self.unavailable = str(exc)

    @property
    def method(self) -> str | None:
        if self.estimator is None:
            return None
        return "cbpe" if isinstance(self.estimator, CBPE) else "dle"


def window_drift_options(stattest: str | None, correction: str | None) -> dict[str, Any]:
    """``drift_report``'s options for windows of served traffic. The default tests are sized by the
    window, not by the reference as ``drift_report``'s are: against a reference of more than 1,000 rows
    Evidently's rule gives normed Wasserstein at 0.1, which a window of a few hundred rows of the
    reference's own distribution crosses by chance (``drift.smaller_side_stattest``); a window of up to
    1,000 rows gets K-S, chi-square or Z, larger ones the distances. A named ``stattest`` tests every
    column of the kinds it applies to; the others keep those defaults."""
    options: dict[str, Any] = {"correction": correction, "performance": False, "default_by": "smaller"}
    if stattest is not None:
        test = get_stattest(stattest)
        options["stattest" if test.kinds == BOTH else "num_stattest"] = test.name
    return options


def evaluate_window(ref: LiveReference, window: Any, probas: np.ndarray | None,
                    labels: list[Any]) -> tuple[dict[str, Any], Any]:
    """Judge ``window`` (the features and a ``prediction`` column, one row per served row) against
    ``ref``: returns (summary, the drift report or None when the window is too small to test).
    ``probas`` are the served probabilities in the estimator's class order; ``labels`` the known
    label of each row, None where none arrived."""
    started = time.perf_counter()
    n = len(window)
    out: dict[str, Any] = {"rows": n}
    if n < MIN_ROWS:
        out["skipped"] = (f"a window of {n} rows is smaller than the {MIN_ROWS} rows the drift tests need: "
                          "nothing computed; wait for more traffic")
        return out, None
    compared = window[[*ref.features, PREDICTION]] if PREDICTION in ref.frame.columns else window[ref.features]
    report = ref.drift.compare(compared)
    features = set(ref.features)
    tested = [c for c in report.columns if c.tested and c.column in features]
    out["drift_share"] = report.share_drifted
    out["dataset_drift"] = report.dataset_drift
    out["features"] = {str(c.column): {"drifted": bool(c.drifted), "stattest": c.stattest, "score": c.score}
                       for c in tested}
    out["not_tested"] = {str(c.column): c.note for c in report.columns if not c.tested}
    prediction = next((p for p in report.prediction if p.tested), None)
    out["prediction_drift"] = None if prediction is None else {
        "drifted": bool(prediction.drifted), "stattest": prediction.stattest, "score": prediction.score}
    out["quality"] = _quality(report, n)
    out["estimated"], out["unavailable"] = _estimate(ref, window, probas)
    out["realized"] = _realized(window[PREDICTION].tolist(), labels, ref.method)
    out["notes"] = report.notes
    out["compute_s"] = round(time.perf_counter() - started, 4)
    return out, report


def _quality(report: Any, n: int) -> dict[str, Any]:
    """Missing values, values never seen in the reference, numbers outside its range, empty columns."""
    columns = (report.quality or {}).get("columns", {})
    missing = {c: round(q["missing_share"][1] * n) for c, q in columns.items() if q["missing_share"][1]}
    new = {c: q["new_categories"]["rows"] for c, q in columns.items() if q.get("new_categories")}
    outside = {c: q["out_of_range"]["below"] + q["out_of_range"]["above"] for c, q in columns.items()
               if q.get("out_of_range") and q["out_of_range"]["below"] + q["out_of_range"]["above"]}
    empty = [c for c, q in columns.items() if q["missing_share"][1] == 1.0]
    return {"missing": missing, "new_categories": new, "out_of_range": outside, "all_missing": empty,
            "missing_total": sum(missing.values()), "new_categories_total": sum(new.values()),
            "out_of_range_total": sum(outside.values())}


def _estimate(ref: LiveReference, window: Any, probas: np.ndarray | None) -> tuple[dict[str, Any], dict[str, str]]:
    """Estimated metrics ({metric: value}) and, for those missing, why."""
    if ref.estimator is None:
        return {}, {"performance": ref.unavailable or "no estimator"}
    try:
        if isinstance(ref.estimator, CBPE):
            if probas is None:
                return {}, {"performance": "the served model gave no probabilities: no CBPE"}
            result = ref.estimator.estimate(probas)
        else:
            result = ref.estimator.estimate(window[ref.features], window[PREDICTION].to_numpy(dtype=float))
    except InvalidInput as exc:  # a window under the estimator's minimum, a column of another type
        return {}, {"performance": str(exc)}
    estimated = {m: v["estimated"] for m, v in result["metrics"].items()}
    return estimated, dict(result.get("unavailable", {}))


def _realized(predictions: list[Any], labels: list[Any], method: str | None) -> dict[str, Any]:
    """Accuracy (classifiers) or MAE (regressors) over the rows of the window that got a label."""
    known = [(p, y) for p, y in zip(predictions, labels) if y is not None]
    out: dict[str, Any] = {"labels": len(known)}
    if not known:
        return out
    if method == "dle":
        try:
            out["mae"] = float(np.mean([abs(float(p) - float(y)) for p, y in known]))
        except (TypeError, ValueError):  # labels that are not numbers: no realized MAE, the label count stays
            pass
        return out
    out["accuracy"] = sum(str(p) == str(y) for p, y in known) / len(known)
    return out


def record_window(uri: str, deployment: str | None, summary: dict[str, Any], report: Any,
                  first: int, last: int, frame: Any = None, labels: list[Any] | None = None) -> DriftSummaryRecord:
    """Add a judged window to the drift history (``drift_history``) and to the version's monitoring
    list; its full numbers are a blob, as a logged report's are, and so are its rows (``frame``, the
    features and predictions, with ``labels`` as a ``target`` column): :func:`window_report` draws the
    full report of it again, :func:`window_data` gives them back (no HTML page is kept: windows are many)."""
    store = current_store()
    sha, size = store.blobs.put_bytes(report.to_json().encode())
    version = get_model_version(uri)
    window: LiveWindowRecord = {"deployment": deployment, "rows": summary["rows"], "first": first, "last": last,
                                "drift_share": summary["drift_share"], "estimated": summary["estimated"],
                                "realized": summary["realized"]}
    if frame is not None:
        data_sha, data_size = store.blobs.put_bytes(_window_bytes(frame, labels))
        window["data"] = {"sha256": data_sha, "size": data_size, "format": "parquet"}
    sources = {"reference": f"model:{version.name}/{version.version}",
               "current": f"serving:{deployment or version.name} (last {summary['rows']:,} rows)",
               "model": f"{version.name}/{version.version}"}
    doc: DriftSummaryRecord = {
        "schema": 1, "id": new_id(), "time": now_ms(), "model": sources["model"], "model_name": version.name,
        "model_version": version.version, "sources": sources,
        "summary": {**report.summary, "estimated": summary["estimated"], "realized": summary["realized"]},
        "report": {"sha256": sha, "size": size}, "run_id": None, "window": window}
    with store.drift_summaries(doc["time"]).edit() as docs:
        docs.insert(doc)
    try:
        record_drift_summary(sources["model"], {"drift_id": doc["id"], "live": True, **doc["summary"]})
    except NotFound:  # the version was deleted while served: the history keeps the window
        pass
    return doc


# -- a recorded window, back: its rows and its full report ---------------------------------------------
def _window_bytes(frame: Any, labels: list[Any] | None) -> bytes:
    """The window's rows as Parquet: features, ``prediction`` and the labels that arrived (``target``,
    missing where none did). Labels of mixed types are kept as text."""
    import io

    data = frame.reset_index(drop=True).copy()
    if labels is not None:
        data[TARGET] = list(labels)
    buf = io.BytesIO()
    try:
        data.to_parquet(buf, index=False)
    except (TypeError, ValueError):  # pyarrow refuses a column of mixed types (labels 1 and "yes"): as text
        for column in data.select_dtypes(include="object").columns:
            data[column] = [None if v is None else str(v) for v in data[column]]
        buf = io.BytesIO()
        data.to_parquet(buf, index=False)
    return buf.getvalue()


def _recorded(drift_id: str) -> tuple[DriftSummaryRecord, LiveWindowRecord]:
    from .log import get_summary  # the history's reader; live.py is imported lazily, log eagerly

    doc = get_summary(drift_id)
    window = doc.get("window")
    if not window:
        raise InvalidInput(f"drift report {drift_id} is not a window a deployment's monitor judged "
                           "(nbmlops.drift_history() shows a deployment for those)")
    if not window.get("data"):
        raise NotFound(f"window {drift_id} was recorded before windows kept their rows: only its numbers remain")
    return doc, window


def window_data(drift_id: str) -> Any:
    """The rows of a window the live monitor recorded (``drift_history()``'s id): the features as the
    model saw them, ``prediction``, and ``target`` where a label arrived through ``/feedback``."""
    import io

    import pandas as pd

    _, window = _recorded(drift_id)
    blob = current_store(create=False).blobs.read_bytes(window["data"]["sha256"])  # hash checked
    return pd.read_parquet(io.BytesIO(blob))


def window_report(drift_id: str) -> Any:
    """The full drift report (a :class:`~nbmlops.monitoring.report.DriftReport`, with its pictures) of a
    window the live monitor recorded, against the version's reference, computed again from its rows
    with the tests and options the monitor used (read from the window's stored numbers): what the
    window's numbers in ``drift_history`` came from."""
    import json

    doc, _ = _recorded(drift_id)
    data = window_data(drift_id)
    store = current_store(create=False)
    used = json.loads(store.blobs.read_bytes(doc["report"]["sha256"])).get("options") or {}  # hash checked
    options = {k: used.get(k) for k in ("stattest", "threshold", "num_stattest", "cat_stattest", "correction")}
    reference = get_model_version(f"{doc['model_name']}/{doc['model_version']}").reference()
    reference = reference.drop(columns=[TARGET], errors="ignore")
    columns = [c for c in reference.columns if c in data.columns]
    return drift_report(reference[columns], data[columns], ColumnMapping(target=None), **options,
                        drift_share=float(used.get("drift_share", 0.5)),
                        default_by=used.get("default_by") or "reference", performance=False, progress=False)
