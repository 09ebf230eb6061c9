"""The demo notebooks execute headless, as the main job and nbconvert-executed reports run them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbconvert import HTMLExporter

pytestmark = pytest.mark.process  # notebooks execute in Jupyter kernels

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"  # bash scripts/test installs Debian's chromium
NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9]*.ipynb"))


WIDGET = "application/vnd.jupyter.widget-view+json"


def execute(path: Path, tmp_path: Path, monkeypatch, store_widget_state: bool = False) -> nbformat.NotebookNode:
    work = tmp_path / path.name
    shutil.copy(path, work)
    companion = path.with_suffix("")  # notebooks/07_pipelines/ holds the step notebooks of 07_pipelines.ipynb
    if companion.is_dir():
        shutil.copytree(companion, tmp_path / companion.name)
    monkeypatch.setenv("NBMLOPS_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("NBMLOPS_NOTEBOOK", str(work))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(work, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", store_widget_state=store_widget_state,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    return nb


def squeeze(markup: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r">\s+<", "><", markup))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no numbered notebooks"
    assert NOTEBOOKS[0].name == "00_lifecycle.ipynb"


@pytest.mark.parametrize("path", sorted(NOTEBOOKS[0].parent.rglob("*.ipynb")), ids=lambda p: p.stem)
def test_notebooks_are_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and not any(c.outputs or c.execution_count for c in code)
    assert "widgets" not in nb.metadata


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_and_renders(path, tmp_path, monkeypatch):
    nb = execute(path, tmp_path, monkeypatch)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert "<script" not in "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    # the report is readable without a widget manager: every widget has a static HTML equivalent in it
    widgets = [o for o in outputs if WIDGET in o.get("data", {})]
    assert all("text/html" in o["data"] for o in widgets), [o["data"]["text/plain"][:80] for o in widgets]
    for o in widgets:  # nbconvert re-indents markup: compare with whitespace between tags dropped
        assert squeeze(o["data"]["text/html"]) in squeeze(html)
    assert "<table" in html
    if path.stem == "00_lifecycle":
        check_lifecycle(nb, html, tmp_path)
    if path.stem == "02_registry":
        assert widgets  # the registry widget, shown as its snapshot
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
        assert "promoted churn-pipeline/2 to production" in text
        import nbmlops

        nbmlops.set_store(tmp_path / "store")
        try:
            runs = nbmlops.pipeline_runs("churn")
            assert runs.executed.tolist() == [3, 2, 0, 3] and runs.cached.tolist() == [0, 1, 3, 0]
            assert nbmlops.get_model_version("churn-pipeline@production").version == 2
            assert (tmp_path / "07_pipelines" / "reports").exists() is False  # reports go to the working folder
            assert list((tmp_path / "reports" / "pipelines" / "churn").rglob("train.html"))
        finally:
            nbmlops.set_store(None)
    if path.stem == "08_monitoring_live":  # drift grows week by week, the estimate follows, a retrain decision
        text = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
        assert "kept-production — 2 of 3 input columns drifted" in text or "candidate-better" in text, text[-2000:]
        assert 'model_drift_share{model_name="shop-live"' in text and "DriftReport DRIFT" in text
        if shutil.which("prometheus"):  # scripts/test installs it; a machine without it says so instead
            assert "'NbmlopsDataDrift': 'firing'" in text
        assert html.count("<svg") >= 2  # the timeline and the window's report, inline
        import nbmlops

        nbmlops.set_store(tmp_path / "store")
        try:
            history = nbmlops.drift_history("shop-live").iloc[::-1]  # oldest first
            windows = history[history.deployment == "shop-live"]
            assert len(windows) == 7 and len(history) == 8  # and the retrain job's own report of the new rows
            assert windows.estimated_accuracy.iloc[0] > windows.estimated_accuracy.iloc[-1] + 0.1
            assert windows.dataset_drift.tolist() == [False, False, True, True, True, True, True]
            realized = windows.realized_accuracy.dropna()  # last week's labels: within 0.05 of the estimate
            assert len(realized) == 6 and (abs(realized - windows.estimated_accuracy[realized.index]) < 0.05).all()
            assert nbmlops.list_deployments().empty
        finally:
            nbmlops.set_store(None)
    if path.stem == "04_monitoring":  # the %drift report is in the exported HTML, pictures embedded
        assert "DATASET DRIFT</span>" in html and "columns drifted</b>" in html
        assert 'aria-label="distribution of ' in html and 'aria-label="drift score per window"' in html  # inline SVG
        assert "Drift over time" in html
        assert (tmp_path / "reports" / "drift_june.html").stat().st_size < 2_000_000


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_every_notebook_runs_in_one_shared_store_and_the_ab_notebook_again(tmp_path, monkeypatch):
    """As in JupyterLab: the notebooks share one folder and one store; in order, then 06 a second time
    (no hard-coded version numbers, no model or deployment name two notebooks use for different things)."""
    import time

    folder = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS[0].parent, folder, ignore=shutil.ignore_patterns(".nbmlops", "reports", "*.html"))
    store = tmp_path / ".nbmlops"
    monkeypatch.setenv("NBMLOPS_STORE", str(store))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    order = [folder / p.name for p in NOTEBOOKS] + [folder / "06_ab_testing.ipynb"]
    timings = []
    for path in order:
        monkeypatch.setenv("NBMLOPS_NOTEBOOK", str(path))
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        try:
            NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
        except Exception as exc:  # noqa: BLE001 - name the notebook that failed
            pytest.fail(f"{path.name} failed in the shared store after {[t[0] for t in timings]}: {exc}")
        timings.append((path.stem, round(time.perf_counter() - start, 1)))
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
        assert not errors, (path.name, errors)
    print("notebook timings (s):", timings)
    import nbmlops

    nbmlops.set_store(store)
    try:
        assert nbmlops.list_deployments().empty  # every notebook stopped what it started
        assert len(nbmlops.list_versions("ab-demo")) == 4 and len(nbmlops.list_versions("churn")) == 2
    finally:
        nbmlops.set_store(None)


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


def check_lifecycle(nb: nbformat.NotebookNode, html: str, tmp_path: Path) -> None:
    """features → tracked training → registry → serving → drift on served traffic → A/B promotion."""
    assert html.count("FINISHED</span> run <b>") == 2  # the two %%track summaries
    assert "DATASET DRIFT</span>" in html and 'aria-label="distribution of ' in html  # the drift report, with pictures
    assert "version 2 is better with p=" in html  # the A/B verdict
    assert "churn-prod now serves version 2" in html and "lifecycle complete: 2 runs, 2 model versions" in html
    widgets = [o for c in nb.cells for o in c.get("outputs", []) if WIDGET in o.get("data", {})]
    assert len(widgets) >= 2 and any("boosted" in o["data"]["text/html"] and "logreg" in o["data"]["text/html"]
                                     for o in widgets)  # the runs browser's snapshot lists both runs
    assert (tmp_path / "reports" / "drift_lifecycle.html").stat().st_size > 10_000
    import nbmlops

    nbmlops.set_store(tmp_path / "store")
    try:
        assert nbmlops.get_model_version("churn@production").version == 2
        assert len(nbmlops.drift_history("churn")) == 1
        assert nbmlops.list_deployments().empty  # the notebook stopped what it started
    finally:
        nbmlops.set_store(None)
    # the PDF route the README documents: Chromium prints the HTML report
    (tmp_path / "report.html").write_text(html)
    pdf = tmp_path / "report.pdf"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    f"--user-data-dir={tmp_path / 'chromium'}", "--no-pdf-header-footer",
                    f"--print-to-pdf={pdf}", (tmp_path / "report.html").as_uri()],
                   check=True, capture_output=True, timeout=180)
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page(?!s)", data)) >= 2  # pages, not one long strip


def test_widgets_keep_live_state_when_the_executor_stores_it(tmp_path, monkeypatch):
    """``jupyter nbconvert --execute`` stores widget state by default: the report then embeds the live widget."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%load_ext nbmlops\nimport nbmlops\nnbmlops.registry_widget()")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "src" / "w.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    html, _ = HTMLExporter().from_notebook_node(execute(path, tmp_path, monkeypatch, store_widget_state=True))
    assert "application/vnd.jupyter.widget-state+json" in html and WIDGET in html
