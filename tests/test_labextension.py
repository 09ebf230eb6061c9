"""The JupyterLab extension (labextension/, built into nbmlops/labextension/ by scripts/build-labextension):
the wheel ships it prebuilt, so a fresh venv lists it enabled and OK with no Node on PATH; and in a real
JupyterLab (Chromium through Playwright) its sidebar lists a small lifecycle's experiments, runs, models,
deployments and drift reports, a palette command opens a run comparison in a main-area tab, and a drift
report opens in a tab. Screenshots of each step go to build/test-artifacts/browser/.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser_support import CHROMIUM, CHROMIUM_ARGS, JupyterLab, Shots

import nbmlops

ROOT = Path(__file__).resolve().parent.parent
BUILT = ROOT / "nbmlops" / "labextension"

pytestmark = [pytest.mark.slow, pytest.mark.process]


# --- the wheel: prebuilt, installed without Node ------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built once with hatchling, as `pip install .` does: this venv's hatchling when it
    has one, else pip's isolated build environment (which installs hatchling from pip's index or cache)."""
    out = tmp_path_factory.mktemp("wheel")
    isolation = [] if importlib.util.find_spec("hatchling") is None else ["--no-build-isolation"]
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", str(out),
                           str(ROOT)], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (path,) = out.glob("nbmlops-*.whl")
    return path


def test_the_wheel_carries_the_built_extension_under_share_jupyter_labextensions(wheel):
    prefix = "nbmlops-0.1.0.data/data/share/jupyter/labextensions/nbmlops/"
    with zipfile.ZipFile(wheel) as zf:
        names = {i.filename: i for i in zf.infolist()}
        package = json.loads(zf.read(prefix + "package.json"))
        install = json.loads(zf.read(prefix + "install.json"))
        load = package["jupyterlab"]["_build"]["load"]
        shipped_entry = zf.read(prefix + load)
    assert prefix + load in names and load.startswith("static/remoteEntry.")
    assert install["packageName"] == "nbmlops" and install["packageManager"] == "python"
    # what we committed is what the wheel ships (the build output is not made at install time)
    assert (BUILT / load).read_bytes() == shipped_entry
    shipped = [i for n, i in names.items() if n.startswith(prefix)]
    assert sum(i.compress_size for i in shipped) < 200_000, "the extension should stay small"


