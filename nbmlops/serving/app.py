"""The HTTP face of a served model: nbmlops' /predict, KServe V1/V2, MLflow's /invocations,
health, model info, feedback and Prometheus metrics. Errors are ``{"error": "..."}``.

Other web pages must not drive it (a browser lets any page POST to 127.0.0.1): every POST
must say ``Content-Type: application/json`` (415 otherwise: HTML forms and no-cors fetches
cannot), a request whose ``Origin`` is not this server's own is refused (403), and the admin
routes (``/admin/*``) and ``/feedback`` need the admin token ``serve()`` always creates,
even when prediction is open.
"""

from __future__ import annotations

import hmac
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from .batching import Overloaded
from .metrics import Metrics
from .payloads import PayloadError, parse_mlflow, parse_predict, parse_v2, v2_datatype
from .reqlog import RequestLog
from .router import Router
from .session import ServingSession

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
OPEN = ("/health", "/v2/health/live", "/ping")  # liveness: no token asked
ADMIN = ("/admin/", "/feedback")  # the admin token only
log_ = logging.getLogger("nbmlops.serving")
_ROWS = {"type": "array", "items": {"type": "array", "items": {}}}
_SCHEMAS = {
    "predict": {"type": "object", "properties": {"features": {"type": "array", "items": {}}, "instances": _ROWS,
                                                 "inputs": {}}},
    "feedback": {"type": "object", "required": ["request_id"],
                 "properties": {"request_id": {"type": "string"}, "label": {}, "labels": {"type": "array"}}},
    "v1": {"type": "object", "required": ["instances"], "properties": {"instances": _ROWS}},
    "v2": {"type": "object", "required": ["inputs"], "properties": {"id": {"type": "string"}, "inputs": {
        "type": "array", "items": {"type": "object", "required": ["name", "shape", "datatype", "data"],
                                   "properties": {"name": {"type": "string"},
                                                  "shape": {"type": "array", "items": {"type": "integer"}},
                                                  "datatype": {"type": "string"}, "data": {"type": "array"}}}}}},
    "weights": {"type": "object", "required": ["weights"],
                "properties": {"weights": {"type": "object", "additionalProperties": {"type": "number"}}}},
    "mlflow": {"type": "object", "properties": {"dataframe_split": {"type": "object"},
                                                "dataframe_records": {"type": "array"}, "instances": {}, "inputs": {}}},
}


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS), status,
                    headers=headers, media_type="application/json")


