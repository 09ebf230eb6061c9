"""``%pipeline``: run a pipeline of notebooks (cached steps), draw it, list its runs, retrain on drift,
export it to Kubeflow. Thin: parse the line, call the public API, display. Mistakes are one red line."""

from __future__ import annotations

import ast
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display

import nbmlops

from ..pipelines import StepFailed
from ._args import parse, unquote, usage_errors, variable_or_path

USAGE = ("usage: %pipeline run NAME [-p KEY=VALUE ...] [--no-cache] | %pipeline show NAME [--run RUN_ID] | "
         "%pipeline runs [NAME] | %pipeline retrain MODEL@ALIAS --current VAR --pipeline NAME [--target COL] "
         "[--auto-promote] | %pipeline export kfp NAME OUT.yaml")


def parse_params(items: list[str]) -> dict[str, Any]:
    """``-p n_estimators=200 -p solver=lbfgs``: values read as Python literals, else as text."""
    params: dict[str, Any] = {}
    for item in items:  # already unquoted by parse()
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise UsageError(f"-p takes KEY=VALUE, got {item!r}")
        try:
            params[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            params[key.strip()] = unquote(value.strip())
    return params


@magics_class
class PipelineMagics(Magics):
    """``%pipeline``: pipelines of notebooks as cached steps."""

    def _pipeline(self, name: str) -> Any:
        kind, value = variable_or_path(self.shell, name)
        if kind == "variable" and isinstance(value, nbmlops.Pipeline):
            return value
        return nbmlops.get_pipeline(name)

    def _variable(self, name: str | None) -> Any:
        """A notebook variable's value, else ``name`` itself: a dataset reference ('customers@4') or a
        file path, checked by the API."""
        if name is None:
            return None
        kind, value = variable_or_path(self.shell, name)
        return value if kind == "variable" else name

    @magic_arguments()
    @argument("action", choices=["run", "show", "runs", "retrain", "export"], help="what to do")
    @argument("args", nargs="*", help="run/show NAME; runs [NAME]; retrain MODEL@ALIAS; export kfp NAME OUT.yaml")
    @argument("-p", "--param", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
              help="pipeline parameters for this run")
    @argument("--no-cache", action="store_true", help="run every step, even those whose code, parameters and inputs "
                                                     "are unchanged")
    @argument("--workers", type=int, help="steps run at once (default: up to 4)")
    @argument("--run", dest="run_id", metavar="RUN_ID", help="show: draw this run's step states")
    @argument("-o", "--out", metavar="VAR", help="keep the result (run, decision) in this variable")
    @argument("--current", metavar="VAR", help="retrain: the new data (a variable, dataset reference or file)")
    @argument("--pipeline", dest="pipeline_name", metavar="NAME", help="retrain: the training pipeline")
    @argument("--target", help="retrain: the label column")
    @argument("--threshold", type=float, default=0.5, help="retrain: share of input columns that must drift")
    @argument("--held-out", metavar="VAR", help="retrain: rows to compare the models on")
    @argument("--dataset", help="retrain: the pipeline input the new data becomes a version of")
    @argument("--metric", default="auto", help="retrain: roc_auc, accuracy, f1, r2, rmse, mae, log_loss")
    @argument("--margin", type=float, default=0.0, help="retrain: how much better the candidate must score")
    @argument("--auto-promote", action="store_true", help="retrain: move the alias when the candidate is better")
    @argument("--base-image", help="export: container image of the Kubeflow components")
    @line_magic
    def pipeline(self, line: str) -> None:
        """Run a pipeline (dependency order, parallel, cached), draw its DAG, list its runs, retrain a
        model on drift, or export the pipeline to Kubeflow Pipelines."""
        args = parse(self.pipeline, line)
        names = args.args
        params = parse_params(args.param)
        if args.action != "run" and (params or args.no_cache):
            raise UsageError("-p and --no-cache go with %pipeline run")
        with usage_errors():
            getattr(self, f"_{args.action}")(args, names, params)

    # -- actions ----------------------------------------------------------------------
    def _run(self, args: Any, names: list[str], params: dict[str, Any]) -> None:
        if len(names) != 1:
            raise UsageError("usage: %pipeline run NAME [-p KEY=VALUE ...] [--no-cache] [--workers N]")
        pipe = self._pipeline(names[0])
        try:
            result = pipe.run(params, cache=not args.no_cache, workers=args.workers)
        except StepFailed as exc:
            if args.out:
                self.shell.user_ns[args.out] = exc.run
            raise
        if args.out:
            self.shell.user_ns[args.out] = result

    def _show(self, args: Any, names: list[str], params: dict[str, Any]) -> None:
        if len(names) != 1:
            raise UsageError("usage: %pipeline show NAME [--run RUN_ID]")
        pipe = self._pipeline(names[0])
        run = nbmlops.pipelines.get_pipeline_run(args.run_id) if args.run_id else pipe.last_run()
        display(pipe.show(run))

    def _runs(self, args: Any, names: list[str], params: dict[str, Any]) -> None:
        if len(names) > 1:
            raise UsageError("usage: %pipeline runs [NAME]")
        display(nbmlops.pipeline_runs(names[0] if names else None))

    def _retrain(self, args: Any, names: list[str], params: dict[str, Any]) -> None:
        if len(names) != 1 or not args.current or not args.pipeline_name:
            raise UsageError("usage: %pipeline retrain MODEL@ALIAS --current VAR --pipeline NAME [--target COL] "
                             "[--threshold X] [--held-out VAR] [--margin M] [--auto-promote]")
        pipe = self._pipeline(args.pipeline_name)
        decision = nbmlops.retrain_on_drift(
            names[0], current=self._variable(args.current), pipeline=pipe,
            threshold=args.threshold, target=args.target, dataset=args.dataset,
            held_out=self._variable(args.held_out), metric=args.metric, margin=args.margin,
            auto_promote=args.auto_promote)
        if args.out:
            self.shell.user_ns[args.out] = decision
        display(decision)

    def _export(self, args: Any, names: list[str], params: dict[str, Any]) -> None:
        if len(names) != 3 or names[0] != "kfp":
            raise UsageError("usage: %pipeline export kfp NAME OUT.yaml [--base-image IMAGE]")
        kwargs = {"base_image": args.base_image} if args.base_image else {}
        path = nbmlops.export_kfp(self._pipeline(names[1]), names[2], **kwargs)
        print(f"Kubeflow pipeline package: {path}")
