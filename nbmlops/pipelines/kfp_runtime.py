"""What each exported Kubeflow component runs (inside its container, or kfp's local subprocess runner).

The step runs exactly as under ``nbmlops pipeline run`` (same context, same notebook cells added,
same output collection), against a scratch store: its inputs are the files of the component's input
artifacts, its outputs are copied to the output artifacts' paths (Parquet for datasets, the pickle
for models), its run's metrics go to a ``Metrics`` artifact and a notebook's HTML to an ``HTML`` one.
Needs nbmlops (with papermill for notebook steps) in the component's image.

No input is read before its bytes are checked: each is copied into the scratch folder while hashed,
and the copy is used only if it hashes to the recorded sha256 (embedded in the component for an
imported input, in the artifact's ``nbmlops.file_sha256`` metadata for an upstream task's output);
otherwise the task fails with ``IntegrityError`` and the file, a model pickle perhaps, is never loaded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import tempfile
import zlib
from pathlib import Path
from typing import Any

from ..errors import IntegrityError
from ..store import current_store, set_store
from ..tracking.lookup import find_run_doc
from ..tracking.runs import start_run
from ..tracking.session import pop_run
from . import notebook
from .definition import step
from .runner import collect_outputs, end_failed, run_function

FILE_SHA = "nbmlops.file_sha256"  # artifact metadata: the sha256 of the artifact file's bytes


def pack(text: str) -> str:
    """Text as a compact ASCII literal (zlib + base64) to embed in a component's source."""
    return base64.b64encode(zlib.compress(text.encode(), 9)).decode()


def unpack(data: str) -> str:
    return zlib.decompress(base64.b64decode(data)).decode()


def run_step(spec: dict[str, Any], params: dict[str, Any], inputs: dict[str, Any], outputs: dict[str, Any],
             metrics: Any = None, report: Any = None) -> None:
    """Run one step; ``inputs``/``outputs`` map the step's local names to kfp artifacts (with ``.path``)."""
    scratch = Path(tempfile.mkdtemp(prefix="nbmlops-kfp-"))
    checked = {local: verified_copy(f"step {spec['step']}: input {local!r}", spec["inputs"][local], art,
                                    scratch / f"input-{i}")
               for i, (local, art) in enumerate(inputs.items())}
    set_store(scratch / ".nbmlops")
    store = current_store()
    run = start_run(spec["pipeline"], f"{spec['pipeline']}.{spec['step']}",
                    {"nbmlops.pipeline": spec["pipeline"], "nbmlops.step": spec["step"], "nbmlops.kfp": "true"},
                    nested=True)
    pop_run(run)
    if params:
        run.log_params(params)
    ports_in = {local: spec["inputs"][local]["spec"] for local in spec["inputs"]}
    ports_out = [spec["outputs"][local]["spec"] for local in spec["outputs"]]
    if spec["kind"] == "notebook":
        path = scratch / spec["notebook_name"]
        path.write_text(unpack(spec["code"]))
        s = step(path, name=spec["step"], inputs=ports_in, outputs=ports_out, kernel=spec.get("kernel"),
                 timeout=spec.get("timeout"))
    else:
        namespace: dict[str, Any] = {"__name__": f"nbmlops_kfp_{spec['step']}"}
        exec(compile(unpack(spec["code"]), spec.get("source_file") or "<step>", "exec"), namespace)
        fn = namespace
        for part in spec["function"].split("."):
            fn = fn[part] if isinstance(fn, dict) else getattr(fn, part)
        s = step(getattr(fn, "function", fn), name=spec["step"], inputs=ports_in, outputs=ports_out)
    data = {"mode": "paths", "store": str(store.root), "run_id": run.id, "pipeline": spec["pipeline"],
            "pipeline_run": os.environ.get("KFP_RUN_ID", "kfp"), "step": spec["step"], "params": params,
            "inputs": {local: {**spec["inputs"][local], "path": str(checked[local])} for local in inputs},
            "outputs": {local: dict(spec["outputs"][local]) for local in spec["outputs"]}}
    if s.kind == "notebook":
        ctx = scratch / "context.json"
        ctx.write_text(json.dumps(data))
        out = scratch / "executed.ipynb"
        error = notebook.execute(s.notebook, out, ctx, params, step=s.name, pipeline=spec["pipeline"],
                                 kernel=s.kernel, timeout=s.timeout)
        if report is not None and out.exists():
            html = notebook.html_report(out, scratch / "executed.html")
            if html is not None:
                shutil.copyfile(html, report.path)
    else:
        error = run_function(s, run, data, data["inputs"], params)
    if error is not None:
        end_failed(store, run.id, error)
        raise RuntimeError(f"step {s.name} failed: {error}")
    found, error = collect_outputs(store, s, run.id)
    if error is not None:
        raise RuntimeError(error)
    for local, art in outputs.items():
        ref = found[spec["outputs"][local]["name"]]
        blob = ref["blob"] if ref["kind"] == "dataset" else ref["sha256"]
        Path(art.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(store.blobs.verified_path(blob), art.path)
        art.metadata.update({"nbmlops.sha256": ref["sha256"], "nbmlops.kind": ref["kind"], FILE_SHA: blob})
    if metrics is not None:
        for key, m in find_run_doc(store, run.id)["metrics"].items():
            metrics.log_metric(key, m["value"])


def verified_copy(what: str, port: dict[str, Any], art: Any, dest: Path) -> Path:
    """Copy the artifact's file to ``dest`` while hashing it; the copy, only if it hashes to the
    recorded sha256 (IntegrityError otherwise, and the copy is removed)."""
    expected = port.get("file_sha256") or (getattr(art, "metadata", None) or {}).get(FILE_SHA)
    if not isinstance(expected, str) or not expected:
        raise IntegrityError(f"{what} ({port['kind']} {port['name']}) at {art.path} carries no recorded sha256: "
                             "refusing to read it (re-export the pipeline with this nbmlops)")
    h = hashlib.sha256()
    with open(art.path, "rb") as src, open(dest, "wb") as out:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            h.update(chunk)
            out.write(chunk)
    if h.hexdigest() != expected:
        dest.unlink()
        raise IntegrityError(f"{what} ({port['kind']} {port['name']}): {art.path} hashes to {h.hexdigest()[:12]}…, "
                             f"not the recorded {expected[:12]}…; refusing to load it (swapped or damaged)")
    return dest
