"""fastnn.MLPClassifier and fastnn.MLPRegressor: scikit-learn's estimator checks, the
same training as scikit-learn's MLP from the same weights, labels, sample and class
weights, sparse input, the ecosystem (Pipeline, GridSearchCV on processes and on a dask
cluster, cross-validation, clone, pickle) and bad input."""
import inspect
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.sparse

sklearn = pytest.importorskip("sklearn")

import joblib  # noqa: E402  (scikit-learn's dependency)
from sklearn import neural_network  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import (GridSearchCV, cross_val_score,  # noqa: E402
                                     cross_validate, train_test_split)
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import LabelBinarizer, StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastnn import MLPClassifier, MLPRegressor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

RNG = np.random.default_rng(0)
X = RNG.standard_normal((90, 5))
WEIGHTS = RNG.integers(0, 4, 90).astype(float)
Y_BINARY = (X[:, 0] + X[:, 1] > 0).astype(int)
Y_CLASSES = np.digitize(X[:, 0], [-0.5, 0.5])
Y_LABELS = (X[:, :3] > 0).astype(int)
Y_VALUES = 2 * X[:, 0] + X[:, 1]
Y_COUNTS = RNG.poisson(np.exp(0.5 * X[:, 0]))
SMALL = dict(hidden_layer_sizes=(7, 6), activation="tanh", alpha=0.01, batch_size=32,
             random_state=0)


