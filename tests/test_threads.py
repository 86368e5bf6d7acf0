"""MLP from several threads: concurrent predictions, predictions and losses read while
another thread trains, and a second concurrent training refused."""
import sys
import threading
import time

import numpy as np
import pytest
from helpers import paused_in_another_thread

from fastnn import MLP, datasets


def test_predicting_from_eight_threads_gives_the_one_thread_results():
    rng = np.random.default_rng(0)
    net = MLP([20, 64, 64, 5], output="softmax", seed=0)
    inputs = [rng.standard_normal((rng.integers(1, 200), 20)) for _ in range(64)]
    expected = [net.predict_proba(X) for X in inputs]
    results = [None] * len(inputs)

    def work(first):
        for i in range(first, len(inputs), 8):
            for _ in range(5):
                out = net.predict_proba(inputs[i])
                assert np.array_equal(out, expected[i])
            results[i] = out

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(r, e) for r, e in zip(results, expected))


@pytest.mark.parametrize("rows", [200, 1])  # 1: a small read, which holds the GIL
def test_predictions_during_training_see_whole_steps_only(rows):
    X, y = datasets.make_moons(200, seed=1)
    net = MLP([2, 32, 32, 1], seed=1)
    snapshots = [net.engine.params.copy()]
    seen, stop = [], threading.Event()

    def predict_loop():
        while not stop.is_set():
            seen.append(net.predict_proba(X[:rows]).tobytes())

    def snapshot(n, epoch, logs):
        snapshots.append(n.engine.params.copy())
        time.sleep(1e-4)  # a step takes microseconds: give the reader its turns

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # let the reader in often
    reader = threading.Thread(target=predict_loop)
    reader.start()
    try:
        net.fit(X, y, epochs=1000, batch_size=None, lr=0.5, shuffle=False,
                callbacks=[snapshot])
    finally:
        stop.set()
        reader.join()
        sys.setswitchinterval(interval)
    assert len(set(seen)) > 10
    allowed = set()
    for params in snapshots:  # full batch: one step per epoch, a snapshot after each
        net.engine.params[...] = params
        allowed.add(net.predict_proba(X[:rows]).tobytes())
    assert set(seen) <= allowed


def test_training_a_model_that_another_thread_trains_is_refused():
    X, y = datasets.make_moons(200, seed=2)
    net = MLP([2, 16, 1], seed=2)
    with paused_in_another_thread(net, X, y, epochs=3):
        before = net.engine.params.copy()
        with pytest.raises(RuntimeError, match="refuses concurrent training"):
            net.fit(X, y, epochs=1)
        with pytest.raises(RuntimeError, match="being trained in another thread"):
            net.load_state_dict(net.state_dict())
        assert np.array_equal(net.engine.params, before)
        assert net.predict_proba(X).shape == (200,)  # predicting is fine meanwhile
    assert len(net.history["loss"]) == 3


def test_reading_the_loss_from_another_thread_does_not_stop_training():
    X, y = datasets.make_moons(400, seed=6)
    net = MLP([2, 32, 1], seed=6)
    stop, errors = threading.Event(), []

    def monitor():
        while not stop.is_set():
            try:
                net.loss(X, y)
                net.gradients(X[:50], y[:50])
            except Exception as error:  # any error here is a failure
                errors.append(error)

    thread = threading.Thread(target=monitor)
    thread.start()
    try:
        net.fit(X, y, epochs=30, batch_size=20)
    finally:
        stop.set()
        thread.join()
    assert errors == [] and len(net.history["loss"]) == 30
