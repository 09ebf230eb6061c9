"""The registry: registered models with numbered versions, aliases and history.

``db/models.json`` holds one document per registered model (aliases, history, the next
version number); ``db/models/<model id>.json`` holds its versions. A version number is
allocated under the models lock and never reused, even after deletion; an alias move is one
atomic write of the model document and is recorded in its history.
"""

from __future__ import annotations

import json
import warnings
from typing import TYPE_CHECKING, Any, cast

from .._util import check_key, new_id, now_ms
from ..errors import InvalidInput, NotFound, StoreError
from ..store import SCHEMA, DamagedFile, Store, current_store
from ..store.records import ModelHistoryEntry, ModelVersionRecord, RegisteredModelRecord
from ..tracking import environment, modelfiles, signature as sig
from ..tracking.lookup import find_run_doc
from ..tracking.runs import Run
from .objects import Comparison, LoadedModel, ModelVersion
from .uri import ModelRef, check_alias, check_name, parse

if TYPE_CHECKING:
    import pandas as pd


def _model_doc(store: Store, name: str, fresh: bool = False) -> RegisteredModelRecord:
    docs = cast(list[RegisteredModelRecord], store.models().fresh() if fresh else store.models().all())
    for doc in docs:
        if doc["name"] == name:
            return doc
    names = ", ".join(sorted(d["name"] for d in docs)) or "none yet"
    raise NotFound(f"no registered model named {name!r} (models: {names})")


def model_versions_of(store: Store, model: RegisteredModelRecord, deleted: bool = False,
                      fresh: bool = False) -> list[ModelVersionRecord]:
    """The versions of a registered model, oldest first (``deleted``: deleted ones too; ``fresh``:
    read from the file now, not from the cache)."""
    vfile = store.model_versions(model["id"])
    docs = vfile.fresh() if fresh else vfile.all()
    return sorted((d for d in docs if deleted or not d.get("deleted")), key=lambda d: d["version"])



def resolve(store: Store, ref: ModelRef, fresh: bool = False) -> tuple[RegisteredModelRecord, ModelVersionRecord]:
    """The model document and the version document a reference names (``fresh``: read from the
    files now, not from the cache, as checks under the lock must)."""
    model = _model_doc(store, ref.name, fresh)
    versions = model_versions_of(store, model, deleted=True, fresh=fresh)
    number = ref.version
    if ref.alias is not None:
        number = model["aliases"].get(ref.alias)
        if number is None:
            have = ", ".join(f"{a}→{v}" for a, v in model["aliases"].items()) or "none"
            raise NotFound(f"model {ref.name!r} has no alias {ref.alias!r} (aliases: {have})")
    elif number is None:
        live = [v for v in versions if not v.get("deleted")]
        if not live:
            raise NotFound(f"model {ref.name!r} has no versions left")
        return model, live[-1]
    for v in versions:
        if v["version"] == number:
            if v.get("deleted"):
                raise NotFound(f"version {number} of {ref.name!r} was deleted")
            return model, v
    have = ", ".join(str(v["version"]) for v in versions if not v.get("deleted")) or "none"
    raise NotFound(f"model {ref.name!r} has no version {number} (versions: {have})")


def get_model_version(uri: str) -> ModelVersion:
    """The version a URI names: ``"churn"`` (latest), ``"churn@production"``, ``"churn/3"``."""
    store = current_store(create=False)
    model, version = resolve(store, parse(uri))
    return ModelVersion(store, model, version)


def load_model(uri: str, raw: bool = False) -> Any:
    """Load a registered model after checking its sha256. The result checks inputs against the
    signature (missing/extra features name themselves); ``raw=True`` gives the bare estimator."""
    version = get_model_version(uri)
    model = version.load_estimator()
    return model if raw else LoadedModel(model, version)


def load_reference(uri: str) -> pd.DataFrame:
    """The monitoring reference of a version: training inputs, ``target`` when known, ``prediction``."""
    return get_model_version(uri).reference()


