"""The monitoring timeline (``monitor_timeline``): the windows a live monitor recorded and the reports logged
against a model's versions, oldest first, with the alias moves to and from each version; its HTML (inline
SVG, every stored string escaped, kept by nbconvert), the widget over it, the dashboard's JSON, a real
model server's windows, and the dashboard view in Chromium (browser, slow)."""

from __future__ import annotations

import re
import shutil
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import nbmlops
from nbmlops import InvalidInput, NotFound
from nbmlops.monitoring.timeline import monitor_timeline
from nbmlops.serving.metrics import Metrics
from nbmlops.serving.model import ServedModel
from nbmlops.serving.monitor import Monitor

HOSTILE = '<script>alert("x")</script>'   # a feature's name: it reaches drifted_columns and every face
DEPLOYMENT = "prod<img src=x onerror=alert(1)>"  # a deployment name as a window records it
WINDOW = 200


def _rows(n: int, rng, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame({HOSTILE: rng.normal(shift, 1.0, n), "b": rng.normal(0, 1.0, n)})


def _labels(X: pd.DataFrame, rng) -> list[int]:
    return ((X[HOSTILE] + X.b + rng.normal(0, 0.3, len(X))) > 0).astype(int).tolist()


def _record(name: str, version: int, shifts: list[float], rng, labelled: bool = True) -> None:
    """One window per shift of ``version``'s traffic judged in this process by the serving monitor's own
    code, each recorded in the store as the live monitor records it (labels through ``Monitor.label``)."""
    served = ServedModel(f"{name}/{version}")
    monitor = Monitor(Metrics(name), WINDOW, 10_000, deployment=DEPLOYMENT, record=True, record_every=0)
    for i, shift in enumerate(shifts):
        X = _rows(WINDOW, rng, shift)
        monitor.add(served, X.to_numpy().tolist(), served.predict_frame(X), f"r{version}-{i}")
        if labelled:
            monitor.label(f"r{version}-{i}", version, _labels(X, rng))
        monitor.judge(monitor.versions[version])


def _fill(name: str) -> dict:
    """``name`` v1 and v2; production on v1, then two windows of v1 (calm, shifted), a drift report logged
    against v1, production moved to v2, two windows of v2 (calm, then unlabelled)."""
    rng = np.random.default_rng(0)
    X = _rows(1000, rng)
    y = pd.Series(_labels(X, rng))
    for c in (1.0, 0.05):
        nbmlops.register_model(LogisticRegression(C=c).fit(X, y), name, reference=(X, y))
    nbmlops.set_alias(name, "production", 1)
    nbmlops.set_alias(name, "staging", 2)  # not followed by any deployment: the default leaves it out
    _record(name, 1, [0.0, 3.0], rng)
    nbmlops.drift_report(X.iloc[:500], _rows(300, rng, 3.0)).log(model=f"{name}/1")
    moved = int(time.time() * 1000)
    nbmlops.set_alias(name, "production", 2)
    _record(name, 2, [0.0], rng)
    _record(name, 2, [0.0], rng, labelled=False)
    return {"moved": moved}


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    root = tmp_path_factory.mktemp("timeline") / ".nbmlops"
    nbmlops.set_store(root)
    try:
        yield root, _fill("tl")
    finally:
        nbmlops.set_store(None)


@pytest.fixture
def tl_store(filled):
    nbmlops.set_store(filled[0])
    yield filled[1]


def test_windows_come_oldest_first_per_version_with_estimated_beside_realized(tl_store):
    tl = monitor_timeline("tl")
    df = tl.windows
    assert list(df["time"]) == sorted(df["time"]) and tl.versions == [1, 2] and tl.metric == "accuracy"
    assert list(df["version"]) == [1, 1, 1, 2, 2] and list(df["kind"]) == ["window", "window", "report", "window",
                                                                             "window"]
    live = df[df["kind"] == "window"]
    assert set(live["deployment"]) == {DEPLOYMENT} and (live["rows"] == WINDOW).all()
    assert (live["method"] == "cbpe").all() and live["estimated_accuracy"].between(0.5, 1).all()
    assert list(live["drifted"]) == [False, True, False, False]  # v1 calm, v1 shifted, v2 calm twice
    assert list(df["threshold"].unique()) == [0.5] and tl.threshold == 0.5
    calm = live.iloc[0]
    assert calm["labels"] == WINDOW and abs(calm["estimated_accuracy"] - calm["realized_accuracy"]) < 0.08
    assert live.iloc[-1]["labels"] == 0 and pd.isna(live.iloc[-1]["realized_accuracy"])  # no label arrived
    shifted = live.iloc[1]
    assert shifted["drift_share"] > calm["drift_share"] and HOSTILE in shifted["drifted_columns"]
    report = df[df["kind"] == "report"].iloc[0]
    assert report["drifted"] and pd.isna(report["estimated_accuracy"]) and pd.isna(report["deployment"])
    assert (df["first"].dropna() <= df.loc[df["first"].notna(), "last"]).all()
    v1, v2 = monitor_timeline("tl", 1), monitor_timeline("tl/2")
    assert len(v1) == 3 and len(v2) == 2 and v2.version == 2  # versions kept apart
    assert set(v1.windows["version"]) == {1} and set(v2.windows["version"]) == {2}
    assert len(monitor_timeline("tl@production")) == 2  # production is on v2 now


def test_alias_moves_to_and_from_each_version_are_the_switches(tl_store):
    tl = monitor_timeline("tl")
    assert tl.aliases == ["production", "staging"]  # no deployment follows an alias: every alias
    prod = monitor_timeline("tl", alias="production")
    assert [(s["from"], s["to"]) for s in prod.switch_records] == [(None, 1), (1, 2)]
    switches = prod.switches
    assert list(switches.columns) == ["time", "alias", "from", "to", "user"] and str(switches["to"].dtype) == "Int64"
    v1 = monitor_timeline("tl", 1, alias="production")
    assert [(s["from"], s["to"]) for s in v1.switch_records] == [(None, 1), (1, 2)]  # to it, then away from it
    v2 = monitor_timeline("tl@production")
    assert v2.aliases == ["production"] and [(s["from"], s["to"]) for s in v2.switch_records] == [(1, 2)]
    move = v2.switch_records[0]["time"]
    assert move >= tl_store["moved"]
    assert all(w["time"] < move for w in v1.window_records)  # v1's windows all came before the move
    assert all(w["time"] > move for w in v2.window_records)


def test_bad_arguments_are_refused_in_one_line(tl_store):
    cases = [(lambda: monitor_timeline("nosuch"), NotFound, "no registered model named 'nosuch'"),
             (lambda: monitor_timeline("tl", 9), NotFound, "9"),
             (lambda: monitor_timeline("tl", 0), InvalidInput, "whole number from 1"),
             (lambda: monitor_timeline("tl/1", 2), InvalidInput, "names a version already"),
             (lambda: monitor_timeline("tl", alias="no such"), InvalidInput, "invalid alias"),
             (lambda: monitor_timeline("tl", limit=0), InvalidInput, "limit must be"),
             (lambda: monitor_timeline("no such model"), InvalidInput, "invalid model name")]
    for call, error, message in cases:
        with pytest.raises(error, match=re.escape(message)) as info:
            call()
        assert "\n" not in str(info.value)


def test_limit_keeps_the_newest_windows_and_says_how_many_were_left_out(tl_store):
    tl = monitor_timeline("tl", limit=2)
    assert list(tl.windows["version"]) == [2, 2] and tl.truncated == 3
    html = tl.html()
    assert "3 older left out" in html
    # the chart starts at the oldest window kept: the moves before it are data (.switches), not drawn
    assert len(tl.switch_records) == 3 and 'class="switch"' not in html and len(_svgs(html)) == 1


def _svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<svg .*?</svg>", html, flags=re.S)]


def test_html_is_inline_svg_per_version_with_every_name_escaped(tl_store):
    tl = monitor_timeline("tl", alias="production")
    html = tl._repr_html_()
    svgs = _svgs(html)  # well-formed XML: each parses
    assert [s.get("data-version") for s in svgs] == ["1", "2"]
    ns = "{http://www.w3.org/2000/svg}"
    v1, v2 = svgs
    assert len(v1.findall(f"{ns}rect[@class='over']")) == 2  # the shifted window and the drifted report
    assert not v2.findall(f"{ns}rect[@class='over']")
    assert len(v1.findall(f"{ns}g[@class='switch']")) == 2 and len(v2.findall(f"{ns}g[@class='switch']")) == 1
    assert [p.find(f"{ns}title").text for p in v1.findall(f"{ns}polyline")] == [
        "drift share", "estimated accuracy", "realized accuracy"]
    assert "production → here (from none)" in html and "production → v2 (left)" in html
    assert "<script" not in html and "<img" not in html  # the names are text only
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "prod&lt;img src=x onerror=alert(1)&gt;" in html
    assert "threshold 0.5" in html


def test_html_survives_nbconvert_and_says_when_nothing_was_recorded(tl_store):
    import nbformat
    from nbconvert import HTMLExporter

    html = monitor_timeline("tl")._repr_html_()
    out = nbformat.v4.new_output("execute_result", data={"text/html": html, "text/plain": "timeline"},
                                 execution_count=1)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("nbmlops.monitor_timeline('tl')", outputs=[out])])
    body, _ = HTMLExporter().from_notebook_node(nb)
    assert body.count("<svg") == 2 and body.count("<polyline") == 5 and body.count('class="switch"') == 4
    assert "<script>alert" not in body
    rng = np.random.default_rng(5)
    X = _rows(200, rng)
    nbmlops.register_model(LogisticRegression().fit(X, _labels(X, rng)), "quiet")
    empty = monitor_timeline("quiet")
    assert len(empty) == 0 and empty.metric is None and "No window or drift report recorded yet" in empty.html()


