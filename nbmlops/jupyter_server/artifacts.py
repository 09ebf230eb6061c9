"""A run's artifacts as the dashboard serves them: only files recorded on that run, looked up by their
exact recorded name (never a path built from the request), each with a content type from a short list
of types a browser shows safely inline; anything else (HTML, SVG, scripts, unknown) is a download."""

from __future__ import annotations

import csv
import io
import json
import posixpath
from pathlib import Path
from typing import Any

import nbmlops

from ..errors import NotFound

# what may be shown inline (images as <img>, text in <pre>): never a type the browser renders as a page
INLINE = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
          ".webp": "image/webp", ".txt": "text/plain; charset=utf-8", ".log": "text/plain; charset=utf-8",
          ".md": "text/plain; charset=utf-8", ".py": "text/plain; charset=utf-8",
          ".json": "application/json; charset=utf-8", ".csv": "text/csv; charset=utf-8",
          ".tsv": "text/tab-separated-values; charset=utf-8", ".yaml": "text/plain; charset=utf-8",
          ".yml": "text/plain; charset=utf-8"}
PREVIEW_BYTES = 64 * 1024
PREVIEW_ROWS = 50


def kind(name: str, recorded_kind: str | None = None) -> str:
    """How the run page shows an artifact: "image", "json", "csv", "text" or "download"."""
    ext = posixpath.splitext(name.lower())[1]
    ctype = INLINE.get(ext, "")
    if ctype.startswith("image/"):
        return "image"
    if ext == ".json":
        return "json"
    if ext in (".csv", ".tsv"):
        return "csv"
    if ctype or (recorded_kind == "text" and ext not in (".html", ".htm", ".svg", ".xml", ".js")):
        return "text"
    return "download"


def content_type(name: str, recorded_kind: str | None = None) -> tuple[str, bool]:
    """The Content-Type to serve ``name`` with and whether it may be shown inline."""
    ext = posixpath.splitext(name.lower())[1]
    if ext in INLINE:
        return INLINE[ext], True
    if kind(name, recorded_kind) == "text":
        return "text/plain; charset=utf-8", True
    return "application/octet-stream", False


def _entry(run: Any, name: str) -> dict[str, Any]:
    for entry in run.info["artifacts"]:
        if entry["name"] == name:
            return entry
    have = ", ".join(e["name"] for e in run.info["artifacts"][:20]) or "none"
    raise NotFound(f"run {run.name} has no artifact {name!r} (it has: {have})")


def locate(run_id: str, name: str) -> tuple[Path, dict[str, Any]]:
    """The stored file (hash checked) of the artifact recorded as ``name`` on the run, and its entry."""
    run = nbmlops.get_run(run_id)
    entry = _entry(run, name)
    return run.artifact(entry["name"]), dict(entry)


def preview(run_id: str, name: str) -> dict[str, Any]:
    """The first 64 KiB of a text artifact as text (JSON pretty-printed when whole, CSV as rows)."""
    path, entry = locate(run_id, name)
    how = kind(name, entry.get("kind"))
    if how in ("image", "download"):
        return {"name": name, "kind": how, "size": entry.get("size")}
    with open(path, "rb") as f:  # a blob the store just checked: read its head only
        head = f.read(PREVIEW_BYTES + 1)
    truncated = len(head) > PREVIEW_BYTES
    text = head[:PREVIEW_BYTES].decode("utf-8", errors="replace")
    out: dict[str, Any] = {"name": name, "kind": how, "size": entry.get("size"), "truncated": truncated, "text": text}
    if how == "json" and not truncated:
        try:
            out["text"] = json.dumps(json.loads(text), indent=2)[:PREVIEW_BYTES]
        except ValueError:
            out["kind"] = "text"
    elif how == "csv":
        delimiter = "\t" if name.lower().endswith(".tsv") else ","
        rows = []
        for row in csv.reader(io.StringIO(text), delimiter=delimiter):
            rows.append(row)
            if len(rows) > PREVIEW_ROWS:
                break
        out["rows"] = rows[:PREVIEW_ROWS + 1]
    return out
