/* The kernels of _vector.h for one element type FNN_T (with the integer type FNN_I of the
 * same size) and one vector width FNN_BYTES, compiled with FNN_TARGET: included once per
 * build. Arrays are feature-major: row r of an (n, m) array starts at r * m. */

#define FNN_V FNN_NAME(fnn_vector)
#define FNN_IV FNN_NAME(fnn_mask)
typedef FNN_VECTOR(FNN_T, FNN_BYTES) FNN_V;
typedef FNN_VECTOR(FNN_I, FNN_BYTES) FNN_IV;
#define FNN_LANES ((ptrdiff_t) (sizeof(FNN_V) / sizeof(FNN_T)))
#define FNN_WIDE (4 * FNN_LANES)  /* samples per block: four vector accumulators */

/* The first n (<= FNN_LANES) values at p as a vector, the others 0; unaligned. */
FNN_INLINE FNN_TARGET FNN_V FNN_NAME(fnn_load)(const FNN_T* p, ptrdiff_t n) {
    FNN_V v = {0};
    FNN_T lanes[sizeof(FNN_V) / sizeof(FNN_T)] = {0};
    ptrdiff_t t;
    if (n == FNN_LANES) {
        memcpy(&v, p, sizeof v);  /* one vector load */
        return v;
    }
    for (t = 0; t < n; t++)
        lanes[t] = p[t];
    memcpy(&v, lanes, sizeof v);
    return v;
}

FNN_INLINE FNN_TARGET void FNN_NAME(fnn_store)(FNN_T* p, FNN_V v, ptrdiff_t n) {
    FNN_T lanes[sizeof(FNN_V) / sizeof(FNN_T)];
    ptrdiff_t t;
    if (n == FNN_LANES) {
        memcpy(p, &v, sizeof v);
        return;
    }
    memcpy(lanes, &v, sizeof v);
    for (t = 0; t < n; t++)
        p[t] = lanes[t];
}

/* g > 0 ? x : y, lane by lane */
FNN_INLINE FNN_TARGET FNN_V FNN_NAME(fnn_positive)(FNN_V g, FNN_V x, FNN_V y) {
#if defined(__GNUC__)
    FNN_V zero = {0};
    FNN_IV mask = (FNN_IV) (g > zero);
    return (FNN_V) (((FNN_IV) x & mask) | ((FNN_IV) y & ~mask));
#else
    return g > 0 ? x : y;
#endif
}

/* v g'(z) for the activation act, from g = z (relu, leaky_relu) or g = a = act(z)
 * (sigmoid: a (1 - a), tanh: 1 - a^2), as _activation_grad in _kernels.pyx. With g = v,
 * relu and leaky_relu give act(v) itself. */
FNN_INLINE FNN_TARGET FNN_V FNN_NAME(fnn_gate)(FNN_V v, FNN_V g, int act, FNN_T slope) {
    FNN_V zero = {0}, one = zero + 1;
    switch (act) {
    case FNN_RELU: return FNN_NAME(fnn_positive)(g, v, zero);
    case FNN_LEAKY_RELU: return v * FNN_NAME(fnn_positive)(g, one, zero + slope);
    case FNN_SIGMOID: return v * (g * (1 - g));
    case FNN_TANH: return v * (1 - g * g);
    default: return v;
    }
}

FNN_INLINE FNN_TARGET FNN_T FNN_NAME(fnn_lanes_sum)(FNN_V v) {
    FNN_T lanes[sizeof(FNN_V) / sizeof(FNN_T)], total = 0;
    ptrdiff_t t;
    memcpy(lanes, &v, sizeof v);
    for (t = 0; t < FNN_LANES; t++)
        total += lanes[t];
    return total;
}

/* Stores v, the product's values for row j at [at, at + n): into dst (times act'(z) from
 * gate when there is one), and act(v) into out when there is one. */
FNN_INLINE FNN_TARGET void FNN_NAME(fnn_emit)(FNN_V v, ptrdiff_t at, ptrdiff_t n,
                                              FNN_T* dst, const FNN_T* gate, FNN_T* out,
                                              int act, FNN_T slope) {
    FNN_V g = gate ? FNN_NAME(fnn_load)(gate + at, n) : v;
    FNN_NAME(fnn_store)(dst + at, gate ? FNN_NAME(fnn_gate)(v, g, act, slope) : v, n);
    if (out)
        FNN_NAME(fnn_store)(out + at, FNN_NAME(fnn_gate)(v, g, act, slope), n);
}

