"""Real model servers over real HTTP on 127.0.0.1: payload forms, errors, auth, metrics, log, lifecycle."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import nbmlops
from nbmlops import InvalidInput, NotFound, ServingError

pytestmark = pytest.mark.process  # model servers


def call(dep, method, path, body=None, headers=None, raw=None):
    conn = http.client.HTTPConnection("127.0.0.1", dep.port, timeout=30)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    ctype = resp.getheader("content-type", "")
    return resp.status, (json.loads(payload) if "json" in ctype else payload.decode()), resp


def test_predict_in_every_payload_form(served):
    dep, model, X, _ = served
    rows = X.head(3)
    expected = model.predict(rows).tolist()
    status, one, _ = call(dep, "POST", "/predict", {"features": rows.iloc[0].tolist()})
    assert status == 200 and one["prediction"] == expected[0] and one["version"] == 1 and one["model"] == "cancer"
    assert one["confidence"] in ("very_high", "high", "medium", "low") and 0.5 <= one["probability"] <= 1
    assert len(one["request_id"]) == 32
    assert call(dep, "POST", "/predict", {"instances": rows.values.tolist()})[1]["predictions"] == expected
    records = json.loads(rows.to_json(orient="records"))
    assert call(dep, "POST", "/predict", {"inputs": records[0]})[1]["prediction"] == expected[0]
    assert call(dep, "POST", "/predict", {"inputs": records})[1]["predictions"] == expected
    assert call(dep, "POST", "/v1/models/cancer:predict", {"instances": rows.values.tolist()})[1] == {"predictions": expected}
    v2 = {"id": "abc", "inputs": [{"name": "input-0", "shape": [3, 30], "datatype": "FP64",
                                    "data": rows.values.ravel().tolist()}]}
    status, out, _ = call(dep, "POST", "/v2/models/cancer/infer", v2)
    assert status == 200 and out["id"] == "abc" and out["outputs"][0]["data"] == expected
    per_feature = {"inputs": [{"name": c, "shape": [3], "datatype": "FP64", "data": rows[c].tolist()} for c in X.columns]}
    assert call(dep, "POST", "/v2/models/cancer/versions/1/infer", per_feature)[1]["outputs"][0]["data"] == expected
    split = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
    assert call(dep, "POST", "/invocations", split)[1] == {"predictions": expected}
    assert call(dep, "POST", "/invocations", {"dataframe_records": records})[1] == {"predictions": expected}
    assert call(dep, "POST", "/invocations", {"instances": rows.values.tolist()})[1] == {"predictions": expected}
    assert dep.predict(rows)["predictions"] == expected  # the client


def test_health_readiness_and_metadata_routes(served):
    dep, model, X, _ = served
    assert call(dep, "GET", "/health")[:2] == (200, {"status": "healthy", "model_loaded": True})
    assert call(dep, "GET", "/ready")[1]["ready"] is True
    info = call(dep, "GET", "/model/info")[1]
    assert info["n_features"] == 30 and info["feature_names"] == list(X.columns) and info["classes"] == [0, 1]
    assert info["sha256"] == nbmlops.get_model_version("cancer/1").sha256 and info["aliases"] == ["production"]
    assert call(dep, "GET", "/v2/health/live")[1] == {"live": True}
    assert call(dep, "GET", "/v2/health/ready")[1] == {"ready": True}
    assert call(dep, "GET", "/v2/models/cancer")[1]["inputs"][0]["shape"] == [-1, 30]
    assert call(dep, "GET", "/v2/models/cancer/ready")[1]["ready"] is True
    assert call(dep, "GET", "/v1/models/cancer")[1]["ready"] is True
    assert "/predict" in call(dep, "GET", "/openapi.json")[1]["paths"]
    assert call(dep, "GET", "/docs")[0] == 200


@pytest.mark.parametrize("body, raw, status, message", [
    ({"features": [1.0, 2.0]}, None, 422, "expects 30 features"),
    ({"features": ["a"] * 30}, None, 422, "must be a number"),
    ({"features": [True] * 30}, None, 422, "must be a number"),
    (None, b'{"features": [NaN' + b", 1" * 29 + b"]}", 400, "not valid JSON"),
    ({"features": [1e308 * 10] * 30}, None, 400, "not valid JSON"),
    ({"inputs": {"mean radius": 1}}, None, 422, "lacks features"),
    ({"instances": []}, None, 422, "non-empty list"),
    ({"instances": [[0.0] * 30] * 10_001}, None, 413, "limit per request"),
    ({"nothing": 1}, None, 422, "needs one of"),
    ([1, 2, 3], None, 422, "JSON object"),
    (None, b"{not json", 400, "not valid JSON"),
    (None, b"x" * (5 << 20), 413, "limited to"),
])
def test_bad_input_is_4xx_json_and_the_server_keeps_serving(served, body, raw, status, message):
    dep, _, X, _ = served
    if body is not None and raw is None:
        raw = json.dumps(body, allow_nan=True).encode()
    got, answer, _ = call(dep, "POST", "/predict", raw=raw)
    assert got == status and message in answer["error"]
    assert set(answer) == {"error"} and "Traceback" not in answer["error"]
    assert call(dep, "POST", "/predict", {"features": X.iloc[0].tolist()})[0] == 200


def test_unknown_routes_models_and_methods_answer_json(served):
    dep, *_ = served
    assert call(dep, "GET", "/nope")[:2] == (404, {"error": "no route /nope"})
    assert call(dep, "GET", "/predict")[0] == 405
    status, answer, _ = call(dep, "POST", "/v1/models/other:predict", {"instances": [[0] * 30]})
    assert status == 404 and "serves 'cancer'" in answer["error"]
    assert call(dep, "POST", "/v2/models/cancer/versions/9/infer", {"inputs": []})[0] == 404


def test_dns_rebinding_host_header_is_refused(served):
    dep, *_ = served
    status, answer, _ = call(dep, "GET", "/model/info", headers={"Host": "evil.example:80"})
    assert status == 403 and "loopback" in answer["error"]
    assert call(dep, "GET", "/health", headers={"Host": f"localhost:{dep.port}"})[0] == 200


def test_metrics_feedback_and_request_log(served):
    from prometheus_client.parser import text_string_to_metric_families

    dep, model, X, y = served
    rows = X.iloc[100:110]
    answer = dep.predict(rows)
    call(dep, "POST", "/predict", {"features": [1.0]})  # one error
    labels = {"request_id": answer["request_id"], "labels": y.iloc[100:110].tolist()}
    assert call(dep, "POST", "/feedback", labels)[0] == 401  # /feedback needs the admin token
    admin = {"Authorization": f"Bearer {dep.admin_token}"}
    status, fb, _ = call(dep, "POST", "/feedback", labels, headers=admin)
    assert status == 200 and fb["correct"] == (model.predict(rows) == y.iloc[100:110]).tolist()
    assert call(dep, "POST", "/feedback", {"request_id": "0" * 32, "label": 1}, headers=admin)[0] == 404
    assert call(dep, "POST", "/feedback", {"request_id": answer["request_id"], "label": 1}, headers=admin)[0] == 422
    families = {f.name: f for f in text_string_to_metric_families(call(dep, "GET", "/metrics")[1])}
    predicted = {s.labels["prediction_class"]: s.value for s in families["model_predictions"].samples
                 if s.name == "model_predictions_total"}
    assert sum(predicted.values()) >= 10 and set(predicted) <= {"0", "1"}
    buckets = [s for s in families["model_prediction_latency_seconds"].samples if s.name.endswith("_bucket")]
    assert {s.labels["le"] for s in buckets} >= {"0.001", "0.005", "0.01", "10.0", "+Inf"}
    errors = {s.labels["reason"]: s.value for s in families["model_request_errors"].samples if s.name.endswith("_total")}
    assert errors["invalid_input"] >= 1
    accuracy = [s.value for s in families["model_accuracy"].samples]
    assert accuracy and 0 < accuracy[0] <= 1
    assert "model_requests_in_flight" in families
    time.sleep(0.4)  # the log is written off the request path, every 100 ms
    log = dep.requests()
    mine = log[log.request_id == answer["request_id"]]
    assert len(mine) == 10 and (mine["prediction"].to_numpy() == model.predict(rows)).all()
    assert np.allclose(mine["mean radius"].to_numpy(), rows["mean radius"].to_numpy())
    assert (mine["version"] == 1).all() and (mine["latency_ms"] > 0).all()


def test_concurrent_requests_are_micro_batched_and_all_correct(served):
    from prometheus_client.parser import text_string_to_metric_families

    dep, model, X, _ = served
    rows = X.values[:200]

    def one(i):
        return call(dep, "POST", "/predict", {"features": rows[i].tolist()})[1]["prediction"]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        got = list(pool.map(one, range(200)))
    assert got == model.predict(X.head(200)).tolist()
    families = {f.name: f for f in text_string_to_metric_families(call(dep, "GET", "/metrics")[1])}
    sizes = {s.labels["le"]: s.value for s in families["model_batch_size"].samples if s.name.endswith("_bucket")}
    assert sizes["+Inf"] > sizes["1.0"]  # some model calls scored more than one request


def test_reuse_and_conflicting_deployment(served, capsys):
    dep, *_ = served
    again = nbmlops.serve("cancer@production")
    assert again.pid == dep.pid and f"reusing deployment cancer on port {dep.port}, pid {dep.pid}" in capsys.readouterr().out
    with pytest.raises(InvalidInput, match="already serves cancer@production"):
        nbmlops.serve("cancer/1")


def test_bad_serve_arguments(served):
    with pytest.raises(InvalidInput, match="port"):
        nbmlops.serve("cancer/1", port=70000, name="x")
    with pytest.raises(NotFound, match="no registered model"):
        nbmlops.serve("nothing@production")
    with pytest.raises(InvalidInput, match="token"):
        nbmlops.serve("cancer/1", token="short", name="x")


def test_port_taken_fails_with_the_servers_own_message(served):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        with pytest.raises(ServingError, match="cannot listen on 127.0.0.1"):
            nbmlops.serve("cancer/1", port=port, name="taken")
    assert nbmlops.list_deployments(all=True).set_index("name").loc["taken", "status"] == "failed"


def test_token_is_required_on_every_route_but_health(served):
    dep = nbmlops.serve("cancer/1", name="locked", token="s3cret-token", log_requests=False)
    try:
        assert call(dep, "GET", "/health")[0] == 200
        for method, path in (("POST", "/predict"), ("GET", "/metrics"), ("GET", "/model/info"), ("GET", "/docs")):
            status, answer, _ = call(dep, method, path, {"features": [0] * 30})
            assert status == 401 and answer == {"error": "missing or wrong Authorization: Bearer token"}
        bad = call(dep, "GET", "/model/info", headers={"Authorization": "Bearer wrong-token"})
        assert bad[0] == 401
        assert call(dep, "GET", "/model/info", headers={"Authorization": "Bearer s3cret-token"})[0] == 200
        assert dep.predict(np.zeros(30))["prediction"] in (0, 1)  # the client sends the token
    finally:
        dep.stop()
    assert not os.path.exists(f"/proc/{dep.pid}")


def test_full_queue_answers_503_with_retry_after(served):
    dep = nbmlops.serve("cancer/1", name="tiny-queue", max_queue=1, log_requests=False)
    try:
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            results = list(pool.map(lambda _: call(dep, "POST", "/predict", {"features": [0.5] * 30}), range(400)))
        busy = [r for r in results if r[0] == 503]
        assert {r[0] for r in results} <= {200, 503} and busy
        assert busy[0][2].getheader("Retry-After") == "1" and "busy" in busy[0][1]["error"]
    finally:
        dep.stop()


KERNEL = textwrap.dedent("""
    import sys, time, nbmlops
    dep = nbmlops.serve("cancer/1", name=sys.argv[1], detach=sys.argv[2] == "detach")
    print(dep.pid, dep.port, flush=True)
    time.sleep(600)