def test_a_fresh_venv_lists_the_extension_enabled_and_ok_without_node(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
                   check=True, timeout=60)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # jupyterlab & co. from this venv (the base interpreter's site-packages may not have them); its
    # editable nbmlops is a .pth there, which a path added this way does not run
    (site / "dev-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, timeout=120, capture_output=True)
    env = {"PATH": str(venv / "bin"), "HOME": str(tmp_path / "home"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_DATA_DIR": str(tmp_path / "data"),
           "JUPYTER_PLATFORM_DIRS": "1", "LANG": "C.UTF-8"}
    assert shutil.which("node", path=env["PATH"]) is None and shutil.which("npm", path=env["PATH"]) is None
    where = subprocess.run([python, "-c", "import nbmlops; print(nbmlops.__file__)"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(venv)), where  # the wheel's nbmlops, not the checkout's
    proc = subprocess.run([python, "-m", "jupyterlab.labextensions", "list"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    out = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    assert proc.returncode == 0, out
    assert str(venv / "share" / "jupyter" / "labextensions") in out, out
    assert re.search(r"^\s*nbmlops v0\.1\.0 enabled OK \(python, nbmlops\)$", out, re.M), out


# --- JupyterLab in Chromium ---------------------------------------------------------------------------


class LabWithBuild(JupyterLab):
    """JupyterLab that loads the extension as built in this checkout (JUPYTER_PATH comes first), whether or
    not the venv's editable install has copied a build into share/jupyter/labextensions."""

    def env(self) -> dict[str, str]:
        env = super().env()
        shared = self.workdir / "jupyter-path"
        (shared / "labextensions").mkdir(parents=True, exist_ok=True)
        link = shared / "labextensions" / "nbmlops"
        if not link.exists():
            link.symlink_to(BUILT, target_is_directory=True)
        env["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(shared), env.get("JUPYTER_PATH")]))
        return env


def fill(store: Path) -> dict:
    """A small lifecycle through the public API: three runs, a model with two versions and an alias,
    a drift report."""
    from sklearn.linear_model import LogisticRegression

    nbmlops.set_store(store)
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300), "c": rng.normal(size=300)})
    y = (X.a + 0.5 * X.b > 0).astype(int)
    ids: dict = {"runs": {}}
    with nbmlops.start_run(experiment="baseline", name="majority"):  # the older experiment: shown folded
        nbmlops.log_metric("accuracy", 0.5)
    for name, C in (("lr-small", 0.01), ("lr-mid", 0.3), ("lr-big", 10.0)):
        with nbmlops.start_run(experiment="churn", name=name) as run:
            nbmlops.log_param("C", C)
            model = LogisticRegression(C=C).fit(X, y)
            for step in range(3):
                nbmlops.log_metric("auc", 0.7 + 0.05 * step + C / 100, step=step)
            nbmlops.log_metric("accuracy", float(model.score(X, y)))
            nbmlops.log_model(model)
            ids["runs"][name] = run.id
        if name != "lr-mid":  # a version of the run's model: its lineage names the run and its metrics
            nbmlops.register_model(run, "churn", alias="production" if name == "lr-small" else None,
                                   reference=(X, y))
    ids["older_drift"] = nbmlops.drift_report(X, X.sample(frac=1.0, random_state=1)).log(model="churn@production")["id"]
    shifted = X.assign(a=X.a + 1.5)
    ids["drift"] = nbmlops.drift_report(X, shifted).log(model="churn@production")["id"]
    return ids


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (scripts/test installs Debian's chromium)")
    pytest.importorskip("playwright.sync_api")
    workdir = tmp_path_factory.mktemp("labext")
    server = LabWithBuild(workdir, store=workdir / "store")
    server.ids = fill(server.store)
    dep = nbmlops.serve("churn@production", name="churn-prod")
    try:
        for _ in range(3):
            dep.predict([[0.1, 0.2, 0.3]])
        server.deployment = dep
        server.start()
        yield server
    finally:
        server.stop()
        dep.stop()
        nbmlops.set_store(None)


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # two busy cores: JupyterLab's first load takes seconds
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()
    expect.set_options(timeout=5_000)


@pytest.fixture
def page(browser, lab, request):
    """JupyterLab at its default window (1280x800) with a fresh workspace, the nbmlops sidebar open."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(60_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.shots = Shots(pg, request.node.name)
    failed_before = request.session.testsfailed
    pg.goto(lab.url("/lab?reset"), wait_until="domcontentloaded", timeout=120_000)
    pg.wait_for_function("() => window.jupyterapp && window.jupyterapp.started", timeout=120_000)
    pg.evaluate("async () => { await window.jupyterapp.restored; }")
    tab = pg.locator('.jp-SideBar [data-id="nbmlops-sidebar"]')
    expect(tab).to_be_visible(timeout=120_000)
    tab.click()
    expect(pg.locator("#nbmlops-sidebar")).to_be_visible()
    yield pg
    if request.session.testsfailed > failed_before:
        pg.shots("failure")
        print("page errors:", errors, "\n", lab.log_tail(30))
    context.close()
    assert not [e for e in errors if "nbmlops" in e], errors


def sidebar(page):
    return page.locator("#nbmlops-sidebar")


def open_palette(page) -> None:
    """JupyterLab's command palette, focused (as Ctrl+Shift+C does). The modal palette closes when it loses
    the focus, which a tab JupyterLab activates late may take: then it is opened again."""
    from playwright.sync_api import expect

    palette = page.locator(".lm-CommandPalette-input")
    for attempt in range(3):
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:activate-command-palette')")
        try:
            expect(palette).to_be_focused(timeout=5_000)
            page.wait_for_timeout(300)
            expect(palette).to_be_focused(timeout=1_000)
            return
        except AssertionError:
            if attempt == 2:
                raise


@pytest.mark.browser
def test_sidebar_lists_experiments_runs_models_deployments_and_drift(page, lab):
    from playwright.sync_api import expect

    bar = sidebar(page)
    churn = bar.locator('[data-experiment="churn"]')
    expect(churn).to_be_visible()
    baseline = bar.locator('[data-experiment="baseline"]')
    expect(baseline).not_to_have_attribute("open", "")  # folded: its runs load when it opens
    baseline.locator("summary").click()
    expect(baseline.locator("li.jp-nbmlops-run")).to_have_text([re.compile(r"majority\s*accuracy 0\.5")])
    for name, run_id in lab.ids["runs"].items():  # the newest experiment opens with its runs and key metric
        row = bar.locator(f'li[data-run="{run_id}"]')
        expect(row).to_contain_text(name)
        expect(row.locator(".jp-nbmlops-metric")).to_have_text(re.compile(r"^auc 0\.\d+$"))
    expect(bar.locator(".jp-nbmlops-store")).to_contain_text("store:")
    expect(bar.locator(".jp-nbmlops-error")).to_be_hidden()
    bar.locator('[data-model="churn"] summary').click()
    expect(bar.locator('[data-model="churn"]')).to_contain_text("@production v1")
    versions = bar.locator('[data-model="churn"] .jp-nbmlops-version')
    expect(versions).to_have_count(2)
    expect(versions.first).to_contain_text(re.compile(r"^v2\s*auc 0\.\d+$"))  # newest first, with its run's metric
    dep = bar.locator('li[data-deployment="churn-prod"]')
    expect(dep).to_have_attribute("data-status", "running")
    expect(dep).to_contain_text(re.compile(r"[1-9]\d* req"))
    expect(bar.locator(f'li[data-drift="{lab.ids["drift"]}"]')).to_contain_text("churn@production v1")
    page.shots("sidebar")

    # a run logged now shows after Refresh
    with nbmlops.start_run(experiment="churn", name="lr-late") as run:
        nbmlops.log_metric("auc", 0.99)
    bar.locator('[data-action="refresh"]').click()
    expect(bar.locator(f'li[data-run="{run.id}"]')).to_contain_text("auc 0.99")
    page.shots("refreshed")

    # the launcher tile opens the dashboard beside it, in a main-area tab
    tile = page.locator(".jp-LauncherCard", has_text="nbmlops dashboard")
    expect(tile).to_be_visible()
    tile.click()
    frame = page.locator(".jp-nbmlops-view:visible iframe")
    expect(frame).to_have_attribute("src", re.compile(r"/nbmlops/$"))
    expect(page.frame_locator(".jp-nbmlops-view:visible iframe").locator("body")).to_have_attribute(
        "data-base-url", "/")
    page.shots("dashboard-tab")


@pytest.mark.browser
def test_palette_command_opens_a_comparison_of_the_ticked_runs_in_a_tab(page, lab):
    from playwright.sync_api import expect

    bar = sidebar(page)
    # with nothing ticked, the command says what to do
    page.evaluate("() => window.jupyterapp.commands.execute('nbmlops:compare-runs')")
    expect(page.locator(".Toastify__toast", has_text="Tick 2 to 10 runs")).to_be_visible()
    ids = list(lab.ids["runs"].values())
    for run_id in ids:
        bar.locator(f'input[data-run="{run_id}"]').check()
    expect(bar.locator('[data-action="compare"]')).to_have_text("Compare (3)")
    page.shots("ticked")

    open_palette(page)
    palette = page.locator(".lm-CommandPalette-input")
    expect(palette).to_be_focused()
    palette.fill("nbmlops: compare selected runs")
    item = page.locator(".lm-CommandPalette-item", has_text="nbmlops: compare selected runs (3)")
    expect(item).to_be_visible()
    page.shots("palette")
    page.keyboard.press("Enter")

    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="compare 3 runs")
    expect(tab).to_be_visible()
    frame = page.locator(".jp-nbmlops-view:visible iframe")
    expect(frame).to_have_attribute("src", re.compile(r"/nbmlops/#/compare\?runs=" + ",".join(ids) + "$"))
    inner = page.frame_locator(".jp-nbmlops-view:visible iframe")
    expect(inner.locator("body")).to_have_attribute("data-base-url", "/")
    for name in lab.ids["runs"]:
        expect(inner.locator("body")).to_contain_text(name)
    page.shots("compare-tab")

    # a run's page opens as a tab beside the comparison, not as another split
    bar.locator(f'li[data-run="{ids[0]}"] a').click()
    run_tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="run lr-small")
    expect(run_tab).to_have_class(re.compile(r"\blm-mod-current\b"))
    same_bar = page.locator(".lm-DockPanel-tabBar", has=page.locator(".lm-TabBar-tab", has_text="run lr-small"))
    expect(same_bar.locator(".lm-TabBar-tab")).to_have_text(
        [re.compile("compare 3 runs"), re.compile("run lr-small")])
    expect(frame).to_have_attribute("src", re.compile(f"/nbmlops/#/run/{ids[0]}$"))
    page.shots("run-tab")


@pytest.mark.browser
def test_drift_report_opens_in_a_tab_from_the_palette_and_the_sidebar(page, lab):
    from playwright.sync_api import expect

    drift_id = lab.ids["drift"]
    open_palette(page)
    page.locator(".lm-CommandPalette-input").fill("nbmlops: open drift report")
    page.locator(".lm-CommandPalette-item", has_text="nbmlops: open drift report").click()
    dialog = page.locator(".jp-Dialog")  # two reports: pick one, the newest first
    expect(dialog.locator("select option")).to_have_count(2)
    expect(dialog.locator("select option").first).to_contain_text(drift_id[:8])
    page.shots("drift-picker")
    dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="drift churn@production v1")
    expect(tab).to_be_visible()
    frame = page.locator(".jp-nbmlops-view:visible iframe")
    expect(frame).to_have_attribute("src", re.compile(f"^{re.escape(lab.base)}/nbmlops/api/drift/{drift_id}/html$"))
    report = page.frame_locator(".jp-nbmlops-view:visible iframe").locator("body")
    expect(report).to_contain_text("drift")
    expect(report.locator("svg").first).to_be_visible()  # its inline SVG charts
    page.shots("drift-tab")

    # the sidebar's entry finds the same tab rather than opening a second one
    sidebar(page).locator('[data-action="dashboard"]').click()
    expect(page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current", has_text="nbmlops")).to_be_visible()
    expect(tab).not_to_have_class(re.compile(r"\blm-mod-current\b"))
    sidebar(page).locator(f'li[data-drift="{drift_id}"] a').click()
    expect(tab).to_have_count(1)
    expect(tab).to_have_class(re.compile(r"\blm-mod-current\b"))
    page.shots("drift-again")


@pytest.mark.browser
def test_a_failed_refresh_is_one_line_and_what_was_listed_stays(page, lab):
    """The last test of this file: it stops the module's JupyterLab server under the open page."""
    from playwright.sync_api import expect

    bar = sidebar(page)
    expect(bar.locator('li[data-deployment="churn-prod"]')).to_be_visible()
    expect(bar).not_to_have_class(re.compile(r"\bjp-nbmlops-loading\b"))
    lab.stop()
    bar.locator('[data-action="refresh"]').click()
    error = bar.locator(".jp-nbmlops-error")
    expect(error).to_have_text(re.compile(
        r"^the Jupyter server did not answer \(.+\) "
        r"\(store, experiments, models, deployments, drift reports(, runs)?\)$"))
    assert error.bounding_box()["height"] < 2 * 18, "one line"
    expect(bar.locator('[data-experiment="churn"]')).to_be_visible()
    expect(bar.locator('li[data-deployment="churn-prod"]')).to_be_visible()
    page.shots("server-gone")
