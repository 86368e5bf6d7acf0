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
    """Turn a seed into a random number generator.

    Parameters
    ----------
    seed : int, numpy.random.Generator, numpy.random.RandomState or None
        A non-negative int seeds a new Generator; a Generator or RandomState is
        returned as it is (not copied); None draws fresh entropy from the OS.

    Returns
    -------
    rng : numpy.random.Generator or numpy.random.RandomState
        ``seed`` itself, or ``numpy.random.default_rng(seed)``.

    Raises
    ------
    TypeError
        If seed is none of the above (a bool or a float, for instance).
    ValueError
        If seed is a negative integer.
    """
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


def _normal(shape, std, rng, dtype, name, value):
    """One standard-normal draw of shape times std, as dtype (see :func:`_finite`)."""
    _fans(shape)
    dtype = check.float_dtype(dtype)
    with np.errstate(over="ignore"):
        W = as_rng(rng).standard_normal(tuple(shape)) * std
    return _finite(W, dtype, name, value)


def _uniform(shape, limit, rng, dtype, name, value):
    """One uniform draw of shape in [-limit, limit), as dtype (see :func:`_finite`)."""
    _fans(shape)
    dtype = check.float_dtype(dtype)
    if not math.isfinite(2.0 * limit):
        raise ValueError(f"{name}={value!r} makes the interval [-{limit!r}, {limit!r}) "
                         f"of the uniform draw wider than float64 can hold")
    return _finite(as_rng(rng).uniform(-limit, limit, tuple(shape)), dtype, name, value)


def _finite(W, dtype, name, value):
    """W (drawn and scaled in float64) as dtype; a ValueError naming the parameter
    (name=value) that made a weight overflow float64 or dtype, with its index."""
    with np.errstate(over="ignore", invalid="ignore"):
        cast = W.astype(dtype)
    bad = np.flatnonzero(~np.isfinite(cast))
    if bad.size:
        index = np.unravel_index(int(bad[0]), W.shape)
        raise ValueError(f"{name}={value!r} draws weights beyond the range of "
                         f"{dtype.name}: weights[{index[0]}, {index[1]}] = "
                         f"{W[index].item()!r}")
    return cast


def zeros(shape, rng=None, dtype=np.float64):
    """All-zero weights.

    Every unit of a layer then computes the same thing, forever (symmetry).

    Parameters
    ----------
    shape : tuple of (int, int)
        (n_out, n_in), both at least 1.
    rng : object, default=None
        Ignored; there only so that every scheme takes the same arguments.
    dtype : str, type or numpy.dtype, default=numpy.float64
        Floating dtype of the zeros: float32 or float64.

    Returns
    -------
    W : numpy.ndarray of shape (n_out, n_in)
        Zeros of the given dtype.

    Raises
    ------
    TypeError
        If dtype is not float32 or float64.
    ValueError
        If shape is not a pair of integers >= 1.
    """
    _fans(shape)
    return np.zeros(tuple(shape), check.float_dtype(dtype))


def constant(shape, rng=None, dtype=np.float64, value=0.0):
    """Weights that all hold one value: as symmetric as :func:`zeros`.

    Parameters
    ----------
    shape : tuple of (int, int)
        The weight matrix's (n_out, n_in); each at least 1.
    rng : object, default=None
        Not used (the schemes share one signature).
    dtype : str, type or numpy.dtype, default=numpy.float64
        The result's dtype: float32 or float64.
    value : float, default=0.0
        The value of every weight; any finite real number.

    Returns
    -------
    W : numpy.ndarray of shape (n_out, n_in)
        ``value`` everywhere.

    Raises
    ------
    TypeError
        If value is not a real number, or dtype is not float32 or float64.
    ValueError
        If shape is not (n_out, n_in) with both >= 1, or value is not finite or
        beyond the range of dtype.
    """
    _fans(shape)
    value = check.real("value", value)
    return _finite(np.full(tuple(shape), value), check.float_dtype(dtype), "value", value)