/* fnn_narrow_product's loops, inlined once for each combination of gate or out present
 * and act, so that none of those choices is made inside them. */
FNN_INLINE FNN_TARGET void FNN_NAME(fnn_product_loops)(
        const FNN_T* w, ptrdiff_t w_row, ptrdiff_t w_col, const FNN_T* b, const FNN_T* src,
        FNN_T* dst, ptrdiff_t n_out, ptrdiff_t n_in, ptrdiff_t m, const FNN_T* gate,
        FNN_T* out, int act, FNN_T slope) {
    ptrdiff_t i = 0, j, k, n;
    for (; i + FNN_WIDE <= m; i += FNN_WIDE) {
        for (j = 0; j < n_out; j++) {
            FNN_V a0 = (FNN_V) {0} + (b ? b[j] : 0), a1 = a0, a2 = a0, a3 = a0;
            for (k = 0; k < n_in; k++) {
                const FNN_T* s = src + k * m + i;
                FNN_T v = w[j * w_row + k * w_col];
                a0 += v * FNN_NAME(fnn_load)(s, FNN_LANES);
                a1 += v * FNN_NAME(fnn_load)(s + FNN_LANES, FNN_LANES);
                a2 += v * FNN_NAME(fnn_load)(s + 2 * FNN_LANES, FNN_LANES);
                a3 += v * FNN_NAME(fnn_load)(s + 3 * FNN_LANES, FNN_LANES);
            }
            FNN_NAME(fnn_emit)(a0, j * m + i, FNN_LANES, dst, gate, out, act, slope);
            FNN_NAME(fnn_emit)(a1, j * m + i + FNN_LANES, FNN_LANES, dst, gate, out, act,
                               slope);
            FNN_NAME(fnn_emit)(a2, j * m + i + 2 * FNN_LANES, FNN_LANES, dst, gate, out, act,
                               slope);
            FNN_NAME(fnn_emit)(a3, j * m + i + 3 * FNN_LANES, FNN_LANES, dst, gate, out, act,
                               slope);
        }
    }
    for (; i < m; i += n) {  /* one vector at a time, the last one partial */
        n = m - i < FNN_LANES ? m - i : FNN_LANES;
        for (j = 0; j < n_out; j++) {
            FNN_V a0 = (FNN_V) {0} + (b ? b[j] : 0);
            for (k = 0; k < n_in; k++)
                a0 += w[j * w_row + k * w_col] * FNN_NAME(fnn_load)(src + k * m + i, n);
            FNN_NAME(fnn_emit)(a0, j * m + i, n, dst, gate, out, act, slope);
        }
    }
}

/* dst (n_out, m) = V src + b for src (n_in, m), where V[j][k] = w[j w_row + k w_col]
 * (W itself for the forward pass, W^T for dA_prev = W^T dZ); b may be NULL.
 * With gate (n_out, m), dst gets each value v times act'(z) instead, from gate as in
 * fnn_gate: dZ_prev straight from dZ. With out (relu and leaky_relu only), out gets
 * act(v) besides: Z and A of the forward pass at once. */
FNN_TARGET
static void FNN_NAME(fnn_narrow_product)(const FNN_T* w, ptrdiff_t w_row, ptrdiff_t w_col,
                                         const FNN_T* b, const FNN_T* src, FNN_T* dst,
                                         ptrdiff_t n_out, ptrdiff_t n_in, ptrdiff_t m,
                                         const FNN_T* gate, FNN_T* out, int act,
                                         FNN_T slope) {
#define FNN_LOOPS(gate, out, act) \
    FNN_NAME(fnn_product_loops)(w, w_row, w_col, b, src, dst, n_out, n_in, m, gate, out, \
                                act, slope)
    if (out)
        act == FNN_RELU ? FNN_LOOPS(NULL, out, FNN_RELU) : FNN_LOOPS(NULL, out, FNN_LEAKY_RELU);
    else if (!gate || act == FNN_IDENTITY)
        FNN_LOOPS(NULL, NULL, FNN_IDENTITY);
    else if (act == FNN_RELU)
        FNN_LOOPS(gate, NULL, FNN_RELU);
    else if (act == FNN_LEAKY_RELU)
        FNN_LOOPS(gate, NULL, FNN_LEAKY_RELU);
    else if (act == FNN_SIGMOID)
        FNN_LOOPS(gate, NULL, FNN_SIGMOID);
    else
        FNN_LOOPS(gate, NULL, FNN_TANH);
#undef FNN_LOOPS
}

