"""Small, self-contained HTML (inline styles only, so it survives nbconvert and sanitizers)."""

from __future__ import annotations

import time
from html import escape
from typing import Any

from .._util import fmt_duration, fmt_time
from .style import BOX, CELL, MUTED, RED, STATUS_COLOR, TABLE, TEXT


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


# (below this many seconds, count in units of this many seconds, the unit's name), after "yesterday"
_SPANS = ((14 * 86_400, 86_400, "day"), (60 * 86_400, 7 * 86_400, "week"), (365 * 86_400, 30.44 * 86_400, "month"))


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}{'s' if n != 1 else ''} ago"


def ago(ms: float | None, now: float | None = None) -> str:
    """How long ago a millisecond timestamp was (``now``: this instant unless given), as ``age`` says it."""
    if ms is None:
        return "—"
    return age(((time.time() * 1000 if now is None else now) - ms) / 1000)


def age(s: float) -> str:
    """An age of ``s`` seconds as people say it: 'just now', '42 s ago', '5 min ago', '3 h ago',
    'yesterday', '3 days ago', '2 weeks ago', '4 months ago', '2 years ago'."""
    if s < 1:  # or a clock a little ahead of this one
        return "just now"
    if s < 60:
        return f"{int(s)} s ago"
    if s < 3600:
        return f"{int(s // 60)} min ago"
    if s < 86_400:
        return f"{int(s // 3600)} h ago"
    if s < 2 * 86_400:
        return "yesterday"
    for below, unit, name in _SPANS:
        if s < below:
            return _plural(int(s // unit), name)
    return _plural(int(s // (365.25 * 86_400)), "year")


def ago_html(ms: float | None) -> str:
    """``ago(ms)`` with the local time to the second as its tooltip (attributes in the order nbconvert
    writes them, so a report holds the snapshot verbatim)."""
    return f'<span style="white-space:nowrap" title="{escape(fmt_time(ms))}">{escape(ago(ms))}</span>'


def as_of() -> str:
    """' · as of <local time>': what the relative times of a snapshot (a widget's static HTML) count from."""
    return f'<span style="color:{MUTED}"> · as of {escape(fmt_time(time.time() * 1000))}</span>'


def badge(text: str, color: str) -> str:
    """A coloured pill holding ``text`` (escaped), kept on one line."""
    return (f'<span style="background:{color};color:white;border-radius:10px;padding:1px 8px;'
            f'font-size:11px;white-space:nowrap">{escape(text)}</span>')


def status_badge(status: str) -> str:
    return badge(status, STATUS_COLOR.get(status, MUTED))


def kv_table(title: str, items: dict[str, Any]) -> str:
    if not items:
        return ""
    rows = "".join(f'<tr><td style="{CELL};color:{MUTED}">{escape(str(k))}</td>'
                   f'<td style="{CELL}">{escape(_fmt(v))}</td></tr>' for k, v in items.items())
    return f'<div><b>{escape(title)}</b><table style="{TABLE}">{rows}</table></div>'


def run_card(run: Any) -> str:
    doc = run.info
    metrics = {k: m["value"] for k, m in doc["metrics"].items()}
    files = [f'{escape(e["name"])} <span style="color:{MUTED}">({e["size"] / 1e3:.1f} kB)</span>'
             for e in (*doc["artifacts"], *doc["models"])]
    data = [f'{escape(d["name"])} {escape("×".join(map(str, d["shape"])))} '
            f'<code>{d["sha256"][:10]}</code>' for d in doc["datasets"]]
    extra = []
    if files:
        extra.append(f"<div><b>artifacts</b> {', '.join(files)}</div>")
    if data:
        extra.append(f"<div><b>datasets</b> {'; '.join(data)}</div>")
    if doc.get("same_as"):
        extra.append(f'<div style="color:{MUTED}">same as run <code>{escape(doc["same_as"][:8])}</code>: '
                     "source, params and input data unchanged</div>")
    if doc.get("error"):
        last = doc["error"].strip().splitlines()[-1]
        extra.append(f'<div style="color:{RED}">{escape(last)}</div>')
    grids = "".join(kv_table(t, v) for t, v in (("params", doc["params"]), ("metrics", metrics),
                                                  ("tags", doc["tags"])))
    return (f'<div style="{BOX}"><div><b>{escape(doc["name"])}</b> {status_badge(doc["status"])} '
            f'<code style="color:{MUTED}">{doc["id"][:8]}</code> · {fmt_time(doc["start_time"])} · '
            f'{fmt_duration(run.duration)}'
            f'{" · " + escape(doc["notebook"]) if doc.get("notebook") else ""}</div>'
            f'<div style="display:flex;gap:24px;flex-wrap:wrap">{grids}</div>{"".join(extra)}</div>')


def run_summary(run: Any) -> str:
    """The one line shown after a %%track cell."""
    doc = run.info
    metrics = " ".join(f"{escape(k)}=<b>{escape(_fmt(m['value']))}</b>" for k, m in list(doc["metrics"].items())[:8])
    same = (f' · same as run <code>{escape(doc["same_as"][:8])}</code> (source, params and inputs unchanged)'
            if doc.get("same_as") else "")
    return (f'<div style="font-family:system-ui,sans-serif;font-size:12px;color:{TEXT}">'
            f'{status_badge(doc["status"])} run <b>{escape(doc["name"])}</b> '
            f'<code style="color:{MUTED}">{doc["id"][:8]}</code> in {escape(run_experiment_name(run))} · '
            f'{fmt_duration(doc.get("duration"))}{" · " + metrics if metrics else ""}{same}</div>')


def run_experiment_name(run: Any) -> str:
    for e in run._store.experiments.all():
        if e["id"] == run.experiment_id:
            return e["name"]
    return run.experiment_id[:8]


def experiment_card(exp: Any) -> str:
    df = exp.runs(max_results=10)
    body = (df.drop(columns=["run_id", "experiment"]).to_html(index=False, max_cols=14, border=0) if len(df)
            else "no runs yet")
    return (f'<div style="{BOX}"><b>experiment {escape(exp.name)}</b> '
            f'<code style="color:{MUTED}">{exp.id[:8]}</code> · created {fmt_time(exp.created)} · latest runs:'
            f"{body}</div>")


def store_card(info: dict[str, Any]) -> str:
    if not info["exists"]:
        return f'<div style="{BOX}">nbmlops store <code>{escape(info["path"])}</code> — not created yet</div>'
    by = ", ".join(f"{n} {escape(s.lower())}" for s, n in sorted(info["runs_by_status"].items())) or "none"
    return (f'<div style="{BOX}"><b>nbmlops store</b> <code>{escape(info["path"])}</code> '
            f'(schema {info["schema"]})<br>{info["experiments"]} experiments · {info["runs"]} runs ({by}) · '
            f'{info["blobs"]} blobs ({info["blob_bytes"] / 1e6:.1f} MB)</div>')
