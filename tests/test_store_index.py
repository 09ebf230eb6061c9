"""The run summary index (nbmlops/store/index.py): searches and listings read it, never a wrong answer.

Every answer is checked against the run documents themselves, read and filtered here run by run
(the way search_runs worked before the index): after the index is damaged, truncated, replaced by
another file, left stale by an edit behind its back (even one that keeps the shard's size, inode and
time stamp), and while other processes write runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

import nbmlops
from nbmlops.store import index
from nbmlops.tracking import session
from nbmlops.tracking.search import parse_clauses, parse_order

FILTERS = [None, "metrics.acc > 0.5", "metrics.acc > 0.5 and params.model = 'rf'", "params.depth >= 3",
           "params.depth = '3'", "params.flag = 'True'", "params.mixed = 3", "params.mixed != 'x'",
           "tags.team in ('red', 'blue')", "tags.team not in ('red')", "run_name like 'run-1%'",
           "status = 'RUNNING'", "metrics.steps < 5", "metrics.missing > 1", "params.none = 'None'",
           "attributes.start_time > 0", "metrics.acc != 0.25", "params.lr ilike '0.0%'"]
ORDERS = [[], ["metrics.acc desc"], ["metrics.acc"], ["params.model", "metrics.auc desc"], ["params.mixed desc"],
          ["params.depth"], ["tags.team desc", "run_name"], ["metrics.steps desc"], ["end_time"], ["duration desc"]]


def _docs_search(store, experiment: str, filter_text=None, order_by=(), include_deleted=False) -> pd.DataFrame:
    """search_runs computed from the run documents, run by run: the answer the index must give."""
    exp = nbmlops.get_experiment(experiment)
    docs = store.run_docs(exp.id)
    tests = [(c.kind, c.key, c.test) for c in parse_clauses(filter_text)]

    def value(d, kind, key):
        if kind == "metrics":
            return (d["metrics"].get(key) or {}).get("value")
        return d[kind].get(key) if kind in ("params", "tags") else d.get(key)

    docs = [d for d in docs if (include_deleted or not d.get("deleted"))
            and all(test(value(d, kind, key)) for kind, key, test in tests)]
    for spec in reversed([*order_by, "start_time desc"]):
        kind, key, desc = parse_order(spec)
        keyed = [(value(d, kind, key), d) for d in docs]
        present = [p for p in keyed if p[0] is not None]
        try:
            present.sort(key=lambda p: p[0], reverse=desc)
        except TypeError:
            present.sort(key=lambda p: str(p[0]), reverse=desc)
        docs = [d for _, d in present] + [d for v, d in keyed if v is None]
    params = sorted({k for d in docs for k in d["params"]})
    metrics = sorted({k for d in docs for k in d["metrics"]})
    tags = sorted({k for d in docs for k in d["tags"]})
    columns = ["run_id", "experiment", "run_name", "status", "start_time", "end_time", "duration", "user",
               *(f"params.{k}" for k in params), *(f"metrics.{k}" for k in metrics), *(f"tags.{k}" for k in tags)]
    rows = [[d["id"], experiment, d["name"], d["status"], d["start_time"], d["end_time"], d["duration"], d["user"],
             *(d["params"].get(k) for k in params), *(value(d, "metrics", k) for k in metrics),
             *(d["tags"].get(k) for k in tags)] for d in docs]
    df = pd.DataFrame(rows, columns=columns)
    nat = np.iinfo(np.int64).min
    for i, col in ((4, "start_time"), (5, "end_time")):
        df[col] = np.array([nat if r[i] is None else r[i] for r in rows], dtype=np.int64).view("M8[ms]")
    for k in metrics:
        df[f"metrics.{k}"] = df[f"metrics.{k}"].astype("float64")
    return df


def _same(store, experiment: str, filter_text=None, order_by=(), include_deleted=False) -> None:
    got = nbmlops.search_runs(experiment, filter_text, order_by=list(order_by), include_deleted=include_deleted)
    want = _docs_search(store, experiment, filter_text, order_by, include_deleted)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True),
                                  check_index_type=False, obj=f"filter {filter_text!r}, order {order_by}")


def _fill(k0: int, k1: int, experiment: str = "idx") -> list[str]:
    """Runs of varied shapes: params of mixed types, a param logged as None, int and float metrics,
    keys only some runs have, running, failed and deleted runs."""
    ids = []
    for k in range(k0, k1):
        run = nbmlops.start_run(experiment=experiment, name=f"run-{k}", tags={"team": ("red", "blue", "green")[k % 3]})
        run.log_params({"model": ("rf", "gbm", "lr")[k % 3], "depth": k % 7, "lr": round(0.01 * (k % 5), 3),
                        "mixed": (3, "3", "x", 3.0, True)[k % 5], "flag": k % 2 == 0})
        if k % 4 == 0:
            run.log_param("none", None)
        run.log_metric("acc", (k * 37 % 100) / 100)
        run.log_metric("auc", 0.25 if k % 6 == 0 else (k * 53 % 100) / 100)
        if k % 3:
            run.log_metric("steps", k % 9)  # an int metric
        ids.append(run.id)
        if k % 10 == 9:
            session.pop_run(run)  # left RUNNING (its owner, this process, is alive)
            continue
        run.end("FAILED" if k % 11 == 0 else "FINISHED")
    nbmlops.delete_run(ids[1])
    return ids


def _index_file(store) -> os.PathLike:
    exp = nbmlops.get_experiment("idx")
    return store.root / "index" / "runs" / f"{exp.id}.idx"


def test_search_from_the_index_is_the_search_of_the_documents(store):
    _fill(0, 60)
    for f in FILTERS:
        for order in ORDERS:
            _same(store, "idx", f, order)
    _same(store, "idx", None, [], include_deleted=True)
    index.forget()  # as a new process: from the index file
    assert _index_file(store).exists()
    for f in FILTERS[:6]:
        _same(store, "idx", f, ["metrics.auc desc"])


def test_changes_are_seen_by_stat_alone(store, monkeypatch):
    """With no shard taken as racy, a changed shard is still told by its stat (size, inode, time)."""
    monkeypatch.setattr(index, "RACY_NS", 0)
    ids = _fill(0, 30)
    _same(store, "idx", None, ["metrics.acc"])
    for k, run_id in enumerate(ids[:8]):
        nbmlops.set_run_tag(run_id, "team", f"t{k}")
        if k % 3 == 0:
            nbmlops.delete_run(run_id)
        if k % 2:
            index.forget()
        _same(store, "idx", "tags.team like 't%'", ["tags.team desc"])
        _same(store, "idx", None, [], include_deleted=True)
    page = nbmlops.search_runs("idx", "metrics.acc > 0.2", order_by="metrics.acc desc", max_results=7)
    assert len(page) == 7 and page["metrics.acc"].is_monotonic_decreasing


def test_listing_pages_match_the_documents(store):
    _fill(0, 40)
    listing = nbmlops.run_listing("idx")
    want = _docs_search(store, "idx", "params.model = 'rf'", ["metrics.acc desc"])
    sel = listing.query("params.model = 'rf'", sort="metrics.acc", descending=True)
    assert sel.ids == list(want["run_id"])
    assert sel.values("metrics.acc") == [None if v != v else v for v in want["metrics.acc"]]  # NaN: none
    assert list(sel.page(2, 3)["run_id"]) == list(want["run_id"][2:5])
    words = listing.query("team=blue run-1")
    docs = [d for d in store.run_docs(nbmlops.get_experiment("idx").id) if not d["deleted"]]
    assert set(words.ids) == {d["id"] for d in docs if d["tags"]["team"] == "blue" and "run-1" in d["name"]}


@pytest.mark.parametrize("damage", ["truncate", "empty", "flip", "garbage", "other", "folder"])
def test_a_damaged_index_is_rebuilt_and_never_answers(store, damage):
    ids = _fill(0, 30)
    nbmlops.search_runs("idx")
    path = _index_file(store)
    raw = path.read_bytes()
    nbmlops.set_run_tag(ids[3], "team", "violet")  # the index is stale too: it must not be believed
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "flip":
        cut = len(raw) - 100
        path.write_bytes(raw[:cut] + bytes([raw[cut] ^ 0x20]) + raw[cut + 1:])
    elif damage == "garbage":
        path.write_bytes(os.urandom(5000))
    elif damage == "other":  # a whole, well-formed index: another experiment's
        _fill(100, 110, experiment="other")
        nbmlops.search_runs("other")
        path.write_bytes((store.root / "index" / "runs" / f"{nbmlops.get_experiment('other').id}.idx").read_bytes())
    else:
        path.unlink()
        path.mkdir()
    index.forget()
    _same(store, "idx", "tags.team = 'violet'")
    _same(store, "idx", None, ["params.depth desc"])
    assert list(nbmlops.search_runs("idx", "tags.team = 'violet'")["run_id"]) == [ids[3]]
    if damage != "folder":
        index.forget()
        assert index._read_file(path), "a damaged index is replaced by a good one"


def test_an_edit_behind_its_back_is_seen(store):
    """A run changed without tracking (its shard rewritten by another program's DocFile.edit), even
    keeping the shard's size, inode and time stamp right after the index read it (a racy shard)."""
    ids = _fill(0, 20)
    target = ids[4]
    exp = nbmlops.get_experiment("idx")
    shard = store.run_file(exp.id, target)
    with shard.edit() as docs:  # rewritten by another writer: new inode, new time stamp
        docs.update({"params": {**docs.get(id=target)["params"], "model": "XX"}}, id=target)
    assert list(nbmlops.search_runs("idx", "params.model = 'XX'")["run_id"]) == [target]

    # same size, same inode, same time stamp: written in place just after the index read the shard
    st = os.stat(shard.path)
    raw = shard.path.read_bytes()
    assert raw.count(b'"model":"XX"') == 1
    with open(shard.path, "r+b") as f:
        f.write(raw.replace(b'"model":"XX"', b'"model":"YY"'))
    os.utime(shard.path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(shard.path)[1:] == st[1:]
    for _ in range(2):  # in this process, then as a new one would (from the index file)
        assert list(nbmlops.search_runs("idx", "params.model = 'YY'")["run_id"]) == [target]
        _same(store, "idx", None, ["params.model"])
        index.forget()


def test_removed_and_damaged_shards(store):
    ids = _fill(0, 40)
    nbmlops.search_runs("idx")
    exp = nbmlops.get_experiment("idx")
    shard = store.run_file(exp.id, ids[0])
    gone = {d["id"] for d in shard.all()}
    shard.path.write_bytes(b"{not json")
    with pytest.warns(UserWarning, match="left out of the listing"):
        got = set(nbmlops.search_runs("idx", include_deleted=True)["run_id"])
    assert got == set(ids) - gone
    shard.path.unlink()
    index.forget()
    assert set(nbmlops.search_runs("idx", include_deleted=True)["run_id"]) == set(ids) - gone


WRITER = textwrap.dedent("""
    import sys, nbmlops
    nbmlops.set_store(sys.argv[1])
    for k in range(int(sys.argv[2])):
        with nbmlops.start_run(experiment="idx", name=f"w{sys.argv[3]}-{k}"):
            nbmlops.log_param("model", ("rf", "gbm")[k % 2])
            nbmlops.log_metric("acc", k / 100)
""")
BUILDER = textwrap.dedent("""
    import sys, nbmlops
    from nbmlops.store import index
from nbmlops.tracking import session
    nbmlops.set_store(sys.argv[1])
    index.REWRITE_ROWS = 1  # write the index file on every change: a kill lands inside a write
    while True:
        index.forget()
        nbmlops.search_runs("idx")
        nbmlops.set_run_tag(sys.argv[2], "n", str(len(nbmlops.search_runs("idx"))))
""")


def test_many_writers_and_a_killed_index_writer(store, tmp_path):
    ids = _fill(0, 10)
    script = tmp_path / "w.py"
    script.write_text(WRITER)
    builder = tmp_path / "b.py"
    builder.write_text(BUILDER)
    writers = [subprocess.Popen([sys.executable, str(script), str(store.root), "15", str(i)]) for i in range(3)]
    killed = subprocess.Popen([sys.executable, str(builder), str(store.root), ids[0]])
    try:
        deadline = time.monotonic() + 120
        exp = nbmlops.get_experiment("idx").id

        def rf() -> set[str]:
            return {d["id"] for d in store.run_docs(exp) if d["params"].get("model") == "rf" and not d["deleted"]}

        while any(w.poll() is None for w in writers) and time.monotonic() < deadline:
            # runs only join, and a run's model is logged once: what the documents held before the
            # search is in its answer, and its answer is in what they hold after it
            before = rf()
            got = set(nbmlops.search_runs("idx", "params.model = 'rf'")["run_id"])
            assert before <= got <= rf()
            time.sleep(0.05)
        assert all(w.wait(timeout=60) == 0 for w in writers)
        time.sleep(1.0)
        os.kill(killed.pid, signal.SIGKILL)  # it writes the index all the time: maybe inside a write
        killed.wait(timeout=30)
    finally:
        for p in [*writers, killed]:
            if p.poll() is None:
                p.kill()
                p.wait()
    index.forget()
    _same(store, "idx", None, ["run_name"])
    assert len(nbmlops.search_runs("idx", "run_name like 'w%'")) == 45
    store.clean_tmp()  # what the next process to open the store does: the killed writer's file goes
    leftovers = list((store.root / "index").glob("**/.*.tmp"))
    assert not leftovers, leftovers
