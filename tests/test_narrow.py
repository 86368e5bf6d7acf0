"""The vector kernels of fastnn/_vector.h, in both of their builds: the narrow,
feature-major path of the engine against the NumPy twin on both sides of every
threshold, the thin layers (few outputs or few inputs, samples as rows) against the
twin's matmuls, and the sigmoid's and softmax's exp and the binary cross-entropy's
log1p against libm."""
import os
import subprocess
import sys

import numpy as np
import pytest

from fastnn import MLP, reference
from fastnn import ACTIVATIONS
from fastnn._kernels import adam_divide, first_nonfinite, vector_build
from fastnn.optim import Momentum
from helpers import step_settings
from fastnn import kernels
from fastnn.kernels import activation_forward, sigmoid_binary_cross_entropy

# (widths without the output, batch): the path each takes, per dtype. Batches of 37
# cover a whole register block, whole vectors and a partial vector in every build.
SHAPES = {
    "tiny, batch 300": ([2, 10, 5], 300, {"float64": True, "float32": True}),
    "batch 16 (the smallest narrow)": ([3, 7, 5], 16, {"float64": True, "float32": True}),
    "batch 15 (rows)": ([3, 7, 5], 15, {"float64": False, "float32": False}),
    "width 12": ([12, 12], 37, {"float64": True, "float32": True}),
    "4 inputs (a transpose in whole vectors)": ([4, 6], 37,
                                                {"float64": True, "float32": True}),
    "width 13 (rows in float64)": ([13, 5], 37, {"float64": False, "float32": True}),
    "width 25 (rows)": ([4, 25], 37, {"float64": False, "float32": False}),
}
# output name, output width, targets kind
OUTPUT_CASES = {
    "sigmoid k=1": ("sigmoid", 1, "binary"),
    "sigmoid k=3": ("sigmoid", 3, "binary"),
    "softmax labels": ("softmax", 4, "labels"),
    "softmax soft targets": ("softmax", 3, "soft"),
    "identity k=2": ("identity", 2, "real"),
}
TOLERANCE = {"float64": 1e-11, "float32": 2e-5}


def problem(widths, m, output_case, activation, dtype, seed=0, negative_slope=0.1):
    output, k, kind = OUTPUT_CASES[output_case]
    net = MLP(widths + [k], activation=activation, output=output, dtype=dtype,
              negative_slope=negative_slope, init="xavier", bias_init=0.05, seed=seed)
    X, Y = batch(widths[0], m, output_case, dtype, seed + 1)
    twin = reference.Engine.twin_of(net)
    return net, X, Y, twin, twin.params


def batch(n_in, m, output_case, dtype, seed):
    """m random samples and targets of the output case's kind."""
    _, k, kind = OUTPUT_CASES[output_case]
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, n_in)).astype(dtype)
    if kind == "binary":
        Y = rng.integers(0, 2, (m, k)).astype(dtype)
    elif kind == "labels":
        Y = rng.integers(0, k, m).astype(np.intp)
    elif kind == "soft":
        Y = rng.dirichlet(np.ones(k), m).astype(dtype)
    else:
        Y = rng.standard_normal((m, k)).astype(dtype)
    return X, Y


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("output_case", OUTPUT_CASES)
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("shape", SHAPES)
def test_both_layouts_match_the_twin(shape, activation, output_case, dtype):
    widths, m, narrow = SHAPES[shape]
    net, X, Y, twin, twin_params = problem(widths, m, output_case, activation, dtype)
    engine, params = net.engine, net.engine.params
    assert engine.feature_major(m) == narrow[dtype]
    tol = TOLERANCE[dtype]

    grads, twin_grads = np.empty_like(params), np.empty_like(params)
    loss = engine.loss_and_gradients(X, Y, grads)
    assert loss == pytest.approx(twin.loss_and_gradients(X, Y, twin_grads), rel=tol)
    scale = np.abs(twin_grads).max()
    np.testing.assert_allclose(grads, twin_grads, rtol=0, atol=tol * scale)
    assert engine.loss(X, Y) == pytest.approx(loss, rel=tol)

    out, twin_out = engine.predict(X), twin.predict(X)
    np.testing.assert_allclose(out, twin_out, rtol=0, atol=tol * np.abs(twin_out).max())

    for e in (engine, twin):
        e.step(X, Y, e.updater(step_settings(e, Momentum(0.1, 0.9), 0.01)))
    np.testing.assert_allclose(params, twin_params, rtol=0,
                               atol=tol * np.abs(twin_params).max())


