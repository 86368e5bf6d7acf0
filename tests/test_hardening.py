"""Files that are damaged or hostile, threads, interrupts, long runs, huge logits."""
import json
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

import fastnn
from fastnn import MLP, datasets


@pytest.fixture
def saved(tmp_path):
    X, y = datasets.make_moons(100, seed=0)
    net = MLP([2, 8, 1], seed=0)
    net.fit(X, y, epochs=3, optimizer="adam")
    path = tmp_path / "model.npz"
    net.save(path)
    return net, path


def rewrite(path, change):
    """Load the arrays and header of a saved model, let change() edit them, save again."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(str(arrays["header"]))
    change(arrays, header)
    arrays["header"] = np.array(json.dumps(header))
    np.savez(path, **arrays)


def test_truncated_and_random_files_are_refused(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    for name, content in [("truncated.npz", data[: len(data) // 2]),
                          ("noise.npz", np.random.default_rng(0).bytes(2000)),
                          ("empty.npz", b"")]:
        bad = tmp_path / name
        bad.write_bytes(content)
        with pytest.raises(ValueError, match="is not a readable fastnn model file"):
            fastnn.load(bad)
    with pytest.raises(FileNotFoundError):
        fastnn.load(tmp_path / "missing.npz")


def test_foreign_and_future_files_are_refused(tmp_path):
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.ones(3))
    with pytest.raises(ValueError, match="has no valid fastnn header"):
        fastnn.load(foreign)
    np.savez(foreign, header=np.array(json.dumps({"format": "other"})))
    with pytest.raises(ValueError, match="is not a fastnn model file"):
        fastnn.load(foreign)
    np.savez(foreign, header=np.array(json.dumps({"format": "fastnn.MLP",
                                                  "format_version": 99})))
    with pytest.raises(ValueError, match="format version 99; this fastnn reads version 1"):
        fastnn.load(foreign)


@pytest.mark.parametrize("change,message", [
    (lambda a, h: a.update({"0.weight": np.ones((3, 2))}), r"the header says 0.weight is \(8, 2\); the file has \(3, 2\)"),
    (lambda a, h: h.update(layer_sizes=[2, 10**12, 1]), r"the header says 0.weight is \(1000000000000, 2\)"),
    (lambda a, h: a.update({"2.bias": np.array([np.nan])}), r"2.bias must be finite"),
    (lambda a, h: a.update({"0.bias": np.ones(8, np.float32)}), r"0.bias has dtype float32"),
    (lambda a, h: a.update({"extra": np.ones(1)}), r"unexpected \['extra'\]"),
    (lambda a, h: h.update(output="softplus"), r"output must be one of"),
    (lambda a, h: h["optimizer"].update(name="lbfgs"), r"optimizer must be one of"),
    (lambda a, h: h["optimizer"]["config"].update(lr=-1), r"lr must be in"),
    (lambda a, h: a.pop("optimizer.state1"), r"optimizer state arrays do not match"),
    (lambda a, h: h["rng"]["state"].update(bit_generator="seed"), r"unknown bit generator 'seed'"),
    (lambda a, h: h.pop("history"), r"damaged or foreign fastnn file: 'history'"),
    (lambda a, h: h["optimizer"].update(t=2**63 - 1), r"step count 9223372036854775807 is out of range"),
    (lambda a, h: h["optimizer"].update(t=2**64), r"damaged or foreign fastnn file"),
])
def test_tampered_files_are_refused_before_anything_runs(saved, change, message):
    _, path = saved
    rewrite(path, change)
    state = np.random.get_state()[1].copy()
    with pytest.raises(ValueError, match=message):
        fastnn.load(path)
    assert np.array_equal(np.random.get_state()[1], state)  # nothing was called


def test_pickled_arrays_are_never_loaded(saved):
    _, path = saved
    rewrite(path, lambda a, h: a.update({"0.bias": np.array([object()] * 8, dtype=object)}))
    with pytest.raises(ValueError, match="not a readable fastnn model file.*pickle"):
        fastnn.load(path)


def test_a_crash_while_saving_leaves_the_old_file_whole(saved, monkeypatch):
    net, path = saved
    before = path.read_bytes()

    def crash(file, **arrays):
        file.write(b"half a model")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    net.fit(*datasets.make_moons(100, seed=0), epochs=1)
    with pytest.raises(OSError, match="disk full"):
        net.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["model.npz"]


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


def test_predictions_during_training_see_whole_steps_only():
    X, y = datasets.make_moons(200, seed=1)
    net = MLP([2, 32, 32, 1], seed=1)
    snapshots = [net._params.copy()]
    seen, stop = [], threading.Event()

    def predict_loop():
        while not stop.is_set():
            seen.append(net.predict_proba(X).tobytes())

    def snapshot(n, epoch, logs):
        snapshots.append(n._params.copy())
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
        net._params[...] = params
        allowed.add(net.predict_proba(X).tobytes())
    assert set(seen) <= allowed


def test_training_a_model_that_another_thread_trains_is_refused():
    X, y = datasets.make_moons(200, seed=2)
    net = MLP([2, 16, 1], seed=2)
    inside, go = threading.Event(), threading.Event()

    def hold(n, epoch, logs):  # the first fit pauses inside its first epoch's callback
        inside.set()
        go.wait(10)

    trainer = threading.Thread(target=net.fit, args=(X, y),
                               kwargs=dict(epochs=3, callbacks=[hold]))
    trainer.start()
    try:
        assert inside.wait(10)
        before = net._params.copy()
        with pytest.raises(RuntimeError, match="refuses concurrent training"):
            net.fit(X, y, epochs=1)
        with pytest.raises(RuntimeError, match="being trained in another thread"):
            net.load_state_dict(net.state_dict())
        assert np.array_equal(net._params, before)
        assert net.predict_proba(X).shape == (200,)  # predicting is fine meanwhile
    finally:
        go.set()
        trainer.join()
    assert len(net.history["loss"]) == 3


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or sys.platform == "win32",
                    reason="needs POSIX signals")
def test_ctrl_c_stops_at_a_step_boundary():
    X, y = datasets.make_circles(300, seed=3)
    net = MLP([2, 64, 64, 1], seed=3)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, epochs=1_000_000, batch_size=None, lr=0.1, shuffle=False)
    timer.join()
    steps = int(net._steps[0])
    assert steps > 0 and len(net.history["loss"]) in (steps - 1, steps)
    replay = MLP([2, 64, 64, 1], seed=3)
    replay.fit(X, y, epochs=steps, batch_size=None, lr=0.1, shuffle=False)
    assert np.array_equal(replay._params, net._params)  # exactly `steps` whole steps


def _resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_a_hundred_thousand_steps_keep_memory_flat_and_leave_inputs_alone():
    X, y = datasets.make_spiral(1000, 3, seed=4)
    net = MLP([2, 16, 16, 3], output="softmax", seed=4)
    refs = sys.getrefcount(X), sys.getrefcount(y)
    net.fit(X, y, epochs=5, batch_size=10, optimizer="adam")  # warm
    before = _resident_bytes()
    net.fit(X, y, epochs=1000, batch_size=10, optimizer="adam")  # 100,000 steps
    growth = _resident_bytes() - before
    assert growth < 2 * 2**20, f"resident memory grew by {growth} bytes"
    assert (sys.getrefcount(X), sys.getrefcount(y)) == refs
    assert int(net._steps[0]) == 100_500


@pytest.mark.parametrize("output,scale", [("sigmoid", 1e300), ("softmax", 1e300),
                                          ("identity", 1e100)])
def test_huge_finite_logits_give_finite_losses_and_gradients(output, scale):
    X = np.array([[1.0], [-1.0], [0.5]])
    k = 3 if output == "softmax" else 1
    net = MLP([1, k], output=output, init="zeros", seed=0)
    net.layers[0].W[...] = scale * np.arange(1, k + 1).reshape(k, 1)
    y = np.array([0, 1, 2])[: len(X)] if output == "softmax" else np.array([1.0, 0.0, 1.0])
    assert np.isfinite(net.loss(X, y))
    assert all(np.isfinite(dW).all() and np.isfinite(db).all()
               for dW, db in net.gradients(X, y))


def test_the_compiled_label_kernel_bounds_every_label_itself():
    # The checked wrapper copies labels before checking them; the kernel, which runs
    # without the GIL, still refuses a label out of range (another thread could have
    # changed a caller's array) and returns NaN instead of writing out of bounds.
    from fastnn import _kernels
    Z, P, dZ = np.zeros((3, 2)), np.empty((3, 2)), np.empty((3, 2))
    for bad in (2, -1, 1 << 40):
        loss = _kernels.softmax_cross_entropy_labels["double"](
            Z, np.array([0, bad, 1], np.intp), P, dZ)
        assert np.isnan(loss)


def test_gradients_are_computed_even_when_the_loss_overflows():
    net = MLP([2, 3, 1], output="identity", seed=0)
    net.layers[0].W = np.full((3, 2), 1e200)
    X, y = np.ones((4, 2)), np.zeros(4)
    assert net.loss(X, y) == np.inf
    first = net.gradients(X, y)
    again = net.gradients(X, y)
    for (dW1, db1), (dW2, db2) in zip(first, again):  # computed, not leftover memory
        assert np.array_equal(dW1, dW2, equal_nan=True) and np.array_equal(db1, db2, equal_nan=True)


def test_a_huge_float32_weight_decay_penalty_is_computed_in_double():
    net = MLP([2, 1], output="identity", dtype="float32", seed=0)
    net.layers[0].W = np.full((1, 2), 2e19, np.float32)  # its square overflows float32
    net.fit(np.zeros((4, 2), np.float32), np.zeros(4, np.float32), epochs=1,
            batch_size=None, lr=0.1, weight_decay=0.5)
    assert net._steps[0] == 1 and np.isfinite(net.history["loss"][0])
    assert np.allclose(net.layers[0].W, 2e19 * (1 - 0.1 * 0.5))


def test_gradient_check_works_on_float32_models_through_a_float64_copy():
    X, y = datasets.make_moons(20, seed=5)
    net = MLP([2, 4, 1], activation="tanh", dtype="float32", seed=5)
    assert fastnn.diagnostics.gradient_check(net, X.astype(np.float32), y).passed


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


def test_an_update_that_overflows_the_weights_is_reported():
    net = MLP([1, 1], output="identity", dtype="float32", seed=0)
    X, y = np.ones((4, 1), np.float32), np.full(4, 5, np.float32)
    with pytest.raises(fastnn.DivergenceError, match="an update overflowed the weights"):
        net.fit(X, y, epochs=1, batch_size=None, lr=1e38)
    assert net._steps[0] == 1  # the update was made, and counted
