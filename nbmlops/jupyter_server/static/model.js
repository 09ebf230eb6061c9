// nbmlops dashboard, a model version (#/model/<name>/<version>, #/model/<name> = its latest): lineage drawn
// (dataset versions -> run -> version -> deployments -> drift reports) and alias history. A version's drift
// timeline (#/drift/<model>/<version>) is drift.js.
(function () {
  "use strict";

  var NB = window.NB, el = NB.el, text = NB.text;

  function node(kind, label, sub, href, testid) {
    var body = [el("span", { "class": "node-label", text: label })];
    if (sub) { body.push(el("span", { "class": "node-sub", text: sub })); }
    return el(href ? "a" : "div", { "class": "node node-" + kind, href: href || null, "data-testid": testid || "lineage-node",
      "data-kind": kind, title: label }, body);
  }

  function column(title, nodes) {
    return el("div", { "class": "lineage-col", "data-testid": "lineage-col" }, [el("div", { "class": "lineage-head", text: title })]
      .concat(nodes.length ? nodes : [el("div", { "class": "node node-none", text: "none" })]));
  }

  function lineage(v) {
    var datasets = v.datasets.map(function (d) {
      return node("dataset", d.name + (d.version ? " v" + d.version : ""), (d.shape ? d.shape.join(" × ") + " · " : "") + String(d.sha256).slice(0, 10));
    });
    var run = v.run ? [node("run", text(v.run.name), v.run.missing ? "not in this store" : text(v.run.status),
      v.run.missing ? null : NB.href(["run", v.run.id]))] : [];
    var version = [node("version", v.name + " v" + v.version, v.aliases.length ? "@" + v.aliases.join(" @") : "", null, "lineage-version")];
    var deps = v.deployments.map(function (d) {
      return node("deployment", d.name, d.status + " · " + NB.relTime(d.started), NB.href(["deployment", d.name]));
    });
    var drift = v.drift.slice(-6).reverse().map(function (r) {
      var share = typeof r.share_drifted === "number" ? Math.round(r.share_drifted * 100) + " % drifted" : "";
      return node("drift", NB.relTime(r.time), (r.dataset_drift ? "DRIFT · " : "") + share, NB.href(["drift", v.name, v.version]));
    });
    var cols = [column("Dataset versions", datasets), column("Run", run), column("Model version", version),
      column("Deployments", deps), column("Drift reports" + (v.drift_count > 6 ? " (last 6 of " + v.drift_count + ")" : ""), drift)];
    var box = el("div", { "class": "lineage", "data-testid": "lineage" });
    cols.forEach(function (c, i) {
      if (i) { box.appendChild(el("div", { "class": "lineage-arrow", "aria-hidden": "true", text: "→" })); }
      box.appendChild(c);
    });
    return box;
  }

  function historyTable(rows, testid) {
    if (!rows.length) { return el("p", { "class": "muted", text: "none" }); }
    return el("table", { "class": "kvtable", "data-testid": testid }, [el("tbody", {}, rows.map(function (h) {
      var what = h.action === "alias" ? "@" + h.alias + ": " + (h.from ? "v" + h.from : "—") + " → " + (h.to ? "v" + h.to : "removed")
        : h.action + " v" + text(h.version);
      return el("tr", { "data-testid": "history-row" }, [el("td", {}, [NB.timeEl(h.time)]), el("td", { text: what }), el("td", { "class": "muted", text: text(h.user) })]);
    }))]);
  }

  NB.views.model = function (args, query, view) {
    var name = args[0], wanted = args[1];
    var first = wanted ? Promise.resolve(wanted) : NB.api("models/" + NB.enc(name)).then(function (m) { return m.latest_version; });
    return first.then(function (version) {
      return NB.api("models/" + NB.enc(name) + "/versions/" + NB.enc(version));
    }).then(function (v) {
      NB.crumbs([["models", []], [v.name, ["model", v.name]], ["v" + v.version]]);
      var title = el("h2", { "class": "page-title", "data-testid": "model-version-title" }, [v.name + " v" + v.version + " "]);
      v.aliases.forEach(function (a) { title.appendChild(el("span", { "class": "chip", "data-testid": "version-alias", text: "@" + a })); });
      view.appendChild(title);
      var others = el("div", { "class": "bar" }, ["versions: "]);
      v.versions.forEach(function (n) {
        others.appendChild(n === v.version ? el("strong", { text: "v" + n }) : NB.link("v" + n, ["model", v.name, n]));
      });
      view.appendChild(others);
      view.appendChild(NB.fields([["class", v["class"]], ["registered", el("span", {}, [NB.timeEl(v.created), " by " + text(v.user)])],
        ["sha256", String(v.sha256).slice(0, 16)], ["size", NB.fmtBytes(v.size)], ["description", v.description],
        ["inputs", v.signature.n_inputs ? v.signature.n_inputs + " columns" + (v.signature.features.length ? ": " + v.signature.features.join(", ") : "") : null],
        ["output", v.signature.output && v.signature.output !== "unknown" ? v.signature.output +
          (v.signature.classes.length ? " (classes " + v.signature.classes.map(text).join(", ") + ")" : "") : null]]));
      var lin = NB.section("Lineage", "model-lineage");
      lin.appendChild(lineage(v));
      if (v.drift_count) { lin.appendChild(NB.link("drift over time →", ["drift", v.name, v.version], null, "drift-timeline-link")); }
      view.appendChild(lin);
      var grid = el("div", { "class": "two-col" });
      var m = NB.section("Metrics", "version-metrics");
      m.appendChild(NB.kvTable(v.metrics, null, NB.fmtNumber));
      var p = NB.section("Params", "version-params");
      p.appendChild(NB.kvTable(v.params));
      grid.appendChild(m); grid.appendChild(p);
      view.appendChild(grid);
      var h = NB.section("This version's history", "version-history");
      h.appendChild(historyTable(v.history.slice().reverse(), "version-history-table"));
      view.appendChild(h);
      var ah = NB.section("Alias history of " + v.name, "alias-history");
      ah.appendChild(historyTable(v.alias_history.slice().reverse(), "alias-history-table"));
      view.appendChild(ah);
    });
  };
}());
