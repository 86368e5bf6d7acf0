"""scikit-learn estimators over fastnn.MLP: MLPClassifier and MLPRegressor.

They take scikit-learn's MLPClassifier and MLPRegressor parameters with their
defaults and meanings, and validate input with scikit-learn's own utilities, the
way xgboost's and lightgbm's sklearn.py modules wrap their cores; fastnn.MLP (the
fitted ``model_``) does the arithmetic. ``import fastnn`` does not import this
module: ``fastnn.MLPClassifier`` does, on first use (it needs scikit-learn, the
``fastnn[sklearn]`` extra).

scikit-learn minimises, per batch, J = [sum_i w_i L_i + 0.5 alpha ||W||^2] / sum_i w_i,
with L_i summed over the outputs (half the squared error for regression). The engine
averages its loss over the outputs and does not halve the squared error, so its
objective is s J, s given by :func:`_objective_scale`. The estimators give the engine
weight decay s alpha per unit of sample weight, SGD the learning rate lr / s and Adam
the epsilon s epsilon; they report loss_ = objective / s. alpha, learning_rate_init,
tol and the training dynamics thus mean what they mean in scikit-learn.
"""
import contextlib
import dataclasses
import functools
import threading
import warnings
from collections import namedtuple
from numbers import Integral, Real

import numpy as np

try:
    from sklearn.base import (BaseEstimator, ClassifierMixin, RegressorMixin,
                              _fit_context, is_classifier)
except ImportError as error:  # pragma: no cover - the tests run with scikit-learn
    raise ImportError("fastnn.MLPClassifier and fastnn.MLPRegressor need scikit-learn: "
                      "pip install 'fastnn[sklearn]'") from error
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils._param_validation import (Interval, Options, StrOptions,
                                             validate_parameter_constraints)
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import (_check_partial_fit_first_call,
                                      check_classification_targets, type_of_target,
                                      unique_labels)
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from fastnn import _checks as check
from fastnn.init import SCHEMES
from fastnn.model import MLP, TrainingSettings, inputs
from fastnn.model.training import Batches, run_epoch, threads
from fastnn.optim import Adam, Momentum, OptimizerState

__all__ = ["MLPClassifier", "MLPRegressor"]

#: scikit-learn's names of the hidden activations, and fastnn's.
_HIDDEN = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
           "leaky_relu": "leaky_relu"}

#: fastnn's output layers by the names scikit-learn gives them in out_activation_.
_OUT_ACTIVATION = {"sigmoid": "logistic", "softmax": "softmax", "identity": "identity",
                   "poisson": "exp"}

#: One fit's checked data, as the solver takes it: the training rows (X an ndarray,
#: for sgd and adam an inputs.SparseRows when sparse), their engine targets and
#: weights and, with early stopping, the held-out (X, y, sample_weight) that scores
#: each epoch (else None).
_Data = namedtuple("_Data", "X targets weights validation")


def _objective_scale(output, k):
    """The engine's objective over scikit-learn's for an output layer of k units.

    scikit-learn sums its loss over the outputs (binary cross-entropy, half the
    squared error, half the Poisson deviance); the engine averages over them and
    does not halve the squared error.

    Parameters
    ----------
    output : {"sigmoid", "softmax", "identity", "poisson"}
        The model's output layer.
    k : int
        Its number of units.

    Returns
    -------
    float
        s with engine objective = s * scikit-learn's objective.
    """
    return {"softmax": 1.0, "identity": 2.0 / k}.get(output, 1.0 / k)


def _store(estimator, parameters):
    """Set every constructor parameter as an attribute (all __init__ may do)."""
    for name, value in parameters.items():
        if name != "self":
            setattr(estimator, name, value)


@contextlib.contextmanager
def _unchanged_on_error(estimator):
    """Restore the estimator's attributes if the block raises: a refused call changes
    nothing (the block may only assign attributes, never mutate their values)."""
    saved = dict(vars(estimator))
    try:
        yield
    except BaseException:
        vars(estimator).clear()
        vars(estimator).update(saved)
        raise


#: Each thread's spare RandomState, for _random_state.
_SPARE = threading.local()


@contextlib.contextmanager
def _random_state(seed):
    """check_random_state(seed) for the block. For an int seed, this thread's spare
    RandomState reseeded in place: the same stream as RandomState(seed), which first
    spends about 90 us seeding itself from entropy that seed then replaces. The spare
    is lent for the block (a fit nested in it, from a callable init, makes its own)."""
    if not isinstance(seed, Integral):
        yield check_random_state(seed)
        return
    state = getattr(_SPARE, "state", None) or np.random.RandomState()
    _SPARE.state = None
    try:
        state.seed(seed)
        yield state
    finally:
        _SPARE.state = state


