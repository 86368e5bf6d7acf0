"""The experiments behind the classic lessons on initialisation and activations.

Each function runs one experiment and returns its numbers (records, histories, the
trained networks), or, for layer_shapes, the notes' table of matrix dimensions;
fastnn.cli prints and plots them. Everything is seeded.
"""
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Optional

import numpy as np

from fastnn import _checks as check
from fastnn import datasets, diagnostics, init
from fastnn.model import MLP, DivergenceError, inputs

__all__ = ["HISTOGRAM_GRID", "CIRCLES", "histograms", "compare_init_circles",
           "compare_init_spiral", "compare_activations", "vanishing", "dead_relu",
           "layer_shapes", "COURSE_INITS", "RunResult", "DeadReluRun", "LayerShapes"]

#: The classic grid of "Deep Learning from Scratch" (activation, init) pairs.
HISTOGRAM_GRID = [("sigmoid", 1.0), ("sigmoid", 0.01), ("sigmoid", "xavier"),
                  ("tanh", "xavier"), ("relu", 0.01), ("relu", "xavier"), ("relu", "he")]

#: init names the histograms experiment takes besides a number (a std).
HISTOGRAM_INITS = ("xavier", "lecun", "he")


def histograms(activation="sigmoid", init_scheme=1.0, n_samples=1000, width=100, n_layers=5,
               bins=30, seed=0):
    """Activation histograms of a deep random network (the book's experiment).

    n_samples standard-normal inputs go through n_layers layers of width units, no
    biases, weights N(0, std^2) or by scheme. For relu and leaky_relu every histogram
    spans the range of all the layers, so that the spread shows.

    Parameters
    ----------
    activation : str, default="sigmoid"
        Hidden activation: "identity", "sigmoid", "tanh", "relu" or "leaky_relu".
    init_scheme : float or str, default=1.0
        A std (1, 0.01, ...) or "xavier" (Glorot; 1/sqrt(n) for these square layers,
        what the book calls Xavier), "lecun" or "he".
    n_samples : int, default=1000
        Number of inputs, >= 1.
    width : int, default=100
        Units per layer, >= 1.
    n_layers : int, default=5
        Number of hidden layers, >= 1.
    bins : int, default=30
        Histogram bins, >= 1.
    seed : int, numpy.random.Generator, numpy.random.RandomState or None, default=0
        Randomness of the weights, then of the inputs.

    Returns
    -------
    records : fastnn.diagnostics.Records of ActivationStats
        The hidden layers' statistics, with histograms, first layer first.

    Raises
    ------
    TypeError
        If init_scheme is neither a number nor a string, a count is not an integer,
        or activation or seed is of the wrong type.
    ValueError
        If init_scheme is a string other than the three names or a negative number,
        activation is unknown, or a count (n_samples, width, n_layers, bins >= 1) or
        seed is out of range.
    """
    init_scheme = _histogram_init(init_scheme)
    n_samples, width = check.integer("n_samples", n_samples, 1), check.integer("width", width, 1)
    n_layers, bins = check.integer("n_layers", n_layers, 1), check.integer("bins", bins, 1)
    rng = init.as_rng(seed)
    net = MLP([width] * (n_layers + 1) + [1], activation=activation, output="identity",
              init=init_scheme, seed=rng)
    X = rng.standard_normal((n_samples, width))
    records = diagnostics.activation_stats(net, X, bins=bins)[:n_layers]
    if activation in ("relu", "leaky_relu"):  # one range for all layers shows the spread
        span = (min(r.min for r in records), max(r.max for r in records))
        records = diagnostics.activation_stats(net, X, bins=bins, range=span)[:n_layers]
    return diagnostics.Records(records)


