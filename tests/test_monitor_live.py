"""The live monitor of a model server (``serve(..., monitor=True)``): windows of served traffic judged
off the request path against the version's reference, as gauges on /metrics, JSON on /monitor and
windows in drift_history; the limits (small windows, no labels, no predict_proba, new categories,
empty columns, a monitor behind) in this process on the real classes; a real Prometheus firing the
shipped drift alert (slow)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

import nbmlops
from nbmlops import InvalidInput
from nbmlops.monitoring.log import get_summary
from nbmlops.serving.metrics import Metrics
from nbmlops.serving.model import ServedModel
from nbmlops.serving.monitor import Monitor

import test_prometheus
from test_prometheus import needs_promtool, samples
from test_serving import call

prometheus = test_prometheus.prometheus  # its fixture: Debian's Prometheus scraping this module's ``live``

WINDOW, EVERY = 300, 150


def _rows(n: int, rng, shift: float = 0.0, near: bool = False) -> pd.DataFrame:
    """Inputs of the labelling function ``a + b > 0``: ``shift`` moves ``a``; ``near`` puts the rows
    close to the decision boundary (where the model is least sure), the labelling function unchanged."""
    a = rng.normal(shift, 1.0, n)
    b = -a + rng.normal(0, 0.35, n) if near else rng.normal(0, 1.0, n)
    return pd.DataFrame({"a": a, "b": b})


def _labels(X: pd.DataFrame, rng) -> np.ndarray:
    return ((X.a + X.b + rng.normal(0, 0.3, len(X))) > 0).astype(int).to_numpy()


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """'live': a logistic regression on (a, b), registered with a labelled reference of 1,000 rows (the
    default tests are then K-S's; above 1,000 Evidently's normed Wasserstein at 0.1 flags windows of a
    few hundred rows by chance)."""
    root = tmp_path_factory.mktemp("monitor") / ".nbmlops"
    nbmlops.set_store(root)
    rng = np.random.default_rng(0)
    X = _rows(1000, rng)
    y = _labels(X, rng)
    nbmlops.register_model(LogisticRegression().fit(X, y), "live", reference=(X, y))
    yield root
    nbmlops.set_store(None)


@pytest.fixture
def model(registered):
    """The store of 'live', current for this test (tests in between use stores of their own)."""
    nbmlops.set_store(registered)
    yield registered


def _serve(name: str, window: int, every: int):
    root = nbmlops.store.current_store().root
    dep = nbmlops.serve("live/1", name=name, monitor=True, monitor_window=window, monitor_every=every,
                        monitor_cpu=0.5, log_requests=False)  # windows less far apart than the default allows
    try:
        yield dep
    finally:
        nbmlops.set_store(root)
        dep.stop()


@pytest.fixture(scope="module")
def served_live(registered):
    nbmlops.set_store(registered)
    yield from _serve("live", WINDOW, EVERY)


@pytest.fixture
def monitored(served_live, model):
    yield served_live


def _send(dep, X: pd.DataFrame, rng, label: bool = True) -> None:
    """``X`` in requests of 50 rows, each labelled through /feedback when ``label``."""
    for i in range(0, len(X), 50):
        part = X.iloc[i:i + 50]
        answer = dep.predict(part)
        if label:
            dep.feedback(answer["request_id"], labels=_labels(part, rng).tolist())


def _gauge(dep, name: str) -> float | None:
    text = call(dep, "GET", "/metrics")[1]
    got = samples(text, name).get((("model_name", "live"), ("model_version", "1")))
    return got


def _send_and_wait(dep, X: pd.DataFrame, rng, label: bool = True, timeout: float = 30.0, version: str = "1") -> dict:
    """Send ``X`` (a multiple of the monitor's ``every`` rows), then wait until a window holding its last
    row was judged (off the request path, within the monitor's CPU budget); returns that window."""
    _send(dep, X.iloc[:-50], rng, label)
    sent = time.time_ns() // 1_000_000
    _send(dep, X.iloc[-50:], rng, label)
    deadline = time.time() + timeout
    while time.time() < deadline:
        latest = call(dep, "GET", "/monitor")[1]["versions"].get(version, {})
        if (latest.get("last") or 0) >= sent and "drift_share" in latest:
            return latest
        time.sleep(0.1)
    raise AssertionError(f"no window with the rows sent was judged within {timeout} s: {latest}")


# --- a real server -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def phases(served_live, registered):
    """Three windows of traffic, each labelled through /feedback: calm, shifted (a moves by 2.5), then
    near the decision boundary (the labelling function unchanged); the /metrics text after each."""
    nbmlops.set_store(registered)
    dep, rng, seen = served_live, np.random.default_rng(1), {}
    for name, rows in (("calm", _rows(WINDOW, rng)), ("shifted", _rows(WINDOW, rng, shift=2.5)),
                       ("near", _rows(WINDOW, rng, near=True))):
        _send_and_wait(dep, rows, rng)
        seen[name] = call(dep, "GET", "/metrics")[1]
    return seen


def _value(text: str, name: str) -> float:
    return samples(text, name)[(("model_name", "live"), ("model_version", "1"))]


@pytest.mark.process
def test_drifted_traffic_raises_drift_share_and_near_boundary_traffic_lowers_estimated_accuracy(phases):
    calm, shifted, near = phases["calm"], phases["shifted"], phases["near"]
    assert _value(calm, "model_drift_share") < 0.5
    estimated = _value(calm, "model_estimated_accuracy")
    assert estimated > 0.85, estimated
    assert _value(calm, "model_realized_window_labels") > 0
    assert abs(_value(calm, "model_realized_accuracy") - estimated) < 0.08

    assert _value(shifted, "model_drift_share") >= 0.5  # a and the prediction drift
    drifted = samples(shifted, "model_feature_drift")
    assert drifted[(("feature", "a"), ("model_name", "live"), ("model_version", "1"))] == 1.0
    assert set(k[0][1] for k in drifted) == {"a", "b"}  # one series per feature of the model, no more
    assert _value(shifted, "model_window_out_of_range_values") > 0

    lower, realized = _value(near, "model_estimated_accuracy"), _value(near, "model_realized_accuracy")
    assert lower < estimated - 0.1, (estimated, lower)
    assert realized < estimated - 0.1 and abs(realized - lower) < 0.12, (lower, realized)


@pytest.mark.process
def test_monitor_json_and_windows_in_drift_history(monitored, phases):
    dep = monitored
    status, answer, _ = call(dep, "GET", "/monitor")
    assert status == 200 and answer["window"] == WINDOW and answer["every"] == EVERY
    assert dep.monitor()["versions"].keys() == answer["versions"].keys() == {"1"}
    latest = answer["versions"]["1"]
    assert latest["rows"] == WINDOW and latest["estimate_method"] == "cbpe" and latest["windows"] >= 1
    assert set(latest["features"]) == {"a", "b"} and latest["features"]["a"]["stattest"]
    assert {"missing_total", "new_categories_total", "out_of_range_total"} <= set(latest["quality"])
    assert {"accuracy", "roc_auc", "f1"} <= set(latest["estimated"]) and latest["realized"]["labels"] > 0
    assert latest["first"] <= latest["last"] and latest["judge_s"] > 0

    # recorded: the first window, then each change of verdict (calm -> drifted -> calm), at most one a minute else
    history = nbmlops.drift_history("live")
    assert 3 <= len(history) <= _gauge(dep, "model_monitor_windows_total") and set(history.version) == {1}
    assert history.current.str.startswith("serving:live").all()
    assert (history.deployment == "live").all() and history.drift_share.between(0, 1).all()
    assert history.estimated_accuracy.between(0, 1).all()  # the live windows' numbers, as columns
    assert list(history.dataset_drift[::-1][:3]) == [False, True, False]  # oldest first
    doc = get_summary(history.id[0])
    assert doc["window"]["rows"] == WINDOW and doc["window"]["deployment"] == "live"
    assert {"accuracy", "roc_auc", "f1"} <= set(doc["window"]["estimated"]) and doc["summary"]["n_columns"] == 2


@pytest.mark.process
@needs_promtool
def test_the_monitor_alert_rules_take_their_thresholds_and_pass_promtool(monitored, tmp_path):
    import subprocess

    from test_prometheus import PROMTOOL

    dep = monitored
    dep.prometheus_config(tmp_path, drift_share=0.3, drift_windows=2, accuracy_floor=0.8, estimate_gap=0.05)
    rules = (tmp_path / "nbmlops-live.rules.yml").read_text()
    assert 'model_drift_share{job="nbmlops-live"} >= 0.3 and model_drifted_windows_in_a_row{job="nbmlops-live"} >= 2' \
        in rules and 'model_estimated_accuracy{job="nbmlops-live"} < 0.8' in rules and ") > 0.05" in rules
    done = subprocess.run([PROMTOOL, "check", "rules", str(tmp_path / "nbmlops-live.rules.yml")], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done
    with pytest.raises(InvalidInput, match="drift_windows must be a number of windows"):
        dep.prometheus_config(tmp_path / "bad", drift_windows=0)
    with pytest.raises(InvalidInput, match="accuracy_floor must be a positive number below 1"):
        dep.prometheus_config(tmp_path / "bad", accuracy_floor=1.5)


@pytest.mark.process
def test_an_alias_switch_gives_the_new_version_windows_of_its_own(store):
    rng = np.random.default_rng(10)
    X = _rows(1000, rng)
    y = _labels(X, rng)
    for c in (1.0, 0.01):
        nbmlops.register_model(LogisticRegression(C=c).fit(X, y), "moving", reference=(X, y))
    nbmlops.set_alias("moving", "prod", 1)
    dep = nbmlops.serve("moving@prod", monitor=True, monitor_window=100, monitor_every=100, monitor_cpu=0.5,
                        log_requests=False)
    try:
        first = _send_and_wait(dep, _rows(100, rng), rng, label=False)
        nbmlops.set_alias("moving", "prod", 2)
        deadline = time.time() + 20
        while dep.predict(_rows(1, rng))["version"] != 2 and time.time() < deadline:
            time.sleep(0.2)
        second = _send_and_wait(dep, _rows(100, rng), rng, label=False, version="2")
        versions = dep.monitor()["versions"]
        assert second["version"] == 2 and second["rows"] == 100  # none of version 1's rows in it
        assert versions["1"]["first"] == first["first"]  # the retired version keeps its last window
    finally:
        dep.stop()


@pytest.mark.process
def test_monitor_route_needs_a_monitor_and_the_token(model):
    dep = nbmlops.serve("live/1", name="plain", token="prediction-token-1", log_requests=False)
    try:
        assert call(dep, "GET", "/monitor")[0] == 401
        status, answer, _ = call(dep, "GET", "/monitor", headers={"Authorization": "Bearer prediction-token-1"})
        assert status == 404 and "no live monitor" in answer["error"]
    finally:
        dep.stop()


# --- bad configurations: refused before any process starts ---------------------------------------------------


@pytest.mark.parametrize("options, message", [
    ({"monitor_window": 0}, "monitor_window must be a number of rows"),
    ({"monitor_window": "1w"}, "monitor_window takes rows"),
    ({"monitor_every": 0}, "monitor_every must be a number of rows"),
    ({"monitor_window": 100, "monitor_every": 500}, "larger than monitor_window"),
    ({"monitor_cpu": 0}, "monitor_cpu is the share of the server.s CPU"),
    ({"monitor": False, "monitor_window": 100}, "need monitor=True"),
    ({"monitor": False, "monitor_stattest": "ks"}, "need monitor=True"),
    ({"monitor_stattest": "t-test"}, "monitor_stattest: unknown stattest 't-test'; choose one of: ks, chisquare"),
    ({"monitor_stattest": 3}, "monitor_stattest is the name of a drift test"),
    ({"monitor_window": 300}, None),  # every defaults to the window's rows: accepted (no 'larger than' refusal)
])
def test_bad_monitor_configuration_is_refused_with_one_line(model, options, message):
    if message is None:
        from nbmlops.serving.settings import monitor_settings

        assert monitor_settings(True, 300, None, None, None) == {"window": 300, "every": 300, "cpu": 0.02}
        assert Monitor(Metrics("live"), "1h").every == 1000 and Monitor(Metrics("live"), 300).every == 300
        return
    with pytest.raises(InvalidInput, match=message) as info:
        nbmlops.serve("live/1", name="bad", **{"monitor": True, **options})
    assert "\n" not in str(info.value)
    assert nbmlops.list_deployments(all=True).query("name == 'bad'").empty


def test_a_version_without_reference_is_refused(store):
    X = np.random.default_rng(0).normal(size=(200, 2))
    nbmlops.register_model(LogisticRegression().fit(X, X[:, 0] > 0), "noref")
    with pytest.raises(InvalidInput, match="noref/1 has no monitoring reference"):
        nbmlops.serve("noref/1", monitor=True)


@pytest.mark.process
def test_serve_magic_refuses_a_bad_window_in_one_line_and_serves_a_good_one(ip, capsys):
    from IPython.core.error import UsageError

    ip.run_cell("""
from sklearn.linear_model import LogisticRegression
import numpy as np
X = np.random.default_rng(0).normal(size=(200, 2))
clf = LogisticRegression().fit(X, X[:, 0] > 0)
import nbmlops
nbmlops.register_model(clf, "tiny", reference=(X, X[:, 0] > 0))
""")
    with pytest.raises(UsageError, match="monitor_window takes rows") as info:
        ip.run_line_magic("serve", "tiny --monitor --window soon")
    assert "\n" not in str(info.value)
    with pytest.raises(UsageError, match="need monitor=True"):
        ip.run_line_magic("serve", "tiny --every 10")
    with pytest.raises(UsageError, match="monitor_stattest: unknown stattest 'kss'") as info:
        ip.run_line_magic("serve", "tiny --monitor --stattest kss")
    assert "\n" not in str(info.value)
    assert nbmlops.list_deployments(all=True).empty
    ip.run_line_magic("serve", "tiny --monitor --window 1h --every 100 --stattest PSI --no-log")
    dep = nbmlops.get_deployment("tiny")
    try:
        assert {k: dep.monitor()[k] for k in ("window", "every", "max_rows")} == \
            {"window": "1h", "every": 100, "max_rows": 100_000}
        assert dep.doc["settings"]["monitor"] == {"window": "1h", "every": 100, "cpu": 0.02, "stattest": "psi"}
    finally:
        dep.stop()


# --- the limits, on the real classes in this process ---------------------------------------------------------


def _judge(uri: str, frame: pd.DataFrame, window: int = 200, every: int = 10_000) -> dict:
    """Feed ``frame`` to a Monitor of ``uri`` as served requests would, then judge its window here."""
    served = ServedModel(uri)
    monitor = Monitor(Metrics(served.name), window, every, "test", record=False)
    rows = frame.to_numpy(dtype=object).tolist()
    out = served.predict_frame(frame) if served.schema.numeric is None or all(served.schema.numeric) else \
        served.predict(rows)
    monitor.add(served, rows, out, "r1")
    return monitor.judge(monitor.versions[served.version])


def test_window_smaller_than_the_tests_need_is_not_computed(model):
    summary = _judge("live/1", _rows(10, np.random.default_rng(2)))
    assert summary["rows"] == 10 and "smaller than the 30 rows" in summary["skipped"]
    assert "drift_share" not in summary and "estimated" not in summary


def test_window_under_the_estimators_minimum_says_why(model):
    summary = _judge("live/1", _rows(60, np.random.default_rng(2)))
    assert summary["estimated"] == {} and "too small to estimate performance" in summary["unavailable"]["performance"]
    assert summary["drift_share"] is not None


def test_reference_without_labels_and_model_without_predict_proba_say_which_estimate_is_missing(store):
    rng = np.random.default_rng(3)
    X = _rows(500, rng)
    y = _labels(X, rng)
    nbmlops.register_model(LogisticRegression().fit(X, y), "nolabels", reference=X)
    summary = _judge("nolabels/1", _rows(200, rng))
    assert summary["estimated"] == {} and "reference has no labels" in summary["unavailable"]["performance"]
    nbmlops.register_model(LinearSVC().fit(X, y), "svc", reference=(X, y))
    summary = _judge("svc/1", _rows(200, rng))
    assert "no predict_proba: no CBPE" in summary["unavailable"]["performance"]
    assert summary["drift_share"] is not None and summary["realized"] == {"labels": 0}


def test_new_categories_and_an_all_missing_column_are_counted(store):
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(4)
    X = pd.DataFrame({"city": rng.choice(["paris", "oslo"], 600), "x": rng.normal(size=600)})
    y = (X.x > 0).astype(int)
    clf = make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["city"]),
                                                remainder="passthrough"), HistGradientBoostingClassifier(max_iter=20)).fit(X, y)
    nbmlops.register_model(clf, "cities", reference=(X, y))
    window = pd.DataFrame({"city": rng.choice(["paris", "lima"], 200), "x": [np.nan] * 200})
    summary = _judge("cities/1", window)
    quality = summary["quality"]
    assert quality["new_categories"]["city"] == (window.city == "lima").sum()
    assert quality["all_missing"] == ["x"] and quality["missing"]["x"] == 200
    assert "x" in summary["not_tested"] and "missing" in summary["not_tested"]["x"]
    assert summary["features"]["city"]["drifted"] is True


