"""The dashboard Jupyter Server extension: a real ``python -m jupyter_server`` on 127.0.0.1 (under a
non-root base_url), real HTTP, a store filled through the nbmlops API, a real model server."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import pytest
import requests
from _drift_data import frames

import nbmlops
from nbmlops.jupyter_server import store_path
from nbmlops.jupyter_server.handlers import SCRIPTS

TOKEN = "dashboard-test-token-0123456789"
BASE = "/jp/"
XSS = "<img src=x onerror=alert(1)>"
STATIC = Path(nbmlops.__file__).parent / "jupyter_server" / "static"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m jupyter_server`` in a subprocess, stopped (and waited for) by ``stop``."""

    def __init__(self, root: Path, env: dict[str, str], *extra: str, base_url: str = BASE) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{base_url}"
        runtime = root / ".jupyter-runtime"
        runtime.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "jupyter_server", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
               f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}", "--no-browser",
               "--ServerApp.open_browser=False", "--ServerApp.allow_root=True", f"--ServerApp.base_url={base_url}",
               *extra]
        self.log = open(root / "jupyter-server.log", "wb")  # noqa: SIM115  (closed by stop)
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env={**env, "JUPYTER_RUNTIME_DIR": str(runtime)}, start_new_session=True)
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter server exited: {self.output()}")
            try:
                if requests.get(f"{self.url}api/status", headers=self.auth(), timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"jupyter server did not answer: {self.output()}")

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-3000:]

    @staticmethod
    def auth() -> dict[str, str]:
        return {"Authorization": f"token {TOKEN}"}

    def get(self, path: str, **kw):
        return requests.get(self.url + path, headers={**self.auth(), **kw.pop("headers", {})}, timeout=60, **kw)

    def post(self, path: str, body=None, raw=None, **kw):
        data = raw if raw is not None else json.dumps(body)
        return requests.post(self.url + path, data=data, timeout=60,
                             headers={**self.auth(), "Content-Type": "application/json", **kw.pop("headers", {})}, **kw)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()


def _fill(root: Path) -> dict:
    """Experiments, runs with metric histories, a model with two versions and an alias, a drift report."""
    from sklearn.linear_model import LogisticRegression

    nbmlops.set_store(root)
    ids = {}
    with nbmlops.start_run(experiment="iris", name="alpha", tags={"team": "blue"}) as run:
        nbmlops.log_params({"C": 1.0, "model": "lr"})
        for step, acc in enumerate([0.5, 0.7, 0.9]):
            nbmlops.log_metrics({"accuracy": acc, "loss": 1 - acc}, step=step)
        nbmlops.log_text("hello", "notes.txt")
        ids["alpha"] = run.id
    with nbmlops.start_run(experiment="iris", name="beta") as run:
        nbmlops.log_params({"C": 10.0, "model": "rf"})
        for step, acc in enumerate([0.6, 0.8]):
            nbmlops.log_metric("accuracy", acc, step=step)
        ids["beta"] = run.id
    with nbmlops.start_run(experiment="iris", name=XSS, tags={"note": XSS}) as run:
        nbmlops.log_param("model", XSS)
        nbmlops.log_metric("accuracy", 0.1)
        ids["xss"] = run.id
    with nbmlops.start_run(experiment="other/team", name="gamma"):
        nbmlops.log_metric("accuracy", 0.3)
    ids.update(_fill_pages(root.parent / "artifact-src"))
    rng = np.random.default_rng(5)
    X = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200), "c": rng.normal(size=200)})
    y = (X.a + X.b > 0).astype(int)
    nbmlops.register_model(LogisticRegression(C=1.0).fit(X, y), "clf", alias="production", reference=(X, y))
    nbmlops.register_model(LogisticRegression(C=0.1).fit(X, y), "clf")
    ref, cur = frames(300, seed=7, numeric=2, categorical=1)
    ids["drift"] = nbmlops.drift_report(ref, cur).log(model="clf@production")["id"]
    return ids


PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2eef0c60000000049454e44ae426082")
ARTIFACTS = {"plot.png": PNG, "page.html": b"<script>window.__x=1</script>", "logo.svg": b"<svg onload='x()'/>",
             "summary.json": b'{"auc": 0.9, "n": [1, 2]}', "table.csv": b"a,b\n1,2\n3,4\n", "blob.bin": b"\x00\x01"}
LONG = 5000  # points of the long curve


def _fill_pages(folder: Path) -> dict:
    """What the run, compare, lineage and curve pages need: artifacts of every kind, a 5,000-point curve,
    a model registered from a run that used a dataset version."""
    from sklearn.linear_model import LogisticRegression

    ids = {}
    folder.mkdir(exist_ok=True)
    with nbmlops.start_run(experiment="pages", name="files") as run:
        for name, data in ARTIFACTS.items():
            (folder / name).write_bytes(data)
            nbmlops.log_artifact(folder / name)
        ids["files"] = run.id
    with nbmlops.start_run(experiment="pages", name="long") as run:
        for step in range(LONG):
            run.log_metric("loss", 1 / (step + 1) + (0.5 if step == 3333 else 0.0), step=step)
        ids["long"] = run.id
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80)})
    y = (X.a > 0).astype(int)
    with nbmlops.start_run(experiment="pages", name="trained") as run:
        ds = nbmlops.log_dataset(X.assign(y=y), "train-set", snapshot=True)
        nbmlops.log_dataset(X.assign(y=y), "train-set", role="train")
        nbmlops.log_model(LogisticRegression().fit(X, y), "model")
        ids["trained"] = run.id
    ids["dataset_version"] = ds.version
    nbmlops.register_model(run.id, "lineage", alias="production")
    return ids


