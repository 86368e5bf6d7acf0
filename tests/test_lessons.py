"""Each lesson of the texts, checked in numbers (the defaults of the `fastnn` commands)."""
import math

import numpy as np
import pytest

from fastnn import MLP, datasets, experiments


def test_std_1_sigmoid_saturates_most_activations_in_every_layer():
    records = experiments.histograms("sigmoid", 1.0)
    assert all(r.saturated > 0.5 for r in records)


def test_std_001_sigmoid_collapses_around_one_half():
    records = experiments.histograms("sigmoid", 0.01)
    assert all(abs(r.mean - 0.5) < 0.01 and r.std < 0.03 for r in records)


def test_xavier_sigmoid_keeps_a_spread_without_saturating():
    records = experiments.histograms("sigmoid", "xavier")
    assert all(r.std > 0.1 and r.saturated < 0.01 for r in records)


def test_he_keeps_relu_spread_while_std_001_shrinks_it_layer_after_layer():
    he = [r.std for r in experiments.histograms("relu", "he")]
    assert 0.5 < he[-1] / he[0] < 2
    small = [r.std for r in experiments.histograms("relu", 0.01)]
    assert all(b < 0.2 * a for a, b in zip(small, small[1:]))


#: The course's published numbers (its initialization exercise): He's cost at iterations
#: 0, 1000 and 14000, and the (train, test) accuracy of each init.
COURSE_HE_COSTS = {0: 0.8830537463419761, 1000: 0.6879825919728063,
                   14000: 0.07357895962677366}
COURSE_ACCURACIES = {"zeros": (0.5, 0.5), "random x10": (0.83, 0.86),
                     "he": (0.9933333333333333, 0.96)}


def test_compare_init_gives_the_courses_published_numbers():
    results, (X, y, X_test, y_test) = experiments.compare_init_circles()
    by_name = {r.label: r for r in results}
    assert [r.label for r in results] == ["zeros", "random x10", "he"]
    for i, cost in COURSE_HE_COSTS.items():
        assert by_name["he"].losses[i] == pytest.approx(cost, rel=1e-9), i
    for label, (train, test) in COURSE_ACCURACIES.items():
        assert by_name[label].train_score == pytest.approx(train, abs=1e-12), label
        assert by_name[label].test_score == pytest.approx(test, abs=1e-12), label
    assert by_name["zeros"].losses == pytest.approx([math.log(2)] * 15_000, rel=1e-12)
    # The course printed inf: its log(1 - sigmoid(z)) is log(0) on the outer circle.
    assert by_name["random x10"].losses[0] == pytest.approx(1773.5859549373838, rel=1e-12)
    assert len(X) == 300 and len(X_test) == 100


def test_compare_init_keeps_fastnns_circles_behind_an_option():
    results, (X, y, *_) = experiments.compare_init_circles(iterations=1, dataset="fastnn")
    np.testing.assert_array_equal(X, datasets.make_circles(300, noise=0.05, seed=1)[0])
    with pytest.raises(ValueError, match="dataset must be one of 'course', 'fastnn'"):
        experiments.compare_init_circles(dataset="mnist")
    with pytest.raises(ValueError, match="seed must be at most 4294967292"):
        experiments.compare_init_circles(seed=2**32 - 3)


@pytest.mark.parametrize("sizes,m", [([2, 10, 5, 1], 300), ([3, 1], 1), ([4, 7, 7, 3], 5)])
def test_layer_shapes_are_those_of_a_real_network(sizes, m):
    net = MLP(sizes, output="sigmoid", seed=0)
    X = np.random.default_rng(0).standard_normal((m, sizes[0]))
    y = np.zeros((m, sizes[-1]))
    shapes = experiments.layer_shapes(sizes, m)
    assert [s.layer for s in shapes] == list(range(1, len(sizes)))
    A, gradients = X, net.gradients(X, y)
    assert len(shapes) == len(net.layers) == len(gradients)
    for s, layer, (dW, db) in zip(shapes, net.layers, gradients):
        A = A @ layer.W.T + layer.b
        assert s.rows == {"W": layer.W.shape, "b": layer.b.shape, "Z": A.shape,
                          "A": A.shape, "dZ": A.shape, "dW": dW.shape, "db": db.shape}
        n_out, n_in = layer.W.shape
        assert s.columns == {"W": (n_out, n_in), "b": (n_out, 1), "Z": (n_out, m),
                             "A": (n_out, m), "dZ": (n_out, m), "dW": (n_out, n_in),
                             "db": (n_out, 1)}
        assert s.parameters == layer.W.size + layer.b.size
    assert sum(s.parameters for s in shapes) == net.engine.params.size


@pytest.mark.parametrize("sizes,m,error", [([2], 1, ValueError), ([2, 0], 1, ValueError),
                                            ([2, 1.5], 1, TypeError), ([2, 1], 0, ValueError),
                                            ([2, 1], 2.0, TypeError)])
def test_layer_shapes_refuses_bad_sizes(sizes, m, error):
    with pytest.raises(error):
        experiments.layer_shapes(sizes, m)


@pytest.mark.slow  # 4 s with one BLAS thread (it took ~76 s with two on 2 cores)
def test_deep_spiral_std_001_learns_nothing_and_he_beats_xavier():
    results, _ = experiments.compare_init_spiral()
    tail = {r.label: np.mean(r.losses[-100:]) for r in results}
    assert tail["std=0.01"] == pytest.approx(math.log(3), rel=0.01)
    assert tail["he"] < tail["xavier (lecun)"] < 0.5 * math.log(3)


