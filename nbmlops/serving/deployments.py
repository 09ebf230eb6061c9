"""Deployments: model servers started from a notebook, recorded in the store, found again later.

``serve()`` starts ``python -m nbmlops.serving`` in its own process group and returns once
the server answers its health check. The deployment document (``db/deployments.json``)
holds its pid, port and model; a new kernel finds running servers there, and records of
servers whose process is gone are marked ``dead``.

Every server gets an admin token (``Deployment.admin_token``) for its admin routes
(``/admin/*``) and ``/feedback``, kept in its deployment document so that a kernel that
reattaches can use them too; a ``token=`` guards prediction besides. A running deployment
is reused only when it was started with the same settings.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._util import fmt_duration, new_id, now_ms
from ..errors import InvalidInput, NotFound, ServingError
from ..registry import get_model_version
from ..registry.uri import check_name
from ..store import SCHEMA, current_store, pid_alive, proc_start
from ..store.records import DeploymentRecord
from ..tracking import environment
from .metrics import ACCURACY_WINDOW
from .promconfig import Target, alert_rules, scrape_config
from .reqlog import deployment_requests
from .settings import ab_weights, check_server, differences, monitor_settings, reuse_settings

if TYPE_CHECKING:
    import pandas as pd

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def log_dir(deployment_id: str) -> Path:
    """The folder of a deployment's request log and ``server.log``."""
    return current_store().deployment_dir(deployment_id)


def update(deployment_id: str, **fields: Any) -> None:
    with current_store().deployments().edit() as docs:
        docs.update(fields, id=deployment_id)


# a deployment inserted by a process that has not started its server yet has no pid for this long at most
_STARTING_GRACE_MS = 120_000


def _alive(doc: DeploymentRecord) -> bool:
    if doc.get("pid") is None:  # being started by another process: alive while it is young
        return doc["status"] == "starting" and now_ms() - doc["started"] < _STARTING_GRACE_MS
    return doc.get("host_name") == environment.host() and pid_alive(doc["pid"], doc.get("pid_start"))


def _rival(docs: list[DeploymentRecord], name: str) -> DeploymentRecord | None:
    """A deployment of this name that runs or is being started, read under the deployments lock."""
    live = [d for d in docs if d["name"] == name and d["status"] in ("starting", "running") and _alive(d)]
    return max(live, key=lambda d: d["started"]) if live else None


def _refresh(doc: DeploymentRecord) -> DeploymentRecord:
    if doc["status"] in ("starting", "running") and not _alive(doc):
        update(doc["id"], status="dead")
        doc = {**doc, "status": "dead"}
    return doc


