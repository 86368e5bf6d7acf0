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

cimport numpy as cnp
import numpy as np
from cython cimport floating
from libc.limits cimport INT_MAX
from libc.math cimport isfinite
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from fastnn._ops cimport (IDENTITY, LEAKY_RELU, RELU, SIGMOID, TANH,
                          OUT_IDENTITY, OUT_POISSON, OUT_SIGMOID, OUT_SOFTMAX, intp, _activate, _activation_grad,
                          _dense_forward, _dense_backward, _output_loss,
                          _softmax_ce_labels, _softmax_ce_probs, _sgd, _momentum, _adam,
                          _first_nonfinite, _scratch_bytes, fnn_vector_build)

cnp.import_array()

# ---------------------------------------------------------------- public kernels
# Typed entry points. Arguments are marked IN, OUT or INOUT; fastnn.kernels has
# the checked versions and the documentation. The one check made here is that no
# output overlaps another argument in memory, which pointers tell cheaply.

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
# The dense kernels take their arrays as they come. A call whose arguments are plainly
# right (the _plain_* tests below: what fastnn.kernels's checks would pass unchanged)
# runs at once; otherwise the kernel returns False having done nothing, and
# fastnn.kernels checks the arguments (raising its error, or copying an input that is
# not C-contiguous) and calls again with checked=True. At small sizes its checks in
# Python took longer than the work (README, Kernels).

#: The activations' codes (IDENTITY... of _ops.pxd) by name, in code order:
#: fastnn.activations.ACTIVATIONS lists its keys.
ACTIVATION_CODES = {"identity": IDENTITY, "sigmoid": SIGMOID, "tanh": TANH, "relu": RELU,
                    "leaky_relu": LEAKY_RELU}

cdef enum:
    GIL_FREE_WORK = 16384  # a call of less work (multiply-adds) than this holds the GIL


cdef inline void* _data(object array) noexcept:
    return cnp.PyArray_DATA(<cnp.ndarray> array)


cdef inline intp _dim(object array, int axis) noexcept:
    return cnp.PyArray_DIM(<cnp.ndarray> array, axis)


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
    axes (1 or 2), none empty or of 2**31 or more, rows of them (and cols); rows or
    cols < 0 takes any."""
    if _plain_type(a) != t:
        return False
    cdef cnp.ndarray x = <cnp.ndarray> a
    if cnp.PyArray_NDIM(x) != ndim or not cnp.PyArray_IS_C_CONTIGUOUS(x) \
            or not cnp.PyArray_ISALIGNED(x):
        return False
    cdef intp i, n
    for i in range(ndim):
        n = cnp.PyArray_DIM(x, i)
        if not 0 < n <= INT_MAX or (i == 0 and rows >= 0 and n != rows) \
                or (i == 1 and cols >= 0 and n != cols):
            return False
    return True


cdef bint _plain_input(object a, int t, int ndim, intp rows=-1, intp cols=-1) noexcept:
    """What check.input_array passes unchanged: _plain_array, and finite."""
    if not _plain_array(a, t, ndim, rows, cols):
        return False
    cdef intp n = cnp.PyArray_SIZE(<cnp.ndarray> a)
    cdef const void* data = _data(a)
    cdef bint single = t == cnp.NPY_FLOAT32
    if n < GIL_FREE_WORK:
        return _first_nonfinite(data, n, single) < 0
    with nogil:
        n = _first_nonfinite(data, n, single)
    return n < 0


cdef bint _plain_output(object a, int t, int ndim, intp rows, intp cols=-1) noexcept:
    """What check.output_array passes: _plain_array of that shape, and writeable."""
    return _plain_array(a, t, ndim, rows, cols) \
        and cnp.PyArray_ISWRITEABLE(<cnp.ndarray> a)


cdef int _plain_activation(object activation, int t, object negative_slope,
                           double* slope) noexcept:
    """The code of a plainly right activation name, with a negative_slope that is a
    float, finite, and neither infinite nor 0 (unless 0) in type t, into *slope; else
    -1."""
    if type(activation) is not str or type(negative_slope) is not float:
        return -1
    code = ACTIVATION_CODES.get(activation)
    cdef double value = negative_slope
    cdef float single = <float> value
    if code is None or not isfinite(value) or (t == cnp.NPY_FLOAT32 and (
            not isfinite(single) or (value != 0 and single == 0))):
        return -1
    slope[0] = value
    return code


cdef void _dense_forward_run(floating kind, const void* a_prev, const void* w,
                             const void* b, void* z, void* a, intp m, intp n_in,
                             intp n_out, int activation, double slope,
                             void* scratch) noexcept nogil:
    """_dense_forward on the arrays' pointers (kind: their type, its value unused)."""
    _dense_forward(<const floating*> a_prev, <const floating*> w, <const floating*> b,
                   <floating*> z, <floating*> a, m, n_in, n_out, activation,
                   <floating> slope, scratch)


