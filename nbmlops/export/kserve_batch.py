"""Batch scoring with a model exported for KServe: one shard of the input per pod of an Indexed Job.

Standalone on purpose (no nbmlops import): the batch Job runs it from a ConfigMap inside
KServe's scikit-learn image. Pod ``i`` of ``n`` (``JOB_COMPLETION_INDEX``, ``--shards``) scores
rows ``i, i+n, i+2n...`` of the input (a CSV, JSON Lines or Parquet file, or a folder of them)
and writes ``part-<i>.csv`` (input columns, ``row``, ``prediction``) to the output folder,
replacing it atomically, so a retried pod neither duplicates nor half-writes its part.
"""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--shards", type=int, default=int(os.environ.get("SHARDS", "1")))
    parser.add_argument("--index", type=int, default=int(os.environ.get("JOB_COMPLETION_INDEX", "0")))
    parser.add_argument("--predict-proba", action="store_true",
                        default=os.environ.get("PREDICT_PROBA", "false").lower() == "true")
    args = parser.parse_args(argv)
    if not 0 <= args.index < args.shards:
        raise SystemExit(f"index {args.index} is outside 0..{args.shards - 1}")
    import joblib
    import numpy as np

    files = [f for f in os.listdir(args.model_dir) if f.endswith(MODEL_EXTENSIONS)]
    if len(files) != 1:
        raise SystemExit(f"expected one model file in {args.model_dir}, found {files}")
    model = joblib.load(os.path.join(args.model_dir, files[0]))
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
