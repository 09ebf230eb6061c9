"""The ``nbmlops`` command: a thin face over the public API."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import nbmlops

from .cli_pipeline import add_parsers as _pipeline_parsers, main as pipeline_main
from .store import locate

AUTOLOAD_DIR = Path(sys.prefix) / "etc" / "ipython"
AUTOLOAD_FILES = ("ipython_kernel_config.json", "ipython_config.json")


def autoload(state: str, directory: Path = AUTOLOAD_DIR) -> str:
    """Add nbmlops to (or remove it from) ``InteractiveShellApp.extensions`` in the IPython config
    files of ``directory`` (this environment's by default), keeping every other setting."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in AUTOLOAD_FILES:
        path = directory / name
        config = json.loads(path.read_text()) if path.exists() and path.read_text().strip() else {}
        app = config.setdefault("InteractiveShellApp", {})
        extensions = [e for e in app.get("extensions", []) if e != "nbmlops"]
        app["extensions"] = extensions + (["nbmlops"] if state == "on" else [])
        path.write_text(json.dumps(config, indent=2) + "\n")
    if state == "on":
        return f"every new IPython kernel and shell started with {directory} loads nbmlops"
    return f"nbmlops is no longer loaded by itself ({directory})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nbmlops", description="The MLOps lifecycle in the notebook.")
    parser.add_argument("--store", help="store folder (default: .nbmlops found like git, or $NBMLOPS_STORE)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="where the store is and what it holds")
    runs = sub.add_parser("runs", help="search runs")
    runs.add_argument("-e", "--experiment")
    runs.add_argument("-f", "--filter", help="e.g. \"metrics.accuracy > 0.9 and params.model = 'rf'\"")
    runs.add_argument("-o", "--order-by", action="append")
    runs.add_argument("-n", "--max-results", type=int, default=20)
    sub.add_parser("dashboard", help="how to open the dashboard (a Jupyter Server extension) and where it runs")
    auto = sub.add_parser("autoload", help="load the extension in every IPython kernel of this environment")
    auto.add_argument("state", choices=["on", "off"])
    auto.add_argument("--dir", type=Path, default=AUTOLOAD_DIR,
                      help="IPython config folder (default: this environment's, %(default)s)")
    _export_parsers(sub)
    _pipeline_parsers(sub)
    args = parser.parse_args(argv)
    try:
        if args.store:
            nbmlops.set_store(args.store)
        if args.command == "info":
            print(repr(nbmlops.store_info()))
        elif args.command == "runs":
            df = nbmlops.search_runs(args.experiment, args.filter, args.order_by, args.max_results)
            print(df.drop(columns=["run_id"]).to_string(index=False) if len(df) else "no runs")
        elif args.command == "autoload":
            print(autoload(args.state, args.dir))
        elif args.command == "dashboard":
            print(dashboard_hint())
        elif args.command in ("export", "import"):
            print(repr(_export(nbmlops, args)))
        elif args.command == "pipeline":
            return pipeline_main(nbmlops, args)
    except nbmlops.NbmlopsError as exc:
        print(f"nbmlops: {exc}", file=sys.stderr)
        return 2
    return 0


def dashboard_hint() -> str:
    """Where the dashboard is served (running Jupyter servers of this machine) and how to start one."""
    lines = [f"store: {locate()}"]
    try:
        from jupyter_server.serverapp import list_running_servers

        servers = list(list_running_servers())
    except ImportError:
        servers = None
    if servers:
        lines.append("the dashboard of each running Jupyter server (log in with its token if asked):")
        lines += [f"  {s['url'].rstrip('/')}/nbmlops/   (root_dir {s.get('root_dir', '?')})" for s in servers]
    else:
        lines.append("no Jupyter server is running: start one with `jupyter lab` (pip install nbmlops[jupyter])")
    lines.append("the dashboard is <server url>/nbmlops/; it shows the store given by --NbmlopsDashboard.store=PATH, "
                 "else $NBMLOPS_STORE, else the nearest .nbmlops/ at or above the server's root_dir")
    return "\n".join(lines)


def _export_parsers(sub: argparse._SubParsersAction) -> None:
    exp = sub.add_parser("export", help="hand the store over to MLflow, Feast or KServe").add_subparsers(
        dest="target", required=True)
    ml = exp.add_parser("mlflow", help="experiments, runs, models and registry to an MLflow tracking server")
    ml.add_argument("--tracking-uri", required=True, help="e.g. http://127.0.0.1:5000")
    ml.add_argument("--experiment", help="only this experiment's runs")
    ml.add_argument("--no-registry", action="store_true", help="leave registered models out")
    fe = exp.add_parser("feast", help="feature views as a Feast feature repository")
    fe.add_argument("dir")
    fe.add_argument("--view", action="append", help="only this view (repeat for more)")
    fe.add_argument("--project", default="nbmlops")
    fe.add_argument("--force", action="store_true", help="write over a non-empty folder")
    ks = exp.add_parser("kserve", help="a registered model as a KServe InferenceService (and batch Job)")
    ks.add_argument("model", help="NAME, NAME@ALIAS or NAME/VERSION")
    ks.add_argument("dir")
    ks.add_argument("--namespace", default="default")
    ks.add_argument("--storage-uri", help="where DIR/model will be uploaded (s3://, gs://, pvc://…)")
    ks.add_argument("--name", help="InferenceService name (default: from the model name)")
    ks.add_argument("--cpu", default="1", help="CPU request (default %(default)s)")
    ks.add_argument("--memory", default="2Gi", help="memory request (default %(default)s)")
    ks.add_argument("--cpu-limit", help="CPU limit (default: the request)")
    ks.add_argument("--memory-limit", help="memory limit (default: the request)")
    ks.add_argument("--image", help="sklearn runtime image (one whose scikit-learn matches the model's)")
    ks.add_argument("--transformer-image", help="add a transformer container with this image")
    ks.add_argument("--predict-proba", action="store_true", help="serve predict_proba instead of predict")
    ks.add_argument("--batch", nargs=2, metavar=("INPUT", "OUTPUT"), help="add a batch Job: INPUT URI, OUTPUT pvc://…")
    ks.add_argument("--parallelism", type=int, default=1)
    ks.add_argument("--retries", type=int, default=3)
    ks.add_argument("--force", action="store_true", help="write over a non-empty folder")
    imp = sub.add_parser("import", help="bring runs back from MLflow").add_subparsers(dest="target", required=True)
    mi = imp.add_parser("mlflow", help="runs of an MLflow tracking server into the store")
    mi.add_argument("--tracking-uri", required=True)
    mi.add_argument("--experiment", help="only this MLflow experiment")


def _export(nbmlops: Any, args: argparse.Namespace) -> Any:
    if args.command == "import":
        return nbmlops.import_mlflow(args.tracking_uri, args.experiment)
    if args.target == "mlflow":
        return nbmlops.export_mlflow(args.tracking_uri, args.experiment, registry=not args.no_registry)
    if args.target == "feast":
        return nbmlops.export_feast(args.dir, args.view, project=args.project, force=args.force)
    return nbmlops.export_kserve(
        args.model, args.dir, namespace=args.namespace, storage_uri=args.storage_uri, name=args.name, cpu=args.cpu,
        memory=args.memory, cpu_limit=args.cpu_limit, memory_limit=args.memory_limit, image=args.image,
        transformer_image=args.transformer_image, predict_proba=args.predict_proba,
        batch=tuple(args.batch) if args.batch else None, parallelism=args.parallelism, retries=args.retries,
        force=args.force)


if __name__ == "__main__":
    sys.exit(main())
