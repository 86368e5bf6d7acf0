# fastnn's pointer-level kernels: every computation of the compiled core, written once
# over the fused type `floating` (float32 and float64) as `cdef inline ... noexcept
# nogil` functions on raw pointers, shared through this .pxd by the checked kernel
# entry points (_kernels.pyx) and the whole-network engine (_engine.pyx), as _blas.pxd
# shares GEMM. They trust their arguments: the callers check them first.
#
# Layout conventions (see the README): samples are rows. A dense layer holds
# W (n_out, n_in) and b (n_out,) and computes Z = A_prev W^T + b, A = g(Z).
# Gradients are of the mean loss over the batch, so the 1/m lives in the output
# layer's dZ and nowhere else.
#
# The codes below are the one place each kind of kernel is numbered; the Python tables
# follow the same order (fastnn.activations.ACTIVATIONS, fastnn.model.OUTPUTS, the
# `code` of each fastnn.optim optimizer).

from cython cimport floating
from libc.math cimport exp, expf, log, log1p, log1pf, sqrt, NAN
from libc.stdint cimport uint32_t, uint64_t

from fastnn._blas cimport gemm

ctypedef Py_ssize_t intp

cdef extern from "_vector.h" nogil:
    enum:  # activation codes
        IDENTITY "FNN_IDENTITY"
        SIGMOID "FNN_SIGMOID"
        TANH "FNN_TANH"
        RELU "FNN_RELU"
        LEAKY_RELU "FNN_LEAKY_RELU"
    ctypedef unsigned long long fnn_fp_mode
    fnn_fp_mode fnn_flush_subnormals()
    void fnn_fp_restore(fnn_fp_mode mode)
    void fnn_narrow_product_d(const double* w, intp w_row, intp w_col, const double* b,
                              const double* src, double* dst, intp n_out, intp n_in, intp m,
                              intp ld, const double* gate, int act, double slope)
    void fnn_narrow_product_f(const float* w, intp w_row, intp w_col, const float* b,
                              const float* src, float* dst, intp n_out, intp n_in, intp m,
                              intp ld, const float* gate, int act, float slope)
    void fnn_narrow_weight_grads_d(const double* dz, const double* a, double* dw,
                                   double* db, intp n_out, intp n_in, intp m, intp ld)
    void fnn_narrow_weight_grads_f(const float* dz, const float* a, float* dw, float* db,
                                   intp n_out, intp n_in, intp m, intp ld)
    void fnn_thin_dots_d(const double* L, const double* R, const double* bias, double* C,
                         intp m, intp K, intp J)
    void fnn_thin_dots_f(const float* L, const float* R, const float* bias, float* C,
                         intp m, intp K, intp J)
    void fnn_thin_gram_d(const double* L, const double* R, double* G, intp m, intp J,
                         intp N, int transposed)
    void fnn_thin_gram_f(const float* L, const float* R, float* G, intp m, intp J, intp N,
                         int transposed)
    void fnn_thin_combine_d(const double* L, const double* R, intp r_row, intp r_col,
                            const double* bias, double* C, intp m, intp K, intp N)
    void fnn_thin_combine_f(const float* L, const float* R, intp r_row, intp r_col,
                            const float* bias, float* C, intp m, intp K, intp N)
    bint fnn_any_nonfinite_d(const double* x, intp n)
    bint fnn_any_nonfinite_f(const float* x, intp n)
    double fnn_sum_squares_d(const double* x, intp n)
    double fnn_sum_squares_f(const float* x, intp n)
    bint fnn_add_into_d(double* dst, const double* src, intp n)
    bint fnn_add_into_f(float* dst, const float* src, intp n)
    void fnn_sigmoid_d(const double* z, double* a, intp n)
    void fnn_sigmoid_f(const float* z, float* a, intp n)
    void fnn_tanh_d(const double* z, double* a, intp n)
    void fnn_tanh_f(const float* z, float* a, intp n)
    double fnn_sigmoid_bce_d(const double* z, const double* y, double* a, double* dz,
                             intp n, double scale)
    double fnn_sigmoid_bce_f(const float* z, const float* y, float* a, float* dz, intp n,
                             float scale)
    double fnn_softmax_row_d(const double* z, double* p, intp k, double* rest)
    float fnn_softmax_row_f(const float* z, float* p, intp k, float* rest)
    void fnn_transpose_d(const double* src, double* dst, intp rows, intp cols, intp ss,
                         intp ds)
    void fnn_transpose_f(const float* src, float* dst, intp rows, intp cols, intp ss,
                         intp ds)
    int fnn_adam_d(double* p, const double* g, double* m1, double* m2, intp n,
                   double step, double b1, double b2, double c1, double c2, double k,
                   double eps, double wd)
    int fnn_adam_f(float* p, const float* g, float* m1, float* m2, intp n, float step,
                   float b1, float b2, float c1, float c2, float k, float eps, float wd)
    void fnn_bias_act_d(double* z, double* a, const double* b, intp m, intp n, int act,
                        double slope)
    void fnn_bias_act_f(float* z, float* a, const float* b, intp m, intp n, int act,
                        float slope)
    void fnn_act_grad_d(const double* da, const double* g, double* out, intp n, int act,
                        double slope)
    void fnn_act_grad_f(const float* da, const float* g, float* out, intp n, int act,
                        float slope)
    void fnn_column_sums_d(const double* x, double* s, intp m, intp n)
    void fnn_column_sums_f(const float* x, float* s, intp m, intp n)
    void fnn_act_grad_sums_d(const double* da, const double* g, double* out, double* s,
                             intp m, intp n, int act, double slope)
    void fnn_act_grad_sums_f(const float* da, const float* g, float* out, float* s, intp m,
                             intp n, int act, float slope)
    const char* fnn_vector_build()
    const char* fnn_adam_divide()
    const char* const fnn_vector_builds[]
    const char* const fnn_adam_ways[]
    int fnn_cpu_build()
    enum:
        FNN_BUILD_AVX512
        FNN_BUILDS
        FNN_ADAM_WAYS
        FNN_GEMM_SCRATCH  # bytes of scratch that fnn_gemm packs B into
        FNN_ADAM_PERIOD  # values of fnn_adam's round of vectors (see _vector_kernels.h)
    void fnn_gemm_d(intp m, intp n, intp k, const double* a, intp ars, intp acs,
                    const double* b, intp brs, intp bcs, double* c, intp ldc, void* scratch)
    void fnn_gemm_f(intp m, intp n, intp k, const float* a, intp ars, intp acs,
                    const float* b, intp brs, intp bcs, float* c, intp ldc, void* scratch)
    void fnn_gemv_d(intp n, intp k, const double* a, const double* x, const double* b,
                    double* y, double* out, int act, double slope)
    void fnn_gemv_f(intp n, intp k, const float* a, const float* x, const float* b,
                    float* y, float* out, int act, float slope)


