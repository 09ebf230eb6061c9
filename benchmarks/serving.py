"""Serving benchmark: nbmlops' model server against MLflow's scoring server, side by side in one run.

    python benchmarks/serving.py            # full run (about 9–10 minutes on 2 cores), writes benchmarks/RESULTS.md
    python benchmarks/serving.py --quick    # smoke test (< 90 s), prints the table only
    python benchmarks/serving.py --only oip # Open Inference Protocol, binary vs JSON V2, beside KServe (about 7 min)
    python benchmarks/serving.py --only mlflow  # the rows against MLflow only
    python benchmarks/serving.py --only monitor # the live monitor's cost (issue 19, about 2 min; its own section)

The same two scikit-learn models -- a LogisticRegression and a 100-tree RandomForestClassifier, both
fitted on ``make_classification`` (20 features, seed 0) -- are served on 127.0.0.1 by nbmlops
(``register_model`` + ``serve``, one process) and by ``mlflow models serve --env-manager local``
(model saved with ``mlflow.sklearn.save_model(..., serialization_format="cloudpickle")``, MLflow's
default of one uvicorn worker). Measured on each:

* single-row latency p50/p99 over sequential requests on one kept-alive connection (a raw-socket
  client with the request bytes built in advance, so the client adds as little as possible);
  nbmlops ``POST /predict {"features": row}``, MLflow ``POST /invocations {"instances": [row]}``;
* throughput with 8 and 32 concurrent clients (kept-alive connections), with ``wrk`` and a Lua POST
  script, and the server's CPU time per request (its process group's, from /proc). ``wrk`` is
  installed with apt when missing; where that is impossible an asyncio client in this process is used
  instead (and the table says so: it competes with the servers for the 2 cores);
* nbmlops' micro-batching on vs ``batching=False`` (RandomForest, 32 clients) and request logging on
  vs ``log_requests=False`` (LogisticRegression, 8 clients; extra back-to-back pairs, since that
  difference is the smallest; plus the logging work timed in-process, free of HTTP and of noise).

All servers are started once and measured in interleaved rounds (every configuration once per round,
the servers compared with each other back to back), so that drift of a noisy, shared machine hits all
of them alike; the table gives medians over the rounds and medians of the per-round ratios. The CPU
that other work used during the runs is reported. A server killed from outside during the run (a
test suite sweeping model servers, say) is restarted and its measurement repeated. Everything lives
under ``benchmarks/.work/`` (removed at the end) and every server is stopped by its process group,
also on Ctrl-C or SIGTERM.

Only the section "## Serving (benchmarks/serving.py)" of RESULTS.md is replaced; other sections stay.
"""

from __future__ import annotations

import os

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
os.environ.pop("MLFLOW_MODELS_WORKERS", None)  # MLflow's default: one uvicorn worker, like nbmlops' one process

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

if __package__:  # python -m benchmarks.serving
    from ._common import log, machine, publish, stop_group
else:  # python benchmarks/serving.py
    from _common import log, machine, publish, stop_group

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
RESULTS = HERE / "RESULTS.md"
PACKAGES = ("nbmlops", "mlflow", "scikit-learn", "numpy", "pandas", "fastapi", "starlette", "uvicorn", "uvloop",
            "httptools", "orjson", "prometheus_client")
SECTION = "## Serving (benchmarks/serving.py)"

FULL = dict(samples=5_000, trees=100, seq=2_000, seq_warmup=200, duration=4.0, warmup=1.0, rounds=5, log_pairs=8)
QUICK = dict(samples=2_000, trees=100, seq=300, seq_warmup=50, duration=2.0, warmup=0.5, rounds=1, log_pairs=2)

# name -> (model, tool, serve options)
SERVERS = {
    "nb-lr": ("lr", "nbmlops", {}),
    "nb-lr-nolog": ("lr", "nbmlops", {"log_requests": False}),
    "mf-lr": ("lr", "mlflow", {}),
    "nb-rf": ("rf", "nbmlops", {}),
    "nb-rf-nobatch": ("rf", "nbmlops", {"batching": False}),
    "mf-rf": ("rf", "mlflow", {}),
}
GROUPS = [["nb-lr", "nb-lr-nolog", "mf-lr"], ["nb-rf", "nb-rf-nobatch", "mf-rf"]]  # compared back to back


def order(rnd: int) -> list[str]:
    """Servers of a round: the members of each group one after the other, reversed every other round
    (so that neither side of a comparison always goes first)."""
    return [n for g in GROUPS for n in (g if rnd % 2 == 0 else g[::-1])]


