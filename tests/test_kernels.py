"""fastnn.kernels against its NumPy twin, and both against finite differences."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastnn import ACTIVATIONS, kernels, reference

DTYPES = [np.float64, np.float32]
SIZES = st.integers(1, 300)
SEEDS = st.integers(0, 2**32 - 1)
EXAMPLES = settings(max_examples=20, deadline=None)


def normal(rng, shape, dtype, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def empties(dtype, *shapes):
    return [np.full(shape, np.nan, dtype) for shape in shapes]


# ---------------------------------------------------------------- against the twin

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@EXAMPLES
@given(m=SIZES, n=SIZES, seed=SEEDS)
def test_activation_forward_and_derivative_match_twin(activation, dtype, m, n, seed,
                                                      assert_close):
    rng = np.random.default_rng(seed)
    Z = normal(rng, (m, n), dtype, 3.0)
    A_k, A_r, d_k, d_r = empties(dtype, *[(m, n)] * 4)
    kernels.activation_forward(Z, A_k, activation, 0.05)
    reference.activation_forward(Z, A_r, activation, 0.05)
    assert_close(A_k, A_r, dtype)
    kernels.activation_derivative(Z, A_r, d_k, activation, 0.05)
    reference.activation_derivative(Z, A_r, d_r, activation, 0.05)
    a = np.abs(A_r.astype(np.float64))  # where 1 - a^2 and a (1 - a) cancel, the
    magnitude = {"tanh": 1 + a * a, "sigmoid": a * (1 + a)}  # computation's own size
    assert_close(d_k, d_r, dtype, magnitude.get(activation))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@EXAMPLES
@given(m=SIZES, n_in=SIZES, n_out=SIZES, seed=SEEDS, first_layer=st.booleans())
def test_dense_forward_and_backward_match_twin(activation, dtype, m, n_in, n_out, seed,
                                               first_layer, assert_close):
    check_dense_against_twin(activation, dtype, m, n_in, n_out, seed, first_layer,
                             assert_close)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n_in,n_out", [(1, 1, 1), (1, 5, 3), (4, 1, 3), (4, 5, 1),
                                          (1, 5, 1), (1, 1, 4), (3, 1, 1)])
def test_dense_layer_with_unit_dimensions_matches_twin(m, n_in, n_out, dtype, assert_close):
    # One row or one column turns the GEMMs into GEMVs: every such case, both directions.
    for first_layer in (False, True):
        check_dense_against_twin("tanh", dtype, m, n_in, n_out, 5, first_layer, assert_close)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n_in,n_out", [(8, 129, 130), (13, 300, 37), (31, 17, 257),
                                          (97, 65, 23), (64, 256, 256), (200, 100, 64)])
def test_dense_layers_of_fastnns_own_product_match_twin(m, n_in, n_out, dtype,
                                                        assert_close):
    """Where the AVX-512 build has it, fastnn's own product (_gemm_kernels.h) takes
    every product of these layers (more than 2^17 multiply-adds, 8 rows or more):
    the forward from W^T, dW from dZ^T, dA_prev from W. The shapes cover its edges:
    rows past whole tiles of 6, columns past whole blocks (32 doubles, 64 floats) and
    within a vector, and k past a block of 128 rows of B (k = 129, 130, 257, 300)."""
    for first_layer in (False, True):
        check_dense_against_twin("relu", dtype, m, n_in, n_out, 6, first_layer,
                                 assert_close)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_in", [100, 300])
def test_dense_layers_past_own_products_c_limit_match_twin(n_in, dtype, assert_close):
    """Where C (m, n) of a product passes 2 MB (730 x 730 in float32 and float64) and
    k takes more than one block of B's rows (n_in = 300), BLAS takes the forward
    instead of fastnn's own product (_own_gemm); with one block (n_in = 100) the own
    product keeps it. Both sides of that switch, and the smaller dW and dA_prev, match
    the twin."""
    for first_layer in (False, True):
        check_dense_against_twin("relu", dtype, 730, n_in, 730, 9, first_layer,
                                 assert_close)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_in,n_out", [(17, 17), (64, 64), (100, 250), (300, 23),
                                        (784, 100)])
def test_one_row_through_a_gemm_layer_matches_twin(n_in, n_out, dtype, assert_close):
    """Where the AVX-512 build has it, fastnn's matrix-vector product (fnn_gemv) takes
    the forward of a single row: W's rows past whole vectors of them (8 doubles, 16
    floats) and within one, n_in past whole vectors (100, 300, 784) and within one;
    identity, relu and leaky_relu applied in the product, sigmoid and tanh after it."""
    for activation in ACTIVATIONS:
        for first_layer in (False, True):
            check_dense_against_twin(activation, dtype, 1, n_in, n_out, 8, first_layer,
                                     assert_close)


@pytest.mark.parametrize("dtype", DTYPES)
def test_weight_gradient_over_many_rows_stays_accurate(dtype, assert_close):
    """dW sums over every row of the batch: here 100,000 rows of positive values (no
    cancellation to hide rounding) against the sums in float64. fastnn's own product
    sums each block of 128 rows apart, so that its error grows with the block, not
    with the batch (one chain over all rows was off by 1.8e-5 in float32)."""
    rng = np.random.default_rng(7)
    m, n = 100_000, 32
    A_prev, dA, W = (rng.random(shape).astype(dtype) for shape in [(m, n), (m, n), (n, n)])
    dZ, dW, db = empties(dtype, (m, n), (n, n), n)
    Z = np.zeros((m, n), dtype)
    kernels.dense_backward(dA, Z, Z, A_prev, W, dZ, dW, db, None, "identity", 0.0)
    truth = dA.astype(np.float64).T @ A_prev.astype(np.float64)
    assert_close(dW, truth.astype(dtype), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [1, 5])
def test_forward_into_z_itself_matches_twin(m, dtype, assert_close):
    """dense_forward with A the same array as Z (which its docstring allows): A = g(Z)
    written over Z, for every activation, on the one-row path (fnn_gemv, which applies
    relu and leaky_relu as it stores) and on a batch's."""
    rng = np.random.default_rng(3)
    A_prev, W = normal(rng, (m, 64), dtype), normal(rng, (64, 64), dtype, 64 ** -0.5)
    b = normal(rng, 64, dtype)
    for activation in ACTIVATIONS:
        Z, A = empties(dtype, (m, 64), (m, 64))
        reference.dense_forward(A_prev, W, b, Z, A, activation, 0.2)
        (ZA,) = empties(dtype, (m, 64))
        kernels.dense_forward(A_prev, W, b, ZA, ZA, activation, 0.2)
        assert_close(ZA, A, dtype, np.abs(A_prev) @ np.abs(W).T + np.abs(b))


