"""Activation functions: their names, their parameter and their init gains.

The arithmetic lives in the compiled kernels (fastnn/_ops.pxd) and in the NumPy
twin (fastnn.reference); this module only names things.
"""
import math

from fastnn import _checks as check
from fastnn import _kernels

#: Hidden-layer activations. An activation's position here is its code in the
#: compiled core (the FNN_* codes of fastnn/_vector.h and fastnn/_ops.pxd).
ACTIVATIONS = tuple(_kernels.ACTIVATION_CODES)

#: Leaky ReLU's default negative slope (PyTorch's).
DEFAULT_NEGATIVE_SLOPE = 0.01


def activation_code(activation, name="activation"):
    """The kernels' integer code for an activation name.

    The code is the name's position in ACTIVATIONS; ValueError names the valid ones.

    Parameters
    ----------
    activation : str
        "identity", "sigmoid", "tanh", "relu" or "leaky_relu".
    name : str, default="activation"
        What the error messages call the argument.

    Returns
    -------
    int
        The index of activation in ACTIVATIONS, from 0 to 4.

    Raises
    ------
    TypeError
        If activation is not a string.
    ValueError
        If activation is not in ACTIVATIONS.
    """
    if not isinstance(activation, str):
        raise TypeError(f"{name} must be a string, one of {_choices(ACTIVATIONS)}; "
                        f"got {type(activation).__name__} {activation!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"{name} must be one of {_choices(ACTIVATIONS)}; "
                         f"got {activation!r}")
    return ACTIVATIONS.index(activation)


def check_negative_slope(negative_slope, name="negative_slope"):
    """Leaky ReLU's slope for z < 0 as a float: a finite real number.

    Parameters
    ----------
    negative_slope : numbers.Real
        The slope: an int, a float or a NumPy real scalar (bools refused), finite.
    name : str, default="negative_slope"
        The argument's name in the error messages.

    Returns
    -------
    float
        negative_slope as a Python float.

    Raises
    ------
    TypeError
        If negative_slope is a bool or not a real number.
    ValueError
        If negative_slope is NaN or infinite.
    OverflowError
        If negative_slope is an int too large for a float.
    """
    return check.real(name, negative_slope)


def gain(activation, negative_slope=DEFAULT_NEGATIVE_SLOPE):
    """The recommended init gain for an activation, PyTorch's values.

    identity and sigmoid 1, tanh 5/3, relu sqrt(2), leaky_relu sqrt(2 / (1 + s^2)),
    with s = negative_slope (as torch.nn.init.calculate_gain).

    Parameters
    ----------
    activation : str
        An activation name, one of ACTIVATIONS.
    negative_slope : float, default=0.01
        Leaky ReLU's slope s; read, and checked, for leaky_relu only.

    Returns
    -------
    float
        The gain, a factor for the initial weights' scale.

    Raises
    ------
    TypeError
        If activation is not a string, or for leaky_relu, if negative_slope is not a
        real number (or is a bool).
    ValueError
        If activation is unknown, or for leaky_relu, if negative_slope is not finite.
    OverflowError
        For leaky_relu, if negative_slope is an int too large for a float.
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
