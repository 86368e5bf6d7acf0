"""Every value is checked in the model's dtype before anything changes: a finite
float64 that float32 cannot hold is refused by name and index, never turned into inf
inside training; outputs that overflow are refused, never returned as NaN."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fastnn import MLP, kernels
from helpers import snapshot, unchanged

RNG = np.random.default_rng(0)
X32 = RNG.standard_normal((10, 3)).astype(np.float32)
Y = RNG.standard_normal((10, 2))
BIG = Y.copy()
BIG[3, 1] = 1e300


def _fitted(dtype="float32"):
    net = MLP([3, 4, 2], activation="tanh", output="identity", dtype=dtype, seed=0)
    net.fit(X32.astype(dtype), Y, epochs=2, optimizer="adam", batch_size=4)
    return net


@pytest.mark.parametrize("call, error, pattern", [
    (lambda n: n.fit(X32, BIG, epochs=3), ValueError,
     r"y\[3, 1\] = 1e\+300 is beyond the range of float32"),
    (lambda n: n.partial_fit(X32, BIG), ValueError, r"y\[3, 1\] = 1e\+300"),
    (lambda n: n.fit(X32, Y, epochs=3, validation_data=(X32, BIG)), ValueError,
     r"validation_data\[1\]\[3, 1\] = 1e\+300"),
    (lambda n: n.score(X32, BIG), ValueError, r"y\[3, 1\] = 1e\+300"),
    (lambda n: n.loss(X32, BIG), ValueError, r"y\[3, 1\] = 1e\+300"),
    (lambda n: n.fit([[0, 0, 0]] * 2 + [[1e300, 0, 0]], Y[:3], epochs=1), ValueError,
     r"X\[2, 0\] = 1e\+300"),
    (lambda n: n.fit(X32, Y, epochs=1, sample_weight=[1.0] * 9 + [1e300]), ValueError,
     r"sample_weight\[9\] = 1e\+300"),
    (lambda n: n.fit(X32, Y, epochs=1, lr=1e300), ValueError, r"lr = 1e\+300"),
    (lambda n: n.fit(X32, Y, epochs=1, weight_decay=1e300), ValueError,
     r"weight_decay = 1e\+300"),
    (lambda n: n.fit(X32, Y, epochs=1, optimizer="adam", eps=1e-50), ValueError,
     r"eps = 1e-50 is 0 in float32"),
    (lambda n: n.gradients(X32, Y, weight_decay=1e300), ValueError,
     r"weight_decay = 1e\+300"),
    (lambda n: n.fit_lbfgs(X32, Y, weight_decay=1e300), ValueError,
     r"weight_decay = 1e\+300"),
    (lambda n: n.fit(X32.astype(np.float64), Y, epochs=1), TypeError,
     "X has dtype float64 but the model is float32"),
])
def test_float32_models_refuse_values_beyond_float32_before_any_change(call, error,
                                                                        pattern):
    net = _fitted()
    before = snapshot(net)
    state = net.rng.bit_generator.state
    with pytest.raises(error, match=pattern):
        call(net)
    assert unchanged(net, before) and net.rng.bit_generator.state == state


def test_a_float64_dataframe_follows_the_rule_of_float64_arrays():
    pandas = pytest.importorskip("pandas")
    net = _fitted()
    with pytest.raises(TypeError, match="X has dtype float64 but the model is float32"):
        net.predict(pandas.DataFrame(X32.astype(np.float64)))
    np.testing.assert_array_equal(net.predict(pandas.DataFrame(X32)), net.predict(X32))
    # a list says no precision: its floats are converted (within range)
    np.testing.assert_array_equal(net.predict(X32.tolist()), net.predict(X32))


@pytest.mark.parametrize("options, pattern", [
    (dict(bias_init=1e300), r"bias_init = 1e\+300 is beyond the range of float32"),
    (dict(negative_slope=1e300), r"negative_slope = 1e\+300"),
    (dict(init=1e300),
     r"init=1e\+300 draws weights beyond the range of float32: weights\[0, 0\] = "),
    (dict(init=lambda shape, rng, dtype: np.full(shape, 1e300)),
     r"init's weights for layer 0\[0, 0\] = 1e\+300"),
])
def test_a_float32_model_is_not_built_with_values_beyond_float32(options, pattern):
    with pytest.raises(ValueError, match=pattern):
        MLP([3, 4, 2], dtype="float32", seed=0, **options)
    MLP([3, 4, 2], dtype="float64", seed=0, **options)  # float64 holds them


@pytest.mark.parametrize("output", ["softmax", "identity", "sigmoid", "poisson"])
def test_predictions_that_overflow_are_refused_naming_the_row(output):
    net = MLP([3, 4, 2 if output != "sigmoid" else 1], activation="relu", output=output,
              seed=0)
    for layer in net.layers:  # the last layer's signs alternate: inf - inf in its sum
        signs = (-1.0) ** np.arange(layer.W.shape[1]) if layer is net.layers[-1] else 1
        layer.W = np.full(layer.W.shape, 1e200) * signs
    X = np.zeros((4, 3))
    X[2] = 1e200  # rows 0, 1 and 3 stay finite: zero in, bias out
    with pytest.raises(ValueError, match=r"output for X\[2\] is not finite"):
        net.predict_proba(X)
    assert np.isfinite(net.predict_proba(X[:2])).all()


def test_huge_unsigned_labels_are_reported_as_given():
    Z = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"Y\[2\] = 18446744073709551615"):
        kernels.softmax_cross_entropy(Z, np.array([0, 1, 2**64 - 1], np.uint64),
                                      np.empty_like(Z), np.empty_like(Z))
    net = MLP([2, 3, 3], output="softmax", seed=0)
    with pytest.raises(ValueError, match=r"y\[2\] = 9223372036854775808"):
        net.fit(Z, np.array([0, 1, 2**63], np.uint64), epochs=1)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, (6, 2), elements=st.floats(
    allow_nan=False, allow_infinity=False, width=64)))
def test_any_finite_targets_train_or_are_refused_by_index(targets):
    """Finite float64 targets for a float32 model: within float32's range they train;
    otherwise the first one beyond it is named, and the model is unchanged."""
    net = MLP([3, 4, 2], output="identity", dtype="float32", seed=0)
    before = snapshot(net)
    beyond = np.abs(targets) > np.finfo(np.float32).max
    if not beyond.any():
        try:
            net.fit(X32[:6], targets, epochs=1, lr=1e-30)
        except FloatingPointError:
            assert unchanged(net, before)  # (a loss beyond float64: diverged, untouched)
        return
    i, j = np.argwhere(beyond)[0]
    with pytest.raises(ValueError, match=rf"y\[{i}, {j}\] = "):
        net.fit(X32[:6], targets, epochs=1)
    assert unchanged(net, before)


@pytest.mark.parametrize("m", [2, 40])  # the row path and the narrow feature-major one
def test_relu_passes_a_nan_on_so_an_overflow_inside_is_refused(m):
    """inf - inf inside the network is NaN: ReLU passes it on (as NumPy's maximum
    does), so the prediction is refused rather than hidden as 0."""
    net = MLP([1, 2, 1, 1], activation="relu", output="identity", init="zeros")
    net.layers[0].W = np.array([[1e308], [1e308]])
    net.layers[1].W = np.array([[1.0, -1.0]])
    net.layers[2].W = np.array([[1.0]])
    X = np.full((m, 1), 0.5)
    X[1] = 10.0  # 1e309: inf in both units, then inf - inf
    with pytest.raises(ValueError, match=r"output for X\[1\] is not finite"):
        net.predict(X)
    from fastnn import reference
    with np.errstate(over="ignore", invalid="ignore"):  # the twin overflows as NumPy does
        assert np.isnan(reference.Engine.twin_of(net).predict(X)[1]).all()


@pytest.mark.parametrize("value", [
    3.4028234663852886e38,  # float32's largest
    3.4028235677973362e38,  # just under the rounding boundary to inf: rounds to it
    3.4028235677973366e38,  # the boundary itself (ties to even: inf)
    1e39, 1.401298464324817e-45,  # float32's smallest subnormal
    7.006492321624087e-46,  # half of it: ties to even, 0
    7.006492321624088e-46,  # just above half: the subnormal
    1e-50, 0.0, 1e-3])
@pytest.mark.parametrize("sign", [1, -1])
def test_a_float32_setting_is_refused_exactly_where_numpy_makes_it_inf_or_0(value, sign):
    """A setting's float32 check rounds as NumPy's cast does (its own float32
    rounding, without np.errstate): refused where the cast overflows, or turns a
    value that is not 0 into 0; used as the cast gives it otherwise."""
    value = sign * value
    with np.errstate(over="ignore", under="ignore"):
        held = np.float32(value)
    Z, A = np.full(2, -1, np.float32), np.empty(2, np.float32)
    if np.isinf(held):
        with pytest.raises(ValueError, match="negative_slope = .* is beyond the range of "
                                             "float32"):
            kernels.activation_forward(Z, A, "leaky_relu", negative_slope=value)
    elif held == 0 and value != 0:
        with pytest.raises(ValueError, match="negative_slope = .* is 0 in float32"):
            kernels.activation_forward(Z, A, "leaky_relu", negative_slope=value)
    else:
        kernels.activation_forward(Z, A, "leaky_relu", negative_slope=value)
        assert np.all(A == np.float32(-1) * held)
