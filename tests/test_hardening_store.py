"""Hardening of the store (issue 16, data integrity): races between real processes, empty and
damaged files, killed writers, and the small wrong answers found with them.

Races use real OS processes (``multiprocessing`` with fork: no shared Python state after the
fork, only the store's files and locks), released together by a barrier, trial after trial;
every trial must hold.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys

import pandas as pd
import pytest

import nbmlops
from nbmlops.errors import InvalidInput, NbmlopsError, NotFound, StoreError
from nbmlops.store import DamagedFile, Store

TRIALS = 32
CTX = mp.get_context("fork")


@pytest.fixture
def logged_model(store):
    """The id of a run that logged a tiny fitted model (registering it again costs no pickling)."""
    from sklearn.linear_model import LogisticRegression

    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    with nbmlops.start_run(experiment="models") as run:
        nbmlops.log_model(LogisticRegression().fit(X, [0, 0, 1, 1]), "model")
    return run.id


class Workers:
    """Long-lived forked workers, each answering commands from a pipe after a shared barrier."""

    def __init__(self, target, roles):
        self.barrier = CTX.Barrier(len(roles))
        self.pipes, self.procs = [], []
        for role in roles:
            ours, theirs = CTX.Pipe()
            p = CTX.Process(target=target, args=(role, self.barrier, theirs), daemon=True)
            p.start()
            self.pipes.append(ours)
            self.procs.append(p)

    def round(self, arg, timeout=60):
        for pipe in self.pipes:
            pipe.send(arg)
        out = []
        for pipe in self.pipes:
            if not pipe.poll(timeout):
                raise AssertionError("a worker did not answer")
            out.append(pipe.recv())
        return out

    def close(self):
        for pipe in self.pipes:
            try:
                pipe.send(None)
            except OSError:
                pass
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()


def _registry_worker(role, barrier, conn):
    while (version := conn.recv()) is not None:
        barrier.wait(30)
        try:
            if role == "delete":
                nbmlops.delete_version("m", version)
            else:
                nbmlops.set_alias("m", "prod", version)
            conn.send("ok")
        except NbmlopsError as exc:
            conn.send(type(exc).__name__)


@pytest.mark.slow
def test_an_alias_never_points_at_a_version_deleted_at_the_same_time(logged_model):
    workers = Workers(_registry_worker, ["delete", "alias"])
    both, dangling, outcomes = 0, 0, {}
    try:
        for _ in range(TRIALS):
            version = nbmlops.register_model(logged_model, "m").version
            deleted, aliased = workers.round(version)
            outcomes[(deleted, aliased)] = outcomes.get((deleted, aliased), 0) + 1
            both += deleted == aliased == "ok"
            try:
                nbmlops.get_model_version("m@prod")
            except NotFound as exc:  # "has no alias" is fine (the first deletions won); "was deleted" is not
                dangling += "was deleted" in str(exc)
    finally:
        workers.close()
    assert (both, dangling) == (0, 0), outcomes
    # exactly one of the two won each trial; the alias follows whoever won
    assert sum(outcomes.values()) == TRIALS and all("ok" in k for k in outcomes), outcomes


def _dataset_worker(role, barrier, conn):
    df = pd.DataFrame({"id": range(2000), "city": ["Lyon", "Oslo"] * 1000, "x": [i / 7 for i in range(2000)]})
    while (name := conn.recv()) is not None:
        barrier.wait(30)
        try:
            conn.send(nbmlops.log_dataset(df, name, snapshot=True).version)
        except NbmlopsError as exc:
            conn.send(repr(exc))


@pytest.mark.slow
def test_identical_data_logged_by_four_processes_at_once_is_one_version(store):
    store.ensure()
    workers = Workers(_dataset_worker, range(4))
    try:
        extra = 0
        for trial in range(TRIALS):
            versions = workers.round(f"sales{trial}")
            assert versions == [1, 1, 1, 1], (trial, versions)
            extra += len(nbmlops.list_datasets(f"sales{trial}")) - 1
    finally:
        workers.close()
    assert extra == 0


def test_ending_a_run_without_with_makes_it_inactive(store):
    run = nbmlops.start_run(name="first")
    nbmlops.log_metric("loss", 0.5)
    run.end()
    assert nbmlops.active_run() is None
    with pytest.raises(InvalidInput, match="no active run"):
        nbmlops.log_metric("loss", 0.4)
    second = nbmlops.start_run(name="second")  # not "run first is still active"
    assert nbmlops.active_run() is second
    second.end("FAILED")
    assert nbmlops.active_run() is None
    assert nbmlops.get_run(run.id).status == "FINISHED"


# -- empty (0-byte) documents --------------------------------------------------------------
def _empty(path):
    assert path.exists() and path.stat().st_size > 0
    path.write_bytes(b"")


def test_an_emptied_models_file_is_refused_not_read_as_no_models(logged_model, store):
    nbmlops.register_model(logged_model, "m", alias="prod")
    nbmlops.register_model(logged_model, "m")
    models = store.root / "db" / "models.json"
    versions = next((store.root / "db" / "models").glob("*.json"))
    before = versions.read_bytes()
    _empty(models)
    with pytest.raises(StoreError, match="models.json is empty"):
        nbmlops.list_models()
    with pytest.raises(StoreError, match="models.json is empty"):
        nbmlops.register_model(logged_model, "m")
    assert models.read_bytes() == b"" and versions.read_bytes() == before  # nothing reset, nothing written


def test_an_emptied_versions_file_is_refused_and_listing_names_it(logged_model, store):
    nbmlops.register_model(logged_model, "m", alias="prod")
    nbmlops.register_model(logged_model, "other")
    models = {d["name"]: d["id"] for d in store.models().all()}
    versions = store.root / "db" / "models" / f"{models['m']}.json"
    _empty(versions)
    with pytest.raises(StoreError, match="is empty"):
        nbmlops.register_model(logged_model, "m")  # would allocate version 1 again
    with pytest.raises(StoreError, match="is empty"):
        nbmlops.load_model("m@prod")
    with pytest.warns(DamagedFile, match=versions.name):
        listing = nbmlops.list_models()
    latest = listing.set_index("name")["latest_version"]
    assert pd.isna(latest["m"]) and latest["other"] == 1


def test_an_emptied_experiments_file_is_refused(store):
    with nbmlops.start_run(experiment="churn"):
        pass
    _empty(store.root / "db" / "experiments.json")
    with pytest.raises(StoreError, match="experiments.json is empty"):
        nbmlops.list_experiments()
    with pytest.raises(StoreError, match="experiments.json is empty"):
        nbmlops.start_run(experiment="churn")  # would create a second "churn"
    assert nbmlops.active_run() is None


def test_an_emptied_drift_month_file_is_refused_for_writes_and_named_in_listings(store):
    from nbmlops._util import now_ms

    store.ensure()
    month = store.drift_summaries(now_ms())
    with month.table() as t:
        t.insert({"schema": 1, "id": "a" * 32, "time": now_ms(), "model": None, "summary": {}, "sources": {}})
    _empty(month.path)
    with pytest.raises(StoreError, match="is empty"), month.table() as t:
        t.insert({"id": "b" * 32})
    with pytest.warns(DamagedFile, match=month.path.name):
        assert len(nbmlops.drift_history()) == 0
    assert month.path.read_bytes() == b""


def test_an_emptied_index_of_active_runs_is_rebuilt_with_a_warning(store):
    with nbmlops.start_run():
        pass
    _empty(store.active.path)
    with pytest.warns(UserWarning, match="active.json was empty"), nbmlops.start_run() as run:
        pass
    assert run.status == "FINISHED"


# -- damage in one place -------------------------------------------------------------------
def test_one_damaged_run_file_does_not_take_down_the_listings(store):
    ids = []
    for i in range(6):
        with nbmlops.start_run(experiment="churn", name=f"r{i}") as run:
            nbmlops.log_metric("loss", i)
        ids.append(run.id)
    with nbmlops.start_run(experiment="other"):
        pass
    exp = nbmlops.get_experiment("churn")
    shard = store.run_file(exp.id, ids[0]).path
    lost = sum(1 for i in ids if i[:2] == ids[0][:2])
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])  # torn by hand
    with pytest.warns(DamagedFile, match=shard.name):
        df = nbmlops.list_experiments()
    assert df.set_index("name")["runs"].to_dict() == {"churn": 6 - lost, "other": 1}
    with pytest.warns(DamagedFile, match=str(shard)):
        assert len(nbmlops.search_runs("churn")) == 6 - lost
    with pytest.warns(DamagedFile):
        assert len(nbmlops.run_listing()) == 7 - lost


def test_metric_lines_of_the_wrong_type_are_skipped_and_counted(store):
    with nbmlops.start_run() as run:
        for step in range(3):
            nbmlops.log_metric("loss", 1.0 / (step + 1))
    with open(store.metric_log(run.id), "a") as f:
        f.write('["loss", "x", 1, 0.5]\n{"loss": 1}\n["loss", 3, 5, true]\n[1, 3, 5, 0.5]\n["loss", 4, 6, "0.1"]\n')
        f.write('["loss", 5')  # cut short
    hist = nbmlops.get_run(run.id).metric_history("loss")
    assert hist["step"].tolist() == [0, 1, 2]
    assert hist["value"].dtype == "float64"
    assert hist.attrs["skipped_lines"] == 6


# -- killed writers ------------------------------------------------------------------------
KILLED_REGISTER = r'''
import sys, time
import numpy as np
import nbmlops

class Slow:
    """A model whose pickling stalls half way, so the test can kill it mid-write."""
    def __init__(self):
        self.coef_ = np.ones(2_000_000)
        self.tail = Stall()
    def predict(self, X):
        return X

class Stall:
    def __reduce__(self):
        print("writing", flush=True)
        time.sleep(60)
        return (Stall, ())

nbmlops.register_model(Slow(), "big")
'''


@pytest.mark.slow
def test_a_killed_register_model_leaves_no_temporary_file_after_the_next_open(store, tmp_path):
    store.ensure()
    tmp = store.root / "tmp"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live_file = tmp / f"{live.pid}-00112233aabbccdd.pkl"  # a live writer's file: must stay
        tmp.mkdir(parents=True, exist_ok=True)
        live_file.write_bytes(b"being written")
        left = 0
        for _ in range(3):
            p = subprocess.Popen([sys.executable, "-c", KILLED_REGISTER], stdout=subprocess.PIPE, text=True,
                                 env={**os.environ, "NBMLOPS_STORE": str(store.root)})
            assert p.stdout.readline().strip() == "writing"
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
            left = sum(1 for f in tmp.iterdir() if f != live_file)
        assert left == 1 and sum(f.stat().st_size for f in tmp.iterdir()) > 10_000_000  # the kill left it
        # any process opening the store cleans what dead writers left (not only start_run)
        out = subprocess.run([sys.executable, "-c", "import nbmlops; nbmlops.list_models()"],
                             env={**os.environ, "NBMLOPS_STORE": str(store.root)}, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert [f.name for f in tmp.iterdir()] == [live_file.name]
        assert Store(store.root).clean_tmp() == 0 and live_file.exists()
    finally:
        live.kill()
        live.wait()
    assert Store(store.root).clean_tmp() == 1 and not live_file.exists()


def test_a_temporary_file_of_a_reused_pid_is_cleaned(store):
    """tmp names carry the writer's start tick: a dead writer whose pid now belongs to another
    process (here: this one's parent, alive, with another start tick) is still recognised."""
    blob_tmp = store.blobs.tmp_path(".pkl")
    pid, start = blob_tmp.name.split("-")[:2]
    assert pid == str(os.getpid()) and start.isdigit()
    stale = blob_tmp.with_name(f"{os.getppid()}-{int(start) + 12345}-00112233aabbccdd.pkl")
    stale.write_bytes(b"x")
    assert Store(store.root).clean_tmp() == 1 and not stale.exists()


# -- writes checked under their lock (single process) ---------------------------------------
def test_tags_set_by_another_process_survive_the_runs_own_tag_writes(store):
    with nbmlops.start_run() as run:
        nbmlops.set_tag("mine", "1")
        code = f"import nbmlops; nbmlops.set_run_tags({run.id!r}, {{'reviewed': 'yes'}})"
        out = subprocess.run([sys.executable, "-c", code],
                             env={**os.environ, "NBMLOPS_STORE": str(store.root)}, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        nbmlops.set_tag("mine", "2")
    assert nbmlops.get_run(run.id).tags == {"mine": "2", "reviewed": "yes"}


def test_deleting_a_deleted_version_again_is_refused(logged_model):
    v = nbmlops.register_model(logged_model, "m").version
    nbmlops.register_model(logged_model, "m")
    nbmlops.delete_version("m", v)
    with pytest.raises(NotFound, match="was deleted"):
        nbmlops.delete_version("m", v)
    assert [h["action"] for h in nbmlops.model_history("m").to_dict("records")].count("delete") == 1


# -- small ones ----------------------------------------------------------------------------
def test_order_by_with_a_word_that_is_not_a_direction_is_refused(store):
    with nbmlops.start_run() as run:
        nbmlops.log_metric("loss", 1.0)
    with pytest.raises(InvalidInput, match="cannot order by 'metrics.loss sideways'"):
        nbmlops.search_runs(order_by="metrics.loss sideways")
    assert nbmlops.search_runs(order_by=["metrics.loss DESC", "metrics.`loss` asc"])["run_id"].tolist() == [run.id]


def test_mixed_entity_id_types_are_named(store):
    src = pd.DataFrame({"user_id": [1, 2], "event_timestamp": pd.to_datetime(["2024-03-01", "2024-03-02"]),
                        "x": [1.0, 2.0]})
    user = nbmlops.Entity("user_id", ["user_id"], "int64")
    nbmlops.apply_features([user, nbmlops.FeatureView("stats", [user], src, ttl="7d")], force=True)
    ent = pd.DataFrame({"user_id": pd.Series([1, 2, "u3", 4], dtype=object),
                        "event_timestamp": pd.to_datetime(["2024-03-03"] * 4)})
    with pytest.raises(InvalidInput, match=r"holds mixed int and str \(3 int, 1 str\) values, but the key is int64"):
        nbmlops.get_historical_features(ent, ["stats:x"])


def test_a_json_document_that_is_not_a_table_is_refused(store):
    with nbmlops.start_run():
        pass
    (store.root / "db" / "experiments.json").write_text("[]")
    with pytest.raises(StoreError, match="not a table of documents"):
        nbmlops.list_experiments()


def test_a_damaged_shard_of_another_experiment_does_not_hide_a_run_by_id(store):
    with nbmlops.start_run(experiment="a", name="healthy") as healthy:
        pass
    exp_b = nbmlops.set_experiment("b")
    # a run of experiment b whose shard shares the healthy run's first two hex digits, then torn
    shard = store.run_file(exp_b.id, healthy.id).path
    shard.parent.mkdir(parents=True, exist_ok=True)
    shard.write_bytes(b'{"_default": {"1": {"id": "')
    with pytest.warns(DamagedFile, match=shard.name):
        assert nbmlops.get_run(healthy.id[:8]).name == "healthy"
    with pytest.raises(StoreError, match="damaged"):
        nbmlops.get_run(healthy.id[:2] + "0" * 6)
