"""A registered model as a KServe deployment: model directory and Kubernetes manifests.

``export_kserve("churn@production", DIR)`` writes::

    DIR/model/model.joblib         the registered file, byte for byte (its sha256 checked first);
                                   KServe's scikit-learn runtime loads it with joblib
    DIR/inferenceservice.yaml      serving.kserve.io/v1beta1 InferenceService: sklearn predictor,
                                   storageUri, resources, readiness and liveness probes, and an
                                   optional transformer container
    DIR/batch-job.yaml             with ``batch=(INPUT, OUTPUT)``: a ConfigMap holding
                                   ``kserve_batch.py`` and an Indexed batch/v1 Job (parallelism,
                                   retries) that scores INPUT into OUTPUT (a ``pvc://`` folder),
                                   after checking the model file against the recorded sha256

Upload ``DIR/model`` to the storage URI, then ``kubectl apply -f DIR/inferenceservice.yaml``.
The model is never unpickled here. When the ``kserve`` package is installed, every manifest is
checked against KServe's (and Kubernetes') own API models before it is written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from ..registry.models import get_model_version
from ..tracking.lookup import find_run_doc
from . import Summary, inside, mark, prepare_dir

KSERVE_VERSION = "v0.21.0"  # image tags of KServe's sklearn server and storage initializer
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@\-]{0,254}$")
_URI = re.compile(r"^(s3|gs|pvc|https?|hdfs|webhdfs|oci|hf)://[^\s'\"]+$")
_PVC_FOLDER = re.compile(r"^pvc://[a-z0-9]([-a-z0-9.]*[a-z0-9])?(/[A-Za-z0-9._\-]+)*/?$")


def _quantity(what: str, value: Any) -> str:
    text = str(value).strip()
    if not _QUANTITY.match(text):
        raise InvalidInput(f"{what} must be a Kubernetes quantity such as 500m, 1, 512Mi or 2Gi, got {value!r}")
    return text


def _k8s_name(model: str) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", model.lower()).strip("-")
    name = re.sub(r"^[^a-z]+", "", name)[:45].rstrip("-")
    return name or "model"


def export_kserve(model: str, directory: str | os.PathLike[str], *, namespace: str = "default",
                  storage_uri: str | None = None, name: str | None = None, cpu: Any = "1", memory: Any = "2Gi",
                  cpu_limit: Any = None, memory_limit: Any = None, image: str | None = None,
                  transformer_image: str | None = None, predict_proba: bool = False,
                  batch: tuple[str, str] | None = None, parallelism: int = 1, retries: int = 3,
                  force: bool = False) -> Summary:
    """Write the model directory and KServe manifests for a registered version.

    >>> nbmlops.export_kserve("churn@production", "deploy/churn", namespace="ml",
    ...                       storage_uri="s3://models/churn/3", cpu="500m", memory="1Gi")

    ``image`` replaces the sklearn runtime's image (use one whose scikit-learn matches the
    model's); ``transformer_image`` adds a transformer; ``batch=(INPUT, OUTPUT)`` adds a Job
    with ``parallelism`` pods and ``retries`` retries (``backoffLimit``).
    """
    version = get_model_version(model)
    isvc = name if name is not None else _k8s_name(version.name)
    if not isinstance(isvc, str) or not _DNS1035.match(isvc) or len(isvc) > 45:
        raise InvalidInput(f"InferenceService name {isvc!r} must be lowercase letters, digits and '-', start with a "
                           "letter and be at most 45 characters (pass name=...)")
    if not isinstance(namespace, str) or not _DNS1123.match(namespace) or len(namespace) > 63:
        raise InvalidInput(f"namespace {namespace!r} must be a Kubernetes name (lowercase letters, digits, '-')")
    storage = storage_uri or f"pvc://nbmlops-models/{isvc}/v{version.version}"
    if not isinstance(storage, str) or not _URI.match(storage) or ".." in storage:
        raise InvalidInput(f"storage URI {storage_uri!r} must be an s3://, gs://, pvc://, http(s)://, hdfs:// or "
                           "oci:// "
                           "URI without '..'")
    requests = {"cpu": _quantity("cpu", cpu), "memory": _quantity("memory", memory)}
    limits = {"cpu": _quantity("cpu limit", cpu_limit if cpu_limit is not None else cpu),
              "memory": _quantity("memory limit", memory_limit if memory_limit is not None else memory)}
    for img in (image, transformer_image):
        if img is not None and (not isinstance(img, str) or not _IMAGE.match(img)):
            raise InvalidInput(f"{img!r} is not a container image reference (e.g. registry/name:tag)")
    if batch is not None:
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise InvalidInput("batch takes (INPUT, OUTPUT): a storage URI to score and a pvc:// folder for the "
                               "results")
        _check_batch(*batch)
        for what, n, low in (("parallelism", parallelism, 1), ("retries", retries, 0)):
            if isinstance(n, bool) or not isinstance(n, int) or not low <= n <= 1000:
                raise InvalidInput(f"{what} must be a whole number from {low} to 1000, got {n!r}")
    if version.doc.get("format", "pickle") not in ("pickle", "joblib"):
        raise InvalidInput(f"{version.uri} is stored as {version.doc['format']!r}; KServe's sklearn runtime reads "
                           "joblib/pickle")

    src = version.store.blobs.verified_path(version.sha256)  # IntegrityError if the file changed
    sk = _sklearn_version(version)
    labels = {"app.kubernetes.io/managed-by": "nbmlops", "app.kubernetes.io/name": isvc}
    annotations = {"nbmlops.io/model": version.name, "nbmlops.io/version": str(version.version),
                   "nbmlops.io/sha256": version.sha256, "nbmlops.io/class": version.doc["class"],
                   **({"nbmlops.io/scikit-learn": sk} if sk else {})}
    manifest = inference_service(isvc, namespace, storage, requests, limits, labels, annotations, image,
                                 transformer_image, predict_proba)
    docs = {"inferenceservice.yaml": [manifest]}
    if batch is not None:
        docs["batch-job.yaml"] = batch_job(isvc, namespace, storage, batch[0], batch[1], parallelism, retries,
                                           requests, limits, labels, annotations, image, predict_proba,
                                           version.sha256)
    checked = _validate_all(docs)  # before anything is written
    target = prepare_dir(directory, force, "KServe deployment")
    summary = Summary(f"kserve {version.uri} → {target}")
    model_dir = inside(target, "model")
    model_dir.mkdir(exist_ok=True)
    shutil.copyfile(src, model_dir / "model.joblib")
    summary["model_bytes"] = (model_dir / "model.joblib").stat().st_size
    if batch is not None:
        summary["batch_pods"] = parallelism
    for file, manifests in docs.items():
        (target / file).write_text(_yaml(manifests))
    mark(target, "kserve", model=version.name, version=version.version, sha256=version.sha256, storage_uri=storage)
    summary["manifests"] = sum(len(m) for m in docs.values())
    summary["validated_with_kserve"] = "yes" if checked else "no (pip install 'nbmlops[graduate]' to check)"
    if sk and image is None and not sk.startswith("1.5."):
        summary.notes.append(f"the model was fitted with scikit-learn {sk}; KServe's sklearn server image pins 1.5.x: "
                             "pass image= (--image) with a runtime whose scikit-learn matches")
    summary.notes.append(f"upload {model_dir} to {storage}, then kubectl apply -f {target / 'inferenceservice.yaml'}")
    return summary


def _check_batch(source: Any, output: Any) -> None:
    if not isinstance(source, str) or not _URI.match(source) or ".." in source:
        raise InvalidInput(f"batch INPUT {source!r} must be a storage URI (s3://, gs://, pvc://, https://) "
                           "without '..'")
    if not isinstance(output, str) or not _PVC_FOLDER.match(output) or ".." in output:
        raise InvalidInput(f"batch OUTPUT {output!r} must be a folder on a volume claim: pvc://CLAIM/path (no '..')")


def _sklearn_version(version: Any) -> str | None:
    """The scikit-learn version the model was fitted with, if its run recorded it."""
    if not version.run_id:
        return None
    try:
        run = find_run_doc(version.store, version.run_id)
    except Exception:
        return None
    for m in run["models"]:
        if m["sha256"] == version.sha256:
            return (m.get("versions") or {}).get("scikit-learn")
    return None


def _probe(path: str, delay: int, period: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": 8080}, "initialDelaySeconds": delay, "periodSeconds": period,
            "timeoutSeconds": 5, "failureThreshold": 3}


def inference_service(name: str, namespace: str, storage: str, requests: dict[str, str], limits: dict[str, str],
                      labels: dict[str, str], annotations: dict[str, str], image: str | None,
                      transformer_image: str | None, predict_proba: bool) -> dict[str, Any]:
    model: dict[str, Any] = {
        "modelFormat": {"name": "sklearn"}, "protocolVersion": "v1", "storageUri": storage,
        "resources": {"requests": requests, "limits": limits},
        "readinessProbe": _probe(f"/v1/models/{name}", 5, 10), "livenessProbe": _probe("/", 15, 20)}
    if image:
        model["image"] = image
    if predict_proba:
        model["env"] = [{"name": "PREDICT_PROBA", "value": "true"}]
    spec: dict[str, Any] = {"predictor": {"model": model}}
    if transformer_image:
        spec["transformer"] = {"containers": [{
            "name": "kserve-container", "image": transformer_image,
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
            "readinessProbe": _probe(f"/v1/models/{name}", 5, 10), "livenessProbe": _probe("/", 15, 20)}]}
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations},
            "spec": spec}


def batch_job(name: str, namespace: str, storage: str, source: str, output: str, parallelism: int, retries: int,
              requests: dict[str, str], limits: dict[str, str], labels: dict[str, str], annotations: dict[str, str],
              image: str | None, predict_proba: bool, sha256: str) -> list[dict[str, Any]]:
    script = Path(__file__).with_name("kserve_batch.py").read_text()
    claim, _, sub = output[len("pvc://"):].partition("/")
    meta = {"namespace": namespace, "labels": labels, "annotations": annotations}
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-batch-script", **meta},
              "data": {"kserve_batch.py": script}}
    init = f"kserve/storage-initializer:{KSERVE_VERSION}"
    args = ["--model-dir", "/mnt/models", "--input", "/mnt/input", "--output", "/mnt/output/" + sub.strip("/"),
            "--shards", str(parallelism), "--sha256", sha256] + (["--predict-proba"] if predict_proba else [])
    pod = {"restartPolicy": "Never",
           "initContainers": [
               {"name": "fetch-model", "image": init, "args": [storage, "/mnt/models"],
                "volumeMounts": [{"name": "models", "mountPath": "/mnt/models"}]},
               {"name": "fetch-input", "image": init, "args": [source, "/mnt/input"],
                "volumeMounts": [{"name": "input", "mountPath": "/mnt/input"}]}],
           "containers": [{
               "name": "score", "image": image or f"kserve/sklearnserver:{KSERVE_VERSION}",
               "command": ["python", "/scripts/kserve_batch.py"], "args": args,
               "resources": {"requests": requests, "limits": limits},
               "volumeMounts": [{"name": "models", "mountPath": "/mnt/models", "readOnly": True},
                                {"name": "input", "mountPath": "/mnt/input", "readOnly": True},
                                {"name": "script", "mountPath": "/scripts", "readOnly": True},
                                {"name": "output", "mountPath": "/mnt/output"}]}],
           "volumes": [{"name": "models", "emptyDir": {}}, {"name": "input", "emptyDir": {}},
                       {"name": "script", "configMap": {"name": f"{name}-batch-script"}},
                       {"name": "output", "persistentVolumeClaim": {"claimName": claim}}]}
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": f"{name}-batch", **meta},
           "spec": {"completionMode": "Indexed", "completions": parallelism, "parallelism": parallelism,
                    "backoffLimit": retries, "template": {"metadata": {"labels": labels}, "spec": pod}}}
    return [config, job]


# -- validation against the engines' own API models ---------------------------------------------------------
_KINDS = {"InferenceService": "V1beta1InferenceService", "Job": "V1Job", "ConfigMap": "V1ConfigMap"}


def _validate_all(docs: dict[str, list[dict[str, Any]]]) -> bool:
    try:
        import kserve.models  # noqa: F401
        import kubernetes.client  # noqa: F401
    except ImportError:
        return False
    for file, manifests in docs.items():
        for m in manifests:
            check_manifest(m, file)
    return True


def check_manifest(manifest: dict[str, Any], label: str = "manifest") -> Any:
    """Build KServe's (or Kubernetes') own model object from a manifest, refusing any field the
    API does not define; the model's constructors check required fields and enums. Returns it."""
    from kubernetes.client import ApiClient

    kind = manifest.get("kind")
    if kind not in _KINDS:
        raise InvalidInput(f"{label}: cannot check a manifest of kind {kind!r}")
    obj = _build(manifest, _KINDS[kind], f"{label}:{kind}")
    back = _drop_empty_defaults(ApiClient().sanitize_for_serialization(obj), manifest)
    if back != manifest:
        raise InvalidInput(f"{label}: the {kind} does not survive a round trip through its API model")
    return obj