def test_versions_of_an_ab_split_have_windows_and_gauges_of_their_own(model):
    rng = np.random.default_rng(8)
    X = _rows(1000, rng)
    nbmlops.register_model(LogisticRegression(C=0.01).fit(X, _labels(X, rng)), "live", reference=(X, _labels(X, rng)))
    metrics = Metrics("live")
    monitor = Monitor(metrics, 200, 10_000, record=False)
    for version, shift in ((1, 0.0), (2, 3.0)):
        served, rows = ServedModel(f"live/{version}"), _rows(200, rng, shift=shift)
        monitor.add(served, rows.to_numpy().tolist(), served.predict_frame(rows), f"r{version}")
    calm, moved = (monitor.judge(monitor.versions[v]) for v in (1, 2))
    assert calm["version"] == 1 and moved["version"] == 2 and calm["rows"] == moved["rows"] == 200
    assert calm["drift_share"] < moved["drift_share"] and moved["features"]["a"]["drifted"]
    shares = samples(metrics.render().decode(), "model_drift_share")
    assert shares == {(("model_name", "live"), ("model_version", "1")): calm["drift_share"],
                      (("model_name", "live"), ("model_version", "2")): moved["drift_share"]}


def test_a_regressor_gets_estimated_mae_beside_the_realized_one(store):
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(9)
    X = _rows(600, rng)
    y = 2 * X.a - X.b + rng.normal(0, 0.5, 600)
    nbmlops.register_model(LinearRegression().fit(X, y), "price", reference=(X, y))
    served, metrics = ServedModel("price/1"), Metrics("price")
    monitor = Monitor(metrics, 200, 10_000, record=False)
    window = _rows(200, rng)
    out = served.predict_frame(window)
    monitor.add(served, window.to_numpy().tolist(), out, "r")
    truth = (2 * window.a - window.b + rng.normal(0, 0.5, 200)).tolist()
    monitor.label("r", 1, truth)
    summary = monitor.judge(monitor.versions[1])
    assert summary["estimate_method"] == "dle" and set(summary["estimated"]) == {"mae", "rmse"}
    assert summary["realized"]["labels"] == 200 and abs(summary["estimated"]["mae"] - summary["realized"]["mae"]) < 0.1
    text = metrics.render().decode()
    assert samples(text, "model_estimated_mae")[(("model_name", "price"), ("model_version", "1"))] > 0
    assert not samples(text, "model_estimated_accuracy")  # no accuracy series for a regressor


