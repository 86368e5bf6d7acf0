"""Kernel level: each fastnn.kernels function against its fastnn.reference twin.

Parametrised by activation, dtype and shape; each case is one pytest-benchmark
group holding the two implementations, so the table reads as a comparison.
"""
import numpy as np
import pytest

from fastnn import ACTIVATIONS, kernels, reference

IMPLS = {"fastnn": kernels, "reference": reference}
DTYPES = ["float64", "float32"]
LAYERS = [(16, 32, 32), (64, 64, 64), (256, 512, 512)]  # m, n_in, n_out


def normal(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("shape", LAYERS, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("impl", IMPLS)
def test_dense_forward(benchmark, rng, impl, activation, dtype, shape):
    m, n_in, n_out = shape
    benchmark.group = f"dense_forward {activation} {dtype} {m}x{n_in}x{n_out}"
    benchmark.extra_info["flops"] = 2 * m * n_in * n_out
    A_prev, W = normal(rng, (m, n_in), dtype), normal(rng, (n_out, n_in), dtype)
    b, Z, A = normal(rng, n_out, dtype), np.empty((m, n_out), dtype), np.empty((m, n_out), dtype)
    benchmark(IMPLS[impl].dense_forward, A_prev, W, b, Z, A, activation)


@pytest.mark.parametrize("shape", LAYERS, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("impl", IMPLS)
def test_dense_backward(benchmark, rng, impl, activation, dtype, shape):
    m, n_in, n_out = shape
    benchmark.group = f"dense_backward {activation} {dtype} {m}x{n_in}x{n_out}"
    benchmark.extra_info["flops"] = 4 * m * n_in * n_out
    dA, Z = normal(rng, (m, n_out), dtype), normal(rng, (m, n_out), dtype)
    A = np.tanh(Z)
    A_prev, W = normal(rng, (m, n_in), dtype), normal(rng, (n_out, n_in), dtype)
    dZ, dW = np.empty((m, n_out), dtype), np.empty((n_out, n_in), dtype)
    db, dA_prev = np.empty(n_out, dtype), np.empty((m, n_in), dtype)
    benchmark(IMPLS[impl].dense_backward, dA, Z, A, A_prev, W, dZ, dW, db, dA_prev,
              activation)


LOSSES = ["sigmoid_binary_cross_entropy", "softmax_cross_entropy labels",
          "softmax_cross_entropy onehot", "mean_squared_error"]


@pytest.mark.parametrize("shape", [(256, 10), (1024, 1000)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("impl", IMPLS)
def test_output_loss(benchmark, rng, impl, loss, dtype, shape):
    m, k = shape
    benchmark.group = f"{loss} {dtype} {m}x{k}"
    name, _, target = loss.partition(" ")
    Z = normal(rng, (m, k), dtype)
    labels = rng.integers(0, k, m)
    Y = {"labels": labels, "onehot": np.eye(k, dtype=dtype)[labels]}.get(
        target, rng.integers(0, 2, (m, k)).astype(dtype))
    A, dZ = np.empty_like(Z), np.empty_like(Z)
    benchmark(getattr(IMPLS[impl], name), Z, Y, A, dZ)


UPDATES = {
    "sgd": (0, lambda k, p, g, s: k.sgd_update(p, g, 0.01, 1e-4)),
    "momentum": (1, lambda k, p, g, s: k.momentum_update(p, g, s[0], 0.01, 0.9, 1e-4)),
    "nesterov": (1, lambda k, p, g, s: k.momentum_update(p, g, s[0], 0.01, 0.9, 1e-4, True)),
    "adam": (2, lambda k, p, g, s: k.adam_update(p, g, s[0], s[1], 10, 1e-3, 0.9, 0.999,
                                                 1e-8, 1e-4)),
}


@pytest.mark.parametrize("size", [10_000, 1_000_000])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", UPDATES)
@pytest.mark.parametrize("impl", IMPLS)
def test_optimizer_update(benchmark, rng, impl, optimizer, dtype, size):
    benchmark.group = f"{optimizer}_update {dtype} {size:,}"
    n_states, update = UPDATES[optimizer]
    param, grad = normal(rng, size, dtype), normal(rng, size, dtype) * 1e-3
    states = [np.abs(normal(rng, size, dtype)) * 1e-3 for _ in range(n_states)]
    benchmark(update, IMPLS[impl], param, grad, states)
