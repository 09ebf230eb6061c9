"""The fast path: the prediction routes answered straight from ASGI, in front of the FastAPI app.

``POST /predict``, ``/invocations``, ``/v1/models/{model_name}:predict`` and
``/v2/models/{model_name}[/versions/{version}]/infer`` skip Starlette's routing, request and
response objects, FastAPI's dependency solving and the middleware layers: per request they cost
a fraction of the CPU (see benchmarks/RESULTS.md, "Serving"). Nothing else changes: the same
door checks (:meth:`~nbmlops.serving.app.Guard.refusal`: Host, Origin, token, media type, size),
the same body reader (size cap, gzip and deflate within it), the same work and answers
(:mod:`nbmlops.serving.protocols`, hence :class:`~nbmlops.serving.session.ServingSession`:
batching, model metrics, request log, live monitor, A/B routing, shadow), the same error bodies
and error counts (:func:`~nbmlops.serving.http.error_answer`) and the same HTTP metrics, under
the same route templates. Every other request, and any other method on these paths, goes to the
app behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import ClientDisconnect

from . import protocols
from .http import JSON, Answer, Incoming, Reader, error_answer, error_body, send_answer
from .session import ServingSession

log_ = logging.getLogger("nbmlops.serving")
Refusal = Callable[[dict[str, Any], dict[bytes, bytes]], tuple[int, str, str] | None]
Work = Callable[[Incoming], Awaitable[Answer]]


async def _chunks(receive: Any) -> AsyncIterator[bytes]:
    """The body's chunks from the ASGI messages (ClientDisconnect when the client goes away, as Starlette's)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


class _Incoming(Incoming):
    """A request as the prediction routes see it, read from the ASGI scope and messages."""

    def __init__(self, scope: dict[str, Any], receive: Any, read: Reader) -> None:
        self.scope, self.receive, self.read = scope, receive, read

    def header(self, name: str) -> str | None:
        key = name.encode()
        for k, v in self.scope["headers"]:  # the first of repeated headers, as Starlette's Headers.get
            if k == key:
                return v.decode("latin-1")
        return None

    async def raw(self) -> bytes:
        return await self.read.body(_chunks(self.receive), self.header("content-encoding") or "",
                                    f"POST {self.scope['path']}")


class FastPath:
    """ASGI app: answers the prediction routes itself, hands everything else to ``app``."""

    def __init__(self, app: Any, refusal: Refusal, session: ServingSession, read: Reader) -> None:
        self.app, self.refusal, self.session, self.read = app, refusal, session, read
        self.metrics = session.metrics

    def route(self, path: str) -> tuple[str, Work] | None:
        """The template and work of a prediction route ``path`` names; None for any other path."""
        session, read = self.session, self.read
        if path == "/predict":
            return path, lambda req: protocols.predict(session, req)
        if path == "/invocations":
            return path, lambda req: protocols.invocations(session, req, read.max_body)
        if path.startswith("/v2/models/") and path.endswith("/infer"):
            parts = path[11:-6].split("/")
            if len(parts) == 1 and parts[0]:
                return ("/v2/models/{model_name}/infer",
                        lambda req: protocols.v2_infer(session, parts[0], None, req))
            if len(parts) == 3 and parts[0] and parts[1] == "versions" and parts[2]:
                return ("/v2/models/{model_name}/versions/{version}/infer",
                        lambda req: protocols.v2_infer(session, parts[0], parts[2], req))
        if path.startswith("/v1/models/") and path.endswith(":predict"):
            name = path[11:-8]
            if name and "/" not in name:
                return "/v1/models/{model_name}:predict", lambda req: protocols.v1_predict(session, name, req)
        return None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        found = self.route(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if found is None:
            return await self.app(scope, receive, send)
        template, work = found
        start = time.perf_counter()
        status = 500
        try:
            status = await self._answer(scope, receive, send, work)
        finally:
            self.metrics.http(template, "POST", status, time.perf_counter() - start)

    async def _answer(self, scope: dict[str, Any], receive: Any, send: Any, work: Work) -> int:
        """Check, work and answer one request; returns the status sent."""
        path = scope["path"]
        refused = self.refusal(scope, dict(scope["headers"]))
        if refused is not None:
            status, reason, message = refused
            self.metrics.count_error(reason)
            status, body = error_body(path, status, message)
            await send_answer(send, status, body, JSON)
            return status
        extra: dict[str, str] | None
        try:
            body, media, extra = await work(_Incoming(scope, receive, self.read))
            status = 200
        except Exception as exc:
            status, body, extra = error_answer(exc, path, self.metrics)
            media = JSON
            if status == 500:
                log_.error("internal error answering POST %s", path, exc_info=exc)
        await send_answer(send, status, body, media, extra)
        return status