def _body(schema: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": _SCHEMAS[schema]}}}}


def _is_json(content_type: bytes) -> bool:
    return content_type.split(b";", 1)[0].strip().lower() == b"application/json"


class Guard:
    """ASGI middleware: Host check on loopback (DNS rebinding), Origin check (other web pages),
    JSON-only POST bodies, bearer tokens (admin routes: the admin token; others: the prediction
    token if one was given, or the admin token), body size cap."""

    def __init__(self, app: Any, loopback: bool, token: str | None, max_body: int, metrics: Metrics,
                 admin_token: str | None = None) -> None:
        self.app, self.loopback, self.token, self.max_body, self.metrics = app, loopback, token, max_body, metrics
        self.expected = f"Bearer {token}".encode() if token else None
        self.admin = f"Bearer {admin_token}".encode() if admin_token else None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self.loopback:
            host = headers.get(b"host", b"").decode("latin-1")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name not in LOOPBACK:
                return await self._deny(send, 403, "host_not_allowed",
                                        "this server only answers requests addressed to a loopback host")
        origin = headers.get(b"origin")
        if origin is not None and origin.lower() not in (b"http://" + headers.get(b"host", b"").lower(),
                                                         b"https://" + headers.get(b"host", b"").lower()):
            return await self._deny(send, 403, "cross_origin",
                                    "requests from other web pages are refused (Origin is not this server)")
        denied = self._auth(scope["path"], headers.get(b"authorization", b""))
        if denied:
            return await self._deny(send, 401, "unauthorized", denied)
        if scope["method"] == "POST" and not _is_json(headers.get(b"content-type", b"")):
            return await self._deny(send, 415, "unsupported_media_type",
                                    "POST bodies must be JSON sent with Content-Type: application/json")
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await self._deny(send, 413, "body_too_large", f"request bodies are limited to {self.max_body} bytes")
        return await self.app(scope, receive, send)

    def _auth(self, path: str, given: bytes) -> str | None:
        """Why the Authorization header does not open ``path`` (None when it does)."""
        if path in OPEN:
            return None
        admin_ok = self.admin is not None and hmac.compare_digest(given, self.admin)
        if path.startswith(ADMIN):
            if self.admin is None:  # started without one (an old serve()): refuse rather than open
                return "this route needs the deployment's admin token, and this server has none"
            return None if admin_ok else "this route needs the deployment's admin token (Deployment.admin_token)"
        if self.expected and not (admin_ok or hmac.compare_digest(given, self.expected)):
            return "missing or wrong Authorization: Bearer token"
        return None

    async def _deny(self, send: Any, status: int, reason: str, message: str) -> None:
        self.metrics.errors.labels(reason=reason).inc()
        body = orjson.dumps({"error": message})
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def create_app(router: Router, metrics: Metrics, *, token: str | None = None, loopback: bool = True,
               log: RequestLog | None = None, max_body: int = 4 << 20, deployment: str | None = None,
               admin_token: str | None = None, feedback_bytes: int | None = None) -> Any:
    """The ASGI app serving ``router``'s model(s), behind its :class:`Guard`."""
    session = ServingSession(router, metrics, log, feedback_bytes)

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        session.start()
        yield
        session.close()

    app = FastAPI(title=f"nbmlops · {router.name}", version=",".join(map(str, router.routes)), lifespan=lifespan,
                  description="A model served by nbmlops. Errors are {\"error\": \"...\"}.")
    read_json = _reader(max_body)
    _error_handlers(app, metrics)
    _info_routes(app, session, read_json, deployment)
    _predict_routes(app, session, read_json)
    _v2_routes(app, session, read_json)
    app.state.metrics = metrics
    app.state.router = router
    app.state.feedback = session.recent
    app.state.session = session
    return Guard(app, loopback, token, max_body, metrics, admin_token)


Reader = Callable[[Request], Awaitable[Any]]


def _reader(max_body: int) -> Reader:
    """``read_json(request)``: the body as JSON, at most ``max_body`` bytes (PayloadError otherwise)."""

    async def read_json(request: Request) -> Any:
        from starlette.requests import ClientDisconnect

        body = b""
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > max_body:
                    raise PayloadError(f"request bodies are limited to {max_body} bytes", 413, "body_too_large")
        except ClientDisconnect:  # one line, not a traceback: a client that goes away is no server error
            log_.warning("aborted: %s %s, the client went away after %d bytes of the body", request.method,
                         request.url.path, len(body))
            raise PayloadError("the client disconnected before the body was complete", 400,
                               "client_disconnected") from None
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise PayloadError("the body is not valid JSON", 400, "malformed_json") from None

    return read_json


def _check_name(asked: str, name: str) -> None:
    if asked != name:
        raise PayloadError(f"no such model here; this server serves {name!r}", 404, "unknown_model")


def _error_handlers(app: Any, metrics: Metrics) -> None:
    """Every error as ``{"error": "..."}`` with its status, counted by reason."""

    @app.exception_handler(PayloadError)
    async def _payload_error(request: Request, exc: PayloadError) -> Response:
        metrics.errors.labels(reason=exc.reason).inc()
        return _json({"error": str(exc)}, exc.status)

    @app.exception_handler(Overloaded)
    async def _overloaded(request: Request, exc: Overloaded) -> Response:
        return _json({"error": "the server is busy; retry shortly"}, 503, {"Retry-After": "1"})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        metrics.errors.labels(reason=f"http_{exc.status_code}").inc()
        message = {404: f"no route {request.url.path}", 405: f"{request.method} is not allowed on {request.url.path}"}
        return _json({"error": message.get(exc.status_code, str(exc.detail))}, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        metrics.errors.labels(reason="invalid_input").inc()
        return _json({"error": "invalid request: " + "; ".join(str(e.get("msg")) for e in exc.errors()[:3])}, 422)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> Response:
        metrics.errors.labels(reason="internal").inc()
        return _json({"error": f"internal error ({type(exc).__name__})"}, 500)


def _info_routes(app: Any, session: ServingSession, read_json: Reader, deployment: str | None) -> None:
    """Health, readiness, model info, Prometheus metrics and the admin routes."""
    router, name = session.router, session.name

    @app.get("/health", summary="Liveness")
    async def health() -> Response:
        return _json({"status": "healthy", "model_loaded": bool(router.routes)})

    @app.get("/ready", summary="Readiness: the model is loaded (and why an alias switch failed, if it did)")
    async def ready() -> Response:
        return _json({"ready": True, "model": name, "versions": sorted(router.routes),
                      "version": session.first().model.version, "load_error": router.load_error})

    @app.get("/model/info", summary="The served model(s): type, version, sha256, signature, routing")
    async def info() -> Response:
        return _json(session.info(deployment))

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(session.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/admin/routing", summary="Versions, weights, shadow, alias following")
    async def routing() -> Response:
        return _json(router.info())

    @app.post("/admin/weights", summary="Change the A/B weights while serving", openapi_extra=_body("weights"))
    async def weights(request: Request) -> Response:
        return _json(session.set_weights(await read_json(request)))


def _predict_routes(app: Any, session: ServingSession, read_json: Reader) -> None:
    """nbmlops' /predict and /feedback, KServe V1 and MLflow's scoring protocol."""
    name = session.name

    @app.post("/predict", summary="Predict one row (features), rows (instances) or named inputs",
              openapi_extra=_body("predict"))
    async def predict(request: Request) -> Response:
        body = await read_json(request)
        route = session.route(request.headers.get("x-request-key"), body)
        rows, single = parse_predict(body, route.model.schema)
        rid = uuid.uuid4().hex
        out = await session.predict(route, rows, rid)
        result: dict[str, Any] = {"model": name, "version": route.model.version, "request_id": rid}
        if single:
            result["prediction"] = out["predictions"][0]
            for key in ("probability", "confidence", "probabilities"):
                if key in out:
                    result[key] = out[key][0]
        else:
            result.update(out)
        return _json(result)

    @app.post("/feedback", summary="The true label of an earlier request: feeds model_accuracy",
              openapi_extra=_body("feedback"))
    async def feedback(request: Request) -> Response:
        return _json(session.feedback(await read_json(request)))

    @app.get("/v1/models/{model_name}", summary="KServe V1 model status")
    async def v1_status(model_name: str) -> Response:
        _check_name(model_name, name)
        return _json({"name": name, "ready": True})

    @app.post("/v1/models/{model_name}:predict", summary="KServe V1 predict", openapi_extra=_body("v1"))
    async def v1_predict(model_name: str, request: Request) -> Response:
        _check_name(model_name, name)
        body = await read_json(request)
        if not isinstance(body, dict) or "instances" not in body:
            raise PayloadError('the body must be {"instances": [[...], ...]}')
        route = session.route(request.headers.get("x-request-key"), body)
        rows = route.model.schema.rows(body["instances"], "instances")
        out = await session.predict(route, rows, uuid.uuid4().hex)
        return _json({"predictions": out["predictions"]})

    @app.get("/ping", summary="MLflow health")
    async def ping() -> Response:
        return _json({"status": "ok"})

    @app.post("/invocations", summary="MLflow scoring protocol", openapi_extra=_body("mlflow"))
    async def invocations(request: Request) -> Response:
        body = await read_json(request)
        route = session.route(request.headers.get("x-request-key"), body)
        rows = parse_mlflow(body, route.model.schema)
        out = await session.predict(route, rows, uuid.uuid4().hex)
        return _json({"predictions": out["predictions"]})


def _v2_routes(app: Any, session: ServingSession, read_json: Reader) -> None:
    """The Open Inference Protocol (KServe V2)."""
    router, name = session.router, session.name

    @app.get("/v2", summary="V2 server metadata")
    async def v2_server() -> Response:
        return _json({"name": "nbmlops", "version": "2", "extensions": []})

    @app.get("/v2/health/live", summary="V2 liveness")
    async def v2_live() -> Response:
        return _json({"live": True})

    @app.get("/v2/health/ready", summary="V2 readiness")
    async def v2_ready() -> Response:
        return _json({"ready": True})

    @app.get("/v2/models/{model_name}", summary="V2 model metadata")
    async def v2_metadata(model_name: str) -> Response:
        _check_name(model_name, name)
        model = session.first().model
        n = model.schema.n or -1
        return _json({"name": name, "versions": [str(v) for v in router.routes], "platform": "sklearn",
                      "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, n]}],
                      "outputs": [{"name": "predict", "datatype": "BYTES" if model.classifier else "FP64",
                                   "shape": [-1]}]})

    @app.get("/v2/models/{model_name}/ready", summary="V2 model readiness")
    async def v2_model_ready(model_name: str) -> Response:
        _check_name(model_name, name)
        return _json({"name": name, "ready": True})

    async def v2(model_name: str, request: Request, version: int | None = None) -> Response:
        _check_name(model_name, name)
        body = await read_json(request)
        key = request.headers.get("x-request-key")
        route = router.routes[version] if version is not None else session.route(key, body)
        rows, rid = parse_v2(body, route.model.schema)
        out = await session.predict(route, rows, rid or uuid.uuid4().hex)
        preds = out["predictions"]
        outputs = [{"name": "predict", "shape": [len(preds)], "datatype": v2_datatype(preds), "data": preds}]
        if "probability" in out:
            outputs.append({"name": "probability", "shape": [len(preds)], "datatype": "FP64",
                            "data": out["probability"]})
        return _json({"model_name": name, "model_version": str(route.model.version), "id": rid or "",
                      "outputs": outputs})

    @app.post("/v2/models/{model_name}/infer", summary="V2 inference", openapi_extra=_body("v2"))
    async def v2_infer(model_name: str, request: Request) -> Response:
        return await v2(model_name, request)

    @app.post("/v2/models/{model_name}/versions/{version}/infer", summary="V2 inference of a version",
              openapi_extra=_body("v2"))
    async def v2_version(model_name: str, version: str, request: Request) -> Response:
        if not version.isdigit() or int(version) not in router.routes:
            raise PayloadError(f"this server serves versions {sorted(router.routes)} of {name!r}", 404, "unknown_model")
        return await v2(model_name, request, int(version))
