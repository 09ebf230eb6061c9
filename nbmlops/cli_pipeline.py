"""``nbmlops pipeline run|runs|show|export``: the same pipelines from a shell or cron (thin over the API)."""

from __future__ import annotations

import argparse
import ast
import sys
from typing import Any

from .errors import InvalidInput


def add_parsers(sub: argparse._SubParsersAction) -> None:
    pipe = sub.add_parser("pipeline", help="run pipelines of notebooks (cached steps), list runs, export to Kubeflow")
    acts = pipe.add_subparsers(dest="action", required=True)
    run = acts.add_parser("run", help="run a pipeline (a NAME.yaml here, or one the store has run before)")
    run.add_argument("name", help="pipeline name, or a .yaml file")
    run.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("--no-cache", action="store_true", help="run every step")
    run.add_argument("--workers", type=int)
    runs = acts.add_parser("runs", help="runs of a pipeline, newest first")
    runs.add_argument("name", nargs="?")
    show = acts.add_parser("show", help="the steps of a pipeline and their inputs and outputs")
    show.add_argument("name")
    exp = acts.add_parser("export", help="export a pipeline").add_subparsers(dest="target", required=True)
    kfp = exp.add_parser("kfp", help="compile to a Kubeflow Pipelines package (kfp 2.x IR YAML)")
    kfp.add_argument("name")
    kfp.add_argument("out", help="the .yaml package to write")
    kfp.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="parameter defaults")
    kfp.add_argument("--base-image", default=None)
    kfp.add_argument("--package", action="append", default=None, help="pip package for each component (repeat)")
    kfp.add_argument("--no-kfp-install", action="store_true", help="do not pip-install kfp in the components")
    kfp.add_argument("--cpu")
    kfp.add_argument("--memory")


def _params(items: list[str]) -> dict[str, Any]:

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise InvalidInput(f"-p takes KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            out[key.strip()] = value.strip()
    return out


def main(nbmlops: Any, args: argparse.Namespace) -> int:
    if args.action == "run":
        from .pipelines import StepFailed  # lazy: the pipelines package loads only for `nbmlops pipeline`

        pipe = nbmlops.get_pipeline(args.name)
        try:
            run = pipe.run(_params(args.param), cache=not args.no_cache, workers=args.workers)
        except StepFailed as exc:
            print(repr(exc.run), file=sys.stderr)
            return 1
        print(repr(run))
    elif args.action == "runs":
        df = nbmlops.pipeline_runs(args.name)
        print(df.drop(columns=["run_id", "error"]).to_string(index=False) if len(df) else "no pipeline runs")
    elif args.action == "show":
        print(repr(nbmlops.get_pipeline(args.name).show()))
    else:
        kwargs: dict[str, Any] = {"install_kfp_package": not args.no_kfp_install}
        if args.base_image:
            kwargs["base_image"] = args.base_image
        if args.package is not None:
            kwargs["packages"] = args.package
        resources = {k: v for k, v in (("cpu", args.cpu), ("memory", args.memory)) if v}
        if resources:
            kwargs["resources"] = resources
        path = nbmlops.export_kfp(args.name, args.out, _params(args.param), **kwargs)
        print(f"Kubeflow pipeline package: {path} (components: {path.with_suffix('.py')})")
    return 0