def _scikit_learns_init(sizes, activation, dtype, random_state):
    """scikit-learn's initial (W, b) of every layer, drawn as it draws them: W^T and
    then b from U(-a, a), a = sqrt(f / (fan_in + fan_out)), f = 2 for logistic hidden
    layers and 6 otherwise (Glorot and Bengio's uniform scheme)."""
    factor = 2.0 if activation == "logistic" else 6.0
    pairs = list(zip(sizes[:-1], sizes[1:]))
    # the uniforms u of every layer in one draw: uniform(low, high) is low + (high -
    # low) u, rounded as this NumPy expression rounds it
    draws = random_state.random_sample(sum((n_in + 1) * n_out for n_in, n_out in pairs))
    initial, at = [], 0
    for n_in, n_out in pairs:
        bound = np.sqrt(factor / (n_in + n_out))
        size = (n_in + 1) * n_out  # W's values, then b's
        values = (-bound + (bound - -bound) * draws[at:at + size]).astype(dtype)
        at += size
        initial.append((values[:n_in * n_out].reshape(n_in, n_out).T,
                        values[n_in * n_out:]))
    return initial


#: The model's seed is drawn from [0, _SEED_BOUND), np.int32's range (np.iinfo took
#: 60 us of a fit just after another fit's work).
_SEED_BOUND = 2**31 - 1

#: The dtypes fit trains in as they come (anything else is converted to the first)
_FIT_DTYPES = (np.float64, np.float32)


def _plain_arrays(estimator, X, y, reset):
    """(X, y) as _MLPBase._prepare's validate_data returns them, without its generic
    machinery (some 160 us a fit, 300 to 450 us just after a fit's own work has
    evicted it from the caches), when it would return them as they are and only note
    the number of features: a first fit's C-contiguous float64 or float32 ndarray X
    of finite numbers, one row and one column at least, and an ndarray y of as many
    finite reals, one or two dimensions (not empty). None for anything else, which
    validate_data checks."""
    if not (reset and type(X) is np.ndarray and type(y) is np.ndarray and X.ndim == 2
            and X.dtype in _FIT_DTYPES and X.flags.c_contiguous
            and X.shape[0] > 0 and X.shape[1] > 0 and y.shape[:1] == X.shape[:1]
            and (y.ndim == 1 or y.ndim == 2 and y.shape[1] > 0)
            and y.dtype.kind in "fiu"):
        return None
    if inputs.first_nonfinite(X) >= 0 or inputs.first_nonfinite(y) >= 0:
        return None  # (validate_data refuses it)
    if hasattr(estimator, "feature_names_in_"):  # fitted on a DataFrame before
        del estimator.feature_names_in_
    estimator.n_features_in_ = X.shape[1]
    return X, y


def _integer_labels(y):
    """(its distinct labels, sorted; y's index in them) for a 1-D integer ndarray y,
    which scikit-learn's checks of classification targets always accept: one
    bincount pass when the labels are small non-negative numbers, where those checks
    and LabelBinarizer.fit make four hashing passes over y (some 1 ms for 15,000
    labels), and y itself as the index when the labels are 0, 1, ..., K - 1. None
    for any other y, and where the labels are more than half the samples (those
    checks warn then)."""
    if not (type(y) is np.ndarray and y.ndim == 1 and y.dtype.kind in "iu"
            and len(y) > 0):
        return None
    if np.can_cast(y.dtype, np.intp) and 0 <= y.min() and y.max() <= len(y):
        distinct = np.flatnonzero(np.bincount(y)).astype(y.dtype)
    else:
        distinct = np.unique(y)
    if 2 * len(distinct) > len(y):
        return None
    if distinct[0] == 0 and distinct[-1] == len(distinct) - 1:
        return distinct, y
    return distinct, np.searchsorted(distinct, y)


def _hidden_sizes(hidden_layer_sizes):
    """hidden_layer_sizes (an int or a sequence of ints) as a list of ints >= 1."""
    sizes = (list(hidden_layer_sizes) if np.iterable(hidden_layer_sizes)
             else [hidden_layer_sizes])
    if not all(isinstance(n, Integral) and not isinstance(n, bool) and n >= 1
               for n in sizes):
        raise ValueError(f"hidden_layer_sizes must be > 0 integers; got "
                         f"{hidden_layer_sizes!r}")
    return [int(n) for n in sizes]