def test_widget_switches_version_and_alias_and_shows_a_mistake_in_one_line(tl_store):
    from nbmlops.widgets.drift import TimelineWidget, timeline_widget

    widget = timeline_widget("tl")
    assert isinstance(widget, TimelineWidget) and widget.version.options == (TimelineWidget.ALL, 1, 2)
    assert widget.view.value.count("<svg") == 2
    widget.version.value = 2
    assert widget.timeline.version == 2 and widget.view.value.count("<svg") == 1
    widget.alias.value = "no such"
    assert "invalid alias" in widget.status.value and widget.timeline.version == 2
    widget.alias.value = "production"
    assert widget.status.value == "" and widget.timeline.aliases == ["production"]
    assert widget._repr_mimebundle_()["text/html"] == widget.view.value
    assert timeline_widget("tl@production").alias.value == "production"


def test_dashboard_json_of_a_version_has_points_switches_and_the_metric(tl_store):
    from nbmlops.jupyter_server.views import drift_timeline

    d = drift_timeline("tl", 1)
    assert d["metric"] == "accuracy" and d["threshold"] == 0.5 and [p["kind"] for p in d["points"]] == [
        "window", "window", "report"]
    calm = d["points"][0]
    assert calm["share_drifted"] == 0 and calm["drift_share"] == 0.5 and calm["dataset_drift"] is False
    assert set(calm["estimated"]) == {"accuracy", "roc_auc", "f1"} and set(calm["realized"]) == {"accuracy"}
    assert calm["labels"] == WINDOW and calm["deployment"] == DEPLOYMENT
    assert d["points"][2]["page"] is True and d["points"][0]["page"] is False
    assert [(s["from"], s["to"]) for s in d["switches"] if s["alias"] == "production"] == [(None, 1), (1, 2)]


