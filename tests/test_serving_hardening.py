"""The model server under hostile or careless traffic (issue 16, points 8, 9, 11–15 and the small ones):
real server processes over real HTTP on 127.0.0.1, and a hostile page in real Chromium on another
loopback port."""

from __future__ import annotations

import concurrent.futures
import http.client
import http.server
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import nbmlops
from nbmlops import InvalidInput

from test_serving import call

pytestmark = pytest.mark.slow


STORE_ROOT: list = []  # the models' store, for tests that run after a test whose fixture switched stores


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """'m' (v1 majority class, v2 logistic regression on 4 numbers), 'cat' (one-hot city + number,
    unknown cities make the model raise) and 'reg' (a linear regression), in one store."""
    import pandas as pd
    from sklearn.compose import make_column_transformer
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    root = tmp_path_factory.mktemp("hardening") / ".nbmlops"
    nbmlops.set_store(root)
    STORE_ROOT[:] = [root]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 4))
    y = (X[:, 0] > 0.3).astype(int)
    nbmlops.register_model(DummyClassifier(strategy="most_frequent").fit(X, y), "m")
    nbmlops.register_model(LogisticRegression().fit(X, y), "m")
    cities = pd.DataFrame({"city": rng.choice(["paris", "oslo", "rome"], 300), "x": rng.normal(size=300)})
    cat = make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown="error"), ["city"]),
                                                remainder="passthrough"), LogisticRegression())
    nbmlops.register_model(cat.fit(cities, cities.city == "oslo"), "cat", reference=(cities, cities.city == "oslo"))
    nbmlops.register_model(LinearRegression().fit(X, X @ [1.0, 2.0, 3.0, 4.0]), "reg")
    deps: list = []
    yield X, y, cities, deps
    for dep in deps:
        dep.stop()
    nbmlops.set_store(None)


def _serve(deps, *args, **kwargs):
    dep = nbmlops.serve(*args, **kwargs)
    deps.append(dep)
    return dep


def _metrics(dep) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: f for f in text_string_to_metric_families(call(dep, "GET", "/metrics")[1])}


def _admin(dep) -> dict[str, str]:
    token = getattr(dep, "admin_token", None)
    return {"Authorization": f"Bearer {token}"} if token else {}


def _accuracy(dep) -> list[float]:
    fam = _metrics(dep).get("model_accuracy")
    return [s.value for s in fam.samples] if fam else []


# --- 8: other web pages cannot drive the server -----------------------------------------------------------------


def test_every_post_must_be_json(models):
    X, _, _, deps = models
    dep = _serve(deps, "m/2", name="json-only", log_requests=False)
    body = json.dumps({"features": X[0].tolist()}).encode()
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""):
        status, answer, _ = call(dep, "POST", "/predict", raw=body, headers={"Content-Type": ctype})
        assert status == 415 and "application/json" in answer["error"], ctype
    for ctype in ("application/json", "application/json; charset=utf-8", "Application/JSON"):
        assert call(dep, "POST", "/predict", raw=body, headers={"Content-Type": ctype})[0] == 200, ctype
    # MLflow's clients send application/json, some with format=pandas-split: still scored
    split = {"dataframe_split": {"data": X[:2].tolist()}}
    status, answer, _ = call(dep, "POST", "/invocations", split,
                             headers={"Content-Type": "application/json; format=pandas-split"})
    assert status == 200 and len(answer["predictions"]) == 2
    # text/csv is MLflow's too (a preflighted type no form can send): JSON sent as CSV is read as CSV, and refused
    status, answer, _ = call(dep, "POST", "/invocations", raw=json.dumps(split).encode(),
                             headers={"Content-Type": "text/csv"})
    # MLflow's code for an input that does not fit the model's signature (8 cells where it takes 4)
    assert status == 400 and "CSV" in answer["message"] and answer["error_code"] == "INVALID_PARAMETER_VALUE"
    for ctype in ("text/plain", ""):  # what forms and no-cors fetches send: refused on /invocations too
        status, answer, _ = call(dep, "POST", "/invocations", split, headers={"Content-Type": ctype})
        assert status == 415 and "text/csv" in answer["message"], ctype


def test_a_foreign_origin_is_refused_and_the_servers_own_is_not(models):
    X, _, _, deps = models
    dep = _serve(deps, "m/2", name="origin", log_requests=False)
    row = {"features": X[0].tolist()}
    for origin in ("http://127.0.0.1:1", "http://evil.example", "null", f"http://localhost:{dep.port}"):
        status, answer, _ = call(dep, "POST", "/predict", row, headers={"Origin": origin})
        assert status == 403 and "other web pages" in answer["error"], origin
    assert call(dep, "GET", "/model/info", headers={"Origin": "http://127.0.0.1:1"})[0] == 403
    assert call(dep, "POST", "/predict", row, headers={"Origin": f"http://127.0.0.1:{dep.port}"})[0] == 200  # /docs
    assert call(dep, "POST", "/predict", row)[0] == 200  # no Origin: not a browser


