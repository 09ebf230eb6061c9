"""Request payloads of the common serving protocols, turned into rows for one model.

Every format becomes a list of rows (lists of values in the model's feature order),
validated against the model's signature; a client's mistake raises ``PayloadError``
with a message naming the problem (never echoing the payload).
"""

from __future__ import annotations

import csv
import io
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
    """MLflow's ``/invocations`` JSON: dataframe_split, dataframe_records, instances or inputs (rows,
    records, one record, or a dict of columns), and optional ``params`` (an object; a scikit-learn
    model takes none, so they are checked and set aside)."""
    if not isinstance(body, dict):
        raise PayloadError("the body must be a JSON object with dataframe_split, dataframe_records, "
                           "instances or inputs", 400)
    if "params" in body and not isinstance(body["params"], dict):
        raise PayloadError("params must be an object of parameter name → value", 400)
    formats = [k for k in ("dataframe_split", "dataframe_records", "instances", "inputs") if k in body]
    if len(formats) != 1:
        raise PayloadError("the body needs exactly one of dataframe_split, dataframe_records, instances or inputs"
                           + (f"; it has {', '.join(formats)}" if formats else ""), 400)
    key = formats[0]
    value = body[key]
    if key == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            raise PayloadError('dataframe_split must be {"columns": [...], "data": [[...], ...]}', 400)
        columns = value.get("columns")
        if columns is None:
            return schema.rows(value["data"], "dataframe_split.data")
        if not isinstance(columns, list):
            raise PayloadError("dataframe_split.columns must be a list", 400)
        return schema.rows([dict(zip(columns, r)) if isinstance(r, list) else r for r in value["data"]],
                           "dataframe_split.data")
    if isinstance(value, dict):
        return schema.rows(_columns(value, key), key)
    return schema.rows(value, key)


def _columns(value: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """A dict of columns (``{"a": [1, 2], "b": [3, 4]}``) as records; a dict of scalars is one record."""
    lists = [isinstance(v, list) for v in value.values()]
    if not any(lists):
        return [value]
    if not all(lists):
        raise PayloadError(f"{where} as an object must map every feature to a list of values (columns) or "
                           "every feature to one value (a row)", 400)
    lengths = {len(v) for v in value.values()}
    if len(lengths) != 1:
        raise PayloadError(f"{where}: the columns have different lengths ({', '.join(map(str, sorted(lengths)))})",
                           400)
    names = list(value)
    return [dict(zip(names, r)) for r in zip(*value.values())]


def parse_csv(raw: bytes, schema: Schema) -> list[list[Any]]:
    """A CSV body, with a header row (the feature names, in any order) or without one (values in the
    model's feature order). Empty cells are missing values; cells of numeric features must be numbers."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise PayloadError("the CSV body is not UTF-8 text", 400) from None
    try:
        table = [r for r in csv.reader(io.StringIO(text)) if r]
    except csv.Error as exc:
        raise PayloadError(f"the body is not valid CSV ({exc})", 400) from None
    if not table:
        raise PayloadError("the CSV body has no rows", 400)
    features = schema.features
    first = table[0]
    if features and set(features) <= set(first):  # a header: the features by name, others (an index) set aside
        order = [first.index(f) for f in features]
        width = len(first)
        for i, r in enumerate(table[1:]):
            if len(r) != width:
                raise PayloadError(f"CSV row {i + 1} has {len(r)} columns; its header has {width}", 400)
        table = [[r[i] for i in order] for r in table[1:]]
    elif not features and not all(_is_number(c) for c in first):
        table = table[1:]
    if not table:
        raise PayloadError("the CSV body has a header but no rows", 400)
    numeric = schema.numeric
    out = []
    for i, r in enumerate(table):
        if schema.n is not None and len(r) != schema.n:
            raise PayloadError(f"CSV row {i + 1} has {len(r)} columns; the model expects {schema.n}", 400)
        out.append([_cell(c, numeric is None or numeric[j], i, j, schema) for j, c in enumerate(r)])
    return schema.rows(out, "csv")


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _cell(cell: str, numeric: bool, i: int, j: int, schema: Schema) -> Any:
    if cell == "":
        return None  # missing: a model that takes no missing values is answered so by Schema.row
    if not numeric:
        return cell
    try:
        return float(cell)
    except ValueError:
        raise PayloadError(f"CSV row {i + 1}, column {schema._name(j)}: {cell[:30]!r} is not a number", 400) from None


def parse_parquet(raw: bytes, schema: Schema) -> list[list[Any]]:
    """A Parquet body: its columns by feature name (a model without names takes them in order)."""
    import pyarrow as pa  # only for Parquet bodies: a server's start does not pay for pyarrow
    import pyarrow.parquet as pq  # (the same)

    try:
        table = pq.read_table(io.BytesIO(raw))
    except (pa.ArrowException, OSError, ValueError):
        raise PayloadError("the body is not a Parquet file", 400) from None
    if table.num_rows > schema.max_batch:
        raise PayloadError(f"the Parquet body has {table.num_rows} rows; the limit per request is "
                           f"{schema.max_batch}", 413, "batch_too_large")
    columns = table.to_pydict()
    if schema.features:
        return schema.rows([dict(zip(columns, r)) for r in zip(*columns.values())], "parquet")
    return schema.rows([list(r) for r in zip(*columns.values())], "parquet")
