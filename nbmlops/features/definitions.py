"""What a feature store holds: entities, sources, feature views, on-demand views and services.

These objects are plain descriptions. Building one checks everything that can be checked
without the store (columns exist, timestamps are times, keys and features have the right
types, the ttl parses); ``apply`` then checks them against what the store already holds.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from .timeutil import fmt_ttl, parse_ttl

DTYPES = ("int64", "int32", "float64", "float32", "string", "bool", "timestamp")
KEY_TYPES = ("int64", "string")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-.]{0,99}$")

# kind of a source column -> declared dtypes it can feed
_FEEDS = {"int": ("int64", "int32", "float64", "float32"), "float": ("float64", "float32", "int64", "int32"),
          "bool": ("bool",), "string": ("string",), "timestamp": ("timestamp",)}


def check_name(kind: str, name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(f"invalid {kind} name {name!r}: use 1-100 letters, digits, '_', '-' or '.', "
                           "starting with a letter or '_'")
    return name


def check_dtype(feature: str, dtype: object) -> str:
    aliases = {"int": "int64", "float": "float64", "str": "string", "object": "string", "datetime": "timestamp",
               "double": "float64", "boolean": "bool", "Int64": "int64", "Int32": "int32"}
    dtype = aliases.get(str(dtype), str(dtype))
    if dtype not in DTYPES:
        raise InvalidInput(f"feature {feature!r} has dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    return dtype


# -- column kinds -------------------------------------------------------------
def kind_of_pandas(series: Any) -> str:
    """'int', 'float', 'bool', 'string', 'timestamp' or 'other' for a pandas column."""
    import pandas as pd

    t = series.dtype
    if pd.api.types.is_bool_dtype(t):
        return "bool"
    if pd.api.types.is_integer_dtype(t):
        return "int"
    if pd.api.types.is_float_dtype(t):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(t):
        return "timestamp"
    if isinstance(t, pd.CategoricalDtype):
        return "string" if all(isinstance(c, str) for c in t.categories) else "other"
    if pd.api.types.is_string_dtype(t) or t == object:
        sample = series.dropna().head(1000)
        if all(isinstance(v, str) for v in sample):
            return "string"
        if len(sample) and all(isinstance(v, bool) for v in sample):
            return "bool"
        if len(sample) and all(isinstance(v, int) and not isinstance(v, bool) for v in sample):
            return "int"
    return "other"


def kind_of_arrow(t: Any) -> str:
    import pyarrow as pa

    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "timestamp"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_dictionary(t):
        return kind_of_arrow(t.value_type)
    return "other"


def default_dtype(kind: str, sized: str = "") -> str | None:
    return {"int": "int32" if sized == "int32" else "int64", "float": "float32" if sized == "float32" else "float64",
            "bool": "bool", "string": "string", "timestamp": "timestamp"}.get(kind)


# -- sources -------------------------------------------------------------------
class Source:
    """Where a view's rows come from: a table with an event-timestamp column and, optionally,
    a created-timestamp column (which breaks ties between rows with the same event time)."""

    kind = "source"

    def __init__(self, timestamp_field: str = "event_timestamp", created_timestamp_column: str | None = None) -> None:
        if not isinstance(timestamp_field, str) or not timestamp_field:
            raise InvalidInput(f"timestamp_field must be a column name, got {timestamp_field!r}")
        if created_timestamp_column is not None and not isinstance(created_timestamp_column, str):
            raise InvalidInput(f"created_timestamp_column must be a column name, got {created_timestamp_column!r}")
        self.timestamp_field = timestamp_field
        self.created_timestamp_column = created_timestamp_column or None

    def columns(self) -> dict[str, tuple[str, str]]:
        """column -> (kind, physical dtype name)."""
        raise NotImplementedError

    def read(self, columns: list[str]) -> Any:
        """The named columns as a pandas DataFrame."""
        raise NotImplementedError

    def identity(self) -> tuple[Any, ...]:
        """Changes whenever the rows may have changed (keys the in-process cache)."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def check(self) -> dict[str, tuple[str, str]]:
        cols = self.columns()
        for col, role in ((self.timestamp_field, "event timestamp"), (self.created_timestamp_column, "created timestamp")):
            if col is None:
                continue
            if col not in cols:
                raise InvalidInput(f"{self.describe()} has no {role} column {col!r} (columns: {_list(cols)}); "
                                   f"name it with timestamp_field=/created_timestamp_column= (--timestamp/--created)")
            if cols[col][0] not in ("timestamp", "string"):
                raise InvalidInput(f"{role} column {col!r} of {self.describe()} holds {cols[col][1]}, not times: "
                                   "convert it with pd.to_datetime first")
        return cols

    def _ts_doc(self) -> dict[str, Any]:
        return {"timestamp_field": self.timestamp_field, "created_timestamp_column": self.created_timestamp_column}


