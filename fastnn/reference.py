"""The NumPy twin of every compiled kernel: same names, same arguments, same outputs.

Written the way a careful NumPy user would write them (vectorised, in place where
NumPy allows, stable formulas), because this module is both the oracle the tests
compare fastnn.kernels against and the baseline every speed claim is measured
against. It does not check its arguments.
"""
import math

import numpy as np
from scipy.special import expit

from fastnn._layout import layer_views


def activation_forward(Z, A, activation, negative_slope=0.01):
    """A = g(Z) for identity, sigmoid, tanh, relu or leaky_relu."""
    if activation == "identity":
        np.copyto(A, Z)
    elif activation == "sigmoid":
        expit(Z, out=A)
    elif activation == "tanh":
        np.tanh(Z, out=A)
    elif activation == "relu":
        np.maximum(Z, 0, out=A)
    elif activation == "leaky_relu":
        np.copyto(A, np.where(Z > 0, Z, Z * negative_slope))
    else:
        raise ValueError(f"unknown activation {activation!r}")


def _derivative(Z, A, activation, negative_slope):
    """g'(Z) as a new array (1 for identity); sigmoid and tanh from the cache A = g(Z)."""
    if activation == "identity":
        return 1
    if activation == "sigmoid":
        return A * (1 - A)
    if activation == "tanh":
        return 1 - A * A
    if activation == "relu":
        return Z > 0
    if activation == "leaky_relu":
        return np.where(Z > 0, 1, negative_slope)
    raise ValueError(f"unknown activation {activation!r}")


def activation_derivative(Z, A, out, activation, negative_slope=0.01):
    """out = g'(Z); sigmoid' = A (1 - A) and tanh' = 1 - A^2 from the cached A = g(Z)."""
    np.copyto(out, _derivative(Z, A, activation, negative_slope))


def dense_forward(A_prev, W, b, Z, A, activation, negative_slope=0.01):
    """Z = A_prev W^T + b, A = g(Z)."""
    np.matmul(A_prev, W.T, out=Z)
    Z += b
    activation_forward(Z, A, activation, negative_slope)


def dense_backward(dA, Z, A, A_prev, W, dZ, dW, db, dA_prev, activation,
                   negative_slope=0.01):
    """dZ = dA g'(Z) (dZ may be dA), dW = dZ^T A_prev, db = sum of dZ's rows,
    dA_prev = dZ W (if given)."""
    np.multiply(dA, _derivative(Z, A, activation, negative_slope), out=dZ)
    np.matmul(dZ.T, A_prev, out=dW)
    np.sum(dZ, axis=0, out=db)
    if dA_prev is not None:
        np.matmul(dZ, W, out=dA_prev)


def sigmoid_binary_cross_entropy(Z, Y, A, dZ):
    """Mean over all elements of max(z, 0) - z y + log(1 + e^-|z|) (= log(1 + e^z) - z y);
    A = sigmoid(Z), dZ = (A - Y) / Z.size."""
    expit(Z, out=A)
    np.subtract(A, Y, out=dZ)
    dZ /= Z.size
    return float(np.mean(np.maximum(Z, 0) - Z * Y + np.log1p(np.exp(-np.abs(Z)))))


def softmax_cross_entropy(Z, Y, P, dZ):
    """Mean over rows of lse(z) - z[y] (Y integer labels) or sum_j Y_j (lse(z) - z_j).

    P = softmax(Z), dZ = (P sum_j Y_j - Y) / m; with labels Y is one-hot.
    """
    m = Z.shape[0]
    shifted = Z - Z.max(axis=1, keepdims=True)
    np.exp(shifted, out=P)
    total = P.sum(axis=1, keepdims=True)
    P /= total
    log_p = shifted - np.log(total)
    if Y.ndim == 1:
        rows = np.arange(m)
        np.divide(P, m, out=dZ)
        dZ[rows, Y] -= 1 / m
        return float(-np.mean(log_p[rows, Y]))
    np.multiply(P, Y.sum(axis=1, keepdims=True), out=dZ)
    dZ -= Y
    dZ /= m
    return float(-np.sum(Y * log_p) / m)


def mean_squared_error(Z, Y, A, dZ):
    """Mean over all elements of (Z - Y)^2; A = Z, dZ = 2 (Z - Y) / Z.size."""
    np.copyto(A, Z)
    np.subtract(Z, Y, out=dZ)
    loss = float(np.mean(dZ * dZ))
    dZ *= 2 / Z.size
    return loss


def sgd_update(param, grad, lr, weight_decay=0.0):
    """param -= lr (grad + weight_decay param)."""
    param -= lr * (grad + weight_decay * param)


def momentum_update(param, grad, velocity, lr, momentum=0.9, weight_decay=0.0,
                    nesterov=False):
    """g = grad + wd param; velocity = momentum velocity + g; param -= lr velocity
    (Nesterov: param -= lr (g + momentum velocity))."""
    g = grad + weight_decay * param
    velocity *= momentum
    velocity += g
    if nesterov:
        param -= lr * (g + momentum * velocity)
    else:
        param -= lr * velocity


def adam_update(param, grad, m, v, t, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8,
                weight_decay=0.0):
    """Adam at step t >= 1 with bias correction (PyTorch's arithmetic)."""
    g = grad + weight_decay * param
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * (g * g)
    denom = np.sqrt(v)
    denom /= math.sqrt(1 - beta2 ** t)
    denom += eps
    param -= (lr / (1 - beta1 ** t)) * m / denom


