"""Where the data of a report comes from: a DataFrame, a CSV/Parquet/JSON file,
``model:NAME@ALIAS`` / ``model:NAME/VERSION`` / ``model:NAME`` — the monitoring reference the
registry stored with that model version (training inputs, ``prediction``, and ``target``
when the labels were known) — or ``serving:DEPLOYMENT``, the traffic a deployment served
(its request log: the inputs and the ``prediction`` of each scored row)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import InvalidInput, NbmlopsError
from ..registry import load_reference
from ..store import current_store
from .traffic import served_rows

MODEL_PREFIX = "model:"
SERVING_PREFIX = "serving:"
READERS = {".csv": "read_csv", ".tsv": "read_csv", ".parquet": "read_parquet", ".pq": "read_parquet",
           ".json": "read_json", ".jsonl": "read_json", ".feather": "read_feather"}


@dataclass
class Source:
    frame: pd.DataFrame
    label: str
    model: str | None = None     # the model URI when the data came from the registry


def load(data: Any, role: str) -> Source:
    """A DataFrame and a label for ``data`` (a DataFrame, a path, or a ``model:`` URI)."""
    if isinstance(data, pd.DataFrame):
        return Source(data, "DataFrame")
    if isinstance(data, str) and data.startswith(MODEL_PREFIX):
        uri = data[len(MODEL_PREFIX):].strip()
        return Source(model_reference(uri), data, uri)
    if isinstance(data, str) and data.startswith(SERVING_PREFIX):
        return Source(served_traffic(data[len(SERVING_PREFIX):].strip(), role), data)
    if isinstance(data, (str, Path)):
        return Source(read_file(Path(data), role), str(data))
    if isinstance(data, pd.Series):
        return Source(data.to_frame(), "Series")
    try:
        import numpy as np

        if isinstance(data, np.ndarray) and data.ndim == 2:
            return Source(pd.DataFrame(data), "array")
        if isinstance(data, dict):
            return Source(pd.DataFrame(data), "dict")
    except ValueError as exc:
        raise InvalidInput(f"{role} cannot be made a table: {exc}") from None
    raise InvalidInput(f"{role} must be a DataFrame, a CSV/Parquet path or model:NAME@ALIAS, not {type(data).__name__}")


def read_file(path: Path, role: str) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if not path.exists():
        raise InvalidInput(f"{role}: no file {str(path)!r}")
    if path.is_dir():
        if any(path.glob("*.parquet")):
            return pd.read_parquet(path)
        raise InvalidInput(f"{role}: {str(path)!r} is a folder without Parquet files")
    reader = READERS.get(suffix)
    if reader is None:
        raise InvalidInput(f"{role}: cannot read {path.name!r}; use a .csv, .parquet, .json, .jsonl or .feather file")
    kwargs: dict[str, Any] = {}
    if suffix == ".tsv":
        kwargs["sep"] = "\t"
    if suffix == ".jsonl":
        kwargs["lines"] = True
    try:
        return getattr(pd, reader)(path, **kwargs)
    except (ValueError, OSError, ImportError) as exc:
        raise InvalidInput(f"{role}: could not read {path.name!r}: {exc}") from None


def served_traffic(name: str, role: str) -> pd.DataFrame:
    """The rows a deployment scored, with their ``prediction`` (bookkeeping columns dropped)."""
    if not name:
        raise InvalidInput("serving: needs a deployment name, e.g. serving:churn")
    try:
        rows = served_rows(current_store(), name)
    except NbmlopsError as exc:
        raise InvalidInput(f"{role}: {exc}") from None
    if rows.empty:
        raise InvalidInput(f"{role}: deployment {name!r} has not scored any request yet")
    return rows


def model_reference(uri: str) -> pd.DataFrame:
    """The monitoring reference stored with a model version (through the registry)."""
    if not uri:
        raise InvalidInput("model: needs a name, e.g. model:churn@production or model:churn/3")
    try:
        return load_reference(uri)
    except NbmlopsError:
        raise
    except (KeyError, ValueError) as exc:
        raise InvalidInput(f"model:{uri}: {exc}") from None
