"""What a deployment's live monitor does when a window drifts: ``serve(..., on_drift="retrain:PIPELINE")``.

A recorded window whose drift verdict is "drifted" starts one job, ``python -m nbmlops.pipelines
retrain`` (``retrain_on_drift`` on the window's labelled rows; :mod:`nbmlops.pipelines.__main__`), in
its own process: a pipeline run never competes with the requests or the monitor, and serving needs no
import of pipelines (the layer above it). One job at a time per served version; once a job recorded a
decision, that version is not retrained again (a candidate waits for a person or the promotion rule);
a window with too few labels is retried with the next drifted window. ``retrain+promote:PIPELINE``
lets the job move the alias, and only when ``retrain_on_drift``'s rule says the candidate is better.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from typing import Any

from ..errors import InvalidInput
from ..registry.uri import parse
from ..store import current_store

ACTIONS = {"retrain": False, "retrain+promote": True}  # action -> may the job move the alias
TOO_FEW = 3  # the job's exit status when the window has too few labels (nbmlops.pipelines.__main__.TOO_FEW)


def parse_on_drift(value: Any) -> str | None:
    """``on_drift`` checked: ``"retrain:PIPELINE"`` or ``"retrain+promote:PIPELINE"`` naming a pipeline
    the store has (InvalidInput naming the problem); None stays None."""
    if value is None:
        return None
    m = re.fullmatch(r"([a-z+]+):(.+)", value.strip()) if isinstance(value, str) else None
    if m is None or m.group(1) not in ACTIONS:
        raise InvalidInput(f"on_drift takes 'retrain:PIPELINE' or 'retrain+promote:PIPELINE', got {value!r}")
    name = m.group(2).strip()
    known = sorted(d["name"] for d in current_store().pipeline_definitions().all())
    if name not in known:
        raise InvalidInput(f"on_drift names pipeline {name!r}, which is not in the store "
                           f"(pipelines: {', '.join(known[:10]) or 'none'}); define it with nbmlops.Pipeline first")
    return f"{m.group(1)}:{name}"


class RetrainPolicy:
    """Starts the retrain job for drifted windows and says where each version's job stands."""

    def __init__(self, spec: str, model_uri: str) -> None:
        self.spec = spec
        action, self.pipeline = spec.split(":", 1)
        self.promote = ACTIONS[action]
        self.model_uri = model_uri
        self.jobs: dict[int, dict[str, Any]] = {}  # version -> {"proc", "window", "started", "state"}

    def after(self, name: str, version: int, summary: dict[str, Any]) -> dict[str, Any] | None:
        """Called after each judged window of ``name``/``version``: start a job for a recorded drifted
        window unless one runs or one finished; returns the version's job state for ``/monitor``."""
        job = self._poll(version)
        drifted = summary.get("dataset_drift") and summary.get("drift_id")
        if drifted and (job is None or job["state"] == "waiting for labels"):
            job = self._start(name, version, summary["drift_id"])
        return None if job is None else {k: v for k, v in job.items() if k != "proc"}

    def _poll(self, version: int) -> dict[str, Any] | None:
        job = self.jobs.get(version)
        if job is None or job["state"] != "running":
            return job
        code = job["proc"].poll()
        if code is not None:
            job["state"] = {0: "decided", TOO_FEW: "waiting for labels"}.get(
                code, f"failed (exit {code}): see the deployment's logs()")
            job["exit"] = code
        return job

    def _start(self, name: str, version: int, window: str) -> dict[str, Any]:
        ref = parse(self.model_uri)
        model = self.model_uri if ref.alias is not None else f"{name}/{version}"
        cmd = [sys.executable, "-m", "nbmlops.pipelines", "retrain", "--store", str(current_store().root),
               "--window", window, "--pipeline", self.pipeline, "--model", model]
        if self.promote:
            cmd.append("--promote")
        # stdout and stderr are the server's, which is its server.log; the job outlives no one: it ends by itself
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        job = {"proc": proc, "pid": proc.pid, "window": window, "pipeline": self.pipeline,
               "started": int(time.time() * 1000), "state": "running"}
        self.jobs[version] = job
        return job

    def status(self) -> dict[str, Any]:
        """Each version's job as ``/monitor`` shows it: pid, window, state (running, decided, waiting for
        labels, failed)."""
        return {str(v): {k: x for k, x in (self._poll(v) or {}).items() if k != "proc"} for v in self.jobs}
