"""On-demand feature views: features computed by a Python function, offline and online alike."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import InvalidInput
from .sources import check_dtype, check_name

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

    def __init__(self, name: str, sources: Iterable[Any], schema: dict[str, str],
                 udf: Callable[[Any], Any], request_schema: dict[str, str] | None = None,
                 description: str = "", tags: dict[str, str] | None = None) -> None:
        self.name = check_name("on-demand feature view", name)
        if not callable(udf):
            raise InvalidInput(f"on-demand view {name!r}: udf must be a function taking and returning a DataFrame")
        from .definitions import FeatureView  # cycle: definitions imports this module

        self.inputs: list[str] = []
        for s in ([sources] if isinstance(sources, (str, FeatureView)) else sources):
            if isinstance(s, FeatureView):
                self.inputs += [f"{s.name}:{f}" for f in s.features]
            elif isinstance(s, str) and s.count(":") == 1 and all(s.split(":")):
                self.inputs.append(s)
            else:
                raise InvalidInput(f"on-demand view {name!r}: sources are 'view:feature' references or "
                                   f"feature views, got {s!r}")
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
            raise InvalidInput(f"on-demand view {self.name!r}: its function raised "
                               f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(out, pd.DataFrame):
            raise InvalidInput(f"on-demand view {self.name!r}: its function must return a DataFrame, "
                               f"got {type(out).__name__}")
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


def on_demand_feature_view(sources: Iterable[Any], schema: dict[str, str],
                           request_schema: dict[str, str] | None = None, name: str | None = None,
                           description: str = "") -> Callable[[Callable[[Any], Any]], OnDemandFeatureView]:
    """Decorator: ``@on_demand_feature_view(sources=[...], schema={...})`` over the function."""

    def wrap(func: Callable[[Any], Any]) -> OnDemandFeatureView:
        return OnDemandFeatureView(name or func.__name__, sources, schema, func, request_schema,
                                   description or (func.__doc__ or "").strip())

    return wrap
