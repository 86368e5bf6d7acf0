"""Look inside a network: activation statistics, gradient flow, dead and symmetric units,
and the course's gradient check.

Every function returns plain records (frozen dataclasses) in a list that prints as a
table, first layer first; the last record of the per-layer functions is the output layer.
"""
from dataclasses import dataclass, fields

import numpy as np

from fastnn import _checks as check
from fastnn import _kernels, kernels
from fastnn.model import MLP, inputs

__all__ = ["activation_stats", "gradient_norms", "dead_units", "symmetry", "gradient_check",
           "layer_outputs", "Records", "ActivationStats", "GradientNorms", "DeadUnits",
           "Symmetry", "GradientCheck", "ParameterError"]

#: The course's pass threshold for ||g - g_num|| / (||g|| + ||g_num||).
GRADIENT_CHECK_THRESHOLD = 2e-7


class Records(list):
    """A list of records that prints as an aligned table (array fields left out).

    Parameters
    ----------
    iterable : iterable of dataclass instances, optional
        The records, all of one dataclass; empty when omitted.
    """

    def __str__(self):
        """One header row of field names, then one row per record."""
        if not self:
            return "(no records)"
        names = [f.name for f in fields(self[0])
                 if not isinstance(getattr(self[0], f.name), (tuple, np.ndarray))]
        rows = [names] + [[_cell(getattr(r, n)) for n in names] for r in self]
        widths = [max(len(row[i]) for row in rows) for i in range(len(names))]
        return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in rows)


