"""The ``nbmlops`` command: a thin face over the public API."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

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
    import nbmlops

    parser = argparse.ArgumentParser(prog="nbmlops", description="The MLOps lifecycle in the notebook.")
    parser.add_argument("--store", help="store folder (default: .nbmlops found like git, or $NBMLOPS_STORE)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="where the store is and what it holds")
    runs = sub.add_parser("runs", help="search runs")
    runs.add_argument("-e", "--experiment")
    runs.add_argument("-f", "--filter", help="e.g. \"metrics.accuracy > 0.9 and params.model = 'rf'\"")
    runs.add_argument("-o", "--order-by", action="append")
    runs.add_argument("-n", "--max-results", type=int, default=20)
    auto = sub.add_parser("autoload", help="load the extension in every IPython kernel of this environment")
    auto.add_argument("state", choices=["on", "off"])
    auto.add_argument("--dir", type=Path, default=AUTOLOAD_DIR,
                      help="IPython config folder (default: this environment's, %(default)s)")
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
    except nbmlops.NbmlopsError as exc:
        print(f"nbmlops: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
