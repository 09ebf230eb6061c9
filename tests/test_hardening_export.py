"""Hardening of the ways in and out (issue 16, points 7 and 10, and a small one):

- ``import_mlflow`` from a hostile tracking server (a real ``mlflow server``) or a local sqlite
  store never copies the importer's own files: ``file://`` artifact URIs from a remote server,
  symlinks and paths outside the source's artifact root are refused, run by run;
- every model load in generated code checks the recorded sha256 first: the Kubeflow component
  (run by kfp's local runner) and the KServe batch script refuse a swapped pickle without running it;
- an unbalanced quote in any magic's line is one line (UsageError), not shlex's traceback.
"""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

MAGICS = ["drift", "features", "pipeline", "register", "serve", "nbmlops"]


# -- magics: an unterminated quote ---------------------------------------------------------------------
@pytest.mark.parametrize("magic", MAGICS)
def test_unterminated_quote_is_one_line_in_every_magic(ip, magic, capsys):
    with pytest.raises(UsageError, match=rf"%{magic}: No closing quotation .*close the quote"):
        ip.run_line_magic(magic, '"unterminated')


def test_unterminated_quote_in_track_is_one_line(ip):
    with pytest.raises(UsageError, match=r"%track: No closing quotation"):
        ip.run_cell_magic("track", '-e "unterminated', "x = 1\n")


# -- swapped pickles: the Kubeflow component and the KServe batch script -------------------------------
class Hostile:
    """Unpickling this writes ``marker``: the proof that a swapped pickle's code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('pwned')",)


def _hostile_pickle(path, marker) -> None:
    import pickle

    path.write_bytes(pickle.dumps(Hostile(str(marker))))


@pytest.fixture
def scored(store, calls):
    """A pipeline scoring a registered model (an input no step produces: imported from a URI parameter)."""
    from sklearn.linear_model import LogisticRegression

    import _pipeline_steps as steps
    import nbmlops

    raw = steps.raw_data()
    nbmlops.log_dataset(raw, "raw", snapshot=True)
    nbmlops.register_model(LogisticRegression().fit(raw[["x1", "x2"]], raw["y"]), "churn", alias="production")
    return nbmlops.Pipeline("score", [nbmlops.step(steps.evaluate, inputs={"features": "raw",
                                                                            "model": "model:churn@production"})])


@pytest.mark.slow
def test_kfp_component_refuses_a_swapped_model_pickle_unread(scored, tmp_path, calls, capfd):
    import nbmlops

    pytest.importorskip("kfp")
    from kfp import components, local

    out = nbmlops.export_kfp(scored, tmp_path / "score.yaml", packages=[], install_kfp_package=False)
    component = components.load_component_from_file(str(out))
    [uri_param] = [p for p in component.component_spec.inputs if p.endswith("_uri") and p != "raw_uri"]
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"),
               raise_on_error=True)
    component()  # the snapshot the export wrote: checked, loaded, scored
    assert calls() == ["evaluate"]

    marker = tmp_path / "PWNED"
    evil = tmp_path / "other.pkl"
    _hostile_pickle(evil, marker)
    with pytest.raises(RuntimeError, match="FAILURE"):  # the documented parameter pointed at another pickle
        component(**{uri_param: str(evil)})
    logs = capfd.readouterr()
    assert "IntegrityError" in logs.out + logs.err and "refusing to load it" in logs.out + logs.err
    assert not marker.exists(), "the swapped pickle's code ran"
    assert calls() == ["evaluate"]  # the step itself never started


def test_kfp_input_from_an_upstream_task_is_checked_against_its_recorded_hash(tmp_path):
    """A model flowing between tasks is checked against the sha256 its producer recorded in the
    artifact's metadata (the real chain runs in test_pipeline_kfp: train -> evaluate)."""
    import hashlib
    import pickle

    from nbmlops.errors import IntegrityError
    from nbmlops.pipelines.kfp_runtime import FILE_SHA, verified_copy

    class Art:
        def __init__(self, path, metadata):
            self.path, self.metadata = str(path), metadata

    good = tmp_path / "model.pkl"
    good.write_bytes(pickle.dumps({"a": 1}))
    sha = hashlib.sha256(good.read_bytes()).hexdigest()
    port = {"kind": "model", "name": "model", "spec": "model:model"}
    assert verified_copy("t", port, Art(good, {FILE_SHA: sha}), tmp_path / "copy").read_bytes() == good.read_bytes()
    marker = tmp_path / "PWNED"
    _hostile_pickle(good, marker)  # swapped in the pipeline root after the producer wrote it
    with pytest.raises(IntegrityError, match="refusing to load it"):
        verified_copy("t", port, Art(good, {FILE_SHA: sha}), tmp_path / "copy2")
    with pytest.raises(IntegrityError, match="carries no recorded sha256"):
        verified_copy("t", port, Art(good, {}), tmp_path / "copy3")
    assert not (tmp_path / "copy2").exists() and not (tmp_path / "copy3").exists() and not marker.exists()


