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
from libc.math cimport exp, expf, log, logf, sqrt, sqrtf, NAN, INFINITY
from libc.string cimport memcpy, memset

from fastnn._blas cimport gemm

ctypedef Py_ssize_t intp

cdef extern from "_vector.h" nogil:
    enum:  # activation codes
        IDENTITY "FNN_IDENTITY"
        SIGMOID "FNN_SIGMOID"
        TANH "FNN_TANH"
        RELU "FNN_RELU"
        LEAKY_RELU "FNN_LEAKY_RELU"
    void fnn_narrow_product_d(const double* w, intp w_row, intp w_col, const double* b,
                              const double* src, double* dst, intp n_out, intp n_in, intp m,
                              const double* gate, int act, double slope)
    void fnn_narrow_product_f(const float* w, intp w_row, intp w_col, const float* b,
                              const float* src, float* dst, intp n_out, intp n_in, intp m,
                              const float* gate, int act, float slope)
    void fnn_narrow_weight_grads_d(const double* dz, const double* a, double* dw,
                                   double* db, intp n_out, intp n_in, intp m)
    void fnn_narrow_weight_grads_f(const float* dz, const float* a, float* dw, float* db,
                                   intp n_out, intp n_in, intp m)
    bint fnn_any_nonfinite_d(const double* x, intp n)
    bint fnn_any_nonfinite_f(const float* x, intp n)
    void fnn_sigmoid_d(const double* z, double* a, double* e, intp n)
    void fnn_sigmoid_f(const float* z, float* a, float* e, intp n)
    void fnn_tanh_d(const double* z, double* a, intp n)
    void fnn_tanh_f(const float* z, float* a, intp n)
    void fnn_log1p_unit_d(const double* x, double* out, intp n)
    void fnn_log1p_unit_f(const float* x, float* out, intp n)
    const char* fnn_vector_build()


# ---------------------------------------------------------------- codes
# The integer codes the Python layer passes for names; the only place they live
# (the activations' come from _vector.h, whose kernels use them too).

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


cdef inline void _log1p_unit(const floating* x, floating* out, intp n) noexcept nogil:
    """out = log(1 + x) for x in [0, 1], in vector registers (see _vector.h)."""
    if floating is float:
        fnn_log1p_unit_f(x, out, n)
    else:
        fnn_log1p_unit_d(x, out, n)


cdef inline void _tanh(const floating* z, floating* a, intp n) noexcept nogil:
    """a = tanh(z) over n values, in vector registers (see _vector.h)."""
    if floating is float:
        fnn_tanh_f(z, a, n)
    else:
        fnn_tanh_d(z, a, n)


cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline void _sigmoid(const floating* z, floating* a, floating* e, intp n) noexcept nogil:
    """a = 1 / (1 + e^-z) over n values, as (1 or e) / (1 + e) with e = exp(-|z|) (which
    never overflows), in vector registers (see _vector.h); e gets exp(-|z|) unless NULL."""
    if floating is float:
        fnn_sigmoid_f(z, a, e, n)
    else:
        fnn_sigmoid_d(z, a, e, n)


# ---------------------------------------------------------------- activations

cdef void _activate(const floating* z, floating* a, intp n, int act,
                    floating slope) noexcept nogil:
    """a = g(z) elementwise over n values (a may be z)."""
    cdef intp i
    if act == IDENTITY:
        if a != z:
            memcpy(a, z, n * sizeof(floating))
    elif act == SIGMOID:
        _sigmoid(z, a, NULL, n)
    elif act == TANH:
        _tanh(z, a, n)
    elif act == RELU:
        for i in range(n):
            a[i] = z[i] if z[i] > 0 else 0
    else:
        for i in range(n):
            a[i] = z[i] * (1 if z[i] > 0 else slope)  # a select, not a branch


cdef void _activation_grad(const floating* da, const floating* z, const floating* a,
                           floating* out, intp n, int act, floating slope) noexcept nogil:
    """out = da * g'(z) elementwise; out may alias da.

    sigmoid' = a (1 - a) and tanh' = 1 - a^2 come from the cached output a;
    relu' and leaky_relu' from z (the derivative at exactly 0 is that of z < 0).
    One loop per activation, so that each one vectorises.
    """
    cdef intp i
    cdef floating d
    if act == IDENTITY:
        if out != da:
            memcpy(out, da, n * sizeof(floating))
    elif act == SIGMOID:
        for i in range(n):
            out[i] = da[i] * (a[i] * (1 - a[i]))
    elif act == TANH:
        for i in range(n):
            out[i] = da[i] * (1 - a[i] * a[i])
    elif act == RELU:
        for i in range(n):
            d = da[i]  # loaded unconditionally, so the select needs no branch
            out[i] = d if z[i] > 0 else 0
    else:
        for i in range(n):
            out[i] = da[i] * (1 if z[i] > 0 else slope)


# ---------------------------------------------------------------- dense layer

