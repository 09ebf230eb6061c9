"""HTML for the feature store: a feature view's card, a service, the list of definitions."""

from __future__ import annotations

from html import escape
from typing import Any

from .._util import fmt_time
from ..features.timeutil import fmt_ns, fmt_ttl
from .html import age as age_of
from .style import AMBER, BOX, CELL, GREEN, MUTED_CSS, RED, RULE, TABLE

_MUTED = MUTED_CSS


def _num(v: Any, dtype: str) -> str:
    if v is None:
        return "—"
    if dtype == "timestamp":
        return fmt_ns(v)
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _bar(share: float) -> str:
    width = max(0, min(60, round(share * 60)))
    color = RED if share > 0.5 else AMBER if share > 0.05 else GREEN
    return (f'<span style="display:inline-block;width:60px;height:8px;background:{RULE};border-radius:2px;'
            f'vertical-align:middle"><span style="display:block;width:{width}px;height:8px;background:{color};'
            f'border-radius:2px"></span></span> {share * 100:.1f}%')


def _distinct(n: int | None) -> str:
    return "" if n is None else f"{n:,} distinct"


def view_card(view: Any, stats: dict[str, Any]) -> str:
    version = f' <span style="{_MUTED}">v{view.version}</span>' if view.version else " (not applied)"
    head = (f'<b>feature view {escape(view.name)}</b>{version} · '
            f'keys {escape(", ".join(f"{k}:{t}" for k, t in view.key_types.items()))} · '
            f'ttl {escape(fmt_ttl(view.ttl))} · '
            f'{"online" if view.online else "offline only"} · source {escape(view.source.describe())}')
    rows = "".join(
        f'<tr><td style="{CELL}"><code>{escape(name)}</code></td><td style="{CELL};{_MUTED}">{escape(f["dtype"])}</td>'
        f'<td style="{CELL}">{_bar(f["null_share"])}</td>'
        f'<td style="{CELL}">{escape(_num(f["min"], f["dtype"]))}</td>'
        f'<td style="{CELL}">{escape(_num(f["max"], f["dtype"]))}</td>'
        f'<td style="{CELL}">{_distinct(f["distinct"])}</td></tr>'
        for name, f in stats["features"].items())
    header = "".join(f'<th style="{CELL};{_MUTED};font-weight:normal">{h}</th>'
                     for h in ("feature", "dtype", "null", "min", "max", ""))
    skipped = stats["rows"] - stats["usable_rows"]
    online = stats.get("online")
    if online:
        online_line = (f'last materialized {escape(fmt_time(online["materialized_at"]))} '
                       f'up to {escape(fmt_ns(online["end"]))} · '
                       f'{online["rows"]:,} entities online')
    else:
        online_line = "not materialized" if view.online else "offline only"
    fresh = stats.get("age_s") is not None and stats["age_s"] >= 0
    age = f' ({escape(age_of(stats["age_s"]))})' if fresh else ""
    facts = (f'{stats["rows"]:,} rows · {stats["entities"]:,} entities · '
             f'{escape(fmt_ns(stats["first"]))} → {escape(fmt_ns(stats["last"]))} · newest event{age} · {online_line}'
             + (f' · <span style="color:{AMBER}">{skipped:,} rows without a key or time are ignored</span>'
                if skipped else ""))
    desc = f'<div style="{_MUTED}">{escape(view.description)}</div>' if view.description else ""
    return (f'<div style="{BOX}"><div>{head}</div>{desc}<div style="{_MUTED};font-size:12px;margin:2px 0">{facts}</div>'
            f'<table style="{TABLE}"><tr>{header}</tr>{rows}</table></div>')


def service_card(service: Any) -> str:
    refs = ", ".join(f"<code>{escape(r)}</code>" for r in service.features)
    desc = f' <span style="{_MUTED}">{escape(service.description)}</span>' if service.description else ""
    return f'<div style="{BOX}"><b>feature service {escape(service.name)}</b>{desc}<div>{refs}</div></div>'


def definitions_table(docs: list[dict[str, Any]], online: dict[str, dict[str, Any]]) -> str:
    """``%features list``: every entity, view, on-demand view and service of the store."""
    if not docs:
        return (f'<div style="{BOX}">no feature definitions yet: '
                "<code>%features apply DF --name VIEW --entity KEY</code></div>")
    order = {"entity": 0, "view": 1, "ondemand": 2, "service": 3}
    kinds = {"entity": "entity", "view": "view", "ondemand": "on-demand", "service": "service"}
    rows = []
    for d in sorted(docs, key=lambda d: (order[d["kind"]], d["name"])):
        if d["kind"] == "entity":
            what = ", ".join(f"{k}:{t}" for k, t in d["key_types"].items())
        elif d["kind"] == "view":
            state = online.get(d["name"])
            src = d["source"]
            where_ = "DataFrame snapshot" if src["kind"] == "dataframe" else src["path"]
            done = f" (materialized to {fmt_ns(state['end'])})" if state else ""
            what = (f'{len(d["features"])} features · keys {", ".join(d["join_keys"])} · ttl {fmt_ttl(d["ttl"])} · '
                    f'{"online" if d["online"] else "offline"}{done} · {where_}')
        elif d["kind"] == "ondemand":
            inputs = ", ".join(d["inputs"] + list(d["request_schema"]))
            what = f'{", ".join(f["name"] for f in d["features"])} ← {inputs}'
        else:
            what = ", ".join(d["features"])
        rows.append(f'<tr><td style="{CELL};{_MUTED}">{kinds[d["kind"]]}</td>'
                    f'<td style="{CELL}"><b>{escape(d["name"])}</b></td>'
                    f'<td style="{CELL};{_MUTED}">v{d.get("version", 1)}</td>'
                    f'<td style="{CELL}">{escape(what)}</td></tr>')
    return f'<div style="{BOX}"><b>feature store</b><table style="{TABLE}">{"".join(rows)}</table></div>'
