"""The drift report's pictures: inline SVG drawn once per report and shared by the inline view,
``html()``, ``save()`` and ``log()``; well-formed, inside their frames, and safe with hostile names."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from _drift_data import frames

import nbmlops
from nbmlops import InvalidInput, drift_report
from nbmlops.display import drift as display_drift
from nbmlops.display.plots import distribution_svg, tick_label, ticks

SVG_NS = "{http://www.w3.org/2000/svg}"
EVIL_COL = '</svg><script>alert(1)</script><svg onload="alert(3)">'
EVIL_CAT = '"><img src=x onerror=alert(2)> & </title><foreignObject>'
X_ATTRS, Y_ATTRS = ("x", "x1", "x2", "cx", "width"), ("y", "y1", "y2", "cy", "height")


def svgs(html: str) -> list[ET.Element]:
    """Every inline picture, parsed as XML (so each must be well-formed on its own)."""
    return [ET.fromstring(m) for m in re.findall(r"<svg\b.*?</svg>", html, flags=re.S)]


def check_picture(svg: ET.Element) -> None:
    """No script, no event handler, no link, and every shape inside the picture's frame."""
    width, height = float(svg.get("width")), float(svg.get("height"))
    assert svg.get("viewBox") == f"0 0 {svg.get('width')} {svg.get('height')}"
    for el in svg.iter():
        tag = el.tag.removeprefix(SVG_NS)
        assert tag in {"svg", "title", "g", "path", "rect", "line", "circle", "text", "tspan"}, tag
        assert not any(k.lower().startswith("on") or "href" in k for k in el.attrib), el.attrib
        if tag == "svg":
            continue
        for key, v in el.attrib.items():
            if key in X_ATTRS or key in Y_ATTRS:
                limit = width if key in X_ATTRS else height
                assert math.isfinite(float(v)) and -0.5 <= float(v) <= limit + 0.5, (tag, key, v)
        if tag == "rect":
            assert float(el.get("x")) + float(el.get("width")) <= width + 0.5
            assert float(el.get("y")) + float(el.get("height")) <= height + 0.5
        if tag == "path":
            coords = [float(c) for c in re.findall(r"-?\d+(?:\.\d+)?", el.get("d"))]
            assert coords and all(-0.5 <= c <= width + 0.5 for c in coords[0::2])
            assert all(-0.5 <= c <= height + 0.5 for c in coords[1::2])


def test_each_picture_is_drawn_once_and_shared_by_inline_html_save_and_log(store, tmp_path, monkeypatch):
    calls = []
    real = display_drift.distribution_svg

    def counting(dist, kind, label=""):
        calls.append(label)
        return real(dist, kind, label)

    monkeypatch.setattr(display_drift, "distribution_svg", counting)
    report = drift_report(*frames(2_000, seed=41, numeric=4, categorical=2))
    inline = report._repr_html_()
    assert sorted(calls) == sorted(c.name for c in report.columns)
    assert report.html() is inline and report._repr_html_() is inline
    page = report.html(full_page=True)
    report.save(tmp_path / "r.html")
    doc = report.log()
    assert sorted(calls) == sorted(c.name for c in report.columns)  # nothing drawn again
    assert inline in page and (tmp_path / "r.html").read_text(encoding="utf-8") == page
    assert nbmlops.monitoring.log.report_html(doc["id"]) == page
    assert len(svgs(inline)) == len(report.columns)


def test_a_report_is_immutable_once_drawn_and_a_new_one_draws_anew():
    import dataclasses

    report = drift_report(*frames(500, seed=42, numeric=2, categorical=1))
    report.sources = {"reference": "train_df", "current": "june_df"}  # a face labels it before showing
    html = report.html()
    assert "<b>train_df</b>" in html and "<b>june_df</b>" in html
    with pytest.raises(InvalidInput, match="immutable once shown"):
        report.sources = {"reference": "other", "current": "other"}
    with pytest.raises(InvalidInput, match="immutable once shown"):
        report.notes = ["late"]
    assert report.html() is html
    fresh = dataclasses.replace(report)
    assert fresh.html() == html and fresh.html() is not html