def test_deep_sigmoid_gradients_vanish_and_relu_ones_do_not():
    norms = experiments.vanishing()
    sigmoid = [r.dW_norm for r in norms["sigmoid"]]
    relu = [r.dW_norm for r in norms["relu"]]
    assert sigmoid[0] / sigmoid[-1] < 1e-4  # orders of magnitude
    assert relu[0] / relu[-1] > 0.1


def test_a_too_large_learning_rate_kills_relu_units():
    small, large = experiments.dead_relu(lrs=(0.01, 3.0))
    assert small.diverged_at is None and large.diverged_at is None
    dead = [sum(r.dead for r in run.records) for run in (small, large)]
    assert dead[1] > 2 * dead[0]


@pytest.mark.parametrize("lr", [1e10, 1e300])
def test_a_diverging_run_is_reported_with_the_step_that_failed(lr):
    (run,) = experiments.dead_relu(lrs=(lr,), epochs=1)
    assert run.diverged_at == run.net.step_count + 1 > 1  # that step changed nothing
    if run.records is not None:  # the dead units of the last finite weights
        assert len(run.records) == 3 and run.records[0].dead > 0
    run.net.layers[0].W[0, 0] = np.inf  # as an update that overflowed leaves them
    assert experiments._failing_step(run.net) == run.net.step_count  # it was counted


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tanh_hidden_layers_train_further_than_sigmoid(seed):
    results, _ = experiments.compare_activations(seed=seed)
    final = {r.label: r.losses[-1] for r in results}
    assert final["tanh"] < final["sigmoid"]


E = experiments
BAD_EXPERIMENT_ARGUMENTS = [
    (lambda: E.compare_init_circles(iterations=0), ValueError, r"iterations must be at least 1"),
    (lambda: E.compare_init_circles(iterations=2.5), TypeError, r"iterations must be an integer"),
    (lambda: E.compare_init_circles(lr=0), ValueError, r"lr must be in \(0, inf\]"),
    (lambda: E.compare_init_circles(seed=None), TypeError, r"seed must be an integer; got NoneType"),
    (lambda: E.compare_init_circles(seed=-1), ValueError, r"seed must be at least 0"),
    (lambda: E.compare_init_circles(progress=5), TypeError, r"progress must be a callable .* got int 5"),
    (lambda: E.compare_init_spiral(iterations=-1), ValueError, r"iterations must be at least 0"),
    (lambda: E.compare_init_spiral(batch_size=0), ValueError, r"batch_size must be at least 1"),
    (lambda: E.compare_init_spiral(lr=-1), ValueError, r"lr must be in \(0, inf\]"),
    (lambda: E.compare_init_spiral(seed=None), TypeError, r"seed must be an integer"),
    (lambda: E.compare_init_spiral(progress="x"), TypeError, r"progress must be a callable"),
    (lambda: E.compare_activations(epochs=0), ValueError, r"epochs must be at least 1"),
    (lambda: E.compare_activations(batch_size=0), ValueError, r"batch_size must be at least 1"),
    (lambda: E.compare_activations(lr=math.inf), ValueError, r"lr must be finite"),
    (lambda: E.compare_activations(seed=None), TypeError, r"seed must be an integer"),
    (lambda: E.compare_activations(progress=5), TypeError, r"progress must be a callable"),
    (lambda: E.dead_relu(lrs=0.01), TypeError, r"lrs must be an iterable of learning rates.* float 0.01"),
    (lambda: E.dead_relu(lrs="0.01"), TypeError, r"lrs must be an iterable"),
    (lambda: E.dead_relu(lrs=()), ValueError, r"lrs must hold at least one learning rate"),
    (lambda: E.dead_relu(lrs=(0.01, -1)), ValueError, r"lrs\[1\] must be in \(0, inf\]; got -1.0"),
    (lambda: E.dead_relu(lrs=(0.01, "a")), TypeError, r"lrs\[1\] must be a real number"),
    (lambda: E.dead_relu(epochs=0), ValueError, r"epochs must be at least 1"),
    (lambda: E.dead_relu(progress=5), TypeError, r"progress must be a callable"),
    (lambda: E.vanishing(width=0), ValueError, r"width must be at least 1; got 0"),
    (lambda: E.vanishing(depth=0), ValueError, r"depth must be at least 1; got 0"),
    (lambda: E.histograms(width=0), ValueError, r"width must be at least 1; got 0"),
    (lambda: E.histograms(n_layers=0), ValueError, r"n_layers must be at least 1; got 0"),
    (lambda: E.histograms(n_samples=0), ValueError, r"n_samples must be at least 1; got 0"),
    (lambda: E.histograms(bins=0), ValueError, r"bins must be at least 1; got 0"),
    (lambda: E.histograms(init_scheme=-1), ValueError, r"init_scheme must be in \[0, inf\]"),
    (lambda: E.histograms(init_scheme="glorot"), ValueError, r"init_scheme must be a std .* 'he'; got 'glorot'"),
    (lambda: E.histograms(init_scheme=[1]), TypeError, r"init_scheme must be a std .* got list \[1\]"),
]


@pytest.mark.parametrize("call, error, pattern", BAD_EXPERIMENT_ARGUMENTS)
def test_experiments_check_their_arguments_before_any_work(monkeypatch, call, error, pattern):
    def no_network(*args, **kwargs):
        raise AssertionError("a network was built before the arguments were checked")

    monkeypatch.setattr(experiments, "MLP", no_network)
    with pytest.raises(error, match=pattern):
        call()