class Engine:
    """The NumPy twin of the compiled engine (fastnn._engine.Engine): a whole MLP over
    one flat parameter vector (W then b, layer after layer), composed from the kernels
    above, with the same methods and the same results. Buffers are allocated once per
    batch size, as a careful NumPy user would.

    Parameters
    ----------
    params : numpy.ndarray
        The flat parameters, worked on in place.
    sizes : sequence of int
        The layer widths, input first.
    activations : sequence of str
        Every layer's activation by name; the output layer's is "identity" (logits).
    output : {"sigmoid", "softmax", "identity"}
        The output layer and its loss.
    negative_slope : float
        Leaky ReLU's slope.
    """

    def __init__(self, params, sizes, activations, output, negative_slope):
        self.activations = list(activations)
        self.output = output
        self.slope = negative_slope
        self.params = params
        self.sizes = list(sizes)
        self.layers = layer_views(params, self.sizes)
        self._buffers = {}

    @classmethod
    def twin_of(cls, net):
        """A twin of a fastnn.MLP over a copy of its parameters.

        Parameters
        ----------
        net : fastnn.MLP

        Returns
        -------
        Engine
            Its `params` is the copy, which the twin's steps update.
        """
        params = np.concatenate([value.ravel() for value in net.state_dict().values()])
        return cls(params, net.layer_sizes, list(net.activations) + ["identity"],
                   net.output, net.negative_slope)

    def _cache(self, m):
        if m not in self._buffers:
            dtype = self.params.dtype
            self._buffers[m] = [(np.empty((m, n), dtype), np.empty((m, n), dtype),
                                 np.empty((m, n), dtype)) for n in self.sizes[1:]]
        return self._buffers[m]

    def _forward(self, X):
        cache = self._cache(X.shape[0])
        A_prev = X
        for (W, b), (Z, A, _), act in zip(self.layers, cache, self.activations):
            dense_forward(A_prev, W, b, Z, A, act, self.slope)
            A_prev = A
        return cache

    def _loss(self, Z, Y, out, dZ):
        if self.output == "sigmoid":
            return sigmoid_binary_cross_entropy(Z, Y, out, dZ)
        if self.output == "softmax":
            return softmax_cross_entropy(Z, Y, out, dZ)
        return mean_squared_error(Z, Y, out, dZ)

    def predict(self, X, out=None):
        """out (m, k) = the output's probabilities or values for X; returns out."""
        Z = self._forward(X)[-1][0]
        out = np.empty_like(Z) if out is None else out
        if self.output == "softmax":
            softmax_cross_entropy(Z, np.zeros(len(Z), np.intp), out, np.empty_like(Z))
        else:
            activation_forward(Z, out, "sigmoid" if self.output == "sigmoid" else "identity")
        return out

    def loss(self, X, Y):
        """The mean loss on (X, Y)."""
        Z, A, dZ = self._forward(X)[-1]
        return self._loss(Z, Y, A, dZ)

    def loss_and_gradients(self, X, Y, grads):
        """The mean loss on (X, Y); its gradient (params' layout) into grads."""
        cache = self._forward(X)
        Z, A, dZ = cache[-1]
        loss = self._loss(Z, Y, A, dZ)
        dA = dZ
        grad_views = layer_views(grads, self.sizes)
        for l in range(len(self.layers) - 1, -1, -1):
            W, _ = self.layers[l]
            dW, db = grad_views[l]
            Z, A, dZ = cache[l]
            A_prev = X if l == 0 else cache[l - 1][1]
            dA_prev = None if l == 0 else cache[l - 1][2]
            dense_backward(dA, Z, A, A_prev, W, dZ, dW, db, dA_prev, self.activations[l],
                           self.slope)
            dA = dA_prev
        return loss

    def updater(self, settings):
        """What step takes: settings (optimizer, weight_decay, state), with a
        gradient buffer of the twin's own."""
        return settings, np.zeros_like(self.params)

    def step(self, X, Y, update):
        """One training step in place, as the compiled engine's (same returns)."""
        settings, grads = update
        opt, wd, state = settings.optimizer, settings.weight_decay, settings.state
        loss = self.loss_and_gradients(X, Y, grads)
        if wd:
            loss += 0.5 * wd * sum(float(np.sum(W.astype(np.float64) ** 2))
                                   for W, _ in self.layers)
        if not np.isfinite(loss) or not np.isfinite(grads).all():
            return loss if not np.isfinite(loss) else float("nan")
        state.steps[0] += 1  # the step counter, as the compiled engine keeps it
        states = [layer_views(a, self.sizes) for a in state.arrays]
        for index, ((W, b), (dW, db)) in enumerate(zip(self.layers,
                                                       layer_views(grads, self.sizes))):
            for part, (p, g, decay) in enumerate(((W, dW, wd), (b, db, 0.0))):
                _update(opt, p, g, [s[index][part] for s in states], int(state.steps[0]),
                        decay)
        return loss if np.isfinite(self.params).all() else -np.inf


def _update(opt, p, g, states, t, weight_decay):
    """One optimizer update of parameter p by name: sgd, momentum, nesterov or adam."""
    if opt.name == "sgd":
        sgd_update(p, g, opt.lr, weight_decay)
    elif opt.name == "adam":
        adam_update(p, g, states[0], states[1], t, opt.lr, opt.beta1, opt.beta2, opt.eps,
                    weight_decay)
    else:
        momentum_update(p, g, states[0], opt.lr, opt.momentum, weight_decay,
                        opt.name == "nesterov")
