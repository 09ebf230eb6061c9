"""Side by side with Evidently itself (the [bench] extra): the same default test per column, the
same scores, the same verdicts — at small sizes (K-S, chi-square, Z) and large (Wasserstein, JS)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbmlops import drift_report

pytestmark = pytest.mark.slow


def evidently_columns(ref: pd.DataFrame, cur: pd.DataFrame) -> dict[str, tuple[str, float, bool]]:
    evidently = pytest.importorskip("evidently")
    from evidently.presets import DataDriftPreset

    snapshot = evidently.Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
    out = {}
    for m in snapshot.dict()["metrics"]:
        cfg = m.get("config", {})
        if str(cfg.get("type", "")).endswith("ValueDrift"):
            value, threshold = float(m["value"]), float(cfg["threshold"])
            drifted = value < threshold if "p_value" in cfg["method"] else value >= threshold
            out[cfg["column"]] = (cfg["method"], value, drifted)
    return out


def mixed(n: int, seed: int, shift: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    s = 0.4 if shift else 0.0
    return pd.DataFrame({
        "x": rng.normal(s, 1, n), "y": rng.exponential(1 + s, n), "z": rng.normal(0, 1, n),
        "few": rng.choice([0.0, 1.0, 2.0], n, p=[0.5, 0.3, 0.2] if not shift else [0.3, 0.3, 0.4]),
        "color": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2] if not shift else [0.3, 0.3, 0.4]),
        "yes_no": rng.choice(["yes", "no"], n, p=[0.6, 0.4] if not shift else [0.45, 0.55]),
        "steady": rng.choice(["p", "q", "r", "s"], n),
    })


@pytest.mark.parametrize("n", [600, 20_000])
def test_same_tests_scores_and_verdicts_as_evidently(n):
    ref, cur = mixed(n, 1, False), mixed(n, 2, True)
    theirs = evidently_columns(ref, cur)
    ours = drift_report(ref, cur)
    assert set(theirs) == {c.name for c in ours.columns}
    for name, (method, value, drifted) in theirs.items():
        col = ours[name]
        label = {"K-S p-value": "K-S p_value", "chi-square p-value": "chi-square p_value",
                 "Z-test p-value": "Z-test p_value"}.get(col.stattest_label, col.stattest_label)
        assert label == method, name
        assert col.score == pytest.approx(value, rel=1e-6, abs=1e-9), name
        assert col.drifted == drifted, name