@pytest.fixture(scope="module")
def dash(tmp_path_factory):
    root = tmp_path_factory.mktemp("dashboard")
    store = root / ".nbmlops"
    ids = _fill(store)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    server = Server(root, {**env, "NBMLOPS_STORE": str(store)})
    yield server, store, ids
    server.stop()
    for name in nbmlops.list_deployments()["name"]:
        nbmlops.get_deployment(name).stop()
    nbmlops.set_store(None)


# ------------------------------------------------------------------ enabling and store
def test_extension_is_listed_enabled_and_ok():
    out = subprocess.run([sys.executable, "-m", "jupyter", "server", "extension", "list"], capture_output=True,
                         text=True, timeout=120, check=False)
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)
    assert re.search(r"nbmlops\s+enabled", text) and re.search(r"nbmlops 0\.1\.0 OK", text), text


def test_import_nbmlops_does_not_import_jupyter_server():
    code = ("import sys, nbmlops; assert nbmlops._jupyter_server_extension_points() == "
            "[{'module': 'nbmlops.jupyter_server'}]; print('jupyter_server' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def test_store_is_the_one_named_by_NBMLOPS_STORE(dash):
    server, store, _ = dash
    answer = server.get("nbmlops/api/store").json()
    assert {k: answer[k] for k in ("path", "exists", "kernels", "source", "hint")} == {
        "path": str(store.resolve()), "exists": True, "kernels": str(store.resolve()), "source": "environment",
        "hint": None}


def test_store_rule_config_then_env_then_nearest_above_root_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("NBMLOPS_STORE", raising=False)
    monkeypatch.setattr(nbmlops.store, "_explicit", None)  # as in a fresh server process
    (tmp_path / ".nbmlops").mkdir()
    (tmp_path / ".nbmlops" / "STORE.json").write_text('{"format": "nbmlops", "schema": 1}')
    (tmp_path / "work" / "deep").mkdir(parents=True)
    assert store_path("", tmp_path / "work" / "deep") == tmp_path / ".nbmlops"
    assert store_path(str(tmp_path), tmp_path / "elsewhere") == tmp_path / ".nbmlops"  # a folder holding one
    monkeypatch.setenv("NBMLOPS_STORE", str(tmp_path / "envstore"))
    assert store_path("", tmp_path / "work") == tmp_path / "envstore"
    assert store_path(str(tmp_path / "configured"), tmp_path) == tmp_path / "configured"


def test_store_from_the_command_line_trait_reaches_the_api(tmp_path):
    store = tmp_path / "elsewhere" / ".nbmlops"
    code = (f"import nbmlops; nbmlops.set_store({str(store)!r})\n"
            "with nbmlops.start_run(experiment='cli'): nbmlops.log_metric('m', 1)")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "NBMLOPS_STORE": ""})
    env = {k: v for k, v in os.environ.items() if k != "NBMLOPS_STORE" and not k.startswith("JUPYTER")}
    (tmp_path / "root").mkdir()
    server = Server(tmp_path / "root", env, f"--NbmlopsDashboard.store={store}", base_url="/")
    try:
        assert server.get("nbmlops/api/store").json()["path"] == str(store)
        assert [e["name"] for e in server.get("nbmlops/api/experiments").json()["experiments"]] == ["cli"]
        assert "not recognized" not in server.output()
    finally:
        server.stop()


def test_cli_dashboard_names_the_running_servers_dashboard(dash):
    server, store, _ = dash
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(store.parent / ".jupyter-runtime"), "NBMLOPS_STORE": str(store)}
    out = subprocess.run([sys.executable, "-m", "nbmlops.cli", "dashboard"], capture_output=True, text=True, env=env,
                         timeout=60, check=True).stdout
    assert f"store: {store}" in out and f"{server.url}nbmlops/" in out


def test_an_empty_store_lists_nothing_and_is_not_created(tmp_path, monkeypatch):
    from nbmlops.jupyter_server import data

    monkeypatch.setattr(nbmlops.store, "_explicit", tmp_path / "none" / ".nbmlops")
    assert data.store() == {"path": str(tmp_path / "none" / ".nbmlops"), "exists": False}
    assert data.experiments() == data.models() == data.deployments() == data.drift_reports(None, 10) == []
    with pytest.raises(nbmlops.NotFound, match="experiments: none yet"):
        data.runs("iris", None, [], 10, 0)
    assert not (tmp_path / "none").exists()


# ------------------------------------------------------------------ runs
def test_experiments_with_their_run_counts(dash):
    server, _, _ = dash
    r = server.get("nbmlops/api/experiments")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    got = {e["name"]: e["runs"] for e in r.json()["experiments"]}
    assert got == {"iris": 3, "other/team": 1, "pages": 3}