class DataFrameSource(Source):
    """A pandas DataFrame. ``apply`` stores a snapshot of its rows in the store (a Parquet blob),
    so later retrievals, other processes and other sessions see the rows it had when applied."""

    kind = "dataframe"

    def __init__(self, df: Any = None, timestamp_field: str = "event_timestamp",
                 created_timestamp_column: str | None = None, *, sha256: str | None = None,
                 fingerprint: str | None = None, rows: int | None = None, schema: dict[str, list[str]] | None = None) -> None:
        super().__init__(timestamp_field, created_timestamp_column)
        import pandas as pd

        if df is not None and not isinstance(df, pd.DataFrame):
            raise InvalidInput(f"DataFrameSource takes a pandas DataFrame, got {type(df).__name__}")
        if df is not None and not all(isinstance(c, str) for c in df.columns):
            raise InvalidInput("the DataFrame's column names must be strings")
        self._df = df
        self.sha256 = sha256
        self._fingerprint = fingerprint
        self._rows = rows
        self._schema = {k: tuple(v) for k, v in schema.items()} if schema else None

    @property
    def df(self) -> Any:
        if self._df is None:
            if self.sha256 is None:
                raise InvalidInput("this DataFrameSource has no data")
            import io

            import pyarrow.parquet as pq

            from ..store import current_store

            data = current_store(create=False).blobs.read_bytes(self.sha256)
            self._df = pq.read_table(io.BytesIO(data)).to_pandas()
        return self._df

    @property
    def rows(self) -> int:
        return len(self._df) if self._df is not None else int(self._rows or 0)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            from ..tracking.fingerprint import fingerprint

            self._fingerprint = fingerprint(self.df)["sha256"]
        return self._fingerprint

    def columns(self) -> dict[str, tuple[str, str]]:
        if self._schema is not None and self._df is None:
            return self._schema  # type: ignore[return-value]
        return {c: (kind_of_pandas(self.df[c]), str(self.df[c].dtype)) for c in self.df.columns}

    def read(self, columns: list[str]) -> Any:
        return self.df[columns]

    def identity(self) -> tuple[Any, ...]:
        return ("dataframe", self.sha256 or self.fingerprint())

    def describe(self) -> str:
        return f"the DataFrame ({self.rows:,} rows)"

    def to_doc(self) -> dict[str, Any]:
        return {"kind": self.kind, "sha256": self.sha256, "fingerprint": self.fingerprint(), "rows": self.rows,
                "schema": {k: list(v) for k, v in self.columns().items()}, **self._ts_doc()}


class FileSource(Source):
    """A Parquet or CSV file that stays where it is: the store records its absolute path,
    and every retrieval reads the file as it is then (cached while its size and mtime hold)."""

    kind = "file"
    suffixes: tuple[str, ...] = ()

    def __init__(self, path: str | os.PathLike[str], timestamp_field: str = "event_timestamp",
                 created_timestamp_column: str | None = None) -> None:
        super().__init__(timestamp_field, created_timestamp_column)
        p = Path(path).expanduser()
        if not p.is_file():
            raise InvalidInput(f"no {self.kind} file at {os.fspath(path)!r}")
        self.path = str(p.resolve())

    def identity(self) -> tuple[Any, ...]:
        st = os.stat(self.path)
        return (self.kind, self.path, st.st_mtime_ns, st.st_size)

    def describe(self) -> str:
        return f"{self.kind} file {self.path}"

    def to_doc(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path, **self._ts_doc()}


