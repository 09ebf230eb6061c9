"""HTML for the registry: a version card and a comparison."""

from __future__ import annotations

from html import escape
from typing import Any

from .html import _fmt, ago_html, kv_table
from .style import BOX, CELL, MUTED, PURPLE, SCROLL_X, TABLE

_NOWRAP = f"{CELL};white-space:nowrap"


def _badges(aliases: list[str]) -> str:
    return " ".join(f'<span style="background:{PURPLE};color:white;border-radius:10px;padding:1px 8px;'
                    f'font-size:11px">@{escape(a)}</span>' for a in aliases)


def _version_cell(col: str, value: Any) -> str:
    if value is None or value != value or value == "":  # None, NaN, NaT, no alias
        return ""
    if col == "aliases":
        return _badges(str(value).split(", "))
    if col == "created":
        return ago_html(value.timestamp() * 1000 if hasattr(value, "timestamp") else value)
    if col == "sha256":
        return f'<code style="color:{MUTED}">{escape(str(value))}</code>'
    return escape(_fmt(value))


def versions_table(df: Any) -> str:
    """A model's versions (``list_versions``) as a table whose headers sit over their cells: one
    alignment and padding for both, each value in its own padded cell, times relative."""
    if not len(df):
        return f'<div style="color:{MUTED}">no versions yet</div>'
    cols = list(df.columns)
    head = "".join(f'<th style="{_NOWRAP}">{escape(c.removeprefix("metrics."))}</th>' for c in cols)
    rows = "".join("<tr>" + "".join(f'<td style="{_NOWRAP}">{_version_cell(c, row[c])}</td>' for c in cols) + "</tr>"
                   for row in df.to_dict("records"))
    return (f'<div style="font-family:system-ui,sans-serif;{SCROLL_X}"><table style="{TABLE}">'
            f'<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>')


def version_card(v: Any) -> str:
    doc, s = v.doc, v.signature
    features = s.get("features") or []
    shown = ", ".join(escape(f) for f in features[:12]) + (f" … (+{len(features) - 12})" if len(features) > 12 else "")
    sig_items = {"features": shown or f"{s.get('n_features')} unnamed", "output": s.get("output"),
                 "classes": ", ".join(map(str, s.get("classes") or [])) or "—"}
    if s.get("steps"):
        sig_items["steps"] = " → ".join(f"{n} ({c})" for n, c in s["steps"])
    lineage = "—"
    if doc.get("run_id"):
        data = "; ".join(f'{d["name"]} {"×".join(map(str, d["shape"]))} {d["sha256"][:10]}' for d in doc["datasets"])
        lineage = f'run {doc["run_name"]} ({doc["run_id"][:8]})' + (f" ← {data}" if data else "")
    metrics = {k: val for k, val in list(doc["metrics"].items())[:8]}
    ref = doc.get("reference")
    return (f'<div style="{BOX}"><div><b>{escape(v.name)}</b> version <b>{v.version}</b> {_badges(v.aliases)} '
            f'<span style="color:{MUTED}">{escape(doc["class"].rsplit(".", 1)[-1])} · registered '
            f'{ago_html(doc["created"])} by {escape(doc["user"])} · '
            f'sha256 <code>{doc["sha256"][:12]}</code></span></div>'
            f'<div style="display:flex;gap:24px;flex-wrap:wrap">{kv_table("signature", sig_items)}'
            f'{kv_table("metrics", metrics)}</div>'
            f'<div><b>lineage</b> {escape(lineage)}</div>'
            f'<div style="color:{MUTED}">monitoring reference: '
            f'{escape(str(ref["rows"]) + " rows") if ref else "none"}</div></div>')


def comparison_card(c: Any) -> str:
    head = (f'<tr><th style="{CELL}"></th><th style="{CELL}">v{c.a.version}</th>'
            f'<th style="{CELL}">v{c.b.version}</th></tr>')
    rows = "".join(f'<tr><td style="{CELL}">{escape(k)}</td><td style="{CELL}">{escape(_fmt(x))}</td>'
                   f'<td style="{CELL}">{escape(_fmt(y))}</td></tr>'
                   for k, (x, y) in [*(("params." + k, v) for k, v in c.params.items()),
                                     *(("metrics." + k, v) for k, v in c.metrics.items())])
    sig = kv_table("signature differences", {k: v for k, v in c.signature.items()}) or \
        f'<div style="color:{MUTED}">same signature</div>'
    return (f'<div style="{BOX}"><b>{escape(c.a.name)}</b>: version {c.a.version} vs {c.b.version}'
            f'<table style="{TABLE}">{head}{rows}</table>{sig}</div>')
