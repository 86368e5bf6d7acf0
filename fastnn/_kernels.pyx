# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""fastnn's compiled kernels, one typed entry point each.

Each ``def`` below takes typed memoryviews (float32 or float64 through the fused type
`floating`), refuses outputs that overlap another argument in memory, releases the
GIL and calls the pointer-level kernel of fastnn/_ops.pxd. Every other check is made
first by fastnn.kernels, whose functions document these. The dense layers' kernels
instead take their arrays as they come and check them here when they are plainly
right (see "plain arguments"), holding the GIL for small work. Also here: the
compiled finiteness scan the argument checks use, and which vector build runs.
"""

from types import MappingProxyType

cimport numpy as cnp
import numpy as np
from cython cimport floating
from libc.limits cimport INT_MAX
from libc.math cimport isfinite
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from fastnn._ops cimport (IDENTITY, LEAKY_RELU, RELU, SIGMOID, TANH,
                          OUT_IDENTITY, OUT_POISSON, OUT_SIGMOID, OUT_SOFTMAX, intp,
                          _activate, _activation_grad, _activation_grad_sums,
                          _dense_forward, _dense_backward, _output_loss,
                          _softmax_ce_labels, _softmax_ce_probs, _sgd, _momentum, _adam,
                          _first_nonfinite, _scratch_bytes, fnn_adam_divide,
                          fnn_adam_ways, FNN_ADAM_WAYS, fnn_vector_build,
                          fnn_vector_builds, FNN_BUILDS)

cnp.import_array()

# ---------------------------------------------------------------- public kernels
# The entry points. Arguments are marked IN, OUT or INOUT; fastnn.kernels has the
# checked versions and the documentation. Made here, whatever the path: the memory
# layout the pointers assume (_laid_out) and that no output overlaps another
# argument (_disjoint, on the spans _laid_out gives).

cdef struct Span:
    const char* start
    intp nbytes


cdef inline Span _span(const void* start, intp count, intp itemsize) noexcept:
    cdef Span span
    span.start = <const char*> start
    span.nbytes = count * itemsize
    return span


cdef int _disjoint(tuple names, Span* spans, int n, int n_outputs,
                   int alias_out=-1, int alias_of=-1) except -1:
    """ValueError if one of the first n_outputs spans overlaps any other span.

    spans[alias_out] may coincide exactly with spans[alias_of] (in-place use).
    """
    cdef int i, j
    for i in range(n_outputs):
        for j in range(i + 1, n):
            if (spans[i].start < spans[j].start + spans[j].nbytes
                    and spans[j].start < spans[i].start + spans[i].nbytes):
                if ((i, j) == (alias_out, alias_of) or (j, i) == (alias_out, alias_of)) \
                        and spans[i].start == spans[j].start \
                        and spans[i].nbytes == spans[j].nbytes:
                    continue
                raise ValueError(f"{names[i]} overlaps {names[j]} in memory; an output "
                                 f"must not share memory with another argument")
    return 0


cdef void* _scratch(intp n_in, intp n_out, size_t itemsize) except? NULL:
    """A layer's scratch for _dense_forward and _dense_backward (_scratch_bytes), to
    free; NULL for a thin layer."""
    cdef size_t nbytes = _scratch_bytes(n_in, n_out, itemsize)
    cdef void* scratch = malloc(nbytes) if nbytes else NULL
    if nbytes and scratch == NULL:
        raise MemoryError()
    return scratch


# ---------------------------------------------------------------- plain arguments
# The layer and loss kernels take their arguments as they come. A call whose arguments
# are plainly right (the _plain_* tests below: what fastnn.kernels's checks would pass
# unchanged) runs at once; any other call returns False (a loss kernel: None) having
# done nothing, and fastnn.kernels checks the arguments (raising its error, or copying
# an input that is not C-contiguous) and calls again with checked=True. At small
# sizes the checks in Python took longer than the work (README, Kernels).

#: The activations' codes (IDENTITY... of _ops.pxd) by name, in code order:
#: fastnn.activations.ACTIVATIONS lists its keys.
cdef dict _ACTIVATION_CODES = {"identity": IDENTITY, "sigmoid": SIGMOID, "tanh": TANH,
                               "relu": RELU, "leaky_relu": LEAKY_RELU}
ACTIVATION_CODES = MappingProxyType(_ACTIVATION_CODES)

#: The output codes (OUT_* of _ops.pxd) by name.
OUTPUTS = MappingProxyType({"sigmoid": OUT_SIGMOID, "softmax": OUT_SOFTMAX,
                           "identity": OUT_IDENTITY, "poisson": OUT_POISSON})

cdef enum:
    GIL_FREE_WORK = 16384  # a call of less work (multiply-adds, values) holds the GIL


cdef inline void* _data(object array) noexcept:
    return cnp.PyArray_DATA(<cnp.ndarray> array)


cdef inline void* _data_or_null(object array) noexcept:
    if array is None:
        return NULL
    return cnp.PyArray_DATA(<cnp.ndarray> array)


cdef inline intp _dim(object array, int axis) noexcept:
    return cnp.PyArray_DIM(<cnp.ndarray> array, axis)


cdef inline intp _size(object array) noexcept:
    return cnp.PyArray_SIZE(<cnp.ndarray> array)


cdef int _plain_type(object a) noexcept:
    """NPY_FLOAT32 or NPY_FLOAT64 for an ndarray (not a subclass) of that dtype in the
    machine's byte order, else -1."""
    if not cnp.PyArray_CheckExact(a):
        return -1
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray> a)
    if (t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64) \
            or not cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray> a):
        return -1
    return t


