"""Function steps for the pipeline tests (importable, so stored definitions and the CLI can find them)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import nbmlops

CALLS = Path(os.environ.get("NBMLOPS_TEST_CALLS", "/tmp/nbmlops-test-calls"))


def record(name: str) -> None:
    """Count executions in a file (steps may run in another process)."""
    with open(CALLS, "a") as f:
        f.write(name + "\n")


def calls() -> list[str]:
    return CALLS.read_text().split() if CALLS.exists() else []


def raw_data(n: int = 200, seed: int = 0, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(shift, 1, n)
    x2 = rng.normal(2 * shift, 1, n)
    w2 = 0.5 if not shift else -1.0  # with drift, x2 also changes sign in how it drives y (concept drift)
    y = (x1 + w2 * x2 + rng.normal(0, 0.5, n) > (1 + w2 * 2) * shift).astype(int)
    return pd.DataFrame({"x1": x1, "x2": x2, "y": y})


def churn_pipeline(params: dict[str, Any], **features_step: Any) -> nbmlops.Pipeline:
    """"churn": raw → features → train → evaluate; ``features_step`` goes to the features step (retries, …)."""
    return nbmlops.Pipeline("churn", [
        nbmlops.step(features, inputs=["raw"], outputs=["features"], **features_step),
        nbmlops.step(train, inputs=["features"], outputs=["model:model"]),
        nbmlops.step(evaluate, inputs=["features", "model:model"]),
    ], params=params)


def features(raw, scale=1.0):
    record("features")
    out = raw.copy()
    out["x1"] = out["x1"] * scale
    return out


def train(features, C=1.0, shuffle_labels=False):
    from sklearn.linear_model import LogisticRegression

    record("train")
    y = features["y"].sample(frac=1, random_state=0).to_numpy() if shuffle_labels else features["y"]
    X = features[["x1", "x2"]]
    model = LogisticRegression(C=C).fit(X, y)
    nbmlops.log_metric("train_accuracy", model.score(X, features["y"]))
    nbmlops.log_model(model, "model", reference=(X, features["y"]))
    return None  # logged above: the step's output


def evaluate(features, model):
    record("evaluate")
    nbmlops.log_metric("accuracy", float(model.score(features[["x1", "x2"]], features["y"])))


def summary(features):
    record("summary")
    return features.describe()


def flaky(features, fail_times=1):
    """Fails its first ``fail_times`` calls (counted in a file), then works."""
    record("flaky")
    if calls().count("flaky") <= fail_times:
        raise RuntimeError("flaky failure")
    return features.head(3)


def slow(features, gate=""):
    """Waits for the gate file to exist (to be killed meanwhile)."""
    record("slow")
    while gate and not Path(gate).exists():
        time.sleep(0.05)
    return features.tail(3)


def broken(features):
    record("broken")
    raise ValueError("bad column 'x9'")


def two_outputs(raw):
    return {"left": raw[["x1"]], "right": raw[["x2"]]}


def pair(raw):
    return raw.head(2), raw.tail(2)
