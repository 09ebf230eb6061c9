"""The demo notebooks execute headless, as the main job and nbconvert-executed reports run them."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbconvert import HTMLExporter

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9]*.ipynb"))


def execute(path: Path, tmp_path: Path, monkeypatch) -> nbformat.NotebookNode:
    work = tmp_path / path.name
    shutil.copy(path, work)
    companion = path.with_suffix("")  # notebooks/07_pipelines/ holds the step notebooks of 07_pipelines.ipynb
    if companion.is_dir():
        shutil.copytree(companion, tmp_path / companion.name)
    monkeypatch.setenv("NBMLOPS_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("NBMLOPS_NOTEBOOK", str(work))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(work, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    return nb


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no numbered notebooks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_and_renders(path, tmp_path, monkeypatch):
    nb = execute(path, tmp_path, monkeypatch)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert "<script" not in "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    if path.stem == "01_tracking":
        assert html.count("FINISHED</span> run <b>") == 2  # the two %%track summaries
        assert any("image/png" in o.get("data", {}) for o in outputs)
        import nbmlops

        nbmlops.set_store(tmp_path / "store")
        try:
            runs = nbmlops.search_runs("breast-cancer")
            assert sorted(runs.run_name) == ["forest", "logreg"]
            assert (runs["metrics.auc"] > 0.95).all()
            assert set(nbmlops.get_run(runs.run_id[0]).info["notebook"].split("/")[-1:]) == {path.name}
        finally:
            nbmlops.set_store(None)
    if path.stem == "07_pipelines":  # versions diffed, a run, a fully cached re-run, a partial re-run, a promotion
        text = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
        assert "250 rows added, 100 removed, 1 changed" in text
        assert text.count("cached from run") >= 4 and "train: ran in" in text and "<svg" in html
        assert "promoted churn/2 to production" in text
        import nbmlops

        nbmlops.set_store(tmp_path / "store")
        try:
            runs = nbmlops.pipeline_runs("churn")
            assert runs.executed.tolist() == [3, 2, 0, 3] and runs.cached.tolist() == [0, 1, 3, 0]
            assert nbmlops.get_model_version("churn@production").version == 2
            assert (tmp_path / "07_pipelines" / "reports").exists() is False  # reports go to the working folder
            assert list((tmp_path / "reports" / "pipelines" / "churn").rglob("train.html"))
        finally:
            nbmlops.set_store(None)
    if path.stem == "04_monitoring":  # the %drift report is in the exported HTML, pictures embedded
        assert "DATASET DRIFT</span>" in html and "columns drifted</b>" in html
        assert "data:image/png;base64," in html and "Drift over time" in html
        assert (tmp_path / "reports" / "drift_june.html").stat().st_size < 2_000_000


def test_papermill_parameters_become_params_of_tracked_runs(tmp_path, monkeypatch):
    import papermill

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("alpha = 1.0\nsolver = 'lbfgs'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("%load_ext nbmlops"),
                nbformat.v4.new_code_cell("%%track -e pm -n step -m score\nscore = alpha * 2")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src, out = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, src)
    monkeypatch.setenv("NBMLOPS_STORE", str(tmp_path / "store"))
    papermill.execute_notebook(str(src), str(out), parameters={"alpha": 0.25, "solver": "saga"},
                               cwd=str(tmp_path), progress_bar=False, kernel_name="python3")
    import nbmlops

    nbmlops.set_store(tmp_path / "store")
    try:
        (run_id,) = nbmlops.search_runs("pm")["run_id"]
        run = nbmlops.get_run(run_id)
        assert run.params == {"alpha": 0.25, "solver": "saga"}
        assert run.metrics == {"score": 0.5}
    finally:
        nbmlops.set_store(None)
