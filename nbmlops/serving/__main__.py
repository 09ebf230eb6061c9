"""The serving process: ``python -m nbmlops.serving --store ROOT --model URI --deployment ID ...``.

Loads the registered model (hash verified), binds the socket (port 0 picks a free one),
records its port in the deployment document, then serves until told to stop, or until
its parent (the kernel that started it) goes away, unless detached.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time
from typing import Any

from ..store import current_store, pid_alive, set_store
from . import deployments, serverlog
from .app import LOOPBACK, create_app
from .batching import Batcher
from .metrics import ACCURACY_WINDOW, Metrics
from .monitor import CPU_SHARE, EVERY, RECORD_EVERY, WINDOW, Monitor
from .ondrift import RetrainPolicy
from .reqlog import RequestLog
from .router import Router


def _watch_parent(parent: int, server: object) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent or not pid_alive(parent, None):
            server.should_exit = True  # type: ignore[attr-defined]
            return


def _fixed_mmap_threshold(size: int = 128 << 10) -> None:
    """Blocks above ``size`` get their own mapping, returned to the system when freed. glibc's default
    raises the threshold as big blocks are freed, then serves them from the heap, where the long-lived
    feedback cache pins them: 500 requests of 10,000 rows grew the process by 318 MB instead of 36."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, size)  # M_MMAP_THRESHOLD; glibc only, elsewhere a no-op
    except (OSError, AttributeError):
        pass


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nbmlops.serving")
    p.add_argument("--store", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--deployment", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--parent", type=int, default=0, help="stop when this process exits (0: never)")
    p.add_argument("--no-batching", action="store_true")
    p.add_argument("--no-log", action="store_true")
    p.add_argument("--max-batch-size", type=int, default=64)
    p.add_argument("--max-latency-ms", type=float, default=2.0)
    p.add_argument("--max-queue", type=int, default=1024)
    p.add_argument("--ab", help='A/B weights by version, as JSON: {"2": 0.9, "3": 0.1}')
    p.add_argument("--shadow", type=int, help="a version that scores a copy of every request, logged only")
    p.add_argument("--feedback-mb", type=int, default=32, help="memory kept for /feedback, in MiB")
    p.add_argument("--accuracy-window", type=int, default=ACCURACY_WINDOW,
                   help="labels behind model_accuracy_windowed (the last N with feedback)")
    p.add_argument("--monitor", action="store_true", help="judge windows of the served traffic against the "
                   "version's monitoring reference, off the request path")
    p.add_argument("--monitor-window", default=str(WINDOW), help="rows (1000) or a duration (1h) per window")
    p.add_argument("--monitor-every", type=int, default=None, help="rows between two windows of a version (the "
                   f"window's rows; {EVERY} for a duration)")
    p.add_argument("--monitor-stattest", default=None, help="one drift test for every column it applies to (default: "
                   "drift_report's rule sized by the window)")
    p.add_argument("--monitor-cpu", type=float, default=CPU_SHARE,
                   help="share of the server's CPU (and of one core) the monitor may use")
    p.add_argument("--on-drift", help="retrain:PIPELINE or retrain+promote:PIPELINE, for drifted windows")
    p.add_argument("--monitor-record-every", type=float, default=RECORD_EVERY,
                   help="seconds between two windows of a version kept in drift_history (0: every window)")
    return p


def _listen(args: argparse.Namespace) -> socket.socket:
    """The server's socket, bound (OSError if the address is taken or not ours)."""
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(2048)
    return sock


def _server(app: object) -> object:
    import uvicorn

    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    config = uvicorn.Config(app, log_level="warning", access_log=False, loop=loop, http="auto", log_config=None,
                            lifespan="on", timeout_graceful_shutdown=3, backlog=2048)
    return uvicorn.Server(config)


