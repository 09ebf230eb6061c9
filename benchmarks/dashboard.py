"""Dashboard benchmark: the nbmlops dashboard's JSON API against MLflow's tracking server REST API, side by side.

    python benchmarks/dashboard.py            # full run (10,000 runs), writes its section of RESULTS.md
    python benchmarks/dashboard.py --quick    # 500 runs, fewer repetitions, prints the table only

The same runs (5 params, 3 metrics, 1 tag each; every 10th run's ``m1`` has a 20-point history; the
same values on both sides, from one seeded generator) go into one experiment of an nbmlops store (the
public API: ``start_run`` / ``log_params`` / ``log_metrics``) and into an MLflow sqlite store
(``MlflowClient`` on the sqlite URI: ``create_run`` / ``log_batch`` / ``set_terminated``); 2 registered
models of 3 versions each are registered on both. Then two real servers run on 127.0.0.1:

* ``python -m jupyter_server`` with the nbmlops extension (``NBMLOPS_STORE`` names the store), asked
  ``/nbmlops/api/...`` with a token;
* ``mlflow server --backend-store-uri sqlite:///... --default-artifact-root ...`` (its defaults:
  uvicorn, 4 workers), asked ``/api/2.0/mlflow/...``.

Each is asked the same things over one persistent HTTP connection (``http.client``) from this
process, and each request is timed until its whole body has been read: the first page of 50 runs
newest first, a page ordered by a metric, a filtered page, page 5 (offset 200; MLflow: the page
token of page 5, obtained once beforehand -- it is stateless), one run, one metric's history, the
registered models; then the dashboard's pages: a comparison of 3 runs (MLflow: the runs/search by ids
and the metric histories its compare page asks for, summed), a PNG artifact, a model version with its
lineage, a 100,000-point curve cut to at most 1000 points (MLflow: ``get-history-bulk-interval``, what
its charts ask), and, nbmlops only, a version's drift timeline (10 reports) and a live deployment page
(its model server's ``/metrics`` read and parsed). The steps are run in interleaved rounds (nbmlops and MLflow back to back, their
order alternating) so that drift of the noisy, shared machine hits both alike; the table gives the
median of the rounds and the ratio of the medians. Both answers are checked (page sizes, the same
runs on the metric-ordered page, the same number of history points).

Everything lives under ``benchmarks/.work/`` (removed at the end); both servers are stopped by their
process group at the end, also on an error. Only the section "## Dashboard (benchmarks/dashboard.py)"
of RESULTS.md is replaced.
"""

from __future__ import annotations

import os

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import urlencode  # noqa: E402

if __package__:  # python -m benchmarks.dashboard
    from ._common import free_port, log, machine, publish, stop_group
else:  # python benchmarks/dashboard.py
    from _common import free_port, log, machine, publish, stop_group

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
RESULTS = HERE / "RESULTS.md"
SECTION = "## Dashboard (benchmarks/dashboard.py)"
PACKAGES = ("nbmlops", "jupyter_server", "tornado", "pandas", "tinydb", "mlflow", "sqlalchemy", "uvicorn")
FULL = dict(runs=10_000, rounds=15, history_every=10, points=20)
QUICK = dict(runs=500, rounds=5, history_every=10, points=20)
TOKEN = "dashboard-benchmark-token-0123456789"
EXPERIMENT = "bench"
PAGE = 50
FILTER = "metrics.m1 > 0.5 and params.p1 = 'x'"
ORDER = "metrics.m2 desc"
MODELS = ("churn-model", "fraud-model")
VERSIONS = 3
LONG = 100_000  # points of the long curve (its own experiment)
DRIFT_REPORTS = 10
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2eef0c60000000049454e44ae426082")
TARGET = 0.1  # every view's API under 100 ms


