"""Dataset versions and diffs as small inline-styled HTML."""

from __future__ import annotations

from html import escape
from typing import Any

from .._util import fmt_time
from .html import badge
from .style import AMBER, BOX, CELL, FAINT, GREEN, MUTED, RED, TABLE


def _num(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}"
    return escape(str(v))


def version_card(v: Any) -> str:
    doc = v.doc
    shape = "×".join(f"{n:,}" for n in doc["shape"] or [])
    stored = (badge(f"stored {doc['blob']['size'] / 1e3:,.1f} kB", GREEN) if v.stored
              else badge("fingerprint only", AMBER))
    run = f" · run <b>{escape(doc['run_name'])}</b>" if doc.get("run_name") else ""
    note = f'<div style="color:{AMBER}">{escape(doc["note"])}</div>' if doc.get("note") else ""
    cols = ", ".join(f"{escape(c)} <span style='color:{MUTED}'>{escape(t)}</span>"
                     for c, t in list(zip(doc["columns"] or [], doc["dtypes"] or []))[:20])
    more = f" … (+{len(doc['columns']) - 20})" if len(doc["columns"] or []) > 20 else ""
    return (f'<div style="{BOX}"><b>dataset {escape(v.uri)}</b> {stored} {escape(shape)} · '
            f'<code style="color:{MUTED}">{doc["sha256"][:12]}</code> · {fmt_time(doc["created"])}{run}'
            f'<div style="font-size:12px">{cols}{more}</div>{note}</div>')


def diff_card(d: Any) -> str:
    if d.identical:
        return f'<div style="{BOX}"><b>{escape(d.a)}</b> and <b>{escape(d.b)}</b> hold the same data</div>'
    ra, rb = d.rows
    head = (f'<div><b>{escape(d.a)} → {escape(d.b)}</b> · rows {ra:,} → {rb:,} '
            f'<span style="color:{MUTED}">({rb - ra:+,})</span></div>')
    parts = [head]
    s = d.schema
    schema = []
    if s["added"]:
        schema.append(f'<span style="color:{GREEN}">+ {escape(", ".join(s["added"]))}</span>')
    if s["removed"]:
        schema.append(f'<span style="color:{RED}">− {escape(", ".join(s["removed"]))}</span>')
    schema += [f"{escape(c)}: {escape(x)} → {escape(y)}" for c, (x, y) in s["retyped"].items()]
    if schema:
        parts.append(f"<div><b>schema</b> {' · '.join(schema)}</div>")
    if d.counts is not None:
        n = d.counts
        parts.append(f"<div><b>rows by {escape(', '.join(d.keys))}</b> "
                     f'<span style="color:{GREEN}">{n["added"]:,} added</span> · '
                     f'<span style="color:{RED}">{n["removed"]:,} removed</span> · '
                     f'{n["changed"]:,} changed · {n["unchanged"]:,} unchanged</div>')
    rows = []
    for c, sh in d.columns.items():
        moved = c in d.changed_columns
        style = "" if moved else f"color:{FAINT}"
        if sh.get("kind") == "numeric" and "mean" in sh:
            detail = (f"mean {_num(sh['mean'][0])} → {_num(sh['mean'][1])}"
                      + (f" <b>({sh['mean_shift_sd']:+.2f} sd)</b>" if isinstance(sh.get("mean_shift_sd"), float)
                         and abs(sh["mean_shift_sd"]) != float("inf") else "")
                      + f" · std {_num(sh['std'][0])} → {_num(sh['std'][1])}"
                      + f" · range {_num(sh['min'][0])}…{_num(sh['max'][0])} → "
                      f"{_num(sh['min'][1])}…{_num(sh['max'][1])}")
        elif sh.get("kind") == "categorical" and "n_unique" in sh:
            detail = f"{_num(sh['n_unique'][0])} → {_num(sh['n_unique'][1])} values"
            if sh.get("new_values"):
                new = escape(", ".join(map(str, sh["new_values"][:5])))
                detail += f' · <span style="color:{GREEN}">new {new}</span>'
            if sh.get("gone_values"):
                gone = escape(", ".join(map(str, sh["gone_values"][:5])))
                detail += f' · <span style="color:{RED}">gone {gone}</span>'
        else:
            detail = escape(", ".join(f"{k} {v[0]} → {v[1]}" for k, v in sh.items() if isinstance(v, tuple)
                                      and k != "null_share"))
        na, nb = sh["null_share"]
        missing = f"{(na or 0):.1%} → {(nb or 0):.1%}" if na != nb else f"{(na or 0):.1%}"
        rows.append(f'<tr style="{style}"><td style="{CELL}">{escape(c)}</td><td style="{CELL}">'
                    f'{escape(str(sh.get("kind") or ""))}</td><td style="{CELL}">{detail}</td>'
                    f'<td style="{CELL}">{missing}</td></tr>')
    if rows:
        parts.append(f'<table style="{TABLE}"><tr><th style="{CELL}">column</th><th style="{CELL}">kind</th>'
                     f'<th style="{CELL}">summary</th><th style="{CELL}">missing</th></tr>{"".join(rows)}</table>')
    return f'<div style="{BOX}">{"".join(parts)}</div>'
