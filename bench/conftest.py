"""pytest-benchmark suite: fastnn against fastnn.reference in the same run.

BLAS threads are fixed for the whole session with threadpoolctl, for numpy's
OpenBLAS (the reference's) and scipy's (fastnn's) alike: FASTNN_BENCH_THREADS,
default 1. On the 2-core development VM a second BLAS thread made GEMM slower, not
faster (dgemm 256x784x512: 37.7 GFLOP/s on one thread, 32.3 on two), so one
thread gives the fairest and steadiest comparison there.
"""
import os

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

THREADS = int(os.environ.get("FASTNN_BENCH_THREADS", "1"))


@pytest.fixture(scope="session", autouse=True)
def blas_threads():
    with threadpool_limits(limits=THREADS, user_api="blas"):
        yield THREADS


@pytest.fixture
def rng():
    return np.random.default_rng(0)