_PARAMETERS = """
    hidden_layer_sizes : array-like of int, or int, default=(100,)
        The width of each hidden layer.
    activation : {"identity", "logistic", "tanh", "relu", "leaky_relu"}, default="relu"
        The hidden layers' activation; "leaky_relu" (fastnn's) has the slope
        negative_slope for z < 0.
    solver : {"lbfgs", "sgd", "adam"}, default="adam"
        L-BFGS on the full batch, SGD with momentum, or Adam.
    alpha : float, default=0.0001
        L2 penalty: 0.5 alpha ||W||^2 (biases excluded), divided by the batch's total
        sample weight as the loss is.
    batch_size : int or "auto", default="auto"
        Rows per step of sgd and adam; "auto" is min(200, n_samples).
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        sgd's schedule: constant; learning_rate_init / (t_ + 1)^power_t after each
        epoch; or divided by 5 whenever n_iter_no_change epochs pass without
        improvement.
    learning_rate_init : float, default=0.001
        The (initial) step size of sgd and adam.
    power_t : float, default=0.5
        The exponent of "invscaling".
    max_iter : int, default=200
        Epochs of sgd and adam; iterations of lbfgs.
    shuffle : bool, default=True
        Shuffle the rows every epoch (sgd, adam).
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the shuffles and the validation split.
    tol : float, default=1e-4
        Improvement of the loss (or validation score) below which an epoch counts
        as no improvement; lbfgs's gradient tolerance.
    verbose : bool, default=False
        Print the loss after each epoch.
    warm_start : bool, default=False
        fit continues from the previous solution instead of starting afresh.
    momentum : float, default=0.9
        sgd's momentum, in [0, 1].
    nesterovs_momentum : bool, default=True
        Nesterov's momentum for sgd.
    early_stopping : bool, default=False
        Hold out validation_fraction of the data and stop when the validation score
        has not improved by tol for n_iter_no_change epochs; the best weights are
        restored.
    validation_fraction : float, default=0.1
        The held-out fraction for early_stopping.
    beta_1, beta_2 : float, default=0.9, 0.999
        Adam's decay rates of its moment estimates, in [0, 1).
    epsilon : float, default=1e-8
        Adam's numerical stability term.
    n_iter_no_change : int, default=10
        Epochs without improvement by tol before stopping (or, with "adaptive",
        dividing the learning rate by 5).
    max_fun : int, default=15000
        lbfgs's maximum number of loss evaluations.
    init : str, float or callable, default="auto"
        "auto" is scikit-learn's initialisation (weights and biases uniform in
        +-sqrt(6 / (fan_in + fan_out)), +-sqrt(2 / (fan_in + fan_out)) for logistic);
        otherwise fastnn.MLP's: a name of fastnn.init.SCHEMES, a std, or a callable
        (shape, rng, dtype) -> array, with biases 0.
    negative_slope : float, default=0.01
        leaky_relu's slope for z < 0.
    n_threads : int or None, default=None
        fastnn's threads per training step (1 to 64; see fastnn.MLP.fit): None
        follows BLAS's thread limit (threadpoolctl, OMP_NUM_THREADS), at most the CPUs
        the process may use. The same n_threads and random_state give the same
        model, bit for bit."""

_ATTRIBUTES = """
    loss_ : float
        The loss (scikit-learn's objective, penalty included) of the last epoch or
        of lbfgs's solution.
    best_loss_ : float or None
        The lowest loss_ (sgd and adam; None with early stopping).
    loss_curve_ : list of float
        loss_ per epoch (sgd and adam).
    validation_scores_ : list of float or None
        The score on the held-out data per epoch (early stopping only).
    best_validation_score_ : float or None
        The best of validation_scores_ (early stopping only).
    t_ : int
        Samples seen by the stochastic solver.
    coefs_ : list of numpy.ndarray
        Per layer, the weights (n_in, n_out): fastnn's W.T, views of model_'s.
    intercepts_ : list of numpy.ndarray
        Per layer, the biases (n_out,), model_'s own arrays.
    n_features_in_ : int
        Features seen during fit.
    feature_names_in_ : numpy.ndarray of str
        Their names, when X had string column names.
    n_iter_ : int
        Epochs (sgd, adam) or iterations (lbfgs) run by the last fit.
    n_layers_ : int
        Layers, input and output included.
    n_outputs_ : int
        Output units.
    out_activation_ : str
        The output's activation: "logistic", "softmax", "identity" or "exp".
    model_ : fastnn.MLP
        The fitted network."""


def _docstring(summary, own_parameters, own_attributes, see_also):
    """A class docstring: its summary, the shared parameters and attributes and
    its own."""
    return (f"{summary}\n\n    Parameters\n    ----------{_PARAMETERS}\n{own_parameters}"
            f"\n\n    Attributes\n    ----------{own_attributes}{_ATTRIBUTES}\n\n"
            f"    See Also\n    --------\n    {see_also}\n    ")


def _per_class(class_weight, classes, index, weights):
    """Each class's weight for class_weight.

    Parameters
    ----------
    class_weight : dict or "balanced"
        A dict maps labels to weights (1 for the classes it leaves out);
        "balanced" gives each class total / (n * its total), where total is the
        sum of the sample weights, n the number of classes with a positive total
        (the weighted form of scikit-learn's n_samples / (n_classes * count)).
    classes : numpy.ndarray
        The sorted class labels.
    index : numpy.ndarray of int
        Each sample's class, as a position in classes.
    weights : numpy.ndarray or None
        The sample weights (None: all 1).

    Returns
    -------
    numpy.ndarray of float
        One weight per class.

    Raises
    ------
    ValueError
        If the dict names a label that is not a class, or a weight is negative
        or not finite.
    """
    if isinstance(class_weight, str):
        totals = np.bincount(index, weights=weights, minlength=len(classes))
        present = totals > 0
        balanced = totals.sum() / (present.sum() * np.where(present, totals, 1))
        return np.where(present, balanced, 1.0)
    labels = classes.tolist()
    unknown = [label for label in class_weight if label not in labels]
    if unknown:
        raise ValueError(f"class_weight has labels that are not classes: {unknown}; the "
                         f"classes are {classes}")
    per_class = np.array([class_weight.get(label, 1.0) for label in labels], float)
    if not (np.isfinite(per_class).all() and (per_class >= 0).all()):
        raise ValueError(f"class_weight's weights must be finite and >= 0; got "
                         f"{class_weight}")
    return per_class