REATTACH = textwrap.dedent("""
    import json, sys, nbmlops
    dep = nbmlops.get_deployment(sys.argv[1])
    weights = dep.set_weights({1: 0.25, 2: 0.75})
    answer = dep.feedback(sys.argv[2], 1)
    print(json.dumps({"weights": weights, "correct": answer["correct"]}))
""")


def test_admin_and_feedback_need_the_admin_token_even_when_prediction_is_open(models):
    X, y, _, deps = models
    dep = _serve(deps, "m", ab={1: 0.5, 2: 0.5}, name="admin")
    answer = call(dep, "POST", "/predict", {"features": X[0].tolist()})[1]  # prediction: open
    rid = answer["request_id"]
    for method, path, body in (("POST", "/admin/weights", {"weights": {"1": 0, "2": 1}}), ("GET", "/admin/routing", None),
                               ("POST", "/feedback", {"request_id": rid, "label": 0})):
        for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}):
            status, out, _ = call(dep, method, path, body, headers=headers)
            assert status == 401 and "admin token" in out["error"], (path, headers)
    assert dep.admin_token and len(dep.admin_token) >= 24
    assert dep.routing()["versions"] == {"1": 0.5, "2": 0.5}  # unchanged, and the Deployment gets in
    assert dep.set_weights({1: 0.0, 2: 1.0}) == {"1": 0.0, "2": 1.0}
    # a kernel that reattaches through the store's deployment record can use the admin routes too
    out = subprocess.run([sys.executable, "-c", REATTACH, "admin", rid], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "NBMLOPS_STORE": str(nbmlops.store.locate())})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"weights": {"1": 0.25, "2": 0.75}, "correct": [answer["prediction"] == 1]}


def test_with_a_prediction_token_the_admin_token_still_rules_admin_routes(models):
    X, _, _, deps = models
    dep = _serve(deps, "m/2", name="both-tokens", token="predict-token-1", log_requests=False)
    row = {"features": X[0].tolist()}
    assert call(dep, "POST", "/predict", row)[0] == 401
    assert call(dep, "POST", "/predict", row, headers={"Authorization": "Bearer predict-token-1"})[0] == 200
    assert call(dep, "GET", "/admin/routing", headers={"Authorization": "Bearer predict-token-1"})[0] == 401
    assert dep.routing()["versions"] == {"2": 1.0}  # the Deployment sends the admin token
    assert dep.predict(X[:2])["predictions"]


HOSTILE = """<!doctype html><html><body>
<iframe name="sink" style="display:none"></iframe>
<form id="f" method="POST" action="{server}/admin/weights" enctype="text/plain" target="sink">
<input name='{{"weights": {{"1": 0, "2": 100}}, "x": "' value='"}}'>
</form>
<script>
(async () => {{
  document.getElementById("f").submit();
  const wrong = JSON.stringify({{"request_id": "{rid}", "label": {wrong}}});
  const attempts = [];
  for (let i = 0; i < 50; i++) {{
    attempts.push(fetch("{server}/feedback", {{method: "POST", mode: "no-cors", body: wrong}}).catch(() => null));
    attempts.push(fetch("{server}/feedback", {{method: "POST", mode: "no-cors", body: wrong,
                                              headers: {{"Content-Type": "application/json"}}}}).catch(() => null));
  }}
  attempts.push(fetch("{server}/admin/weights", {{method: "POST", mode: "no-cors",
                      body: JSON.stringify({{"weights": {{"1": 0, "2": 100}}}})}}).catch(() => null));
  await Promise.all(attempts);
  await new Promise(r => setTimeout(r, 500));
  document.title = "done";
}})();
</script></body></html>"""


