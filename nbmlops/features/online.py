"""The online table: the latest value per entity, for lookups at serving time.

``materialize(start, end)`` finds, for each entity of each online view, its latest source row
with an event time in ``[start, end]`` (both included, as Feast's file store) and merges it
into the view's online table, where a row replaces the stored one only if it is newer (event
time, then created time) — so materializing an old window never overwrites fresher values.
``materialize_incremental(end)`` starts each view where its last materialization ended (or at
``end - ttl`` the first time or after the view changed, or at the beginning of time for views
without a ttl). A compatible change to a view (features added, ttl) keeps its online table: new
features are null until materialized; an incompatible, forced change clears it.

An online table is an Arrow IPC file stored as a content-addressed blob (no pickle), named by
``db/online.json``. A process loads it once into a dict index (key -> row) and Python lists,
so a lookup is a few dict operations; it notices a new materialization by the change of
``db/online.json``, whoever wrote it. Like Feast, lookups return the latest materialized
values without re-checking ttl against the clock; unlike Feast, a lookup of a view that was
never materialized, was applied again since, or whose source file changed since, warns once
per view and process (``StaleOnlineTable``), naming ``%features materialize``.
"""

from __future__ import annotations

import io
import numbers
import os
import time
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from .._util import now_ms
from ..errors import InvalidInput
from ..store import Store, chosen_store, current_store
from ..store.records import OnlineTableRecord
from .frames import finish, normalize, prepared
from .historical import record, run_ondemand
from .plan import resolve
from .repo import all_docs, find, names
from .timeutil import NAT, fmt_ns, now_ns, parse_time

_ARROW = {"int64": "int64", "int32": "int32", "float64": "float64", "float32": "float32", "string": "string",
          "bool": "bool_", "timestamp": None}


# -- materialization ----------------------------------------------------------------------
def materialize(start: Any, end: Any = "now", views: list[str] | str | None = None) -> list[str]:
    """Write the latest value per entity with an event time in [start, end] into the online
    tables of ``views`` (default: every view applied with online=True). Returns one line per view."""
    s, e = parse_time(start, "start"), parse_time(end, "end")
    if s > e:
        raise InvalidInput(f"start {fmt_ns(s)} is after end {fmt_ns(e)}")
    return _materialize(_targets(views), lambda doc, state: s, e)


def materialize_incremental(end: Any = "now", views: list[str] | str | None = None) -> list[str]:
    """Materialize each view from where its last materialization ended up to ``end``."""
    e = parse_time(end, "end")

    def start(doc: dict[str, Any], state: dict[str, Any] | None) -> int | None:
        if state and state.get("end") is not None and state.get("view_version") == doc.get("version"):
            return min(int(state["end"]), e)
        return None if doc["ttl"] is None else e - int(doc["ttl"] * 1e9)

    return _materialize(_targets(views), start, e)


def _targets(views: list[str] | str | None) -> tuple[Store, list[dict[str, Any]]]:
    store = current_store(create=False)
    docs = all_docs(store) if store.exists() else []
    if views is None:
        targets = [d for d in docs if d["kind"] == "view" and d["online"]]
        if not targets:
            raise InvalidInput("no online feature views to materialize: apply a view with online=True (--online)")
        return store, targets
    out = []
    for name in [views] if isinstance(views, str) else list(views):
        doc = find("view", name, docs)
        if doc is None:
            raise InvalidInput(f"unknown feature view {name!r} (views: {names('view', docs)})")
        if not doc["online"]:
            raise InvalidInput(f"feature view {name!r} is offline only: apply it with online=True (--online) "
                               "to materialize it")
        out.append(doc)
    return store, out


