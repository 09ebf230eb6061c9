"""First contact: what a new user does in the first hour, with nothing prepared for them.

- A fresh clone, a PATH with only the OS's ``python3`` (no ``python``, no venv active): the README's main
  command creates the project venv, installs, runs every notebook in one store and prints the summary.
- ``jupyter server`` started at the repository root, no store option: a kernel of a notebook in
  ``notebooks/`` writes the store the dashboard shows; other stores below the root are listed and can be shown.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from test_dashboard_api import Server

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9]*.ipynb"))


def os_python3() -> str:
    """The real interpreter behind ``python3`` (here often a pyenv shim), not this test's venv."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    out = subprocess.run([base, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True,
                         check=True, env={k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"})
    return os.path.realpath(out.stdout.strip())


def bare_env(tmp_path: Path) -> dict[str, str]:
    """A new user's shell: PATH = a folder with only ``python3``, then /usr/bin:/bin (git, bash); no venv."""
    bindir = tmp_path / "os-bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(os_python3())
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NBMLOPS_", "JUPYTER", "PYTHON", "VIRTUAL_ENV", "CONDA", "MPLBACKEND", "JPY_"))}
    env["PATH"] = f"{bindir}:/usr/bin:/bin"
    # pip's own cache (~/.cache/pip) and the machine's pip settings stay: a second run does not download again
    return env


@pytest.mark.timeout(7200)
def test_readme_main_command_on_a_fresh_clone_with_only_the_os_python3(tmp_path):
    readme = (REPO / "README.md").read_text()
    assert "bash scripts/main" in readme and "bash scripts/test" in readme
    clone = tmp_path / "nbmlops"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=300)
    env = bare_env(tmp_path)
    assert shutil.which("python", path=env["PATH"]) is None
    assert shutil.which("python3", path=env["PATH"]) == str(tmp_path / "os-bin" / "python3")
    start = time.perf_counter()
    proc = subprocess.run(["bash", "scripts/main"], cwd=clone, env=env, capture_output=True, text=True, timeout=3600)
    took = time.perf_counter() - start
    out = proc.stdout + proc.stderr
    print(f"bash scripts/main on a fresh clone: {took:.0f} s (exit {proc.returncode})\n{proc.stdout}")
    assert proc.returncode == 0, out[-6000:]
    assert (clone / ".venv" / "bin" / "python").exists()
    for nb in NOTEBOOKS:
        assert f"ok      {nb.stem}" in out, out[-6000:]
        assert (clone / "build" / f"{nb.stem}.html").stat().st_size > 10_000
    assert f"notebooks run:    {len(NOTEBOOKS)} (" in out and "failed:           0 (none)" in out
    assert f"store:            {clone / 'build' / '.nbmlops'}" in out
    dashboard = next(line for line in out.splitlines() if "dashboard:" in line)
    assert f"{clone / '.venv' / 'bin' / 'jupyter'} lab --notebook-dir {clone / 'build'}" in dashboard
    assert ("--allow-root" in dashboard) == (os.getuid() == 0)
    assert (clone / "build" / "notebooks" / "reports" / "drift_lifecycle.html").exists()
    assert not list((clone / "build" / "notebooks").glob("**/.nbmlops"))  # one store, at build/.nbmlops
    # run again: the venv is reused, nothing is installed, the notebooks run again
    start = time.perf_counter()
    again = subprocess.run(["bash", "scripts/main"], cwd=clone, env=env, capture_output=True, text=True,
                           timeout=3600)
    print(f"again, venv reused: {time.perf_counter() - start:.0f} s")
    assert again.returncode == 0 and "installing" not in again.stdout and "creating" not in again.stdout, \
        (again.stdout + again.stderr)[-4000:]