def test_importing_fastnn_does_not_import_scikit_learn(tmp_path):
    code = ("import sys, fastnn\n"
            "from fastnn import *\n"
            "assert 'sklearn' not in sys.modules, 'import fastnn imported sklearn'\n"
            "assert 'MLPClassifier' in dir(fastnn)\n"
            "import fastnn.sklearn\n"
            "assert fastnn.MLPRegressor is fastnn.sklearn.MLPRegressor\n"
            "assert vars(fastnn)['MLPClassifier'] is fastnn.sklearn.MLPClassifier\n"
            "assert 'sklearn' in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path)  # not the checkout's folder: the installed fastnn
    assert done.returncode == 0, done.stderr


@parametrize_with_checks([MLPClassifier(), MLPRegressor()])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_the_array_api_check_passes_where_it_runs(tmp_path):
    """The array-API check skips itself above unless SCIPY_ARRAY_API=1 was set before
    scipy was imported: here the estimator checks of that name run so, in a pytest
    of their own."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider",
         "-k", "test_scikit_learn_estimator_checks and array_api"],
        env={**os.environ, "SCIPY_ARRAY_API": "1"}, capture_output=True, text=True,
        cwd=tmp_path)  # python -m puts its folder on sys.path: not the checkout's
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout and "skipped" not in done.stdout, done.stdout


# ---------------------------------------------------------------- same as scikit-learn

#: scikit-learn's MLP takes sample_weight, and loss="poisson", from 1.7 (the test
#: extra asks for it; fastnn's estimators themselves need 1.6).
needs_reference = pytest.mark.skipif(
    tuple(int(part) for part in sklearn.__version__.split(".")[:2]) < (1, 7),
    reason="comparing with scikit-learn's MLP needs scikit-learn >= 1.7")


def _from_the_same_weights(ours, theirs, y, sample_weight, epochs=30):
    """Fit both for one epoch, give scikit-learn's ours weights, then fit both again
    from there (warm start: a fresh optimizer each, in order, without shuffling)."""
    for estimator in (ours, theirs):
        estimator.set_params(warm_start=True, max_iter=1, shuffle=False)
        estimator.fit(X, y, sample_weight=sample_weight)
    theirs.coefs_ = [c.copy() for c in ours.coefs_]
    theirs.intercepts_ = [b.copy() for b in ours.intercepts_]
    for estimator in (ours, theirs):
        estimator.set_params(max_iter=epochs)
        estimator.fit(X, y, sample_weight=sample_weight)


SAME = {  # Adam's epsilon sits elsewhere in scikit-learn: with a tiny one, they agree
    "adam softmax": ("classifier", dict(solver="adam", epsilon=1e-30,
                                        learning_rate_init=0.01), Y_CLASSES),
    "adam sigmoid": ("classifier", dict(solver="adam", epsilon=1e-30,
                                        learning_rate_init=0.01), Y_BINARY),
    "nesterov multilabel": ("classifier", dict(solver="sgd", learning_rate_init=0.05),
                            Y_LABELS),
    "momentum softmax": ("classifier", dict(solver="sgd", nesterovs_momentum=False,
                                            learning_rate_init=0.05), Y_CLASSES),
    "invscaling": ("classifier", dict(solver="sgd", momentum=0, learning_rate_init=0.5,
                                      learning_rate="invscaling"), Y_CLASSES),
    "adaptive": ("classifier", dict(solver="sgd", momentum=0, learning_rate="adaptive",
                                    tol=0.05, n_iter_no_change=2,
                                    learning_rate_init=0.05), Y_CLASSES),
    "lbfgs multilabel": ("classifier", dict(solver="lbfgs"), Y_LABELS),
    "adam squared error": ("regressor", dict(solver="adam", epsilon=1e-30,
                                             learning_rate_init=0.01), Y_VALUES),
    "lbfgs squared error": ("regressor", dict(solver="lbfgs"), Y_VALUES),
    "sgd poisson": ("regressor", dict(solver="sgd", loss="poisson",
                                      learning_rate_init=0.01), Y_COUNTS),
    "lbfgs poisson": ("regressor", dict(solver="lbfgs", loss="poisson"), Y_COUNTS),
}


@needs_reference
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("case", SAME)
def test_training_is_scikit_learns_from_the_same_weights(case, weighted):
    kind, params, y = SAME[case]
    ours, theirs = ((MLPClassifier, neural_network.MLPClassifier) if kind == "classifier"
                    else (MLPRegressor, neural_network.MLPRegressor))
    # Weighted, on the full batch: scikit-learn averages an epoch's batch losses by
    # their rows, fastnn by their weights (which is what repeating samples means).
    params = {**SMALL, **params, **(dict(batch_size=90) if weighted else {})}
    ours, theirs = ours(**params), theirs(**params)
    _from_the_same_weights(ours, theirs, y, WEIGHTS if weighted else None)
    assert ours.n_iter_ == theirs.n_iter_
    for mine, its in zip(ours.coefs_ + ours.intercepts_,
                         theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(mine, its, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=1e-9)
    if params["solver"] != "lbfgs":
        np.testing.assert_allclose(ours.loss_curve_[1:], theirs.loss_curve_[1:],
                                   rtol=1e-9)


@needs_reference
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-9), (np.float32, 1e-4)],
                         ids=["float64", "float32"])
@pytest.mark.parametrize("activation", ["logistic", "relu"])
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_init_auto_draws_scikit_learns_initial_weights(kind, activation, dtype, rtol):
    """The same random_state, the same first draws: scikit-learn's initial weights
    (factor 2 for logistic), so plain SGD in order trains to the same weights."""
    ours, theirs, y = ((MLPClassifier, neural_network.MLPClassifier, Y_CLASSES)
                       if kind == "classifier" else
                       (MLPRegressor, neural_network.MLPRegressor, Y_VALUES))
    params = {**SMALL, "activation": activation, "solver": "sgd", "momentum": 0,
              "learning_rate_init": 1e-3, "shuffle": False, "max_iter": 2}
    ours, theirs = ours(**params).fit(X.astype(dtype), y), theirs(**params).fit(
        X.astype(dtype), y)
    for mine, its in zip(ours.coefs_ + ours.intercepts_,
                         theirs.coefs_ + theirs.intercepts_):
        assert mine.dtype == its.dtype == dtype
        np.testing.assert_allclose(mine, its, rtol=rtol, atol=rtol * 1e-3)
    bound = np.sqrt((2 if activation == "logistic" else 6) / (5 + 7))
    assert 0.8 * bound < np.abs(ours.intercepts_[0]).max() < 1.01 * bound


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_an_int_random_state_draws_as_its_randomstate_in_every_fit(kind):
    """An int random_state (reseeding a spare RandomState) fits as RandomState(seed)
    does, fit after fit in one thread, and also for a fit nested in another's draws (a
    callable init that fits a model itself), early stopping's split included."""
    ours, y = (MLPClassifier, Y_CLASSES) if kind == "classifier" else (MLPRegressor,
                                                                       Y_VALUES)
    params = {**SMALL, "max_iter": 3, "early_stopping": True}

    def weights(estimator):
        return estimator.coefs_ + estimator.intercepts_ + [estimator.validation_scores_]

    want = weights(ours(**{**params, "random_state": np.random.RandomState(3)}).fit(X, y))
    for _ in range(2):
        for got, expected in zip(weights(ours(**{**params, "random_state": 3}).fit(X, y)),
                                 want):
            np.testing.assert_array_equal(got, expected)

    def nested(shape, rng, dtype):  # another int-seeded fit while the outer one draws
        ours(**{**params, "random_state": 5}).fit(X, y)
        return rng.standard_normal(shape).astype(dtype) * 0.1
    outer = {**params, "init": nested}
    want = weights(ours(**{**outer, "random_state": np.random.RandomState(3)}).fit(X, y))
    for got, expected in zip(weights(ours(**{**outer, "random_state": 3}).fit(X, y)), want):
        np.testing.assert_array_equal(got, expected)


