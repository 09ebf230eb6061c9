"""A crash (kill -9) at any instant leaves a store that opens, and damaged bytes are noticed.

ARCHITECTURE.md, "The store": documents are replaced whole (temp file, fsync, ``os.replace``);
appends cut mid-line are skipped on read; a run left RUNNING by a dead process is marked
KILLED by the next process that opens the store (``nbmlops/tracking/stale.py``), with its
metric summaries rebuilt from the log; a blob is used only if its sha256 still matches.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nbmlops
from nbmlops.errors import IntegrityError, NotFound
from nbmlops.store import read_lines
from nbmlops.tracking import session as session_mod

# The writer: starts runs, logs params, metrics, artifacts, text, models, tags and ends them,
# forever, until it is killed. Every third run (i % 3 == 1) fails on purpose (status FAILED).
WRITER = r'''
import os, sys
from pathlib import Path

import joblib  # noqa: F401  (imported before "ready" so the kill lands in store work)
import pandas  # noqa: F401  (log_model describes models with scikit-learn and writes Parquet)
import sklearn.base  # noqa: F401
import nbmlops
import nbmlops.tracking.runs  # noqa: F401
import nbmlops.tracking.signature  # noqa: F401

gen, scratch = int(sys.argv[1]), Path(sys.argv[2])
scratch.mkdir(parents=True, exist_ok=True)
print("ready", flush=True)
i = 0
while True:
    try:
        with nbmlops.start_run(experiment=("crash-a", "crash-b")[i % 2], name=f"g{gen}-r{i}"):
            nbmlops.log_params({"gen": gen, "i": i})
            for s in range(5):
                nbmlops.log_metric("loss", 1.0 / (1 + i + s))
            f = scratch / f"a-{gen}-{i}.txt"
            f.write_text(f"artifact {gen} {i}\n" * 50)
            nbmlops.log_artifact(f, name="data.txt")
            nbmlops.log_text(f"note {gen} {i}", "note.txt")
            nbmlops.log_model({"gen": gen, "i": i, "w": list(range(i % 40))}, name="model")
            nbmlops.log_metric("acc", i / 100)
            if i % 3 == 1:
                raise RuntimeError("planned failure")
            nbmlops.set_tag("phase", "done")
    except RuntimeError:
        pass
    i += 1
'''

# A fresh process that opens the store and reads everything the way a user would.
READER = r'''
import json, sys
import nbmlops

ids = json.load(open(sys.argv[1]))
info = nbmlops.store_info()
df = nbmlops.search_runs()
points = 0
for rid in ids:
    run = nbmlops.get_run(rid)
    points += len(run.metric_history())
    for e in run.info["artifacts"] + run.info["models"]:
        run.artifact(e["name"])
print(json.dumps({"runs": info["runs"], "by_status": info["runs_by_status"], "active": info["active"],
                  "searched": len(df), "points": points}))
'''

# Kills itself (SIGKILL) right after its N-th document write (a DocFile.table() block) of the
# second run, so every gap between two writes of a run's life is a crash point.
SELF_KILLER = r'''
import os, signal, sys
from contextlib import contextmanager

import nbmlops
from nbmlops.store.documents import DocFile

kill_after = int(sys.argv[1])
with nbmlops.start_run(experiment="exp", name="warm-up"):
    nbmlops.log_metric("loss", 0.5)
original = DocFile.table
writes = 0

@contextmanager
def counting_table(self, durable=None):
    global writes
    with original(self, durable) as t:
        yield t
    writes += 1
    if writes == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)

DocFile.table = counting_table
with nbmlops.start_run(experiment="exp", name="victim"):
    for s in range(3):
        nbmlops.log_metric("loss", 1.0 / (s + 2))
    nbmlops.log_params({"p": 1})
    for s in range(2):
        nbmlops.log_metric("acc", s / 4)
print("survived", writes, flush=True)
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
        if p.stdout:
            p.stdout.close()


def _spawn(procs, tmp_path: Path, script: str, *args: object) -> tuple[subprocess.Popen, Path]:
    path = tmp_path / f"script-{abs(hash(script)):x}.py"
    if not path.exists():
        path.write_text(script)
    env = {**os.environ, "NBMLOPS_STORE": str(tmp_path / ".nbmlops"), "MPLBACKEND": "Agg"}
    errpath = tmp_path / f"stderr-{len(procs)}.txt"
    with open(errpath, "wb") as err:
        p = subprocess.Popen([sys.executable, str(path), *map(str, args)], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=err, text=True)
    procs.append(p)
    return p, errpath


def _docs(path: Path) -> list[dict]:
    """The documents of one TinyDB file; fails the test if the file does not parse."""
    try:
        data = json.loads(path.read_bytes())
    except ValueError as exc:
        pytest.fail(f"{path} is not valid JSON after a crash: {exc}")
    assert isinstance(data, dict), path
    return list(data.get("docs", {}).values())


def _raw_state(root: Path) -> tuple[dict[str, dict], list[dict]]:
    """Every JSON file of the store parsed; returns (runs by id, active-run entries)."""
    for p in root.rglob("*.json"):
        if p.name == "STORE.json":
            meta = json.loads(p.read_bytes())
            assert meta["format"] == "nbmlops"
        else:
            _docs(p)
    runs: dict[str, dict] = {}
    for p in sorted((root / "db" / "runs").glob("*/*.json")):
        for d in _docs(p):
            assert d["id"] not in runs, f"run {d['id']} stored twice"
            runs[d["id"]] = d
    active = _docs(root / "db" / "active.json") if (root / "db" / "active.json").exists() else []
    return runs, active


def _log_summaries(root: Path, run_id: str) -> dict[str, dict]:
    """What a run's metric summaries must be, computed from its log independently of nbmlops."""
    out: dict[str, dict] = {}
    for key, step, ts, value in read_lines(root / "logs" / "metrics" / f"{run_id}.jsonl"):
        m = out.setdefault(key, {"count": 0, "min": value, "max": value, "step": step, "value": value})
        if step >= m["step"]:
            m.update(step=step, value=value)
        m["count"] += 1
        m["min"], m["max"] = min(m["min"], value), max(m["max"], value)
    return out


