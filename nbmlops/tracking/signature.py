"""Model signatures: what a model takes and gives, inferred at registration, checked at load."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidInput


def _jsonable(values: Any) -> list[Any]:
    out = []
    for v in list(values):
        item = getattr(v, "item", None)
        out.append(item() if callable(item) else v)
    return out


# packages whose objects are data, whatever methods they have (a DataFrame has .transform)
_DATA_PACKAGES = ("pandas", "numpy", "polars", "pyarrow", "xarray", "dask.dataframe", "dask.array", "scipy.sparse",
                  "pyspark.sql")
_PLAIN_DATA = (dict, list, tuple, set, frozenset, str, bytes, bytearray, int, float, complex, type(None))


def not_a_model(model: Any, allow_plain: bool = False) -> str | None:
    """Why ``model`` is data or a class rather than a model object, or None. ``allow_plain``
    lets a dict through (``log_model`` may keep a dict of weights; a registry version may not)."""
    if isinstance(model, type):
        return f"{model.__name__} is a class, not a fitted model: call {model.__name__}(...).fit(X, y) first"
    if allow_plain and isinstance(model, dict):
        return None
    module = type(model).__module__ or ""
    if isinstance(model, _PLAIN_DATA) or any(module == p or module.startswith(p + ".") for p in _DATA_PACKAGES):
        name = type(model).__name__
        return (f"{'an' if name[0] in 'aeiouAEIOU' else 'a'} {name} is data, not a model: "
                "pass the fitted estimator (the object you called .fit on)")
    return None


def check_fitted(model: Any, strict: bool = True) -> None:
    """Refuse data and classes, objects that are not models (``strict``: no predict or transform
    method), and scikit-learn estimators that are not fitted. Runs before anything is written."""
    why = not_a_model(model, allow_plain=not strict)
    if why:
        raise InvalidInput(why)
    if strict and not any(callable(getattr(model, m, None)) for m in ("predict", "transform", "predict_proba")):
        raise InvalidInput(f"a {type(model).__name__} is not a model (it has no predict or transform method)")
    if hasattr(model, "get_params") and hasattr(model, "fit"):
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        try:
            check_is_fitted(model)
        except NotFittedError:
            raise InvalidInput(f"this {type(model).__name__} is not fitted: call .fit(X, y) on it first") from None
        except TypeError:
            pass


def infer(model: Any, example: Any = None) -> dict[str, Any]:
    """Feature names and dtypes, feature count, classes, output kind, steps, and a small input example."""
    from sklearn.base import is_classifier, is_regressor

    sig: dict[str, Any] = {"features": None, "dtypes": None, "n_features": None, "classes": None,
                           "output": "unknown", "predict_proba": hasattr(model, "predict_proba"),
                           "steps": None, "input_example": None}
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        sig["features"] = [str(n) for n in names]
    n = getattr(model, "n_features_in_", None)
    if n is not None:
        sig["n_features"] = int(n)
    classes = getattr(model, "classes_", None)
    if classes is not None:
        sig["classes"] = _jsonable(classes)
    if is_classifier(model):
        sig["output"] = "probability" if sig["predict_proba"] else "class"
    elif is_regressor(model):
        sig["output"] = "regression"
    elif hasattr(model, "transform"):
        sig["output"] = "transform"
    steps = getattr(model, "steps", None)
    if isinstance(steps, list):
        sig["steps"] = [[str(name), type(step).__name__] for name, step in steps]
    if example is not None and len(example):
        cols = sig["features"] or [c for c in example.columns if c not in ("target", "prediction")]
        cols = [c for c in cols if c in example.columns]
        if cols:
            sample = example[cols]
            sig["dtypes"] = {c: str(t) for c, t in sample.dtypes.items()}
            sig["input_example"] = _records(sample.head(3))
            if sig["n_features"] is None:
                sig["n_features"] = len(cols)
    return sig


def _records(df: Any) -> list[dict[str, Any]]:
    import json

    return json.loads(df.to_json(orient="records", date_format="iso"))


def validate(signature: dict[str, Any], X: Any, label: str) -> Any:
    """Check ``X`` against the signature; return it ready for the model (columns selected and
    ordered for a DataFrame). Raises InvalidInput naming missing/extra features or bad types."""
    import numpy as np
    import pandas as pd

    features = signature.get("features")
    if isinstance(X, dict):
        X = pd.DataFrame([X])
    elif isinstance(X, list) and X and isinstance(X[0], dict):
        X = pd.DataFrame(X)
    if isinstance(X, pd.DataFrame):
        if features:
            have = [str(c) for c in X.columns]
            missing = [f for f in features if f not in have]
            if missing:
                extra = [c for c in have if c not in features]
                raise InvalidInput(
                    f"{label}: the input lacks {_list(missing)}"
                    + (f" and has unexpected {_list(extra)}" if extra else "")
                    + f" (it expects {len(features)} features: {_list(features, 5)})")
            X = X[features]
        elif signature.get("n_features") is not None and X.shape[1] != signature["n_features"]:
            raise InvalidInput(f"{label} expects {signature['n_features']} features, the input has {X.shape[1]}")
        for col, dtype in (signature.get("dtypes") or {}).items():
            if col in X.columns and _numeric(dtype) and not pd.api.types.is_numeric_dtype(X[col]):
                converted = pd.to_numeric(X[col], errors="coerce")
                bad = X[col][converted.isna() & X[col].notna()]
                if len(bad):
                    raise InvalidInput(f"{label}: feature {col!r} must be numeric ({dtype}), got {bad.iloc[0]!r}")
                X = X.assign(**{col: converted})
        return X if features else X.to_numpy()  # a model fitted on an array wants no column names
    arr = np.asarray(X)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    n = signature.get("n_features")
    if n is not None and arr.shape[-1] != n:
        hint = f" ({_list(features)})" if features else ""
        raise InvalidInput(f"{label} expects {n} features{hint}, the input has {arr.shape[-1]}")
    if features and arr.dtype != object:
        return pd.DataFrame(arr, columns=features)
    return arr


def _numeric(dtype: str) -> bool:
    return dtype.startswith(("int", "float", "uint", "Int", "Float", "UInt", "bool"))


def _list(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(i) for i in items[:limit])
    return f"[{shown}{', …' if len(items) > limit else ''}]"


def diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """What differs between two signatures (features added/removed, other fields changed)."""
    out: dict[str, Any] = {}
    fa, fb = a.get("features") or [], b.get("features") or []
    if fa != fb:
        out["features"] = {"added": [f for f in fb if f not in fa], "removed": [f for f in fa if f not in fb]}
    for key in ("n_features", "classes", "output", "predict_proba", "steps", "dtypes"):
        if a.get(key) != b.get(key):
            out[key] = {"a": a.get(key), "b": b.get(key)}
    return out
