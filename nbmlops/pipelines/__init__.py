"""Pipelines of notebooks and functions as cached steps; retraining on drift; Kubeflow export.

One module per concept:

- ``definition``  steps, their inputs/outputs/parameters, the DAG, code hashes (checked where defined)
- ``pipeline``    ``Pipeline`` (Python or YAML), ``PipelineRun``, lookup by name, run listings
- ``plan``        every check before anything is written, outside inputs resolved, a step's cache key
- ``runner``      parallel execution, caching, retries, resume
- ``notebook``    a notebook step through papermill, and its nbconvert HTML report
- ``kernels``     warm kernels of a pipeline run: a fresh namespace per notebook step in the same kernel
- ``context``     what a running step's code sees: its inputs, outputs and tracked run
- ``records``     the pipeline documents in the store
- ``progress``    the terminal status line; the default a face may replace (notebook: ``display.pipelines``)
- ``retrain``     ``retrain_on_drift``: drift → pipeline → candidate → compare → promote
- ``kubeflow``    ``export_kfp``: the same DAG as a Kubeflow Pipelines package (kfp 2.x)
- ``kfp_runtime`` what each Kubeflow component runs
"""

from __future__ import annotations

from typing import Any

from .context import step_input, step_output
from .definition import Step, step
from .kubeflow import export_kfp
from .pipeline import Pipeline, PipelineRun, get_pipeline, get_pipeline_run, load_pipeline, pipeline_runs
from .runner import StepFailed

__all__ = ["Pipeline", "PipelineRun", "Step", "step", "load_pipeline", "get_pipeline", "get_pipeline_run",
           "pipeline_runs", "retrain_on_drift", "retrain_decisions", "step_input", "step_output", "export_kfp",
           "StepFailed"]


def __getattr__(name: str) -> Any:
    if name in ("retrain_on_drift", "retrain_decisions", "RetrainDecision"):
        from . import retrain  # lazy: retrain needs monitoring, which loads pandas

        return getattr(retrain, name)
    raise AttributeError(f"module 'nbmlops.pipelines' has no attribute {name!r}")
