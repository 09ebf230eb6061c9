// nbmlops dashboard, a deployment (#/deployment/<name>): live request rate, p50/p99 latency and accuracy,
// read every 2 s from the server's /metrics (the extension asks it with the deployment's token), and the
// A/B weights. A stopped deployment shows no URL and no live numbers.
(function () {
  "use strict";

  var NB = window.NB, el = NB.el, text = NB.text;
  var EVERY = 2000, KEEP = 150;  // 5 minutes of samples

  // the q quantile of cumulative buckets [[le, count]], linear within a bucket (Prometheus' histogram_quantile)
  function quantile(q, buckets) {
    if (!buckets.length || buckets[buckets.length - 1][1] <= 0) { return null; }
    var rank = q * buckets[buckets.length - 1][1], lowB = 0, lowC = 0;
    for (var i = 0; i < buckets.length; i++) {
      var b = buckets[i][0] === "+Inf" ? Infinity : buckets[i][0], c = buckets[i][1];
      if (c >= rank) {
        if (b === Infinity) { return lowB; }
        return c === lowC ? b : lowB + (b - lowB) * (rank - lowC) / (c - lowC);
      }
      lowB = b; lowC = c;
    }
    return lowB;
  }

  function delta(now, before) {  // the buckets of the requests between two samples
    if (!before || before.length !== now.length) { return null; }
    return now.map(function (b, i) { return [b[0], b[1] - before[i][1]]; });
  }

  function tile(label, value, testid, note) {
    return el("div", { "class": "tile" }, [el("div", { "class": "tile-label", text: label }),
      el("div", { "class": "tile-value", "data-testid": testid, text: value }), note ? el("div", { "class": "muted", text: note }) : null]);
  }

  function ms(v) { return v === null || v === undefined ? "—" : NB.fmtNumber(Math.round(v * 100) / 100) + " ms"; }

  NB.views.deployment = function (args, query, view) {
    var name = args[0], samples = [], timer = null, box = el("div"), token = NB.token();
    view.appendChild(box);
    NB.onLeave(function () { if (timer) { clearTimeout(timer); } timer = null; });

    function draw(d) {
      NB.clear(box);
      var live = d.live, prev = samples.length > 1 ? samples[samples.length - 2] : null, cur = samples[samples.length - 1];
      box.appendChild(el("h2", { "class": "page-title", "data-testid": "deployment-title" }, [d.name + " ", NB.statusEl(d.status, "deployment-page-status")]));
      var model = String(d.model || "");
      box.appendChild(NB.fields([
        ["model", el("span", {}, [text(d.model_uri) + " → ", d.version ? NB.link(model + " v" + d.version, ["model", model, d.version]) : "—"])],
        ["started", el("span", {}, [NB.timeEl(d.started), " (" + NB.fmtTime(d.started) + ")"])],
        ["stopped", d.stopped ? NB.timeEl(d.stopped) : null],
        ["URL", d.url, "deployment-page-url"],
        ["follows alias", d.follows_alias ? "@" + d.follows_alias : null],
        ["batching", d.batching ? "on" : null], ["error", d.error || d.live_error]
      ]));
      if (["running", "starting", "not answering"].indexOf(d.status) >= 0) {
        box.appendChild(el("div", { "class": "bar" }, [NB.stopButton(d, function () { render(); })]));
      }
      if (!live) {
        box.appendChild(el("p", { "class": "muted", "data-testid": "deployment-not-live",
          text: d.status === "not answering" ? "the server does not answer" : "not running: no live numbers" }));
        return;
      }
      var rate = null, lately = null;
      if (prev && prev.live.requests !== null && cur.live.requests !== null && cur.t > prev.t) {
        rate = Math.max(0, (cur.live.requests - prev.live.requests) / ((cur.t - prev.t) / 1000));
        lately = delta(cur.live.latency.buckets, prev.live.latency.buckets);
      }
      var recent = lately && lately[lately.length - 1][1] > 0;
      var p50 = recent ? quantile(0.5, lately) * 1000 : live.latency.p50_ms;
      var p99 = recent ? quantile(0.99, lately) * 1000 : live.latency.p99_ms;
      cur.rate = rate; cur.p50 = p50; cur.p99 = p99;
      var tiles = el("div", { "class": "tiles" }, [
        tile("requests", live.requests === null ? "—" : NB.fmtNumber(live.requests), "deployment-requests"),
        tile("request rate", rate === null ? "…" : NB.fmtNumber(Math.round(rate * 100) / 100) + " /s", "deployment-rate"),
        tile("p50 latency", ms(p50), "deployment-p50", recent ? "last " + EVERY / 1000 + " s" : "since start"),
        tile("p99 latency", ms(p99), "deployment-p99", recent ? "last " + EVERY / 1000 + " s" : "since start")
      ]);
      Object.keys(live.accuracy).sort().forEach(function (v) {
        tiles.appendChild(tile("accuracy v" + v, NB.fmtNumber(live.accuracy[v]), "deployment-accuracy", "from feedback"));
      });
      var errors = Object.keys(live.errors).reduce(function (n, k) { return n + live.errors[k]; }, 0);
      tiles.appendChild(tile("errors", NB.fmtNumber(errors), "deployment-errors"));
      box.appendChild(tiles);
      var hist = samples.filter(function (s) { return s.rate !== null && s.rate !== undefined; });
      if (hist.length) {
        var charts = el("div", { "class": "charts" }), span = [cur.t - KEEP * EVERY, cur.t];
        var top = function (key) { return NB.niceScale(0, Math.max.apply(null, hist.map(function (s) { return s[key] || 0; })) || 1, 5); };
        charts.appendChild(NB.lineChart({ title: "requests per second", testid: "rate-chart", xTime: true, xRange: span, yScale: top("rate"),
          series: [{ label: "req/s", x: hist.map(function (s) { return s.t; }), y: hist.map(function (s) { return s.rate; }) }] }));
        charts.appendChild(NB.lineChart({ title: "latency (ms)", testid: "latency-chart", xTime: true, xRange: span, yScale: top("p99"), legend: true,
          series: [{ label: "p50", x: hist.map(function (s) { return s.t; }), y: hist.map(function (s) { return s.p50; }) },
            { label: "p99", x: hist.map(function (s) { return s.t; }), y: hist.map(function (s) { return s.p99; }) }] }));
        box.appendChild(charts);
      }
      var weights = Object.keys(live.weights).length ? live.weights : d.weights;
      if (Object.keys(weights || {}).length) {
        var total = Object.keys(weights).reduce(function (n, k) { return n + weights[k]; }, 0) || 1;
        var ab = NB.section("A/B weights", "deployment-weights");
        ab.appendChild(NB.bars(Object.keys(weights).sort().map(function (v) {
          return { label: "v" + v, value: weights[v] / total, testid: "weight-" + v };
        })));
        box.appendChild(ab);
      }
    }

    function render() {
      return NB.api("deployments/" + NB.enc(name)).then(function (d) {
        if (!NB.current(token)) { return; }  // the user went elsewhere while this was asked
        if (d.live) { samples.push({ t: d.time, live: d.live }); samples = samples.slice(-KEEP); }
        NB.crumbs([["deployments", []], [d.name]]);
        draw(d);
        if (d.live && NB.current(token)) {
          timer = setTimeout(function () { render().catch(function (err) { NB.showError(NB.$("error"), err); }); }, EVERY);
        }
      });
    }
    return render();
  };
}());
