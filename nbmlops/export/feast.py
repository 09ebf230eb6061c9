"""The store's feature views as a Feast feature repository.

``export_feast(DIR)`` writes::

    DIR/feature_store.yaml      project, local provider, file offline store, sqlite online store
    DIR/nbmlops_features.py     entities, file sources, feature views (ttl, online), services
    DIR/data/<view>.parquet     each view's rows: keys, event (and created) timestamps, features
    DIR/.nbmlops-export.json    what was exported, and when

``feast apply`` in DIR registers it; ``feast materialize`` fills the online store. Semantics
carry over: naive times are UTC on both sides, a ttl bounds how old a row may be, a view
without a ttl reads rows of any age (Feast's ``ttl=0``), ties on the event time are broken by
the created timestamp. Two differences stay Feast's own: its file offline store drops entity
rows that match no feature row (nbmlops keeps them, with nulls), and a Feast entity has a
single join key, so an entity with several keys becomes one Feast entity per key.

On-demand views (their code lives in the notebook that defined them) and services that use
them are not exported; the summary names them.
"""

from __future__ import annotations

import datetime as dt
import keyword
import os
import re
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from ..features.definitions import FeatureView
from ..features.repo import all_docs, entities_by_name
from ..features.timeutil import to_utc_ns
from ..store import current_store
from . import Summary, inside, mark, prepare_dir

_FEAST_TYPES = {"int64": "Int64", "int32": "Int32", "float64": "Float64", "float32": "Float32", "string": "String",
                "bool": "Bool", "timestamp": "UnixTimestamp"}
_PANDAS = {"int64": "Int64", "int32": "Int32", "float64": "float64", "float32": "float32", "string": "string",
           "bool": "boolean"}
_PROJECT = re.compile(r"^[A-Za-z0-9_]{1,60}$")