# ---------------------------------------------------------------- codes
# Activations: FNN_* of _vector.h, whose narrow kernels apply the first five
# themselves (_gated); a new activation takes the next code here and is applied by
# _activate and _activation_grad on every path.

cdef enum:
    OUT_SIGMOID = 0     # sigmoid + binary cross-entropy
    OUT_SOFTMAX = 1     # softmax + cross-entropy
    OUT_IDENTITY = 2    # identity + mean squared error
    OUT_POISSON = 3     # exp + Poisson deviance (log link)

cdef enum:
    SGD = 0             # hyper: ()
    MOMENTUM = 1        # hyper: (momentum,)
    NESTEROV = 2        # hyper: (momentum,)
    ADAM = 3            # hyper: (beta1, beta2, eps)
    MAX_HYPER = 3       # the longest hyper
    MAX_STATES = 2      # the most state arrays (Adam's m and v)


cdef struct Optim:
    int kind            # SGD, MOMENTUM, NESTEROV or ADAM
    double lr
    double weight_decay # L2, applied to weights only
    bint decay_per_sample  # weight_decay is divided by the batch's total weight
    double hyper[MAX_HYPER]  # the optimizer's own settings, in the order above
    long t              # the number of the step being made, from 1


# ---------------------------------------------------------------- scalar maths

cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating _log1p(floating x) noexcept nogil:
    if floating is float:
        return log1pf(x)
    else:
        return log1p(x)


cdef inline void _tanh(const floating* z, floating* a, intp n) noexcept nogil:
    """a = tanh(z) over n values, in vector registers (see _vector.h)."""
    if floating is float:
        fnn_tanh_f(z, a, n)
    else:
        fnn_tanh_d(z, a, n)


cdef inline void _sigmoid(const floating* z, floating* a, intp n) noexcept nogil:
    """a = 1 / (1 + e^-z) over n values, as (1 or e) / (1 + e) with e = exp(-|z|) (which
    never overflows), in vector registers (see _vector.h)."""
    if floating is float:
        fnn_sigmoid_f(z, a, n)
    else:
        fnn_sigmoid_d(z, a, n)


cdef inline double _bce_values(const floating* z, const floating* y, floating* a,
                               floating* dz, intp n, floating scale) noexcept nogil:
    """Over n logits z and targets y: a = sigmoid(z), dz = (a - y) scale; returns the
    sum of the losses max(z, 0) - z y + log(1 + exp(-|z|)), in vector registers."""
    if floating is float:
        return fnn_sigmoid_bce_f(z, y, a, dz, n, scale)
    else:
        return fnn_sigmoid_bce_d(z, y, a, dz, n, scale)


# ---------------------------------------------------------------- activations

cdef inline bint _gated(int act) noexcept nogil:
    """Whether _vector.h's kernels apply act and act' themselves (the first five codes;
    a code past them gets the generic loops of _bias_activate and _activation_grad)."""
    return act == IDENTITY or act == SIGMOID or act == TANH or act == RELU \
        or act == LEAKY_RELU


cdef inline bint _stored_with_z(int act) noexcept nogil:
    """Whether the kernels that store Z (fnn_bias_act, fnn_gemv) can store a = act(z)
    in the same pass: identity, relu and leaky_relu."""
    return act == IDENTITY or act == RELU or act == LEAKY_RELU


cdef inline void _bias_activate(floating* z, floating* a, const floating* b, intp m,
                                intp n, int act, floating slope) noexcept nogil:
    """Over m rows of n values: z += b in each row (b may be NULL), then a = g(z)
    elementwise (a may be z); in vector registers (_vector.h)."""
    cdef intp i
    cdef bint fused = _stored_with_z(act)  # in one pass
    cdef floating* out = a if fused else z  # else the bias alone, the activation after
    if floating is float:
        fnn_bias_act_f(z, out, b, m, n, act if fused else IDENTITY, slope)
    else:
        fnn_bias_act_d(z, out, b, m, n, act if fused else IDENTITY, slope)
    if act == SIGMOID:
        _sigmoid(z, a, m * n)
    elif act == TANH:
        _tanh(z, a, m * n)
    elif not _gated(act):  # the last branch: leaky_relu's formula
        for i in range(m * n):
            a[i] = z[i] * (1 if z[i] > 0 else slope)


