"""An ipywidgets progress bar for magics that leaves nothing behind: once done, its output is emptied,
so a saved or nbconvert-ed notebook keeps no dead widget (the magic prints its result instead)."""

from __future__ import annotations

from typing import Any

from IPython.display import display


class WidgetProgress:
    """``progress(done, total)`` for the domain's long calls; shown on the first call with ``total >= minimum``."""

    def __init__(self, description: str, minimum: int = 0) -> None:
        self.description, self.minimum = description, minimum
        self.bar: Any = None
        self.handle: Any = None

    def __call__(self, done: int, total: int | None) -> None:
        if total is not None and total < self.minimum:
            return
        if self.bar is None:
            import ipywidgets as w

            self.bar = w.IntProgress(min=0, max=total or max(done, 1), description=self.description,
                                     bar_style="info")
            self.handle = display(self.bar, display_id=True)
        if total is None and done > self.bar.max:
            self.bar.max = done * 2  # unknown length (CSV): keep a moving bar
        self.bar.value = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.handle.update({"text/plain": ""}, raw=True)
