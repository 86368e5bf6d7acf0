"""Ctrl-C (SIGINT) during training stops it at a step boundary."""
import os
import signal
import sys
import threading

import numpy as np
import pytest

from fastnn import MLP, datasets


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
    steps = net.step_count
    assert steps > 0 and len(net.history["loss"]) in (steps - 1, steps)
    replay = MLP([2, 64, 64, 1], seed=3)
    replay.fit(X, y, epochs=steps, batch_size=None, lr=0.1, shuffle=False)
    assert np.array_equal(replay.engine.params, net.engine.params)  # `steps` whole steps
