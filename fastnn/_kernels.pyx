# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""fastnn's compiled core.

Every kernel is written once over the fused type `floating` (float32 and float64)
as a pointer-level ``cdef ... noexcept nogil`` function; the ``def`` kernels below
are thin typed entry points that release the GIL and call them. These kernels
trust their arguments: fastnn.kernels checks them first.

Layout conventions (see the README): samples are rows. A dense layer holds
W (n_out, n_in) and b (n_out,) and computes Z = A_prev W^T + b, A = g(Z).
Gradients are of the mean loss over the batch, so the 1/m lives in the output
layer's dZ and nowhere else.
"""

from cython cimport floating
from libc.math cimport exp, expf, log1p, log1pf, log, logf, tanh, tanhf, sqrt, sqrtf
from libc.string cimport memcpy, memset

from fastnn._blas cimport gemm

ctypedef Py_ssize_t intp


# ---------------------------------------------------------------- codes
# The integer codes the Python layer passes for names; the only place they live.

cdef enum:
    IDENTITY = 0
    SIGMOID = 1
    TANH = 2
    RELU = 3
    LEAKY_RELU = 4

cdef enum:
    OUT_SIGMOID = 0     # sigmoid + binary cross-entropy
    OUT_SOFTMAX = 1     # softmax + cross-entropy
    OUT_IDENTITY = 2    # identity + mean squared error

ACTIVATIONS = {"identity": IDENTITY, "sigmoid": SIGMOID, "tanh": TANH,
               "relu": RELU, "leaky_relu": LEAKY_RELU}
OUTPUTS = {"sigmoid": OUT_SIGMOID, "softmax": OUT_SOFTMAX, "identity": OUT_IDENTITY}


# ---------------------------------------------------------------- scalar maths

cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating _log(floating x) noexcept nogil:
    if floating is float:
        return logf(x)
    else:
        return log(x)


cdef inline floating _log1p(floating x) noexcept nogil:
    if floating is float:
        return log1pf(x)
    else:
        return log1p(x)


cdef inline floating _tanh(floating x) noexcept nogil:
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)


cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline floating _sigmoid(floating z) noexcept nogil:
    """1 / (1 + e^-z), evaluated so that no exp overflows."""
    cdef floating e
    if z >= 0:
        return 1 / (1 + _exp(-z))
    e = _exp(z)
    return e / (1 + e)


# ---------------------------------------------------------------- activations

cdef void _activate(const floating* z, floating* a, intp n, int act,
                    floating slope) noexcept nogil:
    """a = g(z) elementwise over n values (a may be z)."""
    cdef intp i
    if act == IDENTITY:
        if a != z:
            memcpy(a, z, n * sizeof(floating))
    elif act == SIGMOID:
        for i in range(n):
            a[i] = _sigmoid(z[i])
    elif act == TANH:
        for i in range(n):
            a[i] = _tanh(z[i])
    elif act == RELU:
        for i in range(n):
            a[i] = z[i] if z[i] > 0 else 0
    else:
        for i in range(n):
            a[i] = z[i] if z[i] > 0 else slope * z[i]


cdef void _activation_grad(const floating* da, const floating* z, const floating* a,
                           floating* out, intp n, int act, floating slope) noexcept nogil:
    """out = da * g'(z) elementwise; out = g'(z) when da is NULL. out may alias da.

    sigmoid' = a (1 - a) and tanh' = 1 - a^2 come from the cached output a;
    relu' and leaky_relu' from z (the derivative at exactly 0 is that of z < 0).
    """
    cdef intp i
    cdef floating d
    for i in range(n):
        d = 1 if da == NULL else da[i]
        if act == IDENTITY:
            out[i] = d
        elif act == SIGMOID:
            out[i] = d * (a[i] * (1 - a[i]))
        elif act == TANH:
            out[i] = d * (1 - a[i] * a[i])
        elif act == RELU:
            out[i] = d if z[i] > 0 else 0
        else:
            out[i] = d if z[i] > 0 else slope * d


# ---------------------------------------------------------------- dense layer

cdef void _dense_forward(const floating* a_prev, const floating* w, const floating* b,
                         floating* z, floating* a, intp m, intp n_in, intp n_out,
                         int act, floating slope) noexcept nogil:
    """Z = A_prev W^T + b by GEMM, then bias and activation in one pass over Z."""
    cdef intp i, j
    cdef floating* row
    gemm(False, True, <int> m, <int> n_out, <int> n_in, <floating> 1, a_prev,
         <int> n_in, w, <int> n_in, <floating> 0, z, <int> n_out)
    for i in range(m):
        row = z + i * n_out
        for j in range(n_out):
            row[j] += b[j]
        _activate(row, a + i * n_out, n_out, act, slope)


cdef void _dense_backward(const floating* dz, const floating* a_prev, const floating* w,
                          floating* dw, floating* db, floating* da_prev,
                          intp m, intp n_in, intp n_out) noexcept nogil:
    """dW = dZ^T A_prev, db = column sums of dZ, dA_prev = dZ W (skipped if NULL)."""
    cdef intp i, j
    cdef const floating* row
    gemm(True, False, <int> n_out, <int> n_in, <int> m, <floating> 1, dz,
         <int> n_out, a_prev, <int> n_in, <floating> 0, dw, <int> n_in)
    memset(db, 0, n_out * sizeof(floating))
    for i in range(m):
        row = dz + i * n_out
        for j in range(n_out):
            db[j] += row[j]
    if da_prev != NULL:
        gemm(False, False, <int> m, <int> n_in, <int> n_out, <floating> 1, dz,
             <int> n_out, w, <int> n_in, <floating> 0, da_prev, <int> n_in)


# ---------------------------------------------------------------- output + loss
# Each writes the output activation A and dZ = dLoss/dZ of the mean loss, and
# returns the mean loss, accumulated in double.

cdef double _sigmoid_bce(const floating* z, const floating* y, floating* a, floating* dz,
                         intp size) noexcept nogil:
    """Binary cross-entropy from logits, mean over all elements.

    loss = max(z, 0) - z y + log(1 + e^-|z|);  dZ = (sigmoid(z) - y) / size.
    """
    cdef intp i
    cdef floating zi, p
    cdef floating inv = (<floating> 1) / size
    cdef double total = 0
    for i in range(size):
        zi = z[i]
        total += (zi if zi > 0 else 0) - zi * y[i] + _log1p(_exp(-(zi if zi > 0 else -zi)))
        p = _sigmoid(zi)
        a[i] = p
        dz[i] = (p - y[i]) * inv
    return total / size


cdef double _softmax_row(const floating* z, floating* p, intp k) noexcept nogil:
    """p = softmax(z) over one row; returns log-sum-exp(z) = max + log(sum e^(z - max))."""
    cdef intp j
    cdef floating zmax = z[0]
    cdef floating s = 0
    for j in range(1, k):
        if z[j] > zmax:
            zmax = z[j]
    for j in range(k):
        p[j] = _exp(z[j] - zmax)
        s += p[j]
    for j in range(k):
        p[j] /= s
    return zmax + _log(s)


cdef double _softmax_ce_labels(const floating* z, const intp* labels, floating* p,
                               floating* dz, intp m, intp k) noexcept nogil:
    """Cross-entropy of softmax(z) against class labels, mean over rows.

    loss_i = lse(z_i) - z_i[y_i];  dZ = (softmax(z) - onehot(y)) / m.
    """
    cdef intp i, j
    cdef floating inv = (<floating> 1) / m
    cdef double total = 0
    for i in range(m):
        total += _softmax_row(z + i * k, p + i * k, k) - z[i * k + labels[i]]
        for j in range(k):
            dz[i * k + j] = p[i * k + j] * inv
        dz[i * k + labels[i]] -= inv
    return total / m


cdef double _softmax_ce_probs(const floating* z, const floating* y, floating* p,
                              floating* dz, intp m, intp k) noexcept nogil:
    """Cross-entropy of softmax(z) against target rows y (one-hot or soft), mean over rows.

    loss_i = sum_j y_ij (lse(z_i) - z_ij);  dZ = (softmax(z) sum_j y_ij - y) / m.
    """
    cdef intp i, j
    cdef floating inv = (<floating> 1) / m
    cdef floating lse, ysum
    cdef double total = 0
    for i in range(m):
        lse = _softmax_row(z + i * k, p + i * k, k)
        ysum = 0
        for j in range(k):
            total += y[i * k + j] * (lse - z[i * k + j])
            ysum += y[i * k + j]
        for j in range(k):
            dz[i * k + j] = (p[i * k + j] * ysum - y[i * k + j]) * inv
    return total / m


cdef double _identity_mse(const floating* z, const floating* y, floating* a, floating* dz,
                          intp size) noexcept nogil:
    """Mean squared error over all elements: loss = mean((z - y)^2), dZ = 2 (z - y) / size."""
    cdef intp i
    cdef floating r
    cdef floating scale = (<floating> 2) / size
    cdef double total = 0
    for i in range(size):
        r = z[i] - y[i]
        total += r * r
        a[i] = z[i]
        dz[i] = r * scale
    return total / size


# ---------------------------------------------------------------- optimizer updates
# One pass over a parameter. L2 weight decay adds wd * p to the gradient, so that
# it is the gradient of loss + 0.5 wd ||p||^2 (pass wd = 0 for biases).

cdef void _sgd(floating* p, const floating* g, intp n, floating lr,
               floating wd) noexcept nogil:
    """p -= lr (g + wd p)."""
    cdef intp i
    for i in range(n):
        p[i] -= lr * (g[i] + wd * p[i])


cdef void _momentum(floating* p, const floating* g, floating* v, intp n, floating lr,
                    floating mu, floating wd, bint nesterov) noexcept nogil:
    """PyTorch's form: g' = g + wd p; v = mu v + g'; p -= lr v (Nesterov: lr (g' + mu v))."""
    cdef intp i
    cdef floating gi
    for i in range(n):
        gi = g[i] + wd * p[i]
        v[i] = mu * v[i] + gi
        if nesterov:
            p[i] -= lr * (gi + mu * v[i])
        else:
            p[i] -= lr * v[i]


cdef void _adam(floating* p, const floating* g, floating* m1, floating* m2, intp n,
                double lr, double beta1, double beta2, double eps, long t,
                floating wd) noexcept nogil:
    """Adam (Kingma and Ba) with bias correction at step t >= 1, PyTorch's arithmetic:

    m1 = b1 m1 + (1 - b1) g';  m2 = b2 m2 + (1 - b2) g'^2;
    p -= (lr / (1 - b1^t)) m1 / (sqrt(m2) / sqrt(1 - b2^t) + eps).
    """
    cdef intp i
    cdef floating gi
    cdef floating b1 = beta1, b2 = beta2, c1 = 1 - beta1, c2 = 1 - beta2
    cdef floating step = lr / (1 - beta1 ** t)
    cdef floating root_bc2 = sqrt(1 - beta2 ** t)
    cdef floating fuzz = eps
    for i in range(n):
        gi = g[i] + wd * p[i]
        m1[i] = b1 * m1[i] + c1 * gi
        m2[i] = b2 * m2[i] + c2 * (gi * gi)
        p[i] -= step * m1[i] / (_sqrt(m2[i]) / root_bc2 + fuzz)


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


def dense_forward(const floating[:, ::1] A_prev,   # IN  (m, n_in)
                  const floating[:, ::1] W,        # IN  (n_out, n_in)
                  const floating[::1] b,           # IN  (n_out,)
                  floating[:, ::1] Z,              # OUT (m, n_out)
                  floating[:, ::1] A,              # OUT (m, n_out), may be Z
                  int activation, double negative_slope):
    cdef intp m = A_prev.shape[0], n_in = A_prev.shape[1], n_out = W.shape[0]
    cdef intp s = sizeof(floating)
    cdef Span spans[5]
    spans[0] = _span(&Z[0, 0], m * n_out, s)
    spans[1] = _span(&A[0, 0], m * n_out, s)
    spans[2] = _span(&A_prev[0, 0], m * n_in, s)
    spans[3] = _span(&W[0, 0], n_out * n_in, s)
    spans[4] = _span(&b[0], n_out, s)
    _disjoint(("Z", "A", "A_prev", "W", "b"), spans, 5, 2, 1, 0)
    with nogil:
        _dense_forward(&A_prev[0, 0], &W[0, 0], &b[0], &Z[0, 0], &A[0, 0],
                       m, n_in, n_out, activation, <floating> negative_slope)


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
    with nogil:
        _activation_grad(<const floating*> NULL, &Z[0], &A[0], &out[0], n,
                         activation, <floating> negative_slope)


def dense_backward(const floating[:, ::1] dA,      # IN  (m, n_out)
                   const floating[:, ::1] Z,       # IN  (m, n_out) cache
                   const floating[:, ::1] A,       # IN  (m, n_out) cache g(Z)
                   const floating[:, ::1] A_prev,  # IN  (m, n_in)
                   const floating[:, ::1] W,       # IN  (n_out, n_in)
                   floating[:, ::1] dZ,            # OUT (m, n_out), may be dA
                   floating[:, ::1] dW,            # OUT (n_out, n_in)
                   floating[::1] db,               # OUT (n_out,)
                   floating[:, ::1] dA_prev,       # OUT (m, n_in), or None to skip
                   int activation, double negative_slope):
    cdef intp m = dA.shape[0], n_in = A_prev.shape[1], n_out = dA.shape[1]
    cdef intp s = sizeof(floating)
    cdef floating* da_prev = NULL if dA_prev is None else &dA_prev[0, 0]
    cdef Span spans[9]
    spans[0] = _span(&dZ[0, 0], m * n_out, s)
    spans[1] = _span(&dW[0, 0], n_out * n_in, s)
    spans[2] = _span(&db[0], n_out, s)
    spans[3] = _span(da_prev, m * n_in if da_prev != NULL else 0, s)
    spans[4] = _span(&dA[0, 0], m * n_out, s)
    spans[5] = _span(&Z[0, 0], m * n_out, s)
    spans[6] = _span(&A[0, 0], m * n_out, s)
    spans[7] = _span(&A_prev[0, 0], m * n_in, s)
    spans[8] = _span(&W[0, 0], n_out * n_in, s)
    _disjoint(("dZ", "dW", "db", "dA_prev", "dA", "Z", "A", "A_prev", "W"), spans, 9, 4,
              0, 4)
    with nogil:
        _activation_grad(&dA[0, 0], &Z[0, 0], &A[0, 0], &dZ[0, 0], m * n_out,
                         activation, <floating> negative_slope)
        _dense_backward(&dZ[0, 0], &A_prev[0, 0], &W[0, 0], &dW[0, 0], &db[0],
                        da_prev, m, n_in, n_out)


cdef int _loss_outputs(const floating* z, const void* y, intp y_bytes, floating* a,
                       floating* dz, intp size) except -1:
    """The overlap check shared by the output+loss kernels (a and dz are outputs)."""
    cdef Span spans[4]
    spans[0] = _span(a, size, sizeof(floating))
    spans[1] = _span(dz, size, sizeof(floating))
    spans[2] = _span(z, size, sizeof(floating))
    spans[3] = _span(y, y_bytes, 1)
    return _disjoint(("A", "dZ", "Z", "Y"), spans, 4, 2)


def sigmoid_binary_cross_entropy(const floating[::1] Z,  # IN  logits, flattened
                                 const floating[::1] Y,  # IN  targets in [0, 1]
                                 floating[::1] A,        # OUT sigmoid(Z)
                                 floating[::1] dZ):      # OUT
    cdef intp n = Z.shape[0]
    cdef double loss
    _loss_outputs(&Z[0], &Y[0], n * sizeof(floating), &A[0], &dZ[0], n)
    with nogil:
        loss = _sigmoid_bce(&Z[0], &Y[0], &A[0], &dZ[0], n)
    return loss


def softmax_cross_entropy_labels(const floating[:, ::1] Z,  # IN  (m, k) logits
                                 const intp[::1] labels,    # IN  (m,) in [0, k)
                                 floating[:, ::1] P,        # OUT (m, k) softmax(Z)
                                 floating[:, ::1] dZ):      # OUT (m, k)
    cdef intp m = Z.shape[0], k = Z.shape[1]
    cdef double loss
    _loss_outputs(&Z[0, 0], &labels[0], m * sizeof(intp), &P[0, 0], &dZ[0, 0], m * k)
    with nogil:
        loss = _softmax_ce_labels(&Z[0, 0], &labels[0], &P[0, 0], &dZ[0, 0], m, k)
    return loss


def softmax_cross_entropy_probs(const floating[:, ::1] Z,  # IN  (m, k) logits
                                const floating[:, ::1] Y,  # IN  (m, k) target rows
                                floating[:, ::1] P,        # OUT (m, k) softmax(Z)
                                floating[:, ::1] dZ):      # OUT (m, k)
    cdef intp m = Z.shape[0], k = Z.shape[1]
    cdef double loss
    _loss_outputs(&Z[0, 0], &Y[0, 0], m * k * sizeof(floating), &P[0, 0], &dZ[0, 0],
                  m * k)
    with nogil:
        loss = _softmax_ce_probs(&Z[0, 0], &Y[0, 0], &P[0, 0], &dZ[0, 0], m, k)
    return loss


def mean_squared_error(const floating[::1] Z,  # IN  predictions, flattened
                       const floating[::1] Y,  # IN  targets
                       floating[::1] A,        # OUT copy of Z (identity output)
                       floating[::1] dZ):      # OUT
    cdef intp n = Z.shape[0]
    cdef double loss
    _loss_outputs(&Z[0], &Y[0], n * sizeof(floating), &A[0], &dZ[0], n)
    with nogil:
        loss = _identity_mse(&Z[0], &Y[0], &A[0], &dZ[0], n)
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
