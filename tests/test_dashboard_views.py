"""The dashboard's views in a real browser: Chromium (Playwright) on a real Jupyter server (JupyterLab's,
with the nbmlops extension) over a store this test fills through the public API. Each view is opened by
its URL hash, as the JupyterLab extension opens them in tabs. Screenshots of each step go to
build/test-artifacts/browser/.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("playwright.sync_api")
pytest.importorskip("jupyterlab")

from browser_support import CHROMIUM, CHROMIUM_ARGS, JupyterLab, Shots
from playwright.sync_api import expect, sync_playwright

import nbmlops

pytestmark = [pytest.mark.slow, pytest.mark.browser]

if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
    pytest.skip(f"no Chromium at {CHROMIUM} (scripts/test installs Debian's chromium)", allow_module_level=True)

LONG = 20_000  # points of one curve: the page gets at most 1000 of them


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("dashboard-views")
    server = JupyterLab(workdir, store=workdir / "store")
    try:
        server.start()
        nbmlops.set_store(server.store)
        yield server
    finally:
        nbmlops.set_store(None)
        server.stop()


@pytest.fixture(scope="module")
def browser():
    expect.set_options(timeout=30_000)  # two busy cores, a Jupyter server and a model server share them
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()
    expect.set_options(timeout=5_000)


class _Failures:
    """A pytest plugin, registered for this module only, that notes failed tests (for their screenshot)."""

    def __init__(self):
        self.failed: set[str] = set()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):  # noqa: ARG002 - pytest's hook signature
        outcome = yield
        if outcome.get_result().failed:
            self.failed.add(item.nodeid)


@pytest.fixture(scope="module")
def failures(request):
    plugin = _Failures()
    request.config.pluginmanager.register(plugin, "nbmlops-dashboard-views-failures")
    yield plugin
    request.config.pluginmanager.unregister(plugin)


@pytest.fixture
def page(browser, lab, failures, request):
    """A fresh page at JupyterLab's default window size; a failed test leaves a screenshot and the log."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(60_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    pg.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    pg.shots = Shots(pg, request.node.name)
    pg.errors = errors
    yield pg
    if request.node.nodeid in failures.failed:
        pg.shots("failure")
        request.node.add_report_section("teardown", "jupyter log", lab.log_tail())
        request.node.add_report_section("teardown", "browser", "\n".join(errors[-30:]))
    context.close()


def open_view(page, lab, hash_: str) -> None:
    page.goto(lab.url("/nbmlops/") + hash_, wait_until="domcontentloaded", timeout=120_000)
    expect(page.get_by_test_id("view")).to_be_visible()
    expect(page.get_by_test_id("loading")).to_have_count(0, timeout=60_000)
    expect(page.get_by_test_id("dashboard-error")).to_be_hidden()


def y_ticks(chart) -> list[float]:
    return [float(t) for t in chart.locator("text.y-tick").all_text_contents()]