def compare_versions(name: str, a: int, b: int) -> Comparison:
    """Params, metrics and signature differences between versions ``a`` and ``b`` of ``name``."""
    return Comparison(get_model_version(f"{name}/{a}"), get_model_version(f"{name}/{b}"))


def _history(entry: dict[str, Any]) -> ModelHistoryEntry:
    return {"time": now_ms(), "user": environment.user(), **entry}  # type: ignore[typeddict-item]


def _source(store: Store, model_or_run: Any, artifact: str | None) -> dict[str, Any]:
    """Where the model comes from: a fitted object (linked to the run that logged it, if any)
    or a run's logged model. Returns sha, size, class, the object, run doc and entry."""
    run_doc = None
    if isinstance(model_or_run, Run):
        run_doc = find_run_doc(store, model_or_run.id)
    elif isinstance(model_or_run, str):
        text = model_or_run[len("runs:/"):] if model_or_run.startswith("runs:/") else model_or_run
        run_id, _, name = text.replace("/", ":", 1).partition(":")
        artifact = artifact or name or None
        try:
            run_doc = find_run_doc(store, run_id)
        except InvalidInput:
            raise InvalidInput(f"{model_or_run!r} is neither a fitted model nor a run id (RUN_ID[:MODEL])") from None
    if run_doc is not None:
        models = run_doc["models"]
        if artifact is None and len(models) != 1:
            have = ", ".join(m["name"] for m in models) or "none"
            raise InvalidInput(f"run {run_doc['name']} has {len(models)} models ({have}): name one, as RUN_ID:MODEL")
        entry = next((m for m in models if artifact is None or m["name"] == artifact), None)
        if entry is None:
            have = ", ".join(m["name"] for m in models) or "none"
            raise NotFound(f"run {run_doc['name']} has no model {artifact!r} (models: {have})")
        return {"sha256": entry["sha256"], "size": entry["size"], "object": None, "run": run_doc, "entry": entry}
    sig.check_fitted(model_or_run)
    sha, size = modelfiles.dump_model(store, model_or_run, type(model_or_run).__name__)
    out = {"sha256": sha, "size": size, "object": model_or_run, "run": None, "entry": None}
    logged = modelfiles.logged_by(model_or_run)
    if logged and logged[2] == sha:  # the same object, unchanged since its run logged it
        run_doc = find_run_doc(store, logged[0])
        out["run"] = run_doc
        out["entry"] = next((m for m in run_doc["models"] if m["name"] == logged[1]), None)
    return out


