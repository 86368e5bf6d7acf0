"""MLP: gradients, training against the NumPy twin, the symmetry lesson, files."""
import copy
import io
import math
import tracemalloc
from contextlib import redirect_stdout

import numpy as np
import pytest

import fastnn
from fastnn import ACTIVATIONS, MLP, datasets, reference
from fastnn._kernels import ACTIVATIONS as ACT_CODES, OUTPUTS as OUT_CODES

OUTPUT_WIDTH = {"sigmoid": 1, "softmax": 3, "identity": 2}


def toy_problem(output, m=12, n_in=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, n_in))
    k = OUTPUT_WIDTH[output]
    if output == "sigmoid":
        y = rng.integers(0, 2, m)
    elif output == "softmax":
        y = rng.integers(0, k, m)
    else:
        y = rng.standard_normal((m, k))
    return X, y


def numeric_gradients(net, X, y, weight_decay, numeric_gradient):
    """Central differences of loss + 0.5 wd sum ||W||^2, parameter by parameter."""
    def objective():
        penalty = sum(float(np.sum(layer.W ** 2)) for layer in net.layers)
        return net.loss(X, y) + 0.5 * weight_decay * penalty

    return [(numeric_gradient(objective, layer.W), numeric_gradient(objective, layer.b))
            for layer in net.layers]


def flat(grads):
    return np.concatenate([np.concatenate([dW.ravel(), db]) for dW, db in grads])


@pytest.mark.parametrize("output", ["sigmoid", "softmax", "identity"])
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


def twin_engines(net):
    """The compiled engine of net and a fastnn.reference twin over a copy of it."""
    params = net._params.copy()
    codes = [ACT_CODES[a] for a in net.activations] + [ACT_CODES["identity"]]
    twin = reference.Engine(params, net.layer_sizes, codes, OUT_CODES[net.output],
                            net.negative_slope)
    return net._engine, net._params, twin, params


