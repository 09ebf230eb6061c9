"""Pipelines and steps: what they are, checked once where they are defined.

A step is a notebook (run with papermill) or a Python function, with declared inputs, outputs
and the pipeline parameters it uses. Inputs and outputs are written as:

    "features"              dataset ``features``: the version a step of this pipeline produces,
                            else the latest version in the store
    "features@3"            version 3 of dataset ``features`` (pinned)
    "model:model"           model ``model``, logged by the step that outputs it
    "model:churn@production", "model:churn/3"   a registered model (registry URI)

A step refers to an input by its local name: the dataset or model name, or the key when inputs
are given as a dict (``inputs={"train": "features@3"}``). A function step receives its inputs
and parameters as keyword arguments and returns its output (or a dict or tuple of them).
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import inspect
import json
import keyword
import re
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._util import check_key
from ..errors import InvalidInput
from ..registry.uri import check_name as check_model, parse
from ..tracking.datasets import parse_ref

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
CACHE_VERSION = 1


def check_name(kind: str, name: object) -> str:
    """Pipeline and step names reach file names: letters, digits, '_', '-', '.'."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise InvalidInput(f"invalid {kind} name {name!r}: use 1-100 letters, digits, '_', '-' or '.', starting "
                           "with a letter or digit")
    return name


@dataclass(frozen=True)
class Port:
    """One input or output of a step."""

    local: str                 # the name the step's code uses
    kind: str                  # dataset | model
    name: str                  # dataset name, or model name
    version: int | None = None  # a pinned dataset version
    uri: str | None = None     # a registry URI (model inputs only)

    @property
    def spec(self) -> str:
        if self.kind == "dataset":
            return f"{self.name}@{self.version}" if self.version else self.name
        return f"model:{self.uri or self.name}"

    @property
    def key(self) -> tuple[str, str]:
        """What produces/consumes match on."""
        return self.kind, self.name


def parse_port(spec: Any, local: str | None, output: bool, where: str) -> Port:
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidInput(f"{where}: an input or output is a string like 'features', 'features@3' or "
                           f"'model:model', not {spec!r}")
    text = spec.strip()
    if text.startswith("model:"):
        uri = text[len("model:"):]
        if "@" in uri or "/" in uri:
            if output:
                raise InvalidInput(f"{where}: output {spec!r} names a registry version; an output is 'model:NAME'")
            ref = parse(uri)
            return Port(local or ref.name, "model", ref.name, uri=uri)
        check_model(uri)
        return Port(local or uri, "model", uri)
    if output and "@" in text:
        raise InvalidInput(f"{where}: output {spec!r} pins a version; a step outputs the next version of 'NAME'")
    name, version = parse_ref(text)
    return Port(local or name, "dataset", name, version)


def _ports(specs: Any, output: bool, where: str) -> dict[str, Port]:
    if specs is None:
        return {}
    if isinstance(specs, str):
        specs = [specs]
    items = list(specs.items()) if isinstance(specs, dict) else [(None, s) for s in specs]
    ports: dict[str, Port] = {}
    for local, spec in items:
        if local is not None:
            check_key("input", local)
        port = parse_port(spec, local, output, where)
        if port.local in ports:
            raise InvalidInput(f"{where}: two {'outputs' if output else 'inputs'} are named {port.local!r}")
        ports[port.local] = port
    return ports


def _param_list(params: Any, where: str) -> list[str] | None:
    if params is None:
        return None
    if isinstance(params, str):
        params = [params]
    if not isinstance(params, (list, tuple)) or not all(isinstance(p, str) and p.isidentifier() for p in params):
        raise InvalidInput(f"{where}: params is a list of parameter names, got {params!r}")
    return list(params)


# -- notebooks --------------------------------------------------------------------------------
def read_notebook(path: Path) -> Any:
    import nbformat

    try:
        return nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise InvalidInput(f"notebook {str(path)!r} not found") from None
    except Exception as exc:
        raise InvalidInput(f"notebook {str(path)!r} cannot be read: {exc}") from None


def notebook_code(nb: Any) -> str:
    """What a notebook step's cache key hashes: its code cells, in order (outputs and metadata ignored)."""
    return json.dumps([c.source for c in nb.cells if c.cell_type == "code"])


