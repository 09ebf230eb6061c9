"""Runs tables, param diffs and comparison plots: shared by the runs browser, the dashboard and nbconvert.

HTML is inline-styled and every stored string is escaped; plots are PNG bytes (matplotlib is
imported only when one is drawn, through ``Figure`` so no pyplot state or backend is touched).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable, Iterable, Sequence
from html import escape
from typing import Any

from .._util import fmt_duration
from .html import _fmt, ago_html, status_badge
from .style import AMBER_BG, BLUE_BG, CELL, FAINT, MUTED_CSS, RED, SCROLL_X, TABLE

LABELS = {"run_name": "name", "run_id": "id", "start_time": "start", "end_time": "end"}
_PREFIXES = ("params.", "metrics.", "tags.")
_SELECTED = f"background:{BLUE_BG}"
_DIFFERS = f"background:{AMBER_BG}"
_MUTED = MUTED_CSS
_LONGEST = 40  # characters of a param or tag value shown in a cell (the whole value in its tooltip)


def _variety(values: Sequence[Any]) -> int:
    """2 when ``values`` hold two different ones, 1 when they differ only in being there (one value,
    and runs without one: None and NaN alike), 0 when they are all the same (1, 1.0 and True differ)."""
    if not len(values):
        return 0
    first = next((v for v in values if not _missing(v)), None)
    kind, gaps = type(first), False
    for v in values:
        if v is first or (type(v) is kind and v == first):
            continue
        if not _missing(v):
            return 2
        gaps = True
    return 1 if gaps and first is not None else 0


def runs_columns(columns: Iterable[str], values: Callable[[str], Sequence[Any]], *, first: str | None = None,
                 all_params: bool = False) -> tuple[list[str], dict[str, Any]]:
    """The columns a runs table shows, out of ``columns`` (a listing's or a ``search_runs`` frame's),
    so that what tells the listed runs apart fits a notebook cell: name, status, (experiment), the
    metrics (``first`` leading when it is one), the params and tags whose values differ between the
    runs, those that differ only in some runs having none (another model's, mostly) after them, then
    start and duration. ``values(column)`` gives one value per listed run, None where a run has none.
    Params and tags the same in every listed run (the defaults nobody set, mostly) are folded away and
    returned as {column: value}, unless ``all_params``; ``first`` always shows."""
    cols = list(columns)
    metrics = [c for c in cols if c.startswith("metrics.")]
    if first in metrics:
        metrics = [first, *(m for m in metrics if m != first)]
    differ: list[str] = [first] if first and first.startswith(("params.", "tags.")) and first in cols else []
    gaps: list[str] = []
    same: list[str] = []  # shown too when all_params, after the rest
    folded: dict[str, Any] = {}
    for c in cols:
        if not c.startswith(("params.", "tags.")) or c == first:
            continue
        seen = values(c)
        kind = _variety(seen)
        if kind == 2:
            differ.append(c)
        elif kind == 1:
            gaps.append(c)
        elif all_params:
            same.append(c)
        else:
            folded[c] = seen[0] if len(seen) else None
    ordered = [c for group in (differ, gaps, same) for c in sorted(group, key=lambda c: c.startswith("tags."))]
    return ([c for c in ("run_name", "status", "experiment") if c in cols] + metrics + ordered +
            [c for c in ("start_time", "duration") if c in cols]), folded


def _header(col: str, sort: str | None, descending: bool) -> str:
    arrow = (" ▼" if descending else " ▲") if col == sort else ""
    for p in _PREFIXES:
        if col.startswith(p):
            label = f'<span style="{_MUTED};font-weight:normal">{p[:-2]}</span> {escape(col[len(p):])}'
            break
    else:
        label = escape(LABELS.get(col, col))
    return f'<th style="{CELL};white-space:nowrap">{label}{arrow}</th>'


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, NaT
    except (TypeError, ValueError):
        return False


def _cell(col: str, value: Any, row: Any) -> str:
    if col == "run_name":
        rid = str(row.get("run_id", ""))[:8]
        text = f'<b>{escape(str(value))}</b> <code style="{_MUTED}">{escape(rid)}</code>'
    elif _missing(value):
        text = f'<span style="{_MUTED}">—</span>' if col.startswith(_PREFIXES) else ""
    elif col == "status":
        text = status_badge(str(value))
    elif col in ("start_time", "end_time"):
        text = ago_html(value.timestamp() * 1000 if hasattr(value, "timestamp") else value)
    elif col == "duration":
        text = escape(fmt_duration(float(value)))
    else:
        full = _fmt(value)
        if len(full) > _LONGEST:
            return f'<td style="{CELL};white-space:nowrap" title="{escape(full)}">{escape(_short(full))}</td>'
        text = escape(full)
    return f'<td style="{CELL};white-space:nowrap">{text}</td>'


def _short(text: str) -> str:
    """A long value cut to ``_LONGEST`` characters: a dotted name keeps its end (the class), text its start."""
    if "." in text and " " not in text:
        return "…" + text.rsplit(".", 1)[-1][-(_LONGEST - 1):]
    return text[:_LONGEST - 1] + "…"


def _fold(folded: dict[str, Any]) -> str:
    """The params and tags left out of the table, as a line that opens to their values."""
    params = sum(1 for c in folded if c.startswith("params."))
    tags = len(folded) - params
    what = " and ".join(f"{n} {kind}{'s' if n != 1 else ''}" for n, kind in ((params, "param"), (tags, "tag")) if n)
    items = " · ".join(f'<span style="white-space:nowrap"><span style="{_MUTED}">{escape(c)}</span> = '
                       f'{"—" if _missing(v) else escape(_fmt(v))}</span>' for c, v in folded.items())
    return (f'<details style="margin:2px 0"><summary style="cursor:pointer;{_MUTED}">+{what} the same in every '
            f'listed run</summary><div style="padding:2px 0 4px 14px;line-height:1.6">{items}</div></details>')


def runs_table(df: Any, *, columns: Sequence[str] | None = None, total: int | None = None, offset: int = 0,
               sort: str | None = None, descending: bool = False, selected: Iterable[str] = (),
               folded: dict[str, Any] | None = None) -> str:
    """A page of runs (a ``search_runs``-style DataFrame) as an HTML table, with a caption
    "runs A–B of TOTAL"; the ``sort`` column is marked ▲/▼ and ``selected`` run ids are highlighted.
    ``columns`` default to ``runs_columns`` over this page; ``folded`` params and tags (those
    ``runs_columns`` left out) show as one line that opens to their values."""
    if columns is None:
        cols, folded = runs_columns(df.columns, lambda c: list(df[c]), first=sort)
    else:
        cols = list(columns)
    total = len(df) if total is None else total
    chosen = set(selected)
    if not len(df):
        caption = "no runs match" if total == 0 else f"no runs on this page (of {total:,})"
        return f'<div style="font-family:system-ui,sans-serif;font-size:12px;{_MUTED}">{caption}</div>'
    head = "".join(_header(c, sort, descending) for c in cols)
    rows = []
    for row in df.to_dict("records"):
        style = f' style="{_SELECTED}"' if row.get("run_id") in chosen else ""
        rows.append(f"<tr{style}>" + "".join(_cell(c, row.get(c), row) for c in cols) + "</tr>")
    caption = f"runs {offset + 1:,}–{offset + len(df):,} of {total:,}"
    return (f'<div style="font-family:system-ui,sans-serif;font-size:12px;{SCROLL_X}">'
            f'<div style="{_MUTED}">{caption}</div>{_fold(folded) if folded else ""}'
            f'<table style="{TABLE}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def params_diff(runs: Sequence[Any]) -> str:
    """The params of several runs side by side (objects with ``name``, ``id``, ``params``); the
    params whose values differ between them are highlighted and listed first."""
    if not runs:
        return ""
    keys = sorted({k for r in runs for k in r.params})
    values = {k: [r.params.get(k, _ABSENT) for r in runs] for k in keys}
    differ = [k for k in keys if len({repr(v) for v in values[k]}) > 1]
    same = [k for k in keys if k not in differ]
    head = f'<th style="{CELL}">param</th>' + "".join(
        f'<th style="{CELL}">{escape(r.name)} <code style="{_MUTED};font-weight:normal">{escape(r.id[:8])}</code></th>'
        for r in runs)
    rows = []
    for k in differ + same:
        style = _DIFFERS if k in differ else _MUTED
        cells = "".join(f'<td style="{CELL}">{"—" if v is _ABSENT else escape(_fmt(v))}</td>' for v in values[k])
        rows.append(f'<tr style="{style}"><td style="{CELL}">{"<b>" + escape(k) + "</b>" if k in differ else escape(k)}'
                    f"</td>{cells}</tr>")
    what = (f"{len(differ)} of {len(keys)} params differ" if len(runs) > 1 else f"{len(keys)} params") if keys \
        else "no params logged"
    return (f'<div style="font-family:system-ui,sans-serif;font-size:12px;{SCROLL_X}"><b>params</b> '
            f'<span style="{_MUTED}">{what}</span><table style="{TABLE}"><tr>{head}</tr>{"".join(rows)}</table></div>')


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_ABSENT = _Absent()


def _figure(width: float = 6.0, height: float = 3.6) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=90)
    return fig, fig.add_subplot()


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def metric_curves_png(histories: dict[str, Any], key: str) -> bytes:
    """One metric's history (DataFrames with ``step`` and ``value``) of several runs, overlaid."""
    fig, ax = _figure()
    for label, df in histories.items():
        df = df.sort_values("step")
        ax.plot(df["step"], df["value"], marker="o" if len(df) < 30 else None, markersize=4, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.set_title(f"{key} by step")
    ax.grid(alpha=0.3)
    if histories:
        ax.legend(fontsize=8, loc="best")
    return _png(fig)


def _numeric(values: Sequence[Any]) -> list[float] | None:
    out = []
    for v in values:
        if v is None:
            out.append(math.nan)
            continue
        if isinstance(v, bool):
            return None
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            return None
    return out


def scatter_png(x: Sequence[Any], y: Sequence[Any], xlabel: str, ylabel: str,
                highlight: Sequence[bool] | None = None, labels: Sequence[str] | None = None) -> bytes:
    """``y`` against ``x`` over many runs (numbers, or categories when ``x`` holds text), the
    ``highlight``ed ones drawn on top and labelled."""
    fig, ax = _figure()
    xs = _numeric(x)
    ticks: list[str] = []
    if xs is None:  # categories: one position per distinct value, in order of first appearance
        ticks = list(dict.fromkeys(str(v) for v in x if v is not None))
        pos = {t: i for i, t in enumerate(ticks)}
        xs = [pos[str(v)] if v is not None else math.nan for v in x]
    ys = [math.nan if v is None else float(v) for v in y]
    hi = list(highlight) if highlight is not None else [False] * len(xs)
    ax.scatter([a for a, h in zip(xs, hi) if not h], [b for b, h in zip(ys, hi) if not h],
               s=10, alpha=0.35 if len(xs) > 500 else 0.7, color=FAINT, label="listed runs", linewidths=0)
    sel = [(a, b, (labels or [""] * len(xs))[i]) for i, (a, b, h) in enumerate(zip(xs, ys, hi)) if h]
    if sel:
        ax.scatter([a for a, _, _ in sel], [b for _, b, _ in sel], s=40, color=RED, label="selected", zorder=3)
        for a, b, text in sel[:20]:
            if text and a == a and b == b:
                ax.annotate(text, (a, b), fontsize=7, xytext=(4, 4), textcoords="offset points")
    if ticks:
        shown = ticks if len(ticks) <= 30 else ticks[:30]
        ax.set_xticks(range(len(shown)))
        tilt = len(shown) > 5
        ax.set_xticklabels([t[:20] for t in shown], rotation=30 if tilt else 0, ha="right" if tilt else "center",
                           fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{ylabel} against {xlabel} ({sum(1 for a, b in zip(xs, ys) if a == a and b == b):,} runs)")
    ax.grid(alpha=0.3)
    if sel:
        ax.legend(fontsize=8, loc="best")
    return _png(fig)


def png_img(png: bytes, alt: str) -> str:
    """An inline ``<img>`` of PNG bytes (for static HTML)."""
    return (f'<img alt="{escape(alt)}" style="max-width:100%" '
            f'src="data:image/png;base64,{base64.b64encode(png).decode()}">')