GUARDED_BATCH = """
import ctypes, mmap, sys
import numpy as np
from fastnn import MLP
libc = ctypes.CDLL(None)
page = mmap.PAGESIZE
for dtype in ("float64", "float32"):
    for n_in in (2, 3, 4):
        rows = 48  # whole vectors in both dtypes: the transpose's fast path to its end
        size = rows * n_in * np.dtype(dtype).itemsize
        pages = -(-size // page) + 1
        memory = mmap.mmap(-1, pages * page)
        base = ctypes.addressof(ctypes.c_char.from_buffer(memory))
        assert libc.mprotect(ctypes.c_void_p(base + (pages - 1) * page), page, 0) == 0
        X = np.frombuffer(memory, dtype, rows * n_in, (pages - 1) * page - size)
        X = X.reshape(rows, n_in)  # its last value just before the unreadable page
        X[:] = np.random.default_rng(n_in).standard_normal(X.shape)
        net = MLP([n_in, 6, 1], dtype=dtype, seed=0)
        assert net.engine.feature_major(rows)
        assert np.allclose(net.predict_proba(X), net.predict_proba(X.copy()))
        del X
print("ok")
"""


def test_the_inputs_transpose_reads_nothing_past_the_batch(tmp_path):
    """A batch of 2-4 features ending right before an unreadable page: the transpose
    in whole vectors reads its rows' own vectors only (it had read two vectors past
    the block, a crash at a page's end). In a subprocess, so that a fault fails the
    test instead of ending the run."""
    if not sys.platform.startswith("linux"):
        pytest.skip("mprotect through ctypes, on Linux")
    run = subprocess.run([sys.executable, "-c", GUARDED_BATCH], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]


def assert_close_to(values, truth, dtype):
    np.testing.assert_allclose(values, truth, rtol=0,
                               atol=TOLERANCE[dtype] * np.abs(truth).max())


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("output_case", ["softmax labels", "sigmoid k=1", "identity k=2"])
def test_one_engine_steps_batches_of_every_size_as_the_twin(output_case, dtype):
    """Batch sizes that switch between the layouts and change the feature-major row
    stride (padded to 64-byte lines) while the engine reuses its workspace."""
    net, _, _, twin, twin_params = problem([5, 9, 6], 16, output_case, "tanh", dtype)
    engine = net.engine
    updates = [e.updater(step_settings(e, Momentum(0.05, 0.9), 0.01)) for e in (engine, twin)]
    sizes = (300, 37, 15, 16, 17, 301, 64, 8, 200)
    assert [engine.feature_major(m) for m in sizes].count(False) == 2
    for seed, m in enumerate(sizes):
        X, Y = batch(5, m, output_case, dtype, seed)
        loss = engine.step(X, Y, updates[0])
        assert loss == pytest.approx(twin.step(X, Y, updates[1]), rel=TOLERANCE[dtype])
        assert_close_to(engine.params, twin_params, dtype)