cdef void _dense_forward(const floating* a_prev, const floating* w, const floating* b,
                         floating* z, floating* a, intp m, intp n_in, intp n_out,
                         int act, floating slope) noexcept nogil:
    """Z = A_prev W^T + b by GEMM, then the bias and the activation over Z."""
    cdef intp i, j
    cdef floating* row
    gemm(False, True, <int> m, <int> n_out, <int> n_in, <floating> 1, a_prev,
         <int> n_in, w, <int> n_in, <floating> 0, z, <int> n_out)
    for i in range(m):
        row = z + i * n_out
        for j in range(n_out):
            row[j] += b[j]
    _activate(z, a, m * n_out, act, slope)


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


# ---------------------------------------------------------------- small layers
# Narrow layers on a batch are a poor fit for GEMM: for [2, 10, 5, 1] on 300
# samples each BLAS call spends more time packing than multiplying. The engine
# then keeps every activation feature-major (one row of m values per unit, the
# transpose of the usual layout), so that every product runs along the long batch
# dimension, in the register-blocked loops of _vector.h. Elementwise passes
# (activations, their derivatives) do not care about the layout.

cdef enum:
    # Feature-major beats GEMM (measured on [2, 10, 5, 1] to [32, 32, 32, 10], batches
    # 16 to 1,000) when every width, input included, spans at most 96 bytes (12 doubles,
    # 24 floats) and the batch has 16 rows or more.
    NARROW_BYTES = 96
    NARROW_MIN = 16


cdef void _transpose(const floating* src, floating* dst, intp rows,
                     intp cols) noexcept nogil:
    """dst (cols, rows) = src (rows, cols)^T."""
    cdef intp i, j
    for i in range(rows):
        for j in range(cols):
            dst[j * rows + i] = src[i * cols + j]


cdef inline void _narrow_product(const floating* w, intp w_row, intp w_col,
                                 const floating* b, const floating* src, floating* dst,
                                 intp n_out, intp n_in, intp m, const floating* gate,
                                 int act, floating slope) noexcept nogil:
    """dst (n_out, m) = act(V src + b) for src (n_in, m), V[j, k] = w[j w_row + k w_col]
    (V = W for the forward pass, W^T for dA_prev), act identity, relu or leaky_relu;
    b may be NULL (no bias). With gate, dst gets act'(z) times that (see _vector.h)."""
    if floating is float:
        fnn_narrow_product_f(w, w_row, w_col, b, src, dst, n_out, n_in, m, gate, act, slope)
    else:
        fnn_narrow_product_d(w, w_row, w_col, b, src, dst, n_out, n_in, m, gate, act, slope)


cdef inline bint _reads_z(int act, floating slope) noexcept nogil:
    """Whether act'(z) needs z itself: every other derivative comes from a = act(z)
    (relu's and leaky_relu's as a > 0, which is z > 0 for a slope >= 0)."""
    return act == LEAKY_RELU and slope < 0


cdef void _narrow_dense_forward(const floating* a_prev, const floating* w,
                                const floating* b, floating* z, floating* a, intp m,
                                intp n_in, intp n_out, int act,
                                floating slope) noexcept nogil:
    """_dense_forward, feature-major: a_prev (n_in, m), z and a (n_out, m). Identity,
    ReLU and leaky ReLU are applied as Z leaves the registers, and then Z is not kept
    unless the derivative needs it (_reads_z); the others in a pass over Z after."""
    if (act == IDENTITY or act == RELU or act == LEAKY_RELU) and not _reads_z(act, slope):
        _narrow_product(w, n_in, 1, b, a_prev, a, n_out, n_in, m, NULL, act, slope)
    else:
        _narrow_product(w, n_in, 1, b, a_prev, z, n_out, n_in, m, NULL, IDENTITY, slope)
        _activate(z, a, m * n_out, act, slope)


cdef void _narrow_dense_backward(const floating* dz, const floating* a_prev,
                                 const floating* w, floating* dw, floating* db,
                                 floating* dz_prev, const floating* z_prev, int act_prev,
                                 floating slope, intp m, intp n_in,
                                 intp n_out) noexcept nogil:
    """_dense_backward, feature-major (dz (n_out, m), a_prev (n_in, m)), and then
    straight to dZ_prev = (dZ W) * act_prev'(z_prev) (n_in, m) unless dz_prev is NULL:
    the activation's derivative is applied as dA_prev leaves the registers."""
    if floating is float:
        fnn_narrow_weight_grads_f(dz, a_prev, dw, db, n_out, n_in, m)
    else:
        fnn_narrow_weight_grads_d(dz, a_prev, dw, db, n_out, n_in, m)
    if dz_prev != NULL:
        _narrow_product(w, 1, n_in, NULL, dz, dz_prev, n_in, n_out, m,
                        z_prev if _reads_z(act_prev, slope) else a_prev, act_prev, slope)