@needs_promtool
def test_the_monitor_series_pass_promtool_lint(model):
    import subprocess

    from test_prometheus import PROMTOOL

    served, metrics = ServedModel("live/1"), Metrics("live")
    monitor = Monitor(metrics, 200, 10_000, record=False)
    X = _rows(200, np.random.default_rng(11))
    monitor.add(served, X.to_numpy().tolist(), served.predict_frame(X), "r")
    monitor.judge(monitor.versions[1])
    text = metrics.render()
    assert b"model_estimated_accuracy{" in text and b"model_feature_drift{" in text
    lint = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert lint.returncode == 0 and lint.stdout == lint.stderr == b"", lint


def test_a_window_is_cut_to_its_rows_with_each_rows_label_from_requests_of_any_size(model):
    served = ServedModel("live/1")
    monitor = Monitor(Metrics("live"), 100, 10_000, record=False)
    X = _rows(150, np.random.default_rng(12))
    for i in range(0, 150, 30):  # five requests of 30 rows: the window holds the last 100 rows
        part = X.iloc[i:i + 30]
        monitor.add(served, part.to_numpy().tolist(), served.predict_frame(part), f"r{i}")
    state = monitor.versions[1]
    assert (state.held, len(state.buf)) == (120, 4)  # the oldest request kept reaches 20 rows back beyond it
    monitor.label("r30", 1, ["x"] * 30)   # 20 of its rows are in the window
    monitor.label("r120", 1, list(range(30)))
    rows, predictions, probas, labels, first, last = monitor._snapshot(state)
    assert rows == X.iloc[50:].to_numpy().tolist() and len(predictions) == len(probas) == 100
    assert labels == ["x"] * 10 + [None] * 60 + list(range(30))
    summary = monitor.judge(state)
    assert summary["rows"] == 100 and summary["realized"]["labels"] == 40