def _materialize(targets: tuple[Store, list[dict[str, Any]]], start_of: Any, end: int) -> list[str]:
    import numpy as np

    store, views = targets
    report = []
    tables = store.online_tables()
    for doc in views:
        state = tables.get("view", doc["name"])
        start = start_of(doc, state)
        prep = prepared(doc)
        groups, rows, ts, created = prep.latest_in_window(start, end)
        table = _arrow_table(doc, prep, groups, rows, ts, created)
        with tables.edit() as docs:  # merge under the lock: concurrent writers lose nothing
            current = docs.get(view=doc["name"])
            if current and current.get("sha256"):  # an incompatible change removed the table: this one still fits
                table = _merge(_read_table(store, current["sha256"]), table, doc["join_keys"])
            sha, size = store.blobs.put_bytes(_ipc_bytes(table))
            same_version = current is not None and current.get("view_version") == doc.get("version")
            intervals = [*(current["intervals"] if same_version else []), [start, end]]  # type: ignore[index]
            newest = [x for x in ((current or {}).get("newest"), int(np.max(ts)) if len(ts) else None) if x is not None]
            entry: OnlineTableRecord = {
                "view": doc["name"], "view_version": doc.get("version"), "sha256": sha, "bytes": size,
                "rows": table.num_rows, "start": start, "end": end, "intervals": intervals[-20:],
                "materialized_at": now_ms(), "newest": max(newest) if newest else None,
                "source_newest": prep.time_range[1]}
            docs.upsert(entry, view=doc["name"])
        since = fmt_ns(start) if start is not None else "the beginning"
        report.append(f"materialized {doc['name']}: {len(rows):,} entities from {since} to {fmt_ns(end)}; "
                      f"online table holds {table.num_rows:,}")
    return report


def _arrow_table(doc: dict[str, Any], prep: Any, groups: Any, rows: Any, ts: Any, created: Any) -> Any:
    import numpy as np
    import pyarrow as pa

    cols: dict[str, Any] = {}
    for k, values in zip(doc["join_keys"], prep.keys.values_of(groups)):
        cols[k] = pa.array(values, type=pa.int64() if doc["key_types"][k] == "int64" else pa.string())
    cols["__event_ts"] = pa.array(ts, type=pa.int64())
    cols["__created_ts"] = pa.array(created if created is not None else np.full(len(ts), NAT), type=pa.int64())
    for f in doc["features"]:
        values, mask = prep.columns[f["name"]]
        v = values[rows]
        m = mask[rows] if mask is not None else None
        cols[f["name"]] = _to_arrow(f["dtype"], v, m)
    return pa.table(cols)


def _to_arrow(dtype: str, values: Any, mask: Any) -> Any:
    import numpy as np
    import pyarrow as pa

    if dtype in ("float64", "float32"):
        nan = np.isnan(values)
        mask = nan if mask is None else (mask | nan)
    if dtype == "timestamp":
        return pa.array(values, type=pa.int64(), mask=mask).cast(pa.timestamp("ns", tz="UTC"))
    if dtype == "string":
        return pa.array(list(values), type=pa.string())
    return pa.array(values, type=getattr(pa, _ARROW[dtype])(), mask=mask if mask is not None and mask.any() else None)


