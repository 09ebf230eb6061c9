"""A/B splits, shadows, alias following and the serving widget, on real servers over real HTTP."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import nbmlops
from nbmlops import InvalidInput

from test_serving import call


@pytest.fixture
def two_versions(store, monkeypatch):
    """Model 'm' with version 1 (always predicts the majority class) and version 2 (accurate)."""
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression

    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 4))
    y = (X[:, 0] > 0.3).astype(int)
    nbmlops.register_model(DummyClassifier(strategy="most_frequent").fit(X, y), "m", alias="production")
    nbmlops.register_model(LogisticRegression().fit(X, y), "m")
    deployments = []
    yield X, y, deployments
    for dep in deployments:
        dep.stop()


def test_ab_split_is_sticky_by_key_and_says_which_version_answered(two_versions):
    X, _, deps = two_versions
    dep = nbmlops.serve("m", ab={"m/1": 0.5, "m/2": 0.5}, name="ab")
    deps.append(dep)
    seen: dict[str, set[int]] = {}
    for k in range(40):
        for _ in range(5):
            status, out, _ = call(dep, "POST", "/predict", {"features": X[k].tolist()}, headers={"X-Request-Key": f"user-{k}"})
            assert status == 200
            seen.setdefault(f"user-{k}", set()).add(out["version"])
    assert all(len(v) == 1 for v in seen.values())  # sticky
    assert {v for vs in seen.values() for v in vs} == {1, 2}  # both versions get traffic
    body_key = {call(dep, "POST", "/predict", {"features": X[0].tolist(), "key": "user-7"})[1]["version"] for _ in range(5)}
    assert body_key == seen["user-7"]
    time.sleep(0.4)
    log = dep.requests()
    assert set(log["version"]) == {1, 2}


def test_weights_change_under_load_with_no_failed_request(two_versions):
    X, _, deps = two_versions
    dep = nbmlops.serve("m", ab={1: 1.0, 2: 0.0}, name="ab")
    deps.append(dep)
    results: list[tuple[int, int]] = []
    stop = threading.Event()

    def client():
        while not stop.is_set():
            status, out, _ = call(dep, "POST", "/predict", {"features": X[1].tolist()})
            results.append((status, out.get("version")))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.7)
    assert dep.set_weights({"m/1": 0, "m/2": 1}) == {"1": 0.0, "2": 1.0}
    changed_at = len(results)
    time.sleep(0.7)
    stop.set()
    for t in threads:
        t.join()
    assert len(results) > 50 and {s for s, _ in results} == {200}
    assert {v for _, v in results[:changed_at - 8]} == {1} and {v for _, v in results[changed_at + 8:]} == {2}
    with pytest.raises(nbmlops.ServingError, match="version 9 is not served"):
        dep.set_weights({9: 1.0})
    with pytest.raises(nbmlops.ServingError, match="non-negative"):
        dep.set_weights({1: -1})


@pytest.mark.parametrize("kind", ["Sleepy", "Broken"])
def test_a_shadow_that_sleeps_or_fails_does_not_touch_live_answers(two_versions, kind):
    import slow_models

    X, y, deps = two_versions
    nbmlops.register_model(getattr(slow_models, kind)(0.5).fit(X, y), "m")  # version 3
    dep = nbmlops.serve("m/2", shadow=3, name="shadowed")
    deps.append(dep)
    latencies = []
    for i in range(12):
        start = time.perf_counter()
        status, out, _ = call(dep, "POST", "/predict", {"features": X[i].tolist()})
        latencies.append(time.perf_counter() - start)
        assert status == 200 and out["version"] == 2
    assert max(latencies) < 0.4, latencies  # never waits for the 0.5 s shadow
    time.sleep(1.5)
    shadow = [r for r in nbmlops.serving.reqlog.read_requests(
        nbmlops.serving.deployments.log_dir(dep.doc["id"])) if r.get("shadow")]
    assert shadow and all(r["v"] == 3 for r in shadow)
    if kind == "Broken":
        assert all("always fails" in r["error"] for r in shadow)
    else:
        assert all(r["out"] == [1] for r in shadow)
        assert len(dep.requests(shadow=True)) == len(shadow)
    assert len(dep.requests()) == 12


def test_alias_following_switches_under_steady_traffic_without_failures(two_versions):
    X, _, deps = two_versions
    dep = nbmlops.serve("m@production", name="follow")
    deps.append(dep)
    per_client: list[list[tuple[int, int]]] = [[], []]
    stop = threading.Event()

    def client(out):
        while not stop.is_set():
            status, answer, _ = call(dep, "POST", "/predict", {"features": X[2].tolist()})
            out.append((status, answer.get("version")))

    threads = [threading.Thread(target=client, args=(r,)) for r in per_client]
    for t in threads:
        t.start()
    time.sleep(0.5)
    nbmlops.set_alias("m", "production", 2)
    deadline = time.time() + 10
    while time.time() < deadline and not any(v == 2 for _, v in per_client[0][-3:]):
        time.sleep(0.1)
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()
    for results in per_client:
        versions = [v for _, v in results]
        assert {s for s, _ in results} == {200}
        assert versions[0] == 1 and versions[-1] == 2
        first_two = versions.index(2)
        assert set(versions[first_two:]) == {2}, "an answer from the old version after the switch"
    routing = dep.routing()
    assert routing["switches"][-1]["from"] == 1 and routing["switches"][-1]["to"] == 2
    assert nbmlops.get_deployment("follow").doc["switches"][-1]["to"] == 2


def test_alias_moved_to_a_version_that_fails_to_load_keeps_the_old_one(two_versions):
    X, y, deps = two_versions
    dep = nbmlops.serve("m@production", name="follow")
    deps.append(dep)
    from sklearn.linear_model import LogisticRegression

    bad = nbmlops.register_model(LogisticRegression(C=0.5).fit(X, y), "m")
    path = bad.store.blobs.path(bad.sha256)
    os.chmod(path, 0o644)
    path.write_bytes(b"tampered")
    nbmlops.set_alias("m", "production", bad.version)
    deadline = time.time() + 10
    while time.time() < deadline and not call(dep, "GET", "/ready")[1]["load_error"]:
        time.sleep(0.2)
    ready = call(dep, "GET", "/ready")[1]
    assert f"moved to version {bad.version} but loading it failed" in ready["load_error"]
    assert "still serving version 1" in ready["load_error"]
    assert call(dep, "POST", "/predict", {"features": X[0].tolist()})[1]["version"] == 1
    assert "loading it failed" in dep.logs()


def test_ab_summary_gives_a_verdict_once_labels_arrive(two_versions):
    X, y, deps = two_versions
    dep = nbmlops.serve("m", ab={1: 0.5, 2: 0.5}, name="ab")
    deps.append(dep)
    early = nbmlops.ab_summary(dep)
    assert "not enough data yet" in early.verdict
    for i in range(300):
        status, out, _ = call(dep, "POST", "/predict", {"features": X[i].tolist()}, headers={"X-Request-Key": str(i)})
        dep.feedback(out["request_id"], int(y[i]))  # the admin token: Deployment sends it
    time.sleep(0.4)
    summary = nbmlops.ab_summary("ab")
    assert summary.winner == 2 and summary.verdict.startswith("version 2 is better with p=")
    assert summary.p_value < 0.01
    table = summary.table.set_index("version")
    assert table.loc[2, "accuracy"] > 0.9 > table.loc[1, "accuracy"]
    assert table["requests"].sum() == 300 and table.loc[1, "weight"] == 0.5
    assert "★" in summary._repr_html_()


def test_two_proportion_test_matches_statsmodels_formula():
    from scipy.stats import norm

    from nbmlops.serving.abtest import needed_per_version, two_proportion_test

    z, p = two_proportion_test(90, 100, 75, 100)
    pooled = 165 / 200
    expected_z = (0.9 - 0.75) / np.sqrt(pooled * (1 - pooled) * (2 / 100))
    assert z == pytest.approx(expected_z) and p == pytest.approx(2 * norm.sf(abs(expected_z)))
    assert needed_per_version(0.5, 0.6) == pytest.approx(385, abs=3)
    assert needed_per_version(0.7, 0.7) is None


def test_bad_ab_and_shadow_arguments(two_versions):
    with pytest.raises(InvalidInput, match="at least two versions"):
        nbmlops.serve("m", ab={1: 1.0})
    with pytest.raises(nbmlops.NotFound, match="no version 7"):
        nbmlops.serve("m", ab={1: 0.5, 7: 0.5})
    with pytest.raises(InvalidInput, match="versions of 'm'"):
        nbmlops.serve("m", ab={"m/1": 0.5, "other/2": 0.5})
    with pytest.raises(InvalidInput, match="non-negative"):
        nbmlops.serve("m", ab={1: 0.5, 2: -1})
    with pytest.raises(InvalidInput, match="positive"):
        nbmlops.serve("m", ab={1: 0, 2: 0})
    with pytest.raises(nbmlops.NotFound, match="no version 9"):
        nbmlops.serve("m/1", shadow=9)
    assert nbmlops.list_deployments().empty


def test_serving_widget_moves_weights_and_stops(two_versions):
    X, _, deps = two_versions
    dep = nbmlops.serve("m", ab={1: 0.5, 2: 0.5}, name="ab")
    deps.append(dep)
    call(dep, "POST", "/predict", {"features": X[0].tolist()})
    widget = nbmlops.serving_widget("ab", refresh_every=60)
    try:
        assert [s.description for s in widget.sliders.children] == ["v1", "v2"]
        assert "running" in widget.card.value and "requests" in widget.counters.value
        widget.sliders.children[0].value = 0.2
        widget.sliders.children[1].value = 0.8
        widget.apply.click()
        assert dep.routing()["versions"] == {"1": pytest.approx(0.2), "2": pytest.approx(0.8)}
        assert "v2 80%" in widget.message.value
        widget.stop_button.click()
        assert widget.dep.doc["status"] == "stopped" and widget.start_button.disabled is False
    finally:
        widget.close()


def test_drift_compares_training_data_with_served_traffic(two_versions, ip):
    X, _, deps = two_versions
    dep = nbmlops.serve("m/2", name="traffic")
    deps.append(dep)
    shifted = X[:300] + np.array([2.0, 0, 0, 0])  # the first feature drifts
    for row in shifted:
        call(dep, "POST", "/predict", {"features": row.tolist()})
    from sklearn.linear_model import LogisticRegression

    y = (X[:, 0] > 0.3).astype(int)
    nbmlops.register_model(LogisticRegression().fit(X, y), "m", reference=(X, y))  # version 3, with a reference
    time.sleep(0.4)
    ip.run_line_magic("drift", "model:m/3 serving:traffic -o report")
    report = ip.user_ns["report"]
    drifted = {c["column"] for c in report.to_dict()["columns"] if c.get("drifted")}
    assert "x0" in drifted and not {"x1", "x2", "x3"} & drifted
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="no deployment named 'ghost'"):
        ip.run_line_magic("drift", "model:m/3 serving:ghost")
