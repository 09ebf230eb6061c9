"""The fast path for the prediction routes (nbmlops.serving.fast) answers exactly as the FastAPI
routes behind it do: two servers over real HTTP on 127.0.0.1, one app with the fast path and
one without, get the same requests (good ones, and each kind the Guard, the reader and the
protocols refuse); their answers, their Prometheus counts, their request logs and their live
monitors' windows must be the same."""

from __future__ import annotations

import asyncio
import gzip
import http.client
import json
import re
import socket
import struct
import threading
import time

import numpy as np
import pytest

import nbmlops
from nbmlops.serving.app import create_app
from nbmlops.serving.batching import INLINE_BELOW, INLINE_WALL, Batcher
from nbmlops.serving.fast import FastPath
from nbmlops.serving.metrics import Metrics
from nbmlops.serving.monitor import Monitor
from nbmlops.serving.reqlog import RequestLog, read_requests
from nbmlops.serving.router import Router

TOKEN = "predict-token"
MAX_BODY = 4096


class Server:
    """One app under uvicorn in a thread, on a free loopback port; ``stop()`` shuts it down."""

    def __init__(self, app) -> None:
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                                    loop="asyncio", http="h11"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the test server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Two servers of one A/B deployment (versions 1 and 2, version 3 as shadow, request log and
    live monitor on), the first with the fast path, the second without."""
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("fast")
    nbmlops.set_store(root / "store")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    for c in (1.0, 0.01, 0.1):
        nbmlops.register_model(LogisticRegression(C=c).fit(X, y), "fastm")
    servers, parts = [], []
    try:
        for fast in (True, False):
            metrics = Metrics("fastm")
            router = Router("fastm/1", ab={1: 0.5, 2: 0.5}, shadow=3)
            log = RequestLog(root / f"log-{fast}")
            monitor = Monitor(metrics, window=1000, every=100_000, deployment=f"fast-{fast}", record=False)
            app = create_app(router, metrics, token=TOKEN, log=log, max_body=MAX_BODY, admin_token="admin",
                             monitor=monitor, fast=fast)
            assert isinstance(app, FastPath) == fast
            servers.append(Server(app))
            parts.append((log, monitor, root / f"log-{fast}"))
        yield servers, parts, X
    finally:
        for s in servers:
            s.stop()
        nbmlops.set_store(None)


def call(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body or None,  # a request key: A/B routing picks the same version on both
                     headers={"Authorization": f"Bearer {TOKEN}", "X-Request-Key": "z", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), resp.read()
    finally:
        conn.close()


def normalized(headers: dict, body: bytes) -> tuple:
    """What must be the same on both servers: media type, the headers a client reads, the body
    (a request id apart: each server makes its own)."""
    kept = {k: headers[k] for k in ("content-type", "retry-after", "inference-header-content-length") if k in headers}
    if headers.get("content-type") == "application/json":
        data = json.loads(body)
        if isinstance(data, dict):
            data.pop("request_id", None)
        return kept, data
    return kept, body


JSON = {"Content-Type": "application/json"}


def battery(X) -> list[tuple[str, str, bytes, dict]]:
    """(method, path, body, headers): every prediction protocol, and every way to get refused."""
    row = X[0].tolist()
    rows = X[:3].tolist()
    one = json.dumps({"features": row}).encode()
    v2 = json.dumps({"id": "r1", "inputs": [{"name": "input-0", "shape": [3, 4], "datatype": "FP64",
                                             "data": rows}]}).encode()
    head = json.dumps({"id": "b1", "inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64",
                                               "parameters": {"binary_data_size": 64}}],
                       "outputs": [{"name": "predict", "parameters": {"binary_data": True}}]}).encode()
    binary = head + struct.pack("<8d", *X[:2].ravel())
    csv = ("\n".join(",".join(map(str, r)) for r in rows) + "\n").encode()
    bomb = gzip.compress(b"[" + b"0," * 10_000 + b"0]")
    out = []
    for key in ("a", "b", "c", "d"):  # sticky A/B keys: both versions answer
        out.append(("POST", "/predict", one, {**JSON, "X-Request-Key": key}))
        out.append(("POST", "/invocations", json.dumps({"instances": rows}).encode(), {**JSON, "X-Request-Key": key}))
        out.append(("POST", "/v1/models/fastm:predict", json.dumps({"instances": rows, "key": key}).encode(), JSON))
        out.append(("POST", "/v2/models/fastm/infer", v2, {**JSON, "X-Request-Key": key}))
    out += [
        ("POST", "/predict", json.dumps({"instances": rows, "key": "a"}).encode(), JSON),
        ("POST", "/predict", gzip.compress(one), {**JSON, "Content-Encoding": "gzip", "X-Request-Key": "a"}),
        ("POST", "/predict", b"{not json", JSON),
        ("POST", "/predict", json.dumps({"features": row[:3]}).encode(), JSON),
        ("POST", "/predict", one, {"Content-Type": "text/plain"}),
        ("POST", "/predict", one, {**JSON, "Origin": "http://evil.example"}),
        ("POST", "/predict", one, {**JSON, "Authorization": "Bearer wrong"}),
        ("POST", "/predict", one, {**JSON, "Host": "evil.example"}),
        ("POST", "/predict", b"[" + b"1," * MAX_BODY + b"1]", JSON),
        ("POST", "/predict", bomb, {**JSON, "Content-Encoding": "gzip"}),
        ("POST", "/predict", b"\x1f\x8b garbage", {**JSON, "Content-Encoding": "gzip"}),
        ("POST", "/predict", one, {**JSON, "Content-Encoding": "br"}),
        ("POST", "/invocations", csv, {"Content-Type": "text/csv", "X-Request-Key": "a"}),
        ("POST", "/invocations", json.dumps({"dataframe_split": {"data": rows}}).encode(), JSON),
        ("POST", "/invocations", json.dumps({"instances": [row[:2]]}).encode(), JSON),
        ("POST", "/invocations", one, {"Content-Type": "text/plain"}),
        ("POST", "/invocations", b"{", JSON),
        ("POST", "/v1/models/other:predict", json.dumps({"instances": rows}).encode(), JSON),
        ("POST", "/v1/models/fastm:predict", json.dumps({"rows": rows}).encode(), JSON),
        ("POST", "/v2/models/fastm/infer", binary, {"Inference-Header-Content-Length": str(len(head))}),
        ("POST", "/v2/models/fastm/versions/2/infer", v2, JSON),
        ("POST", "/v2/models/fastm/versions/9/infer", v2, JSON),
        ("POST", "/v2/models/other/infer", v2, JSON),
        ("POST", "/v2/models/fastm/infer", v2[:-3], JSON),
        ("POST", "/v2/models/fastm/infer", binary, {"Inference-Header-Content-Length": "99999"}),
        ("GET", "/predict", b"", {}),  # not a fast route: FastAPI's 405, on both
        ("PUT", "/v2/models/fastm/infer", v2, JSON),
        ("POST", "/feedback", b"{}", JSON),
        ("GET", "/health", b"", {}),
    ]
    return out


def metric_samples(port: int) -> dict[str, float]:
    """Prometheus samples, without latencies' buckets and sums (times differ) and the /metrics route itself."""
    _, _, text = call(port, "GET", "/metrics")
    samples = {}
    for line in text.decode().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, value = line.rsplit(" ", 1)
        if ('route="/metrics"' in name or "_bucket" in name or "_sum" in name or name.startswith("model_requests_in_")
                or name.startswith("model_prediction_latency") or name.startswith("model_batch_size")):
            continue
        samples[name] = float(value)
    return samples


