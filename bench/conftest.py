"""pytest-benchmark suite: fastnn against fastnn.reference in the same run.

BLAS threads are fixed for the whole session with threadpoolctl (both numpy's and
scipy's OpenBLAS): FASTNN_BENCH_THREADS, default all cores.
"""
import os

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

THREADS = int(os.environ.get("FASTNN_BENCH_THREADS", os.cpu_count() or 1))


@pytest.fixture(scope="session", autouse=True)
def blas_threads():
    with threadpool_limits(limits=THREADS, user_api="blas"):
        yield THREADS


@pytest.fixture
def rng():
    return np.random.default_rng(0)
