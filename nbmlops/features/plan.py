"""Resolving feature references into a retrieval plan: which views to join, which on-demand
views to run, and the output columns in the order asked."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidInput
from ..store import current_store
from .definitions import FeatureService, FeatureView, OnDemandFeatureView, bound_udf
from .repo import all_docs, find, names


@dataclass
class Plan:
    """What a retrieval computes: stored views to join, on-demand views to run, output columns."""

    refs: list[str]
    service: str | None
    views: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> view doc (features to read)
    view_features: dict[str, list[str]] = field(default_factory=dict)
    ondemand: list[tuple[dict[str, Any], Any]] = field(default_factory=list)  # (doc, function)
    outputs: list[tuple[str, str, str, str]] = field(default_factory=list)  # (view, feature, column, dtype)
    request: dict[str, str] = field(default_factory=dict)

    @property
    def join_keys(self) -> dict[str, str]:
        keys: dict[str, str] = {}
        for v in self.views.values():
            keys.update(v["key_types"])
        return keys


def resolve(features: Any, full_feature_names: bool = False, docs: list[dict[str, Any]] | None = None) -> Plan:
    """A retrieval plan for ``features``: a list of ``"view:feature"`` / ``"view"`` references, a
    ``FeatureService`` or the name of a stored service."""
    if docs is None:
        store = current_store(create=False)
        docs = all_docs(store) if store.exists() else []
    service = None
    if isinstance(features, FeatureService):
        service, refs = features.name, list(features.features)
    elif isinstance(features, str):
        svc = find("service", features, docs)
        if svc is not None:
            service, refs = svc["name"], list(svc["features"])
        else:
            refs = [r.strip() for r in features.split(",") if r.strip()]
    elif isinstance(features, Iterable):
        refs = []
        for r in features:
            if isinstance(r, (FeatureView, OnDemandFeatureView)):
                refs.append(r.name)
            elif isinstance(r, str):
                refs.append(r)
            else:
                raise InvalidInput(f"feature references are strings like 'view:feature', got {type(r).__name__}")
    else:
        raise InvalidInput(f"features must be a list of 'view:feature' references or a feature service, got "
                           f"{type(features).__name__}")
    if not refs:
        raise InvalidInput("no features requested: give 'view:feature' references or a feature service")
    plan = Plan(refs=[], service=service)
    wanted: list[tuple[str, str]] = []
    for ref in refs:
        view, sep, feat = ref.partition(":")
        doc = find(("view", "ondemand"), view, docs)
        if doc is None:
            svc_hint = f"; services: {names('service', docs)}" if not sep else ""
            raise InvalidInput(f"unknown feature view {view!r} in {ref!r} "
                               f"(views: {names(('view', 'ondemand'), docs)}{svc_hint})")
        feats = [f["name"] for f in doc["features"]]
        if not sep or feat == "*":
            wanted += [(view, f) for f in feats]
        elif feat not in feats:
            raise InvalidInput(f"feature view {view!r} has no feature {feat!r} (it has: {', '.join(feats)})")
        else:
            wanted.append((view, feat))
    wanted = list(dict.fromkeys(wanted))
    plan.refs = [f"{v}:{f}" for v, f in wanted]
    for view, feat in wanted:
        doc = find(("view", "ondemand"), view, docs)
        assert doc is not None
        dtype = next(f["dtype"] for f in doc["features"] if f["name"] == feat)
        plan.outputs.append((view, feat, f"{view}__{feat}" if full_feature_names else feat, dtype))
        if doc["kind"] == "view":
            _need(plan, doc, feat)
        elif all(d["name"] != view for d, _ in plan.ondemand):
            plan.ondemand.append((doc, bound_udf(doc)))
            plan.request.update(doc["request_schema"])
            for ref in doc["inputs"]:
                v, _, f = ref.partition(":")
                vdoc = find("view", v, docs)
                if vdoc is None or f not in [x["name"] for x in vdoc["features"]]:
                    raise InvalidInput(f"on-demand view {view!r} reads {ref!r}, which no longer exists")
                _need(plan, vdoc, f)
    columns = [c for _, _, c, _ in plan.outputs]
    dup = sorted({c for c in columns if columns.count(c) > 1})
    if dup:
        raise InvalidInput(f"feature name{'s' if len(dup) > 1 else ''} {', '.join(dup)} "
                           f"appear{'' if len(dup) > 1 else 's'} in more than one view: "
                           "pass full_feature_names=True (columns become view__feature)")
    return plan


def _need(plan: Plan, doc: dict[str, Any], feat: str) -> None:
    plan.views.setdefault(doc["name"], doc)
    feats = plan.view_features.setdefault(doc["name"], [])
    if feat not in feats:
        feats.append(feat)