cdef inline void _activate(const floating* z, floating* a, intp n, int act,
                    floating slope) noexcept nogil:
    """a = g(z) elementwise over n values (a may be z)."""
    _bias_activate(<floating*> z, a, NULL, 1, n, act, slope)  # z is not written


cdef inline const floating* _derivative_input(const floating* z, const floating* a,
                                              int act) noexcept nogil:
    """What g'(z) is computed from: the cached output a for sigmoid (a (1 - a)) and
    tanh (1 - a^2), z for the others."""
    return a if act == SIGMOID or act == TANH else z


cdef inline void _activation_grad(const floating* da, const floating* z, const floating* a,
                           floating* out, intp n, int act, floating slope) noexcept nogil:
    """out = da * g'(z) elementwise; out may alias da; in vector registers (_vector.h).

    sigmoid' = a (1 - a) and tanh' = 1 - a^2 come from the cached output a;
    relu' and leaky_relu' from z (the derivative at exactly 0 is that of z < 0).
    """
    cdef intp i
    cdef const floating* g = _derivative_input(z, a, act)
    if not _gated(act):  # the last branch: leaky_relu's derivative
        for i in range(n):
            out[i] = da[i] * (1 if z[i] > 0 else slope)
    elif floating is float:
        fnn_act_grad_f(da, g, out, n, act, slope)
    else:
        fnn_act_grad_d(da, g, out, n, act, slope)


cdef inline void _column_sums(const floating* x, floating* s, intp m, intp n) noexcept nogil:
    """s (n,) = the sums of the m rows of x (m, n), in row order (_vector.h)."""
    if floating is float:
        fnn_column_sums_f(x, s, m, n)
    else:
        fnn_column_sums_d(x, s, m, n)


cdef inline void _activation_grad_sums(const floating* da, const floating* z,
                                       const floating* a, floating* out, floating* s,
                                       intp m, intp n, int act,
                                       floating slope) noexcept nogil:
    """_activation_grad over m rows of n values and s (n,) = the column sums of out
    (_column_sums' bits: the db of the layer whose dZ out is), in one pass for the
    activations of _gated."""
    if not _gated(act):
        _activation_grad(da, z, a, out, m * n, act, slope)
        _column_sums(out, s, m, n)
    elif floating is float:
        fnn_act_grad_sums_f(da, _derivative_input(z, a, act), out, s, m, n, act, slope)
    else:
        fnn_act_grad_sums_d(da, _derivative_input(z, a, act), out, s, m, n, act, slope)


# ---------------------------------------------------------------- dense layer

cdef enum:
    THIN_UNITS = 16  # a layer with at most this many outputs or inputs is thin
    # a GEMM layer with at most this many weights computes Z from a transposed copy of W
    # (where fnn_gemm does not take the product)
    TRANSPOSED_MAX = 16384
    # products of more multiply-adds than this (and 8 rows or more) go to fnn_gemm
    OWN_GEMM_MIN = 131072
    # ... unless C has more bytes than this and k more values than one block of B
    # (FNN_GEMM_KC in _gemm_kernels.h: FNN_GEMM_PACK_BYTES over B's 256-byte pack rows)
    OWN_GEMM_C_MAX = 2097152
    OWN_GEMM_ONE_BLOCK = 128


cdef inline bint _transposed_forward(intp n_in, intp n_out) noexcept nogil:
    """Whether _dense_forward takes Z = A_prev (W^T) from a copy of W^T made for the
    call, when BLAS takes the product: for GEMM layers (not thin) of at most
    TRANSPOSED_MAX weights. Row-major A_prev W^T is OpenBLAS's TN case, whose
    small-matrix kernels it refuses for these shapes, packing both operands instead:
    measured 7.1 against 3.9 us for 32x64x64 (NN, the copy included: 5.5), 28 against
    17 (19) for 100x64x100; no gain from 256x256 weights up, where the copy costs more
    than it saves."""
    return n_out > THIN_UNITS and n_in > THIN_UNITS and n_out * n_in <= TRANSPOSED_MAX


cdef inline size_t _scratch_bytes(intp n_in, intp n_out, size_t itemsize) noexcept nogil:
    """The scratch _dense_forward and _dense_backward may use for a layer: fnn_gemm's
    packed blocks, or the copy of W^T (_transposed_forward); none for thin layers."""
    if n_out <= THIN_UNITS or n_in <= THIN_UNITS:
        return 0
    if _transposed_forward(n_in, n_out):
        return max(<size_t> FNN_GEMM_SCRATCH, n_in * n_out * itemsize)
    return FNN_GEMM_SCRATCH


