"""The drift report's small pictures as inline SVG, drawn from its binned counts only.

Hand-written SVG rather than matplotlib: a picture is a few hundred bytes of text made in
microseconds, survives nbconvert and notebook sanitizers (no script, no external reference), and
scales with the page. Every label is escaped; colours come from ``style``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

from .style import AMBER, BLUE, FAINT, GREEN, MUTED, PURPLE, RED, RULE, TEXT

REF_COLOR, CUR_COLOR = FAINT, RED
LINE_COLORS = (BLUE, RED, GREEN, AMBER, PURPLE, TEXT, MUTED, FAINT)
MAX_CATEGORIES = 13          # bars drawn per categorical picture ("(other)" included)
_FONT = 'font-family="system-ui,-apple-system,sans-serif"'


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _f(x: float) -> str:
    return f"{x:.1f}"


def _svg(width: int, height: int, title: str, body: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}" {_FONT} font-size="9" '
            f'style="display:block;max-width:100%;height:auto"><title>{_e(title)}</title>{body}</svg>')


def _line(x1: float, y1: float, x2: float, y2: float, color: str = MUTED, width: float = 0.6, extra: str = "") -> str:
    return (f'<line x1="{_f(x1)}" y1="{_f(y1)}" x2="{_f(x2)}" y2="{_f(y2)}" stroke="{color}" '
            f'stroke-width="{width}"{extra}/>')


def _rect(x: float, y: float, width: float, height: float, color: str) -> str:
    return f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(width)}" height="{_f(height)}" fill="{color}"/>'


def ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """At most about ``n`` round values (1, 2, 2.5, 5 × 10^k apart) between lo and hi."""
    span = hi - lo
    if not (span > 0 and math.isfinite(span)):
        return [lo] if math.isfinite(lo) else []
    raw = span / n
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9))
    first = math.ceil(lo / step - 1e-9) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def tick_label(x: float) -> str:
    if x == 0 or 1e-3 <= abs(x) < 1e6:
        return f"{round(x, 10):g}"
    return f"{x:.1e}"


def _shares(counts: Sequence[float]) -> list[float]:
    total = sum(counts)
    return [c / total for c in counts] if total else [0.0] * len(counts)


def _steps(xs: list[str], ys: list[str], base: str, closed: bool) -> str:
    """The path of a histogram's outline from its edges' x and its bins' y (formatted once each):
    up and along each bin; closed to the axis when filled."""
    body = "".join(f"L{xs[i]},{y}L{xs[i + 1]},{y}" for i, y in enumerate(ys))
    return f"M{xs[0]},{base}{body}L{xs[-1]},{base}" + ("Z" if closed else "")


def _histograms(sides: list[tuple[Sequence[float], Sequence[float], str]], width: int, height: int,
                extra: str = "") -> tuple[str, Any]:
    """Reference filled, current as a line: shares per bin over a shared x axis with round ticks."""
    lo = min(float(edges[0]) for edges, _, _ in sides)
    hi = max(float(edges[-1]) for edges, _, _ in sides)
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    shares = [_shares(counts) for _, counts, _ in sides]
    top = max((max(s, default=0.0) for s in shares), default=0.0) * 1.05 or 1.0
    left, right, plot_top, base = 4.0, width - 4.0, 4.0, height - 16.0

    scale_x, scale_y = (right - left) / (hi - lo), (base - plot_top) / top

    def x(v: float) -> float:
        return left + (float(v) - lo) * scale_x

    body = []
    for (edges, _, color), s in zip(sides, shares):
        xs = [f"{left + (float(e) - lo) * scale_x:.1f}" for e in edges]
        d = _steps(xs, [f"{base - v * scale_y:.1f}" for v in s], _f(base), color == REF_COLOR)
        body.append(f'<path d="{d}" fill="{color}" fill-opacity="0.55"/>' if color == REF_COLOR
                    else f'<path d="{d}" fill="none" stroke="{color}" stroke-width="1.2"/>')
    axis = [_line(left, base, right, base)]
    for t in ticks(lo, hi):
        tx = x(t)
        anchor = "start" if tx < left + 8 else "end" if tx > right - 8 else "middle"
        axis.append(_line(tx, base, tx, base + 2) + f'<text x="{_f(tx)}" y="{_f(height - 4)}" '
                    f'text-anchor="{anchor}" fill="{MUTED}">{_e(tick_label(t))}</text>')
    return "".join(body) + extra + "".join(axis), x


def distribution_svg(dist: dict[str, Any], kind: str, label: str = "") -> str | None:
    """Reference (grey, filled) against current (red): shares per bin, or per category.
    No y axis and no legend (the report's header says which colour is which)."""
    if not dist:
        return None
    title = f"distribution of {label}: reference (grey) against current (red)" if label else "distribution"
    if kind == "numeric":
        edges = dist["edges"]
        body, _ = _histograms([(edges, dist["reference"], REF_COLOR), (edges, dist["current"], CUR_COLOR)], 260, 90)
        return _svg(260, 90, title, body)
    return _bars(dist, title)


def _bars(dist: dict[str, Any], title: str) -> str:
    names = [str(n) for n in dist["categories"]]
    ref, cur = list(dist["reference"]), list(dist["current"])
    other = dist.get("other", [0, 0])
    if any(other):
        names.append("(other)")
        ref, cur = [*ref, other[0]], [*cur, other[1]]
    ref_s, cur_s = _shares(ref), _shares(cur)
    names, ref_s, cur_s = names[:MAX_CATEGORIES], ref_s[:MAX_CATEGORIES], cur_s[:MAX_CATEGORIES]
    rotate = len(names) > 5
    width, height = 260, 100 if rotate else 90
    base, plot_top = height - (34 if rotate else 16), 4.0
    top = max(max(ref_s, default=0), max(cur_s, default=0)) * 1.05 or 1.0
    left = 40.0 if rotate else 4.0  # room for the first slanted label
    slot = (width - 4 - left) / max(len(names), 1)
    bar = slot * 0.4
    parts = []
    for i, (name, r, c) in enumerate(zip(names, ref_s, cur_s)):
        cx = left + slot * (i + 0.5)
        short = name if len(name) <= 10 else name[:9] + "…"
        hr, hc = r / top * (base - plot_top), c / top * (base - plot_top)
        ly = base + 10 if rotate else height - 4
        turn = f' text-anchor="end" transform="rotate(-30 {_f(cx)} {_f(ly)})"' if rotate else ' text-anchor="middle"'
        parts.append(f"<g><title>{_e(name)}: reference {r:.1%}, current {c:.1%}</title>"
                     + _rect(cx - bar, base - hr, bar, hr, REF_COLOR) + _rect(cx, base - hc, bar, hc, CUR_COLOR)
                     + f'<text x="{_f(cx)}" y="{_f(ly)}"{turn} fill="{MUTED}">{_e(short)}</text></g>')
    parts.append(_line(left, base, width - 4, base))
    return _svg(width, height, title, "".join(parts))


def errors_svg(hist: dict[str, Any] | None, other: dict[str, Any] | None) -> str | None:
    """Regression errors (prediction − target), reference against current, with the zero line."""
    sides = [(h["edges"], h["counts"], color) for h, color in ((hist, REF_COLOR), (other, CUR_COLOR)) if h]
    if not sides:
        return None
    width, height = 360, 110
    body, x = _histograms(sides, width, height)
    lo, hi = min(s[0][0] for s in sides), max(s[0][-1] for s in sides)
    zero = _line(x(0), 4, x(0), height - 16) if lo <= 0 <= hi else ""
    legend = (f'<text x="{width - 4}" y="12" text-anchor="end" fill="{MUTED}">'
              f'<tspan fill="{REF_COLOR}">■</tspan> reference <tspan fill="{CUR_COLOR}">■</tspan> current</text>')
    return _svg(width, height, "error distribution (prediction − target): reference against current",
                body + zero + legend)


def windows_svg(windows: dict[str, Any], columns: list[str]) -> str | None:
    """Drift score per window for a few columns: distances on a linear axis, p-values on a log one,
    each column's threshold dashed."""
    rows = windows.get("windows", [])
    if not rows or not columns:
        return None
    kinds = windows["score_kinds"]
    groups = [k for k in ("distance", "p_value") if any(kinds[c] == k for c in columns)]
    colors = {c: LINE_COLORS[i % len(LINE_COLORS)] for i, c in enumerate(columns)}
    width, panel = 700, 140
    parts = [_window_panel(windows, [c for c in columns if kinds[c] == g], g, colors, g_i * panel, width, panel)
             for g_i, g in enumerate(groups)]
    return _svg(width, panel * len(groups), "drift score per window", "".join(parts))


def _window_panel(windows: dict[str, Any], shown: list[str], group: str, colors: dict[str, str], top: float,
                  width: int, height: int) -> str:
    rows = windows["windows"]
    log = group == "p_value"

    def val(v: float) -> float:
        return math.log10(max(v, 1e-300)) if log else v

    thresholds = sorted({float(windows["thresholds"][c]) for c in shown})
    values = [val(v) for c in shown for v in windows["scores"][c] if v is not None and math.isfinite(v)]
    values += [val(t) for t in thresholds]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if not log:
        lo = min(lo, 0.0)
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    left, right, y0, y1 = 52.0, width - 6.0, top + 30, top + height - 22

    def x(i: int) -> float:
        return left + (i + 0.5) / len(rows) * (right - left)

    def y(v: float) -> float:
        return y1 - (v - lo) / (hi - lo) * (y1 - y0)

    out = [f'<text x="4" y="{_f(top + 12)}" fill="{MUTED}">{"p-value (log)" if log else "distance"}</text>']
    yt = [float(k) for k in range(math.ceil(lo), math.floor(hi) + 1)] if log else ticks(lo, hi, 4)
    if log and len(yt) > 5:
        yt = yt[:: math.ceil(len(yt) / 5)]
    for t in yt:
        out.append(_line(left, y(t), right, y(t), RULE, 1) + f'<text x="{_f(left - 4)}" y="{_f(y(t) + 3)}" '
                   f'text-anchor="end" fill="{MUTED}">{_e(tick_label(10 ** t if log else t))}</text>')
    for t in thresholds:
        out.append(_line(left, y(val(t)), right, y(val(t)), MUTED, 0.7, ' stroke-dasharray="4 3"'))
    step = max(1, len(rows) // 8)
    for i in range(0, len(rows), step):
        out.append(f'<text x="{_f(x(i))}" y="{_f(y1 + 14)}" text-anchor="middle" fill="{MUTED}" font-size="8">'
                   f'{_e(str(rows[i]["start"])[:16])}</text>')
    legend_x, legend_y = left + 28, top + 12
    for c in shown:
        color, segments, seg = colors[c], [], []
        for i, v in enumerate(windows["scores"][c]):
            if v is None or not math.isfinite(v):
                segments, seg = segments + [seg] if seg else segments, []
                continue
            seg.append((x(i), y(val(v)), v))
        segments += [seg] if seg else []
        for s in segments:
            if len(s) > 1:
                path = "M" + "L".join(f"{_f(a)},{_f(b)}" for a, b, _ in s)
                out.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="1"/>')
            out.extend(f'<circle cx="{_f(a)}" cy="{_f(b)}" r="1.8" fill="{color}"><title>{_e(c)}: {_e(tick_label(v))}'
                       f"</title></circle>" for a, b, v in s)
        name = c if len(c) <= 20 else c[:19] + "…"
        wide = 14 + 5.5 * len(name)
        if legend_x + wide > right and legend_x > left + 28:  # the next legend line, in the top margin
            legend_x, legend_y = left + 28, legend_y + 10
        out.append(f'<text x="{_f(legend_x)}" y="{_f(legend_y)}" fill="{TEXT}"><tspan fill="{color}">■</tspan> '
                   f"{_e(name)}</text>")
        legend_x += wide
    return "".join(out)
