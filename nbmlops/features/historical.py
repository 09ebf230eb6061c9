"""Training sets: point-in-time joins of entity rows with feature views (Feast's semantics).

For each entity row and each view, the value is that of the latest row of the view's source
with the same key(s) whose event timestamp is at or before the entity row's timestamp and no
older than the view's ttl (``t - ttl <= event time <= t``, both ends included). Rows with the
same event time are ordered by their created timestamp, then by their order in the source:
the last one wins. No such row gives a null. Unlike Feast's file offline store, which drops
entity rows that match nothing, every entity row is kept, in its order, with its index and
its other columns. See ``timeutil`` for how timezones are handled.
"""

from __future__ import annotations

from typing import Any

from .._util import check_key
from ..errors import InvalidInput
from ..tracking.session import active_run, require_active
from .definitions import OnDemandFeatureView
from .frames import finish, gather, key_values, normalize, prepared
from .plan import Plan, resolve
from .timeutil import to_utc_ns


def get_historical_features(entity_df: Any, features: Any, *, full_feature_names: bool = False,
                            timestamp_field: str | None = None, filter_by_created_timestamp: bool = False,
                            log: bool | None = None, name: str | None = None) -> Any:
    """``entity_df`` with one column per requested feature, as of each row's timestamp.

    >>> train = nbmlops.get_historical_features(orders[["user_id", "event_timestamp", "label"]],
    ...                                         ["user_stats:total_orders", "user_stats:avg_amount"])

    ``features``: ``"view:feature"`` references (``"view"`` for all its features), a
    ``FeatureService`` or a service's name. ``timestamp_field``: the entity_df column with the
    times (default ``event_timestamp``, else its only datetime column).
    ``filter_by_created_timestamp``: also ignore rows created after the entity row's time
    (rows that arrived late were not known then). ``log``: record the result's fingerprint on
    the active run as dataset ``name`` (default: when a run is active; name ``features/<service
    or views>``).
    """
    import pandas as pd

    if not isinstance(entity_df, pd.DataFrame):
        raise InvalidInput("entity_df must be a pandas DataFrame of keys and timestamps, "
                           f"got {type(entity_df).__name__}")
    plan = resolve(features, full_feature_names)
    ts_col = entity_timestamp_column(entity_df, timestamp_field)
    clash = [c for _, _, c, _ in plan.outputs if c in entity_df.columns]
    if clash:
        raise InvalidInput(f"entity_df already has column{'s' if len(clash) > 1 else ''} "
                           f"{', '.join(map(repr, clash))}; drop or rename it, or pass full_feature_names=True")
    _check_entity_columns(entity_df, plan)
    t = to_utc_ns(entity_df[ts_col], f"entity_df column {ts_col!r}")
    values = compute(plan, entity_df, t, filter_by_created_timestamp)
    out = pd.DataFrame({c: values[(v, f)] for v, f, c, _ in plan.outputs})
    result = pd.concat([entity_df.reset_index(drop=True), out], axis=1)  # by position: the index may repeat
    result.index = entity_df.index
    record(result, plan, log, name)
    return result


def entity_timestamp_column(entity_df: Any, timestamp_field: str | None) -> str:
    import pandas as pd

    if timestamp_field is not None:
        if timestamp_field not in entity_df.columns:
            raise InvalidInput(f"entity_df has no column {timestamp_field!r} "
                               f"(columns: {', '.join(map(str, entity_df.columns))})")
        return timestamp_field
    if "event_timestamp" in entity_df.columns:
        return "event_timestamp"
    times = [c for c in entity_df.columns if pd.api.types.is_datetime64_any_dtype(entity_df[c].dtype)]
    if len(times) == 1:
        return times[0]
    raise InvalidInput("entity_df needs the time of each row: name its column event_timestamp or pass timestamp_field= "
                       f"(datetime columns found: {', '.join(map(str, times)) or 'none'})")


def _check_entity_columns(entity_df: Any, plan: Plan) -> None:
    missing = [k for k in plan.join_keys if k not in entity_df.columns]
    if missing:
        raise InvalidInput(f"entity_df lacks join key column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                           f"(needed by {', '.join(plan.views)})")
    req = [r for r in plan.request if r not in entity_df.columns]
    if req:
        raise InvalidInput(f"on-demand features need request data {', '.join(req)}: "
                           f"add {'them' if len(req) > 1 else 'it'} as entity_df columns")


def compute(plan: Plan, entity_df: Any, t: Any, created_cutoff: bool = False) -> dict[tuple[str, str], Any]:
    """(view, feature) -> array aligned with entity_df's rows, for every view in the plan."""
    values: dict[tuple[str, str], Any] = {}
    for name, doc in plan.views.items():
        prep = prepared(doc)
        arrays, valid = [], None
        for k in doc["join_keys"]:
            v, ok = key_values(entity_df[k], doc["key_types"][k], f"entity_df column {k!r} (join key of {name!r})")
            arrays.append(v)
            valid = ok if valid is None else valid & ok
        g = prep.keys.encode(arrays, valid)
        ttl = None if doc["ttl"] is None else int(round(doc["ttl"] * 1e9))
        idx = prep.lookup(g, t, ttl, created_cutoff)
        for f in plan.view_features[name]:
            values[(name, f)] = gather(prep.dtypes[f], prep.columns[f], idx)
    if plan.ondemand:
        requests = {r: entity_df[r].reset_index(drop=True) for r in plan.request}
        values.update(run_ondemand(plan, values, requests, len(entity_df)))
    return values


def run_ondemand(plan: Plan, values: dict[tuple[str, str], Any], requests: dict[str, Any], n: int
                 ) -> dict[tuple[str, str], Any]:
    """Apply the plan's on-demand views: the same code for training sets and online lookups."""
    import pandas as pd

    out: dict[tuple[str, str], Any] = {}
    for doc, udf in plan.ondemand:
        cols: dict[str, Any] = {}
        for ref in doc["inputs"]:
            v, _, f = ref.partition(":")
            cols[f] = values[(v, f)]
        for r, dtype in doc["request_schema"].items():
            cols[r] = finish(dtype, *normalize(requests[r], dtype, f"request field {r!r}"))
        inputs = pd.DataFrame(cols, index=pd.RangeIndex(n))
        view = OnDemandFeatureView.from_doc(doc, udf)
        result = view.transform(inputs)
        for f, dtype in view.features.items():
            col = result[f].reset_index(drop=True)
            what = f"output {f!r} of on-demand view {doc['name']!r}"
            out[(doc["name"], f)] = finish(dtype, *normalize(col, dtype, what))
    return out


def dataset_name(plan: Plan, name: str | None, prefix: str = "features") -> str:
    if name is not None:
        return check_key("dataset", name)
    base = plan.service or "/".join(dict.fromkeys([*plan.views, *(d["name"] for d, _ in plan.ondemand)]))
    return check_key("dataset", f"{prefix}/{base}"[:250])


def record(df: Any, plan: Plan, log: bool | None, name: str | None, prefix: str = "features") -> None:
    """Record a retrieval's fingerprint (and the feature references, as a tag) on the active run."""
    if log is False:
        return
    run = active_run() if log is None else require_active()
    if run is None:
        return
    ds = dataset_name(plan, name, prefix)
    run.log_dataset(df, ds, role="features")
    refs = ", ".join(plan.refs)
    run.set_tag(ds, refs if len(refs) <= 5000 else refs[:4999] + "…")
