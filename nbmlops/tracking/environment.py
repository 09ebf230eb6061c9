"""Where a run came from: user, host, git commit, Python and package versions, notebook path."""

from __future__ import annotations

import ast
import getpass
import json
import os
import platform
import socket
import sys
import urllib.request
from functools import lru_cache
from pathlib import Path
from typing import Any

_PACKAGES = ("nbmlops", "numpy", "pandas", "scikit-learn", "scipy", "joblib", "matplotlib", "ipython",
             "xgboost", "lightgbm", "torch")


@lru_cache(maxsize=1)
def user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


@lru_cache(maxsize=1)
def host() -> str:
    return socket.gethostname()


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Python, platform and the versions of the packages a model usually depends on."""
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_commit(start: str | Path | None = None) -> str | None:
    """The commit checked out in the git repository holding ``start`` (cwd), read from ``.git``
    without running git; None outside a repository."""
    here = Path(start or os.getcwd()).resolve()
    for d in (here, *here.parents):
        git = d / ".git"
        if git.is_file():  # a worktree or submodule: "gitdir: PATH"
            text = git.read_text().strip()
            if text.startswith("gitdir:"):
                git = (d / text[7:].strip()).resolve()
        if git.is_dir():
            return _resolve_head(git)
    return None


def _resolve_head(git: Path) -> str | None:
    try:
        head = (git / "HEAD").read_text().strip()
    except OSError:
        return None
    if not head.startswith("ref:"):
        return head or None
    ref = head[4:].strip()
    common = git
    if (git / "commondir").exists():
        common = (git / (git / "commondir").read_text().strip()).resolve()
    for base in (git, common):
        p = base / ref
        if p.exists():
            return p.read_text().strip() or None
    packed = common / "packed-refs"
    if packed.exists():
        for line in packed.read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split(" ", 1)[0]
    return None  # a branch with no commits yet


def kernel_id() -> str | None:
    """The Jupyter kernel id, from the ``-f kernel-<id>.json`` connection file the kernel was started with."""
    for arg in sys.argv:
        name = os.path.basename(arg)
        if name.startswith("kernel-") and name.endswith(".json"):
            return name[len("kernel-"):-len(".json")]
    return None


def notebook_path(kernel: str | None = None, timeout: float = 0.5) -> str | None:
    """The notebook this kernel runs: ``$NBMLOPS_NOTEBOOK``, else the Jupyter server's session for
    this kernel, else ``$JPY_SESSION_NAME`` (set by jupyter_server for the kernels it starts)."""
    env = os.environ.get("NBMLOPS_NOTEBOOK")
    if env:
        return env
    kernel = kernel or kernel_id()
    if kernel:
        found = _from_servers(kernel, timeout)
        if found:
            return found
    return os.environ.get("JPY_SESSION_NAME") or None


def _runtime_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("JUPYTER_RUNTIME_DIR"):
        dirs.append(Path(os.environ["JUPYTER_RUNTIME_DIR"]))
    data = os.environ.get("JUPYTER_DATA_DIR") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "jupyter")
    dirs.append(Path(data) / "runtime")
    return dirs


def _from_servers(kernel: str, timeout: float) -> str | None:
    for d in _runtime_dirs():
        for info_file in sorted(d.glob("jpserver-*.json")):
            try:
                info = json.loads(info_file.read_text())
                url = info["url"].rstrip("/") + "/api/sessions"
                req = urllib.request.Request(url, headers={"Authorization": f"token {info.get('token', '')}"})
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    sessions = json.loads(resp.read())
            except Exception:
                continue
            for s in sessions:
                if (s.get("kernel") or {}).get("id") == kernel:
                    rel = s.get("path") or (s.get("notebook") or {}).get("path")
                    root = info.get("root_dir") or info.get("notebook_dir") or ""
                    return os.path.join(root, rel) if rel else None
    return None


def papermill_params(history: list[str] | None) -> dict[str, Any]:
    """The parameters papermill injected, read back from the cell it ran (it starts with
    ``# Parameters``); later injected cells override earlier ones, as in the notebook."""
    params: dict[str, Any] = {}
    for source in history or ():
        if not source.lstrip().startswith("# Parameters"):
            continue
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                try:
                    params[node.targets[0].id] = ast.literal_eval(node.value)
                except ValueError:
                    params[node.targets[0].id] = ast.unparse(node.value)
    return params