def _stochastic(estimator):
    """available_if's test for partial_fit: True for sgd and adam."""
    if estimator.solver == "lbfgs":
        raise AttributeError("partial_fit is only available for stochastic optimizers; "
                             "lbfgs is not stochastic")
    return True


class _Solvers:
    """The solvers of MLPClassifier and MLPRegressor (a mixin of _MLPBase): L-BFGS,
    and sgd and adam epochs with scikit-learn's schedules, stopping rules and
    fitted attributes."""

    def _start_bookkeeping(self):
        """The fitted attributes of a fresh model, as scikit-learn's first fit sets
        them."""
        self.n_iter_ = self.t_ = 0
        if self.solver == "lbfgs":
            return
        self.loss_curve_, self._no_improvement_count = [], 0
        if self.early_stopping:
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
            self.best_loss_ = None
            self._best_params = self.model_.engine.params.copy()
        else:
            self.validation_scores_ = self.best_validation_score_ = None
            self.best_loss_ = np.inf

    def _bookkeeping_fits(self):
        """Whether the fitted attributes suit solver and early_stopping, which a warm
        start or partial_fit may have changed since the first fit."""
        return self.solver == "lbfgs" or (hasattr(self, "loss_curve_") and (
            self.validation_scores_ is not None) == self.early_stopping)

    def _scale(self):
        """s: the engine's objective over scikit-learn's (see _objective_scale)."""
        return _objective_scale(self.model_.output, self.model_.n_outputs)

    def _fit_lbfgs(self, data):
        """L-BFGS on the full batch, with scikit-learn's tolerance and penalty."""
        s = self._scale()
        result = self.model_.fit_lbfgs(
            data.X, data.targets, max_iter=self.max_iter, max_fun=self.max_fun,
            tol=s * self.tol, weight_decay=self._engine_decay(data),
            sample_weight=data.weights, verbose=bool(self.verbose))
        self.n_iter_ = _check_optimize_result("lbfgs", result, self.max_iter)
        self.loss_ = result.fun / s

    def _engine_decay(self, data):
        """The engine's weight decay for alpha: s alpha per unit of sample weight for
        sgd and adam (the step divides it by each batch's weight), s alpha over the
        data's total weight for lbfgs (one full batch)."""
        if self.solver != "lbfgs":
            return self._scale() * self.alpha
        total = len(data.targets) if data.weights is None else float(data.weights.sum())
        return self._scale() * self.alpha / total

    def _engine_lr(self, learning_rate):
        """The engine's learning rate for scikit-learn's: Adam's steps do not scale
        with the gradient, SGD's do."""
        return learning_rate if self.solver == "adam" else learning_rate / self._scale()

    def _optimizer(self):
        """The engine's optimizer for learning_rate_init."""
        lr = self._engine_lr(self.learning_rate_init)
        if self.solver == "adam":
            return Adam(lr=lr, beta1=self.beta_1, beta2=self.beta_2,
                        eps=self._scale() * self.epsilon)
        return Momentum(lr=lr, momentum=self.momentum, nesterov=self.nesterovs_momentum)

    def _batch_size(self, n):
        """Rows per step: "auto" is min(200, n); a larger size is clipped to n."""
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. "
                          "It is going to be clipped")
        return min(self.batch_size, n)

    def _fit_stochastic(self, data, incremental):
        """sgd or adam: the optimizer (kept by partial_fit), then the epochs, all under
        the model's training lock, as MLP.fit trains."""
        engine, n = self.model_.engine, data.X.shape[0]
        batch_size = self._batch_size(n)
        with self.model_._session("train it"):
            state = getattr(self, "_optimizer_state", None)
            if (not incremental or state is None
                    or isinstance(state.optimizer, Adam) != (self.solver == "adam")):
                self._learning_rate = self.learning_rate_init
                state = OptimizerState(self._optimizer(), engine.n_params,
                                       self.model_.dtype)
                self._optimizer_state = state
            settings = TrainingSettings(
                batch_size=batch_size, optimizer=state.optimizer,
                weight_decay=self._engine_decay(data), shuffle=self.shuffle,
                decay_per_sample=True, n_threads=threads(self.n_threads), state=state)
            batches = Batches(data.X, data.targets, batch_size, self.shuffle,
                              self.model_.rng, data.weights)
            try:
                self._epochs(settings, batches, data.validation, incremental)
            except KeyboardInterrupt:
                warnings.warn("Training interrupted by user.")
            if data.validation is not None:
                engine.assign(self._best_params)

    def _epochs(self, settings, batches, validation, incremental):
        """Up to max_iter epochs (one for partial_fit), each one run_epoch, then
        scikit-learn's bookkeeping; a new learning rate rebinds the update."""
        engine, state, scale = self.model_.engine, settings.state, self._scale()
        update = engine.updater(settings)
        self.n_iter_ = 0
        for _ in range(self.max_iter):
            update.start_epoch()
            objective = run_epoch(engine, update, batches, self.n_iter_ + 1,
                                  state.optimizer.lr, settings.n_threads)
            self._record_epoch(objective / scale, batches.m)
            learning_rate = self._learning_rate
            stop = self._after_epoch(validation)
            if self._learning_rate != learning_rate:
                settings.optimizer = state.optimizer = dataclasses.replace(
                    state.optimizer, lr=self._engine_lr(self._learning_rate))
                update = engine.updater(settings)
            if stop or incremental:
                return
            if self.n_iter_ == self.max_iter:
                warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter})"
                              f" reached and the optimization hasn't converged yet.",
                              ConvergenceWarning)

    def _record_epoch(self, loss, n):
        """Count an epoch of n samples with its loss (scikit-learn's objective)."""
        self.n_iter_ += 1
        self.t_ += n
        self.loss_ = loss
        self.loss_curve_.append(loss)
        if self.verbose:
            print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")

    def _after_epoch(self, validation):
        """scikit-learn's end of an epoch: count it as an improvement or not, apply
        the learning-rate schedule; True to stop."""
        improved = (self._better_loss() if validation is None
                    else self._better_score(*validation))
        self._no_improvement_count = 0 if improved else self._no_improvement_count + 1
        schedule = self.learning_rate if self.solver == "sgd" else "constant"
        if schedule == "invscaling":
            self._learning_rate = self.learning_rate_init / (self.t_ + 1) ** self.power_t
        if self._no_improvement_count <= self.n_iter_no_change:
            return False
        what = "Training loss" if validation is None else "Validation score"
        message = (f"{what} did not improve more than tol={self.tol:f} for "
                   f"{self.n_iter_no_change} consecutive epochs.")
        if schedule != "adaptive" or self._learning_rate <= 1e-6:
            if self.verbose:
                print(message + " Stopping.")
            return True
        self._learning_rate /= 5.0
        self._no_improvement_count = 0
        if self.verbose:
            print(message + f" Setting learning rate to {self._learning_rate:f}")
        return False

    def _better_loss(self):
        """Whether the last loss improved on best_loss_ by tol; keeps best_loss_."""
        loss = self.loss_curve_[-1]
        improved = not loss > self.best_loss_ - self.tol
        if loss < self.best_loss_:
            self.best_loss_ = loss
        return improved

    def _better_score(self, X, y, sample_weight):
        """Score the held-out data; whether it improved on the best by tol. Keeps
        the best score and a copy of its weights."""
        score = self._validation_score(X, y, sample_weight)
        self.validation_scores_.append(score)
        if self.verbose:
            print(f"Validation score: {score:f}")
        improved = not score < self.best_validation_score_ + self.tol
        if score > self.best_validation_score_:
            self.best_validation_score_ = score
            self._best_params = self.model_.engine.params.copy()
        return improved

    def _validation_score(self, X, y, sample_weight):
        """The score of checked X (NaN for non-finite predictions, as scikit-learn's)."""
        try:
            out = self.model_.predict_proba(X)
        except ValueError:  # X is checked: the one refusal left is an overflowed output
            return np.nan
        return self._score_function(y, self._from_outputs(out),
                                    sample_weight=sample_weight)


