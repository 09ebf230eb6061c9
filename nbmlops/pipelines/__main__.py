"""``python -m nbmlops.pipelines retrain --store ROOT --window ID --pipeline NAME --model URI [--promote]``.

The job a deployment's live monitor starts when a recorded window drifted
(``serve(..., monitor=True, on_drift="retrain:NAME")``): :func:`~nbmlops.pipelines.retrain.retrain_on_drift`
on the window's labelled rows. It runs in its own process so that a pipeline run never competes with
the server's requests or the monitor's windows. Exit status: 0 a decision was recorded
(``retrain_decisions()``), :data:`TOO_FEW` the window has too few labels yet (the monitor tries again
with a later window), 1 anything else (the reason on stderr, which is the server's log).
"""

from __future__ import annotations

import argparse
import sys

from ..errors import NbmlopsError
from ..monitoring.live import TARGET, window_data
from ..store import set_store
from .retrain import WINDOW, retrain_on_drift

TOO_FEW = 3
MIN_LABELS = 40  # labelled rows a window needs: a quarter is held out to compare the models on


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nbmlops.pipelines")
    p.add_argument("command", choices=["retrain"])
    p.add_argument("--store", required=True)
    p.add_argument("--window", required=True, help="the drifted window's id in drift_history")
    p.add_argument("--pipeline", required=True)
    p.add_argument("--model", required=True, help="the served model, e.g. churn@production")
    p.add_argument("--promote", action="store_true", help="move the alias when the promotion rule says so")
    args = p.parse_args(argv)
    set_store(args.store)
    try:
        rows = window_data(args.window)
        labelled = int(rows[TARGET].notna().sum()) if TARGET in rows.columns else 0
        if labelled < MIN_LABELS:
            print(f"nbmlops retrain: window {args.window} drifted, but {labelled} of its {len(rows):,} rows have a "
                  f"label (at least {MIN_LABELS} are needed): waiting for /feedback", file=sys.stderr)
            return TOO_FEW
        decision = retrain_on_drift(args.model, current=WINDOW + args.window, pipeline=args.pipeline,
                                    auto_promote=args.promote)
    except NbmlopsError as exc:
        print(f"nbmlops retrain: window {args.window}: {exc}", file=sys.stderr)
        return 1
    print(f"nbmlops retrain: {decision!r}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
