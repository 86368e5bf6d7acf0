"""Activation functions: their names, their parameter and their init gains.

The arithmetic lives in the compiled kernels (fastnn/_ops.pxd) and in the NumPy
twin (fastnn.reference); this module only names things.
"""
import math
import numbers

#: Hidden-layer activations. An activation's position here is its code in the
#: compiled core (the FNN_* codes of fastnn/_vector.h and fastnn/_ops.pxd).
ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu")

#: Leaky ReLU's default negative slope (PyTorch's).
DEFAULT_NEGATIVE_SLOPE = 0.01


def activation_code(activation, name="activation"):
    """The kernels' integer code for an activation name; ValueError names the valid ones."""
    if not isinstance(activation, str):
        raise TypeError(f"{name} must be a string, one of {_choices(ACTIVATIONS)}; "
                        f"got {type(activation).__name__} {activation!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"{name} must be one of {_choices(ACTIVATIONS)}; "
                         f"got {activation!r}")
    return ACTIVATIONS.index(activation)


def check_negative_slope(negative_slope, name="negative_slope"):
    """Leaky ReLU's slope for z < 0 as a float: a finite real number."""
    if isinstance(negative_slope, bool) or not isinstance(negative_slope, numbers.Real):
        raise TypeError(f"{name} must be a real number; got "
                        f"{type(negative_slope).__name__} {negative_slope!r}")
    if not math.isfinite(negative_slope):
        raise ValueError(f"{name} must be finite; got {negative_slope!r}")
    return float(negative_slope)


def gain(activation, negative_slope=DEFAULT_NEGATIVE_SLOPE):
    """The recommended init gain for an activation, PyTorch's values.

    identity and sigmoid 1, tanh 5/3, relu sqrt(2), leaky_relu sqrt(2 / (1 + s^2)).
    """
    activation_code(activation)
    if activation == "tanh":
        return 5.0 / 3.0
    if activation == "relu":
        return math.sqrt(2.0)
    if activation == "leaky_relu":
        slope = check_negative_slope(negative_slope)
        return math.sqrt(2.0 / (1.0 + slope * slope))
    return 1.0


def _choices(names):
    return ", ".join(repr(n) for n in names)
