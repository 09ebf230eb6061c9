"""Batch prediction's fast path and pipeline: the parallelism chosen, ordered output whatever order chunks
finish in, and the arrow fast path giving exactly what the general pandas path gives."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import nbmlops
from nbmlops.serving.batch import MIN_ROWS_PER_PROCESS, choose_parallelism


def data(n, seed=3):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, 4)), columns=["a", "b", "c", "d"])


@pytest.mark.parametrize("rows, fmt, cpus, load, expected", [
    (10 * MIN_ROWS_PER_PROCESS, "csv", 16, 0.0, 1),  # text is parsed in the job's process: no workers
    (10 * MIN_ROWS_PER_PROCESS, "jsonl", 16, 0.0, 1),
    (MIN_ROWS_PER_PROCESS - 1, "parquet", 16, 0.0, 1),  # small input: a worker's start-up would not pay
    (10 * MIN_ROWS_PER_PROCESS, "parquet", 1, 0.0, 1),  # one core
    (10 * MIN_ROWS_PER_PROCESS, "parquet", 2, 0.0, 1),  # one process already keeps two cores busy
    (10 * MIN_ROWS_PER_PROCESS, "parquet", 8, 7.5, 1),  # a busy machine
    (10 * MIN_ROWS_PER_PROCESS, "parquet", 8, 0.0, 4),  # big Parquet input, idle cores: one per two cores
    (10 * MIN_ROWS_PER_PROCESS, "parquet", 8, 4.0, 2),
    (3 * MIN_ROWS_PER_PROCESS, "parquet", 16, 0.0, 3),  # no more processes than the rows pay for
])
def test_parallelism_is_chosen_from_the_input_and_idle_cores(rows, fmt, cpus, load, expected):
    assert choose_parallelism(rows, fmt, cpus=cpus, load=load) == expected


def test_a_small_input_without_parallelism_is_scored_in_process(store, tmp_path, monkeypatch):
    from sklearn.linear_model import LogisticRegression

    df = data(3_000)
    model = LogisticRegression().fit(df, df.a > 0)
    nbmlops.register_model(model, "m")
    df.to_parquet(tmp_path / "in.parquet")

    def no_pool(*args, **kwargs):
        raise AssertionError("a worker pool was started for a small input")

    monkeypatch.setattr("nbmlops.serving.batch.ProcessPoolExecutor", no_pool)
    result = nbmlops.batch_predict("m", tmp_path / "in.parquet", tmp_path / "out.parquet", chunk_rows=1_000,
                                   progress=False)
    assert result["parallelism"] == 1 and result["scored"] == 3_000
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert (out["prediction"].to_numpy() == model.predict(df)).all()


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_read_ahead_keeps_order_across_row_groups_rejects_and_both_paths(store, tmp_path, suffix):
    """Chunks that split row groups, chunks taking the fast path and chunks with rejects (general path),
    read one ahead in a thread: every row once, in order, the same values as the model gives."""
    from sklearn.linear_model import LogisticRegression

    df = data(5_000)
    model = LogisticRegression().fit(df, np.where(df.a + df.b > 0, "yes", "no"))
    nbmlops.register_model(model, "m")
    bad = df.copy()
    bad.loc[[10, 2_345, 4_999], "c"] = [np.inf, np.nan, -np.inf]
    path = tmp_path / f"in{suffix}"
    bad.to_parquet(path, row_group_size=700) if suffix == ".parquet" else bad.to_csv(path, index=False)
    result = nbmlops.batch_predict("m", path, tmp_path / "out.parquet", chunk_rows=300, parallelism=1,
                                   progress=False)
    out = pd.read_parquet(tmp_path / "out.parquet")
    rejects = pd.read_parquet(tmp_path / "out.rejects.parquet")
    assert list(rejects["row"]) == [10, 2_345, 4_999]  # ±inf: not a finite number; NaN: refused by the model
    assert "not a finite number" in rejects["reason"][0] and "NaN" in rejects["reason"][1]
    keep = np.setdiff1d(np.arange(5_000), [10, 2_345, 4_999])
    assert list(out["row"]) == list(keep)
    assert list(out.columns) == ["row", "prediction", "probability", "model_version"]
    assert out["prediction"].dtype == object and out["model_version"].dtype == np.int64
    assert (out["prediction"].to_numpy() == model.predict(df.iloc[keep])).all()
    assert np.allclose(out["probability"], model.predict_proba(df.iloc[keep]).max(axis=1), rtol=0, atol=1e-12)
    assert result["chunks"] == 17 and result["rejected"] == 3


def test_chunks_arriving_out_of_order_are_written_in_order(tmp_path):
    """The output holds chunks that finish early until the ones before them are done."""
    from nbmlops import ServingError
    from nbmlops.serving.batch_io import OrderedOutput

    plan = [(i * 10, 10) for i in range(6)]
    out = OrderedOutput(tmp_path, tmp_path / "out.parquet", "parquet", tmp_path / "out.rejects.parquet", plan)
    for i in (3, 1, 5, 0, 4, 2):
        rows = np.arange(i * 10, i * 10 + 10)
        out.add(i, (pa.table({"row": rows, "prediction": rows % 2}), None))
        assert out.next == {3: 0, 1: 0, 5: 0, 0: 2, 4: 2, 2: 6}[i]  # written so far: only an unbroken prefix
    assert out.finish(6, 60) == (60, 0)
    assert list(pd.read_parquet(tmp_path / "out.parquet")["row"]) == list(range(60))
    wrong = OrderedOutput(tmp_path, tmp_path / "o2.parquet", "parquet", tmp_path / "o2.rejects.parquet", plan)
    with pytest.raises(ServingError, match="chunk 0 does not hold rows 0…9 exactly once"):
        wrong.add(0, (pa.table({"row": np.arange(1, 11), "prediction": np.zeros(10)}), None))
    wrong.close()


def test_the_job_and_its_workers_share_the_chunks_and_the_output_keeps_input_order(store, tmp_path, monkeypatch):
    """The job's process and two workers take chunks as they are free (every third chunk is slow to
    score); the output lists every row once, in input order, as the model scores them."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    df = data(3_000)
    df["a"] = np.arange(3_000, dtype=float)  # the row number: _uneven slows every third chunk down
    model = make_pipeline(FunctionTransformer(_uneven), LogisticRegression()).fit(df, df.b > 0)
    nbmlops.register_model(model, "uneven")
    df.to_parquet(tmp_path / "in.parquet", row_group_size=1_000)
    result = nbmlops.batch_predict("uneven", tmp_path / "in.parquet", tmp_path / "out.parquet", chunk_rows=100,
                                   parallelism=3, progress=False)
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out["row"]) == list(range(3_000))
    assert (out["prediction"].to_numpy() == model.predict(df)).all()
    assert result["chunks"] == 30 and result["parallelism"] == 3