def test_runs_of_an_experiment_by_name_or_id_newest_first(dash):
    server, _, ids = dash
    by_name = server.get("nbmlops/api/experiments/iris/runs").json()
    assert [r["name"] for r in by_name["runs"]] == [XSS, "beta", "alpha"]
    alpha = by_name["runs"][2]
    assert alpha["params"] == {"C": 1.0, "model": "lr"} and alpha["metrics"] == {"accuracy": 0.9, "loss": pytest.approx(0.1)}
    assert alpha["tags"] == {"team": "blue"} and alpha["status"] == "FINISHED" and alpha["id"] == ids["alpha"]
    by_id = server.get(f"nbmlops/api/experiments/{by_name['experiment']['id']}/runs").json()
    assert by_id["runs"] == by_name["runs"]
    slash = server.get("nbmlops/api/experiments/" + quote("other/team", safe="") + "/runs").json()
    assert [r["name"] for r in slash["runs"]] == ["gamma"]


def test_runs_search_filter_order_and_paging(dash):
    server, _, _ = dash
    def get(**q):
        return server.get("nbmlops/api/experiments/iris/runs", params=q).json()

    assert [r["name"] for r in get(filter="metrics.accuracy > 0.5")["runs"]] == ["beta", "alpha"]
    assert [r["name"] for r in get(filter="params.model = 'rf'")["runs"]] == ["beta"]
    assert [r["name"] for r in get(order_by="metrics.accuracy desc")["runs"]] == ["alpha", "beta", XSS]
    page1 = get(order_by="metrics.accuracy", max_results=2)
    assert [r["name"] for r in page1["runs"]] == [XSS, "beta"] and page1["next_offset"] == 2
    page2 = get(order_by="metrics.accuracy", max_results=2, offset=2)
    assert [r["name"] for r in page2["runs"]] == ["alpha"] and page2["next_offset"] is None


@pytest.mark.parametrize("path, status, message", [
    ("experiments/nosuch/runs", 404, "no experiment named 'nosuch'"),
    ("experiments/iris/runs?filter=metrics.accuracy%20%3E", 400, "must be NAME OPERATOR VALUE"),
    ("experiments/iris/runs?filter=metrics.accuracy%20~%201", 400, "cannot parse filter"),
    ("experiments/iris/runs?filter=colour%20%3D%20'red'", 400, "unknown run attribute 'colour'"),
    ("experiments/iris/runs?order_by=shoe_size", 400, "unknown run attribute 'shoe_size'"),
    ("experiments/iris/runs?max_results=abc", 400, "max_results must be a whole number"),
    ("experiments/iris/runs?max_results=0", 400, "max_results must be a whole number from 1"),
    ("experiments/iris/runs?max_results=100000", 400, "from 1 to 1000"),
    ("experiments/iris/runs?offset=-1", 400, "offset must be a whole number"),
    ("runs/" + "0" * 32, 404, "no run with id"),
    ("runs/xyz", 400, "run id must be at least 6 hex digits"),
    ("runs/" + "0" * 32 + "/metrics", 404, "no run with id"),
    ("models/nosuch", 404, "no registered model named 'nosuch'"),
    ("models/bad%20name", 400, "invalid model name"),
    ("drift/" + "0" * 32 + "/html", 404, "no drift report with id"),
    ("drift/not-an-id/html", 400, "32 hex digits"),
    ("drift?limit=x", 400, "limit must be a whole number"),
    ("deployments?live=maybe", 400, "live must be true or false"),
])
def test_bad_requests_answer_json_errors_naming_the_problem(dash, path, status, message):
    server, _, _ = dash
    r = server.get("nbmlops/api/" + path)
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert list(body) == ["error"] and message in body["error"], body
    assert "Traceback" not in r.text


def test_one_run_with_params_metrics_tags_times_artifacts(dash):
    server, _, ids = dash
    run = server.get(f"nbmlops/api/runs/{ids['alpha']}").json()
    assert run["name"] == "alpha" and run["status"] == "FINISHED" and run["experiment"]["name"] == "iris"
    assert run["params"] == {"C": 1.0, "model": "lr"} and run["tags"] == {"team": "blue"}
    assert run["metrics"]["accuracy"]["value"] == 0.9 and run["metrics"]["accuracy"]["count"] == 3
    assert run["start_time"] <= run["end_time"] and run["duration"] >= 0
    assert [a["name"] for a in run["artifacts"]] == ["notes.txt"] and run["models"] == []
    assert server.get(f"nbmlops/api/runs/{ids['alpha'][:8]}").json()["id"] == ids["alpha"]  # a unique prefix


def test_metric_curves_per_key(dash):
    server, _, ids = dash
    curves = server.get(f"nbmlops/api/runs/{ids['alpha']}/metrics").json()["metrics"]
    assert curves["accuracy"]["step"] == [0, 1, 2] and curves["accuracy"]["value"] == [0.5, 0.7, 0.9]
    assert len(curves["loss"]["timestamp"]) == 3 and all(isinstance(t, int) for t in curves["loss"]["timestamp"])
    one = server.get(f"nbmlops/api/runs/{ids['beta']}/metrics", params={"key": "accuracy"}).json()["metrics"]
    assert list(one) == ["accuracy"] and one["accuracy"]["value"] == [0.6, 0.8]
    r = server.get(f"nbmlops/api/runs/{ids['beta']}/metrics", params={"key": "nope"})
    assert r.status_code == 404 and "no metric 'nope'" in r.json()["error"]


