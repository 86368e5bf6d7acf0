"""The experiments behind the classic lessons on initialisation and activations.

Each function runs one experiment and returns its numbers (records, histories, the
trained networks); fastnn.cli prints and plots them. Everything is seeded.
"""
import math
from dataclasses import dataclass

import numpy as np

from fastnn import _checks as check
from fastnn import datasets, diagnostics, init
from fastnn.model import MLP, DivergenceError

__all__ = ["HISTOGRAM_GRID", "histograms", "compare_init_circles", "compare_init_spiral",
           "compare_activations", "vanishing", "dead_relu", "RunResult"]

#: The classic grid of "Deep Learning from Scratch" (activation, init) pairs.
HISTOGRAM_GRID = [("sigmoid", 1.0), ("sigmoid", 0.01), ("sigmoid", "xavier"),
                  ("tanh", "xavier"), ("relu", 0.01), ("relu", "xavier"), ("relu", "he")]

#: init names the histograms experiment takes besides a number (a std).
HISTOGRAM_INITS = ("xavier", "lecun", "he")


def histograms(activation="sigmoid", init_scheme=1.0, n_samples=1000, width=100, n_layers=5,
               bins=30, seed=0):
    """The book's experiment: n_samples standard-normal inputs through n_layers layers
    of width units, no biases, weights N(0, std^2) or by scheme; returns the hidden
    layers' ActivationStats (with histograms), first layer first.

    init_scheme: a std (1, 0.01, ...) or "xavier" (Glorot; 1/sqrt(n) for these square
    layers, what the book calls Xavier), "lecun" or "he".
    """
    if isinstance(init_scheme, str) and init_scheme not in HISTOGRAM_INITS:
        raise ValueError(f"init must be a std (a positive number) or one of "
                         f"{', '.join(map(repr, HISTOGRAM_INITS))}; got {init_scheme!r}")
    rng = init.as_rng(seed)
    net = MLP([width] * (n_layers + 1) + [1], activation=activation, output="identity",
              init=init_scheme, seed=rng)
    X = rng.standard_normal((check.integer("n_samples", n_samples, 1), width))
    records = diagnostics.activation_stats(net, X, bins=bins)[:n_layers]
    if activation in ("relu", "leaky_relu"):  # one range for all layers shows the spread
        span = (min(r.min for r in records), max(r.max for r in records))
        records = diagnostics.activation_stats(net, X, bins=bins, range=span)[:n_layers]
    return diagnostics.Records(records)


@dataclass
class RunResult:
    """One network of a comparison: its label, its losses, its scores, the network."""
    label: str
    losses: list
    train_score: float
    test_score: float
    net: MLP


def compare_init_circles(iterations=15_000, lr=0.01, seed=1, progress=None):
    """The course's initialisation exercise: circles (300 train, 100 test, noise 0.05),
    [2, 10, 5, 1] relu/sigmoid, full-batch gradient descent; zeros, random x10, He.

    The losses are recorded at every iteration (before its update).
    """
    X, y = datasets.make_circles(300, noise=0.05, seed=seed)
    Xt, yt = datasets.make_circles(100, noise=0.05, seed=seed + 1000)
    schemes = [("zeros", "zeros"),
               ("random x10", lambda shape, rng, dtype: rng.standard_normal(shape) * 10),
               ("he", "he")]
    results = []
    for label, scheme in schemes:
        net = MLP([2, 10, 5, 1], activation="relu", output="sigmoid", init=scheme,
                  seed=np.random.RandomState(3))
        net.fit(X, y, epochs=iterations, batch_size=None, lr=lr, shuffle=False,
                callbacks=[_reporter(progress, label, iterations)])
        results.append(RunResult(label, net.history["loss"], net.score(X, y),
                                 net.score(Xt, yt), net))
    return results, (X, y, Xt, yt)