""")


def _kernel(name, mode, store_root):
    proc = subprocess.Popen([sys.executable, "-c", KERNEL, name, mode], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "NBMLOPS_STORE": str(store_root)})
    pid, port = map(int, proc.stdout.readline().split())
    return proc, pid, port


def _gone(pid, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie of ours counts as gone
            if open(f"/proc/{pid}/stat").read().split(") ")[1].startswith("Z"):
                return True
        except OSError:
            return True
        time.sleep(0.1)
    return False


def test_server_stops_within_5s_when_its_kernel_dies(served):
    store_root = nbmlops.store.locate()
    proc, pid, _ = _kernel("orphan-check", "attached", store_root)
    assert not _gone(pid, 0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _gone(pid, 5), "the server outlived its kernel by more than 5 s"
    assert nbmlops.list_deployments(all=True).set_index("name").loc["orphan-check", "status"] in ("stopped", "dead")


def test_detached_server_survives_and_a_new_kernel_reattaches_and_stops_it(served):
    store_root = nbmlops.store.locate()
    proc, pid, port = _kernel("detached", "detach", store_root)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(1.5)
    running = nbmlops.list_deployments()
    assert "detached" in set(running["name"])
    dep = nbmlops.get_deployment("detached")
    assert dep.pid == pid and dep.port == port and dep.status()["status"] == "running"
    assert dep.predict(np.zeros(30))["version"] == 1
    dep.stop()
    assert _gone(pid, 10)
    assert "detached" not in set(nbmlops.list_deployments()["name"])


def test_a_server_killed_outright_is_marked_dead(served):
    dep = nbmlops.serve("cancer/1", name="victim", log_requests=False)
    os.killpg(dep.pid, signal.SIGKILL)
    assert _gone(dep.pid, 5)
    from nbmlops.serving.deployments import _reap

    _reap(dep.pid)
    table = nbmlops.list_deployments(all=True).set_index("name")
    assert table.loc["victim", "status"] == "dead"
    assert "victim" not in set(nbmlops.list_deployments()["name"])
