"""A notebook cell run as a tracked run: what ``%%track`` does, without IPython.

The face starts the run with :func:`start_cell_run` (a mistake there is the user's: nothing ran),
then hands the cell's runner to :func:`track_cell`, which runs it inside the run and ends the run
FINISHED, FAILED or KILLED.
"""

from __future__ import annotations

import hashlib
import traceback
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from ..errors import NbmlopsError
from .environment import papermill_params
from .runs import Run, start_run
from .session import pop_run


@dataclass
class CellResult:
    """What a tracked cell left: its run, the cell's own exception (already shown by the runner)
    and why the -p/-m variables were not logged (the rest of the run is saved)."""

    run: Run
    error: BaseException | None = None
    problem: str | None = None


def cell_key(source: str, notebook: str | None, cell_id: str | None = None, name: str | None = None) -> str:
    """The key that links re-runs of one cell: its notebook and its id (else the run name, else its source)."""
    key = cell_id or (name and f"name:{name}") or "src:" + hashlib.sha256(source.encode()).hexdigest()[:16]
    return f"{notebook or 'session'}::{key}"


def start_cell_run(source: str, *, experiment: str | None = None, name: str | None = None,
                   tags: dict[str, Any] | None = None, autolog: bool = True, notebook: str | None = None,
                   cell_id: str | None = None) -> Run:
    """Start the run of a cell (its source, notebook and cell key recorded)."""
    return start_run(experiment, name, tags, autolog=autolog, source=source,
                     cell_key=cell_key(source, notebook, cell_id, name), notebook=notebook)


def track_cell(run: Run, run_cell: Callable[[], BaseException | None], namespace: MutableMapping[str, Any],
               params: Iterable[str] = (), metrics: Iterable[str] = ()) -> CellResult:
    """Run a cell inside ``run`` and end the run.

    ``run_cell()`` runs the cell and returns its exception (None if it succeeded); ``namespace`` is
    the notebook's: it gets ``run``, gives papermill's injected parameters (from ``In``) and, after
    a successful cell, the variables named by ``params`` and ``metrics`` to log.
    """
    result = CellResult(run)
    try:
        injected = papermill_params(namespace.get("In"))
        if injected:
            run.log_params(injected)
        namespace["run"] = run
        result.error = error = run_cell()
        if error is None:
            result.problem = log_variables(run, namespace, list(params), list(metrics))
            run.end("FINISHED")
        elif isinstance(error, KeyboardInterrupt):
            run.end("KILLED", "KeyboardInterrupt")
        else:
            run.end("FAILED", "".join(traceback.format_exception(type(error), error, error.__traceback__)))
    except BaseException as exc:  # an interrupt or failure in our own bookkeeping
        run.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED", repr(exc))
        raise
    finally:
        pop_run(run)
    return result


def log_variables(run: Run, namespace: MutableMapping[str, Any], params: list[str], metrics: list[str]) -> str | None:
    """Log the named variables as params and metrics; if any is missing or a metric is not a number,
    log none of them and say why."""
    problems = []
    for name in (*params, *metrics):
        if name not in namespace:
            problems.append(f"no variable {name!r} after the cell")
    for name in metrics:
        v = namespace.get(name)
        if name in namespace and (isinstance(v, (str, bytes, bool)) or not hasattr(v, "__float__")
                                  or float(v) != float(v)):
            problems.append(f"-m {name} is {type(v).__name__} {str(v)[:40]!r}, not a number")
    if problems:
        return "; ".join(problems) + " (nothing logged from -p/-m; the rest of the run is saved)"
    try:
        run.log_params({n: namespace[n] for n in params})
        run.log_metrics({n: namespace[n] for n in metrics})
    except NbmlopsError as exc:
        return str(exc)
    return None
