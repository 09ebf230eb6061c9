"""Scoring one chunk of a batch job, in the job's process or in a worker process.

The fast path builds the model's input straight from the arrow columns (one copy into a single
float64 block; a DataFrame over it without another copy when the model was fitted with feature
names) and builds the output as an arrow table. It applies when every feature column is float64 and
every value finite and the model scores the whole chunk; anything else (text, missing columns, ±inf
or NaN, a model that refuses some rows) takes the general pandas path, row by row where needed, so
the output and the rejects are the same either way. pandas, NumPy and pyarrow are imported inside
the functions that use them, so importing ``nbmlops.serving`` stays light.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..store import set_store
from .batch_io import ParquetRows, part_path, write_part
from .model import ServedModel

# -- the worker side: one model and open input files per process -----------------------------------
_model: Any = None
_files: dict[str, ParquetRows] = {}


def init(store: str, uri: str, threads: int = 0) -> None:
    global _model
    set_store(store)
    _model = ServedModel(uri)
    if threads:  # a worker: share the cores with the others (BLAS/OpenMP threads would spin against them)
        from threadpoolctl import threadpool_limits  # installed with scikit-learn

        threadpool_limits(threads)


def score_rows(index: int, start: int, n: int, path: str, parts: str) -> tuple[int, int, int, Any, Any]:
    """Read rows [start, start + n) of a Parquet file (kept open in this process), score and write them."""
    f = _files.get(path) or _files.setdefault(path, ParquetRows(path))
    return finish_chunk(index, *score_table(_model, f.read(start, n), start), parts)


def score_frame(index: int, start: int, df: Any, parts: str) -> tuple[int, int, int, Any, Any]:
    """Score a chunk already read as a DataFrame (CSV or JSON Lines input) and write it."""
    return finish_chunk(index, *score_pandas(_model, df, start), parts)


def finish_chunk(index: int, out: Any, rejects: Any, parts: str) -> tuple[int, int, int, Any, Any]:
    """Write the chunk's rejects then its predictions (last: marks the chunk done);
    return (index, scored, rejected, predictions, rejects)."""
    folder = Path(parts)
    if rejects is not None:
        write_part(rejects, part_path(folder, index, "rejects"))
    write_part(out, part_path(folder, index))
    return index, out.num_rows, 0 if rejects is None else rejects.num_rows, out, rejects


# -- scoring ----------------------------------------------------------------------------------------
def score_table(model: ServedModel, table: Any, start: int) -> tuple[Any, Any]:
    """(predictions, rejects or None) as arrow tables for an arrow table of input rows starting at ``start``."""
    fast = _fast(model, table, start)
    return fast if fast is not None else score_pandas(model, table.to_pandas(), start)


def _features(model: ServedModel, names: list[str]) -> list[str]:
    return model.schema.features or names[: model.schema.n or len(names)]


def _fast(model: ServedModel, table: Any, start: int) -> tuple[Any, None] | None:
    import numpy as np
    import pyarrow as pa

    features = _features(model, table.column_names)
    if model.schema.numeric is not None and not all(model.schema.numeric):
        return None
    try:
        columns = [table.column(name) for name in features]
    except KeyError:
        return None
    if not all(c.type == pa.float64() and c.null_count == 0 for c in columns):
        return None
    n = table.num_rows
    block = np.empty((len(columns), n))  # one float64 block, as pandas would consolidate the columns
    for j, col in enumerate(columns):
        at = 0
        for piece in col.chunks:
            block[j, at:at + len(piece)] = piece.to_numpy()
            at += len(piece)
    if not np.isfinite(block.sum()):  # NaN, ±inf (or an overflowing sum): the general path sorts them out
        return None
    X: Any = block.T
    if model.schema.features:
        import pandas as pd

        X = pd.DataFrame(X, columns=features, copy=False)
    try:
        with _finite_checked():
            pred, best = _predict(model, X)
    except Exception:  # the general path finds the rows the model refuses, one by one
        return None
    pred = _column(pred)
    if pred is None:
        return None
    out = {"row": pa.array(np.arange(start, start + n, dtype=np.int64)), "prediction": pred}
    if best is not None:
        out["probability"] = pa.array(best)
    out["model_version"] = pa.array(np.full(n, model.version, dtype=np.int64))
    return pa.table(out), None


def _finite_checked() -> Any:
    """scikit-learn's ``assume_finite``: the values were just checked, so it need not check them again."""
    sklearn = sys.modules.get("sklearn")
    if sklearn is None:
        from contextlib import nullcontext

        return nullcontext()
    return sklearn.config_context(assume_finite=True)