def _merge(old: Any, new: Any, keys: list[str]) -> Any:
    """Union of two online tables, keeping per key the newest row (``new`` wins ties)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    both = pa.concat_tables([old, new], promote_options="default")
    meta = pd.DataFrame({k: both.column(k).to_numpy() for k in keys})
    meta["__e"] = both.column("__event_ts").to_numpy()
    meta["__c"] = both.column("__created_ts").to_numpy()
    meta["__o"] = np.arange(len(meta))
    meta = meta.sort_values(["__e", "__c", "__o"], kind="stable")
    keep = np.sort(meta.drop_duplicates(keys, keep="last")["__o"].to_numpy())
    return both.take(pa.array(keep))


def _ipc_bytes(table: Any) -> bytes:
    import pyarrow as pa

    sink = io.BytesIO()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _read_table(store: Store, sha: str) -> Any:
    import pyarrow as pa

    with pa.memory_map(str(store.blobs.verified_path(sha))) as src:
        return pa.ipc.open_file(src).read_all()


# -- lookups ---------------------------------------------------------------------------------
class OnlineTable:
    """An online table in memory: key -> row, and one Python list per feature."""

    def __init__(self, table: Any, keys: list[str]) -> None:
        self.keys = keys
        key_lists = [table.column(k).to_pylist() for k in keys]
        self.index = dict(zip(key_lists[0] if len(keys) == 1 else zip(*key_lists), range(table.num_rows)))
        self.columns = {n: table.column(n).to_pylist() for n in table.column_names if n not in keys}


class StaleOnlineTable(UserWarning):
    """An online lookup read a view whose online table may miss rows (or was never materialized)."""


_tables: OrderedDict[str, OnlineTable] = OrderedDict()
_warned: set[tuple[str, str]] = set()  # (store, view) already warned about in this process
_checked: dict[tuple[str, str], float] = {}  # (store, view) -> monotonic time of the last freshness check


def _staleness(doc: dict[str, Any], state: OnlineTableRecord | None) -> str | None:
    """Why the online table of a view may miss rows, or None."""
    if state is None or not state.get("sha256"):
        return ("has no online table (never materialized, or cleared by a forced change): online lookups "
                "return None for every entity")
    if state.get("view_version") != doc.get("version"):
        return "was applied again after its last materialization: its online table may miss the latest rows"
    newest, end = state.get("source_newest"), state.get("end")
    if newest is not None and end is not None and newest > end:
        return (f"has source rows after its last materialization, which ended at {fmt_ns(end)}: its online "
                "table misses their entities' latest rows")
    path = (doc.get("source") or {}).get("path")
    try:
        changed = path is not None and os.stat(path).st_mtime_ns > int(state["materialized_at"]) * 1_000_000
    except (OSError, KeyError, TypeError, ValueError):
        return None
    if changed:
        return (f"has a source file that changed after its last materialization ({path}): its online table "
                "may miss the latest rows")
    return None


def _check_fresh(key: tuple[str, str], doc: dict[str, Any], state: OnlineTableRecord | None) -> None:
    """Warn once per view and process if its online table may miss rows (checked at most once a second)."""
    now = time.monotonic()
    if now - _checked.get(key, -1e9) < 1.0:
        return
    _checked[key] = now
    why = _staleness(doc, state)
    if why:
        _warned.add(key)
        warnings.warn(f"feature view {doc['name']!r} {why}; run `%features materialize` "
                      "(nbmlops.materialize_incremental())", StaleOnlineTable, stacklevel=3)
_plans: dict[Any, tuple[Any, Any, Any]] = {}
_where: dict[tuple[Any, ...], Store] = {}


def _store_now() -> Store:
    """The current store, found without walking the file system on every lookup."""
    key = (chosen_store(), os.environ.get("NBMLOPS_STORE"), os.getcwd())
    hit = _where.get(key)
    if hit is None:
        hit = _where[key] = current_store(create=False)
    return hit


def _table(store: Store, view: str, keys: list[str], states: list[OnlineTableRecord]) -> OnlineTable | None:
    state = next((s for s in states if s["view"] == view), None)
    if state is None:
        return None
    sha = state["sha256"]
    hit = _tables.get(sha)
    if hit is None:
        hit = _tables[sha] = OnlineTable(_read_table(store, sha), keys)
        while len(_tables) > 32:
            _tables.popitem(last=False)
    return hit


class _OnlinePlan:
    def __init__(self, store: Store, features: Any, full_feature_names: bool, fdocs: Any, odocs: Any) -> None:
        self.plan = resolve(features, full_feature_names, fdocs)
        self.views = []  # (view, [(key, type)], OnlineTable | None, [(feature, column list | None)])
        self.freshness = []  # ((store, view), view doc, online state) for the staleness warning
        for name, doc in self.plan.views.items():
            if not doc["online"]:
                raise InvalidInput(f"feature view {name!r} is offline only (online=False): it has no online values")
            state = next((s for s in odocs if s["view"] == name), None)
            self.freshness.append(((str(store.root), name), doc, state))
            table = _table(store, name, doc["join_keys"], odocs)
            feats = [(f, table.columns.get(f) if table else None) for f in self.plan.view_features[name]]
            self.views.append((name, [(k, doc["key_types"][k]) for k in doc["join_keys"]], table, feats))
        self.keys = list(self.plan.join_keys.items())
        self.dtypes = {c: d for _, _, c, d in self.plan.outputs}
        self.inputs = {(v, f["name"]): f["dtype"] for v, doc in self.plan.views.items() for f in doc["features"]}


def get_online_features(features: Any, entity_rows: list[dict[str, Any]], *, full_feature_names: bool = False,
                        log: bool = False, name: str | None = None) -> OnlineResponse:
    """The latest materialized values for each entity row; unknown entities give None.

    >>> nbmlops.get_online_features(["user_stats:total_orders"], [{"user_id": 1001}]).to_dict()
    {'user_id': [1001], 'total_orders': [12]}

    Entity rows may also carry request data for on-demand features.
    ``log=True`` records the response's fingerprint on the active run (off by default: a hot path).
    """
    store = _store_now()
    fdocs = store.feature_definitions().all()
    odocs = store.online_tables().all()
    pkey = (tuple(features) if isinstance(features, list) else features, full_feature_names)
    try:
        cached = _plans.get(pkey)
    except TypeError:  # an unhashable features argument
        pkey, cached = None, None
    if cached is not None and cached[0] is fdocs and cached[1] is odocs:
        op = cached[2]
    else:
        op = _OnlinePlan(store, features, full_feature_names, fdocs, odocs)
        if pkey is not None:
            if len(_plans) > 256:
                _plans.clear()
            _plans[pkey] = (fdocs, odocs, op)
    for key, doc, state in op.freshness:
        if key not in _warned:
            _check_fresh(key, doc, state)
    if isinstance(entity_rows, dict):
        entity_rows = [entity_rows]
    out: dict[str, list[Any]] = {}
    for k, typ in op.keys:
        out[k] = [_key(r, k, typ, i) for i, r in enumerate(entity_rows)]
    values: dict[tuple[str, str], list[Any]] = {}
    for view, keys, table, feats in op.views:
        if table is None:
            rows = [None] * len(entity_rows)
        elif len(keys) == 1:
            get = table.index.get
            rows = [get(v) for v in out[keys[0][0]]]
        else:
            get = table.index.get
            rows = [get(t) for t in zip(*(out[k] for k, _ in keys))]
        for f, col in feats:
            values[(view, f)] = [None if r is None or col is None else col[r] for r in rows]
    if op.plan.ondemand:
        values.update(_ondemand_online(op, values, entity_rows))
    for v, f, c, _ in op.plan.outputs:
        out[c] = values[(v, f)]
    response = OnlineResponse(out, op.dtypes)
    if log:
        record(response.to_df(), op.plan, True, name, prefix="online-features")
    return response


def _key(row: dict[str, Any], key: str, typ: str, i: int) -> Any:
    try:
        v = row[key]
    except KeyError:
        raise InvalidInput(f"entity row {i} has no {key!r} (rows need: the join keys of the requested views)") from None
    except TypeError:
        raise InvalidInput(f"entity rows are dicts like {{{key!r}: value}}, got {type(row).__name__}") from None
    t = type(v)
    if typ == "int64":
        if t is int:
            return v
        if isinstance(v, numbers.Integral) and not isinstance(v, bool):
            return int(v)
        if isinstance(v, float) and v.is_integer():
            return int(v)
    elif t is str:
        return v
    raise InvalidInput(f"entity row {i}: {key}={v!r} is {t.__name__}, but the key is {typ}")


def _ondemand_online(op: _OnlinePlan, values: dict[tuple[str, str], list[Any]],
                     rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[Any]]:
    import pandas as pd

    arrays = {k: finish(op.inputs[k], *from_list(op.inputs[k], v)) for k, v in values.items()}
    requests = {}
    for r in op.plan.request:
        if not all(r in row for row in rows):
            raise InvalidInput(f"on-demand features need request data {r!r} in every entity row")
        requests[r] = pd.Series([row[r] for row in rows])
    computed = run_ondemand(op.plan, arrays, requests, len(rows))
    return {k: to_list(a) for k, a in computed.items()}


def from_list(dtype: str, values: list[Any]) -> tuple[Any, Any]:
    import pandas as pd

    return normalize(pd.Series(values, dtype=object), dtype, "online value")


def to_list(array: Any) -> list[Any]:
    import pandas as pd

    return [None if v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v) else v
            for v in pd.Series(array).astype(object).tolist()]


class OnlineResponse:
    """Values of an online lookup: ``to_dict()`` (column -> list) or ``to_df()`` (same dtypes as a
    training set from ``get_historical_features``)."""

    def __init__(self, data: dict[str, list[Any]], dtypes: dict[str, str]) -> None:
        self._data = data
        self._dtypes = dtypes

    def to_dict(self) -> dict[str, list[Any]]:
        return self._data

    def to_df(self) -> Any:
        import pandas as pd

        cols = {c: (finish(self._dtypes[c], *from_list(self._dtypes[c], v)) if c in self._dtypes else v)
                for c, v in self._data.items()}
        return pd.DataFrame(cols)

    def __repr__(self) -> str:
        return f"OnlineResponse({self._data!r})"

    def _repr_html_(self) -> str:
        return self.to_df().to_html(index=False, border=0, max_rows=50)


def online_state(view: str) -> OnlineTableRecord | None:
    """The view's last materialization (window, rows, time), or None."""
    store = current_store(create=False)
    if not store.exists():
        return None
    return store.online_tables().get("view", view)


