"""Sample weights, the Poisson output, sparse inputs and L-BFGS: the compiled kernels
and engine against the NumPy twin, finite differences and repeated rows."""
import numpy as np
import pytest
import scipy.optimize
import scipy.sparse

from fastnn import MLP, kernels, reference
from fastnn.model import TrainingSettings
from fastnn.model.inputs import targets as as_targets
from fastnn.optim import SGD, Adam, OptimizerState
from helpers import OUTPUT_WIDTH, snapshot, toy_problem, unchanged

LOSS_KERNELS = ["sigmoid_binary_cross_entropy", "softmax_cross_entropy",
                "mean_squared_error"]


def _loss_inputs(name, dtype, m=7, k=3, labels=False, seed=0):
    rng = np.random.default_rng(seed)
    Z = (rng.standard_normal((m, k)) * 3).astype(dtype)
    if name == "sigmoid_binary_cross_entropy":
        Y = rng.integers(0, 2, (m, k)).astype(dtype)
    elif name == "softmax_cross_entropy":
        Y = rng.integers(0, k, m) if labels else rng.dirichlet(np.ones(k), m).astype(dtype)
    else:
        Y = rng.standard_normal((m, k)).astype(dtype)
    return Z, Y, rng.uniform(0, 3, m).astype(dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name, labels", [(name, False) for name in LOSS_KERNELS]
                         + [("softmax_cross_entropy", True)])
def test_weighted_loss_kernels_match_the_twin(name, labels, dtype):
    Z, Y, w = _loss_inputs(name, dtype, labels=labels)
    outs = {}
    for impl in (kernels, reference):
        A, dZ = np.empty_like(Z), np.empty_like(Z)
        outs[impl] = getattr(impl, name)(Z, Y, A, dZ, w), A, dZ
    rtol = 1e-5 if dtype == "float32" else 1e-12
    for got, want in zip(outs[kernels], outs[reference]):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * 1e-3)


