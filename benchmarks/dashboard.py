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
registered models. The steps are run in interleaved rounds (nbmlops and MLflow back to back, their
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


def build_nbmlops(runs: list[dict[str, Any]], store: Path) -> tuple[float, str]:
    """The runs and models through nbmlops' API; seconds per run, and the id of a run with a history."""
    import nbmlops

    nbmlops.set_store(store)
    hist_id = ""
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
                hist_id = run.id
        if (k + 1) % 2000 == 0:
            log(f"nbmlops: {k + 1:,} runs")
    per_run = (time.perf_counter() - t) / len(runs)
    for name in MODELS:
        for model in tiny_models()[:VERSIONS]:
            nbmlops.register_model(model, name)
    nbmlops.set_store(None)
    return per_run, hist_id


def build_mlflow(runs: list[dict[str, Any]], uri: str, artifacts: Path) -> tuple[float, str, str]:
    """The runs and models in MLflow's sqlite store (client ``log_batch``, no server yet); seconds per run,
    the experiment id and the id of a run with a history."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment(EXPERIMENT, artifact_location=artifacts.as_uri())
    hist_id = ""
    t = time.perf_counter()
    for k, r in enumerate(runs):
        run = client.create_run(exp, run_name=r["name"], tags=r["tags"])
        now = int(time.time() * 1000)
        metrics = [Metric(key, v, now, step) for key, values in r["metrics"].items() for step, v in enumerate(values)]
        client.log_batch(run.info.run_id, metrics=metrics, params=[Param(a, str(v)) for a, v in r["params"].items()],
                         tags=[RunTag("mlflow.user", "bench")])
        client.set_terminated(run.info.run_id)
        if len(r["metrics"]["m1"]) > 1:
            hist_id = run.info.run_id
        if (k + 1) % 2000 == 0:
            log(f"MLflow: {k + 1:,} runs")
    per_run = (time.perf_counter() - t) / len(runs)
    trained = client.create_experiment("training", artifact_location=(artifacts / "training").as_uri())
    for name in MODELS:
        client.create_registered_model(name)
        for _ in range(VERSIONS):
            src = client.create_run(trained, run_name=f"train-{name}")
            client.set_terminated(src.info.run_id)
            client.create_model_version(name, f"{src.info.artifact_uri}/model", run_id=src.info.run_id)
    return per_run, exp, hist_id


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
        return dt, json.loads(raw)

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


def start_mlflow(root: Path, uri: str, artifacts: Path) -> Server:
    port = free_port()
    bindir = str(Path(sys.executable).parent)  # the server runs uvicorn through PATH
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""), "MLFLOW_DISABLE_TELEMETRY": "true"}
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--default-artifact-root",
           artifacts.as_uri(), "--host", "127.0.0.1", "--port", str(port)]
    return Server("mlflow server", cmd, env, root / "mlflow-server.log",
                  f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={EXPERIMENT}")


# ------------------------------------------------------------------ the steps
def steps(mf_exp: str, nb_run: str, mf_run: str, page5_token: str) -> list[tuple[str, str, tuple, tuple]]:
    """(key, label, nbmlops request, MLflow request); a request is (method, path, body)."""
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


def measure_first(nb: Server, mf: Server, step: tuple[str, str, tuple, tuple]) -> dict[str, Any]:
    """The very first runs request after start: nbmlops reads its run files (parsed-file cache empty)."""
    r = {"first_nb": nb.ask(*step[2])[0], "first_mf": mf.ask(*step[3])[0]}
    log(f"first runs request after start: nbmlops {r['first_nb'] * 1e3:.1f} ms, MLflow {r['first_mf'] * 1e3:.1f} ms")
    return r


def measure(S: dict[str, Any], nb: Server, mf: Server, plan: list[tuple[str, str, tuple, tuple]]) -> dict[str, Any]:
    r: dict[str, Any] = {}
    for key, _, nreq, mreq in plan:  # a warm-up round that also checks the answers
        _, a = nb.ask(*nreq)
        _, b = mf.ask(*mreq)
        check(key, a, b, S)
    times: dict[str, dict[str, list[float]]] = {key: {"nb": [], "mf": []} for key, *_ in plan}
    for rnd in range(S["rounds"]):
        for key, _, nreq, mreq in plan:
            pair = [("nb", nb, nreq), ("mf", mf, mreq)]
            for side, server, req in (pair if rnd % 2 == 0 else pair[::-1]):
                times[key][side].append(server.ask(*req)[0])
        if (rnd + 1) % 5 == 0:
            log(f"round {rnd + 1} of {S['rounds']}")
    for key, t in times.items():
        r[key] = (statistics.median(t["nb"]), statistics.median(t["mf"]))
        log(f"{key}: nbmlops {r[key][0] * 1e3:.2f} ms, MLflow {r[key][1] * 1e3:.2f} ms")
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
        out.append(f"| {label} | {fmt(a)} | {fmt(b)} | {ratio(a, b)} |")
    out.append(f"| the first runs request after the server started (nbmlops warms pandas and the store when the "
               f"extension loads) | "
               f"{fmt(r['first_nb'])} | {fmt(r['first_mf'])} | {ratio(r['first_nb'], r['first_mf'])} |")
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

    def on_term(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        runs = make_runs(S)
        store = root / "store"
        info["nb_per_run"], nb_run = build_nbmlops(runs, store)
        log(f"nbmlops: {S['runs']:,} runs, {info['nb_per_run'] * 1e3:.2f} ms each")
        uri = f"sqlite:///{root / 'mlflow.db'}"
        artifacts = root / "mlartifacts"
        artifacts.mkdir()
        info["mf_per_run"], mf_exp, mf_run = build_mlflow(runs, uri, artifacts)
        log(f"MLflow: {S['runs']:,} runs, {info['mf_per_run'] * 1e3:.2f} ms each")
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
        r = measure_first(nb, mf, steps(mf_exp, nb_run, mf_run, "")[0])
        plan = steps(mf_exp, nb_run, mf_run, page5_token(mf, mf_exp))
        r.update(measure(S, nb, mf, plan))
        info["load1"] = os.getloadavg()[0]
        info["cpu"] = {s.name: group_cpu(s.proc.pid) - cpu0[s.name] for s in servers}
    finally:
        for s in servers:
            s.stop()
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
            with contextlib.suppress(OSError):
                WORK.rmdir()  # only if no other benchmark is using it
    text = report(S, r, plan, info, args.quick, time.perf_counter() - t0)
    publish(text, out, SECTION, [])
    return 0


if __name__ == "__main__":
    sys.exit(main())