def test_compare_view_draws_overlaid_curves_and_parallel_coordinates_for_3_runs(page, lab):
    ids = []
    for C, lr in ((0.1, 0.01), (1.0, 0.05), (10.0, 0.1)):
        with nbmlops.start_run(experiment="views-compare", name=f"C={C}") as run:
            nbmlops.log_params({"C": C, "lr": lr, "solver": "lbfgs"})
            for step in range(30):
                nbmlops.log_metrics({"loss": 1 / (1 + step * lr), "auc": 0.5 + 0.4 * step / 29 * C / 10}, step=step)
            ids.append(run.id)
    open_view(page, lab, f"#/compare?runs={','.join(ids)}")
    expect(page.get_by_test_id("compare-title")).to_have_text("Comparing 3 runs")
    charts = page.get_by_test_id("compare-chart")
    expect(charts).to_have_count(2)  # auc and loss
    for k in range(2):
        series = charts.nth(k).get_by_test_id("chart-series")
        expect(series).to_have_count(3)  # the three runs overlaid
        assert [int(series.nth(i).get_attribute("data-points")) for i in range(3)] == [30, 30, 30]
        ticks = y_ticks(charts.nth(k))
        steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:])}
        assert len(ticks) >= 3 and len(steps) == 1, ticks  # evenly spaced nice numbers
    page.shots("curves")

    pc = page.get_by_test_id("parallel-coords")
    expect(pc.get_by_test_id("pc-line")).to_have_count(3)
    expect(pc.get_by_test_id("pc-axis")).to_have_count(3)  # C, lr (they vary; solver does not) -> auc
    assert [pc.get_by_test_id("pc-axis").nth(i).get_attribute("data-key") for i in range(3)] == ["C", "lr", "auc"]
    page.get_by_test_id("compare-metric").select_option("loss")
    expect(pc.get_by_test_id("pc-axis").nth(2)).to_have_attribute("data-key", "loss")
    assert "metric=loss" in page.url
    expect(page.get_by_test_id("diff-row")).to_have_count(2)
    expect(page.get_by_test_id("compare-constant")).to_contain_text("solver=lbfgs")
    page.get_by_test_id("compare-parallel").scroll_into_view_if_needed()
    page.shots("parallel")
    assert not page.errors, page.errors


def test_run_page_shows_a_logged_png_artifact_and_sane_charts(page, lab, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with nbmlops.start_run(experiment="views-run", name="with-files") as run:
        nbmlops.log_param("depth", 3)
        nbmlops.log_metric("final_auc", 0.9)  # one point
        for step in range(LONG):
            run.log_metric("loss", 1 / (step + 1), step=step)
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.plot([1, 3, 2])
        nbmlops.log_figure(fig, "curve.png")
        plt.close(fig)
        nbmlops.log_text('{"auc": 0.9}', "summary.json")
        nbmlops.log_text("<script>window.__pwned = 1</script>", "report.html")
    open_view(page, lab, f"#/run/{run.id}")
    expect(page.get_by_test_id("run-detail-name")).to_contain_text("with-files")
    image = page.get_by_test_id("artifact-image")
    expect(image).to_have_count(1)
    image.scroll_into_view_if_needed()
    page.wait_for_function("() => { const i = document.querySelector('[data-testid=artifact-image]');"
                           " return i && i.complete && i.naturalWidth > 0; }")
    assert image.get_attribute("src").endswith("/artifacts/curve.png")
    expect(page.get_by_test_id("artifact-text")).to_contain_text('"auc": 0.9')
    html = page.locator('[data-testid="artifact"][data-name="report.html"]')
    expect(html).to_have_attribute("data-show", "download")
    assert html.locator("iframe, img, pre").count() == 0
    assert page.evaluate("() => typeof window.__pwned") == "undefined"
    page.shots("artifacts")

    one = page.locator('[data-testid="metric-chart"][data-metric-key="final_auc"]')
    ticks = y_ticks(one)
    assert ticks[0] < 0.9 < ticks[-1] and ticks[-1] - ticks[0] <= 0.25, ticks  # not 0.75-1.75 around 0.9
    dot = one.locator("circle")
    expect(dot).to_have_count(1)
    box, svg = dot.bounding_box(), one.bounding_box()
    assert abs(box["x"] + box["width"] / 2 - (svg["x"] + svg["width"] / 2)) < svg["width"] * 0.2  # not in a corner
    long = page.locator('[data-testid="metric-chart"][data-metric-key="loss"]')
    drawn = int(long.get_by_test_id("chart-series").get_attribute("data-points"))
    assert 500 <= drawn <= 1000
    expect(page.get_by_test_id("metric-chart-box").filter(has_text=f"{LONG} points")).to_have_count(1)
    started = page.locator("time").first.inner_text()
    assert re.fullmatch(r"just now|a minute ago|\d+ minutes ago", started), started
    one.scroll_into_view_if_needed()
    page.shots("charts")
    assert not page.errors, page.errors


def test_model_version_page_draws_lineage_and_drift_timeline(page, lab):
    from _drift_data import frames
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.normal(size=120), "b": rng.normal(size=120)})
    y = (X.a > 0).astype(int)
    with nbmlops.start_run(experiment="views-model", name="trained") as run:
        nbmlops.log_dataset(X.assign(y=y), "views-train", snapshot=True)
        nbmlops.log_dataset(X.assign(y=y), "views-train", role="train")
        nbmlops.log_model(LogisticRegression().fit(X, y), "model")
    nbmlops.register_model(run.id, "views-model", alias="staging")
    nbmlops.set_alias("views-model", "production", 1)
    for seed in (1, 2):
        ref, cur = frames(200, seed=seed, numeric=2, categorical=1)
        nbmlops.drift_report(ref, cur).log(model="views-model@production")
    open_view(page, lab, "#/model/views-model/1")
    lineage = page.get_by_test_id("lineage")
    for kind in ("dataset", "run", "version", "drift"):
        expect(lineage.locator(f'[data-kind="{kind}"]').first).to_be_visible()
    expect(lineage.locator('[data-kind="run"]')).to_have_attribute("href", f"#/run/{run.id}")
    expect(page.get_by_test_id("alias-history-table").get_by_test_id("history-row")).to_have_count(2)
    page.shots("lineage")
    page.get_by_test_id("model-lineage").get_by_test_id("drift-timeline-link").click()
    chart = page.get_by_test_id("drift-chart")
    expect(chart.get_by_test_id("chart-series")).to_have_attribute("data-points", "2")
    expect(page.get_by_test_id("drift-point")).to_have_count(2)
    assert len(chart.locator("text.x-tick").all_text_contents()) >= 2  # a time axis with ticks
    page.shots("drift")
    assert not page.errors, page.errors