STEP_OPTIONS = {
    "sgd": (0.1, 0.0, 0.0, 0.0, 0.0),
    "momentum": (0.05, 0.9, 0.0, 0.0, 0.0),
    "nesterov": (0.05, 0.9, 0.0, 0.0, 0.0),
    "adam": (0.01, 0.0, 0.9, 0.999, 1e-8),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", STEP_OPTIONS)
@pytest.mark.parametrize("output", ["sigmoid", "softmax", "identity"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_training_steps_match_the_numpy_twin(activation, output, optimizer, dtype):
    X, y = toy_problem(output, m=20)
    net = MLP([3, 6, 5, OUTPUT_WIDTH[output]], activation=activation, output=output,
              dtype=dtype, seed=2)
    X = X.astype(dtype)
    targets = net._targets(y, len(X))
    engine, params, twin, twin_params = twin_engines(net)
    lr, momentum, beta1, beta2, eps = STEP_OPTIONS[optimizer]
    buffers = {side: [np.zeros_like(params) for _ in range(3)] for side in ("k", "r")}
    counters = {side: np.zeros(1, np.int64) for side in ("k", "r")}
    for t in range(1, 6):
        losses = [
            e.step(X, targets, *buffers[side], optimizer, lr, momentum, beta1, beta2,
                   eps, counters[side], 0.01)
            for e, side in ((engine, "k"), (twin, "r"))]
        assert counters["k"][0] == counters["r"][0] == t
        assert losses[0] == pytest.approx(losses[1], rel=1e-5 if dtype == "float32" else 1e-11)
    scale = np.abs(twin_params).max()
    tolerance = 2e-5 if dtype == "float32" else 1e-11
    np.testing.assert_allclose(params, twin_params, atol=tolerance * scale, rtol=0)
    out_k = np.empty((len(X), net.n_outputs), dtype)
    out_r = np.empty_like(out_k)
    engine.predict(X, out_k)
    twin.predict(X, out_r)
    np.testing.assert_allclose(out_k, out_r, atol=tolerance, rtol=0)


def test_fit_runs_the_same_steps_as_the_twin_driven_by_the_same_loop():
    X, y = datasets.make_moons(64, seed=4)
    net = MLP([2, 8, 1], activation="tanh", seed=5)
    _, _, twin, twin_params = twin_engines(net)
    net.fit(X, y, epochs=3, batch_size=16, lr=0.2, optimizer="momentum", shuffle=False)
    Y = y.reshape(-1, 1).astype(float)
    velocity, grads = np.zeros_like(twin_params), np.zeros_like(twin_params)
    t = np.zeros(1, np.int64)
    for _ in range(3):
        for start in range(0, 64, 16):
            twin.step(X[start:start + 16], Y[start:start + 16], grads, velocity, grads,
                      "momentum", 0.2, 0.9, 0, 0, 0, t, 0.0)
    assert t[0] == net._steps[0] == 12
    np.testing.assert_allclose(net._params, twin_params, rtol=0, atol=1e-12)


def test_shuffled_fit_steps_through_each_epochs_permutation_of_the_seeded_generator():
    """Each epoch draws one permutation from the model's generator and steps through
    it in batches (the last one short): the same as the twin fed those rows."""
    X, y = datasets.make_moons(50, seed=6)
    net = MLP([2, 8, 1], activation="relu", seed=7)
    _, _, twin, twin_params = twin_engines(net)
    draws = copy.deepcopy(net._rng)  # the generator as it stands after initialisation
    net.fit(X, y, epochs=2, batch_size=16, lr=0.2, shuffle=True)
    Y = y.reshape(-1, 1).astype(float)
    grads, t = np.zeros_like(twin_params), np.zeros(1, np.int64)
    for _ in range(2):
        order = draws.permutation(50)
        for start in range(0, 50, 16):
            rows = order[start:start + 16]
            twin.step(X[rows], Y[rows], grads, grads, grads, "sgd", 0.2, 0, 0, 0, 0, t, 0.0)
    assert t[0] == net._steps[0] == 8
    np.testing.assert_allclose(net._params, twin_params, rtol=0, atol=1e-12)


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


# ---------------------------------------------------------------- lessons and behaviour

def test_zero_init_keeps_units_identical_and_the_loss_at_ln2():
    X, y = datasets.make_circles(300, noise=0.05, seed=1)  # 150 of each class
    net = MLP([2, 10, 5, 1], activation="relu", init="zeros", seed=0)
    history = net.fit(X, y, epochs=200, batch_size=None, lr=0.5)
    np.testing.assert_allclose(history["loss"], math.log(2), rtol=1e-12)
    for layer in net.layers[:-1]:
        assert (layer.W == layer.W[0]).all() and (layer.b == layer.b[0]).all()
    assert net.score(X, y) == 0.5


def test_zero_init_sigmoid_units_move_but_stay_identical():
    X, y = datasets.make_moons(90, seed=2)
    y[:20] = 1  # unbalanced, so the weights do move
    net = MLP([2, 6, 4, 1], activation="sigmoid", init="zeros", seed=0)
    net.fit(X, y, epochs=50, batch_size=16, lr=0.5, optimizer="momentum")
    for layer in net.layers[:-1]:
        assert np.abs(layer.W).max() > 1e-3
        np.testing.assert_allclose(layer.W, np.broadcast_to(layer.W[0], layer.W.shape),
                                   rtol=1e-12, atol=1e-15)


def test_he_relu_learns_circles_and_the_same_seed_gives_identical_weights():
    X, y = datasets.make_circles(300, noise=0.05, seed=1)
    nets = []
    for _ in range(2):
        net = MLP([2, 10, 5, 1], activation="relu", init="he", seed=3)
        net.fit(X, y, epochs=300, batch_size=32, lr=0.1)
        nets.append(net)
    assert nets[0].score(X, y) >= 0.95
    assert np.array_equal(nets[0]._params, nets[1]._params)
    assert nets[0].history == nets[1].history


def test_float32_training_works_and_stays_float32():
    X, y = datasets.make_spiral(300, 3, noise=0.1, seed=0)
    net = MLP([2, 32, 32, 3], activation="tanh", output="softmax", dtype="float32", seed=0)
    history = net.fit(X.astype(np.float32), y, epochs=150, lr=0.01, optimizer="adam")
    assert history["loss"][-1] < 0.3 * history["loss"][0]
    assert net.score(X.astype(np.float32), y) > 0.9
    assert all(l.W.dtype == np.float32 and l.b.dtype == np.float32 for l in net.layers)
    assert net.predict_proba(X.astype(np.float32)).dtype == np.float32
    with pytest.raises(TypeError, match="X has dtype float64 but the model is float32"):
        net.predict(X)


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


def test_history_has_one_entry_per_epoch_with_or_without_validation(tmp_path):
    X, y = datasets.make_moons(60, seed=2)
    net = MLP([2, 4, 1], seed=2)
    net.fit(X, y, epochs=2)
    assert net.history["val_loss"] == net.history["val_score"] == []
    after = []  # the loss on (X, y) at the end of each validated epoch
    net.fit(X, y, epochs=3, validation_data=(X, y),
            callbacks=[lambda n, epoch, logs: after.append(n.loss(X, y))])
    net.fit(X, y, epochs=1)
    assert [len(v) for v in net.history.values()] == [6, 6, 6]
    for key in ("val_loss", "val_score"):
        missing = np.isnan(net.history[key])
        assert missing.tolist() == [True, True, False, False, False, True]
    assert net.history["val_loss"][2:5] == pytest.approx(after, rel=1e-12)
    net.save(tmp_path / "net.npz")
    np.testing.assert_equal(fastnn.load(tmp_path / "net.npz").history, net.history)


def test_early_stopping_restores_the_best_weights_and_callbacks_run():
    X, y = datasets.make_moons(200, noise=0.3, seed=0)
    Xv, yv = datasets.make_moons(100, noise=0.3, seed=1)
    net = MLP([2, 64, 64, 1], seed=0)
    seen = []
    net.fit(X, y, epochs=400, lr=0.3, validation_data=(Xv, yv), patience=5,
            callbacks=[lambda n, epoch, logs: seen.append((epoch, logs["val_loss"]))])
    val = net.history["val_loss"]
    assert len(val) < 400 and len(val) == len(seen) == len(net.history["val_score"])
    best = int(np.argmin(val))
    assert len(val) - 1 - best == 5
    assert net.loss(Xv, yv) == pytest.approx(val[best], rel=1e-12)

    stopper = MLP([2, 4, 1], seed=0)
    stopper.fit(X, y, epochs=50, callbacks=[lambda n, epoch, logs: epoch == 3])
    assert len(stopper.history["loss"]) == 3


def test_partial_fit_and_verbose():
    X, y = datasets.make_xor(64, seed=0)
    net = MLP([2, 8, 1], seed=0)
    net.partial_fit(X, y, batch_size=8)
    assert len(net.history["loss"]) == 1 and net._steps[0] == 8
    net.partial_fit(X, y, batch_size=8)
    assert net._steps[0] == 16  # the optimizer's state carries on
    out = io.StringIO()
    with redirect_stdout(out):
        net.fit(X, y, epochs=2, verbose=True)
    assert out.getvalue().splitlines()[0].startswith("epoch 3: loss ")


def test_divergence_stops_with_a_clear_error_and_finite_weights():
    X, y = datasets.make_circles(200, seed=0)
    X = X * 1e4
    net = MLP([2, 64, 64, 1], dtype="float32", seed=0)
    with pytest.raises(fastnn.DivergenceError, match=r"epoch \d+.*smaller learning rate"):
        net.fit(X.astype(np.float32), y, epochs=50, lr=1e3)
    assert np.isfinite(net._params).all()


def test_a_training_step_allocates_nothing_once_warm():
    X, y = datasets.make_spiral(1000, 3, seed=0)
    net = MLP([2, 32, 32, 3], output="softmax", seed=0)
    net.fit(X, y, epochs=1, batch_size=1, optimizer="adam")  # warm
    targets = net._targets(y, len(X))
    states = [np.zeros_like(net._params) for _ in range(2)]
    counter = np.zeros(1, np.int64)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for t in range(1000):
            net._engine.step(X[t:t + 1], targets[t:t + 1], net._grads, *states, "adam",
                             1e-3, 0.0, 0.9, 0.999, 1e-8, counter, 0.0)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert growth < 4096


# ---------------------------------------------------------------- state and files

def test_state_dict_uses_torch_sequential_names_and_round_trips():
    net = MLP([3, 5, 4, 2], activation=["tanh", "relu"], output="softmax", seed=0)
    sd = net.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    assert sd["2.weight"].shape == (4, 5) and sd["4.bias"].shape == (2,)
    other = MLP([3, 5, 4, 2], activation=["tanh", "relu"], output="softmax", seed=9)
    other.load_state_dict(sd)
    assert np.array_equal(other._params, net._params)
    bad = dict(sd, **{"2.weight": np.zeros((5, 4))})
    before = other._params.copy()
    with pytest.raises(ValueError, match=r"2.weight must have shape"):
        other.load_state_dict(bad)
    with pytest.raises(TypeError, match="0.bias has dtype float32"):
        other.load_state_dict(dict(sd, **{"0.bias": sd["0.bias"].astype(np.float32)}))
    with pytest.raises(ValueError, match=r"missing \['4.bias'\]"):
        other.load_state_dict({k: v for k, v in sd.items() if k != "4.bias"})
    assert np.array_equal(other._params, before)


@pytest.mark.parametrize("seed", [7, np.random.RandomState(7)], ids=["Generator", "RandomState"])
@pytest.mark.parametrize("optimizer", ["sgd", "nesterov", "adam"])
def test_save_load_round_trips_and_training_continues_as_if_never_stopped(tmp_path, seed,
                                                                         optimizer):
    X, y = datasets.make_spiral(120, 3, seed=1)
    make = lambda: MLP([2, 12, 3], activation="leaky_relu", output="softmax",
                       negative_slope=0.05, seed=seed if isinstance(seed, int)
                       else np.random.RandomState(7))
    straight = make()
    straight.fit(X, y, epochs=6, batch_size=16, optimizer=optimizer, weight_decay=1e-3)
    stopped = make()
    stopped.fit(X, y, epochs=3, batch_size=16, optimizer=optimizer, weight_decay=1e-3)
    path = tmp_path / "model.npz"
    stopped.save(path)
    loaded = fastnn.load(path)
    assert np.array_equal(loaded._params, stopped._params)
    assert loaded.history == stopped.history and loaded.layer_sizes == stopped.layer_sizes
    loaded.fit(X, y, epochs=3, batch_size=16, optimizer=optimizer, weight_decay=1e-3)
    assert np.array_equal(loaded._params, straight._params)
    assert loaded.history == straight.history
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary left