@needs_reference
def test_adams_epsilon_is_the_only_difference_from_scikit_learns_adam():
    ours = MLPClassifier(**SMALL, learning_rate_init=0.01)
    theirs = neural_network.MLPClassifier(**SMALL, learning_rate_init=0.01)
    _from_the_same_weights(ours, theirs, Y_CLASSES, None)
    for mine, its in zip(ours.coefs_, theirs.coefs_):
        np.testing.assert_allclose(mine, its, rtol=1e-3, atol=1e-6)


# ---------------------------------------------------------------- the classifier


@pytest.mark.parametrize("labels", [np.array(["cat", "dog", "emu"]), np.array([3, 7, 9]),
                                    np.array([False, True])], ids=["str", "int", "bool"])
def test_any_labels_come_back_as_given(labels):
    y = labels[Y_CLASSES % len(labels)]
    clf = MLPClassifier(**SMALL, max_iter=50).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, labels)
    prediction = clf.predict(X)
    assert prediction.dtype == y.dtype and set(prediction) <= set(labels)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), len(labels))
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    assert clf.out_activation_ == ("logistic" if len(labels) == 2 else "softmax")
    assert clf.n_outputs_ == (1 if len(labels) == 2 else len(labels))
    assert clf.model_.output == ("sigmoid" if len(labels) == 2 else "softmax")


@pytest.mark.parametrize("y", [
    np.array([2, 0, 1, 2]), np.array([2, 0, 1, 2], dtype=np.int32),
    np.array([1, 0, 1], dtype=np.uint8), np.array([5, 5]), np.array([0, 0, 0]),
    np.array([7, 3, 7]), np.array([-1, 4, 2, -1]), np.array([0, 2, 9, 2]),
    np.array([2**62, 1, 2**62]), np.array([2**63 + 5, 3], dtype=np.uint64),
    np.arange(1000)[::-7] % 50], ids=lambda y: f"{y.dtype}{y[:4].tolist()}")
def test_integer_labels_are_learnt_as_scikit_learns_checks_learn_them(y):
    """_integer_labels, the first fit's fast path for 1-D integer labels: the same
    LabelBinarizer (classes, their dtype, y's type) and index as
    check_classification_targets, LabelBinarizer().fit(y) and a search of y in the
    classes give."""
    from sklearn.utils.multiclass import check_classification_targets

    from fastnn.sklearn import _integer_labels
    y = np.tile(y, 3)  # (labels fewer than half the samples)
    distinct, index = _integer_labels(y)
    check_classification_targets(y)
    expected = LabelBinarizer().fit(y)
    got = LabelBinarizer().fit(distinct)
    assert vars(got).keys() == vars(expected).keys()
    for name, value in vars(expected).items():
        np.testing.assert_array_equal(getattr(got, name), value, err_msg=name)
    assert got.classes_.dtype == expected.classes_.dtype
    np.testing.assert_array_equal(index, np.searchsorted(expected.classes_, y))
    assert _integer_labels(y.astype(float)) is None
    assert _integer_labels(y[:0]) is None and _integer_labels(y[:, None]) is None


def test_more_classes_than_half_the_samples_are_warned_of_as_by_scikit_learn():
    with pytest.warns(UserWarning, match="greater than 50% of the number of samples"):
        MLPClassifier(**SMALL, max_iter=1).fit(X[:40], np.arange(40) % 21)


def test_a_label_indicator_matrix_trains_one_sigmoid_per_label():
    clf = MLPClassifier(**SMALL, max_iter=50).fit(X, Y_LABELS)
    assert clf.predict(X).shape == Y_LABELS.shape
    assert clf.predict_proba(X).shape == Y_LABELS.shape
    assert (clf.out_activation_, clf.n_outputs_, clf.model_.output) == ("logistic", 3,
                                                                        "sigmoid")
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])


