"""fastnn.init: every scheme's formula, measured on large draws; gains; bad input."""
import math

import numpy as np
import pytest

from fastnn import MLP, gain, init

N_OUT, N_IN = 300, 500


@pytest.mark.parametrize("scheme,std", [
    (init.normal, 0.01),
    (lambda s, r, d: init.normal(s, r, d, std=0.3), 0.3),
    (init.xavier_normal, math.sqrt(2 / (N_IN + N_OUT))),
    (lambda s, r, d: init.xavier_normal(s, r, d, gain=5 / 3), 5 / 3 * math.sqrt(2 / (N_IN + N_OUT))),
    (init.xavier_uniform, math.sqrt(2 / (N_IN + N_OUT))),
    (init.lecun_normal, math.sqrt(1 / N_IN)),
    (init.lecun_uniform, math.sqrt(1 / N_IN)),
    (init.he_normal, math.sqrt(2 / N_IN)),
    (init.he_uniform, math.sqrt(2 / N_IN)),
    (lambda s, r, d: init.he_normal(s, r, d, mode="fan_out"), math.sqrt(2 / N_OUT)),
    (lambda s, r, d: init.he_normal(s, r, d, negative_slope=0.2), math.sqrt(2 / (1.04 * N_IN))),
    (lambda s, r, d: init.uniform(s, r, d, limit=0.3), 0.3 / math.sqrt(3)),
])
def test_scheme_has_its_formula_variance(scheme, std):
    W = scheme((N_OUT, N_IN), np.random.default_rng(0), np.float64)
    assert W.shape == (N_OUT, N_IN) and W.dtype == np.float64
    assert abs(W.mean()) < 4 * std / math.sqrt(W.size)
    assert W.std() == pytest.approx(std, rel=0.01)


def test_uniform_schemes_stay_within_their_limit():
    W = init.xavier_uniform((N_OUT, N_IN), 0, np.float32)
    limit = math.sqrt(6 / (N_IN + N_OUT))
    assert W.dtype == np.float32 and np.abs(W).max() <= limit and np.abs(W).max() > 0.99 * limit


@pytest.mark.parametrize("shape", [(20, 50), (50, 20), (30, 30)])
def test_orthogonal_rows_or_columns_are_orthonormal(shape):
    W = init.orthogonal(shape, 0, gain=2.0)
    small = min(shape)
    gram = W @ W.T if shape[0] <= shape[1] else W.T @ W
    np.testing.assert_allclose(gram, 4.0 * np.eye(small), atol=1e-12)


def test_zeros_and_constant():
    assert not init.zeros((3, 4)).any()
    assert (init.constant((3, 4), value=0.5) == 0.5).all()


def test_gains_are_pytorchs():
    # torch.nn.init.calculate_gain: sigmoid 1, tanh 5/3, relu sqrt(2),
    # leaky_relu(0.2) 1.3867504905630728, linear 1.
    assert gain("sigmoid") == 1 and gain("identity") == 1
    assert gain("tanh") == 5 / 3
    assert gain("relu") == math.sqrt(2)
    assert gain("leaky_relu", 0.2) == pytest.approx(1.3867504905630728, rel=1e-15)
    assert gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 1e-4)), rel=1e-15)


def test_seeds_of_every_kind_reproduce():
    a = init.he_normal((5, 4), 3)
    b = init.he_normal((5, 4), np.random.default_rng(3))
    assert np.array_equal(a, b)
    rs = init.he_normal((5, 4), np.random.RandomState(3))
    np.random.seed(3)
    assert np.array_equal(rs, np.random.randn(5, 4) * math.sqrt(2 / 4))


def test_leaky_relu_layers_get_he_with_their_slope():
    net = MLP([400, 400, 1], activation="leaky_relu", negative_slope=0.5, seed=0)
    assert net.layers[0].W.std() == pytest.approx(math.sqrt(2 / (1.25 * 400)), rel=0.02)