def check_dense_against_twin(activation, dtype, m, n_in, n_out, seed, first_layer,
                             assert_close):
    rng = np.random.default_rng(seed)
    A_prev, W = normal(rng, (m, n_in), dtype), normal(rng, (n_out, n_in), dtype, n_in ** -0.5)
    b, dA = normal(rng, n_out, dtype), normal(rng, (m, n_out), dtype)
    outputs = {}
    for impl in (reference, kernels):
        Z, A, dZ, dW, db, dA_prev = empties(dtype, (m, n_out), (m, n_out), (m, n_out),
                                            (n_out, n_in), n_out, (m, n_in))
        impl.dense_forward(A_prev, W, b, Z, A, activation, 0.2)
        # Both backward passes read the twin's cache: a Z within rounding of relu's
        # kink (3.7e-8 against -8.9e-8 in float32) would flip its derivative.
        cache = outputs[reference][:2] if impl is kernels else (Z, A)
        impl.dense_backward(dA, *cache, A_prev, W, dZ, dW, db,
                            None if first_layer else dA_prev, activation, 0.2)
        outputs[impl] = (Z, A, dZ, dW, db, dA_prev)
        if first_layer:
            assert np.isnan(dA_prev).all(), "dA_prev=None must skip the product"
    # Magnitudes of each computation (|g'| <= 1 and |g''| <= 1 here), for the sums
    # that may cancel; see assert_close.
    mag_Z = np.abs(A_prev) @ np.abs(W).T + np.abs(b)
    mag_dZ = np.abs(dA) * (1 + mag_Z)
    magnitudes = (mag_Z, mag_Z + np.abs(outputs[reference][1]), mag_dZ, mag_dZ.T @ np.abs(A_prev), mag_dZ.sum(axis=0),
                  mag_dZ @ np.abs(W))
    for got, want, mag in zip(outputs[kernels], outputs[reference], magnitudes):
        if not (first_layer and got is outputs[kernels][-1]):
            assert_close(got, want, dtype, mag)


