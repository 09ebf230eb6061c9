"""Helpers for the browser tests: a real JupyterLab server in a subprocess, Chromium through
Playwright, screenshots as test artifacts, and JupyterLab driven through ``window.jupyterapp``."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "build" / "test-artifacts" / "browser"

# JupyterLab settings for a quiet, deterministic UI: every cell in the DOM (no virtual scrolling),
# no news or update toasts over the notebook.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_notebook(src: Path, dest_dir: Path) -> Path:
    """Copy a notebook without its outputs and execution counts, so "every cell has a count" means it ran here."""
    nb = nbformat.read(src, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    dest = dest_dir / src.name
    nbformat.write(nb, dest)
    companion = src.with_suffix("")  # a notebook's folder of step notebooks / data, if any
    if companion.is_dir():
        import shutil

        shutil.copytree(companion, dest_dir / companion.name, dirs_exist_ok=True)
    return dest


class JupyterLab:
    """``python -m jupyterlab`` on a free loopback port with a random token, its store at ``store``."""

    def __init__(self, workdir: Path, store: Path):
        self.workdir = workdir
        self.root = workdir / "root"
        self.store = store
        self.log = workdir / "jupyterlab.log"
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def url(self, path: str, token: bool = True) -> str:
        path = path if path.startswith("/") else "/" + path
        if not token:
            return self.base + path
        return f"{self.base}{path}{'&' if '?' in path else '?'}token={self.token}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("MPLBACKEND", None)  # the kernel picks the inline backend, as for a user
        env["NBMLOPS_STORE"] = str(self.store)
        env.pop("NBMLOPS_NOTEBOOK", None)
        env["JUPYTER_CONFIG_DIR"] = str(self.workdir / "config")  # no user config; sys.prefix config stays
        env["JUPYTER_RUNTIME_DIR"] = str(self.workdir / "runtime")
        env["JUPYTERLAB_SETTINGS_DIR"] = str(self.workdir / "lab-settings")
        env["JUPYTERLAB_WORKSPACES_DIR"] = str(self.workdir / "lab-workspaces")
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start(self, timeout: float = 120) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for name, value in LAB_SETTINGS.items():
            plugin, file = name.rsplit("/", 1)
            folder = self.workdir / "lab-settings" / plugin
            folder.mkdir(parents=True, exist_ok=True)
            (folder / file).write_text(json.dumps(value))
        cmd = [
            sys.executable, "-m", "jupyterlab",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            "--no-browser",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        if os.geteuid() == 0:  # CI containers run as root; Jupyter refuses that unless told
            cmd.append("--ServerApp.allow_root=True")
        with open(self.log, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(cmd, cwd=self.root, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}\n{self.log_tail()}")
            try:
                status = self.api("/api/status", timeout=5)
                if "started" in status:
                    return
            except (OSError, urllib.error.URLError, ValueError):
                pass
            time.sleep(0.25)
        raise TimeoutError(f"JupyterLab did not answer /api/status within {timeout} s\n{self.log_tail()}")

    def api(self, path: str, method: str = "GET", timeout: float = 10):
        req = urllib.request.Request(self.url(path), method=method)
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Shut every kernel down through the REST API (a kernel's model servers exit with it)."""
        try:
            kernels = self.api("/api/kernels")
        except (OSError, urllib.error.URLError, ValueError):
            return
        for kernel in kernels:
            try:
                self.api(f"/api/kernels/{kernel['id']}", method="DELETE", timeout=30)
            except (OSError, urllib.error.URLError, ValueError):
                pass

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.shutdown_kernels()
            self.proc.send_signal(signal.SIGTERM)  # jupyter_server also shuts down kernels left over
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no JupyterLab log)"
        text = re.sub(r"token=[0-9a-f]+", "token=…", text)
        return "--- JupyterLab log (tail) ---\n" + "\n".join(text.splitlines()[-lines:])


class Shots:
    """Screenshots of one test's page: ``build/test-artifacts/browser/<test>-<step>.png``."""

    def __init__(self, page, test_name: str):
        self.page = page
        self.name = re.sub(r"[^\w.-]+", "_", test_name).strip("_")
        self.taken: list[Path] = []
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for old in ARTIFACTS.glob(f"{self.name}-*.png"):  # no stale failure shots from an earlier session
            old.unlink()

    def __call__(self, step: str, full_page: bool = True) -> Path | None:
        path = ARTIFACTS / f"{self.name}-{step}.png"
        from playwright.sync_api import Error

        try:
            self.page.screenshot(path=str(path), full_page=full_page, timeout=30_000)
        except Error:  # a screenshot must never hide the test's own failure (page closed, timeout)
            return None
        self.taken.append(path)
        return path


# --- JupyterLab driven through window.jupyterapp (LabApp.expose_app_in_browser) -------------------

JS_NOTEBOOK_READY = """(name) => {
    const app = window.jupyterapp;
    if (!app || !app.shell) return false;
    const w = app.shell.currentWidget;
    if (!w || !w.context || !w.context.path.endsWith(name) || !w.content) return false;
    const s = w.sessionContext;
    return !!(s && s.isReady && s.session && s.session.kernel && s.session.kernel.status === 'idle'
              && w.content.widgets.length > 0);
}"""

# progress of a run-all: how many code cells ran, whether the kernel is idle, which outputs are errors
JS_PROGRESS = """() => {
    const w = window.jupyterapp.shell.currentWidget;
    const cells = w.content.widgets.filter(c => c.model.type === 'code');
    const errors = [];
    for (const c of cells) {
        for (let i = 0; i < c.model.outputs.length; i++) {
            const o = c.model.outputs.get(i).toJSON();
            if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
        }
    }
    const k = w.sessionContext.session && w.sessionContext.session.kernel;
    return {
        total: cells.length,
        ran: cells.filter(c => c.model.executionCount !== null && c.model.executionCount !== undefined).length,
        status: k ? k.status : 'none',
        errors: errors,
    };
}"""


JS_RUN_ALL = """(name) => {
    const app = window.jupyterapp;
    const w = app.shell.currentWidget;
    if (!w.context.path.endsWith(name)) throw new Error('the current tab is ' + w.context.path + ', not ' + name);
    app.shell.activateById(w.id);  // notebook commands act on the notebook that has focus
    return app.commands.execute('notebook:run-all-cells');
}"""


def run_all_cells(page, name: str, timeout: float = 240) -> dict:
    """Run every cell of the open notebook ``name`` and wait until each code cell has an execution
    count and the kernel is idle; fails fast (with the error) if a cell raises."""
    page.wait_for_function(JS_NOTEBOOK_READY, arg=name, timeout=120_000, polling=500)
    page.evaluate(JS_RUN_ALL, name)
    started = time.monotonic()
    deadline = started + timeout
    progress: dict = {}
    while time.monotonic() < deadline:
        progress = page.evaluate(JS_PROGRESS)
        if progress["errors"]:
            return progress
        if progress["ran"] == progress["total"] and progress["status"] == "idle":
            return progress
        if progress["ran"] == 0 and progress["status"] == "idle" and time.monotonic() - started > 30:
            raise AssertionError(f"{name}: notebook:run-all-cells started nothing in 30 s: {progress}")
        page.wait_for_timeout(500)  # short polling
    raise TimeoutError(f"{name}: cells still running after {timeout} s: {progress}")