def normal(shape, rng=None, dtype=np.float64, std=0.01):
    """Normal weights: W ~ N(0, std^2).

    The course's default std is 0.01 ("small random numbers").

    Parameters
    ----------
    shape : tuple of (int, int)
        (n_out, n_in), both at least 1.
    rng : int, numpy.random.Generator, numpy.random.RandomState or None, default=None
        Source of the one standard-normal draw; see :func:`as_rng`.
    dtype : str, type or numpy.dtype, default=numpy.float64
        Result dtype, float32 or float64; the draw is scaled in float64, then cast.
    std : float, default=0.01
        Standard deviation, >= 0.

    Returns
    -------
    W : numpy.ndarray of shape (n_out, n_in)
        A new array of the given dtype.

    Raises
    ------
    TypeError
        If std is not a real number, rng is not a seed or generator, or dtype is not
        float32 or float64.
    ValueError
        If shape is not (n_out, n_in) with both >= 1, std is negative or not finite,
        or so large that a weight overflows float64 or dtype, or rng is a negative
        int.
    """
    std = check.real("std", std, 0)
    return _normal(shape, std, rng, dtype, "std", std)


def uniform(shape, rng=None, dtype=np.float64, limit=0.05):
    """Uniform weights: W ~ U(-limit, limit).

    Parameters
    ----------
    shape : tuple of (int, int)
        Weight shape (n_out, n_in); both entries integers >= 1.
    rng : int, numpy.random.Generator, numpy.random.RandomState or None, default=None
        Where the uniform draw comes from (see :func:`as_rng`).
    dtype : str, type or numpy.dtype, default=numpy.float64
        Either float32 or float64 (drawn in float64, then cast).
    limit : float, default=0.05
        Half-width of the interval, >= 0.

    Returns
    -------
    W : numpy.ndarray of shape (n_out, n_in)
        Freshly drawn weights.

    Raises
    ------
    TypeError
        If limit is not a real number, rng is of another kind than a seed or a
        generator, or dtype is not float32 or float64.
    ValueError
        If shape is not a pair of integers >= 1, limit is negative or infinite, or so
        large that the interval (2 limit) overflows float64 or a weight overflows
        dtype, or rng is a negative seed.
    """
    limit = check.real("limit", limit, 0)
    return _uniform(shape, limit, rng, dtype, "limit", limit)


def xavier_normal(shape, rng=None, dtype=np.float64, gain=1.0):
    """Xavier (Glorot) normal weights.

    Glorot and Bengio (2010): W ~ N(0, gain^2 * 2 / (fan_in + fan_out)).

    Parameters
    ----------
    shape : tuple of (int, int)
        (n_out, n_in), both >= 1: fan_out = n_out and fan_in = n_in.
    rng : int, numpy.random.Generator, numpy.random.RandomState or None, default=None
        Seed or generator for the standard-normal draw (see :func:`as_rng`).
    dtype : str, type or numpy.dtype, default=numpy.float64
        Dtype of W: float32 or float64.
    gain : float, default=1.0
        Scale factor, >= 0; see :func:`fastnn.activations.gain`.

    Returns
    -------
    W : numpy.ndarray of shape (n_out, n_in)
        The drawn weights.

    Raises
    ------
    TypeError
        If gain is not a real number, rng has the wrong type, or dtype is not float32
        or float64.
    ValueError
        If shape is not (n_out, n_in) with both >= 1, gain is negative or not finite,
        or so large that a weight overflows dtype, or rng is a negative integer.
    """
    fan_in, fan_out = _fans(shape)
    gain = check.real("gain", gain, 0)
    return _normal(shape, gain * math.sqrt(2.0 / (fan_in + fan_out)), rng, dtype, "gain",
                   gain)


def xavier_uniform(shape, rng=None, dtype=np.float64, gain=1.0):
    """Xavier (Glorot) uniform weights.

    Glorot and Bengio (2010): W ~ U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)).

    Parameters
    ----------
    shape : tuple of (int, int)
        (n_out, n_in) = (fan_out, fan_in), each >= 1.
    rng : int, numpy.random.Generator, numpy.random.RandomState or None, default=None
        Seed or generator of the uniform draw.
    dtype : str, type or numpy.dtype, default=numpy.float64
        Result dtype, float32 or float64.
    gain : float, default=1.0
        Non-negative factor on the limit a.

    Returns
    -------
    W : numpy.ndarray of shape (n_out, n_in)
        Weights in [-a, a).

    Raises
    ------
    TypeError
        If gain is no real number, rng is no seed or generator, or dtype is neither
        float32 nor float64.
    ValueError
        If shape is not a pair of integers >= 1, gain is below 0 or infinite, or so
        large that the interval or a weight overflows (float64 or dtype), or rng is a
        seed below 0.
    """
    fan_in, fan_out = _fans(shape)
    gain = check.real("gain", gain, 0)
    return _uniform(shape, gain * math.sqrt(6.0 / (fan_in + fan_out)), rng, dtype, "gain",
                    gain)


