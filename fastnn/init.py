"""Weight initialisation schemes.

Every scheme is a function ``scheme(shape, rng=None, dtype=np.float64, ...)`` that
returns a new array. W has shape (n_out, n_in): fan_in = n_in, fan_out = n_out.
Each weight matrix is drawn as ONE standard-normal (or uniform) draw of shape
(n_out, n_in) and then scaled, in float64, then cast to dtype. So with a legacy
``np.random.RandomState(k)`` the course's ``np.random.seed(k);
np.random.randn(n_l, n_{l-1}) * scale`` comes out bit for bit.

``rng`` is an int seed, a numpy Generator, a legacy RandomState, or None (fresh
entropy).
"""
import math
import numbers

import numpy as np

from fastnn import _checks as check
from fastnn.activations import DEFAULT_NEGATIVE_SLOPE, activation_code, gain

__all__ = ["as_rng", "gain", "zeros", "constant", "normal", "uniform", "xavier_normal",
           "xavier_uniform", "lecun_normal", "lecun_uniform", "he_normal", "he_uniform",
           "orthogonal", "SCHEMES", "scheme_for"]


def as_rng(seed):
    """A Generator or RandomState from an int seed, a Generator, a RandomState or None."""
    if isinstance(seed, (np.random.Generator, np.random.RandomState)):
        return seed
    if seed is None or (isinstance(seed, numbers.Integral) and not isinstance(seed, bool)):
        if seed is not None and seed < 0:
            raise ValueError(f"seed must be a non-negative integer; got {seed}")
        return np.random.default_rng(seed)
    raise TypeError("seed must be None, an int, a numpy.random.Generator or a "
                    f"numpy.random.RandomState; got {type(seed).__name__}")