def test_runs_page_names_its_columns_metrics_then_varying_params(dash):
    server, _, _ = dash
    page = server.get("nbmlops/api/experiments/iris/runs").json()
    cols = page["columns"]
    assert cols["metrics"] == ["accuracy", "loss"] and cols["varying"] == ["C", "model"]
    assert cols["constant"] == {} and cols["partial"] == {}
    files = server.get("nbmlops/api/experiments/pages/runs").json()["columns"]
    assert files["metrics"] == ["loss"] and files["varying"] == [] and files["partial"] == {}
    one = server.get("nbmlops/api/experiments/iris/runs", params={"filter": "params.model = 'lr'"}).json()["columns"]
    assert one["varying"] == [] and one["constant"] == {"C": 1.0, "model": "lr"}  # one run: nothing varies


def test_a_long_curve_is_cut_to_at_most_1000_points_keeping_its_shape(dash):
    server, _, ids = dash
    (curve,) = server.get(f"nbmlops/api/runs/{ids['long']}/metrics").json()["metrics"].values()
    assert curve["points"] == LONG and 900 <= len(curve["step"]) <= 1000
    assert curve["step"][0] == 0 and curve["step"][-1] == LONG - 1 and curve["step"] == sorted(curve["step"])
    assert 3333 in curve["step"] and max(curve["value"]) == 1.0  # the spike and the highest point stay
    assert min(curve["value"]) == pytest.approx(1 / LONG)
    small = server.get(f"nbmlops/api/runs/{ids['long']}/metrics", params={"max_points": 50}).json()["metrics"]["loss"]
    assert len(small["step"]) <= 50 and 3333 in small["step"]
    r = server.get(f"nbmlops/api/runs/{ids['long']}/metrics", params={"max_points": 2})
    assert r.status_code == 400 and "max_points must be a whole number from 4" in r.json()["error"]


def test_compare_three_runs_curves_params_diff(dash):
    server, _, ids = dash
    three = ",".join([ids["alpha"], ids["beta"], ids["xss"]])
    got = server.get("nbmlops/api/compare", params={"runs": three}).json()
    assert [r["name"] for r in got["runs"]] == ["alpha", "beta", XSS]
    assert got["metrics"] == ["accuracy", "loss"] and got["shared_metrics"] == ["accuracy"]
    assert got["curves"]["accuracy"][ids["alpha"]]["value"] == [0.5, 0.7, 0.9]
    assert got["curves"]["accuracy"][ids["beta"]]["step"] == [0, 1] and list(got["curves"]["loss"]) == [ids["alpha"]]
    assert got["params"]["varying"] == ["C", "model"]
    assert got["diff"] == [{"key": "C", "values": [1.0, 10.0, None]}, {"key": "model", "values": ["lr", "rf", XSS]}]


@pytest.mark.parametrize("runs, status, message", [
    ("", 400, "compare takes 2 to 10 different run ids"),
    ("{alpha}", 400, "got 1"),
    ("{alpha},{alpha}", 400, "got 1"),
    (",".join(["{alpha}"] + [f"{i:032x}" for i in range(1, 11)]), 400, "got 11"),
    ("{alpha}," + "0" * 32, 404, "no run with id"),
    ("{alpha},zz", 400, "run id must be at least 6 hex digits"),
])
def test_compare_refuses_bad_run_lists(dash, runs, status, message):
    server, _, ids = dash
    r = server.get("nbmlops/api/compare", params={"runs": runs.format(alpha=ids["alpha"])})
    assert r.status_code == status and message in r.json()["error"], r.text


# ------------------------------------------------------------------ artifacts
def artifact(server, run_id, name, **kw):
    return server.get(f"nbmlops/api/runs/{run_id}/artifacts/{name}", **kw)


def test_run_page_lists_artifacts_with_how_to_show_them(dash):
    server, _, ids = dash
    run = server.get(f"nbmlops/api/runs/{ids['files']}").json()
    shows = {a["name"]: a["show"] for a in run["artifacts"]}
    assert shows == {"plot.png": "image", "page.html": "download", "logo.svg": "download", "summary.json": "json",
                     "table.csv": "csv", "blob.bin": "download"}
    trained = server.get(f"nbmlops/api/runs/{ids['trained']}").json()
    assert [m["name"] for m in trained["models"]] == ["model"]
    assert {d["name"] for d in trained["datasets"]} == {"train-set"}


@pytest.mark.parametrize("name, ctype, disposition", [
    ("plot.png", "image/png", "inline"),
    ("summary.json", "application/json; charset=utf-8", "inline"),
    ("table.csv", "text/csv; charset=utf-8", "inline"),
    ("page.html", "application/octet-stream", "attachment"),  # never rendered as a page of this origin
    ("logo.svg", "application/octet-stream", "attachment"),
    ("blob.bin", "application/octet-stream", "attachment"),
])
def test_artifacts_are_served_with_safe_types_nosniff_and_disposition(dash, name, ctype, disposition):
    server, _, ids = dash
    r = artifact(server, ids["files"], name)
    assert r.status_code == 200 and r.content == ARTIFACTS[name]
    assert r.headers["Content-Type"] == ctype and r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Content-Disposition"].startswith(f'{disposition}; filename="{name}"')
    assert "sandbox" in r.headers["Content-Security-Policy"] and "default-src 'none'" in r.headers["Content-Security-Policy"]
    forced = artifact(server, ids["files"], name, params={"download": "1"})
    assert forced.headers["Content-Disposition"].startswith("attachment;")