def _targets(kind, rng, m, k, dtype):
    if kind == "labels":
        return rng.integers(0, k, m)
    if kind == "onehot":
        return np.eye(k, dtype=dtype)[rng.integers(0, k, m)]
    if kind == "soft":
        return rng.dirichlet(np.ones(k), m).astype(dtype)
    if kind == "binary":
        return rng.integers(0, 2, (m, k)).astype(dtype)
    return normal(rng, (m, k), dtype)


LOSSES = [("sigmoid_binary_cross_entropy", "binary"), ("softmax_cross_entropy", "labels"),
          ("softmax_cross_entropy", "onehot"), ("softmax_cross_entropy", "soft"),
          ("mean_squared_error", "real")]


@pytest.mark.parametrize("implementation", [kernels, reference])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_near_zero_keeps_its_precision(implementation, dtype):
    """A confident right answer: for rows [0, -t, -t - 1] (the label on the 0, which
    sits first, last or between) the loss is log(1 + e^-t + e^-(t+1)), near e^-t, down
    to 1e-35; its value in float64 from log1p is the truth. log-sum-exp as
    log(1 + rest), with the maximum's 1 inside the sum, kept rest only to 2^-53 of 1:
    for t = 20 a relative error of 1e-7 (float64). Also a tie between two maxima, whose
    rest holds a 1 of its own, and a single class (loss 0)."""
    eps = float(np.finfo(dtype).eps)
    spans = [2.0, 10.0, 20.0, 36.0, 60.0, 79.0] if dtype == np.float32 else \
        [2.0, 10.0, 20.0, 40.0, 100.0, 700.0]
    for t in spans:
        for order in ([0, 1, 2], [1, 2, 0], [1, 0, 2]):
            Z = np.array([[0.0, -t, -t - 1]])[:, order].astype(dtype)
            label = np.array([order.index(0)])
            shifted = Z.astype(np.float64)[0] - Z.max()
            truth = np.log1p(np.exp(np.delete(shifted, label[0])).sum())
            loss = implementation.softmax_cross_entropy(Z, label, np.empty_like(Z),
                                                        np.empty_like(Z))
            assert loss == pytest.approx(truth, rel=8 * eps, abs=0), (t, order)
    Z = np.array([[3.0, 3.0, -40.0]], dtype)  # a tie: log(2 + e^-43)
    loss = implementation.softmax_cross_entropy(Z, np.array([1]), np.empty_like(Z),
                                                np.empty_like(Z))
    assert loss == pytest.approx(np.log1p(1 + np.exp(-43.0)), rel=8 * eps, abs=0)
    Z = np.array([[5.0]], dtype)
    assert implementation.softmax_cross_entropy(Z, np.array([0]), np.empty_like(Z),
                                                np.empty_like(Z)) == 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss,target", LOSSES)
@EXAMPLES
@given(m=SIZES, k=st.integers(1, 40), seed=SEEDS, scale=st.sampled_from([0.1, 3.0, 30.0]))
def test_output_losses_match_twin(loss, target, dtype, m, k, seed, scale, assert_close):
    rng = np.random.default_rng(seed)
    Z = normal(rng, (m, k), dtype, scale)
    Y = _targets(target, rng, m, k, dtype)
    A_k, dZ_k, A_r, dZ_r = empties(dtype, *[(m, k)] * 4)
    loss_k = getattr(kernels, loss)(Z, Y, A_k, dZ_k)
    loss_r = getattr(reference, loss)(Z, Y, A_r, dZ_r)
    assert isinstance(loss_k, float)
    assert loss_k == pytest.approx(loss_r, rel=10 * RTOL_LOSS[dtype], abs=1e-30)
    assert_close(A_k, A_r, dtype)
    # dZ = (A - Y) / n: the magnitude of that difference bounds its rounding error.
    n = m if loss == "softmax_cross_entropy" else Z.size
    Y_rows = np.eye(k)[Y] if target == "labels" else Y
    assert_close(dZ_k, dZ_r, dtype, 2 * (np.abs(A_r) + np.abs(Z) + np.abs(Y_rows)) / n)


