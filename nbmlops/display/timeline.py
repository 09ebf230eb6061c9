"""HTML of a monitoring timeline (``MonitorTimeline._repr_html_``): one chart per model version, inline
SVG with no script (survives nbconvert and notebook sanitizers), every stored string escaped.

Each chart has two panels over one time axis: the share of drifted columns with the dataset-drift
threshold (windows over it in red, on a red band), and the estimated (dashed) vs realized (solid)
performance; the alias moves to and from the version cross both as amber lines. Under it, the
newest windows as a table.
"""

from __future__ import annotations

import time
from html import escape
from typing import Any

from .._util import fmt_time
from .style import AMBER, BLUE, BORDER, FAINT, GREEN, MUTED, PURPLE, RED, RED_BG, RULE, SCROLL_X, SUBTLE, TEXT

W, L, R = 720, 48, 16            # width, left and right margins
TOP_H, PERF_H, GAP, AXIS = 150, 120, 26, 30  # panel heights, the gap between them, the time axis
TABLE_ROWS = 10                  # newest windows listed per version
MAX_DOTS = 200                   # above this, only the windows over the threshold get a dot
_TD = f"padding:2px 8px;border-bottom:1px solid {RULE};text-align:left;white-space:nowrap"
_TH = f"padding:2px 8px;border-bottom:2px solid {BORDER};text-align:left;background:{SUBTLE}"
_STEPS = [1000 * s for s in (1, 5, 10, 30)] + [60_000 * m for m in (1, 5, 15, 30, 60, 180, 360, 720, 1440, 2880,
                                                                   10080, 20160, 43200)]
MIN_SPAN = 20_000                # ms: windows judged seconds apart (a test, a demo) still spread out


def e(value: Any) -> str:
    return escape(str(value), quote=True)


