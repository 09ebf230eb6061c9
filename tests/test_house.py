"""Regressions found while the house was restructured (issue 17): the store's accessors, tracking's
edits of runs made elsewhere, and a deployment stopped while another process starts it."""

from __future__ import annotations

import threading
import time

import pytest

import nbmlops
from nbmlops._util import new_id, now_ms
from nbmlops.serving.deployments import Deployment, get_deployment
from nbmlops.tracking.lookup import add_run_artifacts, fail_run, find_run_doc


def _starting(store, name):
    doc = {"schema": 1, "id": new_id(), "name": name, "status": "starting", "pid": None, "pid_start": None,
           "started": now_ms(), "model_uri": "models:/m/1", "host_name": None, "port": None, "url": None}
    with store.deployments().edit() as docs:
        docs.insert(doc)
    return doc


def test_reading_a_deployments_logs_makes_no_folder(store):
    dep = Deployment(_starting(store, "quiet"))
    assert dep.logs() == "" and dep.requests().empty
    assert not store.deployment_dir(dep.doc["id"]).exists()


def test_stopping_a_deployment_another_process_is_starting_waits_for_its_pid(store):
    doc = _starting(store, "young")

    def started_elsewhere():  # the starter writes a pid, of a process that has exited meanwhile
        time.sleep(0.3)
        with store.deployments().edit() as docs:
            docs.update({"pid": 2 ** 22 + 7, "status": "running"}, id=doc["id"])

    threading.Thread(target=started_elsewhere).start()
    t0 = time.time()
    get_deployment("young").stop(timeout=5)
    assert 0.25 < time.time() - t0 < 4
    assert store.deployments().get("id", doc["id"])["status"] == "stopped"


def test_fail_run_ends_a_run_left_running_and_fails_a_finished_one(store):
    with nbmlops.start_run(experiment="e") as done:
        nbmlops.log_metric("m", 1.0)
    fail_run(store, done.id, "outputs missing")
    assert find_run_doc(store, done.id)["status"] == "FAILED"
    run = nbmlops.start_run(experiment="e")
    run.log_metric("loss", 0.5)
    nbmlops.tracking.session.pop_run(run)  # its process went away without ending it
    fail_run(store, run.id, "the kernel died")
    doc = find_run_doc(store, run.id)
    assert doc["status"] == "FAILED" and doc["error"] == "the kernel died" and doc["metrics"]["loss"]["value"] == 0.5
    fail_run(store, run.id, "again")
    assert find_run_doc(store, run.id)["error"] == "the kernel died"


def test_add_run_artifacts_replaces_same_named_entries(store, tmp_path):
    with nbmlops.start_run(experiment="e") as run:
        pass
    for text in ("one", "two"):
        (tmp_path / "r.html").write_text(text)
        sha, size = store.blobs.put_file(tmp_path / "r.html")
        add_run_artifacts(store, run.id, [{"name": "report.html", "sha256": sha, "size": size, "kind": "report"}])
    arts = find_run_doc(store, run.id)["artifacts"]
    assert [a["name"] for a in arts] == ["report.html"] and store.blobs.read_bytes(arts[0]["sha256"]) == b"two"


@pytest.mark.parametrize("accessor", ["models", "datasets", "deployments", "feature_definitions", "online_tables",
                                      "pipeline_definitions"])
def test_accessors_name_files_inside_the_store_without_writing(store, accessor):
    f = getattr(store, accessor)()
    assert f.path.is_relative_to(store.root / "db") and not f.path.exists()
    assert getattr(store, accessor)() is f  # built once


def test_the_request_log_rotates_through_the_stores_one_append_log(store):
    log = store.request_log(new_id(), max_bytes=40, keep=2)
    log.append(b'{"t": 1, "x": "cut')  # a line a killed writer left unfinished
    log.close()
    for i in range(2, 8):
        log.append(b'{"t": %d}\n' % i)
    log.close()
    files = log.files()
    assert len(files) == 2 and files[-1].name.startswith("requests-")
    seen = [r["t"] for r in log.read()]
    assert seen == sorted(seen) and seen[-1] == 7 and 1 not in seen
