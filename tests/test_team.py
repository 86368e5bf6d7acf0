"""fastnn's own threads: an epoch in one compiled call (Engine.epoch), its steps split
into slices of the batch on a team of threads, BLAS on one thread meanwhile.

The truths: the same steps taken one call each (Engine.step) and by the NumPy twin,
the same bits for the same n_threads whatever else runs, BLAS's limit put back, and
on scikit-learn's digits the same accuracy from one thread or two."""
import os
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import fastnn
from fastnn import MLP, reference
from fastnn._engine import default_threads, permutation
from fastnn.model.inputs import targets
from fastnn.model.training import TrainingSettings
from fastnn.optim import Adam, OptimizerState

#: wide enough that a step of 256 rows splits into slices (see _engine._parts)
SIZES = [64, 128, 10]


def _data(m=600, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, SIZES[0]))
    return X, rng.integers(0, SIZES[-1], m)


def _adam(engine, weight_decay=0.0):
    optimizer = Adam(1e-3)
    return engine.updater(TrainingSettings(optimizer=optimizer, weight_decay=weight_decay,
                                           state=OptimizerState(optimizer,
                                                                len(engine.params),
                                                                engine.params.dtype)))


def _scipy_blas_threads():
    return next(lib["num_threads"] for lib in threadpool_info()
                if lib["user_api"] == "blas" and "scipy.libs" in lib["filepath"])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("weighted", [False, True])
def test_an_epoch_takes_the_steps_that_step_takes_one_by_one(dtype, weighted):
    X, y = _data()
    X = X.astype(dtype)
    weights = np.random.default_rng(1).uniform(0, 2, len(X)).astype(dtype) \
        if weighted else None
    order = np.random.default_rng(2).permutation(len(X)).astype(np.intp)
    whole, stepped = (MLP(SIZES, output="softmax", dtype=dtype, seed=0) for _ in range(2))
    T = targets(whole, y, len(X))
    update = _adam(whole.engine, weight_decay=0.01)
    update.start_epoch()
    last = whole.engine.epoch(X, T, update, 100, order, weights)
    one_by_one = _adam(stepped.engine, weight_decay=0.01)
    one_by_one.start_epoch()
    for start in range(0, len(X), 100):
        rows = order[start:start + 100]
        loss = stepped.engine.step(X[rows], T[rows], one_by_one,
                                   None if weights is None else weights[rows])
    assert np.array_equal(whole.engine.params, stepped.engine.params)
    assert last == loss and update.epoch_loss == one_by_one.epoch_loss
    assert update.batches == one_by_one.batches == 6


@pytest.mark.parametrize("n_threads", [2, 3, 64])
def test_a_step_in_slices_matches_the_twin(n_threads, assert_close):
    X, y = _data()
    net = MLP(SIZES, output="softmax", seed=0)
    twin = reference.Engine.twin_of(net)
    T = targets(net, y, len(X))
    update, twin_update = _adam(net.engine, 0.01), _adam(twin, 0.01)
    net.engine.epoch(X, T, update, 256, None, None, n_threads)
    for start in range(0, len(X), 256):
        twin.step(X[start:start + 256], T[start:start + 256], twin_update)
    assert_close(net.engine.params, twin.params, np.float64)


