"""CBPE: estimated accuracy, ROC AUC and F1 of a classifier from its probabilities (see the package's docstring)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import InvalidInput
from ..performance import roc_auc
from .common import MIN_WINDOW, _is_null, _plain, _result

CBPE_METRICS = ("accuracy", "roc_auc", "f1")


class CBPE:
    """Estimated accuracy, ROC AUC and F1 of a classifier from its probabilities alone.

    >>> cbpe = CBPE().fit(model.predict_proba(X_ref), y_ref, model.classes_)
    >>> cbpe.estimate(model.predict_proba(X_window))["metrics"]["accuracy"]["estimated"]
    """

    def __init__(self, metrics: tuple[str, ...] = CBPE_METRICS, min_window: int = MIN_WINDOW,
                 calibration: str = "auto") -> None:
        unknown = [m for m in metrics if m not in CBPE_METRICS]
        if unknown:
            raise InvalidInput(f"CBPE estimates {', '.join(CBPE_METRICS)}; not {', '.join(map(str, unknown))}")
        if calibration not in ("auto", "isotonic", "none"):
            raise InvalidInput(f"calibration={calibration!r}: use 'auto' (NannyML's test), 'isotonic' or 'none'")
        self.metrics, self.min_window, self.calibration = tuple(metrics), int(min_window), calibration
        self.classes: list[Any] = []
        self.calibrated: list[bool] = []
        self.reference: dict[str, float] = {}
        self.notes: list[str] = []
        self._calibrators: list[tuple[np.ndarray, np.ndarray] | None] = []
        self._components: dict[str, Any] = {}

    def fit(self, reference_probas: Any, reference_labels: Any, classes: Any) -> CBPE:
        """Learn the calibration and the sampling-error components from a labelled reference."""
        if reference_probas is None:
            raise InvalidInput("the reference has no probabilities: CBPE (estimated accuracy, ROC AUC, F1) needs "
                               "the model's predict_proba on the reference; without it only realized metrics exist")
        if reference_labels is None:
            raise InvalidInput("the reference has no labels: CBPE calibrates on known labels, so estimated "
                               "accuracy, ROC AUC and F1 are unavailable; give a labelled reference")
        classes = list(classes)
        if len(classes) < 2 or len(set(map(str, classes))) != len(classes):
            raise InvalidInput(f"classes must name two or more distinct classes, got {classes}")
        probas = self._matrix(reference_probas, len(classes), "reference_probas")
        labels = np.asarray(reference_labels, dtype=object).ravel()
        if len(labels) != len(probas):
            raise InvalidInput(f"reference_labels has {len(labels):,} rows but reference_probas {len(probas):,}")
        self.notes = []
        known = ~_is_null(labels)
        if not known.any():
            raise InvalidInput("the reference's labels are all missing: CBPE calibrates on known labels, so "
                               "estimated accuracy, ROC AUC and F1 are unavailable")
        keep = known & np.isfinite(probas).all(axis=1)
        if not keep.all():
            self.notes.append(f"reference: {int((~keep).sum()):,} rows without label or probabilities left out")
        probas, labels = probas[keep], labels[keep]
        y = _label_index(labels, classes)
        present = np.bincount(y, minlength=len(classes))
        if (present > 0).sum() < 2:
            raise InvalidInput(f"the reference's labels are all of one class ({classes[int(present.argmax())]!r}): "
                               "calibration cannot tell right from wrong; give a reference with every class")
        if len(y) < self.min_window:
            raise InvalidInput(f"the reference has {len(y):,} labelled rows; CBPE needs at least "
                               f"{self.min_window:,} to calibrate")
        absent = [str(_plain(c)) for c, count in zip(classes, present) if not count]
        if absent:
            self.notes.append(f"class {', '.join(absent)} never appears in the reference: its probabilities "
                              "are used uncalibrated and it is left out of the reference's ROC AUC")
        self.classes = classes
        k = len(classes)
        columns = [1] if k == 2 else range(k)
        self._calibrators = []
        for j in columns:
            hit = (y == j).astype(float)
            cal = None
            if present[j] and present[j] < len(y) and _wants_calibration(self.calibration, hit, probas[:, j]):
                cal = _isotonic(probas[:, j], hit)
            self._calibrators.append(cal)
        self.calibrated = [c is not None for c in self._calibrators]
        pred = probas.argmax(axis=1)
        self._components = _cbpe_components(y, pred, probas, k)
        self.reference = {m: v for m, v in _realized(y, pred, probas, k).items() if m in self.metrics}
        return self

    def calibrate(self, probas: Any) -> np.ndarray:
        """The calibrated probabilities of each class (rows sum to 1), one column per class."""
        self._check_fitted()
        p = self._matrix(probas, len(self.classes), "window_probas")
        if len(self.classes) == 2:
            cal = self._calibrators[0]
            p1 = _apply(cal, p[:, 1]) if cal else p[:, 1]
            return np.column_stack([1 - p1, p1])
        out = np.column_stack([_apply(c, p[:, j]) if c else p[:, j] for j, c in enumerate(self._calibrators)])
        total = out.sum(axis=1, keepdims=True)
        return np.divide(out, total, out=np.full_like(out, 1 / out.shape[1]), where=total != 0)

    def estimate(self, window_probas: Any) -> dict[str, Any]:
        """Estimated metrics of a window, each with its sampling error, band and reference value.

        A window under ``min_window`` rows raises ``InvalidInput`` (too few rows to say anything)."""
        self._check_fitted()
        k = len(self.classes)
        p = self._matrix(window_probas, k, "window_probas")
        notes = []
        keep = np.isfinite(p).all(axis=1)
        if not keep.all():
            notes.append(f"{int((~keep).sum()):,} rows without probabilities left out")
            p = p[keep]
        n = len(p)
        if n < self.min_window:
            raise InvalidInput(f"a window of {n:,} rows is too small to estimate performance: CBPE needs at "
                               f"least {self.min_window:,} (min_window); wait for more traffic")
        cal = self.calibrate(p)
        pred = p.argmax(axis=1)
        values, unavailable = {}, {}
        for m in self.metrics:
            value = _ESTIMATORS[m](cal, p, pred, k)
            if value is None or not np.isfinite(value):
                unavailable[m] = ("every row of the window is certain of its class after calibration: "
                                  "the expected ROC curve is undefined")
                continue
            values[m] = float(value)
        return _result("cbpe", n, values, {m: _cbpe_error(m, self._components, n, k) for m in values},
                       self.reference, unavailable, notes, classes=[_plain(c) for c in self.classes],
                       calibrated=self.calibrated)

    def realized(self, probas: Any, labels: Any) -> dict[str, float]:
        """The same metrics computed from labels (what the estimate stands in for)."""
        self._check_fitted()
        p = self._matrix(probas, len(self.classes), "probas")
        y = _label_index(np.asarray(labels, dtype=object).ravel(), self.classes)
        values = _realized(y, p.argmax(axis=1), p, len(self.classes))
        return {m: v for m, v in values.items() if m in self.metrics}

    def _check_fitted(self) -> None:
        if not self.classes:
            raise InvalidInput("this CBPE is not fitted: call fit(reference_probas, reference_labels, classes)")

    @staticmethod
    def _matrix(probas: Any, k: int, name: str) -> np.ndarray:
        """(n, k) float probabilities; a binary model's single column is taken as the positive class's."""
        try:
            p = np.asarray(probas, dtype=float)
        except (TypeError, ValueError) as e:
            raise InvalidInput(f"{name} must be numbers (the model's predict_proba): {e}") from None
        if p.ndim == 1 and k == 2:
            p = np.column_stack([1 - p, p])
        if p.ndim != 2 or p.shape[1] != k:
            raise InvalidInput(f"{name} has shape {p.shape}; expected one column per class ({k})")
        return p


def _wants_calibration(mode: str, hit: np.ndarray, score: np.ndarray) -> bool:
    """NannyML's test: calibrate when isotonic calibration lowers the ECE in 10 shuffle splits."""
    if mode != "auto":
        return mode == "isotonic"
    # scikit-learn is heavy: imported only when a CBPE is fitted
    from sklearn.model_selection import StratifiedShuffleSplit

    if roc_auc(hit.astype(bool), score) > 0.999:
        return False
    if min(hit.sum(), len(hit) - hit.sum()) < 2:    # a class seen once: nothing to stratify nor to learn from
        return False
    truth, raw, calibrated = [], [], []
    for train, test in StratifiedShuffleSplit(n_splits=10, test_size=0.1, random_state=42).split(score, hit):
        cal = _isotonic(score[train], hit[train])
        truth.append(hit[test])
        raw.append(score[test])
        calibrated.append(_apply(cal, score[test]))
    truth_all = np.concatenate(truth)
    return _ece(truth_all, np.concatenate(raw)) > _ece(truth_all, np.concatenate(calibrated))


