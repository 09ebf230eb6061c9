"""Runs whose process died: a kernel that crashed leaves its run RUNNING; the next process to
open the store marks it KILLED (with metric summaries rebuilt from its log)."""

from __future__ import annotations

import os
import warnings
from typing import Any

from tinydb import where

from ..errors import StoreError
from ..store import SCHEMA, DamagedFile, Store
from ..store.procs import own_start as _own_start
from ..store.procs import pid_alive, pid_space
from ..store.procs import proc_start as _proc_start
from . import environment

__all__ = ["pid_alive", "_proc_start", "_own_start", "register_active", "unregister_active", "sweep_stale_runs"]


def register_active(store: Store, doc: dict[str, Any]) -> None:
    with store.active.table() as t:
        t.insert({"schema": SCHEMA, "run_id": doc["id"], "experiment_id": doc["experiment_id"], "pid": os.getpid(),
                  "pid_start": _own_start(), "pid_space": pid_space(), "host": environment.host()})


def unregister_active(store: Store, run_id: str) -> None:
    with store.active.table() as t:
        t.remove(where("run_id") == run_id)


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
        with store.active.table() as t:
            t.remove(where("run_id") == a["run_id"])
    return killed


def _mark_killed(store: Store, a: dict[str, Any], host: str) -> bool:
    """Mark the run of a dead process KILLED, if it is still RUNNING (checked under its file's lock)."""
    with store.run_file(a["experiment_id"], a["run_id"]).table() as t:
        docs = t.search(where("id") == a["run_id"])
        if not docs or docs[0]["status"] != "RUNNING":
            return False
        doc = docs[0]
        metrics = metric_summaries(store, a["run_id"])
        last = max([doc["start_time"], *(m["timestamp"] for m in metrics.values())])
        t.update({"status": "KILLED", "end_time": last, "duration": (last - doc["start_time"]) / 1000,
                  "metrics": {**doc["metrics"], **metrics},
                  "error": f"the process that ran it (pid {a['pid']} on {host}) exited without ending it"},
                 where("id") == a["run_id"])
        return True


def metric_summaries(store: Store, run_id: str) -> dict[str, Any]:
    from .runs import metric_points

    out: dict[str, Any] = {}
    for line in metric_points(store.metric_log(run_id)):
        key, step, ts, value = line
        m = out.get(key)
        if m is None:
            out[key] = {"value": value, "step": step, "timestamp": ts, "min": value, "max": value, "count": 1}
            continue
        if step >= m["step"]:
            m.update(value=value, step=step, timestamp=ts)
        m["min"] = min(m["min"], value)
        m["max"] = max(m["max"], value)
        m["count"] += 1
    return out


_summaries = metric_summaries  # old private name, until every caller uses the public one