@pytest.mark.parametrize("path", [
    "..%2F..%2FSTORE.json", "%2e%2e%2f%2e%2e%2fSTORE.json", "..%2f..%2fdb%2fmodels.json", "%2Fetc%2Fpasswd",
    "plot.png%2F..%2F..%2F..%2FSTORE.json", "plot.PNG", "notes.txt", "model",
])
def test_artifact_route_serves_only_files_recorded_on_that_run(dash, path):
    server, store, ids = dash
    r = artifact(server, ids["files"], path)
    assert r.status_code == 404, (path, r.status_code)
    assert r.headers["Content-Type"].startswith("application/json") and "has no artifact" in r.json()["error"]
    assert b"schema" not in r.content and b"root:" not in r.content
    assert artifact(server, ids["trained"], "model").status_code == 404  # a model blob is not an artifact
    assert artifact(server, ids["beta"], "notes.txt").status_code == 404  # alpha's artifact, asked on beta
    assert artifact(server, ids["alpha"], "notes.txt").content == b"hello"


def test_artifact_previews_json_pretty_and_csv_as_rows(dash):
    server, _, ids = dash
    pre = server.get(f"nbmlops/api/runs/{ids['files']}/preview/summary.json").json()
    assert pre["kind"] == "json" and json.loads(pre["text"]) == {"auc": 0.9, "n": [1, 2]} and "\n" in pre["text"]
    csv = server.get(f"nbmlops/api/runs/{ids['files']}/preview/table.csv").json()
    assert csv["rows"] == [["a", "b"], ["1", "2"], ["3", "4"]] and csv["truncated"] is False
    html = server.get(f"nbmlops/api/runs/{ids['files']}/preview/page.html").json()
    assert html == {"name": "page.html", "kind": "download", "size": len(ARTIFACTS["page.html"])}
    assert server.get(f"nbmlops/api/runs/{ids['files']}/preview/nope.txt").status_code == 404


# ------------------------------------------------------------------ model version, lineage, drift timeline
def test_model_version_lineage_from_dataset_to_run_to_version(dash):
    server, _, ids = dash
    v = server.get("nbmlops/api/models/lineage/versions/1").json()
    assert v["name"] == "lineage" and v["version"] == 1 and v["aliases"] == ["production"]
    assert v["run"] == {"id": ids["trained"], "name": "trained", "status": "FINISHED", "experiment_id": v["run"]["experiment_id"]}
    assert [(d["name"], d.get("version")) for d in v["datasets"]] == [("train-set", ids["dataset_version"])]
    assert v["versions"] == [1] and v["deployments"] == [] and v["drift"] == []
    assert v["signature"] == {"features": ["a", "b"], "n_inputs": 2, "output": "probability", "classes": [0, 1]}
    assert [h["action"] for h in v["history"]] == ["register", "alias"]
    assert [(h["alias"], h["to"]) for h in v["alias_history"]] == [("production", 1)]
    clf = server.get("nbmlops/api/models/clf/versions/1").json()
    assert clf["run"] is None and clf["drift_count"] == 1 and clf["drift"][0]["id"] == ids["drift"]


def test_drift_timeline_of_a_model_version(dash):
    server, _, ids = dash
    t = server.get("nbmlops/api/models/clf/versions/1/drift").json()
    (p,) = t["points"]
    assert p["id"] == ids["drift"] and 0 <= p["share_drifted"] <= 1 and p["drift_share"] == 0.5
    assert p["n_columns"] == 3 and isinstance(p["time"], int) and isinstance(p["dataset_drift"], bool)
    assert server.get("nbmlops/api/models/clf/versions/2/drift").json()["points"] == []


@pytest.mark.parametrize("path, status, message", [
    ("models/clf/versions/9", 404, "has no version 9"),
    ("models/clf/versions/x", 400, "a model version is a whole number from 1, got 'x'"),
    ("models/clf/versions/0/drift", 400, "a model version is a whole number"),
    ("models/nosuch/versions/1/drift", 404, "no registered model named 'nosuch'"),
    ("deployments/nosuch", 404, "no deployment named 'nosuch'"),
])
def test_page_routes_answer_bad_input_with_json_errors(dash, path, status, message):
    server, _, _ = dash
    r = server.get("nbmlops/api/" + path)
    assert r.status_code == status and message in r.json()["error"], r.text