def test_the_fast_path_answers_counts_and_logs_as_the_fastapi_routes(pair):
    (fast, slow), parts, X = pair
    statuses = set()
    for method, path, body, headers in battery(X):
        a = call(fast.port, method, path, body, headers)
        b = call(slow.port, method, path, body, headers)
        what = f"{method} {path} {headers}"
        assert a[0] == b[0], what
        assert normalized(a[1], a[2]) == normalized(b[1], b[2]), what
        statuses.add(a[0])
    assert {200, 400, 401, 403, 404, 405, 413, 415, 422} <= statuses  # the battery reached every kind of answer
    assert metric_samples(fast.port) == metric_samples(slow.port)
    samples = metric_samples(fast.port)
    assert samples['model_http_requests_total{method="POST",route="/v2/models/{model_name}/infer",status="404"}'] == 1
    assert samples['model_http_requests_total{method="POST",route="/v2/models/{model_name}/versions/{version}/infer",'
                   'status="404"}'] == 1
    assert samples['model_request_errors_total{model_name="fastm",model_version="",reason="cross_origin"}'] == 1

    time.sleep(0.5)  # the shadow's answers are logged from its thread
    logs = []
    for log, monitor, folder in parts:
        log.flush()
        logs.append(sorted(json.dumps({k: v for k, v in r.items() if k not in ("t", "id", "lat")}, sort_keys=True)
                           for r in read_requests(folder)))
        held = {v: sum(len(x[1]) for x in state.buf) for v, state in monitor.versions.items()}
        logs[-1].append(json.dumps(held))
    assert logs[0] == logs[1]
    assert any('"shadow": true' in r for r in logs[0]) and any('"v": 2' in r for r in logs[0])


