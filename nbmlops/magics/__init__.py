"""IPython faces, one module per magic. Each is thin: parse the line, call the public API, display.

User mistakes raise ``UsageError`` (one red line, no traceback) before anything is written.
A new magic module defines a ``Magics`` subclass and is added to ``MAGICS`` below.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..display.pipelines import auto_progress
from ..pipelines.progress import set_default_progress

# (module, class) of every magics class nbmlops registers
MAGICS = [
    ("track", "Track"),
    ("store", "Nbmlops"),
    ("register", "Register"),
    ("serve", "Serve"),
    ("features", "Features"),
    ("drift", "Drift"),
    ("pipeline", "PipelineMagics"),
]

_loaded: dict[int, Any] = {}


def load(ipython: Any) -> None:
    set_default_progress(auto_progress)  # pipelines run here show the live table in a notebook
    for module, name in MAGICS:
        cls = getattr(importlib.import_module(f".{module}", __name__), name)
        instance = cls(ipython)
        ipython.register_magics(instance)
        hook = getattr(instance, "pre_run_cell", None)
        if hook is not None:
            ipython.events.register("pre_run_cell", hook)
        _loaded.setdefault(id(ipython), {})[name] = instance


def unload(ipython: Any) -> None:
    for instance in _loaded.pop(id(ipython), {}).values():
        hook = getattr(instance, "pre_run_cell", None)
        if hook is not None:
            ipython.events.unregister("pre_run_cell", hook)
