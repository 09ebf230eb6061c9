"""Which columns a drift report compares, and as what: the column mapping and type inference.

Kinds follow Evidently's inference (``evidently.core.datasets.infer_column_type``) so that
reports read the same: floats are numeric; integers are categorical up to 10 distinct
values, numeric above; bool and ``category`` are categorical; strings are categorical
unless more than half the values are distinct (then text, which is not tested); datetimes
are not tested (they may be the time column of ``by_time``). A :class:`ColumnMapping`
overrides any of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InvalidInput

NUMERIC, CATEGORICAL, DATETIME, TEXT, UNKNOWN = "numeric", "categorical", "datetime", "text", "unknown"
INTEGER_CARDINALITY_LIMIT = 10
# like Evidently's legacy ColumnMapping: columns with these names are the target / prediction unless told
DEFAULT_TARGET, DEFAULT_PREDICTION = "target", "prediction"


@dataclass
class ColumnMapping:
    """What the columns are. Everything is optional; unset parts are inferred.

    >>> ColumnMapping(target="churned", prediction="proba", categorical_features=["plan"], id="customer_id")

    ``prediction`` is a label column, a probability column (binary classification) or a list of
    probability columns named by class. ``task`` is ``"classification"`` or ``"regression"``.
    """

    target: str | None = DEFAULT_TARGET
    prediction: str | list[str] | None = DEFAULT_PREDICTION
    numerical_features: list[str] | None = None
    categorical_features: list[str] | None = None
    timestamp: str | None = None
    id: str | list[str] | None = None
    task: str | None = None
    pos_label: Any = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def coerce(cls, value: ColumnMapping | dict[str, Any] | None) -> ColumnMapping:
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            names = {f.name for f in fields(cls)}
            aliases = {"numerical": "numerical_features", "categorical": "categorical_features",
                       "datetime": "timestamp", "numeric_features": "numerical_features"}
            clean = {}
            for key, v in value.items():
                key = aliases.get(key, key)
                if key not in names or key == "extra":
                    raise InvalidInput(f"column_mapping has no field {key!r}; use some of: "
                                       f"{', '.join(n for n in sorted(names) if n != 'extra')}")
                clean[key] = v
            return cls(**clean)
        raise InvalidInput(f"column_mapping must be a ColumnMapping or a dict, not {type(value).__name__}")

    def ids(self) -> list[str]:
        return [self.id] if isinstance(self.id, str) else list(self.id or [])

    def prediction_columns(self) -> list[str]:
        if self.prediction is None:
            return []
        return [self.prediction] if isinstance(self.prediction, str) else list(self.prediction)


def infer_kind(series: pd.Series) -> str:
    """numeric, categorical, datetime, text or unknown, as Evidently infers it."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype):
        return CATEGORICAL
    if pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype):
        return DATETIME
    if pd.api.types.is_float_dtype(dtype):
        return NUMERIC
    if pd.api.types.is_integer_dtype(dtype):
        return CATEGORICAL if series.nunique() <= INTEGER_CARDINALITY_LIMIT else NUMERIC
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        first, last = _end_value(series, 1), _end_value(series, -1)
        if first is None:
            return UNKNOWN
        if isinstance(first, str) and isinstance(last, str):
            return TEXT if _mostly_distinct(series) else CATEGORICAL
        if isinstance(first, bool) and isinstance(last, bool):
            return CATEGORICAL
        return UNKNOWN
    if pd.api.types.is_numeric_dtype(dtype):
        return NUMERIC
    return UNKNOWN


def _end_value(series: pd.Series, step: int) -> Any:
    """The first (step 1) or last (step -1) value that is not missing, looking at few rows."""
    n = len(series)
    for start in range(0, n, 64):
        block = series.iloc[start:start + 64] if step == 1 else series.iloc[max(n - start - 64, 0):n - start][::-1]
        valid = block[block.notna()]
        if len(valid):
            return valid.iloc[0]
    return None


