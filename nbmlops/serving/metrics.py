"""Prometheus metrics owned by one server (its own CollectorRegistry, never the global one).

Names follow Prometheus' naming guide: the ``model_`` prefix, base units (seconds), ``_total``
on counters (added by prometheus_client), and labels of bounded cardinality only: a route's
template, never its raw path; a classifier's classes, never predicted values.
"""

from __future__ import annotations

from collections import deque
from typing import Any

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = tuple(float(2 ** i) for i in range(14))  # 1, 2, 4, ... 8192 rows (a request takes 10,000 at most)
_DECADES = (0.01, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6)
VALUE_BUCKETS = (*(-d for d in reversed(_DECADES)), 0.0, *_DECADES)  # regressors' predictions, sign and decade
MAX_CLASS_LABELS = 256  # a classifier's classes beyond this count as prediction_class="other"
ACCURACY_WINDOW = 1000  # labels behind model_accuracy_windowed, unless serve(accuracy_window=N)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})  # others count as "other"
UNMATCHED = "unmatched"  # the route label of a path no route matches


class Metrics:
    def __init__(self, model: str, accuracy_window: int = ACCURACY_WINDOW) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        if isinstance(accuracy_window, bool) or not isinstance(accuracy_window, int) or accuracy_window < 1:
            raise ValueError(f"accuracy_window must be a number of labels >= 1, got {accuracy_window!r}")
        self.model, self.accuracy_window = model, accuracy_window
        self.registry = registry = CollectorRegistry(auto_describe=True)
        mv = ["model_name", "model_version"]
        self.requests = Counter("model_http_requests", "HTTP requests answered, by route template, method and "
                                "status (those the server refused at the door too)", ["route", "method", "status"],
                                registry=registry)
        self.request_latency = Histogram("model_http_request_duration_seconds", "Whole-request time, from the "
                                         "request's arrival to the last byte of the answer (HTTP, parsing, queue, "
                                         "model, JSON)", ["route", "method", "status"], buckets=BUCKETS,
                                         registry=registry)
        self.predictions = Counter("model_predictions", "Predictions served, by version and, for classifiers, "
                                   "predicted class (one of the model's classes_)", [*mv, "prediction_class"],
                                   registry=registry)
        self.values = Histogram("model_prediction_value", "Predicted values of regressors", mv,
                                buckets=VALUE_BUCKETS, registry=registry)
        self.latency = Histogram("model_prediction_latency_seconds", "Model time of a prediction request: its "
                                 "rows' wait in the batching queue and the model call", mv, buckets=BUCKETS,
                                 registry=registry)
        self.errors = Counter("model_request_errors", "Requests answered with an error, by reason (model_version "
                              "is empty when the error came before a version was chosen)", [*mv, "reason"],
                              registry=registry)
        self.in_flight = Gauge("model_requests_in_flight", "Prediction requests being answered", registry=registry)
        self.accuracy = Gauge("model_accuracy", "Share of correct predictions among all those with feedback",
                              mv, registry=registry)
        self.windowed = Gauge("model_accuracy_windowed", f"Share of correct predictions among the last "
                              f"{accuracy_window} with feedback", mv, registry=registry)
        self.window_size = Gauge("model_accuracy_window_predictions", "Labelled predictions behind "
                                 f"model_accuracy_windowed (at most {accuracy_window})", mv, registry=registry)
        self.feedback = Counter("model_feedback", "Labels received through /feedback, by correctness",
                                [*mv, "correct"], registry=registry)
        self.batch_size = Histogram("model_batch_size", "Rows per vectorized model call", buckets=BATCH_BUCKETS,
                                    registry=registry)
        self.weight = Gauge("model_traffic_weight", "Share of traffic routed to each version", mv,
                            registry=registry)
        self._monitor_metrics(registry, mv)
        self._children: dict[tuple[str, str, str | None], Any] = {}
        self._http: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._scores: dict[int, _Score] = {}
        self._classes: dict[int, tuple[frozenset[str], dict[str, Any]]] = {}  # version -> known, class -> series

    def _child(self, metric: Any, version: int | str, third: str | None = None) -> Any:
        """The series of ``metric`` for this model, ``version`` and the value of its third label if any."""
        key = (metric._name, str(version), third)
        child = self._children.get(key)
        if child is None:
            values = (self.model, str(version)) if third is None else (self.model, str(version), third)
            child = self._children[key] = metric.labels(*values)
        return child

    def http(self, route: str, method: str, status: int, seconds: float) -> None:
        """One answered HTTP request: ``route`` is its template (``/v2/models/{model_name}/infer``)."""
        children = self._http.get((route, method, status))
        if children is None:
            if method not in METHODS:  # any token is a method to HTTP: one key for the rest, or the cache grows
                method = "other"
            key = (route, method, status)
            children = self._http.get(key)
            if children is None:
                labels = (route, method, str(status))
                children = self._http[key] = (self.requests.labels(*labels), self.request_latency.labels(*labels))
        children[0].inc()
        children[1].observe(seconds)

    def count_error(self, reason: str, version: int | None = None) -> None:
        """One request answered with an error; ``version`` when one had been chosen."""
        self._child(self.errors, "" if version is None else version, reason).inc()

    def observe(self, version: int, seconds: float, predictions: list[Any], classes: list[Any] | None) -> None:
        """Latency, and the predictions: counted by class for a classifier (labels bounded by its
        ``classes``), a histogram of values for anything else (no label per distinct value)."""
        self._child(self.latency, version).observe(seconds)
        if classes is None:
            values = self._child(self.values, version)
            numbers = [p for p in predictions if isinstance(p, (int, float)) and not isinstance(p, bool)]
            for p in numbers:
                values.observe(p)
            self._child(self.predictions, version, "").inc(len(predictions))
            return
        cached = self._classes.get(version)
        if cached is None:
            cached = self._classes[version] = (frozenset(str(c) for c in classes[:MAX_CLASS_LABELS]), {})
        known, series = cached
        if len(predictions) == 1:  # the common request: no counting pass
            counts: Any = ((str(predictions[0]), 1),)
        else:
            from collections import Counter  # a name of this module's own (the class Counter of prometheus_client)

            counts = Counter(str(p) for p in predictions).items()
        for cls, n in counts:
            child = series.get(cls)
            if child is None:
                child = series[cls] = self._child(self.predictions, version, cls if cls in known else "other")
            child.inc(n)

    def set_weights(self, weights: dict[int, float]) -> None:
        """The versions' traffic shares. A version's model time and its errors an alert watches exist
        from then on at 0, so that ``rate()`` sees their first increase (a new series' first value is not one)."""
        for version, w in weights.items():
            self._child(self.weight, version).set(w)
            self._child(self.latency, version)
            for reason in ("model_error", "overloaded"):
                self._child(self.errors, version, reason)

    def record_feedback(self, version: int, correct: bool) -> float:
        """Count one labelled prediction; returns the lifetime accuracy of ``version``."""
        score = self._scores.get(version)
        if score is None:
            score = self._scores[version] = _Score(self.accuracy_window)
        score.add(correct)
        self._child(self.feedback, version, "true" if correct else "false").inc()
        self._child(self.accuracy, version).set(score.right / score.total)
        self._child(self.windowed, version).set(score.window_right / len(score.window))
        self._child(self.window_size, version).set(len(score.window))
        return score.right / score.total

    def _monitor_metrics(self, registry: Any, mv: list[str]) -> None:
        """The live monitor's series (``serve(monitor=True)``): each describes the latest judged window."""
        from prometheus_client import Counter, Gauge, Histogram

        def gauge(name: str, text: str, extra: tuple[str, ...] = ()) -> Any:
            return Gauge(name, text, [*mv, *extra], registry=registry)

        self.drift_share = gauge("model_drift_share", "Share of the model's features that drifted in the latest "
                                 "monitored window (same tests and correction as drift_report)")
        self.feature_drift = gauge("model_feature_drift", "1 when the feature drifted in the latest monitored "
                                   "window, 0 when it did not (the model's features only)", ("feature",))
        self.prediction_drift = gauge("model_prediction_drift", "1 when the predictions drifted in the latest "
                                      "monitored window, 0 when they did not")
        self.drift_in_a_row = gauge("model_drifted_windows_in_a_row", "Consecutive monitored windows whose "
                                    "drift share reached the dataset drift threshold")
        self.estimated = {m: gauge(f"model_estimated_{m}", f"{label} of the latest monitored window, estimated "
                                   "without labels (CBPE for classifiers, DLE for regressors); NaN when unavailable")
                          for m, label in (("accuracy", "Accuracy"), ("auc", "ROC AUC"), ("f1", "F1"),
                                           ("mae", "Mean absolute error"), ("rmse", "Root mean squared error"))}
        self.realized_accuracy = gauge("model_realized_accuracy", "Accuracy over the rows of the latest monitored "
                                       "window that got a label through /feedback; NaN without labels")
        self.realized_labels = gauge("model_realized_window_labels", "Labelled rows behind model_realized_accuracy")
        self.window_quality = {k: gauge(f"model_window_{k}", f"{text} in the latest monitored window") for k, text in (
            ("missing_values", "Missing feature values"),
            ("new_category_values", "Values of categorical features never seen in the reference"),
            ("out_of_range_values", "Numbers outside the reference's range"))}
        self.windows = Counter("model_monitor_windows", "Windows the live monitor judged", mv, registry=registry)
        self.windows_dropped = Counter("model_monitor_windows_dropped", "Windows the live monitor skipped because "
                                       "the previous one of that version still waited to be judged", mv,
                                       registry=registry)
        self.window_seconds = Histogram("model_monitor_window_seconds", "Time to judge one window (drift tests, "
                                        "data quality, estimated performance), off the request path",
                                        buckets=BUCKETS, registry=registry)

    def set_window(self, version: int, summary: dict[str, Any], features: list[str]) -> None:
        """The gauges of a judged window (called by the monitor's thread)."""
        nan = float("nan")
        self._child(self.drift_share, version).set(summary["drift_share"])
        known = set(features)
        for feature, result in summary["features"].items():
            if feature in known:
                self._child(self.feature_drift, version, feature).set(float(result["drifted"]))
        pred = summary.get("prediction_drift")
        self._child(self.prediction_drift, version).set(nan if pred is None else float(pred["drifted"]))
        self._child(self.drift_in_a_row, version).set(summary.get("drifted_windows_in_a_row", 0))
        estimated = summary.get("estimated", {})
        for metric, gauge in self.estimated.items():
            value = estimated.get("roc_auc" if metric == "auc" else metric)
            if value is not None:
                self._child(gauge, version).set(value)
            elif (gauge._name, str(version), None) in self._children:  # unavailable now: no stale value
                self._child(gauge, version).set(nan)
        realized = summary.get("realized", {})
        self._child(self.realized_accuracy, version).set(realized.get("accuracy", nan))
        self._child(self.realized_labels, version).set(realized.get("labels", 0))
        quality = summary.get("quality", {})
        for key, total in (("missing_values", "missing_total"), ("new_category_values", "new_categories_total"),
                           ("out_of_range_values", "out_of_range_total")):
            self._child(self.window_quality[key], version).set(quality.get(total, 0))

    def window_done(self, version: int, seconds: float) -> None:
        self._child(self.windows, version).inc()
        self._child(self.windows_dropped, version)  # at 0 from the first window, so rate() sees the first drop
        self.window_seconds.observe(seconds)

    def window_dropped(self, version: int) -> None:
        self._child(self.windows_dropped, version).inc()

    def render(self) -> bytes:
        """The text exposition, without ``_created`` series: filtered here, for this registry only
        (``disable_created_metrics()`` would change every registry of the process)."""
        from prometheus_client import generate_latest

        return generate_latest(_WithoutCreated(self.registry))  # type: ignore[arg-type]


class _Score:
    """One version's labelled predictions: right and total over its lifetime and over its last N."""

    __slots__ = ("right", "total", "window", "window_right")

    def __init__(self, n: int) -> None:
        self.right = self.total = self.window_right = 0
        self.window: deque[bool] = deque(maxlen=n)

    def add(self, correct: bool) -> None:
        self.right += correct
        self.total += 1
        if len(self.window) == self.window.maxlen:
            self.window_right -= self.window[0]
        self.window.append(correct)
        self.window_right += correct


class _WithoutCreated:
    """A registry's families minus their ``_created`` samples (the time each series was created)."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def collect(self) -> Any:
        for family in self.registry.collect():
            created = family.name + "_created"
            family.samples = [s for s in family.samples if s.name != created]
            yield family
