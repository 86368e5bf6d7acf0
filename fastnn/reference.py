"""The NumPy twin of every compiled kernel: same names, same arguments, same outputs.

Written the way a careful NumPy user would write them (vectorised, in place where
NumPy allows, stable formulas), because this module is both the oracle the tests
compare fastnn.kernels against and the baseline every speed claim is measured
against. It does not check its arguments.
"""
import math

import numpy as np
from scipy.special import expit


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


def activation_derivative(Z, A, out, activation, negative_slope=0.01):
    """out = g'(Z); sigmoid' = A (1 - A) and tanh' = 1 - A^2 from the cached A = g(Z)."""
    if activation == "identity":
        out.fill(1)
    elif activation == "sigmoid":
        np.multiply(A, 1 - A, out=out)
    elif activation == "tanh":
        np.subtract(1, A * A, out=out)
    elif activation == "relu":
        np.greater(Z, 0, out=out, casting="unsafe")
    elif activation == "leaky_relu":
        np.copyto(out, np.where(Z > 0, 1, negative_slope))
    else:
        raise ValueError(f"unknown activation {activation!r}")


def dense_forward(A_prev, W, b, Z, A, activation, negative_slope=0.01):
    """Z = A_prev W^T + b, A = g(Z)."""
    np.matmul(A_prev, W.T, out=Z)
    Z += b
    activation_forward(Z, A, activation, negative_slope)


def dense_backward(dA, Z, A, A_prev, W, dZ, dW, db, dA_prev, activation,
                   negative_slope=0.01):
    """dZ = dA g'(Z), dW = dZ^T A_prev, db = sum of dZ's rows, dA_prev = dZ W (if given)."""
    activation_derivative(Z, A, dZ, activation, negative_slope)
    dZ *= dA
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