def _num(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def timeline_html(tl: Any) -> str:
    """The whole card: a header, then a chart and a table per version."""
    what = e(tl.model) + ("" if tl.version is None else f" v{tl.version}")
    head = f'<div style="font-size:14px"><b>Monitoring timeline</b> of <b>{what}</b></div>'
    live = sum(w["kind"] == "window" for w in tl.window_records)
    facts = [f"{live:,} live windows, {len(tl.window_records) - live:,} logged reports"]
    if tl.truncated:
        facts.append(f"{tl.truncated:,} older left out")
    if tl.threshold is not None:
        facts.append(f"dataset-drift threshold {tl.threshold:g}")
    facts.append("alias moves of " + (", ".join(e(a) for a in tl.aliases) if tl.aliases else "no alias"))
    facts.append("times local")
    head += f'<div style="color:{MUTED};font-size:12px">{" · ".join(facts)}</div>'
    if not tl.window_records and not tl.switch_records:
        body = (f'<p style="color:{MUTED}">No window or drift report recorded yet: serve the model with '
                '<code>serve(..., monitor=True)</code>, or log a report with <code>drift_report(...).log(model=...)'
                '</code>.</p>')
    else:
        body = "".join(_version_block(tl, v) for v in tl.versions)
    return (f'<div class="nbmlops-timeline" style="font-family:system-ui,sans-serif;font-size:13px;color:{TEXT};'
            f'border:1px solid {BORDER};border-radius:6px;padding:8px 12px;max-width:{W + 40}px">{head}{body}</div>')


def _version_block(tl: Any, version: int) -> str:
    windows = [w for w in tl.window_records if w["version"] == version]
    # with older windows left out, the chart starts at the oldest one kept (older alias moves are in .switches)
    switches = [s for s in tl.switch_records if version in (s["from"], s["to"]) and s["time"] >= (tl.since or 0)]
    title = f'<div style="margin-top:10px"><b>{e(tl.model)} v{version}</b>'
    deps = sorted({w["deployment"] for w in windows if w["deployment"]})
    if deps:
        title += f'<span style="color:{MUTED}"> · served by {", ".join(e(d) for d in deps)}</span>'
    title += "</div>"
    return title + chart_svg(windows, switches, tl.metric, version) + _legend(tl.metric) + _table(windows)


def chart_svg(windows: list[dict[str, Any]], switches: list[dict[str, Any]], metric: str | None,
              version: int | None = None) -> str:
    """Drift share over time (top) and estimated vs realized ``metric`` (below), alias moves as lines."""
    times = [w["time"] for w in windows] + [s["time"] for s in switches]
    lo, hi = (min(times), max(times)) if times else (0, 1)
    if hi - lo < MIN_SPAN:
        mid = (lo + hi) / 2
        lo, hi = mid - MIN_SPAN / 2, mid + MIN_SPAN / 2
    pad = (hi - lo) * 0.03
    lo, hi = lo - pad, hi + pad
    perf = metric is not None
    band = 12 * min(3, len(switches)) + 4 if switches else 0  # the alias moves' labels, above the data
    height = band + TOP_H + (GAP + PERF_H if perf else 0) + AXIS
    bottom = height - AXIS

    def px(t: float) -> float:
        return L + (t - lo) / (hi - lo) * (W - L - R)

    top = _Panel(band, TOP_H, 0.0, 1.0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" '
             f'role="img" data-version="{e(version)}" style="display:block;max-width:100%;height:auto;font-size:10px;'
             f'font-family:system-ui,sans-serif"><title>{e(_caption(windows, switches, version))}</title>']
    for w in windows:  # the windows over the threshold: a red band across both panels
        if w["drifted"]:
            x0, x1 = px(w["first"] or w["time"]), px(w["last"] or w["time"])
            x0, x1 = min(x0, x1 - 3), max(x1, x0 + 3)
            parts.append(f'<rect class="over" x="{x0:.1f}" y="{band + 8}" width="{x1 - x0:.1f}" '
                         f'height="{bottom - band - 8}" fill="{RED_BG}"/>')
    parts += top.axis(W, "drift share")
    threshold = next((w["threshold"] for w in reversed(windows) if w["threshold"] is not None), None)
    if threshold is not None:
        y = top.y(threshold)
        parts.append(f'<line x1="{L}" x2="{W - R}" y1="{y:.1f}" y2="{y:.1f}" stroke="{RED}" stroke-dasharray="5 3"/>'
                     f'<text x="{W - R}" y="{y - 3:.1f}" text-anchor="end" fill="{RED}">threshold {threshold:g}</text>')
    shares = [(px(w["time"]), top.y(w["drift_share"]), w) for w in windows if w["drift_share"] is not None]
    parts.append(_line(shares, BLUE, "drift share", dashed=False))
    parts += [_dot(x, y, RED if w["drifted"] else BLUE, _tip(w), big=bool(w["drifted"]))
              for x, y, w in shares if w["drifted"] or len(shares) <= MAX_DOTS]
    if perf:
        values = [v for w in windows for v in (w[f"estimated_{metric}"], w[f"realized_{metric}"]) if v is not None]
        low, high = _range(values, metric)
        panel = _Panel(band + TOP_H + GAP, PERF_H, low, high)
        parts += panel.axis(W, metric)
        for side, color, dashed in (("estimated", PURPLE, True), ("realized", GREEN, False)):
            pts = [(px(w["time"]), panel.y(w[f"{side}_{metric}"]), w) for w in windows
                   if w[f"{side}_{metric}"] is not None]
            parts.append(_line(pts, color, f"{side} {metric}", dashed))
            if len(pts) <= MAX_DOTS:
                parts += [_dot(x, y, color, f"{side} {metric} {w[f'{side}_{metric}']:.3f} · {_tip(w)}")
                          for x, y, w in pts]
    parts.append(f'<line x1="{L}" x2="{W - R}" y1="{bottom}" y2="{bottom}" stroke="{FAINT}"/>')
    for t, label in _ticks(lo, hi):
        parts.append(f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{bottom}" y2="{bottom + 4}" stroke="{FAINT}"/>'
                     f'<text x="{px(t):.1f}" y="{bottom + 15}" text-anchor="middle" fill="{MUTED}">{e(label)}</text>')
    for i, s in enumerate(switches):  # labels on three rows, so moves close in time stay readable
        x, row = px(s["time"]), 12 * (i % 3)
        label = _switch_label(s, version)
        parts.append(f'<g class="switch"><title>{e(label)} · {e(fmt_time(s["time"]))}'
                     f'{" · by " + e(s["user"]) if s.get("user") else ""}</title>'
                     f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{row + 2}" y2="{bottom}" stroke="{AMBER}" '
                     f'stroke-width="1.5"/><text x="{x + 3:.1f}" y="{row + 11}" fill="{AMBER}">{e(label)}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


class _Panel:
    """A value axis from ``low`` to ``high`` drawn ``height`` px tall from ``top``."""

    def __init__(self, top: float, height: float, low: float, high: float) -> None:
        self.top, self.height, self.low, self.high = top + 8, height - 8, low, high

    def y(self, v: float) -> float:
        return self.top + self.height - (v - self.low) / (self.high - self.low) * self.height

    def axis(self, width: int, label: str) -> list[str]:
        out = [f'<text x="{L}" y="{self.top - 1:.0f}" fill="{MUTED}" font-weight="600">{e(label)}</text>']
        for i in range(5):
            v = self.low + (self.high - self.low) * i / 4
            y = self.y(v)
            out.append(f'<line x1="{L}" x2="{width - R}" y1="{y:.1f}" y2="{y:.1f}" stroke="{RULE}"/>'
                       f'<text x="{L - 4}" y="{y + 3:.1f}" text-anchor="end" fill="{MUTED}">{_tick(v)}</text>')
        return out


def _tick(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".") if abs(v) < 100 else f"{v:,.0f}"


def _range(values: list[float], metric: str) -> tuple[float, float]:
    """Accuracy from a round tenth below the lowest value to 1; an error from 0 to a bit above the highest."""
    if not values:
        return 0.0, 1.0
    if metric == "accuracy":
        return max(0.0, min(int(min(values) * 10) / 10, 0.9)), 1.0
    top = max(values) * 1.15
    return 0.0, top if top > 0 else 1.0


def _line(pts: list[tuple[float, float, Any]], color: str, label: str, dashed: bool) -> str:
    if len(pts) < 2:
        return ""
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in pts)
    dash = ' stroke-dasharray="5 3"' if dashed else ""
    return (f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="1.5"{dash}>'
            f'<title>{e(label)}</title></polyline>')


def _dot(x: float, y: float, color: str, tip: str, big: bool = False) -> str:
    return (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{4 if big else 2.5}" fill="{color}"><title>{e(tip)}</title>'
            "</circle>")


def _tip(w: dict[str, Any]) -> str:
    what = f"window of {w['deployment']}" if w["kind"] == "window" and w["deployment"] else w["kind"]
    share = "—" if w["drift_share"] is None else f"{w['drift_share']:.2f}"
    return f"{fmt_time(w['time'])} · {what} · drift share {share}{' (over the threshold)' if w['drifted'] else ''}"


def _switch_label(s: dict[str, Any], version: int | None) -> str:
    old = "none" if s["from"] is None else f"v{s['from']}"
    new = "none" if s["to"] is None else f"v{s['to']}"
    if version is not None and s["to"] == version:
        return f"{s['alias']} → here (from {old})"
    if version is not None and s["from"] == version:
        return f"{s['alias']} → {new} (left)"
    return f"{s['alias']}: {old} → {new}"


def _caption(windows: list[dict[str, Any]], switches: list[dict[str, Any]], version: int | None) -> str:
    over = sum(bool(w["drifted"]) for w in windows)
    return (f"v{version}: {len(windows)} windows, {over} over the drift threshold, {len(switches)} alias moves")


def _ticks(lo: float, hi: float) -> list[tuple[float, str]]:
    """About five ticks on whole minutes, hours or days of local time."""
    step = next((s for s in _STEPS if (hi - lo) / s <= 6), _STEPS[-1])
    offset = -time.localtime(lo / 1000).tm_gmtoff * 1000
    first = ((lo - offset) // step + 1) * step + offset
    fmt = "%b %d" if step >= 86_400_000 else "%H:%M" if step >= 60_000 else "%H:%M:%S"
    out, t = [], first
    while t <= hi:
        out.append((t, time.strftime(fmt, time.localtime(t / 1000))))
        t += step
    return out


def _legend(metric: str | None) -> str:
    def item(color: str, text: str, dashed: bool = False) -> str:
        line = f"border-top:2px {'dashed' if dashed else 'solid'} {color}"
        return (f'<span style="margin-right:12px;white-space:nowrap"><span style="display:inline-block;width:18px;'
                f'vertical-align:middle;{line}"></span> {e(text)}</span>')

    items = [item(BLUE, "drift share"), item(RED, "threshold", dashed=True),
             f'<span style="margin-right:12px"><span style="background:{RED_BG};padding:0 6px">&nbsp;</span> '
             "over the threshold</span>"]
    if metric:
        items += [item(PURPLE, f"estimated {metric}", dashed=True), item(GREEN, f"realized {metric} (labels)")]
    items.append(item(AMBER, "alias moved"))
    return f'<div style="font-size:11px;color:{MUTED};margin:2px 0 4px {L}px">{"".join(items)}</div>'


def _table(windows: list[dict[str, Any]]) -> str:
    if not windows:
        return f'<div style="color:{MUTED};font-size:12px">no window recorded for this version</div>'
    newest = windows[::-1][:TABLE_ROWS]
    head = "".join(f'<th style="{_TH}">{h}</th>' for h in
                   ("time", "source", "rows", "drift share", "drifted columns", "estimated", "realized"))
    rows = []
    for w in newest:
        metric = "accuracy" if w["estimated_accuracy"] is not None or w["realized_accuracy"] is not None else "mae"
        est, real = w[f"estimated_{metric}"], w[f"realized_{metric}"]
        source = f"window · {w['deployment']}" if w["kind"] == "window" and w["deployment"] else w["kind"]
        share = _num(w["drift_share"], 2)
        share_css = f";color:{RED};font-weight:600" if w["drifted"] else ""
        cols = w["drifted_columns"][:5]
        more = len(w["drifted_columns"]) - len(cols)
        drifted = ", ".join(e(c) for c in cols) + (f" +{more}" if more > 0 else "")
        nrows = "—" if w["rows"] is None else f"{w['rows']:,}"
        labels = f' <span style="color:{MUTED}">({w["labels"]:,} labels)</span>' if w.get("labels") else ""
        rows.append(f'<tr><td style="{_TD}">{e(fmt_time(w["time"]))}</td><td style="{_TD}">{e(source)}</td>'
                    f'<td style="{_TD}">{nrows}</td>'
                    f'<td style="{_TD}{share_css}">{share}</td>'
                    f'<td style="{_TD};white-space:normal">{drifted or "—"}</td>'
                    f'<td style="{_TD}">{_num(est)}</td><td style="{_TD}">{_num(real)}{labels}</td></tr>')
    more = len(windows) - len(newest)
    tail = (f'<div style="color:{MUTED};font-size:11px">and {more:,} older (<code>.windows</code> has them all)</div>'
            if more > 0 else "")
    return (f'<div style="{SCROLL_X}"><table style="border-collapse:collapse;font-size:12px;margin:2px 0">'
            f'<thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>{tail}')