# ---------------------------------------------------------------- output + loss
# Each writes the output activation A and dZ = dLoss/dZ of the mean loss, and
# returns the mean loss, accumulated in double.

cdef double _sigmoid_bce(const floating* z, const floating* y, floating* a, floating* dz,
                         intp size) noexcept nogil:
    """Binary cross-entropy from logits, mean over all elements.

    With e = exp(-|z|) (never overflows): loss = max(z, 0) - z y + log(1 + e),
    sigmoid(z) = 1 / (1 + e) for z >= 0 and e / (1 + e) below; dZ = (sigmoid(z) - y) / size.
    Three passes: sigmoid into a and e into dz, log(1 + e) in place (both in vector
    registers), then the rest.
    """
    cdef intp i
    cdef floating zi
    cdef floating inv = (<floating> 1) / size
    cdef double total = 0
    _sigmoid(z, a, dz, size)
    _log1p_unit(dz, dz, size)
    for i in range(size):
        zi = z[i]
        total += (zi if zi > 0 else 0) - zi * y[i] + dz[i]
        dz[i] = (a[i] - y[i]) * inv
    return total / size


cdef floating _softmax_row(const floating* z, floating* p, intp k,
                           floating* log_sum) noexcept nogil:
    """p = softmax(z) over one row. Returns zmax and sets *log_sum = log(sum e^(z - zmax)),
    so that log softmax(z)_j = (z_j - zmax) - log_sum: no cancellation against zmax."""
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
    log_sum[0] = _log(s)
    return zmax


cdef double _softmax_ce_labels(const floating* z, const intp* labels, floating* p,
                               floating* dz, intp m, intp k) noexcept nogil:
    """Cross-entropy of softmax(z) against class labels, mean over rows.

    loss_i = lse(z_i) - z_i[y_i];  dZ = (softmax(z) - onehot(y)) / m.
    """
    cdef intp i, j, c
    cdef floating inv = (<floating> 1) / m
    cdef floating zmax, log_sum
    cdef double total = 0
    for i in range(m):
        c = labels[i]  # read once and bounded here: the caller's check cannot be trusted
        if c < 0 or c >= k:  # against another thread changing the labels meanwhile
            return NAN
        zmax = _softmax_row(z + i * k, p + i * k, k, &log_sum)
        total += log_sum - (z[i * k + c] - zmax)
        for j in range(k):
            dz[i * k + j] = p[i * k + j] * inv
        dz[i * k + c] -= inv
    return total / m


cdef double _softmax_ce_probs(const floating* z, const floating* y, floating* p,
                              floating* dz, intp m, intp k) noexcept nogil:
    """Cross-entropy of softmax(z) against target rows y (one-hot or soft), mean over rows.

    loss_i = sum_j y_ij (lse(z_i) - z_ij);  dZ = (softmax(z) sum_j y_ij - y) / m.
    """
    cdef intp i, j
    cdef floating inv = (<floating> 1) / m
    cdef floating zmax, log_sum, ysum
    cdef double total = 0
    for i in range(m):
        zmax = _softmax_row(z + i * k, p + i * k, k, &log_sum)
        ysum = 0
        for j in range(k):
            total += y[i * k + j] * (log_sum - (z[i * k + j] - zmax))
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
        total += (<double> r) * r  # squared in double: float32 squares overflow at 1.8e19
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
    if nesterov:
        for i in range(n):
            gi = g[i] + wd * p[i]
            v[i] = mu * v[i] + gi
            p[i] -= lr * (gi + mu * v[i])
    else:
        for i in range(n):
            v[i] = mu * v[i] + (g[i] + wd * p[i])
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
    cdef intp i
    with nogil:
        for i in range(n):
            out[i] = 1
        _activation_grad(&out[0], &Z[0], &A[0], &out[0], n, activation,
                         <floating> negative_slope)


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


# ---------------------------------------------------------------- the network engine
# A whole MLP in flat buffers: params holds, layer after layer, W (n_out, n_in) then
# b (n_out,); grads and the optimizer states share that layout. A training step
# (forward through every layer, fused output+loss, backward, update) is one call,
# GIL released, on a workspace that grows only when a larger batch arrives.

from time import sleep as _sleep

import numpy as np
cimport numpy as cnp
from libc.stdlib cimport malloc, free
from libc.math cimport isfinite
from libc.stdint cimport uint32_t, uint64_t
from libc.limits cimport INT_MAX
from cpython.pyport cimport PY_SSIZE_T_MAX

cnp.import_array()

cdef enum:
    SGD = 0
    MOMENTUM = 1
    NESTEROV = 2
    ADAM = 3

OPTIMIZERS = {"sgd": SGD, "momentum": MOMENTUM, "nesterov": NESTEROV, "adam": ADAM}