cdef bint _plain_array(object a, int t, int ndim, intp rows, intp cols) noexcept:
    """a is an ndarray of type t (see _plain_type), C-contiguous and aligned, with ndim
    axes (at least one when ndim < 0: the checks make a 0-d input 1-d), none empty or
    of 2**31 or more, rows of them (and cols) where these are not < 0."""
    if t < 0 or _plain_type(a) != t:
        return False
    cdef cnp.ndarray x = <cnp.ndarray> a
    cdef int i, d = cnp.PyArray_NDIM(x)
    if (d != ndim if ndim >= 0 else d == 0) or not cnp.PyArray_IS_C_CONTIGUOUS(x) \
            or not cnp.PyArray_ISALIGNED(x):
        return False
    cdef intp n
    for i in range(d):
        n = cnp.PyArray_DIM(x, i)
        if not 0 < n <= INT_MAX or (i == 0 and rows >= 0 and n != rows) \
                or (i == 1 and cols >= 0 and n != cols):
            return False
    return True


cdef int _laid_out(tuple names, tuple arrays, int t, const intp* sizes,
                   Span* spans) except -1:
    """ValueError unless every array (None skipped) is an ndarray of type t, C-contiguous,
    of sizes[i] values: the layout the kernel's pointers assume, tested with the GIL
    held after every other test, as another thread may reshape an array in place (or
    a private caller pass anything with checked=True). The kernels then use only the
    sizes read before. spans[i] gets array i's bytes (none for None), for _disjoint."""
    cdef int i
    cdef cnp.ndarray x
    for i in range(len(arrays)):
        spans[i] = _span(NULL, 0, 1)
        if arrays[i] is None:
            continue
        if not cnp.PyArray_Check(arrays[i]):
            raise TypeError(f"{names[i]} must be a numpy.ndarray")
        x = <cnp.ndarray> arrays[i]
        if cnp.PyArray_TYPE(x) != t or not cnp.PyArray_IS_C_CONTIGUOUS(x) \
                or cnp.PyArray_SIZE(x) != sizes[i]:
            raise ValueError(f"{names[i]} is not a C-contiguous array of {sizes[i]} values "
                             f"of the others' dtype (did another thread reshape it?)")
        spans[i] = _span(cnp.PyArray_DATA(x), sizes[i], cnp.PyArray_ITEMSIZE(x))
    return 0


cdef int _checked_type(str name, object a) except -1:
    """NPY_FLOAT32 or NPY_FLOAT64, the type of an array the checks passed; TypeError for
    anything else (a private caller's mistake)."""
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray> a) if cnp.PyArray_Check(a) else -1
    if t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64:
        raise TypeError(f"{name} must be a float32 or float64 numpy.ndarray")
    return t


cdef bint _finite(object a, int t) noexcept:
    """No NaN or infinity in a (a C-contiguous array of type t)."""
    cdef intp n = _size(a)
    cdef const void* data = _data(a)
    cdef bint single = t == cnp.NPY_FLOAT32
    if n < GIL_FREE_WORK:
        return _first_nonfinite(data, n, single) < 0
    with nogil:
        n = _first_nonfinite(data, n, single)
    return n < 0


