"""The feature store API as a user drives it: apply, sources, materialize, online lookups,
on-demand features, lineage on runs, display."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import nbmlops
from nbmlops.errors import InvalidInput
from nbmlops.features import frames, online

T0 = pd.Timestamp("2024-03-01", tz="UTC")


def days(*d: float) -> pd.DatetimeIndex:
    return pd.DatetimeIndex([T0 + pd.Timedelta(days=x) for x in d])


@pytest.fixture
def activity():
    return pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "event_timestamp": days(0, 2, 1, 3, 1),
                         "orders": [1, 2, 5, 6, 9], "amount": [10.0, 20.0, 50.0, np.nan, 90.0]})


@pytest.fixture
def user():
    return nbmlops.Entity("user", ["user_id"], "int64", description="a customer")


def view(src, **kw):
    kw.setdefault("ttl", "7d")
    ents = kw.pop("entities", None) or [nbmlops.Entity("user", ["user_id"], "int64", description="a customer")]
    return nbmlops.FeatureView("stats", ents, src, **kw)


def files(store):
    """What the store holds on disk: path -> (size, mtime)."""
    if not store.root.exists():
        return {}
    return {str(p.relative_to(store.root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(store.root.rglob("*")) if p.is_file()}


# -- apply ----------------------------------------------------------------------------
def test_apply_is_idempotent_and_reports_changes(store, activity, user):
    assert nbmlops.apply_features([user, view(activity, entities=[user])]) == [
        "created entity user (user_id:int64)",
        "created feature view stats (2 features, keys user_id, ttl 7d, 5-row DataFrame snapshot)"]
    before = files(store)
    again = nbmlops.apply_features([user, view(activity, entities=[user])])
    assert list(again) == ["unchanged entity user", "unchanged feature view stats"] and not again.changed
    assert files(store) == before  # nothing rewritten
    changes = nbmlops.apply_features(view(activity.assign(extra=1.5), ttl="3d"))
    assert changes == ["unchanged entity user",
                       "updated feature view stats (v2): adds extra, ttl 7d → 3d, source data changed (5 → 5 rows)"]
    assert nbmlops.get_feature_view("stats").version == 2


def test_incompatible_changes_are_refused_unless_forced(store, activity, user):
    nbmlops.apply_features([user, view(activity, entities=[user], online=True)])
    nbmlops.materialize(T0, T0 + pd.Timedelta(days=9))
    before = files(store)
    with pytest.raises(InvalidInput, match="drops feature amount.*force=True"):
        nbmlops.apply_features(view(activity, features=["orders"]))
    with pytest.raises(InvalidInput, match="changes orders from int64 to float64"):
        nbmlops.apply_features(view(activity, features={"orders": "float64", "amount": "float64"}))
    with pytest.raises(InvalidInput, match="keys change"):
        nbmlops.apply_features(nbmlops.Entity("user", ["user_id"], "string"))
    assert files(store) == before
    changes = nbmlops.apply_features(view(activity, features=["orders"]), force=True)
    assert "forced; its online table was cleared" in changes[-1]
    assert online.online_state("stats") is None
    assert nbmlops.get_online_features(["stats:orders"], [{"user_id": 1}]).to_dict() == {"user_id": [1], "orders": [None]}


def test_a_dataframe_source_is_a_snapshot(store, activity):
    nbmlops.apply_features(view(activity))
    activity.loc[0, "orders"] = 1000  # later edits to the DataFrame do not change the applied view
    frames.clear_cache()
    ent = pd.DataFrame({"user_id": [1], "event_timestamp": days(1)})
    assert nbmlops.get_historical_features(ent, ["stats:orders"])["orders"].tolist() == [1]


def test_parquet_and_csv_sources_are_read_where_they_are_and_reread_when_they_change(store, activity, tmp_path):
    pq, csv = tmp_path / "stats.parquet", tmp_path / "stats.csv"
    activity.to_parquet(pq)
    activity.assign(event_timestamp=activity.event_timestamp.dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(csv, index=False)
    v = view(str(pq))
    nbmlops.apply_features([v, nbmlops.FeatureView("from_csv", v.entities, str(csv), ttl="7d")])
    ent = pd.DataFrame({"user_id": [1, 2, 4], "event_timestamp": days(5, 5, 5)})
    a = nbmlops.get_historical_features(ent, ["stats:orders", "stats:amount"])
    b = nbmlops.get_historical_features(ent, ["from_csv:orders", "from_csv:amount"])
    pd.testing.assert_frame_equal(a, b)
    assert a["orders"].tolist() == [2, 6, pd.NA]
    activity.assign(orders=activity.orders * 10).to_parquet(pq)
    os.utime(pq, ns=(1, 1))
    assert nbmlops.get_historical_features(ent, ["stats:orders"])["orders"].tolist() == [20, 60, pd.NA]


@pytest.mark.parametrize("make, message", [
    (lambda a: view(a, timestamp_field="ts"), "no event timestamp column 'ts'"),
    (lambda a: view(a.assign(event_timestamp=1)), "holds int64, not times"),
    (lambda a: view(a, ttl="seven days"), "cannot read ttl"),
    (lambda a: view(a, ttl=-5), "positive duration"),
    (lambda a: view(a, entities=[nbmlops.Entity("user", ["uid"])]), "no join key column 'uid'"),
    (lambda a: view(a, entities=[nbmlops.Entity("user", ["user_id"], "string")]), "is string, but"),
    (lambda a: view(a.assign(user_id=a.user_id.astype(float) + 0.5)), "keys must be integers or strings"),
    (lambda a: view(a, features=["nope"]), "has no column 'nope'"),
    (lambda a: view(a, features={"orders": "complex"}), "use one of"),
    (lambda a: view(a.assign(s="x"), features={"s": "float64"}), "cannot be read as float64"),
    (lambda a: view(a, created_timestamp_column="nope"), "no created timestamp column"),
    (lambda a: nbmlops.FeatureView("bad name", ["user"], a), "invalid feature view name"),
    (lambda a: view("/no/such/file.parquet"), "no parquet file"),
    (lambda a: view("data.xlsx"), "cannot tell the format"),
    (lambda a: nbmlops.FeatureService("svc", ["nope:x"]), "unknown feature view 'nope'"),
    (lambda a: nbmlops.FeatureService("svc", ["stats:nope"]), "has no feature 'nope'"),
    (lambda a: nbmlops.OnDemandFeatureView("od", ["stats:nope"], {"y": "float64"}, lambda df: df), "has no feature 'nope'"),
    (lambda a: nbmlops.Entity("free", ["k"]), "give value_type"),
])
def test_bad_definitions_are_refused_and_write_nothing(store, activity, make, message):
    nbmlops.apply_features(view(activity))
    before = files(store)
    with pytest.raises(InvalidInput, match=message):
        nbmlops.apply_features(make(activity))
    assert files(store) == before


def test_a_bad_apply_on_a_fresh_store_creates_nothing(store, activity):
    with pytest.raises(InvalidInput):
        nbmlops.apply_features(view(activity, ttl="7x"))
    with pytest.raises(InvalidInput):
        nbmlops.get_historical_features(pd.DataFrame({"user_id": [1], "event_timestamp": days(1)}), ["stats:orders"])
    assert not store.root.exists()


def test_services_name_features_for_training_and_serving(store, activity):
    nbmlops.apply_features([view(activity, online=True), nbmlops.FeatureService("churn", ["stats:orders"])])
    ent = pd.DataFrame({"user_id": [2], "event_timestamp": days(5)})
    assert list(nbmlops.get_historical_features(ent, "churn").columns) == ["user_id", "event_timestamp", "orders"]
    svc = nbmlops.get_feature_service("churn")
    assert list(nbmlops.get_historical_features(ent, svc).columns)[-1] == "orders"
    nbmlops.materialize(T0, T0 + pd.Timedelta(days=5))
    assert nbmlops.get_online_features("churn", [{"user_id": 2}]).to_dict() == {"user_id": [2], "orders": [6]}


# -- materialize and online ------------------------------------------------------------------
def test_materialize_writes_the_latest_value_per_entity_in_the_window(store, activity):
    nbmlops.apply_features(view(activity, online=True))
    report = nbmlops.materialize(T0, T0 + pd.Timedelta(days=1))
    assert "3 entities" in report[0]
    got = nbmlops.get_online_features(["stats:orders", "stats:amount"],
                                      [{"user_id": 1}, {"user_id": 2}, {"user_id": 42}]).to_dict()
    assert got == {"user_id": [1, 2, 42], "orders": [1, 5, None], "amount": [10.0, 50.0, None]}
    nbmlops.materialize_incremental(T0 + pd.Timedelta(days=10))  # continues from day 1
    got = nbmlops.get_online_features(["stats:orders", "stats:amount"], [{"user_id": 2}, {"user_id": 3}]).to_dict()
    assert got == {"user_id": [2, 3], "orders": [6, 9], "amount": [None, 90.0]}  # NaN in the source is a null
    nbmlops.materialize(T0, T0 + pd.Timedelta(days=1))  # an old window never overwrites newer values
    assert nbmlops.get_online_features(["stats:orders"], [{"user_id": 2}]).to_dict()["orders"] == [6]
    assert online.online_state("stats")["rows"] == 3


def test_a_compatible_change_keeps_the_online_table_and_new_features_fill_in(store, activity):
    nbmlops.apply_features(view(activity, online=True, features=["orders"]))
    nbmlops.materialize(T0, T0 + pd.Timedelta(days=3))
    nbmlops.apply_features(view(activity, online=True))  # adds amount: compatible
    refs = ["stats:orders", "stats:amount"]
    assert nbmlops.get_online_features(refs, [{"user_id": 1}]).to_dict() == {"user_id": [1], "orders": [2], "amount": [None]}
    nbmlops.materialize(T0 + pd.Timedelta(days=2), T0 + pd.Timedelta(days=3))  # only users 1 and 2 have rows here
    got = nbmlops.get_online_features(refs, [{"user_id": u} for u in (1, 3)]).to_dict()
    assert got == {"user_id": [1, 3], "orders": [2, 9], "amount": [20.0, None]}  # user 3 kept from before


def test_materialize_incremental_first_time_starts_ttl_before_end(store, activity):
    nbmlops.apply_features(view(activity, online=True, ttl="1d"))
    nbmlops.materialize_incremental(T0 + pd.Timedelta(days=2))  # window [day 1, day 2]
    got = nbmlops.get_online_features(["stats:orders"], [{"user_id": u} for u in (1, 2, 3)]).to_dict()
    assert got["orders"] == [2, 5, 9]


def test_online_lookups_see_a_materialization_made_by_another_process(store, activity):
    nbmlops.apply_features(view(activity, online=True))
    assert nbmlops.get_online_features(["stats:orders"], [{"user_id": 1}]).to_dict()["orders"] == [None]
    code = "import nbmlops; nbmlops.materialize('2024-01-01', '2024-12-31')"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "NBMLOPS_STORE": str(store.root)})
    assert nbmlops.get_online_features(["stats:orders"], [{"user_id": 1}]).to_dict()["orders"] == [2]


def test_online_composite_keys_typed_keys_and_dataframe_output(store):
    src = pd.DataFrame({"store": [1, 1, 2], "item": ["a", "b", "a"], "event_timestamp": days(0, 0, 1),
                        "qty": [3, 4, 5], "seen": days(0, 0, 1)})
    ents = [nbmlops.Entity("store", ["store"], "int64"), nbmlops.Entity("item", ["item"], "string")]
    nbmlops.apply_features(nbmlops.FeatureView("stock", ents, src, online=True))
    nbmlops.materialize(T0, T0 + pd.Timedelta(days=2))
    resp = nbmlops.get_online_features(["stock:qty", "stock:seen"], [{"store": np.int64(2), "item": "a"},
                                                                     {"store": 1.0, "item": "b"}, {"store": 1, "item": "z"}])
    assert resp.to_dict()["qty"] == [5, 4, None]
    df = resp.to_df()
    assert [str(t) for t in df.dtypes] == ["int64", "object", "Int64", "datetime64[ns, UTC]"]
    for bad, message in [({"store": "1", "item": "a"}, "store='1' is str, but the key is int64"),
                         ({"store": 1, "item": 7}, "item=7 is int, but the key is string"),
                         ({"store": 1}, "has no 'item'"), ({"store": True, "item": "a"}, "is bool")]:
        with pytest.raises(InvalidInput, match=message):
            nbmlops.get_online_features(["stock:qty"], [bad])


def test_offline_views_cannot_be_materialized_or_looked_up(store, activity):
    nbmlops.apply_features(view(activity, online=False))
    with pytest.raises(InvalidInput, match="no online feature views"):
        nbmlops.materialize_incremental()
    with pytest.raises(InvalidInput, match="offline only"):
        nbmlops.materialize(T0, T0, views=["stats"])
    with pytest.raises(InvalidInput, match="offline only"):
        nbmlops.get_online_features(["stats:orders"], [{"user_id": 1}])


# -- on-demand features ---------------------------------------------------------------------
def define_ratio():
    @nbmlops.on_demand_feature_view(sources=["stats:orders", "stats:amount"], request_schema={"basket": "float64"},
                                    schema={"per_order": "float64", "big_basket": "bool"})
    def spend(df):
        return pd.DataFrame({"per_order": df["amount"] / df["orders"], "big_basket": df["basket"] > df["amount"]})

    return spend


def test_on_demand_features_are_the_same_offline_and_online(store, activity):
    nbmlops.apply_features([view(activity, online=True), define_ratio()])
    nbmlops.materialize(T0, T0 + pd.Timedelta(days=30))
    refs = ["stats:orders", "spend:per_order", "spend:big_basket"]
    # at a time within ttl of every entity's last row, a training row and a served row must be identical
    ent = pd.DataFrame({"user_id": [1, 2, 3, 9], "event_timestamp": days(5, 5, 5, 5), "basket": [25.0, 1, 1, 1]})
    train = nbmlops.get_historical_features(ent, refs)
    served = nbmlops.get_online_features(refs, ent[["user_id", "basket"]].to_dict("records")).to_df()
    pd.testing.assert_frame_equal(train.drop(columns=["event_timestamp", "basket"]), served)
    assert train["per_order"].tolist()[0] == 10.0 and train["big_basket"].tolist()[:2] == [True, False]


def test_on_demand_views_need_their_function_and_request_data(store, activity):
    nbmlops.apply_features([view(activity, online=True), define_ratio()])
    ent = pd.DataFrame({"user_id": [1], "event_timestamp": days(3)})
    with pytest.raises(InvalidInput, match="request data basket"):
        nbmlops.get_historical_features(ent, ["spend:per_order"])
    from nbmlops.features import ondemand

    saved = ondemand._UDFS.pop("spend")
    try:
        with pytest.raises(InvalidInput, match="has no function in this process"):
            nbmlops.get_historical_features(ent.assign(basket=1.0), ["spend:per_order"])
    finally:
        ondemand._UDFS["spend"] = saved
    with pytest.raises(InvalidInput, match="returned 1 rows with columns"):
        broken = nbmlops.OnDemandFeatureView("broken", ["stats:orders"], {"y": "float64"}, lambda df: df)
        nbmlops.apply_features(broken)
        nbmlops.get_historical_features(ent, ["broken:y"])


# -- lineage and display ---------------------------------------------------------------------
def test_a_training_set_is_recorded_on_the_active_run(store, activity):
    nbmlops.apply_features([view(activity), nbmlops.FeatureService("churn", ["stats:orders"])])
    ent = pd.DataFrame({"user_id": [1, 2], "event_timestamp": days(3, 3)})
    with nbmlops.start_run(experiment="fs") as run:
        train = nbmlops.get_historical_features(ent, "churn")
        nbmlops.get_historical_features(ent, ["stats:amount"], name="extra")
        nbmlops.get_historical_features(ent, ["stats:amount"], log=False)
    info = nbmlops.get_run(run.id).info
    assert [d["name"] for d in info["datasets"]] == ["features/churn", "extra"]
    assert info["datasets"][0]["sha256"] == nbmlops.fingerprint(train)["sha256"]
    assert info["tags"]["features/churn"] == "stats:orders"
    nbmlops.get_historical_features(ent, "churn")  # no active run: nothing to record, no error
    with pytest.raises(InvalidInput, match="no active run"):
        nbmlops.get_historical_features(ent, "churn", log=True)


def test_a_view_displays_schema_rows_time_range_freshness_nulls_and_ranges(store, activity):
    v = view(activity.assign(city=["<b>x</b>", "y", None, "y", "z"]), online=True, description="<script>alert(1)</script>")
    html = v._repr_html_()
    assert "(not applied)" in html and "<script>" not in html and "&lt;script&gt;" in html
    nbmlops.apply_features(v)
    nbmlops.materialize(T0, T0 + pd.Timedelta(days=3))
    html = nbmlops.get_feature_view("stats")._repr_html_()
    for text in ("feature view stats", "v1", "user_id:int64", "ttl 7d", "5 rows", "3 entities",
                 "2024-03-01 00:00:00 UTC", "2024-03-04 00:00:00 UTC", "last materialized", "3 entities online",
                 "orders", "int64", "20.0%", "3 distinct", "90"):
        assert text in html, text
    stats = nbmlops.get_feature_view("stats").stats()
    assert stats["features"]["amount"] == {"dtype": "float64", "null_share": 0.2, "min": 10.0, "max": 90.0, "distinct": None}


def test_import_nbmlops_does_not_import_pandas_or_pyarrow():
    code = "import sys, nbmlops; nbmlops.Entity; print('pandas' in sys.modules, 'pyarrow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