@pytest.mark.browser
def test_a_hostile_page_on_another_loopback_port_cannot_move_weights_or_accuracy(models):
    pytest.importorskip("playwright.sync_api")
    from playwright.sync_api import sync_playwright

    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("no Chromium at /usr/bin/chromium")
    X, y, _, deps = models
    dep = _serve(deps, "m", ab={1: 0.5, 2: 0.5}, name="victim")
    answer = call(dep, "POST", "/predict", {"features": X[0].tolist()})[1]
    page_html = HOSTILE.format(server=dep.url, rid=answer["request_id"], wrong=json.dumps(1 - answer["prediction"]))

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            data = page_html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True,
                                        args=["--headless", "--no-sandbox", "--disable-gpu",
                                              "--disable-background-networking"])
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{site.server_address[1]}/")
                page.wait_for_function("document.title === 'done'", timeout=30_000)
            finally:
                browser.close()
    finally:
        site.shutdown()
    assert dep.routing()["versions"] == {"1": 0.5, "2": 0.5}
    assert _accuracy(dep) == []  # no feedback counted
    errors = {s.labels["reason"]: s.value for s in _metrics(dep)["model_request_errors"].samples
              if s.name.endswith("_total")}
    assert errors.get("cross_origin", 0) >= 100  # the browser did send them: refused at the door
    assert dep.feedback(answer["request_id"], answer["prediction"])["correct"] == [True]  # the real label still counts


# --- 9: reuse only with the same settings -------------------------------------------------------------------


def test_a_running_deployment_is_reused_only_with_the_same_settings(models, capsys):
    X, _, _, deps = models
    dep = _serve(deps, "m/2", name="reuse", log_requests=False)
    assert nbmlops.serve("m/2", name="reuse", log_requests=False).pid == dep.pid
    assert f"reusing deployment reuse on port {dep.port}" in capsys.readouterr().out
    for kwargs, word in (({"token": "a-new-token"}, "token"), ({"batching": False}, "batching"),
                         ({"ab": {1: 0.5, 2: 0.5}}, "A/B"), ({"shadow": 1}, "shadow"),
                         ({"host": "127.0.0.2"}, "host"), ({"port": 1}, "port"), ({"max_batch_size": 8}, "max_batch")):
        with pytest.raises(InvalidInput) as err:
            nbmlops.serve("m/2", name="reuse", log_requests=False, **kwargs)
        message = str(err.value)
        assert "\n" not in message and word in message and f"pid {dep.pid}" in message
        assert "%serve --stop reuse" in message and "restart=True" in message
    assert call(dep, "POST", "/predict", {"features": X[0].tolist()})[0] == 200  # the running one is untouched
    locked = nbmlops.serve("m/2", name="reuse", token="a-new-token", log_requests=False, restart=True)
    deps.append(locked)
    assert locked.pid != dep.pid and dep.status()["status"] == "stopped"
    assert call(locked, "POST", "/predict", {"features": X[0].tolist()})[0] == 401  # the token asked for holds
    assert call(locked, "POST", "/admin/weights", {"weights": {"2": 1}})[0] == 401
    assert nbmlops.serve("m/2", name="reuse", token="a-new-token", log_requests=False).pid == locked.pid


# --- 11: one bad request fails alone and leaks nothing -----------------------------------------------------------


def test_a_bad_request_fails_alone_in_its_batch_and_its_values_reach_no_one(models):
    _, _, cities, deps = models
    dep = _serve(deps, "cat", name="cat", max_latency_ms=20)
    model = nbmlops.load_model("cat")
    good = [{"city": c, "x": float(x)} for c, x in zip(cities.city[:150], cities.x[:150])]
    expected = model.predict(cities.head(150)).tolist()
    bad = {"city": "secret-value-of-client-B", "x": 0.0}

    def send(item):
        kind, i = item
        body = {"inputs": bad if kind == "bad" else good[i]}
        return kind, i, *call(dep, "POST", "/predict", body)[:2]

    work = [("good", i) for i in range(150)] + [("bad", i) for i in range(150)]
    work = [w for pair in zip(work[:150], work[150:]) for w in pair]  # interleaved
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        results = list(pool.map(send, work))
    good_answers = [(i, s, a) for kind, i, s, a in results if kind == "good"]
    failed = [(i, s, a) for i, s, a in good_answers if s != 200]
    assert not failed, f"{len(failed)} of 150 valid requests failed, e.g. {failed[0]}"
    assert all(a["prediction"] == expected[i] for i, _, a in good_answers)
    for kind, _, status, answer in results:
        assert "secret-value" not in json.dumps(answer)
        if kind == "bad":
            assert status == 422 and "never saw in training" in answer["error"]
    sizes = {s.labels["le"]: s.value for s in _metrics(dep)["model_batch_size"].samples if s.name.endswith("_bucket")}
    assert sizes["+Inf"] > sizes["1.0"]  # requests were batched together


# --- 12: bounded metrics --------------------------------------------------------------------------------------


