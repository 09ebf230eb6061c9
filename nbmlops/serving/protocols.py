"""The standard protocols a served model speaks besides nbmlops' own /predict: KServe V1, the
Open Inference Protocol (KServe V2) and MLflow's scoring protocol."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request
from starlette.responses import Response

from .http import Reader, body_schema, check_name, json_response
from .payloads import PayloadError, parse_mlflow, parse_v2, v2_datatype
from .session import ServingSession


def protocol_routes(app: Any, session: ServingSession, read_json: Reader) -> None:
    _v1_routes(app, session, read_json)
    _mlflow_routes(app, session, read_json)
    _v2_routes(app, session, read_json)


def _v1_routes(app: Any, session: ServingSession, read_json: Reader) -> None:
    """KServe V1."""
    name = session.name

    @app.get("/v1/models/{model_name}", summary="KServe V1 model status")
    async def v1_status(model_name: str) -> Response:
        check_name(model_name, name)
        return json_response({"name": name, "ready": True})

    @app.post("/v1/models/{model_name}:predict", summary="KServe V1 predict", openapi_extra=body_schema("v1"))
    async def v1_predict(model_name: str, request: Request) -> Response:
        check_name(model_name, name)
        body = await read_json(request)
        if not isinstance(body, dict) or "instances" not in body:
            raise PayloadError('the body must be {"instances": [[...], ...]}')
        route = session.route(request.headers.get("x-request-key"), body)
        rows = route.model.schema.rows(body["instances"], "instances")
        out = await session.predict(route, rows, uuid.uuid4().hex)
        return json_response({"predictions": out["predictions"]})


def _mlflow_routes(app: Any, session: ServingSession, read_json: Reader) -> None:
    """MLflow's scoring protocol."""

    @app.get("/ping", summary="MLflow health")
    async def ping() -> Response:
        return json_response({"status": "ok"})

    @app.post("/invocations", summary="MLflow scoring protocol", openapi_extra=body_schema("mlflow"))
    async def invocations(request: Request) -> Response:
        body = await read_json(request)
        route = session.route(request.headers.get("x-request-key"), body)
        rows = parse_mlflow(body, route.model.schema)
        out = await session.predict(route, rows, uuid.uuid4().hex)
        return json_response({"predictions": out["predictions"]})


def _v2_routes(app: Any, session: ServingSession, read_json: Reader) -> None:
    """The Open Inference Protocol (KServe V2)."""
    router, name = session.router, session.name

    @app.get("/v2", summary="V2 server metadata")
    async def v2_server() -> Response:
        return json_response({"name": "nbmlops", "version": "2", "extensions": []})

    @app.get("/v2/health/live", summary="V2 liveness")
    async def v2_live() -> Response:
        return json_response({"live": True})

    @app.get("/v2/health/ready", summary="V2 readiness")
    async def v2_ready() -> Response:
        return json_response({"ready": True})

    @app.get("/v2/models/{model_name}", summary="V2 model metadata")
    async def v2_metadata(model_name: str) -> Response:
        check_name(model_name, name)
        model = session.first().model
        n = model.schema.n or -1
        return json_response({"name": name, "versions": [str(v) for v in router.routes], "platform": "sklearn",
                      "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, n]}],
                      "outputs": [{"name": "predict", "datatype": "BYTES" if model.classifier else "FP64",
                                   "shape": [-1]}]})

    @app.get("/v2/models/{model_name}/ready", summary="V2 model readiness")
    async def v2_model_ready(model_name: str) -> Response:
        check_name(model_name, name)
        return json_response({"name": name, "ready": True})

    async def v2(model_name: str, request: Request, version: int | None = None) -> Response:
        check_name(model_name, name)
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
        return json_response({"model_name": name, "model_version": str(route.model.version), "id": rid or "",
                      "outputs": outputs})

    @app.post("/v2/models/{model_name}/infer", summary="V2 inference", openapi_extra=body_schema("v2"))
    async def v2_infer(model_name: str, request: Request) -> Response:
        return await v2(model_name, request)

    @app.post("/v2/models/{model_name}/versions/{version}/infer", summary="V2 inference of a version",
              openapi_extra=body_schema("v2"))
    async def v2_version(model_name: str, version: str, request: Request) -> Response:
        if not version.isdigit() or int(version) not in router.routes:
            raise PayloadError(f"this server serves versions {sorted(router.routes)} of {name!r}", 404, "unknown_model")
        return await v2(model_name, request, int(version))
