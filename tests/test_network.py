"""MLP as a network: construction and initialisation, predict / predict_proba / score /
loss / gradients (against finite differences, finite at huge logits), the layers'
arrays, and the bad arguments they refuse."""
import math

import numpy as np
import pytest

from fastnn import ACTIVATIONS, MLP, datasets
from helpers import OUTPUT_WIDTH, X, Xnan, snapshot, toy_problem, unchanged, y


def numeric_gradients(net, X, y, weight_decay, numeric_gradient):
    """Central differences of loss + 0.5 wd sum ||W||^2, parameter by parameter."""
    def objective():
        penalty = sum(float(np.sum(layer.W ** 2)) for layer in net.layers)
        return net.loss(X, y) + 0.5 * weight_decay * penalty

    return [(numeric_gradient(objective, layer.W), numeric_gradient(objective, layer.b))
            for layer in net.layers]


def flat(grads):
    return np.concatenate([np.concatenate([dW.ravel(), db]) for dW, db in grads])


@pytest.mark.parametrize("output", OUTPUT_WIDTH)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_whole_network_gradient_check(activation, output, weight_decay, numeric_gradient):
    X, y = toy_problem(output)
    net = MLP([3, 5, 4, OUTPUT_WIDTH[output]], activation=activation, output=output,
              init="xavier", negative_slope=0.1, seed=1, bias_init=0.1)
    analytic = flat(net.gradients(X, y, weight_decay=weight_decay))
    numeric = flat(numeric_gradients(net, X, y, weight_decay, numeric_gradient))
    difference = np.linalg.norm(analytic - numeric) / (
        np.linalg.norm(analytic) + np.linalg.norm(numeric))
    assert difference < 2e-7  # the course's threshold


# ---------------------------------------------------------------- initialisation

def test_he_init_with_a_randomstate_reproduces_the_course_bit_for_bit():
    # The course's initialize_parameters_he([2, 4, 1]) after np.random.seed(3).
    net = MLP([2, 4, 1], init="he", seed=np.random.RandomState(3))
    np.testing.assert_allclose(net.layers[0].W, [[1.78862847, 0.43650985],
                                                 [0.09649747, -1.8634927],
                                                 [-0.2773882, -0.35475898],
                                                 [-0.08274148, -0.62700068]], atol=5e-9)
    np.testing.assert_allclose(net.layers[1].W, [[-0.03098412, -0.33744411,
                                                  -0.92904268, 0.62552248]], atol=5e-9)
    np.random.seed(3)
    W1 = np.random.randn(4, 2) * np.sqrt(2.0 / 2)
    W2 = np.random.randn(1, 4) * np.sqrt(2.0 / 4)
    assert np.array_equal(net.layers[0].W, W1) and np.array_equal(net.layers[1].W, W2)
    assert not net.layers[0].b.any() and not net.layers[1].b.any()


def test_random_times_ten_init_reproduces_the_course():
    # initialize_parameters_random([3, 2, 1]): np.random.seed(3); randn(2, 3) * 10.
    net = MLP([3, 2, 1], init=lambda shape, rng, dtype: rng.standard_normal(shape) * 10,
              seed=np.random.RandomState(3))
    np.testing.assert_allclose(net.layers[0].W, [[17.88628473, 4.36509851, 0.96497468],
                                                 [-18.63492703, -2.77388203, -3.54758979]],
                               atol=5e-8)


def test_auto_init_is_he_for_relu_and_xavier_for_the_rest():
    rng = np.random.default_rng(0)
    wide = 400
    relu = MLP([wide, wide, 1], activation="relu", seed=1)
    tanh = MLP([wide, wide, 1], activation="tanh", seed=1)
    assert relu.layers[0].W.std() == pytest.approx(math.sqrt(2 / wide), rel=0.02)
    assert tanh.layers[0].W.std() == pytest.approx(math.sqrt(2 / (2 * wide)), rel=0.02)
    # A number is the std of a normal.
    assert MLP([wide, wide, 1], init=0.01, seed=rng).layers[0].W.std() == pytest.approx(
        0.01, rel=0.02)


