"""Running a pipeline: plan (every check, nothing written), then steps in dependency order.

- The plan (``plan``) checks everything first; nothing is written before it passes.
- Independent steps run in parallel, at most ``workers`` at a time: notebook steps in kernels;
  function steps in this process, one at a time (they share the active-run stack).
- Notebook steps share warm kernels (``isolate="namespace"``, the default): each later step of a run
  starts in a fresh namespace of the same kernel, installed packages still imported (``kernels``);
  ``isolate="kernel"`` starts a new kernel per step. Same reports, caching and failures.
- Each step execution is a tracked run (tags ``nbmlops.pipeline``, ``nbmlops.pipeline_run``,
  ``nbmlops.step``) whose inputs are named dataset versions and models, and whose outputs become
  the next steps' inputs.
- Caching as Kubeflow does it: the key hashes the step's code, the parameters it uses and the
  identity of its inputs (dataset content hashes, model file hashes). A step whose key has a
  cache entry with outputs still in the store is not run: it reuses them and says where from.
- A failed step is retried ``retries`` times, then the pipeline stops with its error and report.
- A run whose process died (kill -9, kernel restart) is resumed by the next run of the same
  pipeline with the same code and parameters: finished steps are kept, the rest run.
"""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._util import new_id, now_ms
from ..errors import InvalidInput, NbmlopsError
from ..store import SCHEMA, Store, own_start, pid_alive
from ..store.records import (
    ArtifactEntry,
    PipelineRunRecord,
    PipelineStepRecord,
    StepRef,
    StepReport,
)
from ..tracking import environment
from ..tracking.datasets import DatasetVersion, log_version, record_on_run, resolve
from ..tracking.lookup import add_run_artifacts, fail_run, find_run_doc
from ..tracking.runs import Run, start_run
from ..tracking.session import pop_run, push_run, tracking_store
from . import context, notebook, records
from .definition import Port, Step
from .kernels import KernelPool
from .plan import Plan, cache_key

if TYPE_CHECKING:
    from .pipeline import PipelineRun

_tracking = threading.RLock()  # creating runs and running function steps: the active-run stack is per process
DONE = ("done", "cached")
ISOLATION = ("namespace", "kernel")


class StepFailed(NbmlopsError):
    """A step failed (after its retries); ``.run`` is the pipeline run, ``.step`` the step."""

    def __init__(self, message: str, run: PipelineRun, step: str) -> None:
        super().__init__(message)
        self.run = run
        self.step = step


# -- running ----------------------------------------------------------------------------------
def execute(plan: Plan, *, cache: bool = True, workers: int | None = None,
            progress: Callable[[PipelineRun], None] | None = None, resume: bool = True,
            reports: Path | None = None, isolate: str = "namespace") -> PipelineRun:
    """Run the plan's steps; ``isolate`` is "namespace" (warm kernels, a fresh namespace per notebook
    step) or "kernel" (a new kernel per notebook step)."""
    from .pipeline import PipelineRun  # cycle: pipeline imports this module

    if isolate not in ISOLATION:
        raise InvalidInput(f"isolate is 'namespace' (warm kernels, a fresh namespace per step) or 'kernel' (a new "
                           f"kernel per step), got {isolate!r}")
    pipeline = plan.pipeline
    store = tracking_store()  # creates the store if needed and sweeps runs whose process died
    records.save_definition(store, pipeline.name, pipeline.to_dict())
    doc = _start_or_resume(store, plan, cache, resume)
    reports_dir = (reports or pipeline.reports or Path.cwd() / "reports" / "pipelines") / pipeline.name / doc["id"][:8]
    n_workers = max(1, int(workers or pipeline.workers or min(4, os.cpu_count() or 1)))
    kernels = KernelPool() if isolate == "namespace" else None
    state = _State(store, plan, doc, cache, reports_dir, kernels)
    prun = PipelineRun(store, doc)
    notify = progress or (lambda _run: None)
    failed: str | None = None
    interrupted = False
    pool = ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix=f"pipeline-{pipeline.name}")
    running: dict[Future[Any], str] = {}
    try:
        notify(prun.refresh(state.doc))
        while True:
            if failed is None:
                for s in plan.steps:
                    if len(running) >= n_workers:
                        break
                    rec = state.doc["steps"][s.name]
                    if rec["state"] == "pending" and all(state.doc["steps"][u]["state"] in DONE
                                                         for u in plan.upstream[s.name]):
                        state.set_step(s.name, state="running", started=now_ms())
                        running[pool.submit(state.run_step, s)] = s.name
            if not running:
                break
            finished, _ = wait(list(running), timeout=0.25, return_when=FIRST_COMPLETED)
            for f in finished:
                name = running.pop(f)
                exc = f.exception()
                if exc is not None:  # a bug of ours, not the step's: record it like a step failure
                    state.set_step(name, state="failed", ended=now_ms(), error=f"{type(exc).__name__}: {exc}")
                if state.doc["steps"][name]["state"] == "failed" and failed is None:
                    failed = name
            if state.changed():
                notify(prun.refresh(state.doc))
    except BaseException:
        interrupted = True
        pool.shutdown(wait=False, cancel_futures=True)
        if kernels is not None:
            kernels.close(now=True)  # the steps still running stop with their kernels
        state.finish("KILLED", "interrupted (KeyboardInterrupt)")
        notify(prun.refresh(state.doc))
        raise
    finally:
        if not interrupted:
            pool.shutdown(wait=True)
            if kernels is not None:
                kernels.close()
    if failed is not None:
        rec = state.doc["steps"][failed]
        for s in plan.steps:
            if state.doc["steps"][s.name]["state"] == "pending":
                state.set_step(s.name, state="skipped", note=f"not run: step {failed} failed")
        report = rec.get("report")
        where = f" (report: {report['html'] or report['notebook']})" if report else ""
        attempts = rec.get("attempts") or 1
        message = (f"pipeline {pipeline.name}: step {failed} failed"
                   f"{f' after {attempts} attempts' if attempts > 1 else ''}: {rec.get('error')}{where}")
        state.finish("FAILED", message, failed_step=failed)
        notify(prun.refresh(state.doc))
        raise StepFailed(message, prun, failed)
    state.finish("FINISHED")
    notify(prun.refresh(state.doc))
    return prun