def _summary_fields(metrics: dict[str, dict]) -> dict[str, dict]:
    return {k: {f: m[f] for f in ("count", "min", "max", "step", "value")} for k, m in metrics.items()}


def _sweep_as_next_process(store) -> dict:
    """Open the store as a newly started process would: its first call sweeps stale runs."""
    session_mod._swept.discard(store.root)
    return nbmlops.store_info()


def _check_run(root: Path, rid: str) -> int:
    """Read one run through the API the way a user would; return its number of metric points."""
    run = nbmlops.get_run(rid)
    hist = run.metric_history()
    doc = run.info
    assert doc["status"] in ("FINISHED", "FAILED", "KILLED", "RUNNING")
    if doc["status"] != "RUNNING":
        assert _summary_fields(doc["metrics"]) == _log_summaries(root, rid), rid
        assert len(hist) == sum(m["count"] for m in doc["metrics"].values())
        assert doc["end_time"] is not None and doc["end_time"] >= doc["start_time"]
    for e in doc["artifacts"] + doc["models"]:
        assert run.artifact(e["name"]).exists()
    if doc["models"]:
        model = run.load_model("model")
        assert (model["gen"], model["i"]) == (doc["params"]["gen"], doc["params"]["i"])
    if doc["status"] == "FINISHED":
        assert doc["tags"]["phase"] == "done"
        assert {e["name"] for e in doc["artifacts"]} == {"data.txt", "note.txt"}
        assert run.artifact("data.txt").read_text() == f"artifact {doc['params']['gen']} {doc['params']['i']}\n" * 50
        assert list(hist[hist["key"] == "loss"]["step"]) == [0, 1, 2, 3, 4]
        i = doc["params"]["i"]
        assert list(hist[hist["key"] == "loss"]["value"]) == [1.0 / (1 + i + s) for s in range(5)]
    if doc["status"] == "FAILED":
        assert "planned failure" in doc["error"] and doc["params"]["i"] % 3 == 1
    if doc["status"] == "FINISHED":
        assert doc["params"]["i"] % 3 != 1
    return len(hist)


