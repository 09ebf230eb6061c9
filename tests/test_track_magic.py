"""%%track and %nbmlops through a real IPython shell, as a notebook user drives them."""

from __future__ import annotations

import subprocess
import sys

import pytest
from IPython.core.error import UsageError

import nbmlops

TRAIN = """
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
X, y = load_iris(return_X_y=True, as_frame=True)
model = LogisticRegression(C=C, max_iter=500).fit(X, y)
accuracy = model.score(X, y)
kind = "logreg"
"""


def last_run():
    df = nbmlops.search_runs(max_results=1)
    return nbmlops.get_run(df["run_id"].iloc[0])


def test_track_records_source_autolog_and_variables(ip, store):
    ip.user_ns["C"] = 0.7
    ip.run_cell_magic("track", "-e iris -n lr -p kind -m accuracy -t team=ds stage=dev", TRAIN)
    run = last_run()
    info = run.info
    assert info["status"] == "FINISHED" and info["name"] == "lr"
    assert store.blobs.read_bytes(info["source_sha"]).decode() == TRAIN
    assert info["params"]["C"] == 0.7 and info["params"]["max_iter"] == 500  # autologged get_params()
    assert info["params"]["kind"] == "logreg"
    assert info["metrics"]["accuracy"]["value"] == pytest.approx(ip.user_ns["accuracy"])
    assert info["tags"]["team"] == "ds" and info["tags"]["stage"] == "dev"
    assert info["tags"]["estimator"].endswith("LogisticRegression")
    (model,) = info["models"]
    assert sorted(d["name"] for d in info["datasets"]) == ["LogisticRegression.X", "LogisticRegression.y"]
    assert model["datasets"] == [d["sha256"] for d in info["datasets"]]
    assert (run.load_model("LogisticRegression").predict(ip.user_ns["X"]) == ip.user_ns["model"].predict(ip.user_ns["X"])).all()
    assert ip.user_ns["run"].id == run.id


def test_two_estimators_get_prefixed_params_and_pipeline_steps_are_not_separate_fits(ip):
    ip.run_cell_magic("track", "", """
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier
from sklearn.datasets import load_iris
X, y = load_iris(return_X_y=True)
pipe = make_pipeline(StandardScaler(), DecisionTreeClassifier(max_depth=2, random_state=0)).fit(X, y)
tree = DecisionTreeClassifier(max_depth=3).fit(X, y)
""")
    info = last_run().info
    assert [m["name"] for m in info["models"]] == ["Pipeline", "DecisionTreeClassifier"]
    assert info["params"]["Pipeline.decisiontreeclassifier__max_depth"] == 2
    assert info["params"]["DecisionTreeClassifier.max_depth"] == 3


def test_no_autolog_logs_no_models(ip):
    ip.user_ns["C"] = 1.0
    ip.run_cell_magic("track", "--no-autolog", TRAIN)
    info = last_run().info
    assert info["models"] == [] and info["params"] == {}


def test_figures_created_in_the_cell_are_saved(ip):
    ip.run_cell_magic("track", "", "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([3, 1, 2])\n")
    arts = last_run().info["artifacts"]
    assert [a["name"] for a in arts] == ["figure_1.png"]
    ip.run_cell("plt.close('all')")


@pytest.mark.parametrize("line, message", [
    ("--bogus", "unrecognized arguments"),
    ("-t novalue", "KEY=VALUE"),
    ("-t =x", "KEY=VALUE"),
    ("-m 3x", "variable names"),
    ("-p not-a-name", "variable names"),
    ("-e ''", "experiment name"),
])
def test_bad_arguments_are_one_line_usage_errors_and_write_nothing(ip, store, line, message):
    ip.user_ns.pop("x", None)
    with pytest.raises(UsageError, match=message):
        ip.run_cell_magic("track", line, "x = 1")
    assert not store.root.exists()
    assert ip.user_ns.get("x") != 1  # the cell did not run


def test_bad_arguments_show_no_traceback(ip, store, capsys):
    result = ip.run_cell("%%track -t novalue\nx = 1")
    out = capsys.readouterr()
    text = out.out + out.err
    assert "UsageError" in text and "Traceback" not in text
    assert result.error_in_exec is not None and not store.root.exists()


