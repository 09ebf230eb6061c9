"""``nbmlops pipeline run|runs|show|export`` from a shell (as cron would run it)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import _pipeline_steps as steps
import nbmlops

pytestmark = pytest.mark.process  # the command line runs as a subprocess

STEPS = '''
import pandas as pd
import nbmlops

def features(raw, scale=1.0):
    return raw.assign(x1=raw.x1 * scale)

def train(features, C=1.0):
    from sklearn.linear_model import LogisticRegression
    model = LogisticRegression(C=C).fit(features[["x1", "x2"]], features["y"])
    nbmlops.log_metric("accuracy", model.score(features[["x1", "x2"]], features["y"]))
    return model

def broken(features):
    raise ValueError("no such column: x9")
'''

YAML = '''
pipeline: churn
params: {scale: 1.0, C: 1.0}
steps:
  - {function: "steps.py:features", inputs: [raw], outputs: [features]}
  - {function: "steps.py:train", inputs: [features], outputs: ["model:model"]}
'''


@pytest.fixture
def project(store, tmp_path):
    nbmlops.log_dataset(steps.raw_data(), "raw", snapshot=True)
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "steps.py").write_text(STEPS)
    (folder / "churn.yaml").write_text(textwrap.dedent(YAML))
    return folder


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "nbmlops.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ}, timeout=240)


@pytest.mark.slow
def test_run_from_a_shell_then_cached_then_a_parameter(project, tmp_path):
    first = cli("pipeline", "run", "churn", cwd=project)
    assert first.returncode == 0, first.stderr
    assert "pipeline churn run" in first.stdout and "FINISHED" in first.stdout and "train: ran in" in first.stdout
    again = cli("pipeline", "run", "churn", cwd=project)
    assert again.returncode == 0 and again.stdout.count("cached from run") == 2
    changed = cli("pipeline", "run", "churn", "-p", "C=0.1", cwd=project)
    assert "features: cached" in changed.stdout and "train: ran in" in changed.stdout
    # from anywhere: the store keeps the definition of the last run (file paths made absolute)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    stored = cli("pipeline", "run", "churn", cwd=elsewhere)
    assert stored.returncode == 0, stored.stderr
    assert stored.stdout.count("cached from run") == 2
    runs = cli("pipeline", "runs", "churn", cwd=elsewhere)
    assert runs.returncode == 0 and runs.stdout.count("FINISHED") == 4
    show = cli("pipeline", "show", "churn", cwd=project)
    assert "train (function): features → model:model" in show.stdout
    assert nbmlops.pipeline_runs("churn").executed.tolist() == [0, 1, 0, 2]


def test_export_kfp_from_a_shell(project):
    pytest.importorskip("kfp")
    done = cli("pipeline", "export", "kfp", "churn", "out/churn.yaml", "--package", "nbmlops[pipelines]",
               "--cpu", "1", "-p", "C=0.3", cwd=project)
    assert done.returncode == 0, done.stderr
    assert (project / "out" / "churn.yaml").exists() and (project / "out" / "churn.py").exists()
    assert "defaultValue: 0.3" in (project / "out" / "churn.yaml").read_text()


def test_bad_input_and_failures_exit_non_zero(project):
    bad = cli("pipeline", "run", "churn", "-p", "zoom=2", cwd=project)
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "nbmlops: unknown parameter 'zoom' for pipeline churn (parameters: scale, C)")
    missing = cli("pipeline", "run", "nope", cwd=project)
    assert missing.returncode == 2 and "no pipeline named 'nope'" in missing.stderr
    (project / "fails.yaml").write_text(textwrap.dedent('''
        pipeline: fails
        steps:
          - {function: "steps.py:broken", inputs: {features: raw}, outputs: [x]}
    '''))
    failed = cli("pipeline", "run", "fails.yaml", cwd=project)
    assert failed.returncode == 1 and "failed after 1 attempt(s): ValueError: no such column: x9" in failed.stderr
    cycle = project / "cycle.yaml"
    cycle.write_text("pipeline: c\nsteps:\n  - {function: 'steps.py:features', inputs: {raw: b}, outputs: [a]}\n"
                     "  - {function: 'steps.py:features', name: f2, inputs: {raw: a}, outputs: [b]}\n")
    loop = cli("pipeline", "run", "cycle.yaml", cwd=project)
    assert loop.returncode == 2 and "the steps form a cycle" in loop.stderr
    typo = project / "typo.yaml"
    typo.write_text("pipeline: t\nsteps:\n  - {notebok: x.ipynb}\n")
    assert "unknown field(s) notebok" in cli("pipeline", "run", "typo.yaml", cwd=project).stderr
