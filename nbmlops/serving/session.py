"""A serving session: what the server does for each request, apart from HTTP.

Scoring (through the route's batcher), its metrics, the request log, shadow traffic, the
feedback cache that labels earlier requests, and the A/B weights. The HTTP face
(:mod:`nbmlops.serving.app`) parses a request, calls the session and formats its answer.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from .batching import Overloaded
from .feedback import FeedbackCache
from .metrics import Metrics
from .monitor import Monitor
from .payloads import PayloadError
from .reqlog import RequestLog
from .router import Route, Router

log_ = logging.getLogger("nbmlops.serving")


class ModelError(PayloadError):
    """The model refused an input that passed validation (422); ``version`` is the one that refused it."""

    def __init__(self, message: str, version: int) -> None:
        super().__init__(message, 422, "model_error")
        self.version = version


class ServingSession:
    """The served model(s) of one server: score, take feedback, change weights, report."""

    def __init__(self, router: Router, metrics: Metrics, log: RequestLog | None = None,
                 feedback_bytes: int | None = None, monitor: Monitor | None = None) -> None:
        self.router, self.metrics, self.log, self.monitor = router, metrics, log, monitor
        self.recent = FeedbackCache(*([feedback_bytes] if feedback_bytes else []))
        self.started = time.time()
        self.requests = 0
        metrics.set_weights(router.weights)

    @property
    def name(self) -> str:
        return self.router.name

    def start(self) -> None:
        self.router.start()
        if self.monitor is not None:
            self.monitor.start()

    def close(self) -> None:
        if self.monitor is not None:
            self.monitor.close()
        if self.log is not None:
            self.log.close()

    def route(self, key: str | None, body: Any) -> Route:
        """The route of a request: by its request key (header, else the body's ``key``), else by weight."""
        if key is None and isinstance(body, dict) and isinstance(body.get("key"), (str, int)):
            key = str(body["key"])
        return self.router.pick(key)

    def first(self) -> Route:
        return self.router.pick(None)

    async def predict(self, route: Route, rows: list[list[Any]], request_id: str) -> dict[str, list[Any]]:
        """Score ``rows`` with ``route``'s model; count it, keep it for feedback, log it, shadow it."""
        metrics, version = self.metrics, route.model.version
        start = time.perf_counter()
        metrics.in_flight.inc()
        try:
            out = await route.batcher.submit(rows)
        except Overloaded:
            metrics.count_error("overloaded", version)
            raise
        except PayloadError:
            raise
        except Exception as exc:  # the message may quote the input: it goes to the server log only
            log_.warning("model error in request %r (version %s): %s: %r", request_id[:64], version,
                         type(exc).__name__, str(exc)[:200])
            raise ModelError(f"the model could not score this input ({type(exc).__name__}): {_hint(exc)}; "
                             "the server log has the model's own message", version) from None
        finally:
            metrics.in_flight.dec()
        seconds = time.perf_counter() - start
        metrics.observe(version, seconds, out["predictions"], route.model.classes)
        self.requests += 1
        self.recent.add(request_id, version, out["predictions"], route.model.class_names)
        if self.monitor is not None:
            self.monitor.add(route.model, rows, out, request_id)
        now = time.time_ns() // 1_000_000
        log = self.log
        if log is not None:
            log.add({"t": now, "id": request_id, "v": version, "lat": round(seconds * 1000, 3), "rows": rows,
                     "out": out["predictions"]})
        if self.router.shadow is not None:
            self.shadow(rows, request_id, now)
        return out

    def shadow(self, rows: list[list[Any]], request_id: str, now: int) -> None:
        """Score a copy of ``rows`` with the shadow version in the background; its answer is only logged."""
        log = self.log
        self.router.run_shadow(rows, lambda r: log.add({"t": now, "id": request_id, **r}) if log else None)

    def feedback(self, body: Any) -> dict[str, Any]:
        """Label an earlier request (``{"request_id", "label" | "labels"}``): accuracy metrics and the log."""
        if not isinstance(body, dict) or not isinstance(body.get("request_id"), str):
            raise PayloadError('the body must be {"request_id": "...", "label": ...}')
        rid = body["request_id"]
        labels = body.get("labels", [body.get("label")] if "label" in body else None)
        version, correct = self.recent.label(rid, labels)  # 404 unknown, 409 a row labelled before, 422 malformed
        rows = [i for i, c in enumerate(correct) if c is not None]
        if self.monitor is not None:
            self.monitor.label(rid, version, labels)
        accuracy = 0.0
        for i in rows:
            accuracy = self.metrics.record_feedback(version, bool(correct[i]))
        if self.log is not None:
            self.log.add({"t": time.time_ns() // 1_000_000, "feedback": rid, "v": version, "rows": rows,
                          "labels": [labels[i] for i in rows], "correct": [correct[i] for i in rows]})
        return {"request_id": rid, "version": version, "correct": correct, "accuracy": accuracy}

    def set_weights(self, body: Any) -> dict[str, Any]:
        """Change the A/B weights (``{"weights": {VERSION: WEIGHT}}``); returns the weights now in force."""
        if not isinstance(body, dict) or not isinstance(body.get("weights"), dict) or not body["weights"]:
            raise PayloadError('the body must be {"weights": {"VERSION": WEIGHT, ...}}')
        try:
            asked = {int(v): w for v, w in body["weights"].items()}
        except ValueError:
            raise PayloadError("weights are keyed by version number") from None
        router = self.router
        new = router.set_weights(asked)
        self.metrics.set_weights({**{v: 0.0 for v in router.routes}, **new})
        return {"weights": {str(v): w for v, w in new.items()}}

    def monitor_info(self) -> dict[str, Any]:
        """The latest monitored window of each version (``GET /monitor``); 404 when not monitoring."""
        if self.monitor is None:
            raise PayloadError("this deployment has no live monitor: serve(..., monitor=True) or %serve --monitor",
                               404, "not_monitored")
        return {"model": self.name, **self.monitor.info()}

    def info(self, deployment: str | None) -> dict[str, Any]:
        """The served model(s): type, version, sha256, signature, routing, uptime and requests."""
        router = self.router
        return {**self.first().model.info(), "deployment": deployment, "routing": router.info(),
                "versions": {str(v): r.model.info() for v, r in router.routes.items()},
                "uptime_s": round(time.time() - self.started, 1), "requests": self.requests}


def _hint(exc: Exception) -> str:
    """What a model error usually means, in words that quote nothing of the input."""
    text = str(exc)
    if "unknown categor" in text:
        return "a categorical feature has a value the model never saw in training"
    if "could not convert" in text or "convert string" in text:
        return "a value could not be read as a number"
    if "NaN" in text or "missing values" in text:
        return "the model does not accept missing values"
    return "the input passed validation but the model refused it"
