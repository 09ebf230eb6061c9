"""The rules of pyproject.toml hold: import-linter's contracts (the layers) and ruff over nbmlops/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_import_contracts_are_kept():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    out = _run([str(lint_imports), "--no-cache", "--no-logo"])
    assert out.returncode == 0, f"lint-imports found broken contracts:\n{out.stdout}{out.stderr}"


def test_ruff_is_clean():
    out = _run([sys.executable, "-m", "ruff", "check", "--no-cache", "nbmlops"])
    assert out.returncode == 0, f"ruff check nbmlops:\n{out.stdout}{out.stderr}"


# -- rules import-linter cannot check: names, function-body imports, the store's layout ----------
import ast  # noqa: E402
import re  # noqa: E402

PACKAGE = ROOT / "nbmlops"
MAX_INNER_SHARE = 0.15  # issue 17: at most ~15% of internal imports inside function bodies


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield path, name, path.name == "__init__.py"


def _target(module: str, node: ast.ImportFrom, is_pkg: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _package(module: str) -> str:
    """The top package under nbmlops (``tracking``), or the root-level module itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _internal_imports():
    """(path, module, line, target, imported name or None, inside a function?) of every nbmlops import."""
    for path, module, is_pkg in _modules():
        tree = ast.parse(path.read_text())
        inner = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                 for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                pairs = [(a.name, None) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                pairs = [(_target(module, node, is_pkg), a.name) for a in node.names]
            else:
                continue
            for target, name in pairs:
                if target == "nbmlops" or target.startswith("nbmlops."):
                    yield path, module, node.lineno, target, name, id(node) in inner


def test_no_import_of_a_private_name_across_packages():
    bad = [f"{p.relative_to(ROOT)}:{line} imports {target}.{name}"
           for p, module, line, target, name, _ in _internal_imports()
           if name and name.startswith("_") and not name.startswith("__") and _package(target) != _package(module)]
    bad += [f"{p.relative_to(ROOT)}:{line} imports the private module {target}"
            for p, module, line, target, _, _ in _internal_imports()
            if target.count(".") >= 2 and target.rsplit(".", 1)[1].startswith("_")
            and _package(target) != _package(module)]
    assert not bad, "\n".join(bad)


def test_imports_inside_functions_are_few_and_say_why():
    found = list(_internal_imports())
    inner = [(p, line) for p, _, line, _, _, is_inner in found if is_inner]
    assert len(inner) / len(found) <= MAX_INNER_SHARE, f"{len(inner)} of {len(found)} internal imports in functions"
    silent = []
    for path, line in inner:
        lines = path.read_text().splitlines()
        if "#" not in lines[line - 1] and not lines[line - 2].strip().startswith("#"):
            silent.append(f"{path.relative_to(ROOT)}:{line}")
    assert not silent, "imports inside a function need a comment saying why:\n" + "\n".join(sorted(set(silent)))


def test_only_the_store_knows_the_store_layout():
    layout = re.compile(r"""(\.root\s*/|joinpath\(\s*["'](db|logs|blobs|tmp)["']|/\s*["'](db|logs|blobs)["'])""")
    bad = []
    for path, module, _ in _modules():
        if module.startswith("nbmlops.store"):
            continue
        for n, text in enumerate(path.read_text().splitlines(), 1):
            if "tinydb" in text or layout.search(text):
                bad.append(f"{path.relative_to(ROOT)}:{n}: {text.strip()}")
    assert not bad, "\n".join(bad)
