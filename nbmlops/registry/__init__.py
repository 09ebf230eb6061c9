"""The model registry: versions, aliases, signatures, lineage, integrity."""

from .models import (
    compare_versions,
    delete_alias,
    delete_version,
    get_model_version,
    list_models,
    list_versions,
    load_model,
    load_reference,
    model_history,
    record_drift_summary,
    register_model,
    set_alias,
)
from .objects import Comparison, LoadedModel, ModelVersion

__all__ = ["register_model", "load_model", "load_reference", "get_model_version", "set_alias", "delete_alias",
           "delete_version", "list_models", "list_versions", "model_history", "compare_versions",
           "record_drift_summary", "ModelVersion", "LoadedModel", "Comparison"]
