"""The model a server answers with: a registered version, loaded only if its sha256 matches."""

from __future__ import annotations

from typing import Any

from ..registry import get_model_version
from .payloads import Schema


def confidence(p: float) -> str:
    """very_high ≥ 0.9, high ≥ 0.7, medium ≥ 0.5, else low."""
    return "very_high" if p >= 0.9 else "high" if p >= 0.7 else "medium" if p >= 0.5 else "low"


def _native(values: Any) -> list[Any]:
    return values.tolist() if hasattr(values, "tolist") else list(values)


class ServedModel:
    """A loaded model version with its schema; ``predict(rows)`` scores a batch of validated rows."""

    def __init__(self, uri: str, max_batch: int = 10_000) -> None:
        version = get_model_version(uri)
        self.uri = uri
        self.name: str = version.name
        self.version: int = version.version
        self.sha256: str = version.sha256
        self.signature: dict[str, Any] = version.signature
        self.aliases = version.aliases
        self.estimator = version.load_estimator()  # hash-verified before unpickling
        self.schema = Schema(self.signature, max_batch)
        self.classes = self.signature.get("classes")
        self.proba = bool(self.signature.get("predict_proba")) and hasattr(self.estimator, "predict_proba")
        self.classifier = self.classes is not None
        self.class_names = tuple(str(c) for c in self.classes) if self.classes is not None else None

    def frame(self, rows: list[list[Any]]) -> Any:
        import numpy as np

        schema = self.schema
        if schema.numeric is not None and not all(schema.numeric):
            import pandas as pd

            df = pd.DataFrame(rows, columns=schema.features)
            for name, numeric in zip(schema.features or [], schema.numeric):
                if numeric:
                    df[name] = pd.to_numeric(df[name])
            return df
        arr = np.asarray(rows, dtype=np.float64)
        if schema.features:
            import pandas as pd

            return pd.DataFrame(arr, columns=schema.features)
        return arr

    def predict(self, rows: list[list[Any]]) -> dict[str, list[Any]]:
        """Predictions (and for classifiers with probabilities: top probability, per-class
        probabilities and a confidence word) for each row."""
        return self.predict_frame(self.frame(rows))

    def predict_frame(self, X: Any) -> dict[str, list[Any]]:
        """``predict`` for inputs already in the model's shape (a DataFrame of its features, or an array)."""
        out: dict[str, list[Any]] = {}
        if self.proba:
            proba = self.estimator.predict_proba(X)
            top = proba.argmax(axis=1)
            classes = self.estimator.classes_
            out["predictions"] = _native(classes[top])
            best = proba[range(len(top)), top]
            out["probability"] = _native(best)
            out["confidence"] = [confidence(p) for p in out["probability"]]
            names = [str(c) for c in _native(classes)]
            out["probabilities"] = [dict(zip(names, r)) for r in proba.tolist()]
        else:
            out["predictions"] = _native(self.estimator.predict(X))
        return out

    def info(self) -> dict[str, Any]:
        s = self.signature
        return {"name": self.name, "version": self.version, "uri": self.uri, "aliases": self.aliases,
                "sha256": self.sha256, "model_type": type(self.estimator).__name__,
                "n_features": s.get("n_features"), "feature_names": s.get("features"),
                "classes": self.classes, "signature": s}
