"""Memory: a warm training step allocates nothing, a long run keeps resident memory flat
and leaves its inputs' reference counts alone."""
import os
import sys
import tracemalloc

import numpy as np
import pytest

from fastnn import MLP, datasets, load
from fastnn.model.inputs import targets as as_targets
from fastnn.optim import Adam
from helpers import step_settings


def test_a_training_step_allocates_nothing_once_warm():
    X, y = datasets.make_spiral(1000, 3, seed=0)
    net = MLP([2, 32, 32, 3], output="softmax", seed=0)
    net.fit(X, y, epochs=1, batch_size=1, optimizer="adam")  # warm
    targets = as_targets(net, y, len(X))
    update = net.engine.updater(step_settings(net.engine, Adam(1e-3)))
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for t in range(1000):
            net.engine.step(X[t:t + 1], targets[t:t + 1], update)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert growth < 4096


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
    assert net.step_count == 100_500


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_flat_buffers_start_on_a_cache_line_when_made_fitted_or_loaded(tmp_path, dtype):
    """Parameters and the optimizer's states start on a 64-byte line (the kernels'
    vector width), however numpy placed the arrays they came from."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((100, 64)).astype(dtype), rng.integers(0, 10, 100)
    # 38,922 parameters: 156 KB in float32, past malloc's 128 KB mmap threshold, where
    # numpy's own arrays start 16 bytes past a page
    net = MLP([64, 512, 10], output="softmax", seed=0, dtype=dtype)
    net.fit(X, y, epochs=1, batch_size=50, optimizer="adam")
    net.save(tmp_path / "net.npz")
    for model in (net, load(tmp_path / "net.npz")):
        arrays = [model.engine.params, *model._optimizer_state.arrays]
        assert len(arrays) == 3
        assert [a.ctypes.data % 64 for a in arrays] == [0, 0, 0]


def test_an_estimators_optimizer_state_is_aligned_after_pickling_and_copying():
    """The estimator pickles its OptimizerState itself (the model goes through
    fastnn's own unpickling): its arrays come back on 64-byte lines too."""
    pytest.importorskip("sklearn")
    import copy
    import pickle
    import warnings
    from fastnn import MLPClassifier
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((100, 64)), rng.integers(0, 10, 100)
    est = MLPClassifier(hidden_layer_sizes=(512,), max_iter=1, tol=0.0, n_iter_no_change=2,
                        random_state=0)
    with warnings.catch_warnings():  # (one epoch: not converged, as asked)
        warnings.simplefilter("ignore")
        est.fit(X, y)
    for twin in (pickle.loads(pickle.dumps(est)), copy.deepcopy(est)):
        arrays = twin._optimizer_state.arrays
        assert [a.ctypes.data % 64 for a in arrays] == [0, 0]
        assert all(np.array_equal(a, b) for a, b in zip(arrays,
                                                        est._optimizer_state.arrays))
        twin.partial_fit(X, y)  # and training goes on with them
