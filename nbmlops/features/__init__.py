"""The feature store: feature views over time, point-in-time training sets, online lookups.

Feast's concepts and semantics, in-process on pandas/NumPy/Arrow, with no server::

    user = nbmlops.Entity("user", join_keys=["user_id"], value_type="int64")
    stats = nbmlops.FeatureView("user_stats", entities=[user], source="stats.parquet", ttl="7d")
    nbmlops.apply_features([user, stats])
    train = nbmlops.get_historical_features(labels, ["user_stats:orders_7d", "user_stats:avg_amount"])
    nbmlops.materialize_incremental()
    nbmlops.get_online_features(["user_stats:orders_7d"], [{"user_id": 1001}]).to_dict()

Where things live in the store (see ``repo``, ``online``):

    db/features.json     entities, views, on-demand views, services (one document each, versioned)
    db/online.json       per view: its online table's blob, rows, materialized windows
    blobs/sha256/…       DataFrame sources (a Parquet snapshot taken at apply) and online tables
                         (Arrow IPC files); Parquet/CSV sources stay where they are, by absolute path

Semantics: ``historical`` (the point-in-time join), ``timeutil`` (timezones: naive = UTC),
``online`` (materialization windows, merging, lookups), ``frames`` (the sorted index and the
in-process cache that makes repeated retrievals cheap).

Modules: ``definitions`` (entities, views, services), ``sources`` (DataFrame/Parquet/CSV and
column types), ``ondemand`` (on-demand views), ``repo`` (apply: diffs, compatibility, storage),
``plan`` (resolving feature references), ``frames`` (the point-in-time index), ``historical``,
``online``, ``stats``, ``catalog`` (listing and fetching definitions).
"""

from __future__ import annotations

from .catalog import (
                          apply_features,
                          get_feature_service,
                          get_feature_view,
                          list_feature_views,
)
from .definitions import (
                          CsvSource,
                          DataFrameSource,
                          Entity,
                          FeatureService,
                          FeatureView,
                          OnDemandFeatureView,
                          ParquetSource,
                          on_demand_feature_view,
)
from .historical import get_historical_features
from .online import get_online_features, materialize, materialize_incremental

__all__ = ["Entity", "FeatureView", "OnDemandFeatureView", "FeatureService", "DataFrameSource", "ParquetSource",
           "CsvSource", "on_demand_feature_view", "apply_features", "get_feature_view", "get_feature_service",
           "list_feature_views", "get_historical_features", "get_online_features", "materialize",
           "materialize_incremental"]