def export_feast(directory: str | os.PathLike[str], views: list[str] | str | None = None, *,
                 project: str = "nbmlops", force: bool = False) -> Summary:
    """Write a Feast feature repository for the store's feature views (default: all of them).

    >>> nbmlops.export_feast("feature_repo")
    feast repository /work/feature_repo — entities: 1; feature views: 2; rows: 120,000; services: 1
    $ cd feature_repo && feast apply && feast materialize-incremental $(date -u +%FT%T)
    """
    if not isinstance(project, str) or not _PROJECT.match(project):
        raise InvalidInput(f"Feast project names are letters, digits and '_' (at most 60), got {project!r}")
    store = current_store(create=False)
    docs = all_docs(store) if store.exists() else []
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for d in sorted(docs, key=lambda d: d["name"]):
        by_kind.setdefault(d["kind"], []).append(d)
    view_docs = by_kind.get("view", [])
    if views is not None:
        wanted = [views] if isinstance(views, str) else list(views)
        known = {d["name"]: d for d in view_docs}
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise InvalidInput(f"unknown feature view{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                               f"(views: {', '.join(known) or 'none yet'})")
        view_docs = [known[w] for w in wanted]
    if not view_docs:
        raise InvalidInput(f"the store at {store.root} has no feature views to export: apply some with "
                           "nbmlops.apply_features([...]) first")
    target = prepare_dir(directory, force, "Feast repository")
    summary = Summary(f"feast repository {target}")
    ents = entities_by_name(docs)
    data = inside(target, "data")
    data.mkdir(exist_ok=True)
    views_out = [FeatureView.from_doc(d, ents) for d in view_docs]
    for view in views_out:
        summary.add("rows", _write_rows(view, inside(data, f"{view.name}.parquet")))
    exported = {v.name for v in views_out}
    services = []
    for s in by_kind.get("service", []):
        refs = [r.split(":", 1) for r in s["features"]]
        missing = sorted({v for v, *_ in refs if v not in exported})
        if missing:
            summary.notes.append(f"feature service {s['name']} left out: it uses {', '.join(missing)}, "
                                 "which is not exported (on-demand views stay in the notebook)")
        else:
            services.append(s)
    for d in by_kind.get("ondemand", []):
        summary.notes.append(f"on-demand view {d['name']} left out: its code runs only where it was defined; "
                             "port it to a Feast @on_demand_feature_view (pandas mode takes the same DataFrame)")
    (target / "feature_store.yaml").write_text(_yaml(project))
    (target / "nbmlops_features.py").write_text(_definitions(views_out, services))
    mark(target, "feast", project=project, views=sorted(exported), services=[s["name"] for s in services],
         store=str(store.root))
    summary["entities"] = len({k for v in views_out for e in v.entities for k in _feast_entities(e)})
    summary["feature_views"] = len(views_out)
    summary["services"] = len(services)
    return summary


def _yaml(project: str) -> str:
    return (f"# Written by nbmlops export feast. Paths are relative to this folder.\n"
            f"project: {project}\nprovider: local\nregistry: data/registry.db\n"
            "online_store:\n  type: sqlite\n  path: data/online_store.db\n"
            "offline_store:\n  type: file\nentity_key_serialization_version: 3\n")


def _write_rows(view: Any, path: Path) -> int:
    """The view's rows as Parquet: keys as declared, times as UTC datetimes, features cast to
    their declared dtypes (so Feast's schema and the data agree)."""
    import pandas as pd

    src = view.source
    ts, created = src.timestamp_field, src.created_timestamp_column
    cols = list(dict.fromkeys([*view.join_keys, ts, *([created] if created else []), *view.features]))
    df = src.read(cols).reset_index(drop=True)
    out = pd.DataFrame(index=df.index)
    for k in view.join_keys:
        out[k] = df[k].astype("int64" if view.key_types[k] == "int64" else "string")
    for c in [ts, *([created] if created else [])]:
        out[c] = pd.to_datetime(to_utc_ns(df[c], f"column {c!r} of view {view.name!r}"), utc=True)
    for f, dtype in view.features.items():
        if dtype == "timestamp":
            out[f] = pd.to_datetime(to_utc_ns(df[f], f"feature {f!r} of view {view.name!r}"), utc=True)
        else:
            try:
                out[f] = df[f].astype(_PANDAS[dtype])
            except (TypeError, ValueError) as exc:
                raise InvalidInput(f"feature {f!r} of view {view.name!r} cannot be written as {dtype}: {exc}") from None
    out.to_parquet(path, index=False)
    return len(out)


def _ident(name: str, used: set[str]) -> str:
    base = re.sub(r"\W", "_", name)
    if not base or base[0].isdigit() or keyword.iskeyword(base):
        base = "_" + base
    ident, n = base, 2
    while ident in used:
        ident, n = f"{base}_{n}", n + 1
    used.add(ident)
    return ident


def _feast_entities(entity: Any) -> list[str]:
    """Feast entity names for one of ours: the same name, or name__key for each of several keys."""
    if len(entity.join_keys) == 1:
        return [entity.name]
    return [f"{entity.name}__{k}" for k in entity.join_keys]


def _ttl(seconds: float | None) -> str:
    if seconds is None:
        return "timedelta(0),  # no limit"
    return f"timedelta(seconds={seconds!r}),  # {dt.timedelta(seconds=seconds)}"


def _definitions(views: list[Any], services: list[dict[str, Any]]) -> str:
    used: set[str] = {"Entity", "FeatureService", "FeatureView", "Field", "FileSource", "ValueType", "timedelta",
                      "Path", "REPO", *_FEAST_TYPES.values()}
    lines = ['"""Feast definitions exported by nbmlops. Run `feast apply` in this folder."""', "",
             "from datetime import timedelta", "from pathlib import Path", "",
             "from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType",
             f"from feast.types import {', '.join(sorted(set(_FEAST_TYPES.values())))}", "",
             "REPO = Path(__file__).resolve().parent", ""]
    entity_vars: dict[str, str] = {}
    for view in views:
        for ent in view.entities:
            for fname, key in zip(_feast_entities(ent), ent.join_keys):
                if fname in entity_vars:
                    continue
                var = entity_vars[fname] = _ident(fname, used)
                vtype = "INT64" if (ent.key_types.get(key) or view.key_types[key]) == "int64" else "STRING"
                lines += [f"{var} = Entity(", f"    name={fname!r},", f"    join_keys=[{key!r}],",
                          f"    value_type=ValueType.{vtype},", f"    description={ent.description!r},",
                          f"    tags={ent.tags!r},", ")", ""]
    view_vars: dict[str, str] = {}
    for view in views:
        src = view.source
        svar = _ident(f"{view.name}_source", used)
        lines += [f"{svar} = FileSource(", f"    name={view.name + '_source'!r},",
                  f"    path=str(REPO / 'data' / {view.name + '.parquet'!r}),",
                  f"    timestamp_field={src.timestamp_field!r},"]
        if src.created_timestamp_column:
            lines.append(f"    created_timestamp_column={src.created_timestamp_column!r},")
        lines += [")", ""]
        var = view_vars[view.name] = _ident(view.name, used)
        ents = [entity_vars[n] for e in view.entities for n in _feast_entities(e)]
        lines += [f"{var} = FeatureView(", f"    name={view.name!r},", f"    entities=[{', '.join(ents)}],",
                  f"    ttl={_ttl(view.ttl)}", "    schema=["]
        lines += [f"        Field(name={f!r}, dtype={_FEAST_TYPES[d]})," for f, d in view.features.items()]
        lines += ["    ],", f"    online={view.online!r},", f"    source={svar},",
                  f"    description={view.description!r},", f"    tags={view.tags!r},", ")", ""]
    for s in services:
        var = _ident(s["name"], used)
        grouped: dict[str, list[str]] = {}
        for ref in s["features"]:
            v, _, f = ref.partition(":")
            grouped.setdefault(v, [])
            if f:
                grouped[v].append(f)
        parts = [view_vars[v] if not fs else f"{view_vars[v]}[{fs!r}]" for v, fs in grouped.items()]
        lines += [f"{var} = FeatureService(", f"    name={s['name']!r},", f"    features=[{', '.join(parts)}],",
                  f"    description={s.get('description', '')!r},", f"    tags={s.get('tags', {})!r},", ")", ""]
    return "\n".join(lines)