def test_fitted_attributes_are_scikit_learns():
    clf = MLPClassifier(**SMALL, max_iter=5).fit(X, Y_CLASSES)
    assert [c.shape for c in clf.coefs_] == [(5, 7), (7, 6), (6, 3)]
    assert [b.shape for b in clf.intercepts_] == [(7,), (6,), (3,)]
    np.testing.assert_array_equal(clf.coefs_[0], clf.model_.layers[0].W.T)
    assert (clf.n_layers_, clf.n_iter_, clf.t_, len(clf.loss_curve_)) == (4, 5, 450, 5)
    assert clf.loss_ == clf.loss_curve_[-1] and clf.best_loss_ == min(clf.loss_curve_)
    assert clf.validation_scores_ is None and clf.best_validation_score_ is None
    assert clf.n_features_in_ == 5 and not hasattr(clf, "feature_names_in_")
    with pytest.raises(NotFittedError):
        MLPClassifier().predict(X)
    assert not hasattr(MLPClassifier(), "coefs_")


@needs_reference
def test_two_classes_train_as_scikit_learns_also_one_class_a_call():
    """String labels, two classes, the later partial_fit calls one class each: the
    sigmoid's target is 1 for classes_[1] and 0 for classes_[0] (LabelBinarizer's),
    whatever the call holds, so plain SGD from the same weights stays scikit-learn's."""
    labels = np.array(["yes", "no"])  # classes_ sorts them: "no" is the 0
    y = labels[Y_BINARY]
    params = {**SMALL, "solver": "sgd", "momentum": 0, "learning_rate_init": 0.1,
              "shuffle": False}
    ours, theirs = MLPClassifier(**params), neural_network.MLPClassifier(**params)
    for estimator in (ours, theirs):
        estimator.partial_fit(X, y, classes=labels)
    theirs.coefs_ = [c.copy() for c in ours.coefs_]
    theirs.intercepts_ = [b.copy() for b in ours.intercepts_]
    for label in labels:
        for estimator in (ours, theirs):
            estimator.partial_fit(X[y == label], y[y == label])
    for mine, its in zip(ours.coefs_ + ours.intercepts_,
                         theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(mine, its, rtol=1e-7, atol=1e-10)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    for y, k in [(Y_BINARY, 2), (Y_CLASSES, 3)]:  # an indicator matrix later: refused,
        numbers = MLPClassifier(**params).partial_fit(X, y, classes=range(k))  # as by
        with pytest.raises(ValueError, match="not fitted with multilabel input"):  # sk-
            numbers.partial_fit(X, np.eye(k, dtype=int)[y])  # learn (a 3-D Y for two
            # classes, the classes' one-hot targets for three, took it before)


def test_partial_fit_learns_the_classes_first_and_refuses_unseen_labels():
    clf = MLPClassifier(**SMALL)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X, Y_CLASSES)
    clf.set_params(batch_size=30)
    clf.partial_fit(X[:30], Y_CLASSES[:30], classes=[0, 1, 2, 3])
    clf.partial_fit(X[30:], Y_CLASSES[30:])
    assert clf.n_iter_ == 1 and clf.t_ == 90 and len(clf.loss_curve_) == 2
    before = [c.copy() for c in clf.coefs_]
    with pytest.raises(ValueError, match="`y` has classes not in `self.classes_`"):
        clf.partial_fit(X, Y_CLASSES + 2)
    _assert_same(clf.coefs_, before)
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    first = MLPClassifier(**SMALL)  # labels outside classes on the first call too, as
    with pytest.raises(ValueError, match="`y` has classes not in"):  # scikit-learn
        first.partial_fit(X, Y_CLASSES + 2, classes=[0, 1, 2, 3])
    assert not hasattr(first, "model_")
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, Y_CLASSES, classes=[0, 1, 2])


def test_class_weight_is_sample_weight_multiplied_in():
    y = np.where(Y_CLASSES == 2, 1, Y_CLASSES)  # classes of 30 and 60
    per_class = {0: 2.0, 1: 0.5}
    sample_weight = np.array([per_class[label] for label in y])
    by_dict = MLPClassifier(**SMALL, max_iter=5, class_weight=per_class)
    by_dict.fit(X, y, sample_weight=WEIGHTS)
    by_weight = MLPClassifier(**SMALL, max_iter=5)
    by_weight.fit(X, y, sample_weight=WEIGHTS * sample_weight)
    _assert_same(by_dict.coefs_, by_weight.coefs_)
    balanced = MLPClassifier(**SMALL, max_iter=5, class_weight="balanced").fit(X, y)
    counts = np.bincount(y)
    by_count = MLPClassifier(**SMALL, max_iter=5).fit(
        X, y, sample_weight=(len(y) / (2 * counts))[y])
    _assert_same(balanced.coefs_, by_count.coefs_)
    with pytest.raises(ValueError, match="'balanced' is not supported by partial_fit"):
        MLPClassifier(class_weight="balanced").partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="class_weight needs single-output targets"):
        MLPClassifier(class_weight={0: 2}).fit(X, Y_LABELS)