def _owner() -> dict[str, Any]:
    return {"pid": os.getpid(), "pid_start": own_start(), "host": environment.host(), "user": environment.user()}


def _start_or_resume(store: Store, plan: Plan, cache: bool, resume: bool) -> PipelineRunRecord:
    host = environment.host()
    sig = plan.signature
    for old in records.list_runs(store, plan.pipeline.name):
        if old["status"] != "RUNNING" or old["host"] != host or pid_alive(old["pid"], old.get("pid_start")):
            continue
        if resume and old.get("signature") == sig:
            steps = {}
            for s in plan.steps:
                rec = old["steps"].get(s.name) or _new_step(s, plan)
                if rec["state"] in DONE and _outputs_exist(store, rec.get("outputs") or {}):
                    rec = {**rec, "resumed": True}
                else:
                    rec = {**_new_step(s, plan), "previous_attempts": rec.get("runs") or []}
                steps[s.name] = rec
            fields = {"steps": steps, "status": "RUNNING", "resumed": old.get("resumed", 0) + 1,
                      "resumed_time": now_ms(), "cache": cache, **_owner()}
            return records.update_run(store, old["id"], fields)
        records.update_run(store, old["id"], {"status": "KILLED", "end_time": now_ms(),
                                              "error": "its process died; not resumed (the pipeline, its code or its "
                                                       "parameters changed since)"})
        break
    doc: PipelineRunRecord = {
        "schema": SCHEMA, "id": new_id(), "pipeline": plan.pipeline.name, "params": plan.params, "signature": sig,
        "experiment": plan.pipeline.experiment, "status": "RUNNING", "start_time": now_ms(), "end_time": None,
        "duration": None, "cache": cache, "resumed": 0, "error": None, "failed_step": None,
        "order": [s.name for s in plan.steps], "steps": {s.name: _new_step(s, plan) for s in plan.steps},
        **_owner(),
    }
    records.insert_run(store, doc)
    return doc


def _new_step(s: Step, plan: Plan) -> PipelineStepRecord:
    return {"state": "pending", "kind": s.kind, "upstream": plan.upstream[s.name], "key": None, "run_id": None,
            "runs": [], "attempts": 0, "inputs": {}, "outputs": {}, "params": plan.used[s.name],
            "cached_from": None, "started": None, "ended": None, "duration": None, "error": None, "report": None}


def _outputs_exist(store: Store, outputs: dict[str, StepRef]) -> bool:
    for ref in outputs.values():
        sha = ref.get("blob") if ref["kind"] == "dataset" else ref.get("sha256")
        if not sha or not store.blobs.path(sha).exists():
            return False
    return True


