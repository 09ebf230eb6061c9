"""export feast: the exported repository goes through Feast's own `feast apply`, historical
retrieval, materialization and online lookup, and gives the values nbmlops gives."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import nbmlops
from nbmlops.errors import InvalidInput

pytest.importorskip("feast")

pytestmark = pytest.mark.process  # feast apply/materialize run as subprocesses
T0 = pd.Timestamp("2024-03-01", tz="UTC")


def _feature_store(store, tmp_path):
    rng = np.random.default_rng(7)
    n = 3000
    ts = T0 + pd.to_timedelta(rng.integers(0, 20 * 86400, n), unit="s")
    stats = pd.DataFrame({"user_id": rng.integers(1, 120, n), "event_timestamp": ts,
                          "created": ts + pd.to_timedelta(rng.integers(0, 3600, n), unit="s"),
                          "orders": rng.integers(0, 9, n).astype("int32"), "amount": rng.random(n).round(6),
                          "vip": rng.random(n) < 0.2, "tier": rng.choice(["gold", "silver", "basic"], n)})
    stats.to_parquet(tmp_path / "stats.parquet")
    m = 400
    merchants = pd.DataFrame({"merchant": rng.choice(["m-a", "m-b", "m-c", "m-d", "m-e"], m),
                              "ts": (T0 - pd.Timedelta(days=5) + pd.to_timedelta(rng.integers(0, 25 * 86400, m), unit="s"))
                              .tz_localize(None),  # naive: UTC on both sides
                              "risk": rng.random(m).round(4)})
    user = nbmlops.Entity("user", join_keys=["user_id"], value_type="int64", description="a customer")
    merchant = nbmlops.Entity("merchant", join_keys=["merchant"], value_type="string")
    user_stats = nbmlops.FeatureView("user_stats", [user], tmp_path / "stats.parquet", ttl="2d",
                                     created_timestamp_column="created", tags={"team": "growth"},
                                     features={"orders": "int32", "amount": "float64", "vip": "bool", "tier": "string"})
    risk = nbmlops.FeatureView("merchant_risk", [merchant], merchants, timestamp_field="ts")  # no ttl: any age
    archive = nbmlops.FeatureView("user_archive", [user], tmp_path / "stats.parquet", features=["amount"], online=False)
    service = nbmlops.FeatureService("fraud", ["user_stats:orders", "user_stats:amount", "merchant_risk"])

    @nbmlops.on_demand_feature_view(sources=["user_stats:amount"], schema={"amount_x2": "float64"})
    def doubled(df):
        return pd.DataFrame({"amount_x2": df["amount"] * 2})

    nbmlops.apply_features([user, merchant, user_stats, risk, archive, service, doubled])
    k = 1500
    entity_df = pd.DataFrame({"user_id": rng.integers(1, 130, k), "merchant": rng.choice(["m-a", "m-b", "m-c", "m-z"], k),
                              "event_timestamp": T0 + pd.to_timedelta(rng.integers(-86400, 22 * 86400, k), unit="s")})
    return entity_df.drop_duplicates(["user_id", "merchant", "event_timestamp"]).reset_index(drop=True)


@pytest.mark.slow
def test_feast_apply_historical_and_online_equal_nbmlops(store, tmp_path):
    entity_df = _feature_store(store, tmp_path)
    repo = tmp_path / "repo"
    summary = nbmlops.export_feast(repo)
    assert (summary["feature_views"], summary["services"], summary["entities"]) == (3, 1, 2)
    assert any("doubled" in n for n in summary.notes)
    assert {p.name for p in (repo / "data").iterdir()} == {"user_stats.parquet", "merchant_risk.parquet",
                                                           "user_archive.parquet"}
    applied = subprocess.run([str(Path(sys.executable).parent / "feast"), "apply"], cwd=repo, capture_output=True,
                             text=True, timeout=180)
    assert applied.returncode == 0, applied.stderr[-3000:]
    assert "Created feature view user_stats" in applied.stdout and "Created feature service fraud" in applied.stdout

    from feast import FeatureStore

    warnings.simplefilter("ignore")
    fs = FeatureStore(repo_path=str(repo))
    views = {v.name: v for v in fs.list_feature_views()}
    assert views["user_stats"].ttl == pd.Timedelta(days=2) and views["user_stats"].online
    assert not views["user_archive"].online and views["merchant_risk"].ttl in (None, pd.Timedelta(0))
    assert views["user_stats"].tags == {"team": "growth"}
    assert [f.name for f in fs.get_feature_service("fraud").feature_view_projections[0].features] == ["orders", "amount"]

    refs = ["user_stats:orders", "user_stats:amount", "user_stats:vip", "user_stats:tier", "merchant_risk:risk"]
    ours = nbmlops.get_historical_features(entity_df, refs)
    theirs = fs.get_historical_features(entity_df=entity_df, features=refs).to_df()
    keys = ["user_id", "merchant", "event_timestamp"]
    merged = ours.merge(theirs, on=keys, how="left", suffixes=("", "_feast"), indicator=True)
    kept = (merged["_merge"] == "both").to_numpy()
    dropped = int((~kept).sum())
    assert len(theirs) == kept.sum() and kept.sum() > 0.5 * len(ours) and dropped > 0
    # Feast's file store drops rows that match no feature row; nbmlops keeps them with nulls
    assert merged.loc[~kept, ["orders", "risk"]].isna().any(axis=1).all()
    print(f"Feast kept {int(kept.sum())} of {len(ours)} entity rows and dropped {dropped}")
    for f in ["orders", "amount", "vip", "tier", "risk"]:
        a, b = merged.loc[kept, f].to_numpy(dtype=object), merged.loc[kept, f + "_feast"].to_numpy(dtype=object)
        same = [(pd.isna(x) and pd.isna(y)) or x == y for x, y in zip(a, b)]
        assert all(same), f"{f}: {sum(not s for s in same)} rows differ"

    start, end = T0 - pd.Timedelta(days=10), T0 + pd.Timedelta(days=30)
    nbmlops.materialize(start, end, views=["user_stats", "merchant_risk"])
    fs.materialize(start.to_pydatetime(), end.to_pydatetime())
    rows = [{"user_id": u, "merchant": m} for u in range(1, 125) for m in ("m-a", "m-c", "m-z")]
    a = nbmlops.get_online_features(refs, rows).to_dict()
    b = fs.get_online_features(features=refs, entity_rows=rows).to_dict()
    for f in ["orders", "amount", "vip", "tier", "risk"]:
        assert a[f] == b[f], f


def test_export_refuses_bad_input_with_one_clear_error(store, tmp_path):
    with pytest.raises(InvalidInput, match="no feature views"):
        nbmlops.export_feast(tmp_path / "empty")
    _feature_store(store, tmp_path)
    with pytest.raises(InvalidInput, match="unknown feature view 'nope'"):
        nbmlops.export_feast(tmp_path / "r", views=["nope"])
    with pytest.raises(InvalidInput, match="project"):
        nbmlops.export_feast(tmp_path / "r", project="my project")
    with pytest.raises(InvalidInput, match="inside the store"):
        nbmlops.export_feast(store.root / "repo")
    with pytest.raises(InvalidInput, match="unknown feature view"):
        nbmlops.export_feast(tmp_path / "r", views=["../../etc"])
    repo = tmp_path / "r"
    nbmlops.export_feast(repo, views="merchant_risk")
    with pytest.raises(InvalidInput, match="not empty"):
        nbmlops.export_feast(repo)
    nbmlops.export_feast(repo, views=["user_stats"], force=True)  # an earlier export: replaced whole
    assert {p.name for p in (repo / "data").iterdir()} == {"user_stats.parquet"}
    assert "merchant_risk" not in (repo / "nbmlops_features.py").read_text()
    compile((repo / "nbmlops_features.py").read_text(), "nbmlops_features.py", "exec")
    bad = subprocess.run([sys.executable, "-m", "nbmlops.cli", "export", "feast", str(repo)], capture_output=True, text=True)
    assert bad.returncode == 2 and "not empty" in bad.stderr and "Traceback" not in bad.stderr
