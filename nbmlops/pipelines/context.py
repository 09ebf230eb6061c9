"""What a pipeline step's own code talks to: its inputs, its outputs, its tracked run.

The runner creates the step's run and writes a small JSON context; a notebook step starts with a
cell (added by the runner, visible in its report) that calls :func:`begin` with that file, and
ends with one that calls :func:`end`. A function step gets the same context in-process.

Inside a step:

- ``nbmlops.load_dataset("features")`` gives the version the pipeline passes in (not the latest);
- ``nbmlops.step_input("model")`` gives an input of any kind (dataset or model);
- ``nbmlops.log_dataset(df, "features", snapshot=True)``, ``nbmlops.log_model(m, "model")`` or
  ``nbmlops.step_output(name, value)`` produce the step's declared outputs;
- ``nbmlops.log_metric`` and friends log to the step's run (``%%track`` cells nest under it).

Two modes: ``store`` (the local runner: inputs are dataset versions and logged models in the
store) and ``paths`` (a Kubeflow component: inputs are files, the store is a scratch one).
"""

from __future__ import annotations

import json
import pickle
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import InvalidInput, NotFound
from ..registry import load_model
from ..store import Store, current_store, set_store
from ..tracking.datasets import load_dataset, log_version
from ..tracking.lookup import find_run_doc
from ..tracking.modelfiles import read_model
from ..tracking.runs import Run
from ..tracking.session import pop_run, push_run, require_active, set_dataset_resolver

_current: StepContext | None = None


class StepContext:
    """The context of the step running in this process."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.run: Any = None  # the step's Run, once adopted

    mode = property(lambda self: self.data.get("mode", "store"))
    step = property(lambda self: self.data["step"])
    pipeline = property(lambda self: self.data["pipeline"])
    params = property(lambda self: dict(self.data.get("params") or {}))
    inputs = property(lambda self: dict(self.data.get("inputs") or {}))
    outputs = property(lambda self: dict(self.data.get("outputs") or {}))

    def __repr__(self) -> str:
        return (f"<step {self.step} of pipeline {self.pipeline}: inputs {', '.join(self.inputs) or 'none'}; "
                f"outputs {', '.join(self.outputs) or 'none'}>")


def current() -> StepContext | None:
    """The step running in this process, or None outside a pipeline."""
    return _current


def _adopt(store: Store, run_id: str) -> Run:
    """Make the run the runner created for this step the active run of this process."""
    run = Run(store, find_run_doc(store, run_id), owned=True)
    run.nest_children = True  # %%track cells inside the step become its child runs
    push_run(run)
    return run


def begin(path: str) -> StepContext:
    """Enter the step described by the JSON file at ``path`` (called by the first cell of a
    notebook step)."""
    global _current
    data = json.loads(Path(path).read_text())
    set_store(data["store"])
    ctx = StepContext(data)
    ctx.run = _adopt(current_store(), data["run_id"])
    _current = ctx
    return ctx


def end() -> None:
    """Leave the step: its run ends FINISHED (called by the last cell of a notebook step)."""
    global _current
    ctx, _current = _current, None
    if ctx is not None and ctx.run is not None:
        ctx.run.end("FINISHED")
        pop_run(ctx.run)


@contextmanager
def active(data: dict[str, Any], run: Run) -> Iterator[StepContext]:
    """The context of a function step run in this process, around the call."""
    global _current
    previous = _current
    ctx = StepContext(data)
    ctx.run = run
    _current = ctx
    try:
        yield ctx
    finally:
        _current = previous


def pinned(name: str) -> str | None:
    """``name@N`` when the running step receives dataset ``name`` as an input (store mode)."""
    ctx = _current
    if ctx is None or ctx.mode != "store":
        return None
    spec = ctx.inputs.get(name)
    if spec is None:
        spec = next((s for s in ctx.inputs.values() if s.get("kind") == "dataset" and s.get("name") == name), None)
    if spec is None or spec.get("kind") != "dataset":
        return None
    return f"{spec['name']}@{spec['version']}"


def load_local(ref: str) -> Any:
    """In a Kubeflow component: the data of an input dataset, from its file; else None."""
    ctx = _current
    if ctx is None or ctx.mode != "paths" or not isinstance(ref, str):
        return None
    spec = ctx.inputs.get(ref) or next((s for s in ctx.inputs.values() if s.get("name") == ref), None)
    if spec is None or spec.get("kind") != "dataset":
        return None
    import pandas as pd

    return pd.read_parquet(spec["path"])


def _load_model_file(path: str | Path) -> Any:
    with open(path, "rb") as f:
        return pickle.load(f)


def step_input(name: str) -> Any:
    """An input of the running step by its name: a dataset's data or a loaded model.

    Outside a pipeline: the latest version of dataset ``name``, else the registered model ``name``
    (``"churn@production"`` works too), so a step notebook also runs on its own."""
    ctx = _current
    if ctx is None:
        try:
            return load_dataset(name)
        except (NotFound, InvalidInput):
            pass
        try:
            return load_model(name[len("model:"):] if name.startswith("model:") else name, raw=True)
        except (NotFound, InvalidInput):
            raise NotFound(f"outside a pipeline, {name!r} is neither a dataset nor a registered model") from None
    spec = ctx.inputs.get(name)
    if spec is None:
        have = ", ".join(ctx.inputs) or "none"
        raise InvalidInput(f"step {ctx.step} has no input {name!r} (inputs: {have}); declare it in the step's inputs")
    if ctx.mode == "paths":
        if spec["kind"] == "dataset":
            import pandas as pd

            return pd.read_parquet(spec["path"])
        return _load_model_file(spec["path"])
    if spec["kind"] == "dataset":
        return load_dataset(f"{spec['name']}@{spec['version']}")
    return read_model(current_store(), spec["sha256"], spec.get("format", "pickle"))


def step_output(name: str, value: Any) -> Any:
    """Produce a declared output of the running step: a DataFrame becomes the next version of the
    dataset, anything else is logged as a model of the step's run.

    Outside a pipeline: a DataFrame is logged as a dataset version, a model on the active run."""
    ctx = _current
    if ctx is None:
        if _is_table(value):
            return log_version(value, name)
        return require_active().log_model(value, name)
    spec = ctx.outputs.get(name)
    if spec is None:
        have = ", ".join(ctx.outputs) or "none"
        raise InvalidInput(f"step {ctx.step} has no output {name!r} (outputs: {have}); declare it in the step's "
                           "outputs")
    if spec["kind"] == "dataset":
        return log_version(value, spec["name"], run=ctx.run)
    return ctx.run.log_model(value, spec["name"])


def _is_table(value: Any) -> bool:
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(value, (pd.DataFrame, pd.Series))


set_dataset_resolver(sys.modules[__name__])  # load_dataset in a step: pinned() and load_local() above
