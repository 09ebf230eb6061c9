"""Static fallback: every nbmlops widget also renders as plain HTML where no widget manager runs.

nbconvert reports, GitHub and nbviewer show an output's ``text/html`` when they cannot draw
``application/vnd.jupyter.widget-view+json``; a live front end still draws the widget.
"""

from __future__ import annotations

from html import escape
from typing import Any

from ..display.style import MUTED


class StaticFallback:
    """Mix in before the ipywidgets class (``class Panel(StaticFallback, w.VBox)``) and define
    ``_static_html()``: inline-styled HTML of what the widget shows, stored strings escaped."""

    def _static_html(self) -> str:
        raise NotImplementedError

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(**kwargs) or {}  # type: ignore[misc]
        try:
            html = self._static_html()
        except Exception as exc:  # a snapshot must never break the display of the live widget
            html = (f'<div style="font-family:system-ui,sans-serif;font-size:12px;color:{MUTED}">'
                    f'{escape(type(self).__name__)}: no static view ({escape(str(exc))})</div>')
        return {**bundle, "text/html": html}
