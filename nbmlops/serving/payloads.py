"""Request payloads of the common serving protocols, turned into rows for one model.

Every format becomes a list of rows (lists of values in the model's feature order),
validated against the model's signature; a client's mistake raises ``PayloadError``
with a message naming the problem (never echoing the payload).
"""

from __future__ import annotations

import math
from typing import Any

MAX_BATCH = 10_000


class PayloadError(ValueError):
    """A client's mistake: answered 4xx with ``{"error": message}``."""

    def __init__(self, message: str, status: int = 422, reason: str = "invalid_input") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class Schema:
    """What rows must look like: feature names (or a count) and which features are numeric."""

    def __init__(self, signature: dict[str, Any], max_batch: int = MAX_BATCH) -> None:
        self.features: list[str] | None = signature.get("features")
        self.n = signature.get("n_features") or (len(self.features) if self.features else None)
        dtypes = signature.get("dtypes") or {}
        names = self.features or []
        self.numeric = [not dtypes.get(f) or dtypes[f].startswith(("int", "float", "uint", "bool", "Int", "Float"))
                        for f in names] if names else None
        self.max_batch = max_batch

    def row(self, values: Any, where: str) -> list[Any]:
        if not isinstance(values, list):
            raise PayloadError(f"{where} must be a list of feature values")
        if self.n is not None and len(values) != self.n:
            raise PayloadError(f"{where} has {len(values)} values; the model expects {self.n} features"
                               + (f" ({', '.join(self.features[:5])}{', …' if len(self.features) > 5 else ''})"
                                  if self.features else ""))
        numeric = self.numeric
        for i, v in enumerate(values):
            t = type(v)
            if t is float:
                if not math.isfinite(v):
                    raise PayloadError(f"{where}: feature {self._name(i)} is {v}; values must be finite numbers")
            elif t is int or (t is bool and not (numeric and numeric[i])):
                continue
            elif numeric is None or numeric[i]:
                raise PayloadError(f"{where}: feature {self._name(i)} must be a number, got {t.__name__}")
            elif t is not str and v is not None:
                raise PayloadError(f"{where}: feature {self._name(i)} must be a string or number, got {t.__name__}")
        return values

    def record(self, values: Any, where: str) -> list[Any]:
        if not isinstance(values, dict):
            raise PayloadError(f"{where} must be an object of feature name → value")
        if not self.features:
            raise PayloadError("this model was fitted without feature names: send a list of values "
                               '({"features": [...]}) instead of named inputs')
        missing = [f for f in self.features if f not in values]
        if missing:
            extra = [k for k in values if k not in self.features]
            raise PayloadError(f"{where} lacks features {', '.join(missing[:8])}"
                               + (f" and has unexpected {', '.join(map(str, extra[:8]))}" if extra else ""))
        return self.row([values[f] for f in self.features], where)

    def rows(self, items: Any, where: str) -> list[list[Any]]:
        if not isinstance(items, list) or not items:
            raise PayloadError(f"{where} must be a non-empty list")
        if len(items) > self.max_batch:
            raise PayloadError(f"{where} has {len(items)} rows; the limit per request is {self.max_batch}",
                               status=413, reason="batch_too_large")
        first = items[0]
        if isinstance(first, dict):
            return [self.record(r, f"{where}[{i}]") for i, r in enumerate(items)]
        return [self.row(r, f"{where}[{i}]") for i, r in enumerate(items)]

    def _name(self, i: int) -> str:
        return repr(self.features[i]) if self.features else str(i)


def parse_predict(body: Any, schema: Schema) -> tuple[list[list[Any]], bool]:
    """nbmlops' own ``/predict``: ``features`` (one row), ``instances`` (rows) or ``inputs``
    (a record or a list of records). Returns (rows, single)."""
    if not isinstance(body, dict):
        raise PayloadError('the body must be a JSON object such as {"features": [...]}')
    if "features" in body:
        return [schema.row(body["features"], "features")], True
    if "instances" in body:
        return schema.rows(body["instances"], "instances"), False
    if "inputs" in body:
        inputs = body["inputs"]
        if isinstance(inputs, dict):
            return [schema.record(inputs, "inputs")], True
        return schema.rows(inputs, "inputs"), False
    raise PayloadError('the body needs one of "features" (a row), "instances" (rows) or "inputs" (named features)')