def test_prometheus_text_parsed_and_quantiles_as_prometheus_computes_them():
    from nbmlops.jupyter_server import prom, views

    text = """# HELP model_http_requests_total x
model_http_requests_total{route="/predict",method="POST",status="200"} 6.0
model_http_requests_total{route="/invocations",method="POST",status="415"} 1.0
model_http_requests_total{route="/metrics",method="GET",status="200"} 50.0
model_http_requests_total{route="/v2/models/{model_name}/ready",method="GET",status="200"} 5.0
model_http_requests_total{route="/feedback",method="POST",status="200"} 3.0
model_http_request_duration_seconds_bucket{route="/predict",method="POST",status="200",le="0.01"} 2.0
model_http_request_duration_seconds_bucket{route="/predict",method="POST",status="200",le="0.1"} 6.0
model_http_request_duration_seconds_bucket{route="/predict",method="POST",status="200",le="+Inf"} 7.0
model_http_request_duration_seconds_bucket{route="/metrics",method="GET",status="200",le="0.01"} 50.0
model_http_request_duration_seconds_bucket{route="/metrics",method="GET",status="200",le="0.1"} 50.0
model_http_request_duration_seconds_bucket{route="/metrics",method="GET",status="200",le="+Inf"} 50.0
model_accuracy{model_name="m",model_version="2"} 0.75
model_traffic_weight{model_name="m",model_version="1"} 0.25
model_traffic_weight{model_name="m",model_version="2"} 0.75
model_request_errors_total{reason="say \\"hi\\""} 1.0
"""
    live = views.live_metrics(text)
    assert live["requests"] == 7.0  # probes, this page's own /metrics scrapes and feedback are not traffic
    assert live["latency"]["buckets"] == [[0.01, 2.0], [0.1, 6.0], ["+Inf", 7.0]]
    assert live["latency"]["p50_ms"] == pytest.approx((0.01 + 0.09 * (3.5 - 2) / 4) * 1000)
    assert live["latency"]["p99_ms"] == pytest.approx(100.0)  # in the open bucket: its lower bound
    assert live["accuracy"] == {"2": 0.75} and live["weights"] == {"1": 0.25, "2": 0.75}
    assert live["errors"] == {'say "hi"': 1.0}
    assert prom.quantile(0.5, []) is None and prom.quantile(0.5, [(1.0, 0.0), (float("inf"), 0.0)]) is None


# ------------------------------------------------------------------ models
def test_models_with_versions_and_aliases(dash):
    server, _, _ = dash
    models = server.get("nbmlops/api/models").json()["models"]
    assert [m["name"] for m in models] == ["clf", "lineage"]
    clf = models[0]
    assert clf["name"] == "clf" and clf["latest_version"] == 2 and clf["aliases"]["production"] in (1, 2)
    assert [v["version"] for v in clf["versions"]] == [1, 2]
    one = server.get("nbmlops/api/models/clf").json()
    assert [v["version"] for v in one["versions"]] == [1, 2] and one["history"][0]["action"] == "register"


def test_alias_move_through_post_changes_the_store(dash):
    server, _, _ = dash
    r = server.post("nbmlops/api/models/clf/aliases", {"alias": "production", "version": 2})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2 and r.json()["aliases"]["production"] == 2
    assert nbmlops.get_model_version("clf@production").version == 2
    (clf,) = [m for m in server.get("nbmlops/api/models").json()["models"] if m["name"] == "clf"]
    assert clf["aliases"]["production"] == 2
    assert [v["aliases"] for v in clf["versions"]] == [[], ["production"]]
    r = server.post("nbmlops/api/models/clf/aliases", {"alias": "staging", "version": 1})
    assert r.status_code == 200 and nbmlops.get_model_version("clf@staging").version == 1


@pytest.mark.parametrize("model, body, raw, status, message", [
    ("clf", {"alias": "production", "version": 9}, None, 404, "has no version 9 (versions: 1, 2)"),
    ("nosuch", {"alias": "production", "version": 1}, None, 404, "no registered model named 'nosuch'"),
    ("clf", None, b"{not json", 400, "must be JSON"),
    ("clf", None, b"", 400, "must be JSON"),
    ("clf", [1, 2], None, 400, "must be a JSON object"),
    ("clf", {"alias": "production"}, None, 400, "missing version"),
    ("clf", {"alias": "production", "version": 1, "force": True}, None, 400, "unknown 'force'"),
    ("clf", {"alias": "production", "version": "2"}, None, 400, "version must be a whole number, got \"2\""),
    ("clf", {"alias": "production", "version": True}, None, 400, "version must be a whole number, got true"),
    ("clf", {"alias": "production", "version": 1.5}, None, 400, "version must be a whole number"),
    ("clf", {"alias": 5, "version": 1}, None, 400, "alias must be a string"),
    ("clf", {"alias": "bad alias!", "version": 1}, None, 400, "invalid alias 'bad alias!'"),
    ("clf", {"alias": "production", "version": -1}, None, 404, "has no version -1"),
])
def test_alias_move_bad_input_changes_nothing(dash, model, body, raw, status, message):
    server, _, _ = dash
    before = nbmlops.get_model_version("clf").model_doc["aliases"]
    r = server.post(f"nbmlops/api/models/{model}/aliases", body, raw=raw)
    assert r.status_code == status, r.text
    assert message in r.json()["error"] and "Traceback" not in r.text
    assert nbmlops.get_model_version("clf").model_doc["aliases"] == before