def test_deployment_page_request_counter_grows_while_traffic_flows(page, lab):
    from sklearn.linear_model import LogisticRegression

    from nbmlops.serving.deployments import _children

    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, 3))
    nbmlops.register_model(LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)), "views-served")
    dep = nbmlops.serve("views-served/1", name="views-served")
    child = _children.pop(dep.pid, None)  # reaped here as soon as it exits, as a kernel would
    reaper = threading.Thread(target=child.wait, daemon=True) if child else None
    if reaper:
        reaper.start()
    stop = threading.Event()

    def traffic():
        client = nbmlops.get_deployment("views-served")
        while not stop.is_set():
            client.predict([[0.1, 0.2, 0.3]])
            time.sleep(0.05)

    sender = threading.Thread(target=traffic, daemon=True)
    try:
        sender.start()
        open_view(page, lab, "#/deployment/views-served")
        counter = page.get_by_test_id("deployment-requests")
        expect(counter).not_to_have_text("—")
        first = float(counter.inner_text())
        page.shots("live")
        page.wait_for_function("(n) => Number(document.querySelector('[data-testid=deployment-requests]')"
                               ".textContent) >= n", arg=first + 10, timeout=60_000)
        expect(page.get_by_test_id("deployment-rate")).to_have_text(re.compile(r"^[\d.]+ /s$"))
        expect(page.get_by_test_id("deployment-p50")).to_have_text(re.compile(r"^[\d.]+ ms$"))
        expect(page.get_by_test_id("deployment-page-url")).to_have_text(dep.url)
        expect(page.get_by_test_id("rate-chart")).to_be_visible()
        page.shots("grown")
        stop.set()
        sender.join(10)
        page.get_by_test_id("view").get_by_test_id("deployment-stop").click()
        expect(page.get_by_test_id("deployment-page-status")).to_have_text("stopped", timeout=60_000)
        expect(page.get_by_test_id("deployment-not-live")).to_be_visible()
        expect(page.get_by_test_id("deployment-page-url")).to_have_count(0)  # no dead URL
        page.shots("stopped")
        assert not page.errors, page.errors
    finally:
        stop.set()
        sender.join(10)
        dep.stop()
        if reaper:
            reaper.join(10)