def _histogram_init(init_scheme):
    """init_scheme checked: a std (a real number >= 0) or a name of HISTOGRAM_INITS."""
    names = ", ".join(map(repr, HISTOGRAM_INITS))
    if isinstance(init_scheme, str):
        if init_scheme not in HISTOGRAM_INITS:
            raise ValueError(f"init_scheme must be a std (a number >= 0) or one of "
                             f"{names}; got {init_scheme!r}")
        return init_scheme
    try:
        return check.real("init_scheme", init_scheme, 0)
    except TypeError:
        raise TypeError(f"init_scheme must be a std (a number >= 0) or one of {names}; "
                        f"got {type(init_scheme).__name__} {init_scheme!r}") from None


@dataclass
class RunResult:
    """One network of a comparison: its label, its losses, its scores, the network.

    Parameters
    ----------
    label : str
        What the run varies (init scheme, activation).
    losses : list of float
        The training loss per epoch or iteration (the network's history["loss"]).
    train_score : float
        Accuracy on the training data.
    test_score : float
        Accuracy on the test data; NaN when the experiment has none.
    net : fastnn.MLP
        The trained network.
    """

    label: str
    losses: list
    train_score: float
    test_score: float
    net: MLP


#: The largest seed compare_init_circles takes: RandomState(seed + 3) draws its weights.
MAX_SEED = 2**32 - 4

#: The circles compare_init_circles runs on, each called as make(n, noise=0.05, seed=s):
#: the course's (scikit-learn's make_circles, inner radius 0.8) and fastnn's own (0.5).
CIRCLES = {"course": datasets.make_sklearn_circles, "fastnn": datasets.make_circles}


#: The course's three initialisations: zeros, randn times 10, and He (randn times
#: sqrt(2 / n[l-1])).
COURSE_INITS = [("zeros", "zeros"),
                ("random x10", lambda shape, rng, dtype: rng.standard_normal(shape) * 10),
                ("he", "he")]


def compare_init_circles(iterations=15_000, lr=0.01, dataset="course", seed=0,
                         progress=None):
    """The course's initialisation exercise: zeros, random x10 and He on its circles.

    By default all is the course's: 300 training and 100 test points of scikit-learn's
    make_circles (noise 0.05) after ``np.random.seed(1)`` and ``np.random.seed(2)``;
    weights after ``np.random.seed(3)``, ``randn(n[l], n[l-1])`` times 10 (random x10)
    or sqrt(2 / n[l-1]) (He) layer by layer, zeros for zeros, biases 0; [2, 10, 5, 1]
    relu/sigmoid; full-batch gradient descent. The cost (mean cross-entropy) is kept
    at every iteration before its update: losses[0] is that of the initial weights.

    Parameters
    ----------
    iterations : int, default=15_000
        Gradient descent steps per network, >= 1.
    lr : float, default=0.01
        Learning rate, > 0.
    dataset : {"course", "fastnn"}, default="course"
        A key of CIRCLES: the course's circles or fastnn's own (inner radius 0.5).
    seed : int, default=0
        Offset of the course's seeds: the training data, the test data and the
        weights come from seeds seed + 1, seed + 2 and RandomState(seed + 3).
    progress : callable or None, default=None
        Called as progress(label, done, total, loss) about ten times per network.

    Returns
    -------
    results : list of RunResult
        "zeros", "random x10" and "he", in that order.
    data : tuple of numpy.ndarray
        (X, y, X_test, y_test).

    Raises
    ------
    TypeError
        If iterations or seed is not an integer, lr is not a real number, or
        progress is neither None nor callable.
    ValueError
        If dataset is unknown, iterations < 1, lr <= 0 or not finite, or seed is
        negative or above MAX_SEED.
    fastnn.DivergenceError
        If a network's loss stops being finite (lr too large).
    """
    if dataset not in CIRCLES:
        raise ValueError(f"dataset must be one of {', '.join(map(repr, CIRCLES))}; "
                         f"got {dataset!r}")
    iterations, lr = check.integer("iterations", iterations, 1), _lr(lr)
    seed, progress = _seed(seed, high=MAX_SEED), _progress(progress)
    (X, y), (Xt, yt) = (CIRCLES[dataset](n, noise=0.05, seed=seed + k)
                        for n, k in ((300, 1), (100, 2)))
    results = []
    for label, scheme in COURSE_INITS:
        net = MLP([2, 10, 5, 1], activation="relu", output="sigmoid", init=scheme,
                  seed=np.random.RandomState(seed + 3))
        net.fit(X, y, epochs=iterations, batch_size=None, lr=lr, shuffle=False,
                callbacks=[_reporter(progress, label, iterations)])
        results.append(RunResult(label, net.history["loss"], net.score(X, y),
                                 net.score(Xt, yt), net))
    return results, (X, y, Xt, yt)


