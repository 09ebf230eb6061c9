"""MLflow's shape of a run, read-only: ``run.info.run_id``, ``run.data.params`` and the like.

``RunInfo`` is the run document (a dict, as ``run.info`` always was) that also answers
MLflow's attribute names; ``RunData`` holds params and tags as strings and the latest value
of each metric, as ``mlflow.entities.RunData`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class RunInfo(dict):
    """The run document (a copy) with MLflow's ``RunInfo`` attributes."""

    @property
    def run_id(self) -> str:
        return self["id"]

    @property
    def run_uuid(self) -> str:
        return self["id"]

    @property
    def run_name(self) -> str:
        return self["name"]

    @property
    def experiment_id(self) -> str:
        return self["experiment_id"]

    @property
    def status(self) -> str:
        return self["status"]

    @property
    def start_time(self) -> int:
        """Milliseconds since the epoch, as MLflow."""
        return self["start_time"]

    @property
    def end_time(self) -> int | None:
        return self.get("end_time")

    @property
    def user_id(self) -> str | None:
        return self.get("user")

    @property
    def lifecycle_stage(self) -> str:
        return "deleted" if self.get("deleted") else "active"


@dataclass(frozen=True)
class RunData:
    """Params and tags as strings, metrics as their latest values (MLflow's ``RunData``)."""

    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]

    @classmethod
    def of(cls, params: dict[str, Any], metrics: dict[str, float], tags: dict[str, str]) -> RunData:
        return cls({k: str(v) for k, v in params.items()}, dict(metrics), dict(tags))
