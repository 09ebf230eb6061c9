"""HTML of a drift report (``DriftReport.html()``): inline styles only (survives nbconvert and
notebook sanitizers), every user string escaped, pictures as inline SVG (``plots``). The inline
output has no script; the saved page adds a few lines of our own JavaScript to sort the tables
by a click on a heading. ``DriftReport`` renders once and keeps the result for its inline view,
``html()`` and ``save()``.

Drifted columns come first and are shown open; the columns without drift and those not tested
sit in collapsed ``<details>``, so 1,000 columns stay readable. Pictures are drawn for at most
``MAX_PLOTS`` columns (drifted first); the numbers of every column are always there.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from .html import badge
from .plots import distribution_svg, errors_svg, windows_svg
from .style import AMBER, BORDER, FAINT, GREEN, MUTED, MUTED_CSS, RED, RULE, SUBTLE, TEXT

MAX_PLOTS = 60
_BOX = f"font-family:system-ui,-apple-system,sans-serif;font-size:13px;color:{TEXT};max-width:1100px"
_TABLE = "border-collapse:collapse;font-size:12px;margin:4px 0 10px 0"
_TH = f"padding:3px 8px;border-bottom:2px solid {BORDER};text-align:left;background:{SUBTLE};cursor:pointer"
_TD = f"padding:3px 8px;border-bottom:1px solid {RULE};text-align:left;vertical-align:middle"
_MUTED = MUTED_CSS
_RED, _GREEN, _GREY, _AMBER = RED, GREEN, MUTED, AMBER


def e(value: Any) -> str:
    return escape(str(value), quote=True)


def num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if math.isinf(value):
            return "∞"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}g}"
    return e(value)


def verdict(c: Any) -> str:
    if c.drifted is None:
        return badge("not tested", _GREY)
    return badge("drift", _RED) if c.drifted else badge("ok", _GREEN)


def table(headers: list[str], rows: list[list[str]], sort_keys: list[list[Any]] | None = None) -> str:
    head = "".join(f'<th style="{_TH}">{e(h)}</th>' for h in headers)
    body = []
    for i, row in enumerate(rows):
        keys = sort_keys[i] if sort_keys else [None] * len(row)
        cells = "".join(f'<td style="{_TD}"' + (f' data-v="{e(k)}"' if k is not None else "") + f">{cell}</td>"
                        for cell, k in zip(row, keys))
        body.append(f"<tr>{cells}</tr>")
    return (f'<table class="nbm-sortable" style="{_TABLE}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def details(summary: str, body: str, open_: bool = False) -> str:
    return (f'<details{" open" if open_ else ""} style="margin:6px 0"><summary style="cursor:pointer;font-weight:600">'
            f"{summary}</summary>{body}</details>")


def _side(stats: dict[str, Any], kind: str) -> str:
    if not stats:
        return "—"
    missing = stats.get("missing", 0) / stats["rows"] if stats.get("rows") else 0
    miss = f' <span style="{_MUTED}">· {missing:.1%} missing</span>' if missing else ""
    if kind == "numeric":
        return f"mean {num(stats.get('mean'))} · sd {num(stats.get('std'))}{miss}"
    top = stats.get("top") or []
    if top:
        total = max(stats.get("count", 0), 1)
        return f"{e(top[0][0])} {top[0][1] / total:.0%} · {num(stats.get('unique'))} values{miss}"
    return f"{num(stats.get('unique'))} values{miss}"


def column_rows(cols: list[Any], plots: set[str]) -> tuple[list[list[str]], list[list[Any]]]:
    rows, keys = [], []
    for c in cols:
        score = c.score
        if c.p_value_adjusted is not None:
            score_txt = f"{num(c.score)} <span style=\"{_MUTED}\">(raw {num(c.p_value)})</span>"
        else:
            score_txt = num(score)
        kind_of = {"p_value": "p-value", "distance": "distance"}.get(c.score_kind or "", "")
        test = (f"{e(c.stattest_label or c.stattest)}<br><span style=\"{_MUTED};font-size:11px\">{e(c.reason)}</span>"
                if c.stattest else "—")
        note = f'<div style="color:{_AMBER};font-size:11px">{e(c.note)}</div>' if c.note else ""
        picture = (distribution_svg(c.distribution, c.kind, c.name) or "") if c.name in plots else ""
        rows.append([f"<b>{e(c.name)}</b>{note}", e(c.kind), test,
                     f"{score_txt}<br><span style=\"{_MUTED};font-size:11px\">{e(kind_of)}</span>"
                     if c.tested else score_txt,
                     num(c.threshold), verdict(c), _side(c.reference, c.kind), _side(c.current, c.kind), picture])
        keys.append([c.name, c.kind, c.stattest or "", c.severity if c.tested else -1e300, c.threshold or 0,
                     2 if c.drifted else (1 if c.tested else 0), None, None, None])
    return rows, keys


COLUMN_HEADERS = ["column", "type", "test", "score", "threshold", "verdict", "reference", "current", "distribution"]


def render_columns(report: Any) -> str:
    ranked = report.ranked()
    plots = {c.name for c in ranked if c.distribution}
    plots = set(list(c.name for c in ranked if c.name in plots)[:MAX_PLOTS])
    drifted = [c for c in ranked if c.drifted]
    calm = [c for c in ranked if c.tested and not c.drifted]
    untested = [c for c in ranked if not c.tested]
    parts = []
    if drifted:
        parts.append(table(COLUMN_HEADERS, *column_rows(drifted, plots)))
    else:
        parts.append(f'<div style="{_MUTED};margin:4px 0">no column drifted</div>')
    if calm:
        parts.append(details(f"{len(calm):,} column{'s' if len(calm) != 1 else ''} without drift",
                             table(COLUMN_HEADERS, *column_rows(calm, plots))))
    if untested:
        parts.append(details(f"{len(untested):,} column{'s' if len(untested) != 1 else ''} not tested",
                             table(COLUMN_HEADERS, *column_rows(untested, plots))))
    hidden = sum(1 for c in ranked if c.distribution and c.name not in plots)
    if hidden:
        parts.append(f'<div style="{_MUTED};font-size:11px">pictures of {hidden:,} more columns left out '
                     f"(at most {MAX_PLOTS}); their numbers are in the tables and in report.to_dict()</div>")
    return "".join(parts)


def render_header(report: Any) -> str:
    n, drifted = len(report.tested_columns), report.drifted_columns
    head = badge("DATASET DRIFT", _RED) if report.dataset_drift else badge("no dataset drift", _GREEN)
    opts = report.options
    tests = {}
    for c in report.tested_columns:
        tests.setdefault(c.stattest_label or c.stattest, []).append(c)
    used = "; ".join(f"{e(label)} for {len(cs)} column{'s' if len(cs) != 1 else ''} (threshold "
                     f"{', '.join(sorted({num(c.threshold) for c in cs}))})" for label, cs in tests.items())
    lines = [f'<div style="font-size:15px;margin-bottom:4px">{head} <b>{len(drifted):,} of {n:,} columns drifted</b> '
             f'<span style="{_MUTED}">({report.share_drifted:.0%}; '
             f'the dataset drifts at {report.drift_share:.0%})</span></div>']
    src = report.sources
    lines.append(f'<div style="{_MUTED}">reference <b>{e(src.get("reference", ""))}</b> '
                 f'{report.rows["reference"]:,} rows · '
                 f'current <b>{e(src.get("current", ""))}</b> {report.rows["current"]:,} rows · {e(report.created)} · '
                 f"computed in {report.elapsed:.2f} s</div>")
    if used:
        lines.append(f"<div>tests: {used}</div>")
    lines.append(f'<div style="{_MUTED};font-size:11px">pictures: <span style="color:{FAINT}">■</span> reference, '
                 f'<span style="color:{_RED}">■</span> current</div>')
    if opts.get("defaults"):
        lines.append(f'<div style="{_MUTED};font-size:11px">{e(opts["defaults"])}</div>')
    if opts.get("correction"):
        lines.append(f"<div>p-values corrected for {n:,} tests ({e(opts.get('correction_label'))}); "
                     "distances are not</div>")
    if report.notes:
        items = "".join(f"<li>{e(x)}</li>" for x in report.notes)
        lines.append(f'<ul style="margin:4px 0;padding-left:18px;color:{_AMBER}">{items}</ul>')
    return "".join(lines)


def render_roles(report: Any) -> str:
    cols = [c for c in ([report.target] if report.target else []) + list(report.prediction)]
    if not cols:
        return ""
    headers = ["role", *COLUMN_HEADERS]
    rows, _ = column_rows(cols, {c.name for c in cols})
    rows = [[e(c.role), *r] for c, r in zip(cols, rows)]
    return "<h4 style=\"margin:12px 0 2px\">Target and prediction drift</h4>" + table(headers, rows)


def render_quality(q: dict[str, Any] | None, rows: dict[str, int]) -> str:
    if not q:
        return ""
    dup = q.get("duplicated_rows", {})
    dup_txt = " · ".join(f"{side} {n:,} duplicated rows ({n / max(rows[side], 1):.1%})" for side, n in dup.items())
    issues = q.get("issues", [])
    body = table(["column", "issue", "detail"], [[f"<b>{e(i['column'])}</b>", e(i["issue"]), e(i["detail"])]
                                               for i in issues]) if issues else \
        f'<div style="{_MUTED}">no data-quality issue found</div>'
    per = q.get("columns", {})
    all_cols = table(["column", "dtype (ref → cur)", "missing ref", "missing cur", "distinct ref", "distinct cur"],
                     [[e(k), e(" → ".join(dict.fromkeys(v["dtype"]))), f"{v['missing_share'][0]:.2%}",
                       f"{v['missing_share'][1]:.2%}", num(v["unique"][0]), num(v["unique"][1])]
                      for k, v in per.items()])
    notes = "".join(f'<div style="color:{_AMBER}">{e(n)}</div>' for n in q.get("notes", []))
    return (f"<h4 style=\"margin:12px 0 2px\">Data quality · "
            f"{len(issues):,} issue{'s' if len(issues) != 1 else ''}</h4>"
            f'<div style="{_MUTED}">{dup_txt}</div>{notes}{body}'
            + (details(f"all {len(per):,} columns", all_cols) if per else ""))


def render_performance(p: dict[str, Any] | None) -> str:
    if not p or not (p.get("reference") or p.get("current")):
        return ""
    ref, cur = p.get("reference") or {}, p.get("current") or {}
    names = ["accuracy", "precision", "recall", "f1", "roc_auc"] if p["task"] == "classification" \
        else ["mae", "rmse", "r2", "mape", "mean_error"]
    rows = []
    for m in names:
        a, b = ref.get(m), cur.get(m)
        if a is None and b is None:
            continue
        change = num(b - a) if isinstance(a, (int, float)) and isinstance(b, (int, float)) else "—"
        rows.append([e(m), num(a), num(b), change])
    parts = [f"<h4 style=\"margin:12px 0 2px\">Model performance · {e(p['task'])} · target <b>{e(p['target'])}</b>, "
             f"prediction <b>{e(', '.join(p['prediction']))}</b></h4>",
             table(["metric", "reference", "current", "change"], rows)]
    avg = ref.get("average") or cur.get("average")
    if avg:
        parts.append(f'<div style="{_MUTED};font-size:11px">precision/recall/F1: {e(avg)}</div>')
    if p["task"] == "classification":
        mats = [f"<div><div style=\"{_MUTED}\">{side} (rows: true, columns: predicted)</div>"
                f"{_matrix(d['confusion_matrix'])}</div>"
                for side, d in (("reference", ref), ("current", cur)) if d.get("confusion_matrix")]
        parts.append(f'<div style="display:flex;gap:24px;flex-wrap:wrap">{"".join(mats)}</div>')
    else:
        parts.append(errors_svg(ref.get("error_histogram"), cur.get("error_histogram")) or "")
    parts += [f'<div style="color:{_AMBER}">{e(n)}</div>' for n in p.get("notes", [])]
    return "".join(parts)


def _matrix(cm: dict[str, Any]) -> str:
    labels, m = cm["labels"][:20], cm["matrix"]
    head = "".join(f'<th style="{_TH}">{e(x)}</th>' for x in labels)
    body = "".join(f'<tr><th style="{_TH}">{e(labels[i])}</th>'
                   + "".join(f'<td style="{_TD};text-align:right">{v:,}</td>' for v in row[:20]) + "</tr>"
                   for i, row in enumerate(m[:20]))
    return f'<table style="{_TABLE}"><tr><th style="{_TH}"></th>{head}</tr>{body}</table>'


def render_windows(w: dict[str, Any] | None) -> str:
    if not w or not w.get("windows"):
        return ""
    worst = sorted(w["drifted"], key=lambda c: -sum(bool(x) for x in w["drifted"][c]))[:8]
    rows = [[e(r["start"]), num(r["rows"]), f"{r['drifted']:,} / {r['tested']:,}", f"{r['share']:.0%}",
             badge("drift", _RED) if r["dataset_drift"] else badge("ok", _GREEN)] for r in w["windows"]]
    by = f"time column <b>{e(w['column'])}</b>, " if w.get("column") else ""
    return (f"<h4 style=\"margin:12px 0 2px\">Drift over time · {by}windows of {e(w['window'])}</h4>"
            + (windows_svg(w, worst) or "")
            + details(f"{len(rows):,} windows",
                      table(["window start", "rows", "drifted columns", "share", "dataset"], rows),
                      open_=len(rows) <= 12))


def render_report(report: Any) -> str:
    return (f'<div class="nbmlops-drift" style="{_BOX}">'
            f"{render_header(report)}{render_roles(report)}"
            f"<h4 style=\"margin:12px 0 2px\">Columns</h4>{render_columns(report)}"
            f"{render_windows(report.windows)}{render_performance(report.performance)}"
            f"{render_quality(report.quality, report.rows)}</div>")


# the saved page's only script (the dashboard allows exactly this one by its hash)
SORT_JS = """
document.querySelectorAll('table.nbm-sortable').forEach(function (t) {
  t.querySelectorAll('th').forEach(function (th, i) {
    th.addEventListener('click', function () {
      var body = t.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var dir = th.dataset.dir === 'asc' ? -1 : 1; th.dataset.dir = dir === 1 ? 'asc' : 'desc';
      function key(r) { var c = r.cells[i]; var v = c.dataset.v !== undefined ? c.dataset.v : c.textContent;
        var n = parseFloat(v); return isNaN(n) ? v.toLowerCase() : n; }
      rows.sort(function (a, b) { var x = key(a), y = key(b); return (x > y ? 1 : x < y ? -1 : 0) * dir; });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def render_page(report: Any, body: str) -> str:
    title = "Drift report · " + ("DRIFT" if report.dataset_drift else "no drift")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{e(title)}</title></head>"
            f'<body style="margin:16px">{body}'
            f'<div style="{_MUTED};font-size:11px;margin-top:12px">'
            "nbmlops drift report · click a table heading to sort</div>"
            f"<script>{SORT_JS}</script></body></html>\n")
