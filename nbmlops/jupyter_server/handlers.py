"""Tornado handlers of the dashboard: one page, two assets, a JSON API. All behind Jupyter's auth.

Every method is ``@tornado.web.authenticated``; mutations are POSTs, so jupyter_server's XSRF
check applies to cookie-authenticated callers (token-authenticated ones are exempt, as everywhere
in Jupyter). Domain calls run on a small thread pool: they read files and may talk to a model
server, and must not stall the server's event loop.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from http.client import responses
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.ioloop import IOLoop

from ..display.drift import SORT_JS
from ..errors import InvalidInput, NbmlopsError, NotFound, ServingError
from . import artifacts, data, stores, views

STATIC = Path(__file__).parent / "static"
_JS = "application/javascript; charset=UTF-8"
# loaded in this order by index.html: helpers, charts, then one file per view, then the router
SCRIPTS = ("core.js", "charts.js", "home.js", "run.js", "compare.js", "model.js", "drift.js", "deployment.js",
           "app.js")
ASSETS = {"app.css": "text/css; charset=UTF-8", **dict.fromkeys(SCRIPTS, _JS)}
CHUNK = 256 * 1024
_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="nbmlops-dashboard")


class ApiError(web.HTTPError):
    """An HTTP error whose message is shown to the caller as ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message.replace("%", "%%"))  # tornado logs log_message %-formatted
        self.message = message


def _status_of(exc: NbmlopsError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, InvalidInput):
        return 400
    if isinstance(exc, ServingError):
        return 502
    return 500


class BaseApiHandler(APIHandler):
    """JSON in, JSON out; errors as ``{"error": "..."}`` and never a traceback."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            message = exc.message
        elif isinstance(exc, web.HTTPError) and exc.log_message:
            try:
                message = exc.log_message % exc.args
            except (TypeError, ValueError):
                message = exc.log_message
        else:
            message = responses.get(status_code, "error")
            if status_code >= 500:
                message = "internal error in the nbmlops dashboard; the Jupyter server log has the details"
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": message}))

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a domain call off the event loop; its errors become 4xx/5xx with its own message."""
        try:
            return await IOLoop.current().run_in_executor(_pool, partial(fn, *args, **kwargs))
        except NbmlopsError as e:
            raise ApiError(_status_of(e), str(e)) from None

    def reply(self, payload: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(payload, default=str))

    def int_arg(self, name: str, default: int, low: int, high: int) -> int:
        text = self.get_argument(name, None)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            raise ApiError(400, f"{name} must be a whole number from {low} to {high}, got {text!r}") from None
        if not low <= value <= high:
            raise ApiError(400, f"{name} must be a whole number from {low} to {high}, got {value}")
        return value

    def bool_arg(self, name: str, default: bool) -> bool:
        text = self.get_argument(name, None)
        if text is None:
            return default
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise ApiError(400, f"{name} must be true or false, got {text!r}")

    def json_body(self, required: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
        """The body as a JSON object with exactly the ``required`` keys, of those types."""
        try:
            body = json.loads(self.request.body or b"")
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, f"the request body must be JSON ({e})") from None
        example = json.dumps({k: ("production" if t is str else 2) for k, t in required.items()})
        if not isinstance(body, dict):
            raise ApiError(400, f"the request body must be a JSON object like {example}")
        missing = [k for k in required if k not in body]
        extra = [k for k in body if k not in required]
        if missing or extra:
            what = "; ".join(filter(None, [missing and f"missing {', '.join(missing)}",
                                           extra and f"unknown {', '.join(map(repr, extra))}"]))
            raise ApiError(400, f"the request body must be {example}: {what}")
        for key, kind in required.items():
            value = body[key]
            if isinstance(value, bool) or not isinstance(value, kind):
                want = "a string" if kind is str else "a whole number"
                raise ApiError(400, f"{key} must be {want}, got {json.dumps(value)}")
        return body


class StoreHandler(BaseApiHandler):
    """The store shown, the kernels' store, the stores found below the root (GET); show another (POST)."""

    @web.authenticated
    async def get(self) -> None:
        known = self.settings.get("nbmlops_stores")
        self.reply(await self.call(stores.describe, known) if known else await self.call(data.store))

    @web.authenticated
    async def post(self) -> None:
        known = self.settings.get("nbmlops_stores")
        if known is None:
            raise ApiError(400, "this server has no store list: start it with the nbmlops extension enabled")
        body = self.json_body({"path": str})
        await self.call(stores.switch, known, body["path"])
        self.reply(await self.call(stores.describe, known))


