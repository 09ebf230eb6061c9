"""Shared fixtures: a fresh store per test, and a real IPython shell with nbmlops loaded."""

from __future__ import annotations

import os

import pytest

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


def get_ipython_shell():
    from IPython.core.interactiveshell import InteractiveShell

    return InteractiveShell.instance()
