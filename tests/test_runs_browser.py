"""The runs browser (``nbmlops.runs_browser``, ``%track --browse``), the run listing and run tags
behind it, and the static HTML every nbmlops widget leaves where no widget manager runs."""

from __future__ import annotations

import random

import numpy as np
import pytest
from IPython.core.error import UsageError

import nbmlops
from nbmlops.errors import InvalidInput, NotFound

HTML = "text/html"
WIDGET = "application/vnd.jupyter.widget-view+json"
N_MANY = 2_000


def fitted(C: float = 1.0):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    return LogisticRegression(C=C).fit(X, (X[:, 0] > 0).astype(int))


def make_runs(model_run: bool = True) -> dict[str, str]:
    """Four runs in 'exp' (one with a model, one failed) and one in 'other': name -> id."""
    ids = {}
    for name, params, accs, tags in [("alpha", {"model": "rf", "depth": 3, "seed": 1}, [0.5, 0.7, 0.9], {"team": "red"}),
                                     ("beta", {"model": "rf", "depth": 5, "seed": 1}, [0.4, 0.6], {"team": "blue"}),
                                     ("gamma", {"model": "lr", "depth": 3, "seed": 1}, [0.8], {"team": "red"})]:
        with nbmlops.start_run(experiment="exp", name=name, tags=tags) as run:
            nbmlops.log_params(params)
            for acc in accs:
                nbmlops.log_metric("acc", acc)
            nbmlops.log_metric("loss", 1 - accs[-1])
            if model_run and name == "alpha":
                nbmlops.log_model(fitted(), "clf")
        ids[name] = run.id
    with pytest.raises(RuntimeError), nbmlops.start_run(experiment="exp", name="broken") as run:
        raise RuntimeError("boom")
    ids["broken"] = run.id
    with nbmlops.start_run(experiment="other", name="elsewhere") as run:
        nbmlops.log_param("model", "rf")
    ids["elsewhere"] = run.id
    return ids


def page_names(browser) -> list[str]:
    return list(browser._page["run_name"])


# -- domain: run tags and the listing -------------------------------------------------------------
def test_set_run_tags_tags_a_finished_run_and_checks_its_input(store):
    with nbmlops.start_run(experiment="e", tags={"team": "red"}) as run:
        pass
    nbmlops.set_run_tags(run.id[:8], {"reviewed": "yes", "score": 3})
    nbmlops.set_run_tag(run.id, "team", "blue")
    assert nbmlops.get_run(run.id).tags == {"team": "blue", "reviewed": "yes", "score": "3"}
    with pytest.raises(InvalidInput, match="invalid tag name ''"):
        nbmlops.set_run_tag(run.id, "", "x")
    with pytest.raises(InvalidInput, match="takes a dict"):
        nbmlops.set_run_tags(run.id, ["a"])
    with pytest.raises(NotFound):
        nbmlops.set_run_tags("abcdef12", {"a": "b"})
    with nbmlops.start_run(experiment="e") as live:  # a run this process is writing: through the run itself
        nbmlops.set_run_tags(live.id, {"phase": "1"})
        nbmlops.set_tag("other", "x")  # the run's own next save keeps the tag set from outside
    assert nbmlops.get_run(live.id).tags == {"phase": "1", "other": "x"}