def _fans(shape):
    """(fan_in, fan_out) of a weight shape (n_out, n_in), both integers >= 1."""
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__") or len(shape) != 2:
        raise ValueError(f"shape must be (n_out, n_in) with both >= 1; got {shape!r}")
    try:
        n_out, n_in = (check.integer("shape", n, 1) for n in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be (n_out, n_in) with both >= 1; got {shape!r}") from None
    return n_in, n_out


def _normal(shape, std, rng, dtype):
    _fans(shape)
    return (as_rng(rng).standard_normal(tuple(shape)) * std).astype(
        check.float_dtype(dtype), copy=False)


def _uniform(shape, limit, rng, dtype):
    _fans(shape)
    return as_rng(rng).uniform(-limit, limit, tuple(shape)).astype(
        check.float_dtype(dtype), copy=False)


def zeros(shape, rng=None, dtype=np.float64):
    """W = 0. Every unit of a layer then computes the same thing, forever (symmetry)."""
    _fans(shape)
    return np.zeros(tuple(shape), check.float_dtype(dtype))


def constant(shape, rng=None, dtype=np.float64, value=0.0):
    """W = value everywhere: as symmetric as zeros."""
    _fans(shape)
    return np.full(tuple(shape), check.real("value", value), check.float_dtype(dtype))


def normal(shape, rng=None, dtype=np.float64, std=0.01):
    """W ~ N(0, std^2); the course's default std is 0.01 ("small random numbers")."""
    return _normal(shape, check.real("std", std, 0), rng, dtype)


def uniform(shape, rng=None, dtype=np.float64, limit=0.05):
    """W ~ U(-limit, limit)."""
    return _uniform(shape, check.real("limit", limit, 0), rng, dtype)


def xavier_normal(shape, rng=None, dtype=np.float64, gain=1.0):
    """Glorot and Bengio (2010): W ~ N(0, gain^2 * 2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(shape)
    return _normal(shape, check.real("gain", gain, 0) * math.sqrt(2.0 / (fan_in + fan_out)),
                   rng, dtype)


def xavier_uniform(shape, rng=None, dtype=np.float64, gain=1.0):
    """Glorot and Bengio (2010): W ~ U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(shape)
    return _uniform(shape, check.real("gain", gain, 0) * math.sqrt(6.0 / (fan_in + fan_out)),
                    rng, dtype)


def lecun_normal(shape, rng=None, dtype=np.float64):
    """LeCun (1998): W ~ N(0, 1 / fan_in), i.e. randn * sqrt(1 / n_in).

    This is what "Deep Learning from Scratch" calls the Xavier initial value.
    """
    fan_in, _ = _fans(shape)
    return _normal(shape, math.sqrt(1.0 / fan_in), rng, dtype)


def lecun_uniform(shape, rng=None, dtype=np.float64):
    """LeCun: W ~ U(-a, a), a = sqrt(3 / fan_in) (variance 1 / fan_in)."""
    fan_in, _ = _fans(shape)
    return _uniform(shape, math.sqrt(3.0 / fan_in), rng, dtype)


def _he_fan(shape, mode):
    fan_in, fan_out = _fans(shape)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out'; got {mode!r}")
    return fan_in if mode == "fan_in" else fan_out


def he_normal(shape, rng=None, dtype=np.float64, mode="fan_in", negative_slope=0.0):
    """He et al. (2015): W ~ N(0, 2 / ((1 + s^2) fan)), i.e. randn * sqrt(2 / n_in) for
    ReLU (s = 0, mode="fan_in"); s is leaky ReLU's negative slope, mode picks the fan."""
    fan = _he_fan(shape, mode)
    s = check.real("negative_slope", negative_slope)
    return _normal(shape, math.sqrt(2.0 / ((1.0 + s * s) * fan)), rng, dtype)


def he_uniform(shape, rng=None, dtype=np.float64, mode="fan_in", negative_slope=0.0):
    """He et al. (2015): W ~ U(-a, a), a = sqrt(6 / ((1 + s^2) fan)) (variance 2 / ((1 + s^2) fan))."""
    fan = _he_fan(shape, mode)
    s = check.real("negative_slope", negative_slope)
    return _uniform(shape, math.sqrt(6.0 / ((1.0 + s * s) * fan)), rng, dtype)


def orthogonal(shape, rng=None, dtype=np.float64, gain=1.0):
    """Saxe et al. (2014): W = gain * Q, Q with orthonormal rows or columns, from the QR
    decomposition of one standard-normal draw (signs fixed by R's diagonal, as PyTorch)."""
    n_in, n_out = _fans(shape)
    a = as_rng(rng).standard_normal((n_out, n_in))
    if n_out < n_in:
        a = a.T
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    if n_out < n_in:
        q = q.T
    return (check.real("gain", gain, 0) * q).astype(check.float_dtype(dtype), copy=False)


#: Schemes by name; "xavier", "lecun" and "he" are the normal variants.
SCHEMES = {
    "zeros": zeros, "normal": normal, "uniform": uniform,
    "xavier_normal": xavier_normal, "xavier_uniform": xavier_uniform,
    "lecun_normal": lecun_normal, "lecun_uniform": lecun_uniform,
    "he_normal": he_normal, "he_uniform": he_uniform, "orthogonal": orthogonal,
    "xavier": xavier_normal, "lecun": lecun_normal, "he": he_normal,
}


def scheme_for(init, activation, negative_slope=DEFAULT_NEGATIVE_SLOPE):
    """The function (shape, rng, dtype) -> W that MLP's init= means for one layer.

    init: "auto" (He for relu and leaky_relu, Xavier for sigmoid, tanh and identity),
    a name from SCHEMES, a number (normal with that std), or a callable
    (shape, rng, dtype) -> array. For He with leaky_relu the slope is the layer's.
    """
    activation_code(activation)
    if isinstance(init, numbers.Real) and not isinstance(init, bool):
        std = check.real("init", init, 0)
        return lambda shape, rng, dtype: normal(shape, rng, dtype, std=std)
    if callable(init):
        return init
    if not isinstance(init, str):
        raise TypeError("init must be 'auto', a scheme name, a number (a std) or a "
                        f"callable (shape, rng, dtype) -> array; got {type(init).__name__}")
    if init == "auto":
        init = "he" if activation in ("relu", "leaky_relu") else "xavier"
    if init not in SCHEMES:
        names = ", ".join(repr(n) for n in ("auto",) + tuple(SCHEMES))
        raise ValueError(f"init must be one of {names}, a number or a callable; "
                         f"got {init!r}")
    scheme = SCHEMES[init]
    if scheme in (he_normal, he_uniform) and activation == "leaky_relu":
        return lambda shape, rng, dtype: scheme(shape, rng, dtype,
                                                negative_slope=negative_slope)
    return scheme
