"""Feature store benchmark: nbmlops against Feast (local provider, file offline store, sqlite
online store), side by side in one run, on the same Parquet file.

    python benchmarks/features.py            # full run (about 2 minutes on 2 cores), writes benchmarks/RESULTS.md
    python benchmarks/features.py --quick    # smoke test at small sizes, prints the table only

Work: 1,000,000 feature rows (5 float features) over 10,000 entities across 30 days, ttl 7 days;
historical retrieval (point-in-time join) for 10,000 and 100,000 entity rows; materialize the
full range into the online store; online lookup of 1 and of 100 entities.

Both tools read the same Parquet file. nbmlops is timed "cold" (its in-process cache of sorted
sources emptied first, so the time includes reading and sorting the file, as Feast does on every
call) and "warm" (a repeated retrieval from the same unchanged source). Values are checked:
on the entity rows Feast keeps, both must return identical values; Feast's file store drops
entity rows that match no feature row (nbmlops keeps them, with nulls), and the number it drops
is reported. "Feast / nbmlops" is how many times faster nbmlops is (below 1: slower).

Only the section "## Features (benchmarks/features.py)" of RESULTS.md is replaced; other sections stay.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import io
import logging
import os
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

if __package__:  # python -m benchmarks.features
    from ._common import log, machine, publish
else:  # python benchmarks/features.py
    from _common import log, machine, publish

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
RESULTS = HERE / "RESULTS.md"
PACKAGES = ("nbmlops", "feast", "pandas", "numpy", "pyarrow", "dask")
SECTION = "## Features (benchmarks/features.py)"

FULL = dict(rows=1_000_000, entities=10_000, days=30, features=5, entity_rows=(10_000, 100_000),
            cold_reps=3, warm_reps=5, feast_reps={10_000: 3, 100_000: 2}, mat_reps=3, feast_mat_reps=2,
            online1=5_000, online100=1_000, feast_online1=500, feast_online100=100, online_check=1_000)
QUICK = dict(rows=100_000, entities=1_000, days=30, features=5, entity_rows=(1_000, 10_000),
             cold_reps=2, warm_reps=3, feast_reps={1_000: 1, 10_000: 1}, mat_reps=1, feast_mat_reps=1,
             online1=500, online100=100, feast_online1=50, feast_online100=10, online_check=200)
T0 = "2024-01-01"
TTL_DAYS = 7
LOAD: list[float] = []


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def median_time(fn: Callable[[], Any], reps: int, before: Callable[[], Any] | None = None) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(reps):
        if before is not None:
            before()
        t, out = timed(fn)
        times.append(t)
    return statistics.median(times), out


def per_call(fn: Callable[[Any], Any], args: list[Any]) -> float:
    """Median wall time of single calls (perf_counter_ns around each)."""
    gc.collect()
    ns = time.perf_counter_ns
    times = []
    for a in args:
        t = ns()
        fn(a)
        times.append(ns() - t)
    return statistics.median(times) / 1e9


# -- data ---------------------------------------------------------------------------------------
def make_data(S: dict[str, Any], path: Path) -> tuple[Any, dict[int, Any]]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    n, e = S["rows"], S["entities"]
    t0 = pd.Timestamp(T0, tz="UTC")
    df = pd.DataFrame({"user_id": rng.integers(1001, 1001 + e, n).astype("int64"),
                       "event_timestamp": t0 + pd.to_timedelta(rng.integers(0, S["days"] * 86400, n), unit="s")})
    for i in range(S["features"]):
        df[f"f{i}"] = rng.normal(size=n)
    df.to_parquet(path, index=False)
    entity_dfs = {}
    for m in S["entity_rows"]:
        ent = pd.DataFrame({"user_id": rng.integers(1001, 1001 + e, int(m * 1.02)).astype("int64"),
                            "event_timestamp": t0 + pd.to_timedelta(rng.integers(0, S["days"] * 86400, int(m * 1.02)),
                                                                    unit="s")})
        # unique (key, time) rows, so that Feast's reordered output can be matched row by row
        entity_dfs[m] = ent.drop_duplicates(["user_id", "event_timestamp"]).head(m).reset_index(drop=True)
    return df, entity_dfs


# -- nbmlops ------------------------------------------------------------------------------------------
def bench_nbmlops(S: dict[str, Any], root: Path, path: Path, entity_dfs: dict[int, Any]) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    import nbmlops
    from nbmlops.features import frames

    r: dict[str, Any] = {"hist": {}, "out": {}}
    nbmlops.set_store(root / "store")
    user = nbmlops.Entity("user", ["user_id"], "int64")
    view = nbmlops.FeatureView("user_stats", [user], nbmlops.ParquetSource(path), ttl=f"{TTL_DAYS}d", online=True)
    nbmlops.apply_features([user, view])
    refs = [f"user_stats:f{i}" for i in range(S["features"])]
    nbmlops.get_historical_features(next(iter(entity_dfs.values())).head(100), refs, log=False)  # warm-up: imports
    for m, ent in entity_dfs.items():
        cold, out = median_time(lambda: nbmlops.get_historical_features(ent, refs, log=False), S["cold_reps"],
                                before=frames.clear_cache)
        warm, _ = median_time(lambda: nbmlops.get_historical_features(ent, refs, log=False), S["warm_reps"])
        r["hist"][m] = (cold, warm)
        r["out"][m] = out
        log(f"nbmlops historical {m:,} rows: cold {cold:.3f} s, warm {warm:.3f} s")
    t0 = pd.Timestamp(T0, tz="UTC")
    end = t0 + pd.Timedelta(days=S["days"] + 1)
    r["mat"], _ = median_time(lambda: nbmlops.materialize(t0, end), S["mat_reps"], before=frames.clear_cache)
    log(f"nbmlops materialize {r['mat']:.3f} s")
    rng = np.random.default_rng(1)
    ids = [int(x) for x in rng.integers(1001, 1001 + S["entities"], S["online1"])]
    nbmlops.get_online_features(refs, [{"user_id": ids[0]}]).to_dict()  # load the table once
    r["online1"] = per_call(lambda i: nbmlops.get_online_features(refs, [{"user_id": i}]).to_dict(), ids)
    batches = [[{"user_id": int(x)} for x in rng.integers(1001, 1001 + S["entities"], 100)] for _ in range(S["online100"])]
    r["online100"] = per_call(lambda rows: nbmlops.get_online_features(refs, rows).to_dict(), batches)
    log(f"nbmlops online: 1 entity {r['online1'] * 1e6:.1f} µs, 100 entities {r['online100'] * 1e6:.0f} µs")
    check = [int(x) for x in rng.integers(1001, 1001 + S["entities"], S["online_check"] - 10)]
    check += [1, 2, 3, 1000, 999_999, 1001 + S["entities"], 5_000_000, 0, -1, 123]  # unknown entities
    r["online_values"] = nbmlops.get_online_features(refs, [{"user_id": i} for i in check]).to_dict()
    r["check_ids"] = check
    nbmlops.set_store(None)
    return r


def bench_floor(df: Any, entity_dfs: dict[int, Any]) -> dict[int, float]:
    """pandas.merge_asof in memory (both sides sorted inside the timing): the floor PEERS.md names."""
    import pandas as pd

    out = {}
    feats = df.copy()
    for m, ent in entity_dfs.items():
        def run() -> Any:
            return pd.merge_asof(ent.sort_values("event_timestamp"), feats.sort_values("event_timestamp"),
                                 on="event_timestamp", by="user_id", tolerance=pd.Timedelta(days=TTL_DAYS),
                                 direction="backward")
        out[m], _ = median_time(run, 3)
    return out


# -- Feast -------------------------------------------------------------------------------------------
def bench_feast(S: dict[str, Any], root: Path, path: Path, entity_dfs: dict[int, Any], check_ids: list[int]
                ) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.repo_config import RepoConfig
    from feast.types import Float64

    r: dict[str, Any] = {"hist": {}, "out": {}}
    config = RepoConfig(project="bench", registry=str(root / "registry.db"), provider="local",
                        offline_store={"type": "file"},
                        online_store={"type": "sqlite", "path": str(root / "online.db")},
                        entity_key_serialization_version=3, repo_path=str(root))
    store = FeatureStore(config=config)
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    source = FileSource(path=str(path), timestamp_field="event_timestamp")
    view = FeatureView(name="user_stats", entities=[user], ttl=datetime.timedelta(days=TTL_DAYS), online=True,
                       schema=[Field(name=f"f{i}", dtype=Float64) for i in range(S["features"])], source=source)
    store.apply([user, view])
    refs = [f"user_stats:f{i}" for i in range(S["features"])]
    store.get_historical_features(entity_df=next(iter(entity_dfs.values())).head(100), features=refs).to_df()  # warm-up
    for m, ent in entity_dfs.items():
        t, out = median_time(lambda: store.get_historical_features(entity_df=ent, features=refs).to_df(),
                             S["feast_reps"][m])
        r["hist"][m] = t
        r["out"][m] = out
        log(f"Feast historical {m:,} rows: {t:.3f} s ({m - len(out):,} entity rows dropped)")
    t0 = pd.Timestamp(T0, tz="UTC")
    end = (t0 + pd.Timedelta(days=S["days"] + 1)).to_pydatetime()

    def mat() -> None:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            store.materialize(t0.to_pydatetime(), end)

    r["mat"], _ = median_time(mat, S["feast_mat_reps"])
    log(f"Feast materialize {r['mat']:.3f} s")
    rng = np.random.default_rng(2)
    ids = [int(x) for x in rng.integers(1001, 1001 + S["entities"], S["feast_online1"])]
    store.get_online_features(features=refs, entity_rows=[{"user_id": ids[0]}]).to_dict()
    r["online1"] = per_call(lambda i: store.get_online_features(features=refs, entity_rows=[{"user_id": i}]).to_dict(), ids)
    batches = [[{"user_id": int(x)} for x in rng.integers(1001, 1001 + S["entities"], 100)]
               for _ in range(S["feast_online100"])]
    r["online100"] = per_call(lambda rows: store.get_online_features(features=refs, entity_rows=rows).to_dict(), batches)
    log(f"Feast online: 1 entity {r['online1'] * 1e6:.0f} µs, 100 entities {r['online100'] * 1e3:.2f} ms")
    r["online_values"] = store.get_online_features(features=refs, entity_rows=[{"user_id": i} for i in check_ids]).to_dict()
    return r


# -- checks ------------------------------------------------------------------------------------------
def compare(S: dict[str, Any], nb: dict[str, Any], fe: dict[str, Any], df: Any) -> dict[str, Any]:
    """Same values on the rows Feast keeps; the rows it drops are exactly the ones nbmlops leaves null.

    One legitimate difference: when an entity's latest feature row is an exact tie (two rows with the same
    key and event time, and no created timestamp to order them), Feast keeps an arbitrary one (its sort is
    not stable) and nbmlops the last in the file. Such rows are counted, and checked to be ties whose rows
    hold both tools' values; any other difference is a failure."""
    import numpy as np
    import pandas as pd

    feats = [f"f{i}" for i in range(S["features"])]
    out: dict[str, Any] = {}
    for m, ours in nb["out"].items():
        theirs = fe["out"][m]
        merged = ours.merge(theirs, on=["user_id", "event_timestamp"], how="left", suffixes=("", "_feast"),
                            indicator=True)
        kept = merged["_merge"] == "both"
        same = np.ones(len(merged), bool)
        for f in feats:
            a, b = merged[f].to_numpy(), merged[f + "_feast"].to_numpy()
            same &= (a == b) | (np.isnan(a) & np.isnan(b))
        differ = merged[kept.to_numpy() & ~same]
        ties = 0
        for _, row in differ.iterrows():
            t = row["event_timestamp"]
            cand = df[(df.user_id == row["user_id"]) & (df.event_timestamp <= t)
                      & (df.event_timestamp >= t - pd.Timedelta(days=TTL_DAYS))]
            tied = cand[cand.event_timestamp == cand.event_timestamp.max()]
            if len(tied) > 1 and tied[feats].iloc[-1].tolist() == [row[f] for f in feats] and \
                    any(r == [row[f + "_feast"] for f in feats] for r in tied[feats].values.tolist()):
                ties += 1
        equal = ties == len(differ)
        ours_null = ours[feats[0]].isna().to_numpy()
        out[m] = {"rows": len(ours), "kept": int(kept.sum()), "dropped": int((~kept).sum()), "equal": equal,
                  "differ": len(differ), "ties": ties,
                  "order_kept": bool((ours[["user_id", "event_timestamp"]] ==
                                      nb["entity_dfs"][m][["user_id", "event_timestamp"]]).all().all()),
                  "dropped_are_our_nulls": bool(np.array_equal(~kept.to_numpy(), ours_null)),
                  "unexpected_rows": len(theirs) - int(kept.sum())}
    a, b = nb["online_values"], fe["online_values"]
    ours_on = np.array([a[f] for f in feats], dtype=float).T
    theirs_on = np.array([b[f] for f in feats], dtype=float).T
    differ = [i for i in range(len(a["user_id"]))
              if not np.array_equal(ours_on[i], theirs_on[i], equal_nan=True)]
    ties = 0
    for i in differ:
        cand = df[df.user_id == a["user_id"][i]]
        tied = cand[cand.event_timestamp == cand.event_timestamp.max()][feats].values.tolist()
        if len(tied) > 1 and tied[-1] == ours_on[i].tolist() and theirs_on[i].tolist() in tied:
            ties += 1
    out["online_equal"] = a["user_id"] == b["user_id"] and ties == len(differ)
    out["online_ties"] = ties
    out["online_known"] = sum(v is not None for v in a[feats[0]])
    return out


