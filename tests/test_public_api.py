"""nbmlops's public API is one table (``nbmlops._API``): __all__, dir() and the lazy imports agree with it,
and ``import nbmlops`` stays light."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path

import nbmlops

HEAVY = ("sklearn", "pandas", "matplotlib", "scipy", "fastapi", "pyarrow", "IPython", "ipywidgets")


def test_all_is_the_table():
    assert nbmlops.__all__ == list(nbmlops._API)
    assert len(set(nbmlops.__all__)) == len(nbmlops.__all__)


def test_every_public_name_resolves_from_its_module():
    for name, module in nbmlops._API.items():
        value = getattr(nbmlops, name)
        if module == nbmlops._HERE:
            assert inspect.getmodule(value) is nbmlops, name
        else:
            assert value is getattr(importlib.import_module(f"nbmlops.{module}"), name), name


def test_dir_lists_the_public_names():
    listed = dir(nbmlops)
    assert set(nbmlops.__all__) <= set(listed)
    assert listed == sorted(listed)
    assert "__version__" in listed


def test_unknown_name_is_an_attribute_error():
    try:
        nbmlops.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("nbmlops.no_such_name resolved")


def _type_checking_imports() -> dict[str, str]:
    """{name: module} of the ``if TYPE_CHECKING:`` imports in nbmlops/__init__.py (what type checkers see)."""
    tree = ast.parse(Path(nbmlops.__file__).read_text(encoding="utf-8"))
    block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    found = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1, ast.unparse(node)
        for alias in node.names:
            assert alias.asname is None, ast.unparse(node)
            found[alias.name] = node.module
    return found


def test_type_checking_imports_agree_with_the_table():
    lazy = {name: module for name, module in nbmlops._API.items() if module not in (nbmlops._HERE, "errors")}
    assert _type_checking_imports() == lazy


def test_errors_and_local_functions_are_defined_at_import():
    source = Path(nbmlops.__file__).read_text(encoding="utf-8")
    for name, module in nbmlops._API.items():
        if module == nbmlops._HERE:
            assert f"\ndef {name}(" in source, name
        elif module == "errors":
            assert name in vars(nbmlops), name


def test_import_nbmlops_loads_no_heavy_library():
    code = ("import sys, time, json; t = time.perf_counter(); import nbmlops; dt = time.perf_counter() - t; "
            f"print(json.dumps({{'seconds': dt, 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["heavy"] == [], report