def _ece(hit: np.ndarray, score: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over equal-count bins of the sorted scores (NannyML's bin edges)."""
    if len(score) <= 2 * bins:
        bins = max(1, len(score) // 2)
    edges = np.arange(0, len(score) + 1, max(1, len(score) // bins))
    edges[-1] = len(score)
    order = np.argsort(score)
    s, h = score[order], hit[order]
    return float(sum((b - a) / len(s) * abs(s[a:b].mean() - h[a:b].mean()) for a, b in zip(edges, edges[1:]) if b > a))


def _isotonic(score: np.ndarray, hit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fitted step function's knots only, applied with ``np.interp`` (clipped at both ends, as
    ``IsotonicRegression(out_of_bounds="clip")`` predicts)."""
    # scikit-learn is heavy: imported only when a CBPE is fitted
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(out_of_bounds="clip", increasing=True, y_min=0.0, y_max=1.0).fit(score, hit)
    return np.asarray(iso.X_thresholds_, dtype=float).copy(), np.asarray(iso.y_thresholds_, dtype=float).copy()


def _apply(cal: tuple[np.ndarray, np.ndarray] | None, score: np.ndarray) -> np.ndarray:
    return score if cal is None else np.interp(score, cal[0], cal[1])


def _expected_accuracy(cal: np.ndarray, _p: np.ndarray, pred: np.ndarray, _k: int) -> float:
    return float(cal[np.arange(len(pred)), pred].mean())


def _expected_f1_of(cal_j: np.ndarray, predicted_j: np.ndarray) -> float:
    tp = cal_j[predicted_j].sum()
    fp = (1 - cal_j[predicted_j]).sum()
    fn = cal_j[~predicted_j].sum()
    denominator = tp + 0.5 * (fp + fn)
    return float(tp / denominator) if denominator else 0.0


def _expected_f1(cal: np.ndarray, _p: np.ndarray, pred: np.ndarray, k: int) -> float:
    if k == 2:
        return _expected_f1_of(cal[:, 1], pred == 1)
    return float(np.mean([_expected_f1_of(cal[:, j], pred == j) for j in range(k)]))


def _expected_auc_of(cal_j: np.ndarray, score_j: np.ndarray) -> float:
    """Area under the expected ROC curve: rows ranked by the model's score, each adding its
    calibrated probability to the expected true positives and the rest to the false positives."""
    order = np.argsort(-score_j, kind="stable")
    tps = np.concatenate([[0.0], np.cumsum(cal_j[order])])
    fps = np.concatenate([[0.0], np.arange(1, len(order) + 1) - tps[1:]])
    if tps[-1] <= 0 or fps[-1] <= 0:
        return float("nan")
    tpr, fpr = tps / tps[-1], fps / fps[-1]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def _expected_auc(cal: np.ndarray, p: np.ndarray, _pred: np.ndarray, k: int) -> float:
    if k == 2:
        return _expected_auc_of(cal[:, 1], p[:, 1])
    return float(np.mean([_expected_auc_of(cal[:, j], p[:, j]) for j in range(k)]))


_ESTIMATORS = {"accuracy": _expected_accuracy, "roc_auc": _expected_auc, "f1": _expected_f1}


def _realized(y: np.ndarray, pred: np.ndarray, p: np.ndarray, k: int) -> dict[str, float]:
    out = {"accuracy": float((y == pred).mean())}
    f1s = []
    for j in ([1] if k == 2 else range(k)):
        tp = float(((pred == j) & (y == j)).sum())
        wrong = float(((pred == j) != (y == j)).sum())
        f1s.append(tp / (tp + 0.5 * wrong) if tp + wrong else 0.0)
    out["f1"] = float(np.mean(f1s))
    aucs = [roc_auc(y == j, p[:, j]) for j in ([1] if k == 2 else range(k)) if 0 < (y == j).sum() < len(y)]
    if aucs:
        out["roc_auc"] = float(np.mean(aucs))
    return out


def _cbpe_components(y: np.ndarray, pred: np.ndarray, p: np.ndarray, k: int) -> dict[str, Any]:
    """NannyML's sampling-error components: per metric, a spread and the share of rows it counts on."""
    classes = [1] if k == 2 else range(k)
    out: dict[str, Any] = {"accuracy": float((y == pred).std())}
    auc, f1 = [], []
    for j in classes:
        hit, score = (y == j), p[:, j]
        if hit.mean() > 0.5:                          # the minority side's ranks, as NannyML counts them
            hit, score = ~hit, 1 - score
        ranked = hit[np.argsort(score, kind="stable")]
        positions = np.flatnonzero(ranked)
        n_pos, n_neg = len(positions), len(ranked) - len(positions)
        if n_pos and n_neg:
            below = (positions - np.arange(n_pos)) / n_neg   # share of negatives under each positive
            auc.append((float(below.var()), n_pos / len(ranked)))
        predicted, actual = pred == j, y == j
        tp, fp, fn = int((predicted & actual).sum()), int((predicted & ~actual).sum()), int((~predicted & actual).sum())
        relevant = tp + fp + fn
        if relevant:
            ones = np.r_[np.ones(tp), np.zeros(fp + fn)]
            scale = relevant / (tp + 0.5 * (fp + fn)) if k == 2 else 1.0
            f1.append((float((ones * scale).var()), relevant / len(y)))
    out["roc_auc"], out["f1"] = auc, f1
    return out


def _cbpe_error(metric: str, components: dict[str, Any], n: int, k: int) -> float:
    c = components[metric]
    if metric == "accuracy":
        return c / np.sqrt(n)
    if not c:
        return float("nan")
    variances = [var / (n * share) for var, share in c]
    if k == 2:
        return float(np.sqrt(variances[0]))
    return float(np.sqrt(np.sum(variances)) / len(variances) * (1.2 if metric == "roc_auc" else 1.0))


def _label_index(labels: np.ndarray, classes: list[Any]) -> np.ndarray:
    """Each label's column in the probabilities; labels match classes by value or by their text."""
    lookup = {str(c): j for j, c in enumerate(classes)}
    index = np.array([lookup.get(str(_plain(v)), -1) for v in labels], dtype=np.int64)
    unknown = sorted({str(v) for v, j in zip(labels, index) if j < 0})
    if unknown:
        raise InvalidInput(f"labels {', '.join(unknown[:5])} are not among the model's classes "
                           f"{[_plain(c) for c in classes]}")
    return index


# -- DLE -------------------------------------------------------------------------------------