def notebook_parameters(nb: Any) -> dict[str, Any]:
    """The names (and literal defaults) assigned in the cell tagged ``parameters``."""
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in (cell.metadata.get("tags") or []):
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:
                return {}
            out: dict[str, Any] = {}
            for node in tree.body:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
                    if isinstance(node, ast.AnnAssign) and node.value is not None else []
                for t in targets:
                    if isinstance(t, ast.Name):
                        try:
                            out[t.id] = ast.literal_eval(node.value)
                        except (ValueError, SyntaxError):
                            out[t.id] = None
            return out
    return {}


# -- functions --------------------------------------------------------------------------------
def function_source(fn: Callable[..., Any]) -> str:
    try:
        return textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        import marshal

        return marshal.dumps(fn.__code__).hex()


def function_ref(fn: Callable[..., Any]) -> str | None:
    """``module:qualname`` when the function can be imported again (not from a notebook or __main__)."""
    module = getattr(fn, "__module__", None)
    qual = getattr(fn, "__qualname__", "")
    if not module or module == "__main__" or "<" in qual or module.startswith("__"):
        return None
    try:
        mod = importlib.import_module(module)
    except Exception:
        return None
    obj: Any = mod
    for part in qual.split("."):
        obj = getattr(obj, part, None)
    target = getattr(obj, "function", obj)
    return f"{module}:{qual}" if target is fn or obj is fn else None


def import_function(ref: str, base: Path | None = None) -> Callable[..., Any]:
    """``package.module:func`` or ``path/to/file.py:func`` (relative to ``base``)."""
    target, sep, qual = ref.rpartition(":")
    if not sep or not target or not qual:
        raise InvalidInput(f"function {ref!r}: write it as 'package.module:function' or 'file.py:function'")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_absolute() and base is not None:
            path = base / path
        if not path.exists():
            raise InvalidInput(f"function {ref!r}: no file {str(path)!r}")
        mod_name = "nbmlops_step_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        except Exception as exc:
            sys.modules.pop(mod_name, None)
            raise InvalidInput(f"function {ref!r}: {path.name} failed to import: {exc!r}") from None
    else:
        try:
            module = importlib.import_module(target)
        except Exception as exc:
            raise InvalidInput(f"function {ref!r}: cannot import {target!r}: {exc!r}") from None
    obj: Any = module
    for part in qual.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise InvalidInput(f"function {ref!r}: {target} has no {qual!r}")
    fn = getattr(obj, "function", obj)
    if not callable(fn):
        raise InvalidInput(f"function {ref!r} is not callable")
    return fn


# -- steps ------------------------------------------------------------------------------------
@dataclass
class Step:
    """One step of a pipeline. Make one with :func:`step`."""

    name: str
    kind: str                                   # notebook | function
    notebook: Path | None = None
    function: Callable[..., Any] | None = None
    ref: str | None = None                      # module:func or file.py:func of a function step
    inputs: dict[str, Port] = field(default_factory=dict)
    outputs: dict[str, Port] = field(default_factory=dict)
    params: list[str] | None = None             # None: inferred
    retries: int = 0
    timeout: float | None = None
    cache: bool = True
    kernel: str | None = None
    resources: dict[str, Any] = field(default_factory=dict)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """A function step still calls its function (handy in tests)."""
        if self.function is None:
            raise InvalidInput(f"step {self.name} is a notebook; run it in a pipeline")
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        what = self.notebook.name if self.notebook else (self.ref or getattr(self.function, "__name__", "?"))
        ins = ", ".join(p.spec for p in self.inputs.values()) or "—"
        outs = ", ".join(p.spec for p in self.outputs.values()) or "—"
        return f"<Step {self.name} ({self.kind} {what}): {ins} → {outs}>"

    # -- what the step reads --------------------------------------------------------------
    def code(self) -> str:
        """The step's code, as its cache key sees it."""
        if self.kind == "notebook":
            return notebook_code(read_notebook(self.notebook))  # type: ignore[arg-type]
        return function_source(self.function)  # type: ignore[arg-type]

    def code_sha(self) -> str:
        return hashlib.sha256(self.code().encode()).hexdigest()

    def declared_parameters(self) -> dict[str, Any] | None:
        """Names the step's code takes: a notebook's ``parameters`` cell, a function's arguments."""
        if self.kind == "notebook":
            return notebook_parameters(read_notebook(self.notebook))  # type: ignore[arg-type]
        sig = inspect.signature(self.function)  # type: ignore[arg-type]
        return {n: (None if p.default is inspect.Parameter.empty else p.default)
                for n, p in sig.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}

    def used_params(self, pipeline_params: dict[str, Any]) -> list[str]:
        if self.params is not None:
            return list(self.params)
        declared = self.declared_parameters() or {}
        return [p for p in declared if p in pipeline_params and p not in self.inputs]

    def to_dict(self, base: Path | None = None) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name}
        if self.kind == "notebook":
            nb = self.notebook
            if base is not None:
                try:
                    nb = nb.relative_to(base)  # type: ignore[union-attr]
                except ValueError:
                    pass
            d["notebook"] = str(nb)
        else:
            d["function"] = _relative_ref(self.ref, base) if self.ref else function_ref(self.function)  # type: ignore[arg-type]
        if self.inputs:
            d["inputs"] = {p.local: p.spec for p in self.inputs.values()} if any(
                p.local != p.name for p in self.inputs.values()) else [p.spec for p in self.inputs.values()]
        if self.outputs:
            d["outputs"] = [p.spec for p in self.outputs.values()]
        if self.params is not None:
            d["params"] = list(self.params)
        for k, default in (("retries", 0), ("timeout", None), ("cache", True), ("kernel", None)):
            if getattr(self, k) != default:
                d[k] = getattr(self, k)
        if self.resources:
            d["resources"] = dict(self.resources)
        return d