RTOL_LOSS = {np.float64: 1e-12, np.float32: 1e-6}


OPTIMIZERS = {
    "sgd": (lambda impl, p, g, s, wd: impl.sgd_update(p, g, 0.1, wd), 0),
    "momentum": (lambda impl, p, g, s, wd: impl.momentum_update(p, g, s[0], 0.1, 0.9, wd), 1),
    "nesterov": (lambda impl, p, g, s, wd: impl.momentum_update(
        p, g, s[0], 0.1, 0.9, wd, nesterov=True), 1),
    "adam": (lambda impl, p, g, s, wd: impl.adam_update(
        p, g, s[0], s[1], 3, 0.01, 0.9, 0.999, 1e-8, wd), 2),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@EXAMPLES
@given(m=SIZES, n=SIZES, seed=SEEDS, weight_decay=st.sampled_from([0.0, 0.01]))
def test_optimizer_updates_match_twin(optimizer, dtype, m, n, seed, weight_decay,
                                      assert_close):
    update, n_states = OPTIMIZERS[optimizer]
    rng = np.random.default_rng(seed)
    param, grad = normal(rng, (m, n), dtype), normal(rng, (m, n), dtype)
    states = [np.abs(normal(rng, (m, n), dtype, 0.1)) for _ in range(n_states)]
    results = {}
    for impl in (kernels, reference):
        p, s = param.copy(), [x.copy() for x in states]
        for _ in range(3):  # repeated steps exercise the states
            update(impl, p, grad, s, weight_decay)
        results[impl] = [p] + s
    for got, want in zip(results[kernels], results[reference]):
        assert_close(got, want, dtype)


def test_adam_first_step_moves_each_weight_by_lr():
    # A published property of Adam (Kingma and Ba, sec. 2.1): with bias correction the
    # first step is lr * g / (|g| + eps), i.e. about lr in magnitude, whatever |g| is.
    param = np.zeros(4)
    grad = np.array([1e-3, -2.0, 50.0, -1e4])
    m, v = np.zeros(4), np.zeros(4)
    kernels.adam_update(param, grad, m, v, 1, lr=0.1)
    np.testing.assert_allclose(param, -0.1 * np.sign(grad), rtol=1e-4)


# ---------------------------------------------------------------- hand-computed cases

def test_dense_forward_hand_computed(backend):
    A_prev = np.array([[1.0, 2.0], [-1.0, 0.5]])
    W = np.array([[1.0, -1.0], [0.5, 2.0], [0.0, 1.0]])  # (n_out=3, n_in=2)
    b = np.array([0.5, -4.0, 0.0])
    Z, A = np.empty((2, 3)), np.empty((2, 3))
    backend.dense_forward(A_prev, W, b, Z, A, "relu")
    np.testing.assert_array_equal(Z, [[-0.5, 0.5, 2.0], [-1.0, -3.5, 0.5]])
    np.testing.assert_array_equal(A, [[0.0, 0.5, 2.0], [0.0, 0.0, 0.5]])


def test_relu_derivative_at_zero_is_zero_and_leaky_slope_is_a_parameter(backend):
    Z = np.array([-2.0, 0.0, 3.0])
    out = np.empty(3)
    backend.activation_derivative(Z, np.maximum(Z, 0), out, "relu")
    np.testing.assert_array_equal(out, [0.0, 0.0, 1.0])
    backend.activation_derivative(Z, Z, out, "leaky_relu", 0.3)
    np.testing.assert_array_equal(out, [0.3, 0.3, 1.0])
    A = np.empty(3)
    backend.activation_forward(Z, A, "leaky_relu")
    np.testing.assert_array_equal(A, [-0.02, 0.0, 3.0])  # default slope 0.01


def test_softmax_cross_entropy_hand_computed(backend):
    Z = np.array([[0.0, np.log(3.0)]])  # softmax = [1/4, 3/4]
    P, dZ = np.empty((1, 2)), np.empty((1, 2))
    loss = backend.softmax_cross_entropy(Z, np.array([0]), P, dZ)
    assert loss == pytest.approx(np.log(4.0), rel=1e-15)
    np.testing.assert_allclose(P, [[0.25, 0.75]], rtol=1e-15)
    np.testing.assert_allclose(dZ, [[-0.75, 0.75]], rtol=1e-15)


# ---------------------------------------------------------------- finite differences

def _relative_error(got, want):
    return np.linalg.norm(got - want) / (np.linalg.norm(got) + np.linalg.norm(want))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_backward_matches_finite_differences(backend, activation, numeric_gradient):
    rng = np.random.default_rng(7)
    m, n_in, n_out = 6, 4, 5
    A_prev, W, b = rng.standard_normal((m, n_in)), rng.standard_normal((n_out, n_in)), \
        rng.standard_normal(n_out)
    G = rng.standard_normal((m, n_out))  # upstream gradient: loss = sum(G * A)
    Z, A = np.empty((m, n_out)), np.empty((m, n_out))

    def loss():
        backend.dense_forward(A_prev, W, b, Z, A, activation, 0.1)
        return float(np.sum(G * A))

    loss()
    dZ, dW, db, dA_prev = np.empty((m, n_out)), np.empty((n_out, n_in)), np.empty(n_out), \
        np.empty((m, n_in))
    backend.dense_backward(G, Z, A, A_prev, W, dZ, dW, db, dA_prev, activation, 0.1)
    for analytic, wrt in ((dW, W), (db, b), (dA_prev, A_prev)):
        assert _relative_error(analytic, numeric_gradient(loss, wrt)) < 1e-8


@pytest.mark.parametrize("loss_name,target", LOSSES)
def test_output_loss_gradient_matches_finite_differences(backend, loss_name, target,
                                                        numeric_gradient):
    rng = np.random.default_rng(11)
    m, k = 5, 4
    Z = 2.0 * rng.standard_normal((m, k))
    Y = _targets(target, rng, m, k, np.float64)
    A, dZ = np.empty((m, k)), np.empty((m, k))
    loss_fn = getattr(backend, loss_name)

    def loss():
        return loss_fn(Z, Y, np.empty((m, k)), np.empty((m, k)))

    loss_fn(Z, Y, A, dZ)
    assert _relative_error(dZ, numeric_gradient(loss, Z)) < 1e-8


# ---------------------------------------------------------------- extreme logits

@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_bce_is_finite_and_exact_at_huge_logits(backend, dtype):
    Z = np.array([[1e4], [-1e4], [1e4], [-1e4]], dtype)
    Y = np.array([[1], [0], [0], [1]], dtype)
    A, dZ = np.empty_like(Z), np.empty_like(Z)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise",
                                                divide="raise"):
        warnings.simplefilter("error")
        loss = backend.sigmoid_binary_cross_entropy(Z, Y, A, dZ)
    # Two right answers cost 0 each, two wrong ones 1e4 each: mean 5e3.
    assert loss == pytest.approx(5e3, rel=1e-6)
    np.testing.assert_array_equal(A, [[1], [0], [1], [0]])
    np.testing.assert_allclose(dZ, [[0], [0], [0.25], [-0.25]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_is_finite_and_exact_at_huge_logits(backend, dtype):
    Z = np.array([[1e4, -1e4, 0.0], [1e4, -1e4, 0.0]], dtype)
    labels = np.array([0, 1])
    P, dZ = np.empty_like(Z), np.empty_like(Z)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise",
                                                divide="raise"):
        warnings.simplefilter("error")
        loss = backend.softmax_cross_entropy(Z, labels, P, dZ)
        loss_onehot = backend.softmax_cross_entropy(Z, np.eye(3, dtype=dtype)[labels],
                                                    P.copy(), dZ.copy())
    assert loss == pytest.approx(1e4, rel=1e-6)  # (0 + 2e4) / 2
    assert loss_onehot == pytest.approx(1e4, rel=1e-6)
    np.testing.assert_array_equal(P, [[1, 0, 0], [1, 0, 0]])
    np.testing.assert_allclose(dZ, [[0, 0, 0], [0.5, -0.5, 0]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_saturating_activations_stay_finite_at_huge_inputs(backend, dtype, activation):
    Z = np.array([-1e4, -50.0, 0.0, 50.0, 1e4], dtype)
    A, d = np.empty_like(Z), np.empty_like(Z)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        backend.activation_forward(Z, A, activation)
        backend.activation_derivative(Z, A, d, activation)
    low = 0.0 if activation == "sigmoid" else -1.0
    assert A[0] == low and A[-1] == 1.0 and np.isfinite(d).all()