def test_run_listing_filters_sorts_and_pages_like_search_runs(store):
    ids = make_runs()
    listing = nbmlops.run_listing("exp")
    assert len(listing) == 4 and listing.params == ["depth", "model", "seed"] and listing.metrics == ["acc", "loss"]
    assert "experiment" not in listing.columns and "experiment" in nbmlops.run_listing().columns
    sel = listing.query("metrics.acc > 0.55 and params.model = 'rf'", sort="metrics.acc", descending=True)
    assert sel.ids == [ids["alpha"], ids["beta"]]
    assert sel.ids == list(nbmlops.search_runs("exp", "metrics.acc > 0.55 and params.model = 'rf'",
                                               order_by="metrics.acc desc")["run_id"])
    page = sel.page(1, 1)
    assert list(page["run_name"]) == ["beta"] and "params.seed" in page.columns and "tags.team" in page.columns
    assert listing.query(sort="metrics.acc").ids[-1] == ids["broken"]  # no value: last, either way
    assert listing.query(sort="metrics.acc", descending=True).ids[-1] == ids["broken"]
    assert listing.query(sort="params.depth").values("params.depth") == [3, 3, 5, None]
    # plain words: names, ids and tags, case-insensitively, every word
    assert set(listing.query("RED").ids) == {ids["alpha"], ids["gamma"]}
    assert listing.query("team=red gam").ids == [ids["gamma"]]
    assert listing.query(ids["beta"][:10]).ids == [ids["beta"]]
    assert listing.query("nothing-like-this").total == 0
    for bad in ("metrics.acc >", "params.model = rf", "metrics.acc > 0.5 and", "status in FINISHED)", "foo = 1"):
        with pytest.raises(InvalidInput):
            listing.query(bad)
    with pytest.raises(InvalidInput, match="cannot sort by"):
        listing.query(sort="metrics.nope")
    with pytest.raises(NotFound, match="no experiment named 'nope'"):
        nbmlops.run_listing("nope")


def test_listing_update_follows_tags_and_deletions(store):
    ids = make_runs(model_run=False)
    listing = nbmlops.run_listing("exp")
    nbmlops.set_run_tag(ids["beta"], "reviewed", "yes")
    nbmlops.delete_run(ids["gamma"])
    listing.update([ids["beta"], ids["gamma"]])
    assert "reviewed" in listing.tags and ids["gamma"] not in listing.query().ids
    assert listing.query("tags.reviewed = 'yes'").ids == [ids["beta"]]


# -- the widget ---------------------------------------------------------------------------------
def test_browser_filters_sorts_pages_and_reports_a_bad_filter_in_one_line(store):
    ids = make_runs()
    b = nbmlops.runs_browser("exp", page_size=25)
    assert b.experiment.value == "exp" and set(page_names(b)) == {"alpha", "beta", "gamma", "broken"}
    assert "elsewhere" not in b.table.value and "4 runs" in b.page_label.value
    b.query.value = "params.model = 'rf'"
    assert set(page_names(b)) == {"alpha", "beta"}
    b.sort.value = "metrics.acc"
    b.descending.value = False
    assert page_names(b) == ["beta", "alpha"] and "acc ▲" in b.table.value
    b.query.value = "metrics.acc >"  # malformed: one line, the last good table stays
    assert "must be NAME OPERATOR VALUE" in b.message.value and "Traceback" not in b.message.value
    assert page_names(b) == ["beta", "alpha"]
    b.query.value = "red"  # plain words
    assert b.message.value == "" and page_names(b) == ["gamma", "alpha"]
    b.query.value = ""
    b.experiment.value = ""  # all experiments: the experiment column appears
    assert "elsewhere" in b.table.value and "5 runs" in b.page_label.value and ">experiment<" in b.table.value
    b.sort.value = "experiment"
    assert page_names(b)[-1] == "elsewhere"
    with nbmlops.start_run(experiment="exp", name="late"):
        pass
    assert "late" not in b.table.value  # read once ...
    b.refresh_button.click()
    assert "late" in b.table.value and "6 runs" in b.page_label.value  # ... and again on Refresh
    with nbmlops.start_run(experiment="newer"):
        pass
    b.experiment.value = "exp"
    b.refresh_button.click()  # new experiments reach the dropdown; the chosen one stays
    assert b.experiment.value == "exp" and "newer" in [v for _, v in b.experiment.options]
    assert ids