def main(argv: list[str] | None = None) -> int:
    _fixed_mmap_threshold()
    args = _parser().parse_args(argv)

    set_store(args.store)
    store = current_store()
    serverlog.setup(store.server_log(args.deployment),
                    int(os.environ.get("NBMLOPS_SERVER_LOG_BYTES") or serverlog.MAX_BYTES))
    admin_token = os.environ.pop("NBMLOPS_SERVE_ADMIN_TOKEN", None)
    if not admin_token:  # started by hand: make one, and record it where Deployment finds it
        import secrets

        admin_token = secrets.token_urlsafe(24)
        deployments.update(args.deployment, admin_token=admin_token)
    log = None if args.no_log else RequestLog(store.request_log(args.deployment))
    metrics = Metrics(args.model.split("@")[0].split("/")[0], args.accuracy_window)

    def make_batcher(model: object) -> Batcher:
        batcher = Batcher(model.predict, args.max_batch_size, args.max_latency_ms,  # type: ignore[attr-defined]
                          args.max_queue, enabled=not args.no_batching)
        batcher.on_batch = metrics.batch_size.observe
        return batcher

    def on_event(event: dict) -> None:
        if log is not None:
            log.add({"t": int(time.time() * 1000), "event": event})
        if "switch" in event or "weights" in event:
            info = router.info()
            deployments.update(args.deployment, weights=info["versions"], version=int(max(info["versions"],
                               key=lambda v: info["versions"][v])), switches=info["switches"])
            if "switch" in event:
                metrics.set_weights({int(v): w for v, w in info["versions"].items()})
                if monitor is not None:  # the old version's window is memory no longer needed
                    monitor.retire(event["switch"]["from"])
        if "switch_failed" in event:
            deployments.update(args.deployment, load_error=event["error"])
            print(f"nbmlops serving: {event['error']}", file=sys.stderr, flush=True)

    try:
        ab = {int(v): float(w) for v, w in json.loads(args.ab).items()} if args.ab else None
        router = Router(args.model, ab=ab, shadow=args.shadow, make_batcher=make_batcher, on_event=on_event)
    except Exception as exc:
        print(f"nbmlops serving: cannot load {args.model}: {exc}", file=sys.stderr, flush=True)
        deployments.update(args.deployment, status="failed", error=str(exc))
        return 2
    try:
        sock = _listen(args)
    except OSError as exc:
        print(f"nbmlops serving: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr, flush=True)
        deployments.update(args.deployment, status="failed", error=f"port {args.port}: {exc.strerror}")
        return 3
    port = sock.getsockname()[1]
    try:
        name = (store.deployments().get("id", args.deployment) or {}).get("name", args.deployment)
        policy = RetrainPolicy(args.on_drift, args.model) if args.on_drift else None
        monitor = Monitor(metrics, args.monitor_window, args.monitor_every, name, cpu_share=args.monitor_cpu,
                          record_every=args.monitor_record_every, policy=policy, stattest=args.monitor_stattest) \
            if args.monitor else None
    except Exception as exc:
        print(f"nbmlops serving: bad monitor settings: {exc}", file=sys.stderr, flush=True)
        deployments.update(args.deployment, status="failed", error=str(exc))
        return 2
    app = create_app(router, metrics, token=os.environ.pop("NBMLOPS_SERVE_TOKEN", None) or None,
                     loopback=args.host in LOOPBACK, log=log, deployment=args.deployment, admin_token=admin_token,
                     feedback_bytes=args.feedback_mb << 20, monitor=monitor)
    server: Any = _server(app)
    if args.parent:
        threading.Thread(target=_watch_parent, args=(args.parent, server), daemon=True).start()
    info = router.info()
    main = router.pick(None).model
    deployments.update(args.deployment, status="running", port=port, version=main.version, sha256=main.sha256,
                       weights=info["versions"], shadow=info["shadow"], follows_alias=info["follows_alias"])
    versions = ", ".join(f"{router.name}/{v}" + (f" ({w:.0%})" if len(info["versions"]) > 1 else "")
                         for v, w in info["versions"].items())
    print(f"nbmlops serving {versions} on http://{args.host}:{port}", flush=True)
    import gc

    gc.collect()
    gc.freeze()  # the model and libraries are long-lived: keep them out of every collection
    try:
        server.run(sockets=[sock])
    finally:
        deployments.update(args.deployment, status="stopped", stopped=int(time.time() * 1000))
    return 0


if __name__ == "__main__":
    sys.exit(main())
