"""The colours and shared inline CSS of every HTML card, table, picture and widget (GitHub's palette).

Strings only, so any face can use them without loading anything: a colour is a CSS value
(``f'color:{RED}'``), a snippet is a ``style=""`` body.
"""

from __future__ import annotations

# text
TEXT = "#24292f"
MUTED = "#57606a"
FAINT = "#8c959f"
WHITE = "#ffffff"

# lines and backgrounds
BORDER = "#d0d7de"
RULE = "#eaeef2"
SUBTLE = "#f6f8fa"

# meaning
RED = "#cf222e"
GREEN = "#1a7f37"
BLUE = "#1f6feb"
AMBER = "#9a6700"
PURPLE = "#8250df"

# light backgrounds of the same meanings
RED_BG = "#ffebe9"
GREEN_BG = "#dafbe1"
BLUE_BG = "#ddf4ff"
AMBER_BG = "#fff8c5"

# a run's status as a badge colour
STATUS_COLOR = {"RUNNING": BLUE, "FINISHED": GREEN, "FAILED": RED, "KILLED": AMBER}

# shared inline CSS
MUTED_CSS = f"color:{MUTED}"
BOX = (f"font-family:system-ui,sans-serif;font-size:13px;border:1px solid {BORDER};border-radius:6px;padding:8px 12px;"
       "max-width:900px")
TABLE = "border-collapse:collapse;font-size:12px;margin:4px 0"
CELL = f"padding:2px 8px;border-bottom:1px solid {RULE};text-align:left"
# a box whose wide content scrolls inside it: width 0 so it never widens what holds it (an ipywidgets
# HTML widget sizes to its content), min-width 100% to fill that
SCROLL_X = "overflow-x:auto;width:0;min-width:100%"
