"""Batch prediction jobs: order, rejects, workers, resume after kill -9, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import nbmlops
from nbmlops import InvalidInput


@pytest.fixture
def model(store):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(500, 4)), columns=["a", "b", "c", "d"])
    y = (X.a + X.b > 0).astype(int)
    fitted = LogisticRegression().fit(X, y)
    nbmlops.register_model(fitted, "scorer", alias="production")
    return fitted


def data(n, seed=2):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, 4)), columns=["a", "b", "c", "d"])


@pytest.mark.parametrize("src, dst", [("in.csv", "out.parquet"), ("in.parquet", "out.csv"), ("in.jsonl", "out.jsonl")])
def test_every_row_scored_in_order_with_the_version(model, tmp_path, src, dst):
    df = data(2_345)
    path = tmp_path / src
    {"csv": lambda: df.to_csv(path, index=False), "parquet": lambda: df.to_parquet(path),
     "jsonl": lambda: df.to_json(path, orient="records", lines=True)}[src.split(".")[1]]()
    result = nbmlops.batch_predict("scorer@production", path, tmp_path / dst, chunk_rows=500, progress=False)
    out = {"csv": pd.read_csv, "parquet": pd.read_parquet,
           "jsonl": lambda p: pd.read_json(p, lines=True)}[dst.split(".")[1]](tmp_path / dst)
    assert list(out["row"]) == list(range(2_345))
    assert (out["prediction"].to_numpy() == model.predict(df)).all()
    assert np.allclose(out["probability"], model.predict_proba(df).max(axis=1))
    assert (out["model_version"] == 1).all()
    assert result["scored"] == 2_345 and result["rejected"] == 0 and result["chunks"] == 5
    assert not (tmp_path / (dst + ".parts")).exists()


def test_parallel_workers_read_their_own_parquet_rows_across_row_groups(model, tmp_path):
    df = data(2_345)
    df.to_parquet(tmp_path / "in.parquet", row_group_size=700)  # 4 row groups, chunks of 500 straddle them
    calls = []
    result = nbmlops.batch_predict("scorer", tmp_path / "in.parquet", tmp_path / "out.parquet", chunk_rows=500,
                                   parallelism=2, progress=lambda done, total: calls.append((done, total)))
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out["row"]) == list(range(2_345))  # every row once, in order
    assert (out["prediction"].to_numpy() == model.predict(df)).all()
    assert np.allclose(out["probability"], model.predict_proba(df).max(axis=1))
    assert result["scored"] == 2_345 and result["chunks"] == 5 and result["chunks_skipped"] == 0
    done = [0] + [d for d, _ in calls]
    assert sorted(b - a for a, b in zip(done, done[1:])) == [345, 500, 500, 500, 500]  # the parent knows each n
    assert calls[-1] == (2_345, 2_345)


def test_bad_rows_go_to_rejects_with_a_reason_and_none_is_lost(model, tmp_path):
    df = data(1_000).astype(object)
    df.loc[3, "b"] = "abc"
    df.loc[400, "d"] = float("inf")
    df.loc[999, "a"] = "1,5"
    df.to_csv(tmp_path / "in.csv", index=False)
    result = nbmlops.batch_predict("scorer", tmp_path / "in.csv", tmp_path / "out.parquet", chunk_rows=300,
                                   parallelism=2, progress=False)
    out = pd.read_parquet(tmp_path / "out.parquet")
    rejects = pd.read_parquet(tmp_path / "out.rejects.parquet")
    assert list(rejects["row"]) == [3, 400, 999]
    assert "feature 'b' is not a finite number: 'abc'" in rejects["reason"][0] and rejects["b"][0] == "abc"
    assert sorted([*out["row"], *rejects["row"]]) == list(range(1_000))
    assert result["scored"] == 997 and result["rejected"] == 3


@pytest.mark.parametrize("first, then", [(1, 1), (2, 2), (1, 2)])
def test_a_killed_job_resumes_skipping_finished_chunks(model, tmp_path, monkeypatch, first, then):
    import slow_models  # noqa: F401  (importable by the job's workers)

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    X = data(200)
    slow = make_pipeline(FunctionTransformer(_pause), slow_models.Sleepy(0.0)).fit(X, np.zeros(200))
    nbmlops.register_model(slow, "slow")
    data(6_000).to_parquet(tmp_path / "in.parquet")
    script = textwrap.dedent(f"""
        import nbmlops
        nbmlops.batch_predict("slow", {str(tmp_path / 'in.parquet')!r}, {str(tmp_path / 'out.parquet')!r},
                              chunk_rows=500, parallelism={first}, progress=False)
    """)
    env = {**os.environ, "NBMLOPS_STORE": str(nbmlops.store.locate())}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, start_new_session=True)
    parts = tmp_path / "out.parquet.parts"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(parts.glob("part-*.parquet"))) < 3:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = {p.name: p.stat().st_mtime_ns for p in parts.glob("part-*.parquet")}
    assert 3 <= len(done) < 12, "the job was not killed mid-way"
    rewritten = []
    monkeypatch.setattr("nbmlops.serving.batch._join", _spy(nbmlops.serving.batch._join, parts, done, rewritten))
    result = nbmlops.batch_predict("slow", tmp_path / "in.parquet", tmp_path / "out.parquet", chunk_rows=500,
                                   parallelism=then, progress=False)
    assert result["chunks_skipped"] >= len(done) and result["chunks"] == 12
    assert rewritten == []  # finished chunks were not scored again
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out["row"]) == list(range(6_000))  # no row lost, none twice


def _spy(join, parts, done, rewritten):
    def spied(*args, **kwargs):
        rewritten.extend(n for n, t in done.items() if (parts / n).stat().st_mtime_ns != t)
        return join(*args, **kwargs)

    return spied


def _pause(X):
    time.sleep(0.15)
    return X


def test_bad_input_is_refused_before_any_work(model, tmp_path):
    data(10).to_csv(tmp_path / "in.csv", index=False)
    cases = [
        (dict(input=tmp_path / "missing.csv"), "does not exist"),
        (dict(input=tmp_path / "in.txt"), "must end in .csv, .parquet or .jsonl"),
        (dict(output=tmp_path / "out.xlsx"), "must end in"),
        (dict(parallelism=0), "parallelism must be an integer"),
        (dict(chunk_rows=-5), "chunk_rows must be"),
        (dict(model_uri="nope"), "no registered model"),
    ]
    for overrides, message in cases:
        args = {"model_uri": "scorer", "input": tmp_path / "in.csv", "output": tmp_path / "out.parquet",
                "progress": False, **overrides}
        with pytest.raises((InvalidInput, nbmlops.NotFound), match=message):
            nbmlops.batch_predict(**args)
    assert not (tmp_path / "out.parquet").exists()


def test_an_unfinished_job_of_another_model_is_not_mixed_in(model, tmp_path):
    from sklearn.linear_model import LogisticRegression

    df = data(100)
    df.to_csv(tmp_path / "in.csv", index=False)
    parts = tmp_path / "out.parquet.parts"
    parts.mkdir()
    (parts / "manifest.json").write_text('{"model": "scorer", "version": 99}')
    with pytest.raises(InvalidInput, match="unfinished job"):
        nbmlops.batch_predict("scorer", tmp_path / "in.csv", tmp_path / "out.parquet", progress=False)
    assert LogisticRegression  # the model fixture is what matters here


def test_serve_batch_magic(ip, model, tmp_path, capsys):
    data(50).to_csv(tmp_path / "in.csv", index=False)
    ip.run_line_magic("serve", f"--batch scorer {tmp_path / 'in.csv'} {tmp_path / 'out.csv'}")
    assert "50 rows → 50 scored" in capsys.readouterr().out
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="does not exist"):
        ip.run_line_magic("serve", f"--batch scorer {tmp_path / 'nope.csv'} {tmp_path / 'o.csv'}")
    with pytest.raises(UsageError, match="VERSION=WEIGHT"):
        ip.run_line_magic("serve", "scorer --ab 1:0.5")


def test_progress_function_hears_every_chunk_and_the_magic_leaves_no_widget(ip, model, tmp_path, monkeypatch):
    data(1_200).to_parquet(tmp_path / "in.parquet")
    calls = []
    nbmlops.batch_predict("scorer", tmp_path / "in.parquet", tmp_path / "a.parquet", chunk_rows=500,
                          progress=lambda done, total: calls.append((done, total)))
    assert calls == [(500, 1_200), (1_000, 1_200), (1_200, 1_200)]
    shown, updates = [], []

    class Handle:
        def update(self, obj, **kwargs):
            updates.append(obj)

    def fake_display(obj, **kw):
        shown.append(obj)
        return Handle()

    monkeypatch.setattr("nbmlops.magics._progress.display", fake_display)
    ip.run_line_magic("serve", f"--batch scorer {tmp_path / 'in.parquet'} {tmp_path / 'b.parquet'}")
    assert len(shown) == 1 and shown[0].value == 1_200  # an ipywidgets bar while it runs,
    assert updates == [{"text/plain": ""}]  # then nothing: the printed summary is what a report keeps
