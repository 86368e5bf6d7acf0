import sys
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from fastnn import kernels, reference

# Under --import-mode=importlib test modules cannot import each other; helpers shared by
# several of them live in tests/helpers.py, imported as `from helpers import ...`.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

#: Relative tolerance of fastnn.kernels against its twin, per dtype.
RTOL = {np.float64: 1e-12, np.float32: 1e-5}


@pytest.fixture(scope="session", autouse=True)
def one_blas_thread():
    """BLAS on one thread for the whole session. OpenBLAS's own threads are erratic on
    the small products these tests make: with two OpenBLAS threads on a 2-core machine
    one test ran 7.6x slower. The engine must respect a caller's limit anyway. (A limit
    set here does not reach the subprocesses some tests start.)"""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="session")
def assert_close():
    """|actual - expected| <= RTOL * scale, elementwise.

    scale defaults to the largest |expected| of the array (norm-wise relative error,
    the bound a GEMM summed in any order can promise). Where sums cancel, pass the
    magnitude of the computation instead (the same sums over absolute values): that
    is the standard bound of floating-point error analysis, |fl(x.y) - x.y| <= g |x|.|y|.
    """
    def check(actual, expected, dtype, scale=None):
        actual, expected = np.asarray(actual), np.asarray(expected)
        assert actual.shape == expected.shape and actual.dtype == expected.dtype
        if scale is None:
            scale = np.max(np.abs(expected), initial=0.0)
        scale = np.maximum(scale, np.finfo(dtype).tiny)
        np.testing.assert_array_less(np.abs(actual.astype(np.float64) - expected),
                                     RTOL[dtype] * scale + 0.0)
    return check


@pytest.fixture(params=[reference, kernels], ids=["reference", "kernels"])
def backend(request):
    """Both implementations, for tests that each must pass against an outside truth."""
    return request.param


@pytest.fixture(scope="session")
def numeric_gradient():
    """Central differences of a scalar f() with respect to every entry of x, in place
    (each entry nudged by +-eps and restored exactly): the independent truth for
    backprop."""
    def gradient(f, x, eps=1e-6):
        grad = np.empty_like(x)
        for i in np.ndindex(x.shape):
            saved = x[i]
            x[i] = saved + eps
            up = f()
            x[i] = saved - eps
            down = f()
            x[i] = saved
            grad[i] = (up - down) / (2 * eps)
        return grad
    return gradient
