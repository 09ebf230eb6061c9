"""Shared fixtures: a fresh store per test, and a real IPython shell with nbmlops loaded; the ``process``
marker for tests that start processes (the quick lane, ``bash scripts/test --quick``, leaves them out)."""

from __future__ import annotations

import ast
import inspect
import os
import re

import pytest

import nbmlops

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh, empty store for this test (also seen by subprocesses through NBMLOPS_STORE)."""
    import nbmlops
    from nbmlops.tracking import session

    path = tmp_path / ".nbmlops"
    monkeypatch.setenv("NBMLOPS_STORE", str(path))
    monkeypatch.chdir(tmp_path)
    nbmlops.set_store(path)
    yield nbmlops.store.current_store(create=False)
    for run in session.active_runs():
        run.end("KILLED")
        session.pop_run(run)
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
    left = {pid: cmd for pid, cmd in _servers().items() if base in cmd}
    if left:
        time.sleep(1)  # servers of a just-finished test may still be shutting down
        left = {pid: cmd for pid, cmd in _servers().items() if base in cmd}
    for pid in left:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    assert not left, f"model servers left running after the tests: {left}"


# A test is marked ``process`` when it uses a fixture that starts a process (model or mlflow server, worker
# scripts), directly or through another fixture, or when its body, or a function of its module that it calls,
# starts one (PROCESS_CALL). Files whose tests all start processes say ``pytestmark = pytest.mark.process``.
PROCESS_FIXTURES = {"served", "dash", "mlflow_server", "procs"}
PROCESS_CALL = re.compile(
    r"\bsubprocess\b|\bPopen\(|\bmultiprocessing\b|\bmp\.(Process|get_context|Pool)\b|\bos\.fork\("
    r"|\bnbmlops\.(serve|get_deployment)\(|\bparallelism=[2-9]"  # model servers, batch scoring workers
    r"|\bstart_new_kernel\b|\bNotebookClient\b|\bexecute_notebook\b"  # Jupyter kernels
)
# Fixtures that take long to build (a store of thousands of runs): a test using one is marked ``slow``.
SLOW_FIXTURES = {"many"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        func = getattr(item, "function", None)
        if PROCESS_FIXTURES.intersection(item.fixturenames) or (func and _starts_process(func, item.module, set())):
            item.add_marker(pytest.mark.process)
        if SLOW_FIXTURES.intersection(item.fixturenames):
            item.add_marker(pytest.mark.slow)


def _starts_process(func, module, seen: set) -> bool:
    """Whether ``func``'s source, or that of a function of ``module`` it calls by name, matches PROCESS_CALL."""
    seen.add(func)
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError):
        return False
    if PROCESS_CALL.search(source):
        return True
    for name in set(re.findall(r"\b(\w+)\(", source)):
        helper = getattr(module, name, None)
        if (inspect.isfunction(helper) and helper not in seen and helper.__module__ == module.__name__
                and _starts_process(helper, module, seen)):
            return True
    return False


def pytest_ignore_collect(collection_path, config):
    """Under ``-m "not A and not B ..."``, a test file whose module ``pytestmark`` names A or B is not even
    imported: all its tests would be deselected, and importing feast, playwright or schemathesis takes seconds."""
    expr = (config.getoption("markexpr", "") or "").strip()
    if collection_path.suffix != ".py" or not re.fullmatch(r"not \w+( and not \w+)*", expr):
        return None
    excluded = set(re.findall(r"not (\w+)", expr))
    return True if excluded & _module_marks(collection_path) else None


def _module_marks(path) -> set[str]:
    """Marker names in the top-level ``pytestmark = ...`` of a test file (``pytest.mark.NAME``), read, not run."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            for sub in ast.walk(node.value):
                if (isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Attribute)
                        and sub.value.attr == "mark"):
                    names.add(sub.attr)
    return names
