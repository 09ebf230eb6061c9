"""Request payloads of the common serving protocols, turned into rows for one model.

Every format becomes a list of rows (lists of values in the model's feature order),
validated against the model's signature; a client's mistake raises ``PayloadError``
with a message naming the problem (never echoing the payload).
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
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
            raise PayloadError(f"{where} lacks features {quote_names(missing)}"
                               + (f" and has unexpected {quote_names(extra)}" if extra else ""))
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
        if not isinstance(columns, list) or not all(isinstance(c, (str, int)) for c in columns):
            raise PayloadError("dataframe_split.columns must be a list of column names", 400)
        repeated = _repeated(columns)
        if repeated:
            raise PayloadError(f"dataframe_split.columns names {quote_names(repeated)} more than once", 400)
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
    """A CSV body, with a header row (the feature names, in any order, once each; other columns such as
    pandas' index set aside) or without one (values in the model's feature order). Rows are read and
    checked one at a time, so a wrong width or too many rows is refused at the row it happens.
    Empty cells are missing values; cells of numeric features must be numbers."""
    try:
        text = raw.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a byte order mark
    except UnicodeDecodeError:
        raise PayloadError("the CSV body is not UTF-8 text", 400) from None
    reader = (r for r in csv.reader(io.StringIO(text)) if r)
    try:
        first = next(reader, None)
        if first is None:
            raise PayloadError("the CSV body has no rows", 400)
        features, numeric = schema.features, schema.numeric
        order: list[int] | None = None
        width = schema.n
        if features and set(features) <= set(first):  # a header
            repeated = _repeated(first)
            if repeated:
                raise PayloadError(f"the CSV header names {quote_names(repeated)} more than once", 400)
            order, width = [first.index(f) for f in features], len(first)
            first = None
        elif not features and all(c and not _is_number(c) for c in first):  # names of a model that has none
            first = None
        out: list[list[Any]] = []
        for i, r in enumerate(_chain(first, reader), 1):
            if width is not None and len(r) != width:
                raise PayloadError(f"CSV row {i} has {len(r)} columns; " + (f"its header has {width}" if order
                                   else f"the model expects {width}"))  # 422: the model's signature refuses it
            if len(out) >= schema.max_batch:
                raise PayloadError(f"the CSV body has more than {schema.max_batch} rows, the limit per request",
                                   413, "batch_too_large")
            if order is not None:
                r = [r[k] for k in order]
            out.append([_cell(c, numeric is None or numeric[j], i, j, schema) for j, c in enumerate(r)])
    except csv.Error as exc:
        raise PayloadError(f"the body is not valid CSV ({str(exc)[:80]})", 400) from None
    if not out:
        raise PayloadError("the CSV body has a header but no rows", 400)
    return schema.rows(out, "csv")


def _chain(first: list[str] | None, rest: Any) -> Any:
    if first is not None:
        yield first
    yield from rest


def _repeated(names: list[Any]) -> list[str]:
    return sorted(str(n) for n, k in Counter(names).items() if k > 1)


def quote_names(names: list[Any]) -> str:
    """Names quoted for a message, each cut short, at most eight (a message never echoes a payload)."""
    return ", ".join(repr(str(n)[:40]) for n in names[:8]) + (", …" if len(names) > 8 else "")


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
        raise PayloadError(f"CSV row {i}, column {schema._name(j)}: {cell[:30]!r} is not a number", 400) from None


def parse_parquet(raw: bytes, schema: Schema, max_bytes: int) -> list[list[Any]]:
    """A Parquet body: its columns by feature name (a model without names takes them in order). Its
    row count is read from the footer before any data, and text stays dictionary-encoded until the
    size it decodes to is known: at most ``max_bytes`` (the body cap), so a small file is no bomb."""
    import pyarrow as pa  # only for Parquet bodies: a server's start does not pay for pyarrow
    import pyarrow.compute as pc  # (the same)
    import pyarrow.parquet as pq  # (the same)

    try:
        file = pq.ParquetFile(io.BytesIO(raw))
        rows = file.metadata.num_rows
        if rows > schema.max_batch:
            raise PayloadError(f"the Parquet body has {rows} rows; the limit per request is {schema.max_batch}",
                               413, "batch_too_large")
        arrow = file.schema_arrow
        repeated = _repeated(arrow.names)
        if repeated:
            raise PayloadError(f"the Parquet body names {quote_names(repeated)} more than once", 400)
        wanted = [f for f in arrow if not schema.features or f.name in schema.features]  # others are never read
        nested = [f.name for f in wanted if pa.types.is_nested(f.type)]
        if nested:
            raise PayloadError(f"the Parquet body's columns {quote_names(nested)} are lists, structs or maps; "
                               "features are numbers or text", 400)
        _check_parquet_size(file, wanted, max_bytes)
        text = [f.name for f in wanted if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
                or pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
        table = pq.read_table(io.BytesIO(raw), columns=[f.name for f in wanted], read_dictionary=text)
    except PayloadError:
        raise
    except (pa.ArrowException, OSError, ValueError):
        raise PayloadError("the body is not a Parquet file", 400) from None
    size = 0
    for column in table.columns:
        for chunk in column.chunks:
            if pa.types.is_dictionary(chunk.type):
                lengths = pc.binary_length(chunk.dictionary)
                size += pc.sum(pc.take(lengths, chunk.indices)).as_py() or 0
            else:
                size += chunk.nbytes
        if size > max_bytes:
            raise PayloadError(f"the Parquet body decodes to more than {max_bytes} bytes, the limit of a body", 413,
                               "body_too_large")
    columns = table.to_pydict()
    if schema.features:
        return schema.rows([dict(zip(columns, r)) for r in zip(*columns.values())], "parquet")
    return schema.rows([list(r) for r in zip(*columns.values())], "parquet")


def _check_parquet_size(file: Any, fields: list[Any], max_bytes: int) -> None:
    """Refuse, from the footer alone, a Parquet body whose columns would take more than ``max_bytes``:
    fixed-width columns by rows × width, the others by their pages' uncompressed size (dictionary
    pages excepted: their decoded size is checked once read, still encoded)."""
    import pyarrow as pa  # (the same as parse_parquet's)

    rows = file.metadata.num_rows
    size = sum(rows * f.type.bit_width // 8 for f in fields if pa.types.is_primitive(f.type)
               and not pa.types.is_boolean(f.type))
    names = {f.name for f in fields if not pa.types.is_primitive(f.type)}
    for g in range(file.metadata.num_row_groups):
        group = file.metadata.row_group(g)
        for c in range(group.num_columns):
            chunk = group.column(c)
            if chunk.path_in_schema in names and chunk.dictionary_page_offset is None:
                size += chunk.total_uncompressed_size
    if size > max_bytes:
        raise PayloadError(f"the Parquet body decodes to more than {max_bytes} bytes, the limit of a body", 413,
                           "body_too_large")
