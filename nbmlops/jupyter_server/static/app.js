// nbmlops dashboard, the router: every view has a URL hash, so it can be linked, reloaded and opened in a
// JupyterLab tab. The routes (keep them stable: the JupyterLab extension opens them):
//   #/                                  home: runs, models, deployments, drift reports
//   #/runs?experiment=ID|NAME&filter=..&order_by=..   the same, that experiment's runs searched
//   #/run/<run id>                      a run: params, metric charts, artifacts, cell source, datasets, models
//   #/compare?runs=a,b,c[&metric=m]     2-10 runs: overlaid curves, parallel coordinates, param diff
//   #/model/<name>[/<version>]          a model version: lineage and alias history (no version: the latest)
//   #/deployment/<name>                 a deployment: live rate, latency, accuracy, A/B weights
//   #/drift/<model>/<version>           a model version's drift over time
(function () {
  "use strict";

  var NB = window.NB, $ = NB.$, el = NB.el;
  var leaving = [], shown = 0;

  NB.onLeave = function (fn) { leaving.push(fn); };

  // a view takes NB.token() when it starts and polls only while NB.current(token) (it is still shown)
  NB.token = function () { return shown; };
  NB.current = function (token) { return token === shown; };

  // breadcrumbs: [[label, parts, query], ..., [label]]
  NB.crumbs = function (items) {
    var nav = $("crumbs");
    NB.clear(nav);
    items.forEach(function (c, i) {
      if (i) { nav.appendChild(document.createTextNode(" › ")); }
      nav.appendChild(c[1] ? el("a", { href: NB.href(c[1], c[2]), text: c[0] }) : el("span", { "data-testid": "crumb-here", text: c[0] }));
    });
  };

  function parse(hash) {
    var h = hash.replace(/^#\/?/, ""), q = {}, at = h.indexOf("?");
    if (at >= 0) {
      h.slice(at + 1).split("&").forEach(function (kv) {
        if (!kv) { return; }
        var eq = kv.indexOf("=");
        q[decodeURIComponent(eq < 0 ? kv : kv.slice(0, eq))] = eq < 0 ? "" : decodeURIComponent(kv.slice(eq + 1).replace(/\+/g, " "));
      });
      h = h.slice(0, at);
    }
    var parts = h.split("/").filter(Boolean).map(decodeURIComponent);
    return { name: parts[0] || "", args: parts.slice(1), all: parts, query: q };
  }

  var PAGES = { run: 1, compare: 0, model: 1, deployment: 1, drift: 2 };  // view: arguments it needs at least

  function route() {
    leaving.splice(0).forEach(function (fn) { fn(); });
    shown += 1;
    NB.showError($("error"), null);
    var r = parse(location.hash), view = $("view"), home = $("view-home");
    var page = Object.prototype.hasOwnProperty.call(PAGES, r.name) && r.args.length >= PAGES[r.name];
    document.body.setAttribute("data-view", page ? r.name : "home");
    home.hidden = page;
    view.hidden = !page;
    NB.clear(view);
    view.setAttribute("data-render", String(shown));
    if (!page) {
      NB.crumbs([]);
      NB.views.home(r.all, r.query);
      return;
    }
    view.setAttribute("data-loading", "true");
    view.appendChild(el("p", { "class": "muted", "data-testid": "loading", text: "loading…" }));
    var mine = shown;
    var holder = el("div");
    Promise.resolve().then(function () { return NB.views[r.name](r.args, r.query, holder); }).then(function () {
      if (mine !== shown) { return; }
      NB.clear(view);
      view.appendChild(holder);
      view.removeAttribute("data-loading");
      window.scrollTo(0, 0);
    }, function (err) {
      if (mine !== shown) { return; }
      NB.clear(view);
      view.removeAttribute("data-loading");
      NB.showError($("error"), err);
      view.appendChild(el("p", {}, [NB.link("back to the dashboard", [])]));
    });
  }

  $("refresh").addEventListener("click", function () {
    if (document.body.getAttribute("data-view") === "home") { NB.refreshHome(); } else { route(); }
  });
  window.addEventListener("hashchange", route);
  route();
  if (document.body.getAttribute("data-view") !== "home") { NB.loadStore(); }  // home loads it with its lists
}());
