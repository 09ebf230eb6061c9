"""Runs whose process died: a kernel that crashed leaves its run RUNNING; the next process to
open the store marks it KILLED (with metric summaries rebuilt from its log)."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..store import SCHEMA, DamagedFile, Store, own_start, pid_alive, pid_space, read_blocks
from ..store.records import ActiveRecord, MetricSummary, RunRecord
from . import environment

__all__ = ["register_active", "unregister_active", "sweep_stale_runs", "metric_summaries", "metric_points",
           "FLOAT_MAX"]

FLOAT_MAX = int(sys.float_info.max)  # a larger integer is no float: no chart, summary or export can take it


def register_active(store: Store, doc: RunRecord) -> None:
    active: ActiveRecord = {"schema": SCHEMA, "run_id": doc["id"], "experiment_id": doc["experiment_id"],
                            "pid": os.getpid(), "pid_start": own_start(), "pid_space": pid_space(),
                            "host": environment.host()}
    with store.active.edit() as docs:
        docs.insert(dict(active))


def unregister_active(store: Store, run_id: str) -> None:
    with store.active.edit() as docs:
        docs.remove(run_id=run_id)


def sweep_stale_runs(store: Store) -> list[str]:
    """Mark KILLED every run left RUNNING by a process of this host (and pid namespace: not a
    container's) that no longer exists."""
    host, space = environment.host(), pid_space()
    dead = [a for a in store.active.all() if a["host"] == host and a.get("pid_space", space) == space
            and not pid_alive(a["pid"], a.get("pid_start"))]
    killed = []
    for a in dead:
        try:
            if _mark_killed(store, a, host):
                killed.append(a["run_id"])
        except StoreError as exc:  # its run file is damaged: say so, and let the run being started go on
            warnings.warn(f"run {a['run_id']} of a process that exited was not marked KILLED: {exc}", DamagedFile,
                          stacklevel=4)
            continue
        with store.active.edit() as docs:
            docs.remove(run_id=a["run_id"])
    return killed


def _mark_killed(store: Store, a: dict[str, Any], host: str) -> bool:
    """Mark the run of a dead process KILLED, if it is still RUNNING (checked under its file's lock)."""
    with store.run_file(a["experiment_id"], a["run_id"]).edit() as docs:
        doc = docs.get(id=a["run_id"])
        if doc is None or doc["status"] != "RUNNING":
            return False
        metrics = metric_summaries(store, a["run_id"])
        last = max([doc["start_time"], *(m["timestamp"] for m in metrics.values())])
        docs.update({"status": "KILLED", "end_time": last, "duration": (last - doc["start_time"]) / 1000,
                     "metrics": {**doc["metrics"], **metrics},
                     "error": f"the process that ran it (pid {a['pid']} on {host}) exited without ending it"},
                    id=a["run_id"])
        return True


def metric_points(path: Path, skipped: list[int] | None = None) -> Iterator[list[Any]]:
    """The points ``[key, step, timestamp, value]`` of a metric log. A line cut short by a crash, or
    one that is not a point (wrong shape or types, a value that is not a finite float), is skipped
    and counted in ``skipped[0]``. Read a block at a time: memory stays bounded however long the log."""
    counts: dict[str, int] = {}
    bad = 0
    top = FLOAT_MAX
    for items in read_blocks(path, counts):
        # one comprehension per block, no call per point: json reads NaN and Infinity (v - v != 0),
        # log_metric never writes them
        good = [p for p in items if type(p) is list and len(p) == 4 and type(p[0]) is str and type(p[1]) is int
                and type(p[2]) is int and ((type(v := p[3]) is float and v - v == 0.0)
                                           or (type(v) is int and -top <= v <= top))]
        bad += len(items) - len(good)
        yield from good
    if skipped is not None:
        skipped[0] += bad + counts.get("skipped", 0)


def metric_summaries(store: Store, run_id: str) -> dict[str, MetricSummary]:
    """The summary of each metric of a run, rebuilt from its metric log."""
    out: dict[str, MetricSummary] = {}
    for line in metric_points(store.metric_log(run_id)):
        key, step, ts, value = line
        m = out.get(key)
        if m is None:
            out[key] = {"value": value, "step": step, "timestamp": ts, "min": value, "max": value, "count": 1}
            continue
        if step >= m["step"]:
            m["value"], m["step"], m["timestamp"] = value, step, ts
        m["min"] = min(m["min"], value)
        m["max"] = max(m["max"], value)
        m["count"] += 1
    return out
