"""Argument checks shared by every public entry point.

Each raises TypeError (wrong kind or dtype) or ValueError (wrong shape, order or
value) with a message that names the argument, what was expected and what came.
"""
import math
import numbers
import struct

import numpy as np

from fastnn import _kernels

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_INT_MAX = 2**31 - 1  # BLAS takes 32-bit sizes
_FLOAT32 = struct.Struct("f")
#: The smallest normal number of float32 and float64, by itemsize: the engine reads
#: (and writes) the subnormal numbers below it as 0 (README, Numerics).
SMALLEST_NORMAL = {4: float(np.finfo(np.float32).tiny), 8: float(np.finfo(np.float64).tiny)}


def float_dtype(dtype, name="dtype"):
    """np.float32 or np.float64 from a name, type or dtype; anything else is refused."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64; got {dtype!r}")
    return resolved


def ndarray(name, value, ndim=None, dtype=None):
    """value as it is, if it is a float32/float64 ndarray of the given ndim and dtype."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray; got {type(value).__name__}")
    if value.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64; got {value.dtype}")
    if dtype is not None and value.dtype != dtype:
        raise TypeError(f"{name} has dtype {value.dtype}, but the other arrays are "
                        f"{dtype}; fastnn never casts silently: convert it first")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D; got {value.ndim}-D with shape "
                         f"{value.shape}")
    if value.size == 0:
        raise ValueError(f"{name} must not be empty; got shape {value.shape}")
    if value.size > _INT_MAX and max(value.shape) > _INT_MAX:  # (max alone: 0.2 us)
        raise ValueError(f"{name} has an axis longer than 2**31 - 1: {value.shape}")
    return value


def input_array(name, value, ndim=None, dtype=None):
    """A checked input array of finite values, made C-contiguous (a copy only when it
    is not). The finiteness scan is the compiled one: one pass, no temporary."""
    value = np.ascontiguousarray(ndarray(name, value, ndim, dtype))
    first = _kernels.first_nonfinite(value)
    if first >= 0:
        raise ValueError(_kernels._nonfinite_message(name, value, first))
    return value


def output_array(name, value, shape, dtype):
    """A checked output array: the given shape and dtype, C-contiguous and writeable."""
    ndarray(name, value, len(shape), dtype)
    if value.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}; got {value.shape}")
    if not value.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (it is written in place); "
                         f"got strides {value.strides}")
    if not value.flags.writeable:
        raise ValueError(f"{name} must be writeable (it is written in place)")
    return value


def same_shape(name, value, expected, meaning):
    """ValueError unless value.shape == expected; meaning spells the expected shape."""
    if value.shape != tuple(expected):
        raise ValueError(f"{name} must have shape {meaning} = {tuple(expected)}; "
                         f"got {value.shape}")


def real(name, value, low=None, high=None, low_open=False, high_open=False):
    """A finite real number as float, optionally within [low, high]; *_open excludes an end."""
    if type(value) is not float:  # (a float skips the ABC checks: 0.5 us a call)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number; got {type(value).__name__} "
                            f"{value!r}")
        value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"{name} must be in {left}{lo}, {hi}{right}; got {value!r}")
    return value


def integer(name, value, low=None, high=None):
    """An int (Python or NumPy integer, not bool), at least low and at most high."""
    if type(value) is not int:  # (an int skips the ABC checks, as in real)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an integer; got {type(value).__name__} "
                            f"{value!r}")
        value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be at least {low}; got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be at most {high}; got {value}")
    return value