def test_an_epoch_on_threads_splits_narrow_batches_into_parts_of_both_layouts():
    """With 11,500 parameters, n_threads=4 splits batches of 62 rows into four parts
    of 15 and 16 rows (samples as rows, feature-major) and the last batch of 40 into
    two of 20; the epoch's steps are the twin's batch by batch (float32: 24-value
    widths are narrow)."""
    net, _, _, twin, twin_params = problem([24] * 20, 16, "softmax labels", "tanh",
                                           "float32")
    engine = net.engine
    assert engine.n_params == 11_500 and not engine.feature_major(15)
    X, Y = batch(24, 164, "softmax labels", "float32", 7)
    updates = [e.updater(step_settings(e, Momentum(0.01, 0.9), 0.0)) for e in (engine, twin)]
    last = engine.epoch(X, Y, updates[0], 62, n_threads=4)
    for start in range(0, len(X), 62):
        twin_last = twin.step(X[start:start + 62], Y[start:start + 62], updates[1])
    assert last == pytest.approx(twin_last, rel=TOLERANCE["float32"])
    assert_close_to(engine.params, twin_params, "float32")


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_narrow_gradients_match_finite_differences(activation, numeric_gradient):
    """An outside truth for the fused derivative: central differences of the loss."""
    net, X, Y, _, _ = problem([3, 6, 5], 40, "softmax labels", activation, "float64")
    assert net.engine.feature_major(len(X))
    params = net.engine.params
    analytic = np.empty_like(params)
    net.engine.loss_and_gradients(X, Y, analytic)
    numeric = numeric_gradient(lambda: net.engine.loss(X, Y), params)
    assert np.linalg.norm(analytic - numeric) / np.linalg.norm(analytic + numeric) < 1e-7


@pytest.mark.parametrize("slope", [-0.5, 0.0, 2.0])
def test_leaky_relu_of_any_slope_matches_the_twin(slope):
    """The narrow forward keeps only A when the derivative can be read from it (a > 0
    is z > 0 for a slope >= 0) and Z too for a negative slope."""
    net, X, Y, twin, _ = problem([3, 6, 5], 40, "sigmoid k=1", "leaky_relu", "float64",
                                 negative_slope=slope)
    assert net.engine.feature_major(len(X))
    grads, twin_grads = np.empty_like(net.engine.params), np.empty_like(net.engine.params)
    loss = net.engine.loss_and_gradients(X, Y, grads)
    assert loss == pytest.approx(twin.loss_and_gradients(X, Y, twin_grads), rel=1e-12)
    np.testing.assert_allclose(grads, twin_grads, rtol=0,
                               atol=1e-11 * np.abs(twin_grads).max())