class Deployment:
    """A running (or stopped) model server, with a small client."""

    def __init__(self, doc: DeploymentRecord, token: str | None = None) -> None:
        self.doc = doc
        self.token = token
        self._conn: http.client.HTTPConnection | None = None

    @property
    def admin_token(self) -> str | None:
        """The token of the admin routes (``/admin/*``, ``/feedback``); it opens every route."""
        return self.doc.get("admin_token")

    name = property(lambda self: self.doc["name"])
    pid = property(lambda self: self.doc["pid"])
    port = property(lambda self: self.doc.get("port"))

    @property
    def url(self) -> str:
        host = self.doc["host"]
        host = "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)
        return f"http://{host}:{self.port}"

    def _reload(self) -> DeploymentRecord:
        doc = current_store().deployments().get("id", self.doc["id"])
        if doc is not None:
            self.doc = _refresh(doc)
        return self.doc

    def request(self, method: str, path: str, body: Any = None, timeout: float = 30) -> tuple[int, Any]:
        """One HTTP call to the server (kept-alive connection); returns (status, parsed JSON or text)."""
        headers = {"Content-Type": "application/json"}
        token = self.admin_token or self.token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        for attempt in (0, 1):
            if self._conn is None:
                host = self.url.split("//", 1)[1].rsplit(":", 1)[0].strip("[]")
                self._conn = http.client.HTTPConnection(host, self.port, timeout=timeout)
            try:
                self._conn.request(method, path, body=data, headers=headers)
                resp = self._conn.getresponse()
                raw = resp.read()
                break
            except (ConnectionError, http.client.HTTPException, OSError):
                self._conn.close()
                self._conn = None
                if attempt:
                    raise ServingError(f"deployment {self.name} does not answer at {self.url}") from None
        ctype = resp.getheader("content-type", "")
        return resp.status, json.loads(raw) if "json" in ctype else raw.decode()

    def predict(self, X: Any) -> Any:
        """Send rows (DataFrame, array, list of rows, a dict or list of dicts) to ``/predict``;
        returns the server's answer (raises ServingError naming the problem on 4xx/5xx)."""
        import numpy as np

        if hasattr(X, "to_dict"):
            body: Any = {"inputs": json.loads(X.to_json(orient="records"))}
        elif isinstance(X, dict) or (isinstance(X, list) and X and isinstance(X[0], dict)):
            body = {"inputs": X}
        else:
            arr = np.asarray(X)
            body = {"features": arr.tolist()} if arr.ndim == 1 else {"instances": arr.tolist()}
        return self._ok(*self.request("POST", "/predict", body))

    def feedback(self, request_id: str, label: Any = None, labels: list[Any] | None = None) -> dict[str, Any]:
        """The true label of an earlier request (``labels``: one per row, ``None`` for rows not known
        yet); feeds ``model_accuracy``. A row takes one label: a second is refused (409)."""
        body: dict[str, Any] = {"request_id": request_id}
        body.update({"labels": labels} if labels is not None else {"label": label})
        return self._ok(*self.request("POST", "/feedback", body))

    def monitor(self) -> dict[str, Any]:
        """The live monitor's latest window of each version (``GET /monitor``; ``serve(monitor=True)``)."""
        return self._ok(*self.request("GET", "/monitor"))

    def status(self) -> dict[str, Any]:
        """Process state plus, when it answers, the server's own model info."""
        doc = self._reload()
        out = {"name": self.name, "status": doc["status"], "pid": self.pid, "url": self.url,
               "model": doc["model_uri"], "version": doc.get("version"),
               "uptime": fmt_duration((now_ms() - doc["started"]) / 1000) if doc["status"] == "running" else None}
        if doc["status"] == "running":
            try:
                code, info = self.request("GET", "/model/info", timeout=5)
                if code == 200:
                    out["requests"] = info["requests"]
                    out["sha256"] = info["sha256"]
            except ServingError:
                out["status"] = "not answering"
        return out

    def _ok(self, status: int, answer: Any) -> Any:
        if status >= 400:
            error = answer.get("error") if isinstance(answer, dict) else answer
            raise ServingError(f"{self.name} answered {status}: {error}")
        return answer

    def routing(self) -> dict[str, Any]:
        """Versions and their weights, the shadow, alias following and the last switches."""
        return self._ok(*self.request("GET", "/admin/routing"))

    def set_weights(self, weights: dict[Any, float]) -> dict[str, float]:
        """Change the A/B split while serving: ``{2: 0.5, 3: 0.5}`` (versions or ``"churn/3"``)."""
        body = {str(k).rsplit("/", 1)[-1]: w for k, w in weights.items()}
        return self._ok(*self.request("POST", "/admin/weights", {"weights": body}))["weights"]

    def requests(self, shadow: bool = False) -> pd.DataFrame:
        """The request log: one row per scored input row (time, request id, version, latency,
        features, prediction), oldest first; ``shadow=True`` gives the shadow version's answers."""
        from ..monitoring.traffic import requests_frame  # monitoring loads pandas: not in the server process

        return requests_frame(self.doc, deployment_requests(self.doc["id"]), shadow)

    def prometheus_config(self, directory: str | os.PathLike[str], scrape_interval: float = 15.0,
                          **thresholds: float) -> Path:
        """Write a ready Prometheus setup for this deployment into ``directory``: ``prometheus.yml``
        (scrapes it, loads the rules), ``nbmlops-NAME.rules.yml`` (alerts: down, error rate, p99
        latency, accuracy drop) and, when prediction needs a token, ``nbmlops-NAME.token`` (mode
        0600; the prediction token, not the admin one). ``thresholds``: ``error_ratio`` (0.05),
        ``p99_seconds`` (0.5), ``accuracy_drop`` (0.05); the live monitor's (``monitor=True``):
        ``drift_share`` (0.5) for ``drift_windows`` (3) windows in a row, ``accuracy_floor`` (0.7) of
        the estimated accuracy, ``estimate_gap`` (0.1) between realized and estimated. Returns the config's path:
        ``prometheus --config.file=PATH``."""
        doc = self._reload()
        if doc["status"] != "running" or not self.port:
            raise ServingError(f"deployment {self.name} is {doc['status']}: Prometheus would scrape a port no "
                               "server listens on; start it first")
        if doc["auth"] and not self.token:
            raise InvalidInput(f"deployment {self.name} needs its prediction token to be scraped: "
                               f"get_deployment({self.name!r}, token=...) (the admin token is not given out)")
        known = ("error_ratio", "p99_seconds", "accuracy_drop", "drift_share", "drift_windows", "accuracy_floor",
                 "estimate_gap")
        unknown = set(thresholds) - set(known)
        if unknown:
            raise InvalidInput(f"unknown threshold(s) {sorted(unknown)}: {', '.join(known)}")
        for key, value in thresholds.items():
            if key == "drift_windows":
                if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
                    raise InvalidInput(f"drift_windows must be a number of windows from 1 to 1000, got {value!r}")
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf") or \
                    (key != "p99_seconds" and value >= 1):
                raise InvalidInput(f"{key} must be a positive number{'' if key == 'p99_seconds' else ' below 1'}, "
                                   f"got {value!r}")
        if isinstance(scrape_interval, bool) or not isinstance(scrape_interval, (int, float)) or \
                not 0.001 <= scrape_interval <= 3600:
            raise InvalidInput(f"scrape_interval is in seconds, from 0.001 to 3600, got {scrape_interval!r}")
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        token_file = f"nbmlops-{self.name}.token" if doc["auth"] else None
        window = doc.get("settings", {}).get("accuracy_window") or ACCURACY_WINDOW
        target = Target(self.name, self.url.split("//", 1)[1], token_file, scrape_interval=float(scrape_interval),
                        accuracy_window=window, **thresholds)
        if token_file:
            _write_private(folder / token_file, str(self.token))
        (folder / target.rule_file).write_text(alert_rules(target))
        config = folder / "prometheus.yml"
        config.write_text(scrape_config(target))
        return config

    def logs(self, tail: int = 200) -> str:
        """The server process's own output (last ``tail`` lines)."""
        path = current_store().server_log(self.doc["id"])
        return "\n".join(path.read_text(errors="replace").splitlines()[-tail:]) if path.exists() else ""

    def stop(self, timeout: float = 10) -> None:
        """Stop the server and its process group; the record is kept, marked stopped."""
        doc = self._reload()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        deadline = time.time() + timeout
        while doc.get("pid") is None and _alive(doc) and time.time() < deadline:
            time.sleep(0.05)  # another process is starting it: its pid is on the way
            doc = self._reload()
        if doc.get("pid") is not None and _alive(doc):
            try:
                os.killpg(doc["pid"], signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.time() + timeout
            child = _children.get(doc["pid"])
            while time.time() < deadline and pid_alive(doc["pid"], doc.get("pid_start")):
                if child is not None and child.poll() is not None:  # our child exited (a zombie until reaped)
                    break
                time.sleep(0.05)
            if (child is None or child.poll() is None) and pid_alive(doc["pid"], doc.get("pid_start")):
                os.killpg(doc["pid"], signal.SIGKILL)
        if doc.get("pid") is not None:
            _reap(doc["pid"])
        update(doc["id"], status="stopped", stopped=now_ms())
        self.doc = {**doc, "status": "stopped"}

    def __repr__(self) -> str:
        d = self.doc
        return (f"<Deployment {self.name} {d['model_uri']} (v{d.get('version')}) {d['status']} {self.url} "
                f"pid {self.pid}>")

    def _repr_html_(self) -> str:
        from ..display.serving import deployment_card  # display: the one-line _repr_html_ delegation

        return deployment_card(self, self.status())


def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, readable by its owner only from the start (mode 0600)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)


