// nbmlops dashboard, shared helpers: DOM building, the JSON API, numbers and times as people read them.
// Plain DOM, no libraries. Every stored string reaches the page through textContent or setAttribute,
// never as HTML.
(function () {
  "use strict";

  var NB = window.NB = window.NB || { views: {} };
  var BASE = document.body.getAttribute("data-base-url") || "/";
  NB.API = BASE + "nbmlops/api/";
  NB.SVG = "http://www.w3.org/2000/svg";

  NB.$ = function (id) { return document.getElementById(id); };

  NB.el = function (tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; } else if (k === "style") {
        node.style.cssText = attrs[k];  // CSSOM, which the page's CSP (style-src 'self') allows
      } else if (attrs[k] !== null && attrs[k] !== undefined) {
        node.setAttribute(k, attrs[k]);
      }
    });
    (children || []).forEach(function (c) {
      if (c !== null && c !== undefined) { node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); }
    });
    return node;
  };

  NB.svgEl = function (tag, attrs, textContent) {
    var n = document.createElementNS(NB.SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { n.setAttribute(k, String(attrs[k])); });
    if (textContent !== undefined) { n.textContent = textContent; }
    return n;
  };

  NB.clear = function (node) { while (node.firstChild) { node.removeChild(node.firstChild); } };

  NB.text = function (value) {
    if (value === null || value === undefined) { return ""; }
    return typeof value === "object" ? JSON.stringify(value) : String(value);
  };

  NB.fmtNumber = function (v) {
    if (typeof v !== "number") { return NB.text(v); }
    if (Number.isInteger(v)) { return String(v); }
    var a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) { return v.toExponential(3); }
    return String(Number(v.toPrecision(4)));
  };

  NB.fmtTime = function (ms) { return ms ? new Date(ms).toLocaleString() : ""; };

  // "just now", "5 minutes ago", "yesterday", "3 days ago", "2 months ago" (and "in 3 hours")
  NB.relTime = function (ms, now) {
    if (!ms) { return ""; }
    var s = ((now || Date.now()) - ms) / 1000, future = s < 0;
    s = Math.abs(s);
    var words;
    if (s < 45) { return "just now"; }
    if (s < 90) { words = "a minute"; }
    else if (s < 45 * 60) { words = Math.round(s / 60) + " minutes"; }
    else if (s < 90 * 60) { words = "an hour"; }
    else if (s < 22 * 3600) { words = Math.round(s / 3600) + " hours"; }
    else if (s < 36 * 3600) { return future ? "tomorrow" : "yesterday"; }
    else if (s < 26 * 86400) { words = Math.round(s / 86400) + " days"; }
    else if (s < 320 * 86400) { words = Math.max(1, Math.round(s / (30.44 * 86400))) + " months"; }
    else { words = Math.max(1, Math.round(s / (365.25 * 86400))) + " years"; }
    words = words.replace(/^1 (\w+)s$/, "a $1");
    return future ? "in " + words : words + " ago";
  };

  // a <time> that reads "3 days ago" and shows the exact time on hover
  NB.timeEl = function (ms, testid) {
    return NB.el("time", { "data-testid": testid || null, datetime: ms ? new Date(ms).toISOString() : null,
      title: NB.fmtTime(ms), text: NB.relTime(ms) });
  };

  NB.fmtDuration = function (s) {
    if (s === null || s === undefined) { return ""; }
    if (s < 1) { return Math.round(s * 1000) + " ms"; }
    if (s < 60) { return s.toFixed(1) + " s"; }
    if (s < 3600) { return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s"; }
    if (s < 86400) { return Math.floor(s / 3600) + " h " + Math.round((s % 3600) / 60) + " min"; }
    return Math.floor(s / 86400) + " d " + Math.round((s % 86400) / 3600) + " h";
  };

  NB.fmtBytes = function (n) {
    if (n === null || n === undefined) { return ""; }
    var units = ["B", "KB", "MB", "GB"], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  };

  function cookie(name) {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === name) { return decodeURIComponent(parts[i].slice(eq + 1)); }
    }
    return null;
  }

  // GET or POST JSON; rejects with the server's {"error": ...} message.
  NB.api = function (path, body) {
    var opts = { credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      opts.method = "POST";
      opts.headers["Content-Type"] = "application/json";
      var xsrf = cookie("_xsrf");  // as JupyterLab does: the _xsrf cookie back as a header
      if (xsrf) { opts.headers["X-XSRFToken"] = xsrf; }
      opts.body = JSON.stringify(body);
    }
    return fetch(NB.API + path, opts).then(function (resp) {
      return resp.text().then(function (raw) {
        var payload = null;
        try { payload = raw ? JSON.parse(raw) : null; } catch (e) { payload = null; }
        if (!resp.ok) {
          throw new Error(payload && payload.error ? payload.error : resp.status + " " + resp.statusText);
        }
        return payload;
      });
    });
  };

  NB.enc = encodeURIComponent;

  NB.showError = function (box, err) {
    if (!err) { box.hidden = true; box.textContent = ""; return; }
    box.hidden = false;
    box.textContent = err.message || String(err);
  };

  // hash routes: #/run/<id>, #/compare?runs=a,b, ... (app.js reads them)
  NB.href = function (parts, query) {
    var h = "#/" + parts.map(function (p) { return encodeURIComponent(String(p)); }).join("/");
    var q = Object.keys(query || {}).filter(function (k) { return query[k] !== "" && query[k] !== null && query[k] !== undefined; })
      .map(function (k) { return encodeURIComponent(k) + "=" + encodeURIComponent(query[k]); });
    return h + (q.length ? "?" + q.join("&") : "");
  };

  NB.link = function (label, parts, query, testid) {
    return NB.el("a", { href: NB.href(parts, query), "data-testid": testid || null, text: label });
  };

  // a definition list from [label, value or node, testid] rows (empty values left out)
  NB.fields = function (rows) {
    var dl = NB.el("dl");
    rows.forEach(function (r) {
      if (r[1] === null || r[1] === undefined || r[1] === "") { return; }
      dl.appendChild(NB.el("dt", { text: r[0] }));
      var dd = NB.el("dd", { "data-testid": r[2] || null });
      dd.appendChild(typeof r[1] === "object" ? r[1] : document.createTextNode(String(r[1])));
      dl.appendChild(dd);
    });
    return dl;
  };

  // key=value pairs folded under a summary line ("7 constant params")
  NB.folded = function (label, obj, testid) {
    var keys = Object.keys(obj || {}).sort();
    var box = NB.el("details", { "class": "folded", "data-testid": testid || null },
      [NB.el("summary", { text: keys.length + " " + label })]);
    var list = NB.el("div", { "class": "kv" });
    keys.forEach(function (k) { list.appendChild(NB.el("span", { "class": "pair", text: k + "=" + NB.text(obj[k]) })); });
    box.appendChild(list);
    return box;
  };

  NB.section = function (title, testid) {
    var s = NB.el("section", { "data-testid": testid || null }, [NB.el("h2", { text: title })]);
    return s;
  };

  NB.statusEl = function (status, testid) {
    return NB.el("span", { "class": "status status-" + String(status).replace(/ /g, "-"), "data-testid": testid || null,
      text: NB.text(status) });
  };
}());