def _uneven(X):
    if len(X) > 1 and int(X.iloc[0, 0]) // 100 % 3 == 0:
        time.sleep(0.3)
    return X


@pytest.mark.parametrize("kind", ["int classes", "str classes", "bool classes", "regressor without names"])
def test_the_arrow_fast_path_gives_what_the_pandas_path_gives(store, kind):
    from sklearn.linear_model import LinearRegression, LogisticRegression

    from nbmlops.serving import batch_score
    from nbmlops.serving.model import ServedModel

    df = data(1_000)
    y = df.a + df.b > 0
    fitted = {"int classes": lambda: LogisticRegression().fit(df, y.astype(int)),
              "str classes": lambda: LogisticRegression().fit(df, np.where(y, "yes", "no")),
              "bool classes": lambda: LogisticRegression().fit(df, y),
              "regressor without names": lambda: LinearRegression().fit(df.to_numpy(), df.c)}[kind]()
    nbmlops.register_model(fitted, "m")
    model = ServedModel("m")
    table = pa.Table.from_pandas(df.assign(extra="x"), preserve_index=False)
    fast = batch_score._fast(model, table, 500)
    assert fast is not None, "the fast path did not apply"
    general, rejects = batch_score.score_pandas(model, table.to_pandas(), 500)
    assert rejects is None
    assert fast[0].schema.equals(general.schema, check_metadata=False)
    assert fast[0].to_pandas().equals(general.to_pandas())
