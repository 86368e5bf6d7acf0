"""Checking what users pass to a model: architectures, features and targets.

Each function raises TypeError (wrong kind or dtype) or ValueError (wrong shape or
value) naming the argument, what was expected and what came, before any model is
built or changed.
"""
import numpy as np
import scipy.sparse

from fastnn import _checks as check
from fastnn import _kernels
from fastnn.activations import ACTIVATIONS, activation_code
from fastnn.model.outputs import OUTPUTS

__all__ = ["layer_sizes", "hidden_activations", "output_layer", "features", "targets",
           "sample_weight", "check_finite", "first_nonfinite", "checked_like", "SparseRows",
           "gather_rows"]


def layer_sizes(sizes):
    """Check an architecture's layer widths, input first.

    Parameters
    ----------
    sizes : sequence of int
        The widths, input layer first and output layer last: at least two of
        them, each a Python or NumPy integer (not bool) of at least 1. A string
        or anything without a length is refused.

    Returns
    -------
    tuple of int
        The widths as Python ints, in the order given.

    Raises
    ------
    TypeError
        If sizes is a str or bytes or has no length, or a width is not an integer.
    ValueError
        If a width is below 1, or fewer than two widths are given.
    """
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
        raise TypeError("layer_sizes must be a list of integers (input width first); "
                        f"got {type(sizes).__name__}")
    sizes = tuple(check.integer(f"layer_sizes[{i}]", n, 1) for i, n in enumerate(sizes))
    if len(sizes) < 2:
        raise ValueError("layer_sizes needs at least the input and output widths; got "
                         f"{list(sizes)}")
    return sizes


def hidden_activations(activation, n_hidden):
    """Spell out the hidden layers' activations, one name per hidden layer.

    Parameters
    ----------
    activation : str or list or tuple of str
        One name of ACTIVATIONS for every hidden layer, or a list (or tuple)
        giving each hidden layer its own, first hidden layer first.
    n_hidden : int
        How many hidden layers the model has (its number of widths minus 2).

    Returns
    -------
    tuple of str
        n_hidden names; a single name repeated n_hidden times.

    Raises
    ------
    TypeError
        If activation is neither a str nor a list or tuple, or an entry of
        the list is not a str.
    ValueError
        If a name is not in ACTIVATIONS, or the list's length is not n_hidden.
    """
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
    """Look up the output layer a model asks for by name.

    Parameters
    ----------
    output : str
        A key of OUTPUTS: "sigmoid", "softmax" or "identity".
    n_outputs : int
        The width of the last layer; softmax needs 2 units or more.

    Returns
    -------
    Output
        The entry OUTPUTS[output] (shared by every model, not a copy).

    Raises
    ------
    ValueError
        If output is not a str naming an entry of OUTPUTS (a non-string
        included), or it is "softmax" with n_outputs below 2.
    """
    if not isinstance(output, str) or output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(map(repr, OUTPUTS))}; "
                         f"got {output!r}")
    if output == "softmax" and n_outputs < 2:
        raise ValueError("a softmax output needs at least 2 units (use output="
                         f"'sigmoid' for binary labels); got {n_outputs}")
    return OUTPUTS[output]


