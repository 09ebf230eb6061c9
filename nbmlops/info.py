"""What a store holds, for ``%nbmlops`` and ``nbmlops info``."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .store import SCHEMA, current_store
from .tracking.session import tracking_store


class StoreInfo(dict):
    """A dict of store facts that prints as a short text or an HTML card."""

    def __repr__(self) -> str:
        if not self["exists"]:
            return f"nbmlops store: {self['path']} (not created yet: the first run creates it)"
        runs = ", ".join(f"{n} {s.lower()}" for s, n in sorted(self["runs_by_status"].items())) or "none"
        return (f"nbmlops store: {self['path']} (schema {self['schema']})\n"
                f"  experiments: {self['experiments']}\n  runs: {self['runs']} ({runs})\n"
                f"  blobs: {self['blobs']} ({self['blob_bytes'] / 1e6:.1f} MB)")

    def _repr_html_(self) -> str:
        from .display.html import store_card  # display is a layer above: the HTML card, on demand

        return store_card(self)


def store_info() -> StoreInfo:
    """Where the store is and what it holds."""
    store = current_store(create=False)
    info: dict[str, Any] = {"path": str(store.root), "exists": store.exists(), "schema": SCHEMA}
    if store.exists():
        tracking_store()  # sweeps runs whose process died
        statuses: Counter[str] = Counter()
        exps = store.experiments.all()
        for e in exps:
            for f in store.run_files(e["id"]):
                statuses.update(d["status"] for d in f.all() if not d.get("deleted"))
        blobs, size = store.blobs.stats()
        info.update(experiments=len(exps), runs=sum(statuses.values()), runs_by_status=dict(statuses),
                    blobs=blobs, blob_bytes=size, active=len(store.active.all()))
    else:
        info.update(experiments=0, runs=0, runs_by_status={}, blobs=0, blob_bytes=0, active=0)
    return StoreInfo(info)


