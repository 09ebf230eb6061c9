"""``%%track``: run a cell as a tracked run. Thin: parse the line, call the public API, display."""

from __future__ import annotations

import hashlib
import traceback
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display
from traitlets import Bool

import nbmlops

from ..errors import NbmlopsError
from ._args import parse, parse_tags, unquote


class _Summary:
    def __init__(self, run: Any) -> None:
        self.run = run

    def _repr_html_(self) -> str:
        from ..display.html import run_summary

        return run_summary(self.run)

    def __repr__(self) -> str:
        doc = self.run.info
        metrics = " ".join(f"{k}={m['value']:.4g}" for k, m in list(doc["metrics"].items())[:8])
        same = f" · same as run {doc['same_as'][:8]} (source, params and inputs unchanged)" if doc["same_as"] else ""
        from .._util import fmt_duration

        return (f"{doc['status']} run {doc['name']} ({doc['id'][:8]}) · {fmt_duration(doc['duration'])}"
                f"{' · ' + metrics if metrics else ''}{same}")


@magics_class
class Track(Magics):
    """``%%track``: run a cell as a tracked run; ``%track --browse [EXPERIMENT]``: browse runs."""

    autolog = Bool(True, help="Log scikit-learn fits, models, datasets and figures of %%track cells.").tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.cell_id: str | None = None
        self._notebook: str | None | bool = False

    def pre_run_cell(self, info: Any) -> None:
        self.cell_id = getattr(info, "cell_id", None)

    def notebook(self) -> str | None:
        if self._notebook is False:
            from ..tracking.environment import notebook_path

            self._notebook = notebook_path()
        return self._notebook  # type: ignore[return-value]

    @magic_arguments()
    @argument("-e", "--experiment", help="experiment to log to (default: the current one, 'Default')")
    @argument("-n", "--name", help="run name (default: a generated one)")
    @argument("-p", "--param", nargs="+", action="extend", default=[], metavar="NAME",
              help="notebook variables to log as params after the cell")
    @argument("-m", "--metric", nargs="+", action="extend", default=[], metavar="NAME",
              help="notebook variables to log as metrics after the cell (must be numbers)")
    @argument("-t", "--tag", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help="tags to set")
    @argument("--no-autolog", action="store_true", help="do not log scikit-learn fits and figures")
    @argument("--browse", nargs="?", const="", default=None, metavar="EXPERIMENT",
              help="(line magic) show the runs browser of EXPERIMENT (default: -e, else all experiments)")
    @line_cell_magic
    def track(self, line: str, cell: str | None = None) -> None:
        """Run the cell as a tracked run: the cell's source, autologged scikit-learn params, models,
        datasets and figures, and the variables named by -p/-m. Inside the cell `run` is the run.
        As a line magic, `%track --browse [EXPERIMENT]` shows the runs browser."""
        args = parse(self.track, line)
        if args.browse is not None:
            if cell is not None:
                raise UsageError("--browse is for the line magic: %track --browse [EXPERIMENT] (one %)")
            self._browse(unquote(args.browse) or unquote(args.experiment))
            return
        if cell is None:
            raise UsageError("%track runs a cell as a tracked run: write %%track (two %) on the cell's first line, "
                             "or %track --browse [EXPERIMENT] to browse runs")
        tags = parse_tags(args.tag)
        for name in (*args.param, *args.metric):
            if not name.isidentifier():
                raise UsageError(f"-p/-m take variable names, got {name!r}")
        from ..tracking.environment import papermill_params

        notebook = self.notebook()
        key = self.cell_id or (args.name and f"name:{args.name}") or "src:" + hashlib.sha256(cell.encode()).hexdigest()[:16]
        try:
            run = nbmlops.start_run(unquote(args.experiment), unquote(args.name), tags, autolog=self.autolog and not args.no_autolog,
                                    source=cell, cell_key=f"{notebook or 'session'}::{key}", notebook=notebook)
        except NbmlopsError as exc:
            raise UsageError(str(exc)) from None
        from ..tracking.runs import _pop

        error: BaseException | None = None
        problem = None
        try:
            injected = papermill_params(self.shell.user_ns.get("In"))
            if injected:
                run.log_params(injected)
            self.shell.user_ns["run"] = run
            result = self.shell.run_cell(cell)
            error = result.error_before_exec or result.error_in_exec
            if error is None:
                problem = self._log_variables(run, args.param, args.metric)
                run.end("FINISHED")
            elif isinstance(error, KeyboardInterrupt):
                run.end("KILLED", "KeyboardInterrupt")
            else:
                run.end("FAILED", "".join(traceback.format_exception(type(error), error, error.__traceback__)))
        except BaseException as exc:  # an interrupt or failure in our own bookkeeping
            run.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED", repr(exc))
            raise
        finally:
            _pop(run)
        display(_Summary(run))
        if problem:
            raise UsageError(problem)
        if error is not None:
            self._reraise(error)

    def _browse(self, experiment: str | None) -> None:
        try:
            browser = nbmlops.runs_browser(experiment or None)
        except NbmlopsError as exc:
            raise UsageError(str(exc)) from None
        display(browser)

    def _log_variables(self, run: Any, params: list[str], metrics: list[str]) -> str | None:
        """Log -p/-m variables; if any is missing or not a number, log none of them and say why."""
        ns, values, problems = self.shell.user_ns, {}, []
        for name in (*params, *metrics):
            if name not in ns:
                problems.append(f"no variable {name!r} after the cell")
        for name in metrics:
            v = ns.get(name)
            if name in ns and (isinstance(v, (str, bytes, bool)) or not hasattr(v, "__float__") or float(v) != float(v)):
                problems.append(f"-m {name} is {type(v).__name__} {str(v)[:40]!r}, not a number")
        if problems:
            return "; ".join(problems) + " (nothing logged from -p/-m; the rest of the run is saved)"
        try:
            run.log_params({n: ns[n] for n in params})
            values = {n: ns[n] for n in metrics}
            run.log_metrics(values)
        except NbmlopsError as exc:
            return str(exc)
        return None

    def _reraise(self, error: BaseException) -> None:
        """Fail the outer cell with the cell's own exception, already shown once by IPython."""
        shell = self.shell
        saved = (shell.custom_exceptions, shell.CustomTB)

        def shown_already(_shell: Any, etype: Any, value: Any, tb: Any, tb_offset: Any = None) -> list[str]:
            shell.custom_exceptions, shell.CustomTB = saved
            if value is not error:  # not ours (the magic was called some other way): show it as usual
                shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
            return []

        shell.set_custom_exc((type(error),), shown_already)
        raise error.with_traceback(None)
