"""Applying, fetching and listing feature definitions (the public face of ``repo``)."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidInput
from ..store import current_store
from .definitions import FeatureService, FeatureView, OnDemandFeatureView
from .ondemand import _UDFS
from .repo import Changes, all_docs, apply, entities_by_name, find, names


def apply_features(objects: Any, force: bool = False) -> Changes:
    """Store entities, feature views, on-demand views and services (idempotent); returns what changed.

    >>> nbmlops.apply_features([user, user_stats, training_service])
    created entity user (user_id:int64)
    created feature view user_stats (5 features, keys user_id, ttl 7d, /data/stats.parquet)
    …

    A change that would change what existing training sets mean (a feature dropped or retyped,
    other entities) is refused unless ``force=True``, which replaces the view and clears its
    online table. Nothing is written if anything is refused.
    """
    return apply(objects, force)


def _docs() -> list[dict[str, Any]]:
    store = current_store(create=False)
    return all_docs(store) if store.exists() else []


def _stored(kind: str | tuple[str, ...], name: str, what: str, plural: str,
            docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The stored document of that kind and name, or InvalidInput naming those there are."""
    doc = find(kind, name, docs)
    if doc is None:
        raise InvalidInput(f"unknown {what} {name!r} ({plural}: {names(kind, docs)})")
    return doc


def get_feature_view(name: str) -> FeatureView | OnDemandFeatureView:
    """The stored view called ``name`` (shows its statistics in a notebook)."""
    docs = _docs()
    doc = _stored(("view", "ondemand"), name, "feature view", "views", docs)
    if doc["kind"] == "ondemand":
        hit = _UDFS.get(name)
        return OnDemandFeatureView.from_doc(doc, hit[1] if hit and hit[0] == doc["udf_sha"] else None)
    return FeatureView.from_doc(doc, entities_by_name(docs))


def get_feature_service(name: str) -> FeatureService:
    return FeatureService.from_doc(_stored("service", name, "feature service", "services", _docs()))


def list_feature_views() -> list[FeatureView | OnDemandFeatureView]:
    """Every stored feature view and on-demand view, by name."""
    return [get_feature_view(d["name"]) for d in sorted(_docs(), key=lambda d: d["name"])
            if d["kind"] in ("view", "ondemand")]


class Catalog:
    """Everything the store's feature store holds (``%features list``)."""

    def __init__(self) -> None:
        self.docs = _docs()
        store = current_store(create=False)
        self.online = {d["view"]: d for d in store.online_tables().all()} if store.exists() else {}

    def __repr__(self) -> str:
        if not self.docs:
            return "no feature definitions yet"
        return "\n".join(f"{d['kind']:<9} {d['name']}" for d in sorted(self.docs, key=lambda d: (d["kind"], d["name"])))

    def _repr_html_(self) -> str:
        from ..display.features import definitions_table  # display: the one-line _repr_html_ delegation

        return definitions_table(self.docs, self.online)


def feature_catalog() -> Catalog:
    return Catalog()
