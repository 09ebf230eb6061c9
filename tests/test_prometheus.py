"""Prometheus as its users expect: the metrics' names, labels and buckets, the windowed accuracy, open
probes and closed routes under a token, the generated scrape config and rules (checked by promtool),
and Debian's real Prometheus scraping a live deployment and answering PromQL over its HTTP API."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import stat
import subprocess
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

import nbmlops
from nbmlops import InvalidInput
from nbmlops.serving.app import Guard
from nbmlops.serving.metrics import Metrics
from nbmlops.serving.promconfig import RULE_GROUPS, Target, alert_rules, scrape_config

from test_serving import call

PROMETHEUS, PROMTOOL = shutil.which("prometheus"), shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (scripts/test installs it)")
TOKEN = "scrape-token-0123"
# liveness and readiness on every protocol: open to probes without a token
OPEN = ["/health", "/ready", "/ping", "/", "/v2/health/live", "/v2/health/ready", "/v2/models/churn/ready",
        "/v2/models/churn/versions/1/ready", "/v1/models/churn"]
# everything else keeps the token (metadata, metrics, docs, prediction), the admin routes the admin token
CLOSED = ["/metrics", "/model/info", "/docs", "/openapi.json", "/v2", "/v2/models/churn", "/v1/models",
          "/v2/models/churn/versions/1", "/v2/models/churn/infer", "/v2/models/churn/versions/1/infer",
          "/v1/models/churn:predict", "/predict", "/invocations", "/version", "/v2/models/churn/ready/x"]


def families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(text: str, name: str) -> dict:
    """``{labels as a sorted tuple: value}`` of the samples called ``name``."""
    return {tuple(sorted(s.labels.items())): s.value for f in text_string_to_metric_families(text)
            for s in f.samples if s.name == name}


# --- the metrics, in this process -------------------------------------------------------------------------------


def test_metric_names_and_labels_follow_the_naming_guide():
    m = Metrics("churn", accuracy_window=5)
    m.http("/v2/models/{model_name}/infer", "POST", 200, 0.004)
    m.http("unmatched", "BREW", 404, 0.0001)
    m.count_error("unauthorized")
    m.count_error("model_error", 3)
    m.observe(3, 0.002, [1, 0, 1], [0, 1])
    m.batch_size.observe(3)
    m.record_feedback(3, True)
    text = m.render().decode()
    got = {name: (f.type, {k for s in f.samples for k in s.labels}) for name, f in families(text).items()}
    assert got["model_http_requests"] == ("counter", {"route", "method", "status"})
    assert got["model_http_request_duration_seconds"] == ("histogram", {"route", "method", "status", "le"})
    assert got["model_prediction_latency_seconds"] == ("histogram", {"model_name", "model_version", "le"})
    assert got["model_request_errors"] == ("counter", {"model_name", "model_version", "reason"})
    assert got["model_accuracy"][0] == got["model_accuracy_windowed"][0] == "gauge"
    assert samples(text, "model_http_requests_total") == {
        (("method", "POST"), ("route", "/v2/models/{model_name}/infer"), ("status", "200")): 1.0,
        (("method", "other"), ("route", "unmatched"), ("status", "404")): 1.0}  # a made-up method: one value
    assert samples(text, "model_request_errors_total") == {
        (("model_name", "churn"), ("model_version", ""), ("reason", "unauthorized")): 1.0,
        (("model_name", "churn"), ("model_version", "3"), ("reason", "model_error")): 1.0}
    assert "_created" not in text and "# TYPE model_http_requests_total counter" in text


@needs_promtool
def test_promtool_finds_nothing_to_lint_and_other_registries_keep_created():
    from prometheus_client import CollectorRegistry, Counter, generate_latest

    m = Metrics("churn")
    for status in (200, 401, 422):
        m.http("/predict", "POST", status, 0.01)
    m.count_error("model_error", 1)
    m.observe(1, 0.01, ["a", "b"], ["a", "b"])
    m.record_feedback(1, False)
    lint = subprocess.run([PROMTOOL, "check", "metrics"], input=m.render(), capture_output=True, timeout=30)
    assert lint.returncode == 0 and lint.stdout == lint.stderr == b"", lint
    other = CollectorRegistry()
    Counter("other_things", "Things", registry=other).inc()
    assert b"other_things_created" in generate_latest(other)  # no process-wide switch was thrown


def test_batch_size_buckets_are_powers_of_two_from_one():
    m = Metrics("churn")
    for rows in (1, 1, 3, 64, 10_000):
        m.batch_size.observe(rows)
    buckets = {s.labels["le"]: s.value for s in families(m.render().decode())["model_batch_size"].samples
               if s.name.endswith("_bucket")}
    assert list(buckets)[:5] == ["1.0", "2.0", "4.0", "8.0", "16.0"] and list(buckets)[-2:] == ["8192.0", "+Inf"]
    assert (buckets["1.0"], buckets["2.0"], buckets["4.0"], buckets["64.0"], buckets["+Inf"]) == (2, 2, 3, 4, 5)


def test_windowed_accuracy_is_over_the_last_n_labels_of_each_version():
    m = Metrics("churn", accuracy_window=4)
    rng = np.random.default_rng(1)
    history = {1: [], 2: []}
    for _ in range(50):
        version, correct = int(rng.integers(1, 3)), bool(rng.random() < 0.6)
        history[version].append(correct)
        assert m.record_feedback(version, correct) == pytest.approx(np.mean(history[version]))
    text = m.render().decode()
    for version, seen in history.items():
        key = (("model_name", "churn"), ("model_version", str(version)))
        assert samples(text, "model_accuracy")[key] == pytest.approx(np.mean(seen))
        assert samples(text, "model_accuracy_windowed")[key] == pytest.approx(np.mean(seen[-4:]))
        assert samples(text, "model_accuracy_window_predictions")[key] == 4
    m.record_feedback(7, False)
    m.record_feedback(7, True)
    key = (("model_name", "churn"), ("model_version", "7"))
    assert samples(m.render().decode(), "model_accuracy_windowed")[key] == 0.5  # fewer labels than N: over those
    with pytest.raises(ValueError, match="accuracy_window"):
        Metrics("churn", accuracy_window=0)


@pytest.mark.parametrize("path", OPEN)
def test_probes_need_no_token(path):
    guard = Guard(None, True, TOKEN, 1 << 20, Metrics("churn"), admin_token="admin-token-0123")
    assert guard._auth(path, b"") is None


@pytest.mark.parametrize("path", CLOSED + ["/admin/routing", "/feedback"])
def test_other_routes_keep_their_token(path):
    guard = Guard(None, True, TOKEN, 1 << 20, Metrics("churn"), admin_token="admin-token-0123")
    assert guard._auth(path, b"") is not None
    assert guard._auth(path, b"Bearer admin-token-0123") is None  # the admin token opens everything
    scraper = guard._auth(path, f"Bearer {TOKEN}".encode())
    assert (scraper is None) == (path not in ("/admin/routing", "/feedback"))  # /metrics with the prediction token


# --- a real server, Prometheus' config files --------------------------------------------------------------------


@pytest.fixture(scope="module")
def churn(tmp_path_factory):
    """'churn': one-hot city + a number; an unknown city makes the model raise (a model error)."""
    import pandas as pd
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    root = tmp_path_factory.mktemp("prometheus") / ".nbmlops"
    nbmlops.set_store(root)
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"city": rng.choice(["paris", "oslo", "rome"], 300), "x": rng.normal(size=300)})
    y = (X.x > 0).astype(int)
    model = make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown="error"), ["city"]),
                                                  remainder="passthrough"), LogisticRegression()).fit(X, y)
    nbmlops.register_model(model, "churn", reference=(X, y))
    yield model, X
    nbmlops.set_store(None)


def _serve(name: str):
    """'churn/1' served under a prediction token, 20 labels behind the windowed accuracy."""
    root = nbmlops.store.current_store().root
    dep = nbmlops.serve("churn/1", name=name, token=TOKEN, accuracy_window=20, log_requests=False)
    try:
        yield dep
    finally:
        nbmlops.set_store(root)  # a test in between may have switched stores
        dep.stop()


@pytest.fixture(scope="module")
def served(churn):
    yield from _serve("prom")


@pytest.fixture
def live(churn):
    """A deployment of its own for the test that stops it."""
    yield from _serve("live")


@pytest.mark.process
def test_probes_are_open_and_the_rest_closed_over_http(served):
    dep = served
    for path in OPEN:
        status, answer, _ = call(dep, "GET", path)
        assert status == 200 and "error" not in answer, (path, answer)
    for path in CLOSED:
        status, answer, _ = call(dep, "POST" if path.endswith(("infer", "predict", "invocations")) else "GET", path)
        message = answer["message"] if path == "/invocations" else answer["error"]  # MLflow's form there
        assert status == 401 and "token" in message, (path, status, answer)
    token = {"Authorization": f"Bearer {TOKEN}"}
    assert call(dep, "GET", "/metrics", headers=token)[0] == 200
    assert call(dep, "GET", "/admin/routing", headers=token)[0] == 401  # the scraper's token is not an admin's
    text = call(dep, "GET", "/metrics", headers=token)[1]
    refused = samples(text, "model_http_requests_total")
    assert refused[(("method", "POST"), ("route", "/v2/models/{model_name}/infer"), ("status", "401"))] == 1
    assert refused[(("method", "GET"), ("route", "/v1/models/{model_name}"), ("status", "200"))] == 1
    assert refused[(("method", "GET"), ("route", "unmatched"), ("status", "401"))] == 1  # /v2/models/churn/ready/x


@pytest.mark.process
@needs_promtool
def test_generated_config_and_rules_pass_promtool(served, tmp_path):
    dep = served
    config = dep.prometheus_config(tmp_path / "prom")
    token = tmp_path / "prom" / "nbmlops-prom.token"
    assert config == tmp_path / "prom" / "prometheus.yml" and token.read_text() == TOKEN
    assert stat.S_IMODE(token.stat().st_mode) == 0o600 and dep.admin_token not in config.read_text()
    text = config.read_text()
    assert f"127.0.0.1:{dep.port}" in text and "credentials_file: 'nbmlops-prom.token'" in text
    for check, path in (("config", config), ("rules", tmp_path / "prom" / "nbmlops-prom.rules.yml")):
        done = subprocess.run([PROMTOOL, "check", check, str(path)], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0 and "SUCCESS" in done.stdout, done
    rules = (tmp_path / "prom" / "nbmlops-prom.rules.yml").read_text()
    for alert in ("NbmlopsServerDown", "NbmlopsHighErrorRate", "NbmlopsModelErrors", "NbmlopsHighLatencyP99",
                  "NbmlopsAccuracyDrop"):
        assert f"alert: '{alert}'" in rules
    with pytest.raises(InvalidInput, match="prediction token"):  # reattached without it: no token to write
        nbmlops.get_deployment("prom").prometheus_config(tmp_path / "other")
    with pytest.raises(InvalidInput, match="unknown threshold"):
        dep.prometheus_config(tmp_path / "other", p99=1)
    with pytest.raises(InvalidInput, match="error_ratio must be a positive number below 1"):
        dep.prometheus_config(tmp_path / "other", error_ratio=5)
    with pytest.raises(InvalidInput, match="scrape_interval"):
        dep.prometheus_config(tmp_path / "other", scrape_interval=0)
    assert not (tmp_path / "other").exists()
    dep.prometheus_config(tmp_path / "prom", p99_seconds=0.25, scrape_interval=30)
    assert "> 0.25" in (tmp_path / "prom" / "nbmlops-prom.rules.yml").read_text()
    assert "scrape_interval: '30s'" in config.read_text() and "scrape_timeout: '10s'" in config.read_text()


def test_rule_groups_are_an_extension_point(monkeypatch):
    target = Target("d", "127.0.0.1:1", scrape_interval=0.5)
    extra = {"name": "drift", "rules": [{"alert": "Drift", "expr": "vector(1)", "for": "1m"}]}
    monkeypatch.setattr("nbmlops.serving.promconfig.RULE_GROUPS", [*RULE_GROUPS, lambda t: extra])
    text = alert_rules(target)
    assert "name: 'nbmlops-d'" in text and "name: 'drift'" in text
    assert "scrape_interval: '500ms'" in scrape_config(target) and "authorization" not in scrape_config(target)


# --- Debian's Prometheus against a live deployment ---------------------------------------------------------------


LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 directly, whatever the proxy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prom:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: str) -> dict:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        with LOCAL.open(url, timeout=10) as resp:
            answer = json.loads(resp.read())
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str) -> list[dict]:
        return self.get("/api/v1/query", query=expr)["result"]

    def wait(self, what, timeout: float = 15.0):
        """Poll ``what()`` until it gives something truthy (scrapes and rule evaluations take their time)."""
        deadline = time.time() + timeout
        while True:
            got = what()
            if got or time.time() > deadline:
                return got
            time.sleep(0.25)


@pytest.fixture
def prometheus(live, tmp_path):
    """Debian's prometheus on a free port, scraping ``served`` every second with the generated files."""
    if PROMETHEUS is None:
        pytest.skip("prometheus is not installed (scripts/test installs it: apt-get install prometheus)")
    config = live.prometheus_config(tmp_path / "prom", scrape_interval=1)
    port = _free_port()
    with open(tmp_path / "prometheus.log", "wb") as log:
        proc = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        prom = Prom(port)
        deadline = time.time() + 20
        while True:
            try:
                with LOCAL.open(f"{prom.base}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.time() < deadline, (tmp_path / "prometheus.log").read_text()
            time.sleep(0.1)
        yield live, prom
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(5)


@pytest.mark.slow
@pytest.mark.process
@needs_promtool
def test_real_prometheus_scrapes_a_live_deployment_and_answers_promql(prometheus, churn):
    dep, prom = prometheus
    _, X = churn
    job = 'job="nbmlops-live"'
    token = {"Authorization": f"Bearer {TOKEN}"}
    rows = json.loads(X.head(60).to_json(orient="records"))
    good, bad = ({"inputs": row} for row in rows), {"inputs": {"city": "atlantis", "x": 0.0}}
    waits, answers = [], []

    def predict(body, status, headers=token):
        start = time.perf_counter()
        got, answer, _ = call(dep, "POST", "/predict", body, headers=headers)
        waits.append(time.perf_counter() - start)
        assert got == status, answer
        if status == 200:
            answers.append(answer)

    def counted():
        got = prom.query(f'sum by (route, status) (model_http_requests_total{{{job},method="POST"}})')
        return {(r["metric"]["route"], r["metric"]["status"]): float(r["value"][1]) for r in got}

    # one request of each kind first, seen by a scrape before the rest: a series' first value is no increase
    predict(next(good), 200), predict(bad, 422), predict({"inputs": rows[0]}, 401, headers={})
    first = {("/predict", "200"): 1, ("/predict", "422"): 1, ("/predict", "401"): 1}
    assert prom.wait(lambda: counted() == first), counted()
    for body in good:  # then 59 good predictions, 11 the model refuses, 4 without the token
        predict(body, 200)
    for _ in range(11):
        predict(bad, 422)
    for _ in range(4):
        predict({"inputs": rows[0]}, 401, headers={})
    for i, answer in enumerate(answers):  # 40 right labels, then 20 wrong ones: the last 20 are all wrong
        label = answer["prediction"] if i < 40 else 1 - answer["prediction"]
        dep.feedback(answer["request_id"], label)

    want = {("/predict", "200"): 60, ("/predict", "422"): 12, ("/predict", "401"): 5, ("/feedback", "200"): 60}
    assert prom.wait(lambda: counted() == want) and counted() == want

    by_status = {r["metric"]["status"]: float(r["value"][1]) for r in prom.query(
        f'sum by (status) (rate(model_http_requests_total{{{job},route!="/metrics"}}[1m]))')}
    assert {"200", "401", "422"} <= set(by_status) and all(v > 0 for v in by_status.values())
    assert by_status["200"] > by_status["422"] > by_status["401"]

    p99 = float(prom.query(f"histogram_quantile(0.99, sum by (le) (rate(model_http_request_duration_seconds_bucket"
                           f'{{{job},route="/predict",status="200"}}[1m])))')[0]["value"][1])
    bound = min(b for b in (0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                            10.0, math.inf) if b >= max(waits))
    assert 0 < p99 <= bound  # the server's whole-request times are within the client's

    def value(expr: str) -> float | None:
        got = prom.query(expr)
        return float(got[0]["value"][1]) if got else None

    assert value(f'model_accuracy_windowed{{{job},model_version="1"}}') == 0.0  # the last 20 labels were wrong
    assert value(f"model_accuracy{{{job}}}") == pytest.approx(40 / 60)
    assert value(f"model_accuracy_window_predictions{{{job}}}") == 20
    assert value(f'model_request_errors_total{{{job},model_version="1",reason="model_error"}}') == 12
    assert value(f'model_request_errors_total{{{job},model_version="",reason="unauthorized"}}') == 5

    def alerts() -> dict:
        return {a["labels"]["alertname"]: a["state"] for a in prom.get("/api/v1/alerts")["alerts"]}

    pending = prom.wait(lambda: {"NbmlopsAccuracyDrop", "NbmlopsModelErrors"} <= set(alerts()) and alerts())
    assert pending.get("NbmlopsAccuracyDrop") == "pending" and pending.get("NbmlopsModelErrors") == "pending"
    assert "NbmlopsHighLatencyP99" not in pending and "NbmlopsServerDown" not in pending

    scraped = call(dep, "GET", "/metrics", headers=token)[1]
    lint = subprocess.run([PROMTOOL, "check", "metrics"], input=scraped.encode(), capture_output=True, timeout=30)
    assert lint.returncode == 0 and lint.stdout == lint.stderr == b"", lint
    assert "_created" not in scraped

    dep.stop()  # the server goes away: up == 0, and the alert waits its minute
    assert prom.wait(lambda: value(f"up{{{job}}}") == 0) and value(f"up{{{job}}}") == 0
    assert prom.wait(lambda: alerts().get("NbmlopsServerDown")) == "pending"


# --- %serve --------------------------------------------------------------------------------------------------------


@pytest.mark.process
def test_serve_magic_writes_the_prometheus_setup_and_takes_the_window(ip, tmp_path, capsys):
    from IPython.core.error import UsageError

    ip.run_cell("""
from sklearn.linear_model import LogisticRegression
import numpy as np
X = np.random.default_rng(0).normal(size=(100, 3))
clf = LogisticRegression().fit(X, X[:, 0] > 0)
""")
    ip.run_line_magic("register", "clf tiny")
    with pytest.raises(UsageError, match="accuracy_window must be"):
        ip.run_line_magic("serve", "tiny --accuracy-window 0")
    assert nbmlops.list_deployments().empty
    ip.run_line_magic("serve", f"tiny --accuracy-window 7 --token {TOKEN} --prometheus {tmp_path / 'p'}")
    dep = nbmlops.get_deployment("tiny", token=TOKEN)
    try:
        assert f"prometheus --config.file={tmp_path / 'p' / 'prometheus.yml'}" in capsys.readouterr().out
        assert (tmp_path / "p" / "nbmlops-tiny.token").read_text() == TOKEN
        assert "model_accuracy_window_predictions{job=\"nbmlops-tiny\"} >= 7" in \
            (tmp_path / "p" / "nbmlops-tiny.rules.yml").read_text()
        text = call(dep, "GET", "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})[1]
        assert "# HELP model_accuracy_windowed Share of correct predictions among the last 7 with feedback" in text
    finally:
        dep.stop()
