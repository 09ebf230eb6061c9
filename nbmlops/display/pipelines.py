"""Pipelines drawn inline: the DAG as SVG (no Graphviz needed), a run's status table, the live
status of a running pipeline, and retrain decisions. Inline styles and escaped text only."""

from __future__ import annotations

import os
import sys
import time
from html import escape
from typing import Any

from .._util import fmt_duration, fmt_time
from ..pipelines.definition import order, producers_of
from ..pipelines.pipeline import defined_pipeline, describe_step
from ..pipelines.progress import Progress, TerminalProgress
from .html import badge
from .style import (
    AMBER,
    AMBER_BG,
    BLUE,
    BLUE_BG,
    BORDER,
    BOX,
    CELL,
    FAINT,
    GREEN,
    GREEN_BG,
    MUTED,
    RED,
    RED_BG,
    STATUS_COLOR,
    SUBTLE,
    TABLE,
    TEXT,
    WHITE,
)

STATE_STYLE = {  # fill, stroke, badge color
    "pending": (SUBTLE, FAINT, FAINT), "running": (BLUE_BG, BLUE, BLUE),
    "done": (GREEN_BG, GREEN, GREEN), "cached": (AMBER_BG, AMBER, AMBER),
    "failed": (RED_BG, RED, RED), "skipped": (SUBTLE, BORDER, FAINT),
}
W, H, EXT_W, EXT_H, GAP_X, GAP_Y, PAD = 168, 50, 132, 28, 70, 22, 14


def _link(path: str | None) -> str | None:
    if not path:
        return None
    try:
        return os.path.relpath(path)
    except ValueError:
        return path


def layout(pipeline: Any) -> tuple[dict[str, tuple[float, float, float, float]], list[tuple[str, str, str]],
                                    dict[str, str]]:
    """Boxes (x, y, w, h) of steps and external inputs, edges (from, to, label), kinds of nodes."""
    steps = order(pipeline.steps)
    producers = producers_of(steps)
    kinds: dict[str, str] = {}
    edges: list[tuple[str, str, str]] = []
    for s in steps:
        kinds[s.name] = "step"
        for p in s.inputs.values():
            if p.key in producers and not p.version and not p.uri:
                edges.append((producers[p.key], s.name, p.spec))
            else:
                node = f"in:{p.spec}"
                kinds[node] = "input"
                edges.append((node, s.name, ""))
    level: dict[str, int] = {n: 0 for n, k in kinds.items() if k == "input"}
    for s in steps:
        preds = [a for a, b, _ in edges if b == s.name]
        level[s.name] = 1 + max((level[a] for a in preds), default=-1 if not level else 0)
    columns: dict[int, list[str]] = {}
    for n in [*[n for n, k in kinds.items() if k == "input"], *[s.name for s in steps]]:
        columns.setdefault(level[n], []).append(n)
    pos: dict[str, float] = {}
    for lv in sorted(columns):  # barycenter ordering: fewer crossings
        col = columns[lv]
        first_seen = {n: i for i, n in enumerate(col)}

        def bary(n: str, seen: dict[str, int] = first_seen) -> float:
            ps = [pos[a] for a, b, _ in edges if b == n and a in pos]
            return sum(ps) / len(ps) if ps else seen[n]

        col.sort(key=bary)
        for i, n in enumerate(col):
            pos[n] = i
    tallest = max(len(c) for c in columns.values())
    boxes = {}
    first = min(columns)
    for lv, col in columns.items():
        offset = (tallest - len(col)) * (H + GAP_Y) / 2
        for i, n in enumerate(col):
            w, h = (EXT_W, EXT_H) if kinds[n] == "input" else (W, H)
            x = PAD + (lv - first) * (W + GAP_X) + (W - w if kinds[n] == "input" else 0)
            y = PAD + offset + i * (H + GAP_Y) + (H - h) / 2
            boxes[n] = (x, y, w, h)
    return boxes, edges, kinds