def test_monitor_stattest_tests_every_column_it_applies_to_and_the_default_is_sized_by_the_window(store):
    """Against a 3,000-row reference ``drift_report`` gives normed Wasserstein (by the reference's
    size); a 200-row window gets K-S (by its own), or the test named."""
    rng = np.random.default_rng(13)
    X = _rows(3000, rng)
    X["plan"] = rng.choice(["a", "b", "c"], 3000)
    y = _labels(X, rng)
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    clf = make_pipeline(make_column_transformer((OneHotEncoder(), ["plan"]), remainder="passthrough"),
                        LogisticRegression()).fit(X, y)
    nbmlops.register_model(clf, "sized", reference=(X, y))
    window = _rows(200, rng)
    window["plan"] = rng.choice(["a", "b", "c"], 200)
    served = ServedModel("sized/1")
    rows = window.to_numpy(dtype=object).tolist()
    tests = {}
    for stattest in (None, "psi", "wasserstein"):
        monitor = Monitor(Metrics("sized"), 200, 10_000, record=False, stattest=stattest)
        monitor.add(served, rows, served.predict(rows), "r")
        summary = monitor.judge(monitor.versions[1])
        tests[stattest] = {c: f["stattest"] for c, f in summary["features"].items()}
    assert tests == {None: {"a": "ks", "b": "ks", "plan": "chisquare"},
                     "psi": {"a": "psi", "b": "psi", "plan": "psi"},
                     "wasserstein": {"a": "wasserstein", "b": "wasserstein", "plan": "chisquare"}}
    reference = nbmlops.get_model_version("sized/1").reference()
    assert nbmlops.drift_report(reference.drop(columns="target"), window, performance=False)["a"].stattest == \
        "wasserstein"