@pytest.mark.parametrize("n_threads", [2, 3])
def test_the_members_of_a_team_share_the_penalty_and_report_the_twins_loss(n_threads):
    """The L2 penalty's sum of squares runs in chunks fixed by the network (three for
    its 9,610 parameters), shared among the members: a large weight decay makes it
    most of the loss, which must be the twin's."""
    X, y = _data(256)
    net = MLP(SIZES, output="softmax", seed=0)
    twin = reference.Engine.twin_of(net)
    T = targets(net, y, len(X))
    penalty = 0.5 * 5.0 * sum(np.sum(layer.W ** 2) for layer in net.layers)
    loss = net.engine.epoch(X, T, _adam(net.engine, 5.0), 256, None, None, n_threads)
    twin_loss = twin.step(X, T, _adam(twin, 5.0))
    assert penalty > 0.5 * twin_loss
    assert loss == pytest.approx(twin_loss, rel=1e-13)


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_the_same_n_threads_and_seed_give_the_same_bits(n_threads):
    X, y = _data()
    runs = []
    for _ in range(3):
        net = MLP(SIZES, output="softmax", seed=0)
        net.fit(X, y, epochs=3, batch_size=256, optimizer="adam", n_threads=n_threads)
        runs.append((net.engine.params.copy(), net.history["loss"]))
    assert all(np.array_equal(p, runs[0][0]) and h == runs[0][1] for p, h in runs)


