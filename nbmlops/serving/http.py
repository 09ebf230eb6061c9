"""What the HTTP routes share: JSON answers, error bodies, OpenAPI body schemas and reading a
request body (size-capped, gzip/deflate inflated within the same cap), the same for FastAPI's
routes and for the fast path (:mod:`nbmlops.serving.fast`)."""

from __future__ import annotations

import logging
import zlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from .batching import Overloaded
from .metrics import Metrics
from .payloads import PayloadError
from .session import ModelError

log_ = logging.getLogger("nbmlops.serving")
_ROWS = {"type": "array", "items": {"type": "array", "items": {}}}
_SCHEMAS = {
    "predict": {"type": "object", "properties": {"features": {"type": "array", "items": {}}, "instances": _ROWS,
                                                 "inputs": {}}},
    "feedback": {"type": "object", "required": ["request_id"],
                 "properties": {"request_id": {"type": "string"}, "label": {}, "labels": {"type": "array"}}},
    "v1": {"type": "object", "required": ["instances"], "properties": {"instances": _ROWS}},
    "v2": {"type": "object", "required": ["inputs"], "properties": {"id": {"type": "string"}, "inputs": {
        "type": "array", "items": {"type": "object", "required": ["name", "shape", "datatype"],
                                   "properties": {"name": {"type": "string"},
                                                  "shape": {"type": "array", "items": {"type": "integer"}},
                                                  "datatype": {"type": "string"}, "data": {"type": "array"}}}}}},
    "weights": {"type": "object", "required": ["weights"],
                "properties": {"weights": {"type": "object", "additionalProperties": {"type": "number"}}}},
    "mlflow": {"type": "object", "properties": {"dataframe_split": {"type": "object"},
                                                "dataframe_records": {"type": "array"}, "instances": {}, "inputs": {},
                                                "params": {"type": "object"}}},
}


JSON = "application/json"
Answer = tuple[bytes, str, dict[str, str] | None]  # body, media type, extra headers: what a prediction route answers


def dumps(data: Any) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(data), status, headers=headers, media_type=JSON)


def answer_response(answer: Answer) -> Response:
    body, media, headers = answer
    return Response(body, media_type=media, headers=headers)


MLFLOW_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "ENDPOINT_NOT_FOUND",
                413: "RESOURCE_LIMIT_EXCEEDED", 415: "BAD_REQUEST", 500: "INTERNAL_ERROR",
                503: "TEMPORARILY_UNAVAILABLE"}


def error_body(path: str, status: int, message: str, reason: str = "") -> tuple[int, bytes]:
    """Status and JSON body of an error on ``path``: ``{"error": message}`` as the Open Inference
    Protocol and KServe V1 say, except on MLflow's ``/invocations``, where MLflow's clients read
    ``{"error_code", "message"}``: an input that does not fit the model's signature (a 422
    elsewhere) is a 400 INVALID_PARAMETER_VALUE there, one the model itself refuses a 400
    BAD_REQUEST, as MLflow answers them."""
    if path == "/invocations":
        code = MLFLOW_CODES.get(status, "BAD_REQUEST")
        if status == 422:
            status, code = 400, "BAD_REQUEST" if reason == "model_error" else "INVALID_PARAMETER_VALUE"
        return status, orjson.dumps({"error_code": code, "message": message})
    return status, orjson.dumps({"error": message})


def error_response(path: str, status: int, message: str, headers: dict[str, str] | None = None,
                   reason: str = "") -> Response:
    status, body = error_body(path, status, message, reason)
    return Response(body, status, headers=headers, media_type=JSON)


def error_answer(exc: Exception, path: str, metrics: Metrics) -> tuple[int, bytes, dict[str, str] | None]:
    """Status, body and extra headers of the error ``exc`` raised answering ``path``, counted by reason
    (an overload was counted where it happened, with its version)."""
    if isinstance(exc, PayloadError):
        metrics.count_error(exc.reason, exc.version if isinstance(exc, ModelError) else None)
        return (*error_body(path, exc.status, str(exc), exc.reason), None)
    if isinstance(exc, Overloaded):
        return (*error_body(path, 503, "the server is busy; retry shortly"), {"Retry-After": "1"})
    metrics.count_error("internal")
    return (*error_body(path, 500, f"internal error ({type(exc).__name__})"), None)


