// nbmlops dashboard, the home view (#/ and #/runs?experiment=..&filter=..&order_by=..): the runs table
// (metrics first, then the params that vary across the listed runs; constant ones folded), models with
// their aliases, deployments, drift reports, and the store shown.
(function () {
  "use strict";

  var NB = window.NB, $ = NB.$, el = NB.el, clear = NB.clear, text = NB.text;
  var PAGE_SIZE = 50;
  var state = { experiment: null, offset: 0, nextOffset: null, selected: [], loaded: false };
  var runsRequest = 0;  // only the answer to the latest request is drawn (an older one may arrive later)

  function loadExperiments() {
    return NB.api("experiments").then(function (data) {
      var select = $("experiment-select");
      var keep = state.experiment;
      clear(select);
      data.experiments.forEach(function (e) {
        select.appendChild(el("option", { value: e.id, "data-testid": "experiment-option", "data-name": e.name,
          text: e.name + " (" + e.runs + ")" }));
      });
      var match = data.experiments.filter(function (e) { return e.id === keep || e.name === keep; })[0];
      if (match) { select.value = match.id; } else if (data.experiments.length) { select.value = data.experiments[0].id; }
      state.experiment = select.value || null;
    });
  }

  function remember() {  // the runs view's state in the URL, so it can be linked and reloaded
    if (!state.experiment) { return; }
    var h = NB.href(["runs"], { experiment: state.experiment, filter: $("runs-filter").value.trim(),
      order_by: $("runs-order-by").value.trim() });
    if (location.hash !== h) { history.replaceState(null, "", h); }
  }

  function header(label, order, testid) {
    var th = el("th", { "data-testid": testid || null, title: order ? "sort by " + order : null, text: label });
    if (order) {
      th.classList.add("sortable");
      th.addEventListener("click", function () {
        var input = $("runs-order-by");
        input.value = input.value === order + " desc" ? order : order + " desc";
        state.offset = 0;
        loadRuns();
      });
    }
    return th;
  }

  function drawRuns(data) {
    var cols = data.columns, head = $("runs-head"), body = $("runs-body");
    clear(head); clear(body);
    var tr = el("tr", {}, [el("th", { "class": "pick" }), header("Name", null), header("Status", null),
      header("Started", "start_time"), header("Duration", null)]);
    cols.metrics.forEach(function (k) { tr.appendChild(header(k, "metrics.`" + k + "`", "metric-column")); });
    cols.varying.forEach(function (k) {
      var th = header(k, "params.`" + k + "`", "param-column");
      th.classList.add("param");
      tr.appendChild(th);
    });
    head.appendChild(tr);
    data.runs.forEach(function (r) {
      var pick = el("input", { type: "checkbox", "data-testid": "run-select", "aria-label": "select " + r.name });
      pick.checked = state.selected.indexOf(r.id) >= 0;
      pick.addEventListener("click", function (ev) { ev.stopPropagation(); toggle(r.id, pick.checked); });
      var row = el("tr", { "class": "clickable", "data-testid": "run-row", "data-run-id": r.id }, [
        el("td", { "class": "pick" }, [pick]),
        el("td", { "data-testid": "run-name", "class": "name" }, [NB.link(r.name, ["run", r.id])]),
        el("td", { "data-testid": "run-status" }, [NB.statusEl(r.status)]),
        el("td", {}, [NB.timeEl(r.start_time)]),
        el("td", { "class": "num", text: NB.fmtDuration(r.duration) })
      ]);
      cols.metrics.forEach(function (k) { row.appendChild(el("td", { "class": "num metric", text: NB.fmtNumber(r.metrics[k]) })); });
      cols.varying.forEach(function (k) { row.appendChild(el("td", { "class": "param", text: text(r.params[k]) })); });
      row.addEventListener("click", function (ev) {
        if (ev.target.closest("a, input")) { return; }
        location.hash = NB.href(["run", r.id]);
      });
      body.appendChild(row);
    });
    var folded = $("runs-folded");
    clear(folded);
    var partial = {};
    Object.keys(cols.partial).forEach(function (k) {
      partial[k] = text(cols.partial[k].value) + " (in " + cols.partial[k].runs + " of " + data.runs.length + " runs)";
    });
    if (Object.keys(cols.constant).length) { folded.appendChild(NB.folded("params the same in every run", cols.constant, "runs-constant")); }
    if (Object.keys(partial).length) { folded.appendChild(NB.folded("params set in some runs only", partial, "runs-partial")); }
  }

  function loadRuns() {
    var mine = ++runsRequest;
    if (!state.experiment) { clear($("runs-body")); $("runs-count").textContent = "no experiments yet"; return Promise.resolve(); }
    remember();
    var q = "?max_results=" + PAGE_SIZE + "&offset=" + state.offset;
    var filter = $("runs-filter").value.trim(), order = $("runs-order-by").value.trim();
    if (filter) { q += "&filter=" + NB.enc(filter); }
    if (order) { q += "&order_by=" + NB.enc(order); }
    return NB.api("experiments/" + NB.enc(state.experiment) + "/runs" + q).then(function (data) {
      if (mine !== runsRequest) { return; }
      NB.showError($("runs-error"), null);
      drawRuns(data);
      state.nextOffset = data.next_offset;
      $("runs-prev").disabled = state.offset === 0;
      $("runs-next").disabled = data.next_offset === null;
      $("runs-count").textContent = data.runs.length
        ? "runs " + (state.offset + 1) + "–" + (state.offset + data.runs.length) : "no runs match";
    }, function (err) {
      if (mine !== runsRequest) { return; }
      clear($("runs-body"));
      NB.showError($("runs-error"), err);
    });
  }

  function toggle(id, on) {
    state.selected = state.selected.filter(function (x) { return x !== id; });
    if (on) { state.selected.push(id); }
    var n = state.selected.length, button = $("compare-selected");
    button.disabled = n < 2 || n > 10;
    button.textContent = "Compare " + (n ? n + " " : "") + "runs";
  }

  // ---------------------------------------------------------------- models
  function loadModels() {
    return NB.api("models").then(function (data) {
      var body = $("models-body");
      clear(body);
      data.models.forEach(function (m) {
        var aliases = el("td", { "data-testid": "model-aliases" });
        Object.keys(m.aliases).sort().forEach(function (a) {
          aliases.appendChild(el("span", { "class": "chip", "data-testid": "model-alias", "data-alias": a,
            "data-version": String(m.aliases[a]), text: a + " → v" + m.aliases[a] }));
        });
        var versions = el("td", { "data-testid": "model-versions" });
        m.versions.slice().reverse().forEach(function (v) {
          var metrics = Object.keys(v.metrics).sort().slice(0, 3).map(function (k) { return k + " " + NB.fmtNumber(v.metrics[k]); });
          versions.appendChild(el("div", { "data-testid": "model-version", "data-version": String(v.version) }, [
            NB.link("v" + v.version, ["model", m.name, v.version], null, "model-version-link"),
            " " + text(v["class"]) + (metrics.length ? " · " + metrics.join(", ") : "") + " · ",
            NB.timeEl(v.created)]));
        });
        body.appendChild(el("tr", { "data-testid": "model-row", "data-model-name": m.name }, [
          el("td", { "data-testid": "model-name" }, [m.latest_version ? NB.link(m.name, ["model", m.name, m.latest_version]) : m.name]),
          aliases, versions]));
      });
      var select = $("alias-model"), keep = select.value;
      clear(select);
      data.models.forEach(function (m) { select.appendChild(el("option", { value: m.name, text: m.name })); });
      if (keep && data.models.some(function (m) { return m.name === keep; })) { select.value = keep; }
      $("alias-submit").disabled = !data.models.length;
    });
  }

  function moveAlias(ev) {
    ev.preventDefault();
    var name = $("alias-model").value, alias = $("alias-name").value.trim(), version = Number($("alias-version").value);
    var msg = $("alias-message");
    msg.className = "";
    msg.textContent = "…";
    return NB.api("models/" + NB.enc(name) + "/aliases", { alias: alias, version: version }).then(function (res) {
      msg.className = "ok";
      msg.textContent = res.name + "@" + res.alias + " → v" + res.version;
      return loadModels();
    }, function (err) { msg.className = "error"; msg.textContent = err.message; });
  }

  // ---------------------------------------------------------------- deployments and drift
  NB.stopButton = function (d, after) {
    var stop = el("button", { type: "button", "data-testid": "deployment-stop", text: "Stop" });
    stop.disabled = ["running", "starting", "not answering"].indexOf(d.status) < 0;
    stop.addEventListener("click", function () {
      stop.disabled = true;
      stop.textContent = "Stopping…";
      NB.api("deployments/" + NB.enc(d.name) + "/stop", {}).then(after, function (err) {
        NB.showError($("error"), err);
        stop.textContent = "Stop";
        stop.disabled = false;
      });
    });
    return stop;
  };

  function loadDeployments() {
    return NB.api("deployments").then(function (data) {
      var body = $("deployments-body");
      clear(body);
      data.deployments.forEach(function (d) {
        body.appendChild(el("tr", { "data-testid": "deployment-row", "data-deployment-name": d.name }, [
          el("td", { "data-testid": "deployment-name" }, [NB.link(d.name, ["deployment", d.name])]),
          el("td", { text: d.model }),
          el("td", {}, [d.version ? NB.link("v" + d.version, ["model", String(d.model).split(/[@/]/)[0], d.version]) : ""]),
          el("td", { "data-testid": "deployment-status", "class": "status-" + String(d.status).replace(/ /g, "-"), text: d.status }),
          el("td", { "class": "kv", "data-testid": "deployment-url", text: d.url ? d.url : "—" }),
          el("td", { "class": "num", text: text(d.requests) }),
          el("td", {}, [NB.timeEl(d.started)]),
          el("td", {}, [NB.stopButton(d, loadDeployments)])
        ]));
      });
    });
  }

  function loadDrift() {
    return NB.api("drift").then(function (data) {
      var body = $("drift-body");
      clear(body);
      data.reports.forEach(function (r) {
        var link = el("a", { "data-testid": "drift-link", target: "_blank", rel: "noopener noreferrer",
          href: NB.API + "drift/" + NB.enc(r.id) + "/html", text: "open report" });
        var name = r.model ? String(r.model).split(/[@/]/)[0] : null;
        body.appendChild(el("tr", { "data-testid": "drift-row", "data-drift-id": r.id }, [
          el("td", {}, [NB.timeEl(r.time)]),
          el("td", {}, [r.version && name ? NB.link(text(r.model) + " (v" + r.version + ")", ["drift", name, r.version], null, "drift-timeline-link") : text(r.model)]),
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
    hint.textContent = s.hint || (s.kernels && s.kernels !== s.path ? "shown instead of the kernels' store " + s.kernels : "");
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

  NB.loadStore = function () {
    return NB.api("store").then(showStore, function (err) { NB.showError($("error"), err); });
  };

  NB.refreshHome = function () {
    function failed(err) { NB.showError($("error"), err); }
    NB.loadStore();
    loadExperiments().then(loadRuns).catch(failed);
    loadModels().catch(failed);
    loadDeployments().catch(failed);
    loadDrift().catch(failed);
    state.loaded = true;
  };

  // #/ and #/runs?experiment=..&filter=..&order_by=..
  NB.views.home = function (args, query) {
    var wanted = query.experiment || null;
    var changed = (wanted && wanted !== state.experiment) || (query.filter || "") !== $("runs-filter").value.trim() ||
      (query.order_by || "") !== $("runs-order-by").value.trim();
    if (args[0] === "runs") {
      $("runs-filter").value = query.filter || "";
      $("runs-order-by").value = query.order_by || "";
      if (wanted) { state.experiment = wanted; }
    }
    if (!state.loaded) { NB.refreshHome(); } else if (args[0] === "runs" && changed) {
      state.offset = 0;
      loadExperiments().then(loadRuns);
    }
  };

  $("store-select").addEventListener("change", function () {
    NB.api("store", { path: this.value }).then(NB.refreshHome, function (err) { NB.showError($("error"), err); });
  });
  $("experiment-select").addEventListener("change", function () {
    state.experiment = this.value;
    state.offset = 0;
    state.selected = [];
    toggle(null, false);
    loadRuns();
  });
  $("runs-form").addEventListener("submit", function (ev) { ev.preventDefault(); state.offset = 0; loadRuns(); });
  $("runs-next").addEventListener("click", function () {
    if (state.nextOffset !== null) { state.offset = state.nextOffset; loadRuns(); }
  });
  $("runs-prev").addEventListener("click", function () { state.offset = Math.max(0, state.offset - PAGE_SIZE); loadRuns(); });
  $("compare-selected").addEventListener("click", function () {
    location.hash = NB.href(["compare"], { runs: state.selected.join(",") });
  });
  $("alias-form").addEventListener("submit", moveAlias);
}());