def test_early_stopping_keeps_the_best_weights():
    clf = MLPClassifier(**{**SMALL, "random_state": 7}, max_iter=60, early_stopping=True,
                        n_iter_no_change=3, learning_rate_init=0.05,
                        validation_fraction=0.3)
    clf.fit(X, Y_CLASSES)
    assert len(clf.validation_scores_) == clf.n_iter_ and clf.best_loss_ is None
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert clf.validation_scores_[-1] < clf.best_validation_score_  # stopped late
    # The held-out rows: the split draws from random_state after the initial weights
    # (scikit-learn's 5 * 7 + 7 + 7 * 6 + 6 + 6 * 3 + 3 uniform draws) and model's seed.
    random_state = np.random.RandomState(7)
    random_state.uniform(size=111)
    random_state.randint(np.iinfo(np.int32).max)
    _, X_val, _, y_val = train_test_split(X, Y_CLASSES, test_size=0.3, stratify=Y_CLASSES,
                                          random_state=random_state)
    assert clf.score(X_val, y_val) == clf.best_validation_score_


# ---------------------------------------------------------------- the regressor


def test_regression_outputs():
    one = MLPRegressor(**SMALL, max_iter=20).fit(X, Y_VALUES)
    assert one.predict(X).shape == (90,) and one.out_activation_ == "identity"
    two = MLPRegressor(**SMALL, max_iter=20)
    two.fit(X, np.column_stack([Y_VALUES, -Y_VALUES]))
    assert two.predict(X).shape == (90, 2) and two.n_outputs_ == 2
    poisson = MLPRegressor(**SMALL, loss="poisson", max_iter=20).fit(X, Y_COUNTS)
    assert poisson.out_activation_ == "exp" and (poisson.predict(X) > 0).all()
    with pytest.raises(ValueError, match="y must be >= 0 for a Poisson output"):
        MLPRegressor(**SMALL, loss="poisson").fit(X, -Y_COUNTS - 1)


