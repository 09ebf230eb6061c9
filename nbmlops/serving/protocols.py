"""The prediction protocols a served model speaks, each as its own clients speak it: nbmlops'
own /predict, KServe V1, the Open Inference Protocol (KServe V2, binary tensors included) and
MLflow's scoring protocol (JSON, CSV and Parquet bodies).

Each prediction route's work is one function of an :class:`~nbmlops.serving.http.Incoming`
request that returns its answer (``predict``, ``v1_predict``, ``invocations``, ``v2_infer``):
FastAPI's routes here and the fast path (:mod:`nbmlops.serving.fast`) both call it.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request
from starlette.responses import Response

from .._util import VERSION
from . import oip
from .http import JSON, Answer, Incoming, Reader, answer_response, body_schema, check_name, dumps, json_response
from .payloads import PayloadError, parse_csv, parse_mlflow, parse_parquet, parse_predict
from .router import Route
from .session import ServingSession
from .tensors import request_tensors, response_body, split_body

PARQUET = ("application/x-parquet", "application/vnd.apache.parquet")


async def predict(session: ServingSession, req: Incoming) -> Answer:
    """``POST /predict``: one row (``features``), rows (``instances``) or named inputs."""
    body = await req.json()
    route = session.route(req.header("x-request-key"), body)
    rows, single = parse_predict(body, route.model.schema)
    rid = uuid.uuid4().hex
    out = await session.predict(route, rows, rid)
    result: dict[str, Any] = {"model": session.name, "version": route.model.version, "request_id": rid}
    if single:
        result["prediction"] = out["predictions"][0]
        for key in ("probability", "confidence", "probabilities"):
            if key in out:
                result[key] = out[key][0]
    else:
        result.update(out)
    return dumps(result), JSON, None


async def v1_predict(session: ServingSession, model_name: str, req: Incoming) -> Answer:
    """KServe V1 ``POST /v1/models/{model_name}:predict``."""
    check_name(model_name, session.name)
    body = await req.json()
    if not isinstance(body, dict) or "instances" not in body:
        raise PayloadError('the body must be {"instances": [[...], ...]}')
    route = session.route(req.header("x-request-key"), body)
    rows = route.model.schema.rows(body["instances"], "instances")
    out = await session.predict(route, rows, uuid.uuid4().hex)
    return dumps({"predictions": out["predictions"]}), JSON, None


async def invocations(session: ServingSession, req: Incoming, max_body: int) -> Answer:
    """MLflow's ``POST /invocations``: JSON, CSV or Parquet."""
    media = (req.header("content-type") or "").split(";", 1)[0].strip().lower()
    body: Any = None
    if media == "text/csv" or media in PARQUET:
        raw = await req.raw()
        route = session.route(req.header("x-request-key"), None)
        rows = parse_csv(raw, route.model.schema) if media == "text/csv" else \
            parse_parquet(raw, route.model.schema, max_body)
    else:
        body = await req.json()
        route = session.route(req.header("x-request-key"), body)
        rows = parse_mlflow(body, route.model.schema)
    out = await session.predict(route, rows, uuid.uuid4().hex)
    return dumps({"predictions": out["predictions"]}), JSON, None


def version_route(session: ServingSession, model_name: str, version: str | None) -> Route:
    """The route of ``version`` of ``model_name`` (404 when either is not served here); the first without one."""
    name, router = session.name, session.router
    check_name(model_name, name)
    if version is None:
        return session.first()
    if not (version.isascii() and version.isdigit() and len(version) <= 12) or int(version) not in router.routes:
        raise PayloadError(f"{name!r} has no version {version[:12]!r} here; this server serves versions "
                           f"{', '.join(map(str, sorted(router.routes)))}", 404, "unknown_model")
    return router.routes[int(version)]


async def v2_infer(session: ServingSession, model_name: str, version: str | None, req: Incoming) -> Answer:
    """Open Inference Protocol inference, JSON or binary tensors; ``version`` when the path names one
    (else the request is routed like any other)."""
    route = version_route(session, model_name, version) if version is not None else None
    if route is None:
        check_name(model_name, session.name)
    raw = await req.raw()
    header, blob = split_body(raw, req.header("inference-header-content-length"))
    tensors = request_tensors(header, blob)
    if route is None:
        route = session.route(req.header("x-request-key"), header)
    model = route.model
    rows = oip.rows(tensors, model.schema)
    chosen = oip.requested(header, model)
    rid = header.get("id") if isinstance(header.get("id"), str) else None
    out = await session.predict(route, rows, rid or uuid.uuid4().hex)
    outputs = []
    for spec, binary in chosen:
        values, shape = oip.output_values(spec["name"], out, model)
        outputs.append(({**spec, "shape": shape}, values, binary))
    answer = {"model_name": session.name, "model_version": str(model.version), "id": rid or ""}
    body, header_length = response_body(answer, outputs)
    if header_length is None:
        return body, JSON, None
    return body, "application/octet-stream", {"Inference-Header-Content-Length": str(header_length)}