cdef inline bint _own_gemm(intp m, intp n, intp k, const void* scratch,
                           size_t item) noexcept nogil:
    """Whether C (m, n) = A (m, k) B of item-byte values goes to fastnn's own product,
    fnn_gemm: in the AVX-512 build (the only one that has it), given a scratch, for
    products of more than OWN_GEMM_MIN multiply-adds and 8 rows or more, and C of at
    most OWN_GEMM_C_MAX bytes or k in one block of B's rows. There it beats OpenBLAS
    by not packing A (and B once per call): 1.2-1.5x on the tabular and digits shapes
    (64x256x256, 256x256x64 from A^T, 200x100x64 from W^T), measured one-threaded on
    this CPU; below, OpenBLAS's small-matrix kernels, which pack nothing, win (0.7-0.9x
    at 32x64x64 and 64x64x32), and a few rows do not pay for packing B. Above, where C
    leaves L2 and is swept once per block of k, OpenBLAS's cache blocking wins (float64
    in C: 0.75x at 512x2048x1024, 0.56x at 2048x1024x512 from A^T; level at 2 MB,
    256x1024x1024)."""
    return (scratch != NULL and fnn_cpu_build() == FNN_BUILD_AVX512 and m >= 8
            and m * n * k > OWN_GEMM_MIN
            and (m * n * <intp> item <= OWN_GEMM_C_MAX or k <= OWN_GEMM_ONE_BLOCK))


cdef inline void _own_product(intp m, intp n, intp k, const floating* a, intp ars,
                              intp acs, const floating* b, intp brs, intp bcs,
                              floating* c, intp ldc, void* scratch) noexcept nogil:
    """C (m, n) = A (m, k) B (k, n) by fnn_gemm: A(i, p) at a[i ars + p acs], B(p, j)
    at b[p brs + j bcs], C row-major (_gemm_kernels.h)."""
    if floating is float:
        fnn_gemm_f(m, n, k, a, ars, acs, b, brs, bcs, c, ldc, scratch)
    else:
        fnn_gemm_d(m, n, k, a, ars, acs, b, brs, bcs, c, ldc, scratch)


cdef inline bint _own_gemv(intp m) noexcept nogil:
    """Whether a GEMM layer's Z (m, n_out) = A_prev W^T + b goes to fastnn's own
    matrix-vector product, fnn_gemv: in the AVX-512 build (the only one that has it),
    for one row. The one-sample prediction of [64, 64, 64, 10] took 1.23 us in float64
    with OpenBLAS's gemv, 0.94 with it (0.87 and 0.67 in float32; [64, 256, 256, 10]
    8.4 and 6.3 us); from two rows OpenBLAS's small-matrix kernels win (0.40 against
    0.51 us for 2x64x64)."""
    return m == 1 and fnn_cpu_build() == FNN_BUILD_AVX512


cdef inline void _gemv(const floating* w, const floating* x, const floating* b,
                       floating* y, floating* a, intp n_out, intp n_in, int act,
                       floating slope) noexcept nogil:
    """y (n_out) = W x + b by fnn_gemv, for W (n_out, n_in) row-major (_gemm_kernels.h),
    and a = act(y) unless a is NULL (identity, relu and leaky_relu only)."""
    if floating is float:
        fnn_gemv_f(n_out, n_in, w, x, b, y, a, act, slope)
    else:
        fnn_gemv_d(n_out, n_in, w, x, b, y, a, act, slope)


cdef inline void _thin_dots(const floating* L, const floating* R, const floating* bias,
                            floating* C, intp m, intp K, intp J) noexcept nogil:
    """C (m, J) = L (m, K) R^T + bias for R (J, K), J small (_vector.h)."""
    if floating is float:
        fnn_thin_dots_f(L, R, bias, C, m, K, J)
    else:
        fnn_thin_dots_d(L, R, bias, C, m, K, J)


cdef inline void _thin_gram(const floating* L, const floating* R, floating* G, intp m,
                            intp J, intp N, bint transposed) noexcept nogil:
    """G (J, N) = L^T R for L (m, J), J small; stored (N, J) when transposed."""
    if floating is float:
        fnn_thin_gram_f(L, R, G, m, J, N, transposed)
    else:
        fnn_thin_gram_d(L, R, G, m, J, N, transposed)


cdef inline void _thin_combine(const floating* L, const floating* R, intp r_row, intp r_col,
                               const floating* bias, floating* C, intp m, intp K,
                               intp N) noexcept nogil:
    """C (m, N) = L (m, K) R + bias, R[k][c] at k r_row + c r_col, K <= THIN_UNITS."""
    if floating is float:
        fnn_thin_combine_f(L, R, r_row, r_col, bias, C, m, K, N)
    else:
        fnn_thin_combine_d(L, R, r_row, r_col, bias, C, m, K, N)