def test_mlflow_errors_keep_mlflows_form_on_the_fast_path(pair):
    (fast, _), _, X = pair
    status, _, body = call(fast.port, "POST", "/invocations", json.dumps({"instances": [[1.0]]}).encode(), JSON)
    assert status == 400 and json.loads(body)["error_code"] == "INVALID_PARAMETER_VALUE"
    status, _, body = call(fast.port, "POST", "/invocations", b"x", {"Content-Type": "text/html"})
    assert status == 415 and json.loads(body)["error_code"] == "BAD_REQUEST"


def test_a_client_gone_mid_body_is_counted_alike_and_the_server_keeps_serving(pair):
    (fast, slow), _, X = pair
    for server in (fast, slow):
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: 1000\r\n\r\n{\"features\"")
            time.sleep(0.3)
        deadline = time.monotonic() + 10
        key = 'model_request_errors_total{model_name="fastm",model_version="",reason="client_disconnected"}'
        while metric_samples(server.port).get(key) != 1.0:
            assert time.monotonic() < deadline, "the aborted request was not counted"
            time.sleep(0.1)
        status, _, _ = call(server.port, "POST", "/predict", json.dumps({"features": X[0].tolist()}).encode(), JSON)
        assert status == 200


def test_fast_routes_carry_the_templates_fastapi_would_give(pair):
    """The fast path's route templates are the FastAPI app's own (so the metrics' route labels agree)."""
    from starlette.routing import Match

    (fast, _), _, _ = pair
    app = fast.server.config.app
    fastapi_app = app.app.app.app  # FastPath -> HttpMetrics -> Guard -> FastAPI
    for path in ("/predict", "/invocations", "/v1/models/x:predict", "/v1/models/a:b:predict",
                 "/v2/models/x/infer", "/v2/models/x/versions/3/infer"):
        template, _ = app.route(path)
        scope = {"type": "http", "path": path, "method": "POST", "root_path": ""}
        full = [r.path for r in fastapi_app.routes if hasattr(r, "matches") and r.matches(scope)[0] == Match.FULL]
        assert full[:1] == [template], path
    for path in ("/predict/", "/v2/models//infer", "/v2/models/x/y/infer", "/v1/models/:predict", "/health"):
        assert app.route(path) is None, path


def test_quick_models_score_on_the_event_loop_slow_ones_on_their_thread():
    """A model call under INLINE_BELOW of CPU runs on the loop (no thread hand-off); one that computes
    longer, or waits longer than INLINE_WALL (on threads of its own, say), keeps the loop free on the
    model's thread; so does a batch as big as max_batch_size."""
    threads: dict[str, set] = {"quick": set(), "busy": set(), "waiting": set()}

    def model(kind: str):
        def predict(rows):
            threads[kind].add(threading.get_ident())
            if kind == "busy":
                end = time.thread_time() + 2 * INLINE_BELOW
                while time.thread_time() < end:
                    pass
            elif kind == "waiting":
                time.sleep(2 * INLINE_WALL)
            return {"predictions": [0] * len(rows)}
        return predict

    async def run() -> int:
        batchers = {kind: Batcher(model(kind)) for kind in threads}
        for b in batchers.values():
            b.start()
        for _ in range(12):
            await asyncio.gather(*(b.submit([[1.0]]) for b in batchers.values() for _ in range(3)))
        assert batchers["quick"].quick and not batchers["busy"].quick and not batchers["waiting"].quick
        assert threading.get_ident() in threads["quick"]  # once known quick, scored on the loop's own thread
        threads["quick"].clear()
        await batchers["quick"].submit([[1.0]] * batchers["quick"].max_batch_size)
        return threading.get_ident()

    loop_thread = asyncio.run(run())
    assert threads["quick"] and loop_thread not in threads["quick"]  # the big batch went to the model's thread
    assert loop_thread not in threads["busy"] | threads["waiting"]


def test_the_server_process_answers_through_the_fast_path(tmp_path):
    """``serve()``'s process: /predict and its metrics, unchanged in form."""
    from sklearn.linear_model import LogisticRegression

    nbmlops.set_store(tmp_path / "store")
    try:
        X = np.random.default_rng(1).normal(size=(50, 3))
        nbmlops.register_model(LogisticRegression().fit(X, X[:, 0] > 0), "fastp")
        dep = nbmlops.serve("fastp/1", name="fastp")
        try:
            admin = {"Authorization": f"Bearer {dep.admin_token}"}
            body = json.dumps({"features": [0.1, 0.2, 0.3]}).encode()
            status, headers, body = call(dep.port, "POST", "/predict", body, {**JSON, **admin})
            assert status == 200 and headers["content-type"] == "application/json"
            assert set(json.loads(body)) >= {"model", "version", "request_id", "prediction", "probability"}
            _, _, text = call(dep.port, "GET", "/metrics", headers=admin)
            assert re.search(r'model_http_requests_total\{method="POST",route="/predict",status="200"\} 1\.0',
                             text.decode())
        finally:
            dep.stop()
    finally:
        nbmlops.set_store(None)