def test_a_regressor_gets_a_histogram_not_a_series_per_predicted_value(models):
    X, _, _, deps = models
    dep = _serve(deps, "reg", name="reg", log_requests=False)
    rng = np.random.default_rng(2)
    for _ in range(100):
        assert call(dep, "POST", "/predict", {"instances": rng.normal(size=(20, 4)).tolist()})[0] == 200
    text = call(dep, "GET", "/metrics")[1]
    families = _metrics(dep)
    series = [s for s in families["model_predictions"].samples if s.name == "model_predictions_total"]
    assert len(series) == 1 and series[0].value == 2000
    counts = [s.value for s in families["model_prediction_value"].samples if s.name.endswith("_count")]
    assert counts == [2000]
    assert len(text) < 16_000, f"/metrics is {len(text)} bytes after 2,000 distinct predictions"
    classifier = _serve(deps, "m/2", name="clf", log_requests=False)
    call(classifier, "POST", "/predict", {"instances": X[:50].tolist()})
    labels = {s.labels["prediction_class"] for s in _metrics(classifier)["model_predictions"].samples}
    assert labels <= {"0", "1"} and labels


# --- 13: the feedback cache is bounded by bytes -----------------------------------------------------------------


def _rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_feedback_memory_is_bounded_in_a_real_server(models):
    _, _, _, deps = models
    dep = _serve(deps, "reg", name="big", feedback_mb=4, log_requests=False, batching=False)
    rows = np.random.default_rng(3).normal(size=(10_000, 4)).round(6).tolist()
    body = json.dumps({"instances": rows}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", dep.port, timeout=60)

    def once() -> str:
        conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200
        return json.loads(resp.read())["request_id"]

    ids = [once() for _ in range(60)]  # warm up: allocator arenas, the cache fills to its bound
    before = _rss_mb(dep.pid)
    ids += [once() for _ in range(240)]
    after = _rss_mb(dep.pid)
    conn.close()
    print(f"RSS {before:.0f} MB -> {after:.0f} MB over 240 requests of 10,000 rows (feedback bound 4 MiB)")
    assert after - before < 25, f"RSS grew {after - before:.0f} MB over 240 requests of 10,000 rows"
    assert call(dep, "POST", "/feedback", {"request_id": ids[0], "labels": [0] * 10_000},
                headers={"Authorization": f"Bearer {dep.admin_token}"})[0] == 404  # forgotten: oldest first
    newest = dep.feedback(ids[-1], labels=[1.0] * 10_000)
    assert len(newest["correct"]) == 10_000


# --- 14: one label per row --------------------------------------------------------------------------------------


def test_feedback_replay_is_refused_409_and_counts_once(models):
    X, y, _, deps = models
    dep = _serve(deps, "m/2", name="replay", log_requests=False)
    answer = call(dep, "POST", "/predict", {"features": X[0].tolist()})[1]
    wrong = 1 - answer["prediction"]
    admin = _admin(dep)
    first = call(dep, "POST", "/feedback", {"request_id": answer["request_id"], "label": answer["prediction"]},
                 headers=admin)
    assert first[:2] == (200, {**first[1], "correct": [True]})
    for _ in range(200):
        status, out, _ = call(dep, "POST", "/feedback", {"request_id": answer["request_id"], "label": wrong},
                              headers=admin)
        assert status == 409 and "one label per row" in out["error"]
    assert _accuracy(dep) == [1.0]
    # several rows: labels may come row by row (null: not known yet), each row once
    many = call(dep, "POST", "/predict", {"instances": X[1:4].tolist()})[1]
    preds = many["predictions"]
    assert dep.feedback(many["request_id"], labels=[preds[0], None, None])["correct"] == [True, None, None]
    assert dep.feedback(many["request_id"], labels=[None, preds[1], preds[2]])["correct"] == [None, True, True]
    status, out, _ = call(dep, "POST", "/feedback", {"request_id": many["request_id"], "labels": [None, None, preds[2]]},
                          headers=admin)
    assert status == 409 and "row(s) 2" in out["error"]
    total = {s.labels["correct"]: s.value for s in _metrics(dep)["model_feedback"].samples if s.name.endswith("_total")}
    assert total == {"true": 4.0}


def test_a_v2_id_used_by_two_clients_labels_neither_request(models):
    """V2 clients choose their own ids: feedback for an id two requests used must not label the other's rows."""
    X, y, _, deps = models
    dep = _serve(deps, "m/2", name="v2ids", log_requests=False)
    for rows in (X[:2], X[2:4]):  # client A, then client B with the same id
        body = {"id": "same", "inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64",
                                          "data": rows.ravel().tolist()}]}
        assert call(dep, "POST", "/v2/models/m/infer", body)[0] == 200
    status, out, _ = call(dep, "POST", "/feedback", {"request_id": "same", "labels": [1, 1]}, headers=_admin(dep))
    assert status == 409 and "more than one request" in out["error"]
    assert _accuracy(dep) == []