# ------------------------------------------------------------------ deployments
def test_deployment_with_live_status_stopped_through_post(dash):
    server, _, _ = dash
    dep = nbmlops.serve("clf@production", name="clf-dash")
    # the model server is a child of this test process: reap it as soon as it exits, as a kernel would
    # have to, so that the Jupyter server's stop sees it gone (a zombie still answers kill(pid, 0))
    from nbmlops.serving.deployments import _children

    child = _children.pop(dep.pid)
    reaper = threading.Thread(target=child.wait, daemon=True)
    reaper.start()
    try:
        dep.predict([[0.1, 0.2, 0.3]])
        (row,) = [d for d in server.get("nbmlops/api/deployments").json()["deployments"] if d["name"] == "clf-dash"]
        assert row["status"] == "running" and row["requests"] >= 1 and row["uptime"]
        assert row["url"] == dep.url and row["model"] == "clf@production" and len(row["sha256"]) == 64
        # its page: live numbers from its /metrics (asked with its admin token, which never leaves the server)
        page = server.get("nbmlops/api/deployments/clf-dash")
        assert dep.admin_token not in page.text and "admin_token" not in page.text
        live = page.json()["live"]
        assert page.json()["url"] == dep.url and live["requests"] >= 1 and live["latency"]["p50_ms"] > 0
        for _ in range(3):
            dep.predict([[0.1, 0.2, 0.3]])
        again = server.get("nbmlops/api/deployments/clf-dash").json()["live"]
        assert again["requests"] == live["requests"] + 3  # its own /metrics scrapes are not counted
        version = nbmlops.get_model_version("clf@production").version
        lineage = server.get(f"nbmlops/api/models/clf/versions/{version}").json()["deployments"]
        assert [(d["name"], d["status"], d["url"]) for d in lineage] == [("clf-dash", "running", dep.url)]
        r = server.post("nbmlops/api/deployments/clf-dash/stop", {})
        assert r.status_code == 200, r.text
        assert r.json() == {"name": "clf-dash", "status": "stopped"}
        reaper.join(10)
        assert not reaper.is_alive() and child.returncode is not None
        assert nbmlops.get_deployment("clf-dash").status()["status"] == "stopped"
        (row,) = [d for d in server.get("nbmlops/api/deployments").json()["deployments"] if d["name"] == "clf-dash"]
        assert row["status"] == "stopped" and row["url"] is None  # a stopped server's address is dead
        page = server.get("nbmlops/api/deployments/clf-dash").json()
        assert page["status"] == "stopped" and page["url"] is None and page["live"] is None
        running = server.get("nbmlops/api/deployments", params={"all": "false"}).json()["deployments"]
        assert "clf-dash" not in [d["name"] for d in running]
    finally:
        dep.stop()
        reaper.join(10)


def test_stop_an_unknown_deployment_is_404(dash):
    server, _, _ = dash
    r = server.post("nbmlops/api/deployments/nosuch/stop", {})
    assert r.status_code == 404 and "no deployment named 'nosuch'" in r.json()["error"]


# ------------------------------------------------------------------ drift
def test_drift_reports_listed_with_a_link_to_the_saved_page(dash):
    server, _, ids = dash
    (rep,) = server.get("nbmlops/api/drift").json()["reports"]
    assert rep["id"] == ids["drift"] and rep["model"] == "clf@production" and rep["version"] == 1
    assert rep["n_columns"] == 3 and isinstance(rep["dataset_drift"], bool) and isinstance(rep["time"], int)
    assert rep["html_url"] == f"{BASE}nbmlops/api/drift/{ids['drift']}/html"
    assert server.get("nbmlops/api/drift", params={"model": "other"}).json()["reports"] == []
    page = server.get(rep["html_url"][len(BASE):])
    assert page.status_code == 200 and page.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert page.text.startswith("<!DOCTYPE html>") and 'aria-label="distribution of ' in page.text  # inline SVG
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "img-src data:" in csp and "sandbox" in csp
    assert re.search(r"script-src 'sha256-[A-Za-z0-9+/=]+'(;|$)", csp)  # only the report's own sort script


# ------------------------------------------------------------------ auth
GETS = ["nbmlops/api/store", "nbmlops/api/experiments", "nbmlops/api/experiments/iris/runs", "nbmlops/api/models",
        "nbmlops/api/models/clf", "nbmlops/api/deployments", "nbmlops/api/drift"]


def test_every_api_route_without_the_token_is_403(dash):
    server, _, ids = dash
    paths = GETS + [f"nbmlops/api/runs/{ids['alpha']}", f"nbmlops/api/runs/{ids['alpha']}/metrics",
                    f"nbmlops/api/drift/{ids['drift']}/html", f"nbmlops/api/runs/{ids['alpha']}/artifacts/notes.txt",
                    f"nbmlops/api/runs/{ids['alpha']}/preview/notes.txt", "nbmlops/api/models/clf/versions/1",
                    "nbmlops/api/models/clf/versions/1/drift", "nbmlops/api/deployments/clf-dash",
                    f"nbmlops/api/compare?runs={ids['alpha']},{ids['beta']}"]
    for path in paths:
        r = requests.get(server.url + path, timeout=30)
        assert r.status_code == 403, path
        assert "error" in r.json() and str(ids["alpha"]) not in r.text
    for path in ("nbmlops/api/models/clf/aliases", "nbmlops/api/deployments/clf-dash/stop"):
        assert requests.post(server.url + path, json={"alias": "x", "version": 1}, timeout=30).status_code == 403
    assert requests.get(server.url + "nbmlops/api/store", headers={"Authorization": "token wrong"},
                        timeout=30).status_code == 403