def compare_init_spiral(iterations=2000, batch_size=128, lr=0.01, n_classes=3,
                        n_samples=1500, seed=0, progress=None):
    """The book's deep comparison of initialisations, on a spiral instead of MNIST.

    [2, 100, 100, 100, 100, k] ReLU/softmax, SGD, std=0.01 against LeCun ("Xavier" in
    the book, 1/sqrt(n)) against He; all three see the same random batches (drawn with
    replacement, as the book).

    Parameters
    ----------
    iterations : int, default=2000
        Number of SGD steps (batches), >= 0.
    batch_size : int, default=128
        Samples per batch, >= 1.
    lr : float, default=0.01
        Learning rate, > 0.
    n_classes : int, default=3
        Spiral arms, k >= 2.
    n_samples : int, default=1500
        Size of the spiral, >= 2.
    seed : int, default=0
        Seed of the data, the batches and the weights, >= 0.
    progress : callable or None, default=None
        Callback progress(label, done, total, loss), about ten times per network.

    Returns
    -------
    results : list of RunResult
        "std=0.01", "xavier (lecun)" and "he"; test_score is NaN (no test set).
    data : tuple of numpy.ndarray
        (X, y), the training data.

    Raises
    ------
    TypeError
        If a count or seed is not an integer, lr is not a real number, or progress is
        neither None nor callable.
    ValueError
        If a count (iterations >= 0, batch_size >= 1, ...), lr or seed (>= 0) is out
        of its range.
    fastnn.DivergenceError
        If a network's loss or gradient stops being finite.
    """
    iterations = check.integer("iterations", iterations, 0)
    batch_size, lr = check.integer("batch_size", batch_size, 1), _lr(lr)
    seed, progress = _seed(seed), _progress(progress)
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
    """Train one network with each hidden activation and compare.

    One network and data set ([2, 32, 32, 3] on a 3-class spiral, 600 train and 300
    test samples, SGD) trained with sigmoid, tanh, relu and leaky_relu hidden layers,
    each with its matching init.

    Parameters
    ----------
    epochs : int, default=100
        Epochs per network, >= 1.
    lr : float, default=0.1
        Learning rate, > 0.
    batch_size : int, default=32
        Mini-batch size, >= 1.
    seed : int, default=0
        Seed of the data (the test data: seed + 1000), the weights and the shuffles.
    progress : callable or None, default=None
        Receives (label, done, total, loss) about ten times per network.

    Returns
    -------
    results : list of RunResult
        One per activation, labelled with its name.
    data : tuple of numpy.ndarray
        (X, y, X_test, y_test).

    Raises
    ------
    TypeError
        If epochs, batch_size or seed is not an integer, lr is not a number, or
        progress is neither None nor callable.
    ValueError
        If epochs or batch_size < 1, lr <= 0 or not finite, or seed < 0.
    fastnn.DivergenceError
        If training diverges.
    """
    epochs, lr = check.integer("epochs", epochs, 1), _lr(lr)
    batch_size = check.integer("batch_size", batch_size, 1)
    seed, progress = _seed(seed), _progress(progress)
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
    """Per-layer gradient norms of a deep sigmoid network against a deep ReLU one.

    A sigmoid network (Xavier) against the same depth of ReLU (He), untrained, on the
    moons, with a sigmoid output.

    Parameters
    ----------
    depth : int, default=10
        Number of hidden layers, >= 1.
    width : int, default=32
        Units per hidden layer, >= 1.
    n_samples : int, default=500
        Size of the moons data set, >= 2.
    seed : int, numpy.random.Generator, numpy.random.RandomState or None, default=0
        Seed of the data and the weights.

    Returns
    -------
    norms : dict of str to fastnn.diagnostics.Records of GradientNorms
        {"sigmoid": records, "relu": records}, first layer first.

    Raises
    ------
    TypeError
        If depth, width or n_samples is not an integer, or seed is of the wrong type.
    ValueError
        If depth, width or n_samples is too small, or seed is negative.
    """
    depth, width = check.integer("depth", depth, 1), check.integer("width", width, 1)
    X, y = datasets.make_moons(n_samples, noise=0.1, seed=seed)
    sizes = [2] + [width] * depth + [1]
    return {activation: diagnostics.gradient_norms(
                MLP(sizes, activation=activation, output="sigmoid", seed=seed), X, y)
            for activation in ("sigmoid", "relu")}


