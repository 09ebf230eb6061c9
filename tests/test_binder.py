"""binder/ builds a working environment, the way repo2docker would as far as this machine allows.

repo2docker copies the repository, installs ``binder/requirements.txt`` from its root with pip, runs
``binder/postBuild`` and starts Jupyter. Here: a copy of the repository's tracked files, a fresh venv
(no system site-packages), the same two steps, then checks that the server extension is enabled and
loads, that the server opens the lifecycle notebook, and that the lifecycle notebook runs top to bottom
in that environment.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


def tracked_copy(dest: Path) -> Path:
    """The repository as repo2docker sees it: its tracked files (a clean clone), nothing built."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float, stderr: bool = True) -> str:
    """The command's output (stdout, then stderr unless ``stderr=False``); a failure shows both."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + (proc.stderr if stderr else "")


@pytest.fixture(scope="module")
def binder_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("binder")
    repo = tracked_copy(root / "repo")
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBMLOPS_", "JUPYTER_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PATH=f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}", VIRTUAL_ENV=str(env_dir), HOME=str(root / "home"),
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    (root / "home").mkdir()
    python = str(env_dir / "bin" / "python")
    run([python, "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"], repo, env, timeout=1500)
    assert (repo / "binder" / "runtime.txt").read_text().strip() == f"python-{sys.version_info.major}.{sys.version_info.minor}"
    run(["bash", "binder/postBuild"], repo, env, timeout=300)
    return repo, env_dir, env


def test_binder_environment_serves_the_dashboard_and_opens_the_lifecycle_notebook(binder_env):
    repo, env_dir, env = binder_env
    listing = run([str(env_dir / "bin" / "jupyter"), "server", "extension", "list"], repo, env, timeout=120)
    lines = [line.strip() for line in listing.splitlines()]
    at = next(i for i, line in enumerate(lines) if line.startswith("nbmlops"))
    assert "enabled" in lines[at], listing
    assert "OK" in " ".join(lines[at + 1:at + 3]) and "failed" not in " ".join(lines[at + 1:at + 3]), listing
    port = free_port()
    token = secrets.token_hex(16)
    log = (repo / "lab.log").open("wb")
    lab = subprocess.Popen([str(env_dir / "bin" / "jupyter"), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                            f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
                            "--ServerApp.allow_root=True"], cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5)
                break
            except OSError:
                assert time.time() < deadline and lab.poll() is None, (repo / "lab.log").read_text()[-3000:]
                time.sleep(0.5)
        opener = urllib.request.build_opener(NoRedirect)
        try:
            opener.open(f"{base}/?token={token}", timeout=30)
            raise AssertionError("/ did not redirect")
        except urllib.error.HTTPError as redirect:
            where = redirect.headers["Location"].split("?")[0]
            assert redirect.code in (301, 302) and where == "/lab/tree/notebooks/00_lifecycle.ipynb", where
        with urllib.request.urlopen(f"{base}/nbmlops/api/models?token={token}", timeout=30) as resp:
            assert resp.status == 200 and "models" in json.loads(resp.read())
    finally:
        lab.terminate()
        lab.wait(30)
        log.close()
    assert (repo / "notebooks" / "00_lifecycle.ipynb").exists()


def test_lifecycle_notebook_runs_in_the_binder_environment(binder_env):
    repo, env_dir, env = binder_env
    env = {**env, "NBMLOPS_STORE": str(repo / "store")}
    run([str(env_dir / "bin" / "jupyter"), "nbconvert", "--to", "html", "--execute",
         "--ExecutePreprocessor.timeout=600", "notebooks/00_lifecycle.ipynb", "--output-dir", str(repo / "out")],
        repo, env, timeout=900)
    html = (repo / "out" / "00_lifecycle.html").read_text()
    assert "lifecycle complete: 2 runs, 2 model versions" in html
    assert "Traceback" not in html and 'class="ansi-red-fg"' not in html
    assert (repo / "notebooks" / "reports" / "drift_lifecycle.html").exists()