def _drop_empty_defaults(back: Any, original: Any) -> Any:
    """Some models fill fields left out with an empty default (a ModelSpec's name is ''): drop those."""
    if isinstance(back, dict) and isinstance(original, dict):
        return {k: _drop_empty_defaults(v, original.get(k)) for k, v in back.items()
                if k in original or v not in ("", [], {})}
    if isinstance(back, list) and isinstance(original, list) and len(back) == len(original):
        return [_drop_empty_defaults(b, o) for b, o in zip(back, original)]
    return back


def _build(data: Any, type_name: str, path: str) -> Any:
    import kserve.models as km
    import kubernetes.client.models as kc

    if type_name.startswith("list["):
        if not isinstance(data, list):
            raise InvalidInput(f"{path} must be a list")
        return [_build(x, type_name[5:-1], f"{path}[{i}]") for i, x in enumerate(data)]
    if type_name.startswith("dict("):
        if not isinstance(data, dict):
            raise InvalidInput(f"{path} must be a mapping")
        inner = type_name[type_name.index(",") + 1:-1].strip()
        return {k: _build(v, inner, f"{path}.{k}") for k, v in data.items()}
    basic = {"str": str, "int": int, "bool": bool, "float": (int, float)}
    if type_name in basic:
        if not isinstance(data, basic[type_name]) or (type_name == "int" and isinstance(data, bool)):
            raise InvalidInput(f"{path} must be {type_name}, got {data!r}")
        return data
    if type_name in ("object", "datetime", "date"):
        return data
    cls = getattr(km, type_name, None) or getattr(kc, type_name)
    if not isinstance(data, dict):
        raise InvalidInput(f"{path} must be a mapping ({type_name})")
    attrs = {v: k for k, v in cls.attribute_map.items()}
    unknown = sorted(set(data) - set(attrs))
    if unknown:
        raise InvalidInput(f"{path}: {type_name} has no field {', '.join(unknown)}")
    try:
        return cls(**{attrs[k]: _build(v, cls.openapi_types[attrs[k]], f"{path}.{k}") for k, v in data.items()})
    except ValueError as exc:
        raise InvalidInput(f"{path}: {exc}") from None


def _yaml(manifests: list[dict[str, Any]]) -> str:
    try:
        import yaml
    except ImportError:  # JSON is YAML too: kubectl reads it
        return "\n---\n".join(json.dumps(m, indent=2) for m in manifests) + "\n"

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    def text(dumper: Any, value: str) -> Any:
        style = "|" if "\n" in value and not any(line != line.rstrip() for line in value.splitlines()) else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    plain = json.loads(json.dumps(manifests))
    return yaml.dump_all(plain, Dumper=Dumper, sort_keys=False, width=120, allow_unicode=True)
