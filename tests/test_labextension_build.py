"""The committed build of the JupyterLab extension (nbmlops/labextension/) is the build of the committed source
(labextension/): scripts/build-labextension records a digest of what it built from, and this quick check tells
a source change that was not rebuilt. (The built extension itself is tested in tests/test_labextension.py.)"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "labextension"
BUILT = ROOT / "nbmlops" / "labextension"


def source_digest() -> str:
    """The digest scripts/build-labextension writes to nbmlops/labextension/source.sha256 (same files, same order)."""
    h = hashlib.sha256()
    files = sorted(SOURCE.glob("*.json")) + [p for d in ("src", "style") for p in sorted((SOURCE / d).rglob("*"))]
    for p in files:
        if p.is_file():
            h.update(p.relative_to(SOURCE).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def test_the_committed_build_is_built_from_the_committed_source():
    recorded = (BUILT / "source.sha256").read_text().strip()
    assert recorded == source_digest(), (
        "labextension/ changed since nbmlops/labextension/ was built: run bash scripts/build-labextension "
        "and commit nbmlops/labextension/")


def test_the_build_names_its_entry_and_the_python_package_that_installs_it():
    meta = json.loads((BUILT / "package.json").read_text())
    assert meta["name"] == "nbmlops" and (BUILT / meta["jupyterlab"]["_build"]["load"]).is_file()
    install = json.loads((BUILT / "install.json").read_text())
    assert install == json.loads((SOURCE / "install.json").read_text()) and install["packageName"] == "nbmlops"
