// nbmlops dashboard, the run page (#/run/<id>): fields, params and tags as tables, a chart per metric,
// artifacts (images shown, text/JSON/CSV previewed, others downloadable), the cell's source, datasets, models.
(function () {
  "use strict";

  var NB = window.NB, el = NB.el, text = NB.text;

  NB.artifactUrl = function (runId, name, download) {
    return NB.API + "runs/" + NB.enc(runId) + "/artifacts/" + name.split("/").map(NB.enc).join("/") +
      (download ? "?download=1" : "");
  };

  // {key: value} as a two-column table (sorted), not a wall of chips
  NB.kvTable = function (obj, testid, fmt) {
    var keys = Object.keys(obj || {}).sort();
    if (!keys.length) { return el("p", { "class": "muted", text: "none" }); }
    var body = el("tbody");
    keys.forEach(function (k) {
      body.appendChild(el("tr", { "data-key": k }, [el("th", { text: k }), el("td", { text: fmt ? fmt(obj[k]) : text(obj[k]) })]));
    });
    return el("table", { "class": "kvtable", "data-testid": testid || null }, [body]);
  };

  function preview(run, a, box) {
    NB.api("runs/" + NB.enc(run.id) + "/preview/" + a.name.split("/").map(NB.enc).join("/")).then(function (p) {
      NB.clear(box);
      if (p.kind === "csv" && p.rows) {
        var t = el("table", { "class": "preview-table", "data-testid": "artifact-csv" });
        p.rows.forEach(function (row, i) {
          t.appendChild(el("tr", {}, row.map(function (c) { return el(i ? "td" : "th", { text: c }); })));
        });
        box.appendChild(el("div", { "class": "scroll" }, [t]));
      } else {
        box.appendChild(el("pre", { "class": "preview", "data-testid": "artifact-text", text: p.text }));
      }
      if (p.truncated) { box.appendChild(el("p", { "class": "muted", text: "first 64 KB shown" })); }
    }, function (err) { box.textContent = err.message; });
  }

  function artifactItem(run, a) {
    var item = el("div", { "class": "artifact", "data-testid": "artifact", "data-name": a.name, "data-show": a.show }, [
      el("div", { "class": "artifact-head" }, [el("strong", { text: a.name }), " ",
        el("span", { "class": "muted", text: NB.fmtBytes(a.size) }), " ",
        el("a", { href: NB.artifactUrl(run.id, a.name, true), "data-testid": "artifact-download", text: "download" })])]);
    if (a.show === "image") {
      item.appendChild(el("img", { src: NB.artifactUrl(run.id, a.name), alt: a.name, "data-testid": "artifact-image", loading: "lazy" }));
    } else if (a.show !== "download") {
      var box = el("div", { "class": "artifact-preview" });
      item.appendChild(box);
      if (a.size < 256 * 1024) {
        preview(run, a, box);
      } else {
        var b = el("button", { type: "button", text: "preview" });
        b.addEventListener("click", function () { preview(run, a, box); });
        box.appendChild(b);
      }
    }
    return item;
  }

  // one chart per metric; `curves` = {key: {step, value, points}}
  NB.metricCharts = function (curves, testid) {
    var box = el("div", { "class": "charts", "data-testid": testid || "metric-charts" });
    Object.keys(curves).sort().forEach(function (key) {
      var c = curves[key];
      var title = key + (c.points > c.step.length ? " (" + c.points + " points, " + c.step.length + " drawn)" : " (" + c.points + (c.points === 1 ? " point)" : " points)"));
      box.appendChild(NB.lineChart({ title: title, key: key, testid: "metric-chart", xLabel: "step",
        series: [{ label: key, x: c.step, y: c.value, points: c.points }] }));
    });
    return box;
  };

  NB.views.run = function (args, query, view) {
    var id = args[0];
    return Promise.all([NB.api("runs/" + NB.enc(id)), NB.api("runs/" + NB.enc(id) + "/metrics")]).then(function (res) {
      var run = res[0], history = res[1];
      NB.crumbs([["runs", ["runs"], { experiment: run.experiment.id }], [run.experiment.name, ["runs"], { experiment: run.experiment.id }], [run.name]]);
      view.appendChild(el("h2", { "data-testid": "run-detail-name", "class": "page-title" }, [run.name + " ", NB.statusEl(run.status, "run-status")]));
      view.appendChild(NB.fields([
        ["run id", run.id, "run-detail-id"],
        ["experiment", NB.link(run.experiment.name, ["runs"], { experiment: run.experiment.id })],
        ["started", el("span", {}, [NB.timeEl(run.start_time), " (" + NB.fmtTime(run.start_time) + ")"])],
        ["duration", NB.fmtDuration(run.duration)],
        ["user", run.user], ["host", run.host], ["notebook", run.notebook && run.notebook.path ? run.notebook.path : text(run.notebook || "")],
        ["git commit", run.git_commit], ["python", run.python],
        ["parent run", run.parent_run ? NB.link(run.parent_run, ["run", run.parent_run]) : null],
        ["same as", run.same_as ? NB.link(run.same_as, ["run", run.same_as]) : null],
        ["error", run.error]
      ]));
      var grid = el("div", { "class": "two-col" });
      var p = NB.section("Params (" + Object.keys(run.params).length + ")", "run-params");
      p.appendChild(NB.kvTable(run.params, "run-params-table"));
      var t = NB.section("Tags", "run-tags");
      t.appendChild(NB.kvTable(run.tags, "run-tags-table"));
      grid.appendChild(p); grid.appendChild(t);
      view.appendChild(grid);
      var m = NB.section("Metrics", "run-metrics");
      var last = {};
      Object.keys(run.metrics).forEach(function (k) { last[k] = run.metrics[k].value; });
      m.appendChild(NB.kvTable(last, "run-metrics-table", NB.fmtNumber));
      m.appendChild(NB.metricCharts(history.metrics));
      view.appendChild(m);
      var a = NB.section("Artifacts (" + run.artifacts.length + ")", "run-artifacts");
      run.artifacts.forEach(function (art) { a.appendChild(artifactItem(run, art)); });
      if (!run.artifacts.length) { a.appendChild(el("p", { "class": "muted", text: "none" })); }
      view.appendChild(a);
      if (run.models.length) {
        var ms = NB.section("Models", "run-models");
        ms.appendChild(el("ul", {}, run.models.map(function (md) {
          return el("li", { "data-testid": "run-model", text: md.name + " · " + text(md["class"]) + " · " + NB.fmtBytes(md.size) });
        })));
        view.appendChild(ms);
      }
      if (run.datasets && run.datasets.length) {
        var ds = NB.section("Datasets", "run-datasets");
        ds.appendChild(el("ul", {}, run.datasets.map(function (d) {
          return el("li", { "data-testid": "run-dataset", text: d.name + (d.version ? " v" + d.version : "") +
            (d.role ? " (" + d.role + ")" : "") + (d.shape ? " · " + d.shape.join(" × ") : "") + " · " + String(d.sha256).slice(0, 12) });
        })));
        view.appendChild(ds);
      }
      if (run.source) {
        var src = NB.section("Cell source", "run-source");
        src.appendChild(el("pre", { "class": "source", "data-testid": "run-source-code", text: run.source }));
        view.appendChild(src);
      }
    });
  };
}());