def parse_mlflow(body: Any, schema: Schema) -> list[list[Any]]:
    """MLflow's ``/invocations``: dataframe_split, dataframe_records, instances or inputs."""
    if not isinstance(body, dict):
        raise PayloadError("the body must be a JSON object with dataframe_split, dataframe_records, "
                           "instances or inputs")
    if "dataframe_split" in body:
        split = body["dataframe_split"]
        if not isinstance(split, dict) or not isinstance(split.get("data"), list):
            raise PayloadError('dataframe_split must be {"columns": [...], "data": [[...], ...]}')
        columns = split.get("columns")
        if columns is not None:
            if not isinstance(columns, list):
                raise PayloadError("dataframe_split.columns must be a list")
            return schema.rows([dict(zip(columns, r)) if isinstance(r, list) else r for r in split["data"]],
                               "dataframe_split.data")
        return schema.rows(split["data"], "dataframe_split.data")
    if "dataframe_records" in body:
        return schema.rows(body["dataframe_records"], "dataframe_records")
    for key in ("instances", "inputs"):
        if key in body:
            value = body[key]
            return schema.rows([value] if isinstance(value, dict) else value, key)
    raise PayloadError("the body needs dataframe_split, dataframe_records, instances or inputs")


_V2_TYPES = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32",
             "FP64", "BYTES"}


def parse_v2(body: Any, schema: Schema) -> tuple[list[list[Any]], str | None]:
    """Open Inference Protocol (KServe V2) ``infer``: one tensor of shape [rows, features], or one
    tensor per feature (named like the features, shape [rows] or [rows, 1])."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise PayloadError('the body must be {"inputs": [{"name", "shape", "datatype", "data"}, ...]}')
    tensors = []
    for i, t in enumerate(body["inputs"]):
        if not isinstance(t, dict) or not isinstance(t.get("shape"), list) or not isinstance(t.get("data"), list):
            raise PayloadError(f"inputs[{i}] needs name, shape, datatype and data")
        if t.get("datatype") not in _V2_TYPES:
            raise PayloadError(f"inputs[{i}].datatype must be one of {', '.join(sorted(_V2_TYPES))}")
        data = _flatten(t["data"], f"inputs[{i}].data")
        shape = t["shape"]
        if not all(isinstance(s, int) and s >= 0 for s in shape) or math.prod(shape) != len(data):
            raise PayloadError(f"inputs[{i}]: shape {shape} does not match {len(data)} values")
        tensors.append((t.get("name"), shape, data))
    request_id = body.get("id") if isinstance(body.get("id"), str) else None
    if len(tensors) == 1:
        _, shape, data = tensors[0]
        width = shape[-1] if len(shape) == 2 else (schema.n or len(data))
        if not width or len(data) % width:
            raise PayloadError("the input tensor must have shape [rows, features]")
        return schema.rows([data[k:k + width] for k in range(0, len(data), width)], "inputs[0]"), request_id
    records: dict[str, list[Any]] = {str(name): data for name, _, data in tensors}
    n = len(tensors[0][2])
    if any(len(d) != n for d in records.values()):
        raise PayloadError("per-feature input tensors must all have the same number of rows")
    return schema.rows([{k: v[r] for k, v in records.items()} for r in range(n)], "inputs"), request_id


MAX_DIMS = 32


def _flatten(data: list[Any], where: str = "data") -> list[Any]:
    """The values of a nested list, row-major, without recursion; tensors deeper than ``MAX_DIMS`` are refused."""
    if not data or not isinstance(data[0], list):
        return data
    out: list[Any] = []
    stack = [(iter(data), 1)]
    while stack:
        items, depth = stack[-1]
        for d in items:
            if isinstance(d, list):
                if depth >= MAX_DIMS:
                    raise PayloadError(f"{where} is nested more than {MAX_DIMS} levels deep")
                stack.append((iter(d), depth + 1))
                break
            out.append(d)
        else:
            stack.pop()
    return out


def v2_datatype(values: list[Any]) -> str:
    if all(isinstance(v, bool) for v in values):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "FP64"
    return "BYTES"
