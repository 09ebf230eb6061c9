"""What a feature store holds: entities, feature views and services (sources in ``sources``,
on-demand views in ``ondemand``; all re-exported here).

These objects are plain descriptions. Building one checks everything that can be checked
without the store (columns exist, timestamps are times, keys and features have the right
types, the ttl parses); ``apply`` then checks them against what the store already holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..errors import InvalidInput
from .ondemand import (
    OnDemandFeatureView,
    bound_udf,
    on_demand_feature_view,
    udf_fingerprint,
)
from .sources import (
    _FEEDS,
    DTYPES,
    KEY_TYPES,
    CsvSource,
    DataFrameSource,
    FileSource,
    ParquetSource,
    Source,
    _list,
    as_source,
    check_dtype,
    check_name,
    default_dtype,
    kind_of_arrow,
    kind_of_pandas,
    source_from_doc,
)
from .timeutil import fmt_ttl, parse_ttl

__all__ = ["Entity", "FeatureView", "FeatureService", "OnDemandFeatureView", "on_demand_feature_view", "Source",
           "DataFrameSource", "FileSource", "ParquetSource", "CsvSource", "as_source", "source_from_doc", "bound_udf",
           "udf_fingerprint", "canonical", "check_name", "check_dtype", "DTYPES", "KEY_TYPES", "default_dtype",
           "kind_of_arrow", "kind_of_pandas"]


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
                raise InvalidInput(f"entity {name!r}: key {k!r} has value_type {t!r}; "
                                   f"keys are {' or '.join(KEY_TYPES)}")
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
        from .stats import view_stats  # cycle: stats reads views through frames, which imports this module

        return view_stats(self)

    def _repr_html_(self) -> str:
        from ..display.features import view_card  # display: the one-line _repr_html_ delegation

        return view_card(self, self.stats())


def _entity(e: Entity | str) -> Entity:
    if isinstance(e, Entity):
        return e
    if isinstance(e, str):
        check_name("entity", e)
        from .repo import stored_entity  # cycle: repo imports this module

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
        raise InvalidInput(f"feature view {view!r}: join key {key!r} holds {physical}; "
                           "keys must be integers or strings")
    if declared is not None and declared != found:
        raise InvalidInput(f"feature view {view!r}: join key {key!r} of entity {ent.name!r} is {declared}, "
                           f"but {source.describe()} holds {kind} values ({physical}) there")
    return found


def _features(view: str, spec: Any, cols: dict[str, tuple[str, str]], special: set[Any], source: Source
              ) -> dict[str, str]:
    if spec is None:
        names = [c for c in cols if c not in special]
        out = {}
        for c in names:
            dtype = default_dtype(cols[c][0], cols[c][1])
            if dtype is None:
                raise InvalidInput(f"feature view {view!r}: column {c!r} holds {cols[c][1]}, "
                                   "which is not a feature type; list the features you want with features=[...]")
            out[c] = dtype
        if not out:
            raise InvalidInput(f"feature view {view!r}: {source.describe()} has no feature columns "
                               "besides keys and timestamps")
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
            raise InvalidInput(f"feature view {view!r}: {source.describe()} has no column {name!r} "
                               f"(columns: {_list(cols)})")
        kind, physical = cols[name]
        dtype = dtype or default_dtype(kind, physical)
        if dtype is None or dtype not in _FEEDS.get(kind, ()) and not (kind == "string" and dtype == "timestamp"):
            raise InvalidInput(f"feature view {view!r}: column {name!r} holds {physical}, which cannot be read as "
                               f"{dtype or 'a feature'}")
        out[name] = dtype
    return out


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
        from ..display.features import service_card  # display: the one-line _repr_html_ delegation

        return service_card(self)


def canonical(doc: dict[str, Any]) -> str:
    """The part of a definition that decides 'changed or not', as text."""
    skip = {"id", "version", "created", "updated", "schema"}
    return json.dumps({k: v for k, v in doc.items() if k not in skip}, sort_keys=True, default=str)
