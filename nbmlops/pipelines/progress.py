"""Live status of a running pipeline as a line in a terminal, and what ``progress=None`` shows.

The domain does not pick a look: ``default_progress()`` is the terminal line unless a face set
another default (the IPython extension sets the notebook's live table, ``display.pipelines``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from .._util import fmt_duration

_MARK = {"pending": "·", "running": "▶", "done": "✓", "cached": "↺", "failed": "✗", "skipped": "-"}


class TerminalProgress:
    """``churn ab12cd34  features ↺  train ▶ 3.2 s  evaluate ·`` rewritten in place on a terminal;
    elsewhere (cron, CI logs) one line per change of state."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.last: str | None = None
        self.shown = 0.0

    def line(self, run: Any) -> str:
        parts = []
        for name, s in run.steps.items():
            d = f" {fmt_duration(s['duration'])}" if s.get("duration") is not None and s["state"] == "done" else ""
            parts.append(f"{name} {_MARK.get(s['state'], '?')}{d}")
        return f"{run.pipeline} {run.id[:8]} {run.status.lower()}  " + "  ".join(parts)

    def __call__(self, run: Any) -> None:
        line = self.line(run)
        final = run.status != "RUNNING"
        if self.tty:
            self.stream.write("\r\x1b[2K" + line + ("\n" if final else ""))
            self.stream.flush()
        elif line != self.last:
            self.stream.write(line + "\n")
            self.stream.flush()
        self.last = line


Progress = Callable[[Any], None]
_default: Callable[[], Progress] = TerminalProgress


def set_default_progress(factory: Callable[[], Progress] | None) -> None:
    """Make ``factory()`` what a pipeline run with ``progress=None`` shows (None: the terminal line)."""
    global _default
    _default = factory or TerminalProgress


def default_progress() -> Progress:
    """A new callback of the default kind (see ``set_default_progress``)."""
    return _default()
