// nbmlops dashboard, a model version's monitoring timeline (#/drift/<model>/<version>): one SVG of two panels
// over one time axis, the share of drifted columns against the dataset-drift threshold (windows over it on a
// red band) and the estimated (dashed) vs realized (solid) performance, with the moves of the aliases its
// deployments follow as amber lines; the windows and reports as a table below, the alias moves after it.
(function () {
  "use strict";

  var NB = window.NB, el = NB.el, S = NB.svgEl, text = NB.text;
  var W = 900, L = 52, R = 16, TOP_H = 170, PERF_H = 140, GAP = 28, AXIS = 32, MIN_SPAN = 20000, MAX_DOTS = 200;
  var C = { share: "#1f6feb", over: "#cf222e", overBg: "#ffebe9", estimated: "#8250df", realized: "#1a7f37",
    move: "#9a6700", rule: "#eaeef2", axis: "#8c959f" };
  var SEC = 1000, MIN = 60 * SEC, HOUR = 60 * MIN, DAY = 24 * HOUR;
  var STEPS = [SEC, 5 * SEC, 10 * SEC, 30 * SEC, MIN, 5 * MIN, 15 * MIN, 30 * MIN, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR,
    DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY];

  function num(v, digits) { return typeof v === "number" ? v.toFixed(digits === undefined ? 3 : digits) : "—"; }

  // ticks on whole seconds, minutes, hours or days of local time, about five of them
  function timeTicks(lo, hi) {
    var step = STEPS.filter(function (s) { return (hi - lo) / s <= 6; })[0] || 30 * DAY;
    var tz = new Date(lo).getTimezoneOffset() * MIN, out = [];
    for (var t = Math.ceil((lo - tz) / step) * step + tz; t <= hi; t += step) {
      var d = new Date(t);
      out.push([t, step >= DAY ? d.toLocaleDateString([], { month: "short", day: "numeric" })
        : d.toLocaleTimeString([], step >= MIN ? { hour: "2-digit", minute: "2-digit" } : { hour: "2-digit", minute: "2-digit", second: "2-digit" })]);
    }
    return out;
  }

  function Panel(top, height, lo, hi) {
    this.top = top + 10; this.height = height - 10; this.lo = lo; this.hi = hi;
  }
  Panel.prototype.y = function (v) { return this.top + this.height - (v - this.lo) / (this.hi - this.lo) * this.height; };
  Panel.prototype.draw = function (svg, label) {
    svg.appendChild(S("text", { x: L, y: this.top - 2, "class": "axis-label" }, label));
    for (var i = 0; i <= 4; i++) {
      var v = this.lo + (this.hi - this.lo) * i / 4, y = this.y(v);
      svg.appendChild(S("line", { x1: L, x2: W - R, y1: y, y2: y, stroke: C.rule }));
      svg.appendChild(S("text", { x: L - 4, y: y + 3, "text-anchor": "end", "class": "tick y-tick" }, String(Number(v.toFixed(3)))));
    }
  };

  function perfRange(values, metric) {  // accuracy: a round tenth below the lowest to 1; an error: 0 to a bit above the highest
    if (!values.length) { return [0, 1]; }
    if (metric === "accuracy") { return [Math.max(0, Math.min(Math.floor(Math.min.apply(null, values) * 10) / 10, 0.9)), 1]; }
    var top = Math.max.apply(null, values) * 1.15;
    return [0, top > 0 ? top : 1];
  }

  function tip(p) {
    var what = p.kind === "window" ? "window" + (p.deployment ? " of " + p.deployment : "") : "logged report";
    return NB.fmtTime(p.time) + " · " + what + " · drift share " + num(p.share_drifted, 2) + (p.dataset_drift ? " (over the threshold)" : "");
  }

  function moveLabel(s, version) {
    var from = s.from === null ? "none" : "v" + s.from, to = s.to === null ? "none" : "v" + s.to;
    if (s.to === version) { return s.alias + " → here (from " + from + ")"; }
    if (s.from === version) { return s.alias + " → " + to + " (left)"; }
    return s.alias + ": " + from + " → " + to;
  }

  function polyline(svg, pts, color, dashed, testid, label) {
    var g = S("g", { "data-testid": testid, "data-label": label, "data-points": pts.length });
    g.appendChild(S("title", {}, label + ": " + pts.length + " points"));
    if (pts.length > 1) {
      g.appendChild(S("polyline", { points: pts.map(function (q) { return q[0].toFixed(1) + "," + q[1].toFixed(1); }).join(" "),
        fill: "none", stroke: color, "stroke-width": 1.5, "stroke-dasharray": dashed ? "5 3" : "none" }));
    }
    svg.appendChild(g);
    return g;
  }

  function dot(g, x, y, color, title, big) {
    var c = S("circle", { cx: x, cy: y, r: big ? 4 : 2.5, fill: color, "class": big ? "over" : "" });
    c.appendChild(S("title", {}, title));
    g.appendChild(c);
  }

  function chart(d) {
    var pts = d.points, metric = d.metric, perf = !!metric;
    // with older windows left out, the chart starts at the oldest one kept (the table below lists every move)
    var since = d.truncated && pts.length ? pts[0].time : -Infinity;
    var moves = d.switches.filter(function (s) { return s.time >= since; });
    var times = pts.map(function (p) { return p.time; }).concat(moves.map(function (s) { return s.time; }));
    var lo = Math.min.apply(null, times), hi = Math.max.apply(null, times);
    if (hi - lo < MIN_SPAN) { var mid = (lo + hi) / 2; lo = mid - MIN_SPAN / 2; hi = mid + MIN_SPAN / 2; }
    var pad = (hi - lo) * 0.03;
    lo -= pad; hi += pad;
    var band = moves.length ? 12 * Math.min(3, moves.length) + 4 : 0;  // the alias moves' labels, above the data
    var H = band + TOP_H + (perf ? GAP + PERF_H : 0) + AXIS, bottom = H - AXIS;
    function px(t) { return L + (t - lo) / (hi - lo) * (W - L - R); }
    var svg = S("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img", "class": "chart-svg" });
    svg.setAttribute("data-testid", "drift-chart");
    svg.appendChild(S("title", {}, "drift share" + (perf ? " and estimated vs realized " + metric : "") + " of " + d.name + " v" + d.version));
    pts.forEach(function (p) {  // the windows over the threshold: a red band across both panels
      if (!p.dataset_drift) { return; }
      var x0 = px(p.first || p.time), x1 = px(p.last || p.time);
      x0 = Math.min(x0, x1 - 3); x1 = Math.max(x1, x0 + 3);
      var over = S("rect", { x: x0, y: band + 10, width: x1 - x0, height: bottom - band - 10, fill: C.overBg, "data-testid": "over-threshold" });
      over.appendChild(S("title", {}, tip(p)));
      svg.appendChild(over);
    });
    var top = new Panel(band, TOP_H, 0, 1);
    top.draw(svg, "drift share");
    if (typeof d.threshold === "number") {
      var ty = top.y(d.threshold);
      svg.appendChild(S("line", { x1: L, x2: W - R, y1: ty, y2: ty, stroke: C.over, "stroke-dasharray": "5 3", "data-testid": "drift-threshold" }));
      svg.appendChild(S("text", { x: W - R, y: ty - 3, "text-anchor": "end", fill: C.over }, "threshold " + d.threshold));
    }
    var shares = pts.filter(function (p) { return typeof p.share_drifted === "number"; });
    var g = polyline(svg, shares.map(function (p) { return [px(p.time), top.y(p.share_drifted)]; }), C.share, false, "chart-series", "drift share");
    shares.forEach(function (p) {
      if (p.dataset_drift || shares.length <= MAX_DOTS) { dot(g, px(p.time), top.y(p.share_drifted), p.dataset_drift ? C.over : C.share, tip(p), p.dataset_drift); }
    });
    if (perf) {
      var values = [];
      pts.forEach(function (p) {
        ["estimated", "realized"].forEach(function (side) { if (typeof p[side][metric] === "number") { values.push(p[side][metric]); } });
      });
      var range = perfRange(values, metric), panel = new Panel(band + TOP_H + GAP, PERF_H, range[0], range[1]);
      panel.draw(svg, metric);
      ["estimated", "realized"].forEach(function (side) {
        var have = pts.filter(function (p) { return typeof p[side][metric] === "number"; });
        var sg = polyline(svg, have.map(function (p) { return [px(p.time), panel.y(p[side][metric])]; }), C[side], side === "estimated",
          "perf-series", side + " " + metric);
        if (have.length <= MAX_DOTS) {
          have.forEach(function (p) { dot(sg, px(p.time), panel.y(p[side][metric]), C[side], side + " " + metric + " " + num(p[side][metric]) + " · " + tip(p)); });
        }
      });
    }
    svg.appendChild(S("line", { x1: L, x2: W - R, y1: bottom, y2: bottom, stroke: C.axis }));
    timeTicks(lo, hi).forEach(function (t) {
      svg.appendChild(S("line", { x1: px(t[0]), x2: px(t[0]), y1: bottom, y2: bottom + 4, stroke: C.axis }));
      svg.appendChild(S("text", { x: px(t[0]), y: bottom + 15, "text-anchor": "middle", "class": "tick x-tick" }, t[1]));
    });
    moves.forEach(function (s, i) {  // labels on three rows, so moves close in time stay readable
      var x = px(s.time), label = moveLabel(s, d.version);
      var m = S("g", { "data-testid": "alias-switch", "data-alias": s.alias, "data-from": text(s.from), "data-to": text(s.to) });
      m.appendChild(S("title", {}, label + " · " + NB.fmtTime(s.time) + (s.user ? " · by " + s.user : "")));
      m.appendChild(S("line", { x1: x, x2: x, y1: 12 * (i % 3) + 2, y2: bottom, stroke: C.move, "stroke-width": 1.5 }));
      m.appendChild(S("text", { x: x + 3, y: 12 * (i % 3) + 11, fill: C.move }, label));
      svg.appendChild(m);
    });
    var box = el("figure", { "class": "chart", "data-testid": "drift-timeline" }, [svg]);
    function key(color, label, dashed) { return { label: label, color: color, dashed: dashed }; }
    var keys = [key(C.share, "drift share"), key(C.over, "over the threshold")];
    if (perf) { keys.push(key(C.estimated, "estimated " + metric + " (" + (metric === "accuracy" ? "CBPE" : "DLE") + ")"), key(C.realized, "realized " + metric + " (labels)")); }
    keys.push(key(C.move, "alias moved"));
    box.appendChild(NB.legend(keys));
    return box;
  }

  function pointsTable(d) {
    var metric = d.metric;
    var head = el("tr", {}, ["Time", "Source", "Rows", "Drift share", "Drift", "Drifted columns", "Estimated " + (metric || ""),
      "Realized " + (metric || ""), "Report"].map(function (h) { return el("th", { text: h }); }));
    var rows = d.points.slice().reverse().map(function (p) {
      var est = metric ? p.estimated[metric] : undefined, real = metric ? p.realized[metric] : undefined;
      return el("tr", { "data-testid": "drift-point", "data-kind": p.kind, "class": p.dataset_drift ? "drift-over" : null }, [
        el("td", {}, [NB.timeEl(p.time)]),
        el("td", { text: p.kind === "window" ? "window" + (p.deployment ? " · " + p.deployment : "") : "logged report" }),
        el("td", { "class": "num", text: text(p.rows) }),
        el("td", { "class": "num", "data-testid": "point-share", text: num(p.share_drifted, 2) }),
        el("td", { "data-testid": "point-verdict", text: p.dataset_drift ? "DRIFT" : "no drift" }),
        el("td", { text: text(p.n_drifted) + " of " + text(p.n_columns) + (p.drifted_columns.length ? ": " + p.drifted_columns.join(", ") : "") }),
        el("td", { "class": "num", "data-testid": "point-estimated", text: num(est) }),
        el("td", { "class": "num", "data-testid": "point-realized", text: num(real) + (p.labels ? " (" + p.labels + " labels)" : "") }),
        el("td", {}, [p.page || p.kind === "window" ? el("a", { href: NB.API + "drift/" + NB.enc(p.id) + "/html", target: "_blank", rel: "noopener noreferrer", text: "open report" })
          : el("span", { "class": "muted", text: p.kind === "window" ? "numbers only" : "" })])]);
    });
    return el("div", { "class": "scroll" }, [el("table", { "data-testid": "drift-points" }, [el("thead", {}, [head]), el("tbody", {}, rows)])]);
  }

  function switchesTable(d) {
    var rows = d.switches.slice().reverse().map(function (s) {
      return el("tr", { "data-testid": "switch-row" }, [el("td", {}, [NB.timeEl(s.time)]), el("td", { text: s.alias }),
        el("td", { text: s.from === null ? "none" : "v" + s.from }), el("td", { text: s.to === null ? "none" : "v" + s.to }),
        el("td", { text: text(s.user) })]);
    });
    return el("table", { "class": "kvtable", "data-testid": "alias-switches-table" }, [
      el("thead", {}, [el("tr", {}, ["Time", "Alias", "From", "To", "By"].map(function (h) { return el("th", { text: h }); }))]),
      el("tbody", {}, rows)]);
  }

  NB.views.drift = function (args, query, view) {
    var name = args[0], version = args[1];
    return NB.api("models/" + NB.enc(name) + "/versions/" + NB.enc(version) + "/drift").then(function (d) {
      NB.crumbs([["models", []], [d.name, ["model", d.name]], ["v" + d.version, ["model", d.name, d.version]], ["drift"]]);
      view.appendChild(el("h2", { "class": "page-title", "data-testid": "drift-title", text: "Drift of " + d.name + " v" + d.version }));
      var live = d.points.filter(function (p) { return p.kind === "window"; }).length;
      var facts = [live + " live windows, " + (d.points.length - live) + " logged reports" + (d.truncated ? " (" + d.truncated + " older left out)" : "")];
      if (d.aliases.length) { facts.push("now @" + d.aliases.join(" @")); }
      facts.push(d.followed.length ? "moves of " + d.followed.join(", ") : "no alias moves");
      var sub = el("p", { "class": "muted", "data-testid": "drift-facts", text: facts.join(" · ") });
      d.deployments.forEach(function (dep, i) {
        sub.appendChild(document.createTextNode(i ? ", " : " · deployments: "));
        sub.appendChild(NB.link(dep.name, ["deployment", dep.name], null, "drift-deployment"));
      });
      view.appendChild(sub);
      if (!d.points.length && !d.switches.length) {
        view.appendChild(el("p", { "class": "muted", "data-testid": "drift-empty",
          text: "no window or drift report was recorded for this version: serve it with monitor=True, or log a report against it" }));
        return;
      }
      view.appendChild(chart(d));
      var list = NB.section("Windows and reports, newest first", "drift-reports");
      list.appendChild(pointsTable(d));
      view.appendChild(list);
      if (d.switches.length) {
        var moves = NB.section("Alias moves to and from v" + d.version, "alias-switches");
        moves.appendChild(switchesTable(d));
        view.appendChild(moves);
      }
    });
  };
}());
