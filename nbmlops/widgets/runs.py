"""The runs browser: filter, sort and page the runs of an experiment, compare, tag, delete, register.

A thin face over the public API: the runs are read once (``nbmlops.run_listing``, again on
Refresh or a change of experiment); the filter box (applied on Enter, not per keystroke), the
sort and the page controls query that listing and render one page of HTML. Comparisons read
metric histories with ``get_run``; actions call ``set_run_tags``, ``delete_run`` and
``register_model``, each answering with one line.
"""

from __future__ import annotations

from html import escape
from typing import Any

import ipywidgets as w

import nbmlops

from ..display.html import as_of
from ..display.runs import (
    LABELS,
    metric_curves_png,
    params_diff,
    png_img,
    runs_columns,
    runs_table,
    scatter_png,
)
from ..display.style import BORDER, BOX, GREEN, MUTED, RED
from ..errors import NbmlopsError
from ..tracking.listing import experiment_names
from ._static import StaticFallback

PAGE_SIZES = (25, 50, 100, 200)
MAX_CURVES = 20  # runs overlaid in the metric plot
_ALL = ""  # the experiment dropdown's value for "all experiments"
_ERROR = f'<span style="color:{RED}">{{}}</span>'
_OK = f'<span style="color:{GREEN}">{{}}</span>'
_NOTE = f'<span style="color:{MUTED}">{{}}</span>'
_LABELS = {"description_width": "initial"}  # a control's label whole, not cut to the default 80 px


def _button(description: str, icon: str, **kwargs: Any) -> w.Button:
    """A button as wide as its label, that a narrow cell wraps to the next line rather than cuts."""
    return w.Button(description=description, icon=icon, layout=w.Layout(width="auto", flex="0 0 auto"), **kwargs)


def _row(*children: w.Widget) -> w.HBox:
    """Controls side by side, wrapping onto a second line when the cell is too narrow for them."""
    return w.HBox(list(children), layout=w.Layout(flex_flow="row wrap", align_items="center"))


def _label(column: str) -> str:
    for p in ("params.", "metrics.", "tags."):
        if column.startswith(p):
            return f"{p[:-2]} {column[len(p):]}"
    return LABELS.get(column, column)