def flag(name, value):
    """value if it is True or False (not merely truthy); TypeError otherwise."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return value


def class_labels(name, value, m, n_classes):
    """Integer class labels of shape (m,) within [0, n_classes), as np.intp."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray; got {type(value).__name__}")
    if value.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer class labels; got dtype {value.dtype}")
    if value.shape != (m,):
        raise ValueError(f"{name} must have shape (m,) = ({m},); got {value.shape}")
    outside = (value >= n_classes) if value.dtype.kind == "u" else (
        (value < 0) | (value >= n_classes))  # before the cast, which could wrap a uint64
    if outside.any():
        bad = int(np.flatnonzero(outside)[0])
        raise ValueError(f"{name} must be class indices in [0, {n_classes}); "
                         f"{name}[{bad}] = {value[bad]}")
    return np.array(value, dtype=np.intp)  # a private copy: checked, it stays valid


def sample_weight(value, m, dtype, name="sample_weight", strict=False):
    """Row weights (m,) of dtype, C-contiguous: finite, >= 0, with a positive sum.

    Array-likes of real numbers are converted, unless strict (then an ndarray of
    dtype is required, as the kernels take their arrays); the values are checked
    after the conversion too, so a weight beyond float32's range is refused, not
    turned into inf.
    """
    if strict:
        value = input_array(name, value, 1, dtype)
    else:
        array = np.asarray(value)
        if array.dtype.kind not in "iuf":
            raise TypeError(f"{name} must hold real numbers; got dtype {array.dtype}")
        value = np.ascontiguousarray(cast(name, array, dtype))
    if value.shape != (m,):
        raise ValueError(f"{name} must have shape ({m},), one weight per sample; got "
                         f"{value.shape}")
    bad = np.flatnonzero(~np.isfinite(value) | (value < 0))
    if bad.size:
        raise ValueError(f"{name} must be finite and >= 0; {name}[{bad[0]}] = "
                         f"{np.asarray(array if not strict else value)[bad[0]]!r}")
    with np.errstate(over="ignore"):
        total = value.sum(dtype=np.float64)
    if not total > 0:
        raise ValueError(f"{name} must have a positive sum; all weights are 0")
    if not math.isfinite(total):
        raise ValueError(f"{name} must have a finite sum; theirs overflows float64")
    return value


def cast(name, value, dtype):
    """value (an ndarray of numbers) as dtype, refusing a finite value that the cast
    turns into an infinity, with its index as the user passed it."""
    if np.can_cast(value.dtype, dtype):  # (no value can overflow: nothing to scan)
        return value.astype(dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        cast_value = value.astype(dtype)
    if cast_value.dtype.kind == "f" and value.dtype.kind == "f":
        overflow = np.isinf(cast_value) & np.isfinite(value)
        if overflow.any():
            index = np.unravel_index(int(np.flatnonzero(overflow)[0]), value.shape)
            where = f"[{', '.join(map(str, index))}]" if index else ""
            raise ValueError(f"{name}{where} = {value[index].item()!r} is beyond the range "
                             f"of {np.dtype(dtype).name}, the model's dtype")
    return cast_value


def representable(name, value, dtype, whose="the model's", flushed=False):
    """value (a float) as it is, if dtype holds it: refused when it overflows dtype
    or, not 0 itself, becomes 0 in it (with flushed, also when it is subnormal in it,
    which the engine reads as 0); whose says whose dtype that is. (float32's
    rounding by struct, as C's cast rounds: a NumPy scalar cast needs np.errstate to
    stay quiet, which cost 1.5 us a call.)"""
    held = value
    if dtype.itemsize == 4:
        try:
            held = _FLOAT32.unpack(_FLOAT32.pack(value))[0]
        except OverflowError:
            held = math.inf
    if math.isinf(held):
        raise ValueError(f"{name} = {value!r} is beyond the range of {dtype.name}, "
                         f"{whose} dtype")
    if value and held == 0:
        raise ValueError(f"{name} = {value!r} is 0 in {dtype.name}, {whose} dtype")
    if flushed and held and abs(held) < SMALLEST_NORMAL[dtype.itemsize]:
        raise ValueError(f"{name} = {value!r} is subnormal in {dtype.name}, {whose} dtype "
                         f"(below {SMALLEST_NORMAL[dtype.itemsize]:.6g}), which the model "
                         f"reads as 0")
    return value