_children: dict[int, subprocess.Popen[bytes]] = {}


def _reap(pid: int) -> None:
    proc = _children.pop(pid, None)
    if proc is not None:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def _find(name: str) -> DeploymentRecord | None:
    docs: list[DeploymentRecord] = [
        d for d in current_store().deployments().all() if d["name"] == name]
    return _refresh(max(docs, key=lambda d: d["started"])) if docs else None


def _wait_started(doc: DeploymentRecord | None, timeout: float) -> DeploymentRecord | None:
    """A deployment another process is starting, once it runs (or failed); others as they are."""
    deadline = time.time() + timeout
    while doc is not None and doc["status"] == "starting" and time.time() < deadline:
        time.sleep(0.05)
        doc = _find(doc["name"])
    return doc


def get_deployment(name: str, token: str | None = None) -> Deployment:
    """Reattach to a deployment by name (the newest with that name)."""
    doc = _find(name)
    if doc is None:
        raise NotFound(f"no deployment named {name!r}")
    return Deployment(doc, token)


def list_deployments(all: bool = False) -> pd.DataFrame:
    """Deployments in the store, newest first; ``all=False`` shows running ones only."""
    import pandas as pd

    store = current_store(create=False)
    docs = [_refresh(d) for d in store.deployments().all()] if store.exists() else []
    docs = sorted((d for d in docs if all or d["status"] in ("starting", "running")), key=lambda d: -d["started"])
    rows = [{"name": d["name"], "model": d["model_uri"], "version": d.get("version"), "status": d["status"],
             "url": Deployment(d).url if d.get("port") else None, "pid": d["pid"],
             "started": pd.Timestamp(d["started"], unit="ms")} for d in docs]
    return pd.DataFrame(rows, columns=["name", "model", "version", "status", "url", "pid", "started"])