cdef bint _plain_input(object a, int t, int ndim, intp rows=-1, intp cols=-1) noexcept:
    """What check.input_array passes unchanged: _plain_array, and finite."""
    return _plain_array(a, t, ndim, rows, cols) and _finite(a, t)


cdef bint _plain_output(object a, int t, int ndim, intp rows, intp cols=-1) noexcept:
    """What check.output_array passes: _plain_array of that shape, and writeable."""
    return _plain_array(a, t, ndim, rows, cols) \
        and cnp.PyArray_ISWRITEABLE(<cnp.ndarray> a)


cdef bint _plain_like(object a, object like, bint output) noexcept:
    """a plainly right with the type and shape of like (itself plainly right): an
    output writeable, an input finite."""
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray> like)
    if _plain_type(a) != t or not cnp.PyArray_SAMESHAPE(<cnp.ndarray> a, <cnp.ndarray> like) \
            or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray> a) \
            or not cnp.PyArray_ISALIGNED(<cnp.ndarray> a):
        return False
    return cnp.PyArray_ISWRITEABLE(<cnp.ndarray> a) if output else _finite(a, t)


cdef int _plain_activation(object activation, int t, object negative_slope,
                           double* slope) noexcept:
    """The code of a plainly right activation name, with a negative_slope that is a
    float, finite, and neither infinite nor 0 (unless 0) in type t, into *slope; else
    -1."""
    if type(activation) is not str or type(negative_slope) is not float:
        return -1
    code = _ACTIVATION_CODES.get(activation)
    cdef double value = negative_slope
    cdef float single = <float> value
    if code is None or not isfinite(value) or (t == cnp.NPY_FLOAT32 and (
            not isfinite(single) or (value != 0 and single == 0))):
        return -1
    slope[0] = value
    return code


cdef bint _plain_labels(object labels, intp m, intp k) noexcept:
    """labels is an ndarray of np.intp in the machine's byte order, C-contiguous and
    aligned, of shape (m,), every one in [0, k): what check.class_labels passes."""
    if not cnp.PyArray_CheckExact(labels):
        return False
    cdef cnp.ndarray y = <cnp.ndarray> labels
    if cnp.PyArray_TYPE(y) != cnp.NPY_INTP or not cnp.PyArray_ISNOTSWAPPED(y) \
            or cnp.PyArray_NDIM(y) != 1 or cnp.PyArray_DIM(y, 0) != m \
            or not cnp.PyArray_IS_C_CONTIGUOUS(y) or not cnp.PyArray_ISALIGNED(y):
        return False
    cdef const intp* c = <const intp*> cnp.PyArray_DATA(y)
    cdef intp i
    for i in range(m):
        if not 0 <= c[i] < k:
            return False
    return True


# ---------------------------------------------------------------- layers

cdef void _activation_run(bint single, bint derivative, const void* z, const void* a,
                          void* out, intp n, int act, double slope) noexcept nogil:
    """out = g(z), or with derivative out = g'(z) from the cache a = g(z), over n
    values of float32 (single) or float64."""
    cdef intp i
    if single and derivative:
        for i in range(n):
            (<float*> out)[i] = 1
        _activation_grad(<const float*> out, <const float*> z, <const float*> a,
                         <float*> out, n, act, <float> slope)
    elif derivative:
        for i in range(n):
            (<double*> out)[i] = 1
        _activation_grad(<const double*> out, <const double*> z, <const double*> a,
                         <double*> out, n, act, slope)
    elif single:
        _activate(<const float*> z, <float*> out, n, act, <float> slope)
    else:
        _activate(<const double*> z, <double*> out, n, act, slope)


def activation_forward(Z,  # IN  any shape
                       A,  # OUT Z's shape, may be Z
                       activation, negative_slope, *, bint checked=False):
    """A = g(Z). checked: the arguments passed fastnn.kernels's checks (activation is
    its code); else they are taken when plainly right, and False returned, nothing
    done, when they are not (see above)."""
    cdef int t = _checked_type("Z", Z) if checked else _plain_type(Z)
    cdef double slope = negative_slope if checked else 0
    cdef int act = activation if checked else _plain_activation(activation, t,
                                                                 negative_slope, &slope)
    if not checked and (act < 0 or not (_plain_input(Z, t, -1) and _plain_like(A, Z, True))):
        return False
    cdef intp n = _size(Z), s = 4 if t == cnp.NPY_FLOAT32 else 8
    cdef intp sizes[2]
    cdef Span spans[2]
    sizes[:] = [n, n]
    _laid_out(("A", "Z"), (A, Z), t, sizes, spans)
    _disjoint(("A", "Z"), spans, 2, 1, 0, 1)
    cdef void* z = _data(Z)
    cdef void* a = _data(A)
    if n < GIL_FREE_WORK:
        _activation_run(s == 4, False, z, NULL, a, n, act, slope)
    else:
        with nogil:
            _activation_run(s == 4, False, z, NULL, a, n, act, slope)
    return True