@dataclass
class DeadReluRun:
    """One run of :func:`dead_relu`: its learning rate, its dead units, its divergence.

    Parameters
    ----------
    lr : float
        The learning rate.
    records : fastnn.diagnostics.Records of DeadUnits or None
        The dead units per hidden layer of the final weights (when the run diverged,
        of the weights it kept: the last finite ones, from before the failing step);
        None when no unit can be counted: those weights overflow float64 on the data,
        or an update overflowed and left them infinite.
    diverged_at : int or None
        The SGD step (1 for the first) whose loss or gradient stopped being finite;
        None when every epoch ran.
    net : fastnn.MLP
        The trained network.
    """

    lr: float
    records: Optional[diagnostics.Records]
    diverged_at: Optional[int]
    net: MLP


def dead_relu(lrs=(0.01, 3.0), epochs=30, seed=0, progress=None):
    """Dead ReLU units after training with each learning rate.

    [2, 64, 64, 64, 3] (He, SGD, batch 32) is trained on a 600-sample spiral. A run
    that diverges is a result, not an error: it keeps its last finite weights, whose
    dead units are counted.

    Parameters
    ----------
    lrs : iterable of float, default=(0.01, 3.0)
        The learning rates, each > 0; at least one.
    epochs : int, default=30
        Epochs per run, >= 1.
    seed : int, numpy.random.Generator, numpy.random.RandomState or None, default=0
        Seed of the data, the weights and the shuffles.
    progress : callable or None, default=None
        A callable (label, done, total, loss) -> None, called about ten times per run.

    Returns
    -------
    runs : list of DeadReluRun
        One per learning rate, in the order of lrs.

    Raises
    ------
    TypeError
        If lrs is not an iterable, epochs is not an integer, a learning rate is not a
        number, seed is of the wrong type, or progress is neither None nor callable.
    ValueError
        If lrs is empty, epochs < 1, a learning rate (named lrs[i]) is not > 0 and
        finite, or seed is negative.
    """
    lrs, epochs = _learning_rates(lrs), check.integer("epochs", epochs, 1)
    progress = _progress(progress)
    X, y = datasets.make_spiral(600, 3, noise=0.2, seed=seed)
    runs = []
    for lr in lrs:
        net = MLP([2, 64, 64, 64, 3], activation="relu", output="softmax", seed=seed)
        try:
            net.fit(X, y, epochs=epochs, batch_size=32, lr=lr,
                    callbacks=[_reporter(progress, f"lr={lr:g}", epochs)])
            diverged_at = None
        except DivergenceError:
            diverged_at = _failing_step(net)
        runs.append(DeadReluRun(lr, _countable_dead_units(net, X), diverged_at, net))
    return runs


@dataclass
class LayerShapes:
    """The shapes of one dense layer's arrays, in the notes' columns and fastnn's rows.

    Parameters
    ----------
    layer : int
        The layer's number l, 1 for the first.
    columns : dict of str to tuple of int
        "W", "b", "Z", "A", "dZ", "dW" and "db" in the notes' convention, one column
        per sample: W[l] (n[l], n[l-1]), b[l] (n[l], 1), Z[l], A[l], dZ[l] (n[l], m).
    rows : dict of str to tuple of int
        The same arrays in fastnn's convention, one row per sample: W (n_out, n_in),
        b (n_out,), Z, A, dZ (m, n_out).
    parameters : int
        The layer's weights and biases, n[l] n[l-1] + n[l].
    """

    layer: int
    columns: dict
    rows: dict
    parameters: int


