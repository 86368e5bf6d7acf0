"""Where each layer's parameters sit in a model's flat buffer, on the Python side.

The buffer holds, layer after layer, W (n_out, n_in) then b (n_out,); gradients and
optimizer states share the layout. The compiled engine computes the same offsets once,
in its plan (_plan_build in fastnn/_engine.pyx).
Flat buffers start on a 64-byte line (flat_buffer), as the compiled kernels'
vectors do.
"""
import numpy as np


def flat_buffer(n, dtype, zeros=False):
    """A 1-D array of n values of dtype (zeros when asked) whose data start on a
    64-byte line: numpy's large arrays start 16 bytes past a page, where every
    64-byte vector of the kernels straddles two cache lines (Adam's update measured
    6% slower so, the sum of two gradients 25%)."""
    dtype = np.dtype(dtype)
    spare = 64 // dtype.itemsize
    buffer = (np.zeros if zeros else np.empty)(n + spare, dtype)
    start = (-buffer.ctypes.data % 64) // dtype.itemsize
    return buffer[start:start + n]


def n_parameters(sizes):
    """The length of the flat buffer for layer widths `sizes` (input first)."""
    return sum(n_out * (n_in + 1) for n_in, n_out in zip(sizes, sizes[1:]))


def layer_views(flat, sizes):
    """[(W, b), ...]: views into `flat`, W (n_out, n_in) and b (n_out,) per layer."""
    views, offset = [], 0
    for n_in, n_out in zip(sizes, sizes[1:]):
        weights_end = offset + n_out * n_in
        views.append((flat[offset:weights_end].reshape(n_out, n_in),
                      flat[weights_end:weights_end + n_out]))
        offset = weights_end + n_out
    return views
