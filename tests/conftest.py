"""Shared fixtures: a fresh store per test, and a real IPython shell with nbmlops loaded."""

from __future__ import annotations

import os

import pytest

import nbmlops

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh, empty store for this test (also seen by subprocesses through NBMLOPS_STORE)."""
    import nbmlops
    from nbmlops.tracking import runs

    path = tmp_path / ".nbmlops"
    monkeypatch.setenv("NBMLOPS_STORE", str(path))
    monkeypatch.chdir(tmp_path)
    nbmlops.set_store(path)
    yield nbmlops.store.current_store(create=False)
    for run in list(runs._active):
        run.end("KILLED")
        runs._pop(run)
    nbmlops.set_store(None)


@pytest.fixture
def ip(store):
    """A real IPython InteractiveShell with ``%load_ext nbmlops`` done."""
    from IPython.testing.globalipapp import start_ipython

    shell = start_ipython() or get_ipython_shell()
    if "track" not in shell.magics_manager.magics["cell"]:
        shell.run_line_magic("load_ext", "nbmlops")
    shell.user_ns.pop("run", None)
    yield shell


@pytest.fixture
def calls(tmp_path, monkeypatch):
    """Step executions of ``_pipeline_steps`` counted in this test's own file; yields the reader, ``calls()``."""
    import _pipeline_steps as steps

    path = tmp_path / "calls.txt"
    monkeypatch.setenv("NBMLOPS_TEST_CALLS", str(path))
    monkeypatch.setattr(steps, "CALLS", path)
    yield steps.calls


def get_ipython_shell():
    from IPython.core.interactiveshell import InteractiveShell

    return InteractiveShell.instance()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A logistic regression on named features, registered and served once for the module."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("serving") / ".nbmlops"
    nbmlops.set_store(root)
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=5000).fit(X, y)
    nbmlops.register_model(model, "cancer", alias="production", reference=(X, y))
    dep = nbmlops.serve("cancer@production")
    yield dep, model, X, y
    dep.stop()
    nbmlops.set_store(None)


def _servers() -> dict[int, str]:
    """Model server processes (python -m nbmlops.serving) of this machine: pid -> command line."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "nbmlops.serving" in cmd and "--deployment" in cmd:
                found[int(entry)] = cmd
    return found


@pytest.fixture(scope="session", autouse=True)
def no_orphan_servers(tmp_path_factory):
    """The suite leaves no model server running: any left over is killed and fails the run.
    Only servers of this session's stores count (other test sessions may run beside it)."""
    import signal
    import time

    base = str(tmp_path_factory.getbasetemp())
    yield
    time.sleep(1)  # servers of a just-finished test may still be shutting down
    left = {pid: cmd for pid, cmd in _servers().items() if base in cmd}
    for pid in left:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    assert not left, f"model servers left running after the tests: {left}"