# -- report ------------------------------------------------------------------------------------------
def fmt(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms" if seconds < 0.1 else f"{seconds * 1e3:.0f} ms"
    return f"{seconds:.2f} s"


def ratio(theirs: float, ours: float) -> str:
    x = theirs / ours
    return f"**{x:.0f}×**" if x >= 10 else f"**{x:.1f}×**" if x >= 1 else f"{x:.2f}× (nbmlops slower)"


def report(S: dict[str, Any], nb: dict[str, Any], fe: dict[str, Any], floor: dict[int, float], chk: dict[str, Any],
           quick: bool, wall: float) -> tuple[str, list[tuple[str, bool, str]]]:
    n, e = S["rows"], S["entities"]
    load = " / ".join(f"{x:.1f}" for x in LOAD) if LOAD else "unknown"
    mode = f"Mode: {'--quick (small sizes)' if quick else 'full'}."
    out = [SECTION, "", machine(PACKAGES, f"{mode} Load average (1 min) at start / end: {load} (other work on the "
                                          "machine slows both tools)."), "",
           f"{n:,} feature rows ({S['features']} float features) over {e:,} entities across {S['days']} days, "
           f"ttl {TTL_DAYS} days, one Parquet file read by both tools.", "",
           "| work | nbmlops | Feast | Feast / nbmlops | merge_asof floor |", "| --- | --- | --- | --- | --- |"]
    for m in S["entity_rows"]:
        cold, warm = nb["hist"][m]
        out.append(f"| historical retrieval, {m:,} entity rows (nbmlops cold: reads + sorts the file) | {fmt(cold)} | "
                   f"{fmt(fe['hist'][m])} | {ratio(fe['hist'][m], cold)} | {fmt(floor[m])} |")
        out.append(f"| the same, nbmlops warm (source unchanged, sorted index cached in-process) | {fmt(warm)} | "
                   f"{fmt(fe['hist'][m])} | {ratio(fe['hist'][m], warm)} | — |")
    out.append(f"| materialize the {S['days']} days (nbmlops cold) | {fmt(nb['mat'])} | {fmt(fe['mat'])} | "
               f"{ratio(fe['mat'], nb['mat'])} | — |")
    out.append(f"| online lookup, 1 entity (median of {S['online1']:,} / {S['feast_online1']:,} calls) | "
               f"{fmt(nb['online1'])} | {fmt(fe['online1'])} | {ratio(fe['online1'], nb['online1'])} | — |")
    out.append(f"| online lookup, 100 entities (median of {S['online100']:,} / {S['feast_online100']:,} calls) | "
               f"{fmt(nb['online100'])} | {fmt(fe['online100'])} | {ratio(fe['online100'], nb['online100'])} | — |")
    out += ["", "Values, checked in the same run:", ""]
    for m in S["entity_rows"]:
        c = chk[m]
        out.append(f"- {m:,} entity rows: Feast returned {c['kept']:,} and dropped {c['dropped']:,} "
                   f"(entity rows with no feature row within the ttl); nbmlops returned all {c['rows']:,} in their "
                   f"order{' ' if c['order_kept'] else ' (ORDER CHANGED) '}with nulls on exactly those "
                   f"{c['dropped']:,}: {'yes' if c['dropped_are_our_nulls'] else '**NO**'}; values on the kept rows "
                   f"identical: {'yes' if c['equal'] else '**NO**'}"
                   + (f" ({c['ties']:,} row{'s' if c['ties'] != 1 else ''} matched an exact tie — two source rows with "
                      "the same user and second and no created timestamp: Feast keeps an arbitrary one, nbmlops the "
                      "last in the file; each tool's value is one of the tied rows'"
                      + (f"; {c['differ'] - c['ties']:,} other differences" if c["differ"] != c["ties"] else "") + ")"
                      if c["differ"] else "") + ".")
    out.append(f"- online: after both materialized the full range, {S['online_check']:,} lookups ({chk['online_known']:,} "
               f"known entities, the rest unknown) return identical values: {'yes' if chk['online_equal'] else '**NO**'}"
               + (f" ({chk['online_ties']} latest rows are exact ties, as above)" if chk["online_ties"] else "") + ".")
    out += ["", "Notes: medians, after one untimed warm-up retrieval per tool (imports); nbmlops cold = the in-process cache of sorted sources emptied before each call "
            f"({S['cold_reps']} calls), warm = repeated calls ({S['warm_reps']}); Feast historical: median of "
            f"{'/'.join(str(S['feast_reps'][m]) for m in S['entity_rows'])} calls. Online lookups return a dict "
            "(`.to_dict()` on both). The merge_asof floor sorts both sides in memory and does not read the file; "
            "it keeps an arbitrary row among equal timestamps, has no created-timestamp tie-break and reorders rows.", ""]
    m_big = S["entity_rows"][-1]
    cold_big = nb["hist"][m_big][0]
    all_ok = all(chk[m]["equal"] and chk[m]["dropped_are_our_nulls"] and chk[m]["order_kept"]
                 for m in S["entity_rows"]) and chk["online_equal"]
    targets = [
        (f"historical retrieval, {m_big:,} entity rows against {n:,} feature rows < 1 s (cold)", cold_big < 1.0,
         fmt(cold_big)),
        (f"the same, at least 10× faster than Feast (cold)", fe["hist"][m_big] / cold_big >= 10,
         f"{fe['hist'][m_big] / cold_big:.1f}×"),
        ("online lookup of one entity < 50 µs (median, in-process)", nb["online1"] < 50e-6, fmt(nb["online1"])),
        ("same values as Feast on every row Feast returns (exact ties: one of the tied rows)", all_ok,
         "yes" if all_ok else "no"),
    ]
    out += ["| target (nbmlops) | measured | status |", "| --- | --- | --- |"]
    out += [f"| {t} | {v} | {'pass' if ok else '**FAIL**'} |" for t, ok, v in targets]
    out += ["", f"Whole benchmark: {wall:.0f} s.", ""]
    return "\n".join(out), targets


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    ap.add_argument("--results", type=Path, default=None,
                    help="markdown file to update (default: benchmarks/RESULTS.md for a full run; "
                         "a --quick run only prints its table unless this is given)")
    args = ap.parse_args()
    S = QUICK if args.quick else FULL
    out = args.results if args.results is not None else (None if args.quick else RESULTS)
    warnings.filterwarnings("ignore")
    logging.getLogger("feast").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    LOAD.append(os.getloadavg()[0])
    WORK.mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="features-", dir=WORK))
    cwd = os.getcwd()
    try:
        os.chdir(root)
        path = root / "user_activity.parquet"
        log(f"writing {S['rows']:,} feature rows to {path.name}")
        df, entity_dfs = make_data(S, path)
        nb = bench_nbmlops(S, root / "nbmlops", path, entity_dfs)
        nb["entity_dfs"] = entity_dfs
        floor = bench_floor(df, entity_dfs)
        (root / "feast").mkdir()
        fe = bench_feast(S, root / "feast", path, entity_dfs, nb["check_ids"])
        chk = compare(S, nb, fe, df)
    finally:
        os.chdir(cwd)
        shutil.rmtree(root, ignore_errors=True)
        with contextlib.suppress(OSError):
            WORK.rmdir()  # only if no other benchmark is using it
    LOAD.append(os.getloadavg()[0])
    text, targets = report(S, nb, fe, floor, chk, args.quick, time.perf_counter() - t0)
    failed = [t for t, ok, _ in targets if not ok]
    publish(text, out, SECTION, failed)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
