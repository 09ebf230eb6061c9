"""``retrain_on_drift``: the loop from monitoring back to training.

1. Drift of ``current`` against the monitoring reference of the model (``churn@production``),
   on the model's input columns; the report's summary is logged against that version.
2. Below the threshold (the share of columns that drifted): nothing is retrained; said so.
3. Above it: ``current`` (minus a held-out part, unless ``held_out`` is given) becomes the next
   version of the pipeline's input dataset, the pipeline runs (unchanged steps cached), and its
   model output is registered with alias ``candidate``.
4. Candidate and production are scored on the same held-out rows; the alias moves only when the
   candidate is better by ``margin`` and ``auto_promote=True`` (else the decision says how to).

Every decision is stored (``db/pipelines/decisions/``) with its evidence: the drift summary, both
versions, the metric on both, the pipeline run and the dataset version it trained on.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .._util import new_id, now_ms
from ..errors import InvalidInput, NbmlopsError, NotFound
from ..monitoring import drift_report, live
from ..monitoring.live import TARGET
from ..monitoring.sources import read_file
from ..registry import get_model_version, load_model, register_model, set_alias
from ..registry.uri import check_alias, parse
from ..store import SCHEMA, current_store
from ..store.records import RetrainDecisionRecord
from ..tracking.datasets import get_dataset_version, load_dataset, log_version
from . import records
from .pipeline import get_pipeline
from .runner import StepFailed

WINDOW = "window:"  # current="window:<id>": the rows of a window the live monitor recorded
_FILES = (".csv", ".parquet", ".pq", ".json", ".jsonl", ".feather")  # read as files, not dataset references
HIGHER_IS_BETTER = {"roc_auc": True, "accuracy": True, "f1": True, "r2": True, "rmse": False, "mae": False,
                    "log_loss": False}


class RetrainDecision:
    """What ``retrain_on_drift`` decided and why: ``decision`` (no-drift, promoted, candidate-better,
    kept-production, failed), ``reason`` in plain words, ``promoted``, ``candidate``, ``production``,
    ``metrics``; ``report`` (the DriftReport) and ``run`` (the PipelineRun) when there were any."""

    def __init__(self, doc: RetrainDecisionRecord, report: Any = None, run: Any = None) -> None:
        self.doc, self.report, self.run = doc, report, run

    decision = property(lambda self: self.doc["decision"])
    reason = property(lambda self: self.doc["reason"])
    promoted = property(lambda self: self.doc["decision"] == "promoted")
    candidate = property(lambda self: self.doc.get("candidate"))
    production = property(lambda self: self.doc.get("production"))
    metrics = property(lambda self: dict(self.doc.get("metrics") or {}))

    def __repr__(self) -> str:
        return f"retrain on drift of {self.doc['model']}: {self.decision} — {self.reason}"

    def _repr_html_(self) -> str:
        from ..display.pipelines import decision_card  # display is a layer above the domain: delegation only

        return decision_card(self)


def _frame(data: Any, what: str) -> Any:
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, str) and data.startswith(WINDOW):
        return _window_rows(data[len(WINDOW):], what)
    if isinstance(data, str):
        if Path(data).suffix.lower() in _FILES and Path(data).exists():
            return read_file(Path(data), what)
        return load_dataset(data)
    raise InvalidInput(f"{what} is a DataFrame, a dataset reference ('customers@4'), a CSV/Parquet path or a "
                       f"live window ('window:<id>' from drift_history), not {type(data).__name__}")


def _window_rows(drift_id: str, what: str) -> Any:
    """The rows of a window the live monitor recorded that got a label, the label as ``target``."""
    rows = live.window_data(drift_id)
    if TARGET not in rows.columns or rows[TARGET].isna().all():
        raise InvalidInput(f"{what}: window {drift_id} has no labels yet (send them to the deployment's /feedback); "
                           "retraining needs them")
    return rows[rows[TARGET].notna()].drop(columns=["prediction"], errors="ignore").reset_index(drop=True)


def _as_dataset(rows: Any, dataset: str, features: list[str], target: str | None) -> tuple[Any, str]:
    """A window's labelled rows in the columns of ``dataset``'s latest version: its label column
    (``target``, or the one column the model does not read) takes the labels; a column the window
    lacks is refused, naming it."""
    columns = get_dataset_version(dataset).columns
    if target is None:
        extra = [c for c in columns if c not in features]
        if len(extra) != 1:
            raise InvalidInput(f"say which column of dataset {dataset} holds the labels with target= (columns the "
                               f"model does not read: {', '.join(map(str, extra)) or 'none'})")
        target = str(extra[0])
    rows = rows.rename(columns={TARGET: target})
    lacking = [c for c in columns if c not in rows.columns]
    if lacking:
        raise InvalidInput(f"the window lacks columns of dataset {dataset} that the model does not read "
                           f"({', '.join(map(str, lacking[:5]))}): retrain from a DataFrame that has them")
    return rows[list(columns)], target


def _score(metric: str, model: Any, X: Any, y: Any) -> float:
    from sklearn import metrics as m

    if metric == "roc_auc":
        proba = model.predict_proba(X)
        return float(m.roc_auc_score(y, proba[:, 1] if proba.shape[1] == 2 else proba, multi_class="ovr"))
    if metric == "log_loss":
        return float(m.log_loss(y, model.predict_proba(X)))
    pred = model.predict(X)
    if metric == "accuracy":
        return float(m.accuracy_score(y, pred))
    if metric == "f1":
        return float(m.f1_score(y, pred, average="binary" if len(set(y)) == 2 else "macro"))
    if metric == "r2":
        return float(m.r2_score(y, pred))
    if metric == "rmse":
        return float(math.sqrt(m.mean_squared_error(y, pred)))
    return float(m.mean_absolute_error(y, pred))


def _auto_metric(signature: dict[str, Any]) -> str:
    if signature.get("output") == "probability" and len(signature.get("classes") or []) == 2:
        return "roc_auc"
    if signature.get("output") in ("probability", "class"):
        return "accuracy"
    return "r2"


def retrain_on_drift(model: str, current: Any, pipeline: Any, *, threshold: float = 0.5, target: str | None = None,
                     dataset: str | None = None, held_out: Any = None, holdout: float = 0.25,
                     train_data: Any = None, metric: str = "auto", margin: float = 0.0, auto_promote: bool = False,
                     output: str | None = None, params: dict[str, Any] | None = None, cache: bool = True,
                     candidate_alias: str = "candidate", seed: int = 0, progress: Any = None) -> RetrainDecision:
    """Retrain ``pipeline`` when ``current`` has drifted from the reference of ``model``; register
    the result as ``candidate``; compare with the model on held-out rows; promote if asked.

    >>> d = nbmlops.retrain_on_drift("churn@production", current=june, pipeline="churn",
    ...                              target="churned", auto_promote=True, margin=0.005)
    >>> d.decision, d.reason

    ``threshold``: the share of the model's input columns that must drift (default 0.5, Evidently's
    dataset-drift rule). ``dataset``: the pipeline input the new data becomes a version of (default:
    its only external dataset input). ``held_out``: rows to score both models on (default: a seeded
    ``holdout`` fraction of ``current``, kept out of training). ``current`` may be a window the
    live monitor recorded, ``"window:<id>"`` (``drift_history()``'s id): its rows that got a label,
    the label under the dataset's label column (``serve(..., on_drift="retrain:PIPELINE")`` does this).
    ``train_data``: what to train on instead of ``current`` minus the held-out rows (e.g. old and new
    data together). ``metric``: roc_auc, accuracy, f1, r2, rmse, mae or log_loss (auto: roc_auc for
    binary classifiers with probabilities, accuracy for other classifiers, r2 for regressors)."""
    # -- every check first: nothing is written before they pass ------------------------------------
    ref = parse(model)
    if ref.alias is None and ref.version is None:
        raise InvalidInput(f"name the deployed version, e.g. {ref.name}@production (got {model!r})")
    check_alias(candidate_alias)
    if not (isinstance(threshold, (int, float)) and 0 < threshold <= 1):
        raise InvalidInput(f"threshold is the share of columns that must drift, in (0, 1], got {threshold!r}")
    if not (isinstance(margin, (int, float)) and margin >= 0):
        raise InvalidInput(f"margin is how much better the candidate must score (>= 0), got {margin!r}")
    if not (isinstance(holdout, float) and 0 < holdout < 1):
        raise InvalidInput(f"holdout is the fraction of current kept to compare the models, in (0, 1), got {holdout!r}")
    production = get_model_version(model)
    signature = production.signature or {}
    metric = _auto_metric(signature) if metric == "auto" else metric
    if metric not in HIGHER_IS_BETTER:
        raise InvalidInput(f"unknown metric {metric!r}; use one of {', '.join(HIGHER_IS_BETTER)} or 'auto'")
    pipe = get_pipeline(pipeline)
    model_outputs = [p for s in pipe.steps for p in s.outputs.values() if p.kind == "model"]
    if output is not None:
        model_outputs = [p for p in model_outputs if p.local == output or p.name == output]
    if len(model_outputs) != 1:
        have = ", ".join(p.name for s in pipe.steps for p in s.outputs.values() if p.kind == "model") or "none"
        raise InvalidInput(f"pipeline {pipe.name} must have one model output to register (model outputs: {have}); "
                           "name it with output=")
    out_port = model_outputs[0]
    produced = {p.key for s in pipe.steps for p in s.outputs.values()}
    external = sorted({p.name for s in pipe.steps for p in s.inputs.values()
                       if p.kind == "dataset" and p.key not in produced and not p.version})
    if dataset is None:
        if len(external) != 1:
            raise InvalidInput(f"pipeline {pipe.name} reads {len(external)} datasets it does not produce "
                               f"({', '.join(external) or 'none'}): say which one the new data is, with dataset=")
        dataset = external[0]
    elif dataset not in external:
        raise InvalidInput(f"pipeline {pipe.name} does not read dataset {dataset!r} "
                           f"(it reads: {', '.join(external) or 'none'})")
    cur = _frame(current, "current")
    held = _frame(held_out, "held_out") if held_out is not None else None
    features = signature.get("features")
    try:
        reference = production.reference()
    except NotFound as exc:
        raise InvalidInput(f"cannot measure drift: {exc}") from None
    if not features:
        features = [c for c in reference.columns if c not in ("target", "prediction")]
    cols = [c for c in features if c in cur.columns and c in reference.columns]
    if not cols:
        raise InvalidInput(f"current has none of the model's input columns ({', '.join(features[:8])})")
    if isinstance(current, str) and current.startswith(WINDOW):  # a window's labels take the dataset's label name
        cur, target = _as_dataset(cur, dataset, features, target)
    scored = held if held is not None else cur
    if target is None:
        extra = [c for c in scored.columns if c not in features]
        if len(extra) != 1:
            raise InvalidInput(f"say which column holds the labels with target= (columns not used by the model: "
                               f"{', '.join(map(str, extra)) or 'none'})")
        target = extra[0]
    if target not in scored.columns:
        raise InvalidInput(f"target column {target!r} is not in {'held_out' if held is not None else 'current'}")
    pipe.plan(params)  # parameters, notebooks and inputs checked before anything is written

    # -- drift ----------------------------------------------------------------------------------
    store = current_store()
    report = drift_report(reference[cols], cur[cols], drift_share=threshold, performance=False)
    logged = report.log(model=production.uri)
    summary = report.summary
    doc: RetrainDecisionRecord = {
        "schema": SCHEMA, "id": new_id(), "time": now_ms(), "model": model, "model_name": ref.name,
        "production": production.uri, "candidate": None, "threshold": threshold, "margin": margin,
        "auto_promote": bool(auto_promote), "pipeline": pipe.name, "pipeline_run": None, "dataset": None,
        "drift": {"drift_id": logged["id"], **{k: summary.get(k) for k in (
            "dataset_drift", "share_drifted", "n_columns", "n_drifted", "drifted_columns", "rows")},
            **({"window": current[len(WINDOW):]} if isinstance(current, str) and current.startswith(WINDOW) else {})},
        "metrics": None, "decision": None, "reason": None,
    }
    share = f"{summary['n_drifted']} of {summary['n_columns']} input columns drifted ({summary['share_drifted']:.0%})"
    if not report.dataset_drift:
        doc.update(decision="no-drift", reason=f"no retraining: {share}, below the threshold of {threshold:.0%}")
        records.insert_decision(store, doc)
        return RetrainDecision(doc, report)

    # -- retrain --------------------------------------------------------------------------------
    if held is None:
        held = cur.sample(frac=holdout, random_state=seed)
        train_part = cur.drop(index=held.index)
    else:
        train_part = cur
    if train_data is not None:
        train_part = _frame(train_data, "train_data")
    version = log_version(train_part.reset_index(drop=True), dataset)
    doc["dataset"] = version.uri
    try:
        run = pipe.run(params, cache=cache, progress=progress)
    except StepFailed as exc:
        doc.update(decision="failed", pipeline_run=exc.run.id, reason=f"{share}; retraining failed: {exc}")
        records.insert_decision(store, doc)
        raise
    doc["pipeline_run"] = run.id
    out = run.outputs[out_port.name]
    cand = register_model(f"{out['run_id']}:{out['name']}", ref.name, alias=candidate_alias,
                          tags={"nbmlops.retrain": doc["id"], "nbmlops.pipeline_run": run.id,
                                "nbmlops.dataset": version.uri},
                          description=f"retrained by pipeline {pipe.name} after drift ({share})")
    doc["candidate"] = cand.uri

    # -- compare and decide ---------------------------------------------------------------------
    lacking = [c for c in features if c not in held.columns]
    if lacking:
        raise InvalidInput(f"the held-out rows lack model inputs {lacking[:5]}: compute features inside the model "
                           "(a scikit-learn Pipeline) so it takes the pipeline's input columns, or pass held_out= rows "
                           f"the model can score (candidate {cand.uri} is registered)")
    X, y = held[features], held[target]
    try:
        prod_score = _score(metric, load_model(production.uri), X, y)
        cand_score = _score(metric, load_model(cand.uri), X, y)
    except NbmlopsError:
        raise
    except Exception as exc:
        raise InvalidInput(f"cannot score the models with {metric} on the held-out rows: {exc}") from None
    higher = HIGHER_IS_BETTER[metric]
    gain = cand_score - prod_score if higher else prod_score - cand_score
    doc["metrics"] = {"metric": metric, "production": prod_score, "candidate": cand_score, "gain": gain,
                      "rows": int(len(held))}
    scores = (f"{metric} {cand_score:.4f} (candidate {cand.uri}) vs {prod_score:.4f} (production {production.uri}) "
              f"on {len(held):,} held-out rows")
    alias = ref.alias or "production"
    better = gain > 0 and gain >= margin
    if better and auto_promote:
        set_alias(ref.name, alias, cand.version)
        doc.update(decision="promoted", reason=f"{share}; retrained and promoted {cand.uri} to {alias}: {scores}, "
                                               f"better by {gain:.4f} (margin {margin:g})")
    elif better:
        doc.update(decision="candidate-better",
                   reason=f"{share}; the candidate is better by {gain:.4f} (margin {margin:g}): {scores}; promote it "
                          f"with nbmlops.set_alias({ref.name!r}, {alias!r}, {cand.version})")
    else:
        doc.update(decision="kept-production",
                   reason=f"{share}; kept {production.uri} as {alias}: {scores}, "
                          f"{'worse' if gain < 0 else 'not better'} by {abs(gain):.4f} (margin {margin:g})")
    records.insert_decision(store, doc)
    return RetrainDecision(doc, report, run)


def retrain_decisions(model: str | None = None) -> Any:
    """Stored retrain decisions, newest first (``model`` filters by model name)."""
    import pandas as pd

    store = current_store(create=False)
    docs = records.list_decisions(store, model) if store.exists() else []
    rows = [{"time": pd.Timestamp(d["time"], unit="ms"), "model": d["model"], "decision": d["decision"],
             "production": d.get("production"), "candidate": d.get("candidate"),
             "share_drifted": (d.get("drift") or {}).get("share_drifted"),
             "metric": (d.get("metrics") or {}).get("metric"),
             "production_score": (d.get("metrics") or {}).get("production"),
             "candidate_score": (d.get("metrics") or {}).get("candidate"),
             "pipeline_run": (d.get("pipeline_run") or "")[:8] or None, "reason": d["reason"], "id": d["id"]}
            for d in docs]
    return pd.DataFrame(rows, columns=["time", "model", "decision", "production", "candidate", "share_drifted",
                                       "metric", "production_score", "candidate_score", "pipeline_run", "reason", "id"])