# --- 15: one line per aborted request, and the log rotates -------------------------------------------------------


def test_aborted_requests_write_one_line_each_and_the_server_log_rotates(models, monkeypatch):
    _, _, _, deps = models
    monkeypatch.setenv("NBMLOPS_SERVER_LOG_BYTES", "20000")
    dep = _serve(deps, "m/2", name="aborts", log_requests=False)
    for _ in range(400):
        with socket.create_connection(("127.0.0.1", dep.port)) as s:
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 5000\r\n\r\n{\"features\": [")
            time.sleep(0.002)
    time.sleep(1)
    folder = nbmlops.serving.deployments.log_dir(dep.doc["id"])
    files = sorted(folder.glob("server.log*"))
    text = "".join(f.read_text() for f in files)
    sizes = [f.stat().st_size for f in files]
    assert "Traceback" not in text
    assert [f.name for f in files] == ["server.log", "server.log.1", "server.log.2"]  # rotated, 3 kept
    assert max(sizes) <= 20_000 and sum(sizes) <= 60_000, sizes
    aborted = [line for line in text.splitlines() if "aborted: POST /predict" in line]
    assert len(aborted) >= 100 and all(len(line) < 200 for line in aborted)
    assert call(dep, "GET", "/health")[0] == 200


# --- small ones -------------------------------------------------------------------------------------------------


def test_a_v2_request_nested_990_deep_is_4xx_and_health_says_healthy(models):
    _, _, _, deps = models
    dep = _serve(deps, "m/2", name="small", log_requests=False)
    deep = '{"inputs": [{"name": "x", "shape": [4], "datatype": "FP64", "data": ' + "[" * 990 + "1" + "]" * 990 + "}]}"
    status, answer, _ = call(dep, "POST", "/v2/models/m/infer", raw=deep.encode())
    assert 400 <= status < 500 and "nested" in answer["error"]
    assert call(dep, "GET", "/health")[:2] == (200, {"status": "healthy", "model_loaded": True})
    status, answer, _ = call(dep, "POST", "/v1/models/secret-name:predict", {"instances": [[0] * 4]})
    assert status == 404 and "secret-name" not in answer["error"]


# --- last: it takes a store of its own (the ip fixture), after the module's servers ----------------


def test_serve_magic_refuses_other_settings_and_restarts_when_asked(ip):
    from IPython.core.error import UsageError
    from sklearn.linear_model import LogisticRegression

    X = np.random.default_rng(1).normal(size=(50, 3))
    nbmlops.register_model(LogisticRegression().fit(X, X[:, 0] > 0), "mg")
    ip.run_line_magic("serve", "mg --no-log")
    first = nbmlops.get_deployment("mg")
    try:
        with pytest.raises(UsageError, match=r"runs with other settings \(token\).*%serve --restart"):
            ip.run_line_magic("serve", "mg --no-log --token s3cret-token")
        ip.run_line_magic("serve", "mg --no-log --token s3cret-token --restart")
        second = nbmlops.get_deployment("mg")
        assert second.pid != first.pid and call(second, "GET", "/model/info")[0] == 401
    finally:
        nbmlops.get_deployment("mg").stop()


_SERVE_SAME_NAME = """
import sys, nbmlops
nbmlops.set_store(sys.argv[1])
try:
    dep = nbmlops.serve("m/2", name="race", detach=True)
    print("SERVED", dep.pid, flush=True)
except nbmlops.InvalidInput as exc:
    print("REFUSED", exc, flush=True)
"""


def test_two_processes_serving_one_name_at_once_start_one_server(models, tmp_path):
    """The check that no deployment of the name runs sits under the lock of the insert."""
    from nbmlops.serving.deployments import _find

    script = tmp_path / "serve_same.py"
    script.write_text(_SERVE_SAME_NAME)
    nbmlops.set_store(STORE_ROOT[0])  # the `ip` fixture of an earlier test leaves no store set
    store = str(STORE_ROOT[0])
    for trial in range(4):
        procs = [subprocess.Popen([sys.executable, str(script), store], stdout=subprocess.PIPE, text=True)
                 for _ in range(2)]
        outs = [p.communicate(timeout=120)[0] for p in procs]
        pids = {int(line.split()[1]) for out in outs for line in out.splitlines() if line.startswith("SERVED")}
        assert len(pids) == 1, (trial, outs)  # both reused one server, or one refused: never two servers
        nbmlops.get_deployment("race").stop()
        assert _find("race")["status"] != "running"
