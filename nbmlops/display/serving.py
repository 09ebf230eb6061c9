"""HTML card of a deployment."""

from __future__ import annotations

from html import escape
from typing import Any

from .html import _BOX, badge

_COLORS = {"running": "#1a7f37", "starting": "#1f6feb", "stopped": "#57606a"}


def deployment_card(dep: Any, status: dict[str, Any]) -> str:
    state = status["status"]
    return (f'<div style="{_BOX}"><b>deployment {escape(dep.name)}</b> {badge(state, _COLORS.get(state, "#cf222e"))} · model '
            f'<code>{escape(str(status["model"]))}</code> (version {escape(str(status.get("version")))}) · '
            f'<a href="{escape(dep.url)}/docs" target="_blank">{escape(dep.url)}</a> · pid {status["pid"]}'
            f'{" · up " + escape(status["uptime"]) if status.get("uptime") else ""}'
            f'{" · " + str(status["requests"]) + " requests" if "requests" in status else ""}</div>')
