"""Widgets that fit a notebook cell: the runs browser shows name, status, the metrics, then the params
that vary (the constant ones folded), the registry widget's table lines up, relative times read as
people read them; and, in a real JupyterLab at its default 1280×800 window, the key metric and every
button sit wholly inside the cell's output, with no broken images, live and in the nbconvert report.

Browser screenshots go to build/test-artifacts/browser/ (test_widgets_fit_*).
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

import nbmlops
from nbmlops.display.html import age, ago
from nbmlops.display.runs import runs_columns, runs_table

HTML = "text/html"
# sklearn-like: a model's every get_params() logged, most of them defaults nobody set
DEFAULTS = {"bootstrap": True, "ccp_alpha": 0.0, "class_weight": None, "criterion": "gini",
            "max_features": "sqrt", "max_leaf_nodes": None, "min_impurity_decrease": 0.0,
            "min_samples_leaf": 1, "min_samples_split": 2, "min_weight_fraction_leaf": 0.0,
            "n_jobs": None, "oob_score": False, "random_state": 0, "verbose": 0, "warm_start": False}


def log_forests(experiment: str = "forests") -> list[str]:
    """Four runs: max_depth and n_estimators vary, the rest are the same defaults; auc and loss."""
    ids = []
    for k, (depth, n) in enumerate([(2, 10), (4, 10), (8, 50), (None, 50)]):
        with nbmlops.start_run(experiment=experiment, name=f"forest-{k}") as run:
            nbmlops.log_params({**DEFAULTS, "max_depth": depth, "n_estimators": n})
            nbmlops.log_metric("auc", 0.8 + k / 50)
            nbmlops.log_metric("loss", 0.5 - k / 20)
        ids.append(run.id)
    return ids


def header_cells(table_html: str) -> list[str]:
    """The text of a table's header cells, tags stripped."""
    head = table_html.split("<thead>", 1)[1].split("</thead>", 1)[0]
    return [re.sub(r"<[^>]+>", "", th).strip() for th in re.findall(r"<th\b.*?</th>", head, re.S)]


# -- which columns (fast, no browser) --------------------------------------------------------------
def test_columns_are_name_status_metrics_then_the_params_that_vary(store):
    log_forests()
    listing = nbmlops.run_listing("forests")
    sel = listing.query()
    cols, folded = runs_columns(listing.columns, sel.values)
    assert cols[:4] == ["run_name", "status", "metrics.auc", "metrics.loss"]
    params = [c for c in cols if c.startswith("params.")]
    assert params == ["params.max_depth", "params.n_estimators"]
    assert cols.index("params.n_estimators") < cols.index("start_time")
    assert set(folded) == {f"params.{k}" for k in DEFAULTS}
    assert folded["params.criterion"] == "gini" and folded["params.class_weight"] is None
    cols, folded = runs_columns(listing.columns, sel.values, first="metrics.loss")  # the sort metric leads
    assert cols[2:4] == ["metrics.loss", "metrics.auc"]
    cols, folded = runs_columns(listing.columns, sel.values, all_params=True)
    assert folded == {} and len([c for c in cols if c.startswith("params.")]) == len(DEFAULTS) + 2


def test_params_some_runs_lack_come_after_those_that_differ_and_one_run_varies_nothing(store):
    log_forests()
    with nbmlops.start_run(experiment="forests", name="logreg", tags={"estimator": "LogisticRegression"}):
        nbmlops.log_params({"C": 1.0, "criterion": "gini"})
    sel = nbmlops.run_listing("forests").query()
    cols, folded = runs_columns(nbmlops.run_listing("forests").columns, sel.values)
    shown = [c for c in cols if c.startswith(("params.", "tags."))]
    assert shown[:2] == ["params.max_depth", "params.n_estimators"]  # values that differ first
    assert "params.C" in shown and "params.bootstrap" in shown and shown[-1] == "tags.estimator"  # then gaps
    assert "params.criterion" not in cols
    nones = {f"params.{k}": None for k, v in DEFAULTS.items() if v is None}  # None and absent read the same
    assert folded == {"params.criterion": "gini", **nones}
    one = nbmlops.run_listing("forests").query("forest-2")
    cols, folded = runs_columns(nbmlops.run_listing("forests").columns, one.values)
    assert not [c for c in cols if c.startswith("params.")] and folded["params.max_depth"] == 8