def _predict(model: ServedModel, X: Any) -> tuple[Any, Any]:
    import numpy as np

    est = model.estimator
    if model.proba:
        p = est.predict_proba(X)
        if p.ndim == 2 and p.shape[1] == 2:  # binary: two column operations, several times faster than argmax
            top, best = p[:, 1] > p[:, 0], np.maximum(p[:, 0], p[:, 1])
            if not np.isnan(best).any():  # argmax takes the first NaN as the largest: leave NaNs to it
                return est.classes_[top.view(np.uint8)], best
        return est.classes_[p.argmax(axis=1)], p.max(axis=1)
    return np.asarray(est.predict(X)), None


def _column(values: Any) -> Any:
    """Predictions as the arrow column the general path makes of them (pandas' ``infer_objects`` types:
    integers as int64, floats as float64, bools, strings); None for anything else."""
    import numpy as np
    import pyarrow as pa

    kind = values.dtype.kind
    if kind in "iu":
        return pa.array(values.astype(np.int64, copy=False))
    if kind == "f":
        return pa.array(values.astype(np.float64, copy=False))
    if kind == "b" or kind == "U":
        return pa.array(values)
    if kind == "O":
        try:
            column = pa.array(values)
        except (pa.ArrowException, TypeError, ValueError):
            return None
        return column if column.type == pa.string() and not column.null_count else None
    return None


def score_pandas(model: ServedModel, df: Any, start: int) -> tuple[Any, Any]:
    """The general path: validate every feature value, score the valid rows (one by one if the model
    refuses the batch); (predictions, rejects with the raw values as text and the reason, or None)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    features = _features(model, list(df.columns))
    rows = np.arange(start, start + len(df))
    reasons = pd.Series([None] * len(df), dtype=object)
    X = df.reindex(columns=features).reset_index(drop=True)
    numeric_flags = model.schema.numeric or [True] * len(features)
    if all(numeric_flags) and all(X[c].dtype.kind == "f" for c in features):  # the common case, vectorized
        finite = np.isfinite(X.to_numpy()) | X.isna().to_numpy()
        numeric_flags = [not finite[:, j].all() for j in range(len(features))]  # only columns with ±inf
    for name, numeric in zip(features, numeric_flags):
        if not numeric:
            continue
        raw = X[name]
        values = pd.to_numeric(raw, errors="coerce")
        bad = (values.isna() & raw.notna()) | np.isinf(values.to_numpy(dtype=float, na_value=np.nan))
        for i in np.flatnonzero(bad.to_numpy() & reasons.isna().to_numpy()):
            reasons.iloc[i] = f"feature {name!r} is not a finite number: {str(raw.iloc[i])[:40]!r}"
        X[name] = values
    ok = reasons.isna().to_numpy()

    def scores(idx: Any) -> tuple[Any, Any]:
        part = X if len(idx) == len(X) else X.iloc[idx]
        return _predict(model, part if model.schema.features else part.to_numpy(dtype=float))

    good = np.flatnonzero(ok)
    pred = np.empty(len(df), dtype=object)
    proba = np.full(len(df), np.nan)
    if len(good):
        try:
            values, best = scores(good)
            pred[good] = values
            if best is not None:
                proba[good] = best
        except Exception:  # find the rows the model refuses, one by one
            for i in good:
                try:
                    values, best = scores([i])
                    pred[i] = values[0]
                    if best is not None:
                        proba[i] = best[0]
                except Exception as exc:
                    reasons.iloc[i] = f"{type(exc).__name__}: {str(exc)[:200]}"
                    ok[i] = False
    out = pd.DataFrame({"row": rows[ok], "prediction": pd.Series(pred[ok]).infer_objects().to_numpy()})
    if model.proba:
        out["probability"] = proba[ok]
    out["model_version"] = model.version
    out_table = pa.Table.from_pandas(out, preserve_index=False)
    if ok.all():
        return out_table, None
    rejects = df.reset_index(drop=True)[~ok].copy()
    rejects.insert(0, "row", rows[~ok])
    for col in rejects.columns[1:]:
        rejects[col] = rejects[col].astype(str)  # rejects keep the raw values, as text
    rejects["reason"] = reasons[~ok].astype(str).to_numpy()
    return out_table, pa.Table.from_pandas(rejects, preserve_index=False)