def body_schema(schema: str, *others: str) -> dict[str, Any]:
    """OpenAPI ``requestBody`` of a route: the JSON schema, and the other media types it takes."""
    content: dict[str, Any] = {"application/json": {"schema": _SCHEMAS[schema]}}
    for media in others:
        content[media] = {"schema": {"type": "string", "format": "binary"}}
    return {"requestBody": {"required": True, "content": content}}


def check_name(asked: str, name: str) -> None:
    if asked != name:
        raise PayloadError(f"no such model here; this server serves {name!r}", 404, "unknown_model")


def loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise PayloadError("the body is not valid JSON", 400, "malformed_json") from None


class Reader:
    """Reads request bodies of at most ``max_body`` bytes, on the wire and once inflated.

    ``await read_json(request)`` parses JSON; ``await read_json.raw(request)`` gives the bytes,
    inflated when the client sent ``Content-Encoding: gzip`` or ``deflate``; ``body`` does the
    same from any stream of chunks (the fast path's ASGI messages)."""

    def __init__(self, max_body: int) -> None:
        self.max_body = max_body

    async def raw(self, request: Request) -> bytes:
        return await self.body(request.stream(), request.headers.get("content-encoding", ""),
                               f"{request.method} {request.url.path}")

    async def body(self, stream: AsyncIterator[bytes], encoding: str, what: str) -> bytes:
        """The body ``stream`` brings, inflated per ``encoding``; ``what`` names the request in the server log."""
        max_body = self.max_body
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in stream:
                size += len(chunk)
                if size > max_body:
                    raise PayloadError(f"request bodies are limited to {max_body} bytes", 413, "body_too_large")
                chunks.append(chunk)
        except ClientDisconnect:  # one line, not a traceback: a client that goes away is no server error
            log_.warning("aborted: %s, the client went away after %d bytes of the body", what, size)
            raise PayloadError("the client disconnected before the body was complete", 400,
                               "client_disconnected") from None
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        encoding = encoding.strip().lower()
        if encoding in ("identity", ""):
            return body
        if encoding not in ("gzip", "deflate"):
            raise PayloadError(f"Content-Encoding {encoding[:40]!r} is not supported (gzip, deflate or none)", 415,
                               "unsupported_encoding")
        return self._inflate(body, encoding)

    def _inflate(self, body: bytes, encoding: str) -> bytes:
        """``body`` inflated, refusing more than ``max_body`` bytes out (a small bomb stays small). gzip
        may hold several members (RFC 1952); any other byte after the stream is refused."""
        # gzip: a gzip header; deflate: zlib-wrapped as HTTP says, raw deflate as some clients send
        wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else (zlib.MAX_WBITS if body[:1] == b"\x78" else -15)
        out = b""
        rest = body
        while True:
            inflater = zlib.decompressobj(wbits)
            try:
                out += inflater.decompress(rest, self.max_body + 1 - len(out))
            except zlib.error:
                raise PayloadError(f"the body is not valid {encoding} data", 400, "bad_encoding") from None
            if len(out) > self.max_body or inflater.unconsumed_tail:
                raise PayloadError(f"request bodies are limited to {self.max_body} bytes once inflated", 413,
                                   "body_too_large")
            if not inflater.eof:
                raise PayloadError(f"the {encoding} body is truncated", 400, "bad_encoding")
            rest = inflater.unused_data
            if not rest:
                return out
            if encoding != "gzip" or rest[:2] != b"\x1f\x8b":
                raise PayloadError(f"{len(rest)} bytes follow the {encoding} stream", 400, "bad_encoding")

    async def __call__(self, request: Request) -> Any:
        return loads(await self.raw(request))


def reader(max_body: int) -> Reader:
    return Reader(max_body)


class Incoming:
    """What a prediction route needs of its request, from FastAPI's ``Request`` (the fast path has
    its own): a header by its lower-case name and the body, read by the :class:`Reader`."""

    def __init__(self, request: Request, read: Reader) -> None:
        self.request, self.read = request, read

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name)

    async def raw(self) -> bytes:
        return await self.read.raw(self.request)

    async def json(self) -> Any:
        return loads(await self.raw())


async def send_answer(send: Any, status: int, body: bytes, media: str, headers: dict[str, str] | None = None) -> None:
    """Answer an ASGI request in two messages (no Starlette ``Response`` in between)."""
    raw = [(b"content-type", media.encode()), (b"content-length", str(len(body)).encode())]
    if headers:
        raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