def test_the_table_folds_the_constant_params_into_a_note(store):
    log_forests()
    listing = nbmlops.run_listing("forests")
    sel = listing.query()
    cols, folded = runs_columns(listing.columns, sel.values)
    html = runs_table(sel.page(0, 50), columns=cols, folded=folded)
    assert header_cells(html)[:6] == ["name", "status", "metric auc", "metric loss", "param max_depth",
                                      "param n_estimators"]
    assert "+15 params the same in every listed run" in html
    assert "min_weight_fraction_leaf" in html.split("<table", 1)[0]  # in the fold above the table, not a column
    assert "min_weight_fraction_leaf" not in "".join(header_cells(html))
    with nbmlops.start_run(experiment="forests", name="boosted",
                           tags={"estimator": "sklearn.ensemble._hist_gradient_boosting.gradient_boosting."
                                              "HistGradientBoostingClassifier", "note": "x" * 60}):
        pass
    sel = nbmlops.run_listing("forests").query()
    cols, folded = runs_columns(nbmlops.run_listing("forests").columns, sel.values)
    html = runs_table(sel.page(0, 50), columns=cols, folded=folded)
    assert ">…HistGradientBoostingClassifier</td>" in html and f">{'x' * 39}…</td>" in html  # the class, not the path
    assert 'title="sklearn.ensemble._hist_gradient_boosting' in html  # the whole value in the tooltip


def test_runs_browser_and_its_static_html_show_the_same_columns_and_a_toggle_unfolds(store):
    log_forests()
    b = nbmlops.runs_browser("forests")
    static = b._repr_mimebundle_()[HTML]
    live = header_cells(b.table.value)
    assert header_cells(static) == live and live[2] == "metric auc"
    assert "+15 params the same in every listed run" in static
    assert re.search(r"as of \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", static)  # what "2 s ago" counts from
    b.all_params.value = True
    assert "param class_weight" in header_cells(b.table.value) and "the same in every listed run" not in b.table.value
    b.all_params.value = False
    b.sort.value = "metrics.loss"
    assert header_cells(b.table.value)[2].startswith("metric loss")
    b.query.value = "forest-1"  # one run: nothing varies, every param folded
    assert not [h for h in header_cells(b.table.value) if h.startswith("param ")]
    assert "+17 params the same in every listed run" in b.table.value


def test_compare_pictures_exist_only_once_drawn(store):
    ids = log_forests()
    b = nbmlops.runs_browser("forests")
    images = [c for c in b.pictures.children]
    assert images == []  # no empty Image widget (a broken-image icon in JupyterLab)
    b.runs.value = tuple(ids[:2])
    b.curve_metric.value = "auc"
    b.compare_button.click()
    assert [bytes(i.value)[:4] for i in b.pictures.children] == [b"\x89PNG"] * 2


def test_registry_versions_table_aligns_headers_and_pads_cells(store):
    from nbmlops.display.registry import versions_table

    for c in (0.1, 1.0):
        with nbmlops.start_run(experiment="reg"):
            nbmlops.log_metric("auc", 0.6 + c / 10)
        from sklearn.dummy import DummyClassifier

        model = DummyClassifier().fit([[0], [1]], [0, 1])
        nbmlops.register_model(model, "reg", alias="production" if c > 0.5 else None)
    html = versions_table(nbmlops.list_versions("reg"))
    ths = re.findall(r"<th\b[^>]*>", html)
    tds = re.findall(r"<td\b[^>]*>", html.split("<tbody>", 1)[1].split("</tr>", 1)[0])
    assert len(ths) == len(tds) >= 5
    for th, td in zip(ths, tds):  # one alignment per column, header and cells alike; every cell padded
        assert re.search(r"text-align:(\w+)", th).group(1) == re.search(r"text-align:(\w+)", td).group(1)
        assert "padding:" in td and "padding:" in th
    assert ">just now</span>" in html and re.search(r"\d\d:\d\d:\d\d\.\d", html) is None  # relative, no raw stamp
    widget = nbmlops.registry_widget("reg")
    assert widget.versions.value == html


