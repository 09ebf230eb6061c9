"""The HTTP face of a served model: nbmlops' /predict, KServe V1/V2, MLflow's /invocations,
health, model info, feedback and Prometheus metrics. Errors are ``{"error": "..."}``."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
import time
import uuid
from collections import OrderedDict
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
from .router import Route, Router

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
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


class Guard:
    """ASGI middleware: Host check on loopback (DNS rebinding), bearer token, body size cap."""

    def __init__(self, app: Any, loopback: bool, token: str | None, max_body: int, metrics: Metrics) -> None:
        self.app, self.loopback, self.token, self.max_body, self.metrics = app, loopback, token, max_body, metrics
        self.expected = f"Bearer {token}".encode() if token else None

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
        if self.expected and scope["path"] not in ("/health", "/v2/health/live", "/ping"):
            if not hmac.compare_digest(headers.get(b"authorization", b""), self.expected):
                return await self._deny(send, 401, "unauthorized", "missing or wrong Authorization: Bearer token")
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await self._deny(send, 413, "body_too_large", f"request bodies are limited to {self.max_body} bytes")
        return await self.app(scope, receive, send)

    async def _deny(self, send: Any, status: int, reason: str, message: str) -> None:
        self.metrics.errors.labels(reason=reason).inc()
        body = orjson.dumps({"error": message})
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def create_app(router: Router, metrics: Metrics, *, token: str | None = None, loopback: bool = True,
               log: RequestLog | None = None, max_body: int = 4 << 20, deployment: str | None = None) -> Any:
    recent: OrderedDict[str, tuple[int, list[Any]]] = OrderedDict()
    state = {"started": time.time(), "requests": 0}
    name = router.name
    metrics.set_weights(router.weights)

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        router.start()
        yield
        if log is not None:
            log.close()

    app = FastAPI(title=f"nbmlops · {name}", version=",".join(map(str, router.routes)), lifespan=lifespan,
                  description="A model served by nbmlops. Errors are {\"error\": \"...\"}.")

    async def read_json(request: Request) -> Any:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                raise PayloadError(f"request bodies are limited to {max_body} bytes", 413, "body_too_large")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise PayloadError("the body is not valid JSON", 400, "malformed_json") from None

    def route_for(request: Request, body: Any) -> Route:
        key = request.headers.get("x-request-key")
        if key is None and isinstance(body, dict) and isinstance(body.get("key"), (str, int)):
            key = str(body["key"])
        return router.pick(key)

    async def score(route: Route, rows: list[list[Any]], request_id: str) -> dict[str, list[Any]]:
        version = route.model.version
        start = time.perf_counter()
        metrics.in_flight.inc()
        try:
            out = await route.batcher.submit(rows)
        except Overloaded:
            metrics.errors.labels(reason="overloaded").inc()
            raise
        except PayloadError:
            raise
        except Exception as exc:
            raise PayloadError(f"the model could not score this input ({type(exc).__name__}: {str(exc)[:160]})",
                               422, "model_error") from None
        finally:
            metrics.in_flight.dec()
        seconds = time.perf_counter() - start
        metrics.observe(version, seconds, out["predictions"])
        state["requests"] += 1
        recent[request_id] = (version, out["predictions"])
        if len(recent) > 100_000:
            recent.popitem(last=False)
        now = time.time_ns() // 1_000_000
        if log is not None:
            log.add({"t": now, "id": request_id, "v": version, "lat": round(seconds * 1000, 3), "rows": rows,
                     "out": out["predictions"]})
        if router.shadow is not None:
            router.run_shadow(rows, lambda r: log.add({"t": now, "id": request_id, **r}) if log else None)
        return out

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

    def check_name(asked: str) -> None:
        if asked != name:
            raise PayloadError(f"no model named {asked[:60]!r} here; this server serves {name!r}", 404, "unknown_model")

    def first() -> Route:
        return router.pick(None)

    # -- health and info --------------------------------------------------------------------
    @app.get("/health", summary="Liveness")
    async def health() -> Response:
        return _json({"status": "ok"})

    @app.get("/ready", summary="Readiness: the model is loaded (and why an alias switch failed, if it did)")
    async def ready() -> Response:
        return _json({"ready": True, "model": name, "versions": sorted(router.routes),
                      "version": first().model.version, "load_error": router.load_error})

    @app.get("/model/info", summary="The served model(s): type, version, sha256, signature, routing")
    async def info() -> Response:
        main = first().model
        return _json({**main.info(), "deployment": deployment, "routing": router.info(),
                      "versions": {str(v): r.model.info() for v, r in router.routes.items()},
                      "uptime_s": round(time.time() - state["started"], 1), "requests": state["requests"]})

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/admin/routing", summary="Versions, weights, shadow, alias following")
    async def routing() -> Response:
        return _json(router.info())

    @app.post("/admin/weights", summary="Change the A/B weights while serving", openapi_extra=_body("weights"))
    async def weights(request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("weights"), dict) or not body["weights"]:
            raise PayloadError('the body must be {"weights": {"VERSION": WEIGHT, ...}}')
        try:
            asked = {int(v): w for v, w in body["weights"].items()}
        except ValueError:
            raise PayloadError("weights are keyed by version number") from None
        new = router.set_weights(asked)
        metrics.set_weights({**{v: 0.0 for v in router.routes}, **new})
        return _json({"weights": {str(v): w for v, w in new.items()}})

    # -- nbmlops' own -------------------------------------------------------------------------
    @app.post("/predict", summary="Predict one row (features), rows (instances) or named inputs",
              openapi_extra=_body("predict"))
    async def predict(request: Request) -> Response:
        body = await read_json(request)
        route = route_for(request, body)
        rows, single = parse_predict(body, route.model.schema)
        rid = uuid.uuid4().hex
        out = await score(route, rows, rid)
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
        body = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("request_id"), str):
            raise PayloadError('the body must be {"request_id": "...", "label": ...}')
        known = recent.get(body["request_id"])
        if known is None:
            raise PayloadError("unknown request_id (feedback is kept for the last 100,000 requests)", 404,
                               "unknown_request")
        version, predicted = known
        labels = body.get("labels", [body.get("label")] if "label" in body else None)
        if not isinstance(labels, list) or len(labels) != len(predicted):
            raise PayloadError(f"give 'label' (or 'labels', {len(predicted)} of them) for request {body['request_id']}")
        correct = [str(p) == str(t) for p, t in zip(predicted, labels)]
        accuracy = 0.0
        for c in correct:
            accuracy = metrics.record_feedback(version, c)
        if log is not None:
            log.add({"t": time.time_ns() // 1_000_000, "feedback": body["request_id"], "v": version,
                     "labels": labels, "correct": correct})
        return _json({"request_id": body["request_id"], "version": version, "correct": correct, "accuracy": accuracy})

    # -- KServe V1 --------------------------------------------------------------------------------
    @app.get("/v1/models/{model_name}", summary="KServe V1 model status")
    async def v1_status(model_name: str) -> Response:
        check_name(model_name)
        return _json({"name": name, "ready": True})

    @app.post("/v1/models/{model_name}:predict", summary="KServe V1 predict", openapi_extra=_body("v1"))
    async def v1_predict(model_name: str, request: Request) -> Response:
        check_name(model_name)
        body = await read_json(request)
        if not isinstance(body, dict) or "instances" not in body:
            raise PayloadError('the body must be {"instances": [[...], ...]}')
        route = route_for(request, body)
        rows = route.model.schema.rows(body["instances"], "instances")
        out = await score(route, rows, uuid.uuid4().hex)
        return _json({"predictions": out["predictions"]})

    # -- Open Inference Protocol (KServe V2) ------------------------------------------------------------
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
        check_name(model_name)
        model = first().model
        n = model.schema.n or -1
        return _json({"name": name, "versions": [str(v) for v in router.routes], "platform": "sklearn",
                      "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, n]}],
                      "outputs": [{"name": "predict", "datatype": "BYTES" if model.classifier else "FP64",
                                   "shape": [-1]}]})

    @app.get("/v2/models/{model_name}/ready", summary="V2 model readiness")
    async def v2_model_ready(model_name: str) -> Response:
        check_name(model_name)
        return _json({"name": name, "ready": True})

    async def v2(model_name: str, request: Request, version: int | None = None) -> Response:
        check_name(model_name)
        body = await read_json(request)
        route = router.routes[version] if version is not None else route_for(request, body)
        rows, rid = parse_v2(body, route.model.schema)
        out = await score(route, rows, rid or uuid.uuid4().hex)
        preds = out["predictions"]
        outputs = [{"name": "predict", "shape": [len(preds)], "datatype": v2_datatype(preds), "data": preds}]
        if "probability" in out:
            outputs.append({"name": "probability", "shape": [len(preds)], "datatype": "FP64", "data": out["probability"]})
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

    # -- MLflow scoring server -----------------------------------------------------------------------
    @app.get("/ping", summary="MLflow health")
    async def ping() -> Response:
        return _json({"status": "ok"})

    @app.post("/invocations", summary="MLflow scoring protocol", openapi_extra=_body("mlflow"))
    async def invocations(request: Request) -> Response:
        body = await read_json(request)
        route = route_for(request, body)
        rows = parse_mlflow(body, route.model.schema)
        out = await score(route, rows, uuid.uuid4().hex)
        return _json({"predictions": out["predictions"]})

    app.state.metrics = metrics
    app.state.router = router
    return Guard(app, loopback, token, max_body, metrics)
