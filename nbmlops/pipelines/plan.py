"""Planning a pipeline run: every check (parameters, notebooks, functions, inputs) before anything
is written, the inputs from outside the pipeline resolved to exact versions, and the cache key of a step."""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput, NbmlopsError, NotFound
from ..registry.models import resolve as resolve_model
from ..registry.uri import parse
from ..store import Store, current_store
from ..store.records import DatasetVersionRecord, StepRef
from ..tracking.datasets import resolve
from .definition import CACHE_VERSION, Port, Step, check_params, order, producers_of, upstream

if TYPE_CHECKING:
    from .pipeline import Pipeline


@dataclass
class Plan:
    pipeline: Pipeline
    params: dict[str, Any]
    steps: list[Step]
    used: dict[str, dict[str, Any]] = field(default_factory=dict)
    code: dict[str, str] = field(default_factory=dict)            # step -> code sha256
    external: dict[str, dict[str, StepRef]] = field(default_factory=dict)  # step -> local -> input ref
    upstream: dict[str, list[str]] = field(default_factory=dict)
    producers: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def signature(self) -> str:
        """Same pipeline, same code, same parameters: what a resumed run must match."""
        body = json.dumps([self.pipeline.name, self.params, [(s.name, self.code[s.name]) for s in self.steps],
                           self.external], sort_keys=True, default=str)
        return hashlib.sha256(body.encode()).hexdigest()


def make_plan(pipeline: Pipeline, params: dict[str, Any] | None = None) -> Plan:
    """Check parameters, notebooks, functions and inputs; InvalidInput lists every problem."""
    given = check_params(params, f"pipeline {pipeline.name}")
    unknown = [k for k in given if k not in pipeline.params]
    if unknown:
        known = ", ".join(pipeline.params) or "none"
        raise InvalidInput(f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for "
                           f"pipeline {pipeline.name} (parameters: {known})")
    values = {**pipeline.params, **given}
    steps = order(pipeline.steps)
    plan = Plan(pipeline, values, steps, upstream=upstream(steps), producers=producers_of(steps))
    problems: list[str] = []
    store = current_store(create=False)
    for s in steps:
        try:
            _check_step(plan, s, store)
        except NbmlopsError as exc:
            problems.append(str(exc))
    if problems:
        raise InvalidInput("; ".join(problems))
    return plan


def _check_step(plan: Plan, s: Step, store: Store) -> None:
    where = f"step {s.name}"
    if s.kind == "notebook" and not s.notebook.exists():  # type: ignore[union-attr]
        raise InvalidInput(f"{where}: notebook {str(s.notebook)!r} not found")
    plan.code[s.name] = s.code_sha()
    declared = s.declared_parameters() or {}
    used = s.used_params(plan.params)
    for p in used:
        if p not in plan.params:
            raise InvalidInput(f"{where} uses parameter {p!r}, which pipeline {plan.pipeline.name} does not define "
                               f"(parameters: {', '.join(plan.params) or 'none'})")
        if s.kind == "notebook" and p not in declared:
            raise InvalidInput(f"{where}: notebook {s.notebook.name} has no parameter {p!r} in its cell tagged "  # type: ignore[union-attr]
                               "'parameters'")
    if s.kind == "function":
        for n, prm in inspect.signature(s.function).parameters.items():  # type: ignore[arg-type]
            if prm.kind in (prm.VAR_POSITIONAL, prm.VAR_KEYWORD):
                continue
            if n not in s.inputs and n not in used and prm.default is inspect.Parameter.empty:
                raise InvalidInput(f"{where}: function {s.function.__name__} takes {n!r}, which is neither an input "  # type: ignore[union-attr]
                                   "nor a pipeline parameter")
    plan.used[s.name] = {p: plan.params[p] for p in used}
    ext: dict[str, StepRef] = {}
    for port in s.inputs.values():
        if port.key in plan.producers and not port.version and not port.uri:
            continue
        ext[port.local] = _resolve_external(port, store, where)
    plan.external[s.name] = ext


def _resolve_external(port: Port, store: Store, where: str) -> StepRef:
    if port.kind == "dataset":
        try:
            doc = resolve(port.spec, store)
        except NotFound as exc:
            if port.version is None:
                raise InvalidInput(f"{where} needs dataset {port.name!r}, which no step produces: {exc}") from None
            raise InvalidInput(f"{where}: {exc}") from None
        if not doc.get("blob"):
            raise InvalidInput(f"{where}: dataset {port.name}@{doc['version']} has no stored rows ({doc.get('note')})")
        return dataset_ref(doc)
    try:
        model, vdoc = resolve_model(store, parse(port.uri or port.name))
    except NotFound as exc:
        what = "which no step produces and the registry lacks" if not port.uri else "not in the registry"
        raise InvalidInput(f"{where} needs model {port.uri or port.name!r}, {what}: {exc}") from None
    return {"kind": "model", "name": port.name, "uri": f"{model['name']}/{vdoc['version']}", "sha256": vdoc["sha256"],
            "format": vdoc.get("format", "pickle")}


def dataset_ref(doc: DatasetVersionRecord) -> StepRef:
    return {"kind": "dataset", "name": doc["name"], "version": doc["version"], "sha256": doc["sha256"],
            "blob": (doc.get("blob") or {}).get("sha256")}


def cache_key(kind: str, code: str, params: dict[str, Any], inputs: dict[str, StepRef],
              outputs: list[str]) -> str:
    identity = {k: v["sha256"] for k, v in sorted(inputs.items())}
    body = json.dumps([CACHE_VERSION, kind, code, sorted(params.items()), identity, sorted(outputs)],
                      sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()
