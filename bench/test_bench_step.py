"""Whole training steps, inference and a fit epoch: fastnn against fastnn.reference.

Each case is one pytest-benchmark group: the compiled engine, its NumPy twin and,
for the GEMM-bound cases, the machine's own BLAS GEMM over exactly the step's
matrix products (scipy's BLAS, the one fastnn calls), so the table shows how close
the step runs to the BLAS limit. `python bench/report.py` turns the JSON into one table.
"""
import numpy as np
import pytest
from scipy.linalg import blas

from fastnn import MLP, reference
from fastnn.model.inputs import targets
from fastnn.model.training import TrainingSettings
from fastnn.optim import SGD, OptimizerState

NETWORKS = {  # widths, output, batch
    "tiny": ([2, 10, 5, 1], "sigmoid", 300),
    "small": ([784, 100, 100, 100, 100, 10], "softmax", 100),
    "mid": ([784, 512, 512, 10], "softmax", 256),
    "large": ([1024, 2048, 2048, 10], "softmax", 512),
}
DTYPES = ["float64", "float32"]


def make_net(name, dtype):
    sizes, output, batch = NETWORKS[name]
    net = MLP(sizes, activation="relu", output=output, dtype=dtype, seed=0)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((batch, sizes[0])).astype(dtype)
    y = rng.integers(0, 2 if output == "sigmoid" else sizes[-1], batch)
    return net, X, targets(net, y, batch)


def benchmark_quick(benchmark, function, *args, iterations):
    """benchmark(function, *args) for a call of a few microseconds: each of 1,000 rounds
    times `iterations` calls back to back (the statistics are per call). Left to
    itself, pytest-benchmark calibrates on one cold first call and then times every
    call alone, adding the timer's own cost and its loop's (about 0.3 us a round here)
    to each."""
    benchmark.pedantic(function, args=args, iterations=iterations, rounds=1000,
                       warmup_rounds=10)


def sgd_settings(engine, lr):
    """Plain SGD at lr with a fresh optimizer state, for engine's step."""
    return TrainingSettings(optimizer=SGD(lr), state=OptimizerState(
        SGD(lr), len(engine.params), engine.params.dtype))


def step_flops(sizes, batch):
    """2 m n_in n_out per GEMM: forward, dW, and dA_prev for every layer but the first."""
    pairs = list(zip(sizes, sizes[1:]))
    return 2 * batch * sum(i * o for i, o in pairs) * 3 - 2 * batch * sizes[0] * sizes[1]


def step_gemms(sizes, batch, dtype):
    """A function running the step's matrix products with scipy's BLAS, nothing else."""
    gemm = blas.sgemm if dtype == "float32" else blas.dgemm
    rng = np.random.default_rng(2)
    acts = [np.asfortranarray(rng.standard_normal((batch, n)).astype(dtype)) for n in sizes]
    weights = [np.asfortranarray(rng.standard_normal((o, i)).astype(dtype))
               for i, o in zip(sizes, sizes[1:])]

    def run():
        for l, W in enumerate(weights):
            gemm(1.0, acts[l], W, trans_b=True)                 # Z = A_prev W^T
        for l in range(len(weights) - 1, -1, -1):
            gemm(1.0, acts[l + 1], acts[l], trans_a=True)       # dW = dZ^T A_prev
            if l:
                gemm(1.0, acts[l + 1], weights[l])              # dA_prev = dZ W
    return run


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("network", NETWORKS)
@pytest.mark.parametrize("impl", ["fastnn", "reference", "blas_gemm"])
def test_training_step(benchmark, impl, network, dtype):
    net, X, T = make_net(network, dtype)
    sizes, _, batch = NETWORKS[network]
    if impl == "blas_gemm" and network == "tiny":
        pytest.skip("the tiny network is not GEMM-bound")
    benchmark.group = f"step {network} {dtype}"
    benchmark.extra_info["flops"] = step_flops(sizes, batch)
    if impl == "blas_gemm":
        benchmark(step_gemms(sizes, batch, dtype))
        return
    engine = net.engine if impl == "fastnn" else reference.Engine.twin_of(net)
    update = engine.updater(sgd_settings(engine, 1e-4))
    args = (X, T, update)  # the call timed is engine.step itself, no wrapper around it
    if network == "large":
        benchmark.pedantic(engine.step, args=args, rounds=3, iterations=1, warmup_rounds=1)
    elif network == "tiny":
        benchmark_quick(benchmark, engine.step, *args, iterations=20)
    else:
        benchmark(engine.step, *args)


