"""Checking what users pass to a model: architectures, features and targets.

Each function raises TypeError (wrong kind or dtype) or ValueError (wrong shape or
value) naming the argument, what was expected and what came, before any model is
built or changed.
"""
import numpy as np

from fastnn import _checks as check
from fastnn import _kernels
from fastnn.activations import ACTIVATIONS, activation_code
from fastnn.model.outputs import OUTPUTS

__all__ = ["layer_sizes", "hidden_activations", "output_layer", "features", "targets",
           "check_finite", "checked_copy"]


def layer_sizes(sizes):
    """Layer widths as a tuple of ints >= 1, input first, at least two."""
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
        raise TypeError("layer_sizes must be a list of integers (input width first); "
                        f"got {type(sizes).__name__}")
    sizes = tuple(check.integer(f"layer_sizes[{i}]", n, 1) for i, n in enumerate(sizes))
    if len(sizes) < 2:
        raise ValueError("layer_sizes needs at least the input and output widths; got "
                         f"{list(sizes)}")
    return sizes


def hidden_activations(activation, n_hidden):
    """One activation name per hidden layer, from one name or a list of them."""
    if isinstance(activation, str):
        activation_code(activation)
        return (activation,) * n_hidden
    if isinstance(activation, (list, tuple)):
        if len(activation) != n_hidden:
            raise ValueError(f"activation lists one name per hidden layer ({n_hidden}); "
                             f"got {len(activation)}")
    else:
        raise TypeError(f"activation must be one of {', '.join(map(repr, ACTIVATIONS))} or "
                        f"a list of them; got {type(activation).__name__}")
    for i, name in enumerate(activation):
        activation_code(name, f"activation[{i}]")
    return tuple(activation)


def output_layer(output, n_outputs):
    """The Output of OUTPUTS named output, for a layer of n_outputs units."""
    if not isinstance(output, str) or output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(map(repr, OUTPUTS))}; "
                         f"got {output!r}")
    if output == "softmax" and n_outputs < 2:
        raise ValueError("a softmax output needs at least 2 units (use output="
                         f"'sigmoid' for binary labels); got {n_outputs}")
    return OUTPUTS[output]


def features(net, X, name="X"):
    """X as a C-contiguous (m, net.n_features) array of the model's dtype.

    Integer and boolean arrays (and lists) are converted; a float array of the
    other precision is refused, never cast silently. Finiteness is checked by
    the engine (in C) or by fit, once for all the data.
    """
    dtype = net.dtype
    if not isinstance(X, np.ndarray):
        X = np.asarray(X)
        if X.dtype.kind == "f":
            with np.errstate(over="ignore"):
                converted = X.astype(dtype)
            if np.isinf(converted).sum() > np.isinf(X).sum():
                raise ValueError(f"{name} has values beyond the range of "
                                 f"{dtype.name}, the model's dtype")
            X = converted
    if X.dtype.kind in "biu":
        X = X.astype(dtype)
    elif X.dtype.kind != "f":
        raise TypeError(f"{name} must hold real numbers; got dtype {X.dtype}")
    elif X.dtype != dtype:
        raise TypeError(f"{name} has dtype {X.dtype} but the model is {dtype}; convert it "
                        f"with {name}.astype(np.{dtype.name}) (fastnn never casts floats "
                        f"silently)")
    if X.ndim != 2:
        hint = f" (one sample: {name}.reshape(1, -1))" if X.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (m, {net.n_features}); got shape "
                         f"{X.shape}{hint}")
    if X.shape[1] != net.n_features:
        raise ValueError(f"{name} must have {net.n_features} features (columns), "
                         f"like the model's input layer; got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one sample; got shape {X.shape}")
    return np.ascontiguousarray(X)


def targets(net, y, m, name="y"):
    """y as the engine takes it for a batch of m samples: class labels np.intp (m,)
    for softmax labels, otherwise float targets (m, k) of the model's dtype."""
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers; got dtype {y.dtype}")
    if y.shape[:1] != (m,):
        raise ValueError(f"{name} must have one row per sample of X ({m}); got shape "
                         f"{y.shape}")
    check_finite(name, y)
    return OUTPUTS[net.output].targets(y, m, net.n_outputs, net.dtype, name)


def check_finite(name, array):
    """ValueError saying how many values are NaN or infinite and where the first is."""
    if array.dtype.kind in "biu":
        return
    if array.dtype in check.FLOAT_DTYPES and array.flags.c_contiguous:
        first = _kernels.first_nonfinite(array)
    else:
        bad = np.flatnonzero(~np.isfinite(array))
        first = bad[0] if len(bad) else -1
    if first >= 0:
        raise ValueError(_kernels._nonfinite_message(name, array, int(first)))


def checked_copy(name, value, target):
    """value as an array of target's shape and dtype, finite; refused otherwise."""
    value = check.ndarray(name, value, target.ndim, target.dtype)
    check.same_shape(name, value, target.shape, f"{name}.shape")
    if not np.isfinite(value).all():
        raise ValueError(f"{name} must be finite")
    return value