def step(target: Any = None, *, name: str | None = None, inputs: Any = None, outputs: Any = None,
         params: Any = None, retries: int = 0, timeout: float | None = None, cache: bool = True,
         kernel: str | None = None, resources: dict[str, Any] | None = None, base: Path | None = None) -> Any:
    """A pipeline step: a notebook path, a function, or ``"module:function"`` / ``"file.py:function"``.

    >>> features = step("features.ipynb", inputs=["raw"], outputs=["features"])
    >>> @step(inputs=["features"], outputs=["model:model"])
    ... def train(features, n_estimators=100): ...

    ``params`` names the pipeline parameters the step uses (default: those its notebook's
    ``parameters`` cell or its function's arguments name); ``retries`` re-runs a failed step;
    ``timeout`` bounds each notebook cell (seconds); ``cache=False`` always runs it;
    ``resources`` (``cpu``, ``memory``) apply when exported to Kubeflow."""
    if target is None:
        def decorate(fn: Callable[..., Any]) -> Step:
            return step(fn, name=name, inputs=inputs, outputs=outputs, params=params, retries=retries,
                        timeout=timeout, cache=cache, kernel=kernel, resources=resources, base=base)
        return decorate
    ref = None
    if isinstance(target, Step):
        return target
    if isinstance(target, (str, Path)) and str(target).endswith(".ipynb"):
        path = Path(target).expanduser()
        if not path.is_absolute():
            path = (base or Path.cwd()) / path
        kind, notebook, function = "notebook", path.resolve(), None
        default_name = path.stem
    elif isinstance(target, str):
        ref = _absolute_ref(target, base)
        kind, notebook, function = "function", None, import_function(target, base)
        default_name = getattr(function, "__name__", "step")
    elif callable(target):
        kind, notebook, function = "function", None, target
        default_name = getattr(target, "__name__", "step")
    else:
        raise InvalidInput(f"a step is a notebook path (.ipynb), a function, or 'module:function', "
                           f"not {type(target).__name__} {target!r:.60}")
    step_name = check_name("step", name or default_name)
    where = f"step {step_name}"
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidInput(f"{where}: retries is a number of extra attempts (0, 1, 2, ...), got {retries!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise InvalidInput(f"{where}: timeout is a number of seconds, got {timeout!r}")
    s = Step(name=step_name, kind=kind, notebook=notebook, function=function, ref=ref,
             inputs=_ports(inputs, False, where), outputs=_ports(outputs, True, where),
             params=_param_list(params, where), retries=retries, timeout=timeout, cache=bool(cache),
             kernel=kernel, resources=dict(resources or {}))
    clash = set(s.inputs) & set(s.outputs)
    if clash:
        raise InvalidInput(f"{where} both reads and writes {sorted(clash)[0]!r}; give the output another name")
    if kind == "function":
        for p in (*s.inputs.values(),):
            if not p.local.isidentifier() or keyword.iskeyword(p.local):
                raise InvalidInput(f"{where}: input {p.spec!r} reaches the function as an argument; name it with "
                                   f"a dict, e.g. inputs={{'data': {p.spec!r}}}")
    return s


def _absolute_ref(ref: str, base: Path | None) -> str:
    """``file.py:func`` with the file's absolute path (a stored definition runs from anywhere)."""
    target, sep, qual = ref.rpartition(":")
    if sep and target.endswith(".py") and not Path(target).is_absolute():
        return f"{((base or Path.cwd()) / target).resolve()}:{qual}"
    return ref


def _relative_ref(ref: str, base: Path | None) -> str:
    target, sep, qual = ref.rpartition(":")
    if base is not None and sep and target.endswith(".py"):
        try:
            return f"{Path(target).relative_to(base)}:{qual}"
        except ValueError:
            pass
    return ref


def step_from_dict(d: dict[str, Any], base: Path | None) -> Step:
    if not isinstance(d, dict):
        raise InvalidInput(f"a step is a mapping with 'notebook' or 'function', got {d!r:.80}")
    unknown = set(d) - {"name", "notebook", "function", "inputs", "outputs", "params", "retries", "timeout", "cache",
                        "kernel", "resources"}
    if unknown:
        raise InvalidInput(f"step {d.get('name', '?')}: unknown field(s) {', '.join(sorted(unknown))}")
    if ("notebook" in d) == ("function" in d):
        raise InvalidInput(f"step {d.get('name', '?')}: give exactly one of 'notebook' or 'function'")
    target = d.get("notebook") or d.get("function")
    if "notebook" in d and not str(target).endswith(".ipynb"):
        raise InvalidInput(f"step {d.get('name', '?')}: notebook {target!r} is not an .ipynb file")
    if "function" in d and not target:
        raise InvalidInput(f"step {d.get('name', '?')}: its function is not importable (defined in a notebook or "
                           "__main__); move it to a .py file to run this pipeline from a shell")
    return step(target, name=d.get("name"), inputs=d.get("inputs"), outputs=d.get("outputs"), params=d.get("params"),
                retries=d.get("retries", 0), timeout=d.get("timeout"), cache=d.get("cache", True),
                kernel=d.get("kernel"), resources=d.get("resources"), base=base)


# -- the graph ----------------------------------------------------------------------------------
def order(steps: list[Step]) -> list[Step]:
    """Steps in dependency order (ties kept in definition order); InvalidInput names a cycle."""
    producers = producers_of(steps)
    deps = {s.name: {producers[p.key] for p in s.inputs.values() if p.key in producers and not p.version
                     and not p.uri} for s in steps}
    for s in steps:
        if s.name in deps[s.name]:
            raise InvalidInput(f"step {s.name} reads its own output; that is a cycle")
    done: list[str] = []
    pending = [s.name for s in steps]
    while pending:
        ready = [n for n in pending if deps[n] <= set(done)]
        if not ready:
            raise InvalidInput(f"the steps form a cycle: {' → '.join(_cycle(deps, pending))}")
        done.extend(ready)
        pending = [n for n in pending if n not in ready]
    by = {s.name: s for s in steps}
    return [by[n] for n in done]


def _cycle(deps: dict[str, set[str]], pending: list[str]) -> list[str]:
    node = pending[0]
    seen: list[str] = []
    while node not in seen:
        seen.append(node)
        node = sorted(d for d in deps[node] if d in pending)[0]
    loop = seen[seen.index(node):] + [node]
    return list(reversed(loop))


def producers_of(steps: list[Step]) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for s in steps:
        for p in s.outputs.values():
            if p.key in out:
                raise InvalidInput(f"{p.kind} {p.name!r} is an output of both step {out[p.key]} and step {s.name}; "
                                   "each output has one producer")
            out[p.key] = s.name
    return out


def upstream(steps: list[Step]) -> dict[str, list[str]]:
    """Each step's direct predecessors."""
    producers = producers_of(steps)
    return {s.name: sorted({producers[p.key] for p in s.inputs.values()
                            if p.key in producers and not p.version and not p.uri}) for s in steps}


def check_params(params: Any, where: str) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise InvalidInput(f"{where}: params is a dict of name -> value, got {type(params).__name__}")
    for k, v in params.items():
        if not isinstance(k, str) or not k.isidentifier() or keyword.iskeyword(k):
            raise InvalidInput(f"{where}: parameter name {k!r} is not a Python identifier")
        try:
            json.dumps(v, allow_nan=False)
        except (TypeError, ValueError):
            raise InvalidInput(f"{where}: parameter {k} = {v!r:.60} is not JSON (numbers, text, booleans, lists, "
                               "dicts)") from None
    return dict(params)