def activation_derivative(Z,    # IN
                          A,    # IN  g(Z), the cache
                          out,  # OUT g'(Z)
                          activation, negative_slope, *, bint checked=False):
    """out = g'(Z) from the cache A = g(Z); checked as in activation_forward."""
    cdef int t = _checked_type("Z", Z) if checked else _plain_type(Z)
    cdef double slope = negative_slope if checked else 0
    cdef int act = activation if checked else _plain_activation(activation, t,
                                                                 negative_slope, &slope)
    if not checked and (act < 0 or not (_plain_input(Z, t, -1) and _plain_like(A, Z, False)
                                        and _plain_like(out, Z, True))):
        return False
    cdef intp n = _size(Z), s = 4 if t == cnp.NPY_FLOAT32 else 8
    cdef intp sizes[3]
    cdef Span spans[3]
    sizes[:] = [n, n, n]
    _laid_out(("out", "Z", "A"), (out, Z, A), t, sizes, spans)
    _disjoint(("out", "Z", "A"), spans, 3, 1)
    cdef void* p[3]
    p[:] = [_data(Z), _data(A), _data(out)]
    if n < GIL_FREE_WORK:
        _activation_run(s == 4, True, p[0], p[1], p[2], n, act, slope)
    else:
        with nogil:
            _activation_run(s == 4, True, p[0], p[1], p[2], n, act, slope)
    return True


cdef void _dense_forward_run(bint single, void** p, intp m, intp n_in, intp n_out,
                             int act, double slope, void* scratch) noexcept nogil:
    """_dense_forward on the pointers p of (A_prev, W, b, Z, A), float32 (single) or
    float64."""
    if single:
        _dense_forward(<const float*> p[0], <const float*> p[1], <const float*> p[2],
                       <float*> p[3], <float*> p[4], m, n_in, n_out, act, <float> slope,
                       scratch)
    else:
        _dense_forward(<const double*> p[0], <const double*> p[1], <const double*> p[2],
                       <double*> p[3], <double*> p[4], m, n_in, n_out, act, slope,
                       scratch)


def dense_forward(A_prev,  # IN  (m, n_in)
                  W,       # IN  (n_out, n_in)
                  b,       # IN  (n_out,)
                  Z,       # OUT (m, n_out)
                  A,       # OUT (m, n_out), may be Z
                  activation, negative_slope, *, bint checked=False):
    """Z = A_prev W^T + b, A = g(Z); checked as in activation_forward."""
    cdef int t = _checked_type("A_prev", A_prev) if checked else _plain_type(A_prev)
    cdef double slope = negative_slope if checked else 0
    cdef int act = activation if checked else _plain_activation(activation, t,
                                                                 negative_slope, &slope)
    if not checked:
        if act < 0 or not (_plain_input(A_prev, t, 2)
                           and _plain_input(W, t, 2, -1, _dim(A_prev, 1))):
            return False
        if not (_plain_input(b, t, 1, _dim(W, 0))
                and _plain_output(Z, t, 2, _dim(A_prev, 0), _dim(W, 0))
                and _plain_output(A, t, 2, _dim(A_prev, 0), _dim(W, 0))):
            return False
    cdef intp m = _dim(A_prev, 0), n_in = _dim(A_prev, 1), n_out = _dim(W, 0)
    cdef intp s = 4 if t == cnp.NPY_FLOAT32 else 8
    cdef intp sizes[5]
    cdef Span spans[5]
    sizes[:] = [m * n_out, m * n_out, m * n_in, n_out * n_in, n_out]
    _laid_out(("Z", "A", "A_prev", "W", "b"), (Z, A, A_prev, W, b), t, sizes, spans)
    _disjoint(("Z", "A", "A_prev", "W", "b"), spans, 5, 2, 1, 0)
    cdef void* p[5]
    p[:] = [_data(A_prev), _data(W), _data(b), _data(Z), _data(A)]
    cdef void* scratch = _scratch(n_in, n_out, s)
    if m * n_in * n_out < GIL_FREE_WORK:
        _dense_forward_run(s == 4, p, m, n_in, n_out, act, slope, scratch)
    else:
        with nogil:
            _dense_forward_run(s == 4, p, m, n_in, n_out, act, slope, scratch)
    free(scratch)
    return True


