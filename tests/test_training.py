"""MLP training: steps, fit and partial_fit against the NumPy twin, optimizers' state,
the symmetry lesson, history, callbacks, early stopping, divergence, and the bad
arguments fit refuses without changing the model."""
import copy
import dataclasses
import io
import math
import sys
import warnings
from contextlib import redirect_stdout
from types import SimpleNamespace

import numpy as np
import pytest

import fastnn
from fastnn import ACTIVATIONS, MLP, datasets, reference
from fastnn.model.inputs import targets as as_targets
from fastnn.model.training import record
from fastnn.optim import SGD, Adam, Momentum
from helpers import (OUTPUT_WIDTH, X, Xnan, snapshot, step_settings, toy_problem,
                     unchanged, y)

STEP_OPTIONS = {
    "sgd": SGD(0.1),
    "momentum": Momentum(0.05, 0.9),
    "nesterov": Momentum(0.05, 0.9, nesterov=True),
    "adam": Adam(0.01, 0.9, 0.999, 1e-8),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", STEP_OPTIONS)
@pytest.mark.parametrize("output", OUTPUT_WIDTH)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_training_steps_match_the_numpy_twin(activation, output, optimizer, dtype):
    X, y = toy_problem(output, m=20)
    net = MLP([3, 6, 5, OUTPUT_WIDTH[output]], activation=activation, output=output,
              dtype=dtype, seed=2)
    X = X.astype(dtype)
    targets = as_targets(net, y, len(X))
    engine, twin = net.engine, reference.Engine.twin_of(net)
    params, twin_params = engine.params, twin.params
    settings = [step_settings(e, STEP_OPTIONS[optimizer], 0.01) for e in (engine, twin)]
    updates = [e.updater(s) for e, s in zip((engine, twin), settings)]
    for t in range(1, 6):
        losses = [e.step(X, targets, u) for e, u in zip((engine, twin), updates)]
        assert settings[0].state.steps[0] == settings[1].state.steps[0] == t
        assert losses[0] == pytest.approx(losses[1], rel=1e-5 if dtype == "float32" else 1e-11)
    scale = np.abs(twin_params).max()
    tolerance = 2e-5 if dtype == "float32" else 1e-11
    np.testing.assert_allclose(params, twin_params, atol=tolerance * scale, rtol=0)
    out_k = np.empty((len(X), net.n_outputs), dtype)
    out_r = np.empty_like(out_k)
    engine.predict(X, out_k)
    twin.predict(X, out_r)
    np.testing.assert_allclose(out_k, out_r, atol=tolerance, rtol=0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("rows", [1, 2, 33])
def test_gemm_layers_with_and_without_a_transposed_copy_of_w_match_the_twin(rows, dtype):
    """Layers wider than the thin ones take GEMM: those of at most 16,384 weights
    (40x20, 30x40 here) multiply by a copy of W^T made for the call when there is more
    than one row, the larger ones (130x130) by W itself: loss, gradients and
    predictions against the NumPy twin."""
    rng = np.random.default_rng(3)
    net = MLP([20, 40, 30, 130, 130, 3], activation="tanh", output="softmax",
              dtype=dtype, seed=4)
    X = rng.standard_normal((rows, 20)).astype(dtype)
    labels = rng.integers(0, 3, rows).astype(np.intp)
    twin = reference.Engine.twin_of(net)
    grads, twin_grads = np.empty_like(net.engine.params), np.empty_like(twin.params)
    loss = net.engine.loss_and_gradients(X, labels, grads)
    tolerance = 2e-5 if dtype == "float32" else 1e-11
    assert loss == pytest.approx(twin.loss_and_gradients(X, labels, twin_grads),
                                 rel=tolerance)
    np.testing.assert_allclose(grads, twin_grads, rtol=0,
                               atol=tolerance * np.abs(twin_grads).max())
    np.testing.assert_allclose(net.engine.predict(X), twin.predict(X), rtol=0,
                               atol=tolerance)


def test_fit_runs_the_same_steps_as_the_twin_driven_by_the_same_loop():
    X, y = datasets.make_moons(64, seed=4)
    net = MLP([2, 8, 1], activation="tanh", seed=5)
    twin = reference.Engine.twin_of(net)
    net.fit(X, y, epochs=3, batch_size=16, lr=0.2, optimizer="momentum", shuffle=False)
    Y = y.reshape(-1, 1).astype(float)
    settings = step_settings(twin, Momentum(0.2, 0.9))
    update = twin.updater(settings)
    for _ in range(3):
        for start in range(0, 64, 16):
            twin.step(X[start:start + 16], Y[start:start + 16], update)
    assert settings.state.steps[0] == net.step_count == 12
    np.testing.assert_allclose(net.engine.params, twin.params, rtol=0, atol=1e-12)


def test_shuffled_fit_steps_through_each_epochs_permutation_of_the_seeded_generator():
    """Each epoch draws one permutation from the model's generator and steps through
    it in batches (the last one short): the same as the twin fed those rows."""
    X, y = datasets.make_moons(50, seed=6)
    net = MLP([2, 8, 1], activation="relu", seed=7)
    twin = reference.Engine.twin_of(net)
    draws = copy.deepcopy(net.rng)  # the generator as it stands after initialisation
    net.fit(X, y, epochs=2, batch_size=16, lr=0.2, shuffle=True)
    Y = y.reshape(-1, 1).astype(float)
    settings = step_settings(twin, SGD(0.2))
    update = twin.updater(settings)
    for _ in range(2):
        order = draws.permutation(50)
        for start in range(0, 50, 16):
            rows = order[start:start + 16]
            twin.step(X[rows], Y[rows], update)
    assert settings.state.steps[0] == net.step_count == 8
    np.testing.assert_allclose(net.engine.params, twin.params, rtol=0, atol=1e-12)


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
    assert np.array_equal(nets[0].engine.params, nets[1].engine.params)
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


def test_an_epochs_record_is_seen_whole_or_not_at_all_between_any_two_bytecodes():
    """What a signal handler that saves the model while its thread records an epoch
    (engine.write lets its reads in) can see: handlers run between bytecodes."""
    history = {"loss": [0.5, 0.4], "val_loss": [math.nan, 0.3], "val_score": [math.nan, 0.9]}
    seen = set()

    def trace(frame, event, arg):
        frame.f_trace_opcodes = True
        if frame.f_code is record.__code__ and event == "opcode":
            seen.add(tuple(map(tuple, history.values())))
        return trace

    sys.settrace(trace)
    try:
        record(history, 3, {"loss": 0.2, "val_loss": 0.25, "val_score": 0.95})
    finally:
        sys.settrace(None)
    assert history == {"loss": [0.5, 0.4, 0.2], "val_loss": [math.nan, 0.3, 0.25],
                       "val_score": [math.nan, 0.9, 0.95]}
    assert {tuple(map(len, state)) for state in seen} == {(2, 2, 2), (3, 3, 3)}


def test_the_history_lists_grow_in_place():
    """A list taken from net.history keeps growing with later epochs and fits."""
    X, y = datasets.make_moons(60, seed=2)
    net = MLP([2, 4, 1], seed=2)
    net.fit(X, y, epochs=2)
    losses = net.history["loss"]
    net.fit(X, y, epochs=3, validation_data=(X, y))
    assert losses is net.history["loss"] and len(losses) == 5


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
    assert len(net.history["loss"]) == 1 and net.step_count == 8
    net.partial_fit(X, y, batch_size=8)
    assert net.step_count == 16  # the optimizer's state carries on
    out = io.StringIO()
    with redirect_stdout(out):
        net.fit(X, y, epochs=2, verbose=True)
    assert out.getvalue().splitlines()[0].startswith("epoch 3: loss ")


# ---------------------------------------------------------------- overflow and divergence

def test_divergence_stops_with_a_clear_error_and_finite_weights():
    X, y = datasets.make_circles(200, seed=0)
    X = X * 1e4
    net = MLP([2, 64, 64, 1], dtype="float32", seed=0)
    with pytest.raises(fastnn.DivergenceError, match=r"epoch \d+.*smaller learning rate"):
        net.fit(X.astype(np.float32), y, epochs=50, lr=1e3)
    assert np.isfinite(net.engine.params).all()


def test_an_update_that_overflows_the_weights_is_reported():
    net = MLP([1, 1], output="identity", dtype="float32", seed=0)
    X, y = np.ones((4, 1), np.float32), np.full(4, 5, np.float32)
    with pytest.raises(fastnn.DivergenceError, match="an update overflowed the weights"):
        net.fit(X, y, epochs=1, batch_size=None, lr=1e38)
    assert net.step_count == 1  # the update was made, and counted


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("at", [2, 26, 98, 113, 150, 362])
def test_an_adam_update_that_overflows_one_weight_is_reported(dtype, at):
    """Adam's pass itself tells that it overflowed, wherever the one weight that does
    lies: in any vector of a round (26: float64's from the estimates), in a last vector
    or among the values after the vectors of a W or b (113 in float32, 362: b2[2]). In
    W1 (120 values; at % 3 == 2: a weight of the third input, which is 0) a weight of
    -0.9 times the largest value takes a finite step of a quarter of it; elsewhere (b1
    from 120, W2 from 160, b2 from 360) a first moment of the largest value over a
    second moment of 0 makes the step itself infinite. The others step by about lr."""
    big = np.finfo(dtype).max
    net = MLP([3, 40, 5], output="identity", dtype=dtype, seed=0)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((32, 3)).astype(dtype), rng.standard_normal((32, 5))
    X[:, 2] = 0
    net.fit(X, y, epochs=1, batch_size=None, optimizer="adam")
    lr = 1.0
    if at < 120:
        W = net.layers[0].W.copy()
        W.flat[at] = -0.9 * big
        net.layers[0].W = W
        lr = 1e-3  # step 2 of a gradient of 0: lr / (1 - b1^2) b1 m / eps
    m, v = net.optimizer_state.arrays
    m[at], v[at] = big if at >= 120 else big / 4 * 1e-8 * (1 - 0.9 ** 2) / (lr * 0.9), 0
    with pytest.raises(fastnn.DivergenceError, match="an update overflowed the weights"):
        net.fit(X, y, epochs=1, batch_size=None, optimizer="adam", lr=lr)
    assert ~np.isfinite(net.engine.params[at])
    assert np.isfinite(np.delete(net.engine.params, at)).all()


def test_a_huge_float32_weight_decay_penalty_is_computed_in_double():
    net = MLP([2, 1], output="identity", dtype="float32", seed=0)
    net.layers[0].W = np.full((1, 2), 2e19, np.float32)  # its square overflows float32
    net.fit(np.zeros((4, 2), np.float32), np.zeros(4, np.float32), epochs=1,
            batch_size=None, lr=0.1, weight_decay=0.5)
    assert net.step_count == 1 and np.isfinite(net.history["loss"][0])
    assert np.allclose(net.layers[0].W, 2e19 * (1 - 0.1 * 0.5))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_penalty_sums_every_weight_squared_in_double(dtype):
    """Layers of 210 and 350 weights (whole vector blocks and ragged tails), some of
    whose float32 squares overflow: the loss of zero inputs and targets is the
    penalty alone, 0.5 wd sum W^2, which must match NumPy's sum in float64."""
    net = MLP([3, 70, 5], output="identity", dtype=dtype, seed=0)
    rng = np.random.default_rng(0)
    for layer in net.layers:
        W = rng.standard_normal(layer.W.shape) * 10.0 ** rng.integers(-3, 20, layer.W.shape)
        layer.W = W.astype(dtype)
    weights = np.concatenate([layer.W.ravel().astype(np.float64) for layer in net.layers])
    with np.errstate(over="ignore"):
        assert dtype == "float64" or np.isinf(np.square(weights.astype(dtype))).any()
    wd = 1e-30
    loss = net.engine.loss(np.zeros((4, 3), dtype), np.zeros((4, 5), dtype),
                           weight_decay=wd)
    assert loss == pytest.approx(0.5 * wd * np.sum(weights ** 2), rel=1e-12)


# ---------------------------------------------------------------- bad arguments

FIT_CASES = [
    (dict(X=Xnan), ValueError, r"X must be finite: 2 values are NaN or infinite, the first is X\[4, 1\] = nan"),
    (dict(X=X[:, :2]), ValueError, r"X must have 3 features \(columns\), like the model's input layer; got shape \(10, 2\)"),
    (dict(X=X[0]), ValueError, r"X must be 2-D \(m, 3\); got shape \(3,\) \(one sample: X.reshape\(1, -1\)\)"),
    (dict(X=X[:0], y=y[:0]), ValueError, r"X must hold at least one sample"),
    (dict(X=X.astype(np.float32)), TypeError, r"X has dtype float32 but the model is float64; convert it"),
    (dict(X=X.astype(complex)), TypeError, r"X must hold real numbers; got dtype complex128"),
    (dict(X=np.array([["a"] * 3] * 10)), TypeError, r"X must hold real numbers"),
    (dict(y=y[:9]), ValueError, r"y must have one row per sample of X \(10\); got shape \(9,\)"),
    (dict(y=y + 1), ValueError, r"y must hold 0/1 labels for a sigmoid output; got values \[2\]"),
    (dict(y=np.where(y == 1, np.nan, 0)), ValueError, r"y must be finite: 5 values"),
    (dict(y=np.c_[y, y]), ValueError, r"y must have shape \(10,\) or \(10, 1\) for 1 output unit; got \(10, 2\)"),
    (dict(epochs=0), ValueError, r"epochs must be at least 1; got 0"),
    (dict(epochs=2.0), TypeError, r"epochs must be an integer"),
    (dict(batch_size=0), ValueError, r"batch_size must be at least 1; got 0"),
    (dict(lr=-0.1), ValueError, r"lr must be in \(0, inf\]; got -0.1"),
    (dict(lr=float("nan")), ValueError, r"lr must be finite"),
    (dict(weight_decay=-1.0), ValueError, r"weight_decay must be in \[0, inf\]"),
    (dict(optimizer="rmsprop"), ValueError, r"optimizer must be one of 'sgd', 'momentum', 'nesterov', 'adam'"),
    (dict(optimizer="sgd", beta1=0.5), TypeError, r"optimizer 'sgd' takes no option 'beta1'"),
    (dict(optimizer="adam", beta2=1.0), ValueError, r"beta2 must be in \[0, 1\)"),
    (dict(shuffle="yes"), TypeError, r"shuffle must be True or False"),
    (dict(validation_data=X), TypeError, r"validation_data must be a pair"),
    (dict(validation_data=(X[:, :2], y)), ValueError, r"validation_data\[0\] must have 3 features"),
    (dict(validation_data=(X, y[:3])), ValueError, r"validation_data\[1\] must have one row per sample"),
    (dict(patience=3), ValueError, r"patience \(early stopping\) needs validation_data"),
    (dict(patience=3, callbacks=5), ValueError, r"patience \(early stopping\) needs"),
    (dict(callbacks=[1]), TypeError, r"callbacks must be callables"),
]


@pytest.mark.parametrize("change,error,pattern", FIT_CASES)
def test_fit_rejects_and_leaves_the_model_as_it_was(change, error, pattern):
    net = MLP([3, 4, 2, 1], seed=0)
    net.fit(X, y, epochs=2, optimizer="momentum")
    before = snapshot(net)
    kwargs = dict(X=X, y=y, epochs=2, optimizer="momentum")
    kwargs.update(change)
    with pytest.raises(error, match=pattern):
        net.fit(**kwargs)
    assert unchanged(net, before)


def test_resetting_the_optimizer_during_training_is_refused():
    """From a callback (as from another thread) reset_optimizer would leave the
    running fit stepping with a state the model no longer has: it is refused."""
    net = MLP([3, 4, 1], seed=0)
    errors = []

    def reset(n, epoch, logs):
        with pytest.raises(RuntimeError, match="inside its own training") as caught:
            n.reset_optimizer()
        errors.append(caught.value)

    net.fit(X, y, epochs=2, optimizer="adam", callbacks=[reset])
    assert len(errors) == 2 and net.step_count == 2 * 1  # one full batch of 10 per epoch
    net.reset_optimizer()  # after training, it forgets
    assert net.step_count == 0 and net.optimizer is None


@dataclasses.dataclass(frozen=True)
class AdamCodedSGD(SGD):
    """An optimizer that claims Adam's code (two state arrays) with SGD's none."""
    code = 3


@pytest.mark.parametrize("optimizer", [AdamCodedSGD(0.1), SimpleNamespace(
    name="odd", code=1, n_states=0, lr=0.1, hyper=lambda: ()), SimpleNamespace(
    name="unknown", code=9, n_states=0, lr=0.1, hyper=lambda: ())])
def test_an_optimizer_that_does_not_fit_the_compiled_update_is_refused(optimizer):
    net = MLP([3, 4, 1], seed=0)
    settings = step_settings(net.engine, optimizer)
    with pytest.raises(ValueError, match="does not fit the compiled step"):
        net.engine.updater(settings)
    if isinstance(optimizer, SGD):
        net.fit(X, y, epochs=1, optimizer="sgd")
        before = snapshot(net)
        with pytest.raises(ValueError, match="does not fit the compiled step"):
            net.fit(X, y, epochs=1, optimizer=optimizer)
        assert unchanged(net, before) and net.optimizer == SGD()


def test_read_only_optimizer_state_and_outputs_are_refused():
    net = MLP([3, 4, 1], seed=0)
    settings = step_settings(net.engine, Momentum(0.1))
    settings.state.arrays[0].flags.writeable = False
    with pytest.raises(ValueError, match=r"state.arrays\[0\] must be writeable"):
        net.engine.updater(settings)
    settings = step_settings(net.engine, SGD(0.1))
    settings.state.steps.flags.writeable = False
    with pytest.raises(TypeError, match="state.steps must be a writeable int64 array"):
        net.engine.updater(settings)
    grads = np.zeros_like(net.engine.params)
    grads.flags.writeable = False
    with pytest.raises(ValueError, match="grads must be writeable"):
        net.engine.loss_and_gradients(X, as_targets(net, y, len(X)), grads)


def test_float32_sigmoid_targets_are_checked_before_the_cast():
    """y = 1e300 for a float32 model: the 0/1 check speaks first, with no overflow
    warning from a cast made before it."""
    net = MLP([3, 1], dtype="float32", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="y must hold 0/1 labels"):
            net.fit(X.astype(np.float32), np.where(y == 1, 1e300, 0), epochs=1)


def test_a_bare_callable_is_one_callback_and_a_non_callable_is_refused():
    calls = []
    net = MLP([3, 4, 1], seed=0)
    net.fit(X, y, epochs=3, callbacks=lambda n, epoch, logs: calls.append(epoch))
    assert calls == [1, 2, 3]
    before = snapshot(net)
    with pytest.raises(TypeError, match="callbacks must be a callable or a sequence"):
        net.fit(X, y, epochs=1, callbacks=3)
    assert unchanged(net, before)


def test_a_fit_started_from_its_own_callback_is_refused_saying_so():
    net = MLP([3, 4, 1], seed=0)
    errors = []

    def nested(n, epoch, logs):
        for call in (lambda: n.fit(X, y, epochs=1), lambda: n.partial_fit(X, y),
                     lambda: n.fit_lbfgs(X, y), lambda: n.load_state_dict(n.state_dict())):
            with pytest.raises(RuntimeError, match="inside its own training") as caught:
                call()
            errors.append(str(caught.value))

    net.fit(X, y, epochs=1, callbacks=[nested])
    assert len(errors) == 4 and not any("another thread" in e for e in errors)
