"""The traffic a deployment served, read from the store: its request log as a table.

Used by ``serving:NAME`` sources of drift reports and by ``Deployment.requests()``; it reads
the deployment documents and request logs through the store (monitoring comes before serving).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..errors import NotFound
from ..store import Store
from ..store.records import DeploymentRecord, RequestRecord

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ["time", "request_id", "version", "latency_ms"]  # then the features, then "prediction"


def deployment_named(store: Store, name: str) -> DeploymentRecord:
    """The newest deployment document of that name."""
    docs = [d for d in store.deployments().all() if d["name"] == name]
    if not docs:
        raise NotFound(f"no deployment named {name!r}")
    return max(docs, key=lambda d: d["started"])


def requests_frame(deployment: DeploymentRecord, records: Iterable[RequestRecord], shadow: bool = False
                   ) -> pd.DataFrame:
    """One row per scored input row (time, request id, version, latency, features, prediction), in
    the order of ``records``; ``shadow=True`` gives the shadow version's answers."""
    import pandas as pd

    features = None
    rows = []
    for r in records:
        if "rows" not in r or "out" not in r or bool(r.get("shadow")) != shadow:
            continue
        for values, pred in zip(r["rows"], r["out"]):
            rows.append([r["t"], r["id"], r["v"], r["lat"], *values, pred])
            features = features or len(values)
    names = deployment.get("features") or [f"x{i}" for i in range(features or 0)]
    df = pd.DataFrame(rows, columns=[*COLUMNS, *names, "prediction"])
    df["time"] = pd.to_datetime(df["time"], unit="ms")
    return df


def served_rows(store: Store, name: str) -> pd.DataFrame:
    """The rows the newest deployment named ``name`` scored, with their ``prediction``
    (bookkeeping columns dropped)."""
    doc = deployment_named(store, name)
    return requests_frame(doc, store.request_log(doc["id"]).read()).drop(columns=COLUMNS)  # type: ignore[arg-type]
