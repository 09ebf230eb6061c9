"""A notebook step: papermill runs a copy of the notebook with the parameters injected and two
cells added around it (enter and leave the step's context); the executed notebook and its
nbconvert HTML are the step's report."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

SETUP = ("# nbmlops: step {step!r} of pipeline {pipeline!r} (cell added by the pipeline runner)\n"
         "import nbmlops.pipelines.context as _nbmlops_step\n"
         "_nbmlops_step.begin({path!r});")
END = "# nbmlops: the step is done (cell added by the pipeline runner)\n_nbmlops_step.end()"
TAG = "nbmlops-step"

_exporter: Any = None
_exporter_lock = threading.Lock()


def execute(notebook: Path, out: Path, context_path: Path, params: dict[str, Any], *, step: str, pipeline: str,
            kernel: str | None = None, timeout: float | None = None) -> str | None:
    """Run the notebook into ``out``; None when every cell ran, else the error in one line.

    The kernel starts in the notebook's own folder (as when it was written), without changing the
    working directory of this process: other steps run beside it."""
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    nb = nbformat.read(notebook, as_version=4)
    setup = nbformat.v4.new_code_cell(SETUP.format(step=step, pipeline=pipeline, path=str(context_path)))
    end = nbformat.v4.new_code_cell(END)
    for cell in (setup, end):
        cell.metadata["tags"] = [TAG]
    nb.cells.insert(0, setup)
    nb.cells.append(end)
    spec = nb.metadata.get("kernelspec") or {}
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(nb, str(out), parameters=params, kernel_name=kernel or spec.get("name") or "python3",
                                   language="python", progress_bar=False, log_output=False,
                                   execution_timeout=int(timeout) if timeout else None,
                                   resources={"metadata": {"path": str(notebook.parent)}},
                                   # the step kernel's own log (TCP notices, shutdown) would land in the caller's cell
                                   extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
    except PapermillExecutionError as exc:
        return f"{exc.ename}: {exc.evalue} (cell {max(exc.exec_count or 0, 0)})"
    except Exception as exc:  # the kernel died, a cell timed out, the kernel could not start
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return None


def html_report(executed: Path, out: Path) -> Path | None:
    """nbconvert's HTML of the executed notebook (None if it cannot be made)."""
    global _exporter
    try:
        with _exporter_lock:
            if _exporter is None:
                from nbconvert import HTMLExporter

                _exporter = HTMLExporter()
            body, _ = _exporter.from_filename(str(executed))
    except Exception:
        return None
    out.write_text(body, encoding="utf-8")
    return out