@pytest.mark.parametrize("seconds, text", [
    (0.4, "just now"), (42, "42 s ago"), (61, "1 min ago"), (3_599, "59 min ago"), (3_600, "1 h ago"),
    (5 * 3600 + 59 * 60, "5 h ago"), (86_400 * 1.5, "yesterday"), (86_400 * 3.2, "3 days ago"),
    (86_400 * 15, "2 weeks ago"), (86_400 * 70, "2 months ago"), (24_843 * 3600, "2 years ago"),
])
def test_relative_times_read_as_people_read_them(seconds, text):
    now = 1_800_000_000_000
    assert ago(now - int(seconds * 1000), now=now) == text
    assert age(seconds) == text
    assert ago(None) == "—" and ago(now + 5_000, now=now) == "just now"  # a clock a little ahead


# -- in a real JupyterLab at its default window (slow; Chromium and a JupyterLab server) -------------
VIEWPORT = {"width": 1280, "height": 800}
NOTEBOOK = "widgets_fit.ipynb"
CELLS = [
    "import nbmlops\n"
    "from sklearn.datasets import load_breast_cancer\n"
    "from sklearn.ensemble import RandomForestClassifier\n"
    "from sklearn.metrics import roc_auc_score\n"
    "from sklearn.model_selection import train_test_split\n"
    "X, y = load_breast_cancer(return_X_y=True, as_frame=True)\n"
    "Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=0)",
    # six runs: every get_params() logged (19 params, two of them set), the auc
    "for depth, n in [(2, 10), (3, 10), (4, 20), (6, 20), (8, 30), (None, 30)]:\n"
    "    with nbmlops.start_run(experiment='forest-grid', name=f'forest-depth{depth}-n{n}'):\n"
    "        model = RandomForestClassifier(n_estimators=n, max_depth=depth, random_state=0).fit(Xtr, ytr)\n"
    "        nbmlops.log_params(model.get_params())\n"
    "        nbmlops.log_metric('auc', roc_auc_score(yte, model.predict_proba(Xte)[:, 1]))\n"
    "        nbmlops.log_model(model, 'forest')\n"
    "    nbmlops.register_model(model, 'forest-grid', alias='production' if depth == 4 else None)",
    "nbmlops.runs_browser('forest-grid')",
    "nbmlops.registry_widget('forest-grid')",
]

# the text box of each cell of a table's header row and first body row, and each cell's box
JS_TABLE_TEXT = """(table) => {
    const box = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.right]; };
    const text = (el) => {
        const range = document.createRange(); range.selectNodeContents(el);
        const r = range.getBoundingClientRect(); return [r.left, r.right];
    };
    const row = (tr) => [...tr.children].map(c => ({cell: box(c), text: text(c), label: c.innerText.trim()}));
    const head = table.querySelector('thead tr') || table.querySelector('tr');
    const body = [...table.querySelectorAll('tbody tr')].filter(tr => tr !== head);
    return {head: row(head), rows: body.map(row)};
}"""


def inside(inner: dict, outer: dict, slack: float = 0.5) -> bool:
    return (inner["x"] >= outer["x"] - slack and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + slack
            and inner["width"] > 0)


def assert_column_fits(area, table, header_text: str) -> int:
    """The column headed ``header_text``: its header and every cell wholly inside ``area``'s box."""
    box = area.bounding_box()
    headers = table.locator("thead th")
    labels = [t.strip() for t in headers.all_inner_texts()]
    index = next((i for i, t in enumerate(labels) if header_text in t), None)
    assert index is not None, f"no {header_text!r} column in {labels}"
    header = headers.nth(index)
    assert inside(header.bounding_box(), box), (header_text, header.bounding_box(), box)
    cells = table.locator(f"tbody tr > td:nth-child({index + 1})")
    assert cells.count() >= 1
    for k in range(cells.count()):
        assert inside(cells.nth(k).bounding_box(), box), (header_text, k, cells.nth(k).bounding_box(), box)
    return index


def assert_buttons_whole(area, buttons) -> int:
    """Every button wholly inside ``area`` and its label not cut (no ellipsis: nothing scrolled away)."""
    box = area.bounding_box()
    for k in range(buttons.count()):
        button = buttons.nth(k)
        b = button.bounding_box()
        assert b is not None and inside(b, box), (button.inner_text(), b, box)
        cut = button.evaluate("(el) => el.scrollWidth > el.clientWidth + 1")
        assert not cut, f"button {button.inner_text()!r} is cut ({b['width']:.0f} px wide)"
    return buttons.count()