cdef struct Plan:
    intp n_layers
    intp* sizes        # n_layers + 1 widths, input first
    int* acts          # n_layers codes; the output layer's is IDENTITY (logits)
    int output         # OUT_SIGMOID, OUT_SOFTMAX or OUT_IDENTITY
    double slope       # leaky_relu's negative slope
    intp max_width     # widest layer after the input
    bint narrow        # all widths <= NARROW_BYTES: batches of NARROW_MIN or more go
                       # feature-major


cdef struct Optim:
    int kind
    double lr, momentum, beta1, beta2, eps, weight_decay
    long t


cdef inline intp _layers_size(const Plan* plan, intp m) noexcept nogil:
    """Workspace for Z and A of every layer (layer after layer: Z, then A)."""
    cdef intp l, total = 0
    for l in range(plan.n_layers):
        total += 2 * m * plan.sizes[l + 1]
    return total


cdef inline intp _work_size(const Plan* plan, intp m) noexcept nogil:
    """Workspace for a batch of m: Z and A of every layer, two gradient buffers dz and
    other, and for narrow plans the transposed input."""
    return (_layers_size(plan, m) + 2 * m * plan.max_width
            + (m * plan.sizes[0] if plan.narrow else 0))


cdef inline bint _feature_major(const Plan* plan, intp m) noexcept nogil:
    return plan.narrow and m >= NARROW_MIN


cdef const floating* _forward(const Plan* plan, const floating* params,
                              const floating* x, intp m, floating* work) noexcept nogil:
    """Every layer's Z and A into work (layer after layer: Z, then A); the output
    layer's Z holds the logits and its A is left for the output function.
    Feature-major for narrow plans (see _vector.h), which skip the Z that the
    backward pass does not read. Returns the network's input as
    the backward pass reads it: x, or its transpose in the workspace."""
    cdef intp l, n_in, n_out
    cdef bint fm = _feature_major(plan, m)
    cdef const floating* inputs = x
    cdef const floating* a_prev
    cdef const floating* w = params
    cdef floating* z = work
    cdef floating* a
    if fm:
        a = work + _work_size(plan, m) - m * plan.sizes[0]
        _transpose(x, a, m, plan.sizes[0])
        inputs = a
    a_prev = inputs
    for l in range(plan.n_layers):
        n_in, n_out = plan.sizes[l], plan.sizes[l + 1]
        a = z + m * n_out if l + 1 < plan.n_layers else z
        if fm:
            _narrow_dense_forward(a_prev, w, w + n_out * n_in, z, a, m, n_in, n_out,
                                  plan.acts[l], <floating> plan.slope)
        else:
            _dense_forward(a_prev, w, w + n_out * n_in, z, a, m, n_in, n_out,
                           plan.acts[l], <floating> plan.slope)
        a_prev = a
        w += n_out * (n_in + 1)
        z += 2 * m * n_out
    return inputs


cdef double _output_loss(const Plan* plan, const floating* z, const floating* y,
                         const intp* labels, floating* out, floating* dz,
                         intp m) noexcept nogil:
    """The fused output+loss kernel of the plan's output: out = probabilities or values."""
    cdef intp k = plan.sizes[plan.n_layers]
    if plan.output == OUT_SIGMOID:
        return _sigmoid_bce(z, y, out, dz, m * k)
    if plan.output == OUT_IDENTITY:
        return _identity_mse(z, y, out, dz, m * k)
    if labels != NULL:
        return _softmax_ce_labels(z, labels, out, dz, m, k)
    return _softmax_ce_probs(z, y, out, dz, m, k)


cdef void _update(const Optim* opt, floating* p, const floating* g, floating* s1,
                  floating* s2, intp n, double wd) noexcept nogil:
    if opt.kind == SGD:
        _sgd(p, g, n, <floating> opt.lr, <floating> wd)
    elif opt.kind == ADAM:
        _adam(p, g, s1, s2, n, opt.lr, opt.beta1, opt.beta2, opt.eps, opt.t, <floating> wd)
    else:
        _momentum(p, g, s1, n, <floating> opt.lr, <floating> opt.momentum, <floating> wd,
                  opt.kind == NESTEROV)


cdef double _sum_squared_weights(const Plan* plan, const floating* params) noexcept nogil:
    """sum over layers of ||W||^2 (biases excluded), for the L2 penalty."""
    cdef intp l, i, n
    cdef double total = 0
    for l in range(plan.n_layers):
        n = plan.sizes[l + 1] * plan.sizes[l]
        for i in range(n):
            total += (<double> params[i]) * params[i]
        params += n + plan.sizes[l + 1]
    return total