@pytest.mark.parametrize("slope", [-0.5, 0.1])
def test_an_activation_the_vector_kernels_do_not_know_takes_the_generic_narrow_path(slope):
    """A new activation needs no change to _vector.h: the narrow path keeps its Z and
    applies it and its derivative with _activate and _activation_grad. Code 5 is such
    a code (those two functions treat any code past the fifth as their last branch,
    leaky ReLU), so an engine built with it must match leaky ReLU's twin exactly as
    the fused path does."""
    from fastnn._engine import Engine
    net, X, Y, twin, _ = problem([3, 6, 5], 40, "sigmoid k=1", "leaky_relu", "float64",
                                 negative_slope=slope)
    generic = Engine(net.engine.params.copy(), net.layer_sizes, [5, 5, 0], 0, slope)
    assert generic.feature_major(len(X))
    grads, twin_grads = np.empty_like(twin.params), np.empty_like(twin.params)
    loss = generic.loss_and_gradients(X, Y, grads)
    assert loss == pytest.approx(twin.loss_and_gradients(X, Y, twin_grads), rel=1e-12)
    np.testing.assert_allclose(grads, twin_grads, rtol=0,
                               atol=1e-11 * np.abs(twin_grads).max())
    np.testing.assert_allclose(generic.predict(X), twin.predict(X), rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_bce_log1p_in_vector_registers_is_within_a_few_ulp(dtype):
    """log(1 + e^z) for y = 0, z < 0 against NumPy's logaddexp, value by value (size 1:
    the partial-vector path) and as one array (whole vectors), from 1e-30 to 1."""
    z = -np.concatenate([np.logspace(-8, 2.8, 600), [0.0, 1e-30, 30.0, 700.0]])
    z = z.astype(dtype)
    truth = np.logaddexp(0.0, z.astype(np.float64))
    ulp = np.spacing(truth.astype(dtype)).astype(np.float64)
    each = np.array([sigmoid_binary_cross_entropy(z[i:i + 1], np.zeros(1, dtype),
                                                  np.empty(1, dtype), np.empty(1, dtype))
                     for i in range(len(z))])
    assert np.all(np.abs(each - truth) <= 4 * ulp + np.finfo(dtype).tiny)
    mean = sigmoid_binary_cross_entropy(z, np.zeros_like(z), np.empty_like(z),
                                        np.empty_like(z))
    assert mean == pytest.approx(truth.mean(), rel=4 * float(np.finfo(dtype).eps))


def sigmoid_truth(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1, e) / (1 + e)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("activation, truth, ulps", [("sigmoid", sigmoid_truth, 3),
                                                     ("tanh", np.tanh, 4)])
def test_sigmoid_and_tanh_in_vector_registers_are_within_a_few_ulp(activation, truth, ulps,
                                                                    dtype):
    """The kernels' own exp (and tanh's expm1) against libm in extended precision,
    over the whole range of z: from subnormal z, through the first steps of the range
    reduction (where 2 |z| passes ln(2) / 2 and 3 ln(2) / 2 for tanh, ln(2) / 2 for
    the sigmoid), to results that round to subnormals, 0 or 1; value by value (the
    partial-vector path) and as one array. tanh keeps the sign of 0. (The hex values
    were the worst tanh inputs of an earlier formula, 3.15 ulp; it now stays within
    2.8 ulp over a million samples in each build.)"""
    huge, tiny = np.finfo(dtype).max, np.finfo(dtype).smallest_subnormal
    worst = [float.fromhex("0x1.030600da18f16p-2"), float.fromhex("0x1.0580b4894a34p-2")]
    ln2 = np.log(2)
    steps = np.concatenate([np.linspace(0.99, 1.01, 101) * c for c in (ln2 / 4, ln2 / 2,
                                                                       3 * ln2 / 4)])
    magnitudes = np.concatenate([[0.0, tiny, 1e-30], np.logspace(-8, 3, 2000),
                                 np.linspace(0.34, 0.35, 101), steps, worst, [huge]])
    z = np.concatenate([-magnitudes, magnitudes]).astype(dtype)
    exact = truth(z.astype(np.longdouble))
    ulp = np.abs(np.spacing(exact.astype(dtype))).astype(np.longdouble)
    whole = np.empty_like(z)
    activation_forward(z, whole, activation)
    assert np.all(np.abs(whole - exact) <= ulps * ulp + tiny)
    if activation == "tanh":  # odd: tanh(-0) = -0
        assert np.array_equal(np.signbit(whole[z == 0]), np.signbit(z[z == 0]))
    each = np.empty(len(z[::7]), dtype)
    for i in range(len(each)):
        activation_forward(z[7 * i:7 * i + 1], each[i:i + 1], activation)
    assert np.all(np.abs(each - exact[::7]) <= ulps * ulp[::7] + tiny)
    low = 0 if activation == "sigmoid" else -1
    assert whole[z < -800].max() == low and whole[z > 50].min() == 1


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_softmax_in_vector_registers_is_within_a_few_ulp(dtype):
    """softmax(Z) and the cross-entropy from the kernels' own exp, against both computed
    in extended precision: rows of 1 to 33 classes (partial, whole and several vectors
    in every build) with logits spread from 1e-3 apart (the sum's rounding) to 800
    (probabilities that round to subnormals or 0)."""
    rng = np.random.default_rng(5)
    tiny = np.finfo(dtype).smallest_subnormal
    for k in [1, 2, 7, 8, 9, 10, 16, 17, 33]:
        for spread in [1e-3, 1.0, 30.0, 800.0]:
            Z = (rng.uniform(-0.5, 0.5, (40, k)) * spread).astype(dtype)
            labels = rng.integers(0, k, 40)
            P, dZ = np.empty_like(Z), np.empty_like(Z)
            loss = kernels.softmax_cross_entropy(Z, labels, P, dZ)
            # z - zmax, rounded in the dtype as any implementation does (e^ makes its
            # rounding up to |z - zmax| ulp of p), then the rest exactly
            shifted = (Z - Z.max(axis=1, keepdims=True)).astype(np.longdouble)
            exact = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
            ulp = np.spacing(exact.astype(dtype)).astype(np.longdouble)
            # the exp's 2 ulp, the sum's and the division's roundings: measured up to 4.7
            # (16-byte build, no FMA), NumPy's exp with the same sum and division 3.6
            assert np.all(np.abs(P - exact) <= 6 * ulp + tiny), (k, spread)
            losses = np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(40), labels]
            assert loss == pytest.approx(float(losses.mean()),
                                         rel=8 * float(np.finfo(dtype).eps), abs=1e-30)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("eps", ["1e-8", "small"])
