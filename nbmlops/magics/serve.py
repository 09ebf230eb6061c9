"""``%serve``: serve a registered model from a background process; list, stop, read logs."""

from __future__ import annotations

from pathlib import Path

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display

from .. import serving
from ..serving.metrics import ACCURACY_WINDOW
from ._args import parse, usage_errors
from ._progress import WidgetProgress

USAGE = ("usage: %serve NAME[@ALIAS|/VERSION] [--port P] [--token T] [--name D] [--detach] "
         "[--ab V=W,V=W] [--shadow V] [--restart] [--accuracy-window N] "
         "[--monitor [--window 1000|1h] [--every ROWS] [--stattest NAME] [--on-drift retrain:PIPELINE]] "
         "[--prometheus DIR] | "
         "%serve --list | %serve --stop D | %serve --logs D | "
         "%serve --batch MODEL INPUT OUTPUT [--parallelism N]")


def _parse_ab(text: str) -> dict[int, float]:
    weights = {}
    for part in text.split(","):
        version, sep, weight = part.partition("=")
        try:
            weights[int(version)] = float(weight)
        except ValueError:
            raise UsageError(f"--ab takes VERSION=WEIGHT pairs such as 2=0.9,3=0.1, got {part!r}") from None
        if not sep:
            raise UsageError(f"--ab takes VERSION=WEIGHT pairs such as 2=0.9,3=0.1, got {part!r}")
    return weights


@magics_class
class Serve(Magics):
    @magic_arguments()
    @argument("model", nargs="?", help="registered model: NAME, NAME@ALIAS or NAME/VERSION")
    @argument("-p", "--port", type=int, default=0, help="port (default: any free one)")
    @argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only)")
    @argument("--token", help="require Authorization: Bearer TOKEN for prediction too (admin routes and "
              "/feedback always need the deployment's admin token)")
    @argument("--restart", action="store_true", help="stop a running deployment of that name first "
              "(it is reused only when started with the same settings)")
    @argument("-n", "--name", help="deployment name (default: the model's name)")
    @argument("--detach", action="store_true", help="keep serving after this kernel exits")
    @argument("--no-batching", action="store_true", help="score each request alone")
    @argument("--no-log", action="store_true", help="do not log requests")
    @argument("--list", action="store_true", help="show running deployments (--all: stopped ones too)")
    @argument("--all", action="store_true", help="with --list: include stopped and dead deployments")
    @argument("--stop", metavar="DEPLOYMENT", help="stop a deployment")
    @argument("--logs", metavar="DEPLOYMENT", help="print a deployment's server output")
    @argument("--ab", metavar="V=W,V=W", help="split traffic between versions by weight, e.g. 2=0.9,3=0.1")
    @argument("--shadow", type=int, metavar="VERSION",
              help="score a copy of every request with this version (logged only)")
    @argument("--accuracy-window", type=int, default=ACCURACY_WINDOW, metavar="N",
              help=f"labels behind model_accuracy_windowed (default {ACCURACY_WINDOW})")
    @argument("--monitor", action="store_true", help="judge the served traffic in the server: drift, data "
              "quality and estimated performance of each window against the version's reference (GET /monitor, "
              "gauges, drift_history)")
    @argument("--window", metavar="ROWS|DURATION", help="with --monitor: rows per window (1000) or a duration (1h)")
    @argument("--every", metavar="ROWS", help="with --monitor: rows between two windows (the window's rows)")
    @argument("--stattest", metavar="NAME", help="with --monitor: one drift test for every column it applies to "
              "(ks, psi, wasserstein, jensenshannon, ...; default: drift_report's choice for the window's size)")
    @argument("--on-drift", metavar="retrain:PIPELINE", help="with --monitor: retrain with this pipeline on a "
              "drifted window's labelled rows (retrain+promote:PIPELINE also moves the alias by the promotion rule)")
    @argument("--prometheus", metavar="DIR", help="write a Prometheus scrape config and alerting rules for "
              "this deployment into DIR (then: prometheus --config.file=DIR/prometheus.yml)")
    @argument("--batch", nargs=3, metavar=("MODEL", "INPUT", "OUTPUT"), help="score a file (CSV, Parquet, JSON Lines)")
    @argument("--parallelism", type=int, default=None, help="with --batch: scoring processes (default: chosen from "
              "the input and the idle cores)")
    @line_magic
    def serve(self, line: str) -> object:
        """Serve a registered model over HTTP from a background process (stopped when this kernel
        exits, unless --detach); --list, --stop and --logs manage deployments."""
        args = parse(self.serve, line)
        actions = sum(bool(x) for x in (args.model, args.list, args.stop, args.logs, args.batch))
        if actions != 1:
            raise UsageError(USAGE)
        with usage_errors():
            if args.list:
                return serving.list_deployments(all=args.all)
            if args.stop:
                dep = serving.get_deployment(args.stop)
                dep.stop()
                print(f"stopped deployment {dep.name} (pid {dep.pid})")
                return None
            if args.logs:
                print(serving.get_deployment(args.logs).logs())
                return None
            if args.batch:
                self._batch(*args.batch, parallelism=args.parallelism)
                return None
            ab = _parse_ab(args.ab) if args.ab else None
            dep = serving.serve(args.model, port=args.port, host=args.host, token=args.token,
                                name=args.name, detach=args.detach, batching=not args.no_batching,
                                log_requests=not args.no_log, ab=ab, shadow=args.shadow, restart=args.restart,
                                accuracy_window=args.accuracy_window, monitor=args.monitor,
                                monitor_window=args.window, monitor_every=args.every,
                                monitor_stattest=args.stattest, on_drift=args.on_drift)
            if args.prometheus:
                config = dep.prometheus_config(args.prometheus)
                print(f"wrote a Prometheus config and alerting rules for {dep.name}: "
                      f"prometheus --config.file={config}")
        display(dep)
        return None

    @staticmethod
    def _batch(model: str, src: str, dst: str, parallelism: int | None) -> None:
        bar = WidgetProgress(f"scoring {Path(src).name}")
        try:
            result = serving.batch_predict(model, src, dst, parallelism=parallelism, progress=bar)
        finally:
            bar.close()
        print(repr(result))
