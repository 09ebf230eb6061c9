"""nbmlops: the MLOps lifecycle inside the notebook, over one local store.

``%load_ext nbmlops`` in IPython/Jupyter, or use the same API from any script::

    import nbmlops
    with nbmlops.start_run(experiment="iris") as run:
        nbmlops.log_param("C", 1.0)
        nbmlops.log_metric("accuracy", 0.96)

Heavy modules (pandas, scikit-learn, matplotlib) load only when a call needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._util import VERSION as __version__
from .errors import IntegrityError, InvalidInput, NbmlopsError, NotFound, ServingError, StoreError

# The public API, in one list: each name and the module (relative to this package) that defines it.
# ``__all__``, ``dir(nbmlops)`` and the lazy ``__getattr__`` come from this table; _HERE marks the
# functions defined below. tests/test_public_api.py checks that the TYPE_CHECKING imports agree with it.
_HERE = ""
_API: dict[str, str] = {
    # tracking
    "start_run": "tracking.runs", "Run": "tracking.runs", "active_run": "tracking.session",
    **dict.fromkeys(("log_param", "log_params", "log_metric", "log_metrics", "set_tag", "set_tags", "log_artifact",
                     "log_text", "log_figure", "log_model", "log_dataset"), _HERE),
    **dict.fromkeys(("get_run", "delete_run", "restore_run", "set_run_tags", "set_run_tag"), "tracking.lookup"),
    "search_runs": "tracking.search", "fingerprint": "tracking.fingerprint",
    **dict.fromkeys(("set_experiment", "get_experiment", "list_experiments", "Experiment"), "tracking.experiments"),
    "run_listing": "tracking.listing", "runs_browser": "widgets.runs",
    "set_store": "store", "store_info": "info",
    # datasets
    **dict.fromkeys(("load_dataset", "list_datasets", "get_dataset_version", "DatasetVersion"), "tracking.datasets"),
    "diff_datasets": "tracking.datadiff",
    # registry
    **dict.fromkeys(("register_model", "load_model", "load_reference", "get_model_version", "set_alias",
                     "delete_alias", "delete_version", "list_models", "list_versions", "model_history",
                     "compare_versions"), "registry"),
    "registry_widget": "widgets.registry",
    # serving
    **dict.fromkeys(("serve", "get_deployment", "list_deployments", "Deployment", "ab_summary", "batch_predict"),
                    "serving"),
    "serving_widget": "widgets.serving",
    # features
    **dict.fromkeys(("Entity", "FeatureView", "OnDemandFeatureView", "FeatureService", "ParquetSource", "CsvSource",
                     "DataFrameSource", "on_demand_feature_view"), "features.definitions"),
    **dict.fromkeys(("apply_features", "get_feature_view", "get_feature_service", "list_feature_views"),
                    "features.catalog"),
    "get_historical_features": "features.historical",
    **dict.fromkeys(("get_online_features", "materialize", "materialize_incremental"), "features.online"),
    # monitoring
    **dict.fromkeys(("drift_report", "drift_history", "DriftReport", "ColumnMapping"), "monitoring"),
    **dict.fromkeys(("CBPE", "DLE", "estimator_for"), "monitoring.estimate"),
    **dict.fromkeys(("window_report", "window_data"), "monitoring.live"),
    "drift_widget": "widgets.drift",
    "monitor_timeline": "monitoring.timeline", "timeline_widget": "widgets.drift",
    # export
    "export_mlflow": "export.mlflow", "import_mlflow": "export.mlflow_import", "export_feast": "export.feast",
    "export_kserve": "export.kserve",
    # pipelines
    **dict.fromkeys(("Pipeline", "step", "load_pipeline", "get_pipeline", "pipeline_runs", "retrain_on_drift",
                     "step_input", "step_output", "export_kfp"), "pipelines"),
    # errors (imported above)
    **dict.fromkeys(("NbmlopsError", "StoreError", "NotFound", "InvalidInput", "IntegrityError", "ServingError"),
                    "errors"),
}

__all__ = list(_API)

if TYPE_CHECKING:
    from .export.feast import export_feast
    from .export.kserve import export_kserve
    from .export.mlflow import export_mlflow
    from .export.mlflow_import import import_mlflow
    from .features.catalog import apply_features, get_feature_service, get_feature_view, list_feature_views
    from .features.definitions import (
        CsvSource,
        DataFrameSource,
        Entity,
        FeatureService,
        FeatureView,
        OnDemandFeatureView,
        ParquetSource,
        on_demand_feature_view,
    )
    from .features.historical import get_historical_features
    from .features.online import get_online_features, materialize, materialize_incremental
    from .info import store_info
    from .monitoring import ColumnMapping, DriftReport, drift_history, drift_report
    from .monitoring.estimate import CBPE, DLE, estimator_for
    from .monitoring.live import window_data, window_report
    from .monitoring.timeline import monitor_timeline
    from .pipelines import (
        Pipeline,
        export_kfp,
        get_pipeline,
        load_pipeline,
        pipeline_runs,
        retrain_on_drift,
        step,
        step_input,
        step_output,
    )
    from .registry import (
        compare_versions,
        delete_alias,
        delete_version,
        get_model_version,
        list_models,
        list_versions,
        load_model,
        load_reference,
        model_history,
        register_model,
        set_alias,
    )
    from .serving import Deployment, ab_summary, batch_predict, get_deployment, list_deployments, serve
    from .store import set_store
    from .tracking.datadiff import diff_datasets
    from .tracking.datasets import DatasetVersion, get_dataset_version, list_datasets, load_dataset
    from .tracking.experiments import Experiment, get_experiment, list_experiments, set_experiment
    from .tracking.fingerprint import fingerprint
    from .tracking.listing import run_listing
    from .tracking.lookup import delete_run, get_run, restore_run, set_run_tag, set_run_tags
    from .tracking.runs import Run, start_run
    from .tracking.search import search_runs
    from .tracking.session import active_run
    from .widgets.drift import drift_widget, timeline_widget
    from .widgets.registry import registry_widget
    from .widgets.runs import runs_browser
    from .widgets.serving import serving_widget


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if not module:
        raise AttributeError(f"module 'nbmlops' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    if module.startswith("pipelines") and not _picked:
        _pipeline_progress()
    globals()[name] = value
    return value


_picked = False


def _pipeline_progress() -> None:
    """The face picks how a running pipeline looks: the live table in a notebook kernel, a terminal
    line elsewhere (``%load_ext nbmlops`` does the same; the domain never picks a widget). Once, so a
    default the user set afterwards stays."""
    global _picked
    _picked = True
    from .display.pipelines import auto_progress  # noqa: I001 (display loads pipelines: only when they are used)
    from .pipelines.progress import set_default_progress  # lazy: only once pipelines are used

    set_default_progress(auto_progress)


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})


def _run() -> Any:
    from .tracking.session import require_active  # lazy: `import nbmlops` stays light

    return require_active()


def log_param(key: str, value: Any) -> None:
    """Record a parameter of the active run (params cannot change within a run)."""
    _run().log_param(key, value)


def log_params(params: dict[str, Any]) -> None:
    _run().log_params(params)


def log_metric(key: str, value: float, step: int | None = None, timestamp: int | None = None) -> None:
    """Append a point to a metric of the active run; ``step`` defaults to the next one."""
    _run().log_metric(key, value, step, timestamp)


def log_metrics(metrics: dict[str, float], step: int | None = None, timestamp: int | None = None) -> None:
    _run().log_metrics(metrics, step, timestamp)


def set_tag(key: str, value: Any) -> None:
    _run().set_tag(key, value)


def set_tags(tags: dict[str, Any]) -> None:
    _run().set_tags(tags)


def log_artifact(path: Any, name: str | None = None) -> list[dict[str, Any]]:
    """Copy a file or folder into the store as an artifact of the active run."""
    return _run().log_artifact(path, name)


def log_text(text: str, name: str) -> dict[str, Any]:
    return _run().log_text(text, name)


def log_figure(fig: Any, name: str | None = None) -> dict[str, Any]:
    """Save a matplotlib figure as a PNG artifact of the active run."""
    return _run().log_figure(fig, name)


def log_model(model: Any, name: str = "model", datasets: list[str] | None = None,
              reference: Any = None) -> dict[str, Any]:
    """Save a fitted model (pickled, content-addressed, sha256 recorded) on the active run;
    ``reference=(X, y)`` keeps a bounded sample of the training data for drift monitoring."""
    return _run().log_model(model, name, datasets, reference)


def log_dataset(data: Any, name: str, role: str | None = None, snapshot: bool = False, max_bytes: Any = None) -> Any:
    """Record a dataset's fingerprint (hash, shape, columns, dtypes) on the active run.

    ``snapshot=True`` stores the data itself (Parquet, content-addressed) as the next version of
    dataset ``name`` (``load_dataset("name@N")``), also outside a run, and returns that version."""
    if snapshot:
        from .tracking.datasets import log_version  # lazy: `import nbmlops` stays light

        return log_version(data, name, role=role, max_bytes=max_bytes)
    from .tracking.session import require_active  # lazy: `import nbmlops` stays light

    return require_active("; log_dataset(df, name, snapshot=True) works without one: it stores the data as "
                          "a dataset version").log_dataset(data, name, role)


def load_ipython_extension(ipython: Any) -> None:
    from .magics import load  # lazy: IPython loads only with the extension

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .magics import unload  # lazy: IPython loads only with the extension

    unload(ipython)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The dashboard (``<base_url>nbmlops/``) is a Jupyter Server extension: see ``nbmlops.jupyter_server``."""
    return [{"module": "nbmlops.jupyter_server"}]