def test_kserve_batch_job_refuses_a_swapped_model_file(store, tmp_path):
    import subprocess
    import sys

    import yaml
    from sklearn.linear_model import LogisticRegression

    import _pipeline_steps as steps
    import nbmlops

    raw = steps.raw_data(50)
    nbmlops.register_model(LogisticRegression().fit(raw[["x1", "x2"]], raw["y"]), "churn", alias="production")
    out = tmp_path / "deploy"
    nbmlops.export_kserve("churn@production", out, batch=("s3://data/in.csv", "pvc://results/run1"))
    config, job = yaml.safe_load_all((out / "batch-job.yaml").read_text())
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    sha = nbmlops.get_model_version("churn@production").sha256
    assert args[args.index("--sha256") + 1] == sha  # the Job pins the registered file's hash
    script = tmp_path / "kserve_batch.py"
    script.write_text(config["data"]["kserve_batch.py"])  # what the pod runs, from its ConfigMap
    (tmp_path / "input").mkdir()
    raw[["x1", "x2"]].to_csv(tmp_path / "input" / "in.csv", index=False)
    pod = tmp_path / "mnt-models"  # the Job's model folder: only the model file, no export marker
    pod.mkdir()
    (pod / "model.joblib").write_bytes((out / "model" / "model.joblib").read_bytes())

    def job_run(model_dir, *extra):
        argv = [a.replace("/mnt/models", str(model_dir)).replace("/mnt/input", str(tmp_path / "input"))
                .replace("/mnt/output", str(tmp_path / "output")) for a in args]
        return subprocess.run([sys.executable, str(script), *argv, *extra], capture_output=True, text=True)

    ok = job_run(pod)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "output" / "run1" / "part-00000.csv").exists()

    marker = tmp_path / "PWNED"
    _hostile_pickle(pod / "model.joblib", marker)  # the storage URI now serves another pickle
    bad = job_run(pod)
    assert bad.returncode != 0 and "refusing to unpickle it" in bad.stderr and "Traceback" not in bad.stderr
    _hostile_pickle(out / "model" / "model.joblib", marker)  # run on the export folder: its marker pins the hash
    bad = subprocess.run([sys.executable, str(script), "--model-dir", str(out / "model"), "--input",
                          str(tmp_path / "input"), "--output", str(tmp_path / "o2")], capture_output=True, text=True)
    assert bad.returncode != 0 and "refusing to unpickle it" in bad.stderr
    bare = tmp_path / "bare"  # no hash anywhere: refused, not trusted
    bare.mkdir()
    _hostile_pickle(bare / "model.pkl", marker)
    bad = subprocess.run([sys.executable, str(script), "--model-dir", str(bare), "--input", str(tmp_path / "input"),
                          "--output", str(tmp_path / "o3")], capture_output=True, text=True)
    assert bad.returncode != 0 and "no recorded sha256" in bad.stderr
    assert not marker.exists(), "the swapped pickle's code ran"
