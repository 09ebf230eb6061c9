"""The HTTP face of a served model: nbmlops' /predict, KServe V1/V2, MLflow's /invocations,
health, model info, feedback and Prometheus metrics. Errors are ``{"error": "..."}``.

Other web pages must not drive it (a browser lets any page POST to 127.0.0.1): every POST
must say ``Content-Type: application/json`` or another type no HTML form or no-cors fetch can
send (CSV and Parquet to ``/invocations``, the binary tensors of the Open Inference Protocol,
which also come with their ``Inference-Header-Content-Length`` header), 415 otherwise; a
request whose ``Origin`` is not this server's own is refused (403), and the admin
routes (``/admin/*``) and ``/feedback`` need the admin token ``serve()`` always creates,
even when prediction is open. Liveness and readiness probes need no token, on every protocol
(:data:`OPEN`); ``/metrics`` takes the prediction token like prediction does.

Every request, refused ones included, is counted and timed by its route's template
(:class:`HttpMetrics`, outside the :class:`Guard`). The prediction routes are answered by the
fast path in front of both (:mod:`nbmlops.serving.fast`), with the same checks, counts and answers.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from . import protocols
from .batching import Overloaded
from .fast import FastPath
from .http import (
    Incoming,
    Reader,
    answer_response,
    body_schema,
    error_answer,
    error_body,
    error_response,
    json_response,
    reader,
    send_answer,
)
from .metrics import UNMATCHED, Metrics
from .monitor import Monitor
from .payloads import PayloadError
from .reqlog import RequestLog
from .router import Router
from .session import ServingSession

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
# liveness and readiness, the same on every protocol: no token asked (probes rarely carry one)
OPEN = frozenset({"/", "/health", "/ready", "/ping", "/v2/health/live", "/v2/health/ready"})
OPEN_MODEL = re.compile(r"/v2/models/[^/]+(?:/versions/[^/]+)?/ready|/v1/models/[^/:]+")  # a model's readiness
ADMIN = ("/admin/", "/feedback")  # the admin token only
log_ = logging.getLogger("nbmlops.serving")
JSON = b"application/json"
MLFLOW_MEDIA = (JSON, b"text/csv", b"application/x-parquet", b"application/vnd.apache.parquet")


def _media_refused(path: str, headers: dict[bytes, bytes]) -> str | None:
    """Why a POST's body type is refused on ``path`` (None when it is taken). Each type taken is one
    a browser sends cross-site only after a CORS preflight, which this server never answers."""
    media = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
    if media == JSON:
        return None
    if path == "/invocations":
        return None if media in MLFLOW_MEDIA else \
            "/invocations takes application/json, text/csv or application/x-parquet bodies"
    # tritonclient sends its JSON and binary requests with no Content-Type at all: a browser's
    # cross-site POST without one still carries an Origin, which Guard refuses
    if path.startswith("/v2/") and media in (b"", b"application/octet-stream"):
        return None
    return "POST bodies must be JSON sent with Content-Type: application/json"


class Guard:
    """ASGI middleware: Host check on loopback (DNS rebinding), Origin check (other web pages),
    POST bodies of types no cross-site form can send, bearer tokens (admin routes: the admin token;
    others: the prediction token if one was given, or the admin token), body size cap."""

    def __init__(self, app: Any, loopback: bool, token: str | None, max_body: int, metrics: Metrics,
                 admin_token: str | None = None) -> None:
        self.app, self.loopback, self.token, self.max_body, self.metrics = app, loopback, token, max_body, metrics
        self.expected = f"Bearer {token}".encode() if token else None
        self.admin = f"Bearer {admin_token}".encode() if admin_token else None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refused = self.refusal(scope, dict(scope["headers"]))
        if refused:
            return await self._deny(scope, send, *refused)
        return await self.app(scope, receive, send)

    def refusal(self, scope: dict[str, Any], headers: dict[bytes, bytes]) -> tuple[int, str, str] | None:
        """Why the request is refused at the door, as (status, reason, message); None when it may pass."""
        if self.loopback:
            host = headers.get(b"host", b"").decode("latin-1")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name not in LOOPBACK:
                return 403, "host_not_allowed", "this server only answers requests addressed to a loopback host"
        origin = headers.get(b"origin")
        if origin is not None and origin.lower() not in (b"http://" + headers.get(b"host", b"").lower(),
                                                         b"https://" + headers.get(b"host", b"").lower()):
            return 403, "cross_origin", "requests from other web pages are refused (Origin is not this server)"
        denied = self._auth(scope["path"], headers.get(b"authorization", b""))
        if denied:
            return 401, "unauthorized", denied
        refused = _media_refused(scope["path"], headers) if scope["method"] == "POST" else None
        if refused:
            return 415, "unsupported_media_type", refused
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return 413, "body_too_large", f"request bodies are limited to {self.max_body} bytes"
        return None

    def _auth(self, path: str, given: bytes) -> str | None:
        """Why the Authorization header does not open ``path`` (None when it does)."""
        if path in OPEN or OPEN_MODEL.fullmatch(path):
            return None
        admin_ok = self.admin is not None and hmac.compare_digest(given, self.admin)
        if path.startswith(ADMIN):
            if self.admin is None:  # started without one (an old serve()): refuse rather than open
                return "this route needs the deployment's admin token, and this server has none"
            return None if admin_ok else "this route needs the deployment's admin token (Deployment.admin_token)"
        if self.expected and not (admin_ok or hmac.compare_digest(given, self.expected)):
            return "missing or wrong Authorization: Bearer token"
        return None

    async def _deny(self, scope: dict[str, Any], send: Any, status: int, reason: str, message: str) -> None:
        self.metrics.count_error(reason)
        status, body = error_body(scope["path"], status, message)
        await send_answer(send, status, body, "application/json")


class HttpMetrics:
    """ASGI middleware outside the :class:`Guard`: counts and times every request by its route's
    template, method and status (``model_http_requests_total``, ``model_http_request_duration_seconds``),
    refused ones too. A path no route matches counts as one route, ``unmatched``."""

    def __init__(self, app: Any, routes: list[Any], metrics: Metrics) -> None:
        self.app, self.routes, self.metrics = app, routes, metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500  # unless the app answers: an exception before any answer is a 500 from the server

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")  # set by the router on the requests that reached it
            template = route.path if route is not None else self._template(scope["path"], scope["method"])
            self.metrics.http(template, scope["method"], status, time.perf_counter() - start)

    def _template(self, path: str, method: str) -> str:
        """The template of the route ``path`` and ``method`` match, for requests refused before routing
        (a route of another method only when none of this one matches: ``/v1/models/{model_name}``
        also matches ``m:predict``)."""
        found = UNMATCHED
        for route in self.routes:
            regex = getattr(route, "path_regex", None)
            if regex is not None and regex.match(path):
                if method in (getattr(route, "methods", None) or ()):
                    return route.path
                if found == UNMATCHED:
                    found = route.path
        return found


def create_app(router: Router, metrics: Metrics, *, token: str | None = None, loopback: bool = True,
               log: RequestLog | None = None, max_body: int = 4 << 20, deployment: str | None = None,
               admin_token: str | None = None, feedback_bytes: int | None = None,
               monitor: Monitor | None = None, fast: bool = True) -> Any:
    """The ASGI app serving ``router``'s model(s), behind its :class:`Guard`; the prediction routes
    through the :class:`~nbmlops.serving.fast.FastPath` in front of it (``fast=False``: through
    FastAPI like the other routes, the same answers more slowly)."""
    session = ServingSession(router, metrics, log, feedback_bytes, monitor)

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        session.start()
        yield
        session.close()

    app = FastAPI(title=f"nbmlops · {router.name}", version=",".join(map(str, router.routes)), lifespan=lifespan,
                  description="A model served by nbmlops. Errors are {\"error\": \"...\"}.")
    read_json = reader(max_body)
    _error_handlers(app, metrics)
    _info_routes(app, session, read_json, deployment)
    _predict_routes(app, session, read_json)
    protocols.protocol_routes(app, session, read_json)
    app.state.metrics = metrics
    app.state.router = router
    app.state.feedback = session.recent
    app.state.session = session
    guard = Guard(app, loopback, token, max_body, metrics, admin_token)
    outer = HttpMetrics(guard, app.routes, metrics)
    return FastPath(outer, guard.refusal, session, read_json) if fast else outer


def _error_handlers(app: Any, metrics: Metrics) -> None:
    """Every error as ``{"error": "..."}`` with its status, counted by reason."""

    async def _answer_error(request: Request, exc: Exception) -> Response:
        status, body, headers = error_answer(exc, request.url.path, metrics)
        return Response(body, status, headers=headers, media_type="application/json")

    app.add_exception_handler(PayloadError, _answer_error)
    app.add_exception_handler(Overloaded, _answer_error)
    app.add_exception_handler(Exception, _answer_error)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        metrics.count_error(f"http_{exc.status_code}")
        message = {404: f"no route {request.url.path}", 405: f"{request.method} is not allowed on {request.url.path}"}
        return error_response(request.url.path, exc.status_code, message.get(exc.status_code, str(exc.detail)))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        metrics.count_error("invalid_input")
        why = "; ".join(str(e.get("msg")) for e in exc.errors()[:3])
        return error_response(request.url.path, 422, f"invalid request: {why}")


def _info_routes(app: Any, session: ServingSession, read_json: Reader, deployment: str | None) -> None:
    """Health, readiness, model info, Prometheus metrics and the admin routes."""
    router, name = session.router, session.name

    @app.get("/health", summary="Liveness")
    async def health() -> Response:
        return json_response({"status": "healthy", "model_loaded": bool(router.routes)})

    @app.get("/ready", summary="Readiness: the model is loaded (and why an alias switch failed, if it did)")
    async def ready() -> Response:
        return json_response({"ready": True, "model": name, "versions": sorted(router.routes),
                      "version": session.first().model.version, "load_error": router.load_error})

    @app.get("/model/info", summary="The served model(s): type, version, sha256, signature, routing")
    async def info() -> Response:
        return json_response(session.info(deployment))

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(session.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/monitor", summary="The live monitor's latest window of each version: drift, data quality, "
             "estimated and realized performance")
    async def monitor() -> Response:
        return json_response(session.monitor_info())

    @app.get("/admin/routing", summary="Versions, weights, shadow, alias following")
    async def routing() -> Response:
        return json_response(router.info())

    @app.post("/admin/weights", summary="Change the A/B weights while serving",
              openapi_extra=body_schema("weights"))
    async def weights(request: Request) -> Response:
        return json_response(session.set_weights(await read_json(request)))


def _predict_routes(app: Any, session: ServingSession, read_json: Reader) -> None:
    """nbmlops' own /predict and /feedback."""

    @app.post("/predict", summary="Predict one row (features), rows (instances) or named inputs",
              openapi_extra=body_schema("predict"))
    async def predict(request: Request) -> Response:
        return answer_response(await protocols.predict(session, Incoming(request, read_json)))

    @app.post("/feedback", summary="The true label of an earlier request: feeds model_accuracy",
              openapi_extra=body_schema("feedback"))
    async def feedback(request: Request) -> Response:
        return json_response(session.feedback(await read_json(request)))
