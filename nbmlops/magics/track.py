"""``%%track``: run a cell as a tracked run. Thin: parse the line, call the public API, display."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display
from traitlets import Bool

import nbmlops

from .._util import fmt_duration
from ..display.html import run_summary
from ..tracking.cell import start_cell_run, track_cell
from ..tracking.environment import notebook_path
from ._args import parse, parse_tags, usage_errors


class _Summary:
    def __init__(self, run: Any) -> None:
        self.run = run

    def _repr_html_(self) -> str:
        return run_summary(self.run)

    def __repr__(self) -> str:
        doc = self.run.info
        metrics = " ".join(f"{k}={m['value']:.4g}" for k, m in list(doc["metrics"].items())[:8])
        same = f" · same as run {doc['same_as'][:8]} (source, params and inputs unchanged)" if doc["same_as"] else ""
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
            with usage_errors():
                browser = nbmlops.runs_browser(args.browse or args.experiment or None)
            display(browser)
            return
        if cell is None:
            raise UsageError("%track runs a cell as a tracked run: write %%track (two %) on the cell's first line, "
                             "or %track --browse [EXPERIMENT] to browse runs")
        tags = parse_tags(args.tag)
        for name in (*args.param, *args.metric):
            if not name.isidentifier():
                raise UsageError(f"-p/-m take variable names, got {name!r}")
        with usage_errors():
            run = start_cell_run(cell, experiment=args.experiment, name=args.name, tags=tags,
                                 autolog=self.autolog and not args.no_autolog, notebook=self.notebook(),
                                 cell_id=self.cell_id)

        def run_cell() -> BaseException | None:
            result = self.shell.run_cell(cell)
            return result.error_before_exec or result.error_in_exec

        outcome = track_cell(run, run_cell, self.shell.user_ns, args.param, args.metric)
        display(_Summary(run))
        if outcome.problem:
            raise UsageError(outcome.problem)
        if outcome.error is not None:
            self._reraise(outcome.error)

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