class RunsBrowser(StaticFallback, w.VBox):
    """A table of runs to filter (``search_runs`` syntax or plain words), sort and page; select runs
    to compare (metric curves, a param against a metric, a diff of params), tag, note, delete or
    register. ``.listing`` is what was read, ``.selection`` what the table shows. The table's columns
    are ``display.runs.runs_columns``: name, status, metrics, then the params that differ (the rest
    folded into one line, or shown with "every param"); rows of controls wrap, never cut a button."""

    def __init__(self, experiment: str | None = None, page_size: int = 50) -> None:
        self.listing = nbmlops.run_listing(experiment)  # an unknown experiment fails here, before any control
        self.selection = self.listing.query()
        self.offset = 0
        self._chosen: list[str] = []
        self._names: dict[str, str] = {}  # run id -> name, of runs the picker has listed
        self._busy = False
        names = experiment_names()
        self.experiment = w.Dropdown(description="experiment", style=_LABELS, layout=w.Layout(width="260px"),
                                     options=[("all experiments", _ALL), *((n, n) for n in names)],
                                     value=self.listing.experiment or _ALL)
        self.query = w.Text(placeholder="filter: metrics.acc > 0.9 and params.model = 'rf' — or words in names/tags",
                            continuous_update=False, layout=w.Layout(flex="1 1 300px", width="auto"))
        self.refresh_button = _button("Refresh", "refresh")
        self.sort = w.Dropdown(description="sort by", options=[], style=_LABELS, layout=w.Layout(width="240px"))
        self.descending = w.ToggleButtons(options=[("desc", True), ("asc", False)], value=True,
                                          style={"button_width": "52px"}, layout=w.Layout(width="auto"))
        self.page_size = w.Dropdown(description="rows", options=PAGE_SIZES, style=_LABELS,
                                    value=page_size if page_size in PAGE_SIZES else 50, layout=w.Layout(width="110px"))
        self.prev_button = w.Button(description="◀", layout=w.Layout(width="40px", flex="0 0 auto"),
                                    tooltip="previous page")
        self.next_button = w.Button(description="▶", layout=w.Layout(width="40px", flex="0 0 auto"),
                                    tooltip="next page")
        self.page_label = w.HTML()
        self.all_params = w.Checkbox(description="every param", indent=False, layout=w.Layout(width="auto"),
                                     tooltip="also the params and tags that are the same in every listed run")
        self.message = w.HTML()
        self.table = w.HTML(layout=w.Layout(width="100%", min_width="0"))  # wide tables scroll inside the cell
        self.runs = w.SelectMultiple(description="selected", options=[], rows=6,
                                     layout=w.Layout(width="auto", min_width="50%", max_width="100%"))
        # actions
        self.tag_key = w.Text(placeholder="key", layout=w.Layout(width="120px"))
        self.tag_value = w.Text(placeholder="value", layout=w.Layout(width="160px"))
        self.tag_button = _button("Tag", "tag")
        self.note = w.Text(placeholder="a note on the selected runs", layout=w.Layout(width="260px"))
        self.note_button = _button("Add note", "sticky-note")
        self.delete_button = _button("Delete", "trash", button_style="danger")
        self.model_name = w.Text(placeholder="registered model name", layout=w.Layout(width="180px"))
        self.run_model = w.Dropdown(options=[], layout=w.Layout(width="180px"))
        self.register_button = _button("Register", "archive", button_style="primary")
        self.result = w.HTML()
        # comparison
        self.curve_metric = w.Dropdown(description="curves of", options=[], style=_LABELS,
                                       layout=w.Layout(width="220px"))
        self.scatter_param = w.Dropdown(description="param", options=[], style=_LABELS, layout=w.Layout(width="200px"))
        self.scatter_metric = w.Dropdown(description="against", options=[], style=_LABELS,
                                         layout=w.Layout(width="200px"))
        self.compare_button = _button("Compare", "line-chart")
        # pictures enter the panel once drawn: an Image without a value is a broken-image icon in JupyterLab
        self.curves = w.Image(format="png", value=b"", layout=w.Layout(max_width="50%"))
        self.scatter = w.Image(format="png", value=b"", layout=w.Layout(max_width="50%"))
        self.pictures = w.HBox([])
        self.diff = w.HTML(layout=w.Layout(width="100%"))
        self.compare_message = w.HTML()
        self._compared = False

        self.experiment.observe(lambda _: self._guard(self.load), names="value")
        self.query.observe(lambda _: self._guard(self.apply), names="value")
        self.sort.observe(lambda _: self._guard(self.apply), names="value")
        self.descending.observe(lambda _: self._guard(self.apply), names="value")
        self.page_size.observe(lambda _: self._guard(self.go, 0), names="value")
        self.all_params.observe(lambda _: self._guard(self.apply, True), names="value")
        self.prev_button.on_click(lambda _: self.go(self.offset - self.page_size.value))
        self.next_button.on_click(lambda _: self.go(self.offset + self.page_size.value))
        self.refresh_button.on_click(lambda _: self.refresh())
        self.runs.observe(lambda _: self._guard(self._on_select), names="value")
        self.tag_button.on_click(lambda _: self.tag())
        self.note_button.on_click(lambda _: self.add_note())
        self.delete_button.on_click(lambda _: self.delete())
        self.register_button.on_click(lambda _: self.register())
        self.compare_button.on_click(lambda _: self.compare())
        for control in (self.curve_metric, self.scatter_param, self.scatter_metric):
            control.observe(lambda _: self._guard(self._recompare), names="value")

        super().__init__([
            _row(self.experiment, self.query, self.refresh_button),
            _row(self.sort, self.descending, self.page_size, self.prev_button, self.page_label, self.next_button,
                 self.all_params),
            self.message, self.table, self.runs,
            _row(self.tag_key, self.tag_value, self.tag_button, self.note, self.note_button),
            _row(self.model_name, self.run_model, self.register_button, self.delete_button),
            self.result,
            _row(self.curve_metric, self.scatter_param, self.scatter_metric, self.compare_button),
            self.compare_message, self.pictures, self.diff,
        ], layout=w.Layout(border=f"1px solid {BORDER}", padding="6px"))
        self._guard(self._columns)
        self._seen: dict[str, list[Any]] = {}  # column -> the values the listed runs hold, for runs_columns
        self._seen_for: str | None = self.query.value
        self._cols, self._folded = runs_columns(self.listing.columns, self._values, first=self.sort.value)
        varying = [c[len("params."):] for c in self._cols if c.startswith("params.")]
        if varying:  # the scatter plots a param that tells runs apart, not the first default in a-z order
            self._guard(setattr, self.scatter_param, "value", varying[0])
        self.render()

    # -- plumbing -------------------------------------------------------------
    def _guard(self, fn: Any, *args: Any) -> None:
        """Run ``fn`` unless the widget is updating its own controls (no cascades of renders)."""
        if self._busy:
            return
        self._busy = True
        try:
            fn(*args)
        finally:
            self._busy = False

    def _columns(self) -> None:
        """Options of the sort and comparison dropdowns, from the listing's columns (keeping choices)."""
        lst = self.listing
        keep = self.sort.value
        self.sort.options = [(_label(c), c) for c in lst.columns]
        self.sort.value = keep if keep in lst.columns else "start_time"
        for control, options in ((self.curve_metric, lst.metrics), (self.scatter_metric, lst.metrics),
                                 (self.scatter_param, lst.params)):
            keep = control.value
            control.options = options
            if options:
                control.value = keep if keep in options else options[0]

    def _values(self, column: str) -> list[Any]:
        """The values one column takes over the listed runs, each once in the order the runs first show
        them (what ``runs_columns`` needs), kept while the filter stays (a sort or a page reads none again)."""
        if column not in self._seen:
            self._seen[column] = self.selection.distinct(column)
        return self._seen[column]

    @property
    def chosen(self) -> list[str]:
        """Ids of the selected runs, in the order they were listed."""
        return list(self._chosen)

    # -- listing, query, page -------------------------------------------------
    def refresh(self) -> None:
        """Refresh: the experiments and their runs read again."""
        names = experiment_names()
        self._guard(self._experiments, names)
        self.load()

    def _experiments(self, names: list[str]) -> None:
        keep = self.experiment.value
        self.experiment.options = [("all experiments", _ALL), *((n, n) for n in names)]
        self.experiment.value = keep if keep in names else _ALL  # setting options selects the first one

    def load(self) -> None:
        """Read the runs again (Refresh, or another experiment); the filter, sort and selection stay."""
        try:
            self.listing = nbmlops.run_listing(self.experiment.value or None)
        except NbmlopsError as exc:
            self.message.value = _ERROR.format(escape(str(exc)))
            return
        self._reshow()

    def _reshow(self) -> None:
        """After the listing was read or updated: drop vanished runs from the selection, rebuild the
        column choices, and show the current page again."""
        live = set(self.listing.query().ids)
        self._chosen = [i for i in self._chosen if i in live]
        self._seen_for = None  # the runs were read again: so are their values
        self._busy = True
        try:
            self._columns()
        finally:
            self._busy = False
        self.apply(keep_page=True)

    def apply(self, keep_page: bool = False) -> None:
        """Filter and sort the listing as the controls say, and show the first page."""
        try:
            self.selection = self.listing.query(self.query.value, sort=self.sort.value or None,
                                                descending=self.descending.value)
        except NbmlopsError as exc:  # a malformed filter: one line, the last good table stays
            self.message.value = _ERROR.format(escape(str(exc)))
            return
        if self.query.value != self._seen_for:  # other runs listed: their values read again
            self._seen, self._seen_for = {}, self.query.value
        self._cols, self._folded = runs_columns(self.listing.columns, self._values, first=self.sort.value,
                                                all_params=self.all_params.value)
        self.message.value = ""
        self.go(self.offset if keep_page else 0)

    def go(self, offset: int) -> None:
        """Show the page that starts at row ``offset`` (clamped to the rows there are)."""
        size = self.page_size.value
        last = max(0, (self.selection.total - 1) // size * size)
        self.offset = min(max(0, offset), last)
        self.render()

    def render(self) -> None:
        size, total = self.page_size.value, self.selection.total
        self._page = self.selection.page(self.offset, size)
        self._table()
        pages = max(1, -(-total // size))
        self.page_label.value = f"page {self.offset // size + 1:,} of {pages:,} · {total:,} runs"
        self.prev_button.disabled = self.offset == 0
        self.next_button.disabled = self.offset + size >= total
        self._options()

    def _options(self) -> None:
        """The run picker lists the selected runs (from any page) and then this page's runs."""
        on_page = list(zip(self._page["run_id"], self._page["run_name"]))
        here = {i for i, _ in on_page}
        kept = [(i, self._names.get(i, i[:8])) for i in self._chosen if i not in here]
        self._names = {**self._names, **dict(on_page)}
        self._busy, busy = True, self._busy
        try:
            self.runs.options = [(f"{name} · {i[:8]}", i) for i, name in kept + on_page]
            self.runs.value = tuple(self._chosen)
        finally:
            self._busy = busy

    def _table(self) -> None:
        self.table.value = runs_table(self._page, columns=self._cols, folded=self._folded, total=self.selection.total,
                                      offset=self.offset, sort=self.sort.value, descending=self.descending.value,
                                      selected=self._chosen)

    def _on_select(self) -> None:
        self._chosen = list(self.runs.value)
        self._table()
        models: list[str] = []
        if len(self._chosen) == 1:
            try:
                models = [m["name"] for m in nbmlops.get_run(self._chosen[0]).info["models"]]
            except NbmlopsError:
                models = []
        self.run_model.options = models
        if models:
            self.run_model.value = models[0]

    # -- actions --------------------------------------------------------------
    def _say(self, text: str, ok: bool = True) -> None:
        self.result.value = (_OK if ok else _ERROR).format(escape(text))

    def _need_selection(self) -> list[str] | None:
        if not self._chosen:
            self._say("select one or more runs first (in the list under the table)", ok=False)
            return None
        return list(self._chosen)

    def _after_change(self, ids: list[str]) -> None:
        try:
            self.listing.update(ids)
        except NbmlopsError:
            self.listing = nbmlops.run_listing(self.listing.experiment)
        self._reshow()

    def tag(self) -> None:
        """Set the tag ``key=value`` on every selected run."""
        ids = self._need_selection()
        if ids is None:
            return
        key, value = self.tag_key.value.strip(), self.tag_value.value
        if not key:
            self._say("give the tag a key (e.g. reviewed), then a value", ok=False)
            return
        try:
            for run_id in ids:
                nbmlops.set_run_tags(run_id, {key: value})
        except NbmlopsError as exc:
            self._say(str(exc), ok=False)
            return
        self._after_change(ids)
        self._say(f"tagged {len(ids)} run{'s' if len(ids) != 1 else ''} {key}={value}")

    def add_note(self) -> None:
        """Set the ``note`` tag of every selected run to the note's text."""
        ids = self._need_selection()
        if ids is None:
            return
        text = self.note.value.strip()
        if not text:
            self._say("write the note first", ok=False)
            return
        try:
            for run_id in ids:
                nbmlops.set_run_tags(run_id, {"note": text})
        except NbmlopsError as exc:
            self._say(str(exc), ok=False)
            return
        self.note.value = ""
        self._after_change(ids)
        self._say(f"noted on {len(ids)} run{'s' if len(ids) != 1 else ''}")

    def delete(self) -> None:
        """Soft-delete the selected runs (``nbmlops.restore_run`` brings one back)."""
        ids = self._need_selection()
        if ids is None:
            return
        done = []
        try:
            for run_id in ids:
                nbmlops.delete_run(run_id)
                done.append(run_id)
        except NbmlopsError as exc:
            if done:
                self._after_change(done)
            self._say(f"deleted {len(done)} of {len(ids)}: {exc}", ok=False)
            return
        self._chosen = []
        self._after_change(done)
        self._say(f"deleted {len(done)} run{'s' if len(done) != 1 else ''} "
                  f"(nbmlops.restore_run('{done[0][:8]}') brings one back)")

    def register(self) -> None:
        """Register the selected run's logged model as the next version of the named model."""
        if len(self._chosen) != 1:
            self._say("select exactly one run to register its model" if self._chosen else
                      "select the run whose model to register first", ok=False)
            return
        run_id, name = self._chosen[0], self.model_name.value.strip()
        try:
            run = nbmlops.get_run(run_id)
            models = [m["name"] for m in run.info["models"]]
            if not models:
                self._say(f"run {run.name} logged no model: fit one in a %%track cell or call log_model, "
                          "then register it", ok=False)
                return
            if not name:
                self._say("give the registered model a name (e.g. churn)", ok=False)
                return
            artifact = self.run_model.value if self.run_model.value in models else models[0]
            version = nbmlops.register_model(run_id, name, artifact=artifact)
        except NbmlopsError as exc:
            self._say(str(exc), ok=False)
            return
        self._say(f"registered {version.name} version {version.version} from run {run.name} (model {artifact})")

    # -- comparison -----------------------------------------------------------
    def _recompare(self) -> None:
        if self._compared:
            self.compare()

    def compare(self) -> None:
        """Overlay the chosen metric's curves of the selected runs, plot a param against a metric over
        the listed runs (selected ones marked), and diff the selected runs' params."""
        ids = self._chosen
        if not ids:
            self.compare_message.value = _ERROR.format("select runs to compare first")
            return
        try:
            runs = [nbmlops.get_run(i) for i in ids]
        except NbmlopsError as exc:
            self.compare_message.value = _ERROR.format(escape(str(exc)))
            return
        self._compared = True
        notes = []
        self.diff.value = params_diff(runs)
        key = self.curve_metric.value
        if key:
            shown = runs[:MAX_CURVES]
            histories = {f"{r.name} · {r.id[:8]}": r.metric_history(key) for r in shown}
            histories = {k: v for k, v in histories.items() if len(v)}
            self.curves.value = metric_curves_png(histories, key)
            if len(runs) > MAX_CURVES:
                notes.append(f"curves of the first {MAX_CURVES} selected runs")
            missing = len(shown) - len(histories)
            if missing:
                notes.append(f"{missing} selected run{'s' if missing != 1 else ''} logged no {key}")
        else:
            self.curves.value = b""
            notes.append("no metrics logged")
        param, metric = self.scatter_param.value, self.scatter_metric.value
        if param and metric:
            chosen = set(ids)
            listed = self.selection
            self.scatter.value = scatter_png(listed.values(f"params.{param}"), listed.values(f"metrics.{metric}"),
                                             f"params.{param}", f"metrics.{metric}",
                                             highlight=[i in chosen for i in listed.ids],
                                             labels=listed.values("run_name"))
        else:
            self.scatter.value = b""
        self.pictures.children = [img for img in (self.curves, self.scatter) if img.value]
        self.compare_message.value = _NOTE.format(escape("; ".join(notes))) if notes else ""

    # -- static view ----------------------------------------------------------
    def _static_html(self) -> str:
        where = escape(self.listing.experiment or "all experiments")
        query = f' · filter <code>{escape(self.query.value)}</code>' if self.query.value.strip() else ""
        pictures = "".join(png_img(img.value, alt) for img, alt in ((self.curves, "metric curves"),
                                                                     (self.scatter, "param against metric"))
                           if img.value)
        return (f'<div style="{BOX};max-width:none"><div><b>runs</b> of {where}{query}{as_of()}</div>{self.table.value}'
                f'{self.diff.value}{pictures}</div>')


def runs_browser(experiment: str | None = None, page_size: int = 50) -> RunsBrowser:
    """A panel of the runs of ``experiment`` (all if None) to filter, sort, page, compare, tag,
    note, delete and register from.

    >>> nbmlops.runs_browser("churn")
    """
    return RunsBrowser(experiment, page_size)
