"""%register and the registry widget, driven as a notebook user would."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

import nbmlops

FIT = """
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
X, y = load_iris(return_X_y=True, as_frame=True)
clf = LogisticRegression(C=C, max_iter=500).fit(X, y)
"""


def fit(ip, C=1.0):
    ip.user_ns["C"] = C
    ip.run_cell_magic("track", "-e iris -m C", FIT)


def test_register_variable_links_to_the_track_run(ip, capsys):
    fit(ip)
    ip.run_line_magic("register", 'clf iris --alias production --tag team=ds --description "first model"')
    v = nbmlops.get_model_version("iris@production")
    assert v.version == 1 and v.doc["description"] == "first model" and v.doc["tags"] == {"team": "ds"}
    run_id = nbmlops.search_runs(max_results=1)["run_id"][0]
    assert v.run_id == run_id and v.metrics["C"] == 1.0
    out = capsys.readouterr().out
    assert "ModelVersion iris/1 @production" in out


def test_register_from_run_move_alias_and_list(ip, capsys):
    fit(ip)
    run_id = nbmlops.search_runs(max_results=1)["run_id"][0]
    ip.run_line_magic("register", f"--run {run_id[:8]}:LogisticRegression iris")
    fit(ip, C=0.1)
    ip.run_line_magic("register", "clf iris")
    ip.run_line_magic("register", "iris --alias production --version 2")
    assert nbmlops.get_model_version("iris@production").version == 2
    capsys.readouterr()
    ip.run_line_magic("register", "--list")
    assert "iris" in capsys.readouterr().out
    ip.run_line_magic("register", "--list iris")
    assert "production" in capsys.readouterr().out


@pytest.mark.parametrize("line, message", [
    ("", "usage"),
    ("clf", "usage"),
    ("a b c", "usage"),
    ("nothere iris", "no variable 'nothere'"),
    ("unfitted iris", "not fitted"),
    ("notamodel iris", "not a model"),
    ("--run abcdef12 iris", "no run"),
    ("--run zz iris", "neither a fitted model nor a run id"),
    ("iris --alias production --version 9", "no registered model"),
    ("iris --version 1", "to move an alias"),
    ("clf ../evil", "invalid model name"),
    ("clf iris --alias 9lives", "invalid alias"),
    ("clf iris --tag novalue", "KEY=VALUE"),
    ("--bogus", "unrecognized"),
])
def test_bad_input_is_one_line_and_writes_nothing(ip, store, line, message):
    from sklearn.linear_model import LogisticRegression

    ip.user_ns.update(unfitted=LogisticRegression(), notamodel=[1, 2, 3])
    ip.user_ns.pop("clf", None)
    if "clf" in line:
        ip.user_ns["clf"] = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    with pytest.raises(UsageError, match=message):
        ip.run_line_magic("register", line)
    assert not store.root.exists() or nbmlops.list_models().empty


def test_missing_version_for_alias_is_refused(ip):
    fit(ip)
    ip.run_line_magic("register", "clf iris")
    with pytest.raises(UsageError, match="no version 5"):
        ip.run_line_magic("register", "iris --alias production --version 5")
    assert nbmlops.model_history("iris")["action"].tolist() == ["register"]


def test_help():
    from nbmlops.magics.register import Register

    assert "--alias" in Register.register.__doc__ and "--run" in Register.register.__doc__


def test_widget_moves_an_alias_and_refreshes(ip):
    fit(ip)
    ip.run_line_magic("register", "clf iris --alias production")
    fit(ip, C=0.2)
    ip.run_line_magic("register", "clf iris")
    widget = nbmlops.registry_widget()
    assert widget.model.value == "iris" and list(widget.version.options) == [2, 1]
    assert "production" in widget.versions.value
    widget.alias.value = "production"
    widget.version.value = 2
    assert "version <b>2</b>" in widget.lineage.value
    widget.move.click()
    assert nbmlops.get_model_version("iris@production").version == 2
    assert "version 2" in widget.status.value
    rows = widget.versions.value.split("<tr")
    first_cell = {r.split("</td>", 1)[0].rsplit(">", 1)[-1]: r for r in rows[2:]}  # version -> its row
    assert "production" in first_cell["2"] and "production" not in first_cell["1"]
    widget.alias.value = "bad alias"
    widget.move.click()
    assert "invalid alias" in widget.status.value
