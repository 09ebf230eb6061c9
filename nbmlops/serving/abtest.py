"""A/B summaries from a deployment's request log: traffic, latency, predictions and, once labels
arrive through /feedback, accuracy per version with a two-proportion z-test and a verdict."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from .deployments import Deployment, get_deployment
from .reqlog import deployment_requests

_Z_ALPHA, _Z_POWER = 1.959964, 0.841621  # 5% two-sided, 80% power


def two_proportion_test(right1: int, n1: int, right2: int, n2: int) -> tuple[float, float]:
    """(z, two-sided p-value) of H0: both versions are equally accurate (pooled z-test)."""
    if n1 == 0 or n2 == 0:
        return 0.0, 1.0
    p1, p2 = right1 / n1, right2 / n2
    pooled = (right1 + right2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (p1 - p2) / se
    return z, math.erfc(abs(z) / math.sqrt(2))


def needed_per_version(p1: float, p2: float) -> int | None:
    """Labelled requests per version to detect the observed difference (5% level, 80% power)."""
    if p1 == p2:
        return None
    n = (_Z_ALPHA + _Z_POWER) ** 2 * (p1 * (1 - p1) + p2 * (1 - p2)) / (p1 - p2) ** 2
    return math.ceil(n)


class ABSummary:
    """Per-version figures (``table``), the test (``p_value``) and a plain-words ``verdict``."""

    def __init__(self, name: str, stats: dict[int, dict[str, Any]], weights: dict[str, float]) -> None:
        import pandas as pd

        self.name = name
        self.stats = stats
        self.table = pd.DataFrame([{"version": v, "weight": weights.get(str(v)), **{k: s[k] for k in (
            "requests", "latency_p50_ms", "latency_p95_ms", "labelled", "accuracy")}, "predictions": s["predictions"]}
            for v, s in sorted(stats.items())])
        self.p_value: float | None = None
        self.winner: int | None = None
        labelled = [(v, s) for v, s in sorted(stats.items()) if s["labelled"]]
        if len(labelled) < 2:
            self.verdict = "not enough data yet: no labelled requests" if not labelled else \
                "not enough data yet: only one version has labelled requests"
            return
        (va, a), (vb, b) = sorted(labelled, key=lambda x: -x[1]["labelled"])[:2]
        _, self.p_value = two_proportion_test(a["right"], a["labelled"], b["right"], b["labelled"])
        better, worse = (va, vb) if a["accuracy"] >= b["accuracy"] else (vb, va)
        if self.p_value < 0.05:
            self.winner = better
            self.verdict = f"version {better} is better with p={self.p_value:.2g}"
        else:
            need = needed_per_version(a["accuracy"], b["accuracy"])
            if need is None:
                self.verdict = f"no difference so far between versions {va} and {vb} (p={self.p_value:.2g})"
            else:
                more = max(0, need - min(a["labelled"], b["labelled"]))
                self.verdict = (f"not enough data yet: need about {more} more labelled requests per version "
                                f"(p={self.p_value:.2g})")

    def __repr__(self) -> str:
        return f"A/B {self.name}: {self.verdict}\n{self.table.to_string(index=False)}"

    def _repr_html_(self) -> str:
        from ..display.serving import ab_card  # display: the one-line _repr_html_ delegation

        return ab_card(self)


def ab_summary(deployment: Any) -> ABSummary:
    """Summarize an A/B (or single-version) deployment from its request log and feedback."""
    dep = deployment if isinstance(deployment, Deployment) else get_deployment(str(deployment))
    stats: dict[int, dict[str, Any]] = {}

    def entry(v: int) -> dict[str, Any]:
        return stats.setdefault(v, {"requests": 0, "lat": [], "preds": Counter(), "labelled": 0, "right": 0})

    for r in deployment_requests(dep.doc["id"]):
        if r.get("shadow") or "v" not in r:
            continue
        if "out" in r:
            s = entry(r["v"])
            s["requests"] += 1
            s["lat"].append(r["lat"])
            s["preds"].update(str(p) for p in r["out"])
        elif "feedback" in r:
            s = entry(r["v"])
            s["labelled"] += len(r["correct"])
            s["right"] += sum(r["correct"])
    for s in stats.values():
        lat = sorted(s.pop("lat"))
        s["latency_p50_ms"] = lat[len(lat) // 2] if lat else None
        s["latency_p95_ms"] = lat[min(len(lat) - 1, int(len(lat) * 0.95))] if lat else None
        s["accuracy"] = s["right"] / s["labelled"] if s["labelled"] else None
        total = sum(s["preds"].values()) or 1
        s["predictions"] = {k: round(n / total, 3) for k, n in s.pop("preds").most_common(6)}
    weights = dep.doc.get("weights") or {}
    try:
        weights = dep.routing()["versions"]
    except Exception:
        pass
    return ABSummary(dep.name, stats, weights)
