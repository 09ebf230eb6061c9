"""Reference model servers on loopback, for comparing nbmlops' protocols with what their own servers answer:
KServe's ``kserve.ModelServer`` (V1 and V2) and MLflow's ``mlflow models serve`` (the scoring protocol).

Run as a script (``python protocol_support.py MODEL.joblib NAME PORT``) this file is the KServe server:
a ``kserve.Model`` that predicts as KServe's sklearnserver does (``get_predict_input`` → ``predict`` →
``get_predict_response``), so it speaks V1 and V2, JSON and binary, as a KServe deployment would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env() -> dict[str, str]:
    """The venv's bin first on PATH (mlflow starts uvicorn through it), no telemetry, no proxies."""
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""), "MLFLOW_DISABLE_TELEMETRY": "true",
           "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    return env


class _Server:
    """A server process in its own process group, logging to ``log_path``."""

    def __init__(self, args: list[str], health: str, log_path: Path, what: str) -> None:
        self.port, self.health, self.log_path, self.what = free_port(), health, log_path, what
        self.url = f"http://127.0.0.1:{self.port}"
        self.started = time.monotonic()
        with open(log_path, "wb") as log:  # the child writes through its own copy of the descriptor
            self.proc = subprocess.Popen([a.replace("{port}", str(self.port)) for a in args], env=_env(),
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                         cwd=log_path.parent)

    def wait(self, timeout: float = 120) -> None:
        """Until ``health`` answers 200; fails with the end of the log if the process dies or takes too long."""
        while True:
            try:
                with urllib.request.urlopen(self.url + self.health, timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:  # refused while starting, or an HTTPError (503 until the model is loaded)
                pass
            if self.proc.poll() is not None or time.monotonic() - self.started > timeout:
                raise AssertionError(f"{self.what} did not start:\n"
                                     f"{self.log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        print(f"\n{self.what} ready in {time.monotonic() - self.started:.1f} s")

    def stop(self) -> None:
        """TERM the process group, KILL it after 5 s."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@contextlib.contextmanager
def reference_servers(model, name: str, X, folder: Path) -> Iterator[Callable[[], tuple[str, str]]]:
    """KServe's ModelServer and ``mlflow models serve --env-manager local``, both serving ``model`` (a fitted
    scikit-learn estimator), started side by side; yields ``ready()``, which waits for both and gives their
    URLs (kserve, mlflow), so the caller can start other things while they boot; stops both at the end.

    KServe gets the estimator as sklearnserver does (a joblib file). MLflow gets it saved by mlflow.sklearn
    with the signature MLflow infers from ``X`` and its predictions, as ``log_model(..., input_example=X)``
    records it: named columns of doubles, so MLflow checks requests against the model's columns. Its pip
    requirements are given: inferring them loads the model in another process (40 s on a busy machine)."""
    import joblib  # sklearn's own dependency; only the reference servers need it
    import mlflow.sklearn  # heavy; only the MLflow reference server needs it
    from mlflow.models import infer_signature  # same

    joblib.dump(model, folder / "model.joblib")
    mlflow.sklearn.save_model(model, folder / "mlflow-model", signature=infer_signature(X, model.predict(X)),
                             pip_requirements=["scikit-learn"])
    servers: list[_Server] = []

    def ready() -> tuple[str, str]:
        for server in servers:
            server.wait()
        return servers[0].url, servers[1].url

    try:
        servers.append(_Server([sys.executable, __file__, str(folder / "model.joblib"), name, "{port}"],
                               f"/v2/models/{name}/ready", folder / "kserve.log", "KServe ModelServer"))
        servers.append(_Server([str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m",
                                str(folder / "mlflow-model"), "--env-manager", "local", "--host", "127.0.0.1",
                                "--port", "{port}", "--workers", "1"], "/ping", folder / "mlflow.log",
                               "mlflow models serve"))
        yield ready
    finally:
        for server in servers:
            server.stop()


def _serve_kserve(path: str, name: str, port: int) -> None:
    """The KServe reference server (this file run as a script): sklearnserver's predict, V1 and V2 over HTTP."""
    import joblib
    import kserve
    from kserve.utils.utils import get_predict_input, get_predict_response

    class SKLearnModel(kserve.Model):
        def __init__(self) -> None:
            super().__init__(name)
            self._model = joblib.load(path)
            self.ready = True

        def predict(self, payload, headers=None):
            return get_predict_response(payload, self._model.predict(get_predict_input(payload)), self.name)

    kserve.ModelServer(http_port=port, enable_grpc=False, workers=1, enable_latency_logging=False).start(
        [SKLearnModel()])


if __name__ == "__main__":
    _serve_kserve(sys.argv[1], sys.argv[2], int(sys.argv[3]))