cdef inline void _dense_forward(const floating* a_prev, const floating* w, const floating* b,
                         floating* z, floating* a, intp m, intp n_in, intp n_out,
                         int act, floating slope, void* scratch) noexcept nogil:
    """Z = A_prev W^T + b, then the activation over Z: a product (fnn_gemm or BLAS),
    then the bias with the activation, or for a thin layer (few outputs or few inputs)
    or a single row, vector loops that add the bias themselves. scratch: NULL, or
    _scratch_bytes of the layer for fnn_gemm or BLAS through a copy of W^T."""
    cdef const floating* bias = NULL  # still to add
    cdef floating* wt = <floating*> scratch
    if n_out <= THIN_UNITS:  # dot products along n_in
        _thin_dots(a_prev, w, b, z, m, n_in, n_out)
    elif n_in <= THIN_UNITS:  # sums of the n_in rows of W^T
        _thin_combine(a_prev, w, 1, n_in, b, z, m, n_in, n_out)
    elif _own_gemv(m):  # one row: fnn_gemv, which adds the bias itself
        if _stored_with_z(act):  # and applies act (identity into z itself: nothing)
            _gemv(w, a_prev, b, z, NULL if act == IDENTITY and a == z else a, n_out, n_in,
                  act, slope)
            return
        _gemv(w, a_prev, b, z, NULL, n_out, n_in, act, slope)
    else:
        bias = b
        if _own_gemm(m, n_out, n_in, scratch, sizeof(floating)):
            _own_product(m, n_out, n_in, a_prev, n_in, 1, w, 1, n_in, z, n_out, scratch)
        elif scratch != NULL and m > 1 and _transposed_forward(n_in, n_out):
            _transpose(w, wt, n_out, n_in, n_in, n_out)
            gemm(False, False, <int> m, <int> n_out, <int> n_in, <floating> 1, a_prev,
                 <int> n_in, wt, <int> n_out, <floating> 0, z, <int> n_out)
        else:
            gemm(False, True, <int> m, <int> n_out, <int> n_in, <floating> 1, a_prev,
                 <int> n_in, w, <int> n_in, <floating> 0, z, <int> n_out)
    _bias_activate(z, a, bias, m, n_out, act, slope)


cdef inline void _dense_backward(const floating* dz, const floating* a_prev, const floating* w,
                          floating* dw, floating* da_prev, intp m, intp n_in, intp n_out,
                          void* scratch) noexcept nogil:
    """dW = dZ^T A_prev and dA_prev = dZ W (skipped if NULL), db being the caller's
    (_column_sums of dZ, or with dZ itself by _activation_grad_sums); a thin layer's
    products in vector loops (dA_prev of a layer of few inputs by a product), the
    others by fnn_gemm or BLAS (scratch as for _dense_forward)."""
    if n_out <= THIN_UNITS:
        _thin_gram(dz, a_prev, dw, m, n_out, n_in, False)
    elif n_in <= THIN_UNITS:  # dW^T = A_prev^T dZ, stored transposed
        _thin_gram(a_prev, dz, dw, m, n_in, n_out, True)
    elif _own_gemm(n_out, n_in, m, scratch, sizeof(floating)):
        _own_product(n_out, n_in, m, dz, 1, n_out, a_prev, n_in, 1, dw, n_in, scratch)
    else:
        gemm(True, False, <int> n_out, <int> n_in, <int> m, <floating> 1, dz,
             <int> n_out, a_prev, <int> n_in, <floating> 0, dw, <int> n_in)
    if da_prev == NULL:
        return
    if n_out <= THIN_UNITS:
        _thin_combine(dz, w, n_in, 1, NULL, da_prev, m, n_out, n_in)
    elif n_in > THIN_UNITS and _own_gemm(m, n_in, n_out, scratch, sizeof(floating)):
        _own_product(m, n_in, n_out, dz, n_out, 1, w, n_in, 1, da_prev, n_in, scratch)
    else:
        gemm(False, False, <int> m, <int> n_in, <int> n_out, <floating> 1, dz,
             <int> n_out, w, <int> n_in, <floating> 0, da_prev, <int> n_in)


# ---------------------------------------------------------------- small layers
# Narrow layers on a batch are a poor fit for GEMM: for [2, 10, 5, 1] on 300
# samples each BLAS call spends more time packing than multiplying. The engine
# then keeps every activation feature-major (one row of m values per unit, the
# transpose of the usual layout), so that every product runs along the long batch
# dimension, in the register-blocked loops of _vector.h. Each row starts on a 64-byte
# line (_row_stride), so elementwise passes over them go row by row.

cdef enum:
    # Feature-major beats GEMM (measured on [2, 10, 5, 1] to [32, 32, 32, 10], batches
    # 16 to 1,000) when every width, input included, spans at most 96 bytes (12 doubles,
    # 24 floats) and the batch has 16 rows or more.
    NARROW_BYTES = 96
    NARROW_MIN = 16


cdef inline intp _row_stride(intp m, size_t itemsize) noexcept nogil:
    """The row stride of feature-major arrays of m values a row: m rounded up to a
    multiple of 64 bytes, so that a row starting at a multiple of 64 bytes (the
    workspaces do) has every full vector of the kernels inside one cache line."""
    cdef intp per_line = 64 // itemsize
    return (m + per_line - 1) // per_line * per_line


cdef inline void _transpose(const floating* src, floating* dst, intp rows, intp cols,
                            intp src_stride, intp dst_stride) noexcept nogil:
    """dst (cols, rows) = src (rows, cols)^T, where row i of src starts at
    src + i src_stride and row j of dst at dst + j dst_stride; in vector registers
    (blocks transposed in registers, or gathers: _vector_kernels.h)."""
    if floating is float:
        fnn_transpose_f(src, dst, rows, cols, src_stride, dst_stride)
    else:
        fnn_transpose_d(src, dst, rows, cols, src_stride, dst_stride)


