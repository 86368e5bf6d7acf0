"""Look inside a network: activation statistics, gradient flow, dead and symmetric units,
and the course's gradient check.

Every function returns plain records (frozen dataclasses) in a list that prints as a
table, first layer first; the last record of the per-layer functions is the output layer.
"""
from dataclasses import dataclass, fields

import numpy as np

from fastnn import _checks as check
from fastnn import kernels
from fastnn.model import MLP

__all__ = ["activation_stats", "gradient_norms", "dead_units", "symmetry", "gradient_check",
           "layer_outputs", "Records", "ActivationStats", "GradientNorms", "DeadUnits",
           "Symmetry", "GradientCheck", "ParameterError"]

#: The course's pass threshold for ||g - g_num|| / (||g|| + ||g_num||).
GRADIENT_CHECK_THRESHOLD = 2e-7


class Records(list):
    """A list of records that prints as an aligned table (array fields left out)."""

    def __str__(self):
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
    """[(Z, A), ...] per layer for X: pre-activations and activations; the output
    layer's A is what predict_proba gives (probabilities or values), as (m, k)."""
    X = _model(net)._features(X)
    out, A_prev = [], X
    for index, layer in enumerate(net.layers):
        n_out = layer.W.shape[0]
        Z = np.empty((X.shape[0], n_out), net.dtype)
        A = np.empty_like(Z)
        last = index == len(net.layers) - 1
        kernels.dense_forward(A_prev, layer.W, layer.b, Z, A,
                              "identity" if last else layer.activation, net.negative_slope)
        if last:
            A = net.predict_proba(X).reshape(Z.shape)
        out.append((Z, A))
        A_prev = A
    return out


def _layer_names(net):
    return [layer.activation for layer in net.layers[:-1]] + [net.output]


@dataclass(frozen=True)
class ActivationStats:
    layer: int
    activation: str
    mean: float
    std: float
    min: float
    max: float
    saturated: float   # fraction within 0.01 of sigmoid's 0 or 1, or beyond +-0.99 for tanh
    zero: float        # fraction exactly zero
    hist: tuple        # (counts, bin edges)


def activation_stats(net, X, bins=20, range=None):
    """Statistics of every layer's activations on X, with a histogram of each.

    saturated counts sigmoid outputs below 0.01 or above 0.99 and tanh outputs beyond
    +-0.99 (0 for activations that do not saturate). The histogram spans range=(lo, hi)
    if given, else [0, 1] for sigmoid, [-1, 1] for tanh and each layer's own range.
    """
    bins = check.integer("bins", bins, 1)
    if range is not None:
        lo, hi = check.real("range[0]", range[0]), check.real("range[1]", range[1])
        if not lo < hi:
            raise ValueError(f"range must be (lo, hi) with lo < hi; got {range!r}")
    records = Records()
    for index, ((_, A), name) in enumerate(zip(layer_outputs(net, X), _layer_names(net))):
        if name == "sigmoid":
            saturated, span = float(np.mean((A < 0.01) | (A > 0.99))), (0.0, 1.0)
        elif name == "tanh":
            saturated, span = float(np.mean(np.abs(A) > 0.99)), (-1.0, 1.0)
        else:
            saturated, span = 0.0, (float(A.min()), float(A.max()))
        counts, edges = np.histogram(A, bins=bins, range=span if range is None else range)
        records.append(ActivationStats(index, name, float(A.mean()), float(A.std()),
                                       float(A.min()), float(A.max()), saturated,
                                       float(np.mean(A == 0)), (counts, edges)))
    return records


@dataclass(frozen=True)
class GradientNorms:
    layer: int
    activation: str
    dW_norm: float     # Frobenius norm of the gradient of the mean loss
    db_norm: float


def gradient_norms(net, X, y):
    """Per-layer norms of dW and db (backprop, mean loss): vanishing or exploding
    gradients show as norms shrinking or growing from the last layer to the first."""
    return Records(GradientNorms(i, name, float(np.linalg.norm(dW)), float(np.linalg.norm(db)))
                   for i, ((dW, db), name) in enumerate(zip(_model(net).gradients(X, y),
                                                            _layer_names(net))))


@dataclass(frozen=True)
class DeadUnits:
    layer: int
    activation: str
    dead: int          # units whose output is 0 for every sample
    units: int
    fraction: float


def dead_units(net, X):
    """Per hidden layer, the units that output exactly 0 for every sample of X: dead
    ReLUs, which no gradient can revive."""
    records = Records()
    for index, (_, A) in enumerate(layer_outputs(net, X)[:-1]):
        dead = int(np.all(A == 0, axis=0).sum())
        records.append(DeadUnits(index, net.layers[index].activation, dead, A.shape[1],
                                 dead / A.shape[1]))
    return records


@dataclass(frozen=True)
class Symmetry:
    layer: int
    units: int
    distinct: int      # how many different units the layer really has
    groups: tuple      # groups (tuples of unit indices) of identical units, size >= 2


def symmetry(net):
    """Per layer, the groups of units whose incoming weights and bias are identical:
    what zero or constant initialisation produces, and training never breaks."""
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
    name: str          # state_dict name and index, e.g. "2.weight[3, 1]"
    analytic: float
    numeric: float


@dataclass(frozen=True)
class GradientCheck:
    difference: float  # ||g - g_num|| / (||g|| + ||g_num||)
    threshold: float
    passed: bool
    worst: tuple       # the parameters that disagree most, when the check fails

    def __str__(self):
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
    """
    eps = check.real("eps", eps, 0, low_open=True)
    weight_decay = check.real("weight_decay", weight_decay, 0)
    threshold = check.real("threshold", threshold, 0, low_open=True)
    X = _model(net)._features(X)
    if net.dtype != np.float64:  # float32 cannot resolve a nudge of 1e-7: check a float64 copy
        twin = MLP(net.layer_sizes, list(net.activations), net.output, init="zeros",
                   negative_slope=net.negative_slope, dtype="float64")
        twin.load_state_dict({k: v.astype(np.float64) for k, v in net.state_dict().items()})
        net, X = twin, X.astype(np.float64)
    analytic = net.gradients(X, y, weight_decay=weight_decay)

    def objective():
        penalty = sum(float(np.sum(layer.W * layer.W)) for layer in net.layers)
        return net.loss(X, y) + 0.5 * weight_decay * penalty

    names, backprop, numeric = [], [], []
    for key, param, grad in _parameters(net, analytic):
        for i in np.ndindex(param.shape):
            saved = param[i]
            param[i] = saved + eps
            up = objective()
            param[i] = saved - eps
            down = objective()
            param[i] = saved
            names.append(f"{key}[{', '.join(map(str, i))}]")
            backprop.append(float(grad[i]))
            numeric.append((up - down) / (2 * eps))
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

