"""DLE: estimated MAE and RMSE of a regressor from a model of the reference's losses (see the package's docstring)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ...errors import InvalidInput
from .common import MIN_WINDOW, _result, _vector

DLE_METRICS = ("mae", "rmse")
MAX_CATEGORIES = 250      # a text column's most frequent values the loss model tells apart


class DLE:
    """Estimated MAE and RMSE of a regressor from its inputs and predictions alone.

    >>> dle = DLE().fit(X_ref, model.predict(X_ref), y_ref)
    >>> dle.estimate(X_window, model.predict(X_window))["metrics"]["mae"]["estimated"]
    """

    def __init__(self, metrics: tuple[str, ...] = DLE_METRICS, min_window: int = MIN_WINDOW,
                 random_state: int = 0, threads: int = 1) -> None:
        unknown = [m for m in metrics if m not in DLE_METRICS]
        if unknown:
            raise InvalidInput(f"DLE estimates {', '.join(DLE_METRICS)}; not {', '.join(map(str, unknown))}")
        self.metrics, self.min_window, self.random_state = tuple(metrics), int(min_window), random_state
        # the loss models' OpenMP threads: one by default, so a monitor never competes with the request path
        # for every core (and on a busy machine two spinning threads are ~20x slower than one)
        self.threads = int(threads)
        self.columns: list[str] = []
        self.reference: dict[str, float] = {}
        self.notes: list[str] = []
        self._categories: dict[str, list[Any]] = {}
        self._models: dict[str, Any] = {}
        self._components: dict[str, tuple[float, float]] = {}

    def fit(self, reference_features: Any, reference_predictions: Any, reference_targets: Any) -> DLE:
        """Learn the loss models from a reference with targets."""
        # scikit-learn is heavy: imported only when a DLE is fitted
        from sklearn.ensemble import HistGradientBoostingRegressor

        if reference_targets is None:
            raise InvalidInput("the reference has no targets: DLE learns the model's errors from them, so "
                               "estimated MAE and RMSE are unavailable; give a reference with targets")
        if reference_predictions is None:
            raise InvalidInput("the reference has no predictions: DLE needs the model's predict on the reference")
        frame = _frame(reference_features)
        pred, y = _vector(reference_predictions, "reference_predictions"), _vector(reference_targets,
                                                                                   "reference_targets")
        if not len(frame) == len(pred) == len(y):
            raise InvalidInput(f"reference rows differ: {len(frame):,} features, {len(pred):,} predictions, "
                               f"{len(y):,} targets")
        self.notes = []
        keep = np.isfinite(pred) & np.isfinite(y)
        if not keep.all():
            self.notes.append(f"reference: {int((~keep).sum()):,} rows without target or prediction left out")
        if keep.sum() < self.min_window:
            raise InvalidInput(f"the reference has {int(keep.sum()):,} rows with target and prediction; DLE needs "
                               f"at least {self.min_window:,}")
        frame, pred, y = frame[keep].reset_index(drop=True), pred[keep], y[keep]
        empty = [str(c) for c in frame.columns if frame[c].isna().all()]
        if empty:
            self.notes.append(f"column {', '.join(empty)} is empty in the reference: left out of the loss model")
        self.columns = [str(c) for c in frame.columns if str(c) not in empty]
        frame.columns = [str(c) for c in frame.columns]
        self._categories = {}
        for c in self.columns:
            if not _is_numeric(frame[c]):
                counts = frame[c].dropna().astype(str).value_counts()
                self._categories[c] = list(counts.index[:MAX_CATEGORIES])
        x = self._design(frame, pred)
        categorical = [c in self._categories for c in self.columns] + [False]
        error = pred - y
        targets = {"mae": np.abs(error), "rmse": error ** 2}
        self._models = {}
        with _threads().limit(limits=self.threads):
            for m in self.metrics:
                model = HistGradientBoostingRegressor(categorical_features=categorical, random_state=self.random_state)
                self._models[m] = model.fit(x, targets[m])
        self._components = {"mae": (float(np.abs(error).std()), 0.0),
                            "rmse": (float((error ** 2).std()), float((error ** 2).mean()))}
        self.reference = {"mae": float(np.abs(error).mean()), "rmse": float(np.sqrt((error ** 2).mean()))}
        self.reference = {m: v for m, v in self.reference.items() if m in self.metrics}
        return self

    def estimate(self, window_features: Any, window_predictions: Any) -> dict[str, Any]:
        """Estimated metrics of a window, each with its sampling error, band and reference value.

        A window under ``min_window`` rows raises ``InvalidInput``."""
        if not self._models:
            raise InvalidInput("this DLE is not fitted: call fit(reference_features, predictions, targets)")
        frame = _frame(window_features)
        frame.columns = [str(c) for c in frame.columns]
        pred = _vector(window_predictions, "window_predictions")
        if len(frame) != len(pred):
            raise InvalidInput(f"window rows differ: {len(frame):,} features, {len(pred):,} predictions")
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise InvalidInput(f"the window has no column {', '.join(missing)}; the loss model was fitted on "
                               f"{', '.join(self.columns)}")
        notes = []
        keep = np.isfinite(pred)
        if not keep.all():
            notes.append(f"{int((~keep).sum()):,} rows without a prediction left out")
            frame, pred = frame[keep].reset_index(drop=True), pred[keep]
        n = len(pred)
        if n < self.min_window:
            raise InvalidInput(f"a window of {n:,} rows is too small to estimate performance: DLE needs at least "
                               f"{self.min_window:,} (min_window); wait for more traffic")
        empty = [c for c in self.columns if frame[c].isna().all()]
        if empty:
            notes.append(f"column {', '.join(empty)} is empty in the window: the loss model takes its "
                         "missing-value branch there, so the estimate leans on the other columns")
        x = self._design(frame, pred)
        values, errors = {}, {}
        with _threads().limit(limits=self.threads):
            losses = {m: np.maximum(model.predict(x), 0.0) for m, model in self._models.items()}
        for m, loss in losses.items():
            spread, mean_sq = self._components[m]
            if m == "mae":
                values[m], errors[m] = float(loss.mean()), spread / np.sqrt(n)
            else:
                values[m] = float(np.sqrt(loss.mean()))
                errors[m] = float(np.sqrt(spread ** 2 / (4 * n * mean_sq))) if mean_sq > 0 else 0.0
        return _result("dle", n, values, errors, self.reference, {}, notes, lower_bound=0.0, upper_bound=np.inf)

    @staticmethod
    def realized(predictions: Any, targets: Any) -> dict[str, float]:
        """MAE and RMSE from targets (what the estimate stands in for)."""
        error = _vector(predictions, "predictions") - _vector(targets, "targets")
        return {"mae": float(np.abs(error).mean()), "rmse": float(np.sqrt((error ** 2).mean()))}

    def _design(self, frame: Any, pred: np.ndarray) -> np.ndarray:
        """The loss model's inputs: numbers as they are, text as the index of a reference category
        (NaN for missing or never seen values), the prediction last."""
        cols = []
        for c in self.columns:
            if c in self._categories:
                lookup = {v: float(i) for i, v in enumerate(self._categories[c])}
                codes = frame[c].astype(str).map(lookup).to_numpy(dtype=float, na_value=np.nan)
                codes[frame[c].isna().to_numpy()] = np.nan
                cols.append(codes)
            else:
                cols.append(_numbers(frame[c], c))
        cols.append(pred)
        return np.column_stack(cols)


@functools.cache
def _threads() -> Any:
    """The process's OpenMP and BLAS thread pools, found once (a lookup reads /proc/self/maps: ~20 ms)."""
    # threadpoolctl comes with scikit-learn; imported once a loss model exists, so its OpenMP is loaded
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _frame(features: Any) -> Any:
    # pandas is heavy: imported only when a DLE reads features
    import pandas as pd

    if isinstance(features, pd.DataFrame):
        return features.reset_index(drop=True).copy()
    try:
        arr = np.asarray(features)
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"features must be a table (DataFrame or 2-D array): {e}") from None
    if arr.ndim != 2:
        raise InvalidInput(f"features must be 2-D (rows × columns), got shape {arr.shape}")
    return pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])


def _is_numeric(column: Any) -> bool:
    if column.dtype.kind in "biuf":
        return True
    values = column.dropna()
    return len(values) > 0 and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                                   for v in values.head(1000))


def _numbers(column: Any, name: str) -> np.ndarray:
    try:
        return column.to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError):
        raise InvalidInput(f"column {name} was numeric in the reference but holds text in the window") from None
