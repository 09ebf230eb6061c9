"""A real `mlflow server` (sqlite backend, serving artifacts from its own root) on loopback, for tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def mlflow_server(root: Path) -> Iterator[str]:
    """Start the server in ``root`` (its sqlite file ``mlflow.db``, its artifact root ``artifacts/``);
    yield its URI; stop its process group at the end (TERM, then KILL)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    bindir = str(Path(sys.executable).parent)  # `mlflow server` starts uvicorn through PATH
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""), "MLFLOW_DISABLE_TELEMETRY": "true"}
    log = open(root / "server.log", "wb")
    proc = subprocess.Popen([str(Path(bindir) / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
                             "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"],
                            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"mlflow server did not start:\n{(root / 'server.log').read_text()[-3000:]}")
                time.sleep(0.3)
        print(f"\nmlflow server ready in {time.monotonic() - deadline + 120:.1f} s")
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server, its uvicorn and its job consumers
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