def test_compare_overlays_curves_plots_a_param_against_a_metric_and_diffs_params(store):
    ids = make_runs()
    b = nbmlops.runs_browser("exp")
    b.compare_button.click()
    assert "select runs to compare" in b.compare_message.value
    b.runs.value = (ids["alpha"], ids["gamma"])
    b.curve_metric.value = "acc"
    b.scatter_param.value, b.scatter_metric.value = "depth", "acc"
    b.compare_button.click()
    assert bytes(b.curves.value).startswith(b"\x89PNG") and bytes(b.scatter.value).startswith(b"\x89PNG")
    diff = b.diff.value
    rows = {k: next(r for r in diff.split("<tr")[2:] if f">{k}<" in r) for k in ("model", "depth", "seed")}
    assert "background:#fff8c5" in rows["model"] and "background:#fff8c5" not in rows["depth"]  # only what differs
    assert "background:#fff8c5" not in rows["seed"] and "1 of 3 params differ" in diff
    assert diff.index(">model<") < diff.index(">depth<")  # differing params first
    before = bytes(b.scatter.value)
    b.scatter_param.value = "model"  # a text param: categories on the x axis; the plot follows the dropdown
    assert bytes(b.scatter.value) != before and bytes(b.scatter.value).startswith(b"\x89PNG")
    b.runs.value = (ids["broken"],)  # a run that logged no acc
    b.compare_button.click()
    assert "logged no acc" in b.compare_message.value
    static = b._repr_mimebundle_()[HTML]
    assert "data:image/png;base64," in static and ">params<" in static


def test_selection_survives_paging_and_filtering(store):
    for k in range(12):
        with nbmlops.start_run(experiment="p", name=f"r{k:02d}"):
            nbmlops.log_metric("acc", k / 12)
    b = nbmlops.runs_browser("p", page_size=25)
    b.page_size.value = 25
    b.sort.value, b.descending.value = "run_name", False
    first = b.runs.options[0][1]
    b.runs.value = (first,)
    b.query.value = "metrics.acc > 0.5"  # r00 is filtered out of the table but stays selected
    assert b.chosen == [first] and b.runs.options[0][1] == first and "r00" not in b.table.value
    assert b.runs.value == (first,)


def test_tag_note_delete_and_register_from_the_browser(store):
    ids = make_runs()
    b = nbmlops.runs_browser("exp")
    b.runs.value = (ids["alpha"], ids["beta"])
    b.tag_key.value, b.tag_value.value = "reviewed", "yes"
    b.tag_button.click()
    assert "tagged 2 runs reviewed=yes" in b.result.value
    assert nbmlops.get_run(ids["alpha"]).tags["reviewed"] == "yes" and "reviewed" in b.table.value
    b.note.value = "best so far <b>really</b>"
    b.note_button.click()
    assert nbmlops.get_run(ids["beta"]).tags["note"] == "best so far <b>really</b>"
    assert "&lt;b&gt;really" in b.table.value and "<b>really" not in b.table.value
    b.runs.value = (ids["alpha"],)
    assert list(b.run_model.options) == ["clf"]
    b.model_name.value = "churn"
    b.register_button.click()
    assert "registered churn version 1 from run alpha" in b.result.value
    version = nbmlops.get_model_version("churn/1")
    assert version.doc["run_id"] == ids["alpha"] and version.doc["params"]["depth"] == 3
    b.runs.value = (ids["gamma"], ids["broken"])
    b.delete_button.click()
    assert "deleted 2 runs" in b.result.value and b.chosen == []
    assert set(nbmlops.search_runs("exp")["run_name"]) == {"alpha", "beta"}
    assert set(page_names(b)) == {"alpha", "beta"} and "2 runs" in b.page_label.value
    nbmlops.restore_run(ids["gamma"])  # soft: it comes back
    assert "gamma" in set(nbmlops.search_runs("exp")["run_name"])


