import numpy as np
import pytest

from fastnn import kernels, reference

#: Relative tolerance of fastnn.kernels against its twin, per dtype.
RTOL = {np.float64: 1e-12, np.float32: 1e-5}


@pytest.fixture(scope="session")
def assert_close():
    """actual == expected to RTOL, relative to the largest |expected| of the array.

    That norm-wise bound is the one a GEMM (summed in any order) can promise.
    """
    def check(actual, expected, dtype):
        actual, expected = np.asarray(actual), np.asarray(expected)
        assert actual.shape == expected.shape
        scale = max(float(np.max(np.abs(expected), initial=0.0)), np.finfo(dtype).tiny)
        np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype], atol=RTOL[dtype] * scale)
    return check


@pytest.fixture(params=[reference, kernels], ids=["reference", "kernels"])
def backend(request):
    """Both implementations, for tests that each must pass against an outside truth."""
    return request.param
