"""Batch scoring with a model exported for KServe: one shard of the input per pod of an Indexed Job.

Standalone on purpose (no nbmlops import): the batch Job runs it from a ConfigMap inside
KServe's scikit-learn image. Pod ``i`` of ``n`` (``JOB_COMPLETION_INDEX``, ``--shards``) scores
rows ``i, i+n, i+2n...`` of the input (a CSV, JSON Lines or Parquet file, or a folder of them)
and writes ``part-<i>.csv`` (input columns, ``row``, ``prediction``) to the output folder,
replacing it atomically, so a retried pod neither duplicates nor half-writes its part.

The model file is unpickled only when its bytes hash to the sha256 the registry recorded: the Job
passes it (``--sha256``; or ``MODEL_SHA256``); run on an export folder, the export's own
``.nbmlops-export.json`` beside ``model/`` gives it. No recorded hash, or another one: refused,
unread (a pickle is code).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys

MODEL_EXTENSIONS = (".joblib", ".pkl", ".pickle")  # as KServe's sklearn server


def _read(path: str):  # -> pandas.DataFrame
    import pandas as pd

    files = [os.path.join(path, f) for f in sorted(os.listdir(path))] if os.path.isdir(path) else [path]
    frames = []
    for f in files:
        if f.endswith(".csv"):
            frames.append(pd.read_csv(f))
        elif f.endswith((".jsonl", ".json")):
            frames.append(pd.read_json(f, lines=f.endswith(".jsonl")))
        elif f.endswith((".parquet", ".pq")):
            frames.append(pd.read_parquet(f))
    if not frames:
        raise SystemExit(f"no .csv, .jsonl or .parquet input in {path}")
    return pd.concat(frames, ignore_index=True)


def _expected_sha256(given: str | None, model_dir: str) -> str:
    """The recorded sha256: given, else the export marker beside ``model_dir``; refused if neither."""
    sha = given or os.environ.get("MODEL_SHA256")
    marker = os.path.join(os.path.dirname(os.path.abspath(model_dir)), ".nbmlops-export.json")
    if not sha and os.path.isfile(marker):
        with open(marker) as f:
            sha = json.load(f).get("sha256")
    if not isinstance(sha, str) or len(sha) != 64:
        raise SystemExit(f"no recorded sha256 for the model in {model_dir}: pass --sha256 (the registered "
                         "version's) or set MODEL_SHA256; refusing to unpickle an unchecked file")
    return sha.lower()


def load_model(path: str, sha256: str):  # -> the model
    """Unpickle ``path`` only if its bytes hash to ``sha256`` (read once: what is checked is what is loaded)."""
    import joblib

    with open(path, "rb") as f:
        data = f.read()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise SystemExit(f"model file {path} hashes to {actual[:12]}…, not the recorded {sha256[:12]}…: "
                         "refusing to unpickle it (swapped or damaged)")
    return joblib.load(io.BytesIO(data))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--shards", type=int, default=int(os.environ.get("SHARDS", "1")))
    parser.add_argument("--index", type=int, default=int(os.environ.get("JOB_COMPLETION_INDEX", "0")))
    parser.add_argument("--sha256", help="the model file's recorded sha256 (default: $MODEL_SHA256, or the "
                        "export's .nbmlops-export.json beside the model folder)")
    parser.add_argument("--predict-proba", action="store_true",
                        default=os.environ.get("PREDICT_PROBA", "false").lower() == "true")
    args = parser.parse_args(argv)
    if not 0 <= args.index < args.shards:
        raise SystemExit(f"index {args.index} is outside 0..{args.shards - 1}")
    import numpy as np

    files = [f for f in os.listdir(args.model_dir) if f.endswith(MODEL_EXTENSIONS)]
    if len(files) != 1:
        raise SystemExit(f"expected one model file in {args.model_dir}, found {files}")
    model = load_model(os.path.join(args.model_dir, files[0]), _expected_sha256(args.sha256, args.model_dir))
    df = _read(args.input)
    df.insert(0, "row", np.arange(len(df)))
    part = df[df["row"] % args.shards == args.index]
    names = getattr(model, "feature_names_in_", None)
    X = part[list(names)] if names is not None else part.drop(columns=["row"]).to_numpy()
    if args.predict_proba and hasattr(model, "predict_proba"):
        proba = model.predict_proba(X)
        out = part.copy()
        for j, c in enumerate(getattr(model, "classes_", range(proba.shape[1]))):
            out[f"proba_{c}"] = proba[:, j]
    else:
        out = part.assign(prediction=model.predict(X))
    os.makedirs(args.output, exist_ok=True)
    final = os.path.join(args.output, f"part-{args.index:05d}.csv")
    tmp = f"{final}.{os.getpid()}.tmp"
    out.to_csv(tmp, index=False)
    os.replace(tmp, final)
    print(f"scored {len(out)} of {len(df)} rows into {final}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
