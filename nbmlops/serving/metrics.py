"""Prometheus metrics owned by one server (its own CollectorRegistry, never the global one)."""

from __future__ import annotations

from typing import Any

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_DECADES = (0.01, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6)
VALUE_BUCKETS = (*(-d for d in reversed(_DECADES)), 0.0, *_DECADES)  # regressors' predictions, sign and decade
MAX_CLASS_LABELS = 256  # a classifier's classes beyond this count as prediction_class="other"


class Metrics:
    def __init__(self, model: str) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.model = model
        self.registry = CollectorRegistry(auto_describe=True)
        self.predictions = Counter("model_predictions", "Predictions served, by version and, for classifiers, "
                                   "predicted class (one of the model's classes_)",
                                   ["model_name", "model_version", "prediction_class"], registry=self.registry)
        self.values = Histogram("model_prediction_value", "Predicted values of regressors", ["model_name",
                                "model_version"], buckets=VALUE_BUCKETS, registry=self.registry)
        self.latency = Histogram("model_prediction_latency_seconds", "Time to answer a prediction request",
                                 ["model_name", "model_version"], buckets=BUCKETS, registry=self.registry)
        self.errors = Counter("model_request_errors", "Requests answered with an error, by reason", ["reason"],
                              registry=self.registry)
        self.in_flight = Gauge("model_requests_in_flight", "Prediction requests being answered",
                               registry=self.registry)
        self.accuracy = Gauge("model_accuracy", "Share of correct predictions among those with feedback",
                              ["model_name", "model_version"], registry=self.registry)
        self.feedback = Counter("model_feedback", "Labels received through /feedback, by correctness",
                                ["model_name", "model_version", "correct"], registry=self.registry)
        self.batch_size = Histogram("model_batch_size", "Rows per vectorized model call",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024), registry=self.registry)
        self.weight = Gauge("model_traffic_weight", "Share of traffic routed to each version",
                            ["model_name", "model_version"], registry=self.registry)
        self._children: dict[tuple[str, str, str | None], Any] = {}
        self._scores: dict[int, list[int]] = {}
        self._classes: dict[int, frozenset[str]] = {}

    def _child(self, metric: Any, version: int, cls: str | None = None) -> Any:
        key = (metric._name, str(version), cls)
        child = self._children.get(key)
        if child is None:
            labels = {"model_name": self.model, "model_version": str(version)}
            if cls is not None:
                labels["prediction_class"] = cls
            child = self._children[key] = metric.labels(**labels)
        return child

    def observe(self, version: int, seconds: float, predictions: list[Any], classes: list[Any] | None) -> None:
        """Latency, and the predictions: counted by class for a classifier (labels bounded by its
        ``classes``), a histogram of values for anything else (no label per distinct value)."""
        from collections import Counter

        self._child(self.latency, version).observe(seconds)
        if classes is None:
            values = self._child(self.values, version)
            numbers = [p for p in predictions if isinstance(p, (int, float)) and not isinstance(p, bool)]
            for p in numbers:
                values.observe(p)
            self._child(self.predictions, version, "").inc(len(predictions))
            return
        known = self._classes.get(version)
        if known is None:
            known = self._classes[version] = frozenset(str(c) for c in classes[:MAX_CLASS_LABELS])
        for cls, n in Counter(str(p) for p in predictions).items():
            self._child(self.predictions, version, cls if cls in known else "other").inc(n)

    def set_weights(self, weights: dict[int, float]) -> None:
        for version, w in weights.items():
            self._child(self.weight, version).set(w)

    def record_feedback(self, version: int, correct: bool) -> float:
        right_total = self._scores.setdefault(version, [0, 0])
        right_total[0] += int(correct)
        right_total[1] += 1
        labels = {"model_name": self.model, "model_version": str(version)}
        self.feedback.labels(correct=str(correct).lower(), **labels).inc()
        value = right_total[0] / right_total[1]
        self.accuracy.labels(**labels).set(value)
        return value

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
