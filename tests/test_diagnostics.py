"""fastnn.diagnostics against hand-made cases and plain NumPy."""
import numpy as np
import pytest

import fastnn
from fastnn import MLP, datasets, diagnostics
from helpers import Xnan

X = np.random.default_rng(0).standard_normal((50, 3))
y = (X[:, 0] > 0).astype(int)


def test_activation_stats_match_numpy_on_the_layer_outputs():
    net = MLP([3, 6, 4, 1], activation=["tanh", "relu"], seed=0)
    records = diagnostics.activation_stats(net, X, bins=10)
    assert [r.layer for r in records] == [0, 1, 2]
    assert [r.activation for r in records] == ["tanh", "relu", "sigmoid"]
    A1 = np.tanh(X @ net.layers[0].W.T + net.layers[0].b)
    assert records[0].mean == pytest.approx(A1.mean(), rel=1e-12)
    assert records[0].std == pytest.approx(A1.std(), rel=1e-12)
    assert records[0].saturated == np.mean(np.abs(A1) > 0.99)
    counts, edges = records[0].hist
    assert counts.sum() == A1.size and edges[0] == -1 and edges[-1] == 1
    A2 = np.maximum(A1 @ net.layers[1].W.T + net.layers[1].b, 0)
    assert records[1].zero == np.mean(A2 == 0) and records[1].saturated == 0
    np.testing.assert_allclose(records[2].hist[0].sum(), 50)
    assert records[2].mean == pytest.approx(net.predict_proba(X).mean(), rel=1e-12)
    table = str(records)
    assert table.splitlines()[0].split() == ["layer", "activation", "mean", "std", "min",
                                            "max", "saturated", "zero"]
    assert len(table.splitlines()) == 4


@pytest.mark.parametrize("value", [0.0, -3.0, 1e34])
def test_a_constant_layer_gets_a_histogram_around_its_value(value):
    net = MLP([1, 1, 1], activation="relu", output="identity", init="zeros", seed=0)
    net.layers[1].b[...] = value  # the output is value for every sample
    record = diagnostics.activation_stats(net, [[1.0], [2.0]], bins=1000)[1]
    counts, edges = record.hist
    assert counts.sum() == 2 and edges[0] < value < edges[-1]
    assert len(np.unique(edges)) == 1001


def test_sigmoid_saturation_counts_both_ends():
    net = MLP([1, 1, 1], activation="sigmoid", init="zeros", seed=0)
    net.layers[0].W[...] = 1.0
    Z = np.array([[-10.0], [-4.0], [0.0], [4.0], [10.0]])  # sigmoid: 4.5e-5 .. 0.99995
    assert diagnostics.activation_stats(net, Z)[0].saturated == pytest.approx(2 / 5)


def test_gradient_norms_are_the_norms_of_the_gradients():
    net = MLP([3, 5, 5, 1], seed=1)
    records = diagnostics.gradient_norms(net, X, y)
    for record, (dW, db) in zip(records, net.gradients(X, y)):
        assert record.dW_norm == pytest.approx(np.sqrt((dW ** 2).sum()), rel=1e-12)
        assert record.db_norm == pytest.approx(np.sqrt((db ** 2).sum()), rel=1e-12)


def test_dead_units_finds_the_units_that_never_fire():
    net = MLP([3, 8, 1], activation="relu", seed=2)
    net.layers[0].b[[1, 5]] = -100.0  # never positive on this data
    net.layers[0].W[[1, 5]] = 0.0
    (record,) = diagnostics.dead_units(net, X)
    assert (record.dead, record.units, record.fraction) == (2, 8, 0.25)


def test_symmetry_groups_identical_units():
    net = MLP([3, 4, 2, 1], init="zeros", seed=0)
    records = diagnostics.symmetry(net)
    assert records[0].groups == ((0, 1, 2, 3),) and records[0].distinct == 1
    net.layers[0].W[2, 0] = 1.0
    records = diagnostics.symmetry(net)
    assert records[0].groups == ((0, 1, 3),) and records[0].distinct == 2
    assert diagnostics.symmetry(MLP([3, 4, 1], seed=0))[0].groups == ()


def test_gradient_check_passes_for_backprop_and_fails_for_a_wrong_gradient(monkeypatch):
    net = MLP([3, 4, 1], activation="tanh", seed=3)
    result = diagnostics.gradient_check(net, X[:10], y[:10], weight_decay=0.1)
    assert result.passed and result.difference < 2e-7 and result.worst == ()
    assert "gradient check passed" in str(result)
    right = net.gradients

    def wrong(X, y, weight_decay=0.0):
        grads = right(X, y, weight_decay)
        grads[0][0][1, 2] += 0.5
        return grads

    monkeypatch.setattr(net, "gradients", wrong)
    result = diagnostics.gradient_check(net, X[:10], y[:10])
    assert not result.passed
    assert result.worst[0].name == "0.weight[1, 2]"
    assert result.worst[0].analytic - result.worst[0].numeric == pytest.approx(0.5, rel=1e-6)
    assert "FAILED" in str(result)