# ---------------------------------------------------------------- outputs and layers

def test_outputs_shapes_and_scores():
    X, y = datasets.make_spiral(150, 3, seed=1)
    soft = MLP([2, 16, 3], output="softmax", seed=0)
    proba = soft.predict_proba(X)
    assert proba.shape == (150, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-12)
    assert soft.predict(X).shape == (150,)
    assert soft.score(X, y) == np.mean(proba.argmax(axis=1) == y)
    assert soft.loss(X, y) == pytest.approx(soft.loss(X, np.eye(3)[y]), rel=1e-14)

    binary = MLP([2, 8, 1], seed=0)
    assert binary.predict_proba(X).shape == (150,)
    yb = (y == 1).astype(int)
    assert binary.loss(X, yb) == binary.loss(X, yb.reshape(-1, 1))

    reg = MLP([2, 8, 2], output="identity", seed=0)
    Y = np.c_[X.sum(axis=1), X[:, 0] - X[:, 1]]
    reg.fit(X, Y, epochs=200, lr=0.05)
    pred = reg.predict(X)
    assert pred.shape == (150, 2)
    r2 = 1 - ((Y - pred) ** 2).sum(axis=0) / ((Y - Y.mean(axis=0)) ** 2).sum(axis=0)
    assert reg.score(X, Y) == pytest.approx(r2.mean(), rel=1e-12)
    assert reg.score(X, Y) > 0.95
    assert reg.loss(X, Y) == pytest.approx(np.mean((pred - Y) ** 2), rel=1e-12)


def test_layer_arrays_are_the_model_own():
    net = MLP([3, 4, 1], seed=0)
    X = np.ones((2, 3))
    before = net.predict_proba(X)
    net.layers[1].b[...] = 5.0
    assert (net.predict_proba(X) > before).all()
    net.layers[0].W = np.zeros((4, 3))
    assert not net.layers[0].W.any()
    with pytest.raises(ValueError, match=r"W must have shape W.shape = \(4, 3\)"):
        net.layers[0].W = np.zeros((3, 4))


# ---------------------------------------------------------------- extreme values

@pytest.mark.parametrize("output,scale", [("sigmoid", 1e300), ("softmax", 1e300),
                                          ("identity", 1e100)])
def test_huge_finite_logits_give_finite_losses_and_gradients(output, scale):
    X = np.array([[1.0], [-1.0], [0.5]])
    k = 3 if output == "softmax" else 1
    net = MLP([1, k], output=output, init="zeros", seed=0)
    net.layers[0].W[...] = scale * np.arange(1, k + 1).reshape(k, 1)
    y = np.array([0, 1, 2])[: len(X)] if output == "softmax" else np.array([1.0, 0.0, 1.0])
    assert np.isfinite(net.loss(X, y))
    assert all(np.isfinite(dW).all() and np.isfinite(db).all()
               for dW, db in net.gradients(X, y))


def test_gradients_are_computed_even_when_the_loss_overflows():
    net = MLP([2, 3, 1], output="identity", seed=0)
    net.layers[0].W = np.full((3, 2), 1e200)
    X, y = np.ones((4, 2)), np.zeros(4)
    assert net.loss(X, y) == np.inf
    first = net.gradients(X, y)
    again = net.gradients(X, y)
    for (dW1, db1), (dW2, db2) in zip(first, again):  # computed, not leftover memory
        assert np.array_equal(dW1, dW2, equal_nan=True) and np.array_equal(db1, db2, equal_nan=True)


# ---------------------------------------------------------------- bad arguments

