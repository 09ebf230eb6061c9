"""Drift benchmark: nbmlops against Evidently, side by side in one run.

    python benchmarks/drift.py             # 100,000 and 1,000,000 rows a side, 2 passes each (~10 min on 2 cores)
    python benchmarks/drift.py --quick     # 10,000 and 50,000 rows, 1 pass (< 1 min), prints the table only

The data: reference and current of 20 numeric N(0, 1) columns and 5 categorical ones (4 levels);
in current 5 numeric columns are moved by 0.3 sd and 1 categorical one made uniform. Each tool
runs with its defaults (both pick normed Wasserstein for the numbers and Jensen-Shannon for the
categories at these sizes) in a fresh subprocess per measurement, passes interleaved, so each
measures its own peak memory:

- compute: ``nbmlops.drift_report(ref, cur)`` (drift, data quality with duplicated rows, the
  binned distributions) against ``Report([DataDriftPreset()]).run(cur, ref)``;
- save: ``report.save("x.html")`` (drawing its inline SVG pictures) against ``snapshot.save_html``:
  first in the process; again, the same report (nbmlops reuses what it drew: a report draws
  once for its inline view, ``html()`` and ``save()``); and a copy of the report drawn anew with
  everything warm (``dataclasses.replace``; Evidently: a third ``save_html``);
- peak memory: the process's peak RSS during compute (reset with /proc/self/clear_refs after the
  frames are built), minus its RSS before the frames were built (libraries imported): that is the
  frames plus the report's working memory, given also as a multiple of the frames' size
  (``memory_usage(deep=True)``);
- verdicts: per column, drifted or not, with the test each tool used, and the largest difference
  between the two tools' scores.

Only the section "## Drift (benchmarks/drift.py)" of RESULTS.md is replaced; other sections stay.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__:  # python -m benchmarks.drift
    from ._common import machine, write_section
else:  # python benchmarks/drift.py
    from _common import machine, write_section

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
PACKAGES = ("nbmlops", "evidently", "numpy", "pandas", "scipy")
SECTION = "## Drift (benchmarks/drift.py)"
TARGETS = {"speedup": 10.0, "compute_1m": 5.0, "memory": 3.0, "save": 1.0}

os.environ.setdefault("ITERATIVE_DO_NOT_TRACK", "do-not-track")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


# -- the worker: one tool, one size, one process --------------------------------------------

def frames(n: int, seed: int) -> tuple[Any, Any]:
    """The same layout as tests/_drift_data.py: 20 numeric + 5 categorical, 5 + 1 shifted."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    cats, p_ref, p_new = ["a", "b", "c", "d"], [0.4, 0.3, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]

    def make(shifted: bool) -> pd.DataFrame:
        d = {f"num_{i}": rng.normal(0.3 if shifted and i < 5 else 0.0, 1.0, n) for i in range(20)}
        for j in range(5):
            d[f"cat_{j}"] = rng.choice(cats, n, p=p_new if shifted and j == 0 else p_ref)
        return pd.DataFrame(d)

    return make(False), make(True)


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def worker(tool: str, rows: int, seed: int, out: str) -> None:
    import dataclasses
    import gc

    import numpy as np  # noqa: F401
    import pandas as pd  # noqa: F401

    if tool == "nbmlops":
        import scipy.stats  # noqa: F401

        import nbmlops
    else:
        from evidently import Report
        from evidently.presets import DataDriftPreset
    gc.collect()
    base = _status("VmRSS")
    ref, cur = frames(rows, seed)
    input_bytes = int(ref.memory_usage(deep=True).sum() + cur.memory_usage(deep=True).sum())
    gc.collect()
    _reset_peak()
    before = _status("VmRSS")
    html = Path(out).with_suffix(".html")
    t0 = time.perf_counter()
    if tool == "nbmlops":
        report = nbmlops.drift_report(ref, cur)
    else:
        snapshot = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
    compute = time.perf_counter() - t0
    peak = _status("VmHWM")
    t0 = time.perf_counter()
    if tool == "nbmlops":
        report.save(html)
    else:
        snapshot.save_html(str(html))
    save = time.perf_counter() - t0
    t0 = time.perf_counter()  # again, the same report
    if tool == "nbmlops":
        report.save(html)
    else:
        snapshot.save_html(str(html))
    save_again = time.perf_counter() - t0
    if tool == "nbmlops":
        report = dataclasses.replace(report)  # the same numbers, nothing drawn yet
    t0 = time.perf_counter()  # drawn anew, everything warm
    if tool == "nbmlops":
        report.save(html)
    else:
        snapshot.save_html(str(html))
    save_warm = time.perf_counter() - t0
    columns = _verdicts_nbmlops(report) if tool == "nbmlops" else _verdicts_evidently(snapshot)
    Path(out).write_text(json.dumps({
        "tool": tool, "rows": rows, "compute": compute,
        "save": save, "save_again": save_again, "save_warm": save_warm, "input_bytes": input_bytes,
        "base_rss": base, "rss_before": before, "peak": peak, "html_bytes": html.stat().st_size,
        "columns": columns}))