@pytest.mark.parametrize("call,error,pattern", [
    (lambda: init.normal((3, 4), std=-1), ValueError, r"std must be in \[0, inf\]"),
    (lambda: init.he_normal((3, 4), mode="fan_avg"), ValueError, r"mode must be 'fan_in' or 'fan_out'"),
    (lambda: init.xavier_normal((3,)), ValueError, r"shape must be \(n_out, n_in\)"),
    (lambda: init.normal((3, 4), rng="seed"), TypeError, r"seed must be None, an int"),
    (lambda: init.normal((3, 4), rng=-2), ValueError, r"seed must be a non-negative"),
    (lambda: init.normal((3, 4), dtype=np.int32), TypeError, r"dtype must be float32 or float64"),
    (lambda: MLP([2, 3, 1], init="glorot"), ValueError, r"init must be one of 'auto', 'zeros'"),
    (lambda: MLP([2, 3, 1], init=[1]), TypeError, r"init must be 'auto', a scheme name"),
    (lambda: MLP([2, 3, 1], init=lambda s, r, d: np.ones((1, 1))), ValueError, r"init returned float64 of shape \(1, 1\) for layer 0"),
    (lambda: MLP([2, 3, 1], init=lambda s, r, d: np.full(s, np.nan)), ValueError, r"init returned non-finite"),
])
def test_bad_init_arguments(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


@pytest.mark.parametrize("call, pattern", [
    (lambda: init.normal((100, 100), std=1e308),
     r"std=1e\+308 draws weights beyond the range of float64: weights\[\d+, \d+\] = -?inf"),
    (lambda: init.normal((3, 4), dtype=np.float32, std=1e300),
     r"std=1e\+300 draws weights beyond the range of float32: weights\[0, 0\]"),
    (lambda: init.constant((3, 4), dtype=np.float32, value=1e300),
     r"value=1e\+300 draws weights beyond the range of float32: weights\[0, 0\] = 1e\+300"),
    (lambda: init.constant((3, 4), dtype=np.float32, value=-1e39),
     r"value=-1e\+39 draws weights beyond the range of float32"),
    (lambda: init.orthogonal((3, 4), dtype=np.float32, gain=1e300),
     r"gain=1e\+300 draws weights beyond the range of float32: weights\[0, 0\]"),
    (lambda: init.uniform((3, 4), limit=1e308),
     r"limit=1e\+308 makes the interval \[-1e\+308, 1e\+308\) of the uniform draw wider"),
    (lambda: init.uniform((3, 4), dtype=np.float32, limit=1e300),
     r"limit=1e\+300 draws weights beyond the range of float32: weights\[0, 0\]"),
    (lambda: init.xavier_normal((3, 4), dtype=np.float32, gain=1e300),
     r"gain=1e\+300 draws weights beyond the range of float32"),
    (lambda: init.xavier_uniform((3, 4), gain=1e308), r"gain=1e\+308 makes the interval"),
    (lambda: init.xavier_uniform((3, 4), dtype=np.float32, gain=1e300),
     r"gain=1e\+300 draws weights beyond the range of float32"),
    (lambda: MLP([3, 4, 1], dtype="float32", init=1e300),
     r"init=1e\+300 draws weights beyond the range of float32: weights\[0, 0\] = "),
    (lambda: MLP([100, 100, 1], init=1e308), r"init=1e\+308 draws weights beyond the range "
                                         r"of float64: weights\["),
])
def test_draws_beyond_the_dtype_are_refused_naming_the_parameter(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


@pytest.mark.parametrize("call", [
    lambda: init.constant((3, 4), dtype=np.float32, value=3e38),
    lambda: init.normal((3, 4), dtype=np.float32, std=1e37),
    lambda: init.uniform((3, 4), limit=8e307),
    lambda: init.orthogonal((3, 4), gain=1e300),
])
def test_large_draws_within_the_dtype_are_kept(call):
    assert np.isfinite(call()).all()
