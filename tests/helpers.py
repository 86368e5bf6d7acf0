"""Helpers shared by several test files: `from helpers import ...` (conftest.py puts this
folder on sys.path; under --import-mode=importlib test modules cannot import each other)."""
import contextlib
import threading

import numpy as np

from fastnn.model import TrainingSettings
from fastnn.optim import OptimizerState

OUTPUT_WIDTH = {"sigmoid": 1, "softmax": 3, "identity": 2, "poisson": 2}


def toy_problem(output, m=12, n_in=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, n_in))
    k = OUTPUT_WIDTH[output]
    if output == "sigmoid":
        y = rng.integers(0, 2, m)
    elif output == "softmax":
        y = rng.integers(0, k, m)
    elif output == "poisson":
        y = rng.poisson(1.5, (m, k))
    else:
        y = rng.standard_normal((m, k))
    return X, y


@contextlib.contextmanager
def paused_in_another_thread(net, X, y, epochs=3):
    """Fit net on (X, y) in another thread, paused in its first epoch's callback (the
    training lock held) for the length of the with block; the fit ends after it."""
    inside, go = threading.Event(), threading.Event()

    def hold(n, epoch, logs):
        if epoch == 1:
            inside.set()
            go.wait(10)

    trainer = threading.Thread(target=net.fit, args=(X, y),
                               kwargs=dict(epochs=epochs, callbacks=[hold]))
    trainer.start()
    try:
        assert inside.wait(10)
        yield
    finally:
        go.set()
        trainer.join()


# ---------------------------------------------------------------- bad-argument tables

#: The data of the bad-argument tables: ten samples of three features, 0/1 labels,
#: and X with a NaN at [4, 1] and an infinity at [7, 0].
X = np.random.default_rng(0).standard_normal((10, 3))
y = np.arange(10) % 2
Xnan = X.copy()
Xnan[4, 1] = np.nan
Xnan[7, 0] = np.inf


def snapshot(net):
    state = net.optimizer_state
    return (net.engine.params.copy(), {k: list(v) for k, v in net.history.items()},
            net.step_count, None if state is None else [s.copy() for s in state.arrays])


def step_settings(engine, optimizer, weight_decay=0.0):
    """TrainingSettings for driving engine.updater/step by hand: the optimizer with a
    fresh state (zeros, step 0) in the layout of the engine's parameters."""
    state = OptimizerState(optimizer, len(engine.params), engine.params.dtype)
    return TrainingSettings(optimizer=optimizer, weight_decay=weight_decay, state=state)


def unchanged(net, before):
    after = snapshot(net)
    return (np.array_equal(before[0], after[0]) and before[1] == after[1]
            and before[2] == after[2]
            and (before[3] is None) == (after[3] is None)
            and all(np.array_equal(a, b) for a, b in zip(before[3] or [], after[3] or [])))
