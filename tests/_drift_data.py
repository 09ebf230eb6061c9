"""Synthetic data with known shifts for the drift tests (and the benchmark's layout)."""

from __future__ import annotations

import numpy as np
import pandas as pd

CATS = ["a", "b", "c", "d"]
P_REF = [0.4, 0.3, 0.2, 0.1]
P_SHIFTED = [0.25, 0.25, 0.25, 0.25]


def frames(n: int, seed: int = 0, numeric: int = 20, categorical: int = 5, shift_numeric: int = 5,
           shift_categorical: int = 1, shift: float = 0.3, n_cur: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current: ``numeric`` N(0, 1) columns (the first ``shift_numeric`` moved by ``shift``
    sd in current) and ``categorical`` 4-level columns (the first ``shift_categorical`` made uniform)."""
    rng = np.random.default_rng(seed)

    def make(rows: int, shifted: bool) -> pd.DataFrame:
        d = {f"n{i}": rng.normal(shift if shifted and i < shift_numeric else 0.0, 1.0, rows) for i in range(numeric)}
        for j in range(categorical):
            p = P_SHIFTED if shifted and j < shift_categorical else P_REF
            d[f"c{j}"] = rng.choice(CATS, rows, p=p)
        return pd.DataFrame(d)

    return make(n, False), make(n_cur or n, True)


def shifted_columns(shift_numeric: int = 5, shift_categorical: int = 1) -> set[str]:
    return {f"n{i}" for i in range(shift_numeric)} | {f"c{j}" for j in range(shift_categorical)}
