"""Runs whose process died: a kernel that crashed leaves its run RUNNING; the next process to
open the store marks it KILLED (with metric summaries rebuilt from its log)."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..store import SCHEMA, DamagedFile, Store, own_start, pid_alive, pid_space, read_lines
from ..store.records import ActiveRecord, MetricSummary, RunRecord
from . import environment

__all__ = ["register_active", "unregister_active", "sweep_stale_runs", "metric_summaries", "metric_points"]



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
    one that is not a point (wrong shape or types), is skipped and counted in ``skipped[0]``."""
    counts: dict[str, int] = {}
    for line in read_lines(path, counts):
        if (isinstance(line, list) and len(line) == 4 and isinstance(line[0], str)
                and all(type(x) is int for x in line[1:3]) and type(line[3]) in (int, float)
                and math.isfinite(line[3])):  # json reads NaN and Infinity; log_metric never writes them
            yield line
        elif skipped is not None:
            skipped[0] += 1
    if skipped is not None:
        skipped[0] += counts.get("skipped", 0)


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