def dense_forward(A_prev,  # IN  (m, n_in)
                  W,       # IN  (n_out, n_in)
                  b,       # IN  (n_out,)
                  Z,       # OUT (m, n_out)
                  A,       # OUT (m, n_out), may be Z
                  activation, negative_slope, bint checked=False):
    """Z = A_prev W^T + b, A = g(Z). checked: the arguments passed fastnn.kernels's
    checks (activation is its code); else they are taken when plainly right, and
    False returned, nothing done, when they are not (see above)."""
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray> A_prev) if checked else _plain_type(A_prev)
    cdef double slope = negative_slope if checked else 0
    cdef int act = activation if checked else _plain_activation(activation, t,
                                                                 negative_slope, &slope)
    cdef intp m, n_in, n_out
    if not checked:
        if act < 0 or not _plain_input(A_prev, t, 2):
            return False
        m, n_in = _dim(A_prev, 0), _dim(A_prev, 1)
        if not (_plain_input(W, t, 2, -1, n_in) and _plain_input(b, t, 1, _dim(W, 0))
                and _plain_output(Z, t, 2, m, _dim(W, 0))
                and _plain_output(A, t, 2, m, _dim(W, 0))):
            return False
    m, n_in, n_out = _dim(A_prev, 0), _dim(A_prev, 1), _dim(W, 0)
    cdef intp s = 4 if t == cnp.NPY_FLOAT32 else 8
    cdef Span spans[5]
    spans[0] = _span(_data(Z), m * n_out, s)
    spans[1] = _span(_data(A), m * n_out, s)
    spans[2] = _span(_data(A_prev), m * n_in, s)
    spans[3] = _span(_data(W), n_out * n_in, s)
    spans[4] = _span(_data(b), n_out, s)
    _disjoint(("Z", "A", "A_prev", "W", "b"), spans, 5, 2, 1, 0)
    cdef void* scratch = _scratch(n_in, n_out, s)
    cdef void* p[5]
    p[:] = [_data(A_prev), _data(W), _data(b), _data(Z), _data(A)]
    if m * n_in * n_out < GIL_FREE_WORK:
        if s == 4:
            _dense_forward_run(<float> 0, p[0], p[1], p[2], p[3], p[4], m, n_in, n_out,
                               act, slope, scratch)
        else:
            _dense_forward_run(<double> 0, p[0], p[1], p[2], p[3], p[4], m, n_in, n_out,
                               act, slope, scratch)
    else:
        with nogil:
            if s == 4:
                _dense_forward_run(<float> 0, p[0], p[1], p[2], p[3], p[4], m, n_in,
                                   n_out, act, slope, scratch)
            else:
                _dense_forward_run(<double> 0, p[0], p[1], p[2], p[3], p[4], m, n_in,
                                   n_out, act, slope, scratch)
    free(scratch)
    return True


def activation_forward(const floating[::1] Z,    # IN  (any shape, flattened)
                       floating[::1] A,          # OUT (same size), may be Z
                       int activation, double negative_slope):
    cdef intp n = Z.shape[0]
    cdef Span spans[2]
    spans[0] = _span(&A[0], n, sizeof(floating))
    spans[1] = _span(&Z[0], n, sizeof(floating))
    _disjoint(("A", "Z"), spans, 2, 1, 0, 1)
    with nogil:
        _activate(&Z[0], &A[0], n, activation, <floating> negative_slope)