def _mostly_distinct(series: pd.Series) -> bool:
    """More than half the present values distinct (text, not categories)? On big columns a random
    sample of 20,000 answers 'no' when it holds under 10% distinct values (a column with more than
    half its values distinct cannot give such a sample); else the whole column is counted."""
    if len(series) > 100_000:
        idx = np.random.default_rng(0).choice(len(series), 20_000, replace=False)
        sample = series.iloc[idx].dropna()
        if len(sample) >= 1000 and sample.nunique() < 0.1 * len(sample):
            return False
    values = series.dropna()
    return values.nunique() > 0.5 * len(values)


@dataclass
class Schema:
    """The resolved columns of one comparison."""

    features: dict[str, str]                     # column -> numeric | categorical, in frame order
    target: str | None = None
    target_kind: str | None = None
    prediction: list[str] = field(default_factory=list)
    prediction_kind: str | None = None
    timestamp: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)   # column -> why it is not tested
    only_in_reference: list[str] = field(default_factory=list)
    only_in_current: list[str] = field(default_factory=list)
    kind_changes: dict[str, tuple[str, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _check_frame(df: Any, role: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise InvalidInput(f"{role} must be a pandas DataFrame (or a path / model: URI), not {type(df).__name__}")
    if df.shape[1] == 0:
        raise InvalidInput(f"{role} has no columns")
    if len(df) == 0:
        raise InvalidInput(f"{role} has no rows: nothing to compare")
    if not df.columns.is_unique:
        dup = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
        raise InvalidInput(f"{role} has duplicated column names: {', '.join(dup)}")
    return df


def _listed(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    try:
        return list(value)
    except TypeError:
        raise InvalidInput(f"{what} must be a column name or a list of them, not {value!r}") from None


def _short(cols: Any, limit: int = 8) -> str:
    cols = [str(c) for c in cols]
    return ", ".join(cols[:limit]) + (f" … (+{len(cols) - limit})" if len(cols) > limit else "")


def resolve(reference: pd.DataFrame, current: pd.DataFrame, mapping: ColumnMapping,
            columns: list[str] | None = None) -> Schema:
    """Decide which columns are compared and as what; raise InvalidInput for what cannot be compared."""
    _check_frame(reference, "reference")
    _check_frame(current, "current")
    ref_cols, cur_cols = list(reference.columns), set(current.columns)
    common = [c for c in ref_cols if c in cur_cols]
    if not common:
        raise InvalidInput(f"reference and current have no columns in common (reference: {_short(ref_cols)}; "
                           f"current: {_short(current.columns)})")
    schema = Schema(features={})
    ref_set = set(ref_cols)
    roles = {mapping.target, mapping.timestamp, *mapping.prediction_columns(), *mapping.ids()}  # noted elsewhere
    schema.only_in_reference = [c for c in ref_cols if c not in cur_cols and c not in roles]
    schema.only_in_current = [c for c in current.columns if c not in ref_set and c not in roles]

    explicit_num = _listed(mapping.numerical_features, "numerical_features")
    explicit_cat = _listed(mapping.categorical_features, "categorical_features")
    for name in (*explicit_num, *explicit_cat):
        if name not in ref_set and name not in cur_cols:
            raise InvalidInput(f"column_mapping names {name!r}, which is in neither frame")

    # target / prediction: the defaults ('target', 'prediction') apply only when present
    target = mapping.target
    if target is not None and target not in ref_set and target not in cur_cols:
        if target != DEFAULT_TARGET:
            raise InvalidInput(f"target column {target!r} is in neither frame (columns: {_short(common)})")
        target = None
    preds = mapping.prediction_columns()
    if preds and all(p not in ref_set and p not in cur_cols for p in preds):
        if mapping.prediction != DEFAULT_PREDICTION:
            raise InvalidInput(f"prediction column(s) {_short(preds)} in neither frame (columns: {_short(common)})")
        preds = []
    missing = [p for p in preds if p not in ref_set and p not in cur_cols]
    if missing:
        raise InvalidInput(f"prediction column(s) {_short(missing)} in neither frame")
    schema.target, schema.prediction = target, preds
    if mapping.timestamp is not None:
        if mapping.timestamp not in cur_cols:
            raise InvalidInput(f"time column {mapping.timestamp!r} is not in current "
                               f"(columns: {_short(current.columns)})")
        schema.timestamp = mapping.timestamp

    special = {target, *preds, schema.timestamp, *mapping.ids()} - {None}
    if columns is not None:
        wanted = _listed(columns, "columns")
        for name in wanted:
            if name not in ref_set and name not in cur_cols:
                raise InvalidInput(f"column {name!r} is in neither frame (common columns: {_short(common)})")
            if name not in ref_set or name not in cur_cols:
                side = "reference" if name not in ref_set else "current"
                raise InvalidInput(f"column {name!r} is not in {side}: it cannot be compared")
        candidates = [c for c in common if c in set(wanted) and c not in special]
    else:
        candidates = [c for c in common if c not in special]

    for name in candidates:
        if name in explicit_num:
            schema.features[name] = NUMERIC
            continue
        if name in explicit_cat:
            schema.features[name] = CATEGORICAL
            continue
        kr, kc = _kind_both(reference[name], current[name])
        kind, why = _combine(kr, kc)
        if kind is None:
            schema.skipped[name] = why
        else:
            schema.features[name] = kind
            if kr != kc:
                schema.kind_changes[name] = (kr, kc)
    for name in explicit_num:
        if name in schema.features and not _numeric_ok(reference[name], current[name]):
            raise InvalidInput(f"column_mapping says {name!r} is numeric, but its values are not numbers")
    if target is not None:
        schema.target_kind = _role_kind(reference, current, target, mapping.task)
    if preds:
        schema.prediction_kind = (NUMERIC if len(preds) > 1 else _role_kind(reference, current, preds[0], mapping.task))
    return schema


def _kind_both(ref: pd.Series, cur: pd.Series) -> tuple[str, str]:
    kr = infer_kind(ref)
    kc = infer_kind(cur)
    if kr == UNKNOWN and ref.isna().all():
        kr = kc if kc != UNKNOWN else UNKNOWN
    if kc == UNKNOWN and cur.isna().all():
        kc = kr
    # numbers that one side calls categorical (few distinct integers) and the other numeric: numeric
    if {kr, kc} == {NUMERIC, CATEGORICAL} and all(
            pd.api.types.is_integer_dtype(s.dtype) or pd.api.types.is_float_dtype(s.dtype) for s in (ref, cur)):
        return NUMERIC, NUMERIC
    return kr, kc


def _combine(kr: str, kc: str) -> tuple[str | None, str]:
    if kr == kc:
        if kr in (NUMERIC, CATEGORICAL):
            return kr, ""
        return None, {DATETIME: "datetime column (use it with by_time)",
                      TEXT: "text (more than half the values distinct)",
                      UNKNOWN: "values of no supported type (or all missing)"}[kr]
    if {kr, kc} <= {NUMERIC, CATEGORICAL, TEXT}:
        return CATEGORICAL, ""
    return None, f"{kr} in reference but {kc} in current"


def _numeric_ok(ref: pd.Series, cur: pd.Series) -> bool:
    return all(pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype) for s in (ref, cur))


def _role_kind(reference: pd.DataFrame, current: pd.DataFrame, column: str, task: str | None) -> str:
    if task == "classification":
        return CATEGORICAL
    if task == "regression":
        return NUMERIC
    if task is not None:
        raise InvalidInput(f"task must be 'classification' or 'regression', not {task!r}")
    series = reference[column] if column in reference.columns else current[column]
    kind = infer_kind(series)
    return kind if kind in (NUMERIC, CATEGORICAL) else CATEGORICAL
