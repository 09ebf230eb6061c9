"""Small matplotlib pictures of a report, as base64 PNG ``data:`` URIs (self-contained HTML that
survives nbconvert without a widget manager). Drawn from the report's binned counts only.

One figure is reused for every column (creating a figure costs more than drawing one), on
the Agg canvas directly: no pyplot, no global state, no window.
"""

from __future__ import annotations

import base64
import io
import threading
from typing import Any

from .style import FAINT, MUTED, RED

REF_COLOR, CUR_COLOR = FAINT, RED
_lock = threading.Lock()
_fig: Any = None


def _figure(width: float, height: float) -> Any:
    global _fig
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if _fig is None:
        _fig = Figure(dpi=72)
        FigureCanvasAgg(_fig)
    _fig.clear()
    _fig.set_size_inches(width, height)
    return _fig


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _style(ax: Any, y: bool = True) -> None:
    from matplotlib.ticker import MaxNLocator

    for side in ("top", "right") if y else ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=8, length=2)
    ax.xaxis.set_major_locator(MaxNLocator(5))
    if not y:
        ax.set_yticks([])


class _Panel:
    """One small figure and axes kept for every picture of a kind: each picture only swaps its
    artists and limits (building axes and ticks anew is most of what a small plot costs)."""

    def __init__(self, rect: tuple[float, float, float, float]) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.fig = Figure(dpi=72, figsize=(3.6, 1.25))
        FigureCanvasAgg(self.fig)
        self.ax = self.fig.add_axes(rect)
        _style(self.ax, y=False)
        self.artists: list[Any] = []

    def clear(self) -> Any:
        for artist in self.artists:
            artist.remove()
        self.artists = []
        return self.ax


_panels: dict[str, _Panel] = {}


def _panel(kind: str) -> _Panel:
    if kind not in _panels:
        _panels[kind] = _Panel((0.03, 0.2, 0.94, 0.78) if kind == "numeric" else (0.03, 0.3, 0.94, 0.68))
    return _panels[kind]


def distribution_png(dist: dict[str, Any], kind: str) -> str | None:
    """Reference (grey, filled) against current (red line / bars): shares per bin, or per category.
    No y axis and no legend (the report's header says which colour is which): text is what costs."""
    if not dist:
        return None
    import numpy as np

    with _lock:
        panel = _panel("numeric" if kind == "numeric" else "categorical")
        ax = panel.clear()
        ref = np.asarray(dist["reference"], dtype=float)
        cur = np.asarray(dist["current"], dtype=float)
        if kind == "numeric":
            edges = np.asarray(dist["edges"])
            top = 0.0
            for counts, color in ((ref, REF_COLOR), (cur, CUR_COLOR)):
                total = counts.sum()
                if total:
                    shares = counts / total
                    top = max(top, float(shares.max()))
                    panel.artists.append(ax.stairs(shares, edges, color=color, fill=color == REF_COLOR,
                                                   alpha=0.55 if color == REF_COLOR else 1, linewidth=1.2))
            ax.set_xlim(edges[0], edges[-1])
            ax.set_ylim(0, top * 1.05 or 1)
        else:
            names = list(dist["categories"])
            other = dist.get("other", [0, 0])
            if any(other):
                names.append("(other)")
                ref, cur = np.append(ref, other[0]), np.append(cur, other[1])
            names = names[:13]
            ref, cur = ref[:13] / max(ref.sum(), 1), cur[:13] / max(cur.sum(), 1)
            x = np.arange(len(names))
            for values, shift, color in ((ref, -0.2, REF_COLOR), (cur, 0.2, CUR_COLOR)):
                panel.artists.extend(ax.bar(x + shift, values, 0.4, color=color).patches)
            ax.set_xlim(-0.6, len(names) - 0.4)
            ax.set_ylim(0, max(float(ref.max(initial=0)), float(cur.max(initial=0))) * 1.05 or 1)
            ax.set_xticks(x, [n if len(n) <= 10 else n[:9] + "…" for n in names], fontsize=7,
                          rotation=30 if len(names) > 5 else 0, ha="right" if len(names) > 5 else "center")
        return _png(panel.fig)


def errors_png(hist: dict[str, Any] | None, other: dict[str, Any] | None) -> str | None:
    """Regression errors (prediction − target), reference against current."""
    if not hist and not other:
        return None
    import numpy as np

    with _lock:
        fig = _figure(3.6, 1.5)
        ax = fig.add_axes((0.1, 0.2, 0.88, 0.75))
        _style(ax)
        for h, color, label in ((hist, REF_COLOR, "reference"), (other, CUR_COLOR, "current")):
            if h:
                counts = np.asarray(h["counts"], dtype=float)
                ax.stairs(counts / max(counts.sum(), 1), np.asarray(h["edges"]), color=color, label=label,
                          fill=color == REF_COLOR, alpha=0.55 if color == REF_COLOR else 1)
        ax.axvline(0, color=MUTED, linewidth=0.6)
        ax.legend(fontsize=6, frameon=False)
        return _png(fig)


def windows_png(windows: dict[str, Any], columns: list[str]) -> str | None:
    """Drift score per window for a few columns: distances on a linear axis, p-values on a log one."""
    import numpy as np

    rows = windows.get("windows", [])
    if not rows or not columns:
        return None
    kinds = windows["score_kinds"]
    groups = [k for k in ("distance", "p_value") if any(kinds[c] == k for c in columns)]
    with _lock:
        fig = _figure(7.0, 1.9 * len(groups))
        x = np.arange(len(rows))
        labels = [r["start"][:16] for r in rows]
        for i, group in enumerate(groups):
            ax = fig.add_subplot(len(groups), 1, i + 1)
            _style(ax)
            shown = [c for c in columns if kinds[c] == group]
            for c in shown:
                y = np.array([np.nan if v is None else v for v in windows["scores"][c]], dtype=float)
                ax.plot(x, y, marker="o", markersize=2.5, linewidth=1, label=c[:24])
            for t in sorted({windows["thresholds"][c] for c in shown}):
                ax.axhline(t, color=MUTED, linestyle="--", linewidth=0.7)
            if group == "p_value":
                ax.set_yscale("log")
            ax.set_ylabel("p-value" if group == "p_value" else "distance", fontsize=7)
            step = max(1, len(x) // 8)
            ax.set_xticks(x[::step], labels[::step], fontsize=6)
            ax.legend(fontsize=6, frameon=False, loc="upper left", ncol=min(len(shown), 5))
        fig.subplots_adjust(left=0.08, right=0.99, top=0.95, bottom=0.12, hspace=0.45)
        return _png(fig)
