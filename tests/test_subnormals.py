"""The engine flushes subnormal numbers to zero while it computes (x86's FTZ and DAZ,
in every thread of a step), and leaves the caller's floating-point mode as it was.
Weight decay drives a dead unit's weights into the subnormal range, where each
operation on one costs a microcode assist; flushing keeps long trainings at speed."""
import os
import platform
import signal
import sys
import threading

import numpy as np
import pytest

from fastnn import MLP

pytestmark = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64", "i686", "i386"),
    reason="the flush is x86's (arm64's FZ is set too, but untested here)")

SUBNORMAL = {"float64": 1e-310, "float32": 1e-40}


def ieee_product_is_subnormal(dtype):
    """Whether NumPy, in this thread, still makes a subnormal: the caller's mode."""
    x = np.array([SUBNORMAL[dtype]], dtype) * np.array([1.0], dtype)
    return bool(x[0] != 0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_predict_and_loss_read_subnormal_weights_as_zero(dtype):
    net = MLP([3, 2], output="identity", dtype=dtype, init="zeros")
    net.layers[0].W = np.full((2, 3), SUBNORMAL[dtype], dtype)
    net.layers[0].b = np.array([0.5, -2.0], dtype)
    X = np.ones((4, 3), dtype)
    assert ieee_product_is_subnormal(dtype)  # IEEE: W x is subnormal, b + W x is b
    assert np.array_equal(net.predict(X), np.tile(np.array([0.5, -2.0], dtype), (4, 1)))
    net.layers[0].b = np.zeros(2, dtype)
    assert np.array_equal(net.predict(X), np.zeros((4, 2), dtype))  # IEEE: 3e-310
    (dW, db), = net.gradients(X, np.zeros((4, 2), dtype))  # IEEE: 2 z x / 8, subnormal
    assert np.all(dW == 0) and np.all(db == 0)
    assert ieee_product_is_subnormal(dtype)  # the caller's mode is back


CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@pytest.mark.parametrize("n_threads", [1, pytest.param(2, marks=pytest.mark.skipif(
    CPUS < 2, reason="a team of two threads needs two CPUs"))])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_training_reads_subnormal_inputs_as_zero_in_every_thread(dtype, n_threads):
    """From zero weights, an SGD step moves W by -lr dZ^T X: subnormal for subnormal X
    under IEEE, 0 when X is read as 0. 6,000 rows of 64 features make a step large
    enough to be split between two threads."""
    X = np.full((6000, 64), SUBNORMAL[dtype], dtype)
    y = np.linspace(-1, 1, 6000).astype(dtype)
    net = MLP([64, 1], output="identity", dtype=dtype, init="zeros", bias_init=0.25)
    net.fit(X, y, epochs=2, batch_size=None, lr=0.5, n_threads=n_threads)
    assert np.all(net.layers[0].W == 0)
    assert net.layers[0].b[0] != 0.25  # the step ran: b moved towards mean(y) = 0
    assert ieee_product_is_subnormal(dtype)


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1") or sys.platform == "win32",
                    reason="needs POSIX signals")
def test_signal_handlers_run_in_the_callers_mode_during_an_epoch():
    """A handler that runs inside the compiled epoch (the main thread looks for
    signals there every 20 ms; an epoch here takes about 70) runs in the mode the
    epoch set aside; one that runs between two epochs sends the signal again, a little
    later each time (a delay as long as an epoch lands every signal between two)."""

    class Stop(Exception):
        pass

    steps_per_epoch, seen, timers = 50_000, [], []

    def send_later():
        delay = 0.03 + 0.0037 * len(timers)
        timers.append(threading.Timer(delay, os.kill, (os.getpid(), signal.SIGUSR1)))
        timers[-1].start()

    def handler(signum, frame):
        if net.step_count % steps_per_epoch == 0 and len(timers) < 100:
            send_later()  # between two epochs: not the case under test
            return
        seen.append(ieee_product_is_subnormal("float64"))
        raise Stop

    rng = np.random.default_rng(0)
    m = 10 * steps_per_epoch
    X, y = rng.standard_normal((m, 8)), rng.standard_normal(m)
    net = MLP([8, 32, 1], output="identity", seed=0)
    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        send_later()
        with pytest.raises(Stop):
            net.fit(X, y, epochs=1_000_000, batch_size=10)
    finally:
        for timer in timers:
            timer.join()
        signal.signal(signal.SIGUSR1, previous)
    assert net.step_count % steps_per_epoch != 0  # it landed inside an epoch
    assert seen == [True]
    assert ieee_product_is_subnormal("float64")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_subnormal_sample_weights_count_as_zero_in_every_sum(dtype):
    """The loss's numerator reads a subnormal weight as 0; its denominator (the
    weights' sum) must too, in loss, gradients and fit alike."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((6, 3)).astype(dtype), rng.standard_normal(6).astype(dtype)
    tiny = np.finfo(dtype).tiny
    weights = np.array([tiny / 2, tiny / 4, 1.5 * tiny, 2 * tiny, tiny / 8, 3 * tiny], dtype)
    zeroed = np.where(weights < tiny, 0, weights).astype(dtype)
    net = MLP([3, 4, 1], output="identity", dtype=dtype, seed=0)
    assert net.loss(X, y, weights) == net.loss(X, y, zeroed)
    for (dW, db), (dW0, db0) in zip(net.gradients(X, y, 0, weights),
                                    net.gradients(X, y, 0, zeroed)):
        assert np.array_equal(dW, dW0) and np.array_equal(db, db0)
    T = y[:, None]
    assert net.engine.loss(X, T, weights) == net.engine.loss(X, T, zeroed)
    twin = MLP([3, 4, 1], output="identity", dtype=dtype, seed=0)
    net.fit(X, y, epochs=3, batch_size=None, sample_weight=weights)
    twin.fit(X, y, epochs=3, batch_size=None, sample_weight=zeroed)
    assert np.array_equal(net.engine.params, twin.engine.params)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_settings_the_step_would_read_as_zero_are_refused(dtype):
    """A subnormal Adam eps would make 0 / 0 for a weight that never had a gradient."""
    eps = float(np.finfo(dtype).tiny) / 4
    net = MLP([3, 1], output="identity", dtype=dtype, seed=0)
    X, y = np.zeros((4, 3), dtype), np.ones(4, dtype)
    for options in (dict(optimizer="adam", eps=eps), dict(weight_decay=eps)):
        with pytest.raises(ValueError, match=f"= {eps!r} is subnormal in {dtype}"):
            net.fit(X, y, epochs=1, **options)
    assert net.step_count == 0
    with pytest.raises(ValueError, match=f"negative_slope = {eps!r} is subnormal in {dtype}"):
        MLP([3, 2, 1], activation="leaky_relu", negative_slope=eps, dtype=dtype)
    with pytest.raises(ValueError, match=f"bias_init = {-eps!r} is subnormal in {dtype}"):
        MLP([3, 2, 1], bias_init=-eps, dtype=dtype)  # the engine would read 0 for it
