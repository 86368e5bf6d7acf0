"""Ctrl-C (SIGINT) during training stops it at a step boundary, with the history
holding every epoch whose steps all ran."""
import os
import signal
import sys
import threading

import numpy as np
import pytest

from fastnn import MLP, datasets

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGINT") or sys.platform == "win32",
                                reason="needs POSIX signals")


def _interrupted_fit(delay, **fit_options):
    X, y = datasets.make_circles(300, seed=3)
    net = MLP([2, 64, 64, 1], seed=3)
    timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, epochs=1_000_000, lr=0.1, shuffle=False, **fit_options)
    timer.join()
    return net, X, y


@pytest.mark.parametrize("validation", [False, True])
@pytest.mark.parametrize("delay", [0.05, 0.13, 0.21, 0.29, 0.37])
def test_ctrl_c_during_full_batch_training_keeps_every_completed_epoch(delay, validation):
    """One step per epoch: the history has exactly one entry per step taken, wherever
    the interrupt landed (in the step, in the bookkeeping, in the validation)."""
    X, y = datasets.make_circles(100, seed=4)
    net, X_train, y_train = _interrupted_fit(
        delay, batch_size=None, validation_data=(X, y) if validation else None)
    steps = net.step_count
    assert steps > 0 and len(net.history["loss"]) == steps
    if validation:
        assert len(net.history["val_loss"]) == len(net.history["val_score"]) == steps
    replay = MLP([2, 64, 64, 1], seed=3)
    replay.fit(X_train, y_train, epochs=steps, batch_size=None, lr=0.1, shuffle=False)
    assert np.array_equal(replay.engine.params, net.engine.params)  # `steps` whole steps
    assert replay.history["loss"] == net.history["loss"]


@pytest.mark.parametrize("delay", [0.1, 0.3])
def test_ctrl_c_during_mini_batches_keeps_the_completed_epochs_only(delay):
    net, _, _ = _interrupted_fit(delay, batch_size=50)  # six steps per epoch
    assert len(net.history["loss"]) == net.step_count // 6


def test_ctrl_c_held_back_by_a_matplotlib_import_reaches_the_handler_that_was_there():
    """plots._ctrl_c_deferred: nothing during the block, the handler in place before it
    called once at its end, and that handler back in place; other threads cannot set
    handlers and are left alone."""
    from fastnn import plots
    calls = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))
    try:
        handler = signal.getsignal(signal.SIGINT)
        with plots._ctrl_c_deferred():
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
            assert calls == []
        assert calls == [signal.SIGINT] and signal.getsignal(signal.SIGINT) is handler
        with plots._ctrl_c_deferred():
            pass
        assert calls == [signal.SIGINT]
        errors = []
        def in_a_thread():
            try:
                with plots._ctrl_c_deferred():
                    pass
            except BaseException as error:  # noqa: BLE001 (reported below)
                errors.append(error)
        thread = threading.Thread(target=in_a_thread)
        thread.start()
        thread.join()
        assert errors == []
    finally:
        signal.signal(signal.SIGINT, previous)
    with pytest.raises(KeyboardInterrupt):  # Python's own handler: the interrupt
        with plots._ctrl_c_deferred():
            signal.raise_signal(signal.SIGINT)
