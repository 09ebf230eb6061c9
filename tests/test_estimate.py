"""Performance without labels (nbmlops.monitoring.estimate): CBPE and DLE estimates against realized
metrics, on fixed seeds, and each limit's message."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from nbmlops.errors import InvalidInput
from nbmlops.monitoring.estimate import CBPE, DLE, estimator_for


@pytest.fixture(autouse=True)
def _one_thread():
    """The models these tests train use one OpenMP thread: on a shared 2-core machine two spinning threads
    make a gradient-boosted fit ~20x slower."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def _binary(rng: np.random.Generator, n: int, mean: float = 0.0, scale: float = 1.0):
    """Two inputs, labels drawn from P(y=1|x) = sigmoid(2 x0 - x1): the labelling never changes."""
    x = rng.normal(mean, scale, size=(n, 2))
    p = _sigmoid(2 * x[:, 0] - x[:, 1])
    return x, p, (rng.random(n) < p).astype(int)


def _logistic(rng: np.random.Generator):
    from sklearn.linear_model import LogisticRegression

    x, _, y = _binary(rng, 5_000)
    return LogisticRegression().fit(x, y)


# -- CBPE ------------------------------------------------------------------------------------

def test_a_perfectly_calibrated_model_is_estimated_within_its_sampling_error():
    rng = np.random.default_rng(1)
    _, p_ref, y_ref = _binary(rng, 5_000)
    cbpe = CBPE().fit(np.column_stack([1 - p_ref, p_ref]), y_ref, [0, 1])
    _, p, y = _binary(rng, 2_000)
    probas = np.column_stack([1 - p, p])
    out = cbpe.estimate(probas)
    realized = cbpe.realized(probas, y)
    assert set(out["metrics"]) == {"accuracy", "roc_auc", "f1"} and out["rows"] == 2_000
    for metric, est in out["metrics"].items():
        # the true probabilities: the estimate is off by the labels' sampling noise only
        assert abs(est["estimated"] - realized[metric]) <= 3 * est["sampling_error"], (metric, est, realized)
        assert est["lower"] <= realized[metric] <= est["upper"]
        assert 0 < est["sampling_error"] < 0.05
        assert abs(est["reference"] - realized[metric]) < 0.05


def test_estimated_accuracy_falls_when_inputs_move_toward_the_boundary_and_tracks_realized():
    rng = np.random.default_rng(2)
    model = _logistic(rng)
    x_ref, _, y_ref = _binary(rng, 5_000)
    cbpe = estimator_for(model, x_ref, y_ref)
    assert isinstance(cbpe, CBPE)
    x_far, _, y_far = _binary(rng, 3_000, scale=2.5)    # spread out: most points far from the boundary
    x_near, _, y_near = _binary(rng, 3_000, scale=0.3)  # crowded around it
    far, near = cbpe.estimate(model.predict_proba(x_far)), cbpe.estimate(model.predict_proba(x_near))
    acc_far, acc_near = far["metrics"]["accuracy"]["estimated"], near["metrics"]["accuracy"]["estimated"]
    assert acc_near < acc_far - 0.15
    assert abs(acc_far - cbpe.realized(model.predict_proba(x_far), y_far)["accuracy"]) < 0.03
    assert abs(acc_near - cbpe.realized(model.predict_proba(x_near), y_near)["accuracy"]) < 0.03
    assert near["metrics"]["accuracy"]["estimated"] < near["metrics"]["accuracy"]["reference"] - 0.15