def test_metric_variable_that_is_not_a_number(ip):
    ip.user_ns["C"] = 1.0
    with pytest.raises(UsageError, match="-m kind is str"):
        ip.run_cell_magic("track", "-m accuracy kind", TRAIN)
    info = last_run().info
    assert info["status"] == "FINISHED" and "accuracy" not in info["metrics"] and "kind" not in info["params"]


def test_failing_cell_marks_run_failed_and_reraises_once(ip, capsys):
    result = ip.run_cell("%%track -n boom\nvalue = 1\n1 / 0")
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    out = capsys.readouterr().out
    assert out.count("ZeroDivisionError") == 2  # the header and the last line of ONE traceback
    info = last_run().info
    assert info["status"] == "FAILED" and "ZeroDivisionError" in info["error"]
    assert ip.user_ns["value"] == 1
    # the shell is back to normal: a later error is shown by IPython as usual
    assert ip.CustomTB is not None and ip.custom_exceptions == ()
    assert isinstance(ip.run_cell("{}['k']").error_in_exec, KeyError)


def test_interrupted_cell_marks_run_killed(ip):
    result = ip.run_cell("%%track\nraise KeyboardInterrupt")
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert last_run().status == "KILLED"


def test_rerun_links_runs_and_says_when_nothing_changed(ip, capsys):
    ip.user_ns["C"] = 1.0
    ip.run_cell_magic("track", "-n cell", TRAIN)
    first = last_run()
    ip.run_cell_magic("track", "-n cell", TRAIN)
    second = last_run()
    assert second.info["previous_run"] == first.id and second.info["same_as"] == first.id
    assert f"same as run {first.id[:8]}" in capsys.readouterr().out
    ip.user_ns["C"] = 2.0
    ip.run_cell_magic("track", "-n cell", TRAIN)
    third = last_run()
    assert third.info["previous_run"] == second.id and third.info["same_as"] is None


def test_papermill_parameters_become_params(ip):
    ip.user_ns["In"].append("# Parameters\nalpha = 0.25\nname = 'x'\n")
    try:
        ip.run_cell_magic("track", "", "1 + 1")
    finally:
        ip.user_ns["In"].pop()
    assert last_run().params == {"alpha": 0.25, "name": "x"}


def test_notebook_path_is_recorded_from_environment(ip, monkeypatch):
    from nbmlops.magics import _loaded

    monkeypatch.setenv("NBMLOPS_NOTEBOOK", "/work/analysis.ipynb")
    _loaded[id(ip)]["Track"]._notebook = False
    ip.run_cell_magic("track", "", "1")
    assert last_run().info["notebook"] == "/work/analysis.ipynb"
    _loaded[id(ip)]["Track"]._notebook = False


def test_summary_line_after_the_cell(ip, capsys):
    ip.run_cell_magic("track", "-n shown", "run.log_metric('acc', 0.5)")
    out = capsys.readouterr().out
    assert "FINISHED run shown" in out and "acc=0.5" in out


def test_no_implicit_run_outside_track(ip):
    result = ip.run_cell("import nbmlops; nbmlops.log_metric('a', 1.0)")
    assert isinstance(result.error_in_exec, nbmlops.InvalidInput)


def test_help_is_available(ip):
    doc = ip.find_cell_magic("track").__doc__
    assert "--experiment" in doc and "-m" in doc and "KEY=VALUE" in doc


def test_nbmlops_magic_shows_and_switches_store(ip, store, tmp_path, capsys):
    ip.run_line_magic("nbmlops", "")
    assert "not created yet" in capsys.readouterr().out
    ip.run_cell_magic("track", "", "1")
    ip.run_line_magic("nbmlops", "")
    out = capsys.readouterr().out
    assert str(store.root) in out and "1 finished" in out
    other = tmp_path / "other"
    ip.run_line_magic("nbmlops", f"store {other}")
    assert nbmlops.store.locate() == other
    with pytest.raises(UsageError):
        ip.run_line_magic("nbmlops", "bogus")


def test_load_ext_imports_no_heavy_module():
    code = ("import sys\nfrom IPython.core.interactiveshell import InteractiveShell\n"
            "ip = InteractiveShell.instance()\nip.run_line_magic('load_ext', 'nbmlops')\n"
            "assert 'track' in ip.magics_manager.magics['cell']\n"
            "print(sorted(m for m in ('pandas', 'sklearn', 'matplotlib', 'scipy', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("[]")
