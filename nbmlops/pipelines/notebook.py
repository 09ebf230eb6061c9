"""A notebook step: papermill runs a copy of the notebook with the parameters injected and two
cells added around it (enter and leave the step's context); the executed notebook and its
nbconvert HTML are the step's report.

papermill starts a kernel per notebook; given a :class:`~.kernels.KernelPool`, the step runs in a
warm kernel of the pipeline run instead (a papermill engine that drives a kernel it does not own)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from .kernels import KERNEL_ARGUMENTS, KernelPool, WarmKernel

SETUP = ("# nbmlops: step {step!r} of pipeline {pipeline!r} (cell added by the pipeline runner)\n"
         "import nbmlops.pipelines.context as _nbmlops_step\n"
         "_nbmlops_step.begin({path!r});")
END = "# nbmlops: the step is done (cell added by the pipeline runner)\n_nbmlops_step.end()"
TAG = "nbmlops-step"

WARM_ENGINE = "nbmlops-warm"

_exporter: Any = None
_exporter_lock = threading.Lock()
_engine_lock = threading.Lock()
_engine_registered = False


def execute(notebook: Path, out: Path, context_path: Path, params: dict[str, Any], *, step: str, pipeline: str,
            kernel: str | None = None, timeout: float | None = None,
            kernels: KernelPool | None = None) -> str | None:
    """Run the notebook into ``out``; None when every cell ran, else the error in one line.

    The kernel starts (or, from ``kernels``, is reset) in the notebook's own folder, as when it was
    written, without changing the working directory of this process: other steps run beside it."""
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
    name = kernel or spec.get("name") or "python3"
    out.parent.mkdir(parents=True, exist_ok=True)
    warm: WarmKernel | None = None
    error: str | None = None
    try:
        engine: dict[str, Any] = {"extra_arguments": KERNEL_ARGUMENTS}
        if kernels is not None:
            warm = kernels.acquire(name, notebook.parent)
            engine = {"engine_name": _warm_engine(), "km": warm.km}
        papermill.execute_notebook(nb, str(out), parameters=params, kernel_name=name,
                                   language="python", progress_bar=False, log_output=False,
                                   execution_timeout=int(timeout) if timeout else None,
                                   resources={"metadata": {"path": str(notebook.parent)}}, **engine)
    except PapermillExecutionError as exc:
        error = f"{exc.ename}: {exc.evalue} (cell {max(exc.exec_count or 0, 0)})"
    except Exception as exc:  # the kernel died, a cell timed out, the kernel could not start
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    finally:
        if warm is not None and kernels is not None:
            kernels.release(warm, reusable=error is None)
    return error


def _warm_engine() -> str:
    """Register (once) the papermill engine that runs a notebook on a given warm kernel."""
    from papermill.clientwrap import PapermillNotebookClient  # heavy: loaded when a notebook step runs
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.log import logger

    global _engine_registered
    with _engine_lock:
        if _engine_registered:
            return WARM_ENGINE

        class Client(PapermillNotebookClient):
            """papermill's client on a kernel it does not own: its channels close after the notebook,
            the kernel stays up for the next step."""

            def execute(self, **kwargs: Any) -> Any:
                try:
                    return super().execute(**kwargs)
                finally:
                    if self.kc is not None:
                        self.kc.stop_channels()
                        self.kc = None

        class Engine(NBClientEngine):
            """NBClientEngine with the client above (its arguments mapped as papermill maps them)."""

            @classmethod
            def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
                kwargs.pop("input_path", None)
                kwargs.pop("extra_arguments", None)
                timeout = kwargs.pop("execution_timeout", None)
                return Client(nb_man, kernel_name=kernel_name, timeout=timeout,
                              startup_timeout=kwargs.pop("start_timeout", 60), log=logger, **kwargs).execute()

        papermill_engines.register(WARM_ENGINE, Engine)
        _engine_registered = True
    return WARM_ENGINE


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