def compare_init_spiral(iterations=2000, batch_size=128, lr=0.01, n_classes=3,
                        n_samples=1500, seed=0, progress=None):
    """The book's deep comparison on a spiral instead of MNIST: [2, 100, 100, 100, 100, k]
    ReLU/softmax, SGD, std=0.01 against LeCun ("Xavier" in the book, 1/sqrt(n)) against
    He; all three see the same random batches (drawn with replacement, as the book)."""
    X, y = datasets.make_spiral(n_samples, n_classes, noise=0.2, seed=seed)
    batches = np.random.default_rng(seed).integers(0, len(X), (iterations, batch_size))
    results = []
    for label, scheme in [("std=0.01", 0.01), ("xavier (lecun)", "lecun"), ("he", "he")]:
        net = MLP([2, 100, 100, 100, 100, n_classes], activation="relu", output="softmax",
                  init=scheme, seed=seed)
        report = _reporter(progress, label, iterations)
        for i, rows in enumerate(batches):
            net.partial_fit(X[rows], y[rows], batch_size=None, lr=lr, shuffle=False)
            report(net, i + 1, {"loss": net.history["loss"][-1]})
        results.append(RunResult(label, net.history["loss"], net.score(X, y), math.nan, net))
    return results, (X, y)


def compare_activations(epochs=100, lr=0.1, batch_size=32, seed=0, progress=None):
    """One network and data set ([2, 32, 32, 3] on a 3-class spiral, SGD) trained with
    sigmoid, tanh, relu and leaky_relu hidden layers, each with its matching init."""
    X, y = datasets.make_spiral(600, 3, noise=0.2, seed=seed)
    Xt, yt = datasets.make_spiral(300, 3, noise=0.2, seed=seed + 1000)
    results = []
    for activation in ("sigmoid", "tanh", "relu", "leaky_relu"):
        net = MLP([2, 32, 32, 3], activation=activation, output="softmax", seed=seed)
        net.fit(X, y, epochs=epochs, batch_size=batch_size, lr=lr,
                callbacks=[_reporter(progress, activation, epochs)])
        results.append(RunResult(activation, net.history["loss"], net.score(X, y),
                                 net.score(Xt, yt), net))
    return results, (X, y, Xt, yt)


def vanishing(depth=10, width=32, n_samples=500, seed=0):
    """Per-layer gradient norms of a deep sigmoid network (Xavier) against the same
    depth of ReLU (He), untrained, on the moons: {"sigmoid": records, "relu": records}."""
    X, y = datasets.make_moons(n_samples, noise=0.1, seed=seed)
    sizes = [2] + [width] * check.integer("depth", depth, 1) + [1]
    return {activation: diagnostics.gradient_norms(
                MLP(sizes, activation=activation, output="sigmoid", seed=seed), X, y)
            for activation in ("sigmoid", "relu")}


def dead_relu(lrs=(0.01, 3.0), epochs=30, seed=0, progress=None):
    """Fraction of dead ReLU units after training [2, 64, 64, 64, 3] (He, SGD) on a
    spiral with each learning rate: {lr: (dead-unit records, diverged)}. A run that
    diverges keeps its last finite weights, which are counted."""
    X, y = datasets.make_spiral(600, 3, noise=0.2, seed=seed)
    out = {}
    for lr in lrs:
        net = MLP([2, 64, 64, 64, 3], activation="relu", output="softmax", seed=seed)
        try:
            net.fit(X, y, epochs=epochs, batch_size=32, lr=lr,
                    callbacks=[_reporter(progress, f"lr={lr:g}", epochs)])
            diverged = False
        except DivergenceError:
            diverged = True
        out[lr] = (diagnostics.dead_units(net, X), diverged)
    return out


def _reporter(progress, label, total):
    """A callback that tells progress(label, done, total, loss), about 10 times a run."""
    step = max(1, total // 10)

    def callback(net, epoch, logs):
        if progress is not None and (epoch % step == 0 or epoch == total):
            progress(label, epoch, total, logs["loss"])
    return callback
