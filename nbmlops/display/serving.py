"""HTML card of a deployment."""

from __future__ import annotations

from html import escape
from typing import Any

from .html import badge
from .style import BLUE, BOX, CELL, GREEN, MUTED, RED, TABLE

_COLORS = {"running": GREEN, "starting": BLUE, "stopped": MUTED}


def deployment_card(dep: Any, status: dict[str, Any]) -> str:
    state = status["status"]
    return (f'<div style="{BOX}"><b>deployment {escape(dep.name)}</b> {badge(state, _COLORS.get(state, RED))} · model '
            f'<code>{escape(str(status["model"]))}</code> (version {escape(str(status.get("version")))}) · '
            f'<a href="{escape(dep.url)}/docs" target="_blank">{escape(dep.url)}</a> · pid {status["pid"]}'
            f'{" · up " + escape(status["uptime"]) if status.get("uptime") else ""}'
            f'{" · " + str(status["requests"]) + " requests" if "requests" in status else ""}</div>')


def ab_card(summary: Any) -> str:
    head = "".join(f'<th style="{CELL}">{h}</th>' for h in ("version", "weight", "requests", "p50 ms", "p95 ms",
                                                             "labelled", "accuracy", "predictions"))
    rows = []
    for r in summary.table.itertuples():
        acc = "—" if r.accuracy is None or r.accuracy != r.accuracy else f"{r.accuracy:.3f}"
        weight = "—" if r.weight is None or r.weight != r.weight else f"{r.weight:.0%}"
        mark = " ★" if summary.winner == r.version else ""
        preds = ", ".join(f"{escape(str(k))}: {v:.0%}" for k, v in r.predictions.items())
        cells = (f"{r.version}{mark}", weight, r.requests, _ms(r.latency_p50_ms), _ms(r.latency_p95_ms), r.labelled,
                 acc, preds)
        rows.append("<tr>" + "".join(f'<td style="{CELL}">{c}</td>' for c in cells) + "</tr>")
    return (f'<div style="{BOX}"><b>A/B test of {escape(summary.name)}</b> · {escape(summary.verdict)}'
            f'<table style="{TABLE}"><tr>{head}</tr>{"".join(rows)}</table></div>')


def _ms(value: Any) -> str:
    return "—" if value is None or value != value else f"{value:.2f}"