def register_model(model_or_run: Any, name: str, alias: str | None = None, tags: dict[str, Any] | None = None,
                   description: str | None = None, reference: Any = None, artifact: str | None = None) -> ModelVersion:
    """Register a fitted model, or a model a run logged, as the next version of ``name``.

    >>> nbmlops.register_model(model, "churn", alias="staging")   # a fitted object
    >>> nbmlops.register_model("3f2a9c1e:RandomForestClassifier", "churn")  # from a run
    """
    check_name(name)
    if alias is not None:
        check_alias(alias)
    clean_tags = {check_key("tag", k): str(v) for k, v in (tags or {}).items()}
    if not isinstance(model_or_run, (str, Run)):
        sig.check_fitted(model_or_run)  # before anything touches the store
    store = current_store(create=False)
    src = _source(store, model_or_run, artifact)
    store.ensure()
    entry = src["entry"] or {}
    if reference is None and "signature" in entry:  # described when its run logged it
        described = {"signature": entry["signature"], "reference": entry.get("reference")}
        cls = entry["class"]
    else:
        obj = src["object"]
        if obj is None:
            obj = modelfiles.read_model(store, entry["sha256"], entry.get("format", modelfiles.FORMAT))
            sig.check_fitted(obj)  # a run may have logged a dict of weights: not a version to serve
        if reference is None and entry.get("reference"):
            reference = modelfiles.load_frame(store, entry["reference"]["sha256"])
            target = reference.pop(modelfiles.TARGET) if modelfiles.TARGET in reference.columns else None
            reference = (reference.drop(columns=[modelfiles.PREDICTION], errors="ignore"), target)
        described = modelfiles.describe(store, obj, reference)
        cls = f"{type(obj).__module__}.{type(obj).__qualname__}"
    signature = described["signature"]
    run = src["run"]
    wanted = set(entry.get("datasets") or [])
    version: dict[str, Any] = {
        "schema": SCHEMA, "id": new_id(), "version": None, "sha256": src["sha256"], "size": src["size"],
        "format": entry.get("format", modelfiles.FORMAT), "class": cls,
        "created": now_ms(), "user": environment.user(), "description": description, "tags": clean_tags,
        "signature": signature, "deleted": False, "monitoring": [],
        "run_id": run["id"] if run else None, "run_name": run["name"] if run else None,
        "experiment_id": run["experiment_id"] if run else None,
        "params": run["params"] if run else {},
        "metrics": {k: m["value"] for k, m in run["metrics"].items()} if run else {},
        "datasets": [d for d in run["datasets"] if not wanted or d["sha256"] in wanted] if run else [],
        "reference": described["reference"],
    }
    with store.models().edit() as models:
        found = models.get(name=name)
        model: dict[str, Any] = found or {
            "schema": SCHEMA, "id": new_id(), "name": name, "description": description, "tags": {},
            "aliases": {}, "next_version": 1, "created": now_ms(), "history": []}
        with store.model_versions(model["id"]).edit() as versions:
            existing = max((v["version"] for v in versions.all()), default=0)
            version["model_id"], version["model"] = model["id"], name
            version["version"] = max(model["next_version"], existing + 1)
            versions.insert(version)
        number = version["version"]
        model["next_version"] = number + 1
        model["updated"] = now_ms()
        model["history"] = [*model["history"], _history({"action": "register", "version": number})]
        if alias is not None:
            model["history"].append(_history({"action": "alias", "alias": alias, "from": model["aliases"].get(alias),
                                              "to": number}))
            model["aliases"] = {**model["aliases"], alias: number}
        if found:
            models.update(model, id=model["id"])
        else:
            models.insert(model)
    return ModelVersion(store, model, version)  # type: ignore[arg-type]


def set_alias(name: str, alias: str, version: int) -> ModelVersion:
    """Point ``alias`` at ``version`` of ``name`` (one atomic write, recorded in the history)."""
    check_name(name)
    check_alias(alias)
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidInput(f"version must be a number, got {version!r}")
    store = current_store(create=False)
    _model_doc(store, name)  # NotFound before taking the lock
    with store.models().edit() as models:
        # under the lock that delete_version takes too: the version cannot be deleted meanwhile
        found, vdoc = resolve(store, ModelRef(name, version=version), fresh=True)
        model: dict[str, Any] = dict(found)
        model["history"] = [*model["history"], _history({"action": "alias", "alias": alias,
                                                          "from": model["aliases"].get(alias), "to": version})]
        model["aliases"] = {**model["aliases"], alias: version}
        model["updated"] = now_ms()
        models.update(model, id=model["id"])
    return ModelVersion(store, model, vdoc)  # type: ignore[arg-type]


def delete_alias(name: str, alias: str) -> None:
    check_name(name)
    check_alias(alias)
    store = current_store(create=False)
    _model_doc(store, name)
    with store.models().edit() as models:
        model: dict[str, Any] = dict(_model_doc(store, name, fresh=True))
        if alias not in model["aliases"]:
            raise NotFound(f"model {name!r} has no alias {alias!r}")
        model["history"] = [*model["history"], _history({"action": "alias", "alias": alias,
                                                          "from": model["aliases"][alias], "to": None})]
        model["aliases"] = {a: v for a, v in model["aliases"].items() if a != alias}
        models.update(model, id=model["id"])


