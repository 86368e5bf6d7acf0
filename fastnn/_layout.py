"""Where each layer's parameters sit in a model's flat buffer, on the Python side.

The buffer holds, layer after layer, W (n_out, n_in) then b (n_out,); gradients and
optimizer states share the layout. The compiled engine computes the same offsets once,
in its plan (_plan_build in fastnn/_engine.pyx).
"""


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
