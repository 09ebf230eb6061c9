"""Definitions in the store: ``apply``, lookups, and resolving feature references.

Every entity, view, on-demand view and service is one document in the store's feature
definitions (``Store.feature_definitions()``: written under a cross-process lock, replaced
atomically). A DataFrame source is snapshotted into a content-addressed Parquet blob when
applied; a Parquet/CSV source is referenced by its absolute path. Materialization state lives
apart (``Store.online_tables()``), so materializing never rewrites the definitions.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from .._util import new_id, now_ms
from ..errors import InvalidInput
from ..store import Store, current_store
from .definitions import (
    DataFrameSource,
    Entity,
    FeatureService,
    FeatureView,
    OnDemandFeatureView,
    canonical,
)
from .timeutil import fmt_ttl

SCHEMA = 1  # of the feature documents
_KINDS = {"entity": "entity", "view": "feature view", "ondemand": "on-demand view", "service": "feature service"}

def all_docs(store: Store | None = None) -> list[dict[str, Any]]:
    """Every stored definition, of every kind (read from a cache while the file is unchanged: do
    not mutate); ``store.records.FeatureDefinition`` declares them."""
    store = store or current_store(create=False)
    docs = store.feature_definitions().all()
    for d in docs:
        if d.get("schema", 1) > SCHEMA:
            raise InvalidInput(f"feature definitions in {store.root} were written by a newer nbmlops; upgrade it")
    return docs


def find(kind: str | tuple[str, ...], name: str, docs: list[dict[str, Any]] | None = None) -> dict[str, Any] | None:
    kinds = (kind,) if isinstance(kind, str) else kind
    for d in all_docs() if docs is None else docs:
        if d["kind"] in kinds and d["name"] == name:
            return d
    return None


def stored_entity(name: str) -> Entity | None:
    store = current_store(create=False)
    if not store.exists():
        return None
    doc = find("entity", name, all_docs(store))
    return Entity.from_doc(doc) if doc else None


def entities_by_name(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in docs if d["kind"] == "entity"}


def names(kind: str | tuple[str, ...], docs: list[dict[str, Any]]) -> str:
    kinds = (kind,) if isinstance(kind, str) else kind
    found = sorted(d["name"] for d in docs if d["kind"] in kinds)
    return ", ".join(found) if found else "none yet"


# -- apply ------------------------------------------------------------------------------
class Changes(list):
    """What ``apply`` did, one line per object ('created view x', 'unchanged entity y', …)."""

    def __repr__(self) -> str:
        return "\n".join(self) if self else "nothing to apply"

    @property
    def changed(self) -> bool:
        return any(not line.startswith("unchanged") for line in self)


def apply(objects: Any, force: bool = False) -> Changes:
    """Store definitions (idempotent). Returns what changed. Refuses an incompatible change to a
    view (a feature dropped or retyped, other entities) unless ``force=True``, which replaces
    the view and clears its online table."""
    objs = _flatten(objects)
    docs, blobs = _prepare(objs)
    store = current_store(create=False)
    existing = all_docs(store) if store.exists() else []
    _plan(docs, existing, force)  # raises before anything is written
    store = current_store()
    with store.feature_definitions().edit() as stored:
        changes, writes, replaced = _plan(docs, stored.all(), force)
        for doc in writes:
            snap = blobs.get(doc["source"].get("fingerprint")) if doc["kind"] == "view" else None
            if snap is not None:
                store.blobs.put_bytes(snap)
            stored.upsert(doc, kind=doc["kind"], name=doc["name"])
    if replaced:
        with store.online_tables().edit() as tables:
            tables.remove_any("view", replaced)
    return changes


def _flatten(objects: Any) -> list[Any]:
    kinds = (Entity, FeatureView, OnDemandFeatureView, FeatureService)
    items = [objects] if isinstance(objects, kinds) else list(objects) if isinstance(objects, Iterable) else [objects]
    for o in items:
        if not isinstance(o, kinds):
            raise InvalidInput(f"apply takes Entity, FeatureView, OnDemandFeatureView and FeatureService objects, "
                               f"got {type(o).__name__}")
    return items


def _prepare(objs: list[Any]) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """Documents for the objects (entities used by views included), and DataFrame snapshots."""
    import hashlib

    entities: dict[str, Entity] = {}
    for o in objs:
        for ent in ([o] if isinstance(o, Entity) else o.entities if isinstance(o, FeatureView) else []):
            prev = entities.get(ent.name)
            if prev is not None and prev is not ent and prev.to_doc() != ent.to_doc() and \
                    (prev.join_keys != ent.join_keys or any(t and prev.key_types[k] not in (None, t)
                                                            for k, t in ent.key_types.items())):
                raise InvalidInput(f"two different entities named {ent.name!r} in one apply")
            if prev is None or all(t is None for t in prev.key_types.values()):
                entities[ent.name] = ent
    ent_docs = {n: e.to_doc() for n, e in entities.items()}
    for o in objs:  # entities take untyped keys' types from the views that use them
        if isinstance(o, FeatureView):
            for ent in o.entities:
                kt = ent_docs[ent.name]["key_types"]
                for k in ent.join_keys:
                    if kt.get(k) is None:
                        kt[k] = o.key_types[k]
                    elif kt[k] != o.key_types[k]:
                        raise InvalidInput(f"feature view {o.name!r}: key {k!r} is {o.key_types[k]} there but entity "
                                           f"{ent.name!r} declares {kt[k]}")
    docs = list(ent_docs.values())
    blobs: dict[str, bytes] = {}
    seen: set[tuple[str, str]] = set()
    for o in objs:
        if isinstance(o, Entity):
            continue
        if isinstance(o, FeatureView) and isinstance(o.source, DataFrameSource) and o.source.sha256 is None:
            src = o.source
            cols = list(dict.fromkeys([*o.join_keys, src.timestamp_field,
                                       *([src.created_timestamp_column] if src.created_timestamp_column else []),
                                       *o.features]))
            snap = DataFrameSource(src.df[cols].reset_index(drop=True), src.timestamp_field,
                                   src.created_timestamp_column)
            doc = o.to_doc()
            doc["source"] = snap.to_doc()
            doc["source"]["sha256"] = None
            blobs[doc["source"]["fingerprint"]] = _parquet(snap.df)
            doc["source"]["sha256"] = hashlib.sha256(blobs[doc["source"]["fingerprint"]]).hexdigest()
        else:
            doc = o.to_doc()
        kind = "view" if doc["kind"] in ("view", "ondemand") else doc["kind"]
        if (kind, doc["name"]) in seen:
            raise InvalidInput(f"{_KINDS[doc['kind']]} {doc['name']!r} appears twice in one apply")
        seen.add((kind, doc["name"]))
        docs.append(doc)
    return docs, blobs


def _parquet(df: Any) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), buf)
    return buf.getvalue()


def _plan(new: list[dict[str, Any]], existing: list[dict[str, Any]], force: bool
          ) -> tuple[Changes, list[dict[str, Any]], list[str]]:
    """(changes, documents to write, views replaced incompatibly) — or InvalidInput for refusals."""
    by_key = {(d["kind"], d["name"]): d for d in existing}
    after = dict(by_key)
    changes, writes, refusals, replaced = Changes(), [], [], []
    now = now_ms()
    for doc in new:
        old = by_key.get((doc["kind"], doc["name"]))
        other = "ondemand" if doc["kind"] == "view" else "view" if doc["kind"] == "ondemand" else None
        if other and (other, doc["name"]) in by_key:
            refusals.append(f"{doc['name']!r} is already the name of a{'n on-demand' if other == 'ondemand' else ''} "
                            f"{'view' if other == 'view' else 'feature view'}; choose another name")
            continue
        label = f"{_KINDS[doc['kind']]} {doc['name']}"
        if doc["kind"] == "entity" and None in doc["key_types"].values():
            if old is not None and old["join_keys"] == doc["join_keys"]:
                doc = {**doc, "key_types": {k: t or old["key_types"].get(k) for k, t in doc["key_types"].items()}}
            if None in doc["key_types"].values():
                refusals.append(f"entity {doc['name']}: give value_type= (int64 or string); no view in this apply "
                                "uses it to tell")
                continue
        if old is not None and doc["kind"] == "view" and doc["source"]["kind"] == "dataframe" and \
                old["source"].get("fingerprint") == doc["source"]["fingerprint"]:
            doc["source"]["sha256"] = old["source"]["sha256"]  # same rows: keep the stored snapshot
        if old is not None and canonical(old) == canonical(doc):
            changes.append(f"unchanged {label}")
            continue
        if old is not None:
            problems = _incompatible(old, doc, existing)
            if problems and not force:
                refusals.append(f"{label}: {'; '.join(problems)}")
                continue
            if problems and doc["kind"] == "view":
                replaced.append(doc["name"])
        full = {"schema": SCHEMA, "id": old["id"] if old else new_id(), "version": (old["version"] + 1) if old else 1,
                "created": old["created"] if old else now, "updated": now, **doc}
        writes.append(full)
        after[(doc["kind"], doc["name"])] = full
        changes.append(f"created {label}" + _summary(doc) if old is None else
                       f"updated {label} (v{full['version']}): " + ", ".join(_diff(old, doc)) +
                       (" — forced; its online table was cleared" if doc["name"] in replaced else ""))
    refusals += _check_references([d for d in after.values()])
    if refusals:
        hint = " Pass force=True (--force) to replace it; training sets built from the old definition change meaning." \
            if any("drops" in r or "changes" in r or "entities" in r for r in refusals) else ""
        raise InvalidInput("; ".join(refusals) + "." + hint)
    return changes, writes, replaced


def _n(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _summary(doc: dict[str, Any]) -> str:
    if doc["kind"] == "view":
        src = doc["source"]
        where_ = f"{src['rows']:,}-row DataFrame snapshot" if src["kind"] == "dataframe" else src["path"]
        return (f" ({_n(len(doc['features']), 'feature')}, keys {', '.join(doc['join_keys'])}, "
                f"ttl {fmt_ttl(doc['ttl'])}, {where_})")
    if doc["kind"] == "entity":
        return f" ({', '.join(f'{k}:{t}' for k, t in doc['key_types'].items())})"
    if doc["kind"] == "ondemand":
        inputs = len(doc["inputs"]) + len(doc["request_schema"])
        return f" ({_n(len(doc['features']), 'feature')} from {_n(inputs, 'input')})"
    return f" ({_n(len(doc['features']), 'feature')})"


def _incompatible(old: dict[str, Any], new: dict[str, Any], existing: list[dict[str, Any]]) -> list[str]:
    problems = []
    if new["kind"] == "entity":
        if old["join_keys"] != new["join_keys"] or old["key_types"] != new["key_types"]:
            users = [d["name"] for d in existing if d["kind"] == "view" and old["name"] in d["entities"]]
            if users:
                problems.append(f"its keys change from {old['key_types']} to {new['key_types']} while views "
                                f"{', '.join(users)} use it")
        return problems
    if new["kind"] in ("view", "ondemand"):
        if new["kind"] == "view" and (old["entities"] != new["entities"] or old["join_keys"] != new["join_keys"]
                                      or old["key_types"] != new["key_types"]):
            problems.append(f"its entities change from {old['entities']} ({old['key_types']}) to "
                            f"{new['entities']} ({new['key_types']})")
        was = {f["name"]: f["dtype"] for f in old["features"]}
        now = {f["name"]: f["dtype"] for f in new["features"]}
        dropped = [f for f in was if f not in now]
        if dropped:
            problems.append(f"it drops feature{'s' if len(dropped) > 1 else ''} {', '.join(dropped)}")
        problems += [f"it changes {f} from {was[f]} to {now[f]}" for f in was if f in now and was[f] != now[f]]
    return problems


def _diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    if new["kind"] in ("view", "ondemand"):
        was = {f["name"]: f["dtype"] for f in old["features"]}
        now = {f["name"]: f["dtype"] for f in new["features"]}
        added = [f for f in now if f not in was]
        if added:
            out.append(f"adds {', '.join(added)}")
        out += [f"drops {f}" for f in was if f not in now]
        out += [f"{f} {was[f]} → {now[f]}" for f in was if f in now and was[f] != now[f]]
    if new["kind"] == "view":
        if old["ttl"] != new["ttl"]:
            out.append(f"ttl {fmt_ttl(old['ttl'])} → {fmt_ttl(new['ttl'])}")
        if old["online"] != new["online"]:
            out.append(f"online {old['online']} → {new['online']}")
        o, n = old["source"], new["source"]
        if o.get("fingerprint") != n.get("fingerprint") or o.get("path") != n.get("path") or o["kind"] != n["kind"]:
            out.append(f"source data changed ({o.get('rows', '?'):,} → {n['rows']:,} rows)" if n["kind"] == "dataframe"
                       and o["kind"] == "dataframe" else f"source → {n.get('path') or 'DataFrame'}")
        for k in ("timestamp_field", "created_timestamp_column"):
            if o.get(k) != n.get(k):
                out.append(f"{k} {o.get(k)} → {n.get(k)}")
        if old["entities"] != new["entities"]:
            out.append(f"entities {old['entities']} → {new['entities']}")
    if new["kind"] == "ondemand" and old.get("udf_sha") != new.get("udf_sha"):
        out.append("function changed")
    listed = "inputs" if new["kind"] == "ondemand" else "features"
    if new["kind"] in ("ondemand", "service") and old.get(listed) != new.get(listed):
        out.append("inputs changed" if new["kind"] == "ondemand" else f"features → {', '.join(new['features'])}")
    if new["kind"] == "entity":
        out.append(f"keys {old['key_types']} → {new['key_types']}")
    for k in ("tags", "description"):
        if old.get(k) != new.get(k):
            out.append(f"{k} changed")
    return out or ["definition changed"]


def _check_references(docs: list[dict[str, Any]]) -> list[str]:
    problems = []
    for d in docs:
        if d["kind"] == "service":
            for ref in d["features"]:
                problem = _ref_problem(ref, docs, allow_view=True)
                if problem:
                    problems.append(f"feature service {d['name']}: {problem}")
        elif d["kind"] == "ondemand":
            for ref in d["inputs"]:
                problem = _ref_problem(ref, [x for x in docs if x["kind"] == "view" or x["kind"] == "entity"], False)
                if problem:
                    problems.append(f"on-demand view {d['name']}: {problem}")
        elif d["kind"] == "view":
            ents = entities_by_name(docs)
            for e in d["entities"]:
                if e not in ents:
                    problems.append(f"feature view {d['name']}: unknown entity {e!r}")
    return problems


def _ref_problem(ref: str, docs: list[dict[str, Any]], allow_view: bool) -> str | None:
    view, _, feat = ref.partition(":")
    doc = find(("view", "ondemand"), view, docs)
    if doc is None:
        return f"unknown feature view {view!r} (views: {names(('view', 'ondemand'), docs)})"
    if not feat:
        return None if allow_view else f"{ref!r} names no feature"
    if feat not in [f["name"] for f in doc["features"]]:
        has = ", ".join(f["name"] for f in doc["features"])
        return f"feature view {view!r} has no feature {feat!r} (it has: {has})"
    return None
