"""Model quality on reference and on current, when both target and prediction are there.

Classification: accuracy, precision, recall, F1 (binary: of the positive class; more classes:
macro averages), ROC AUC when probabilities exist, confusion matrix. Regression: MAE, RMSE,
R², MAPE and the error distribution. The definitions are scikit-learn's (tests check them
against ``sklearn.metrics``); the counting is numpy's, so a million rows take milliseconds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .columns import CATEGORICAL, ColumnMapping

ERROR_BINS = 30


def evaluate(reference: pd.DataFrame, current: pd.DataFrame, target: str | None, predictions: list[str],
             target_kind: str | None, mapping: ColumnMapping) -> dict[str, Any] | None:
    """Both sides' metrics, or None when there is no target or prediction at all."""
    if target is None or not predictions:
        return None
    task = mapping.task or ("classification" if target_kind == CATEGORICAL else "regression")
    out: dict[str, Any] = {"task": task, "target": str(target), "prediction": [str(p) for p in predictions],
                           "notes": []}
    for side, df in (("reference", reference), ("current", current)):
        missing = [c for c in (target, *predictions) if c not in df.columns]
        if missing:
            out["notes"].append(f"no performance on {side}: no column {', '.join(map(str, missing))}")
            continue
        y, pred = df[target], df[predictions]
        keep = y.notna().to_numpy() & pred.notna().all(axis=1).to_numpy()
        dropped = int(len(keep) - keep.sum())
        if dropped:
            out["notes"].append(f"{side}: {dropped:,} rows without target or prediction left out")
        if not keep.any():
            out["notes"].append(f"no performance on {side}: no row has both target and prediction")
            continue
        y, pred = y[keep], pred[keep]
        if task == "classification":
            out[side] = classification(y, pred, mapping.pos_label)
        else:
            out[side] = regression(y.to_numpy(dtype=float), pred.iloc[:, 0].to_numpy(dtype=float))
    return out


# -- classification --------------------------------------------------------------------------

def classification(y: pd.Series, pred: pd.DataFrame, pos_label: Any = None) -> dict[str, Any]:
    labels_true = y.to_numpy()
    proba = None
    if pred.shape[1] > 1:                                   # one probability column per class
        classes = _match_classes(list(pred.columns), labels_true)
        proba = pred.to_numpy(dtype=float)
        labels_pred = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
        labels_true = labels_true.astype(object)
    else:
        col = pred.iloc[:, 0]
        values = col.to_numpy()
        classes_true = pd.unique(labels_true)
        if (pd.api.types.is_float_dtype(col.dtype) and len(classes_true) <= 2
                and np.nanmin(values) >= 0 and np.nanmax(values) <= 1 and not _all_integral(values)):
            pos = _positive(classes_true, pos_label)
            neg = [c for c in classes_true if c != pos]
            proba = values.astype(float)
            labels_pred = np.where(proba >= 0.5, pos, neg[0] if neg else _other(pos))
            pos_label = pos
        else:
            labels_pred = values
    labels = _sorted_labels(np.concatenate([pd.unique(labels_true), pd.unique(labels_pred)]))
    cm = confusion_matrix(labels_true, labels_pred, labels)
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    out: dict[str, Any] = {"rows": int(cm.sum()), "accuracy": float(tp.sum() / cm.sum())}
    binary = len(labels) <= 2
    if binary:
        pos = _positive(labels, pos_label)
        i = labels.index(pos)
        p, r = _div(tp[i], predicted[i]), _div(tp[i], support[i])
        out.update(precision=p, recall=r, f1=_div(2 * p * r, p + r), average=f"binary (positive class {pos})")
    else:
        p = np.array([_div(t, n) for t, n in zip(tp, predicted)])
        r = np.array([_div(t, n) for t, n in zip(tp, support)])
        f = np.array([_div(2 * a * b, a + b) for a, b in zip(p, r)])
        out.update(precision=float(p.mean()), recall=float(r.mean()), f1=float(f.mean()), average="macro")
    if proba is not None:
        try:
            if proba.ndim == 1:
                pos = _positive(labels, pos_label)
                out["roc_auc"] = roc_auc(labels_true == pos, proba)
            else:
                if len(classes) == 2:
                    k = classes.index(_positive(classes, pos_label))
                    out["roc_auc"] = roc_auc(labels_true == classes[k], proba[:, k])
                else:  # one-vs-rest, macro average (sklearn's multi_class="ovr")
                    out["roc_auc"] = float(np.mean([roc_auc(labels_true == c, proba[:, k])
                                                    for k, c in enumerate(classes)]))
        except ValueError:
            out["roc_auc"] = None
    out["confusion_matrix"] = {"labels": [str(v) for v in labels], "matrix": cm.tolist()}
    return out


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, labels: list[Any]) -> np.ndarray:
    k = len(labels)
    cats = pd.Index(labels, dtype=object)
    t = cats.get_indexer(pd.Index(y_true, dtype=object))
    p = cats.get_indexer(pd.Index(y_pred, dtype=object))
    return np.bincount(t.astype(np.int64) * k + p, minlength=k * k).reshape(k, k)


def roc_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve: the Mann-Whitney U of the scores of positives over negatives."""
    from scipy.stats import rankdata

    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC AUC needs both classes")
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _sorted_labels(values: np.ndarray) -> list[Any]:
    uniq = list(dict.fromkeys(v.item() if isinstance(v, np.generic) else v for v in values))
    try:
        return sorted(uniq)
    except TypeError:
        return sorted(uniq, key=str)


def _positive(labels: Any, pos_label: Any) -> Any:
    labels = list(labels)
    if pos_label is not None:
        return pos_label
    for candidate in (1, True, "1", "yes", "true", "True"):
        if candidate in labels:
            return candidate
    return _sorted_labels(np.asarray(labels, dtype=object))[-1]


def _other(pos: Any) -> Any:
    return 0 if pos in (1, True) else f"not {pos}"


def _match_classes(columns: list[Any], y: np.ndarray) -> list[Any]:
    """Class labels for probability columns named after them (``"1"`` names class ``1``)."""
    by_text = {str(v): v for v in pd.unique(y)}
    return [by_text.get(str(c), c) for c in columns]


def _all_integral(values: np.ndarray) -> bool:
    v = values[~np.isnan(values)]
    return bool(np.all(v == np.round(v)))


def _div(a: float, b: float) -> float:
    return float(a / b) if b else 0.0


# -- regression ------------------------------------------------------------------------------

def regression(y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    err = pred - y
    mae = float(np.mean(np.abs(err)))
    mse = float(np.mean(err ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    eps = np.finfo(np.float64).eps
    mape = float(np.mean(np.abs(err) / np.maximum(np.abs(y), eps)))
    lo, hi = np.quantile(err, [0.005, 0.995]) if len(err) else (0.0, 0.0)
    edges = np.linspace(lo, hi if hi > lo else lo + 1, ERROR_BINS + 1)
    counts = np.histogram(np.clip(err, edges[0], edges[-1]), edges)[0]
    return {"rows": int(len(y)), "mae": mae, "rmse": mse ** 0.5,
            "r2": (1 - float(np.sum(err ** 2)) / ss_tot) if ss_tot > 0 else (1.0 if mse == 0 else 0.0),
            "mape": mape, "mean_error": float(err.mean()), "error_std": float(err.std()),
            "error_quantiles": {q: float(v) for q, v in zip(("p05", "p25", "p50", "p75", "p95"),
                                                           np.quantile(err, [0.05, 0.25, 0.5, 0.75, 0.95]))},
            "error_histogram": {"edges": edges.tolist(), "counts": counts.tolist()}}