def test_actions_answer_bad_input_with_one_line_and_write_nothing(store):
    ids = make_runs()
    b = nbmlops.runs_browser("exp")
    before = {name: nbmlops.get_run(i).tags for name, i in ids.items()}
    for button in (b.tag_button, b.note_button, b.delete_button):
        b.result.value = ""
        button.click()
        assert "select one or more runs first" in b.result.value
    b.register_button.click()
    assert "select the run whose model to register first" in b.result.value
    b.runs.value = (ids["beta"],)
    b.tag_key.value = "  "
    b.tag_button.click()
    assert "give the tag a key" in b.result.value
    b.tag_key.value = "../x"
    b.tag_button.click()
    assert "invalid tag name" in b.result.value
    b.note_button.click()
    assert "write the note first" in b.result.value
    b.model_name.value = "churn"
    b.register_button.click()  # beta logged no model
    assert "run beta logged no model" in b.result.value
    b.runs.value = (ids["alpha"], ids["beta"])
    b.register_button.click()
    assert "select exactly one run" in b.result.value
    b.runs.value = (ids["alpha"],)
    b.model_name.value = "bad name/.."
    b.register_button.click()
    assert "invalid model name" in b.result.value and "Traceback" not in b.result.value
    assert nbmlops.list_models().empty
    assert {name: nbmlops.get_run(i).tags for name, i in ids.items()} == before
    assert len(nbmlops.search_runs("exp")) == 4
    with pytest.raises(NotFound, match="no experiment named 'nope'"):
        nbmlops.runs_browser("nope")


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """A store of 2,000 runs (two experiments), built once for the module."""
    root = tmp_path_factory.mktemp("many") / ".nbmlops"
    nbmlops.set_store(root)
    rng = random.Random(7)
    try:
        for k in range(N_MANY):
            with nbmlops.start_run(experiment="many" if k % 10 else "few", name=f"run-{k:04d}",
                                   tags={"team": ("red", "blue")[k % 2]}):
                nbmlops.log_params({"model": ("rf", "gbm", "lr")[k % 3], "depth": k % 10})
                nbmlops.log_metric("acc", round(rng.random(), 6))
                if k % 7:
                    nbmlops.log_metric("loss", round(rng.random() * 2, 6))
    finally:
        nbmlops.set_store(None)
    return root


@pytest.fixture
def big(many):
    nbmlops.set_store(many)
    yield many
    nbmlops.set_store(None)


def test_thousands_of_runs_page_filter_and_sort_correctly(big):
    b = nbmlops.runs_browser("many")
    everything = nbmlops.search_runs("many")
    assert b.selection.total == len(everything) == 1_800 and "page 1 of 36 · 1,800 runs" in b.page_label.value
    assert page_names(b) == list(everything["run_name"][:50])
    b.next_button.click()
    b.next_button.click()
    assert page_names(b) == list(everything["run_name"][100:150]) and "runs 101–150 of 1,800" in b.table.value
    b.prev_button.click()
    assert page_names(b) == list(everything["run_name"][50:100])
    b.page_size.value = 200  # back to the first page, 200 rows
    assert len(page_names(b)) == 200 and b.offset == 0
    b.go(10_000)  # clamped to the last page
    assert page_names(b) == list(everything["run_name"][1_600:]) and b.next_button.disabled
    query = "metrics.acc > 0.3 and params.model in ('rf', 'lr') and tags.team = 'red'"
    b.query.value = query
    b.sort.value, b.descending.value = "metrics.loss", False
    expected = nbmlops.search_runs("many", query, order_by="metrics.loss asc")
    assert b.selection.total == len(expected) and b.offset == 0
    shown = []
    b.page_size.value = 50
    while True:
        shown += list(b._page["run_id"])
        if b.next_button.disabled:
            break
        b.next_button.click()
    assert shown == list(expected["run_id"])  # every page, in order; runs without a loss last
    assert expected["metrics.loss"].isna().sum() > 0 and b._page["metrics.loss"].isna().all()
    b.query.value = "run-01"  # words: names
    assert b.selection.total == len([n for n in everything["run_name"] if "run-01" in n])
    b.descending.value = True
    b.sort.value = "params.depth"
    depths = b.selection.values("params.depth")
    assert depths == sorted(depths, reverse=True)
    b.experiment.value = ""  # all experiments: the filter stays
    assert b.selection.total == 100 and ">experiment<" in b.table.value
    b.query.value = ""
    assert b.selection.total == N_MANY


# -- the magic ----------------------------------------------------------------------------------
def test_track_browse_shows_the_browser(ip, monkeypatch):
    make_runs(model_run=False)
    shown = []
    monkeypatch.setattr("nbmlops.magics.track.display", lambda obj: shown.append(obj))
    ip.run_line_magic("track", "--browse exp")
    ip.run_line_magic("track", '--browse "other"')
    ip.run_line_magic("track", "--browse -e exp")
    ip.run_line_magic("track", "--browse")
    assert [type(o).__name__ for o in shown] == ["RunsBrowser"] * 4
    assert [o.listing.experiment for o in shown] == ["exp", "other", "exp", None]
    assert "--browse" in ip.find_line_magic("track").__doc__ or "--browse" in ip.find_cell_magic("track").__doc__