def freshness(view: str) -> dict[str, Any]:
    state: Mapping[str, Any] = online_state(view) or {}
    return {"materialized_at": state.get("materialized_at"), "online_rows": state.get("rows"),
            "materialized_to": state.get("end"), "newest_online": state.get("newest"), "now": now_ns()}


def entity_rows_from_text(features: Any, values: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Entity rows from text values (``{"user_id": ["1001", "1002"]}``), typed as the requested
    views' keys are; several keys are zipped row by row (a composite key)."""
    plan = resolve(features)
    keys = plan.join_keys
    unknown = [k for k in values if k not in keys and k not in plan.request]
    if unknown:
        raise InvalidInput(f"{', '.join(unknown)} is not a join key of {', '.join(plan.views)} "
                           f"(keys: {', '.join(keys)})")
    missing = [k for k in keys if k not in values]
    if missing:
        raise InvalidInput(f"give a value for join key {', '.join(missing)} (KEY=V1,V2)")
    lengths = {len(v) for v in values.values()}
    if len(lengths) != 1:
        raise InvalidInput("give the same number of values for every key (they are zipped into rows)")
    rows: list[dict[str, Any]] = [{} for _ in range(lengths.pop())]
    for k, texts in values.items():
        typ = keys.get(k) or plan.request.get(k)
        for row, text in zip(rows, texts):
            if typ in ("int64", "int32"):
                try:
                    row[k] = int(text)
                except ValueError:
                    raise InvalidInput(f"{k}={text!r} is not an integer, but the key is {typ}") from None
            elif typ in ("float64", "float32"):
                try:
                    row[k] = float(text)
                except ValueError:
                    raise InvalidInput(f"{k}={text!r} is not a number") from None
            else:
                row[k] = text
    return rows