cdef inline void _narrow_product(const floating* w, intp w_row, intp w_col,
                                 const floating* b, const floating* src, floating* dst,
                                 intp n_out, intp n_in, intp m, intp ld,
                                 const floating* gate, int act, floating slope) noexcept nogil:
    """dst (n_out, m) = act(V src + b) for src (n_in, m), V[j, k] = w[j w_row + k w_col]
    (V = W for the forward pass, W^T for dA_prev), act identity, relu or leaky_relu;
    b may be NULL (no bias); rows ld apart. With gate, dst gets act'(z) times that (see
    _vector.h)."""
    if floating is float:
        fnn_narrow_product_f(w, w_row, w_col, b, src, dst, n_out, n_in, m, ld, gate, act,
                             slope)
    else:
        fnn_narrow_product_d(w, w_row, w_col, b, src, dst, n_out, n_in, m, ld, gate, act,
                             slope)


cdef inline bint _reads_z(int act, floating slope) noexcept nogil:
    """Whether the narrow path keeps z for act'(z): the gated derivatives come from
    a = act(z) (relu's and leaky_relu's as a > 0, which is z > 0 for a slope >= 0)."""
    return (act == LEAKY_RELU and slope < 0) or not _gated(act)


cdef inline void _narrow_dense_forward(const floating* a_prev, const floating* w,
                                const floating* b, floating* z, floating* a, intp m,
                                intp ld, intp n_in, intp n_out, int act,
                                floating slope) noexcept nogil:
    """_dense_forward, feature-major: a_prev (n_in, m), z and a (n_out, m), rows ld
    apart. Identity, ReLU and leaky ReLU are applied as Z leaves the registers, and then
    Z is not kept unless the derivative needs it (_reads_z); the others in a pass over
    each row of Z after."""
    cdef intp r
    if (act == IDENTITY or act == RELU or act == LEAKY_RELU) and not _reads_z(act, slope):
        _narrow_product(w, n_in, 1, b, a_prev, a, n_out, n_in, m, ld, NULL, act, slope)
    else:
        _narrow_product(w, n_in, 1, b, a_prev, z, n_out, n_in, m, ld, NULL, IDENTITY,
                        slope)
        for r in range(n_out):
            _activate(z + r * ld, a + r * ld, m, act, slope)


cdef inline void _narrow_dense_backward(const floating* dz, const floating* a_prev,
                                 const floating* w, floating* dw, floating* db,
                                 floating* dz_prev, const floating* z_prev, int act_prev,
                                 floating slope, intp m, intp ld, intp n_in,
                                 intp n_out) noexcept nogil:
    """_dense_backward, feature-major (dz (n_out, m), a_prev (n_in, m), rows ld apart),
    and then straight to dZ_prev = (dZ W) * act_prev'(z_prev) (n_in, m) unless dz_prev
    is NULL: the activation's derivative is applied as dA_prev leaves the registers."""
    cdef intp r
    if floating is float:
        fnn_narrow_weight_grads_f(dz, a_prev, dw, db, n_out, n_in, m, ld)
    else:
        fnn_narrow_weight_grads_d(dz, a_prev, dw, db, n_out, n_in, m, ld)
    if dz_prev == NULL:
        return
    if _gated(act_prev):
        _narrow_product(w, 1, n_in, NULL, dz, dz_prev, n_in, n_out, m, ld,
                        z_prev if _reads_z(act_prev, slope) else a_prev, act_prev, slope)
    else:
        _narrow_product(w, 1, n_in, NULL, dz, dz_prev, n_in, n_out, m, ld, NULL, IDENTITY,
                        slope)
        for r in range(n_in):
            _activation_grad(dz_prev + r * ld, z_prev + r * ld, a_prev + r * ld,
                             dz_prev + r * ld, m, act_prev, slope)


# ---------------------------------------------------------------- output + loss
# Each writes the output activation A and dZ = dLoss/dZ, and returns the loss,
# accumulated in double. The loss is the weighted mean over the m rows of each row's
# loss l_i: sum_i w_i l_i / norm, where w_i are the row weights (1 when w is NULL) and
# norm is their sum (m when w is NULL; the caller passes norm > 0). For the
# elementwise outputs (sigmoid, identity, poisson) l_i is the mean over the row's k
# elements. A weighted sum adds l_i (w_i / norm): each row's share is divided first,
# so that weights of any scale keep their ratios (the engine flushes subnormal numbers
# to zero: w_i l_i would vanish for weights near the smallest normal number).

cdef inline double _row_share(const floating* w, intp i, double inv,
                              double denom) noexcept nogil:
    """Row i's share of the loss, w_i / denom, or inv = 1 / denom when there are no
    weights (divided, not multiplied by inv, so that tiny weights, whose 1 / denom
    overflows, keep their ratios): its dZ's scale (rounded to the dtype) and, with
    weights, its loss term's factor."""
    return inv if w == NULL else w[i] / denom


cdef inline double _sigmoid_bce(const floating* z, const floating* y, const floating* w,
                                double norm, floating* a, floating* dz, intp m,
                                intp k) noexcept nogil:
    """Binary cross-entropy from logits, in one pass in vector registers (_vector.h).

    With e = exp(-|z|) (never overflows): l = max(z, 0) - z y + log(1 + e),
    sigmoid(z) = 1 / (1 + e) for z >= 0 and e / (1 + e) below;
    dZ = w_i (sigmoid(z) - y) / (norm k). Without weights all rows go in one call.
    """
    cdef intp i
    cdef double total = 0, denom = norm * k, share
    cdef double inv = 1.0 / denom
    if w == NULL:
        return _bce_values(z, y, a, dz, m * k, <floating> inv) / denom
    for i in range(m):
        share = _row_share(w, i, inv, denom)
        total += share * _bce_values(z + i * k, y + i * k, a + i * k, dz + i * k, k,
                                     <floating> share)
    return total