def _verdicts_nbmlops(report: Any) -> dict[str, Any]:
    return {c.name: {"method": c.stattest_label, "score": c.score, "threshold": c.threshold, "drifted": c.drifted}
            for c in report.columns}


def _verdicts_evidently(snapshot: Any) -> dict[str, Any]:
    out = {}
    for m in snapshot.dict()["metrics"]:
        cfg = m.get("config", {})
        if not str(cfg.get("type", "")).endswith("ValueDrift"):
            continue
        method, threshold, value = cfg["method"], float(cfg["threshold"]), float(m["value"])
        drifted = value < threshold if "p_value" in method else value >= threshold
        out[cfg["column"]] = {"method": method, "score": value, "threshold": threshold, "drifted": drifted}
    return out


# -- the driver -----------------------------------------------------------------------------

# workers read and write bytecode caches as an installed package has them (site-packages, Evidently's
# included, come with theirs; a source checkout run with PYTHONDONTWRITEBYTECODE would compile nbmlops anew
# in every worker)
WORKER_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
WARM = ("import nbmlops, nbmlops.monitoring.drift, nbmlops.display.drift; "
        "from evidently import Report; from evidently.presets import DataDriftPreset")


def measure(tool: str, rows: int, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="nbmlops-drift-bench-") as tmp:
        out = os.path.join(tmp, "result.json")
        proc = subprocess.run([sys.executable, __file__, "--worker", tool, str(rows), str(seed), out],
                              capture_output=True, text=True, env=WORKER_ENV)
        if proc.returncode != 0:
            raise RuntimeError(f"{tool} at {rows:,} rows failed:\n{proc.stderr[-3000:]}")
        return json.loads(Path(out).read_text())


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    cols = sorted(set(a["columns"]) | set(b["columns"]))
    same = [c for c in cols if c in a["columns"] and c in b["columns"]
            and a["columns"][c]["drifted"] == b["columns"][c]["drifted"]]
    methods = all(a["columns"][c]["method"] == b["columns"][c]["method"] for c in same)
    diffs = [abs(a["columns"][c]["score"] - b["columns"][c]["score"]) / max(abs(b["columns"][c]["score"]), 1e-12)
             for c in same]
    return {"columns": len(cols), "agree": len(same), "same_methods": methods, "max_rel_score_diff": max(diffs or [0]),
            "drifted_a": sorted(c for c in cols if a["columns"].get(c, {}).get("drifted")),
            "drifted_b": sorted(c for c in cols if b["columns"].get(c, {}).get("drifted"))}


def fmt_s(x: float) -> str:
    if x < 0.01:
        return f"{x * 1000:.2f} ms"
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"


def fmt_mb(x: float) -> str:
    return f"{x / 2**20:,.0f} MiB"


