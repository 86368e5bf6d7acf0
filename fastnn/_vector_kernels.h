/* The kernels of _vector.h for one element type FNN_T and one vector width FNN_BYTES,
 * compiled with FNN_TARGET: included once per build. Arrays are feature-major: row r of
 * an (n, m) array starts at r * m. */

#define FNN_V FNN_NAME(fnn_vector)
typedef FNN_VECTOR(FNN_T, FNN_BYTES) FNN_V;
#define FNN_LANES ((ptrdiff_t) (sizeof(FNN_V) / sizeof(FNN_T)))
#define FNN_WIDE (4 * FNN_LANES)  /* samples per block: four vector accumulators */

FNN_INLINE FNN_TARGET FNN_V FNN_NAME(fnn_load)(const FNN_T* p) {
    FNN_V v;
    memcpy(&v, p, sizeof v);  /* an unaligned vector load */
    return v;
}

FNN_INLINE FNN_TARGET void FNN_NAME(fnn_store)(FNN_T* p, FNN_V v) {
    memcpy(p, &v, sizeof v);
}

FNN_INLINE FNN_TARGET FNN_T FNN_NAME(fnn_lanes_sum)(FNN_V v) {
    FNN_T lanes[sizeof(FNN_V) / sizeof(FNN_T)], total = 0;
    ptrdiff_t t;
    memcpy(lanes, &v, sizeof v);
    for (t = 0; t < FNN_LANES; t++)
        total += lanes[t];
    return total;
}

/* dst (n_out, m) = V src + b for src (n_in, m), where V[j][k] = w[j w_row + k w_col]
 * (W itself for the forward pass, W^T for dA_prev = W^T dZ); b may be NULL. */
FNN_TARGET
static void FNN_NAME(fnn_narrow_product)(const FNN_T* w, ptrdiff_t w_row, ptrdiff_t w_col,
                                         const FNN_T* b, const FNN_T* src, FNN_T* dst,
                                         ptrdiff_t n_out, ptrdiff_t n_in, ptrdiff_t m) {
    ptrdiff_t i = 0, j, k;
    for (; i + FNN_WIDE <= m; i += FNN_WIDE) {
        for (j = 0; j < n_out; j++) {
            FNN_T bias = b ? b[j] : 0;
            FNN_V a0 = (FNN_V) {0} + bias, a1 = a0, a2 = a0, a3 = a0;
            for (k = 0; k < n_in; k++) {
                const FNN_T* s = src + k * m + i;
                FNN_T v = w[j * w_row + k * w_col];
                a0 += v * FNN_NAME(fnn_load)(s);
                a1 += v * FNN_NAME(fnn_load)(s + FNN_LANES);
                a2 += v * FNN_NAME(fnn_load)(s + 2 * FNN_LANES);
                a3 += v * FNN_NAME(fnn_load)(s + 3 * FNN_LANES);
            }
            FNN_NAME(fnn_store)(dst + j * m + i, a0);
            FNN_NAME(fnn_store)(dst + j * m + i + FNN_LANES, a1);
            FNN_NAME(fnn_store)(dst + j * m + i + 2 * FNN_LANES, a2);
            FNN_NAME(fnn_store)(dst + j * m + i + 3 * FNN_LANES, a3);
        }
    }
    for (; i + FNN_LANES <= m; i += FNN_LANES) {
        for (j = 0; j < n_out; j++) {
            FNN_V a0 = (FNN_V) {0} + (b ? b[j] : 0);
            for (k = 0; k < n_in; k++)
                a0 += w[j * w_row + k * w_col] * FNN_NAME(fnn_load)(src + k * m + i);
            FNN_NAME(fnn_store)(dst + j * m + i, a0);
        }
    }
    for (; i < m; i++) {
        for (j = 0; j < n_out; j++) {
            FNN_T a0 = b ? b[j] : 0;
            for (k = 0; k < n_in; k++)
                a0 += w[j * w_row + k * w_col] * src[k * m + i];
            dst[j * m + i] = a0;
        }
    }
}

/* sum_i x_i y_i over m values, or sum_i x_i when y is NULL. */
FNN_INLINE FNN_TARGET FNN_T FNN_NAME(fnn_narrow_dot)(const FNN_T* x, const FNN_T* y, ptrdiff_t m) {
    FNN_V a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    FNN_T total = 0;
    ptrdiff_t i = 0;
    for (; i + FNN_WIDE <= m; i += FNN_WIDE) {
        if (y) {
            a0 += FNN_NAME(fnn_load)(x + i) * FNN_NAME(fnn_load)(y + i);
            a1 += FNN_NAME(fnn_load)(x + i + FNN_LANES) * FNN_NAME(fnn_load)(y + i + FNN_LANES);
            a2 += FNN_NAME(fnn_load)(x + i + 2 * FNN_LANES)
                  * FNN_NAME(fnn_load)(y + i + 2 * FNN_LANES);
            a3 += FNN_NAME(fnn_load)(x + i + 3 * FNN_LANES)
                  * FNN_NAME(fnn_load)(y + i + 3 * FNN_LANES);
        } else {
            a0 += FNN_NAME(fnn_load)(x + i);
            a1 += FNN_NAME(fnn_load)(x + i + FNN_LANES);
            a2 += FNN_NAME(fnn_load)(x + i + 2 * FNN_LANES);
            a3 += FNN_NAME(fnn_load)(x + i + 3 * FNN_LANES);
        }
    }
    for (; i + FNN_LANES <= m; i += FNN_LANES)
        a0 += FNN_NAME(fnn_load)(x + i) * (y ? FNN_NAME(fnn_load)(y + i) : (FNN_V) {0} + 1);
    for (; i < m; i++)
        total += y ? x[i] * y[i] : x[i];
    return total + FNN_NAME(fnn_lanes_sum)((a0 + a1) + (a2 + a3));
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
 * relative accuracy of x itself, so small x lose nothing (log1p's point). About 1 ulp,
 * in vector registers, where libm's log1p is one scalar call per value. out may be x. */
FNN_TARGET
static void FNN_NAME(fnn_log1p_unit)(const FNN_T* x, FNN_T* out, ptrdiff_t n) {
    /* 1 / (2k + 1): 17 terms for double (9^-17 / 35 < 2^-56), 8 for float */
    static const FNN_T c[17] = {
        1.0, 1.0 / 3, 1.0 / 5, 1.0 / 7, 1.0 / 9, 1.0 / 11, 1.0 / 13, 1.0 / 15, 1.0 / 17,
        1.0 / 19, 1.0 / 21, 1.0 / 23, 1.0 / 25, 1.0 / 27, 1.0 / 29, 1.0 / 31, 1.0 / 33};
    const int terms = sizeof(FNN_T) == 8 ? 17 : 8;
    ptrdiff_t i = 0;
    int k;
    for (; i + FNN_LANES <= n; i += FNN_LANES) {
        FNN_V v = FNN_NAME(fnn_load)(x + i);
        FNN_V s = v / (v + 2), t = s * s, series = (FNN_V) {0} + c[terms - 1];
        for (k = terms - 2; k >= 0; k--)
            series = series * t + c[k];
        FNN_NAME(fnn_store)(out + i, 2 * s * series);
    }
    for (; i < n; i++) {
        FNN_T s = x[i] / (x[i] + 2), t = s * s, series = c[terms - 1];
        for (k = terms - 2; k >= 0; k--)
            series = series * t + c[k];
        out[i] = 2 * s * series;
    }
}

#undef FNN_V
#undef FNN_LANES
#undef FNN_WIDE
