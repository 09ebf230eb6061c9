"""The standard protocols a served model speaks besides nbmlops' own /predict, each as its own
clients speak it: KServe V1, the Open Inference Protocol (KServe V2, binary tensors included)
and MLflow's scoring protocol (JSON, CSV and Parquet bodies)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request
from starlette.responses import Response

from .._util import VERSION
from . import oip
from .http import Reader, body_schema, check_name, json_response
from .payloads import PayloadError, parse_csv, parse_mlflow, parse_parquet
from .router import Route
from .session import ServingSession
from .tensors import request_tensors, response_body, split_body

PARQUET = ("application/x-parquet", "application/vnd.apache.parquet")


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
    async def v1_predict(model_name: str, request: Request) -> Response:
        check_name(model_name, name)
        body = await read(request)
        if not isinstance(body, dict) or "instances" not in body:
            raise PayloadError('the body must be {"instances": [[...], ...]}')
        route = session.route(request.headers.get("x-request-key"), body)
        rows = route.model.schema.rows(body["instances"], "instances")
        out = await session.predict(route, rows, uuid.uuid4().hex)
        return json_response({"predictions": out["predictions"]})

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
    async def invocations(request: Request) -> Response:
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        body: Any = None
        if media == "text/csv" or media in PARQUET:
            raw = await read.raw(request)
            route = session.route(request.headers.get("x-request-key"), None)
            rows = parse_csv(raw, route.model.schema) if media == "text/csv" else \
                parse_parquet(raw, route.model.schema, read.max_body)
        else:
            body = await read(request)
            route = session.route(request.headers.get("x-request-key"), body)
            rows = parse_mlflow(body, route.model.schema)
        out = await session.predict(route, rows, uuid.uuid4().hex)
        return json_response({"predictions": out["predictions"]})


def _v2_routes(app: Any, session: ServingSession, read: Reader) -> None:
    """The Open Inference Protocol (KServe V2; tritonclient, the KServe SDK)."""
    router, name = session.router, session.name

    def version_route(model_name: str, version: str | None) -> Route:
        check_name(model_name, name)
        if version is None:
            return session.first()
        if not (version.isascii() and version.isdigit() and len(version) <= 12) or int(version) not in router.routes:
            raise PayloadError(f"{name!r} has no version {version[:12]!r} here; this server serves versions "
                               f"{', '.join(map(str, sorted(router.routes)))}", 404, "unknown_model")
        return router.routes[int(version)]

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
        return json_response(oip.metadata(version_route(model_name, None).model, name, sorted(router.routes)))

    @app.get("/v2/models/{model_name}/versions/{version}", summary="V2 metadata of a version")
    async def v2_version_metadata(model_name: str, version: str) -> Response:
        route = version_route(model_name, version)
        return json_response(oip.metadata(route.model, name, [route.model.version]))

    @app.get("/v2/models/{model_name}/ready", summary="V2 model readiness")
    async def v2_model_ready(model_name: str) -> Response:
        version_route(model_name, None)
        return json_response({"name": name, "ready": True})

    @app.get("/v2/models/{model_name}/versions/{version}/ready", summary="V2 readiness of a version")
    async def v2_version_ready(model_name: str, version: str) -> Response:
        route = version_route(model_name, version)
        return json_response({"name": name, "version": str(route.model.version), "ready": True})

    async def infer(request: Request, route: Route | None) -> Response:
        raw = await read.raw(request)
        header, blob = split_body(raw, request.headers.get("inference-header-content-length"))
        tensors = request_tensors(header, blob)
        if route is None:
            route = session.route(request.headers.get("x-request-key"), header)
        model = route.model
        rows = oip.rows(tensors, model.schema)
        chosen = oip.requested(header, model)
        rid = header.get("id") if isinstance(header.get("id"), str) else None
        out = await session.predict(route, rows, rid or uuid.uuid4().hex)
        outputs = []
        for spec, binary in chosen:
            values, shape = oip.output_values(spec["name"], out, model)
            outputs.append(({**spec, "shape": shape}, values, binary))
        answer = {"model_name": name, "model_version": str(model.version), "id": rid or ""}
        body, header_length = response_body(answer, outputs)
        if header_length is None:
            return Response(body, media_type="application/json")
        return Response(body, media_type="application/octet-stream",
                        headers={"Inference-Header-Content-Length": str(header_length)})

    @app.post("/v2/models/{model_name}/infer", summary="V2 inference (JSON or binary tensors)",
              openapi_extra=body_schema("v2", "application/octet-stream"))
    async def v2_infer(model_name: str, request: Request) -> Response:
        check_name(model_name, name)
        return await infer(request, None)

    @app.post("/v2/models/{model_name}/versions/{version}/infer", summary="V2 inference of a version",
              openapi_extra=body_schema("v2", "application/octet-stream"))
    async def v2_version_infer(model_name: str, version: str, request: Request) -> Response:
        return await infer(request, version_route(model_name, version))