# -- models ------------------------------------------------------------------------------------------
def make_models(S: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    X, y = make_classification(n_samples=S["samples"], n_features=20, n_informative=10, random_state=0)
    lr = LogisticRegression(max_iter=1_000).fit(X, y)
    rf = RandomForestClassifier(n_estimators=S["trees"], random_state=0, n_jobs=1).fit(X, y)
    return {"lr": lr, "rf": rf}, X


def bodies(server: str, rows: list[list[float]]) -> list[bytes]:
    """The JSON body of a one-row request to ``server``, for each row."""
    if SERVERS[server][1] == "nbmlops":
        return [json.dumps({"features": r}).encode() for r in rows]
    return [json.dumps({"instances": [r]}).encode() for r in rows]


def path_of(server: str) -> str:
    return "/predict" if SERVERS[server][1] == "nbmlops" else "/invocations"


# -- servers -----------------------------------------------------------------------------------------
class Servers:
    """Starts nbmlops deployments and MLflow scoring servers; stops every one of them (process groups)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.deployments: dict[str, Any] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}
        self.pids: set[int] = set()  # every server process ever started, for the final check
        self.started: dict[str, float] = {}

    def start(self, name: str) -> None:
        """Start ``name`` (see SERVERS); nbmlops' ``serve`` returns once it answers, MLflow's needs ``wait``."""
        kind, tool, options = SERVERS[name]
        if tool == "mlflow":
            self.start_mlflow(name, self.root / f"mlflow-{kind}")
        else:
            self.start_nbmlops(name, f"bench-{kind}/1", **options)

    def start_mlflow(self, name: str, model_dir: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        bindir = str(Path(sys.executable).parent)  # `mlflow models serve` runs `uvicorn` through PATH
        env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
               "MLFLOW_DISABLE_TELEMETRY": "true"}
        exe = Path(bindir) / "mlflow"
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "mlflow"]
        cmd += ["models", "serve", "-m", str(model_dir), "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
        with open(self.root / f"{name}.log", "ab") as out:
            self.procs[name] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                env=env, start_new_session=True, cwd=self.root)
        self.ports[name] = port
        self.pids.add(self.procs[name].pid)
        self.started[name] = time.time()

    def wait(self, name: str, timeout: float = 120) -> float:
        """Seconds from the start of the process until it answered its health check."""
        if name in self.deployments:
            return self.started[name]
        proc, port = self.procs[name], self.ports[name]
        t0 = self.started[name]
        while time.time() - t0 < timeout:
            if proc.poll() is not None:
                tail = (self.root / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"MLflow server {name} exited with {proc.returncode}:\n{tail}")
            try:
                if http_get(port, "/ping") == 200:
                    return time.time() - t0
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"MLflow server {name} did not answer within {timeout:.0f} s")

    def start_nbmlops(self, name: str, uri: str, **options: Any) -> None:
        import nbmlops

        t = time.perf_counter()
        try:
            dep = nbmlops.serve(uri, name=name, **options)
        finally:
            from nbmlops.serving import deployments

            self.pids.update(deployments._children)  # also a server that failed its health check
        self.deployments[name] = dep
        self.ports[name] = dep.port
        self.started[name] = time.perf_counter() - t  # serve() returns once /health answers

    def pid(self, name: str) -> int:
        return self.deployments[name].pid if name in self.deployments else self.procs[name].pid

    def alive(self, name: str) -> bool:
        if name in self.deployments:
            return pid_exists(self.deployments[name].pid)
        return name in self.procs and self.procs[name].poll() is None

    def stop(self, name: str) -> None:
        self.stop_all([name])

    def stop_all(self, names: list[str] | None = None, timeout: float = 10) -> None:
        """SIGTERM the servers' process groups at once, wait for them, then let each tool record the stop.

        (``Deployment.stop()`` alone would do, but from the process that started the server it waits its
        whole timeout: the exited server stays a zombie until reaped, and its liveness check counts
        zombies as alive. Reaping first makes it return at once.)"""
        from nbmlops.serving import deployments

        names = list(self.deployments) + list(self.procs) if names is None else names
        waiting = [p for p in (deployments._children.get(self.deployments[n].pid) if n in self.deployments
                               else self.procs.get(n) for n in names) if p is not None]
        for proc in waiting:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.time() + timeout
        while time.time() < deadline and any(p.poll() is None for p in waiting):
            time.sleep(0.02)
        for name in names:
            dep = self.deployments.pop(name, None)
            if dep is not None:
                try:
                    dep.stop()
                except Exception as exc:  # noqa: BLE001 - fall back to the process group
                    log(f"stopping {name}: {exc!r}; killing its process group")
                    with contextlib.suppress(OSError):
                        os.killpg(dep.pid, signal.SIGKILL)
            proc = self.procs.pop(name, None)
            if proc is not None:
                stop_group(proc)
        if not (self.deployments or self.procs):
            for pid in self.leftovers():  # anything of ours still there (it should not be)
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)

    def leftovers(self) -> list[int]:
        """Our server processes still running: started here, leading their group, naming our work dir."""
        left = []
        for pid in sorted(self.pids):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                mine = os.getpgid(pid) == pid and str(self.root) in cmd
            except OSError:
                continue
            if mine and pid_exists(pid):
                left.append(pid)
        return left


def http_get(port: int, path: str) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        head = s.recv(64)
    return int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0


# -- clients -----------------------------------------------------------------------------------------
def request_bytes(port: int, path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class RawConnection:
    """A kept-alive HTTP/1.1 connection that sends prebuilt requests and reads Content-Length answers."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def call(self, request: bytes) -> tuple[int, bytes]:
        self.sock.sendall(request)
        buf = self.buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            buf += chunk
        head = buf[:end].decode("latin-1")
        m = re.search(r"(?im)^content-length:\s*(\d+)", head)
        if m is None:
            raise ConnectionError("answer without Content-Length")
        total = end + 4 + int(m.group(1))
        while len(buf) < total:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            buf += chunk
        self.buf = buf[total:]
        return int(head.split(" ", 2)[1]), buf[end + 4:total]

    def close(self) -> None:
        self.sock.close()


def sequential(port: int, path: str, payloads: list[bytes], n: int, warmup: int) -> dict[str, float]:
    reqs = [request_bytes(port, path, b) for b in payloads]
    conn = RawConnection(port)
    try:
        for i in range(warmup):
            status, body = conn.call(reqs[i % len(reqs)])
            if status != 200:
                raise RuntimeError(f"{path} answered {status}: {body[:200]!r}")
        times = []
        clock = time.perf_counter
        for i in range(n):
            t = clock()
            status, _ = conn.call(reqs[i % len(reqs)])
            times.append(clock() - t)
            if status != 200:
                raise RuntimeError(f"{path} answered {status}")
    finally:
        conn.close()
    times.sort()
    return {"p50": times[len(times) // 2], "p99": times[min(len(times) - 1, int(len(times) * 0.99))],
            "mean": sum(times) / len(times)}


LUA = """wrk.method = "POST"
wrk.path = "{path}"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def ensure_wrk() -> str | None:
    """Path of wrk, installing Debian's package when missing; None when that is impossible."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        log("wrk is missing and apt-get cannot install it here: using the asyncio client")
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log("wrk is missing: apt-get update && apt-get install -y wrk")
    try:
        subprocess.run([apt, "update", "-qq"], env=env, check=True, capture_output=True, timeout=300)
        subprocess.run([apt, "install", "-y", "-qq", "wrk"], env=env, check=True, capture_output=True, timeout=300)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        log(f"installing wrk failed ({exc!r}): using the asyncio client")
        return None
    return shutil.which("wrk")


def run_wrk(wrk: str, port: int, path: str, body: bytes, clients: int, duration: float, root: Path) -> dict[str, float]:
    script = root / f"post-{port}.lua"
    script.write_text(LUA.format(path=path, body=body.decode()))
    cmd = [wrk, "-t1", f"-c{clients}", f"-d{max(1, round(duration))}s", "--timeout", "10s", "-s", str(script),
           f"http://127.0.0.1:{port}{path}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout[-500:]} {out.stderr[-500:]}")
    n, us, p50, p99, *errors = (int(float(v)) for v in line.split()[1:])
    return {"rps": n / (us / 1e6), "p50": p50 / 1e6, "p99": p99 / 1e6, "errors": sum(errors), "requests": n}


async def _async_load(port: int, request: bytes, clients: int, duration: float) -> dict[str, float]:
    lat: list[float] = []
    errors = 0
    stop_at = 0.0
    clock = time.perf_counter

    async def one() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while clock() < stop_at:
                t = clock()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                await reader.readexactly(int(m.group(1)) if m else 0)
                if not head.startswith(b"HTTP/1.1 200"):
                    errors += 1
                lat.append(clock() - t)
        finally:
            writer.close()

    stop_at = clock() + duration
    t0 = clock()
    await asyncio.gather(*(one() for _ in range(clients)))
    wall = clock() - t0
    lat.sort()
    return {"rps": len(lat) / wall, "p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)], "errors": errors,
            "requests": len(lat)}


def run_load(wrk: str | None, port: int, path: str, body: bytes, clients: int, duration: float,
             root: Path) -> dict[str, float]:
    if wrk is not None:
        return run_wrk(wrk, port, path, body, clients, duration, root)
    return asyncio.run(_async_load(port, request_bytes(port, path, body), clients, duration))


# -- the benchmark -----------------------------------------------------------------------------------
def check_same_answers(servers: Servers, models: dict[str, Any], X: Any) -> None:
    """Each server answers the predictions of the fitted object for a few rows (same model on both sides)."""
    rows = X[:16].tolist()
    for name, (kind, tool, _) in SERVERS.items():
        expected = models[kind].predict(X[:16]).tolist()
        conn = RawConnection(servers.ports[name])
        try:
            got = []
            for b in bodies(name, rows):
                status, raw = conn.call(request_bytes(servers.ports[name], path_of(name), b))
                if status != 200:
                    raise RuntimeError(f"{name} answered {status}: {raw[:300]!r}")
                answer = json.loads(raw)
                got.append(answer["prediction"] if tool == "nbmlops" else answer["predictions"][0])
        finally:
            conn.close()
        if got != expected:
            raise RuntimeError(f"{name} predicts {got}, the fitted model {expected}")


def logging_probe(root: Path, row: list[float], n: int = 20_000) -> dict[str, float]:
    """CPU cost of request logging per request, in-process (no HTTP, so none of the machine's noise):
    the record the server builds for a one-row LogisticRegression request, serialized and queued with
    ``add`` (on the request path) and appended by ``flush`` (the writer thread's work)."""
    import uuid

    from nbmlops.serving.reqlog import RequestLog

    log_ = RequestLog(root / "reqlog-probe")
    log_.close()  # stop its writer thread: flush is timed here instead
    clock = time.perf_counter
    add = flush = 0.0
    for _ in range(3):  # take the best of 3: what it costs, not what a busy machine made of it
        ids = [uuid.uuid4().hex for _ in range(n)]
        t = clock()
        for rid in ids:  # what score() does when logging is on: build the record, serialize it, queue it
            log_.add({"t": time.time_ns() // 1_000_000, "id": rid, "v": 1, "lat": round(0.000412 * 1000, 3),
                      "rows": [row], "out": [1]})
        t_add = (clock() - t) / n
        t = clock()
        log_.flush()
        t_flush = (clock() - t) / n
        add, flush = (t_add, t_flush) if not add else (min(add, t_add), min(flush, t_flush))
    size = sum(f.stat().st_size for f in (root / "reqlog-probe").glob("requests-*.jsonl")) / (3 * n)
    shutil.rmtree(root / "reqlog-probe", ignore_errors=True)
    return {"add": add, "flush": flush, "bytes": size}


def bench(S: dict[str, Any], root: Path, client: str) -> dict[str, Any]:
    import mlflow.sklearn

    import nbmlops

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    log(f"fitting LogisticRegression and a {S['trees']}-tree RandomForest on {S['samples']:,} × 20")
    models, X = make_models(S)
    rows = X[:64].tolist()
    wrk = ensure_wrk() if client == "wrk" else None
    r: dict[str, Any] = {"client": f"wrk ({wrk_version(wrk)})" if wrk else "asyncio client (in this process)",
                         "seq": {}, "load": {}, "startup": {}}

    for kind, model in models.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlflow.sklearn.save_model(model, root / f"mlflow-{kind}", serialization_format="cloudpickle",
                                      pip_requirements=["scikit-learn", "cloudpickle"])  # skips slow inference
    nbmlops.set_store(root / "store")
    for kind, model in models.items():
        nbmlops.register_model(model, f"bench-{kind}")

    servers = Servers(root)
    r["restarts"] = []
    r["logpairs"] = {}

    def load_run(name: str, port: int, clients: int) -> dict[str, float]:
        """One throughput run, with the CPU the server's process group, the client and everything else used."""
        pgid = servers.pid(name)
        s0, m0, w0 = group_cpu(pgid), machine_cpu(), children_cpu()
        res = run_load(wrk, port, path_of(name), bodies(name, rows[:1])[0], clients, S["duration"], root)
        s1, m1, w1 = group_cpu(pgid), machine_cpu(), children_cpu()
        if res["errors"]:
            raise RuntimeError(f"{name}, {clients} clients: {res['errors']} errors in {res['requests']} requests")
        res["cpu"] = (s1 - s0) / res["requests"]
        wall = (m1[1] - m0[1]) / (os.cpu_count() or 1)  # elapsed seconds, from the machine's own counters
        res["others"] = max(0.0, ((m1[0] - m0[0]) - (s1 - s0) - (w1 - w0)) / wall) if wall > 0 else 0.0
        return res
    r["logprobe"] = logging_probe(root, rows[0])
    log(f"request log in-process: add {fmt(r['logprobe']['add'])}, flush {fmt(r['logprobe']['flush'])} per record")

    def measure(name: str, fn: Any) -> Any:
        """fn(port); if the server died under it (killed from outside: a test suite's sweep of model
        servers, the OOM killer), restart the server, warm it up and measure again."""
        for attempt in range(4):
            try:
                return fn(servers.ports[name])
            except (OSError, RuntimeError) as exc:
                if servers.alive(name) or attempt == 3:
                    raise
                log(f"{name} is gone ({str(exc)[:120]}): restarting it and measuring again")
                r["restarts"].append(name)
                servers.stop(name)
                servers.start(name)
                servers.wait(name)
                run_load(wrk, servers.ports[name], path_of(name), bodies(name, rows[:1])[0], 8, S["warmup"], root)
        raise AssertionError("unreachable")

    try:
        for name, (_, tool, _) in SERVERS.items():  # MLflow's take seconds to start: start them first, together
            if tool == "mlflow":
                servers.start(name)
        for name, (_, tool, _) in SERVERS.items():
            if tool == "nbmlops":
                servers.start(name)
        for name in SERVERS:
            r["startup"][name] = servers.wait(name)
            log(f"{name} answers on port {servers.ports[name]} ({r['startup'][name]:.1f} s after its start)")
        check_same_answers(servers, models, X)
        log(f"all {len(SERVERS)} servers answer the fitted models' predictions; load client: {r['client']}")
        for name in SERVERS:  # warm every server up under load once (allocators, code paths, caches)
            measure(name, lambda port, name=name: run_load(wrk, port, path_of(name), bodies(name, rows[:1])[0], 8,
                                                           S["warmup"], root))
        r["loadavg_start"] = os.getloadavg()
        for rnd in range(S["rounds"]):
            for name in order(rnd):
                res = measure(name, lambda port, name=name: sequential(port, path_of(name), bodies(name, rows),
                                                                       S["seq"], S["seq_warmup"]))
                r["seq"].setdefault(name, []).append(res)
                log(f"round {rnd + 1}: {name} sequential p50 {fmt(res['p50'])}, p99 {fmt(res['p99'])}")
            for clients, name in [(c, n) for c in (8, 32) for n in order(rnd)]:
                res = measure(name, lambda port, name=name, clients=clients: load_run(name, port, clients))
                r["load"].setdefault((name, clients), []).append(res)
                log(f"round {rnd + 1}: {name} {clients} clients {res['rps']:,.0f} req/s, p50 {fmt(res['p50'])}, "
                    f"p99 {fmt(res['p99'])}, server CPU {fmt(res['cpu'])}/req, other work {res['others']:.2f} cores")
        # the logging comparison is the closest one: more back-to-back pairs of it, in ABBA order
        for k in range(S["log_pairs"]):
            for name in (("nb-lr", "nb-lr-nolog") if k % 2 == 0 else ("nb-lr-nolog", "nb-lr")):
                res = measure(name, lambda port, name=name: load_run(name, port, 8))
                r["logpairs"].setdefault(name, []).append(res)
            log(f"logging pair {k + 1}: on {r['logpairs']['nb-lr'][-1]['rps']:,.0f} req/s, off "
                f"{r['logpairs']['nb-lr-nolog'][-1]['rps']:,.0f} req/s")
        r["loadavg_end"] = os.getloadavg()
        r["log_bytes"] = sum(f.stat().st_size for f in (root / "store").rglob("requests-*.jsonl"))
    finally:
        servers.stop_all()
        nbmlops.set_store(None)
    left = servers.leftovers()
    if left:
        raise RuntimeError(f"server processes still running after stop: {left}")
    return r


TICK = os.sysconf("SC_CLK_TCK")


def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of process group ``pgid``."""
    total = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid:  # pgrp; utime and stime are fields 14 and 15 of stat
                total += int(fields[11]) + int(fields[12])
    return total / TICK


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(v) - v[3] - v[4]) / TICK, sum(v) / TICK


def children_cpu() -> float:
    """CPU seconds of this process and its finished children: the load client (wrk, or the asyncio one)."""
    import resource

    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_CHILDREN),
                                                  resource.getrusage(resource.RUSAGE_SELF)))


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def wrk_version(wrk: str | None) -> str:
    if wrk is None:
        return "none"
    out = subprocess.run([wrk, "--version"], capture_output=True, text=True)
    m = re.search(r"wrk\s+(\S+)", out.stdout + out.stderr)
    return f"wrk {m.group(1)}" if m else "wrk"


# -- report ------------------------------------------------------------------------------------------
def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.3g} µs"
    return f"{seconds * 1e9:.3g} ns"


def rps(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f}/s"


def times(x: float) -> str:
    return f"**{x:.1f}×**" if x >= 1 else f"{x:.2f}×"


def summarize(r: dict[str, Any]) -> dict[str, Any]:
    med = statistics.median
    m: dict[str, Any] = {}
    for name, runs in r["seq"].items():
        m[("seq", name)] = {k: med(x[k] for x in runs) for k in ("p50", "p99")}
    for key, runs in r["load"].items():
        m[("load", *key)] = {k: med(x[k] for x in runs) for k in ("rps", "p50", "p99", "cpu")}
        m[("load", *key)]["all"] = [x["rps"] for x in runs]
    return m


def report(S: dict[str, Any], r: dict[str, Any], quick: bool, wall: float) -> tuple[str, list[tuple[str, bool, str]]]:
    m = summarize(r)

    def seq(name: str, k: str) -> float:
        return m[("seq", name)][k]

    def load(name: str, c: int, k: str = "rps") -> float:
        return m[("load", name, c)][k]

    def paired(a: str, b: str, c: int | None = None) -> float:
        """Median over rounds of a's figure / b's (throughput at c clients; for c None, b's p50 / a's)."""
        if c is None:
            return statistics.median(y["p50"] / x["p50"] for x, y in zip(r["seq"][a], r["seq"][b]))
        return statistics.median(x["rps"] / y["rps"] for x, y in zip(r["load"][(a, c)], r["load"][(b, c)]))

    def lat_cell(name: str) -> str:
        return f"{fmt(seq(name, 'p50'))} / {fmt(seq(name, 'p99'))}"

    def load_cell(name: str, c: int) -> str:
        return (f"{rps(load(name, c))} (p50 {fmt(load(name, c, 'p50'))}, p99 {fmt(load(name, c, 'p99'))}; "
                f"server CPU {fmt(load(name, c, 'cpu'))}/req)")

    # logging on/off at 8 clients: the pairs of the rounds plus the extra back-to-back pairs
    on = r["load"][("nb-lr", 8)] + r["logpairs"].get("nb-lr", [])
    off = r["load"][("nb-lr-nolog", 8)] + r["logpairs"].get("nb-lr-nolog", [])
    log_ratio = statistics.median(x["rps"] / y["rps"] for x, y in zip(on, off))
    log_cpu = statistics.median(x["cpu"] / y["cpu"] for x, y in zip(on, off))
    others = [x["others"] for runs in r["load"].values() for x in runs]

    mode = f"Mode: {'--quick (fewer requests, shorter runs, one round)' if quick else 'full'}."
    out = [SECTION, "", machine(PACKAGES, mode, before_date=f"Load client: {r['client']}."), "",
           "| work | model | nbmlops | MLflow scoring server | nbmlops / MLflow |", "| --- | --- | --- | --- | --- |"]
    label = {"lr": "LogisticRegression", "rf": f"RandomForest ({S['trees']} trees)"}
    for kind in ("lr", "rf"):
        nb, mf = f"nb-{kind}", f"mf-{kind}"
        out.append(f"| single-row latency p50 / p99, {S['seq']:,} sequential requests, one kept-alive connection "
                   f"| {label[kind]} | {lat_cell(nb)} | {lat_cell(mf)} | {times(paired(nb, mf))} "
                   "faster at p50 |")
        for c in (8, 32):
            out.append(f"| throughput, {c} concurrent clients (latency under load) | {label[kind]} | "
                       f"{load_cell(nb, c)} | {load_cell(mf, c)} | {times(paired(nb, mf, c))} |")
    out += ["", "| nbmlops option | model, clients | on (default) | off | on / off |",
            "| --- | --- | --- | --- | --- |"]
    for c in (8, 32):
        out.append(f"| micro-batching (`batching=False` off) | {label['rf']}, {c} | {load_cell('nb-rf', c)} | "
                   f"{load_cell('nb-rf-nobatch', c)} | {times(paired('nb-rf', 'nb-rf-nobatch', c))} |")
    for c in (8, 32):
        out.append(f"| request logging (`log_requests=False` off) | {label['lr']}, {c} | {load_cell('nb-lr', c)} | "
                   f"{load_cell('nb-lr-nolog', c)} | "
                   + (f"{log_ratio:.2f}× (median of {len(on)} pairs) |" if c == 8 else
                      f"{paired('nb-lr', 'nb-lr-nolog', c):.2f}× |"))
    out.append(f"| single-row latency p50 / p99, batching on / off | {label['rf']}, 1 | {lat_cell('nb-rf')} | "
               f"{lat_cell('nb-rf-nobatch')} | — |")
    out.append(f"| single-row latency p50 / p99, logging on / off | {label['lr']}, 1 | {lat_cell('nb-lr')} | "
               f"{lat_cell('nb-lr-nolog')} | — |")

    cost = 1 - log_ratio
    lp = r["logprobe"]
    per_request = 1 / load("nb-lr-nolog", 8)  # server time per request at its 8-client throughput, no logging
    probe = (f"Request logging also measured in-process (no HTTP, so free of the machine's noise; best of 3 × "
             f"20,000 records like the server's for a one-row request, {lp['bytes']:.0f} bytes each): "
             f"{fmt(lp['add'] + lp['flush'])} of CPU per request — {fmt(lp['add'])} on the request path to build "
             f"the record, serialize it and queue it, {fmt(lp['flush'])} for the writer thread to append it — "
             "that is "
             f"{(lp['add'] + lp['flush']) / per_request:.1%} of the {fmt(per_request)} per request that the 8-client "
             "throughput without logging implies.")
    vs_lr, vs_rf, batch = paired("nb-lr", "mf-lr", 8), paired("nb-rf", "mf-rf", 8), paired("nb-rf", "nb-rf-nobatch", 32)
    p99s = [(kind, c, seq(f"nb-{kind}", "p99") if c == 1 else load(f"nb-{kind}", c, "p99"),
             seq(f"mf-{kind}", "p99") if c == 1 else load(f"mf-{kind}", c, "p99"))
            for kind in ("lr", "rf") for c in (1, 8, 32)]
    targets = [
        ("LogisticRegression single-row p50 < 2 ms", seq("nb-lr", "p50") < 0.002, fmt(seq("nb-lr", "p50"))),
        ("LogisticRegression, 8 clients: p99 < 20 ms", load("nb-lr", 8, "p99") < 0.020,
         f"{fmt(load('nb-lr', 8, 'p99'))} (MLflow's {fmt(load('mf-lr', 8, 'p99'))})"),
        ("p99 never worse than MLflow's, at 1, 8 and 32 clients, both models", all(a <= b for *_, a, b in p99s),
         "; ".join(f"{kind} {c}: {fmt(a)} vs {fmt(b)}" for kind, c, a, b in p99s)),
        ("throughput ≥ 3× MLflow's at 8 clients, LogisticRegression", vs_lr >= 3, f"{vs_lr:.2f}×"),
        ("throughput ≥ 3× MLflow's at 8 clients, RandomForest", vs_rf >= 3, f"{vs_rf:.2f}×"),
        ("32 clients: micro-batching ≥ 2× the RandomForest's throughput with batching off", batch >= 2,
         f"{batch:.2f}×"),
        (f"request logging costs < 10% throughput (LogisticRegression, 8 clients; median of {len(on)} back-to-back "
         "pairs)", cost < 0.10 if cost >= 0 else log_cpu - 1 < 0.10,
         (f"{cost:.1%} of the throughput without it" if cost >= 0 else
          f"throughput: none measurable ({-cost:.1%} faster with it: noise), so judged by server CPU per request")
         + f"; server CPU per request {log_cpu - 1:+.1%}; in-process {(lp['add'] + lp['flush']) / per_request:.1%}"),
    ]
    spread = "; ".join(
        f"{name} at {c}: " + ", ".join(f"{x:,.0f}" for x in m[("load", name, c)]["all"])
        for c in (8, 32) for g in GROUPS for name in g)
    startup = ", ".join(f"{name} {v:.1f} s" for name, v in r["startup"].items())
    restarts = (f" {len(r['restarts'])} measurement(s) were repeated because their server had been killed from "
                f"outside ({', '.join(r['restarts'])}), after restarting it." if r["restarts"] else "")
    la0, la1 = r["loadavg_start"][0], r["loadavg_end"][0]
    pairs = ", ".join(f"{x['rps'] / y['rps']:.2f}" for x, y in zip(on, off))
    out += ["",
            f"Medians of {S['rounds']} interleaved round{'s' if S['rounds'] > 1 else ''}: every server was started "
            "once, warmed up, then each round ran every measurement on every server in turn, the servers compared "
            "with each other back to back (their order reversed every other round); ratios are the medians of the "
            "per-round ratios. Single-row latency: "
            f"{S['seq']:,} requests after {S['seq_warmup']} unmeasured ones, each sent when the previous answer is in, "
            "by a raw-socket client with the requests prebuilt, cycling over 64 rows. Throughput: "
            f"{S['duration']:.0f} s per run, " + (
                "wrk with one thread and a Lua POST script (`wrk -t1 -cN`), one row per request, latencies as wrk "
                "measured them. " if r["client"].startswith("wrk") else
                "an asyncio client in the benchmark's own process (wrk could not be installed), which shares the "
                "2 cores with the server. ") +
            "Bodies: nbmlops `POST /predict {\"features\": [20 floats]}` (it answers prediction, probability, "
            "confidence and per-class probabilities, computing `predict_proba`); MLflow `POST /invocations "
            "{\"instances\": [[20 floats]]}` (answers `predictions` from `predict`; its fastest input form here: "
            "`dataframe_split` takes it about twice as long). nbmlops answers its prediction routes through its "
            "ASGI fast path (`nbmlops/serving/fast.py`: no Starlette request, routing or response objects on them) "
            "and calls a model that scores a batch in under 1 ms on its event loop. Both run one server process "
            "(MLflow's default of one uvicorn worker); nbmlops with its defaults (micro-batching on, up to 64 rows, "
            "`max_latency_ms=2`; request logging on) unless the row says otherwise. Both models are fitted on "
            f"NumPy arrays (no feature names). Request logging wrote {r['log_bytes'] / 2**20:.1f} MiB of JSON Lines "
            f"in this run. Startup to an answered health check (all six started at once, so each slowed by the "
            f"others): {startup}. The machine is shared: during the throughput runs, work other than the server "
            f"under test and the load client used a median {statistics.median(others):.2f} cores (from "
            f"{min(others):.2f} to {max(others):.2f}) of the 2 (1-minute load average {la0:.1f} at the first round, "
            f"{la1:.1f} at the last); server CPU per request (its process group's user + system time / requests) is "
            f"less sensitive to that than throughput.{restarts} Throughput of every run (req/s, in round order): "
            f"{spread}. Request logging on / off, throughput ratio of each back-to-back pair at 8 clients (the "
            f"rounds', then {S['log_pairs']} more in ABBA order): {pairs}.", "", probe, ""]
    out += ["| target (nbmlops) | measured | status |", "| --- | --- | --- |"]
    out += [f"| {t} | {v} | {'pass' if ok else '**FAIL**'} |" for t, ok, v in targets]
    out += ["", f"Whole benchmark: {wall:.0f} s.", ""]
    return "\n".join(out), targets


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer requests, shorter runs, one round (< 90 s)")
    ap.add_argument("--results", type=Path, default=None,
                    help="markdown file to update (default: benchmarks/RESULTS.md for a full run; "
                         "a --quick run only prints its table unless this is given)")
    ap.add_argument("--client", choices=("wrk", "asyncio"), default="wrk",
                    help="load generator for the concurrent runs (default wrk, installed with apt when missing; "
                         "asyncio when that fails)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="interleaved rounds (default: 5 in a full run, 1 with --quick; the extra logging pairs follow "
                         "the same count, at most 8)")
    ap.add_argument("--only", choices=("mlflow", "oip", "monitor"), default=None,
                    help="only the rows against MLflow's scoring server, or only the Open Inference Protocol row "
                         "(binary vs JSON V2 beside KServe's ModelServer, issue 18: rewrites its subsection alone)")
    args = ap.parse_args()
    # _oip builds on this module's servers and clients: imported once this module is loaded
    if __package__:
        from . import _oip
    else:
        import _oip
    S = dict(QUICK if args.quick else FULL)
    if args.rounds is not None:
        S.update(rounds=args.rounds, log_pairs=min(8, 2 * args.rounds))
    out = args.results if args.results is not None else (None if args.quick else RESULTS)

    def interrupted(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)  # so that `finally` stops the servers
    if args.only == "monitor":  # the live monitor's cost: a section of its own, nothing else measured
        if __package__:
            from . import _monitor
        else:
            import _monitor
        return _monitor.main(_monitor.QUICK if args.quick else _monitor.FULL, args.quick, args.client, out)
    warnings.filterwarnings("ignore", module="mlflow")
    t0 = time.perf_counter()
    WORK.mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="serving-", dir=WORK))
    cwd = os.getcwd()
    try:
        os.chdir(root)  # nothing either tool drops in the working directory lands in the repo
        r = bench(S, root, args.client) if args.only != "oip" else None
        oip = _oip.bench(_oip.QUICK if args.quick else _oip.FULL, root, args.client) if args.only != "mlflow" else None
    finally:
        os.chdir(cwd)
        shutil.rmtree(root, ignore_errors=True)
        with contextlib.suppress(OSError):
            WORK.rmdir()  # only if no other benchmark is using it
    oip_text = _oip.report(_oip.QUICK if args.quick else _oip.FULL, oip, args.quick) if oip is not None else None
    if r is None:
        _oip.publish(oip_text, out)
        return 0
    text, targets = report(S, r, args.quick, time.perf_counter() - t0)
    kept = oip_text if oip_text is not None else (_oip.current(out) if out is not None else "")
    text = text.rstrip("\n") + "\n\n" + kept if kept else text  # the subsection stays in the rewritten section
    failed = [t for t, ok, _ in targets if not ok]
    publish(text, out, SECTION, failed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
