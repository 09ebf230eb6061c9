"""Performance without labels: CBPE for classifiers, direct loss estimation (DLE) for regressors.

NannyML's two methods, written on numpy and scikit-learn (issue 19):

- **CBPE** (confidence-based performance estimation): on the reference, where labels are known, the
  model's probabilities are calibrated (isotonic regression per class, one-vs-rest, kept only when it
  lowers the expected calibration error in cross-validation, as NannyML decides); on a window of
  served probabilities the calibrated ones are taken as the chance that each row is of its class,
  and the metrics are their expectations: accuracy is the mean probability of the predicted class,
  F1 comes from expected TP/FP/FN counts, ROC AUC from the expected ROC curve (rows ranked by the
  model's own scores, expected true and false positives summed down that ranking).
- **DLE**: a gradient-boosted model of the reference's absolute and squared errors, from the
  features and the prediction; a window's MAE is the mean of its predicted absolute errors, its RMSE
  the root of the mean predicted squared error.

Both hold under covariate shift (inputs move, the labelling function stays), not under concept
shift. The confidence band is the estimate ± 3 sampling errors, the sampling error computed from
the reference by NannyML's formulas for a window of that many rows. A fitted estimator keeps only
calibrators, loss models and a few numbers from the reference, never the reference itself.
``estimator_for(model, X, y)`` picks and fits the one that suits a model.
"""

from __future__ import annotations

from typing import Any

from ...errors import InvalidInput
from .cbpe import CBPE, CBPE_METRICS
from .common import MIN_WINDOW, SAMPLING_ERROR_RANGE
from .dle import DLE, DLE_METRICS

__all__ = ["CBPE", "DLE", "estimator_for", "CBPE_METRICS", "DLE_METRICS", "MIN_WINDOW", "SAMPLING_ERROR_RANGE"]


def estimator_for(model: Any, reference_features: Any, reference_targets: Any, **options: Any) -> CBPE | DLE:
    """The estimator that suits ``model``, fitted on a labelled reference: CBPE for a classifier with
    ``predict_proba``, DLE for a regressor. A classifier without ``predict_proba`` gets no CBPE."""
    # scikit-learn is heavy: imported only to tell a classifier from a regressor
    from sklearn.base import is_classifier

    name = type(model).__name__
    classifier = is_classifier(model) or hasattr(model, "classes_")
    if classifier:
        if not hasattr(model, "predict_proba"):
            raise InvalidInput(f"{name} has no predict_proba: no CBPE, so estimated accuracy, ROC AUC and F1 are "
                               "unavailable; only realized metrics once labels arrive (or serve a model with "
                               "probabilities, e.g. CalibratedClassifierCV around it)")
        probas = model.predict_proba(reference_features)
        return CBPE(**options).fit(probas, reference_targets, model.classes_)
    if not hasattr(model, "predict"):
        raise InvalidInput(f"{name} has no predict: nothing to estimate")
    return DLE(**options).fit(reference_features, model.predict(reference_features), reference_targets)