def layer_shapes(layer_sizes, m=300):
    """The notes' "check the matrix dimensions": every array of every layer.

    Parameters
    ----------
    layer_sizes : sequence of int
        The widths n[0], ..., n[L], input first, as MLP takes them (at least two).
    m : int, default=300
        The number of samples, >= 1.

    Returns
    -------
    shapes : list of LayerShapes
        One per layer, layer 1 first. dW and db have the shapes of W and b; Z, A and
        dZ share theirs.

    Raises
    ------
    TypeError
        If layer_sizes is not a sequence of integers or m is not an integer.
    ValueError
        If fewer than two widths are given, a width is below 1, or m is below 1.
    """
    sizes, m = inputs.layer_sizes(layer_sizes), check.integer("m", m, 1)
    shapes = []
    for layer, (n_in, n_out) in enumerate(zip(sizes, sizes[1:]), 1):
        W, b, Z = (n_out, n_in), (n_out, 1), (n_out, m)
        columns = {"W": W, "b": b, "Z": Z, "A": Z, "dZ": Z, "dW": W, "db": b}
        rows = {"W": W, "b": (n_out,), "Z": (m, n_out), "A": (m, n_out),
                "dZ": (m, n_out), "dW": W, "db": (n_out,)}
        shapes.append(LayerShapes(layer, columns, rows, n_out * n_in + n_out))
    return shapes


def _failing_step(net):
    """The step at which a fresh net's fit raised DivergenceError. net.step_count
    counts it only if its update was made, which happens when the update overflowed
    the weights; otherwise they are the finite ones from before that step."""
    finite = all(np.isfinite(layer.W).all() and np.isfinite(layer.b).all()
                 for layer in net.layers)
    return net.step_count + 1 if finite else net.step_count


def _countable_dead_units(net, X):
    """diagnostics.dead_units(net, X), or None when net's weights are not finite or
    overflow float64 on X (X itself is finite, so that is the only ValueError left)."""
    try:
        return diagnostics.dead_units(net, X)
    except ValueError:
        return None


def _lr(lr):
    """A learning rate: a finite real number > 0."""
    return check.real("lr", lr, 0, low_open=True)


def _learning_rates(lrs):
    """lrs as a non-empty list of learning rates, each checked as lrs[i]."""
    if isinstance(lrs, (str, bytes)) or not isinstance(lrs, Iterable):
        raise TypeError(f"lrs must be an iterable of learning rates (numbers > 0); got "
                        f"{type(lrs).__name__} {lrs!r}")
    lrs = [check.real(f"lrs[{i}]", lr, 0, low_open=True) for i, lr in enumerate(lrs)]
    if not lrs:
        raise ValueError("lrs must hold at least one learning rate; got none")
    return lrs


def _seed(seed, high=None):
    """An int seed >= 0 and, when high is given, at most high (the weights come from
    RandomState(seed + 3), which takes seeds below 2**32)."""
    seed = check.integer("seed", seed, 0)
    if high is not None and seed > high:
        raise ValueError(f"seed must be at most {high} (the weights come from "
                         f"RandomState(seed + 3), below 2**32); got {seed}")
    return seed


def _progress(progress):
    """progress as it is if it is None or callable; TypeError otherwise."""
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable (label, done, total, loss) or "
                        f"None; got {type(progress).__name__} {progress!r}")
    return progress


def _reporter(progress, label, total):
    """A callback that tells progress(label, done, total, loss), about 10 times a run."""
    step = max(1, total // 10)

    def callback(net, epoch, logs):
        if progress is not None and (epoch % step == 0 or epoch == total):
            progress(label, epoch, total, logs["loss"])
    return callback