# ------------------------------------------------------------------ a server at the repository root
def kernel_run(server: Server, kernel_id: str, code: str, timeout: float = 120) -> str:
    """Execute ``code`` in the server's kernel over its websocket, as JupyterLab does; its text output."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    async def go() -> str:
        url = server.url.replace("http://", "ws://") + f"api/kernels/{kernel_id}/channels"
        ws = await websocket_connect(HTTPRequest(url, headers=server.auth()))
        msg_id, out, done = uuid.uuid4().hex, [], {"reply": None, "idle": False}
        ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        deadline = time.time() + timeout
        while not (done["reply"] and done["idle"]):
            raw = await asyncio.wait_for(ws.read_message(), max(1.0, deadline - time.time()))
            assert raw is not None, "the kernel websocket closed"
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind == "error":
                out.append("\n".join(content["traceback"]))
            elif kind in ("execute_result", "display_data"):
                out.append(content["data"].get("text/plain", ""))
            elif kind == "execute_reply":
                done["reply"] = content
            elif kind == "status" and content["execution_state"] == "idle":
                done["idle"] = True
        ws.close()
        assert done["reply"]["status"] == "ok", "".join(out)
        return "".join(out)

    return asyncio.run(go())


@pytest.fixture
def root_server(tmp_path):
    """The layout of the repository (a root with notebooks/), a server at the root, no store option."""
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    shutil.copy(NOTEBOOKS[0], root / "notebooks" / "00_lifecycle.ipynb")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBMLOPS_", "JUPYTER", "JPY_"))}
    server = Server(root, env, base_url="/")
    yield root, server
    server.stop()


def test_server_at_the_root_hands_its_store_to_a_kernel_of_a_notebook_in_notebooks(root_server):
    root, server = root_server
    before = server.get("nbmlops/api/store").json()
    assert before["path"] == str(root / ".nbmlops") and before["exists"] is False
    assert "NBMLOPS_STORE=" in before["hint"] and "--NbmlopsDashboard.store=PATH" in before["hint"]
    session = requests.post(f"{server.url}api/sessions", headers=server.auth(), timeout=60, json={
        "path": "notebooks/00_lifecycle.ipynb", "type": "notebook", "name": "00_lifecycle.ipynb",
        "kernel": {"name": "python3"}})
    assert session.status_code == 201, session.text
    kernel = session.json()["kernel"]["id"]
    try:
        cwd = kernel_run(server, kernel, "import os; print(os.getcwd())").strip()
        assert cwd == str(root / "notebooks")  # the kernel runs in the notebook's folder, as in JupyterLab
        kernel_run(server, kernel, "%load_ext nbmlops")
        kernel_run(server, kernel, "%%track -e first-contact -n cell -m score\nscore = 0.75")
    finally:
        requests.delete(f"{server.url}api/sessions/{session.json()['id']}", headers=server.auth(), timeout=60)
    runs = server.get("nbmlops/api/experiments/first-contact/runs").json()["runs"]
    assert [(r["name"], r["metrics"]) for r in runs] == [("cell", {"score": 0.75})]
    assert not (root / "notebooks" / ".nbmlops").exists()
    after = server.get("nbmlops/api/store").json()
    assert after["exists"] is True and after["hint"] is None and after["path"] == str(root / ".nbmlops")


def test_dashboard_lists_the_stores_below_the_root_and_shows_the_one_picked(root_server):
    root, server = root_server
    other = root / "notebooks" / "old" / ".nbmlops"
    code = "import nbmlops\nwith nbmlops.start_run(experiment='elsewhere'): nbmlops.log_metric('m', 1)"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "NBMLOPS_STORE": str(other)})
    listed = server.get("nbmlops/api/store").json()
    assert [(s["relative"], s["kernels"], s["exists"]) for s in listed["stores"]] == [
        (".nbmlops", True, False), ("notebooks/old/.nbmlops", False, True)]
    assert "pick a store found below" in listed["hint"] and "(1 in the menu)" in listed["hint"]
    bad = server.post("nbmlops/api/store", {"path": "/etc"})
    assert bad.status_code == 400 and "not a store the dashboard knows" in bad.json()["error"]
    shown = server.post("nbmlops/api/store", {"path": "notebooks/old/.nbmlops"})
    assert shown.status_code == 200 and shown.json()["path"] == str(other) and shown.json()["kernels"] == str(
        root / ".nbmlops")
    assert [e["name"] for e in server.get("nbmlops/api/experiments").json()["experiments"]] == ["elsewhere"]
    back = server.post("nbmlops/api/store", {"path": str(root / ".nbmlops")}).json()
    assert back["path"] == str(root / ".nbmlops")
    assert server.get("nbmlops/api/experiments").json()["experiments"] == []


# ------------------------------------------------------------------ %register -o VAR
def test_register_keeps_the_new_version_in_the_variable_named_by_o(ip):
    from IPython.core.error import UsageError
    from sklearn.linear_model import LogisticRegression

    ip.user_ns["fitted"] = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    ip.run_line_magic("register", "fitted first-contact-o -o v1")
    ip.run_line_magic("register", "fitted first-contact-o --alias production -o v2")
    assert (ip.user_ns["v1"].version, ip.user_ns["v2"].version) == (1, 2)
    assert ip.user_ns["v2"].version == __import__("nbmlops").get_model_version("first-contact-o@production").version
    for bad in ("fitted first-contact-o -o 2x", "first-contact-o --alias a --version 1 -o v", "--list -o v"):
        with pytest.raises(UsageError, match="-o takes a variable name"):
            ip.run_line_magic("register", bad)
    assert len(__import__("nbmlops").list_versions("first-contact-o")) == 2  # nothing registered by the refusals


# ------------------------------------------------------------------ the same in JupyterLab, in Chromium
@pytest.mark.browser
@pytest.mark.timeout(600)
def test_jupyterlab_at_the_root_and_its_dashboard_share_the_store_of_a_notebook_in_notebooks(tmp_path):
    import nbformat
    from browser_support import CHROMIUM, CHROMIUM_ARGS, JupyterLab, run_all_cells
    from playwright.sync_api import expect, sync_playwright

    class LabAtTheRoot(JupyterLab):  # as a user types `jupyter lab` at the repository root: no store named
        def env(self) -> dict[str, str]:
            env = super().env()
            env.pop("NBMLOPS_STORE")
            return env

    lab = LabAtTheRoot(tmp_path, store=tmp_path / "unused")
    (lab.root / "notebooks").mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%load_ext nbmlops"),
                nbformat.v4.new_code_cell("%%track -e first-contact-lab -n in-lab -m score\nscore = 0.5")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, lab.root / "notebooks" / "first.ipynb")
    lab.start()
    try:
        with sync_playwright() as p:
            chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = chromium.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(lab.url("/lab/tree/notebooks/first.ipynb?reset"), wait_until="domcontentloaded",
                      timeout=120_000)
            expect(page.locator(".jp-Notebook .jp-Cell").first).to_be_visible(timeout=120_000)
            progress = run_all_cells(page, "notebooks/first.ipynb", timeout=180)
            assert not progress["errors"], progress
            page.goto(lab.url("/nbmlops/"), wait_until="domcontentloaded", timeout=120_000)
            expect(page.get_by_test_id("store-path")).to_have_text(str(lab.root / ".nbmlops"), timeout=60_000)
            expect(page.get_by_test_id("store-hint")).to_be_hidden()
            expect(page.get_by_test_id("experiment-select")).to_contain_text("first-contact-lab", timeout=60_000)
            expect(page.locator("body")).to_contain_text("in-lab", timeout=60_000)
            chromium.close()
        runs = lab.api("/nbmlops/api/experiments/first-contact-lab/runs")["runs"]
        assert [r["name"] for r in runs] == ["in-lab"]
        assert not (lab.root / "notebooks" / ".nbmlops").exists()
    finally:
        lab.shutdown_kernels()
        lab.stop()
