"""%serve from a real IPython shell: start, reuse, list, logs, stop, and bad input."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

import nbmlops


@pytest.fixture
def registered(ip):
    ip.run_cell_magic("track", "-e iris", """
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
X, y = load_iris(return_X_y=True, as_frame=True)
clf = LogisticRegression(max_iter=500).fit(X, y)
""")
    ip.run_line_magic("register", "clf iris --alias production")
    yield ip
    for name in nbmlops.list_deployments()["name"]:
        nbmlops.get_deployment(name).stop()


def test_serve_list_logs_and_stop(registered, capsys):
    ip = registered
    ip.run_line_magic("serve", "iris@production")
    dep = nbmlops.get_deployment("iris")
    assert dep.predict(ip.user_ns["X"].head(2))["predictions"] == ip.user_ns["clf"].predict(ip.user_ns["X"].head(2)).tolist()
    ip.run_line_magic("serve", "iris@production")
    assert f"reusing deployment iris on port {dep.port}, pid {dep.pid}" in capsys.readouterr().out
    listing = ip.run_line_magic("serve", "--list")
    assert list(listing["name"]) == ["iris"] and listing["status"][0] == "running"
    ip.run_line_magic("serve", "--logs iris")
    assert "nbmlops serving iris/1" in capsys.readouterr().out
    ip.run_line_magic("serve", "--stop iris")
    assert "stopped deployment iris" in capsys.readouterr().out
    assert ip.run_line_magic("serve", "--list").empty


@pytest.mark.parametrize("line, message", [
    ("", "usage"),
    ("--list --stop iris", "usage"),
    ("iris@nowhere", "no alias 'nowhere'"),
    ("unknown", "no registered model"),
    ("iris --port 99999", "port must be"),
    ("iris --port abc", "invalid int"),
    ("iris --token short", "at least 8"),
    ("iris --name ../x", "invalid model name"),
    ("--stop ghost", "no deployment named 'ghost'"),
    ("--logs ghost", "no deployment named 'ghost'"),
])
def test_bad_input_is_one_line_and_starts_nothing(registered, line, message):
    with pytest.raises(UsageError, match=message):
        registered.run_line_magic("serve", line)
    assert nbmlops.list_deployments().empty
