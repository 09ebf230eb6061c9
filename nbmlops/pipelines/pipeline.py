"""``Pipeline``: named steps and parameters; ``PipelineRun``: what one run did.

Defined in Python::

    churn = nbmlops.Pipeline("churn", [
        nbmlops.step("features.ipynb", inputs=["raw"], outputs=["features"]),
        nbmlops.step("train.ipynb", inputs=["features"], outputs=["model:model"]),
        nbmlops.step("evaluate.ipynb", inputs=["features", "model:model"]),
    ], params={"n_estimators": 100})
    churn.run(n_estimators=200)

or in YAML (``nbmlops.load_pipeline("churn.yaml")``)::

    pipeline: churn
    params: {n_estimators: 100}
    steps:
      - {notebook: features.ipynb, inputs: [raw], outputs: [features]}
      - {notebook: train.ipynb, inputs: [features], outputs: ["model:model"]}
      - {notebook: evaluate.ipynb, inputs: [features, "model:model"]}
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._util import fmt_duration, fmt_time
from ..errors import InvalidInput, NotFound
from ..registry import register_model
from ..store import Store, current_store
from ..store.records import PipelineRunRecord, PipelineStepRecord, StepRef
from ..tracking.datasets import load_dataset
from ..tracking.lookup import get_run
from ..tracking.modelfiles import read_model
from . import records
from .definition import Step, check_name, check_params, order, step, step_from_dict
from .plan import Plan, make_plan
from .progress import default_progress
from .runner import execute

_defined: dict[str, Pipeline] = {}


class Pipeline:
    """A named set of steps with parameters (see the module doc)."""

    def __init__(self, name: str, steps: list[Any], params: dict[str, Any] | None = None, *,
                 experiment: str | None = None, workers: int | None = None, reports: str | Path | None = None,
                 description: str | None = None) -> None:
        self.name = check_name("pipeline", name)
        if not isinstance(steps, (list, tuple)) or not steps:
            raise InvalidInput(f"pipeline {name}: give a list of steps (nbmlops.step(...))")
        self.steps: list[Step] = [s if isinstance(s, Step) else step(s) for s in steps]
        names = [s.name for s in self.steps]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise InvalidInput(f"pipeline {name}: two steps are named {dup[0]!r}; give one a name=")
        self.params = check_params(params, f"pipeline {name}")
        for s in self.steps:
            for p in s.params or []:
                if p not in self.params:
                    raise InvalidInput(f"step {s.name} uses parameter {p!r}, which pipeline {name} does not define "
                                       f"(parameters: {', '.join(self.params) or 'none'})")
        order(self.steps)  # cycles and double producers, at definition time
        self.experiment = experiment or name
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise InvalidInput(f"workers is a positive number, got {workers!r}")
        self.workers = workers
        self.reports = Path(reports).resolve() if reports is not None else None
        self.description = description
        self.base: Path | None = None
        _defined[self.name] = self

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise NotFound(f"pipeline {self.name} has no step {name!r} (steps: {', '.join(s.name for s in self.steps)})")

    # -- running ------------------------------------------------------------------------------------
    def plan(self, params: dict[str, Any] | None = None) -> Plan:
        """Check everything a run needs (parameters, notebooks, functions, inputs); writes nothing."""
        return make_plan(self, params)

    def run(self, params: dict[str, Any] | None = None, *, cache: bool = True, workers: int | None = None,
            progress: bool | Callable[[PipelineRun], None] | None = None, resume: bool = True,
            reports: str | Path | None = None, isolate: str = "namespace", **kwargs: Any) -> PipelineRun:
        """Run the pipeline; parameters as a dict or keywords (``churn.run(n_estimators=200)``).

        ``cache=False`` runs every step; ``progress`` is a callback, or True/False for the default
        one (a terminal line; the IPython extension makes it a live table). Notebook steps share the
        run's warm kernels, each step in a fresh namespace (variables, working directory, environment,
        warning filters and library settings reset; installed packages stay imported: 2-3× faster
        than a kernel per step); ``isolate="kernel"`` starts a new kernel per step, for steps that
        leave threads or other process state behind. Raises ``StepFailed`` (with ``.run``) when a step
        fails after its retries; nothing is written when an input is wrong."""
        merged = {**(params or {}), **kwargs}
        plan = self.plan(merged)
        return execute(plan, cache=cache, workers=workers, progress=_progress(progress), resume=resume,
                       reports=Path(reports).resolve() if reports is not None else None, isolate=isolate)

    # -- looking ------------------------------------------------------------------------------------
    def runs(self) -> Any:
        """This pipeline's runs, newest first (a DataFrame)."""
        return pipeline_runs(self.name)

    def last_run(self) -> PipelineRun | None:
        store = current_store(create=False)
        docs = records.list_runs(store, self.name) if store.exists() else []
        return PipelineRun(store, docs[0]) if docs else None

    def show(self, run: PipelineRun | None = None) -> Any:
        """The DAG (with a run's step states when given), drawn inline as SVG."""
        from ..display.pipelines import Dag  # display is a layer above the domain: delegation only

        return Dag(self, run)

    def _repr_html_(self) -> str:
        return self.show()._repr_html_()

    def __repr__(self) -> str:
        return (f"<Pipeline {self.name}: {' → '.join(s.name for s in order(self.steps))}"
                f"{'; params ' + ', '.join(f'{k}={v!r}' for k, v in self.params.items()) if self.params else ''}>")

    # -- files --------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"pipeline": self.name}
        if self.description:
            d["description"] = self.description
        if self.params:
            d["params"] = dict(self.params)
        if self.experiment != self.name:
            d["experiment"] = self.experiment
        if self.workers:
            d["workers"] = self.workers
        d["steps"] = [s.to_dict(self.base) for s in self.steps]
        if self.base is not None:
            d["base"] = str(self.base)
        return d

    def to_yaml(self, path: str | Path | None = None) -> str:
        """The YAML form; written to ``path`` when given (notebook paths relative to its folder)."""
        import yaml

        saved = self.base
        if path is not None:
            self.base = Path(path).resolve().parent
        try:
            d = self.to_dict()
        finally:
            self.base = saved
        d.pop("base", None)
        text = yaml.safe_dump(d, sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_dict(cls, d: dict[str, Any], base: str | Path | None = None) -> Pipeline:
        if not isinstance(d, dict) or not isinstance(d.get("steps"), list):
            raise InvalidInput("a pipeline file holds 'pipeline: NAME', optional 'params:', and a list of 'steps:'")
        unknown = set(d) - {"pipeline", "name", "description", "params", "experiment", "workers", "steps", "base"}
        if unknown:
            raise InvalidInput(f"pipeline file: unknown field(s) {', '.join(sorted(unknown))}")
        where = Path(d.get("base") or base or Path.cwd()).resolve()
        p = cls(d.get("pipeline") or d.get("name"), [step_from_dict(s, where) for s in d["steps"]], d.get("params"),
                experiment=d.get("experiment"), workers=d.get("workers"), description=d.get("description"))
        p.base = where
        return p


def _progress(progress: Any) -> Callable[[PipelineRun], None] | None:
    if callable(progress):
        return progress
    if progress is False:
        return None
    return default_progress()


def defined_pipeline(name: str) -> Pipeline | None:
    """The pipeline of that name defined in this process, or None."""
    return _defined.get(name)


def load_pipeline(path: str | Path) -> Pipeline:
    """A pipeline from a YAML file (notebook and ``file.py`` paths relative to the file)."""
    import yaml

    p = Path(path)
    if not p.exists():
        raise InvalidInput(f"no pipeline file {str(path)!r}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{p.name} is not valid YAML: {str(exc).splitlines()[0]}") from None
    return Pipeline.from_dict(data, p.resolve().parent)


def get_pipeline(name: str | Path | Pipeline) -> Pipeline:
    """A pipeline by name: one defined in this process, a YAML file (``NAME.yaml``, ``NAME.yml``,
    ``pipelines/NAME.yaml`` or a path), or the definition the store kept from its last run."""
    if isinstance(name, Pipeline):
        return name
    text = str(name)
    if text.endswith((".yaml", ".yml")):
        return load_pipeline(text)
    check_name("pipeline", text)
    if text in _defined:
        return _defined[text]
    for candidate in (f"{text}.yaml", f"{text}.yml", f"pipelines/{text}.yaml", f"pipelines/{text}.yml"):
        if Path(candidate).exists():
            return load_pipeline(candidate)
    store = current_store(create=False)
    stored = records.load_definition(store, text)
    if stored is not None:
        return Pipeline.from_dict(stored)
    known = sorted({*_defined, *records.definition_names(store)})
    raise NotFound(f"no pipeline named {text!r}: not defined in this session, no {text}.yaml here, none in the store "
                   f"(pipelines: {', '.join(known) or 'none yet'})")


def pipeline_runs(name: str | None = None, limit: int = 50) -> Any:
    """Pipeline runs, newest first: status, duration, and per step what happened."""
    import pandas as pd

    store = current_store(create=False)
    docs = records.list_runs(store, name) if store.exists() else []
    rows = []
    for d in docs[:limit]:
        states = [d["steps"][s]["state"] for s in d["order"]]
        rows.append({"run": d["id"][:8], "pipeline": d["pipeline"], "status": d["status"],
                     "started": pd.Timestamp(d["start_time"], unit="ms"), "duration_s": d.get("duration"),
                     "executed": sum(st == "done" and not d["steps"][s].get("resumed")
                                     for s, st in zip(d["order"], states)),
                     "cached": states.count("cached"), "failed": states.count("failed"),
                     "params": ", ".join(f"{k}={v!r}" for k, v in d["params"].items()),
                     "resumed": d.get("resumed", 0), "error": d.get("error"), "run_id": d["id"]})
    return pd.DataFrame(rows, columns=["run", "pipeline", "status", "started", "duration_s", "executed", "cached",
                                       "failed", "params", "resumed", "error", "run_id"])


def get_pipeline_run(run_id: str) -> PipelineRun:
    """A pipeline run by id (or a unique prefix of at least 6 hex digits)."""
    store = current_store(create=False)
    if not isinstance(run_id, str) or len(run_id) < 6 or any(c not in "0123456789abcdef" for c in run_id):
        raise InvalidInput(f"a pipeline run id has at least 6 hex digits, got {run_id!r}")
    found = records.find_run(store, run_id) if store.exists() else []
    if len(found) != 1:
        raise NotFound(f"no pipeline run {run_id!r}" if not found else f"pipeline run prefix {run_id!r} is ambiguous")
    return PipelineRun(store, found[0])


STATE_WORDS = {"pending": "waiting", "running": "running", "done": "ran", "cached": "cached", "failed": "failed",
               "skipped": "skipped"}


class PipelineRun:
    """One run of a pipeline: ``status``, ``states``, ``executed``, ``cached``, ``outputs``, ``report(step)``."""

    def __init__(self, store: Store, doc: PipelineRunRecord) -> None:
        self.store = store
        self.doc = doc

    def refresh(self, doc: PipelineRunRecord | None = None) -> PipelineRun:
        if doc is None:
            doc = records.get_run(self.store, self.doc["id"]) or self.doc
        self.doc = doc
        return self

    id = property(lambda self: self.doc["id"])
    pipeline = property(lambda self: self.doc["pipeline"])
    status = property(lambda self: self.doc["status"])
    params = property(lambda self: dict(self.doc["params"]))
    duration = property(lambda self: self.doc.get("duration"))

    @property
    def steps(self) -> dict[str, PipelineStepRecord]:
        return {n: self.doc["steps"][n] for n in self.doc["order"]}

    @property
    def states(self) -> dict[str, str]:
        return {n: s["state"] for n, s in self.steps.items()}

    @property
    def executed(self) -> list[str]:
        """Steps this run executed (not cached, not kept from before a resume)."""
        return [n for n, s in self.steps.items() if s["state"] == "done" and not s.get("resumed")]

    @property
    def cached(self) -> list[str]:
        return [n for n, s in self.steps.items() if s["state"] == "cached"]

    @property
    def outputs(self) -> dict[str, StepRef]:
        """Every step output of this run by name (dataset versions and models)."""
        return {k: v for s in self.steps.values() for k, v in (s.get("outputs") or {}).items()}

    def output(self, name: str) -> Any:
        """The data of a dataset output, or the model of a model output."""
        ref = self.outputs.get(name)
        if ref is None:
            raise NotFound(f"pipeline run {self.id[:8]} has no output {name!r} (outputs: {', '.join(self.outputs)})")
        if ref["kind"] == "dataset":
            return load_dataset(f"{ref['name']}@{ref['version']}")
        return read_model(self.store, ref["sha256"], ref.get("format", "pickle"))

    def register_model(self, output: str, name: str, alias: str | None = None, **kwargs: Any) -> Any:
        """Register a model output of this run (with the lineage of the step that logged it)."""
        ref = self.outputs.get(output)
        if ref is None or ref["kind"] != "model":
            have = ", ".join(k for k, v in self.outputs.items() if v["kind"] == "model") or "none"
            raise NotFound(f"pipeline run {self.id[:8]} has no model output {output!r} (model outputs: {have})")
        return register_model(f"{ref['run_id']}:{ref['name']}", name, alias=alias, **kwargs)

    def report(self, step: str) -> Path | None:
        """The HTML report of a notebook step (its executed notebook when HTML failed)."""
        rep = (self.steps.get(step) or {}).get("report")
        if not rep:
            return None
        return Path(rep.get("html") or rep["notebook"])

    def step_run(self, step: str) -> Any:
        """The tracked run of a step (for a cached step, the run it was cached from)."""
        run_id = (self.steps.get(step) or {}).get("run_id")
        if not run_id:
            raise NotFound(f"step {step} of pipeline run {self.id[:8]} has no run")
        return get_run(run_id)

    def lines(self) -> list[str]:
        d = self.doc
        head = (f"pipeline {d['pipeline']} run {d['id'][:8]} {d['status']}"
                f"{' in ' + fmt_duration(d['duration']) if d.get('duration') is not None else ''}"
                f"{' (resumed)' if d.get('resumed') else ''}")
        out = [head]
        for n, s in self.steps.items():
            out.append(f"  {n}: {describe_step(s)}")
        if d.get("error") and d["status"] != "FINISHED":
            out.append(f"  {d['error']}")
        return out

    def __repr__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        from ..display.pipelines import run_card  # display is a layer above the domain: delegation only

        return run_card(self)


def describe_step(s: PipelineStepRecord) -> str:
    """One step's state in plain words: 'ran in 3.1 s', 'cached from run 1a2b3c4d', ..."""
    state = s["state"]
    if state == "cached":
        c = s["cached_from"] or {}
        return (f"cached from run {c.get('run_id', '')[:8]} (pipeline run {c.get('pipeline_run', '')[:8]}, "
                f"{fmt_time(c.get('time'))})")
    if state == "done":
        extra = f", {s['attempts']} attempts" if (s.get("attempts") or 0) > 1 else ""
        if s.get("resumed"):
            return f"done before the interruption (run {(s.get('run_id') or '')[:8]}), kept"
        return f"ran in {fmt_duration(s.get('duration'))} (run {(s.get('run_id') or '')[:8]}{extra})"
    if state == "failed":
        return f"failed after {s.get('attempts') or 1} attempt(s): {s.get('error')}"
    if state == "skipped":
        return s.get("note") or "skipped"
    if state == "running":
        return f"running (attempt {s.get('attempts') or 1})"
    return "waiting"