@pytest.mark.process
def test_a_real_model_server_records_windows_of_each_version_across_an_alias_move(store):
    """serve(monitor=True) following production: a calm window, a shifted one (its verdict changed: recorded
    at once), production moved to v2, v2's first window; the timeline holds them, versions apart."""
    from test_monitor_live import _send_and_wait

    rng = np.random.default_rng(3)
    X = pd.DataFrame({"a": rng.normal(0, 1, 1000), "b": rng.normal(0, 1, 1000)})
    y = ((X.a + X.b + rng.normal(0, 0.3, 1000)) > 0).astype(int)
    for c in (1.0, 0.05):
        nbmlops.register_model(LogisticRegression(C=c).fit(X, y), "served", reference=(X, y))
    nbmlops.set_alias("served", "production", 1)
    dep = nbmlops.serve("served@production", name="served-prod", monitor=True, monitor_window=100, monitor_every=100,
                        monitor_cpu=0.5, log_requests=False)
    try:
        def rows(shift: float = 0.0) -> pd.DataFrame:
            return pd.DataFrame({"a": rng.normal(shift, 1, 100), "b": rng.normal(0, 1, 100)})

        _send_and_wait(dep, rows(), rng)
        _send_and_wait(dep, rows(3.0), rng)
        nbmlops.set_alias("served", "production", 2)
        deadline = time.time() + 20
        while dep.predict(rows().iloc[:1])["version"] != 2 and time.time() < deadline:
            time.sleep(0.2)
        _send_and_wait(dep, rows(), rng, version="2")
        deadline = time.time() + 10  # the worker writes the store just before /monitor shows the window
        while len(monitor_timeline("served")) < 3 and time.time() < deadline:
            time.sleep(0.1)
    finally:
        dep.stop()
    tl = monitor_timeline("served")
    assert tl.aliases == ["production"] and [d["name"] for d in tl.deployments] == ["served-prod"]
    df = tl.windows
    assert list(df["version"]) == [1, 1, 2] and set(df["deployment"]) == {"served-prod"}
    assert list(df["drifted"]) == [False, True, False] and df["estimated_accuracy"].notna().all()
    # /feedback labels every request; the window is judged once its rows are in, maybe before the last labels
    assert df["realized_accuracy"].notna().all() and df["labels"].between(50, 100).all()
    assert [(s["from"], s["to"]) for s in tl.switch_records] == [(None, 1), (1, 2)]
    move = tl.switch_records[1]["time"]
    assert df["time"].iloc[1] < pd.Timestamp(move, unit="ms") < df["time"].iloc[2]