class _State:
    """The pipeline run document and the work of its steps (called from worker threads)."""

    def __init__(self, store: Store, plan: Plan, doc: PipelineRunRecord, cache: bool, reports: Path,
                 kernels: KernelPool | None) -> None:
        self.store, self.plan, self.doc, self.cache, self.reports = store, plan, doc, cache, reports
        self.kernels = kernels
        self._lock = threading.Lock()
        self._version = 0
        self._seen = -1

    def changed(self) -> bool:
        with self._lock:
            changed, self._seen = self._seen != self._version, self._version
        return changed

    def set_step(self, name: str, **fields: Any) -> None:
        with self._lock:
            self.doc = records.update_run(self.store, self.doc["id"], step=name, step_fields=fields)
            self._version += 1

    def finish(self, status: str, error: str | None = None, **extra: Any) -> None:
        end = now_ms()
        with self._lock:
            self.doc = records.update_run(self.store, self.doc["id"], {
                "status": status, "end_time": end, "duration": (end - self.doc["start_time"]) / 1000,
                "error": error, **extra})
            self._version += 1

    # -- one step -------------------------------------------------------------------------------
    def inputs_of(self, s: Step) -> dict[str, StepRef]:
        refs = dict(self.plan.external[s.name])
        for port in s.inputs.values():
            if port.local not in refs:
                producer = self.plan.producers[port.key]
                refs[port.local] = self.doc["steps"][producer]["outputs"][port.name]
        return refs

    def run_step(self, s: Step) -> None:
        started = time.perf_counter()
        inputs = self.inputs_of(s)
        params = self.plan.used[s.name]
        key = cache_key(s.kind, self.plan.code[s.name], params, inputs, [p.spec for p in s.outputs.values()])
        self.set_step(s.name, key=key, inputs=inputs)
        if self.cache and s.cache:
            hit = records.cache_get(self.store, key)
            if hit is not None and _outputs_exist(self.store, hit["outputs"]):
                self.set_step(s.name, state="cached", outputs=hit["outputs"], run_id=hit["run_id"],
                              cached_from={"run_id": hit["run_id"], "pipeline_run": hit["pipeline_run"],
                                           "pipeline": hit.get("pipeline"), "time": hit["time"]},
                              ended=now_ms(), duration=time.perf_counter() - started)
                return
        error = None
        for attempt in range(1, s.retries + 2):
            run = self._new_run(s, inputs, params, attempt)
            rec = self.doc["steps"][s.name]
            self.set_step(s.name, run_id=run.id, attempts=attempt, runs=[*rec.get("runs", []), run.id], error=None)
            error, report = self._execute(s, run, inputs, params, attempt)
            outputs: dict[str, StepRef] = {}
            if error is None:
                outputs, error = collect_outputs(self.store, s, run.id)
            if report:
                self.set_step(s.name, report=report)
            if error is None:
                self.set_step(s.name, state="done", outputs=outputs, ended=now_ms(),
                              duration=time.perf_counter() - started)
                records.cache_put(self.store, {"key": key, "pipeline": self.plan.pipeline.name, "step": s.name,
                                               "pipeline_run": self.doc["id"], "run_id": run.id, "outputs": outputs,
                                               "time": now_ms()})
                return
            end_failed(self.store, run.id, error)
        self.set_step(s.name, state="failed", error=error, ended=now_ms(), duration=time.perf_counter() - started)

    def _new_run(self, s: Step, inputs: dict[str, StepRef], params: dict[str, Any], attempt: int) -> Run:
        tags = {"nbmlops.pipeline": self.plan.pipeline.name, "nbmlops.pipeline_run": self.doc["id"],
                "nbmlops.step": s.name, "nbmlops.attempt": attempt}
        with _tracking:
            run = start_run(self.plan.pipeline.experiment, f"{self.plan.pipeline.name}.{s.name}", tags, nested=True,
                            source=s.code(), notebook=str(s.notebook) if s.notebook else None)
            pop_run(run)
            try:
                if params:
                    run.log_params(params)
                for local, ref in inputs.items():
                    if ref["kind"] == "dataset":
                        record_on_run(run, DatasetVersion(self.store, resolve(f"{ref['name']}@{ref['version']}",
                                                                                self.store)), role="input")
                    else:
                        label = ref.get("uri") or f"{ref.get('run_id', '')[:8]}:{ref['name']}"
                        run.set_tag(f"nbmlops.input.{local}", label)
            except BaseException:
                run.end("FAILED", traceback.format_exc())
                raise
        return run

    def _context(self, s: Step, run: Run, inputs: dict[str, StepRef], params: dict[str, Any]) -> dict[str, Any]:
        return {"mode": "store", "store": str(self.store.root), "run_id": run.id, "pipeline": self.plan.pipeline.name,
                "pipeline_run": self.doc["id"], "step": s.name, "params": params,
                "inputs": {k: {**v} for k, v in inputs.items()},
                "outputs": {p.local: {"kind": p.kind, "name": p.name} for p in s.outputs.values()}}

    def _execute(self, s: Step, run: Run, inputs: dict[str, StepRef], params: dict[str, Any],
                 attempt: int) -> tuple[str | None, StepReport | None]:
        data = self._context(s, run, inputs, params)
        if s.kind == "function":
            return run_function(s, run, data, inputs, params), None
        ctx_path = self.store.blobs.tmp_path(".json")
        ctx_path.write_text(json.dumps(data))
        out = self.reports / f"{s.name}.ipynb"
        try:
            error = notebook.execute(s.notebook, out, ctx_path, params, step=s.name,  # type: ignore[arg-type]
                                     pipeline=self.plan.pipeline.name, kernel=s.kernel, timeout=s.timeout,
                                     kernels=self.kernels)
        finally:
            ctx_path.unlink(missing_ok=True)
        report: StepReport | None = None
        if out.exists():
            html = notebook.html_report(out, out.with_suffix(".html"))
            report = {"notebook": str(out), "html": str(html) if html else None, "attempt": attempt}
            _attach(self.store, run.id, [("report.ipynb", out), *([("report.html", html)] if html else [])])
        return error, report


