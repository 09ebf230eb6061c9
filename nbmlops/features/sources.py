"""Sources of feature rows (a DataFrame, a Parquet or CSV file), and the types of their columns."""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from ..store import current_store
from ..tracking.fingerprint import fingerprint as data_fingerprint

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
    if pd.api.types.is_string_dtype(t) or t == object:  # noqa: E721 (a dtype, compared by equality)
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
class Source(ABC):
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

    @abstractmethod
    def columns(self) -> dict[str, tuple[str, str]]:
        """column -> (kind, physical dtype name)."""

    @abstractmethod
    def read(self, columns: list[str]) -> Any:
        """The named columns as a pandas DataFrame."""

    @abstractmethod
    def identity(self) -> tuple[Any, ...]:
        """Changes whenever the rows may have changed (keys the in-process cache)."""

    @abstractmethod
    def describe(self) -> str:
        """One line naming the source."""

    def check(self) -> dict[str, tuple[str, str]]:
        cols = self.columns()
        for col, role in ((self.timestamp_field, "event timestamp"),
                          (self.created_timestamp_column, "created timestamp")):
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
                 fingerprint: str | None = None, rows: int | None = None,
                 schema: dict[str, list[str]] | None = None) -> None:
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

            data = current_store(create=False).blobs.read_bytes(self.sha256)
            self._df = pq.read_table(io.BytesIO(data)).to_pandas()
        return self._df

    @property
    def rows(self) -> int:
        return len(self._df) if self._df is not None else int(self._rows or 0)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = data_fingerprint(self.df)["sha256"]
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
    raise InvalidInput("a feature source is a DataFrame or the path of a Parquet or CSV file, "
                       f"got {type(source).__name__}")


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


def _list(cols: Iterable[str]) -> str:
    names = list(cols)
    return ", ".join(names[:12]) + (f", … ({len(names)} in all)" if len(names) > 12 else "")
