"""Notebook steps: papermill with injected parameters, the executed notebook and its HTML as the
step's report, pinned inputs, %%track cells nesting under the step's run, failures, parallelism."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

import _pipeline_steps as steps
import nbmlops
from nbmlops import InvalidInput
from nbmlops.pipelines import StepFailed

pytestmark = pytest.mark.process  # notebook steps run in Jupyter kernels


def notebook(path: Path, *cells: str, params: str | None = None) -> Path:
    nb = nbformat.v4.new_notebook()
    if params is not None:
        cell = nbformat.v4.new_code_cell(params)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


SCALE = ('import os, nbmlops\nopen("cwd.txt", "w").write(os.getcwd())\n'
         'df = nbmlops.load_dataset("raw")\ndf["x1"] = df["x1"] * factor\n'
         'nbmlops.log_dataset(df, "scaled", snapshot=True)\nnbmlops.log_metric("factor", factor)')
COUNT = ('%load_ext nbmlops', '%%track -n inner -m rows\nrows = len(nbmlops.step_input("scaled"))',
         'print("rows:", rows)')


@pytest.fixture
def raw(store):
    return nbmlops.log_dataset(steps.raw_data(50), "raw", snapshot=True)


def test_notebook_steps_run_with_parameters_and_keep_their_reports(raw, tmp_path):
    nbs = tmp_path / "steps"
    p = nbmlops.Pipeline("nb", [
        nbmlops.step(notebook(nbs / "scale.ipynb", SCALE, params="factor = 1"), inputs=["raw"], outputs=["scaled"]),
        nbmlops.step(notebook(nbs / "count.ipynb", "import nbmlops", *COUNT), inputs=["scaled"]),
    ], params={"factor": 3})
    nbmlops.log_dataset(steps.raw_data(10), "raw", snapshot=True)  # a later version: the step pins the one it is given
    run = p.run(progress=False, reports=tmp_path / "reports")
    assert run.status == "FINISHED", repr(run)
    scaled = run.output("scaled")
    assert len(scaled) == 10 and (scaled.x1 == steps.raw_data(10).x1 * 3).all()
    assert (nbs / "cwd.txt").read_text() == str(nbs)  # the kernel starts in the notebook's folder
    sr = run.step_run("scale")
    assert sr.params == {"factor": 3} and sr.metrics == {"factor": 3}
    assert {a["name"] for a in sr.info["artifacts"]} == {"report.ipynb", "report.html"}
    report = run.report("scale")
    assert report == tmp_path / "reports" / "nb" / run.id[:8] / "scale.html" and report.exists()
    executed = nbformat.read(report.with_suffix(".ipynb"), as_version=4)
    tags = [c.metadata.get("tags", []) for c in executed.cells]
    assert tags[0] == ["nbmlops-step"] and tags[-1] == ["nbmlops-step"] and ["injected-parameters"] in tags
    injected = next(c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "factor = 3" in injected.source
    # %%track inside a step nests under the step's run
    inner = nbmlops.search_runs(None, "attributes.run_name = 'inner'")
    assert len(inner) == 1
    inner_run = nbmlops.get_run(inner.run_id[0])
    assert inner_run.info["parent_run"] == run.steps["count"]["run_id"] and inner_run.metrics == {"rows": 10}
    html = run._repr_html_()
    assert f'href="{Path(__import__("os").path.relpath(report))}"' in html or "report</a>" in html
    again = p.run(progress=False, reports=tmp_path / "reports")
    assert again.cached == ["scale", "count"] and again.duration < 5


def test_notebook_parameter_missing_from_its_parameters_cell_is_refused(raw, tmp_path):
    nb = notebook(tmp_path / "n.ipynb", "x = 1", params="alpha = 1")
    p = nbmlops.Pipeline("np", [nbmlops.step(nb, inputs=["raw"], params=["beta"])], params={"beta": 2})
    with pytest.raises(InvalidInput, match=r"notebook n.ipynb has no parameter 'beta' in its cell tagged 'parameters'"):
        p.run(progress=False)
    assert not (tmp_path / "reports").exists()


@pytest.mark.slow
def test_a_failing_cell_stops_the_pipeline_with_its_error_and_report(raw, tmp_path):
    nb = notebook(tmp_path / "boom.ipynb", "x = 1", "raise ValueError('boom: column x9 is missing')")
    p = nbmlops.Pipeline("boom", [nbmlops.step(nb, inputs=["raw"], outputs=["never"])])
    with pytest.raises(StepFailed, match=r"step boom failed: ValueError: boom: column x9 is missing \(cell \d+\) "
                                         r"\(report: .*boom.html\)") as info:
        p.run(progress=False, reports=tmp_path / "reports")
    run = info.value.run
    assert run.step_run("boom").status == "FAILED"
    assert "boom: column x9 is missing" in run.report("boom").read_text()


@pytest.mark.slow
def test_independent_notebook_steps_run_in_parallel(raw, tmp_path):
    sleep = ('import time, nbmlops\nstart = time.time()\ntime.sleep(2)\n'
             'nbmlops.log_metrics({"start": start, "end": time.time()})')
    p = nbmlops.Pipeline("par", [nbmlops.step(notebook(tmp_path / f"{n}.ipynb", sleep), inputs=["raw"])
                                 for n in ("left", "right")], workers=2)
    run = p.run(progress=False, reports=tmp_path / "reports")
    a, b = (run.step_run(n).metrics for n in ("left", "right"))
    assert a["start"] < b["end"] and b["start"] < a["end"], (a, b)  # the two sleeps overlapped


def test_live_status_updates_one_display(raw, monkeypatch):
    shown: list[tuple[str, object]] = []

    class Handle:
        def update(self, obj):
            shown.append(("update", obj))

    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda obj, display_id=None: shown.append(("display", obj)) or Handle())
    from nbmlops.display.pipelines import LiveStatus

    p = nbmlops.Pipeline("live", [nbmlops.step(steps.features, inputs=["raw"], outputs=["features"])])
    p.run(progress=LiveStatus(every=0))
    assert shown[0][0] == "display" and all(kind == "update" for kind, _ in shown[1:])
    assert "FINISHED" in shown[-1][1]._repr_html_() and "features: ran in" in repr(shown[-1][1])
    json.dumps([k for k, _ in shown])