def activation_derivative(const floating[::1] Z,  # IN
                          const floating[::1] A,  # IN  g(Z), the cache
                          floating[::1] out,      # OUT g'(Z)
                          int activation, double negative_slope):
    cdef intp n = Z.shape[0]
    cdef Span spans[3]
    spans[0] = _span(&out[0], n, sizeof(floating))
    spans[1] = _span(&Z[0], n, sizeof(floating))
    spans[2] = _span(&A[0], n, sizeof(floating))
    _disjoint(("out", "Z", "A"), spans, 3, 1)
    cdef intp i
    with nogil:
        for i in range(n):
            out[i] = 1
        _activation_grad(&out[0], &Z[0], &A[0], &out[0], n, activation,
                         <floating> negative_slope)


cdef void _dense_backward_run(floating kind, const void* da, const void* z,
                              const void* a, const void* a_prev, const void* w, void* dz,
                              void* dw, void* db, void* da_prev, intp m, intp n_in,
                              intp n_out, int activation, double slope,
                              void* scratch) noexcept nogil:
    """dZ = dA g'(Z), then _dense_backward, on the arrays' pointers (see
    _dense_forward_run)."""
    _activation_grad(<const floating*> da, <const floating*> z, <const floating*> a,
                     <floating*> dz, m * n_out, activation, <floating> slope)
    _dense_backward(<const floating*> dz, <const floating*> a_prev, <const floating*> w,
                    <floating*> dw, <floating*> db, <floating*> da_prev, m, n_in, n_out,
                    scratch)


def dense_backward(dA,       # IN  (m, n_out)
                   Z,        # IN  (m, n_out) cache
                   A,        # IN  (m, n_out) cache g(Z)
                   A_prev,   # IN  (m, n_in)
                   W,        # IN  (n_out, n_in)
                   dZ,       # OUT (m, n_out), may be dA
                   dW,       # OUT (n_out, n_in)
                   db,       # OUT (n_out,)
                   dA_prev,  # OUT (m, n_in), or None to skip
                   activation, negative_slope, bint checked=False):
    """dZ = dA g'(Z), dW = dZ^T A_prev, db = the column sums of dZ, dA_prev = dZ W;
    checked as in dense_forward."""
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray> dA) if checked else _plain_type(dA)
    cdef double slope = negative_slope if checked else 0
    cdef int act = activation if checked else _plain_activation(activation, t,
                                                                 negative_slope, &slope)
    cdef intp m, n_in, n_out
    if not checked:
        if act < 0 or not (_plain_input(dA, t, 2) and _plain_input(A_prev, t, 2, _dim(dA, 0))):
            return False
        m, n_out, n_in = _dim(dA, 0), _dim(dA, 1), _dim(A_prev, 1)
        if not (_plain_input(Z, t, 2, m, n_out) and _plain_input(A, t, 2, m, n_out)
                and _plain_input(W, t, 2, n_out, n_in)
                and _plain_output(dZ, t, 2, m, n_out)
                and _plain_output(dW, t, 2, n_out, n_in) and _plain_output(db, t, 1, n_out)
                and (dA_prev is None or _plain_output(dA_prev, t, 2, m, n_in))):
            return False
    m, n_out, n_in = _dim(dA, 0), _dim(dA, 1), _dim(A_prev, 1)
    cdef intp s = 4 if t == cnp.NPY_FLOAT32 else 8
    cdef void* da_prev = NULL if dA_prev is None else _data(dA_prev)
    cdef Span spans[9]
    spans[0] = _span(_data(dZ), m * n_out, s)
    spans[1] = _span(_data(dW), n_out * n_in, s)
    spans[2] = _span(_data(db), n_out, s)
    spans[3] = _span(da_prev, m * n_in if da_prev != NULL else 0, s)
    spans[4] = _span(_data(dA), m * n_out, s)
    spans[5] = _span(_data(Z), m * n_out, s)
    spans[6] = _span(_data(A), m * n_out, s)
    spans[7] = _span(_data(A_prev), m * n_in, s)
    spans[8] = _span(_data(W), n_out * n_in, s)
    _disjoint(("dZ", "dW", "db", "dA_prev", "dA", "Z", "A", "A_prev", "W"), spans, 9, 4,
              0, 4)
    cdef void* scratch = _scratch(n_in, n_out, s)
    cdef const void* p[5]
    cdef void* q[3]
    p[:] = [_data(dA), _data(Z), _data(A), _data(A_prev), _data(W)]
    q[:] = [_data(dZ), _data(dW), _data(db)]
    if m * n_in * n_out < GIL_FREE_WORK:
        if s == 4:
            _dense_backward_run(<float> 0, p[0], p[1], p[2], p[3], p[4], q[0], q[1], q[2],
                                da_prev, m, n_in, n_out, act, slope, scratch)
        else:
            _dense_backward_run(<double> 0, p[0], p[1], p[2], p[3], p[4], q[0], q[1],
                                q[2], da_prev, m, n_in, n_out, act, slope, scratch)
    else:
        with nogil:
            if s == 4:
                _dense_backward_run(<float> 0, p[0], p[1], p[2], p[3], p[4], q[0], q[1],
                                    q[2], da_prev, m, n_in, n_out, act, slope, scratch)
            else:
                _dense_backward_run(<double> 0, p[0], p[1], p[2], p[3], p[4], q[0], q[1],
                                    q[2], da_prev, m, n_in, n_out, act, slope, scratch)
    free(scratch)
    return True