@functools.cache
def _param_names(cls):
    """BaseEstimator._get_param_names of cls (see _MLPBase._get_param_names)."""
    return tuple(BaseEstimator._get_param_names.__func__(cls))


#: Parameter values whose validity _validate_params remembers (immutable scalars)
_REMEMBERED = (bool, int, float, str, type(None), np.generic)


def _check_parameter(cls, name, value):
    """scikit-learn's check of value against cls's constraints on name (its errors)."""
    validate_parameter_constraints({name: cls._parameter_constraints[name]},
                                   {name: value}, caller_name=cls.__name__)


@functools.lru_cache(maxsize=4096)
def _valid_scalar(cls, name, kind, value):
    """True once value (of type kind) has passed _check_parameter; raises as it does
    otherwise, every time (see _MLPBase._validate_params)."""
    _check_parameter(cls, name, value)
    return True


class _MLPBase(_Solvers, BaseEstimator):
    """What MLPClassifier and MLPRegressor share: parameters, validation, the model
    and predictions; the solvers come from _Solvers.

    Subclasses provide __init__ (their parameters), _encode (targets) and
    _from_outputs with _score_function (predictions and their score).
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(_HIDDEN))],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"),
                              Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "init": [StrOptions({"auto", *SCHEMES}), Interval(Real, 0, None, closed="left"),
                 callable],
        "negative_slope": [Interval(Real, None, None, closed="neither")],
        "n_threads": [Interval(Integral, 1, 64, closed="both"), None],
    }

    def _validate_params(self):
        """scikit-learn's check of every parameter against _parameter_constraints, in
        its order and with its errors, a valid scalar value remembered per class
        (_valid_scalar): the check cost some 80 us a fit, 170 to 250 us just after a
        fit's own work has evicted it from the caches."""
        cls = type(self)
        for name, value in self.get_params(deep=False).items():
            if name not in self._parameter_constraints:
                continue
            if isinstance(value, _REMEMBERED):
                _valid_scalar(cls, name, type(value), value)
            else:
                _check_parameter(cls, name, value)

    @classmethod
    def _get_param_names(cls):
        """scikit-learn's, read from cls.__init__'s signature once per class: get_params
        runs at every fit's parameter validation, and inspect.signature took some 60 us
        of it."""
        return list(_param_names(cls))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the network to X and y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The samples; float32 data trains in float32, anything else in float64.
            CSR and CSC matrices are densified one batch at a time.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels, a label indicator matrix, or regression targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights of the samples.

        Returns
        -------
        self
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X, y, sample_weight, incremental, classes=None):
        """fit (incremental=False) or partial_fit: check everything, then train."""
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        with _unchanged_on_error(self), _random_state(self.random_state) as random_state:
            data = self._prepare(X, y, sample_weight, incremental, classes, random_state)
            self._check_scaled(data)
        if self.solver == "lbfgs":
            self._fit_lbfgs(data)
        else:
            self._fit_stochastic(data, incremental)
        return self

    def _prepare(self, X, y, sample_weight, incremental, classes, random_state):
        """The checked _Data of one call; a first call also builds model_ (drawing
        from random_state, the RandomState of self.random_state)."""
        first = not hasattr(self, "model_") or not (incremental or self.warm_start)
        hidden = _hidden_sizes(self.hidden_layer_sizes)
        X, y = _plain_arrays(self, X, y, first) or validate_data(
            self, X, y, accept_sparse="csr", multi_output=True,
            dtype=_FIT_DTYPES, order="C", y_numeric=not is_classifier(self),
            reset=first)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        Y, output, n_outputs = self._encode(y, first, incremental, classes)
        weights = self._weights(sample_weight, X, y, incremental)
        if first:
            sizes = [X.shape[1], *hidden, n_outputs]
            auto = isinstance(self.init, str) and self.init == "auto"
            # scikit-learn's first draws from random_state are its initial weights
            initial = (_scikit_learns_init(sizes, self.activation, X.dtype, random_state)
                       if auto else ())
            self.model_ = MLP(sizes, activation=_HIDDEN[self.activation], output=output,
                              init="zeros" if auto else self.init,
                              negative_slope=self.negative_slope, dtype=X.dtype,
                              seed=int(random_state.randint(_SEED_BOUND)))
            for layer, (W, b) in zip(self.model_.layers, initial):  # finite, in the
                layer.W[...], layer.b[...] = W, b                      # model's dtype
        if first or not self._bookkeeping_fits():
            self._start_bookkeeping()
        model = self.model_
        X = X.astype(model.dtype, copy=False)
        targets = inputs.targets(model, Y, X.shape[0])
        weights = inputs.sample_weight(model, weights, X.shape[0])
        if self.solver == "lbfgs":  # (fit_lbfgs takes X, sparse or not, as it is)
            return _Data(X, targets, weights, None)
        validation = None
        if self.early_stopping:
            X, targets, weights, validation = self._split(X, targets, y, weights,
                                                          random_state)
        return _Data(inputs.features(model, X, sparse=True), targets, weights, validation)

    def _check_scaled(self, data):
        """ValueError naming scikit-learn's parameter if, scaled to the engine's
        objective (see _objective_scale), it does not fit the model's dtype: infinite,
        a positive step or epsilon that became 0, or a setting the engine reads that
        is subnormal (which it reads as 0)."""
        s, dtype = self._scale(), self.model_.dtype
        scaled = {"alpha": self._engine_decay(data),
                  "tol": s * self.tol,
                  "learning_rate_init": self._engine_lr(self.learning_rate_init),
                  "epsilon": s * self.epsilon}
        with np.errstate(over="ignore", under="ignore"):  # (the checks below tell)
            for name, value in scaled.items():
                engine_value = dtype.type(value)
                vanished = name in ("learning_rate_init", "epsilon") and engine_value == 0
                subnormal = name != "tol" and \
                    0 < abs(engine_value) < check.SMALLEST_NORMAL[dtype.itemsize]
                if not np.isfinite(engine_value) or vanished or subnormal:
                    raise ValueError(f"{name}={getattr(self, name)!r} becomes {value!r} "
                                     f"on fastnn's scale of the objective, which "
                                     f"{dtype.name} cannot use; choose a less extreme "
                                     f"{name}")

    def _weights(self, sample_weight, X, y, incremental):
        """The checked sample weights (None for none)."""
        if sample_weight is None:
            return None
        return _check_sample_weight(sample_weight, X, dtype=X.dtype,
                                    ensure_non_negative=True)

    def _split(self, X, targets, y, weights, random_state):
        """Hold validation_fraction of the rows out (stratified by class for
        single-output classification, where every class can be): the training X,
        targets and weights, and the held-out (X, y, weights)."""
        stratify = y if is_classifier(self) and y.ndim == 1 else None
        arrays = (X, targets, y) + (() if weights is None else (weights,))
        state = random_state.get_state()
        try:
            parts = train_test_split(*arrays, random_state=random_state,
                                     stratify=stratify, test_size=self.validation_fraction)
        except ValueError:  # too few rows of some class to stratify: split as is
            random_state.set_state(state)
            parts = train_test_split(*arrays, random_state=random_state,
                                     test_size=self.validation_fraction)
        if parts[1].shape[0] < 2:
            raise ValueError("The validation set is too small. Increase "
                             "'validation_fraction' or the size of your dataset.")
        train_weights, val_weights = parts[6:] if weights is not None else (None, None)
        X_val = inputs.features(self.model_, parts[1], sparse=True)
        return parts[0], parts[2], train_weights, (X_val, parts[5], val_weights)

    # ------------------------------------------------------------ fitted model

    def _outputs(self, X):
        """The output layer's values for X, after scikit-learn's checks."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", dtype=self.model_.dtype,
                          order="C", reset=False)
        return self.model_.predict_proba(X)  # (a sparse X a chunk of rows at a time)

    def to_onnx(self, path=None):
        """The fitted estimator as an ONNX graph, written to path when given
        (fastnn.onnx.export).

        Needs the onnx package (the ``fastnn[onnx]`` extra), imported only here. The
        graph's input "X" (N, n_features) has model_'s dtype: a runtime does not
        convert X as predict does.

        Parameters
        ----------
        path : str or os.PathLike, optional
            Where to write the .onnx file (atomically: a failed export leaves no
            partial file).

        Returns
        -------
        onnx.ModelProto
            For the classifier, outputs "label" as predict returns it (labels from
            classes_, strings included; an int64 indicator matrix for multilabel
            targets) and "probabilities" as predict_proba does, a plain tensor (no
            ZipMap); for the regressor, "predictions" as predict returns them.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        ImportError
            If onnx is not installed.
        TypeError
            If path is not a str or os.PathLike.
        ValueError
            If model_'s weights are not finite (after training diverged), as save
            refuses them.
        OSError
            If path cannot be written (before anything is written).
        """
        from fastnn.onnx import export
        return export(self, path)

    @property
    def coefs_(self):
        """Per layer, the weights (n_in, n_out): views of model_'s W.T."""
        return [layer.W.T for layer in self.model_.layers]

    @property
    def intercepts_(self):
        """Per layer, the biases (n_out,): model_'s own arrays."""
        return [layer.b for layer in self.model_.layers]

    @property
    def n_layers_(self):
        """Layers, the input and the output included."""
        return len(self.model_.layer_sizes)

    @property
    def n_outputs_(self):
        """Output units."""
        return self.model_.n_outputs

    @property
    def out_activation_(self):
        """The output's activation by scikit-learn's name."""
        return _OUT_ACTIVATION[self.model_.output]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class MLPClassifier(ClassifierMixin, _MLPBase):
    __doc__ = _docstring(
        """A multilayer perceptron classifier: scikit-learn's MLPClassifier over
    fastnn.MLP.

    Labels may be anything scikit-learn takes (strings, integers, booleans). Binary
    targets train one sigmoid unit, multiclass targets a softmax, and a label
    indicator matrix (multilabel) one sigmoid unit per label; the loss is the
    cross-entropy, as in scikit-learn.""",
        """    class_weight : dict, "balanced" or None, default=None
        fastnn's: weights of the classes, multiplied into the sample weights; a
        dict maps labels to weights (1 for labels left out), "balanced" weighs
        each class by total / (n * its total), totals of sample weights and n the
        number of classes whose total is positive (n_samples / (n_classes * count)
        unweighted, as scikit-learn's compute_class_weight). Single-output targets only;
        partial_fit takes dicts only.""",
        """
    classes_ : numpy.ndarray
        The class labels (0 to k - 1 for a label indicator matrix).""",
        "MLPRegressor : The regressor.")

    _parameter_constraints: dict = {
        **_MLPBase._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None]}

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10, max_fun=15000, init="auto", negative_slope=0.01,
                 n_threads=None, class_weight=None):
        _store(self, locals())

    @available_if(_stochastic)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over X and y, continuing from the current state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The samples.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Labels, all among the classes of the first call, or an indicator matrix.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights of the samples.
        classes : array-like of shape (n_classes,), default=None
            Every class y may ever hold; required on the first call, then optional
            (and then it must be the same).

        Returns
        -------
        self
            The updated estimator.
        """
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def predict(self, X):
        """The predicted labels.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The samples.

        Returns
        -------
        numpy.ndarray of shape (n_samples,) or (n_samples, n_labels)
            Labels from classes_, or an indicator matrix for multilabel targets.
        """
        return self._from_outputs(self._outputs(X))

    def predict_proba(self, X):
        """The probability of every class.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The samples.

        Returns
        -------
        numpy.ndarray of shape (n_samples, n_classes)
            Probabilities in the order of classes_ (for multilabel targets, each
            label's probability on its own).
        """
        out = self._outputs(X)
        return np.column_stack([1 - out, out]) if out.ndim == 1 else out

    def predict_log_proba(self, X):
        """The logarithm of predict_proba.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The samples.

        Returns
        -------
        numpy.ndarray of shape (n_samples, n_classes)
            log(predict_proba(X)).
        """
        return np.log(self.predict_proba(X))

    _score_function = staticmethod(accuracy_score)

    def _from_outputs(self, out):
        """Labels from the output layer's probabilities."""
        return self._label_binarizer.inverse_transform(out)

    def _encode(self, y, first, incremental, classes):
        """(targets, output layer, units) for labels y; a first call learns the
        classes, later ones refuse labels outside them."""
        found = _integer_labels(y) if first and not incremental else None
        indices = None
        if found is not None:  # (LabelBinarizer takes y's type from its labels)
            distinct, indices = found
            self._label_binarizer = LabelBinarizer().fit(distinct)
        else:
            check_classification_targets(y)
            if incremental and _check_partial_fit_first_call(self, classes):
                multilabel = type_of_target(y).startswith("multilabel")
                self._label_binarizer = LabelBinarizer().fit(
                    y if multilabel else self.classes_)
                if not multilabel:
                    self._check_known(y)
            elif first:
                self._label_binarizer = LabelBinarizer().fit(y)
            else:
                self._check_known(y)
        binarizer = self._label_binarizer
        self.classes_ = binarizer.classes_
        if y.ndim == 1 and binarizer.y_type_ in ("multiclass", "binary"):
            if indices is None:
                indices = np.searchsorted(self.classes_, y)  # (the classes are sorted)
            if binarizer.y_type_ == "multiclass":
                return indices, "softmax", len(self.classes_)
            # two classes: binarizer.transform(y), 50 times faster (1 for the second
            # class, 0 for the first or only one)
            return indices[:, None], "sigmoid", 1
        Y = binarizer.transform(y)  # a label indicator matrix, or scikit-learn's refusal
        return Y, "sigmoid", Y.shape[1]

    def _check_known(self, y):
        """Refuse labels the fitted classes do not have, as scikit-learn does."""
        labels = unique_labels(y)
        if self.warm_start:
            if set(labels) != set(self.classes_):
                raise ValueError(f"warm_start can only be used where `y` has the same "
                                 f"classes as in the previous call to fit. Previously "
                                 f"got {self.classes_}, `y` has {labels}")
        elif len(np.setdiff1d(labels, self.classes_, assume_unique=True)):
            raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` "
                             f"has {self.classes_}. 'y' has {labels}.")

    def _weights(self, sample_weight, X, y, incremental):
        """The sample weights times the class weights (None for neither)."""
        weights = super()._weights(sample_weight, X, y, incremental)
        if self.class_weight is None:
            return weights
        if y.ndim != 1:
            raise ValueError("class_weight needs single-output targets; got a label "
                             "indicator matrix")
        if incremental and self.class_weight == "balanced":
            raise ValueError("class_weight='balanced' is not supported by partial_fit; "
                             "pass compute_class_weight('balanced', classes=classes, "
                             "y=y) as a dict instead")
        index = np.searchsorted(self.classes_, y)
        per_sample = _per_class(self.class_weight, self.classes_, index, weights)[index]
        return per_sample if weights is None else weights * per_sample

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _MLPBase):
    __doc__ = _docstring(
        """A multilayer perceptron regressor: scikit-learn's MLPRegressor over
    fastnn.MLP.

    One output unit per target; an identity output trained on the squared error,
    or an exponential one on the Poisson deviance.""",
        """    loss : {"squared_error", "poisson"}, default="squared_error"
        Half the squared error (identity output), or half the Poisson deviance
        (exp output, non-negative targets).""",
        "",
        "MLPClassifier : The classifier.")

    _parameter_constraints: dict = {**_MLPBase._parameter_constraints,
                                    "loss": [StrOptions({"squared_error", "poisson"})]}

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu",
                 *, solver="adam", alpha=0.0001, batch_size="auto",
                 learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False, momentum=0.9, nesterovs_momentum=True,
                 early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, max_fun=15000, init="auto",
                 negative_slope=0.01, n_threads=None):
        _store(self, locals())

    @available_if(_stochastic)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over X and y, continuing from the current state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The samples.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights of the samples.

        Returns
        -------
        self
            The updated estimator.
        """
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """The predicted values.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The samples.

        Returns
        -------
        numpy.ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predictions (exp of the output layer's for loss="poisson").
        """
        return self._outputs(X)

    _score_function = staticmethod(r2_score)

    def _from_outputs(self, out):
        """Predictions are the output layer's values."""
        return out

    def _encode(self, y, first, incremental, classes):
        """(targets, output layer, units) for regression targets y."""
        return y, "identity" if self.loss == "squared_error" else "poisson", (
            1 if y.ndim == 1 else y.shape[1])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