@pytest.mark.parametrize("server, seconds", [("quiet", 1.0), ("a whole core", 0.1)])
def test_the_budget_paces_windows_by_the_servers_cpu_with_a_quiet_servers_floor(model, monkeypatch, server, seconds):
    """A window of 50 ms of CPU at a budget of half the server's CPU: a quiet server is counted as using a
    tenth of a core (the window earned in a second), a server using a whole core earns it ten times sooner.
    The server's CPU clock is set here: this test's process is neither quiet nor busy enough to rely on."""
    from nbmlops.serving import monitor as live_monitor

    monkeypatch.setattr(live_monitor, "_others_cpu", (lambda: 0.0) if server == "quiet" else time.monotonic)
    monitor = Monitor(Metrics("live"), 100, cpu_share=0.5, record=False)
    started = time.monotonic()
    monitor._pace(0.05, started, live_monitor._others_cpu())
    assert 0.9 * seconds < time.monotonic() - started < seconds + 2


def test_a_time_window_keeps_the_rows_of_its_duration_only(model):
    served = ServedModel("live/1")
    monitor = Monitor(Metrics("live"), "1s", 10_000, record=False)
    rng = np.random.default_rng(7)
    for n in (200, 40):
        X = _rows(n, rng)
        monitor.add(served, X.to_numpy().tolist(), served.predict_frame(X), f"r{n}")
        if n == 200:
            time.sleep(1.2)
    summary = monitor.judge(monitor.versions[1])
    assert summary["rows"] == 40 and summary["window"] == "1s" and summary["drift_share"] is not None