def dead_units_net(dead_weight):
    """The diabetes peers' network, [10, 64, 64, 1] at batch 32, with a quarter of each
    hidden layer's units dead (bias -100: z < 0 on every row, so their weights get no
    gradient) and their weights, in and out, all dead_weight: what L2 weight decay
    leaves of a dead unit after a few thousand epochs (it shrinks them geometrically,
    into the subnormal range), or 0."""
    sizes = [10, 64, 64, 1]
    net = MLP(sizes, output="identity", seed=0)
    for layer in net.layers[:-1]:
        dead = np.arange(0, layer.W.shape[0], 4)
        W, b = layer.W.copy(), layer.b.copy()
        W[dead], b[dead] = dead_weight, -100.0
        layer.W, layer.b = W, b
        following = net.layers[net.layers.index(layer) + 1]
        W = following.W.copy()
        W[:, dead] = dead_weight
        following.W = W
    rng = np.random.default_rng(1)
    X = rng.standard_normal((32, sizes[0]))
    return net, X, targets(net, rng.standard_normal(32), 32)


@pytest.mark.parametrize("dead_weight", [0.0, 1e-310])
@pytest.mark.parametrize("impl", ["fastnn", "reference"])
def test_step_with_dead_units(benchmark, impl, dead_weight):
    """The engine reads subnormal numbers as 0 (README, Numerics); NumPy's products
    take a microcode assist on each."""
    net, X, T = dead_units_net(dead_weight)
    benchmark.group = (f"step [10, 64, 64, 1] batch 32, a quarter of the units dead, "
                       f"their weights {'subnormal' if dead_weight else '0'}")
    engine = net.engine if impl == "fastnn" else reference.Engine.twin_of(net)
    update = engine.updater(sgd_settings(engine, 1e-4))
    benchmark_quick(benchmark, engine.step, X, T, update, iterations=20)


PREDICT_SIZES = [64, 64, 64, 10]


@pytest.mark.parametrize("m", [1, 10_000])
@pytest.mark.parametrize("impl", ["fastnn", "reference"])
def test_predict(benchmark, impl, m):
    net = MLP(PREDICT_SIZES, output="softmax", seed=0)
    X = np.random.default_rng(0).standard_normal((m, PREDICT_SIZES[0]))
    benchmark.group = f"predict {m} sample{'s' if m > 1 else ''}"
    if impl == "fastnn":
        function, args = net.predict_proba, (X,)  # argument checks included
    else:
        function = reference.Engine.twin_of(net).predict
        args = (X, np.empty((m, PREDICT_SIZES[-1])))
    if m == 1:
        benchmark_quick(benchmark, function, *args, iterations=100)
    else:
        benchmark(function, *args)


def reference_epoch(twin, X, T, batch, rng, update):
    """One epoch as a careful NumPy user would write it: shuffle, gather, step."""
    order = rng.permutation(len(X))
    Xs, Ts = X[order], T[order]
    for start in range(0, len(X), batch):
        twin.step(Xs[start:start + batch], Ts[start:start + batch], update)


@pytest.mark.parametrize("impl", ["fastnn", "reference"])
def test_fit_epoch_small(benchmark, impl):
    sizes = NETWORKS["small"][0]
    net = MLP(sizes, output="softmax", seed=0)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((10_000, sizes[0]))
    y = rng.integers(0, sizes[-1], 10_000)
    benchmark.group = "fit epoch small (10,000 samples, batch 100)"
    benchmark.extra_info["flops"] = step_flops(sizes, 10_000)
    if impl == "fastnn":
        benchmark.pedantic(net.fit, args=(X, y), kwargs=dict(epochs=1, batch_size=100,
                                                             lr=0.01),
                           rounds=5, iterations=1, warmup_rounds=1)
    else:
        twin = reference.Engine.twin_of(net)
        update = twin.updater(sgd_settings(twin, 0.01))
        benchmark.pedantic(reference_epoch, args=(twin, X, targets(net, y, len(X)), 100,
                                                  rng, update),
                           rounds=5, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("impl", ["fastnn", "one_thread"])
def test_predict_threads(benchmark, impl):
    """Eight predictions of 5,000 samples each on one model: from eight threads at once
    (fastnn) against one after the other on one thread. BLAS is on one thread, so any
    gain comes from fastnn releasing the GIL; it is bounded by the number of cores."""
    import threading

    net = MLP([64, 256, 256, 10], output="softmax", seed=0)
    inputs = [np.random.default_rng(i).standard_normal((5000, 64)) for i in range(8)]
    benchmark.group = "predict 8 x 5,000 samples, [64, 256, 256, 10]: 8 threads vs 1"

    def threaded():
        threads = [threading.Thread(target=net.predict_proba, args=(X,)) for X in inputs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def sequential():
        for X in inputs:
            net.predict_proba(X)

    benchmark(threaded if impl == "fastnn" else sequential)