def lecun_normal(shape, rng=None, dtype=np.float64):
    """LeCun normal weights: W ~ N(0, 1 / fan_in), i.e. randn * sqrt(1 / n_in).

    LeCun (1998). This is what "Deep Learning from Scratch" calls the Xavier initial
    value.

    Parameters
    ----------
    shape : tuple of (int, int)
        (n_out, n_in), both >= 1; fan_in = n_in.
    rng : int, numpy.random.Generator, numpy.random.RandomState or None, default=None
        Seed or generator (see :func:`as_rng`).
    dtype : str, type or numpy.dtype, default=numpy.float64
        The dtype of the weights, float32 or float64.

    Returns
    -------
    W : numpy.ndarray of shape (n_out, n_in)
        Normal weights with variance 1 / n_in.

    Raises
    ------
    TypeError
        If dtype is not float32 or float64, or rng is not a seed or a generator.
    ValueError
        If shape is not (n_out, n_in) with both >= 1, or rng is a negative int.
    """
    fan_in, _ = _fans(shape)
    std = math.sqrt(1.0 / fan_in)
    return _normal(shape, std, rng, dtype, "std", std)


def lecun_uniform(shape, rng=None, dtype=np.float64):
    """LeCun uniform weights: W ~ U(-a, a), a = sqrt(3 / fan_in) (variance 1 / fan_in).

    Parameters
    ----------
    shape : tuple of (int, int)
        The pair (n_out, n_in) of integers >= 1; n_in is fan_in.
    rng : int, numpy.random.Generator, numpy.random.RandomState or None, default=None
        Where the draw comes from.
    dtype : str, type or numpy.dtype, default=numpy.float64
        The dtype of W (float32 or float64).

    Returns
    -------
    W : numpy.ndarray of shape (n_out, n_in)
        Uniform weights, variance 1 / n_in.

    Raises
    ------
    TypeError
        If rng is of an unsupported type, or dtype names no float32/float64 dtype.
    ValueError
        If shape is not a pair of integers >= 1, or rng is a seed below 0.
    """
    fan_in, _ = _fans(shape)
    limit = math.sqrt(3.0 / fan_in)
    return _uniform(shape, limit, rng, dtype, "limit", limit)


def _he_fan(shape, mode):
    fan_in, fan_out = _fans(shape)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out'; got {mode!r}")
    return fan_in if mode == "fan_in" else fan_out


def he_normal(shape, rng=None, dtype=np.float64, mode="fan_in", negative_slope=0.0):
    """He (Kaiming) normal weights.

    He et al. (2015): W ~ N(0, 2 / ((1 + s^2) fan)), i.e. randn * sqrt(2 / n_in) for
    ReLU (s = 0, mode="fan_in"); s is leaky ReLU's negative slope, mode picks the fan.

    Parameters
    ----------
    shape : tuple of (int, int)
        (n_out, n_in), both >= 1.
    rng : int, numpy.random.Generator, numpy.random.RandomState or None, default=None
        Seed or generator of the standard-normal draw.
    dtype : str, type or numpy.dtype, default=numpy.float64
        Precision of W (float32 or float64).
    mode : {"fan_in", "fan_out"}, default="fan_in"
        Which fan sets the variance: n_in (forward pass) or n_out (backward pass).
    negative_slope : float, default=0.0
        The slope s of a leaky ReLU; 0 for ReLU.

    Returns
    -------
    W : numpy.ndarray of shape (n_out, n_in)
        Normal weights with variance 2 / ((1 + s^2) fan).

    Raises
    ------
    TypeError
        If negative_slope is not a real number, rng is not a seed or generator, or
        dtype is not float32 or float64.
    ValueError
        If shape is not (n_out, n_in) with both >= 1, mode is neither "fan_in" nor
        "fan_out", negative_slope is not finite, or rng is a negative int.
    """
    fan = _he_fan(shape, mode)
    s = check.real("negative_slope", negative_slope)
    return _normal(shape, math.sqrt(2.0 / ((1.0 + s * s) * fan)), rng, dtype,
                   "negative_slope", s)


