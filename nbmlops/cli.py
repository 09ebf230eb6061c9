"""The ``nbmlops`` command: a thin face over the public API."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

AUTOLOAD_DIR = Path(sys.prefix) / "etc" / "ipython" / "ipython_kernel_config.d"
AUTOLOAD_FILE = AUTOLOAD_DIR / "nbmlops-autoload.json"


def _autoload(state: str) -> str:
    if state == "on":
        src = Path(__file__).resolve().parent.parent / "jupyter-config" / "nbmlops-autoload.json"
        AUTOLOAD_DIR.mkdir(parents=True, exist_ok=True)
        if src.exists():
            shutil.copyfile(src, AUTOLOAD_FILE)
        else:  # installed from a wheel: the same content
            AUTOLOAD_FILE.write_text(json.dumps({"InteractiveShellApp": {"extensions": ["nbmlops"]}}, indent=2))
        return f"every new IPython kernel of {sys.prefix} loads nbmlops ({AUTOLOAD_FILE})"
    AUTOLOAD_FILE.unlink(missing_ok=True)
    return "kernels no longer load nbmlops by themselves"


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
            print(_autoload(args.state))
    except nbmlops.NbmlopsError as exc:
        print(f"nbmlops: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