# --- the dashboard view in Chromium ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    pytest.importorskip("playwright.sync_api")
    pytest.importorskip("jupyterlab")
    from browser_support import CHROMIUM, JupyterLab

    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip(f"no Chromium at {CHROMIUM} (scripts/test installs Debian's chromium)")
    workdir = tmp_path_factory.mktemp("timeline-lab")
    server = JupyterLab(workdir, store=workdir / "store")
    try:
        server.start()
        yield server
    finally:
        nbmlops.set_store(None)
        server.stop()


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.timeout(300)
def test_dashboard_drift_view_draws_the_timeline_with_alias_moves_and_names_as_text(lab):
    from browser_support import CHROMIUM, CHROMIUM_ARGS, Shots
    from playwright.sync_api import expect, sync_playwright

    nbmlops.set_store(lab.store)
    _fill("tlb")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
            page.on("dialog", lambda d: errors.append(f"dialog: {d.message}"))  # an alert() would be an injection
            shots = Shots(page, "test_dashboard_drift_view_timeline")
            page.goto(lab.url("/nbmlops/") + "#/drift/tlb/1", wait_until="domcontentloaded", timeout=120_000)
            try:
                expect(page.get_by_test_id("loading")).to_have_count(0, timeout=60_000)
                expect(page.get_by_test_id("drift-title")).to_have_text("Drift of tlb v1")
                chart = page.get_by_test_id("drift-chart")
                expect(chart.get_by_test_id("chart-series")).to_have_attribute("data-points", "3")
                perf = chart.get_by_test_id("perf-series")
                expect(perf).to_have_count(2)
                assert perf.nth(0).get_attribute("data-label") == "estimated accuracy"
                assert perf.nth(0).get_attribute("data-points") == "2"  # the two live windows
                assert perf.nth(1).get_attribute("data-points") == "2"  # the report had no labels
                expect(chart.get_by_test_id("over-threshold")).to_have_count(2)
                moves = chart.get_by_test_id("alias-switch")
                expect(moves).to_have_count(2)  # production to v1 and away from it (staging went to v2 only)
                assert sorted((m.get_attribute("data-alias"), m.get_attribute("data-to"))
                              for m in moves.all()) == [("production", "1"), ("production", "2")]
                rows = page.get_by_test_id("drift-point")
                expect(rows).to_have_count(3)
                expect(rows.nth(1).get_by_test_id("point-verdict")).to_have_text("DRIFT")
                expect(rows.nth(2)).to_contain_text(DEPLOYMENT)  # the names as text, never as markup
                expect(rows.nth(1)).to_contain_text(HOSTILE)
                assert page.locator("#view img, #view script").count() == 0
                expect(page.get_by_test_id("switch-row")).to_have_count(2)
                assert len(chart.locator("text.x-tick").all_text_contents()) >= 2
                shots("v1")
                page.goto(lab.url("/nbmlops/") + "#/drift/tlb/2", wait_until="domcontentloaded")
                expect(page.get_by_test_id("drift-title")).to_have_text("Drift of tlb v2")
                expect(page.get_by_test_id("drift-chart").get_by_test_id("alias-switch")).to_have_count(2)
                expect(page.get_by_test_id("drift-point")).to_have_count(2)
                shots("v2")
            except Exception:
                shots("failure")
                raise
            assert not errors, errors
        finally:
            browser.close()