def test_multiclass_estimates_track_realized():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    centres = np.array([[0, 0], [2, 0], [1, 1.7]])

    def draw(n: int, mean: tuple[float, float], scale: float):
        """Inputs from anywhere; labels from one fixed posterior (three Gaussian classes, equal priors)."""
        x = rng.normal(mean, scale, size=(n, 2))
        logits = -((x[:, None, :] - centres[None]) ** 2).sum(axis=2) / (2 * 0.9 ** 2)
        post = np.exp(logits - logits.max(axis=1, keepdims=True))
        post /= post.sum(axis=1, keepdims=True)
        k = (rng.random(n)[:, None] > post.cumsum(axis=1)).sum(axis=1)
        return x, np.array(["a", "b", "c"])[k]

    x_train, y_train = draw(4_000, (1, 0.6), 1.5)
    model = LogisticRegression(max_iter=500).fit(x_train, y_train)
    x_ref, y_ref = draw(4_000, (1, 0.6), 1.5)
    cbpe = CBPE().fit(model.predict_proba(x_ref), y_ref, model.classes_)
    assert cbpe.classes == ["a", "b", "c"] and len(cbpe.calibrated) == 3
    x, y = draw(3_000, (1, 0.6), 0.6)   # crowded where the three classes meet
    probas = model.predict_proba(x)
    out, realized = cbpe.estimate(probas), cbpe.realized(probas, y)
    assert out["classes"] == ["a", "b", "c"]
    for metric in ("accuracy", "roc_auc", "f1"):
        assert abs(out["metrics"][metric]["estimated"] - realized[metric]) < 0.03, metric
    assert out["metrics"]["accuracy"]["estimated"] < out["metrics"]["accuracy"]["reference"] - 0.1
    assert abs(cbpe.calibrate(probas).sum(axis=1) - 1).max() < 1e-9


def test_fitted_cbpe_keeps_calibrators_not_the_reference():
    rng = np.random.default_rng(4)
    sizes = []
    for n in (2_000, 50_000):
        _, p, y = _binary(rng, n)
        noisy = np.clip(p + rng.normal(0, 0.1, n), 0, 1)   # miscalibrated: isotonic calibration kicks in
        cbpe = CBPE().fit(noisy, y, [0, 1])
        assert cbpe.calibrated == [True]
        sizes.append(len(pickle.dumps(cbpe)))
    assert max(sizes) < 64 * 1024, sizes   # 50,000 rows of probabilities alone would be 400 KB


# -- CBPE limits -----------------------------------------------------------------------------

def _fitted_cbpe() -> CBPE:
    rng = np.random.default_rng(5)
    _, p, y = _binary(rng, 1_000)
    return CBPE().fit(p, y, [0, 1])


def test_a_window_under_the_minimum_is_refused_with_its_size():
    cbpe = _fitted_cbpe()
    with pytest.raises(InvalidInput, match=r"window of 99 rows is too small.*at least 100"):
        cbpe.estimate(np.full(99, 0.7))
    assert cbpe.estimate(np.full(100, 0.7))["rows"] == 100


def test_rows_without_probabilities_are_left_out_and_counted():
    cbpe = _fitted_cbpe()
    p = np.r_[np.full(150, 0.8), np.full(5, np.nan)]
    out = cbpe.estimate(p)
    assert out["rows"] == 150 and out["notes"] == ["5 rows without probabilities left out"]


@pytest.mark.parametrize(("probas", "labels", "message"), [
    (None, [0, 1] * 100, "no probabilities: CBPE"),
    (np.full(200, 0.5), None, "no labels: CBPE calibrates on known labels"),
    (np.full(200, 0.5), [None] * 200, "labels are all missing"),
    (np.linspace(0, 1, 200), [1] * 200, r"all of one class \(1\)"),
    (np.linspace(0, 1, 200), [0, 2] * 100, r"labels 2 are not among the model's classes \[0, 1\]"),
    (np.linspace(0, 1, 50), [0, 1] * 25, "50 labelled rows; CBPE needs at least 100"),
    (np.ones((200, 3)) / 3, [0, 1] * 100, r"shape \(200, 3\); expected one column per class \(2\)"),
])
def test_a_reference_that_cannot_calibrate_says_why(probas, labels, message):
    with pytest.raises(InvalidInput, match=message):
        CBPE().fit(probas, labels, [0, 1])


