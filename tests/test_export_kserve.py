"""export kserve: the model directory KServe's sklearn runtime loads, manifests checked against
KServe's own API models, a V1 predict answered by KServe's model server on loopback, and the
batch Job's scoring script run shard by shard."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest

import nbmlops
from nbmlops.errors import IntegrityError, InvalidInput, NotFound

kserve = pytest.importorskip("kserve")
yaml = pytest.importorskip("yaml")

pytestmark = pytest.mark.process  # KServe's model server


@pytest.fixture
def cancer(store):
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    with nbmlops.start_run(experiment="cancer") as run:
        model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
        run.log_model(model, "model", reference=(X, y))
    nbmlops.register_model(f"{run.id}:model", "Cancer_Model", alias="production")
    return model, X


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_export_writes_model_dir_and_manifests_kserve_accepts(cancer, tmp_path):
    model, X = cancer
    out = tmp_path / "deploy"
    summary = nbmlops.export_kserve("Cancer_Model@production", out, namespace="ml", storage_uri="s3://models/cancer/1",
                                    cpu="500m", memory="1Gi", memory_limit="2Gi", transformer_image="me/feast-tx:1",
                                    predict_proba=True, batch=("s3://data/in.csv", "pvc://results/cancer"),
                                    parallelism=3, retries=2)
    assert summary["validated_with_kserve"] == "yes" and summary["manifests"] == 3
    version = nbmlops.get_model_version("Cancer_Model@production")
    data = (out / "model" / "model.joblib").read_bytes()
    assert hashlib.sha256(data).hexdigest() == version.sha256  # the registered file, byte for byte
    assert sorted(p.name for p in (out / "model").iterdir()) == ["model.joblib"]  # one file, as KServe wants

    [isvc] = list(yaml.safe_load_all((out / "inferenceservice.yaml").read_text()))
    from nbmlops.export.kserve import check_manifest

    obj = check_manifest(isvc)
    assert isinstance(obj, kserve.models.V1beta1InferenceService)
    assert obj.metadata.name == "cancer-model" and obj.metadata.namespace == "ml"
    m = obj.spec.predictor.model
    assert m.model_format.name == "sklearn" and m.storage_uri == "s3://models/cancer/1"
    assert m.resources.requests == {"cpu": "500m", "memory": "1Gi"} and m.resources.limits == {"cpu": "500m", "memory": "2Gi"}
    assert m.readiness_probe.http_get.path == "/v1/models/cancer-model" and m.liveness_probe.http_get.path == "/"
    assert [e.name for e in m.env] == ["PREDICT_PROBA"]
    assert obj.spec.transformer.containers[0].image == "me/feast-tx:1"
    assert obj.metadata.annotations["nbmlops.io/sha256"] == version.sha256

    config, job = list(yaml.safe_load_all((out / "batch-job.yaml").read_text()))
    from kubernetes.client import V1ConfigMap, V1Job

    assert isinstance(check_manifest(config), V1ConfigMap) and isinstance(j := check_manifest(job), V1Job)
    assert (j.spec.parallelism, j.spec.completions, j.spec.backoff_limit, j.spec.completion_mode) == (3, 3, 2, "Indexed")
    assert config["data"]["kserve_batch.py"] == (
        __import__("pathlib").Path(nbmlops.export.kserve.__file__).with_name("kserve_batch.py").read_text())

    bad = json.loads(json.dumps(isvc))
    bad["spec"]["predictor"]["model"]["storageURI"] = "s3://typo"  # a field KServe does not have
    with pytest.raises(InvalidInput, match="has no field storageURI"):
        check_manifest(bad)
    bad = json.loads(json.dumps(job))
    bad["spec"]["template"]["spec"]["containers"][0].pop("name")  # required by Kubernetes
    with pytest.raises(InvalidInput, match="name"):
        check_manifest(bad)


# KServe's scikit-learn server (python/sklearnserver in the KServe repository) is not published on
# PyPI ("not intended for use outside KServe Frameworks Images"); this is its model class's
# load/predict, unchanged but for Storage.download (a local folder is its own download).
SKLEARN_SERVER = textwrap.dedent('''
    import os, pathlib, sys
    import joblib
    import kserve
    from kserve import Model
    from kserve.errors import InferenceError, ModelMissingError
    from kserve.utils.utils import get_predict_input, get_predict_response

    MODEL_EXTENSIONS = (".joblib", ".pkl", ".pickle")

    class SKLearnModel(Model):
        def __init__(self, name, model_dir):
            super().__init__(name)
            self.name, self.model_dir, self.ready = name, model_dir, False

        def load(self):
            model_path = pathlib.Path(self.model_dir)
            model_files = [model_path / f for f in os.listdir(model_path)
                           if os.path.isfile(model_path / f) and f.endswith(MODEL_EXTENSIONS)]
            if len(model_files) == 0:
                raise ModelMissingError(model_path)
            if len(model_files) > 1:
                raise RuntimeError(f"More than one model file is detected: {model_files}")
            self._model = joblib.load(model_files[0])
            self.ready = True
            return self.ready

        def predict(self, payload, headers=None):
            try:
                instances = get_predict_input(payload)
                if os.environ.get("PREDICT_PROBA", "false").lower() == "true" and hasattr(self._model, "predict_proba"):
                    result = self._model.predict_proba(instances)
                else:
                    result = self._model.predict(instances)
                return get_predict_response(payload, result, self.name)
            except Exception as e:
                raise InferenceError(str(e))

    name, model_dir, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    model = SKLearnModel(name, model_dir)
    model.load()
    kserve.ModelServer(http_port=port, enable_grpc=False, workers=1).start([model])
''')


@pytest.mark.slow
def test_kserve_model_server_answers_v1_predict_like_nbmlops(cancer, tmp_path):
    model, X = cancer
    out = tmp_path / "deploy"
    nbmlops.export_kserve("Cancer_Model@production", out)
    port = _free_port()
    script = tmp_path / "sklearnserver.py"
    script.write_text(SKLEARN_SERVER)
    proc = subprocess.Popen([sys.executable, str(script), "cancer-model", str(out / "model"), str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/v1/models/cancer-model", timeout=2) as r:
                    if json.loads(r.read()).get("ready"):
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"KServe model server did not become ready:\n{proc.stdout.read().decode()[-3000:]}")
            time.sleep(0.3)
        with urllib.request.urlopen(f"{base}/", timeout=5) as r:  # the liveness probe's path
            assert r.status == 200
        rows = X.head(40)
        req = urllib.request.Request(f"{base}/v1/models/cancer-model:predict",
                                     data=json.dumps({"instances": rows.to_numpy().tolist()}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            answer = json.loads(r.read())
        assert answer["predictions"] == nbmlops.load_model("Cancer_Model@production").predict(rows).tolist()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_batch_script_scores_every_row_once_across_shards(cancer, tmp_path):
    import pandas as pd

    from nbmlops.export import kserve_batch

    model, X = cancer
    out = tmp_path / "deploy"
    nbmlops.export_kserve("Cancer_Model", out, batch=("s3://data/in.csv", "pvc://results/run1"), parallelism=3)
    data = tmp_path / "input"
    data.mkdir()
    X.iloc[:300].to_csv(data / "a.csv", index=False)
    X.iloc[300:].to_csv(data / "b.csv", index=False)
    results = tmp_path / "results"
    for i in range(3):
        assert kserve_batch.main(["--model-dir", str(out / "model"), "--input", str(data), "--output", str(results),
                                  "--shards", "3", "--index", str(i)]) == 0
    kserve_batch.main(["--model-dir", str(out / "model"), "--input", str(data), "--output", str(results),
                       "--shards", "3", "--index", "1"])  # a retried pod replaces its part
    parts = sorted(results.iterdir())
    assert [p.name for p in parts] == ["part-00000.csv", "part-00001.csv", "part-00002.csv"]
    scored = pd.concat([pd.read_csv(p) for p in parts]).sort_values("row")
    assert scored["row"].tolist() == list(range(len(X)))
    assert scored["prediction"].tolist() == model.predict(X).tolist()


def test_bad_input_is_one_clear_error_and_writes_nothing(cancer, tmp_path, store):
    out = tmp_path / "deploy"
    with pytest.raises(NotFound, match="no registered model named 'nope'"):
        nbmlops.export_kserve("nope", out)
    with pytest.raises(NotFound, match="has no alias 'canary'"):
        nbmlops.export_kserve("Cancer_Model@canary", out)
    with pytest.raises(InvalidInput, match="namespace"):
        nbmlops.export_kserve("Cancer_Model", out, namespace="Bad_NS")
    with pytest.raises(InvalidInput, match="storage URI"):
        nbmlops.export_kserve("Cancer_Model", out, storage_uri="s3://bucket/../etc")
    with pytest.raises(InvalidInput, match="quantity"):
        nbmlops.export_kserve("Cancer_Model", out, memory="lots")
    with pytest.raises(InvalidInput, match="pvc://CLAIM"):
        nbmlops.export_kserve("Cancer_Model", out, batch=("s3://in.csv", "/abs/path"))
    with pytest.raises(InvalidInput, match="inside the store"):
        nbmlops.export_kserve("Cancer_Model", store.root / "deploy")
    assert not out.exists()
    (out / "keep.txt").parent.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="not empty"):
        nbmlops.export_kserve("Cancer_Model", out)
    nbmlops.export_kserve("Cancer_Model", out, force=True)  # not ours: only our files are written
    assert (out / "keep.txt").read_text() == "mine" and (out / "model" / "model.joblib").exists()
    version = nbmlops.get_model_version("Cancer_Model")
    blob = store.blobs.path(version.sha256)
    os.chmod(blob, 0o644)
    blob.write_bytes(blob.read_bytes() + b"\0")
    with pytest.raises(IntegrityError):
        nbmlops.export_kserve("Cancer_Model", tmp_path / "other")


def test_cli_export_kserve(cancer, tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "nbmlops.cli", *args], capture_output=True, text=True)

    ok = cli("export", "kserve", "Cancer_Model@production", str(tmp_path / "d"), "--namespace", "ml",
             "--cpu", "250m", "--batch", "gs://b/in.parquet", "pvc://out/x", "--parallelism", "2")
    assert ok.returncode == 0, ok.stderr
    assert "validated with kserve: yes" in ok.stdout and (tmp_path / "d" / "batch-job.yaml").exists()
    bad = cli("export", "kserve", "Cancer_Model@nope", str(tmp_path / "e"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