cdef int _loss_outputs(const floating* z, const void* y, intp y_bytes, floating* a,
                       floating* dz, intp size, const floating* w, intp m) except -1:
    """The overlap check shared by the output+loss kernels (a and dz are outputs;
    w, the row weights, may be NULL)."""
    cdef Span spans[5]
    spans[0] = _span(a, size, sizeof(floating))
    spans[1] = _span(dz, size, sizeof(floating))
    spans[2] = _span(z, size, sizeof(floating))
    spans[3] = _span(y, y_bytes, 1)
    spans[4] = _span(w, m if w != NULL else 0, sizeof(floating))
    return _disjoint(("A", "dZ", "Z", "Y", "sample_weight"), spans, 5, 2)


#: The output codes (OUT_* of _ops.pxd) of the outputs elementwise_loss computes.
ELEMENTWISE_OUTPUTS = {"sigmoid": OUT_SIGMOID, "identity": OUT_IDENTITY,
                       "poisson": OUT_POISSON}


cdef const floating* _row_weights(const floating[::1] w, intp m, double* norm) except? NULL:
    """The row weights' pointer (NULL for None) and in *norm their sum (m for None);
    the values were checked by fastnn.kernels."""
    cdef intp i
    norm[0] = m
    if w is None:
        return NULL
    if w.shape[0] != m:
        raise ValueError(f"sample_weight must have {m} values; got {w.shape[0]}")
    norm[0] = 0
    for i in range(m):
        norm[0] += w[i]
    return &w[0]