def test_a_classifier_without_predict_proba_gets_no_cbpe():
    from sklearn.svm import LinearSVC

    rng = np.random.default_rng(6)
    x, _, y = _binary(rng, 500)
    with pytest.raises(InvalidInput, match="LinearSVC has no predict_proba: no CBPE"):
        estimator_for(LinearSVC().fit(x, y), x, y)


def test_unfitted_and_misconfigured_estimators_say_so():
    with pytest.raises(InvalidInput, match="not fitted"):
        CBPE().estimate(np.full(200, 0.5))
    with pytest.raises(InvalidInput, match="not precision"):
        CBPE(metrics=("accuracy", "precision"))
    with pytest.raises(InvalidInput, match="calibration='platt'"):
        CBPE(calibration="platt")
    with pytest.raises(InvalidInput, match="not fitted"):
        DLE().estimate(np.zeros((200, 2)), np.zeros(200))


# -- DLE -------------------------------------------------------------------------------------

def _regression(rng: np.random.Generator, n: int, shift: float = 0.0, spread: float = 1.0):
    """y = x0² + x1 + noise whose spread grows with |x2|: the errors depend on where the inputs are."""
    x = rng.normal(0, 1, size=(n, 3))
    x[:, 0] += shift
    x[:, 2] *= spread
    return x, x[:, 0] ** 2 + x[:, 1] + rng.normal(0, 0.2 + 0.5 * np.abs(x[:, 2]), n)


def test_dle_tracks_realized_mae_under_covariate_shift():
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(7)
    x_train, y_train = _regression(rng, 5_000)
    model = HistGradientBoostingRegressor(max_iter=50, random_state=0).fit(x_train, y_train)
    x_ref, y_ref = _regression(rng, 5_000)
    dle = estimator_for(model, x_ref, y_ref)
    assert isinstance(dle, DLE)
    estimated, realized = [], []
    for shift, spread in ((0, 1), (0.4, 1.4), (0.8, 1.8)):
        x, y = _regression(rng, 2_000, shift, spread)
        pred = model.predict(x)
        out = dle.estimate(x, pred)["metrics"]
        real = DLE.realized(pred, y)
        estimated.append(out["mae"]["estimated"])
        realized.append(real["mae"])
        assert abs(out["mae"]["estimated"] - real["mae"]) < 0.1 * real["mae"], (shift, out["mae"], real)
        assert abs(out["rmse"]["estimated"] - real["rmse"]) < 0.15 * real["rmse"], (shift, out["rmse"], real)
    assert estimated[2] > estimated[0] * 1.3 and realized[2] > realized[0] * 1.3


def test_dle_leaves_out_an_all_null_column_and_reads_text_columns():
    import pandas as pd

    rng = np.random.default_rng(8)
    n = 1_000
    city = rng.choice(["north", "south"], n)
    noise = np.where(city == "south", 2.0, 0.2)
    x = pd.DataFrame({"a": rng.normal(0, 1, n), "empty": [None] * n, "city": city})
    y = x["a"].to_numpy() + rng.normal(0, noise)
    pred = x["a"].to_numpy()
    dle = DLE().fit(x, pred, y)
    assert dle.notes == ["column empty is empty in the reference: left out of the loss model"]
    assert dle.columns == ["a", "city"]
    south = x[city == "south"].iloc[:200]
    north = x[city == "north"].iloc[:200]
    mae_south = dle.estimate(south, south["a"])["metrics"]["mae"]["estimated"]
    mae_north = dle.estimate(north, north["a"])["metrics"]["mae"]["estimated"]
    assert mae_south > 5 * mae_north               # the text column carries the error's size
    unseen = north.assign(city="west", a=np.nan)  # a value never seen, a column empty in the window
    out = dle.estimate(unseen, north["a"])
    assert out["notes"] == ["column a is empty in the window: the loss model takes its missing-value branch "
                            "there, so the estimate leans on the other columns"]
    assert np.isfinite(out["metrics"]["mae"]["estimated"])