def protocol_routes(app: Any, session: ServingSession, read: Reader) -> None:
    _v1_routes(app, session, read)
    _mlflow_routes(app, session, read)
    _v2_routes(app, session, read)


def _v1_routes(app: Any, session: ServingSession, read: Reader) -> None:
    """KServe V1 (the KServe SDK's ``InferenceRESTClient`` with ``protocol_version="v1"``)."""
    name = session.name

    @app.get("/", summary="KServe V1 liveness")
    async def v1_live() -> Response:
        return json_response({"status": "alive"})

    @app.get("/v1/models", summary="KServe V1: the models served")
    async def v1_models() -> Response:
        return json_response({"models": [name]})

    @app.get("/v1/models/{model_name}", summary="KServe V1 model readiness")
    async def v1_status(model_name: str) -> Response:
        check_name(model_name, name)
        return json_response({"name": name, "ready": bool(session.router.routes)})

    @app.post("/v1/models/{model_name}:predict", summary="KServe V1 predict", openapi_extra=body_schema("v1"))
    async def v1_predict_route(model_name: str, request: Request) -> Response:
        return answer_response(await v1_predict(session, model_name, Incoming(request, read)))

    @app.post("/v1/models/{model_name}:explain", summary="KServe V1 explain: not available")
    async def v1_explain(model_name: str) -> Response:
        check_name(model_name, name)
        return json_response({"error": "this server has no explainer: nbmlops serves predictions only; "
                                       "explain a model in the notebook (e.g. permutation importance)"}, 501)


def _mlflow_routes(app: Any, session: ServingSession, read: Reader) -> None:
    """MLflow's scoring protocol (``mlflow models serve``; ``ScoringServerClient``)."""

    @app.get("/ping", summary="MLflow health")
    async def ping() -> Response:
        return json_response({"status": "ok"})

    @app.get("/version", summary="MLflow: the server's version")
    async def version() -> Response:
        return Response(f"nbmlops {VERSION}", media_type="text/plain")

    @app.post("/invocations", summary="MLflow scoring protocol: JSON, CSV or Parquet",
              openapi_extra=body_schema("mlflow", "text/csv", *PARQUET))
    async def invocations_route(request: Request) -> Response:
        return answer_response(await invocations(session, Incoming(request, read), read.max_body))


def _v2_routes(app: Any, session: ServingSession, read: Reader) -> None:
    """The Open Inference Protocol (KServe V2; tritonclient, the KServe SDK)."""
    router, name = session.router, session.name

    @app.get("/v2", summary="V2 server metadata")
    async def v2_server() -> Response:
        return json_response({"name": "nbmlops", "version": VERSION, "extensions": oip.EXTENSIONS})

    @app.get("/v2/health/live", summary="V2 liveness")
    async def v2_live() -> Response:
        return json_response({"live": True})

    @app.get("/v2/health/ready", summary="V2 readiness")
    async def v2_ready() -> Response:
        return json_response({"ready": bool(router.routes)})

    @app.get("/v2/models/{model_name}", summary="V2 model metadata")
    async def v2_metadata(model_name: str) -> Response:
        return json_response(oip.metadata(version_route(session, model_name, None).model, name,
                                          sorted(router.routes)))

    @app.get("/v2/models/{model_name}/versions/{version}", summary="V2 metadata of a version")
    async def v2_version_metadata(model_name: str, version: str) -> Response:
        route = version_route(session, model_name, version)
        return json_response(oip.metadata(route.model, name, [route.model.version]))

    @app.get("/v2/models/{model_name}/ready", summary="V2 model readiness")
    async def v2_model_ready(model_name: str) -> Response:
        version_route(session, model_name, None)
        return json_response({"name": name, "ready": True})

    @app.get("/v2/models/{model_name}/versions/{version}/ready", summary="V2 readiness of a version")
    async def v2_version_ready(model_name: str, version: str) -> Response:
        route = version_route(session, model_name, version)
        return json_response({"name": name, "version": str(route.model.version), "ready": True})

    @app.post("/v2/models/{model_name}/infer", summary="V2 inference (JSON or binary tensors)",
              openapi_extra=body_schema("v2", "application/octet-stream"))
    async def v2_infer_route(model_name: str, request: Request) -> Response:
        return answer_response(await v2_infer(session, model_name, None, Incoming(request, read)))

    @app.post("/v2/models/{model_name}/versions/{version}/infer", summary="V2 inference of a version",
              openapi_extra=body_schema("v2", "application/octet-stream"))
    async def v2_version_infer(model_name: str, version: str, request: Request) -> Response:
        return answer_response(await v2_infer(session, model_name, version, Incoming(request, read)))