@pytest.mark.parametrize("name", LOSS_KERNELS)
def test_integer_weights_are_repeated_rows(name):
    """The independent truth: weight 2 is the row twice, weight 0 the row removed."""
    Z, Y, _ = _loss_inputs(name, "float64")
    w = np.array([0, 1, 2, 3, 0, 1, 2], np.float64)
    rows = np.repeat(np.arange(len(Z)), w.astype(int))
    A, dZ = np.empty_like(Z), np.empty_like(Z)
    weighted = getattr(kernels, name)(Z, Y, A, dZ, w)
    A2, dZ2 = np.empty_like(Z[rows]), np.empty_like(Z[rows])
    repeated = getattr(kernels, name)(Z[rows], Y[rows], A2, dZ2)
    assert weighted == pytest.approx(repeated, rel=1e-13)
    summed = np.zeros_like(dZ)
    np.add.at(summed, rows, dZ2)  # the repeated rows' gradients land on their original
    np.testing.assert_allclose(dZ, summed, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("bad, error", [
    (np.full(7, -1.0), ValueError), (np.zeros(7), ValueError), (np.ones(6), ValueError),
    (np.array([np.nan] * 7), ValueError), (np.ones(7, np.float32), TypeError),
    ([1.0] * 7, TypeError)])
def test_loss_kernels_refuse_bad_weights(bad, error):
    Z, Y, _ = _loss_inputs("mean_squared_error", "float64")
    with pytest.raises(error, match="sample_weight"):
        kernels.mean_squared_error(Z, Y, np.empty_like(Z), np.empty_like(Z), bad)


def _net(output, dtype="float64", seed=1):
    return MLP([3, 5, 4, OUTPUT_WIDTH[output]], activation="tanh", output=output,
               dtype=dtype, seed=seed)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("output", OUTPUT_WIDTH)
def test_weighted_engine_loss_and_gradients_match_the_twin(output, dtype):
    X, y = toy_problem(output, m=20)
    net = _net(output, dtype)
    X = X.astype(dtype)
    T = as_targets(net, y, len(X))
    w = np.random.default_rng(3).uniform(0, 2, len(X)).astype(dtype)
    twin = reference.Engine.twin_of(net)
    g, g_twin = np.empty_like(net.engine.params), np.empty_like(net.engine.params)
    loss = net.engine.loss_and_gradients(X, T, g, w, 0.3)
    loss_twin = twin.loss_and_gradients(X, T, g_twin, w, 0.3)
    rtol = 2e-5 if dtype == "float32" else 1e-11
    assert loss == pytest.approx(loss_twin, rel=rtol)
    assert net.engine.loss(X, T, w, 0.3) == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(g, g_twin, rtol=rtol, atol=rtol * 1e-2)


@pytest.mark.parametrize("output", OUTPUT_WIDTH)
def test_weighted_gradients_match_finite_differences(output):
    X, y = toy_problem(output, m=15)
    net = _net(output)
    w = np.random.default_rng(4).uniform(0, 2, len(X))
    grads = np.concatenate([a.ravel() for pair in net.gradients(X, y, 0.1, w)
                            for a in pair])
    params = net.engine.params

    def objective(point):
        saved = params.copy()
        params[...] = point
        value = net.loss(X, y, w) + 0.05 * sum(np.sum(layer.W ** 2) for layer in net.layers)
        params[...] = saved
        return value

    numeric = scipy.optimize.approx_fprime(params.copy(), objective, 1e-7)
    np.testing.assert_allclose(grads, numeric, rtol=1e-4, atol=1e-6)


def _settings(net, optimizer, weight_decay, decay_per_sample):
    state = OptimizerState(optimizer, len(net.engine.params), net.dtype)
    return TrainingSettings(optimizer=optimizer, weight_decay=weight_decay,
                            decay_per_sample=decay_per_sample, state=state)


@pytest.mark.parametrize("decay_per_sample", [False, True])
@pytest.mark.parametrize("optimizer", [SGD(0.1), Adam(0.01)])
@pytest.mark.parametrize("output", OUTPUT_WIDTH)
def test_weighted_steps_match_the_twin(output, optimizer, decay_per_sample):
    X, y = toy_problem(output, m=16)
    net = _net(output)
    T = as_targets(net, y, len(X))
    w = np.random.default_rng(5).uniform(0, 2, len(X))
    twin = reference.Engine.twin_of(net)
    settings = _settings(net, optimizer, 0.2, decay_per_sample)
    twin_settings = _settings(net, optimizer, 0.2, decay_per_sample)
    update, twin_update = net.engine.updater(settings), twin.updater(twin_settings)
    for rows in (slice(0, 10), slice(10, 16), slice(0, 16)):
        loss = net.engine.step(X[rows], T[rows], update, w[rows])
        assert loss == pytest.approx(twin.step(X[rows], T[rows], twin_update, w[rows]),
                                     rel=1e-11)
    np.testing.assert_allclose(net.engine.params, twin.params, rtol=1e-10, atol=1e-13)
    assert settings.state.steps[0] == twin_settings.state.steps[0] == 3


def test_decay_per_sample_divides_by_the_batch_weight():
    X, y = toy_problem("identity", m=8)
    net, other = _net("identity"), _net("identity")
    T = as_targets(net, y, 8)
    w = np.full(8, 0.5)  # total weight 4: per-sample decay 2.0 is a plain decay 0.5
    net.engine.step(X, T, net.engine.updater(_settings(net, SGD(0.1), 2.0, True)), w)
    other.engine.step(X, T, other.engine.updater(_settings(other, SGD(0.1), 0.5, False)),
                      w)
    np.testing.assert_allclose(net.engine.params, other.engine.params, rtol=1e-14)


def test_a_batch_of_zero_weight_changes_nothing():
    X, y = toy_problem("softmax", m=6)
    net = _net("softmax")
    settings = _settings(net, Adam(0.1), 0.5, True)
    before = net.engine.params.copy()
    loss = net.engine.step(X, as_targets(net, y, 6), net.engine.updater(settings),
                           np.zeros(6))
    assert loss == 0.0 and settings.state.steps[0] == 0
    np.testing.assert_array_equal(net.engine.params, before)


def test_fit_with_integer_weights_is_fit_on_repeated_rows():
    X, y = toy_problem("softmax", m=15, seed=3)
    w = np.random.default_rng(6).integers(0, 4, 15)
    rows = np.repeat(np.arange(15), w)
    weighted, repeated = _net("softmax", seed=7), _net("softmax", seed=7)
    weighted.fit(X, y, epochs=30, batch_size=None, optimizer="adam", lr=0.05,
                 weight_decay=0.01, sample_weight=w)
    repeated.fit(X[rows], y[rows], epochs=30, batch_size=None, optimizer="adam", lr=0.05,
                 weight_decay=0.01)
    np.testing.assert_allclose(weighted.engine.params, repeated.engine.params,
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(weighted.history["loss"], repeated.history["loss"],
                               rtol=1e-10)
    assert weighted.score(X, y, w) == pytest.approx(repeated.score(X[rows], y[rows]))


@pytest.mark.parametrize("bad, error", [
    (-np.ones(10), ValueError), (np.zeros(10), ValueError), (np.ones(9), ValueError),
    (np.r_[np.ones(9), np.inf], ValueError), (["a"] * 10, TypeError),
    (np.full(10, 1e300), ValueError)])
def test_fit_refuses_bad_weights_and_changes_nothing(bad, error):
    X, y = toy_problem("sigmoid", m=10)
    net = _net("sigmoid", "float32" if bad[0] == 1e300 else "float64")
    net.fit(X.astype(net.dtype), y, epochs=1, optimizer="adam")
    before = snapshot(net)
    with pytest.raises(error, match="sample_weight"):
        net.fit(X.astype(net.dtype), y, epochs=2, optimizer="adam", sample_weight=bad)
    assert unchanged(net, before)


# ---------------------------------------------------------------- the Poisson output

def test_poisson_output_predicts_exp_and_refuses_negative_targets():
    X, y = toy_problem("poisson", m=10)
    net = _net("poisson")
    logits = MLP([3, 5, 4, 2], activation="tanh", output="identity", seed=1)
    np.testing.assert_allclose(net.predict(X), np.exp(logits.predict(X)), rtol=1e-14)
    with pytest.raises(ValueError, match="y must be >= 0"):
        net.fit(X, -y, epochs=1)
    history = net.fit(X, y, epochs=200, batch_size=None, optimizer="adam", lr=0.02)
    assert history["loss"][-1] < 0.5 * history["loss"][0]


# ---------------------------------------------------------------- sparse inputs

@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_sparse_fit_and_predict_equal_dense(fmt, shuffle):
    rng = np.random.default_rng(8)
    X = rng.standard_normal((30, 6)) * (rng.random((30, 6)) < 0.3)
    y = rng.integers(0, 3, 30)
    sparse = scipy.sparse.random_array((1, 1)).asformat(fmt).__class__(X)
    dense_net, sparse_net = (MLP([6, 5, 3], output="softmax", seed=2) for _ in range(2))
    w = rng.uniform(0.5, 2, 30)
    dense_net.fit(X, y, epochs=3, batch_size=7, shuffle=shuffle, sample_weight=w)
    sparse_net.fit(sparse, y, epochs=3, batch_size=7, shuffle=shuffle, sample_weight=w)
    np.testing.assert_array_equal(dense_net.engine.params, sparse_net.engine.params)
    np.testing.assert_array_equal(sparse_net.predict_proba(sparse),
                                  sparse_net.predict_proba(X))
    assert sparse_net.score(sparse, y) == sparse_net.score(X, y)


def test_sparse_predictions_go_in_chunks_of_rows():
    rng = np.random.default_rng(9)
    X = scipy.sparse.random(1000, 5, density=0.2, format="csr", random_state=1)
    net = MLP([5, 4, 1], seed=0)
    np.testing.assert_array_equal(net.predict_proba(X), net.predict_proba(X.toarray()))
    assert rng is not None


def test_sparse_inputs_are_checked():
    net = MLP([4, 3, 1], seed=0)
    X = scipy.sparse.csr_array(np.eye(4))
    with pytest.raises(TypeError, match="X has dtype float32"):
        net.predict(X.astype(np.float32))
    with pytest.raises(ValueError, match="4 features"):
        net.predict(scipy.sparse.csr_array(np.eye(3)))
    broken = scipy.sparse.csr_array(np.eye(4))
    broken.indices[1] = 99  # a column outside the matrix: refused, never written
    with pytest.raises(ValueError, match="not a valid sparse matrix"):
        net.predict(broken)
    X_nan = scipy.sparse.csr_array(np.eye(4))
    X_nan.data[2] = np.nan
    with pytest.raises(ValueError, match="X"):
        net.fit(X_nan, np.ones(4), epochs=1)


# ---------------------------------------------------------------- L-BFGS

@pytest.mark.parametrize("output", OUTPUT_WIDTH)
def test_lbfgs_reaches_a_stationary_point_of_the_objective(output):
    X, y = toy_problem(output, m=40)
    net = _net(output)
    w = np.random.default_rng(2).uniform(0.5, 1.5, 40)
    start = net.loss(X, y, w)
    result = net.fit_lbfgs(X, y, max_iter=3000, tol=1e-6, weight_decay=0.05,
                           sample_weight=w)
    grads = np.concatenate([a.ravel() for pair in net.gradients(X, y, 0.05, w)
                            for a in pair])
    penalty = 0.025 * sum(np.sum(layer.W ** 2) for layer in net.layers)
    assert result.fun == pytest.approx(net.loss(X, y, w) + penalty, rel=1e-12)
    np.testing.assert_array_equal(result.x, net.engine.params)
    # scipy stops on the gradient (gtol) or on a relative change of f below 2e-9
    assert result.success and np.abs(grads).max() <= 1e-4 and result.fun < start
    assert len(net.history["loss"]) == result.nit
    assert net.history["loss"][-1] == pytest.approx(result.fun)


def test_lbfgs_on_sparse_equals_dense():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((2500, 4)) * (rng.random((2500, 4)) < 0.5)
    y = (X[:, 0] - X[:, 1] > 0).astype(int)
    dense_net, sparse_net = MLP([4, 3, 1], seed=1), MLP([4, 3, 1], seed=1)
    dense = dense_net.fit_lbfgs(X, y, max_iter=15)
    sparse = sparse_net.fit_lbfgs(scipy.sparse.csr_array(X), y, max_iter=15)
    assert sparse.fun == pytest.approx(dense.fun, rel=1e-9)
    np.testing.assert_allclose(sparse_net.engine.params, dense_net.engine.params,
                               rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("argument, value, error", [
    ("max_iter", 0, ValueError), ("max_fun", 1.5, TypeError), ("tol", -1.0, ValueError),
    ("weight_decay", -1.0, ValueError), ("verbose", 1, TypeError)])
def test_lbfgs_refuses_bad_arguments(argument, value, error):
    X, y = toy_problem("sigmoid")
    net = _net("sigmoid")
    before = snapshot(net)
    with pytest.raises(error, match=argument):
        net.fit_lbfgs(X, y, **{argument: value})
    assert unchanged(net, before)


def _csr(data, indices, indptr, shape):
    """A CSR matrix with these arrays, set after construction (scipy checks them then)."""
    matrix = scipy.sparse.csr_matrix(shape)
    matrix.data, matrix.indices, matrix.indptr = (
        np.asarray(data, float), np.asarray(indices, np.int32), np.asarray(indptr, np.int32))
    return matrix


@pytest.mark.parametrize("matrix", [
    _csr([], [], [0, 10**7, 0], (2, 3)),     # no values, row pointers far outside
    _csr([1.0], [5], [0, 1, 1], (2, 3)),     # a column outside the matrix
    _csr([1.0, 2.0], [0, 1], [0, 2, 1], (2, 3)),  # row pointers going back
    _csr([1.0], [0], [1, 1, 1], (2, 3)),     # not starting at 0
])
def test_malformed_sparse_matrices_are_refused_not_read(matrix):
    net = MLP([3, 4, 1], seed=0)
    before = snapshot(net)
    for call in (lambda: net.predict_proba(matrix), lambda: net.fit(matrix, [0, 1]),
                 lambda: net.fit_lbfgs(matrix, [0, 1])):
        with pytest.raises(ValueError, match="not a valid sparse matrix"):
            call()
    assert unchanged(net, before)


def test_gathering_is_bounded_whatever_the_output():
    from fastnn.model.inputs import SparseRows, gather_rows
    rows = SparseRows(_csr([1.0], [99], [0, 1], (1, 100)), np.dtype(np.float64), "X")
    with pytest.raises(ValueError, match="out must have shape"):
        gather_rows(rows, np.array([0]), np.empty((1, 2)))
    with pytest.raises(ValueError, match="outside"):
        gather_rows(rows, np.array([1]), np.empty((1, 100)))


def test_sparse_input_is_only_read():
    matrix = _csr([1.0, 0.0, 2.0], [0, 1, 2], [0, 2, 3], (2, 3))  # an explicit zero
    stored = matrix.data.copy(), matrix.indices.copy(), matrix.indptr.copy()
    MLP([3, 2, 1], seed=0).fit(matrix, [0, 1], epochs=1)
    for array, kept in zip((matrix.data, matrix.indices, matrix.indptr), stored):
        np.testing.assert_array_equal(array, kept)


def test_a_one_dimensional_sparse_array_is_refused():
    with pytest.raises(ValueError, match="must be 2-D"):
        MLP([4, 2, 1], seed=0).predict(scipy.sparse.coo_array(np.array([1.0, 0, 2, 0])))


@pytest.mark.parametrize("scale", [2.3e-308, 1e-200, 1e200])
def test_weights_of_any_normal_scale_give_the_unweighted_loss(scale):
    X, y = toy_problem("softmax", m=6)
    net = _net("softmax")
    assert net.loss(X, y, np.full(6, scale)) == pytest.approx(net.loss(X, y), rel=1e-12)


@pytest.mark.parametrize("dtype, largest", [("float64", 2e-308), ("float32", 1e-38)])
def test_weights_that_are_all_subnormal_are_refused(dtype, largest):
    """The engine reads subnormal numbers as 0 (test_subnormals.py): such weights would
    be all 0, and a loss of 0 / 0."""
    X, y = toy_problem("identity", m=6)
    X, y, net = X.astype(dtype), y.astype(dtype), _net("identity", dtype=dtype)
    weights = np.r_[np.full(5, largest / 4), largest]
    for call in (lambda: net.loss(X, y, weights), lambda: net.gradients(X, y, 0, weights),
                 lambda: net.fit(X, y, epochs=1, sample_weight=weights)):
        with pytest.raises(ValueError, match=f"sample_weight must have a weight of at "
                           f"least .*; the largest is {largest:.6g}"):
            call()
    assert net.step_count == 0


def test_weights_whose_sum_overflows_are_refused():
    X, y = toy_problem("identity", m=6)
    net = _net("identity")
    with pytest.raises(ValueError, match="sample_weight must have a finite sum"):
        net.loss(X, y, np.full(6, 1e308))
    T = as_targets(net, y, 6)
    with pytest.raises(ValueError, match="weights must have a finite sum"):
        net.engine.loss(X, T, np.full(6, 1e308))


def test_sparse_duplicates_are_summed_and_checked_before_training():
    """scipy adds up duplicate entries: two finite 1e308 at one place are inf, which is
    refused naming that place before any step, not mid-epoch from a batch."""
    rows, cols = np.r_[np.arange(600), 500], np.r_[np.zeros(600, int), 0]
    values = np.r_[np.ones(600), 1e308]
    values[500] = 1e308
    duplicated = scipy.sparse.coo_matrix((values, (rows, cols)), shape=(600, 2)).tocsr()
    net = MLP([2, 3, 1], seed=0)
    before = snapshot(net)
    with pytest.raises(ValueError, match=r"X\[500, 0\] = inf"):
        net.fit(duplicated, np.ones(600), epochs=1, shuffle=False, optimizer="adam")
    assert unchanged(net, before)


def test_sparse_errors_name_the_place_in_the_matrix():
    X = scipy.sparse.lil_matrix((600, 3))
    X[:, 0] = 1.0
    X[300, 1] = np.nan
    net = MLP([3, 2, 1], seed=0)
    for call in (lambda: net.predict(X), lambda: net.fit(X, np.ones(600), epochs=1),
                 lambda: net.fit_lbfgs(X, np.ones(600))):
        with pytest.raises(ValueError, match=r"X\[300, 1\] = nan"):
            call()
    big = scipy.sparse.csr_matrix(np.eye(600, 3) * 0 + (np.arange(600) == 300)[:, None])
    for layer in net.layers:
        layer.W = np.full(layer.W.shape, 1e200) * (-1.0) ** np.arange(layer.W.shape[1])
    with pytest.raises(ValueError, match=r"output for X\[300\] is not finite"):
        net.predict(big * 1e200)


def test_ctrl_c_during_lbfgs_leaves_the_last_accepted_iterate(monkeypatch):
    import fastnn.model.lbfgs as lbfgs
    X, y = toy_problem("softmax", m=30)
    net = _net("softmax")
    real, calls, accepted = lbfgs._loss_and_gradients, [0], []

    def interrupted(*args):
        calls[0] += 1
        if calls[0] == 12:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(lbfgs, "_loss_and_gradients", interrupted)
    monkeypatch.setattr(net, "_lbfgs_iteration", lambda verbose: lambda loss: (
        accepted.append((loss, net.engine.params.copy()))))
    with pytest.raises(KeyboardInterrupt):
        net.fit_lbfgs(X, y, max_iter=100)
    assert accepted  # some iterations were accepted before the interrupt
    monkeypatch.undo()
    assert net.loss(X, y) == pytest.approx(accepted[-1][0], rel=1e-12)
