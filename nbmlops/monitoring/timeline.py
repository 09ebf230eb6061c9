"""A model's monitoring timeline: every window a live monitor judged and every drift report logged
against its versions, oldest first, with the registry's alias moves to and from those versions.

What a person watches after a deployment: the share of drifted columns against the dataset-drift
threshold, the estimated performance (CBPE, DLE) beside the realized one (from labels), per model
version, and when the deployment's alias (``production``) switched. :func:`monitor_timeline`
returns the numbers; its HTML (inline SVG, no script) is ``nbmlops.display.timeline``.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidInput, NotFound
from ..registry import get_model_version
from ..registry.uri import check_alias, parse
from ..store import current_store
from ..store.records import DriftSummaryRecord, RegisteredModelRecord
from .log import _docs

LIMIT = 1000  # windows kept by default: the newest, so a chart of months stays readable
WINDOW_COLUMNS = ["time", "version", "kind", "deployment", "first", "last", "rows", "drift_share", "threshold",
                  "drifted", "n_drifted", "n_columns", "drifted_columns", "estimated_accuracy", "realized_accuracy",
                  "labels", "estimated_roc_auc", "estimated_f1", "estimated_mae", "realized_mae", "method", "id",
                  "page"]
SWITCH_COLUMNS = ["time", "alias", "from", "to", "user"]


class MonitorTimeline:
    """The windows and reports of one model (or one version of it), oldest first, and the alias moves.

    ``windows``/``switches`` are DataFrames; ``window_records``/``switch_records`` the same rows as
    dicts with times in ms (what the dashboard sends). ``metric`` is the performance drawn:
    ``"accuracy"`` (classifiers), ``"mae"`` (regressors) or None when no window has either.
    """

    def __init__(self, model: str, version: int | None, aliases: list[str], windows: list[dict[str, Any]],
                 switches: list[dict[str, Any]], deployments: list[dict[str, Any]], truncated: int = 0) -> None:
        self.model, self.version, self.aliases = model, version, aliases
        self.window_records, self.switch_records, self.deployments = windows, switches, deployments
        self.truncated = truncated  # older windows left out by ``limit``

    @property
    def since(self) -> int | None:
        """With older windows left out (``truncated``), the time of the oldest one kept: what a chart covers."""
        return self.window_records[0]["time"] if self.truncated and self.window_records else None

    @property
    def versions(self) -> list[int]:
        """The versions that have windows or alias moves (since ``since``), ascending."""
        if self.version is not None:
            return [self.version]
        since = self.since or 0
        found = {w["version"] for w in self.window_records if w["version"] is not None}
        found |= {v for s in self.switch_records if s["time"] >= since for v in (s["from"], s["to"]) if v is not None}
        return sorted(found)

    @property
    def metric(self) -> str | None:
        for name in ("accuracy", "mae"):
            if any(w[f"estimated_{name}"] is not None or w[f"realized_{name}"] is not None
                   for w in self.window_records):
                return name
        return None

    @property
    def threshold(self) -> float | None:
        """The dataset-drift threshold of the newest window (a share of drifted columns)."""
        return next((w["threshold"] for w in reversed(self.window_records) if w["threshold"] is not None), None)

    @property
    def windows(self) -> Any:
        import pandas as pd  # heavy: only when the table is asked for

        df = pd.DataFrame(self.window_records, columns=WINDOW_COLUMNS)
        for col in ("time", "first", "last"):
            df[col] = pd.to_datetime(df[col], unit="ms")
        df["version"] = df["version"].astype("Int64")
        return df

    @property
    def switches(self) -> Any:
        import pandas as pd  # heavy: only when the table is asked for

        df = pd.DataFrame(self.switch_records, columns=SWITCH_COLUMNS)
        df["time"] = pd.to_datetime(df["time"], unit="ms")
        for col in ("from", "to"):
            df[col] = df[col].astype("Int64")
        return df

    def __len__(self) -> int:
        return len(self.window_records)

    def __repr__(self) -> str:
        what = self.model if self.version is None else f"{self.model}/{self.version}"
        return (f"<MonitorTimeline {what}: {len(self.window_records)} windows, "
                f"{len(self.switch_records)} alias moves ({', '.join(self.aliases) or 'no alias'})>")

    def html(self) -> str:
        # display draws what the domain computed: imported here only (the listed exception in pyproject)
        from ..display.timeline import timeline_html

        return timeline_html(self)

    def _repr_html_(self) -> str:
        return self.html()


def monitor_timeline(model: str, version: int | None = None, alias: str | None = None,
                     limit: int = LIMIT) -> MonitorTimeline:
    """The monitoring timeline of ``model`` (``"churn"``, ``"churn/2"``, ``"churn@production"``), or of
    one ``version``: drift share, dataset-drift verdicts, estimated and realized performance of each
    window and logged report, oldest first (the newest ``limit``), with the moves of ``alias`` to and
    from those versions (None: the aliases the model's deployments follow, else every alias).

    >>> nbmlops.monitor_timeline("churn@production")   # that version's windows, production's moves
    """
    ref = parse(model)
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise InvalidInput(f"version must be a whole number from 1, got {version!r}")
    if version is not None and (ref.version or ref.alias):
        raise InvalidInput(f"{model!r} names a version already: pass version={version} with the bare name "
                           f"{ref.name!r}, or the URI alone")
    if alias is not None:
        check_alias(alias)
    alias = alias or ref.alias
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInput(f"limit must be a whole number from 1, got {limit!r}")
    store = current_store(create=False)
    doc = _model(store.models().all() if store.exists() else [], ref.name)
    if ref.version or ref.alias:
        version = get_model_version(str(ref)).version
    elif version is not None:
        version = get_model_version(f"{ref.name}/{version}").version  # NotFound for a missing or deleted one
    deployments = _deployments(store, ref.name, version)
    aliases = [alias] if alias else sorted({d["alias"] for d in deployments if d["alias"]}) or sorted(
        {str(h["alias"]) for h in doc["history"] if h["action"] == "alias"})
    docs = [d for d in (_docs(store) if store.exists() else []) if d.get("model_name") == ref.name
            and (version is None or d.get("model_version") == version)]
    docs.sort(key=lambda d: d["time"])
    kept = docs[-limit:]
    switches = [{"time": h["time"], "alias": h["alias"], "from": h.get("from"), "to": h.get("to"),
                 "user": h.get("user")} for h in doc["history"]
                if h["action"] == "alias" and h["alias"] in aliases
                and (version is None or version in (h.get("from"), h.get("to")))]
    return MonitorTimeline(ref.name, version, aliases, [_window(d) for d in kept], switches, deployments,
                           truncated=len(docs) - len(kept))


def _model(docs: list[RegisteredModelRecord], name: str) -> RegisteredModelRecord:
    for doc in docs:
        if doc["name"] == name:
            return doc
    names = ", ".join(sorted(d["name"] for d in docs)) or "none yet"
    raise NotFound(f"no registered model named {name!r} (models: {names})")


def _deployments(store: Any, name: str, version: int | None) -> list[dict[str, Any]]:
    """The model's deployments (every one ever started), with the alias each follows."""
    out = []
    for d in store.deployments().all() if store.exists() else []:
        try:
            ref = parse(d.get("model_uri") or "")
        except InvalidInput:  # a record written by an older nbmlops: not this model's
            continue
        if ref.name != name:
            continue
        out.append({"name": d["name"], "alias": ref.alias, "version": d.get("version"), "status": d.get("status"),
                    "started": d.get("started")})
    return [d for d in out if version is None or d["alias"] or d["version"] == version]


def _window(doc: DriftSummaryRecord) -> dict[str, Any]:
    """One row: a live window (``kind`` "window") or a logged report ("report"; its realized numbers
    are its current data's performance when it had labels)."""
    s, w = doc["summary"], doc.get("window")
    if w:
        estimated, realized = w.get("estimated") or {}, w.get("realized") or {}
        share, rows = w.get("drift_share"), w.get("rows")
    else:
        estimated, realized = {}, (s.get("performance") or {}).get("current") or {}
        share, rows = s.get("share_drifted"), (s.get("rows") or {}).get("current")
    return {"time": doc["time"], "version": doc.get("model_version"), "kind": "window" if w else "report",
            "deployment": w.get("deployment") if w else None, "first": (w.get("first") or None) if w else None,
            "last": (w.get("last") or None) if w else None, "rows": rows, "drift_share": share,
            "threshold": s.get("drift_share"), "drifted": s.get("dataset_drift"), "n_drifted": s.get("n_drifted"),
            "n_columns": s.get("n_columns"), "drifted_columns": list(s.get("drifted_columns") or []),
            "estimated_accuracy": estimated.get("accuracy"), "realized_accuracy": realized.get("accuracy"),
            "labels": realized.get("labels"), "estimated_roc_auc": estimated.get("roc_auc"),
            "estimated_f1": estimated.get("f1"), "estimated_mae": estimated.get("mae"),
            "realized_mae": realized.get("mae"), "method": _method(estimated), "id": doc["id"],
            "page": bool(doc.get("html"))}


def _method(estimated: dict[str, Any]) -> str | None:
    if "accuracy" in estimated or "roc_auc" in estimated:
        return "cbpe"
    return "dle" if "mae" in estimated else None