@pytest.mark.parametrize("kills", [8, pytest.param(50, marks=pytest.mark.slow)])
def test_sigkill_at_random_moments_leaves_a_store_that_opens(store, tmp_path, procs, kills):
    rng = random.Random(20240611 + kills)
    root = store.root
    checked: set[str] = set()
    killed_by_sweep = 0
    for gen in range(kills):
        writer, errpath = _spawn(procs, tmp_path, WRITER, gen, tmp_path / "scratch")
        line = writer.stdout.readline()
        assert line.strip() == "ready", f"writer did not start: {line!r} {errpath.read_text()[-3000:]}"
        time.sleep(rng.uniform(0.0, 0.3))
        assert writer.poll() is None, f"writer died on its own:\n{errpath.read_text()[-3000:]}"
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)  # reaped: a zombie would still look alive to the sweep
        assert writer.returncode == -signal.SIGKILL

        if not (root / "STORE.json").exists():
            assert gen == 0, "the store marker disappeared"
            continue
        runs_before, active = _raw_state(root)
        active_ids = {a["run_id"] for a in active}
        running = {rid for rid, d in runs_before.items() if d["status"] == "RUNNING"}

        info = _sweep_as_next_process(store)

        runs_after, active_after = _raw_state(root)
        assert set(runs_after) == set(runs_before)
        assert active_after == [], "the sweep left entries of a dead process in active.json"
        for rid in running:
            doc = runs_after[rid]
            assert rid in active_ids, f"run {doc['name']} was RUNNING without being registered as active"
            assert doc["status"] == "KILLED", f"run {doc['name']} left {doc['status']} by a killed writer"
            assert f"pid {writer.pid}" in doc["error"]
            assert doc["end_time"] is not None and doc["duration"] is not None
            assert _summary_fields(doc["metrics"]) == _log_summaries(root, rid), "summaries not rebuilt from the log"
            killed_by_sweep += 1
        for rid, doc in runs_after.items():
            assert doc["status"] in ("FINISHED", "FAILED", "KILLED"), (doc["name"], doc["status"])
            assert doc["schema"] >= 1
        assert info["runs"] == len(runs_after)
        assert "RUNNING" not in info["runs_by_status"]
        assert info["active"] == 0
        df = nbmlops.search_runs()
        assert len(df) == len(runs_after) and df["run_id"].is_unique
        for rid in sorted(set(runs_after) - checked):
            _check_run(root, rid)
            checked.add(rid)

    # enough happened for the test to mean something: many runs, and many killed mid-run
    runs_after, _ = _raw_state(root)
    statuses = [d["status"] for d in runs_after.values()]
    assert statuses.count("FINISHED") >= kills // 2
    assert statuses.count("FAILED") >= 1
    # (about half the kills land while a run is RUNNING; the bound leaves room for slow machines)
    assert killed_by_sweep >= (1 if kills < 20 else kills // 4), f"only {killed_by_sweep} of {kills} kills hit a run"

    # and a brand-new process reads all of it, with no error and the same numbers
    (tmp_path / "ids.json").write_text(json.dumps(sorted(runs_after)))
    reader, errpath = _spawn(procs, tmp_path, READER, tmp_path / "ids.json")
    out, _ = reader.communicate(timeout=120)
    assert reader.returncode == 0, errpath.read_text()[-3000:]
    seen = json.loads(out)
    total_points = sum(sum(m["count"] for m in d["metrics"].values()) for d in runs_after.values())
    assert seen["runs"] == seen["searched"] == len(runs_after)
    assert seen["by_status"] == {s: statuses.count(s) for s in set(statuses)}
    assert seen["points"] == total_points and seen["active"] == 0
    print(f"{len(runs_after)} runs, {killed_by_sweep} killed mid-run and swept")


@pytest.mark.parametrize("kill_after", [1, 2, 3, 4, 5])
def test_kill_after_each_document_write_leaves_no_run_running(store, tmp_path, procs, kill_after):
    """A writer SIGKILLs itself right after the N-th document write of a run (start_run: active
    entry and run doc, in either order; log_params; end: run doc, active entry). The next process
    must see no run RUNNING, and a killed run's metric summaries must match its log.
    (Regression: the run document used to be written before the active entry, and a kill between
    the two left the run RUNNING forever.)"""
    p, errpath = _spawn(procs, tmp_path, SELF_KILLER, kill_after)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL, f"writer was not killed ({p.returncode}): {out} {errpath.read_text()}"

    info = _sweep_as_next_process(store)
    runs, active = _raw_state(store.root)
    assert active == []
    assert info["runs_by_status"].get("RUNNING", 0) == 0, f"{info['runs_by_status']} after kill #{kill_after}"
    victim = [d for d in runs.values() if d["name"] == "victim"]
    assert len(victim) <= 1
    for doc in victim:
        assert doc["status"] in ("KILLED", "FINISHED")
        assert _summary_fields(doc["metrics"]) == _log_summaries(store.root, doc["id"])
        if kill_after == 3:  # killed right after log_params: the 3 loss points exist only in the log
            assert doc["status"] == "KILLED" and doc["metrics"]["loss"]["count"] == 3
            assert doc["params"] == {"p": 1}


# -- reading while a run is in progress ----------------------------------------------------

def test_search_runs_with_a_running_run_never_raises(store, monkeypatch):
    """Regression: search_runs converted end_time (None while a run is RUNNING) through floats, and
    pandas < 3 then rounds np.empty() garbage at the NaN positions (pandas-dev/pandas#58419), raising
    FloatingPointError now and then. np.empty promises nothing about the bytes it returns: give it
    bytes a previous array could have left (large doubles), deterministically, instead of waiting."""
    import numpy as np

    with nbmlops.start_run(experiment="live", name="done"):
        nbmlops.log_metric("loss", 0.5)
    run = nbmlops.start_run(experiment="live", name="in-progress")
    try:
        nbmlops.log_metric("loss", 0.7)
        real_empty = np.empty

        def empty_with_old_bytes(*args, **kwargs):
            out = real_empty(*args, **kwargs)
            if out.dtype == np.float64:
                out.fill(1e308)
            return out

        with monkeypatch.context() as m:
            m.setattr(np, "empty", empty_with_old_bytes)
            df = nbmlops.search_runs("live")
        assert sorted(df["status"]) == ["FINISHED", "RUNNING"]
        assert df["end_time"].isna().sum() == 1
    finally:
        run.end()
        session_mod.pop_run(run)


# -- appends cut mid-line -------------------------------------------------------------------

def test_metric_line_cut_midway_is_skipped_and_the_next_writer_is_not_swallowed(store):
    with nbmlops.start_run(experiment="cut") as run:
        for s in range(4):
            nbmlops.log_metric("loss", 1.0 / (s + 1))
    log = store.metric_log(run.id)
    with open(log, "ab") as f:
        f.write(b'["loss",4,1700000000000,0.12')  # a crash cut this record short

    hist = nbmlops.get_run(run.id).metric_history()
    assert list(hist["step"]) == [0, 1, 2, 3]
    assert list(hist["value"]) == [1.0, 0.5, 1.0 / 3, 0.25]
    # the stale-run sweep rebuilds summaries from the same log without tripping on it
    assert _log_summaries(store.root, run.id)["loss"]["count"] == 4

    # a writer appending afterwards (a restarted process) must not glue its record to the cut one
    from nbmlops.store import AppendLog

    w = AppendLog(log)
    w.write('["loss",4,1700000000001,0.125]\n')
    w.write('["acc",0,1700000000002,0.5]\n')
    w.close()
    hist = nbmlops.get_run(run.id).metric_history()
    assert list(zip(hist["key"], hist["step"], hist["value"])) == [
        ("loss", 0, 1.0), ("loss", 1, 0.5), ("loss", 2, 1.0 / 3), ("loss", 3, 0.25),
        ("loss", 4, 0.125), ("acc", 0, 0.5)]
    lines = log.read_bytes().split(b"\n")
    assert lines[4] == b'["loss",4,1700000000000,0.12', "the cut line must stay alone on its line"


def test_run_logging_into_a_log_with_a_cut_line_keeps_every_point(store):
    """The same through the API: the run's log already ends in a cut line when it starts appending."""
    with nbmlops.start_run(experiment="cut") as run:
        log = store.metric_log(run.id)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_bytes(b'["loss",0,1700000000000,0.9]\n["loss",1,17000')
        for s in range(3):
            nbmlops.log_metric("acc", s / 2, step=s)
    hist = nbmlops.get_run(run.id).metric_history()
    assert list(zip(hist["key"], hist["step"])) == [("loss", 0), ("acc", 0), ("acc", 1), ("acc", 2)]
    assert list(hist["value"]) == [0.9, 0.0, 0.5, 1.0]


def test_cut_lines_in_the_middle_and_garbage_are_skipped(tmp_path):
    log = tmp_path / "m.jsonl"
    log.write_bytes(b'["a",0,1,1.0]\n["a",1,2,\n\xff\xfe garbage\n\n["a",2,3,3.0]\n["a",3,4,4')
    assert list(read_lines(log)) == [["a", 0, 1, 1.0], ["a", 2, 3, 3.0]]
    assert list(read_lines(tmp_path / "missing.jsonl")) == []
    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert list(read_lines(tmp_path / "empty.jsonl")) == []


# -- blobs modified on disk ---------------------------------------------------------------

def _writable(path: Path) -> Path:
    os.chmod(path, 0o644)  # blobs are stored read-only
    return path


def test_modified_model_blob_is_refused_and_never_unpickled(store, tmp_path):
    with nbmlops.start_run(experiment="blobs") as run:
        entry = nbmlops.log_model({"weights": [1, 2, 3]}, name="model")
    assert nbmlops.get_run(run.id).load_model() == {"weights": [1, 2, 3]}

    blob = store.blobs.path(entry["sha256"])
    assert blob.stat().st_mode & 0o222 == 0, "blobs are stored read-only"
    flag = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (exec, (f"open({str(flag)!r}, 'w').close()",))

    _writable(blob).write_bytes(pickle.dumps(Evil()))
    with pytest.raises(IntegrityError, match="modified on disk"):
        nbmlops.get_run(run.id).load_model()
    with pytest.raises(IntegrityError):
        run.load_model("model")  # the run object that logged it checks too
    with pytest.raises(IntegrityError):
        nbmlops.get_run(run.id).artifact("model")
    assert not flag.exists(), "a tampered model file was unpickled"


def test_artifact_with_one_flipped_byte_is_refused(store, tmp_path):
    src = tmp_path / "data.csv"
    src.write_bytes(b"a,b\n" + b"1,2\n" * 1000)
    with nbmlops.start_run(experiment="blobs") as run:
        (entry,) = nbmlops.log_artifact(src)
    path = nbmlops.get_run(run.id).artifact("data.csv")
    assert path.read_bytes() == src.read_bytes()

    data = bytearray(path.read_bytes())
    data[2000] ^= 0x01  # same size, one bit different
    _writable(path).write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=entry["sha256"][:12]):
        nbmlops.get_run(run.id).artifact("data.csv")

    path.unlink()
    with pytest.raises(NotFound, match="missing"):
        nbmlops.get_run(run.id).artifact("data.csv")


