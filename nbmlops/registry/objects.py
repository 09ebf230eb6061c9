"""What the registry hands out: a ModelVersion (the record) and a LoadedModel (the model, guarded)."""

from __future__ import annotations

from typing import Any

from ..errors import IntegrityError, NotFound
from ..store import Store
from ..store.records import ModelVersionRecord, RegisteredModelRecord
from ..tracking import signature as sig
from ..tracking.modelfiles import FORMAT, load_frame, read_model


class ModelVersion:
    """One registered version: its blob, signature, lineage and monitoring reference."""

    def __init__(self, store: Store, model: RegisteredModelRecord, doc: ModelVersionRecord) -> None:
        self.store = store
        self.model_doc = model
        self.doc = doc

    name = property(lambda self: self.model_doc["name"])
    version = property(lambda self: self.doc["version"])
    sha256 = property(lambda self: self.doc["sha256"])
    signature = property(lambda self: self.doc["signature"])
    run_id = property(lambda self: self.doc.get("run_id"))
    metrics = property(lambda self: dict(self.doc["metrics"]))
    params = property(lambda self: dict(self.doc["params"]))
    datasets = property(lambda self: list(self.doc["datasets"]))

    @property
    def uri(self) -> str:
        return f"{self.name}/{self.version}"

    @property
    def aliases(self) -> list[str]:
        return sorted(a for a, v in self.model_doc["aliases"].items() if v == self.version)

    def load_estimator(self) -> Any:
        """The bare model, unpickled only after its bytes hash to the recorded sha256."""
        try:
            return read_model(self.store, self.sha256, self.doc.get("format", FORMAT))
        except IntegrityError:
            raise IntegrityError(f"model {self.name!r} version {self.version}: the stored file changed since it was "
                                 "registered (sha256 mismatch); refusing to unpickle it") from None
        except NotFound:
            raise NotFound(f"model {self.name!r} version {self.version}: its file is missing from the store") from None

    def load(self) -> LoadedModel:
        return LoadedModel(self.load_estimator(), self)

    def reference(self) -> Any:
        """The monitoring reference: training inputs, ``target`` when known, ``prediction`` (a DataFrame)."""
        ref = self.doc.get("reference")
        if not ref:
            raise NotFound(f"{self.uri} has no monitoring reference: register it from a %%track run that fitted it, "
                           "or pass reference=(X_train, y_train) to register_model")
        return load_frame(self.store, ref["sha256"])

    def __repr__(self) -> str:
        aliases = f" @{',@'.join(self.aliases)}" if self.aliases else ""
        run = f" run={self.doc['run_name']}" if self.doc.get("run_name") else ""
        return f"<ModelVersion {self.uri}{aliases} {self.doc['class'].rsplit('.', 1)[-1]}{run}>"

    def _repr_html_(self) -> str:
        from ..display.registry import version_card  # display sits above the domain: only this delegation

        return version_card(self)


class LoadedModel:
    """A registered model that checks its inputs against the signature before predicting.
    Every other attribute is the estimator's own (``.estimator`` is the bare object)."""

    def __init__(self, estimator: Any, version: ModelVersion) -> None:
        self.estimator = estimator
        self.version = version

    def _call(self, method: str, X: Any) -> Any:
        X = sig.validate(self.version.signature, X, f"model {self.version.uri}")
        return getattr(self.estimator, method)(X)

    def predict(self, X: Any) -> Any:
        return self._call("predict", X)

    def predict_proba(self, X: Any) -> Any:
        return self._call("predict_proba", X)

    def decision_function(self, X: Any) -> Any:
        return self._call("decision_function", X)

    def transform(self, X: Any) -> Any:
        return self._call("transform", X)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["estimator"], name)

    def __repr__(self) -> str:
        return f"<LoadedModel {self.version.uri}: {self.estimator!r}>"


class Comparison:
    """Two versions side by side: params, metrics and signature differences."""

    def __init__(self, a: ModelVersion, b: ModelVersion) -> None:
        self.a, self.b = a, b
        pa, pb = a.params, b.params
        self.params = {k: (pa.get(k), pb.get(k)) for k in sorted({*pa, *pb}) if pa.get(k) != pb.get(k)}
        ma, mb = a.metrics, b.metrics
        self.metrics = {k: (ma.get(k), mb.get(k)) for k in sorted({*ma, *mb})}
        self.signature = sig.diff(a.signature, b.signature)

    def table(self) -> Any:
        """Params that differ and every metric, as a DataFrame (rows: params.*/metrics.*)."""
        import pandas as pd

        rows = {f"params.{k}": v for k, v in self.params.items()} | {f"metrics.{k}": v for k, v in self.metrics.items()}
        return pd.DataFrame.from_dict(rows, orient="index", columns=[f"v{self.a.version}", f"v{self.b.version}"])

    def __repr__(self) -> str:
        lines = [f"{self.a.name}: version {self.a.version} vs {self.b.version}"]
        lines += [f"  params.{k}: {x!r} → {y!r}" for k, (x, y) in self.params.items()]
        lines += [f"  metrics.{k}: {x} → {y}" for k, (x, y) in self.metrics.items()]
        lines += [f"  signature.{k}: {v}" for k, v in self.signature.items()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from ..display.registry import comparison_card  # display sits above the domain: only this delegation

        return comparison_card(self)