def serve(model_uri: str, port: int = 0, host: str = "127.0.0.1", token: str | None = None,
          log_requests: bool = True, name: str | None = None, detach: bool = False, batching: bool = True,
          max_batch_size: int = 64, max_latency_ms: float = 2.0, max_queue: int = 1024,
          ab: dict[Any, float] | None = None, shadow: int | str | None = None, timeout: float = 60,
          restart: bool = False, feedback_mb: int = 32, accuracy_window: int = ACCURACY_WINDOW,
          monitor: bool = False, monitor_window: int | str | None = None,
          monitor_every: int | None = None, monitor_cpu: float | None = None,
          monitor_stattest: str | None = None, monitor_record_every: float | None = None,
          on_drift: str | None = None) -> Deployment:
    """Serve a registered model from a background process; returns once it answers ``/health``.
    ``NAME@ALIAS`` follows the alias as it moves; ``ab={"churn/2": 0.9, "churn/3": 0.1}`` splits
    traffic (sticky by ``X-Request-Key``); ``shadow=3`` scores a copy of each request with version 3.
    ``token`` guards prediction; the admin routes always need ``Deployment.admin_token``, made here.
    A deployment of that name already running is reused if started with the same settings, else
    refused; ``restart=True`` stops it and starts this one. ``/feedback`` can label requests whose
    predictions fit in ``feedback_mb`` MiB (packed: about 1 byte a row for classifiers);
    ``model_accuracy_windowed`` is the accuracy over the last ``accuracy_window`` labels.
    ``Deployment.prometheus_config(DIR)`` writes a Prometheus setup that scrapes it.
    ``monitor=True`` judges the served traffic in the server, off the request path: every
    ``monitor_every`` rows (the window's) the last ``monitor_window`` rows (1000, or a duration: ``"1h"``,
    then every 1000 rows) of a version against its monitoring reference (drift, data quality, estimated
    performance), as gauges, ``GET /monitor`` and windows in ``drift_history``; judging takes at most
    ``monitor_cpu`` (0.02) of the server's own CPU and of a core, windows further apart when traffic
    outpaces it. Each column gets
    ``drift_report``'s default test for the window's size (K-S or chi-square up to 1,000 rows, the
    distances above), or ``monitor_stattest`` (``"ks"``, ``"psi"``, ``"wasserstein"``, ...) where it applies.
    ``on_drift="retrain:PIPELINE"`` hands a recorded drifted window (its labelled rows) to
    ``retrain_on_drift`` in a process of its own, which registers a candidate;
    ``"retrain+promote:PIPELINE"`` also moves the alias when its rule says so. A version's windows go
    to ``drift_history`` every ``monitor_record_every`` seconds (60) and whenever the verdict changes;
    0 keeps every window.

    >>> dep = nbmlops.serve("churn@production")
    >>> dep.predict(X_test.head(3))
    """
    check_server(port, host, token, feedback_mb, accuracy_window)
    version = get_model_version(model_uri)
    watch = monitor_settings(monitor, monitor_window, monitor_every, monitor_cpu, monitor_stattest,
                             monitor_record_every, on_drift)
    weights = ab_weights(version.name, ab) if ab is not None else None
    if watch is not None:
        for v in weights or [version.version]:
            if not get_model_version(f"{version.name}/{v}").doc.get("reference"):
                raise InvalidInput(f"{version.name}/{v} has no monitoring reference to compare the traffic with: "
                                   "register it with reference=(X_train, y_train), or serve without monitor")
    shadow_version = None
    if shadow is not None:
        shadow_version = get_model_version(f"{version.name}/{shadow}" if str(shadow).isdigit() else str(shadow)).version
    name = check_name(name or version.name)
    settings = reuse_settings(model_uri, token, weights, shadow_version, host, port, batching, max_batch_size,
                         max_latency_ms, max_queue, log_requests, accuracy_window, watch)
    existing = _wait_started(_find(name), timeout)
    if existing is not None and existing["status"] in ("starting", "running"):
        running = Deployment(existing, token)
        if restart:
            running.stop()
            print(f"stopped deployment {name} (pid {existing['pid']}) to restart it")
        elif existing["model_uri"] != model_uri:
            raise InvalidInput(f"deployment {name!r} already serves {existing['model_uri']} (pid {existing['pid']}): "
                               f"stop it (%serve --stop {name}), restart it (restart=True, %serve --restart), "
                               "or give this one another name")
        else:
            differ = differences(existing, settings)
            if differ:
                raise InvalidInput(f"deployment {name!r} ({existing['model_uri']}, pid {existing['pid']}, "
                                   f"{running.url}) runs with other settings ({', '.join(differ)}): stop it "
                                   f"(%serve --stop {name}) or restart it (restart=True, %serve --restart)")
            print(f"reusing deployment {name} on port {existing.get('port')}, pid {existing['pid']}")
            return running
    if host not in LOOPBACK:
        print(f"note: serving on {host}: reachable from other machines" + ("" if token else ", with no token"))
    store = current_store()
    doc: DeploymentRecord = {
        "schema": SCHEMA, "id": new_id(), "name": name, "model_uri": model_uri, "model": version.name,
        "version": version.version, "features": version.signature.get("features"), "host": host, "port": None,
        "pid": None, "pid_start": None, "host_name": environment.host(), "started": now_ms(), "status": "starting",
        "detach": detach, "auth": token is not None, "batching": batching, "log_requests": log_requests,
        "settings": settings, "admin_token": secrets.token_urlsafe(24)}
    cmd = [sys.executable, "-m", "nbmlops.serving", "--store", str(store.root), "--model", model_uri,
           "--deployment", doc["id"], "--host", host, "--port", str(port),
           "--parent", "0" if detach else str(os.getpid()),
           "--max-batch-size", str(max_batch_size), "--max-latency-ms", str(max_latency_ms),
           "--max-queue", str(max_queue), "--feedback-mb", str(feedback_mb),
           "--accuracy-window", str(accuracy_window)]
    if weights:
        cmd += ["--ab", json.dumps({str(v): w for v, w in weights.items()})]
    if shadow_version is not None:
        cmd += ["--shadow", str(shadow_version)]
    cmd += [] if batching else ["--no-batching"]
    cmd += [] if log_requests else ["--no-log"]
    if watch is not None:
        cmd += ["--monitor", "--monitor-window", str(watch["window"]), "--monitor-every", str(watch["every"]),
                "--monitor-cpu", str(watch["cpu"])]
        cmd += ["--monitor-stattest", watch["stattest"]] if watch.get("stattest") else []
        cmd += ["--on-drift", watch["on_drift"]] if watch.get("on_drift") else []
        cmd += ["--monitor-record-every", str(watch["record_every"])] if "record_every" in watch else []
    env = {**os.environ, "NBMLOPS_SERVE_TOKEN": token or "", "NBMLOPS_SERVE_ADMIN_TOKEN": doc["admin_token"]}
    with store.deployments().edit() as docs:  # the check that no other process started this name is under the same lock
        rival = _rival(docs.all(), name)
        if rival is not None:
            raise InvalidInput(f"deployment {name!r} ({rival['model_uri']}) was started meanwhile by another process "
                               f"(pid {rival['pid'] or 'starting'}): reuse it (get_deployment({name!r})) or stop it "
                               f"(%serve --stop {name})")
        docs.insert(doc)
    with store.open_server_log(doc["id"]) as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    _children[proc.pid] = proc
    update(doc["id"], pid=proc.pid, pid_start=proc_start(proc.pid))
    dep = Deployment({**doc, "pid": proc.pid, "pid_start": proc_start(proc.pid)}, token)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            update(doc["id"], status="failed")
            raise ServingError(f"the server for {model_uri} exited with code {proc.returncode}:\n{dep.logs(20)}")
        current = store.deployments().get("id", doc["id"]) or {}
        if current.get("status") == "running" and current.get("port"):
            dep.doc = current  # type: ignore[assignment]
            try:
                if dep.request("GET", "/health", timeout=2)[0] == 200:
                    return dep
            except ServingError:
                pass
        time.sleep(0.05)
    dep.stop()
    raise ServingError(f"the server for {model_uri} did not answer within {timeout:.0f} s:\n{dep.logs(20)}")
