"""Prometheus text exposition (what a model server's ``/metrics`` answers) read into samples, and
quantiles of a histogram from its cumulative buckets, as Prometheus' ``histogram_quantile`` does."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')

Sample = tuple[str, dict[str, str], float]
Keep = Callable[[dict[str, str]], bool]


def _all(labels: dict[str, str]) -> bool:
    return True


def _unescape(text: str) -> str:
    return text.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")


def parse(text: str) -> list[Sample]:
    """Every sample line as (name, labels, value); comments and lines that are not samples are skipped."""
    out: list[Sample] = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        labels = {k: _unescape(v) for k, v in _LABEL.findall(m.group(2) or "")}
        out.append((m.group(1), labels, value))
    return out


def total(samples: list[Sample], name: str, keep: Keep = _all) -> float | None:
    """The sum of the samples named ``name`` whose labels ``keep`` accepts; None if there are none."""
    values = [v for n, labels, v in samples if n == name and keep(labels)]
    return sum(values) if values else None


def by_label(samples: list[Sample], name: str, label: str) -> dict[str, float]:
    """Samples named ``name`` summed per value of ``label``."""
    out: dict[str, float] = {}
    for n, labels, v in samples:
        if n == name and label in labels:
            out[labels[label]] = out.get(labels[label], 0.0) + v
    return out


def buckets(samples: list[Sample], name: str, keep: Keep = _all) -> list[tuple[float, float]]:
    """A histogram's cumulative buckets ``(upper bound, count)``, summed over the other labels of the
    series ``keep`` accepts, by bound."""
    sums: dict[float, float] = {}
    for n, labels, v in samples:
        if n == f"{name}_bucket" and "le" in labels and keep(labels):
            bound = math.inf if labels["le"] in ("+Inf", "Inf") else float(labels["le"])
            sums[bound] = sums.get(bound, 0.0) + v
    return sorted(sums.items())


def quantile(q: float, cumulative: list[tuple[float, float]]) -> float | None:
    """The ``q`` quantile from cumulative buckets, linear within a bucket (None without observations);
    in the open last bucket, the highest finite bound."""
    if not cumulative or cumulative[-1][1] <= 0:
        return None
    rank = q * cumulative[-1][1]
    low_bound, low_count = 0.0, 0.0
    for bound, count in cumulative:
        if count >= rank:
            if math.isinf(bound):
                return low_bound
            if count == low_count:
                return bound
            return low_bound + (bound - low_bound) * (rank - low_count) / (count - low_count)
        low_bound, low_count = bound, count
    return low_bound


def to_json(cumulative: list[tuple[float, float]]) -> list[list[Any]]:
    """Buckets as JSON (``+Inf`` as the string "+Inf")."""
    return [["+Inf" if math.isinf(b) else b, c] for b, c in cumulative]
