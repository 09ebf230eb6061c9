"""What a scikit-learn model is in the Open Inference Protocol (KServe V2): its declared inputs
and outputs, the rows an infer request's tensors make, and the outputs an answer carries.

Metadata and infer agree by construction: both come from :func:`outputs_of`.

- inputs: one tensor ``input-0`` of shape [-1, n_features] when every feature is a number,
  else one tensor per feature, named like it, of shape [-1] (numbers FP64, others BYTES);
  any numeric datatype is taken for numbers, and per-feature tensors for any model with names.
- outputs: ``predict`` [-1] (INT64, FP64, BOOL or BYTES as the classes are; FP64 for a
  regressor) and, for a classifier with probabilities, ``probability`` [-1] (the top class's)
  and ``predict_proba`` [-1, n_classes] in the order of ``classes``.
"""

from __future__ import annotations

from typing import Any

from .model import ServedModel
from .payloads import PayloadError, Schema, quote_names
from .tensors import Tensor

EXTENSIONS = ["binary_tensor_data"]


def _datatype(values: list[Any] | None) -> str:
    if not values:
        return "FP64"
    if all(isinstance(v, bool) for v in values):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "FP64"
    return "BYTES"


def outputs_of(model: ServedModel) -> list[dict[str, Any]]:
    """The output tensors ``model`` answers with: name, datatype and shape."""
    specs = [{"name": "predict", "datatype": _datatype(model.classes) if model.classifier else "FP64", "shape": [-1]}]
    if model.proba:
        specs.append({"name": "probability", "datatype": "FP64", "shape": [-1]})
        specs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(model.classes or [])]})
    return specs


def inputs_of(model: ServedModel) -> list[dict[str, Any]]:
    schema = model.schema
    if schema.features and schema.numeric is not None and not all(schema.numeric):
        return [{"name": f, "datatype": "FP64" if numeric else "BYTES", "shape": [-1]}
                for f, numeric in zip(schema.features, schema.numeric)]
    return [{"name": "input-0", "datatype": "FP64", "shape": [-1, schema.n or -1]}]


def metadata(model: ServedModel, name: str, versions: list[int]) -> dict[str, Any]:
    return {"name": name, "versions": [str(v) for v in versions], "platform": "sklearn",
            "inputs": inputs_of(model), "outputs": outputs_of(model)}


def rows(tensors: list[Tensor], schema: Schema) -> list[list[Any]]:
    """The rows of an infer request: one tensor of shape [rows, features] (or [features] for one
    row), or one tensor per feature, named like the features, of shape [rows] or [rows, 1]."""
    for t in tensors:
        if t.datatype == "BOOL":
            t.values = [int(v) if isinstance(v, bool) else v for v in t.values]
    if len(tensors) == 1:
        t = tensors[0]
        width = t.shape[-1] if len(t.shape) == 2 else (schema.n or len(t.values))
        if len(t.shape) > 2 or not width or len(t.values) % width:
            raise PayloadError(f"the input tensor has shape {t.shape}; send [rows, features]", 400)
        data = t.values
        return schema.rows([data[k:k + width] for k in range(0, len(data), width)], "inputs[0]")
    if not schema.features:
        raise PayloadError("this model was fitted without feature names: send one tensor of shape [rows, features]",
                           400)
    named = {t.name: t for t in tensors}
    unknown = [n for n in named if n not in schema.features]
    if unknown or len(named) != len(tensors):
        raise PayloadError(f"per-feature input tensors must be named like the features, once each; "
                           f"unexpected: {quote_names(unknown) or 'a repeated name'}", 400)
    n = len(tensors[0].values)
    if any(len(t.values) != n or len(t.shape) > 2 or (len(t.shape) == 2 and t.shape[1] != 1) for t in tensors):
        raise PayloadError("per-feature input tensors must all have shape [rows] or [rows, 1], with the same rows",
                           400)
    columns = {t.name: t.values for t in tensors}
    return schema.rows([{k: v[r] for k, v in columns.items()} for r in range(n)], "inputs")


def requested(header: dict[str, Any], model: ServedModel) -> list[tuple[dict[str, Any], bool]]:
    """The outputs asked for (all, when the request names none), each with whether it goes binary:
    the output's ``parameters.binary_data``, else the request's ``parameters.binary_data_output``."""
    specs = {s["name"]: s for s in outputs_of(model)}
    default_binary = (header.get("parameters") or {}).get("binary_data_output") is True
    asked = header.get("outputs")
    if asked is None or asked == []:  # none named: all of them, as KServe answers
        return [(s, default_binary) for s in specs.values()]
    if not isinstance(asked, list):
        raise PayloadError('"outputs" must be a list of {"name": ...}', 400)
    chosen = []
    for i, o in enumerate(asked):
        if not isinstance(o, dict) or not isinstance(o.get("name"), str):
            raise PayloadError(f"outputs[{i}] needs a name", 400)
        if o["name"] not in specs:
            raise PayloadError(f"outputs[{i}]: no output {o['name'][:60]!r}; this model's outputs are "
                               f"{', '.join(specs)}", 400, "unknown_output")
        params = o.get("parameters") or {}
        if not isinstance(params, dict):
            raise PayloadError(f"outputs[{i}].parameters must be an object", 400)
        if "classification" in params:
            raise PayloadError("the classification extension is not supported: ask for predict_proba", 400)
        binary = params.get("binary_data", default_binary)
        if not isinstance(binary, bool):
            raise PayloadError(f"outputs[{i}].parameters.binary_data must be true or false", 400)
        chosen.append((specs[o["name"]], binary))
    return chosen


def output_values(name: str, out: dict[str, list[Any]], model: ServedModel) -> tuple[list[Any], list[int]]:
    """Flat values and shape of output ``name`` from a scoring result."""
    preds = out["predictions"]
    n = len(preds)
    if name == "predict":
        if not model.classifier:
            return [float(p) for p in preds], [n]
        return preds, [n]
    if name == "probability":
        return out["probability"], [n]
    names = model.class_names or ()
    probabilities = out["probabilities"]
    return [row[c] for row in probabilities for c in names], [n, len(names)]