def delete_version(name: str, version: int) -> None:
    """Delete a version (its number is never reused). Refused while an alias points at it."""
    store = current_store(create=False)
    ref = ModelRef(check_name(name), version=version)
    resolve(store, ref)  # NotFound before taking the lock
    with store.models().edit() as models:
        found, vdoc = resolve(store, ref, fresh=True)  # again under the lock: a concurrent delete or alias move counts
        model: dict[str, Any] = dict(found)
        pointing = [a for a, v in model["aliases"].items() if v == version]
        if pointing:
            raise InvalidInput(f"alias {pointing[0]!r} points at version {version} of {name!r}: "
                               "move or delete the alias first")
        with store.model_versions(model["id"]).edit() as versions:
            versions.update({"deleted": True}, id=vdoc["id"])
        model["history"] = [*model["history"], _history({"action": "delete", "version": version})]
        models.update(model, id=model["id"])


def record_drift_summary(uri: str, summary: dict[str, Any]) -> None:
    """Store a drift report's summary against the model version (the last 100 are kept)."""
    store = current_store(create=False)
    model, vdoc = resolve(store, parse(uri))
    entry = json.loads(json.dumps({"time": now_ms(), **summary}, default=str))
    with store.model_versions(model["id"]).edit() as versions:
        current = versions.find(id=vdoc["id"])[0]
        if current.get("deleted"):
            raise NotFound(f"version {vdoc['version']} of {model['name']!r} was deleted")
        versions.update({"monitoring": [*current.get("monitoring", []), entry][-100:]}, id=vdoc["id"])


def list_models() -> pd.DataFrame:
    """Registered models: latest version, aliases, number of versions, description."""
    import pandas as pd

    store = current_store(create=False)
    rows = []
    for m in sorted(store.models().all(), key=lambda d: d["name"]):
        try:
            live = model_versions_of(store, m)
        except StoreError as exc:  # one damaged versions file: name it, list the other models
            warnings.warn(f"left out of the listing: {exc}", DamagedFile, stacklevel=2)
            live = None
        rows.append({"name": m["name"], "latest_version": live[-1]["version"] if live else None,
                     "versions": None if live is None else len(live),
                     "aliases": ", ".join(f"{a}→{v}" for a, v in sorted(m["aliases"].items())),
                     "description": m.get("description"),
                     "updated": pd.Timestamp(m.get("updated") or m["created"], unit="ms")})
    return pd.DataFrame(rows, columns=["name", "latest_version", "versions", "aliases", "description", "updated"])


def list_versions(name: str) -> pd.DataFrame:
    """Versions of a model with their aliases, source run, key metrics and hash."""
    import pandas as pd

    store = current_store(create=False)
    model = _model_doc(store, check_name(name))
    by_version: dict[int, list[str]] = {}
    for a, number in model["aliases"].items():
        by_version.setdefault(number, []).append(a)
    rows = []
    for v in model_versions_of(store, model):
        row = {"version": v["version"], "aliases": ", ".join(sorted(by_version.get(v["version"], []))),
               "created": pd.Timestamp(v["created"], unit="ms"), "run": v.get("run_name"),
               "class": v["class"].rsplit(".", 1)[-1], "sha256": v["sha256"][:12]}
        row.update({f"metrics.{k}": val for k, val in sorted(v["metrics"].items())})
        rows.append(row)
    return pd.DataFrame(rows)


def model_history(name: str) -> pd.DataFrame:
    """Every registration, alias move and deletion of a model, oldest first."""
    import pandas as pd

    model = _model_doc(current_store(create=False), check_name(name))
    df = pd.DataFrame(model["history"])
    if len(df):
        df["time"] = pd.to_datetime(df["time"], unit="ms")
        for col in ("version", "from", "to"):
            if col in df.columns:
                df[col] = df[col].astype("Int64")
    return df