class ExperimentsHandler(BaseApiHandler):
    @web.authenticated
    async def get(self) -> None:
        self.reply({"experiments": await self.call(data.experiments)})


class RunsHandler(BaseApiHandler):
    @web.authenticated
    async def get(self, experiment: str) -> None:
        self.reply(await self.call(
            data.runs, experiment, self.get_argument("filter", None),
            [o for o in self.get_arguments("order_by") if o.strip()],
            self.int_arg("max_results", 100, 1, data.MAX_RESULTS), self.int_arg("offset", 0, 0, 10**9)))


class RunHandler(BaseApiHandler):
    @web.authenticated
    async def get(self, run_id: str) -> None:
        self.reply(await self.call(data.run, run_id))


class MetricsHandler(BaseApiHandler):
    @web.authenticated
    async def get(self, run_id: str) -> None:
        self.reply(await self.call(data.metric_history, run_id, self.get_argument("key", None),
                                   self.int_arg("max_points", data.MAX_POINTS, 4, 100_000)))


class ArtifactHandler(BaseApiHandler):
    """One file recorded as an artifact of the run, by its recorded name: images and text inline, anything
    else (HTML and SVG included) as an attachment; never sniffed, never run as a page (CSP sandbox)."""

    @property
    def content_security_policy(self) -> str:
        return "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"

    @web.authenticated
    async def get(self, run_id: str, name: str) -> None:
        path, entry = await self.call(artifacts.locate, run_id, name)
        ctype, inline = artifacts.content_type(entry["name"], entry.get("kind"))
        if self.bool_arg("download", False):
            inline = False
        filename = entry["name"].rsplit("/", 1)[-1]
        ascii_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in filename)
        self.set_header("Content-Type", ctype)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Disposition", f"{'inline' if inline else 'attachment'}; filename=\"{ascii_name}\"; "
                                               f"filename*=UTF-8''{quote(filename, safe='')}")
        self.set_header("Cache-Control", "private, no-cache")
        with open(path, "rb") as f:  # the blob run.artifact checked; large files go out in chunks
            while chunk := f.read(CHUNK):
                self.write(chunk)
                await self.flush()
        self.finish(set_content_type=ctype)


class PreviewHandler(BaseApiHandler):
    @web.authenticated
    async def get(self, run_id: str, name: str) -> None:
        self.reply(await self.call(artifacts.preview, run_id, name))


class CompareHandler(BaseApiHandler):
    @web.authenticated
    async def get(self) -> None:
        ids = [i.strip() for part in self.get_arguments("runs") for i in part.split(",") if i.strip()]
        self.reply(await self.call(views.compare, ids, self.int_arg("max_points", data.MAX_POINTS, 4, 100_000)))


class ModelsHandler(BaseApiHandler):
    @web.authenticated
    async def get(self) -> None:
        self.reply({"models": await self.call(data.models)})


class ModelHandler(BaseApiHandler):
    @web.authenticated
    async def get(self, name: str) -> None:
        self.reply(await self.call(data.model, name))