class ParquetSource(FileSource):
    kind = "parquet"

    def columns(self) -> dict[str, tuple[str, str]]:
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(self.path)
        except Exception as exc:
            raise InvalidInput(f"cannot read {self.path} as Parquet: {exc}") from None
        return {f.name: (kind_of_arrow(f.type), str(f.type)) for f in schema if not f.name.startswith("__index_level_")}

    def read(self, columns: list[str]) -> Any:
        import pyarrow.parquet as pq

        return pq.read_table(self.path, columns=columns).to_pandas()


class CsvSource(FileSource):
    kind = "csv"

    def columns(self) -> dict[str, tuple[str, str]]:
        import pandas as pd

        try:
            head = pd.read_csv(self.path, nrows=1000)
        except Exception as exc:
            raise InvalidInput(f"cannot read {self.path} as CSV: {exc}") from None
        return {str(c): (kind_of_pandas(head[c]), str(head[c].dtype)) for c in head.columns}

    def read(self, columns: list[str]) -> Any:
        import pandas as pd

        return pd.read_csv(self.path, usecols=columns)


def as_source(source: Any, timestamp_field: str | None = None, created_timestamp_column: str | None = None) -> Source:
    """A Source from a Source, a DataFrame, or the path of a .parquet/.pq or .csv file."""
    import pandas as pd

    if isinstance(source, Source):
        if timestamp_field and timestamp_field != source.timestamp_field:
            raise InvalidInput("give timestamp_field either to the source or to the view, not both")
        return source
    ts = timestamp_field or "event_timestamp"
    if isinstance(source, pd.DataFrame):
        return DataFrameSource(source, ts, created_timestamp_column)
    if isinstance(source, (str, os.PathLike)):
        suffix = Path(source).suffix.lower()
        if suffix in (".parquet", ".pq"):
            return ParquetSource(source, ts, created_timestamp_column)
        if suffix in (".csv", ".txt", ".tsv"):
            return CsvSource(source, ts, created_timestamp_column)
        raise InvalidInput(f"cannot tell the format of {os.fspath(source)!r}: use a .parquet or .csv file, "
                           "or ParquetSource(path)/CsvSource(path)")
    raise InvalidInput(f"a feature source is a DataFrame or the path of a Parquet or CSV file, got {type(source).__name__}")


def source_from_doc(doc: dict[str, Any]) -> Source:
    ts = (doc["timestamp_field"], doc.get("created_timestamp_column"))
    if doc["kind"] == "dataframe":
        return DataFrameSource(None, *ts, sha256=doc["sha256"], fingerprint=doc["fingerprint"], rows=doc["rows"],
                               schema=doc.get("schema"))
    cls = {"parquet": ParquetSource, "csv": CsvSource}[doc["kind"]]
    src = cls.__new__(cls)
    Source.__init__(src, *ts)
    src.path = doc["path"]
    return src