@pytest.mark.parametrize(("features", "pred", "target", "message"), [
    (np.zeros((200, 2)), np.zeros(200), None, "no targets: DLE learns the model's errors"),
    (np.zeros((200, 2)), None, np.zeros(200), "no predictions"),
    (np.zeros((200, 2)), np.zeros(200), np.full(200, np.nan), "0 rows with target and prediction; DLE needs"),
    (np.zeros((200, 2)), np.zeros(150), np.zeros(200), "200 features, 150 predictions, 200 targets"),
])
def test_a_reference_dle_cannot_learn_from_says_why(features, pred, target, message):
    with pytest.raises(InvalidInput, match=message):
        DLE().fit(features, pred, target)


def test_dle_refuses_a_small_window_and_a_missing_column():
    rng = np.random.default_rng(9)
    x, y = _regression(rng, 500)
    dle = DLE(metrics=("mae",)).fit(x, np.zeros(500), y)
    with pytest.raises(InvalidInput, match="window of 20 rows is too small"):
        dle.estimate(x[:20], np.zeros(20))
    with pytest.raises(InvalidInput, match="no column x2"):
        dle.estimate(x[:200, :2], np.zeros(200))


# -- against NannyML, the reference implementation ---------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("classes", [[0, 1], ["a", "b", "c"]])
def test_cbpe_estimates_equal_nannymls_on_the_same_window(classes, monkeypatch):
    monkeypatch.setenv("NML_DISABLE_USAGE_LOGGING", "1")  # NannyML sends usage analytics unless told not to
    nml = pytest.importorskip("nannyml")
    import pandas as pd

    rng = np.random.default_rng(10)
    k = len(classes)

    def draw(n: int, scale: float):
        logits = rng.normal(0, scale, size=(n, k))
        model = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        truth = np.exp(1.3 * logits) / np.exp(1.3 * logits).sum(axis=1, keepdims=True)  # the model is too timid
        y = (rng.random(n)[:, None] > truth.cumsum(axis=1)).sum(axis=1)
        return model, np.asarray(classes)[y]

    def frame(p: np.ndarray, y: np.ndarray | None) -> pd.DataFrame:
        df = pd.DataFrame({"proba": p[:, 1]} if k == 2 else {f"p_{c}": p[:, j] for j, c in enumerate(classes)})
        df["pred"] = np.asarray(classes)[p.argmax(axis=1)]
        if y is not None:
            df["y"] = y
        return df

    p_ref, y_ref = draw(3_000, 2.0)
    p_win, _ = draw(1_000, 1.2)
    ours = CBPE().fit(p_ref, y_ref, classes).estimate(p_win)["metrics"]
    theirs = nml.CBPE(metrics=["accuracy", "roc_auc", "f1"], y_pred="pred", y_true="y",
                      y_pred_proba="proba" if k == 2 else {c: f"p_{c}" for c in classes},
                      problem_type="classification_binary" if k == 2 else "classification_multiclass",
                      chunk_size=1_000).fit(frame(p_ref, y_ref))
    df = theirs.estimate(frame(p_win, None)).filter(period="analysis").to_df()
    for metric in ("accuracy", "roc_auc", "f1"):
        assert ours[metric]["estimated"] == pytest.approx(df[(metric, "value")].iloc[0], abs=1e-6), metric
        assert ours[metric]["sampling_error"] == pytest.approx(df[(metric, "sampling_error")].iloc[0], rel=0.05), metric


def test_a_class_missing_from_the_reference_is_named():
    rng = np.random.default_rng(11)
    p = rng.dirichlet([2, 2, 2], size=600)
    y = np.where(p[:, 0] > p[:, 1], "a", "b")           # class c never labelled
    cbpe = CBPE().fit(p, y, ["a", "b", "c"])
    assert cbpe.notes == ["class c never appears in the reference: its probabilities are used uncalibrated "
                          "and it is left out of the reference's ROC AUC"]
    assert cbpe.calibrated[2] is False and cbpe.estimate(p[:200])["rows"] == 200