def table(results: dict[int, dict[str, list[dict[str, Any]]]], passes: int) -> tuple[str, list[tuple[str, bool, str]]]:
    lines = ["| rows (each side) | work | nbmlops | Evidently | Evidently / nbmlops |", "| --- | --- | --- | --- | --- |"]
    targets = []
    notes = []
    for rows, by_tool in results.items():
        nb, ev = by_tool["nbmlops"], by_tool["evidently"]

        def med(runs: list[dict[str, Any]], key: str) -> float:
            return statistics.median(r[key] for r in runs)

        def mem(runs: list[dict[str, Any]]) -> float:
            return statistics.median(r["peak"] - r["base_rss"] for r in runs)

        c_nb, c_ev = med(nb, "compute"), med(ev, "compute")
        s_nb, s_ev = med(nb, "save"), med(ev, "save")
        a_nb, a_ev = med(nb, "save_again"), med(ev, "save_again")
        w_nb, w_ev = med(nb, "save_warm"), med(ev, "save_warm")
        m_nb, m_ev = mem(nb), mem(ev)
        inp = statistics.median(r["rss_before"] - r["base_rss"] for r in nb + ev)  # the frames, as RSS
        agree = compare(nb[0], ev[0])
        lines += [
            f"| {rows:,} | compute the report | {fmt_s(c_nb)} | {fmt_s(c_ev)} | **{c_ev / c_nb:.0f}×** |",
            f"| {rows:,} | save the HTML, first in the process | {fmt_s(s_nb)} | {fmt_s(s_ev)} | {s_ev / s_nb:.1f}× |",
            f"| {rows:,} | save the HTML again, same report (nbmlops: drawn once, reused) | {fmt_s(a_nb)} "
            f"| {fmt_s(a_ev)} | {a_ev / a_nb:.0f}× |",
            f"| {rows:,} | save the HTML of a new report (drawn anew, libraries warm) | {fmt_s(w_nb)} | {fmt_s(w_ev)} "
            f"| {w_ev / w_nb:.1f}× |",
            f"| {rows:,} | compute + save | {fmt_s(c_nb + s_nb)} | {fmt_s(c_ev + s_ev)} | **{(c_ev + s_ev) / (c_nb + s_nb):.0f}×** |",
            f"| {rows:,} | peak memory: frames + report (× the frames, {fmt_mb(inp)}) | {fmt_mb(m_nb)} ({m_nb / inp:.2f}×) "
            f"| {fmt_mb(m_ev)} ({m_ev / inp:.2f}×) | {m_ev / m_nb:.1f}× |",
            f"| {rows:,} | saved HTML | {nb[0]['html_bytes'] / 1e6:.2f} MB | {ev[0]['html_bytes'] / 1e6:.2f} MB | — |",
            f"| {rows:,} | per-column verdicts that agree | {agree['agree']} / {agree['columns']} "
            f"(drifted: {', '.join(agree['drifted_a'])}) | same tests: {'yes' if agree['same_methods'] else 'NO'}; "
            f"largest score difference {agree['max_rel_score_diff']:.1e} (relative) | — |",
        ]
        targets += [
            (f"≥ {TARGETS['speedup']:.0f}× faster than Evidently at {rows:,} rows (compute), same verdicts",
             c_ev / c_nb >= TARGETS["speedup"] and agree["agree"] == agree["columns"], f"{c_ev / c_nb:.0f}×, "
             f"{agree['agree']}/{agree['columns']} agree"),
            (f"peak memory < {TARGETS['memory']:.0f}× the input frames at {rows:,} rows", m_nb / inp < TARGETS["memory"],
             f"{m_nb / inp:.2f}×"),
            (f"saving the HTML at least as fast as Evidently at {rows:,} rows (first save, save again, drawn anew)",
             min(s_ev / s_nb, a_ev / a_nb, w_ev / w_nb) >= TARGETS["save"],
             f"{s_ev / s_nb:.1f}×, {a_ev / a_nb:.0f}×, {w_ev / w_nb:.1f}×"),
        ]
        if rows >= 1_000_000:
            targets.append((f"the {rows:,}-row report computed in < {TARGETS['compute_1m']:.0f} s", c_nb < TARGETS["compute_1m"],
                            fmt_s(c_nb)))
        notes.append(f"{rows:,} rows: nbmlops compute {', '.join(fmt_s(r['compute']) for r in nb)}; "
                     f"Evidently {', '.join(fmt_s(r['compute']) for r in ev)}")
    out = "\n".join(lines)
    out += ("\n\n| target (nbmlops) | measured | status |\n| --- | --- | --- |\n"
            + "\n".join(f"| {t} | {m} | {'pass' if ok else 'FAIL'} |" for t, ok, m in targets))
    out += (f"\n\nThe frames take {fmt_mb(nb[0]['input_bytes'])} by pandas' deep count at the largest size, less in "
            "RAM (the one-letter category strings are shared objects); the memory multiple is against their RSS. "
            f"Medians of {passes} pass{'es' if passes != 1 else ''}, each tool in a fresh process per pass, passes "
            "interleaved (every pass: " + "; ".join(notes) + "). nbmlops' report also holds data quality "
            "(missing values, new categories, out-of-range values, duplicated rows) and draws its pictures as inline "
            "SVG on first use (inline view or save), once per report; Evidently's DataDriftPreset does drift only and "
            "draws in the browser from the 5 MB of JavaScript it bundles. The first save in a process also imports "
            "nbmlops' display modules. Workers run with bytecode caches, as an installed package has them. "
            "Peak memory: the process's peak RSS while computing, less its RSS before the frames "
            "were made (libraries loaded), i.e. the frames themselves plus the working memory of the report.")
    return out, targets


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, one pass, RESULTS.md left alone")
    ap.add_argument("--passes", type=int, help="passes per tool and size (default 2; 1 with --quick)")
    ap.add_argument("--sizes", help="comma-separated rows per side (default 100000,1000000)")
    ap.add_argument("--results", help="write the section to this file (default benchmarks/RESULTS.md unless --quick)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else ([10_000, 50_000] if args.quick else [100_000, 1_000_000])
    passes = args.passes or (1 if args.quick else 2)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", WARM], env=WORKER_ENV, check=True)  # the bytecode caches written once
    results: dict[int, dict[str, list[dict[str, Any]]]] = {}
    for rows in sizes:
        results[rows] = {"nbmlops": [], "evidently": []}
        for p in range(passes):
            for tool in ("nbmlops", "evidently"):
                r = measure(tool, rows, seed=p)
                results[rows][tool].append(r)
                print(f"{tool:9s} {rows:>9,} rows pass {p + 1}: compute {fmt_s(r['compute'])}, save {fmt_s(r['save'])}, "
                      f"peak {fmt_mb(r['peak'] - r['base_rss'])}", file=sys.stderr, flush=True)
    body, targets = table(results, passes)
    section = f"{SECTION}\n\n{machine(PACKAGES)}\n\n{body}\n\nWhole benchmark: {time.perf_counter() - started:.0f} s.\n"
    print(section)
    out = Path(args.results) if args.results else (None if args.quick else RESULTS)
    if out is not None:
        write_section(out, SECTION, section)
        print(f"wrote the section {SECTION!r} of {out}", file=sys.stderr)
    failed = [t for t, ok, _ in targets if not ok]
    if failed:
        print("targets missed: " + "; ".join(failed), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