cdef intp _first_nonfinite(const void* data, intp n, bint single) noexcept nogil:
    """Index of the first NaN or infinity among n values, or -1.

    Blocks of values are scanned in vector registers (see _vector.h); only a block
    that holds a non-finite value is searched value by value (exponent bits all ones).
    """
    cdef intp start, end, i
    cdef const uint32_t* f = <const uint32_t*> data
    cdef const uint64_t* d = <const uint64_t*> data
    cdef uint64_t F_EXP = 0x7f800000, D_EXP = 0x7ff0000000000000
    cdef bint bad
    for start in range(0, n, 4096):
        end = min(start + 4096, n)
        if single:
            bad = fnn_any_nonfinite_f(<const float*> data + start, end - start)
        else:
            bad = fnn_any_nonfinite_d(<const double*> data + start, end - start)
        if bad:
            for i in range(start, end):
                if (f[i] & F_EXP) == F_EXP if single else (d[i] & D_EXP) == D_EXP:
                    return i
    return -1


cdef double _step(const Plan* plan, floating* params, floating* grads, floating* s1,
                  floating* s2, const floating* x, const floating* y, const intp* labels,
                  intp m, floating* work, const Optim* opt, bint backward) noexcept nogil:
    """Forward and loss; with backward, every layer's gradient into grads; with opt too,
    the update of every layer (weight decay on W, not b).

    Returns the mean loss, plus 0.5 wd sum ||W||^2 (at the weights the step started
    from) when training. When the loss or a gradient is not finite, the update is not
    made and the return is that loss, or NaN: the parameters stay as they were. When the
    update itself overflowed a parameter, the return is -inf (the update was made).
    """
    cdef intp L = plan.n_layers, l, n_in, n_out, offset, n_w, k = plan.sizes[L]
    cdef intp zoff = _layers_size(plan, m) - 2 * m * k
    cdef bint fm = _feature_major(plan, m)
    cdef floating* dz = work + _layers_size(plan, m)
    cdef floating* other = dz + m * plan.max_width
    cdef floating* swap
    cdef const floating* a_prev
    cdef double wd = 0 if opt == NULL else opt.weight_decay
    cdef double loss
    cdef bint grads_bad = False, overflowed = False

    cdef const floating* inputs = _forward(plan, params, x, m, work)
    if fm and k > 1:  # the output kernels read rows: logits to rows, dZ back
        _transpose(work + zoff, other, k, m)
        loss = _output_loss(plan, other, y, labels, work + zoff + m * k, work + zoff, m)
        _transpose(work + zoff, dz, m, k)
    else:  # (k = 1: the two layouts are the same memory)
        loss = _output_loss(plan, work + zoff, y, labels, work + zoff + m * k, dz, m)
    if wd != 0:
        loss += 0.5 * wd * _sum_squared_weights(plan, params)
    if not backward or (opt != NULL and not isfinite(loss)):
        return loss

    offset = 0
    for l in range(L):
        offset += plan.sizes[l + 1] * (plan.sizes[l] + 1)
    for l in range(L - 1, -1, -1):
        n_in, n_out = plan.sizes[l], plan.sizes[l + 1]
        offset -= n_out * (n_in + 1)
        if l > 0:
            zoff -= 2 * m * n_in
            a_prev = work + zoff + m * n_in
        else:
            a_prev = inputs
        if fm:  # other = dZ of layer l - 1 at once
            _narrow_dense_backward(dz, a_prev, params + offset, grads + offset,
                                   grads + offset + n_out * n_in, other if l > 0 else NULL,
                                   work + zoff, plan.acts[l - 1] if l > 0 else IDENTITY,
                                   <floating> plan.slope, m, n_in, n_out)
        else:
            _dense_backward(dz, a_prev, params + offset, grads + offset,
                            grads + offset + n_out * n_in, other if l > 0 else NULL,
                            m, n_in, n_out)
            if l > 0:
                _activation_grad(other, work + zoff, a_prev, other, m * n_in,
                                 plan.acts[l - 1], <floating> plan.slope)
        if opt != NULL and not grads_bad:  # checked while still in cache
            grads_bad = _first_nonfinite(grads + offset, n_out * (n_in + 1),
                                         sizeof(floating) == 4) >= 0
        if l > 0:
            swap = dz
            dz = other
            other = swap

    if opt == NULL:
        return loss
    if grads_bad:
        return NAN
    for l in range(L):
        n_w = plan.sizes[l + 1] * plan.sizes[l]
        _update(opt, params + offset, grads + offset, s1 + offset, s2 + offset, n_w, wd)
        _update(opt, params + offset + n_w, grads + offset + n_w, s1 + offset + n_w,
                s2 + offset + n_w, plan.sizes[l + 1], 0)
        if _first_nonfinite(params + offset, n_w + plan.sizes[l + 1],
                            sizeof(floating) == 4) >= 0:  # checked while in cache
            overflowed = True
        offset += n_w + plan.sizes[l + 1]
    return -INFINITY if overflowed else loss