# -- entities -----------------------------------------------------------------------
class Entity:
    """What features describe (a user, a store-item pair), and the column(s) that identify it.

    >>> user = Entity("user", join_keys=["user_id"], value_type="int64")
    """

    kind = "entity"

    def __init__(self, name: str, join_keys: str | list[str] | None = None,
                 value_type: str | dict[str, str] | None = None, description: str = "",
                 tags: dict[str, str] | None = None) -> None:
        self.name = check_name("entity", name)
        keys = [join_keys] if isinstance(join_keys, str) else list(join_keys or [name])
        if not keys or not all(isinstance(k, str) and k for k in keys) or len(set(keys)) != len(keys):
            raise InvalidInput(f"entity {name!r}: join_keys must be distinct column names, got {join_keys!r}")
        self.join_keys = keys
        types = value_type if isinstance(value_type, dict) else {k: value_type for k in keys}
        if set(types) != set(keys):
            raise InvalidInput(f"entity {name!r}: value_type names {sorted(types)}, but the join keys are {keys}")
        self.key_types: dict[str, str | None] = {}
        for k in keys:
            t = types[k]
            t = {"int": "int64", "str": "string", "object": "string", "int32": "int64"}.get(t, t) if t else None
            if t is not None and t not in KEY_TYPES:
                raise InvalidInput(f"entity {name!r}: key {k!r} has value_type {t!r}; keys are {' or '.join(KEY_TYPES)}")
            self.key_types[k] = t
        self.description = str(description or "")
        self.tags = {str(k): str(v) for k, v in (tags or {}).items()}

    def to_doc(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "join_keys": self.join_keys, "key_types": self.key_types,
                "description": self.description, "tags": self.tags}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Entity:
        return cls(doc["name"], doc["join_keys"], doc["key_types"], doc.get("description", ""), doc.get("tags"))

    def __repr__(self) -> str:
        keys = ", ".join(f"{k}:{t or '?'}" for k, t in self.key_types.items())
        return f"<Entity {self.name} ({keys})>"


# -- feature views --------------------------------------------------------------------
class FeatureView:
    """Features of one or more entities over time, read from one source.

    >>> FeatureView("user_stats", entities=[user], source="stats.parquet", ttl="7d",
    ...             features={"total_orders": "int64", "avg_amount": "float64"})

    ``features`` may be a dict of name -> dtype, a list of names (dtypes from the source),
    or None (every column that is not a key or a timestamp). ``ttl``: how old a row may be
    at the entity's timestamp and still count (None: any age).
    """

    kind = "view"

    def __init__(self, name: str, entities: Iterable[Entity | str] | Entity | str, source: Any,
                 features: dict[str, str] | list[str] | None = None, ttl: Any = None, online: bool = True,
                 tags: dict[str, str] | None = None, description: str = "", *,
                 timestamp_field: str | None = None, created_timestamp_column: str | None = None) -> None:
        self.name = check_name("feature view", name)
        if isinstance(entities, (Entity, str)):
            entities = [entities]
        self.entities = [_entity(e) for e in entities]
        if not self.entities:
            raise InvalidInput(f"feature view {name!r} needs at least one entity")
        self.ttl = parse_ttl(ttl)
        self.online = bool(online)
        self.tags = {str(k): str(v) for k, v in (tags or {}).items()}
        self.description = str(description or "")
        self.source = as_source(source, timestamp_field, created_timestamp_column)
        cols = self.source.check()
        self.join_keys: list[str] = []
        self.key_types: dict[str, str] = {}
        for ent in self.entities:
            for key in ent.join_keys:
                if key in self.key_types:
                    raise InvalidInput(f"feature view {name!r}: join key {key!r} appears in two entities")
                self.join_keys.append(key)
                self.key_types[key] = _key_type(name, ent, key, cols, self.source)
        special = {*self.join_keys, self.source.timestamp_field, self.source.created_timestamp_column}
        self.features = _features(name, features, cols, special, self.source)
        self.version: int | None = None

    @property
    def feature_names(self) -> list[str]:
        return list(self.features)

    def to_doc(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "entities": [e.name for e in self.entities],
                "join_keys": self.join_keys, "key_types": self.key_types,
                "features": [{"name": k, "dtype": v} for k, v in self.features.items()],
                "source": self.source.to_doc(), "ttl": self.ttl, "online": self.online,  # type: ignore[attr-defined]
                "tags": self.tags, "description": self.description}

    @classmethod
    def from_doc(cls, doc: dict[str, Any], entities: dict[str, dict[str, Any]] | None = None) -> FeatureView:
        view = cls.__new__(cls)
        view.name, view.ttl, view.online = doc["name"], doc["ttl"], doc["online"]
        view.tags, view.description = dict(doc.get("tags", {})), doc.get("description", "")
        ents = entities or {}
        view.entities = [Entity.from_doc(ents[n]) if n in ents else Entity(n, [n]) for n in doc["entities"]]
        view.join_keys, view.key_types = list(doc["join_keys"]), dict(doc["key_types"])
        view.features = {f["name"]: f["dtype"] for f in doc["features"]}
        view.source = source_from_doc(doc["source"])
        view.version = doc.get("version")
        return view

    def __repr__(self) -> str:
        return (f"<FeatureView {self.name} keys={','.join(self.join_keys)} features={len(self.features)} "
                f"ttl={fmt_ttl(self.ttl)} source={self.source.kind}>")

    def stats(self) -> dict[str, Any]:
        """Row count, time range, freshness and per-feature null share and range."""
        from .stats import view_stats

        return view_stats(self)

    def _repr_html_(self) -> str:
        from ..display.features import view_card

        return view_card(self, self.stats())