def test_track_browse_with_a_bad_experiment_is_one_line_and_writes_nothing(ip, store):
    with pytest.raises(UsageError, match="no experiment named 'nope'"):
        ip.run_line_magic("track", "--browse nope")
    assert not store.root.exists()  # a fresh store stays unwritten
    make_runs(model_run=False)
    files = {p: p.stat().st_mtime_ns for p in store.root.rglob("*") if p.is_file()}
    with pytest.raises(UsageError, match="no experiment named 'nope'"):
        ip.run_line_magic("track", "--browse nope")
    assert {p: p.stat().st_mtime_ns for p in store.root.rglob("*") if p.is_file()} == files
    with pytest.raises(UsageError, match="two %"):
        ip.run_line_magic("track", "-e exp")  # %track without a cell and without --browse
    with pytest.raises(UsageError, match="line magic"):
        ip.run_cell_magic("track", "--browse exp", "x = 1")


# -- static HTML of every widget (nbconvert, GitHub, nbviewer) ----------------------------------------
def test_runs_browser_static_html_is_the_current_page_escaped(store):
    with nbmlops.start_run(experiment="exp", name="<script>alert(1)</script>", tags={"note": "a & b"}):
        nbmlops.log_param("model", "<img src=x onerror=alert(1)>")
    make_runs(model_run=False)
    b = nbmlops.runs_browser("exp", page_size=25)
    bundle = b._repr_mimebundle_()
    assert WIDGET in bundle and HTML in bundle
    static = bundle[HTML]
    assert "<script" not in static and "<img src=x" not in static
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in static and "a &amp; b" in static
    assert all(name in static for name in ("alpha", "beta", "gamma", "broken")) and "runs 1–5 of 5" in static
    b.query.value = "gamma"
    static = b._repr_mimebundle_()[HTML]
    assert "gamma" in static and "alpha" not in static and "filter <code>gamma</code>" in static


def test_registry_widget_static_html_has_versions_and_lineage(store):
    ids = make_runs()
    nbmlops.register_model(ids["alpha"], "churn", alias="production")
    widget = nbmlops.registry_widget("churn")
    bundle = widget._repr_mimebundle_()
    assert WIDGET in bundle
    static = bundle[HTML]
    assert "model churn" in static and "<table" in static and "production" in static
    assert "lineage" in static and "run alpha" in static


def test_drift_widget_static_html_is_its_report(ip):
    from _drift_data import frames

    ref, cur = frames(400, seed=3, numeric=2, categorical=1)
    panel = nbmlops.drift_widget(ref, cur)
    static = panel._repr_mimebundle_()[HTML]
    assert static == panel.report._repr_html_() and "columns drifted" in static


def test_serving_widget_static_html_has_status_and_versions(store):
    nbmlops.register_model(fitted(), "m")
    dep = nbmlops.serve("m", name="static-test")
    widget = nbmlops.serving_widget(dep, refresh_every=60)
    try:
        static = widget._repr_mimebundle_()[HTML]
        assert "deployment static-test" in static and "running" in static
        assert "<th" in static and ">v1<" in static and "100%" in static
    finally:
        widget.close()
        dep.stop()
    widget = nbmlops.serving_widget("static-test", refresh_every=60)
    try:
        static = widget._repr_mimebundle_()[HTML]
        assert "stopped" in static and "<th" not in static
    finally:
        widget.close()


def test_a_failing_snapshot_never_breaks_the_live_widget():
    import ipywidgets as w

    from nbmlops.widgets._static import StaticFallback

    class Broken(StaticFallback, w.HTML):
        def _static_html(self) -> str:
            raise RuntimeError("<no>")

    bundle = Broken("x")._repr_mimebundle_()
    assert WIDGET in bundle and "no static view (&lt;no&gt;)" in bundle[HTML]