def dag_svg(pipeline: Any, run: Any = None) -> str:
    boxes, edges, kinds = layout(pipeline)
    width = max(x + w for x, y, w, h in boxes.values()) + PAD
    height = max(y + h for x, y, w, h in boxes.values()) + PAD
    steps = run.steps if run is not None else {}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
             f'viewBox="0 0 {width:.0f} {height:.0f}" style="font-family:system-ui,sans-serif" role="img">',
             '<defs><marker id="nbm-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{MUTED}"/></marker></defs>']
    for a, b, label in edges:
        ax, ay, aw, ah = boxes[a]
        bx, by, bw, bh = boxes[b]
        x1, y1, x2, y2 = ax + aw, ay + ah / 2, bx - 2, by + bh / 2
        mid = (x1 + x2) / 2
        parts.append(f'<path d="M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} {x2:.1f},{y2:.1f}" '
                     f'fill="none" stroke="{MUTED}" stroke-width="1.3" marker-end="url(#nbm-arrow)"/>')
        if label:
            parts.append(f'<text x="{mid:.1f}" y="{(y1 + y2) / 2 - 4:.1f}" font-size="10" fill="{MUTED}" '
                         f'text-anchor="middle" stroke="white" stroke-width="3" paint-order="stroke">'
                         f'{escape(label)}</text>')
    for n, (x, y, w, h) in boxes.items():
        if kinds[n] == "input":
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w}" height="{h}" rx="{h / 2}" fill="{WHITE}" '
                         f'stroke="{FAINT}"/><text x="{x + w / 2:.1f}" y="{y + h / 2 + 4:.1f}" font-size="11" '
                         f'text-anchor="middle" fill="{TEXT}">{escape(_short(n[3:], 22))}</text>')
            continue
        s = pipeline.step(n)
        rec = steps.get(n) or {}
        state = rec.get("state", "pending")
        fill, stroke, _ = STATE_STYLE.get(state, STATE_STYLE["pending"])
        dash = ' stroke-dasharray="4 3"' if state == "skipped" else ""
        sub = s.kind
        if rec:
            sub = {"done": f"ran {fmt_duration(rec.get('duration'))}", "cached": "cached",
                   "running": "running…", "failed": "failed", "skipped": "skipped",
                   "pending": "waiting"}.get(state, state)
            if rec.get("resumed"):
                sub = "done before resume"
        node = (f'<rect x="{x:.1f}" y="{y:.1f}" width="{w}" height="{h}" rx="6" fill="{fill}" stroke="{stroke}" '
                f'stroke-width="1.5"{dash}/>'
                f'<text x="{x + w / 2:.1f}" y="{y + 20:.1f}" font-size="13" font-weight="600" text-anchor="middle" '
                f'fill="{TEXT}">{escape(_short(n, 22))}</text>'
                f'<text x="{x + w / 2:.1f}" y="{y + 37:.1f}" font-size="11" text-anchor="middle" fill="{MUTED}">'
                f'{"📓 " if s.kind == "notebook" else "ƒ "}{escape(sub)}</text>')
        href = _link(((rec.get("report") or {}).get("html")) or None)
        if href:
            node = f'<a href="{escape(href)}" target="_blank">{node}</a>'
        parts.append(f"<g><title>{escape(repr(s))}</title>{node}</g>")
    parts.append("</svg>")
    return "".join(parts)


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


class Dag:
    """The DAG of a pipeline (and a run's states), shown inline as SVG."""

    def __init__(self, pipeline: Any, run: Any = None) -> None:
        self.pipeline, self.run = pipeline, run

    def _repr_html_(self) -> str:
        params = ", ".join(f"{escape(k)}={escape(repr(v))}" for k, v in self.pipeline.params.items())
        head = (f"<div><b>pipeline {escape(self.pipeline.name)}</b> · {len(self.pipeline.steps)} steps"
                f"{' · params ' + params if params else ''}</div>")
        return f'<div style="{BOX}">{head}{dag_svg(self.pipeline, self.run)}</div>'

    def _repr_svg_(self) -> str:
        return dag_svg(self.pipeline, self.run)

    def __repr__(self) -> str:
        lines = [f"pipeline {self.pipeline.name}"]
        for s in order(self.pipeline.steps):
            ins = ", ".join(p.spec for p in s.inputs.values()) or "—"
            outs = ", ".join(p.spec for p in s.outputs.values()) or "—"
            lines.append(f"  {s.name} ({s.kind}): {ins} → {outs}")
        return "\n".join(lines)


def _outputs(rec: dict[str, Any]) -> str:
    out = []
    for ref in (rec.get("outputs") or {}).values():
        if ref["kind"] == "dataset":
            out.append(f"{escape(ref['name'])}@{ref['version']}")
        else:
            out.append(f"model {escape(ref['name'])} <code>{escape(ref['sha256'][:8])}</code>")
    return ", ".join(out) or "—"


def run_table(run: Any) -> str:
    rows = []
    for name, rec in run.steps.items():
        state = rec["state"]
        color = STATE_STYLE.get(state, STATE_STYLE["pending"])[2]
        label = "kept" if rec.get("resumed") else state
        href = _link((rec.get("report") or {}).get("html") or (rec.get("report") or {}).get("notebook"))
        report = f'<a href="{escape(href)}" target="_blank">report</a>' if href else ""
        detail = describe_step(rec)
        if state == "failed":
            detail = f'<span style="color:{RED}">{escape(detail)}</span>'
        else:
            detail = escape(detail)
        rows.append(f'<tr><td style="{CELL}"><b>{escape(name)}</b></td><td style="{CELL}">{badge(label, color)}</td>'
                    f'<td style="{CELL}">{fmt_duration(rec.get("duration")) if rec.get("duration") is not None else ""}'
                    f'</td><td style="{CELL}">{detail}</td><td style="{CELL}">{_outputs(rec)}</td>'
                    f'<td style="{CELL}">{report}</td></tr>')
    head = "".join(f'<th style="{CELL}">{h}</th>' for h in ("step", "state", "time", "", "outputs", ""))
    return f'<table style="{TABLE}"><tr>{head}</tr>{"".join(rows)}</table>'