def test_a_window_due_while_the_last_one_waits_is_dropped_and_counted(model):
    served = ServedModel("live/1")
    metrics = Metrics("live")
    monitor = Monitor(metrics, 100, 50, record=False)  # its thread not started: the first due window waits
    X = _rows(50, np.random.default_rng(5))
    out = served.predict_frame(X)
    rows = X.to_numpy().tolist()
    for _ in range(4):
        monitor.add(served, rows, out, "r")
    state = monitor.versions[1]
    assert (state.held, len(state.buf)) == (100, 2)  # bounded by the window: the last two requests of 50 rows
    dropped = samples(metrics.render().decode(), "model_monitor_windows_dropped_total")
    assert dropped == {(("model_name", "live"), ("model_version", "1")): 3.0}


# --- a real Prometheus ---------------------------------------------------------------------------------------


@pytest.fixture
def live(model):
    """The deployment the imported ``prometheus`` fixture scrapes: windows of 100 rows every 100."""
    yield from _serve("prom-live", 100, 100)


@pytest.mark.slow
@pytest.mark.process
@needs_promtool
def test_real_prometheus_fires_the_shipped_drift_alert(prometheus):
    dep, prom = prometheus
    rng = np.random.default_rng(6)
    job = 'job="nbmlops-prom-live"'

    def alerts() -> dict:
        return {a["labels"]["alertname"]: a["state"] for a in prom.get("/api/v1/alerts")["alerts"]}

    _send_and_wait(dep, _rows(200, rng), rng, label=False)
    assert prom.wait(lambda: prom.query(f"model_drift_share{{{job}}}"))
    assert "NbmlopsDataDrift" not in alerts()
    for _ in range(3):  # three drifted windows in a row
        _send_and_wait(dep, _rows(100, rng, shift=3.0), rng, label=False)
    assert prom.wait(lambda: alerts().get("NbmlopsDataDrift") == "firing", timeout=20), alerts()
    fired = prom.query(f'ALERTS{{alertname="NbmlopsDataDrift",alertstate="firing",{job}}}')
    assert fired and fired[0]["metric"]["model_version"] == "1"