def elementwise_loss(const floating[::1] Z,  # IN  logits or predictions, flattened
                     const floating[::1] Y,  # IN  targets (in [0, 1] for sigmoid)
                     floating[::1] A,        # OUT the output: sigmoid(Z), Z or exp(Z)
                     floating[::1] dZ,       # OUT
                     int output,             # OUT_SIGMOID, OUT_IDENTITY or OUT_POISSON
                     intp m,                 # rows (Z holds m rows of Z.size / m)
                     const floating[::1] w=None):  # IN  (m,) row weights, or None
    cdef intp n = Z.shape[0]
    cdef double loss, norm
    if output == OUT_SOFTMAX or m < 1 or n % m:
        raise ValueError(f"elementwise_loss: output {output} over {m} rows of {n} values")
    cdef const floating* weights = _row_weights(w, m, &norm)
    _loss_outputs(&Z[0], &Y[0], n * sizeof(floating), &A[0], &dZ[0], n, weights, m)
    with nogil:
        loss = _output_loss(output, &Z[0], &Y[0], NULL, weights, norm, &A[0], &dZ[0], m,
                            n // m)
    return loss


def softmax_cross_entropy_labels(const floating[:, ::1] Z,  # IN  (m, k) logits
                                 const intp[::1] labels,    # IN  (m,) in [0, k)
                                 floating[:, ::1] P,        # OUT (m, k) softmax(Z)
                                 floating[:, ::1] dZ,       # OUT (m, k)
                                 const floating[::1] w=None):  # IN  (m,) row weights
    cdef intp m = Z.shape[0], k = Z.shape[1]
    cdef double loss, norm
    cdef const floating* weights = _row_weights(w, m, &norm)
    _loss_outputs(&Z[0, 0], &labels[0], m * sizeof(intp), &P[0, 0], &dZ[0, 0], m * k,
                  weights, m)
    with nogil:
        loss = _softmax_ce_labels(&Z[0, 0], &labels[0], weights, norm, &P[0, 0],
                                  &dZ[0, 0], m, k)
    return loss


def softmax_cross_entropy_probs(const floating[:, ::1] Z,  # IN  (m, k) logits
                                const floating[:, ::1] Y,  # IN  (m, k) target rows
                                floating[:, ::1] P,        # OUT (m, k) softmax(Z)
                                floating[:, ::1] dZ,       # OUT (m, k)
                                const floating[::1] w=None):  # IN  (m,) row weights
    cdef intp m = Z.shape[0], k = Z.shape[1]
    cdef double loss, norm
    cdef const floating* weights = _row_weights(w, m, &norm)
    _loss_outputs(&Z[0, 0], &Y[0, 0], m * k * sizeof(floating), &P[0, 0], &dZ[0, 0],
                  m * k, weights, m)
    with nogil:
        loss = _softmax_ce_probs(&Z[0, 0], &Y[0, 0], weights, norm, &P[0, 0], &dZ[0, 0],
                                 m, k)
    return loss


cdef int _update_disjoint(tuple names, floating* p, const floating* g, floating* s1,
                          floating* s2, intp n) except -1:
    """The overlap check shared by the optimizer updates: param, states and grad apart."""
    cdef Span spans[4]
    spans[0] = _span(p, n, sizeof(floating))
    spans[1] = _span(s1, n if s1 != NULL else 0, sizeof(floating))
    spans[2] = _span(s2, n if s2 != NULL else 0, sizeof(floating))
    spans[3] = _span(g, n, sizeof(floating))
    return _disjoint(names, spans, 4, 3)


def sgd_update(floating[::1] param,        # INOUT
               const floating[::1] grad,   # IN
               double lr, double weight_decay):
    cdef intp n = param.shape[0]
    _update_disjoint(("param", "", "", "grad"), &param[0], &grad[0], NULL, NULL, n)
    with nogil:
        _sgd(&param[0], &grad[0], n, <floating> lr, <floating> weight_decay)


def momentum_update(floating[::1] param,        # INOUT
                    const floating[::1] grad,   # IN
                    floating[::1] velocity,     # INOUT
                    double lr, double momentum, double weight_decay, bint nesterov):
    cdef intp n = param.shape[0]
    _update_disjoint(("param", "velocity", "", "grad"), &param[0], &grad[0],
                     &velocity[0], NULL, n)
    with nogil:
        _momentum(&param[0], &grad[0], &velocity[0], n, <floating> lr,
                  <floating> momentum, <floating> weight_decay, nesterov)


def adam_update(floating[::1] param,        # INOUT
                const floating[::1] grad,   # IN
                floating[::1] m,            # INOUT first moment
                floating[::1] v,            # INOUT second moment
                long t, double lr, double beta1, double beta2, double eps,
                double weight_decay):
    cdef intp n = param.shape[0]
    _update_disjoint(("param", "m", "v", "grad"), &param[0], &grad[0], &m[0], &v[0], n)
    with nogil:
        _adam(&param[0], &grad[0], &m[0], &v[0], n, lr, beta1, beta2, eps, t,
              <floating> weight_decay)


def vector_build():
    """Which build of the vector kernels runs on this CPU: "avx512" (64-byte vectors),
    "fma" (32-byte vectors and fused multiply-add) or "base" (16-byte vectors).
    FASTNN_VECTOR_BUILD=fma or =base in the environment before import caps the choice."""
    return fnn_vector_build().decode()


vector_build()  # settles the choice at import, before any thread can ask


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