def run_card(run: Any, pipeline: Any = None) -> str:
    d = run.doc
    status = badge(d["status"], STATUS_COLOR.get(d["status"], MUTED))
    took = f" · {fmt_duration(d['duration'])}" if d.get("duration") is not None else \
        f" · {fmt_duration((time.time() * 1000 - d['start_time']) / 1000)} so far"
    params = ", ".join(f"{escape(k)}={escape(repr(v))}" for k, v in d["params"].items())
    counts = f"{len(run.executed)} ran, {len(run.cached)} cached"
    head = (f"<div><b>pipeline {escape(d['pipeline'])}</b> {status} run "
            f"<code style='color:{MUTED}'>{d['id'][:8]}</code>"
            f" · {fmt_time(d['start_time'])}{took} · {counts}{' · resumed' if d.get('resumed') else ''}"
            f"{' · params ' + params if params else ''}</div>")
    svg = ""
    if pipeline is None:
        pipeline = defined_pipeline(d["pipeline"])
    names = {s.name for s in pipeline.steps} if pipeline is not None else set()
    if names and set(d["order"]) == names:
        svg = f"<div>{dag_svg(pipeline, run)}</div>"
    err = ""
    if d.get("error") and d["status"] != "FINISHED":
        err = f'<div style="color:{RED}">{escape(d["error"])}</div>'
    return f'<div style="{BOX}">{head}{svg}{run_table(run)}{err}</div>'


class _Shown:
    """A run's state as shown while it runs: HTML in a notebook, its text lines elsewhere."""

    def __init__(self, run: Any) -> None:
        self.html, self.text = run_card(run), "\n".join(run.lines())

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.text


class LiveStatus:
    """A run's status shown once and updated in place while the pipeline runs (notebook only)."""

    def __init__(self, every: float = 0.3) -> None:
        self.handle: Any = None
        self.every = every
        self.at = 0.0

    def __call__(self, run: Any) -> None:
        from IPython.display import display

        now = time.monotonic()
        final = run.status != "RUNNING"
        if self.handle is not None and not final and now - self.at < self.every:
            return
        self.at = now
        shown = _Shown(run)
        if self.handle is None:
            self.handle = display(shown, display_id=True)
        else:
            self.handle.update(shown)


def is_notebook_kernel() -> bool:
    """Whether this code runs in a Jupyter kernel (where a display updated in place is seen)."""
    ip = sys.modules.get("IPython")
    if ip is None:
        return False
    shell = ip.get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def auto_progress() -> Progress:
    """The live table in a notebook, the terminal line elsewhere: what the IPython extension makes
    ``Pipeline.run(progress=None)`` show."""
    return LiveStatus() if is_notebook_kernel() else TerminalProgress()


def decision_card(decision: Any) -> str:
    d = decision.doc
    color = {"promoted": GREEN, "candidate-better": BLUE, "kept-production": AMBER,
             "no-drift": MUTED, "failed": RED}.get(d["decision"], MUTED)
    rows = []
    m = d.get("metrics") or {}
    if m:
        for side in ("production", "candidate"):
            if side in m and m[side] is not None:
                rows.append(f'<tr><td style="{CELL}">{side}</td><td style="{CELL}">'
                            f'{escape(str(d.get(side) or ""))}</td><td style="{CELL}">{m["metric"]} = '
                            f'<b>{m[side]:.4f}</b></td></tr>')
    drift = d.get("drift") or {}
    dr = ""
    if drift:
        cols = ", ".join(map(str, (drift.get("drifted_columns") or [])[:8]))
        dr = (f"<div>drift: {drift.get('n_drifted')} of {drift.get('n_columns')} columns "
              f"({drift.get('share_drifted', 0):.0%}, threshold {d.get('threshold', 0):.0%})"
              f"{': ' + escape(cols) if cols else ''}</div>")
    table = f'<table style="{TABLE}">{"".join(rows)}</table>' if rows else ""
    return (f'<div style="{BOX}"><div><b>retrain on drift: {escape(d["model"])}</b> '
            f'{badge(d["decision"], color)}</div><div>{escape(d["reason"])}</div>{dr}{table}</div>')