def test_temporary_files_of_dead_writers_are_cleaned_on_open(store, tmp_path):
    import subprocess as sp
    import sys as _sys

    with nbmlops.start_run():
        pass
    dead = sp.run([_sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    leftovers = [store.root / "tmp" / f"{dead}-abcdef.pkl", store.root / "db" / f".12.json.{dead}.1401.tmp"]
    mine = store.root / "tmp" / f"{os.getpid()}-0123.pkl"
    for p in (*leftovers, mine):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"partial")
    session_mod._swept.discard(store.root)
    nbmlops.store_info()
    assert not any(p.exists() for p in leftovers) and mine.exists()


def test_an_exited_process_not_yet_collected_is_not_alive():
    """A zombie (exited, its parent has not waited for it yet) must not hold a run RUNNING or a deployment up."""
    import subprocess
    import time

    from nbmlops.store import pid_alive, proc_start

    child = subprocess.Popen(["sleep", "0.1"])
    start = proc_start(child.pid)
    assert pid_alive(child.pid, start)
    deadline = time.time() + 10
    while time.time() < deadline and pid_alive(child.pid, start):
        time.sleep(0.02)
    try:
        assert not pid_alive(child.pid, start) and child.returncode is None  # dead, yet not reaped by us
    finally:
        child.wait()