def test_hostile_column_names_and_categories_are_escaped_in_every_picture(tmp_path):
    rng = np.random.default_rng(43)
    n = 400
    ref = pd.DataFrame({EVIL_COL: rng.normal(size=n), "c": rng.choice([EVIL_CAT, "ok", "b&b"], n),
                        "t": pd.date_range("2024-01-01", periods=n, freq="h")})
    cur = pd.DataFrame({EVIL_COL: rng.normal(1, 1, n), "c": rng.choice([EVIL_CAT, "ok"], n),
                        "t": pd.date_range("2024-03-01", periods=n, freq="h")})
    report = drift_report(ref, cur, by_time="t", window="2d")
    report.save(tmp_path / "r.html")
    saved = (tmp_path / "r.html").read_text(encoding="utf-8")
    inline = report._repr_html_()
    for html in (inline, saved):
        assert EVIL_COL not in html and EVIL_CAT not in html and "<script>alert" not in html
        assert "<foreignObject" not in html and "<img" not in html and "<svg onload" not in html
        pictures = svgs(html)
        assert len(pictures) == 3  # two columns and the windows
        for svg in pictures:
            check_picture(svg)
        texts = {t for svg in pictures for t in svg.itertext()}
        assert any(EVIL_COL in t for t in texts)  # shown, as text
        assert any(EVIL_CAT[:9] in t for t in texts)
    assert "<script" not in inline and saved.count("<script>") == 1


@pytest.mark.parametrize("dist, kind", [
    ({"edges": [5.0] * 41, "reference": [0] * 40, "current": [0] * 40}, "numeric"),
    ({"edges": list(np.linspace(-1e12, 3e12, 41)), "reference": [1] * 40, "current": [0] * 39 + [9]}, "numeric"),
    ({"edges": list(np.linspace(1e-9, 2e-9, 41)), "reference": list(range(40)), "current": [3] * 40}, "numeric"),
    ({"categories": ["only"], "reference": [10], "current": [0], "other": [0, 0]}, "categorical"),
    ({"categories": [f"level {i}" for i in range(20)], "reference": list(range(20)), "current": [1] * 20,
      "other": [4, 7]}, "categorical"),
])
def test_edge_distributions_draw_inside_their_frame(dist, kind):
    check_picture(ET.fromstring(distribution_svg(dist, kind, "col")))


def test_regression_errors_and_windows_are_drawn_as_svg():
    rng = np.random.default_rng(44)
    ref, cur = frames(3_000, seed=44, numeric=2, categorical=1)
    for df, noise in ((ref, 0.2), (cur, 0.6)):
        df["target"] = df.n0 + rng.normal(0, noise, len(df))
        df["prediction"] = df.n0
        df["ts"] = pd.date_range("2024-01-01", periods=len(df), freq="10min")
    report = drift_report(ref, cur, column_mapping={"target": "target", "prediction": "prediction"},
                          by_time="ts", window="1d")
    labels = [svg.get("aria-label") for svg in svgs(report.html())]
    assert "drift score per window" in labels
    assert any(x.startswith("error distribution") for x in labels)
    assert sum(x.startswith("distribution of ") for x in labels) == 5  # 3 features, target, prediction
    for svg in svgs(report.html()):
        check_picture(svg)


def test_round_ticks_and_labels():
    assert ticks(-3.2, 3.1) == [-2.0, 0.0, 2.0]
    assert [tick_label(t) for t in ticks(0, 1)] == ["0", "0.2", "0.4", "0.6", "0.8", "1"]
    assert ticks(5.0, 5.0) == [5.0] and ticks(math.nan, 1) == []
    assert tick_label(2e12) == "2.0e+12" and tick_label(0.1 + 0.2) == "0.3"


def test_drawing_and_saving_load_no_matplotlib(tmp_path):
    code = ("import sys; sys.path.insert(0, 'tests'); from _drift_data import frames; import nbmlops; "
            f"nbmlops.drift_report(*frames(300, seed=45)).save({str(tmp_path / 'r.html')!r}); "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]
