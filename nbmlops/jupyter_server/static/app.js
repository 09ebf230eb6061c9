// nbmlops dashboard: plain DOM, no libraries. Every stored string reaches the page through
// textContent or an attribute set with setAttribute, never as HTML.
(function () {
  "use strict";

  var BASE = document.body.getAttribute("data-base-url") || "/";
  var API = BASE + "nbmlops/api/";
  var PAGE_SIZE = 50;
  var state = { experiment: null, offset: 0, nextOffset: null, selectedRun: null, models: [] };

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; } else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } }

  function text(value) { return value === null || value === undefined ? "" : String(value); }

  function fmtTime(ms) { return ms ? new Date(ms).toLocaleString() : ""; }

  function fmtNumber(v) {
    return typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : text(v);
  }

  function fmtDuration(s) {
    if (s === null || s === undefined) { return ""; }
    if (s < 60) { return s.toFixed(1) + " s"; }
    if (s < 3600) { return (s / 60).toFixed(1) + " min"; }
    return (s / 3600).toFixed(1) + " h";
  }

  function cookie(name) {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === name) { return decodeURIComponent(parts[i].slice(eq + 1)); }
    }
    return null;
  }

  // GET or POST JSON; rejects with the server's {"error": ...} message.
  function api(path, body) {
    var opts = { credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      opts.method = "POST";
      opts.headers["Content-Type"] = "application/json";
      var xsrf = cookie("_xsrf");  // as JupyterLab does: the _xsrf cookie back as a header
      if (xsrf) { opts.headers["X-XSRFToken"] = xsrf; }
      opts.body = JSON.stringify(body);
    }
    return fetch(API + path, opts).then(function (resp) {
      return resp.text().then(function (raw) {
        var payload = null;
        try { payload = raw ? JSON.parse(raw) : null; } catch (e) { payload = null; }
        if (!resp.ok) {
          var msg = payload && payload.error ? payload.error : resp.status + " " + resp.statusText;
          throw new Error(msg);
        }
        return payload;
      });
    });
  }

  function showError(box, err) {
    if (!err) { box.hidden = true; box.textContent = ""; return; }
    box.hidden = false;
    box.textContent = err.message || String(err);
  }

  function chips(obj, fmt) {
    var cell = el("td", { "class": "kv" });
    Object.keys(obj || {}).sort().forEach(function (k) {
      cell.appendChild(el("span", { "class": "chip", text: k + "=" + (fmt ? fmt(obj[k]) : text(obj[k])) }));
    });
    return cell;
  }

  // ---------------------------------------------------------------- runs
  function loadExperiments() {
    return api("experiments").then(function (data) {
      var select = $("experiment-select");
      var keep = state.experiment;
      clear(select);
      data.experiments.forEach(function (e) {
        var opt = el("option", { value: e.id, "data-testid": "experiment-option", text: e.name + " (" + e.runs + ")" });
        select.appendChild(opt);
      });
      if (keep && data.experiments.some(function (e) { return e.id === keep; })) {
        select.value = keep;
      } else if (data.experiments.length) {
        select.value = data.experiments[0].id;
      }
      state.experiment = select.value || null;
    });
  }

  var runsRequest = 0;  // only the answer to the latest request is drawn (an older one may arrive later)

  function loadRuns() {
    var body = $("runs-body");
    var mine = ++runsRequest;
    if (!state.experiment) { clear(body); $("runs-count").textContent = "no experiments yet"; return Promise.resolve(); }
    var q = "?max_results=" + PAGE_SIZE + "&offset=" + state.offset;
    var filter = $("runs-filter").value.trim();
    var order = $("runs-order-by").value.trim();
    if (filter) { q += "&filter=" + encodeURIComponent(filter); }
    if (order) { q += "&order_by=" + encodeURIComponent(order); }
    return api("experiments/" + encodeURIComponent(state.experiment) + "/runs" + q).then(function (data) {
      if (mine !== runsRequest) { return; }
      showError($("runs-error"), null);
      clear(body);
      data.runs.forEach(function (r) {
        var row = el("tr", { "class": "clickable", "data-testid": "run-row", "data-run-id": r.id }, [
          el("td", { "data-testid": "run-name", text: r.name }),
          el("td", { "data-testid": "run-status", "class": "status-" + r.status, text: r.status }),
          el("td", { text: fmtTime(r.start_time) }),
          el("td", { text: fmtDuration(r.duration) }),
          chips(r.params),
          chips(r.metrics, fmtNumber)
        ]);
        if (r.id === state.selectedRun) { row.classList.add("selected"); }
        row.addEventListener("click", function () { selectRun(r.id); });
        body.appendChild(row);
      });
      state.nextOffset = data.next_offset;
      $("runs-prev").disabled = state.offset === 0;
      $("runs-next").disabled = data.next_offset === null;
      $("runs-count").textContent = data.runs.length
        ? "runs " + (state.offset + 1) + "–" + (state.offset + data.runs.length) : "no runs match";
    }, function (err) {
      if (mine !== runsRequest) { return; }
      clear(body);
      showError($("runs-error"), err);
    });
  }

  function selectRun(runId) {
    state.selectedRun = runId;
    Array.prototype.forEach.call($("runs-body").rows, function (row) {
      row.classList.toggle("selected", row.getAttribute("data-run-id") === runId);
    });
    return Promise.all([api("runs/" + encodeURIComponent(runId)), api("runs/" + encodeURIComponent(runId) + "/metrics")])
      .then(function (results) { showRun(results[0], results[1]); }, function (err) { showError($("error"), err); });
  }

  function showRun(run, history) {
    $("run-detail").hidden = false;
    $("run-detail").setAttribute("data-run-id", run.id);
    $("run-detail-name").textContent = run.name + " · " + run.status;
    var dl = $("run-detail-fields");
    clear(dl);
    function field(label, value, testid) {
      dl.appendChild(el("dt", { text: label }));
      dl.appendChild(el("dd", { "data-testid": testid || "", text: value }));
    }
    field("run id", run.id, "run-detail-id");
    field("experiment", run.experiment.name);
    field("started", fmtTime(run.start_time));
    field("ended", fmtTime(run.end_time));
    field("params", Object.keys(run.params).sort().map(function (k) { return k + "=" + text(run.params[k]); }).join(", "));
    field("tags", Object.keys(run.tags).sort().map(function (k) { return k + "=" + text(run.tags[k]); }).join(", "));
    field("artifacts", run.artifacts.map(function (a) { return a.name; }).join(", "), "run-detail-artifacts");
    field("models", run.models.map(function (m) { return m.name + " (" + text(m["class"]) + ")"; }).join(", "), "run-detail-models");
    var charts = $("metric-charts");
    clear(charts);
    charts.className = "charts";
    Object.keys(history.metrics).sort().forEach(function (key) {
      charts.appendChild(chart(key, history.metrics[key]));
    });
  }

  // A metric curve as inline SVG, built with DOM calls.
  function chart(key, curve) {
    var NS = "http://www.w3.org/2000/svg", W = 320, H = 160, PAD = 34;
    function svgEl(tag, attrs) {
      var n = document.createElementNS(NS, tag);
      Object.keys(attrs).forEach(function (k) { n.setAttribute(k, String(attrs[k])); });
      return n;
    }
    var xs = curve.step, ys = curve.value;
    var xmin = Math.min.apply(null, xs), xmax = Math.max.apply(null, xs);
    var ymin = Math.min.apply(null, ys), ymax = Math.max.apply(null, ys);
    if (xmax === xmin) { xmax = xmin + 1; }
    if (ymax === ymin) { ymax = ymin + 1; }
    function px(x) { return PAD + (x - xmin) / (xmax - xmin) * (W - PAD - 8); }
    function py(y) { return H - 18 - (y - ymin) / (ymax - ymin) * (H - 18 - 8); }
    var svg = svgEl("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img" });
    svg.setAttribute("data-testid", "metric-chart");
    svg.setAttribute("data-metric-key", key);
    svg.appendChild(svgEl("line", { x1: PAD, y1: H - 18, x2: W - 8, y2: H - 18, stroke: "#bbb" }));
    svg.appendChild(svgEl("line", { x1: PAD, y1: 8, x2: PAD, y2: H - 18, stroke: "#bbb" }));
    var points = xs.map(function (x, i) { return px(x).toFixed(1) + "," + py(ys[i]).toFixed(1); }).join(" ");
    svg.appendChild(svgEl("polyline", { points: points, fill: "none", stroke: "#3366cc", "stroke-width": 1.5,
      "data-points": xs.length }));
    if (xs.length === 1) { svg.appendChild(svgEl("circle", { cx: px(xs[0]), cy: py(ys[0]), r: 3, fill: "#3366cc" })); }
    var labels = [[fmtNumber(ymax), 2, 14], [fmtNumber(ymin), 2, H - 20], [text(xmin), PAD, H - 4], [text(xmax), W - 30, H - 4]];
    labels.forEach(function (l) {
      var t = svgEl("text", { x: l[1], y: l[2] });
      t.textContent = l[0];
      svg.appendChild(t);
    });
    var box = el("div", { "class": "chart", "data-testid": "metric-chart-box" }, [
      el("div", { "class": "chart-title", text: key + " (" + xs.length + " points)" })
    ]);
    box.appendChild(svg);
    return box;
  }

  // ---------------------------------------------------------------- models
  function loadModels() {
    return api("models").then(function (data) {
      state.models = data.models;
      var body = $("models-body");
      clear(body);
      data.models.forEach(function (m) {
        var aliases = el("td", { "data-testid": "model-aliases" });
        Object.keys(m.aliases).sort().forEach(function (a) {
          aliases.appendChild(el("span", { "class": "chip", "data-testid": "model-alias", "data-alias": a,
            "data-version": String(m.aliases[a]), text: a + " → v" + m.aliases[a] }));
        });
        var versions = el("td", { "data-testid": "model-versions" });
        m.versions.forEach(function (v) {
          var metrics = Object.keys(v.metrics).sort().slice(0, 3).map(function (k) { return k + "=" + fmtNumber(v.metrics[k]); });
          versions.appendChild(el("div", { "data-testid": "model-version", "data-version": String(v.version),
            text: "v" + v.version + " " + text(v["class"]) + (v.run ? " · run " + v.run : "") + (metrics.length ? " · " + metrics.join(", ") : "") }));
        });
        body.appendChild(el("tr", { "data-testid": "model-row", "data-model-name": m.name }, [
          el("td", { "data-testid": "model-name", text: m.name }), aliases, versions
        ]));
      });
      var select = $("alias-model");
      var keep = select.value;
      clear(select);
      data.models.forEach(function (m) { select.appendChild(el("option", { value: m.name, text: m.name })); });
      if (keep && data.models.some(function (m) { return m.name === keep; })) { select.value = keep; }
      $("alias-submit").disabled = !data.models.length;
    });
  }

  function moveAlias(ev) {
    ev.preventDefault();
    var name = $("alias-model").value, alias = $("alias-name").value.trim();
    var version = Number($("alias-version").value);
    var msg = $("alias-message");
    msg.className = "";
    msg.textContent = "…";
    return api("models/" + encodeURIComponent(name) + "/aliases", { alias: alias, version: version }).then(function (res) {
      msg.className = "ok";
      msg.textContent = res.name + "@" + res.alias + " → v" + res.version;
      return loadModels();
    }, function (err) {
      msg.className = "error";
      msg.textContent = err.message;
    });
  }

  // ---------------------------------------------------------------- deployments
  function loadDeployments() {
    return api("deployments").then(function (data) {
      var body = $("deployments-body");
      clear(body);
      data.deployments.forEach(function (d) {
        var stop = el("button", { type: "button", "data-testid": "deployment-stop", text: "Stop" });
        stop.disabled = ["running", "starting", "not answering"].indexOf(d.status) < 0;
        stop.addEventListener("click", function () {
          stop.disabled = true;
          stop.textContent = "Stopping…";
          api("deployments/" + encodeURIComponent(d.name) + "/stop", {}).then(loadDeployments, function (err) {
            showError($("error"), err);
            stop.textContent = "Stop";
            stop.disabled = false;
          });
        });
        body.appendChild(el("tr", { "data-testid": "deployment-row", "data-deployment-name": d.name }, [
          el("td", { "data-testid": "deployment-name", text: d.name }),
          el("td", { text: d.model }),
          el("td", { text: text(d.version) }),
          el("td", { "data-testid": "deployment-status", "class": "status-" + String(d.status).replace(/ /g, "-"), text: d.status }),
          el("td", { "class": "kv", text: text(d.url) }),
          el("td", { text: text(d.requests) }),
          el("td", {}, [stop])
        ]));
      });
    });
  }

  // ---------------------------------------------------------------- drift
  function loadDrift() {
    return api("drift").then(function (data) {
      var body = $("drift-body");
      clear(body);
      data.reports.forEach(function (r) {
        var link = el("a", { "data-testid": "drift-link", target: "_blank", rel: "noopener noreferrer",
          href: API + "drift/" + encodeURIComponent(r.id) + "/html", text: "open report" });
        body.appendChild(el("tr", { "data-testid": "drift-row", "data-drift-id": r.id }, [
          el("td", { text: fmtTime(r.time) }),
          el("td", { text: text(r.model) + (r.version ? " (v" + r.version + ")" : "") }),
          el("td", { "data-testid": "drift-verdict", text: r.dataset_drift ? "DRIFT" : "no drift" }),
          el("td", { text: text(r.n_drifted) + " of " + text(r.n_columns) + (r.drifted_columns ? ": " + r.drifted_columns : "") }),
          el("td", {}, [link])
        ]));
      });
    });
  }

  // ---------------------------------------------------------------- store
  // The store shown (the one this server hands its kernels, unless the user picked another found below the
  // root); a store that does not exist yet is named with what to do, never shown as a silent "(empty)".
  function showStore(s) {
    $("store-path").textContent = s.path;
    var hint = $("store-hint");
    hint.textContent = s.hint || (s.kernels && s.kernels !== s.path
      ? "shown instead of the kernels' store " + s.kernels : "");
    hint.hidden = !hint.textContent;
    var select = $("store-select");
    clear(select);
    (s.stores || []).forEach(function (st) {
      var label = st.relative + (st.kernels ? " (this server's kernels)" : "") + (st.exists ? "" : " (not created yet)");
      var opt = el("option", { value: st.path, text: label });
      if (st.shown) { opt.selected = true; }
      select.appendChild(opt);
    });
    select.hidden = (s.stores || []).length < 2;
  }

  $("store-select").addEventListener("change", function () {
    api("store", { path: this.value }).then(function () { refresh(); }, function (err) { showError($("error"), err); });
  });

  // ---------------------------------------------------------------- wiring
  function refresh() {
    showError($("error"), null);
    function failed(err) { showError($("error"), err); }
    api("store").then(showStore, failed);
    loadExperiments().then(loadRuns).catch(failed);
    loadModels().catch(failed);
    loadDeployments().catch(failed);
    loadDrift().catch(failed);
  }

  $("experiment-select").addEventListener("change", function () {
    state.experiment = this.value;
    state.offset = 0;
    loadRuns();
  });
  $("runs-form").addEventListener("submit", function (ev) { ev.preventDefault(); state.offset = 0; loadRuns(); });
  $("runs-next").addEventListener("click", function () {
    if (state.nextOffset !== null) { state.offset = state.nextOffset; loadRuns(); }
  });
  $("runs-prev").addEventListener("click", function () { state.offset = Math.max(0, state.offset - PAGE_SIZE); loadRuns(); });
  $("alias-form").addEventListener("submit", moveAlias);
  $("refresh").addEventListener("click", refresh);
  refresh();
}());
