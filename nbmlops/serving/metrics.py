"""Prometheus metrics owned by one server (its own CollectorRegistry, never the global one)."""

from __future__ import annotations

from typing import Any

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self, model: str, version: int) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.labels = {"model_name": model, "model_version": str(version)}
        self.predictions = Counter("model_predictions", "Predictions served, by predicted class",
                                   ["model_name", "model_version", "prediction_class"], registry=self.registry)
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
        self._latency = self.latency.labels(**self.labels)
        self._class_counters: dict[str, Any] = {}
        self._right = self._total = 0

    def observe(self, seconds: float, predictions: list[Any]) -> None:
        self._latency.observe(seconds)
        for p in predictions:
            key = str(p)
            counter = self._class_counters.get(key)
            if counter is None:
                counter = self._class_counters[key] = self.predictions.labels(prediction_class=key, **self.labels)
            counter.inc()

    def record_feedback(self, correct: bool) -> float:
        self._total += 1
        self._right += int(correct)
        self.feedback.labels(correct=str(correct).lower(), **self.labels).inc()
        value = self._right / self._total
        self.accuracy.labels(**self.labels).set(value)
        return value

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