/* sum_i x_i y_i over m values, or sum_i x_i when y is NULL. */
FNN_INLINE FNN_TARGET FNN_T FNN_NAME(fnn_narrow_dot)(const FNN_T* x, const FNN_T* y,
                                                     ptrdiff_t m) {
    FNN_V acc[4] = {{0}, {0}, {0}, {0}};
    ptrdiff_t i = 0, n, t;
    for (; i + FNN_WIDE <= m; i += FNN_WIDE)
        for (t = 0; t < 4; t++)
            acc[t] += FNN_NAME(fnn_load)(x + i + t * FNN_LANES, FNN_LANES)
                      * (y ? FNN_NAME(fnn_load)(y + i + t * FNN_LANES, FNN_LANES)
                           : (FNN_V) {0} + 1);
    for (; i < m; i += n) {
        n = m - i < FNN_LANES ? m - i : FNN_LANES;
        acc[0] += FNN_NAME(fnn_load)(x + i, n) * (y ? FNN_NAME(fnn_load)(y + i, n)
                                                     : (FNN_V) {0} + 1);
    }
    return FNN_NAME(fnn_lanes_sum)((acc[0] + acc[1]) + (acc[2] + acc[3]));
}

/* dw (n_out, n_in) = dz a^T and db = the row sums of dz, for dz (n_out, m) and
 * a (n_in, m): the weight gradients of a layer. */
FNN_TARGET
static void FNN_NAME(fnn_narrow_weight_grads)(const FNN_T* dz, const FNN_T* a, FNN_T* dw,
                                              FNN_T* db, ptrdiff_t n_out, ptrdiff_t n_in,
                                              ptrdiff_t m) {
    ptrdiff_t j, k;
    for (j = 0; j < n_out; j++) {
        for (k = 0; k < n_in; k++)
            dw[j * n_in + k] = FNN_NAME(fnn_narrow_dot)(dz + j * m, a + k * m, m);
        db[j] = FNN_NAME(fnn_narrow_dot)(dz + j * m, NULL, m);
    }
}

/* out_i = log(1 + x_i) for x_i in [0, 1] (the e = exp(-|z|) of the binary cross-entropy),
 * as 2 atanh(s) = 2 s (1 + s^2/3 + s^4/5 + ...) with s = x / (2 + x) <= 1/3: the terms
 * kept make the truncation error below half an ulp (s^2 <= 1/9), and s carries the
 * relative accuracy of x itself, so small x lose nothing (log1p's point). Within 3 ulp,
 * in vector registers, where libm's log1p is one scalar call per value. out may be x. */
FNN_TARGET
static void FNN_NAME(fnn_log1p_unit)(const FNN_T* x, FNN_T* out, ptrdiff_t size) {
    /* 1 / (2k + 1): 17 terms for double (9^-17 / 35 < 2^-56), 8 for float */
    static const FNN_T c[17] = {
        1.0, 1.0 / 3, 1.0 / 5, 1.0 / 7, 1.0 / 9, 1.0 / 11, 1.0 / 13, 1.0 / 15, 1.0 / 17,
        1.0 / 19, 1.0 / 21, 1.0 / 23, 1.0 / 25, 1.0 / 27, 1.0 / 29, 1.0 / 31, 1.0 / 33};
    const int terms = sizeof(FNN_T) == 8 ? 17 : 8;
    ptrdiff_t i, n;
    int k;
    for (i = 0; i < size; i += n) {
        FNN_V v, s, t, series;
        n = size - i < FNN_LANES ? size - i : FNN_LANES;
        v = FNN_NAME(fnn_load)(x + i, n);
        s = v / (v + 2);
        t = s * s;
        series = (FNN_V) {0} + c[terms - 1];
        for (k = terms - 2; k >= 0; k--)
            series = series * t + c[k];
        FNN_NAME(fnn_store)(out + i, 2 * s * series, n);
    }
}

#undef FNN_V
#undef FNN_IV
#undef FNN_LANES
#undef FNN_WIDE