def test_page_and_assets_without_the_token_redirect_to_login(dash):
    server, _, _ = dash
    for path in ("nbmlops/", "nbmlops", "nbmlops/static/app.js"):
        r = requests.get(server.url + path, allow_redirects=False, timeout=30)
        assert r.status_code == 302, path
        assert r.headers["Location"].startswith(f"{BASE}login?next=")


def _cookie_session(server) -> requests.Session:
    """A browser-like session: logged in through ?token= once, then cookies only."""
    s = requests.Session()
    r = s.get(server.url + "nbmlops/", params={"token": TOKEN}, timeout=30)
    assert r.status_code == 200 and "_xsrf" in s.cookies and any(c.name.startswith("username-") for c in s.cookies)
    return s


def test_cookie_post_without_xsrf_is_403_and_with_it_works(dash):
    server, _, _ = dash
    s = _cookie_session(server)
    url = server.url + "nbmlops/api/models/clf/aliases"
    assert s.get(server.url + "nbmlops/api/models", timeout=30).status_code == 200  # the cookie logs in
    r = s.post(url, json={"alias": "xsrf-check", "version": 1}, timeout=30)
    assert r.status_code == 403 and "_xsrf" in r.json()["error"]
    r = s.post(url, json={"alias": "xsrf-check", "version": 1}, timeout=30,
               headers={"X-XSRFToken": "2|00000000|" + "0" * 32 + "|1"})
    assert r.status_code == 403
    evil = s.post(url, json={"alias": "xsrf-check", "version": 1}, timeout=30,
                  headers={"Origin": "http://evil.example", "X-XSRFToken": s.cookies["_xsrf"]})
    assert evil.status_code in (403, 404)  # jupyter_server refuses a cross-origin POST before the XSRF check
    with pytest.raises(nbmlops.NotFound):
        nbmlops.get_model_version("clf@xsrf-check")
    ok = s.post(url, json={"alias": "xsrf-check", "version": 1}, timeout=30,
                headers={"X-XSRFToken": s.cookies["_xsrf"]})
    assert ok.status_code == 200, ok.text
    assert nbmlops.get_model_version("clf@xsrf-check").version == 1


# ------------------------------------------------------------------ the page and escaping
def test_page_carries_the_base_url_and_its_assets(dash):
    server, _, _ = dash
    page = server.get("nbmlops/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert f'data-base-url="{BASE}"' in page.text
    for script in SCRIPTS:  # every view's script, app.js (the router) last
        assert f'src="{BASE}nbmlops/static/{script}?v=' in page.text
        served = server.get(f"nbmlops/static/{script}")
        assert served.status_code == 200 and served.text == (STATIC / script).read_text()
    assert page.text.rindex("static/app.js") > page.text.rindex("static/core.js")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    for testid in ("runs-table", "runs-filter", "runs-search", "models-table", "alias-form", "alias-model",
                   "alias-name", "alias-version", "alias-submit", "deployments-table", "drift-table", "store-path"):
        assert f'data-testid="{testid}"' in page.text, testid
    js = server.get("nbmlops/static/app.js")
    assert js.status_code == 200 and js.headers["Content-Type"].startswith("application/javascript")
    assert js.text == (STATIC / "app.js").read_text()
    assert server.get("nbmlops/static/app.css").headers["Content-Type"].startswith("text/css")
    for bad in ("nbmlops/static/index.html", "nbmlops/static/..%2F__init__.py", "nbmlops/static/nope.js"):
        assert server.get(bad).status_code == 404, bad


def test_stored_markup_comes_back_as_json_data(dash):
    server, _, ids = dash
    r = server.get(f"nbmlops/api/runs/{ids['xss']}")
    assert r.headers["Content-Type"].startswith("application/json") and r.headers["X-Content-Type-Options"] == "nosniff"
    run = r.json()
    assert run["name"] == XSS and run["params"]["model"] == XSS and run["tags"]["note"] == XSS
    runs = server.get("nbmlops/api/experiments/iris/runs", params={"filter": f"run_name = '{XSS}'"}).json()["runs"]
    assert [x["id"] for x in runs] == [ids["xss"]]
    assert XSS not in server.get("nbmlops/").text  # the page itself holds no data


def test_page_code_never_turns_data_into_html():
    js = "\n".join((STATIC / name).read_text() for name in SCRIPTS)
    html = (STATIC / "index.html").read_text()
    assert sorted(p.name for p in STATIC.glob("*.js")) == sorted(SCRIPTS)  # every script is served and checked
    assert max(len((STATIC / name).read_text().splitlines()) for name in SCRIPTS) < 500
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                 "setTimeout(\"", "DOMParser", "createContextualFragment", "srcdoc", "javascript:"):
        assert sink not in js, sink
    assert "textContent" in js and "createElement" in js
    assert "X-XSRFToken" in js and 'cookie("_xsrf")' in js
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html + js  # nothing remote
    assert re.findall(r"<script[^>]*>", html) == [] and "{{scripts}}" in html  # only the served files
