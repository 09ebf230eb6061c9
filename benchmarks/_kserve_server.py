"""KServe's reference server for benchmarks/_oip.py: ``kserve.ModelServer`` serving a scikit-learn model with
the outputs nbmlops answers (``predict``, ``probability``, ``predict_proba``), so both do the same work.

    python benchmarks/_kserve_server.py MODEL.joblib NAME PORT

KServe's defaults (one worker, latency logging on) except the gRPC server, which is off: only REST is measured
and its fixed port 8081 could collide with other servers on a shared machine. Arguments are positional because
``kserve.model_server`` parses ``sys.argv`` for its own ``--options`` when imported.
"""

from __future__ import annotations

import sys


def main(path: str, name: str, port: int) -> None:
    import joblib
    import kserve
    import numpy as np
    from kserve import InferOutput, InferRequest, InferResponse
    from kserve.utils.utils import generate_uuid, get_predict_input

    class SKLearnModel(kserve.Model):
        """The fitted estimator of ``path``: one ``predict_proba`` per request, three output tensors."""

        def __init__(self) -> None:
            super().__init__(name)
            self.model = joblib.load(path)
            self.ready = True

        def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
            proba = self.model.predict_proba(get_predict_input(payload))
            top = proba.argmax(axis=1)
            values = {"predict": self.model.classes_[top].astype(np.int64), "probability": proba.max(axis=1),
                      "predict_proba": proba}
            binary = payload.use_binary_outputs
            outputs = []
            for key, value in values.items():
                out = InferOutput(name=key, shape=list(value.shape), datatype="INT64" if key == "predict" else "FP64")
                out.set_data_from_numpy(value, binary_data=binary)
                outputs.append(out)
            return InferResponse(response_id=payload.id or generate_uuid(), model_name=self.name, infer_outputs=outputs,
                                 use_binary_outputs=binary, requested_outputs=payload.request_outputs)

    kserve.ModelServer(http_port=port, enable_grpc=False).start([SKLearnModel()])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