def _version(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ApiError(400, f"a model version is a whole number from 1, got {text!r}")
    return int(text)


class ModelVersionHandler(BaseApiHandler):
    @web.authenticated
    async def get(self, name: str, version: str) -> None:
        self.reply(await self.call(views.model_version, name, _version(version)))


class DriftTimelineHandler(BaseApiHandler):
    @web.authenticated
    async def get(self, name: str, version: str) -> None:
        self.reply(await self.call(views.drift_timeline, name, _version(version)))


class AliasHandler(BaseApiHandler):
    @web.authenticated
    async def post(self, name: str) -> None:
        body = self.json_body({"alias": str, "version": int})
        self.reply(await self.call(data.set_alias, name, body["alias"], body["version"]))


class DeploymentsHandler(BaseApiHandler):
    @web.authenticated
    async def get(self) -> None:
        self.reply({"deployments": await self.call(data.deployments, self.bool_arg("all", True),
                                                   self.bool_arg("live", True))})


class DeploymentHandler(BaseApiHandler):
    @web.authenticated
    async def get(self, name: str) -> None:
        self.reply(await self.call(views.deployment, name))


class StopHandler(BaseApiHandler):
    @web.authenticated
    async def post(self, name: str) -> None:
        self.reply(await self.call(data.stop_deployment, name))


class DriftHandler(BaseApiHandler):
    @web.authenticated
    async def get(self) -> None:
        reports = await self.call(data.drift_reports, self.get_argument("model", None) or None,
                                  self.int_arg("limit", 100, 1, data.MAX_RESULTS))
        for r in reports:
            r["html_url"] = url_path_join(self.base_url, "nbmlops", "api", "drift", r["id"], "html")
        self.reply({"reports": reports})


def _sort_script_hash() -> str:
    """The CSP hash of the one script a saved drift report carries (column sorting): that script
    may run, in a sandbox with an opaque origin; any other script may not."""
    return f"'sha256-{base64.b64encode(hashlib.sha256(SORT_JS.encode()).digest()).decode()}'"


class DriftHtmlHandler(BaseApiHandler):
    """A saved drift report page: self-contained HTML (inline PNGs), under a strict CSP."""

    @property
    def content_security_policy(self) -> str:
        return ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                f"script-src {_sort_script_hash()}; sandbox allow-scripts; frame-ancestors 'self'; "
                "base-uri 'none'; form-action 'none'")

    @web.authenticated
    async def get(self, drift_id: str) -> None:
        page = await self.call(data.drift_report_html, drift_id)
        self.set_header("Cache-Control", "no-store")
        self.finish(page.encode(), set_content_type="text/html; charset=UTF-8")


class PageHandler(JupyterHandler):
    """The dashboard page, with the server's base URL written into it."""

    @property
    def content_security_policy(self) -> str:
        if "Content-Security-Policy" in self.settings.get("headers", {}):
            return super().content_security_policy
        return ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
                "frame-ancestors 'self'; base-uri 'none'; form-action 'none'")

    @web.authenticated
    def get(self) -> None:
        base = self.base_url
        version = hashlib.sha256(b"".join((STATIC / n).read_bytes() for n in sorted(ASSETS))).hexdigest()[:12]
        page = (STATIC / "index.html").read_text()
        tag = '<script src="{{base_url}}nbmlops/static/%s?v={{version}}"></script>'
        page = page.replace("{{scripts}}", "\n".join(tag % n for n in SCRIPTS))
        page = page.replace("{{base_url}}", html.escape(base, quote=True)).replace("{{version}}", version)
        self.xsrf_token  # noqa: B018  (sets the _xsrf cookie that app.js sends back on POSTs)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(page)


class AssetHandler(JupyterHandler):
    """app.js and app.css, and nothing else."""

    @web.authenticated
    def get(self, name: str) -> None:
        if name not in ASSETS:
            raise web.HTTPError(404)
        self.set_header("Content-Type", ASSETS[name])
        self.set_header("Cache-Control", "private, max-age=3600" if self.get_argument("v", None) else "no-cache")
        self.finish((STATIC / name).read_bytes())


def handlers(base_url: str) -> list[tuple[str, type]]:
    def route(*parts: str) -> str:
        return url_path_join(base_url, "nbmlops", *parts)

    api = partial(route, "api")
    return [
        (route() + "/?", PageHandler),
        (route("static", r"([^/]+)"), AssetHandler),
        (api("store"), StoreHandler),
        (api("experiments"), ExperimentsHandler),
        (api("experiments", r"([^/]+)", "runs"), RunsHandler),
        (api("runs", r"([^/]+)"), RunHandler),
        (api("runs", r"([^/]+)", "metrics"), MetricsHandler),
        (api("runs", r"([^/]+)", "artifacts", r"(.+)"), ArtifactHandler),
        (api("runs", r"([^/]+)", "preview", r"(.+)"), PreviewHandler),
        (api("compare"), CompareHandler),
        (api("models"), ModelsHandler),
        (api("models", r"([^/]+)"), ModelHandler),
        (api("models", r"([^/]+)", "versions", r"([^/]+)"), ModelVersionHandler),
        (api("models", r"([^/]+)", "versions", r"([^/]+)", "drift"), DriftTimelineHandler),
        (api("models", r"([^/]+)", "aliases"), AliasHandler),
        (api("deployments"), DeploymentsHandler),
        (api("deployments", r"([^/]+)"), DeploymentHandler),
        (api("deployments", r"([^/]+)", "stop"), StopHandler),
        (api("drift"), DriftHandler),
        (api("drift", r"([^/]+)", "html"), DriftHtmlHandler),
    ]
