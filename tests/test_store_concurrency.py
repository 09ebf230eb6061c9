"""Many writers at once lose nothing: real OS processes (``subprocess``, no shared memory)
logging into one store at the same time.

The store's rule (ARCHITECTURE.md, "The store"): two notebooks, the serving process and a
CLI writing at once lose nothing; ids are ours, never TinyDB's per-instance ``doc_id``.
Every count below is exact, so a lost update, a duplicated id or a torn file fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

import nbmlops

WORKERS = 4
STEPS = 3  # points of "loss" per run (plus one point of "acc")

# One worker process: wait for the go signal (so all four really overlap), then log N runs.
WORKER = r'''
import json, sys, time
from pathlib import Path

import nbmlops

worker, n, experiment = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
go, out, steps = Path(sys.argv[4]), Path(sys.argv[5]), int(sys.argv[6])
print("ready", flush=True)
deadline = time.monotonic() + 120
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit("no go signal")
    time.sleep(0.002)
ids = []
for i in range(n):
    k = worker * n + i
    with nbmlops.start_run(experiment=experiment, name=f"w{worker}-r{i}") as run:
        nbmlops.log_params({"worker": worker, "i": i})
        for step in range(steps):
            nbmlops.log_metric("loss", 1.0 / (1 + k + step))
        nbmlops.log_metric("acc", k / 7)
    ids.append(run.id)
out.write_text(json.dumps(ids))
'''

# Creates experiments race-0 .. race-{K-1}, all processes at the same scheduled instants.
CREATOR = r'''
import sys, time
from pathlib import Path

import nbmlops

worker, count, go = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
print("ready", flush=True)
deadline = time.monotonic() + 120
while not go.exists() or not go.read_text():
    if time.monotonic() > deadline:
        sys.exit("no go signal")
    time.sleep(0.001)
t0 = float(go.read_text())
for k in range(count):
    while time.time() < t0 + 0.06 * k:
        pass  # spin: the processes must call get_or_create within microseconds of each other
    with nbmlops.start_run(experiment=f"race-{k}", name=f"w{worker}"):
        nbmlops.log_metric("worker", worker)
'''


@pytest.fixture
def procs():
    """Processes a test starts; killed and reaped at teardown whatever happened."""
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=30)
        for f in (p.stdout, p.stderr):
            if f:
                f.close()


def _spawn(procs, tmp_path, script: str, *args: object) -> subprocess.Popen:
    path = tmp_path / f"script-{abs(hash(script)):x}.py"
    if not path.exists():
        path.write_text(script)
    env = {**os.environ, "NBMLOPS_STORE": str(tmp_path / ".nbmlops"), "MPLBACKEND": "Agg"}
    err = open(tmp_path / f"stderr-{len(procs)}.txt", "wb")
    p = subprocess.Popen([sys.executable, str(path), *map(str, args)], cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=err, text=True)
    err.close()
    procs.append(p)
    return p


def _wait_ready(procs, tmp_path) -> None:
    for n, p in enumerate(procs):
        line = p.stdout.readline()
        assert line.strip() == "ready", f"worker did not start: {line!r}\n" + \
            (tmp_path / f"stderr-{n}.txt").read_text()[-3000:]


def _join(procs, tmp_path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for n, p in enumerate(procs):
        p.wait(timeout=max(1.0, deadline - time.monotonic()))
        err = (tmp_path / f"stderr-{n}.txt").read_text()
        assert p.returncode == 0, f"worker {n} exited {p.returncode}:\n{err[-3000:]}"


@pytest.mark.parametrize("runs_per_worker", [100, pytest.param(1000, marks=pytest.mark.slow)])
def test_four_processes_lose_no_run_and_no_metric_point(store, tmp_path, procs, runs_per_worker):
    n = runs_per_worker
    total = WORKERS * n
    go = tmp_path / "go"
    for w in range(WORKERS):
        _spawn(procs, tmp_path, WORKER, w, n, "storm", go, tmp_path / f"ids-{w}.json", STEPS)
    _wait_ready(procs, tmp_path)
    go.touch()
    _join(procs, tmp_path, timeout=240)

    reported = [rid for w in range(WORKERS) for rid in json.loads((tmp_path / f"ids-{w}.json").read_text())]
    assert len(reported) == total
    assert len(set(reported)) == total, "two runs were given the same id"

    # the documents: every run, once, finished, with its params and last metric values
    df = nbmlops.search_runs("storm")
    assert len(df) == total
    assert df["run_id"].is_unique
    assert set(df["run_id"]) == set(reported)
    assert (df["status"] == "FINISHED").all(), df["status"].value_counts().to_dict()
    assert df["end_time"].notna().all()
    pairs = set(zip(df["params.worker"].astype(int), df["params.i"].astype(int)))
    assert pairs == {(w, i) for w in range(WORKERS) for i in range(n)}
    assert (df["run_name"] == [f"w{w}-r{i}" for w, i in zip(df["params.worker"], df["params.i"])]).all()
    k = df["params.worker"].astype(int) * n + df["params.i"].astype(int)
    assert (df["metrics.loss"] == 1.0 / (1 + k + STEPS - 1)).all()
    assert (df["metrics.acc"] == k / 7).all()

    # the metric logs: every point of every run, exact values, in order
    for rid, w, i in zip(df["run_id"], df["params.worker"], df["params.i"]):
        k = int(w) * n + int(i)
        run = nbmlops.get_run(rid)
        hist = run.metric_history()
        loss = hist[hist["key"] == "loss"]
        assert list(loss["step"]) == list(range(STEPS)), rid
        assert list(loss["value"]) == [1.0 / (1 + k + s) for s in range(STEPS)], rid
        assert list(hist[hist["key"] == "acc"]["value"]) == [k / 7], rid
        assert len(hist) == STEPS + 1, rid
        summary = run.info["metrics"]["loss"]
        assert summary["count"] == STEPS
        assert summary["min"] == 1.0 / (1 + k + STEPS - 1) and summary["max"] == 1.0 / (1 + k)

    info = nbmlops.store_info()
    assert info["experiments"] == 1
    assert info["runs"] == total
    assert info["runs_by_status"] == {"FINISHED": total}
    assert info["active"] == 0, "ended runs were left in the active-run table"
    exps = nbmlops.list_experiments()
    assert list(exps["name"]) == ["storm"] and list(exps["runs"]) == [total]


def test_four_processes_creating_the_same_experiments_make_one_each(store, tmp_path, procs):
    count = 15
    go = tmp_path / "go"
    for w in range(WORKERS):
        _spawn(procs, tmp_path, CREATOR, w, count, go)
    _wait_ready(procs, tmp_path)
    go.write_text(repr(time.time() + 0.2))
    _join(procs, tmp_path, timeout=120)

    raw = json.loads((store.root / "db" / "experiments.json").read_text())
    docs = list(raw["docs"].values())
    names = sorted(d["name"] for d in docs)
    assert names == sorted(f"race-{k}" for k in range(count)), "an experiment was created twice (or lost)"
    assert len({d["id"] for d in docs}) == count
    exps = nbmlops.list_experiments()
    assert len(exps) == count
    for k in range(count):
        df = nbmlops.search_runs(f"race-{k}")
        assert sorted(df["run_name"]) == [f"w{w}" for w in range(WORKERS)], f"race-{k}"
        assert sorted(df["metrics.worker"]) == list(range(WORKERS))
    assert nbmlops.store_info()["runs"] == WORKERS * count


def test_threads_sharing_one_store_object_do_not_enter_a_document_file_together(tmp_path):
    import threading

    from nbmlops.store import DocFile

    f = DocFile(tmp_path / "docs.json")
    inside, peak, guard = [0], [0], threading.Lock()

    def worker():
        for _ in range(20):
            with f.table() as t:
                with guard:
                    inside[0] += 1
                    peak[0] = max(peak[0], inside[0])
                t.insert({"n": 1})
                with guard:
                    inside[0] -= 1

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 1 and len(f.all()) == 80