def test_adam_in_vector_registers_is_within_a_few_ulp_of_its_formula(dtype, eps):
    """adam_update against its formula in extended precision, value by value, from the
    moments the kernel wrote: second moments of 0 (a unit that never learns),
    subnormal, ordinary and near the largest value, which the AVX-512 build's refined
    estimates of the root and the quotient must all get right; with a small eps the
    root of a subnormal moment shows in the result."""
    info, cast = np.finfo(dtype), np.dtype(dtype).type
    lr, b1, b2, t = 0.01, 0.9, 0.999, 3
    eps = 1e-8 if eps == "1e-8" else {"float64": 1e-300, "float32": 1e-30}[dtype]
    rng = np.random.default_rng(0)
    n = 8 * 16 + 5  # whole vectors in every build, then a partial one
    p = rng.standard_normal(n).astype(dtype)
    g = (rng.standard_normal(n) * 10.0 ** rng.uniform(-6, 3, n)).astype(dtype)
    m = rng.standard_normal(n).astype(dtype)
    v = (10.0 ** rng.uniform(-12, 6, n)).astype(dtype)
    zero, subnormal, huge = np.split(rng.permutation(n)[:36], [12, 24])
    v[zero], v[subnormal], v[huge] = 0, 3 * info.smallest_subnormal, info.max / 4
    g[zero] = g[subnormal] = g[huge] = 0  # the moment stays about as set
    p0, m0, v0 = p.copy(), m.copy(), v.copy()
    kernels.adam_update(p, g, m, v, t, lr, b1, b2, eps)

    ld, gi = np.longdouble, g.astype(np.longdouble)  # g' = g with no weight decay
    spacing = lambda x: np.abs(np.spacing(x.astype(dtype))).astype(ld)  # noqa: E731
    for got, old, new in [(m, ld(cast(b1)) * m0, ld(cast(1 - b1)) * gi),
                          (v, ld(cast(b2)) * v0, ld(cast(1 - b2)) * (gi * gi))]:
        size = spacing(np.abs(old) + np.abs(new))  # each term rounded, then the sum
        assert np.all(np.abs(got - (old + new)) <= 2 * size)
    assert np.all(v[zero] == 0)
    assert np.all(v[subnormal] > 0) and np.all(v[subnormal] < info.tiny)
    step, k = ld(cast(lr / (1 - b1 ** t))), ld(cast(1 / np.sqrt(1 - b2 ** t)))
    q = step * m.astype(ld) / (np.sqrt(v.astype(ld)) * k + ld(cast(eps)))
    want = p0.astype(ld) - q
    assert np.all(np.abs(p - want) <= spacing(want) + 4 * spacing(q))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_adam_in_vector_registers_keeps_the_exact_formula_past_its_range(dtype):
    """Where the refined estimates do not hold, whole vectors take the exact formula:
    a second moment that overflows to infinity leaves the weight where it was (m / inf
    = 0), a quotient that overflows gives -inf, a negative moment (which only a
    caller's own state can hold) NaN."""
    info = np.finfo(dtype)
    n = 8 * 4 + 3
    p, m = np.ones(n, dtype), np.ones(n, dtype)
    g, v = np.full(n, np.sqrt(info.max) * 4, dtype), np.full(n, info.max, dtype)
    kernels.adam_update(p, g, m, v, 1)
    assert np.all(np.isinf(v)) and np.all(p == 1)
    p, m, v = np.zeros(n, dtype), np.full(n, info.max / 4, dtype), np.zeros(n, dtype)
    kernels.adam_update(p, np.zeros(n, dtype), m, v, 1, lr=1.0)
    assert np.all(p == -np.inf)
    p, m, v = np.zeros(n, dtype), np.full(n, -info.max / 4, dtype), np.zeros(n, dtype)
    kernels.adam_update(p, np.zeros(n, dtype), m, v, 1, lr=1.0)
    assert np.all(p == np.inf)  # -inf, as the exact formula overflows, not NaN
    p, v = np.ones(n, dtype), np.full(n, -1.0, dtype)
    kernels.adam_update(p, np.zeros(n, dtype), np.ones(n, dtype), v, 1)
    assert np.all(np.isnan(p))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("divisor", [2.0, 1e4])