def run_function(s: Step, run: Run, data: dict[str, Any], inputs: dict[str, Any],
                 params: dict[str, Any]) -> str | None:
    """Run a function step in this process as ``run`` (its context around the call); its error or None."""
    with _tracking:
        push_run(run)
        try:
            with context.active(data, run):
                kwargs = {local: context.step_input(local) for local in inputs}
                result = s.function(**kwargs, **params)  # type: ignore[misc]
                for port, value in _returned(s, result).items():
                    if value is None:
                        continue
                    if port.kind == "dataset":
                        log_version(value, port.name, run=run)
                    else:
                        run.log_model(value, port.name)
            run.end("FINISHED")
            return None
        except BaseException as exc:
            run.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED", traceback.format_exc())
            if isinstance(exc, KeyboardInterrupt):
                raise
            return f"{type(exc).__name__}: {exc}"
        finally:
            pop_run(run)


def _returned(s: Step, result: Any) -> dict[Port, Any]:
    outs = list(s.outputs.values())
    if not outs or result is None:
        return {}
    named = isinstance(result, dict) and set(result) <= {p.local for p in outs}
    if named and (len(outs) > 1 or outs[0].local in result):
        return {p: result.get(p.local) for p in outs}
    if len(outs) == 1:
        return {outs[0]: result}
    if isinstance(result, (tuple, list)) and len(result) == len(outs):
        return dict(zip(outs, result))
    raise InvalidInput(f"step {s.name} has {len(outs)} outputs ({', '.join(p.local for p in outs)}): return a dict "
                       "of them or a tuple in that order")


def collect_outputs(store: Store, s: Step, run_id: str) -> tuple[dict[str, StepRef], str | None]:
    """The declared outputs, as the step's run recorded them; an error names what is missing."""
    doc = find_run_doc(store, run_id)
    outputs: dict[str, StepRef] = {}
    missing = []
    for port in s.outputs.values():
        if port.kind == "dataset":
            entry = next((d for d in doc["datasets"] if d["name"] == port.name and d.get("version")
                          and d.get("role") != "input"), None)
            if entry is None or not entry.get("snapshot"):
                missing.append(f"dataset {port.name!r} (nbmlops.log_dataset(df, {port.name!r}, snapshot=True))")
                continue
            outputs[port.name] = {"kind": "dataset", "name": port.name, "version": entry["version"],
                                  "sha256": entry["sha256"], "blob": entry["snapshot"]}
        else:
            model = next((m for m in doc["models"] if m["name"] == port.name), None)
            if model is None:
                missing.append(f"model {port.name!r} (nbmlops.log_model(model, {port.name!r}))")
                continue
            outputs[port.name] = {"kind": "model", "name": port.name, "run_id": run_id, "sha256": model["sha256"],
                                  "format": model.get("format", "pickle")}
    if missing:
        return outputs, (f"step {s.name} did not produce {', '.join(missing)}; log it on the step's run or call "
                         "nbmlops.step_output(name, value)")
    return outputs, None


def end_failed(store: Store, run_id: str, error: str) -> None:
    """End the step's run FAILED if its process left it RUNNING (a cell raised, the kernel died), or
    if it ran to the end without its outputs."""
    with _tracking:
        fail_run(store, run_id, error)


def _attach(store: Store, run_id: str, files: list[tuple[str, Path]]) -> None:
    """Add files to a run's artifacts after its own process ended it (the step's report)."""
    entries: list[ArtifactEntry] = []
    for name, path in files:
        sha, size = store.blobs.put_file(path)
        entries.append({"name": name, "sha256": sha, "size": size, "kind": "report"})
    add_run_artifacts(store, run_id, entries)