# ------------------------------------------------------------------ the runs, the same on both sides
def make_runs(S: dict[str, Any]) -> list[dict[str, Any]]:
    """Every run's name, params, metrics (a list of points per key) and tag, from one seeded generator."""
    rng = random.Random(0)
    runs = []
    for k in range(S["runs"]):
        params = {"p1": ("x", "y", "z")[k % 3], "p2": k % 10, "p3": round(0.001 * (k % 50 + 1), 4), "p4": k,
                  "p5": f"set-{k % 7}"}
        n = S["points"] if k % S["history_every"] == 0 else 1
        metrics = {"m1": [rng.random() for _ in range(n)], "m2": [rng.random()], "m3": [rng.random() * 2]}
        runs.append({"name": f"run-{k:05d}", "params": params, "metrics": metrics,
                     "tags": {"team": ("red", "blue", "green")[k % 3]}})
    return runs


def tiny_models() -> list[Any]:
    from sklearn.linear_model import LogisticRegression

    rng = random.Random(1)
    X = [[rng.random(), rng.random()] for _ in range(60)]
    y = [int(a + b > 1) for a, b in X]
    return [LogisticRegression(C=c).fit(X, y) for c in (0.1, 1.0, 10.0)]


def build_nbmlops(runs: list[dict[str, Any]], store: Path) -> tuple[float, list[str], str]:
    """The runs and models through nbmlops' API, a PNG artifact on the last run with a history, a
    100,000-point curve, drift reports against a version; seconds per run, the ids of the last three
    runs with a history (the last one first), the id of the long run."""
    import numpy as np
    import pandas as pd

    import nbmlops

    nbmlops.set_store(store)
    hist_ids: list[str] = []
    t = time.perf_counter()
    for k, r in enumerate(runs):
        with nbmlops.start_run(experiment=EXPERIMENT, name=r["name"], tags=r["tags"]) as run:
            nbmlops.log_params(r["params"])
            m1 = r["metrics"]["m1"]
            for step, v in enumerate(m1[:-1]):
                nbmlops.log_metrics({"m1": v}, step=step)
            nbmlops.log_metrics({"m1": m1[-1], "m2": r["metrics"]["m2"][0], "m3": r["metrics"]["m3"][0]},
                                step=len(m1) - 1)
            if len(m1) > 1:
                hist_ids.insert(0, run.id)
                if k + S_HIST >= len(runs):  # the last run with a history: the artifact's run
                    (store.parent / "plot.png").write_bytes(PNG)
                    nbmlops.log_artifact(store.parent / "plot.png")
        if (k + 1) % 2000 == 0:
            log(f"nbmlops: {k + 1:,} runs")
    per_run = (time.perf_counter() - t) / len(runs)
    for name in MODELS:
        for model in tiny_models()[:VERSIONS]:
            nbmlops.register_model(model, name)
    with nbmlops.start_run(experiment="bench-long", name="long") as run:
        for step, v in enumerate(long_curve()):
            run.log_metric("loss", v, step=step)
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(size=500)})
    for shift in np.linspace(0, 1, DRIFT_REPORTS):
        cur = pd.DataFrame({"a": rng.normal(shift, size=500), "b": rng.normal(size=500)})
        nbmlops.drift_report(ref, cur).log(model=f"{MODELS[0]}/{VERSIONS}")
    nbmlops.set_store(None)
    return per_run, hist_ids[:3], run.id


S_HIST = 10  # every 10th run has a history (FULL and QUICK alike)


def long_curve() -> list[float]:
    rng = random.Random(3)
    return [1 / (1 + k / 100) + rng.random() * 0.01 for k in range(LONG)]