cdef void _predict(const Plan* plan, const floating* params, const floating* x, intp m,
                   floating* work, floating* out) noexcept nogil:
    """out = the network's output: probabilities (sigmoid, softmax) or values."""
    cdef intp i, k = plan.sizes[plan.n_layers]
    cdef floating log_sum
    cdef floating* logits = work + _layers_size(plan, m) - 2 * m * k
    _forward(plan, params, x, m, work)
    if _feature_major(plan, m) and k > 1:
        _transpose(logits, out, k, m)  # then in place: both functions allow it
        logits = out
    if plan.output == OUT_SOFTMAX:
        for i in range(m):
            _softmax_row(logits + i * k, out + i * k, k, &log_sum)
    else:
        _activate(logits, out, m * k,
                  SIGMOID if plan.output == OUT_SIGMOID else IDENTITY, <floating> 0)


def vector_build():
    """Which build of the vector kernels runs on this CPU: "fma" (32-byte vectors and
    fused multiply-add) or "base" (16-byte vectors). FASTNN_VECTOR_BUILD=base in the
    environment before import forces the baseline."""
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


cdef class Engine:
    """The compiled side of an MLP: its flat parameters and the plan to walk them.

    Engine(params, sizes, activations, output, negative_slope) keeps a reference to
    params (float32 or float64, C-contiguous, 1-D) and works on it in place. The
    methods take arrays already checked by fastnn.model; they verify dtype, order,
    shape and finiteness once more in C, where it costs next to nothing.

    Threads: predict, loss and gradients only read the parameters and may run in any
    number of threads at once (each call has its own workspace, the GIL is released);
    a step (or assign) waits for the running readers and new readers wait for it, so
    none ever sees half-updated weights; steps and assigns take turns.
    """
    cdef Plan plan
    cdef object params
    cdef bint single
    cdef void* work
    cdef intp work_rows
    cdef bint busy      # a step, loss or gradient is using the workspace
    cdef int readers    # predictions in progress (each with its own workspace)
    cdef bint waiting   # a step waits for the running predictions to finish

    def __cinit__(self, cnp.ndarray params, sizes, activations, int output,
                  double negative_slope):
        cdef intp l, expected = 0
        self.plan.n_layers = len(sizes) - 1
        self.plan.sizes = <intp*> malloc((self.plan.n_layers + 1) * sizeof(intp))
        self.plan.acts = <int*> malloc(self.plan.n_layers * sizeof(int))
        if self.plan.sizes == NULL or self.plan.acts == NULL:
            raise MemoryError()
        self.plan.max_width = 0
        for l in range(self.plan.n_layers + 1):
            if not 1 <= sizes[l] <= INT_MAX:
                raise ValueError(f"layer widths must be in [1, 2**31 - 1]; got {sizes[l]}")
            self.plan.sizes[l] = sizes[l]
        for l in range(self.plan.n_layers):
            self.plan.acts[l] = activations[l]
            self.plan.max_width = max(self.plan.max_width, self.plan.sizes[l + 1])
            expected += self.plan.sizes[l + 1] * (self.plan.sizes[l] + 1)
        self.plan.output = output
        self.plan.slope = negative_slope
        self.single = self._check(params, "params", expected, 1)
        self.plan.narrow = max(sizes) * (4 if self.single else 8) <= NARROW_BYTES
        self.params = params

    def __dealloc__(self):
        free(self.plan.sizes)
        free(self.plan.acts)
        free(self.work)

    cdef bint _check(self, cnp.ndarray a, str name, intp size, int ndim) except -1:
        """True for float32, False for float64; TypeError/ValueError otherwise."""
        cdef int kind = cnp.PyArray_TYPE(a)
        if kind != cnp.NPY_FLOAT32 and kind != cnp.NPY_FLOAT64:
            raise TypeError(f"{name} must be float32 or float64, got {(<object> a).dtype}")
        if self.params is not None and (kind == cnp.NPY_FLOAT32) != self.single:
            raise TypeError(f"{name} has dtype {(<object> a).dtype}, the model is "
                            f"{self.params.dtype}")
        if not cnp.PyArray_IS_C_CONTIGUOUS(a) or cnp.PyArray_NDIM(a) != ndim \
                or cnp.PyArray_SIZE(a) != size:
            raise ValueError(f"{name} must be a C-contiguous {ndim}-D array of {size} "
                             f"values; got shape {(<object> a).shape}")
        return kind == cnp.NPY_FLOAT32

    cdef intp _rows(self, cnp.ndarray X) except -1:
        """m, after checking X (m, n_in) and that every value is finite."""
        cdef intp m, bad
        if cnp.PyArray_NDIM(X) != 2 or cnp.PyArray_DIMS(X)[1] != self.plan.sizes[0] \
                or cnp.PyArray_DIMS(X)[0] < 1:
            raise ValueError(f"X must have shape (m, {self.plan.sizes[0]}) with m >= 1; "
                             f"got {(<object> X).shape}")
        m = cnp.PyArray_DIMS(X)[0]
        if m > INT_MAX:  # BLAS takes 32-bit sizes
            raise ValueError(f"X has {m} rows; at most 2**31 - 1 fit one call")
        self._check(X, "X", m * self.plan.sizes[0], 2)
        bad = _first_nonfinite(cnp.PyArray_DATA(X), m * self.plan.sizes[0], self.single)
        if bad >= 0:
            raise ValueError(_nonfinite_message("X", X, bad))
        return m

    cdef size_t _work_bytes(self, intp m) except 0:
        """Bytes of workspace for a batch of m, refusing sizes that would overflow."""
        cdef intp per_row = _work_size(&self.plan, 1) * (4 if self.single else 8)
        if m > PY_SSIZE_T_MAX // per_row:
            raise MemoryError(f"a batch of {m} rows needs more memory than can be addressed")
        return m * per_row

    cdef void* _workspace(self, intp m) except NULL:
        """The shared workspace, grown (never shrunk) to hold a batch of m."""
        cdef size_t nbytes = self._work_bytes(m)
        if m > self.work_rows:
            free(self.work)
            self.work_rows = 0
            self.work = malloc(nbytes)
            if self.work == NULL:
                raise MemoryError()
            self.work_rows = m
        return self.work

    cdef int _enter(self) except -1:
        """Claim the model for a step (or loss, or gradients, or assign) on the shared
        workspace: wait for another such call to end, then for the predictions already
        running (they read the parameters). busy, waiting and readers change only while
        this thread holds the GIL, so these checks cannot race. (Concurrent *training*
        is refused one level up, by MLP.)
        """
        while self.busy or self.waiting:
            _sleep(20e-6)
        self.waiting = True  # new predictions now wait, so the running ones drain
        try:
            while self.readers:
                _sleep(20e-6)
        finally:
            self.waiting = False
        self.busy = True
        return 0

    cdef const void* _targets(self, object Y, intp m, const intp** labels) except? NULL:
        """The pointer to float targets (m, k), or NULL with *labels set for class labels."""
        cdef cnp.ndarray arr = Y
        cdef intp k = self.plan.sizes[self.plan.n_layers], bad, i
        if cnp.PyArray_TYPE(arr) == cnp.NPY_INTP and self.plan.output == OUT_SOFTMAX:
            if cnp.PyArray_NDIM(arr) != 1 or cnp.PyArray_DIMS(arr)[0] != m \
                    or not cnp.PyArray_IS_C_CONTIGUOUS(arr):
                raise ValueError(f"labels must be a C-contiguous (m,) = ({m},) array")
            labels[0] = <const intp*> cnp.PyArray_DATA(arr)
            for i in range(m):
                if labels[0][i] < 0 or labels[0][i] >= k:
                    raise ValueError(f"labels must be in [0, {k}); labels[{i}] = "
                                     f"{labels[0][i]}")
            return NULL
        self._check(arr, "Y", m * k, 2)
        bad = _first_nonfinite(cnp.PyArray_DATA(arr), m * k, self.single)
        if bad >= 0:
            raise ValueError(_nonfinite_message("y", arr, bad))
        return cnp.PyArray_DATA(arr)

    def predict(self, cnp.ndarray X, cnp.ndarray out=None):
        """out (m, k) = the output (probabilities or values) for X (m, n_in); returns out,
        a new array when none is given. Thread-safe: each call has its own workspace."""
        cdef intp m = self._rows(X)
        cdef intp k = self.plan.sizes[self.plan.n_layers]
        cdef cnp.npy_intp dims[2]
        if out is None:
            dims[0], dims[1] = m, k
            out = cnp.PyArray_EMPTY(2, dims, cnp.NPY_FLOAT32 if self.single
                                    else cnp.NPY_FLOAT64, 0)
        self._check(out, "out", m * k, 2)
        cdef const void* p = cnp.PyArray_DATA(self.params)
        cdef const void* x = cnp.PyArray_DATA(X)
        cdef void* o = cnp.PyArray_DATA(out)
        cdef void* work = self._read_begin(m)
        try:
            with nogil:
                if self.single:
                    _predict(&self.plan, <const float*> p, <const float*> x, m,
                             <float*> work, <float*> o)
                else:
                    _predict(&self.plan, <const double*> p, <const double*> x, m,
                             <double*> work, <double*> o)
        finally:
            self._read_end(work)
        return out

    def feature_major(self, intp m):
        """True when a batch of m goes through the narrow, feature-major path."""
        return _feature_major(&self.plan, m)

    def assign(self, cnp.ndarray values):
        """params[...] = values (same size and dtype), never while a prediction runs."""
        self._check(values, "values", cnp.PyArray_SIZE(self.params), 1)
        self._enter()
        try:
            self.params[...] = values
        finally:
            self.busy = False

    def loss(self, cnp.ndarray X, Y):
        """The mean loss on (X, Y), forward only.

        Y: float targets (m, k) of the model's dtype, or np.intp labels (m,) for softmax.
        """
        return self._run(X, Y, None, None, None, NULL, False)

    def loss_and_gradients(self, cnp.ndarray X, Y, cnp.ndarray grads):
        """The mean loss on (X, Y); writes its gradient (params' layout) into grads."""
        return self._run(X, Y, grads, None, None, NULL, True)

    def step(self, cnp.ndarray X, Y, cnp.ndarray grads, cnp.ndarray state1,
             cnp.ndarray state2, str optimizer, double lr, double momentum, double beta1,
             double beta2, double eps, cnp.ndarray t, double weight_decay):
        """One training step in place; returns loss + 0.5 weight_decay sum ||W||^2.

        grads is scratch; state1 and state2 are the optimizer's (the velocity, or Adam's
        m and v), each in params' layout (pass grads for a state that is not used).
        t is the step counter, an int64 array of one element: the step is number
        t[0] + 1 (Adam's bias correction) and t[0] is incremented with the update, in
        the same compiled call, so an interrupt can never separate the two.
        A non-finite return means nothing was updated (see _step).
        """
        cdef Optim opt
        if cnp.PyArray_TYPE(t) != cnp.NPY_INT64 or cnp.PyArray_SIZE(t) != 1 \
                or not cnp.PyArray_IS_C_CONTIGUOUS(t):
            raise TypeError("t must be an int64 array of one element (the step counter)")
        cdef long long* counter = <long long*> cnp.PyArray_DATA(t)
        opt.kind = OPTIMIZERS[optimizer]
        opt.lr, opt.momentum, opt.weight_decay = lr, momentum, weight_decay
        opt.beta1, opt.beta2, opt.eps, opt.t = beta1, beta2, eps, counter[0] + 1
        return self._run(X, Y, grads, state1, state2, &opt, True, counter)

    cdef double _run(self, cnp.ndarray X, object Y, cnp.ndarray grads, cnp.ndarray s1,
                     cnp.ndarray s2, const Optim* opt, bint backward,
                     long long* counter=NULL) except? -1:
        cdef intp m = self._rows(X)
        cdef intp n = cnp.PyArray_SIZE(self.params)
        cdef const intp* labels = NULL
        cdef const void* y = self._targets(Y, m, &labels)
        cdef void* g = NULL
        cdef void* a = NULL
        cdef void* b = NULL
        if backward:
            self._check(grads, "grads", n, 1)
            g = cnp.PyArray_DATA(grads)
        if opt != NULL:
            self._check(s1, "state1", n, 1)
            self._check(s2, "state2", n, 1)
            a, b = cnp.PyArray_DATA(s1), cnp.PyArray_DATA(s2)
        if opt == NULL:  # loss or gradients: a reader, with a workspace of its own
            return self._read(X, m, y, labels, g, backward)
        cdef void* p = cnp.PyArray_DATA(self.params)
        cdef const void* x = cnp.PyArray_DATA(X)
        cdef double loss
        cdef void* work
        self._enter()
        try:
            work = self._workspace(m)
            with nogil:
                if self.single:
                    loss = _step(&self.plan, <float*> p, <float*> g, <float*> a,
                                 <float*> b, <const float*> x, <const float*> y, labels,
                                 m, <float*> work, opt, backward)
                else:
                    loss = _step(&self.plan, <double*> p, <double*> g, <double*> a,
                                 <double*> b, <const double*> x, <const double*> y,
                                 labels, m, <double*> work, opt, backward)
                if counter != NULL and (isfinite(loss) or loss == -INFINITY):
                    counter[0] += 1  # the update was made
        finally:
            self.busy = False
        return loss

    cdef double _read(self, cnp.ndarray X, intp m, const void* y, const intp* labels,
                      void* g, bint backward) except? -1:
        """Loss (and gradients into g) without touching the parameters or the shared
        workspace: like predict, any number of these run at once, and never during a step."""
        cdef void* p = cnp.PyArray_DATA(self.params)
        cdef const void* x = cnp.PyArray_DATA(X)
        cdef double loss
        cdef void* work = self._read_begin(m)
        try:
            with nogil:
                if self.single:
                    loss = _step(&self.plan, <float*> p, <float*> g, NULL, NULL,
                                 <const float*> x, <const float*> y, labels, m,
                                 <float*> work, NULL, backward)
                else:
                    loss = _step(&self.plan, <double*> p, <double*> g, NULL, NULL,
                                 <const double*> x, <const double*> y, labels, m,
                                 <double*> work, NULL, backward)
        finally:
            self._read_end(work)
        return loss

    cdef void* _read_begin(self, intp m) except NULL:
        """Wait while a step is (about to be) changing the weights, then count a reader
        and return its private workspace for m rows (freed by _read_end)."""
        cdef size_t nbytes = self._work_bytes(m)
        while self.busy or self.waiting:
            _sleep(20e-6)
        cdef void* work = malloc(nbytes)
        if work == NULL:
            raise MemoryError()
        self.readers += 1
        return work

    cdef void _read_end(self, void* work) noexcept:
        free(work)
        self.readers -= 1
