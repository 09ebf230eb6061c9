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