def build_mlflow(runs: list[dict[str, Any]], uri: str, artifacts: Path) -> tuple[float, str, list[str], str]:
    """The runs and models in MLflow's sqlite store (client ``log_batch``, no server yet), the same PNG and
    long curve; seconds per run, the experiment id, the ids of the last three runs with a history, the
    long run's id."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment(EXPERIMENT, artifact_location=artifacts.as_uri())
    hist_ids: list[str] = []
    t = time.perf_counter()
    for k, r in enumerate(runs):
        run = client.create_run(exp, run_name=r["name"], tags=r["tags"])
        now = int(time.time() * 1000)
        metrics = [Metric(key, v, now, step) for key, values in r["metrics"].items() for step, v in enumerate(values)]
        client.log_batch(run.info.run_id, metrics=metrics, params=[Param(a, str(v)) for a, v in r["params"].items()],
                         tags=[RunTag("mlflow.user", "bench")])
        client.set_terminated(run.info.run_id)
        if len(r["metrics"]["m1"]) > 1:
            hist_ids.insert(0, run.info.run_id)
            if k + S_HIST >= len(runs):
                client.log_artifact(run.info.run_id, str(artifacts.parent / "plot.png"))
        if (k + 1) % 2000 == 0:
            log(f"MLflow: {k + 1:,} runs")
    per_run = (time.perf_counter() - t) / len(runs)
    long_exp = client.create_experiment("bench-long", artifact_location=(artifacts / "long").as_uri())
    long_run = client.create_run(long_exp, run_name="long").info.run_id
    now = int(time.time() * 1000)
    curve = long_curve()
    for at in range(0, LONG, 1000):  # log_batch takes at most 1000 metrics
        client.log_batch(long_run, metrics=[Metric("loss", v, now, at + i) for i, v in enumerate(curve[at:at + 1000])])
    client.set_terminated(long_run)
    trained = client.create_experiment("training", artifact_location=(artifacts / "training").as_uri())
    for name in MODELS:
        client.create_registered_model(name)
        for _ in range(VERSIONS):
            src = client.create_run(trained, run_name=f"train-{name}")
            client.set_terminated(src.info.run_id)
            client.create_model_version(name, f"{src.info.artifact_uri}/model", run_id=src.info.run_id)
    return per_run, exp, hist_ids[:3], long_run


# ------------------------------------------------------------------ servers
class Server:
    def __init__(self, name: str, cmd: list[str], env: dict[str, str], logfile: Path, probe: str,
                 headers: dict[str, str] | None = None) -> None:
        self.name, self.headers = name, headers or {}
        self.port = int(next(a.split("=", 1)[1] if "=" in a else cmd[cmd.index(a) + 1]
                             for a in cmd if a.endswith("port") or a.startswith("--ServerApp.port")))
        self.log = open(logfile, "wb")  # noqa: SIM115  (closed by stop)
        t = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({self.proc.returncode}): {self.tail()}")
            with contextlib.suppress(OSError):
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", probe, headers=self.headers)
                if c.getresponse().status == 200:
                    c.close()
                    self.ready = time.perf_counter() - t
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                    return
                c.close()
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{name} did not answer {probe} within 120 s: {self.tail()}")

    def tail(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-3000:]

    def ask(self, method: str, path: str, body: Any = None) -> tuple[float, Any]:
        """One request on the persistent connection: seconds until the whole body is read, and its JSON."""
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        t = time.perf_counter()
        self.conn.request(method, path, body=data, headers=headers)
        resp = self.conn.getresponse()
        raw = resp.read()
        dt = time.perf_counter() - t
        if resp.status != 200:
            raise RuntimeError(f"{self.name} {method} {path}: HTTP {resp.status} {raw[:500]!r}")
        return dt, json.loads(raw) if "json" in (resp.getheader("Content-Type") or "") else raw

    def ask_all(self, requests: Any) -> tuple[float, Any]:
        """A request, or a list of them in a row (what one page asks): total seconds and the answer(s)."""
        if isinstance(requests, tuple):
            return self.ask(*requests)
        answers = [self.ask(*req) for req in requests]
        return sum(dt for dt, _ in answers), [a for _, a in answers]

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
        stop_group(self.proc)
        self.log.close()


def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of a process group."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # pgrp
                total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def settle(servers: list[Server], timeout: float = 120, every: float = 3.0) -> float:
    """Wait until the servers' process groups are idle (together < 5% of a core over ``every`` seconds):
    MLflow's server keeps starting background job consumers after it answers. Seconds waited."""
    t0 = time.perf_counter()
    before = sum(group_cpu(s.proc.pid) for s in servers)
    while time.perf_counter() - t0 < timeout:
        time.sleep(every)
        now = sum(group_cpu(s.proc.pid) for s in servers)
        if now - before < 0.05 * every:
            return time.perf_counter() - t0
        before = now
    log(f"the servers were still busy after {timeout:.0f} s; measuring anyway")
    return time.perf_counter() - t0