def test_stopping_rules_warnings_and_verbose(capsys):
    reg = MLPRegressor(**SMALL, tol=1e9, n_iter_no_change=3, verbose=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        reg.fit(X, Y_VALUES)  # no epoch improves by tol: stop after 1 + 3 + 1
    assert reg.n_iter_ == 5
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out and "Stopping." in out
    with pytest.warns(ConvergenceWarning, match="Maximum iterations \\(3\\) reached"):
        MLPRegressor(**SMALL, max_iter=3).fit(X, Y_VALUES)


def test_warm_start_continues():
    reg = MLPRegressor(**SMALL, max_iter=4, warm_start=True).fit(X, Y_VALUES)
    first = [c.copy() for c in reg.coefs_]
    model = reg.model_
    reg.fit(X, Y_VALUES)
    assert reg.model_ is model and reg.n_iter_ == 4 and len(reg.loss_curve_) == 8
    assert not np.array_equal(first[0], reg.coefs_[0])
    reg.set_params(solver="lbfgs").fit(X, Y_VALUES)  # a warm start may change solver
    reg.set_params(solver="sgd", early_stopping=True).fit(X, Y_VALUES)
    assert reg.model_ is model and len(reg.validation_scores_) == reg.n_iter_


# ---------------------------------------------------------------- input


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
@pytest.mark.parametrize("form", [scipy.sparse.csr_matrix, scipy.sparse.csc_matrix,
                                  scipy.sparse.csr_array],
                         ids=["csr", "csc", "csr_array"])
def test_sparse_X_trains_and_predicts_as_dense(form, solver):
    X_sparse = np.where(np.abs(X) > 0.7, X, 0)
    dense = MLPClassifier(**SMALL, solver=solver, max_iter=10).fit(X_sparse, Y_CLASSES)
    sparse = MLPClassifier(**SMALL, solver=solver, max_iter=10).fit(form(X_sparse),
                                                                      Y_CLASSES)
    for mine, its in zip(sparse.coefs_, dense.coefs_):
        np.testing.assert_allclose(mine, its, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(sparse.predict_proba(form(X_sparse)),
                               dense.predict_proba(X_sparse), rtol=1e-12)
    assert sparse.score(form(X_sparse), Y_CLASSES) == dense.score(X_sparse, Y_CLASSES)


class _NoDensifying(scipy.sparse.csr_matrix):
    """A CSR matrix that refuses to be densified whole."""

    def toarray(self, *args, **kwargs):
        raise AssertionError("a sparse X was densified whole")

    todense = toarray


def test_sparse_X_is_never_densified_whole():
    X_sparse = _NoDensifying(np.where(np.abs(X) > 0.7, X, 0))
    clf = MLPClassifier(**SMALL, max_iter=3).fit(X_sparse, Y_CLASSES)
    clf.partial_fit(X_sparse, Y_CLASSES)
    assert clf.predict_proba(X_sparse).shape == (90, 3)
    MLPRegressor(**SMALL, solver="lbfgs", max_iter=3).fit(X_sparse, Y_VALUES)


def test_the_training_dtype_follows_X():
    single = MLPRegressor(**SMALL, max_iter=3).fit(X.astype(np.float32), Y_VALUES)
    assert single.model_.dtype == np.float32 and single.coefs_[0].dtype == np.float32
    assert single.predict(X).dtype == np.float32
    integers = MLPRegressor(**SMALL, max_iter=3).fit((X > 0).astype(int), Y_VALUES)
    assert integers.model_.dtype == np.float64


# ---------------------------------------------------------------- the ecosystem


def test_pipeline_cross_validation_and_clone():
    pipeline = make_pipeline(StandardScaler(), MLPClassifier(**SMALL, solver="lbfgs",
                                                             max_iter=50))
    scores = cross_val_score(pipeline, X * 100 + 5, Y_CLASSES, cv=3)
    assert scores.shape == (3,) and (scores > 0.7).all()
    fitted = MLPClassifier(**SMALL, max_iter=3).fit(X, Y_CLASSES)
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params() and not hasattr(copy, "model_")


def test_parameters_are_validated_as_scikit_learn_validates_them_fit_after_fit():
    """_validate_params remembers the valid scalars: the same errors, in the same
    order, as BaseEstimator's check, before and after a value was seen valid; a value
    equal to a valid one but of another type (1 and True) is checked for itself."""
    from sklearn.base import BaseEstimator
    from sklearn.utils._param_validation import InvalidParameterError
    MLPRegressor(**SMALL, max_iter=2, shuffle=True).fit(X, Y_VALUES)
    for params in [dict(shuffle=1), dict(max_iter=0), dict(alpha=-1.0, max_iter=0),
                   dict(activation="softmax", solver="lbfgs", tol=-1),
                   dict(hidden_layer_sizes="a", shuffle=1), dict(init=3j)]:
        estimator = MLPRegressor(**params)
        with pytest.raises(InvalidParameterError) as expected:
            BaseEstimator._validate_params(estimator)
        for _ in range(2):
            with pytest.raises(InvalidParameterError) as raised:
                estimator.fit(X, Y_VALUES)
            assert str(raised.value) == str(expected.value), params
    for params in [dict(shuffle=np.bool_(False), alpha=np.float32(0.5)),
                   dict(max_iter=np.int64(2), init=lambda shape, rng, dtype:
                        np.full(shape, 0.1, dtype))]:
        estimator = MLPRegressor(**params)
        BaseEstimator._validate_params(estimator)  # valid for scikit-learn: for us too
        estimator._validate_params()


def test_the_parameter_names_are_those_of_each_classs_own_init():
    """_get_param_names is cached per class: a subclass with parameters of its own has
    them, and its parents keep theirs, in whatever order the classes are asked."""
    class Narrower(MLPClassifier):
        def __init__(self, hidden_layer_sizes=(3,), alpha=0.5, width=8):
            super().__init__(hidden_layer_sizes=hidden_layer_sizes, alpha=alpha)
            self.width = width

    for cls in (Narrower, MLPClassifier, MLPRegressor, Narrower, MLPClassifier):
        expected = sorted(name for name in inspect.signature(cls.__init__).parameters
                          if name != "self")
        assert cls._get_param_names() == cls()._get_param_names() == expected
    assert Narrower().get_params() == {"alpha": 0.5, "hidden_layer_sizes": (3,),
                                       "width": 8}
    assert "width" not in MLPClassifier().get_params()


def test_pickled_estimators_predict_and_train_on_as_the_original():
    clf = MLPClassifier(**SMALL, max_iter=3).fit(X, Y_CLASSES)
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    clf.partial_fit(X, Y_CLASSES)
    copy.partial_fit(X, Y_CLASSES)
    _assert_same(copy.coefs_, clf.coefs_)


def test_grid_search_on_worker_processes():
    search = GridSearchCV(MLPClassifier(**SMALL, max_iter=20),
                          {"alpha": [1e-4, 1.0], "solver": ["adam", "lbfgs"]}, cv=2,
                          n_jobs=2).fit(X, Y_CLASSES)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_estimator_.score(X, Y_CLASSES) > 0.5
    returned = cross_validate(MLPClassifier(**SMALL, max_iter=5), X, Y_CLASSES, cv=2,
                              n_jobs=2, return_estimator=True)["estimator"]
    assert all(clf.predict(X).shape == (90,) for clf in returned)  # pickled back


@pytest.mark.slow
def test_grid_search_on_a_dask_cluster():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster), joblib.parallel_backend("dask"):
        search = GridSearchCV(MLPRegressor(**SMALL, max_iter=20),
                              {"alpha": [1e-4, 1.0], "activation": ["relu", "tanh"]},
                              cv=2).fit(X, Y_VALUES)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_estimator_.predict(X).shape == (90,)


# ---------------------------------------------------------------- bad input


def _assert_same(arrays, expected):
    assert len(arrays) == len(expected)
    for array, wanted in zip(arrays, expected):
        np.testing.assert_array_equal(array, wanted)


@pytest.mark.parametrize("params, name", [
    (dict(alpha=-1.0), "alpha"), (dict(activation="softplus"), "activation"),
    (dict(solver="newton"), "solver"), (dict(class_weight="even"), "class_weight"),
    (dict(init="glorot"), "init"), (dict(momentum=2), "momentum")])
def test_parameters_are_validated_at_fit_naming_them(params, name):
    with pytest.raises(ValueError, match=f"The '{name}' parameter of MLPClassifier"):
        MLPClassifier(**params).fit(X, Y_CLASSES)


def test_hidden_layer_sizes_must_be_positive_integers():
    for sizes in [(5, 0), (5, 2.5), [3, -1]]:
        with pytest.raises(ValueError, match="hidden_layer_sizes must be > 0"):
            MLPRegressor(hidden_layer_sizes=sizes).fit(X, Y_VALUES)


def _refusals():
    """Calls a fitted classifier must refuse, each with what its message says."""
    X_nan, X_inf = X.copy(), X.copy()
    X_nan[3, 1], X_inf[5, 0] = np.nan, np.inf
    return [
        (lambda c: c.fit(X_nan, Y_CLASSES), "Input X contains NaN"),
        (lambda c: c.fit(X_inf, Y_CLASSES), "Input X contains infinity"),
        (lambda c: c.partial_fit(X_nan, Y_CLASSES), "Input X contains NaN"),
        (lambda c: c.partial_fit(X[:, :4], Y_CLASSES), "X has 4 features, but"),
        (lambda c: c.partial_fit(X, Y_CLASSES + 5), "`y` has classes not in"),
        (lambda c: c.fit(X, Y_CLASSES, sample_weight=-WEIGHTS), "Negative values"),
        (lambda c: c.fit(X, Y_CLASSES, sample_weight=WEIGHTS[:5]), "sample_weight"),
        (lambda c: c.set_params(alpha=-1).fit(X, Y_CLASSES), "'alpha' parameter"),
        (lambda c: c.set_params(class_weight={7: 2}).fit(X, Y_CLASSES), "not classes"),
        (lambda c: c.set_params(warm_start=True).fit(X, Y_BINARY), "warm_start can only"),
        (lambda c: c.predict(X[:, :4]), "X has 4 features, but MLPClassifier is "
                                        "expecting 5 features"),
        (lambda c: c.predict(X_nan), "Input X contains NaN"),
    ]


def _plain_cases():
    F = np.asfortranarray(X)
    huge = np.full((4, 2), 1e308)  # finite, with a sum that overflows
    y_f32 = Y_VALUES.astype(np.float32)
    return {  # name: (X, y, whether the fast path takes them)
        "float64 X, float y": (X, Y_VALUES, True),
        "float32 X, int labels": (X.astype(np.float32), Y_CLASSES, True),
        "2-D y": (X, Y_LABELS, True),
        "one row": (X[:1], Y_VALUES[:1], True),
        "X with a NaN": (np.where(X > 2, np.nan, X), Y_VALUES, False),
        "y with an infinity": (X, np.where(Y_VALUES > 2, np.inf, Y_VALUES), False),
        "huge X": (huge, np.arange(4.0), True),
        "float32 y with a NaN": (X, np.where(Y_VALUES > 2, np.nan, y_f32), False),
        "strided y with a NaN": (X, np.where(Y_VALUES > 2, np.nan, Y_VALUES)[::-1], False),
        "strided y": (X, Y_VALUES[::-1], True),
        "Fortran-ordered X": (F, Y_VALUES, False),
        "integer X": (np.round(X).astype(int), Y_VALUES, False),
        "a list X": (X.tolist(), Y_VALUES, False),
        "string labels": (X, np.array(["a", "b", "c"])[Y_CLASSES], False),
        "bool y": (X, Y_BINARY.astype(bool), False),
        "y of another length": (X, Y_VALUES[:-1], False),
        "no column": (X[:, :0], Y_VALUES, False),
        "y of no column": (X, Y_VALUES[:, None][:, :0], False),
    }


@pytest.mark.parametrize("case", list(_plain_cases()))
def test_plain_arrays_skip_validate_data_only_where_it_keeps_them_as_they_are(case):
    """_plain_arrays, the fit's fast path: where it takes X and y, validate_data
    returns the same arrays and notes the same attributes; everything else is left to
    validate_data, whose errors and conversions stay scikit-learn's."""
    from sklearn.utils.validation import validate_data

    from fastnn.sklearn import _plain_arrays
    X_in, y_in, taken = _plain_cases()[case]
    fast, checked = MLPRegressor(), MLPRegressor()
    fast.feature_names_in_ = checked.feature_names_in_ = np.array(["a"])  # a refit
    out = _plain_arrays(fast, X_in, y_in, reset=True)
    assert (out is not None) == taken
    assert _plain_arrays(MLPRegressor(), X_in, y_in, reset=False) is None
    if not taken:
        assert not hasattr(fast, "n_features_in_") and list(fast.feature_names_in_) == ["a"]
        return
    expected = validate_data(checked, X_in, y_in, accept_sparse="csr", multi_output=True,
                             dtype=(np.float64, np.float32), order="C", reset=True)
    assert out[0] is X_in and out[1] is y_in
    assert expected[0] is X_in and expected[1] is y_in  # nothing converted or copied
    assert vars(fast) == vars(checked) and fast.n_features_in_ == X_in.shape[1]
    assert not hasattr(fast, "feature_names_in_")


@pytest.mark.parametrize("refusal", range(len(_refusals())))
def test_a_refused_call_leaves_a_fitted_estimator_unchanged(refusal):
    import pandas
    call, message = _refusals()[refusal]
    clf = MLPClassifier(**SMALL, max_iter=3)
    clf.fit(pandas.DataFrame(X, columns=list("abcde")), Y_CLASSES)
    X_named = clf.feature_names_in_.copy()
    params = [p.copy() for p in clf.coefs_ + clf.intercepts_]
    attributes = {k: v for k, v in vars(clf).items() if k.endswith("_")}
    curve = list(clf.loss_curve_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # (X without the column names)
        with pytest.raises(ValueError, match=message):
            call(clf)
    _assert_same(clf.coefs_ + clf.intercepts_, params)
    assert {k: v for k, v in vars(clf).items() if k.endswith("_")}.keys() == \
        attributes.keys()
    assert all(vars(clf)[k] is v for k, v in attributes.items())
    np.testing.assert_array_equal(clf.feature_names_in_, X_named)
    assert clf.loss_curve_ == curve


@pytest.mark.parametrize("estimator, y, params, name", [
    (MLPRegressor, Y_VALUES, dict(solver="lbfgs", alpha=1e308), "alpha"),  # 2 alpha
    (MLPRegressor, Y_VALUES, dict(solver="sgd", learning_rate_init=5e-324),
     "learning_rate_init"),  # lr / (2 / k): 0
])
def test_parameters_beyond_the_engine_scale_are_refused_leaving_the_fit(estimator, y,
                                                                          params, name):
    fitted = estimator(hidden_layer_sizes=(3,), max_iter=3, random_state=0).fit(X, y)
    before = (fitted.model_, fitted.n_features_in_, fitted.n_iter_,
              fitted.coefs_[0].copy())
    fitted.set_params(**params)
    with pytest.raises(ValueError, match=rf"^{name}="):
        fitted.fit(X[:, :3], y)
    assert (fitted.model_, fitted.n_features_in_, fitted.n_iter_) == before[:3]
    np.testing.assert_array_equal(fitted.coefs_[0], before[3])


def test_early_stopping_on_classes_too_small_to_stratify_splits_as_is():
    rng = np.random.default_rng(1)
    X_small, y_small = rng.standard_normal((20, 3)), np.arange(20) % 3
    clf = MLPClassifier(hidden_layer_sizes=(4,), early_stopping=True, max_iter=5,
                        random_state=0).fit(X_small, y_small)
    assert clf.n_iter_ == 5 and len(clf.validation_scores_) == 5
