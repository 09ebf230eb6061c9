// nbmlops dashboard, charts as inline SVG: line charts (one or many series, nice-number ticks, sane at
// one point and at a thousand), parallel coordinates, and small bars. The server cuts long curves to at
// most 1000 points, so the browser never draws 100,000.
(function () {
  "use strict";

  var NB = window.NB;
  var S = NB.svgEl;
  NB.COLORS = ["#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6", "#dd4477", "#66aa00",
    "#b82e2e", "#316395"];

  function niceNum(range, round) {
    var exp = Math.floor(Math.log10(range)), f = range / Math.pow(10, exp), nf;
    if (round) { nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10; } else { nf = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10; }
    return nf * Math.pow(10, exp);
  }

  // the domain [lo, hi] widened to nice numbers, and the ticks in it (about `count` of them)
  NB.niceScale = function (lo, hi, count) {
    count = count || 5;
    if (!isFinite(lo) || !isFinite(hi)) { lo = 0; hi = 1; }
    if (lo === hi) {  // one value: a window around it, not a unit-wide axis with the point in a corner
      var pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
      lo -= pad; hi += pad;
    }
    var step = niceNum(niceNum(hi - lo, false) / (count - 1), true);
    var nlo = Math.floor(lo / step) * step, nhi = Math.ceil(hi / step) * step;
    var decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
    var ticks = [];
    for (var v = nlo; v <= nhi + step / 2; v += step) { ticks.push(Number(v.toFixed(decimals))); }
    return { lo: nlo, hi: nhi, step: step, ticks: ticks, decimals: decimals };
  };

  NB.fmtTick = function (v, scale) {
    var a = Math.abs(v);
    if (a >= 1e6) { return Number((v / 1e6).toPrecision(3)) + "M"; }
    if (a >= 1e4) { return Number((v / 1e3).toPrecision(3)) + "k"; }
    return v.toFixed(Math.min(scale.decimals, 6));
  };

  function finite(list) { return list.filter(function (v) { return typeof v === "number" && isFinite(v); }); }

  // opts: {series: [{label, color, x: [], y: []}], width, height, xLabel, yLabel, testid, key, xTime, yScale}
  NB.lineChart = function (opts) {
    var W = opts.width || 380, H = opts.height || 210, L = 52, R = 12, T = 10, B = 34;
    var xs = [], ys = [];
    opts.series.forEach(function (s) { xs = xs.concat(finite(s.x)); ys = ys.concat(finite(s.y)); });
    var xlo = Math.min.apply(null, xs), xhi = Math.max.apply(null, xs);
    if (opts.xRange) { xlo = opts.xRange[0]; xhi = opts.xRange[1]; }
    var sx = opts.xTime ? NB.timeScale(xlo, xhi) : NB.niceScale(xlo, xhi, 6);
    if (xs.length && xlo === xhi && !opts.xTime) {
      sx = NB.niceScale(xs[0] - 1, xs[0] + 1, 3);  // one step: the point in the middle of a small range
    }
    var sy = opts.yScale || NB.niceScale(Math.min.apply(null, ys), Math.max.apply(null, ys), 5);
    function px(x) { return L + (x - sx.lo) / (sx.hi - sx.lo) * (W - L - R); }
    function py(y) { return H - B - (y - sy.lo) / (sy.hi - sy.lo) * (H - B - T); }
    var svg = S("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img", "class": "chart-svg" });
    svg.setAttribute("data-testid", opts.testid || "line-chart");
    if (opts.key) { svg.setAttribute("data-metric-key", opts.key); }
    svg.setAttribute("data-series", String(opts.series.length));
    sy.ticks.forEach(function (t) {
      svg.appendChild(S("line", { x1: L, x2: W - R, y1: py(t), y2: py(t), "class": "grid" }));
      svg.appendChild(S("text", { x: L - 4, y: py(t) + 3, "text-anchor": "end", "class": "tick y-tick" }, NB.fmtTick(t, sy)));
    });
    var xticks = opts.xTime ? timeTicks(sx) : sx.ticks;
    xticks.forEach(function (t) {
      svg.appendChild(S("line", { x1: px(t), x2: px(t), y1: H - B, y2: H - B + 4, stroke: "#999" }));
      svg.appendChild(S("text", { x: px(t), y: H - B + 15, "text-anchor": "middle", "class": "tick x-tick" },
        opts.xTime ? shortTime(t, sx) : NB.fmtTick(t, sx)));
    });
    svg.appendChild(S("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999" }));
    svg.appendChild(S("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#999" }));
    if (opts.xLabel) { svg.appendChild(S("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle", "class": "axis-label" }, opts.xLabel)); }
    (opts.bands || []).forEach(function (b) {  // horizontal reference lines (a threshold)
      svg.appendChild(S("line", { x1: L, x2: W - R, y1: py(b.y), y2: py(b.y), "class": "band", stroke: b.color || "#a00" }));
    });
    opts.series.forEach(function (s, i) {
      var color = s.color || NB.COLORS[i % NB.COLORS.length];
      var pts = [];
      s.x.forEach(function (x, j) {
        if (typeof x === "number" && typeof s.y[j] === "number") { pts.push([px(x), py(s.y[j])]); }
      });
      var g = S("g", { "data-testid": "chart-series", "data-label": s.label || "", "data-points": pts.length });
      g.appendChild(S("title", {}, (s.label ? s.label + ": " : "") + (s.points || pts.length) + " points"));
      if (pts.length > 1) {
        g.appendChild(S("polyline", { points: pts.map(function (p) { return p[0].toFixed(1) + "," + p[1].toFixed(1); }).join(" "),
          fill: "none", stroke: color, "stroke-width": 1.5, "stroke-dasharray": s.dashed ? "4 3" : "none" }));
      }
      if (pts.length <= 30) {
        pts.forEach(function (p) { g.appendChild(S("circle", { cx: p[0], cy: p[1], r: pts.length === 1 ? 4 : 2.5, fill: color })); });
      }
      svg.appendChild(g);
    });
    var box = NB.el("figure", { "class": "chart", "data-testid": (opts.testid || "line-chart") + "-box" });
    if (opts.title) { box.appendChild(NB.el("figcaption", { "class": "chart-title", text: opts.title })); }
    box.appendChild(svg);
    if (opts.series.length > 1 || opts.legend) { box.appendChild(NB.legend(opts.series)); }
    return box;
  };

  function timeTicks(sx) { return sx.ticks; }

  var MIN = 60000, HOUR = 60 * MIN, DAY = 24 * HOUR;
  var TIME_STEPS = [MIN, 5 * MIN, 15 * MIN, 30 * MIN, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY, 91 * DAY, 365 * DAY];

  // times (ms) on an axis with ticks on whole minutes, hours or days (local time), about 5 of them
  NB.timeScale = function (lo, hi) {
    if (!isFinite(lo) || !isFinite(hi)) { lo = Date.now() - HOUR; hi = Date.now(); }
    if (hi - lo < 10 * MIN) {  // reports a few seconds apart: ten minutes around them, ticks on whole minutes
      var mid = (lo + hi) / 2;
      lo = mid - 5 * MIN; hi = mid + 5 * MIN;
    }
    var step = TIME_STEPS.filter(function (s) { return (hi - lo) / s <= 6; })[0] || 365 * DAY;
    var tz = new Date(lo).getTimezoneOffset() * MIN;
    var first = Math.ceil((lo - tz) / step) * step + tz, ticks = [];
    for (var t = first; t <= hi; t += step) { ticks.push(t); }
    return { lo: lo, hi: hi, step: step, ticks: ticks, decimals: 0, time: true };
  };

  function shortTime(ms, sx) {
    var d = new Date(ms);
    if (sx.step >= DAY) { return d.toLocaleDateString([], { month: "short", day: "numeric" }); }
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  NB.legend = function (series) {
    var box = NB.el("div", { "class": "legend" });
    series.forEach(function (s, i) {
      box.appendChild(NB.el("span", { "class": "legend-item" }, [
        NB.el("span", { "class": "swatch", style: "background:" + (s.color || NB.COLORS[i % NB.COLORS.length]) }),
        s.label || ""]));
    });
    return box;
  };

  // axes: [{label, values: [per line], categorical}], lines: [{label, color}]; the last axis is the outcome
  NB.parallelCoords = function (axes, lines, opts) {
    opts = opts || {};
    var W = Math.max(360, 120 * axes.length), H = 260, T = 28, B = 24, L = 50, R = 50;
    var svg = S("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img", "class": "chart-svg" });
    svg.setAttribute("data-testid", opts.testid || "parallel-coords");
    svg.setAttribute("data-axes", String(axes.length));
    function ax(i) { return axes.length === 1 ? W / 2 : L + i * (W - L - R) / (axes.length - 1); }
    var scales = axes.map(function (a) {
      var present = a.values.filter(function (v) { return v !== null && v !== undefined; });
      var numeric = !a.categorical && present.every(function (v) { return typeof v === "number"; });
      if (numeric && present.length) {
        var sc = NB.niceScale(Math.min.apply(null, present), Math.max.apply(null, present), 4);
        return { pos: function (v) { return H - B - (v - sc.lo) / (sc.hi - sc.lo) * (H - B - T); },
          ticks: sc.ticks.map(function (t) { return [t, NB.fmtTick(t, sc)]; }) };
      }
      var cats = present.map(NB.text).filter(function (v, i, all) { return all.indexOf(v) === i; }).sort();
      return { pos: function (v) { var k = cats.indexOf(NB.text(v)); return cats.length < 2 ? (T + H - B) / 2 : H - B - k / (cats.length - 1) * (H - B - T); },
        ticks: cats.map(function (c) { return [c, c.length > 14 ? c.slice(0, 13) + "…" : c]; }) };
    });
    axes.forEach(function (a, i) {
      var g = S("g", { "data-testid": "pc-axis", "data-key": a.label });
      g.appendChild(S("line", { x1: ax(i), x2: ax(i), y1: T, y2: H - B, stroke: "#777" }));
      g.appendChild(S("text", { x: ax(i), y: T - 12, "text-anchor": "middle", "class": "axis-label" }, a.label));
      scales[i].ticks.forEach(function (t) {
        g.appendChild(S("text", { x: ax(i) - 4, y: scales[i].pos(t[0]) + 3, "text-anchor": "end", "class": "tick" }, t[1]));
      });
      svg.appendChild(g);
    });
    lines.forEach(function (line, j) {
      var pts = [];
      axes.forEach(function (a, i) {
        var v = a.values[j];
        if (v !== null && v !== undefined) { pts.push(ax(i).toFixed(1) + "," + scales[i].pos(v).toFixed(1)); }
      });
      var color = line.color || NB.COLORS[j % NB.COLORS.length];
      var pl = S("polyline", { points: pts.join(" "), fill: "none", stroke: color, "stroke-width": 2, opacity: 0.85,
        "data-testid": "pc-line", "data-label": line.label });
      pl.appendChild(S("title", {}, line.label));
      svg.appendChild(pl);
    });
    var box = NB.el("figure", { "class": "chart" });
    box.appendChild(svg);
    box.appendChild(NB.legend(lines));
    return box;
  };

  // shares as horizontal bars: [{label, value (0..1), testid}]
  NB.bars = function (items) {
    var box = NB.el("div", { "class": "bars" });
    items.forEach(function (it) {
      var pct = Math.max(0, Math.min(1, it.value || 0)) * 100;
      box.appendChild(NB.el("div", { "class": "bar-row", "data-testid": it.testid || null }, [
        NB.el("span", { "class": "bar-label", text: it.label }),
        NB.el("span", { "class": "bar-track" }, [NB.el("span", { "class": "bar-fill", style: "width:" + pct.toFixed(1) + "%" })]),
        NB.el("span", { "class": "bar-value", text: pct.toFixed(pct < 10 ? 1 : 0) + " %" })]));
    });
    return box;
  };
}());
