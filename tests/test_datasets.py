"""Dataset versions: snapshots, loading by version, deduplication, diffs, lineage, size limit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import nbmlops
from nbmlops import InvalidInput, NotFound


def sales(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"order_id": np.arange(n), "amount": rng.normal(100, 10, n).round(2),
                         "region": rng.choice(["north", "south"], n), "when": pd.date_range("2024-01-01", periods=n)})


def blob_count(store):
    return store.blobs.stats()[0]


def test_snapshot_is_version_one_and_loads_back_equal(store):
    df = sales().set_index("order_id")
    v = nbmlops.log_dataset(df, "sales", snapshot=True)
    assert (v.name, v.version, v.uri, v.rows, v.stored) == ("sales", 1, "sales@1", 6, True)
    back = nbmlops.load_dataset("sales@1")
    pd.testing.assert_frame_equal(back, df)
    assert nbmlops.fingerprint(back)["sha256"] == v.sha256  # the same data, index and dtypes included
    pd.testing.assert_frame_equal(nbmlops.load_dataset("sales"), df)
    pd.testing.assert_frame_equal(nbmlops.load_dataset("sales@latest"), df)


def test_same_data_twice_is_one_version_and_one_blob(store):
    df = sales()
    v1 = nbmlops.log_dataset(df, "sales", snapshot=True)
    blobs = blob_count(store)
    v1b = nbmlops.log_dataset(df.copy(), "sales", snapshot=True)
    assert v1b.version == 1 and blob_count(store) == blobs
    changed = df.assign(amount=df.amount + 1)
    v2 = nbmlops.log_dataset(changed, "sales", snapshot=True)
    assert v2.version == 2 and blob_count(store) == blobs + 1
    v3 = nbmlops.log_dataset(df, "sales", snapshot=True)  # back to the first data: a new version, no new bytes
    assert v3.version == 3 and v3.doc["blob"] == v1.doc["blob"] and blob_count(store) == blobs + 1
    versions = nbmlops.list_datasets("sales")
    assert list(versions.version) == [1, 2, 3] and versions.stored.all()
    listing = nbmlops.list_datasets()
    assert listing.loc[0, "name"] == "sales" and listing.loc[0, "latest_version"] == 3
    assert listing.loc[0, "stored_bytes"] == v1.doc["blob"]["size"] + v2.doc["blob"]["size"]


def test_series_arrays_files_and_int_columns_come_back_as_logged(store, tmp_path):
    s = pd.Series([1.5, 2.5, None], name="y")
    pd.testing.assert_series_equal(nbmlops.log_dataset(s, "ys", snapshot=True).load(), s)
    arr = np.arange(12.0).reshape(4, 3)
    assert (nbmlops.log_dataset(arr, "arr", snapshot=True).load() == arr).all()
    vec = np.arange(5)
    assert (nbmlops.log_dataset(vec, "vec", snapshot=True).load() == vec).all()
    ints = pd.DataFrame(np.eye(2), columns=[0, 1])
    pd.testing.assert_frame_equal(nbmlops.log_dataset(ints, "ints", snapshot=True).load(), ints)
    path = tmp_path / "sales.csv"
    sales().drop(columns="when").to_csv(path, index=False)
    v = nbmlops.log_dataset(path, "from_csv", snapshot=True)
    assert v.doc["source"] == str(path.resolve())
    pd.testing.assert_frame_equal(nbmlops.load_dataset("from_csv"), pd.read_csv(path))


def test_run_and_model_lineage_name_the_exact_version(store):
    from sklearn.linear_model import LogisticRegression

    df = sales(40)
    with nbmlops.start_run(experiment="lineage") as run:
        v = nbmlops.log_dataset(df, "training", snapshot=True)
        model = LogisticRegression().fit(df[["amount"]], df.region)
        nbmlops.log_model(model, "model")
    entry = run.info["datasets"][0]
    assert (entry["name"], entry["version"], entry["sha256"]) == ("training", 1, v.sha256)
    nbmlops.log_dataset(df.head(10), "training", snapshot=True)  # a later version must not confuse lineage
    mv = nbmlops.register_model(f"{run.id}:model", "clf")
    (d,) = mv.datasets
    again = nbmlops.load_dataset(f"{d['name']}@{d['version']}")
    pd.testing.assert_frame_equal(again, df)


def test_over_the_limit_keeps_the_fingerprint_and_says_so(store, monkeypatch):
    df = sales(1000)
    with pytest.warns(UserWarning, match=r"over the snapshot limit of 1\.0 kB.*only the fingerprint"):
        v = nbmlops.log_dataset(df, "big", snapshot=True, max_bytes="1kB")
    assert not v.stored and "fingerprint only" in repr(v) and blob_count(store) == 0
    assert v.summary["amount"]["kind"] == "numeric"
    with pytest.raises(NotFound, match="big@1 has no stored data: not stored"):
        nbmlops.load_dataset("big")
    monkeypatch.setenv("NBMLOPS_SNAPSHOT_LIMIT", "10MB")
    v2 = nbmlops.log_dataset(df, "big", snapshot=True)  # same data, now small enough: stored as a new version
    assert v2.stored and v2.version == 2
    pd.testing.assert_frame_equal(nbmlops.load_dataset("big"), df)
    d = nbmlops.diff_datasets("big@1", "big@2")  # summaries work without rows
    assert d.identical


def test_diff_reports_schema_rows_and_summaries(store):
    a = sales(100, seed=1)
    b = a.copy()
    b = b[b.order_id >= 10]  # 10 removed
    b = pd.concat([b, sales(5, seed=2).assign(order_id=range(100, 105), region="west")])  # 5 added
    b.loc[b.order_id == 50, "amount"] = 1000.0  # one changed
    b["channel"] = "web"
    b = b.drop(columns="when")
    nbmlops.log_dataset(a, "sales", snapshot=True)
    nbmlops.log_dataset(b, "sales", snapshot=True)
    d = nbmlops.diff_datasets("sales@1", "sales@2", key="order_id")
    assert d.rows == (100, 95)
    assert d.schema == {"added": ["channel"], "removed": ["when"], "retyped": {}}
    assert d.counts == {"added": 5, "removed": 10, "changed": 1, "unchanged": 89}
    assert sorted(d.added.order_id) == [100, 101, 102, 103, 104] and len(d.removed) == 10
    assert d.changed.loc[0, "amount_b"] == 1000.0
    assert "west" in d.columns["region"]["new_values"] and "amount" in d.changed_columns
    text = repr(d)
    assert "rows 100 → 95 (-5)" in text and "columns added: channel" in text and "5 rows added, 10 removed" in text
    html = d._repr_html_()
    assert "channel" in html and "<script" not in html
    assert d.to_dict()["row_counts"]["changed"] == 1
    # no key: summaries only; DataFrames can be compared with a version too
    assert nbmlops.diff_datasets("sales@1", a).identical


def test_html_escapes_names_and_values(store):
    df = pd.DataFrame({"<b>col</b>": ["<script>alert(1)</script>", "x"]})
    v = nbmlops.log_dataset(df, "xss", snapshot=True)
    v2 = nbmlops.log_dataset(df.assign(**{"<b>col</b>": ["<img src=x>", "y"]}), "xss", snapshot=True)
    for html in (v._repr_html_(), nbmlops.diff_datasets(v.uri, v2.uri)._repr_html_()):
        assert "<script" not in html and "<img" not in html and "<b>col</b>" not in html


@pytest.mark.parametrize("call, message", [
    (lambda: nbmlops.load_dataset("nope"), r"no dataset named 'nope' \(datasets: sales\)"),
    (lambda: nbmlops.load_dataset("sales@7"), r"dataset 'sales' has no version 7 \(versions: 1\)"),
    (lambda: nbmlops.load_dataset("sales@x"), r"the version after '@' must be a positive number"),
    (lambda: nbmlops.load_dataset("sales@0"), r"positive number"),
    (lambda: nbmlops.log_dataset(sales(), "../etc", snapshot=True), r"invalid dataset name"),
    (lambda: nbmlops.log_dataset(sales(), "a@b", snapshot=True), r"invalid dataset name"),
    (lambda: nbmlops.log_dataset("missing.csv", "m", snapshot=True), r"no file 'missing.csv'"),
    (lambda: nbmlops.log_dataset(np.zeros((2, 2, 2)), "cube", snapshot=True), r"3-dimensional"),
    (lambda: nbmlops.log_dataset(pd.DataFrame({"m": [1, "a", 2.5]}), "mixed", snapshot=True), r"cannot store .* Parquet"),
    (lambda: nbmlops.log_dataset(sales(), "s", snapshot=True, max_bytes="lots"), r"a size is a number of bytes"),
    (lambda: nbmlops.diff_datasets("sales@1", "sales@1", key="nokey"), r"key column 'nokey' is not in sales@1"),
    (lambda: nbmlops.log_dataset(sales(), "s"), r"no active run"),
])
def test_bad_input_is_one_clear_message_and_writes_nothing(store, call, message):
    nbmlops.log_dataset(sales(), "sales", snapshot=True)
    before = sorted(p.relative_to(store.root) for p in store.root.rglob("*") if p.is_file() and "tmp" not in p.parts)
    with pytest.raises((InvalidInput, NotFound), match=message):
        call()
    after = sorted(p.relative_to(store.root) for p in store.root.rglob("*") if p.is_file() and "tmp" not in p.parts)
    assert after == before


def test_versions_from_many_processes_are_numbered_without_gaps(store, tmp_path):
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent("""
        import sys, pandas as pd, nbmlops
        for i in range(5):
            nbmlops.log_dataset(pd.DataFrame({"w": [int(sys.argv[1])], "i": [i]}), "shared", snapshot=True)
    """))
    procs = [subprocess.Popen([sys.executable, str(script), str(w)]) for w in range(3)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    versions = nbmlops.list_datasets("shared")
    assert sorted(versions.version) == list(range(1, 16))
    loaded = pd.concat([nbmlops.load_dataset(f"shared@{v}") for v in versions.version])
    assert sorted(zip(loaded.w, loaded.i)) == [(w, i) for w in range(3) for i in range(5)]