def start_jupyter(root: Path, store: Path) -> Server:
    port = free_port()
    runtime = root / "jupyter-runtime"
    runtime.mkdir(parents=True, exist_ok=True)
    (root / "notebooks").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env.update(NBMLOPS_STORE=str(store), JUPYTER_RUNTIME_DIR=str(runtime))
    cmd = [sys.executable, "-m", "jupyter_server", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root / 'notebooks'}", "--no-browser",
           "--ServerApp.open_browser=False", "--ServerApp.allow_root=True"]
    return Server("jupyter_server", cmd, env, root / "jupyter-server.log", "/nbmlops/api/store",
                  {"Authorization": f"token {TOKEN}"})


def serve(store: Path) -> Any:
    """A model server for the deployment page (the store's first model, its last version)."""
    import nbmlops

    nbmlops.set_store(store)
    return nbmlops.serve(f"{MODELS[0]}/{VERSIONS}", name="bench-dep")


def start_mlflow(root: Path, uri: str, artifacts: Path) -> Server:
    port = free_port()
    bindir = str(Path(sys.executable).parent)  # the server runs uvicorn through PATH
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""), "MLFLOW_DISABLE_TELEMETRY": "true"}
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--default-artifact-root",
           artifacts.as_uri(), "--host", "127.0.0.1", "--port", str(port)]
    return Server("mlflow server", cmd, env, root / "mlflow-server.log",
                  f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={EXPERIMENT}")


# ------------------------------------------------------------------ the steps
def steps(mf_exp: str, nb: dict[str, Any], mf: dict[str, Any], page5_token: str) -> list[tuple[str, str, Any, Any]]:
    """(key, label, nbmlops request, MLflow request); a request is (method, path, body), a list of them
    (timed in a row, summed), or None (no such request on that side)."""
    nb_run, mf_run = nb["hist"][0], mf["hist"][0]
    model = f"/nbmlops/api/models/{MODELS[0]}/versions/{VERSIONS}"
    by_ids = "attributes.run_id IN (" + ", ".join(f"'{i}'" for i in mf["hist"]) + ")"
    mf_compare = [("POST", "/api/2.0/mlflow/runs/search", {"experiment_ids": [mf_exp], "filter": by_ids})]
    mf_compare += [("GET", f"/api/2.0/mlflow/metrics/get-history?run_id={i}&metric_key={k}", None)
                   for i in mf["hist"] for k in ("m1", "m2", "m3")]
    pages = [
        ("compare", "compare 3 runs: params, metrics, every curve (`api/compare` / `runs/search` by ids + 9 "
         "`metrics/get-history`, summed)", ("GET", "/nbmlops/api/compare?runs=" + ",".join(nb["hist"]), None),
         mf_compare),
        ("artifact", "a run's PNG artifact (`api/runs/<id>/artifacts/plot.png` / `get-artifact`)",
         ("GET", f"/nbmlops/api/runs/{nb_run}/artifacts/plot.png", None),
         ("GET", f"/get-artifact?path=plot.png&run_uuid={mf_run}", None)),
        ("version", "a model version with its lineage, deployments, drift and alias history "
         "(`api/models/<m>/versions/3` / `model-versions/get`)", ("GET", model, None),
         ("GET", f"/api/2.0/mlflow/model-versions/get?name={MODELS[0]}&version={VERSIONS}", None)),
        ("long", f"a {LONG:,}-point curve cut to ≤ 1000 points (`api/runs/<id>/metrics?key=loss` / "
         "`get-history-bulk-interval`, what MLflow's charts ask)",
         ("GET", f"/nbmlops/api/runs/{nb['long']}/metrics", None),
         ("GET", f"/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval?run_ids={mf['long']}&metric_key=loss"
          "&max_results=1000", None)),
        ("drift", f"a model version's drift timeline, {DRIFT_REPORTS} reports (`api/models/<m>/versions/3/drift`)",
         ("GET", model + "/drift", None), None),
        ("deployment", "a live deployment page: its record and its model server's `/metrics`, read and parsed "
         "(`api/deployments/<name>`)", ("GET", "/nbmlops/api/deployments/bench-dep", None), None),
    ]
    runs = f"/nbmlops/api/experiments/{EXPERIMENT}/runs?"
    search = "/api/2.0/mlflow/runs/search"

    def mf(**kw: Any) -> dict[str, Any]:
        return {"experiment_ids": [mf_exp], "max_results": PAGE, **kw}

    return [
        ("newest", f"first page of {PAGE} runs, newest first",
         ("GET", runs + urlencode({"max_results": PAGE}), None), ("POST", search, mf())),
        ("order", f"a page ordered by a metric (`{ORDER}`)",
         ("GET", runs + urlencode({"max_results": PAGE, "order_by": ORDER}), None),
         ("POST", search, mf(order_by=[ORDER.replace("desc", "DESC")]))),
        ("filter", f"a filtered page (`{FILTER}`), newest first",
         ("GET", runs + urlencode({"max_results": PAGE, "filter": FILTER}), None), ("POST", search, mf(filter=FILTER))),
        ("page5", "page 5 (runs 201–250), newest first; MLflow with page 5's token",
         ("GET", runs + urlencode({"max_results": PAGE, "offset": 4 * PAGE}), None),
         ("POST", search, mf(page_token=page5_token))),
        ("run", "one run's details (`api/runs/<id>` / `runs/get`)",
         ("GET", f"/nbmlops/api/runs/{nb_run}", None), ("GET", f"/api/2.0/mlflow/runs/get?run_id={mf_run}", None)),
        ("history", "one metric's history, 20 points (`api/runs/<id>/metrics?key=m1` / `metrics/get-history`)",
         ("GET", f"/nbmlops/api/runs/{nb_run}/metrics?key=m1", None),
         ("GET", f"/api/2.0/mlflow/metrics/get-history?run_id={mf_run}&metric_key=m1", None)),
        ("models", f"registered models, {len(MODELS)} × {VERSIONS} versions (`api/models` / `registered-models/search`)",
         ("GET", "/nbmlops/api/models", None), ("GET", "/api/2.0/mlflow/registered-models/search?max_results=100", None)),
        *pages,
    ]


def check(key: str, nb: Any, mf: Any, S: dict[str, Any]) -> None:
    """Both servers answered the same thing (as far as the two shapes allow)."""
    if key in ("newest", "order", "filter", "page5"):
        a = [r["name"] for r in nb["runs"]]
        b = [r["info"]["run_name"] for r in mf["runs"]]
        assert len(a) == len(b) == PAGE, (key, len(a), len(b))
        if key == "order":  # distinct float values: the same runs in the same order
            assert a == b, (key, a[:5], b[:5])
        if key == "filter":
            assert all(r["params"]["p1"] == "x" and r["metrics"]["m1"] > 0.5 for r in nb["runs"])
        if key in ("newest", "page5"):  # runs were created in name order on both sides
            want = [f"run-{k:05d}" for k in range(S["runs"] - 1 - (4 * PAGE if key == "page5" else 0), -1, -1)][:PAGE]
            assert a == want and b == want, (key, a[:3], b[:3], want[:3])
    elif key == "run":
        assert nb["name"] == mf["run"]["info"]["run_name"], (nb["name"], mf["run"]["info"]["run_name"])
    elif key == "history":
        assert len(nb["metrics"]["m1"]["value"]) == len(mf["metrics"]) == S["points"]
        assert nb["metrics"]["m1"]["value"] == [m["value"] for m in sorted(mf["metrics"], key=lambda m: m["step"])]
    elif key == "models":
        assert sorted(m["name"] for m in nb["models"]) == sorted(m["name"] for m in mf["registered_models"])
        assert all(m["latest_version"] == VERSIONS for m in nb["models"])
    elif key == "compare":
        assert len(nb["runs"]) == 3 and all(len(c["value"]) == S["points"] for c in nb["curves"]["m1"].values())
        assert len(mf[0]["runs"]) == 3 and sorted(len(h["metrics"]) for h in mf[1:])[-1] == S["points"]
        assert sorted(r["name"] for r in nb["runs"]) == sorted(r["info"]["run_name"] for r in mf[0]["runs"])
    elif key == "artifact":
        assert nb == mf == PNG, (nb[:20], mf[:20])
    elif key == "version":
        assert nb["version"] == int(mf["model_version"]["version"]) == VERSIONS and len(nb["drift"]) == DRIFT_REPORTS
    elif key == "long":
        (curve,) = nb["metrics"].values()
        assert curve["points"] == LONG and len(curve["step"]) <= 1000, (curve["points"], len(curve["step"]))
        assert 0 < len(mf["metrics"]) <= 1000
    elif key == "drift":
        assert len(nb["points"]) == DRIFT_REPORTS
    elif key == "deployment":
        assert nb["status"] == "running" and nb["live"] is not None, nb


Step = tuple[str, str, Any, Any]


def measure_first(nb: Server, mf: Server, step: Step, long: Step) -> dict[str, Any]:
    """The very first runs request after start: nbmlops reads its run files (parsed-file cache empty); and
    the first read of the long curve (nbmlops parses its 100,000 log lines, then keeps the cut curve)."""
    r = {"first_nb": nb.ask(*step[2])[0], "first_mf": mf.ask(*step[3])[0], "long_first_nb": nb.ask(*long[2])[0],
         "long_first_mf": mf.ask(*long[3])[0]}
    log(f"first runs request after start: nbmlops {r['first_nb'] * 1e3:.1f} ms, MLflow {r['first_mf'] * 1e3:.1f} ms; "
        f"first read of the long curve: nbmlops {r['long_first_nb'] * 1e3:.0f} ms, "
        f"MLflow {r['long_first_mf'] * 1e3:.0f} ms")
    return r


def measure(S: dict[str, Any], nb: Server, mf: Server, plan: list[tuple[str, str, Any, Any]]) -> dict[str, Any]:
    r: dict[str, Any] = {}
    for key, _, nreq, mreq in plan:  # a warm-up round that also checks the answers
        _, a = nb.ask_all(nreq)
        _, b = mf.ask_all(mreq) if mreq is not None else (0.0, None)
        check(key, a, b, S)
    times: dict[str, dict[str, list[float]]] = {key: {"nb": [], "mf": []} for key, *_ in plan}
    for rnd in range(S["rounds"]):
        for key, _, nreq, mreq in plan:
            pair = [("nb", nb, nreq), ("mf", mf, mreq)]
            for side, server, req in (pair if rnd % 2 == 0 else pair[::-1]):
                if req is not None:
                    times[key][side].append(server.ask_all(req)[0])
        if (rnd + 1) % 5 == 0:
            log(f"round {rnd + 1} of {S['rounds']}")
    for key, t in times.items():
        r[key] = (statistics.median(t["nb"]), statistics.median(t["mf"]) if t["mf"] else None)
        log(f"{key}: nbmlops {r[key][0] * 1e3:.2f} ms, MLflow " + (f"{r[key][1] * 1e3:.2f} ms" if t["mf"] else "—"))
    return r


def page5_token(mf: Server, mf_exp: str) -> str:
    token = ""
    for _ in range(4):
        _, ans = mf.ask("POST", "/api/2.0/mlflow/runs/search",
                        {"experiment_ids": [mf_exp], "max_results": PAGE, **({"page_token": token} if token else {})})
        token = ans["next_page_token"]
    return token


# ------------------------------------------------------------------ report
def fmt(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms" if seconds < 0.1 else f"{seconds * 1e3:.0f} ms"
    return f"{seconds * 1e6:.3g} µs"


def ratio(nb: float, mf: float) -> str:
    x = mf / nb
    text = f"{x:,.0f}" if x >= 100 else f"{x:.2g}"
    return f"**{text}×**" if x >= 1 else f"{text}× (nbmlops slower)"


def report(S: dict[str, Any], r: dict[str, Any], plan: list[tuple[str, str, tuple, tuple]], info: dict[str, Any],
           quick: bool, wall: float) -> str:
    n = S["runs"]
    extra = (f"Mode: {'--quick (small sizes)' if quick else 'full'}. Load average (1 min) when the timing began / "
             f"ended: {info['load0']:.1f} / {info['load1']:.1f} (the 2 cores are shared with other work).")
    out = [SECTION, "", machine(PACKAGES, extra), "",
           f"{n:,} runs in one experiment (5 params, 3 metrics — `m1` with a {S['points']}-point history in every "
           f"{S['history_every']}th run — and 1 tag each), the same values on both sides; {len(MODELS)} registered "
           f"models × {VERSIONS} versions. nbmlops: a `python -m jupyter_server` with the extension "
           f"(`/nbmlops/api/...`). MLflow: `mlflow server` on a sqlite backend (its defaults: uvicorn, 4 workers; "
           f"`/api/2.0/mlflow/...`). Real HTTP on 127.0.0.1, one persistent connection per server, each request "
           f"timed until its body is read; medians of {S['rounds']} interleaved rounds; ratio = MLflow ÷ nbmlops "
           f"(above 1: nbmlops faster).", "",
           "| request | nbmlops | MLflow | MLflow ÷ nbmlops |", "| --- | --- | --- | --- |"]
    for key, label, *_ in plan:
        a, b = r[key]
        out.append(f"| {label} | {fmt(a)} | {fmt(b) if b else '—'} | {ratio(a, b) if b else '—'} |")
    out.append(f"| the first runs request after the server started (nbmlops warms pandas and the store when the "
               f"extension loads) | "
               f"{fmt(r['first_nb'])} | {fmt(r['first_mf'])} | {ratio(r['first_nb'], r['first_mf'])} |")
    out.append(f"| the first read of the {LONG:,}-point curve (nbmlops parses its log once, then keeps the cut curve "
               f"of a finished run) | {fmt(r['long_first_nb'])} | {fmt(r['long_first_mf'])} | "
               f"{ratio(r['long_first_nb'], r['long_first_mf'])} |")
    slow = [label.split(" (")[0] for key, label, *_ in plan if r[key][0] >= TARGET]
    out += ["", f"Target: every view's API under {TARGET * 1e3:.0f} ms (median) at {n:,} runs: "
            + ("met by every row above (the first read of the long curve aside)." if not slow
               else "missed by " + "; ".join(slow) + ".")]
    out += ["", f"Both answers are checked: {PAGE} runs a page, the same runs in the same order on the metric-ordered "
            "page and on the newest-first pages, the filter kept on the nbmlops page, the same 20 history values, "
            "the same model names. Shapes differ: nbmlops' `api/models` gives every version of each model (with "
            "its aliases and metrics), MLflow's `registered-models/search` the latest versions only; "
            "`runs/search` answers each run with all its tags (MLflow's own `mlflow.*` ones too).", "",
            "nbmlops answers each runs page with `search_runs` (reads the experiment's runs, filters, sorts, frames "
            "one page; `nbmlops/jupyter_server/data.py`). A cache of the sorted runs per order made the four runs "
            "pages 2.7-5.7× faster still (8-10 ms) but needed the dashboard to open the store's files itself, which "
            "the layering forbids; it was left out. The extension warms pandas and the store in a thread when it "
            "loads, so the first request does not pay for them.", "",
            f"Loading: nbmlops API {fmt(info['nb_per_run'])} per run; MLflow client on the sqlite URI "
            f"(`create_run` + `log_batch` + `set_terminated`) {fmt(info['mf_per_run'])} per run. Servers answering "
            f"after start: jupyter_server {fmt(info['nb_ready'])}, mlflow server {fmt(info['mf_ready'])} (it goes on "
            f"starting its background job consumers: the timing began once both servers' processes had been idle "
            f"for 3 s, {info['settle']:.0f} s later). CPU time the servers' process groups used from then to the "
            f"end: jupyter_server {info['cpu']['jupyter_server']:.1f} s, mlflow server "
            f"{info['cpu']['mlflow server']:.1f} s.",
            "", "The pages' rows: `api/compare` reads each run and its (cached) cut curves; the artifact is streamed "
            "from its hash-checked blob; the version page lists the deployments and the model's history; the drift "
            "timeline reads the summaries kept on the version; the deployment page asks the model server's "
            "`/metrics` (a real model server, idle but for these requests) with the deployment's admin token and "
            "parses the Prometheus text. MLflow has no drift timeline and no live deployment page.",
            "", f"Whole benchmark: {wall:.0f} s.", ""]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="500 runs, fewer rounds; prints the table only")
    ap.add_argument("--results", type=Path, default=None,
                    help="markdown file to update (default: benchmarks/RESULTS.md for a full run; "
                         "a --quick run only prints its table unless this is given)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (to profile against it)")
    args = ap.parse_args()
    S = QUICK if args.quick else FULL
    out = args.results if args.results is not None else (None if args.quick else RESULTS)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    WORK.mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="dashboard-", dir=WORK))
    servers: list[Server] = []
    info: dict[str, Any] = {}
    deployment = None

    def on_term(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        runs = make_runs(S)
        store = root / "store"
        info["nb_per_run"], nb_hist, nb_long = build_nbmlops(runs, store)
        log(f"nbmlops: {S['runs']:,} runs, {info['nb_per_run'] * 1e3:.2f} ms each")
        uri = f"sqlite:///{root / 'mlflow.db'}"
        artifacts = root / "mlartifacts"
        artifacts.mkdir()
        info["mf_per_run"], mf_exp, mf_hist, mf_long = build_mlflow(runs, uri, artifacts)
        log(f"MLflow: {S['runs']:,} runs, {info['mf_per_run'] * 1e3:.2f} ms each")
        deployment = serve(store)
        nb = start_jupyter(root, store)
        servers.append(nb)
        mf = start_mlflow(root, uri, artifacts)
        servers.append(mf)
        info["nb_ready"], info["mf_ready"] = nb.ready, mf.ready
        log(f"servers up: jupyter_server {nb.ready:.1f} s, mlflow server {mf.ready:.1f} s")
        info["settle"] = settle(servers)
        log(f"servers idle after {info['settle']:.0f} s more")
        cpu0 = {s.name: group_cpu(s.proc.pid) for s in servers}
        info["load0"] = os.getloadavg()[0]
        ids = ({"hist": nb_hist, "long": nb_long}, {"hist": mf_hist, "long": mf_long})
        first = steps(mf_exp, *ids, "")
        r = measure_first(nb, mf, first[0], next(step for step in first if step[0] == "long"))
        plan = steps(mf_exp, *ids, page5_token(mf, mf_exp))
        r.update(measure(S, nb, mf, plan))
        info["load1"] = os.getloadavg()[0]
        info["cpu"] = {s.name: group_cpu(s.proc.pid) - cpu0[s.name] for s in servers}
    finally:
        for s in servers:
            s.stop()
        if deployment is not None:
            deployment.stop()
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
            with contextlib.suppress(OSError):
                WORK.rmdir()  # only if no other benchmark is using it
    text = report(S, r, plan, info, args.quick, time.perf_counter() - t0)
    publish(text, out, SECTION, [f"{key} {r[key][0] * 1e3:.0f} ms" for key, *_ in plan if r[key][0] >= TARGET])
    return 0


if __name__ == "__main__":
    sys.exit(main())