def assert_aligned(table) -> None:
    """Each header's text starts (or, right-aligned, ends) where its column's values do, and the text of
    neighbouring cells never touches."""
    got = table.evaluate(JS_TABLE_TEXT)
    head, rows = got["head"], got["rows"]
    assert rows and all(len(r) == len(head) for r in rows), got
    for row in rows:
        for h, c in zip(head, row):
            assert abs(h["cell"][0] - c["cell"][0]) < 1 and abs(h["cell"][1] - c["cell"][1]) < 1, (h, c)
            if not c["label"]:
                continue
            left, right = abs(h["text"][0] - c["text"][0]), abs(h["text"][1] - c["text"][1])
            assert min(left, right) < 1.5, f"header {h['label']!r} is not aligned with its value {c['label']!r}"
        filled = [c for c in row if c["label"]]
        for a, b in zip(filled, filled[1:]):
            assert b["text"][0] - a["text"][1] >= 8, f"{a['label']!r} and {b['label']!r} run together"


def assert_no_broken_images(scope) -> int:
    images = scope.locator("img")
    for k in range(images.count()):
        img = images.nth(k)
        src = img.get_attribute("src") or ""
        assert src.strip(), "an <img> without a src (a broken-image icon)"
        img.scroll_into_view_if_needed()
        ok = img.evaluate("(el) => el.complete && el.naturalWidth > 0")
        assert ok, f"a broken image: {src[:60]}"
    return images.count()


@pytest.fixture(scope="module")
def lab_page(tmp_path_factory):
    """A real JupyterLab with the notebook of six runs run in it, in Chromium at 1280×800: (lab, page)."""
    pytest.importorskip("playwright.sync_api")
    pytest.importorskip("jupyterlab")
    import nbformat
    from browser_support import CHROMIUM, CHROMIUM_ARGS, JupyterLab, Shots, run_all_cells
    from playwright.sync_api import expect, sync_playwright

    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip(f"no Chromium at {CHROMIUM} (scripts/test installs Debian's chromium)")
    workdir = tmp_path_factory.mktemp("jupyterlab-fit")
    lab = JupyterLab(workdir, store=workdir / "store")
    lab.root.mkdir(parents=True)
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    nbformat.write(nb, lab.root / NOTEBOOK)
    expect.set_options(timeout=30_000)
    try:
        lab.start()
        with sync_playwright() as p:
            chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                context = chromium.new_context(viewport=VIEWPORT)
                context.set_default_timeout(60_000)
                page = context.new_page()
                page.shots = Shots(page, "test_widgets_fit")
                started = time.monotonic()
                page.goto(lab.url(f"/lab/tree/{NOTEBOOK}?reset"), wait_until="domcontentloaded", timeout=120_000)
                expect(page.locator(".jp-Notebook .jp-Cell").first).to_be_visible(timeout=120_000)
                progress = run_all_cells(page, NOTEBOOK, timeout=300)
                assert not progress["errors"] and progress["ran"] == progress["total"], \
                    f"{progress}\n{lab.log_tail()}"
                page.ran_in = time.monotonic() - started
                yield lab, page
            finally:
                chromium.close()
    finally:
        expect.set_options(timeout=5_000)
        lab.stop()