def _entity(e: Entity | str) -> Entity:
    if isinstance(e, Entity):
        return e
    if isinstance(e, str):
        check_name("entity", e)
        from .repo import stored_entity

        return stored_entity(e) or Entity(e, [e])
    raise InvalidInput(f"entities are Entity objects or entity names, got {type(e).__name__}")


def _key_type(view: str, ent: Entity, key: str, cols: dict[str, tuple[str, str]], source: Source) -> str:
    if key not in cols:
        raise InvalidInput(f"feature view {view!r}: {source.describe()} has no join key column {key!r} "
                           f"(columns: {_list(cols)})")
    kind, physical = cols[key]
    found = {"int": "int64", "string": "string"}.get(kind)
    declared = ent.key_types.get(key)
    if found is None:
        raise InvalidInput(f"feature view {view!r}: join key {key!r} holds {physical}; keys must be integers or strings")
    if declared is not None and declared != found:
        raise InvalidInput(f"feature view {view!r}: join key {key!r} of entity {ent.name!r} is {declared}, "
                           f"but {source.describe()} holds {kind} values ({physical}) there")
    return found


def _features(view: str, spec: Any, cols: dict[str, tuple[str, str]], special: set[Any], source: Source) -> dict[str, str]:
    if spec is None:
        names = [c for c in cols if c not in special]
        out = {}
        for c in names:
            dtype = default_dtype(cols[c][0], cols[c][1])
            if dtype is None:
                raise InvalidInput(f"feature view {view!r}: column {c!r} holds {cols[c][1]}, which is not a feature type; "
                                   "list the features you want with features=[...]")
            out[c] = dtype
        if not out:
            raise InvalidInput(f"feature view {view!r}: {source.describe()} has no feature columns besides keys and timestamps")
        return out
    if isinstance(spec, str):
        spec = [spec]
    if isinstance(spec, dict):
        items = [(k, check_dtype(k, v)) for k, v in spec.items()]
    elif isinstance(spec, (list, tuple)):
        items = [(k, None) for k in spec]
    else:
        raise InvalidInput(f"features must be a dict of name -> dtype or a list of names, got {type(spec).__name__}")
    out = {}
    for name, dtype in items:
        if not isinstance(name, str) or not name or ":" in name:
            raise InvalidInput(f"feature view {view!r}: invalid feature name {name!r}")
        if name in special:
            raise InvalidInput(f"feature view {view!r}: {name!r} is a join key or timestamp column, not a feature")
        if name not in cols:
            raise InvalidInput(f"feature view {view!r}: {source.describe()} has no column {name!r} (columns: {_list(cols)})")
        kind, physical = cols[name]
        dtype = dtype or default_dtype(kind, physical)
        if dtype is None or dtype not in _FEEDS.get(kind, ()) and not (kind == "string" and dtype == "timestamp"):
            raise InvalidInput(f"feature view {view!r}: column {name!r} holds {physical}, which cannot be read as "
                               f"{dtype or 'a feature'}")
        out[name] = dtype
    return out


def _list(cols: Iterable[str]) -> str:
    names = list(cols)
    return ", ".join(names[:12]) + (f", … ({len(names)} in all)" if len(names) > 12 else "")


