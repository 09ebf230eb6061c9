"""What ``serve`` checks before it starts anything, and what a running deployment must match to be reused."""

from __future__ import annotations

import hashlib
from typing import Any

from ..errors import InvalidInput
from ..registry import get_model_version
from ..registry.uri import parse
from ..store.records import DeploymentRecord, DeploymentSettings
from .monitor import CPU_SHARE, WINDOW, check_every, check_stattest, default_every, parse_window
from .ondrift import parse_on_drift


def check_server(port: Any, host: Any, token: Any, feedback_mb: Any, accuracy_window: Any) -> None:
    """The server's own arguments, checked (InvalidInput naming the first wrong one)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidInput(f"port must be a number from 0 (any free port) to 65535, got {port!r}")
    if not isinstance(host, str) or not host:
        raise InvalidInput(f"host must be an address such as 127.0.0.1, got {host!r}")
    if token is not None and (not isinstance(token, str) or len(token) < 8 or not token.isprintable()):
        raise InvalidInput("token must be a printable string of at least 8 characters")
    if isinstance(feedback_mb, bool) or not isinstance(feedback_mb, int) or not 1 <= feedback_mb <= 65536:
        raise InvalidInput(f"feedback_mb must be a number of MiB from 1 to 65536, got {feedback_mb!r}")
    if isinstance(accuracy_window, bool) or not isinstance(accuracy_window, int) or \
            not 1 <= accuracy_window <= 10_000_000:
        raise InvalidInput(f"accuracy_window must be a number of labels from 1 to 10,000,000, got {accuracy_window!r}")


def ab_weights(model_name: str, ab: dict[Any, float]) -> dict[int, float]:
    """``{"churn/2": 0.9, "churn/3": 0.1}`` or ``{2: 0.9, 3: 0.1}`` -> ``{2: 0.9, 3: 0.1}``, checked."""
    if not isinstance(ab, dict) or len(ab) < 2:
        raise InvalidInput("ab takes at least two versions with weights, e.g. {'churn/2': 0.9, 'churn/3': 0.1}")
    weights: dict[int, float] = {}
    for key, weight in ab.items():
        uri = f"{model_name}/{key}" if isinstance(key, int) or str(key).isdigit() else str(key)
        ref = parse(uri)
        if ref.name != model_name:
            raise InvalidInput(f"A/B versions must all be versions of {model_name!r}, got {uri!r}")
        version = get_model_version(uri).version
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < float("inf"):
            raise InvalidInput(f"the weight of {uri} must be a non-negative number, got {weight!r}")
        weights[version] = float(weight)
    if sum(weights.values()) <= 0:
        raise InvalidInput("at least one A/B weight must be positive")
    return weights


def reuse_settings(model_uri: str, token: str | None, weights: dict[int, float] | None, shadow: int | None, host: str,
              port: int, batching: bool, max_batch_size: int, max_latency_ms: float, max_queue: int,
              log_requests: bool, accuracy_window: int, monitor: dict[str, Any] | None) -> DeploymentSettings:
    """What a running deployment must have been started with to be reused (the token as a hash)."""
    return {"model_uri": model_uri, "token_sha256": hashlib.sha256(token.encode()).hexdigest() if token else None,
            "ab": {str(v): w for v, w in weights.items()} if weights else None, "shadow": shadow, "host": host,
            "port": port, "batching": batching, "max_batch_size": max_batch_size,
            "max_latency_ms": float(max_latency_ms), "max_queue": max_queue, "log_requests": log_requests,
            "accuracy_window": accuracy_window, "monitor": monitor}


_WORDS = {"token_sha256": "token", "ab": "A/B weights", "max_batch_size": "max_batch_size",
          "max_latency_ms": "max_latency_ms", "max_queue": "max_queue", "log_requests": "request logging",
          "accuracy_window": "accuracy_window", "monitor": "live monitor"}


def differences(doc: DeploymentRecord, asked: DeploymentSettings) -> list[str]:
    """The settings in which a running deployment differs from those asked (port 0 matches any port)."""
    had = doc.get("settings")
    if had is None:
        return ["settings (started by an older nbmlops)"]
    out = []
    for key, value in asked.items():
        if key == "port" and value in (0, doc.get("port")):
            continue
        if had.get(key) != value:
            out.append(_WORDS.get(key, key))
    return out


def monitor_settings(monitor: bool, window: Any, every: Any, cpu: Any, stattest: Any, record_every: Any = None,
                     on_drift: Any = None) -> dict[str, Any] | None:
    """The live monitor's settings, checked (None: no monitor)."""
    if not isinstance(monitor, bool):
        raise InvalidInput(f"monitor is True or False, got {monitor!r}")
    if not monitor:
        if on_drift is not None:
            raise InvalidInput("on_drift acts on the live monitor's windows: it needs monitor=True (%serve --monitor)")
        if any(x is not None for x in (window, every, cpu, stattest, record_every)):
            raise InvalidInput("monitor_window, monitor_every, monitor_cpu, monitor_stattest and monitor_record_every "
                               "need monitor=True (%serve --monitor)")
        return None
    cpu = CPU_SHARE if cpu is None else cpu
    if isinstance(cpu, bool) or not isinstance(cpu, (int, float)) or not 0 < cpu <= 1:
        raise InvalidInput(f"monitor_cpu is the share of the server's CPU the monitor may use (of one core at most), "
                           f"in (0, 1], got {cpu!r}")
    window = parse_window(WINDOW if window is None else window)
    every = check_every(default_every(window) if every is None else every)
    if isinstance(window, int) and every > window:
        raise InvalidInput(f"monitor_every ({every:,} rows) is larger than monitor_window ({window:,} rows): "
                           "rows would pass unjudged; make every at most the window")
    stattest = check_stattest(stattest)
    out = {"window": window, "every": every, "cpu": float(cpu), **({"stattest": stattest} if stattest else {})}
    if record_every is not None:
        if isinstance(record_every, bool) or not isinstance(record_every, (int, float)) \
                or not 0 <= record_every <= 86400 * 365:
            raise InvalidInput(f"monitor_record_every is seconds between two windows kept in drift_history "
                               f"(0: every window), got {record_every!r}")
        out["record_every"] = float(record_every)
    policy = parse_on_drift(on_drift)
    if policy is not None:
        out["on_drift"] = policy
    return out
