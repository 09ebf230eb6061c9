"""Point-in-time correctness of get_historical_features: hand-built cases and randomized data
checked against a straightforward reference implementation."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nbmlops
from nbmlops.errors import InvalidInput
from nbmlops.features import frames

T0 = pd.Timestamp("2024-03-01")


def ts(*days: float) -> pd.DatetimeIndex:
    return pd.DatetimeIndex([T0 + pd.Timedelta(days=d) for d in days])


def define(df, name="stats", keys=("user_id",), ttl="7d", created=None, features=None):
    ents = [nbmlops.Entity(k, [k], "int64" if pd.api.types.is_integer_dtype(df[k]) else "string") for k in keys]
    view = nbmlops.FeatureView(name, ents, df, ttl=ttl, created_timestamp_column=created, features=features)
    nbmlops.apply_features([*ents, view], force=True)
    return view


def get(entity_df, refs, **kw):
    return nbmlops.get_historical_features(entity_df, refs, **kw)


# -- hand-built cases -----------------------------------------------------------------
def test_ttl_boundary_is_inclusive_and_one_nanosecond_beyond_is_out(store):
    week = pd.Timedelta(days=7)
    t = T0 + pd.Timedelta(days=10)
    src = pd.DataFrame({"user_id": [1, 2, 3], "event_timestamp": [t - week, t - week - pd.Timedelta(1, "ns"), t],
                        "x": [1.0, 2.0, 3.0]})
    define(src)
    ent = pd.DataFrame({"user_id": [1, 2, 3], "event_timestamp": [t, t, t]})
    assert get(ent, ["stats:x"])["x"].tolist()[:1] == [1.0]
    out = get(ent, ["stats:x"])["x"]
    assert np.isnan(out[1]) and out[2] == 3.0  # a row at exactly t counts (at or before)


def test_row_after_the_entity_time_is_never_used(store):
    define(pd.DataFrame({"user_id": [1, 1], "event_timestamp": ts(1, 3), "x": [10, 30]}))
    ent = pd.DataFrame({"user_id": [1, 1, 1], "event_timestamp": ts(0.5, 2.9999, 3)})
    assert get(ent, ["stats:x"])["x"].tolist() == [pd.NA, 10, 30]


def test_equal_event_times_go_to_the_latest_created_time(store):
    src = pd.DataFrame({"user_id": [1, 1, 1], "event_timestamp": ts(2, 2, 2),
                        "created": ts(5, 9, 3), "x": [1, 2, 3]})  # the latest created is in the middle
    define(src, created="created")
    assert get(pd.DataFrame({"user_id": [1], "event_timestamp": ts(4)}), ["stats:x"])["x"].tolist() == [2]


def test_equal_event_times_without_created_column_go_to_the_last_row(store):
    define(pd.DataFrame({"user_id": [1, 1, 2, 1], "event_timestamp": ts(2, 2, 2, 2), "x": [1, 2, 9, 3]}))
    assert get(pd.DataFrame({"user_id": [1], "event_timestamp": ts(4)}), ["stats:x"])["x"].tolist() == [3]


def test_late_arriving_row_counts_by_event_time_unless_filtered_by_created_time(store):
    # the last row of the file arrived late (created day 6) but happened on day 3
    src = pd.DataFrame({"user_id": [1, 1, 1], "event_timestamp": ts(1, 4, 3), "created": ts(1, 4, 6), "x": [1, 4, 3]})
    define(src, created="created")
    ent = pd.DataFrame({"user_id": [1, 1, 1, 1], "event_timestamp": ts(3.5, 5, 6, 7)})
    assert get(ent, ["stats:x"])["x"].tolist() == [3, 4, 4, 4]
    # as known at the time: on days 3.5 and 5 the late row was not there yet; at day 6 it just was
    assert get(ent, ["stats:x"], filter_by_created_timestamp=True)["x"].tolist() == [1, 4, 4, 4]
    src2 = pd.DataFrame({"user_id": [1, 1], "event_timestamp": ts(1, 3), "created": ts(1, 6), "x": [1, 3]})
    define(src2, created="created")
    ent = pd.DataFrame({"user_id": [1, 1], "event_timestamp": [T0 + pd.Timedelta(days=6) - pd.Timedelta(1, "ns"),
                                                               T0 + pd.Timedelta(days=6)]})
    assert get(ent, ["stats:x"], filter_by_created_timestamp=True)["x"].tolist() == [1, 3]


def test_missing_entities_give_nulls_and_every_row_index_order_and_column_is_kept(store):
    define(pd.DataFrame({"user_id": [1, 2], "event_timestamp": ts(1, 1), "x": [1.5, 2.5], "s": ["a", "b"]}))
    ent = pd.DataFrame({"user_id": [2, 99, 1, 2], "event_timestamp": ts(2, 2, 2, 0),
                        "label": [1, 0, 1, 1], "note": list("wxyz")}, index=[7, 3, 3, 1])
    out = get(ent, ["stats:x", "stats:s"])
    assert list(out.index) == [7, 3, 3, 1]
    assert list(out.columns) == ["user_id", "event_timestamp", "label", "note", "x", "s"]
    pd.testing.assert_frame_equal(out[ent.columns], ent)
    assert out["x"].tolist()[0] == 2.5 and np.isnan(out["x"].tolist()[1]) and out["x"].tolist()[2] == 1.5
    assert out["s"].tolist() == ["b", None, "a", None]


def test_null_keys_and_times_give_nulls_on_both_sides(store):
    src = pd.DataFrame({"user_id": pd.array([1, None, 1], dtype="Int64"),
                        "event_timestamp": [T0, T0, pd.NaT], "x": [1.0, 2.0, 3.0]})
    define(src)
    ent = pd.DataFrame({"user_id": pd.array([1, None, 1], dtype="Int64"), "event_timestamp": [T0, T0, pd.NaT]})
    out = get(ent, ["stats:x"])["x"].tolist()
    assert out[0] == 1.0 and np.isnan(out[1]) and np.isnan(out[2])


def test_several_views_with_different_entities_and_ttls_in_one_call(store):
    define(pd.DataFrame({"user_id": [1, 2], "event_timestamp": ts(1, 1), "u": [10, 20]}), "users", ttl="2d")
    define(pd.DataFrame({"item_id": [5, 5], "event_timestamp": ts(0, 3), "i": [0.5, 3.5]}), "items", ("item_id",), ttl=None)
    ent = pd.DataFrame({"user_id": [1, 2, 1], "item_id": [5, 5, 6], "event_timestamp": ts(2, 4, 9)})
    out = get(ent, ["users:u", "items:i"])
    assert out["u"].tolist() == [10, pd.NA, pd.NA]  # day 4 is beyond users' 2-day ttl
    assert out["i"].tolist()[:2] == [0.5, 3.5] and np.isnan(out["i"].tolist()[2])


def test_composite_keys(store):
    src = pd.DataFrame({"store": [1, 1, 2, 2], "item": ["a", "b", "a", "a"], "event_timestamp": ts(1, 1, 1, 2),
                        "qty": [10, 11, 20, 21]})
    define(src, "stock", keys=("store", "item"))
    ent = pd.DataFrame({"store": [2, 1, 1, 2, 3], "item": ["a", "b", "c", "b", "a"], "event_timestamp": ts(3, 3, 3, 3, 3)})
    assert get(ent, ["stock:qty"])["qty"].tolist() == [21, 11, pd.NA, pd.NA, pd.NA]


def test_naive_times_are_utc_and_aware_times_are_converted(store):
    aware = pd.to_datetime(["2024-03-01 12:00:00+02:00", "2024-03-01 14:00:00+02:00"])  # 10:00 and 12:00 UTC
    define(pd.DataFrame({"user_id": [1, 1], "event_timestamp": aware, "x": [1, 2]}))
    naive = pd.DataFrame({"user_id": [1, 1, 1], "event_timestamp": pd.to_datetime(
        ["2024-03-01 09:59:59", "2024-03-01 10:00:00", "2024-03-01 12:00:00"])})
    assert get(naive, ["stats:x"])["x"].tolist() == [pd.NA, 1, 2]
    in_new_york = naive.assign(event_timestamp=pd.to_datetime(["2024-03-01 05:00:00-05:00"] * 3))  # 10:00 UTC
    assert get(in_new_york, ["stats:x"])["x"].tolist() == [1, 1, 1]
    as_text = naive.assign(event_timestamp=["2024-03-01T10:00:00Z", "2024-03-01 12:30", "2024-03-01T13:59:00+02:00"])
    assert get(as_text, ["stats:x"])["x"].tolist() == [1, 2, 1]
    pd.testing.assert_series_equal(get(naive, ["stats:x"])["event_timestamp"], naive["event_timestamp"])


def test_feature_dtypes_and_their_nulls(store):
    src = pd.DataFrame({"user_id": [1], "event_timestamp": ts(1), "n": [3], "f": [0.5], "b": [True], "s": ["x"],
                        "when": pd.to_datetime(["2024-01-01T00:00:00+01:00"])})
    define(src)
    out = get(pd.DataFrame({"user_id": [1, 2], "event_timestamp": ts(2, 2)}), ["stats"])
    assert [str(t) for t in out.dtypes[2:]] == ["Int64", "float64", "boolean", "object", "datetime64[ns, UTC]"]
    assert out.iloc[0, 2:].tolist() == [3, 0.5, True, "x", pd.Timestamp("2023-12-31T23:00:00Z")]
    assert out["n"].isna().tolist() == [False, True] and out["when"].isna().tolist() == [False, True]


def test_feature_names_that_clash_need_full_names(store):
    define(pd.DataFrame({"user_id": [1], "event_timestamp": ts(1), "x": [1]}), "a")
    define(pd.DataFrame({"user_id": [1], "event_timestamp": ts(1), "x": [2]}), "b")
    ent = pd.DataFrame({"user_id": [1], "event_timestamp": ts(2)})
    with pytest.raises(InvalidInput, match="full_feature_names=True"):
        get(ent, ["a:x", "b:x"])
    out = get(ent, ["a:x", "b:x"], full_feature_names=True)
    assert out[["a__x", "b__x"]].iloc[0].tolist() == [1, 2]
    with pytest.raises(InvalidInput, match="already has column"):
        get(ent.assign(x=0), ["a:x"])


@pytest.mark.parametrize("ent, message", [
    (pd.DataFrame({"user_id": ["1"], "event_timestamp": [T0]}), "holds str values, but the key is int64"),
    (pd.DataFrame({"user_id": [1.5], "event_timestamp": [T0]}), "fractions"),
    (pd.DataFrame({"uid": [1], "event_timestamp": [T0]}), "lacks join key column user_id"),
    (pd.DataFrame({"user_id": [1], "when": [1700000000]}), "needs the time of each row"),
    (pd.DataFrame({"user_id": [1], "event_timestamp": [1700000000]}), "holds numbers"),
    (pd.DataFrame({"user_id": [1], "event_timestamp": ["not a time"]}), "cannot be read as times"),
])
def test_bad_entity_dataframes_are_refused_with_a_clear_message(store, ent, message):
    define(pd.DataFrame({"user_id": [1], "event_timestamp": ts(1), "x": [1]}))
    with pytest.raises(InvalidInput, match=message):
        get(ent, ["stats:x"])


def test_same_answers_as_merge_asof_with_tolerance(store):
    rng = np.random.default_rng(3)
    n = 5_000
    src = pd.DataFrame({"user_id": rng.integers(0, 300, n),
                        "event_timestamp": T0 + pd.to_timedelta(rng.integers(0, 30 * 86400, n), unit="s"),
                        "x": rng.normal(size=n)})
    src = src.drop_duplicates(["user_id", "event_timestamp"])  # merge_asof picks arbitrarily among ties
    define(src, ttl="3d")
    ent = pd.DataFrame({"user_id": rng.integers(0, 320, 2000),
                        "event_timestamp": T0 + pd.to_timedelta(rng.integers(0, 32 * 86400, 2000), unit="s")})
    ours = get(ent, ["stats:x"])
    ref = pd.merge_asof(ent.reset_index().sort_values("event_timestamp"), src.sort_values("event_timestamp"),
                        on="event_timestamp", by="user_id", tolerance=pd.Timedelta("3d"), direction="backward")
    ref = ref.sort_values("index").set_index("index")
    np.testing.assert_array_equal(ours["x"].to_numpy(), ref["x"].to_numpy())


# -- randomized, against a reference implementation ---------------------------------------
def reference(src, ent, keys, ttl, created, cutoff):
    """For each entity row, scan every source row: the obvious O(n*m) definition."""
    out = []
    records = src.to_dict("records")
    for e in ent.to_dict("records"):
        best, best_rank = None, None
        for pos, r in enumerate(records):
            if any(pd.isna(r[k]) for k in keys) or pd.isna(r["event_timestamp"]) or pd.isna(e["event_timestamp"]):
                continue
            if any(pd.isna(e[k]) or r[k] != e[k] for k in keys):
                continue
            if r["event_timestamp"] > e["event_timestamp"]:
                continue
            if ttl is not None and r["event_timestamp"] < e["event_timestamp"] - ttl:
                continue
            c = r[created] if created else None
            if cutoff and created and pd.notna(c) and c > e["event_timestamp"]:
                continue
            rank = (r["event_timestamp"], c if created and pd.notna(c) else pd.Timestamp.min, pos)
            if best_rank is None or rank > best_rank:
                best, best_rank = r["v"], rank
        out.append(best)
    return out


# few keys and few distinct hours, so that ties, ttl boundaries and late rows are common
rows = st.lists(st.tuples(st.integers(0, 2), st.sampled_from("ab"), st.integers(0, 6), st.integers(0, 8),
                          st.one_of(st.none(), st.integers(-50, 50))), min_size=0, max_size=30)
queries = st.lists(st.tuples(st.integers(0, 3), st.sampled_from("abc"), st.integers(-1, 8)), min_size=1, max_size=20)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows, queries=queries, ttl_hours=st.sampled_from([None, 0, 1, 2, 3]), composite=st.booleans(),
       use_created=st.booleans())
def test_random_data_matches_the_reference(store, rows, queries, ttl_hours, composite, use_created):
    hour = pd.Timedelta(hours=1)
    src = pd.DataFrame({"k": pd.Series([r[0] for r in rows], dtype="int64"),
                        "k2": pd.Series([r[1] for r in rows], dtype=object),
                        "event_timestamp": pd.DatetimeIndex([T0 + r[2] * hour for r in rows], dtype="datetime64[ns]"),
                        "created": pd.DatetimeIndex([T0 + r[3] * hour for r in rows], dtype="datetime64[ns]"),
                        "v": pd.array([r[4] for r in rows], dtype="Int64")})
    keys = ("k", "k2") if composite else ("k",)
    ttl = None if not ttl_hours else ttl_hours * hour
    ent = pd.DataFrame({"k": [q[0] for q in queries], "k2": [q[1] for q in queries],
                        "event_timestamp": [T0 + q[2] * hour for q in queries]})
    ents = [nbmlops.Entity("k", ["k"], "int64"), nbmlops.Entity("k2", ["k2"], "string")][:len(keys)]
    view = nbmlops.FeatureView("r", ents, src, features={"v": "int64"}, ttl=ttl,
                               created_timestamp_column="created" if use_created else None)
    nbmlops.apply_features([*ents, view], force=True)
    for cutoff in (False, True):
        want = reference(src, ent, keys, ttl, "created" if use_created else None, cutoff)
        want = [None if v is None or pd.isna(v) else v for v in want]
        for fast in (True, False):  # the packed-key quicksort and the lexsort fallback
            frames.FAST_SORT = fast
            frames.clear_cache()
            try:
                got = get(ent, ["r:v"], filter_by_created_timestamp=cutoff)["v"].tolist()
            finally:
                frames.FAST_SORT = True
            assert [None if v is pd.NA else v for v in got] == want, (cutoff, fast)


def test_fallback_sort_for_times_that_do_not_pack_gives_the_same_answers(store):
    # nanosecond times spread over 200 years with many keys do not fit in one int64 with the key
    rng = np.random.default_rng(0)
    n = 2_000
    src = pd.DataFrame({"user_id": rng.integers(0, 1_000, n),
                        "event_timestamp": pd.to_datetime(rng.integers(-3 * 10**18, 3 * 10**18, n)),
                        "x": rng.normal(size=n)})
    define(src, ttl=None)
    prep = frames.prepared(nbmlops.get_feature_view("stats").to_doc())
    assert prep.comb_s is None  # the lexsort path
    ent = src.sample(300, random_state=1)[["user_id", "event_timestamp"]]
    out = get(ent, ["stats:x"])
    np.testing.assert_array_equal(out["x"].to_numpy(), src.loc[ent.index, "x"].to_numpy())


def test_timedelta_and_text_ttls_agree(store):
    src = pd.DataFrame({"user_id": [1], "event_timestamp": ts(0), "x": [1]})
    ent = pd.DataFrame({"user_id": [1, 1], "event_timestamp": ts(1.5, 2.5)})
    for ttl in ("2d", dt.timedelta(days=2), pd.Timedelta("48h"), 172800, "1d24h"):
        define(src, ttl=ttl)
        assert get(ent, ["stats:x"])["x"].tolist() == [1, pd.NA], ttl