# -- on-demand views -----------------------------------------------------------------
_UDFS: dict[str, tuple[str, Callable[..., Any]]] = {}  # view name -> (sha of its code, function)


def udf_fingerprint(func: Callable[..., Any]) -> tuple[str, str]:
    """(source text, sha256) of a function: its source if Python can find it, else its bytecode."""
    try:
        text = inspect.getsource(func)
    except (OSError, TypeError):
        code = getattr(func, "__code__", None)
        text = f"# source not available\n# {getattr(func, '__qualname__', func)!r}"
        body = repr((code.co_code, code.co_consts, code.co_names)) if code else text
        return text, hashlib.sha256(body.encode()).hexdigest()
    return text, hashlib.sha256(text.encode()).hexdigest()


class OnDemandFeatureView:
    """Features computed by a Python function from other features and request data, applied the
    same way to training sets and to online lookups (one function: no training/serving skew).

    ``udf`` takes a pandas DataFrame (one column per input feature, under its short name, and
    per request field) and returns a DataFrame with the ``schema`` columns, row for row.
    The store keeps the function's source for display and its hash; the function itself runs
    only in a process that defined it (nbmlops never executes code read from the store).
    """

    kind = "ondemand"

    def __init__(self, name: str, sources: Iterable[str | FeatureView], schema: dict[str, str],
                 udf: Callable[[Any], Any], request_schema: dict[str, str] | None = None,
                 description: str = "", tags: dict[str, str] | None = None) -> None:
        self.name = check_name("on-demand feature view", name)
        if not callable(udf):
            raise InvalidInput(f"on-demand view {name!r}: udf must be a function taking and returning a DataFrame")
        self.inputs: list[str] = []
        for s in ([sources] if isinstance(sources, (str, FeatureView)) else sources):
            if isinstance(s, FeatureView):
                self.inputs += [f"{s.name}:{f}" for f in s.features]
            elif isinstance(s, str) and s.count(":") == 1 and all(s.split(":")):
                self.inputs.append(s)
            else:
                raise InvalidInput(f"on-demand view {name!r}: sources are 'view:feature' references or feature views, got {s!r}")
        shorts = [r.split(":")[1] for r in self.inputs]
        self.request_schema = {str(k): check_dtype(k, v) for k, v in (request_schema or {}).items()}
        clash = {s for s in shorts if shorts.count(s) > 1} | (set(shorts) & set(self.request_schema))
        if clash:
            raise InvalidInput(f"on-demand view {name!r}: input names must be distinct, {sorted(clash)} appear twice")
        if not self.inputs and not self.request_schema:
            raise InvalidInput(f"on-demand view {name!r} needs sources and/or request_schema")
        if not isinstance(schema, dict) or not schema:
            raise InvalidInput(f"on-demand view {name!r}: schema must be a dict of output feature -> dtype")
        self.features = {str(k): check_dtype(k, v) for k, v in schema.items()}
        self.udf = udf
        self.udf_source, self.udf_sha = udf_fingerprint(udf)
        self.description, self.tags = str(description or ""), {str(k): str(v) for k, v in (tags or {}).items()}
        _UDFS[self.name] = (self.udf_sha, udf)

    @property
    def feature_names(self) -> list[str]:
        return list(self.features)

    def transform(self, inputs: Any) -> Any:
        """Run the function on a DataFrame of inputs and check what it returns."""
        import pandas as pd

        try:
            out = self.udf(inputs)
        except Exception as exc:
            raise InvalidInput(f"on-demand view {self.name!r}: its function raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(out, pd.DataFrame):
            raise InvalidInput(f"on-demand view {self.name!r}: its function must return a DataFrame, got {type(out).__name__}")
        missing = [c for c in self.features if c not in out.columns]
        if missing or len(out) != len(inputs):
            raise InvalidInput(f"on-demand view {self.name!r}: its function returned {len(out)} rows with columns "
                               f"{list(out.columns)}; expected {len(inputs)} rows with {list(self.features)}")
        return out

    def to_doc(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "inputs": self.inputs, "request_schema": self.request_schema,
                "features": [{"name": k, "dtype": v} for k, v in self.features.items()],
                "udf_name": getattr(self.udf, "__qualname__", "udf"), "udf_source": self.udf_source,
                "udf_sha": self.udf_sha, "description": self.description, "tags": self.tags}

    @classmethod
    def from_doc(cls, doc: dict[str, Any], udf: Callable[[Any], Any] | None = None) -> OnDemandFeatureView:
        """A stored on-demand view; ``udf`` is the function bound in this process (None: display only)."""
        view = cls.__new__(cls)
        view.name, view.inputs, view.request_schema = doc["name"], list(doc["inputs"]), dict(doc["request_schema"])
        view.features = {f["name"]: f["dtype"] for f in doc["features"]}
        view.udf, view.udf_source, view.udf_sha = udf, doc["udf_source"], doc["udf_sha"]
        view.description, view.tags = doc.get("description", ""), dict(doc.get("tags", {}))
        return view

    def __repr__(self) -> str:
        return f"<OnDemandFeatureView {self.name} inputs={len(self.inputs)} features={list(self.features)}>"


def bound_udf(doc: dict[str, Any]) -> Callable[[Any], Any]:
    """The function of a stored on-demand view, if this process defined the same one."""
    hit = _UDFS.get(doc["name"])
    if hit is None:
        raise InvalidInput(f"on-demand view {doc['name']!r} has no function in this process: run the code that "
                           "defines it (nbmlops does not execute code read from the store)")
    if hit[0] != doc["udf_sha"]:
        raise InvalidInput(f"the function of on-demand view {doc['name']!r} in this process differs from the applied "
                           "one: apply it again (or re-run the cell that defines the applied version)")
    return hit[1]


def on_demand_feature_view(sources: Iterable[str | FeatureView], schema: dict[str, str],
                           request_schema: dict[str, str] | None = None, name: str | None = None,
                           description: str = "") -> Callable[[Callable[[Any], Any]], OnDemandFeatureView]:
    """Decorator: ``@on_demand_feature_view(sources=[...], schema={...})`` over the function."""

    def wrap(func: Callable[[Any], Any]) -> OnDemandFeatureView:
        return OnDemandFeatureView(name or func.__name__, sources, schema, func, request_schema,
                                   description or (func.__doc__ or "").strip())

    return wrap


# -- services ------------------------------------------------------------------------
class FeatureService:
    """A named list of feature references (``"view:feature"``, or a whole view)."""

    kind = "service"

    def __init__(self, name: str, features: Iterable[str | FeatureView | OnDemandFeatureView],
                 description: str = "", tags: dict[str, str] | None = None) -> None:
        self.name = check_name("feature service", name)
        if isinstance(features, (str, FeatureView, OnDemandFeatureView)):
            features = [features]
        self.features: list[str] = []
        for f in features:
            if isinstance(f, (FeatureView, OnDemandFeatureView)):
                self.features += [f"{f.name}:{n}" for n in f.features]
            elif isinstance(f, str) and f and f.count(":") <= 1:
                self.features.append(f)
            else:
                raise InvalidInput(f"feature service {name!r}: {f!r} is not a 'view:feature' reference or a view")
        if not self.features:
            raise InvalidInput(f"feature service {name!r} lists no features")
        self.description, self.tags = str(description or ""), {str(k): str(v) for k, v in (tags or {}).items()}

    def to_doc(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "features": self.features,
                "description": self.description, "tags": self.tags}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> FeatureService:
        return cls(doc["name"], doc["features"], doc.get("description", ""), doc.get("tags"))

    def __repr__(self) -> str:
        return f"<FeatureService {self.name} features={self.features}>"

    def _repr_html_(self) -> str:
        from ..display.features import service_card

        return service_card(self)


def canonical(doc: dict[str, Any]) -> str:
    """The part of a definition that decides 'changed or not', as text."""
    skip = {"id", "version", "created", "updated", "schema"}
    return json.dumps({k: v for k, v in doc.items() if k not in skip}, sort_keys=True, default=str)