cdef inline floating _softmax_row(const floating* z, floating* p, intp k,
                           floating* log_sum) noexcept nogil:
    """p = softmax(z) over one row (fnn_softmax_row, _vector.h). Returns zmax and sets
    *log_sum = log(sum e^(z - zmax)), so that log softmax(z)_j = (z_j - zmax) - log_sum:
    no cancellation against zmax; as log1p of the sum past the maximum's 1, none in a
    loss near 0 either."""
    cdef floating rest, zmax
    if floating is float:
        zmax = fnn_softmax_row_f(z, p, k, &rest)
    else:
        zmax = fnn_softmax_row_d(z, p, k, &rest)
    log_sum[0] = _log1p(rest)
    return zmax


cdef inline double _softmax_ce_labels(const floating* z, const intp* labels,
                                      const floating* w, double norm, floating* p,
                                      floating* dz, intp m, intp k) noexcept nogil:
    """Cross-entropy of softmax(z) against class labels.

    l_i = lse(z_i) - z_i[y_i];  dZ = w_i (softmax(z) - onehot(y)) / norm.
    """
    cdef intp i, j, c
    cdef floating scale, zmax, log_sum
    cdef double total = 0, denom = norm, inv = 1.0 / norm, share
    for i in range(m):
        c = labels[i]  # read once and bounded here: the caller's check cannot be trusted
        if c < 0 or c >= k:  # against another thread changing the labels meanwhile
            return NAN
        share = _row_share(w, i, inv, denom)
        scale = <floating> share
        zmax = _softmax_row(z + i * k, p + i * k, k, &log_sum)
        total += (log_sum - (z[i * k + c] - zmax)) * (1 if w == NULL else share)
        for j in range(k):
            dz[i * k + j] = p[i * k + j] * scale
        dz[i * k + c] -= scale
    return total / denom if w == NULL else total


cdef inline double _softmax_ce_probs(const floating* z, const floating* y,
                                     const floating* w, double norm, floating* p,
                                     floating* dz, intp m, intp k) noexcept nogil:
    """Cross-entropy of softmax(z) against target rows y (one-hot or soft).

    l_i = sum_j y_ij (lse(z_i) - z_ij);  dZ = w_i (softmax(z) sum_j y_ij - y) / norm.
    """
    cdef intp i, j
    cdef floating scale, zmax, log_sum, ysum
    cdef double total = 0, row, denom = norm, inv = 1.0 / norm, share
    for i in range(m):
        share = _row_share(w, i, inv, denom)
        scale = <floating> share
        zmax = _softmax_row(z + i * k, p + i * k, k, &log_sum)
        ysum = 0
        row = 0
        for j in range(k):
            row += y[i * k + j] * (log_sum - (z[i * k + j] - zmax))
            ysum += y[i * k + j]
        total += row if w == NULL else share * row
        for j in range(k):
            dz[i * k + j] = (p[i * k + j] * ysum - y[i * k + j]) * scale
    return total / denom if w == NULL else total


cdef inline double _identity_mse(const floating* z, const floating* y, const floating* w,
                                 double norm, floating* a, floating* dz, intp m,
                                 intp k) noexcept nogil:
    """Squared error: l = (z - y)^2, A = Z, dZ = 2 w_i (z - y) / (norm k)."""
    cdef intp i, e
    cdef floating r, scale
    cdef double total = 0, row, denom = norm * k, inv = 1.0 / denom, share
    for i in range(m):
        share = _row_share(w, i, inv, denom)
        scale = 2 * <floating> share
        row = 0
        for e in range(i * k, i * k + k):
            r = z[e] - y[e]
            row += (<double> r) * r  # squared in double: float32 squares overflow at 1.8e19
            a[e] = z[e]
            dz[e] = r * scale
        total += row if w == NULL else share * row
    return total / denom if w == NULL else total


cdef inline double _poisson(const floating* z, const floating* y, const floating* w,
                            double norm, floating* a, floating* dz, intp m,
                            intp k) noexcept nogil:
    """Poisson deviance / 2 with the log link: A = exp(z),
    l = exp(z) - y z + y log y - y (0 at exp(z) = y; y log y = 0 at y = 0),
    dZ = w_i (exp(z) - y) / (norm k). Targets y >= 0."""
    cdef intp i, e
    cdef floating scale
    cdef double total = 0, row, denom = norm * k, inv = 1.0 / denom, share
    for i in range(m):
        share = _row_share(w, i, inv, denom)
        scale = <floating> share
        row = 0
        for e in range(i * k, i * k + k):
            a[e] = _exp(z[e])
            row += (<double> a[e]) - (<double> y[e]) * z[e] - y[e]
            if y[e] > 0:
                row += (<double> y[e]) * log(<double> y[e])
            dz[e] = (a[e] - y[e]) * scale
        total += row if w == NULL else share * row
    return total / denom if w == NULL else total


# ---------------------------------------------------------------- optimizer updates
# One pass over a parameter. L2 weight decay adds wd * p to the gradient, so that
# it is the gradient of loss + 0.5 wd ||p||^2 (pass wd = 0 for biases).

cdef inline void _sgd(floating* p, const floating* g, intp n, floating lr,
               floating wd) noexcept nogil:
    """p -= lr (g + wd p)."""
    cdef intp i
    for i in range(n):
        p[i] -= lr * (g[i] + wd * p[i])