def widget_output(page, button_text: str):
    """The output area of the cell whose widget has a button reading ``button_text``, scrolled into view."""
    from playwright.sync_api import expect

    button = page.locator(".jupyter-widgets button", has_text=button_text)
    area = page.locator(".jp-Notebook .jp-OutputArea-output", has=button)
    expect(area).to_have_count(1)
    area.scroll_into_view_if_needed()
    expect(area.locator(button)).to_be_visible()
    return area


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.process  # a JupyterLab server and its kernel
@pytest.mark.timeout(600)
def test_live_widgets_fit_jupyterlab_at_its_default_width(lab_page):
    from playwright.sync_api import expect

    lab, page = lab_page
    assert page.viewport_size == VIEWPORT
    runs = widget_output(page, "Compare")
    page.shots("runs-browser", full_page=False)
    table = runs.locator("table").first
    expect(table).to_contain_text("forest-depth4-n20")
    assert_column_fits(runs, table, "auc")
    assert_column_fits(runs, table, "max_depth")  # the params that vary come next ...
    labels = table.locator("thead th").all_inner_texts()
    assert not [t for t in labels if "min_weight_fraction_leaf" in t or "class_weight" in t]  # ... not defaults
    expect(runs).to_contain_text("+17 params the same in every listed run")
    assert runs.bounding_box()["x"] + runs.bounding_box()["width"] <= VIEWPORT["width"]
    assert assert_buttons_whole(runs, runs.locator("button")) >= 8
    assert_no_broken_images(runs)
    assert runs.locator("img").count() == 0  # nothing compared yet: no picture at all

    # compare two runs: two real pictures, still inside the cell
    runs.locator("select[multiple]").select_option(index=[0, 1])
    runs.locator("button", has_text="Compare").click()
    expect(runs.locator("img")).to_have_count(2, timeout=60_000)
    assert assert_no_broken_images(runs) == 2
    for k in range(2):
        assert inside(runs.locator("img").nth(k).bounding_box(), runs.bounding_box())
    page.shots("runs-compared", full_page=False)

    # every param shown: the wide table scrolls inside the cell, the panel and its buttons stay put
    runs.get_by_text("every param").click()
    expect(table.locator("thead th", has_text="min_weight_fraction_leaf")).to_have_count(1)
    assert inside(table.locator("xpath=..").bounding_box(), runs.bounding_box())
    assert runs.bounding_box()["x"] + runs.bounding_box()["width"] <= VIEWPORT["width"]
    assert_buttons_whole(runs, runs.locator("button"))
    assert_column_fits(runs, table, "auc")
    page.shots("runs-every-param", full_page=False)

    registry = widget_output(page, "Move alias")
    versions = registry.locator("table").first
    expect(versions).to_contain_text(re.compile(r"ago|just now"))  # relative times (a fast run: 'just now')
    assert_aligned(versions)
    assert_buttons_whole(registry, registry.locator("button"))
    assert_no_broken_images(registry)
    page.shots("registry", full_page=False)
    print(f"notebook opened and ran in JupyterLab in {page.ran_in:.1f} s")


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.process  # a JupyterLab server and its kernel
@pytest.mark.timeout(300)
def test_static_html_report_fits_the_same_width(lab_page, tmp_path):
    """The notebook saved from JupyterLab, exported by nbconvert (no widget state: each widget's
    text/html), shown in Chromium at 1280 px: the same columns fit."""
    import nbformat
    from browser_support import ARTIFACTS
    from nbconvert import HTMLExporter
    from playwright.sync_api import expect

    lab, page = lab_page
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    path = lab.root / NOTEBOOK
    for _ in range(120):
        nb = nbformat.read(path, as_version=4)
        if all(c.get("outputs") for c in nb.cells[2:]):  # the two widgets' cells
            break
        page.wait_for_timeout(250)  # short polling: the save is asynchronous
    assert "widgets" not in nb.metadata  # JupyterLab does not save widget state by default
    html, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    report = ARTIFACTS / "test_widgets_fit-report.html"
    report.write_text(html)

    context = page.context.browser.new_context(viewport=VIEWPORT)
    try:
        pg = context.new_page()
        pg.route(re.compile(r"^https?://"), lambda route: route.abort())  # no CDN: the report stands alone
        pg.goto(report.as_uri(), wait_until="domcontentloaded")
        runs = pg.locator(".jp-OutputArea-output", has_text="runs 1–6 of 6")
        expect(runs).to_have_count(1)
        runs.scroll_into_view_if_needed()
        table = runs.locator("table").first
        assert_column_fits(runs, table, "auc")
        assert_column_fits(runs, table, "max_depth")
        expect(runs).to_contain_text("+17 params the same in every listed run")
        assert_no_broken_images(pg.locator("body"))
        pg.screenshot(path=str(ARTIFACTS / "test_widgets_fit-report-runs.png"))
        registry = pg.locator(".jp-OutputArea-output", has_text="model forest-grid")
        expect(registry).to_have_count(1)
        registry.scroll_into_view_if_needed()
        assert_aligned(registry.locator("table").first)
        pg.screenshot(path=str(ARTIFACTS / "test_widgets_fit-report-registry.png"))
    finally:
        context.close()