def test_adam_in_vector_registers_is_exact_for_a_subnormal_denominator(dtype, divisor):
    """A subnormal eps (allowed: eps > 0) over a second moment of 0 makes the
    denominator subnormal and the quotient huge but finite: the update is that
    quotient, for a denominator whose reciprocal overflows (which the refined path
    leaves to the exact formula) and for one whose reciprocal does not."""
    info = np.finfo(dtype)
    n = 8 * 4 + 3
    eps = info.tiny / divisor  # subnormal; 1 / eps overflows for the larger divisor
    p, m, v = np.zeros(n, dtype), np.full(n, 1e-5, dtype), np.zeros(n, dtype)
    kernels.adam_update(p, np.zeros(n, dtype), m, v, 1, lr=1e-3, eps=eps)
    ld, cast = np.longdouble, np.dtype(dtype).type
    q = ld(cast(1e-3 / (1 - 0.9))) * m.astype(ld) / ld(cast(eps))
    assert np.all(np.isfinite(p)) and np.all(q < info.max)
    assert np.all(np.abs(p.astype(ld) + q) <= 4 * np.spacing(q.astype(dtype)))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_adam_in_vector_registers_is_exact_for_a_subnormal_step(dtype):
    """step m1 subnormal (a moment of 1e-313 in float64) and the quotient normal: the
    refined quotient's residual would underflow there (5e5 ulp off), so those vectors
    take the exact formula; p starts at 0, so the update shows the quotient whole."""
    info = np.finfo(dtype)
    n = 8 * 4 + 3
    m = np.full(n, info.tiny / 1e5, dtype)  # step m1 = 10 * 0.9 m is still subnormal
    v = np.full(n, {"float64": 1e-100, "float32": 1e-20}[dtype], dtype)
    eps = {"float64": 1e-300, "float32": 1e-30}[dtype]
    p = np.zeros(n, dtype)
    kernels.adam_update(p, np.zeros(n, dtype), m, v, 1, lr=1.0, eps=eps)
    ld = np.longdouble
    step, k = ld(np.dtype(dtype).type(1 / (1 - 0.9))), ld(np.dtype(dtype).type(
        1 / np.sqrt(1 - 0.999)))
    q = step * m.astype(ld) / (np.sqrt(v.astype(ld)) * k + ld(np.dtype(dtype).type(eps)))
    assert np.all(q > info.tiny)  # the quotient itself is a normal number
    assert np.all(np.abs(p.astype(ld) + q) <= 4 * np.spacing(q.astype(dtype)))


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_adam_with_the_divider_gives_the_formulas_bits_a_vector_at_a_time(dtype, seed):
    """With the divider (FASTNN_ADAM_DIVIDE=divider), whole vectors give the bits of
    the formula taken one value at a time (a call of one value runs the scalar code,
    which computed float32's root and quotient in double until its root was cast),
    weight decay and all. Mixed (AMD's CPUs) does too, but for the fourth vector of
    every four of float64 from the start, from the refined estimates: the same
    moments, the weight within a few ulp of the quotient."""
    if adam_divide() == "estimates":
        pytest.skip("this CPU takes the refined estimates (the test below runs this)")
    rng = np.random.default_rng(seed)
    n = 16 * 12 + 7
    p, g = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    m = (rng.standard_normal(n) * 0.1).astype(dtype)
    v = (10.0 ** rng.uniform(-12, 2, n)).astype(dtype)
    whole, single = [[a.copy() for a in (p, g, m, v)] for _ in range(2)]
    kernels.adam_update(*whole, 4, weight_decay=0.01)
    for i in range(n):
        kernels.adam_update(*(a[i:i + 1] for a in single), 4, weight_decay=0.01)
    estimated = np.zeros(n, bool)  # the vectors of the estimates in whole rounds of 32
    if adam_divide() == "mixed" and dtype == "float64":
        estimated[:n // 32 * 32] = np.arange(n // 32 * 32) // 8 % 4 == 3
    for got, want in zip(whole[1:], single[1:]):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(whole[0][~estimated], single[0][~estimated])
    got, want = whole[0][estimated], single[0][estimated]
    quotient = p[estimated] - want
    assert np.all(np.abs(got - want) <= 4 * np.spacing(np.abs(quotient))
                  + np.spacing(np.abs(want)))


@pytest.mark.parametrize("divide", ["divider", "estimates", "mixed"])
def test_adams_other_division_passes_the_same_tests(divide, tmp_path):
    """FASTNN_ADAM_DIVIDE runs the AVX-512 build's other ways to Adam's root and
    quotient (those this CPU's maker does not get): this file's Adam tests, in a
    fresh interpreter."""
    if vector_build() != "avx512":
        pytest.skip("only the AVX-512 build has the two ways")
    if divide == adam_divide():
        pytest.skip(f"{divide} already runs here")
    out = run_this_file_with("FASTNN_ADAM_DIVIDE", divide, "adam_divide",
                             "adam and not other_division", tmp_path)
    assert " passed" in out and (divide == "estimates" or " skipped" not in out), out


@pytest.mark.parametrize("variable, value", [("FASTNN_ADAM_DIVIDE", "Estimates"),
                                             ("FASTNN_ADAM_DIVIDE", " divider"),
                                             ("FASTNN_VECTOR_BUILD", "avx2")])
def test_a_setting_the_core_does_not_know_is_warned_about(variable, value, tmp_path):
    """The compiled core would ignore it: import says so (the known ones pass in
    silence, as the tests that run the other builds and divisions show)."""
    run = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c",
                          "import fastnn"], env=dict(os.environ, **{variable: value}),
                         cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode != 0 and f"{variable}={value!r} is not one of" in run.stderr
    quiet = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c",
                            "import fastnn"], env=dict(os.environ, **{variable: "base"
                           if variable == "FASTNN_VECTOR_BUILD" else "divider"}),
                           cwd=tmp_path, capture_output=True, text=True)
    assert quiet.returncode == 0, quiet.stderr


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("size", [1, 13, 4096, 4097, 10_000])
def test_finiteness_scan_finds_the_first_nan_or_infinity(dtype, size):
    """Every position class (first, inside a vector block, the partial tail, both sides
    of the 4096-value block boundary, last) and every kind of non-finite value; the
    extremes of the finite range are not flagged."""
    info = np.finfo(dtype)
    clean = np.resize(np.array([1.0, -info.max, info.max, info.smallest_subnormal, -0.0],
                               dtype), size)
    assert first_nonfinite(clean) == -1
    for where in sorted({0, 5, size // 2, 4095, 4096, size - 1} & set(range(size))):
        for value in (np.nan, np.inf, -np.inf):
            values = clean.copy()
            values[where] = value
            values[size - 1] = value  # a later one does not hide the first
            assert first_nonfinite(values) == where


# (m, n_in, n_out) of thin layers (at most 16 outputs, or at most 16 inputs): odd
# rows, partial vectors, groups of outputs cut short (1, 2, 3 of four), more than 64
# columns
THIN_SHAPES = [(1, 64, 10), (7, 100, 10), (33, 256, 1), (32, 30, 16), (5, 3, 17),
               (32, 10, 64), (9, 16, 130), (2, 1, 200), (31, 13, 65), (4, 17, 16), (6, 40, 7)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m, n_in, n_out", THIN_SHAPES)
def test_thin_layers_match_the_twin(m, n_in, n_out, dtype, assert_close):
    rng = np.random.default_rng(m * n_in + n_out)
    A_prev, W, b, dA = (rng.standard_normal(shape).astype(dtype) for shape in
                        ((m, n_in), (n_out, n_in), (n_out,), (m, n_out)))
    results = []
    for impl in (kernels, reference):
        Z, A = np.empty((m, n_out), dtype), np.empty((m, n_out), dtype)
        impl.dense_forward(A_prev, W, b, Z, A, "relu")
        dZ, dW, db = np.empty_like(Z), np.empty_like(W), np.empty_like(b)
        dA_prev = np.empty_like(A_prev)
        impl.dense_backward(dA, Z, A, A_prev, W, dZ, dW, db, dA_prev, "relu")
        results.append((Z, A, dW, db, dA_prev))
    magnitude = (np.abs(A_prev) @ np.abs(W).T, None, np.abs(dA).T @ np.abs(A_prev), None,
                 np.abs(dA) @ np.abs(W))
    for actual, expected, scale in zip(*results, magnitude):
        assert_close(actual, expected, dtype, scale)


BUILDS = ("base", "fma", "avx512")  # narrowest first


@pytest.mark.parametrize("build", BUILDS[:-1])
def test_the_narrower_builds_pass_the_same_tests(build, tmp_path):
    """FASTNN_VECTOR_BUILD=base (16-byte vectors, no FMA) or =fma (32-byte vectors)
    runs a build this CPU would otherwise skip for a wider one: this file's tests, in a
    fresh interpreter (started outside the checkout, so that it imports the installed
    fastnn)."""
    if BUILDS.index(build) >= BUILDS.index(vector_build()):
        pytest.skip(f"the {build} build already runs here (or is wider than this CPU)")
    run_this_file_with("FASTNN_VECTOR_BUILD", build, "vector_build", "not narrower_builds",
                       tmp_path)


def run_this_file_with(variable, value, probe, tests, tmp_path):
    """This file's tests selected by `tests` (pytest -k), in a fresh interpreter with
    variable=value in its environment, started outside the checkout (so that it
    imports the installed fastnn), after fastnn._kernels.<probe>() there says value
    took; their output."""
    env = dict(os.environ, **{variable: value})
    check = subprocess.run([sys.executable, "-c", f"from fastnn._kernels import {probe};"
                            f"print({probe}())"], env=env, cwd=tmp_path,
                           capture_output=True, text=True)
    assert check.stdout.strip() == value, check.stderr
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          __file__, "-k", tests], env=env, cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout[-3000:]