cdef inline void _momentum(floating* p, const floating* g, floating* v, intp n, floating lr,
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


cdef inline bint _adam(floating* p, const floating* g, floating* m1, floating* m2, intp n,
                double lr, double beta1, double beta2, double eps, long t,
                floating wd) noexcept nogil:
    """Adam (Kingma and Ba) with bias correction at step t >= 1, PyTorch's arithmetic:

    m1 = b1 m1 + (1 - b1) g';  m2 = b2 m2 + (1 - b2) g'^2;
    p -= (lr / (1 - b1^t)) m1 / (sqrt(m2) (1 / sqrt(1 - b2^t)) + eps);

    in one pass in vector registers (_vector_kernels.h; with AVX-512 the square root and
    the division may come from estimates refined on the multiply-add units). Returns
    whether a new p is infinite or NaN, as the pass writes them."""
    cdef floating step = lr / (1 - beta1 ** t)
    cdef floating inv_root_bc2 = 1 / sqrt(1 - beta2 ** t)  # one division per element
    if floating is float:
        return fnn_adam_f(p, g, m1, m2, n, step, beta1, beta2, 1 - beta1, 1 - beta2,
                          inv_root_bc2, eps, wd)
    else:
        return fnn_adam_d(p, g, m1, m2, n, step, beta1, beta2, 1 - beta1, 1 - beta2,
                          inv_root_bc2, eps, wd)


cdef inline bint _add_into(floating* dst, const floating* src, intp n) noexcept nogil:
    """dst += src over n values; whether any sum is NaN or infinite (same pass)."""
    if floating is float:
        return fnn_add_into_f(dst, src, n)
    else:
        return fnn_add_into_d(dst, src, n)


cdef inline double _sum_squares(const floating* x, intp n) noexcept nogil:
    """sum of x^2 over n values, in double, in a fixed order (_vector.h)."""
    if floating is float:
        return fnn_sum_squares_f(x, n)
    else:
        return fnn_sum_squares_d(x, n)


cdef inline intp _first_nonfinite(const void* data, intp n, bint single) noexcept nogil:
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


# ---------------------------------------------------------------- dispatch by code

cdef inline double _output_loss(int output, const floating* z, const floating* y,
                                const intp* labels, const floating* w, double norm,
                                floating* out, floating* dz, intp m, intp k) noexcept nogil:
    """The fused output+loss kernel of an output (OUT_*) on logits z (m, k): out gets
    the probabilities or values, dz the gradient of the loss; returns the loss, the
    mean over rows weighted by w (NULL: unweighted) and divided by norm (their sum,
    or m). Softmax reads class labels when labels is not NULL, target rows y
    otherwise."""
    if output == OUT_SIGMOID:
        return _sigmoid_bce(z, y, w, norm, out, dz, m, k)
    if output == OUT_IDENTITY:
        return _identity_mse(z, y, w, norm, out, dz, m, k)
    if output == OUT_POISSON:
        return _poisson(z, y, w, norm, out, dz, m, k)
    if labels != NULL:
        return _softmax_ce_labels(z, labels, w, norm, out, dz, m, k)
    return _softmax_ce_probs(z, y, w, norm, out, dz, m, k)


cdef inline void _output_activation(int output, const floating* z, floating* out, intp m,
                                    intp k) noexcept nogil:
    """out (m, k) = the output's probabilities or values for logits z; out may be z."""
    cdef intp i
    cdef floating log_sum
    if output == OUT_SOFTMAX:
        for i in range(m):
            _softmax_row(z + i * k, out + i * k, k, &log_sum)
    elif output == OUT_POISSON:
        for i in range(m * k):
            out[i] = _exp(z[i])
    else:
        _activate(z, out, m * k, SIGMOID if output == OUT_SIGMOID else IDENTITY,
                  <floating> 0)


cdef inline int _optimizer_reads(int kind, int* n_hyper) noexcept nogil:
    """How many state arrays the update of an optimizer code reads (and in *n_hyper
    how many hyper settings), or -1 for a code it does not know."""
    if kind == SGD:
        n_hyper[0] = 0
        return 0
    if kind == MOMENTUM or kind == NESTEROV:
        n_hyper[0] = 1
        return 1
    if kind == ADAM:
        n_hyper[0] = 3
        return 2
    return -1


cdef inline bint _update(const Optim* opt, floating* p, const floating* g,
                         floating** states, intp at, intp n, double wd) noexcept nogil:
    """The optimizer's update of the n parameters p (gradient g), whose state arrays
    start at states[i] + at; wd is the weight decay (0 for biases). Returns whether it
    overflowed (a new p infinite or NaN): Adam's pass tells, SGD's and momentum's
    results are scanned."""
    if opt.kind == ADAM:
        return _adam(p, g, states[0] + at, states[1] + at, n, opt.lr, opt.hyper[0],
                     opt.hyper[1], opt.hyper[2], opt.t, <floating> wd)
    if opt.kind == SGD:
        _sgd(p, g, n, <floating> opt.lr, <floating> wd)
    else:
        _momentum(p, g, states[0] + at, n, <floating> opt.lr, <floating> opt.hyper[0],
                  <floating> wd, opt.kind == NESTEROV)
    return _first_nonfinite(p, n, sizeof(floating) == 4) >= 0