def he_uniform(shape, rng=None, dtype=np.float64, mode="fan_in", negative_slope=0.0):
    """He (Kaiming) uniform weights.

    He et al. (2015): W ~ U(-a, a), a = sqrt(6 / ((1 + s^2) fan)) (variance
    2 / ((1 + s^2) fan)).

    Parameters
    ----------
    shape : tuple of (int, int)
        Weight shape (n_out, n_in); both integers >= 1.
    rng : int, numpy.random.Generator, numpy.random.RandomState or None, default=None
        Source of the uniform draw (see :func:`as_rng`).
    dtype : str, type or numpy.dtype, default=numpy.float64
        Either float32 or float64.
    mode : {"fan_in", "fan_out"}, default="fan_in"
        fan = n_in or fan = n_out.
    negative_slope : float, default=0.0
        Leaky ReLU's slope s for z < 0 (0: plain ReLU).

    Returns
    -------
    W : numpy.ndarray of shape (n_out, n_in)
        Uniform weights in [-a, a).

    Raises
    ------
    TypeError
        If negative_slope is no real number, rng is no seed or generator, or dtype is
        neither float32 nor float64.
    ValueError
        If shape is not a pair of integers >= 1, mode is not one of the two names,
        negative_slope is infinite or NaN, or rng is a seed below 0.
    """
    fan = _he_fan(shape, mode)
    s = check.real("negative_slope", negative_slope)
    return _uniform(shape, math.sqrt(6.0 / ((1.0 + s * s) * fan)), rng, dtype,
                    "negative_slope", s)


def orthogonal(shape, rng=None, dtype=np.float64, gain=1.0):
    """Orthogonal weights: W = gain * Q.

    Saxe et al. (2014): Q has orthonormal rows or columns (whichever are fewer), from
    the QR decomposition of one standard-normal draw (signs fixed by R's diagonal, as
    PyTorch).

    Parameters
    ----------
    shape : tuple of (int, int)
        (n_out, n_in), both at least 1.
    rng : int, numpy.random.Generator, numpy.random.RandomState or None, default=None
        Seed or generator of the draw that is decomposed.
    dtype : str, type or numpy.dtype, default=numpy.float64
        Dtype of the result: float32 or float64.
    gain : float, default=1.0
        Scale of Q, >= 0.

    Returns
    -------
    W : numpy.ndarray of shape (n_out, n_in)
        The matrix gain * Q: orthonormal rows (n_out <= n_in) or columns, scaled.

    Raises
    ------
    TypeError
        If gain is not a real number, rng is not a seed or a generator, or dtype is
        not float32 or float64.
    ValueError
        If shape is not (n_out, n_in) with both >= 1, gain is negative or not finite,
        or so large that a weight overflows dtype, or rng is a negative integer.
    """
    n_in, n_out = _fans(shape)
    a = as_rng(rng).standard_normal((n_out, n_in))
    if n_out < n_in:
        a = a.T
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    if n_out < n_in:
        q = q.T
    gain = check.real("gain", gain, 0)
    return _finite(gain * q, check.float_dtype(dtype), "gain", gain)


#: Schemes by name; "xavier", "lecun" and "he" are the normal variants.
SCHEMES = {
    "zeros": zeros, "normal": normal, "uniform": uniform,
    "xavier_normal": xavier_normal, "xavier_uniform": xavier_uniform,
    "lecun_normal": lecun_normal, "lecun_uniform": lecun_uniform,
    "he_normal": he_normal, "he_uniform": he_uniform, "orthogonal": orthogonal,
    "xavier": xavier_normal, "lecun": lecun_normal, "he": he_normal,
}


def scheme_for(init, activation, negative_slope=DEFAULT_NEGATIVE_SLOPE):
    """The initialisation function that MLP's ``init=`` means for one layer.

    Parameters
    ----------
    init : str, float or callable
        "auto" (He for relu and leaky_relu, Xavier for sigmoid, tanh and identity), a
        name from SCHEMES, a number (normal with that std, >= 0), or a callable
        (shape, rng, dtype) -> array, which is returned as it is.
    activation : str
        The layer's activation: "identity", "sigmoid", "tanh", "relu" or "leaky_relu".
    negative_slope : float, default=0.01
        The layer's leaky ReLU slope, given to He schemes for leaky_relu (and checked
        only when the scheme is called).

    Returns
    -------
    scheme : callable
        A function (shape, rng, dtype) -> W.

    Raises
    ------
    TypeError
        If activation is not a string, or init is none of the kinds above (a bool,
        for instance).
    ValueError
        If activation or init is an unknown name, or init is a negative or non-finite
        number.
    """
    activation_code(activation)
    if isinstance(init, numbers.Real) and not isinstance(init, bool):
        std = check.real("init", init, 0)
        return lambda shape, rng, dtype: _normal(shape, std, rng, dtype, "init", std)
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
