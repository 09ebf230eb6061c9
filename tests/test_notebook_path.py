"""The notebook path of a kernel is found through a real Jupyter server's sessions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from nbmlops.tracking import environment

pytestmark = pytest.mark.process  # a real Jupyter server


@pytest.fixture
def jupyter_server(tmp_path):
    runtime = tmp_path / "runtime"
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_server", "--no-browser", "--ip=127.0.0.1",
                             "--port=0", "--allow-root", f"--ServerApp.root_dir={root}", "--IdentityProvider.token=secret"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not list(runtime.glob("jpserver-*.json")):
            time.sleep(0.1)
        info = json.loads(next(runtime.glob("jpserver-*.json")).read_text())
        yield info, runtime, root
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_notebook_path_comes_from_the_servers_session(jupyter_server, monkeypatch):
    info, runtime, root = jupyter_server
    body = json.dumps({"path": "sub/train.ipynb", "type": "notebook", "name": "", "kernel": {"name": "python3"}})
    req = urllib.request.Request(info["url"] + "api/sessions", data=body.encode(), method="POST",
                                 headers={"Authorization": "token secret", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        kernel = json.loads(resp.read())["kernel"]["id"]
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    monkeypatch.delenv("NBMLOPS_NOTEBOOK", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert environment.notebook_path(kernel) == os.path.join(str(root), "sub/train.ipynb")
    assert environment.notebook_path("0" * 32) is None  # a kernel the server does not know
    monkeypatch.setenv("JPY_SESSION_NAME", "/x/fallback.ipynb")
    assert environment.notebook_path("0" * 32) == "/x/fallback.ipynb"
    monkeypatch.setenv("NBMLOPS_NOTEBOOK", "/x/explicit.ipynb")
    assert environment.notebook_path(kernel) == "/x/explicit.ipynb"