cdef void _dense_backward_run(bint single, void** p, intp m, intp n_in, intp n_out,
                              int act, double slope, void* scratch) noexcept nogil:
    """dZ = dA g'(Z), then _dense_backward, on the pointers p of (dA, Z, A, A_prev, W,
    dZ, dW, db, dA_prev or NULL), float32 (single) or float64."""
    if single:
        _activation_grad_sums(<const float*> p[0], <const float*> p[1],
                              <const float*> p[2], <float*> p[5], <float*> p[7], m, n_out,
                              act, <float> slope)
        _dense_backward(<const float*> p[5], <const float*> p[3], <const float*> p[4],
                        <float*> p[6], <float*> p[8], m, n_in, n_out, scratch)
    else:
        _activation_grad_sums(<const double*> p[0], <const double*> p[1],
                              <const double*> p[2], <double*> p[5], <double*> p[7], m,
                              n_out, act, slope)
        _dense_backward(<const double*> p[5], <const double*> p[3], <const double*> p[4],
                        <double*> p[6], <double*> p[8], m, n_in, n_out, scratch)


def dense_backward(dA,       # IN  (m, n_out)
                   Z,        # IN  (m, n_out) cache
                   A,        # IN  (m, n_out) cache g(Z)
                   A_prev,   # IN  (m, n_in)
                   W,        # IN  (n_out, n_in)
                   dZ,       # OUT (m, n_out), may be dA
                   dW,       # OUT (n_out, n_in)
                   db,       # OUT (n_out,)
                   dA_prev,  # OUT (m, n_in), or None to skip
                   activation, negative_slope, *, bint checked=False):
    """dZ = dA g'(Z), dW = dZ^T A_prev, db = the column sums of dZ, dA_prev = dZ W;
    checked as in activation_forward."""
    cdef int t = _checked_type("dA", dA) if checked else _plain_type(dA)
    cdef double slope = negative_slope if checked else 0
    cdef int act = activation if checked else _plain_activation(activation, t,
                                                                 negative_slope, &slope)
    cdef intp m, n_out, n_in
    if not checked:
        if act < 0 or not (_plain_input(dA, t, 2)
                           and _plain_input(A_prev, t, 2, _dim(dA, 0))):
            return False
        m, n_out, n_in = _dim(dA, 0), _dim(dA, 1), _dim(A_prev, 1)
        if not (_plain_like(Z, dA, False) and _plain_like(A, dA, False)
                and _plain_input(W, t, 2, n_out, n_in) and _plain_like(dZ, dA, True)
                and _plain_output(dW, t, 2, n_out, n_in) and _plain_output(db, t, 1, n_out)
                and (dA_prev is None or _plain_like(dA_prev, A_prev, True))):
            return False
    m, n_out, n_in = _dim(dA, 0), _dim(dA, 1), _dim(A_prev, 1)
    cdef intp s = 4 if t == cnp.NPY_FLOAT32 else 8
    cdef intp sizes[9]
    cdef Span spans[9]
    cdef tuple names = ("dZ", "dW", "db", "dA_prev", "dA", "Z", "A", "A_prev", "W")
    sizes[:] = [m * n_out, n_out * n_in, n_out, m * n_in, m * n_out, m * n_out, m * n_out,
                m * n_in, n_out * n_in]
    _laid_out(names, (dZ, dW, db, dA_prev, dA, Z, A, A_prev, W), t, sizes, spans)
    _disjoint(names, spans, 9, 4, 0, 4)
    cdef void* p[9]
    p[:] = [_data(dA), _data(Z), _data(A), _data(A_prev), _data(W), _data(dZ), _data(dW),
            _data(db), _data_or_null(dA_prev)]
    cdef void* scratch = _scratch(n_in, n_out, s)
    if m * n_in * n_out < GIL_FREE_WORK:
        _dense_backward_run(s == 4, p, m, n_in, n_out, act, slope, scratch)
    else:
        with nogil:
            _dense_backward_run(s == 4, p, m, n_in, n_out, act, slope, scratch)
    free(scratch)
    return True