def features(net, X, name="X", sparse=False):
    """X as a C-contiguous (m, net.n_features) array of the model's dtype.

    Integer and boolean arrays (and lists) are converted; a float array (or
    DataFrame) of the other precision is refused, never cast silently; floats from a
    list are converted, refusing any beyond the dtype's range. Finiteness is checked by
    the engine (in C) or by fit, once for all the data. A scipy.sparse matrix
    becomes a SparseRows (sparse=True: where rows are gathered a batch at a
    time) or a dense array.

    Parameters
    ----------
    net : MLP
        The model; its dtype and n_features are what X must match.
    X : array-like of shape (m, net.n_features)
        Samples as rows, m >= 1: booleans, integers or floats of net.dtype; a
        list (any non-ndarray) may hold floats, converted to net.dtype.
    name : str, default="X"
        What the error messages call the argument.
    sparse : bool, default=False
        Keep a scipy.sparse X sparse (as SparseRows) instead of densifying it.

    Returns
    -------
    numpy.ndarray of shape (m, net.n_features), or SparseRows
        C-contiguous, of net.dtype: X itself when it already is so, else a copy.

    Raises
    ------
    TypeError
        If X does not hold booleans, integers or floats, or is a float
        ndarray of a dtype other than net.dtype.
    ValueError
        If X is not 2-D, has another number of columns or no rows, or (when
        not an ndarray) holds values that overflow net.dtype.
    """
    dtype = net.dtype
    if scipy.sparse.issparse(X):
        if sparse:
            return _shape_checked(net, SparseRows(X, dtype, name), name)
        X = X.toarray()
    typed = hasattr(X, "dtype") or hasattr(X, "dtypes")  # arrays, DataFrames, Series
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers; got dtype {X.dtype}")
    if X.dtype.kind == "f" and typed:  # floats that say their precision keep it
        _same_float(X.dtype, dtype, name)
    elif X.dtype != dtype:  # booleans, integers, and floats from lists
        X = check.cast(name, X, dtype)
    return np.ascontiguousarray(_shape_checked(net, X, name))


def _same_float(dtype, wanted, name):
    """TypeError for a float dtype other than the model's."""
    if dtype != wanted:
        raise TypeError(f"{name} has dtype {dtype} but the model is {wanted}; convert it "
                        f"with {name}.astype(np.{wanted.name}) (fastnn never casts floats "
                        f"silently)")


def _shape_checked(net, X, name):
    """X if it is (m, net.n_features) with m >= 1; ValueError otherwise."""
    if X.ndim != 2:
        hint = f" (one sample: {name}.reshape(1, -1))" if X.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (m, {net.n_features}); got shape "
                         f"{X.shape}{hint}")
    if X.shape[1] != net.n_features:
        raise ValueError(f"{name} must have {net.n_features} features (columns), "
                         f"like the model's input layer; got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one sample; got shape {X.shape}")
    return X


def targets(net, y, m, name="y"):
    """y as the engine takes it for a batch of m samples.

    The common checks (numbers, one row per sample, finite) come first; the
    model's entry of OUTPUTS then checks the shape and values its loss needs.

    Parameters
    ----------
    net : MLP
        The model; its output, n_outputs (k) and dtype decide what y must be.
    y : array-like
        Numeric targets with m rows: sigmoid takes 0/1 labels (m, k), or (m,)
        when k == 1; softmax takes labels (m,) in [0, k) or probability rows
        (m, k); identity takes real values (m, k), or (m,) when k == 1.
    m : int
        The number of samples, the rows of the X that goes with y.
    name : str, default="y"
        The argument's name in the messages of the errors.

    Returns
    -------
    numpy.ndarray
        C-contiguous: class labels np.intp (m,) for softmax labels, otherwise
        float targets (m, k) of net.dtype.

    Raises
    ------
    TypeError
        If y holds anything but booleans, integers or floats.
    ValueError
        If y's first axis is not m long, a value is NaN or infinite, or y's
        shape or values do not suit the output (see Output.targets).
    """
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers; got dtype {y.dtype}")
    if y.shape[:1] != (m,):
        raise ValueError(f"{name} must have one row per sample of X ({m}); got shape "
                         f"{y.shape}")
    check_finite(name, y)
    return OUTPUTS[net.output].targets(y, m, net.n_outputs, net.dtype, name)


def check_finite(name, array):
    """Refuse an array holding NaN or infinite values.

    Boolean and integer arrays pass at once. A C-contiguous float32 or float64
    array is scanned by the compiled kernel in one pass; any other by NumPy.

    Parameters
    ----------
    name : str
        The array's name, as the error message spells it.
    array : numpy.ndarray
        A numeric array of any shape.

    Returns
    -------
    None

    Raises
    ------
    ValueError
        If any value is NaN or infinite; the message counts them and gives
        the index and value of the first, e.g. "X[4, 1] = nan".
    """
    if isinstance(array, SparseRows):
        return array.check_finite(name)
    first = first_nonfinite(array)
    if first >= 0:
        raise ValueError(_kernels._nonfinite_message(name, array, first))