def _cell(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _model(net):
    if not isinstance(net, MLP):
        raise TypeError(f"net must be a fastnn.MLP; got {type(net).__name__}")
    return net


def layer_outputs(net, X):
    """Pre-activations and activations of every layer for X.

    Parameters
    ----------
    net : fastnn.MLP
        The network.
    X : array-like of shape (m, n_features)
        Samples, finite; integers and booleans are converted, a float array must have
        the model's dtype.

    Returns
    -------
    outputs : list of tuple of (numpy.ndarray, numpy.ndarray)
        (Z, A) per layer, first layer first, each of shape (m, n_out) and the model's
        dtype. The output layer's A is what predict_proba gives (probabilities or
        values), as (m, k).

    Raises
    ------
    TypeError
        If net is not a fastnn.MLP, or X holds no real numbers or is a float array of
        the other precision.
    ValueError
        If X is not 2-D with n_features columns and at least one row, or is not
        finite, or a layer's values overflow the model's dtype (the message names
        the layer and the row of X).
    """
    X = check.input_array("X", inputs.features(_model(net), X))
    out, A_prev = [], X
    for index, layer in enumerate(net.layers):
        n_out = layer.W.shape[0]
        Z = np.empty((X.shape[0], n_out), net.dtype)
        A = np.empty_like(Z)
        last = index == len(net.layers) - 1
        kernels.dense_forward(A_prev, layer.W, layer.b, Z, A,
                              "identity" if last else layer.activation, net.negative_slope)
        _finite_layer(index, _layer_names(net)[index], Z, A)
        if last:
            A = net.predict_proba(X).reshape(Z.shape)
        out.append((Z, A))
        A_prev = A
    return out


def _finite_layer(index, name, Z, A):
    """ValueError naming the layer and the row of X when Z or A overflowed its dtype."""
    for label, values in (("Z", Z), ("A", A)):
        first = _kernels.first_nonfinite(values)
        if first >= 0:
            row, col = divmod(first, values.shape[1])
            raise ValueError(
                f"layer {index} ({name}) overflows {values.dtype} for X[{row}]: "
                f"{label}[{row}, {col}] = {values[row, col]} (X or the weights are too "
                f"large)")


def _layer_names(net):
    return [layer.activation for layer in net.layers[:-1]] + [net.output]


@dataclass(frozen=True)
class ActivationStats:
    """Statistics of one layer's activations, a record of :func:`activation_stats`.

    Parameters
    ----------
    layer : int
        Index of the layer, 0 for the first.
    activation : str
        Its activation, or the output's name for the last layer.
    mean, std, min, max : float
        Mean, standard deviation, minimum and maximum of the activations.
    saturated : float
        Fraction within 0.01 of sigmoid's 0 or 1, or beyond +-0.99 for tanh.
    zero : float
        Fraction exactly zero.
    hist : tuple of (numpy.ndarray, numpy.ndarray)
        The histogram: (counts, bin edges), as numpy.histogram returns it.
    """

    layer: int
    activation: str
    mean: float
    std: float
    min: float
    max: float
    saturated: float
    zero: float
    hist: tuple


def activation_stats(net, X, bins=20, range=None):
    """Statistics of every layer's activations on X, with a histogram of each.

    saturated counts sigmoid outputs below 0.01 or above 0.99 and tanh outputs beyond
    +-0.99 (0 for activations that do not saturate).

    Parameters
    ----------
    net : fastnn.MLP
        The network.
    X : array-like of shape (m, n_features)
        Samples, as for :func:`layer_outputs`.
    bins : int, default=20
        Number of histogram bins, >= 1.
    range : tuple of (float, float) or None, default=None
        (lo, hi) that every histogram spans; None: [0, 1] for sigmoid, [-1, 1] for
        tanh and each layer's own range for the others (widened around a layer
        that is constant, or too nearly so for bins bins).

    Returns
    -------
    records : Records of ActivationStats
        One per layer, first layer first; the last is the output layer.

    Raises
    ------
    TypeError
        If bins is not an integer, range is not a pair or its ends are not real
        numbers, or net or X is refused as in :func:`layer_outputs`.
    ValueError
        If bins < 1, range does not hold two values, its ends are not finite or not
        lo < hi, bins is too many for a histogram's range in the model's dtype (its
        edges would not all differ), or X is refused as in :func:`layer_outputs`.
    """
    bins = check.integer("bins", bins, 1)
    if range is not None:
        range = _histogram_range(range)
    records = Records()
    for index, ((_, A), name) in enumerate(zip(layer_outputs(net, X), _layer_names(net))):
        if name == "sigmoid":
            saturated, span = float(np.mean((A < 0.01) | (A > 0.99))), (0.0, 1.0)
        elif name == "tanh":
            saturated, span = float(np.mean(np.abs(A) > 0.99)), (-1.0, 1.0)
        else:
            saturated, span = 0.0, _span(A, bins)
        span = span if range is None else range
        if not _binnable(span, bins):
            raise ValueError(f"bins={bins} is too many for the range {span} (layer "
                             f"{index}): its bin edges would not all differ; ask for "
                             f"fewer bins or a wider range")
        counts, edges = _histogram(A, bins, span)
        records.append(ActivationStats(index, name, *_moments(A),
                                       float(A.min()), float(A.max()), saturated,
                                       float(np.mean(A == 0)), (counts, edges)))
    return records


def _moments(A):
    """A's mean and standard deviation, computed on A scaled to [-1, 1] so that
    neither the sum nor the squares overflow when A's values are near its dtype's
    limit."""
    scale = float(np.max(np.abs(A)))
    if scale == 0:
        return 0.0, 0.0
    scaled = A.astype(np.float64) / scale
    return float(scaled.mean()) * scale, float(scaled.std()) * scale


def _histogram_range(value):
    """range as (lo, hi): two finite real numbers with lo < hi."""
    if not isinstance(value, (tuple, list, np.ndarray)):
        raise TypeError(f"range must be a pair (lo, hi) of real numbers or None; got "
                        f"{type(value).__name__} {value!r}")
    if len(value) != 2:
        raise ValueError(f"range must be a pair (lo, hi); got {len(value)} values: "
                         f"{value!r}")
    lo, hi = check.real("range[0]", value[0]), check.real("range[1]", value[1])
    if not lo < hi:
        raise ValueError(f"range must be (lo, hi) with lo < hi; got {value!r}")
    return lo, hi


def _span(A, bins):
    """(min, max) of A; where A is (nearly) constant, so that bins bins between its
    ends would not all differ, its middle +-0.5, or +-half its magnitude where 0.5
    would vanish next to it (within float64's range)."""
    lo, hi = float(A.min()), float(A.max())
    if not _binnable((lo, hi), bins):
        middle = lo / 2 + hi / 2
        half, limit = 0.5 * max(1.0, abs(middle)), float(np.finfo(np.float64).max)
        lo, hi = max(middle - half, -limit), min(middle + half, limit)
    return lo, hi


def _exponent(span):
    """e with both ends of span below 2**e in magnitude: scaling by 2**-e is exact and
    leaves a span of width < 2, which neither overflows nor loses its bins."""
    return int(np.frexp(max(abs(span[0]), abs(span[1])))[1])


def _binnable(span, bins):
    """Whether the bins + 1 edges over span all differ (numpy.histogram refuses
    otherwise)."""
    edges = np.linspace(*np.ldexp(span, -_exponent(span)), bins + 1)
    return bool(np.all(edges[1:] > edges[:-1]))


def _histogram(A, bins, span):
    """numpy.histogram of A over span in float64, computed on A scaled by a power of
    2 so that a span as wide as float64's range does not overflow."""
    exponent = _exponent(span)
    counts, edges = np.histogram(np.ldexp(A.astype(np.float64), -exponent), bins=bins,
                                 range=tuple(np.ldexp(span, -exponent)))
    return counts, np.ldexp(edges, exponent)


@dataclass(frozen=True)
class GradientNorms:
    """One layer's gradient norms, a record of :func:`gradient_norms`.

    Both are of the gradient of the mean loss.

    Parameters
    ----------
    layer : int
        The layer's index (0: first).
    activation : str
        The layer's activation; for the output layer, the output's name.
    dW_norm : float
        Frobenius norm of dW, the weights' gradient of the mean loss.
    db_norm : float
        Euclidean norm of db, the biases' gradient.
    """

    layer: int
    activation: str
    dW_norm: float
    db_norm: float


def gradient_norms(net, X, y):
    """Per-layer norms of dW and db (backprop, mean loss).

    Vanishing or exploding gradients show as norms shrinking or growing from the last
    layer to the first.

    Parameters
    ----------
    net : fastnn.MLP
        The network (not changed).
    X : array-like of shape (m, n_features)
        Samples.
    y : array-like
        Targets, as :meth:`fastnn.MLP.fit` takes them.

    Returns
    -------
    records : Records of GradientNorms
        One per layer, first layer first.

    Raises
    ------
    TypeError
        If net is not a fastnn.MLP, or X or y has a dtype the model refuses.
    ValueError
        If X or y has the wrong shape or values (not finite, labels out of range).
    """
    return Records(GradientNorms(i, name, float(np.linalg.norm(dW)), float(np.linalg.norm(db)))
                   for i, ((dW, db), name) in enumerate(zip(_model(net).gradients(X, y),
                                                            _layer_names(net))))


@dataclass(frozen=True)
class DeadUnits:
    """How many units of a hidden layer are dead; :func:`dead_units` lists these.

    Parameters
    ----------
    layer : int
        Index of the hidden layer, from 0.
    activation : str
        Its activation.
    dead : int
        Number of units whose output is 0 for every sample.
    units : int
        Number of units in the layer.
    fraction : float
        The share dead / units.
    """

    layer: int
    activation: str
    dead: int
    units: int
    fraction: float


def dead_units(net, X):
    """Per hidden layer, the units that output exactly 0 for every sample of X.

    These are dead ReLUs, which no gradient can revive.

    Parameters
    ----------
    net : fastnn.MLP
        The network; only its hidden layers are examined.
    X : array-like of shape (m, n_features)
        The samples on which a unit must output 0 to count as dead.

    Returns
    -------
    records : Records of DeadUnits
        One per hidden layer (the output layer is left out), first layer first.

    Raises
    ------
    TypeError
        If net is not a fastnn.MLP or X has a dtype the model refuses.
    ValueError
        If X is not (m, n_features) with m >= 1, or not finite, or a hidden layer
        overflows, as in :func:`layer_outputs`.
    """
    records = Records()
    for index, (_, A) in enumerate(layer_outputs(net, X)[:-1]):
        dead = int(np.all(A == 0, axis=0).sum())
        records.append(DeadUnits(index, net.layers[index].activation, dead, A.shape[1],
                                 dead / A.shape[1]))
    return records


@dataclass(frozen=True)
class Symmetry:
    """Which units of a layer are copies of each other (from :func:`symmetry`).

    Units whose rows of [W | b] are equal compute the same thing for every input.

    Parameters
    ----------
    layer : int
        Layer index, 0 for the first layer.
    units : int
        Number of units in the layer.
    distinct : int
        How many different units the layer really has.
    groups : tuple of tuple of int
        Groups (tuples of unit indices) of identical units, each of size >= 2.
    """

    layer: int
    units: int
    distinct: int
    groups: tuple


def symmetry(net):
    """Per layer, the groups of units whose incoming weights and bias are identical.

    That is what zero or constant initialisation produces, and training never breaks.

    Parameters
    ----------
    net : fastnn.MLP
        The network.

    Returns
    -------
    records : Records of Symmetry
        One per layer, the output layer last.

    Raises
    ------
    TypeError
        If net is not a fastnn.MLP.
    """
    records = Records()
    for index, layer in enumerate(_model(net).layers):
        rows = np.column_stack([layer.W, layer.b])
        _, inverse, counts = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
        groups = tuple(tuple(int(i) for i in np.flatnonzero(inverse.ravel() == g))
                       for g in np.flatnonzero(counts > 1))
        records.append(Symmetry(index, rows.shape[0], len(counts), groups))
    return records


@dataclass(frozen=True)
class ParameterError:
    """One parameter's two derivatives, as :func:`gradient_check` lists them.

    GradientCheck.worst holds these for the parameters that disagree most.

    Parameters
    ----------
    name : str
        The state_dict name and index, e.g. "2.weight[3, 1]".
    analytic : float
        The derivative by backprop.
    numeric : float
        The derivative by central differences.
    """

    name: str
    analytic: float
    numeric: float


@dataclass(frozen=True)
class GradientCheck:
    """The outcome of :func:`gradient_check`; prints as a verdict.

    Parameters
    ----------
    difference : float
        ||g - g_num|| / (||g|| + ||g_num||), 0 when both are zero.
    threshold : float
        The check passes when difference < threshold.
    passed : bool
        Whether it passed.
    worst : tuple of ParameterError
        The parameters that disagree most (at most ten), when the check fails;
        empty when it passes.
    """

    difference: float
    threshold: float
    passed: bool
    worst: tuple

    def __str__(self):
        """The verdict, then one line per parameter in worst."""
        verdict = "passed" if self.passed else "FAILED"
        lines = [f"gradient check {verdict}: difference {self.difference:.3g} "
                 f"(threshold {self.threshold:g})"]
        lines += [f"  {e.name}: backprop {e.analytic:.6g}, numeric {e.numeric:.6g}"
                  for e in self.worst]
        return "\n".join(lines)


def gradient_check(net, X, y, eps=1e-7, weight_decay=0.0, threshold=GRADIENT_CHECK_THRESHOLD):
    """Compare backprop with central differences (the course's gradient checking).

    A float32 model is checked through a float64 copy of it (float32 cannot resolve
    eps = 1e-7). Every parameter is nudged by +-eps in turn (and restored exactly) while
    nothing else should use the model; the objective is
    the mean loss plus 0.5 weight_decay sum ||W||^2. Passes when
    ||g - g_num|| / (||g|| + ||g_num||) < threshold (2e-7); when it fails, `worst` lists
    the ten parameters that disagree most.

    Parameters
    ----------
    net : fastnn.MLP
        The network; its parameters are nudged and restored.
    X : array-like of shape (m, n_features)
        Samples (a few suffice: every parameter costs two loss evaluations).
    y : array-like
        Targets, as :meth:`fastnn.MLP.fit` takes them.
    eps : float, default=1e-7
        The nudge, > 0.
    weight_decay : float, default=0.0
        L2 coefficient of the objective, >= 0.
    threshold : float, default=2e-7
        Largest relative difference that fails, > 0.

    Returns
    -------
    result : GradientCheck
        The relative difference, the verdict and, on failure, the worst parameters.

    Raises
    ------
    TypeError
        If eps, weight_decay or threshold is not a real number, net is not a
        fastnn.MLP, or X or y has a dtype the model refuses.
    ValueError
        If eps or threshold is not > 0, weight_decay is negative, one of them is not
        finite, or X or y has the wrong shape or values.
    """
    eps = check.real("eps", eps, 0, low_open=True)
    weight_decay = check.real("weight_decay", weight_decay, 0)
    threshold = check.real("threshold", threshold, 0, low_open=True)
    X = inputs.features(_model(net), X)
    if net.dtype != np.float64:  # float32 cannot resolve a nudge of 1e-7: check a float64 copy
        net, X = _float64_twin(net), X.astype(np.float64)
    analytic = net.gradients(X, y, weight_decay=weight_decay)
    names, backprop, numeric = _central_differences(net, X, y, analytic, eps, weight_decay)
    return _verdict(names, backprop, numeric, threshold)


def _float64_twin(net):
    """A float64 MLP with net's architecture and parameters."""
    twin = MLP(net.layer_sizes, list(net.activations), net.output, init="zeros",
               negative_slope=net.negative_slope, dtype="float64")
    twin.load_state_dict({k: v.astype(np.float64) for k, v in net.state_dict().items()})
    return twin


def _central_differences(net, X, y, analytic, eps, weight_decay):
    """Every parameter's name, backprop derivative and numeric one, as three lists."""

    def objective():
        penalty = sum(float(np.sum(layer.W * layer.W)) for layer in net.layers)
        return net.loss(X, y) + 0.5 * weight_decay * penalty

    names, backprop, numeric = [], [], []
    for key, param, grad in _parameters(net, analytic):
        for i in np.ndindex(param.shape):
            names.append(f"{key}[{', '.join(map(str, i))}]")
            backprop.append(float(grad[i]))
            numeric.append(_central_difference(objective, param, i, eps))
    return names, backprop, numeric


def _central_difference(objective, param, i, eps):
    """(objective at param[i] + eps - at param[i] - eps) / 2 eps; param[i] is restored
    exactly whatever happens (an exception or Ctrl-C in the objective included)."""
    saved = param[i]
    try:
        param[i] = saved + eps
        up = objective()
        param[i] = saved - eps
        down = objective()
    finally:
        param[i] = saved
    return (up - down) / (2 * eps)


def _verdict(names, backprop, numeric, threshold):
    """The GradientCheck of backprop against numeric derivatives."""
    backprop, numeric = np.array(backprop), np.array(numeric)
    norm = np.linalg.norm(backprop) + np.linalg.norm(numeric)
    difference = float(np.linalg.norm(backprop - numeric) / norm) if norm else 0.0
    passed = difference < threshold
    worst = () if passed else tuple(
        ParameterError(names[i], backprop[i], numeric[i])
        for i in np.argsort(-np.abs(backprop - numeric))[:10])
    return GradientCheck(difference, threshold, passed, worst)


def _parameters(net, grads):
    for index, (layer, (dW, db)) in enumerate(zip(net.layers, grads)):
        yield f"{2 * index}.weight", layer.W, dW
        yield f"{2 * index}.bias", layer.b, db

