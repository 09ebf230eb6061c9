// nbmlops dashboard, the comparison of 2-10 runs (#/compare?runs=a,b,c&metric=auc): overlaid curves per
// metric, parallel coordinates of the params that vary -> the chosen metric, the param diff.
(function () {
  "use strict";

  var NB = window.NB, el = NB.el, text = NB.text;
  var MAX_AXES = 8;  // params drawn as axes; the diff table lists them all

  function table(head, rows, testid) {
    return el("div", { "class": "scroll" }, [el("table", { "class": "diff", "data-testid": testid },
      [el("thead", {}, [el("tr", {}, head)]), el("tbody", {}, rows)])]);
  }

  function runHeads(runs) {
    return [el("th", { text: "" })].concat(runs.map(function (r, i) {
      return el("th", {}, [el("span", { "class": "swatch", style: "background:" + NB.COLORS[i % NB.COLORS.length] }),
        NB.link(r.name, ["run", r.id])]);
    }));
  }

  function parallel(data, metric) {
    var runs = data.runs;
    var axes = data.params.varying.slice(0, MAX_AXES).map(function (k) {
      return { label: k, values: runs.map(function (r) { return r.params[k] === undefined ? null : r.params[k]; }) };
    });
    if (metric) { axes.push({ label: metric, values: runs.map(function (r) { var v = r.metrics[metric]; return v === undefined ? null : v; }) }); }
    if (!axes.length) { return el("p", { "class": "muted", text: "no params vary and no metric is chosen" }); }
    return NB.parallelCoords(axes, runs.map(function (r, i) { return { label: r.name, color: NB.COLORS[i % NB.COLORS.length] }; }));
  }

  NB.views.compare = function (args, query, view) {
    var ids = (query.runs || "").split(",").filter(Boolean);
    return NB.api("compare?runs=" + NB.enc(ids.join(","))).then(function (data) {
      var runs = data.runs;
      NB.crumbs([["runs", ["runs"], { experiment: runs[0].experiment_id }], ["compare " + runs.length + " runs"]]);
      view.appendChild(el("h2", { "class": "page-title", "data-testid": "compare-title", text: "Comparing " + runs.length + " runs" }));
      view.appendChild(NB.legend(runs.map(function (r, i) { return { label: r.name, color: NB.COLORS[i % NB.COLORS.length] }; })));

      var metrics = NB.section("Metrics", "compare-metrics");
      metrics.appendChild(table(runHeads(runs), data.metrics.map(function (k) {
        return el("tr", { "data-key": k }, [el("th", { text: k })].concat(runs.map(function (r) {
          return el("td", { "class": "num", text: NB.fmtNumber(r.metrics[k]) });
        })));
      }), "compare-metrics-table"));
      view.appendChild(metrics);

      var curves = NB.section("Curves", "compare-curves");
      var charts = el("div", { "class": "charts" });
      data.metrics.forEach(function (key) {
        var series = [];
        runs.forEach(function (r, i) {
          var c = data.curves[key][r.id];
          if (c) { series.push({ label: r.name, color: NB.COLORS[i % NB.COLORS.length], x: c.step, y: c.value, points: c.points }); }
        });
        charts.appendChild(NB.lineChart({ title: key, key: key, testid: "compare-chart", xLabel: "step", series: series, legend: true }));
      });
      curves.appendChild(charts);
      view.appendChild(curves);

      var pc = NB.section("Params → metric", "compare-parallel");
      var pick = el("select", { "data-testid": "compare-metric", "aria-label": "metric" });
      data.metrics.forEach(function (k) { pick.appendChild(el("option", { value: k, text: k })); });
      var metric = data.metrics.indexOf(query.metric) >= 0 ? query.metric : (data.shared_metrics[0] || data.metrics[0] || "");
      pick.value = metric;
      var holder = el("div", {}, [parallel(data, metric)]);
      pick.addEventListener("change", function () {
        NB.clear(holder);
        holder.appendChild(parallel(data, pick.value));
        history.replaceState(null, "", NB.href(["compare"], { runs: query.runs, metric: pick.value }));
      });
      pc.appendChild(el("label", { "class": "bar" }, ["metric ", pick]));
      pc.appendChild(holder);
      if (data.params.varying.length > MAX_AXES) {
        pc.appendChild(el("p", { "class": "muted", text: "the first " + MAX_AXES + " of " + data.params.varying.length + " varying params are drawn; the diff below lists all" }));
      }
      view.appendChild(pc);

      var diff = NB.section("Param diff (" + data.params.varying.length + " differ)", "compare-diff");
      diff.appendChild(table(runHeads(runs), data.diff.map(function (d) {
        return el("tr", { "data-key": d.key, "data-testid": "diff-row" }, [el("th", { text: d.key })].concat(d.values.map(function (v) {
          return el("td", { "class": v === null || v === undefined ? "missing" : "", text: v === null || v === undefined ? "—" : text(v) });
        })));
      }), "compare-diff-table"));
      diff.appendChild(NB.folded("params the same in every run", data.params.constant, "compare-constant"));
      view.appendChild(diff);
    });
  };
}());