def first_nonfinite(array):
    """The flat index of the first NaN or infinity in a numeric ndarray, or -1
    (booleans and integers: -1 at once); a C-contiguous float32 or float64 array in
    one pass of the compiled scan, any other by NumPy."""
    if array.dtype.kind in "biu":
        return -1
    if array.dtype in check.FLOAT_DTYPES and array.flags.c_contiguous:
        return _kernels.first_nonfinite(array)
    bad = np.flatnonzero(~np.isfinite(array))
    return int(bad[0]) if len(bad) else -1


def checked_like(name, value, target):
    """Check a replacement for one of a model's arrays before it is copied in.

    Despite the name, nothing is copied here: the caller copies value into
    target (or makes its own copy) once the checks have passed.

    Parameters
    ----------
    name : str
        The name the messages give value.
    value : numpy.ndarray
        The new values: a float32 or float64 array of target's dtype, ndim
        and shape, non-empty and finite.
    target : numpy.ndarray
        The array value is to replace.

    Returns
    -------
    numpy.ndarray
        value itself, unchanged.

    Raises
    ------
    TypeError
        If value is not an ndarray, or its dtype is not target's (float32 or
        float64 in either case).
    ValueError
        If value's ndim or shape differs from target's, it is empty, or it
        holds a NaN or an infinity.
    """
    value = check.ndarray(name, value, target.ndim, target.dtype)
    check.same_shape(name, value, target.shape, f"{name}.shape")
    if not np.isfinite(value).all():
        raise ValueError(f"{name} must be finite")
    return value


def sample_weight(net, weights, m):
    """Row weights as the engine takes them: (m,) of net.dtype, C-contiguous, or None.

    Parameters
    ----------
    net : MLP
        The model; its dtype is the weights' dtype.
    weights : array-like of shape (m,) or None
        Real numbers, finite and >= 0, the largest at least the dtype's smallest
        normal number: the engine reads subnormal numbers as 0, and so they are made 0
        here (in a copy), for every sum of the weights to agree.
    m : int
        The number of samples.

    Returns
    -------
    numpy.ndarray or None

    Raises
    ------
    TypeError, ValueError
        If weights are not numbers, not m of them, negative, not finite (in the
        model's dtype too), or all 0 or subnormal.
    """
    if weights is None:
        return None
    weights = check.sample_weight(weights, m, net.dtype)
    smallest_normal = check.SMALLEST_NORMAL[net.dtype.itemsize]
    largest = weights.max()
    if largest < smallest_normal:
        raise ValueError(f"sample_weight must have a weight of at least "
                         f"{smallest_normal:.6g} ({net.dtype.name}'s smallest normal number; "
                         f"the model reads smaller ones as 0); the largest is {largest:.6g}")
    subnormal = (weights > 0) & (weights < smallest_normal)
    return np.where(subnormal, 0, weights).astype(net.dtype) if subnormal.any() else weights