def test_fits_from_many_threads_at_once_give_the_bits_of_one_fit():
    """Eight fits of two threads each on a 2-core machine: the helpers' budget runs
    out, slices then run on fewer threads, and the bits stay those of n_threads."""
    X, y = _data()

    def fit(out, index):
        net = MLP(SIZES, output="softmax", seed=0)
        net.fit(X, y, epochs=2, batch_size=256, optimizer="adam", n_threads=2)
        out[index] = net.engine.params

    alone = [None]
    fit(alone, 0)
    results = [None] * 8
    threads = [threading.Thread(target=fit, args=(results, i)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(np.array_equal(r, alone[0]) for r in results)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux and two CPUs")
@pytest.mark.parametrize("divide", ["estimates", "mixed"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_team_of_one_gives_the_bits_of_a_team_of_two(tmp_path, dtype, divide):
    """n_threads=2 on one CPU (a team of one: no helper to be had) and on two: the
    same bits, also where the parameters' ranges would cut a layer off a multiple of
    32 values from its start (W of [64, 100, 10]'s second layer starts at 6,500),
    which would change which values Adam's vector kernel takes by its refined path
    (both ways that take it: FASTNN_ADAM_DIVIDE=divider takes the exact formula
    throughout)."""
    code = (f"import os, sys, numpy as np\n"
            f"if sys.argv[1] == 'one': os.sched_setaffinity(0, {{min(os.sched_getaffinity(0))}})\n"
            f"from fastnn import MLP\n"
            f"rng = np.random.default_rng(0)\n"
            f"X = rng.standard_normal((1000, 64)).astype('{dtype}')\n"
            f"y = rng.integers(0, 10, 1000)\n"
            f"net = MLP([64, 100, 10], output='softmax', dtype='{dtype}', seed=0)\n"
            f"net.fit(X, y, epochs=20, batch_size=100, optimizer='adam', n_threads=2)\n"
            f"np.save(sys.argv[2], net.engine.params)\n")
    env = dict(os.environ, FASTNN_ADAM_DIVIDE=divide)
    for team in ("one", "two"):
        done = subprocess.run([sys.executable, "-c", code, team, str(tmp_path / team)],
                              capture_output=True, text=True, cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "one.npy"), np.load(tmp_path / "two.npy"))


def test_blas_threads_are_put_back_and_set_the_default():
    X, y = _data(300)
    with threadpool_limits(limits=2, user_api="blas"):
        assert default_threads() == min(2, fastnn._engine.cpu_count())
        MLP(SIZES, output="softmax", seed=0).fit(X, y, epochs=1, n_threads=2)
        assert _scipy_blas_threads() == 2
    with threadpool_limits(limits=1, user_api="blas"):
        assert default_threads() == 1
        MLP(SIZES, output="softmax", seed=0).fit(X, y, epochs=1, n_threads=2)
        assert _scipy_blas_threads() == 1


def test_one_thread_or_two_reach_the_same_accuracy_on_digits():
    sklearn = pytest.importorskip("sklearn")  # noqa: F841
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16, y, random_state=0)
    scores = {}
    for n_threads in (1, 2):
        model = fastnn.MLPClassifier(hidden_layer_sizes=(100,), batch_size=200, max_iter=60,
                                     random_state=0, n_threads=n_threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: max_iter is reached
            scores[n_threads] = model.fit(X_train, y_train).score(X_test, y_test)
    assert scores[1] > 0.95 and abs(scores[1] - scores[2]) <= 0.02


def test_a_diverging_step_in_slices_keeps_the_weights_from_before_it():
    X, y = _data()
    net = MLP(SIZES, output="softmax", seed=0)
    before = net.engine.params.copy()
    with pytest.raises(fastnn.DivergenceError):
        net.fit(X * 1e306, y, epochs=1, batch_size=256, n_threads=2)  # logits overflow
    assert np.array_equal(net.engine.params, before) and net.step_count == 0


def test_a_step_whose_slices_sum_to_infinity_changes_nothing():
    """Two identical float32 slices with a finite loss (3.9e39, summed in double) and
    gradients that overflow float32 once summed: the sum's check (slices are not
    scanned one by one) refuses the step, NaN and the weights as they were, not an
    update with infinite gradients."""
    net = MLP(SIZES, output="identity", dtype="float32", seed=0)
    half = np.random.default_rng(0).standard_normal((128, SIZES[0])).astype(np.float32)
    X, Y = np.vstack([half, half]) * np.float32(3e19), np.zeros((256, SIZES[-1]), np.float32)
    assert np.isfinite(net.engine.loss(X, Y))
    before = net.engine.params.copy()
    assert np.isnan(net.engine.epoch(X, Y, _adam(net.engine), 256, None, None, 2))
    assert np.array_equal(net.engine.params, before)


def test_a_fit_diverging_in_slices_stops_where_it_does_on_one_thread():
    X, y = _data()
    steps = {}
    for n_threads in (1, 2):
        net = MLP(SIZES, output="softmax", seed=0)
        with pytest.raises(fastnn.DivergenceError, match="became nan"):
            net.fit(X, y, epochs=1, batch_size=256, lr=1e308, n_threads=n_threads)
        assert np.isfinite(net.engine.params).all()  # those from before that step
        steps[n_threads] = net.step_count
    assert steps[1] == steps[2] >= 1


@pytest.mark.parametrize("bad, error, match", [
    (dict(n_threads=0), ValueError, "n_threads must be at least 1; got 0"),
    (dict(n_threads=65), ValueError, "n_threads must be at most 64; got 65"),
    (dict(n_threads=1.5), TypeError, "n_threads must be an integer"),
    (dict(n_threads=True), TypeError, "n_threads must be an integer"),
])
def test_fit_checks_n_threads(bad, error, match):
    X, y = _data(50)
    net = MLP(SIZES, output="softmax", seed=0)
    before = net.engine.params.copy()
    with pytest.raises(error, match=match):
        net.fit(X, y, epochs=1, **bad)
    with pytest.raises(error, match=match):
        net.partial_fit(X, y, **bad)
    assert np.array_equal(net.engine.params, before)


GENERATORS = {
    "PCG64": lambda seed: np.random.default_rng(seed),
    "MT19937": lambda seed: np.random.Generator(np.random.MT19937(seed)),
    "Philox": lambda seed: np.random.Generator(np.random.Philox(seed)),
    "SFC64": lambda seed: np.random.Generator(np.random.SFC64(seed)),
    "RandomState": lambda seed: np.random.RandomState(seed),
}


@pytest.mark.parametrize("m", [0, 1, 2, 331, 2 ** 17 + 5])
@pytest.mark.parametrize("kind", GENERATORS)
def test_the_compiled_permutation_is_numpys(kind, m):
    """The order an epoch draws itself is rng.permutation(m), and leaves rng where
    numpy's own draw leaves it."""
    ours, numpys = GENERATORS[kind](7), GENERATORS[kind](7)
    drawn = permutation(ours, m)
    assert drawn.dtype == np.intp and np.array_equal(drawn, numpys.permutation(m))
    assert ours.random_sample() == numpys.random_sample() if kind == "RandomState" \
        else ours.random() == numpys.random()


@pytest.mark.parametrize("rng, m, error, match", [
    (np.random.SeedSequence(0), 5, TypeError, "rng must be a numpy.random.Generator or "
                                              "RandomState; got SeedSequence"),
    (7, 5, TypeError, "got int"),
    (np.random.default_rng(0), -1, ValueError, "m must be >= 0; got -1"),
])
def test_permutation_checks_its_arguments(rng, m, error, match):
    with pytest.raises(error, match=match):
        permutation(rng, m)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_an_epoch_given_a_generator_steps_in_its_permutation(n_threads):
    """order=rng: the epoch draws rng.permutation(m) itself; the same bits as that
    order given, and rng left as that draw leaves it."""
    X, y = _data()
    drawn, given = (MLP(SIZES, output="softmax", seed=0) for _ in range(2))
    T = targets(drawn, y, len(X))
    rng, twin = np.random.default_rng(3), np.random.default_rng(3)
    updates = [_adam(net.engine) for net in (drawn, given)]
    last = drawn.engine.epoch(X, T, updates[0], 64, rng, None, n_threads)
    expected = given.engine.epoch(X, T, updates[1], 64, twin.permutation(len(X)), None,
                                  n_threads)
    assert np.array_equal(drawn.engine.params, given.engine.params) and last == expected
    assert rng.random() == twin.random()


def test_an_epoch_given_a_generator_subclass_steps_in_its_own_permutation():
    """A Generator subclass that overrides permutation: the epoch takes the order it
    returns (as the sparse epochs, which draw in Python, do), in any integer dtype and
    layout (int32, as numpy 1.x's permutation returns on Windows; a reversed view)."""

    class Reversed(np.random.Generator):
        def permutation(self, x, axis=0):
            return np.arange(x, dtype=np.int32)[::-1]

    X, y = _data()
    ours, given = (MLP(SIZES, output="softmax", seed=0) for _ in range(2))
    T = targets(ours, y, len(X))
    updates = [_adam(net.engine) for net in (ours, given)]
    ours.engine.epoch(X, T, updates[0], 64, Reversed(np.random.PCG64(3)))
    given.engine.epoch(X, T, updates[1], 64, np.arange(len(X), dtype=np.intp)[::-1].copy())
    assert np.array_equal(ours.engine.params, given.engine.params)


def test_the_engines_calls_refuse_none_for_an_array():
    """None where an array goes is a TypeError naming it (the compiled calls read
    arrays' fields directly: None's memory would have been read as one)."""
    X, y = _data(50)
    net = MLP(SIZES, output="softmax", seed=0)
    engine, T = net.engine, targets(net, y, 50)
    update = _adam(engine)
    calls = [(engine.step, (None, T, update), "X"), (engine.step, (X, None, update), "Y"),
             (engine.epoch, (None, T, update, 10), "X"),
             (engine.epoch, (X, None, update, 10), "Y"), (engine.predict, (None,), "X"),
             (engine.loss, (None, T), "X"), (engine.loss, (X, None), "Y"),
             (engine.loss_and_gradients, (X, T, None), "grads")]
    before = engine.params.copy()
    for call, args, name in calls:
        with pytest.raises(TypeError, match=name):
            call(*args)
    assert np.array_equal(engine.params, before)


def test_an_epoch_refused_draws_nothing():
    """Arguments refused before the draw: the generator is left untouched."""
    X, y = _data(50)
    net = MLP(SIZES, output="softmax", seed=0)
    rng, twin = np.random.default_rng(3), np.random.default_rng(3)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        net.engine.epoch(X, targets(net, y, 50), _adam(net.engine), 0, rng)
    with pytest.raises(ValueError):
        net.engine.epoch(X, targets(net, y, 49), _adam(net.engine), 10, rng)
    assert rng.random() == twin.random()


@pytest.mark.parametrize("order, batch_size, n_threads, match", [
    (np.arange(49), 10, 1, "order must be a C-contiguous np.intp array of 50"),
    (np.arange(50, dtype=np.int32), 10, 1, "order must be a C-contiguous np.intp"),
    (np.arange(100)[::2], 10, 1, "order must be a C-contiguous np.intp"),
    (np.r_[np.arange(49), 50], 10, 1, r"order\[49\] = 50"),
    (np.r_[-1, np.arange(49)], 10, 1, r"order\[0\] = -1"),
    (None, 0, 1, "batch_size must be >= 1; got 0"),
    (None, 10, 0, r"n_threads must be in \[1, 64\]; got 0"),
    (None, 10, 65, r"n_threads must be in \[1, 64\]; got 65"),
])
def test_epoch_checks_its_arguments(order, batch_size, n_threads, match):
    X, y = _data(50)
    net = MLP(SIZES, output="softmax", seed=0)
    update = _adam(net.engine)
    before = net.engine.params.copy()
    with pytest.raises(ValueError, match=match):
        net.engine.epoch(X, targets(net, y, 50), update, batch_size, order, None,
                         n_threads)
    assert np.array_equal(net.engine.params, before) and update.batches == 0


def test_the_estimators_take_n_threads():
    sklearn = pytest.importorskip("sklearn")  # noqa: F841
    X, y = _data(300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: max_iter is reached
        fits = [fastnn.MLPClassifier(hidden_layer_sizes=(128,), batch_size=256,
                                     max_iter=2, random_state=0, n_threads=2).fit(X, y)
                for _ in range(2)]
    assert np.array_equal(fits[0].model_.engine.params, fits[1].model_.engine.params)
    with pytest.raises(ValueError, match="n_threads"):
        fastnn.MLPRegressor(n_threads=0).fit(X, y.astype(float))


def test_signal_handlers_may_read_the_model_during_an_epoch(tmp_path):
    """A handler runs between two steps with the engine let go: one that predicts and
    saves (a checkpoint on a timer) does not wait for the epoch, which holds the model
    otherwise. In a subprocess, so that a hang is a failure, not a stuck suite."""
    script = textwrap.dedent(f"""
        import signal
        import numpy as np
        from fastnn import MLP, load
        X = np.random.default_rng(0).standard_normal((100_000, 64))
        y = np.random.default_rng(1).integers(0, 10, 100_000)
        net = MLP({SIZES}, output="softmax", seed=0)
        calls = []

        def checkpoint(signum, frame):
            calls.append(net.predict_proba(X[:3]).shape)
            net.save("checkpoint.npz")

        signal.signal(signal.SIGALRM, checkpoint)
        signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)
        net.fit(X, y, epochs=1, batch_size=32, n_threads=2)
        signal.setitimer(signal.ITIMER_REAL, 0)
        print(len(calls), load("checkpoint.npz").layer_sizes)
    """)
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, timeout=120,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    count, sizes = run.stdout.split(" ", 1)
    assert int(count) >= 1 and sizes.strip() == str(tuple(SIZES))


def test_a_forked_child_trains_on_threads_of_its_own(tmp_path):
    """Helpers sleep between fits; a fork's child has none of them and makes its own
    (multiprocessing's fork start, joblib's, dask's): it trains to the parent's bits."""
    script = textwrap.dedent(f"""
        import os
        import numpy as np
        from fastnn import MLP
        X = np.random.default_rng(0).standard_normal((600, 64))
        y = np.random.default_rng(1).integers(0, 10, 600)

        def fit():
            net = MLP({SIZES}, output="softmax", seed=0)
            net.fit(X, y, epochs=2, batch_size=256, optimizer="adam", n_threads=2)
            return net.engine.params

        parent = fit()
        child = os.fork()
        if child == 0:
            os._exit(0 if np.array_equal(fit(), parent) else 3)
        print(os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]))
    """)
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, timeout=120,
                         capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "0", run.stderr[-3000:]


# The scripts of the handler tests below: a model and its engine, and an Adam update.
_ENGINE_SCRIPT = f"""
import signal, threading, time
import numpy as np
from fastnn import MLP
from fastnn.model.inputs import targets
from fastnn.model.training import TrainingSettings
from fastnn.optim import Adam, OptimizerState
X = np.random.default_rng(0).standard_normal((40_000, 64))
y = np.random.default_rng(1).integers(0, 10, 40_000)
net = MLP({SIZES}, output="softmax", seed=0)
engine, T = net.engine, targets(net, y, 40_000)
state = OptimizerState(Adam(1e-3), len(engine.params), engine.params.dtype)
update = engine.updater(TrainingSettings(optimizer=Adam(1e-3), state=state))
update.start_epoch()
"""


def _run(tmp_path, script):
    run = subprocess.run([sys.executable, "-c", _ENGINE_SCRIPT + textwrap.dedent(script)],
                         cwd=tmp_path, timeout=120, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout.split()


def test_a_handler_that_steps_the_engine_leaves_the_epoch_whole(tmp_path):
    """A step from a signal handler (a bigger batch: a new workspace; the same update:
    one more step) neither frees the epoch's workspace under it nor rewinds the
    update's step counter."""
    taken = _run(tmp_path, """
        calls = []
        def handler(signum, frame):
            if not calls:
                calls.append(engine.step(X[:4000], T[:4000], update))
        signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, 0.01)
        engine.epoch(X, T, update, 256, None, None, 2)
        print(len(calls), update.batches, int(state.steps[0]))
    """)
    assert taken == ["1", "158", "158"]  # 157 batches of the epoch, one of the handler


def test_an_interrupt_while_the_epoch_waits_for_a_reader_is_raised(tmp_path):
    """A second signal lands while the epoch, after a handler, waits to take the model
    back from a slow reader: its KeyboardInterrupt is raised, not lost."""
    outcome = _run(tmp_path, """
        calls = []
        def handler(signum, frame):
            calls.append(1)
            if len(calls) == 1:
                entered = threading.Event()
                threading.Thread(target=lambda: engine.read(
                    lambda: (entered.set(), time.sleep(0.5)))).start()
                entered.wait()
                signal.setitimer(signal.ITIMER_REAL, 0.1)
            else:
                raise KeyboardInterrupt("second alarm")
        signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, 0.005)  # well inside the epoch (60+ ms)
        try:
            engine.epoch(X, T, update, 32, None, None, 2)
            print("returned")
        except KeyboardInterrupt as error:
            print(error, update.batches < 1250)
    """)
    assert outcome == ["second", "alarm", "True"]


def test_a_fork_during_a_fit_leaves_the_child_its_blas_threads(tmp_path):
    """A fork while another thread's fit holds BLAS at one thread: the child puts back
    the limit its parent set, and its default n_threads follows it."""
    outcome = _run(tmp_path, """
        import os
        from threadpoolctl import threadpool_info, threadpool_limits
        from fastnn._engine import cpu_count, default_threads
        def blas():
            return next(lib["num_threads"] for lib in threadpool_info()
                        if lib["user_api"] == "blas" and "scipy.libs" in lib["filepath"])
        threadpool_limits(2, user_api="blas")
        trainer = threading.Thread(target=lambda: net.fit(X, y, epochs=3, batch_size=32))
        trainer.start()
        time.sleep(0.3)
        child = os.fork()
        if child == 0:
            MLP(net.layer_sizes, output="softmax", seed=0).fit(X[:600], y[:600], n_threads=2)
            os._exit(10 * blas() + default_threads())
        code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
        trainer.join()
        print(code, 10 * 2 + min(2, cpu_count()))
    """)
    assert outcome[0] == outcome[1]