def test_gradient_check_works_on_float32_models_through_a_float64_copy():
    X, y = datasets.make_moons(20, seed=5)
    net = MLP([2, 4, 1], activation="tanh", dtype="float32", seed=5)
    assert fastnn.diagnostics.gradient_check(net, X.astype(np.float32), y).passed


@pytest.mark.parametrize("function", [diagnostics.layer_outputs,
                                      diagnostics.activation_stats,
                                      diagnostics.dead_units])
@pytest.mark.parametrize("as_list", [False, True])
def test_a_non_finite_X_is_named_X_with_its_index(function, as_list):
    net = MLP([3, 4, 1], seed=0)
    with pytest.raises(ValueError, match=r"X must be finite.* X\[4, 1\] = nan"):
        function(net, Xnan.tolist() if as_list else Xnan)


@pytest.mark.parametrize("function", [diagnostics.layer_outputs,
                                      diagnostics.activation_stats,
                                      diagnostics.dead_units])
@pytest.mark.parametrize("dtype, layer, message", [
    ("float64", 0, r"layer 0 \(relu\) overflows float64 for X\[2\]: Z\[2, "),
    ("float32", 1, r"layer 1 \(tanh\) overflows float32 for X\[2\]: Z\[2, "),
])
def test_a_layer_that_overflows_is_named(function, dtype, layer, message):
    net = MLP([3, 4, 4, 1], activation=["relu", "tanh"], init="zeros", dtype=dtype)
    X = np.zeros((4, 3), dtype)
    X[2] = 1
    for weights in (layer.W for layer in net.layers):
        weights[...] = 1.0
    net.layers[layer].W[...] = np.finfo(dtype).max
    with pytest.raises(ValueError, match=message):
        function(net, X)


@pytest.mark.parametrize("value, error, message", [
    (5, TypeError, r"range must be a pair \(lo, hi\) of real numbers or None; got int 5"),
    ((0, 1, 2), ValueError, r"range must be a pair \(lo, hi\); got 3 values"),
    ((0,), ValueError, r"range must be a pair \(lo, hi\); got 1 values"),
    (("a", 1), TypeError, r"range\[0\] must be a real number"),
    ((0, np.inf), ValueError, r"range\[1\] must be finite"),
    ((1, 1), ValueError, r"range must be \(lo, hi\) with lo < hi"),
    ((1, 1 + 2 ** -52), ValueError, r"bins=20 is too many for the range"),
])
def test_activation_stats_checks_range(value, error, message):
    with pytest.raises(error, match=message):
        diagnostics.activation_stats(MLP([3, 4, 1], seed=0), X, range=value)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("weight, rows", [
    (1.0, [[1.0], [1.0000000000000002]]),  # nearly constant: numpy has no 20 bins there
    (1.0, [[1.0], [1.0]]),
    ("max", [[1.0], [1.0]]),  # constant at the dtype's limit: widened within its range
    ("max", [[1.0], [-1.0]]),  # the mean and std do not overflow either
])
def test_a_nearly_constant_layer_gets_a_histogram(dtype, weight, rows):
    net = MLP([1, 1], output="identity", init="zeros", dtype=dtype)
    net.layers[0].W[...] = np.finfo(dtype).max if weight == "max" else weight
    (record,) = diagnostics.activation_stats(net, np.array(rows, dtype))
    counts, edges = record.hist
    assert counts.sum() == 2 and np.all(np.isfinite(edges)) and np.all(np.diff(edges) > 0)
    assert edges[0] <= record.min <= record.max <= edges[-1]
    assert np.isfinite(record.mean) and np.isfinite(record.std)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("calls", [1, 2, 3, 10])
@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_gradient_check_interrupted_leaves_the_weights_unchanged(monkeypatch, dtype,
                                                                calls, error):
    net = MLP([3, 2, 1], activation="tanh", dtype=dtype, seed=3)
    before = {k: v.copy() for k, v in net.state_dict().items()}
    loss, count = MLP.loss, [0]

    def interrupted(self, *args, **kwargs):
        count[0] += 1
        if count[0] == calls:
            raise error
        return loss(self, *args, **kwargs)

    monkeypatch.setattr(MLP, "loss", interrupted)
    with pytest.raises(error):
        diagnostics.gradient_check(net, X[:5].astype(dtype), y[:5])
    assert count[0] == calls
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)
