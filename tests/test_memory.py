"""Memory: a warm training step allocates nothing, a long run keeps resident memory flat
and leaves its inputs' reference counts alone."""
import os
import sys
import tracemalloc

import pytest

from fastnn import MLP, datasets
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