# ---------------------------------------------------------------- outputs and losses

cdef double _output_loss_run(bint single, int output, void** p, const intp* labels,
                             double norm, intp m, intp k) noexcept nogil:
    """_output_loss on the pointers p of (Z, Y or NULL, A, dZ, row weights or NULL),
    float32 (single) or float64."""
    if single:
        return _output_loss(output, <const float*> p[0], <const float*> p[1], labels,
                            <const float*> p[4], norm, <float*> p[2], <float*> p[3], m, k)
    return _output_loss(output, <const double*> p[0], <const double*> p[1], labels,
                        <const double*> p[4], norm, <double*> p[2], <double*> p[3], m, k)


def output_loss(int output,        # OUT_*: the output layer and its loss
                Z,                 # IN  logits: (m, k) for softmax, else any shape
                Y,                 # IN  targets of Z's shape; softmax: or labels (m,)
                A,                 # OUT Z's shape: the output (probabilities, values)
                dZ,                # OUT Z's shape: the gradient
                sample_weight=None,  # IN  (m,) row weights of Z's type, or None
                *, bint checked=False):
    """The loss (the mean over the rows, weighted by sample_weight) of an output layer
    on logits Z against Y, writing its output into A and its gradient into dZ. Z holds
    m rows of k values (m the length of its first axis). checked as in
    activation_forward: unless checked, None is returned when an argument is not
    plainly right (any sample_weight is left to the checks)."""
    if not 0 <= output <= OUT_POISSON:
        raise ValueError(f"output must be an OUT_* code; got {output}")
    cdef bint softmax = output == OUT_SOFTMAX
    cdef int t = _checked_type("Z", Z) if checked else _plain_type(Z)
    cdef bint labelled = softmax and cnp.PyArray_Check(Y) and cnp.PyArray_ISINTEGER(
        <cnp.ndarray> Y)
    if not checked:
        if sample_weight is not None or not _plain_input(Z, t, 2 if softmax else -1):
            return None
        if not (_plain_labels(Y, _dim(Z, 0), _dim(Z, 1)) if labelled
                else _plain_like(Y, Z, False)):
            return None
        if not (_plain_like(A, Z, True) and _plain_like(dZ, Z, True)):
            return None
    if cnp.PyArray_NDIM(<cnp.ndarray> Z) != 2 if softmax else cnp.PyArray_NDIM(
            <cnp.ndarray> Z) == 0:
        raise ValueError("Z must be 2-D for softmax, at least 1-D for the others")
    cdef intp n = _size(Z), m = _dim(Z, 0), s = 4 if t == cnp.NPY_FLOAT32 else 8
    cdef intp sizes[5]
    cdef Span spans[5]
    cdef tuple names = ("A", "dZ", "Z", "Y", "sample_weight")
    sizes[:] = [n, n, n, n, m]
    _laid_out(names, (A, dZ, Z, None if labelled else Y, sample_weight), t, sizes, spans)
    if labelled:
        if cnp.PyArray_TYPE(<cnp.ndarray> Y) != cnp.NPY_INTP \
                or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray> Y) or _size(Y) != m:
            raise ValueError(f"Y's labels must be a C-contiguous np.intp array of {m} "
                             f"values")
        spans[3] = _span(_data(Y), m, sizeof(intp))
    _disjoint(names, spans, 5, 2)
    cdef void* p[5]
    p[:] = [_data(Z), _data(Y), _data(A), _data(dZ), _data_or_null(sample_weight)]
    cdef const intp* labels = NULL
    if labelled:
        labels, p[1] = <const intp*> p[1], NULL
    cdef double norm = m
    cdef intp i
    if sample_weight is not None:
        norm = 0
        for i in range(m):
            norm += (<float*> p[4])[i] if s == 4 else (<double*> p[4])[i]
    cdef double loss
    if n < GIL_FREE_WORK:
        loss = _output_loss_run(s == 4, output, p, labels, norm, m, n // m)
    else:
        with nogil:
            loss = _output_loss_run(s == 4, output, p, labels, norm, m, n // m)
    return loss


# ---------------------------------------------------------------- optimizer updates

cdef enum:
    SGD_UPDATE, MOMENTUM_UPDATE, ADAM_UPDATE


cdef void _update_run(bint single, int kind, void** p, intp n, const double* h,
                      long t, bint nesterov) noexcept nogil:
    """The update kind on the pointers p of (param, grad, state, state) over n values,
    float32 (single) or float64, with the hyper-parameters h: lr and weight_decay (SGD);
    lr, momentum and weight_decay (momentum); lr, beta1, beta2, eps and weight_decay
    (Adam, at step t)."""
    if kind == SGD_UPDATE and single:
        _sgd(<float*> p[0], <const float*> p[1], n, <float> h[0], <float> h[1])
    elif kind == SGD_UPDATE:
        _sgd(<double*> p[0], <const double*> p[1], n, h[0], h[1])
    elif kind == MOMENTUM_UPDATE and single:
        _momentum(<float*> p[0], <const float*> p[1], <float*> p[2], n, <float> h[0],
                  <float> h[1], <float> h[2], nesterov)
    elif kind == MOMENTUM_UPDATE:
        _momentum(<double*> p[0], <const double*> p[1], <double*> p[2], n, h[0], h[1],
                  h[2], nesterov)
    elif single:
        _adam(<float*> p[0], <const float*> p[1], <float*> p[2], <float*> p[3], n, h[0],
              h[1], h[2], h[3], t, <float> h[4])
    else:
        _adam(<double*> p[0], <const double*> p[1], <double*> p[2], <double*> p[3], n, h[0],
              h[1], h[2], h[3], t, h[4])


cdef object _update(int kind, tuple names, tuple arrays, const double* h, long t,
                    bint nesterov, bint checked):
    """An update of arrays (param, its states, then grad: the outputs first) named
    names; True when done, False when (not checked) an array is not plainly right:
    param and its states writeable, grad finite, all of param's type and shape. The
    hyper-parameters were checked by fastnn.kernels."""
    cdef object param = arrays[0]
    cdef int i, last = len(arrays) - 1
    cdef int t_ = _checked_type("param", param) if checked else _plain_type(param)
    if not checked and not (_plain_output(param, t_, -1, -1)
                            and _plain_like(arrays[last], param, False)):
        return False
    for i in range(1, last):
        if not checked and not _plain_like(arrays[i], param, True):
            return False
    cdef intp n = _size(param), s = 4 if t_ == cnp.NPY_FLOAT32 else 8
    cdef intp sizes[4]
    cdef Span spans[4]
    sizes[:] = [n, n, n, n]
    _laid_out(names, arrays, t_, sizes, spans)
    _disjoint(names, spans, last + 1, last)
    cdef void* p[4]  # (param, grad, state, state), as _update_run takes them
    p[:] = [_data(param), _data(arrays[last]), NULL, NULL]
    for i in range(1, last):
        p[i + 1] = _data(arrays[i])
    if n < GIL_FREE_WORK:
        _update_run(s == 4, kind, p, n, h, t, nesterov)
    else:
        with nogil:
            _update_run(s == 4, kind, p, n, h, t, nesterov)
    return True


def sgd_update(param,  # INOUT any shape
               grad,   # IN    param's shape
               double lr, double weight_decay, *, bint checked=False):
    """param -= lr (grad + weight_decay param); checked as in activation_forward (the
    hyper-parameters always checked by fastnn.kernels first)."""
    cdef double h[2]
    h[:] = [lr, weight_decay]
    return _update(SGD_UPDATE, ("param", "grad"), (param, grad), h, 0, False, checked)


def momentum_update(param, grad, velocity,  # INOUT, IN, INOUT
                    double lr, double momentum, double weight_decay, bint nesterov, *,
                    bint checked=False):
    """PyTorch's momentum (fastnn.kernels.momentum_update); checked as in sgd_update."""
    cdef double h[3]
    h[:] = [lr, momentum, weight_decay]
    return _update(MOMENTUM_UPDATE, ("param", "velocity", "grad"), (param, velocity, grad),
                   h, 0, nesterov, checked)


def adam_update(param, grad, m, v,  # INOUT, IN, INOUT first moment, INOUT second moment
                long t, double lr, double beta1, double beta2, double eps,
                double weight_decay, *, bint checked=False):
    """Adam at step t (fastnn.kernels.adam_update); checked as in sgd_update."""
    cdef double h[5]
    h[:] = [lr, beta1, beta2, eps, weight_decay]
    return _update(ADAM_UPDATE, ("param", "m", "v", "grad"), (param, m, v, grad), h, t,
                   False, checked)


def vector_build():
    """Which build of the vector kernels runs on this CPU: "avx512" (64-byte vectors),
    "fma" (32-byte vectors and fused multiply-add) or "base" (16-byte vectors).
    FASTNN_VECTOR_BUILD=fma or =base in the environment before import caps the choice."""
    return fnn_vector_build().decode()


def adam_divide():
    """How Adam's update takes its square root and quotient in the AVX-512 build:
    "divider" (the exact instructions, as every other build), "estimates" (refined
    14-bit estimates; Intel's CPUs) or "mixed" (float64 one vector in four from the
    estimates, side by side with the divider, float32 the divider; AMD's).
    FASTNN_ADAM_DIVIDE=divider, =estimates or =mixed in the environment before import
    sets it."""
    return fnn_adam_divide().decode()


vector_build()  # settles the choices at import, before any thread can ask
adam_divide()

#: The compiled core's settings read from the environment at import, and the values
#: each knows (its C names; "avx512": no cap); it ignores any other value.
ENVIRONMENT = {
    "FASTNN_VECTOR_BUILD": tuple(fnn_vector_builds[i].decode() for i in range(FNN_BUILDS)),
    "FASTNN_ADAM_DIVIDE": tuple(fnn_adam_ways[i].decode() for i in range(FNN_ADAM_WAYS))}


def first_nonfinite(cnp.ndarray array):
    """The flat index of the first NaN or infinity in a C-contiguous float32/float64
    array, or -1; one vectorised pass, no temporary array."""
    cdef int kind = cnp.PyArray_TYPE(array)
    if (kind != cnp.NPY_FLOAT32 and kind != cnp.NPY_FLOAT64) \
            or not cnp.PyArray_IS_C_CONTIGUOUS(array):
        raise TypeError("first_nonfinite takes a C-contiguous float32 or float64 array")
    cdef const void* data = cnp.PyArray_DATA(array)
    cdef intp n = cnp.PyArray_SIZE(array), first
    with nogil:
        first = _first_nonfinite(data, n, kind == cnp.NPY_FLOAT32)
    return first


def _nonfinite_message(name, array, first):
    """'X must be finite: 3 values are NaN or infinite, the first is X[4, 1] = nan'."""
    count = int((~np.isfinite(array)).sum())
    where = ", ".join(map(str, np.unravel_index(first, array.shape)))
    return (f"{name} must be finite: {count} value{'s are' if count > 1 else ' is'} NaN "
            f"or infinite, the first is {name}[{where}] = {array.flat[first]}")



# ---------------------------------------------------------------- sparse rows

def gather_csr_rows(const floating[::1] data,   # IN  a CSR matrix's values
                    const intp[::1] indices,     # IN  their columns
                    const intp[::1] indptr,      # IN  row starts (m + 1)
                    const intp[::1] rows,        # IN  the rows to gather, in [0, m)
                    floating[:, ::1] out):       # OUT (len(rows), n), dense
    """out[r] = row rows[r] of the CSR matrix (data, indices, indptr), dense.

    Everything read is bounded here (rows, row starts, columns against out's width),
    so no CSR structure can make it read or write outside the arrays: ValueError
    instead (out is then partly written).
    """
    cdef intp r, p, row, start, stop, m = indptr.shape[0] - 1, n = out.shape[1]
    cdef intp nnz = min(data.shape[0], indices.shape[0])
    cdef intp bad = -1
    if rows.shape[0] != out.shape[0]:
        raise ValueError(f"out must have {rows.shape[0]} rows; got {out.shape[0]}")
    with nogil:
        for r in range(rows.shape[0]):
            row = rows[r]
            if not 0 <= row < m:
                bad = r
                break
            start, stop = indptr[row], indptr[row + 1]
            if not 0 <= start <= stop <= nnz:
                bad = r
                break
            memset(&out[r, 0], 0, n * sizeof(floating))
            for p in range(start, stop):
                if not 0 <= indices[p] < n:
                    bad = r
                    break
                out[r, indices[p]] += data[p]
            if bad >= 0:
                break
    if bad >= 0:
        raise ValueError(f"row {rows[bad]} (rows[{bad}]) is outside the matrix, or its "
                         f"row starts or columns are: not a valid CSR matrix of {n} "
                         f"columns")