CONSTRUCTOR_CASES = [
    (dict(layer_sizes=[3]), ValueError, r"layer_sizes needs at least the input and output"),
    (dict(layer_sizes=[3, 0, 1]), ValueError, r"layer_sizes\[1\] must be at least 1; got 0"),
    (dict(layer_sizes=[3, 2.5, 1]), TypeError, r"layer_sizes\[1\] must be an integer"),
    (dict(layer_sizes="3,4,1"), TypeError, r"layer_sizes must be a list of integers"),
    (dict(activation="softmax"), ValueError, r"activation must be one of 'identity', 'sigmoid', 'tanh', 'relu', 'leaky_relu'; got 'softmax'"),
    (dict(activation=["relu"]), ValueError, r"activation lists one name per hidden layer \(2\); got 1"),
    (dict(output="tanh"), ValueError, r"output must be one of 'sigmoid', 'softmax', 'identity'"),
    (dict(output="softmax"), ValueError, r"a softmax output needs at least 2 units"),
    (dict(dtype="float16"), TypeError, r"dtype must be float32 or float64; got 'float16'"),
    (dict(negative_slope=float("inf")), ValueError, r"negative_slope must be finite"),
    (dict(seed="x"), TypeError, r"seed must be None, an int"),
]


@pytest.mark.parametrize("change,error,pattern", CONSTRUCTOR_CASES)
def test_constructor_rejects(change, error, pattern):
    kwargs = dict(layer_sizes=[3, 4, 2, 1])
    kwargs.update(change)
    with pytest.raises(error, match=pattern):
        MLP(**kwargs)


SOFTMAX_CASES = [
    (np.array([0, 1, 2, 3] * 2 + [0, 1]), ValueError, r"y must be class labels in \[0, 3\) for a softmax of 3 units; y\[3\] = 3"),
    (np.arange(10) % 3 + 0.5, ValueError, r"y must hold integer class labels"),
    # float labels that are integers but out of range are reported as such, with their value
    (np.where(np.arange(10) == 3, 1e20, np.arange(10) % 3), ValueError, r"y must be class labels in \[0, 3\) for a softmax of 3 units; y\[3\] = 1e\+20"),
    (np.where(np.arange(10) == 3, -1e300, np.arange(10) % 3), ValueError, r"y\[3\] = -1e\+300"),
    (np.where(np.arange(10) == 3, 3.0, np.arange(10) % 3), ValueError, r"y\[3\] = 3.0"),
    (np.where(np.arange(10) == 3, 2**64 - 1, np.arange(10) % 3).astype(np.uint64), ValueError, r"y\[3\] = 18446744073709551615"),
    (np.eye(4)[np.arange(10) % 4], ValueError, r"y must be labels \(m,\) or one-hot rows \(m, 3\); got shape \(10, 4\)"),
    (np.full((10, 3), 0.5), ValueError, r"y's rows must be probabilities"),
]


@pytest.mark.parametrize("labels,error,pattern", SOFTMAX_CASES)
def test_softmax_labels_are_checked(labels, error, pattern):
    net = MLP([3, 4, 3], output="softmax", seed=0)
    before = snapshot(net)
    with pytest.raises(error, match=pattern):
        net.fit(X, labels, epochs=1)
    with pytest.raises(error, match=pattern):
        net.loss(X, labels)
    assert unchanged(net, before)


def test_prediction_inputs_are_checked_in_compiled_code_too():
    net = MLP([3, 4, 1], seed=0)
    with pytest.raises(ValueError, match=r"X must be finite: 2 values are NaN or infinite, "
                                         r"the first is X\[4, 1\] = nan"):
        net.predict(Xnan)
    assert net.predict(X.astype(int)).shape == (10,)        # integers are converted
    assert net.predict(np.asfortranarray(X)).shape == (10,)  # so is memory order
    assert net.predict(X.tolist()).shape == (10,)
    with pytest.raises(TypeError, match=r"weight_decay must be a real number"):
        net.gradients(X, y, weight_decay="a lot")