class SparseRows:
    """A scipy.sparse matrix (CSR, CSC, COO, ...) as fit and predict take it: CSR
    with np.intp indices in the model's dtype, its structure checked once (and never
    changed: the user's matrix is only read); its rows
    are gathered into dense buffers a batch at a time, never densified whole.

    Parameters
    ----------
    X : scipy.sparse matrix or array
        Booleans, integers or floats of dtype (the other float precision is refused).
    dtype : numpy.dtype
        The model's dtype.
    name : str
        What the error messages call X.

    Attributes
    ----------
    data, indices, indptr : numpy.ndarray
        The CSR arrays (a copy of X's when converted).
    shape : tuple of int
    ndim : int
        2.
    """

    ndim = 2

    def __init__(self, X, dtype, name):
        if len(X.shape) != 2:
            raise ValueError(f"{name} must be 2-D (m, n_features); got a sparse array of "
                             f"shape {X.shape}")
        X = X.tocsr()
        kind = X.dtype.kind
        if kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers; got dtype {X.dtype}")
        if kind == "f":
            _same_float(X.dtype, dtype, name)
        self.shape, self.dtype = X.shape, np.dtype(dtype)
        self.indices = np.ascontiguousarray(X.indices, dtype=np.intp)
        self.indptr = np.ascontiguousarray(X.indptr, dtype=np.intp)
        self._check_structure(name, len(X.data))  # before scipy reads it again
        if not X.has_canonical_format:  # duplicates add up: sum them (in a copy) first,
            X = X.copy()                # so that what is checked is what is gathered
            X.sum_duplicates()
            self.indices = np.ascontiguousarray(X.indices, dtype=np.intp)
            self.indptr = np.ascontiguousarray(X.indptr, dtype=np.intp)
        self.data = np.ascontiguousarray(X.data, dtype=dtype)

    def _check_structure(self, name, n_values):
        """ValueError unless the CSR arrays describe a matrix of self.shape (checked
        here, not by scipy, whose check passes some structures and prunes others in
        place; the gathering kernel bounds what it reads as well)."""
        indptr, nnz = self.indptr, self.indptr[-1] if len(self.indptr) else -1
        if (len(indptr) != self.shape[0] + 1 or indptr[0] != 0
                or (np.diff(indptr) < 0).any()
                or not nnz <= min(len(self.indices), n_values)):
            raise ValueError(f"{name} is not a valid sparse matrix: its row pointers "
                             f"do not describe {self.shape[0]} rows of its values")
        columns = self.indices[:nnz]
        if len(columns) and not (columns.min() >= 0 and columns.max() < self.shape[1]):
            raise ValueError(f"{name} is not a valid sparse matrix: a column index is "
                             f"outside [0, {self.shape[1]})")

    def __len__(self):
        return self.shape[0]

    def check_finite(self, name):
        """ValueError naming the first stored value that is NaN or infinite as
        name[row, column]."""
        bad = np.flatnonzero(~np.isfinite(self.data[:self.indptr[-1]]))
        if bad.size:
            row = int(np.searchsorted(self.indptr, bad[0], side="right")) - 1
            raise ValueError(f"{name} must be finite: {bad.size} stored values are NaN "
                             f"or infinite, the first is {name}[{row}, "
                             f"{self.indices[bad[0]]}] = {self.data[bad[0]].item()!r}")

    def gather(self, rows, out):
        """out = the given rows, dense: (len(rows), n_features) of the model's dtype,
        C-contiguous; returns out."""
        check.output_array("out", out, (len(rows), self.shape[1]), self.dtype)
        _kernels.gather_csr_rows(self.data, self.indices, self.indptr,
                                 np.ascontiguousarray(rows, dtype=np.intp), out)
        return out

    def chunks(self, size):
        """(start, dense rows start:start + size) in order; the rows share one buffer,
        overwritten by the next chunk."""
        buffer = np.empty((min(size, len(self)), self.shape[1]), self.dtype)
        for start in range(0, len(self), size):
            rows = np.arange(start, min(start + size, len(self)))
            yield start, self.gather(rows, buffer[:len(rows)])


def gather_rows(X, rows, out):
    """out = X[rows] (X an ndarray or SparseRows; rows np.intp); returns out.

    Parameters
    ----------
    X : numpy.ndarray or SparseRows
    rows : numpy.ndarray of np.intp
    out : numpy.ndarray
        (len(rows),) + X.shape[1:], C-contiguous, X's dtype.

    Returns
    -------
    numpy.ndarray
        out.
    """
    if isinstance(X, SparseRows):
        return X.gather(rows, out)
    return np.take(X, rows, axis=0, out=out)
