/* The kernels of _vector.h for one element type FNN_T (with the integer type FNN_I of the
 * same size) and one vector width FNN_BYTES, compiled with FNN_TARGET: included once per
 * build. Arrays are feature-major: row r of an (n, m) array starts at r * ld, where the
 * row stride ld >= m (a multiple of 64 bytes keeps every full vector within a cache line). */

#define FNN_V FNN_NAME(fnn_vector)
#define FNN_IV FNN_NAME(fnn_mask)
#define FNN_UV FNN_NAME(fnn_bits)
typedef FNN_VECTOR(FNN_T, FNN_BYTES) FNN_V;
typedef FNN_VECTOR(FNN_I, FNN_BYTES) FNN_IV;
typedef FNN_VECTOR(unsigned FNN_I, FNN_BYTES) FNN_UV;  /* shifts without overflow */
#define FNN_LANES ((ptrdiff_t) (sizeof(FNN_V) / sizeof(FNN_T)))
#define FNN_WIDE (4 * FNN_LANES)  /* samples per block: four vector accumulators */
/* the weight gradients' blocks: up to FNN_GRAD_ROWS rows of dZ by four rows of A, and
 * at most FNN_GRAD_SUMS vector accumulators: 4 by 4 where there are 32 vector registers
 * (AVX-512), 2 by 4 where there are 16 */
#define FNN_GRAD_ROWS (FNN_BYTES == 64 ? 4 : 2)
#define FNN_GRAD_SUMS (4 * FNN_GRAD_ROWS)
/* units per pass of the narrow product: 4 by four vectors of samples with 32 vector
 * registers, 2 with 16 */
#define FNN_UNITS (FNN_BYTES == 64 ? 4 : 2)
/* vectors whose long chains of dependent operations (exp's series, a division, log's)
 * the elementwise kernels interleave, a step of each in turn: one at a time, such a
 * chain kept the multiply-add units waiting for its latency (the binary cross-entropy
 * and the sigmoid took about twice as long) */
#define FNN_CHAINS 2

/* The first n (<= FNN_LANES) values at p as a vector, the others 0; unaligned. */
FNN_INLINE FNN_TARGET FNN_V FNN_NAME(fnn_load)(const FNN_T* p, ptrdiff_t n) {
    FNN_V v = {0};
    FNN_T lanes[sizeof(FNN_V) / sizeof(FNN_T)] = {0};
    ptrdiff_t t;
    if (n == FNN_LANES) {
        memcpy(&v, p, sizeof v);  /* one vector load */
        return v;
    }
#if FNN_BYTES == 64  /* one masked load */
    if (sizeof(FNN_T) == 8)
        return (FNN_V) _mm512_maskz_loadu_pd((__mmask8) ((1u << n) - 1), p);
    return (FNN_V) _mm512_maskz_loadu_ps((__mmask16) ((1u << n) - 1), p);
#endif
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
#if FNN_BYTES == 64
    if (sizeof(FNN_T) == 8)
        _mm512_mask_storeu_pd(p, (__mmask8) ((1u << n) - 1), (__m512d) v);
    else
        _mm512_mask_storeu_ps(p, (__mmask16) ((1u << n) - 1), (__m512) v);
    return;
#endif
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

/* g <= 0 ? 0 : x, lane by lane: relu's gate, which passes x where g is NaN (so that
 * a NaN goes on, as NumPy's maximum passes it, instead of being hidden as 0) */
FNN_INLINE FNN_TARGET FNN_V FNN_NAME(fnn_relu_gate)(FNN_V g, FNN_V x) {
#if defined(__GNUC__)
    FNN_V zero = {0};
    FNN_IV mask = (FNN_IV) (g <= zero);
    return (FNN_V) ((FNN_IV) x & ~mask);
#else
    return g <= 0 ? 0 : x;
#endif
}

/* v g'(z) for the activation act, from g = a = act(z) (sigmoid: a (1 - a), tanh:
 * 1 - a^2) or for relu and leaky_relu from g = z or g = a (a > 0 exactly when z > 0,
 * for a slope >= 0), as _activation_grad in _ops.pxd. With g = v, relu and
 * leaky_relu give act(v) itself. */
FNN_INLINE FNN_TARGET FNN_V FNN_NAME(fnn_gate)(FNN_V v, FNN_V g, int act, FNN_T slope) {
    FNN_V zero = {0}, one = zero + 1;
    switch (act) {
    case FNN_RELU: return FNN_NAME(fnn_relu_gate)(g, v);
    case FNN_LEAKY_RELU: return v * FNN_NAME(fnn_positive)(g, one, zero + slope);
    case FNN_SIGMOID: return v * (g * (1 - g));
    case FNN_TANH: return v * (1 - g * g);
    default: return v;
    }
}

/* the sum of v's lanes, as a tree: each half added to the other, log2(lanes) times */
FNN_INLINE FNN_TARGET FNN_T FNN_NAME(fnn_lanes_sum)(FNN_V v) {
    FNN_T lanes[sizeof(FNN_V) / sizeof(FNN_T)];
    ptrdiff_t t, half;
    memcpy(lanes, &v, sizeof v);
#pragma GCC unroll 16  /* whole, so that the lanes stay in registers (GCC leaves the */
    for (half = FNN_LANES / 2; half > 0; half /= 2)  /* 16 lanes of float a loop */
#pragma GCC unroll 16
        for (t = 0; t < half; t++)
            lanes[t] += lanes[t + half];
    return lanes[0];
}

/* Stores the product's values v for [at, at + n) into dst: act(v), or with gate, v
 * times act'(z) from the gate's values g as in fnn_gate. */
FNN_INLINE FNN_TARGET void FNN_NAME(fnn_emit)(FNN_V v, ptrdiff_t at, ptrdiff_t n,
                                              FNN_T* dst, const FNN_T* gate, int act,
                                              FNN_T slope) {
    FNN_V g = gate ? FNN_NAME(fnn_load)(gate + at, n) : v;
#if FNN_BYTES == 64  /* ReLU in one instruction, max(0, v): NaN and -0 pass as v */
    if (!gate && act == FNN_RELU) {
        FNN_V zero = {0};
        if (sizeof(FNN_T) == 8)
            v = (FNN_V) _mm512_max_pd((__m512d) zero, (__m512d) v);
        else
            v = (FNN_V) _mm512_max_ps((__m512) zero, (__m512) v);
        FNN_NAME(fnn_store)(dst + at, v, n);
        return;
    }
#endif
    FNN_NAME(fnn_store)(dst + at, FNN_NAME(fnn_gate)(v, g, act, slope), n);
}

/* fnn_emit of the four vectors of one unit's block at at, whose vectors hold n[0..3]
 * samples */
FNN_INLINE FNN_TARGET void FNN_NAME(fnn_emit_block)(FNN_V v0, FNN_V v1, FNN_V v2, FNN_V v3,
                                                    ptrdiff_t at, const ptrdiff_t* n,
                                                    FNN_T* dst, const FNN_T* gate, int act,
                                                    FNN_T slope) {
    FNN_NAME(fnn_emit)(v0, at, n[0], dst, gate, act, slope);
    FNN_NAME(fnn_emit)(v1, at + FNN_LANES, n[1], dst, gate, act, slope);
    if (n[2] == 0)  /* (a block of two vectors) */
        return;
    FNN_NAME(fnn_emit)(v2, at + 2 * FNN_LANES, n[2], dst, gate, act, slope);
    FNN_NAME(fnn_emit)(v3, at + 3 * FNN_LANES, n[3], dst, gate, act, slope);
}

/* The units [j, j + ru) (ru <= FNN_UNITS) of one block of samples [i, i + FNN_WIDE) of
 * fnn_narrow_product, its four vectors holding n[0..3] samples (vecs = 2: the first two
 * alone, the others empty): 4 ru accumulators, which share each load of src. Inlined
 * with constant ru and vecs, so that they live in registers. */
FNN_INLINE FNN_TARGET void FNN_NAME(fnn_units_block)(
        const FNN_T* w, ptrdiff_t w_row, ptrdiff_t w_col, const FNN_T* b, const FNN_T* src,
        FNN_T* dst, ptrdiff_t n_in, ptrdiff_t ld, ptrdiff_t i, const ptrdiff_t* n,
        ptrdiff_t j, int ru, int vecs, const FNN_T* gate, int act, FNN_T slope) {
    FNN_V acc[FNN_UNITS][4], s0, s1, s2 = {0}, s3 = {0};
    ptrdiff_t k;
    int u;
    for (u = 0; u < ru; u++)
        acc[u][0] = acc[u][1] = acc[u][2] = acc[u][3] = (FNN_V) {0} + (b ? b[j + u] : 0);
    for (k = 0; k < n_in; k++) {
        const FNN_T* s = src + k * ld + i;
        s0 = FNN_NAME(fnn_load)(s, n[0]);
        s1 = FNN_NAME(fnn_load)(s + FNN_LANES, n[1]);
        FNN_IN_REGISTER(s0); FNN_IN_REGISTER(s1);
        if (vecs == 4) {
            s2 = FNN_NAME(fnn_load)(s + 2 * FNN_LANES, n[2]);
            s3 = FNN_NAME(fnn_load)(s + 3 * FNN_LANES, n[3]);
            FNN_IN_REGISTER(s2); FNN_IN_REGISTER(s3);
        }
        for (u = 0; u < ru; u++) {
            FNN_T v = w[(j + u) * w_row + k * w_col];
            acc[u][0] += v * s0; acc[u][1] += v * s1;
            if (vecs == 4) {
                acc[u][2] += v * s2; acc[u][3] += v * s3;
            }
        }
    }
    for (u = 0; u < ru; u++)
        FNN_NAME(fnn_emit_block)(acc[u][0], acc[u][1], acc[u][2], acc[u][3],
                                 (j + u) * ld + i, n, dst, gate, act, slope);
}

/* One block of samples of fnn_narrow_product (see fnn_units_block): FNN_UNITS units at a
 * time, then the rest of them. */
FNN_INLINE FNN_TARGET void FNN_NAME(fnn_product_block)(
        const FNN_T* w, ptrdiff_t w_row, ptrdiff_t w_col, const FNN_T* b, const FNN_T* src,
        FNN_T* dst, ptrdiff_t n_out, ptrdiff_t n_in, ptrdiff_t ld, ptrdiff_t i,
        const ptrdiff_t* n, int vecs, const FNN_T* gate, int act, FNN_T slope) {
    ptrdiff_t j;
#define FNN_UNITS_BLOCK(ru) \
    FNN_NAME(fnn_units_block)(w, w_row, w_col, b, src, dst, n_in, ld, i, n, j, ru, vecs, \
                              gate, act, slope)
    for (j = 0; j + FNN_UNITS <= n_out; j += FNN_UNITS)
        FNN_UNITS_BLOCK(FNN_UNITS);
    switch (n_out - j) {  /* a constant ru in each call */
    case 1: FNN_UNITS_BLOCK(1); break;
#if FNN_UNITS == 4
    case 2: FNN_UNITS_BLOCK(2); break;
    case 3: FNN_UNITS_BLOCK(3); break;
#endif
    }
#undef FNN_UNITS_BLOCK
}

/* fnn_narrow_product's loops, inlined once for each combination of gate present and
 * act, so that none of those choices is made inside them. */
FNN_INLINE FNN_TARGET void FNN_NAME(fnn_product_loops)(
        const FNN_T* w, ptrdiff_t w_row, ptrdiff_t w_col, const FNN_T* b, const FNN_T* src,
        FNN_T* dst, ptrdiff_t n_out, ptrdiff_t n_in, ptrdiff_t m, ptrdiff_t ld,
        const FNN_T* gate, int act, FNN_T slope) {
    const ptrdiff_t whole[4] = {FNN_LANES, FNN_LANES, FNN_LANES, FNN_LANES};
    ptrdiff_t i = 0, last[4], t;
    for (; i + FNN_WIDE <= m; i += FNN_WIDE)
        FNN_NAME(fnn_product_block)(w, w_row, w_col, b, src, dst, n_out, n_in, ld, i, whole,
                                    4, gate, act, slope);
    if (i == m)
        return;
    for (t = 0; t < 4; t++) {  /* the last block: what is left, a vector at a time */
        ptrdiff_t left = m - i - t * FNN_LANES;
        last[t] = left <= 0 ? 0 : left < FNN_LANES ? left : FNN_LANES;
    }
    if (last[2] == 0)  /* two vectors or fewer: a block of two */
        FNN_NAME(fnn_product_block)(w, w_row, w_col, b, src, dst, n_out, n_in, ld, i, last,
                                    2, gate, act, slope);
    else
        FNN_NAME(fnn_product_block)(w, w_row, w_col, b, src, dst, n_out, n_in, ld, i, last,
                                    4, gate, act, slope);
}

/* dst (n_out, m) = act(V src + b) for src (n_in, m), where V[j][k] = w[j w_row + k w_col]
 * (W itself for the forward pass, W^T for dA_prev = W^T dZ) and act is identity, relu
 * or leaky_relu; b may be NULL. With gate (n_out, m), dst gets each value v times
 * act'(z) instead, from gate as in fnn_gate: dZ_prev straight from dZ. All three arrays
 * have the row stride ld. */
FNN_TARGET
static void FNN_NAME(fnn_narrow_product)(const FNN_T* w, ptrdiff_t w_row, ptrdiff_t w_col,
                                         const FNN_T* b, const FNN_T* src, FNN_T* dst,
                                         ptrdiff_t n_out, ptrdiff_t n_in, ptrdiff_t m,
                                         ptrdiff_t ld, const FNN_T* gate, int act,
                                         FNN_T slope) {
#define FNN_LOOPS(gate, act) \
    FNN_NAME(fnn_product_loops)(w, w_row, w_col, b, src, dst, n_out, n_in, m, ld, gate, \
                                act, slope)
    if (act == FNN_IDENTITY)
        FNN_LOOPS(NULL, FNN_IDENTITY);
    else if (act == FNN_RELU)
        gate ? FNN_LOOPS(gate, FNN_RELU) : FNN_LOOPS(NULL, FNN_RELU);
    else if (act == FNN_LEAKY_RELU)
        gate ? FNN_LOOPS(gate, FNN_LEAKY_RELU) : FNN_LOOPS(NULL, FNN_LEAKY_RELU);
    else if (act == FNN_SIGMOID)
        FNN_LOOPS(gate, FNN_SIGMOID);
    else
        FNN_LOOPS(gate, FNN_TANH);
#undef FNN_LOOPS
}

#if FNN_BYTES == 64
/* The lanes of FNN_LANES vectors summed: lane r of the result is the sum of acc[r]'s
 * lanes. Neighbours' lanes are added in pairs, then their 16-byte blocks, in a fixed
 * order (one pass of shuffles for all, where a sum of each vector's lanes apart would
 * take FNN_LANES passes). */
FNN_INLINE FNN_TARGET FNN_V FNN_NAME(fnn_lane_sums)(const FNN_V* acc) {
    int r;
    if (sizeof(FNN_T) == 8) {  /* s[r]: rows 2r, 2r + 1 of each 16-byte block */
        __m512d s[4], t[2];
        for (r = 0; r < 4; r++) {
            __m512d a = (__m512d) acc[2 * r], b = (__m512d) acc[2 * r + 1];
            s[r] = _mm512_add_pd(_mm512_unpacklo_pd(a, b), _mm512_unpackhi_pd(a, b));
        }
        for (r = 0; r < 2; r++)  /* blocks 0 + 1 and 2 + 3 of s[2r], then of s[2r + 1] */
            t[r] = _mm512_add_pd(_mm512_shuffle_f64x2(s[2 * r], s[2 * r + 1], 0x88),
                                 _mm512_shuffle_f64x2(s[2 * r], s[2 * r + 1], 0xdd));
        return (FNN_V) _mm512_add_pd(_mm512_shuffle_f64x2(t[0], t[1], 0x88),
                                     _mm512_shuffle_f64x2(t[0], t[1], 0xdd));
    } else {  /* s[r]: pairs of lanes of rows 2r, 2r + 1; v[r]: rows 4r to 4r + 3 */
        __m512 s[8], v[4], t[2];
        for (r = 0; r < 8; r++) {
            __m512 a = (__m512) acc[2 * r], b = (__m512) acc[2 * r + 1];
            s[r] = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
        }
        for (r = 0; r < 4; r++) {
            __m512d a = (__m512d) s[2 * r], b = (__m512d) s[2 * r + 1];
            v[r] = _mm512_add_ps((__m512) _mm512_unpacklo_pd(a, b),
                                 (__m512) _mm512_unpackhi_pd(a, b));
        }
        for (r = 0; r < 2; r++)
            t[r] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * r], v[2 * r + 1], 0x88),
                                 _mm512_shuffle_f32x4(v[2 * r], v[2 * r + 1], 0xdd));
        return (FNN_V) _mm512_add_ps(_mm512_shuffle_f32x4(t[0], t[1], 0x88),
                                     _mm512_shuffle_f32x4(t[0], t[1], 0xdd));
    }
}
#endif

/* One step of fnn_grads_block: the samples [i, i + n) (n <= FNN_LANES) of its rows,
 * and with sums, each row of dz's values added into sums[r] too (db). */
FNN_INLINE FNN_TARGET void FNN_NAME(fnn_grads_step)(const FNN_T* dz, const FNN_T* a,
                                                    ptrdiff_t ld, ptrdiff_t i, ptrdiff_t n,
                                                    int rj, int rk,
                                                    FNN_V acc[FNN_GRAD_ROWS][4],
                                                    FNN_V* sums) {
    FNN_V x[FNN_GRAD_ROWS], y;
    int r, c;
    for (r = 0; r < rj; r++) {
        x[r] = FNN_NAME(fnn_load)(dz + r * ld + i, n);
        FNN_IN_REGISTER(x[r]);
        if (sums)
            sums[r] += x[r];
    }
    for (c = 0; c < rk; c++) {
        y = FNN_NAME(fnn_load)(a + c * ld + i, n);
        FNN_IN_REGISTER(y);
        for (r = 0; r < rj; r++)
            acc[r][c] += x[r] * y;
    }
}

/* dw[r n_in + c] = sum_i dz_(r ld + i) a_(c ld + i) over m samples, for the rj rows of dz
 * (rj <= FNN_GRAD_ROWS) and the rk rows of a (rk <= 4) given: rj rk vector accumulators
 * along the samples, each vector loaded once for all the products it is in (rj + rk
 * loads for rj rk multiply-adds); a small block takes two vectors of samples per step
 * into two sets of accumulators, which keeps enough multiply-adds in flight. With db
 * (the first block of a's rows), db[r] = sum_i dz_(r ld + i) too, from the same loads
 * (instead of a pass of its own over dz).
 * Inlined with constant rj and rk and db present or not, so that the accumulators live
 * in registers. Each value is summed in a fixed order: its sets (in sample order, a
 * vector at a time) added, then its lanes (with AVX-512, the lanes of FNN_LANES values
 * at once: fnn_lane_sums, where one sum at a time took a fifth of the tiny network's
 * weight gradients). */
FNN_INLINE FNN_TARGET void FNN_NAME(fnn_grads_block)(const FNN_T* dz, const FNN_T* a,
                                                     FNN_T* dw, FNN_T* db, ptrdiff_t n_in,
                                                     ptrdiff_t m, ptrdiff_t ld, int rj,
                                                     int rk) {
    const int sets = 2 * rj * rk <= FNN_GRAD_SUMS ? 2 : 1;
    FNN_V acc[2][FNN_GRAD_ROWS][4], sums[2][FNN_GRAD_ROWS];
    FNN_V* s0 = db ? sums[0] : NULL;
    FNN_V* s1 = db ? sums[sets - 1] : NULL;
    ptrdiff_t i = 0;
    int r, c;
    for (r = 0; r < rj; r++)
        for (c = 0; c < rk; c++)
            acc[0][r][c] = acc[1][r][c] = (FNN_V) {0};
    for (r = 0; r < FNN_GRAD_ROWS; r++)
        sums[0][r] = sums[1][r] = (FNN_V) {0};
    for (; i + sets * FNN_LANES <= m; i += sets * FNN_LANES) {
        FNN_NAME(fnn_grads_step)(dz, a, ld, i, FNN_LANES, rj, rk, acc[0], s0);
        if (sets == 2)
            FNN_NAME(fnn_grads_step)(dz, a, ld, i + FNN_LANES, FNN_LANES, rj, rk, acc[1],
                                     s1);
    }
    for (; i + FNN_LANES <= m; i += FNN_LANES)
        FNN_NAME(fnn_grads_step)(dz, a, ld, i, FNN_LANES, rj, rk, acc[0], s0);
    if (i < m)
        FNN_NAME(fnn_grads_step)(dz, a, ld, i, m - i, rj, rk, acc[0], s0);
#if FNN_BYTES == 64
    {
        FNN_V all[16], zero = {0}, v;
        FNN_T values[16];
        int n = rj * rk, q;
        for (q = 0; q < 16; q++)
            all[q] = q < n ? acc[0][q / rk][q % rk] + acc[1][q / rk][q % rk] : zero;
        for (q = 0; q < n; q += FNN_LANES) {
            v = FNN_NAME(fnn_lane_sums)(all + q);
            memcpy(values + q, &v, sizeof v);
        }
        for (q = 0; q < n; q++)
            dw[q / rk * n_in + q % rk] = values[q];
        if (db) {
            for (q = 0; q < FNN_LANES; q++)
                all[q] = q < rj ? sums[0][q] + sums[1][q] : zero;
            FNN_NAME(fnn_store)(db, FNN_NAME(fnn_lane_sums)(all), rj);
        }
    }
#else
    for (r = 0; r < rj; r++) {
        for (c = 0; c < rk; c++)
            dw[r * n_in + c] = FNN_NAME(fnn_lanes_sum)(acc[0][r][c] + acc[1][r][c]);
        if (db)
            db[r] = FNN_NAME(fnn_lanes_sum)(sums[0][r] + sums[1][r]);
    }
#endif
}

/* dw (n_out, n_in) = dz a^T and db = the row sums of dz, for dz (n_out, m) and
 * a (n_in, m), both of row stride ld: the weight gradients of a layer, in blocks of
 * FNN_GRAD_ROWS rows of dz by four rows of a (fnn_grads_block, called with the block's
 * constant sizes; db's sums with the first block of a's rows). */
FNN_TARGET
static void FNN_NAME(fnn_narrow_weight_grads)(const FNN_T* dz, const FNN_T* a, FNN_T* dw,
                                              FNN_T* db, ptrdiff_t n_out, ptrdiff_t n_in,
                                              ptrdiff_t m, ptrdiff_t ld) {
    ptrdiff_t j, k;
    for (j = 0; j < n_out; j += FNN_GRAD_ROWS) {
        int rj = n_out - j < FNN_GRAD_ROWS ? (int) (n_out - j) : FNN_GRAD_ROWS;
        for (k = 0; k < n_in; k += 4) {
            int rk = n_in - k < 4 ? (int) (n_in - k) : 4;
#define FNN_GRADS(rows, columns) \
            case 4 * (rows) + (columns): \
                if (k == 0) \
                    FNN_NAME(fnn_grads_block)(dz + j * ld, a, dw + j * n_in, db + j, n_in, \
                                              m, ld, rows, columns); \
                else \
                    FNN_NAME(fnn_grads_block)(dz + j * ld, a + k * ld, dw + j * n_in + k, \
                                              NULL, n_in, m, ld, rows, columns); \
                break
            switch (4 * rj + rk) {
            FNN_GRADS(1, 1); FNN_GRADS(1, 2); FNN_GRADS(1, 3); FNN_GRADS(1, 4);
            FNN_GRADS(2, 1); FNN_GRADS(2, 2); FNN_GRADS(2, 3); FNN_GRADS(2, 4);
#if FNN_GRAD_ROWS == 4
            FNN_GRADS(3, 1); FNN_GRADS(3, 2); FNN_GRADS(3, 3); FNN_GRADS(3, 4);
            FNN_GRADS(4, 1); FNN_GRADS(4, 2); FNN_GRADS(4, 3); FNN_GRADS(4, 4);
#endif
            }
#undef FNN_GRADS
        }
    }
}

/* ---- thin layers in the samples-are-rows layout: products where one dimension is a
 * few units (taken four at a time), so that GEMM's packing would cost more than the
 * multiplying. Sums run in a fixed order. */

/* C (m, J) = L (m, K) R^T + bias for R (J, K), rows contiguous: every value a dot
 * product along K, two rows of L and up to four rows of R at a time (eight
 * accumulators, named, so that they stay in registers), their lanes added at the end
 * (with AVX-512 all eight at once: a tenth to a half off the products of a softmax
 * over ten classes). */
#define FNN_DOTS_STEP(n) do { \
        FNN_V x0 = FNN_NAME(fnn_load)(l0 + k, n), x1 = {0}, v; \
        FNN_IN_REGISTER(x0); \
        if (two) { x1 = FNN_NAME(fnn_load)(l1 + k, n); FNN_IN_REGISTER(x1); } \
        v = FNN_NAME(fnn_load)(r0 + k, n); FNN_IN_REGISTER(v); s00 += x0 * v; \
        if (two) s10 += x1 * v; \
        if (nr > 1) { v = FNN_NAME(fnn_load)(r1 + k, n); FNN_IN_REGISTER(v); \
                      s01 += x0 * v; if (two) s11 += x1 * v; } \
        if (nr > 2) { v = FNN_NAME(fnn_load)(r2 + k, n); FNN_IN_REGISTER(v); \
                      s02 += x0 * v; if (two) s12 += x1 * v; } \
        if (nr > 3) { v = FNN_NAME(fnn_load)(r3 + k, n); FNN_IN_REGISTER(v); \
                      s03 += x0 * v; if (two) s13 += x1 * v; } \
    } while (0)

/* fnn_thin_dots for rows i and, when two, i + 1, and the nr rows of R from j: inlined
 * with constant nr and two, so that no work is spent on absent rows (a single output
 * unit is nr = 1; a one-sample prediction, one row of L). */
FNN_INLINE FNN_TARGET void FNN_NAME(fnn_dots_block)(const FNN_T* L, const FNN_T* R,
                                                    const FNN_T* bias, FNN_T* C,
                                                    ptrdiff_t K, ptrdiff_t J, ptrdiff_t i,
                                                    ptrdiff_t j, int nr, int two) {
    const FNN_T* l0 = L + i * K;
    const FNN_T* l1 = l0 + K;  /* (read only when two) */
    const FNN_T* r0 = R + j * K;  /* rows past nr: never read, kept inside R */
    const FNN_T* r1 = nr > 1 ? r0 + K : r0;
    const FNN_T* r2 = nr > 2 ? r1 + K : r1;
    const FNN_T* r3 = nr > 3 ? r2 + K : r2;
    FNN_V s00 = {0}, s01 = {0}, s02 = {0}, s03 = {0};
    FNN_V s10 = {0}, s11 = {0}, s12 = {0}, s13 = {0};
    ptrdiff_t k;
    int q;
    for (k = 0; k + FNN_LANES <= K; k += FNN_LANES)
        FNN_DOTS_STEP(FNN_LANES);
    if (k < K)
        FNN_DOTS_STEP(K - k);
#if FNN_BYTES == 64  /* the lanes of the eight sums at once (fnn_lane_sums) */
    FNN_V all[FNN_LANES] = {s00, s01, s02, s03, s10, s11, s12, s13}, v;
    FNN_T sums[FNN_LANES];
    v = FNN_NAME(fnn_lane_sums)(all);
    memcpy(sums, &v, sizeof v);
#else
    FNN_V first[4] = {s00, s01, s02, s03}, second[4] = {s10, s11, s12, s13};
    FNN_T sums[8];
    for (q = 0; q < nr; q++) {
        sums[q] = FNN_NAME(fnn_lanes_sum)(first[q]);
        sums[4 + q] = FNN_NAME(fnn_lanes_sum)(second[q]);
    }
#endif
    for (q = 0; q < nr; q++) {
        FNN_T b = bias ? bias[j + q] : 0;
        C[i * J + j + q] = b + sums[q];
        if (two)
            C[(i + 1) * J + j + q] = b + sums[4 + q];
    }
}
#undef FNN_DOTS_STEP

FNN_TARGET
static void FNN_NAME(fnn_thin_dots)(const FNN_T* L, const FNN_T* R, const FNN_T* bias,
                                    FNN_T* C, ptrdiff_t m, ptrdiff_t K, ptrdiff_t J) {
    ptrdiff_t i, j;
#define FNN_DOTS_ROWS(two) do { \
        for (j = 0; j + 4 <= J; j += 4) \
            FNN_NAME(fnn_dots_block)(L, R, bias, C, K, J, i, j, 4, two); \
        switch (J - j) {  /* a constant nr in each call */ \
        case 3: FNN_NAME(fnn_dots_block)(L, R, bias, C, K, J, i, j, 3, two); break; \
        case 2: FNN_NAME(fnn_dots_block)(L, R, bias, C, K, J, i, j, 2, two); break; \
        case 1: FNN_NAME(fnn_dots_block)(L, R, bias, C, K, J, i, j, 1, two); break; \
        } \
    } while (0)
    for (i = 0; i + 1 < m; i += 2)
        FNN_DOTS_ROWS(1);
    if (i < m)  /* the last row alone */
        FNN_DOTS_ROWS(0);
#undef FNN_DOTS_ROWS
}

/* acc j0, j1 (a vector each) += l[j] times v0, v1, for j < nj (l[j] read only then) */
#define FNN_GRAM_TERMS(j, v0, v1) do { \
        if (nj > (j)) { a##j##0 += l[j] * v0; a##j##1 += l[j] * v1; } \
    } while (0)

/* the rows of L and R in order, R's vectors at c as count0 values and as load1 */
#define FNN_GRAM_ROWS(count0, load1) do { \
        for (i = 0; i < m; i++) { \
            const FNN_T* l = L + i * J + j; \
            FNN_V v0 = FNN_NAME(fnn_load)(R + i * N + c, count0), v1 = load1; \
            FNN_GRAM_TERMS(0, v0, v1); \
            FNN_GRAM_TERMS(1, v0, v1); \
            FNN_GRAM_TERMS(2, v0, v1); \
            FNN_GRAM_TERMS(3, v0, v1); \
        } \
    } while (0)

/* fnn_thin_gram's rows j .. j + nj - 1 of G (nj from 1 to 4: inlined with a constant nj,
 * so that no work is spent on absent rows) and its columns c .. c + n0 + n1 - 1 (n0 and
 * n1 up to a vector each), the rows i of L and R in order. */
FNN_INLINE FNN_TARGET void FNN_NAME(fnn_gram_block)(const FNN_T* L, const FNN_T* R, FNN_T* G,
                                                    ptrdiff_t m, ptrdiff_t J, ptrdiff_t N,
                                                    int transposed, ptrdiff_t j, int nj,
                                                    ptrdiff_t c, ptrdiff_t n0,
                                                    ptrdiff_t n1) {
    FNN_V a00 = {0}, a01 = {0}, a10 = {0}, a11 = {0};
    FNN_V a20 = {0}, a21 = {0}, a30 = {0}, a31 = {0};
    ptrdiff_t i, q, t;
    if (n1 == FNN_LANES)
        FNN_GRAM_ROWS(FNN_LANES, FNN_NAME(fnn_load)(R + i * N + c + FNN_LANES, FNN_LANES));
    else
        FNN_GRAM_ROWS(n0, n1 > 0 ? FNN_NAME(fnn_load)(R + i * N + c + FNN_LANES, n1)
                                 : (FNN_V) {0});
    FNN_V first[4] = {a00, a10, a20, a30}, second[4] = {a01, a11, a21, a31};
    for (q = 0; q < nj; q++) {
        if (!transposed) {
            FNN_NAME(fnn_store)(G + (j + q) * N + c, first[q], n0);
            if (n1 > 0)
                FNN_NAME(fnn_store)(G + (j + q) * N + c + FNN_LANES, second[q], n1);
            continue;
        }
        FNN_T lanes[2 * FNN_LANES];
        memcpy(lanes, &first[q], sizeof(FNN_V));
        memcpy(lanes + FNN_LANES, &second[q], sizeof(FNN_V));
        for (t = 0; t < n0; t++)
            G[(c + t) * J + j + q] = lanes[t];
        for (t = 0; t < n1; t++)
            G[(c + FNN_LANES + t) * J + j + q] = lanes[FNN_LANES + t];
    }
}
#undef FNN_GRAM_TERMS
#undef FNN_GRAM_ROWS

/* G (J, N) = L^T R for L (m, J) and R (m, N): G[j][c] = sum_i L[i][j] R[i][c], up to
 * four values of j and two vectors of c at a time, the rows i in order; with
 * transposed, G is stored as (N, J). */
FNN_TARGET
static void FNN_NAME(fnn_thin_gram)(const FNN_T* L, const FNN_T* R, FNN_T* G, ptrdiff_t m,
                                    ptrdiff_t J, ptrdiff_t N, int transposed) {
    ptrdiff_t c, j, n0, n1;
    for (c = 0; c < N; c += 2 * FNN_LANES) {
        n0 = N - c < FNN_LANES ? N - c : FNN_LANES;
        n1 = N - c - n0 < FNN_LANES ? N - c - n0 : FNN_LANES;
        for (j = 0; j + 4 <= J; j += 4)
            FNN_NAME(fnn_gram_block)(L, R, G, m, J, N, transposed, j, 4, c, n0, n1);
        switch (J - j) {  /* a constant nj in each call */
        case 3: FNN_NAME(fnn_gram_block)(L, R, G, m, J, N, transposed, j, 3, c, n0, n1); break;
        case 2: FNN_NAME(fnn_gram_block)(L, R, G, m, J, N, transposed, j, 2, c, n0, n1); break;
        case 1: FNN_NAME(fnn_gram_block)(L, R, G, m, J, N, transposed, j, 1, c, n0, n1); break;
        }
    }
}

/* acc0..acc3 (two vectors each) += the four values of L times two vectors of R */
#define FNN_FOUR_TERMS(la, lb, lc, ld, v0, v1) do { \
        a00 += (la) * v0; a01 += (la) * v1; a10 += (lb) * v0; a11 += (lb) * v1; \
        a20 += (lc) * v0; a21 += (lc) * v1; a30 += (ld) * v0; a31 += (ld) * v1; \
    } while (0)

/* C (m, N) = L (m, K) R + bias for R (K, N) with row stride r_row and column stride
 * r_col (1, or R given as the transpose of a row-major (N, K) array): each row of C
 * a sum of K rows of R weighted by a row of L, four rows and two vectors of columns at
 * a time, the K terms in order. Columns are taken 64 at a time, their rows of R first
 * copied together (so that a transposed R is read with vector loads). K <= 16. */
#define FNN_THIN_COLUMNS 64
FNN_TARGET
static void FNN_NAME(fnn_thin_combine)(const FNN_T* L, const FNN_T* R, ptrdiff_t r_row,
                                       ptrdiff_t r_col, const FNN_T* bias, FNN_T* C,
                                       ptrdiff_t m, ptrdiff_t K, ptrdiff_t N) {
    FNN_T strip[FNN_THIN_COLUMNS * 16];  /* K rows of up to 64 columns */
    ptrdiff_t c0, width, c, i, k, q, n0, n1;
    for (c0 = 0; c0 < N; c0 += FNN_THIN_COLUMNS) {
        width = N - c0 < FNN_THIN_COLUMNS ? N - c0 : FNN_THIN_COLUMNS;
        for (k = 0; k < K; k++)  /* the strip, zero past width up to a whole pair */
            for (c = 0; c < FNN_THIN_COLUMNS && (c < width || c % (2 * FNN_LANES)); c++)
                strip[k * FNN_THIN_COLUMNS + c] = c < width ? R[k * r_row + (c0 + c) * r_col]
                                                            : 0;
        for (i = 0; i < m; i += 4) {  /* rows past m repeat the last */
            const FNN_T* l0 = L + i * K;
            const FNN_T* l1 = L + (i + 1 < m ? i + 1 : m - 1) * K;
            const FNN_T* l2 = L + (i + 2 < m ? i + 2 : m - 1) * K;
            const FNN_T* l3 = L + (i + 3 < m ? i + 3 : m - 1) * K;
            for (c = 0; c < width; c += 2 * FNN_LANES) {
                n0 = width - c < FNN_LANES ? width - c : FNN_LANES;
                n1 = width - c - n0 < FNN_LANES ? width - c - n0 : FNN_LANES;
                FNN_V b0 = bias ? FNN_NAME(fnn_load)(bias + c0 + c, n0) : (FNN_V) {0};
                FNN_V b1 = bias && n1 > 0 ? FNN_NAME(fnn_load)(bias + c0 + c + FNN_LANES, n1)
                                          : (FNN_V) {0};
                FNN_V a00 = b0, a01 = b1, a10 = b0, a11 = b1;
                FNN_V a20 = b0, a21 = b1, a30 = b0, a31 = b1;
                for (k = 0; k < K; k++) {
                    const FNN_T* s = strip + k * FNN_THIN_COLUMNS + c;
                    FNN_V v0 = FNN_NAME(fnn_load)(s, FNN_LANES);  /* the strip has room */
                    FNN_V v1 = FNN_NAME(fnn_load)(s + FNN_LANES, FNN_LANES);
                    FNN_FOUR_TERMS(l0[k], l1[k], l2[k], l3[k], v0, v1);
                }
                FNN_V first[4] = {a00, a10, a20, a30}, second[4] = {a01, a11, a21, a31};
                for (q = 0; q < 4 && i + q < m; q++) {
                    FNN_NAME(fnn_store)(C + (i + q) * N + c0 + c, first[q], n0);
                    if (n1 > 0)
                        FNN_NAME(fnn_store)(C + (i + q) * N + c0 + c + FNN_LANES, second[q],
                                            n1);
                }
            }
        }
    }
}
#undef FNN_FOUR_TERMS

/* Rows of samples (samples-are-rows, n values a row, m rows) for the GEMM path's
 * elementwise passes. Each loop takes whole vectors, then the partial one: a count of
 * min(lanes, left) carried from vector to vector would chain every iteration. */

/* the k values at j of fnn_bias_act's row zr (b: the bias or NULL) into ar */
FNN_INLINE FNN_TARGET void FNN_NAME(fnn_bias_act_at)(FNN_T* zr, FNN_T* ar, const FNN_T* b,
                                                     ptrdiff_t j, ptrdiff_t k, int act,
                                                     FNN_T slope) {
    FNN_V v = FNN_NAME(fnn_load)(zr + j, k);
    if (b != NULL) {
        v += FNN_NAME(fnn_load)(b + j, k);
        FNN_NAME(fnn_store)(zr + j, v, k);
    }
    if (act >= 0)
        FNN_NAME(fnn_store)(ar + j, FNN_NAME(fnn_gate)(v, v, act, slope), k);
}

/* z += b in each row (b may be NULL), then a = act(z) (a may be z) for act identity,
 * relu or leaky_relu. */
FNN_TARGET
static void FNN_NAME(fnn_bias_act)(FNN_T* z, FNN_T* a, const FNN_T* b, ptrdiff_t m,
                                   ptrdiff_t n, int act, FNN_T slope) {
    ptrdiff_t i, j;
    if (act == FNN_IDENTITY && a == z)
        act = -1;  /* nothing to store in a */
    if (b == NULL) {  /* one run of m n values */
        if (act < 0)
            return;
        n *= m;
        m = 1;
    }
    for (i = 0; i < m; i++) {
        for (j = 0; j + FNN_LANES <= n; j += FNN_LANES)
            FNN_NAME(fnn_bias_act_at)(z + i * n, a + i * n, b, j, FNN_LANES, act, slope);
        if (j < n)
            FNN_NAME(fnn_bias_act_at)(z + i * n, a + i * n, b, j, n - j, act, slope);
    }
}

/* the k values at i of fnn_act_grad, stored and returned (0 past k) */
FNN_INLINE FNN_TARGET FNN_V FNN_NAME(fnn_act_grad_at)(const FNN_T* da, const FNN_T* g,
                                                      FNN_T* out, ptrdiff_t i, ptrdiff_t k,
                                                      int act, FNN_T slope) {
    FNN_V zero = {0}, v = FNN_NAME(fnn_load)(da + i, k);
    if (act == FNN_RELU)  /* 0 where z is NaN, as z > 0 says (the twin's mask) */
        v = FNN_NAME(fnn_positive)(FNN_NAME(fnn_load)(g + i, k), v, zero);
    else if (act != FNN_IDENTITY)
        v = FNN_NAME(fnn_gate)(v, FNN_NAME(fnn_load)(g + i, k), act, slope);
    FNN_NAME(fnn_store)(out + i, v, k);
    return v;
}

/* out = da g'(z) over n values, from g = z for relu and leaky_relu, g = a = act(z) for
 * sigmoid and tanh (fnn_gate; identity: da); out may be da. */
FNN_TARGET
static void FNN_NAME(fnn_act_grad)(const FNN_T* da, const FNN_T* g, FNN_T* out,
                                   ptrdiff_t n, int act, FNN_T slope) {
    ptrdiff_t i;
    for (i = 0; i + FNN_LANES <= n; i += FNN_LANES)
        FNN_NAME(fnn_act_grad_at)(da, g, out, i, FNN_LANES, act, slope);
    if (i < n)
        FNN_NAME(fnn_act_grad_at)(da, g, out, i, n - i, act, slope);
}

/* s[j .. j + k[0] + ... + k[3]) = the sums down the m rows of x (the vectors of k[q]
 * values at j + q lanes, k[0] > 0), or of x = da g'(z) (fnn_act_grad, stored into
 * out) when da is given: their sums held in registers down the rows, in row order. */
FNN_INLINE FNN_TARGET void FNN_NAME(fnn_sums_block)(const FNN_T* x, const FNN_T* da,
                                                    const FNN_T* g, FNN_T* out, FNN_T* s,
                                                    ptrdiff_t m, ptrdiff_t n, ptrdiff_t j,
                                                    const ptrdiff_t* k, int act,
                                                    FNN_T slope) {
    FNN_V sum[4] = {{0}, {0}, {0}, {0}};
    ptrdiff_t i, q;
    for (i = 0; i < m; i++)
        for (q = 0; q < 4; q++)
            if (k[q] > 0)
                sum[q] += da != NULL
                    ? FNN_NAME(fnn_act_grad_at)(da, g, out, i * n + j + q * FNN_LANES, k[q],
                                                act, slope)
                    : FNN_NAME(fnn_load)(x + i * n + j + q * FNN_LANES, k[q]);
    for (q = 0; q < 4; q++)
        if (k[q] > 0)
            FNN_NAME(fnn_store)(s + j + q * FNN_LANES, sum[q], k[q]);
}

/* s[j] = the sum of x[i n + j] over the m rows, in row order, for every column j (db =
 * the column sums of dZ), of x = da g'(z) when da is given (see fnn_sums_block): four
 * whole vectors of columns at a time (their counts constant), then the rest. */
FNN_INLINE FNN_TARGET void FNN_NAME(fnn_sums_of_rows)(const FNN_T* x, const FNN_T* da,
                                                      const FNN_T* g, FNN_T* out, FNN_T* s,
                                                      ptrdiff_t m, ptrdiff_t n, int act,
                                                      FNN_T slope) {
    const ptrdiff_t whole[4] = {FNN_LANES, FNN_LANES, FNN_LANES, FNN_LANES};
    ptrdiff_t j, q, k[4];
    for (j = 0; j + FNN_WIDE <= n; j += FNN_WIDE)
        FNN_NAME(fnn_sums_block)(x, da, g, out, s, m, n, j, whole, act, slope);
    if (j == n)
        return;
    for (q = 0; q < 4; q++) {
        ptrdiff_t left = n - j - q * FNN_LANES;
        k[q] = left < 0 ? 0 : left < FNN_LANES ? left : FNN_LANES;
    }
    FNN_NAME(fnn_sums_block)(x, da, g, out, s, m, n, j, k, act, slope);
}

FNN_TARGET
static void FNN_NAME(fnn_column_sums)(const FNN_T* x, FNN_T* s, ptrdiff_t m, ptrdiff_t n) {
    FNN_NAME(fnn_sums_of_rows)(x, NULL, NULL, NULL, s, m, n, FNN_IDENTITY, 0);
}

/* out = da g'(z) over m rows of n values (fnn_act_grad) and s = its column sums
 * (fnn_column_sums: the same bits), in one pass, inlined for each activation; out may
 * be da. */
FNN_TARGET
static void FNN_NAME(fnn_act_grad_sums)(const FNN_T* da, const FNN_T* g, FNN_T* out,
                                        FNN_T* s, ptrdiff_t m, ptrdiff_t n, int act,
                                        FNN_T slope) {
    switch (act) {
    case FNN_RELU:
        FNN_NAME(fnn_sums_of_rows)(NULL, da, g, out, s, m, n, FNN_RELU, slope);
        break;
    case FNN_LEAKY_RELU:
        FNN_NAME(fnn_sums_of_rows)(NULL, da, g, out, s, m, n, FNN_LEAKY_RELU, slope);
        break;
    default:
        FNN_NAME(fnn_sums_of_rows)(NULL, da, g, out, s, m, n, act, slope);
    }
}

/* The FNN_LANES values p[0], p[stride], p[2 stride], ... as a vector: one gather
 * instruction with AVX-512 (idx holds 0, stride, 2 stride, ... as its lanes' offsets),
 * lane by lane in the other builds. */
FNN_INLINE FNN_TARGET FNN_V FNN_NAME(fnn_gather)(const FNN_T* p, ptrdiff_t stride,
                                                 FNN_IV idx) {
#if FNN_BYTES == 64
    (void) stride;
    if (sizeof(FNN_T) == 8)
        return (FNN_V) _mm512_i64gather_pd((__m512i) idx, p, 8);
    return (FNN_V) _mm512_i32gather_ps((__m512i) idx, p, 4);
#else
    FNN_T lanes[sizeof(FNN_V) / sizeof(FNN_T)];
    FNN_V v;
    ptrdiff_t t;
    (void) idx;
    for (t = 0; t < FNN_LANES; t++)
        lanes[t] = p[t * stride];
    memcpy(&v, lanes, sizeof v);
    return v;
#endif
}

#if FNN_BYTES == 64
/* lane e of the result: lane idx[e] of a's and b's lanes end to end (vpermt2pd/ps) */
FNN_INLINE FNN_TARGET FNN_V FNN_NAME(fnn_permute2)(FNN_V a, FNN_IV idx, FNN_V b) {
    if (sizeof(FNN_T) == 8)
        return (FNN_V) _mm512_permutex2var_pd((__m512d) a, (__m512i) idx, (__m512d) b);
    return (FNN_V) _mm512_permutex2var_ps((__m512) a, (__m512i) idx, (__m512) b);
}

/* One stage of fnn_transpose_block: between r[i] and r[i + h], for every i with bit h
 * clear, the blocks of h lanes off the diagonal exchanged, one two-source permute per
 * vector. Inlined with a constant h, so that the permutes' lane tables are constants. */
FNN_INLINE FNN_TARGET void FNN_NAME(fnn_transpose_stage)(FNN_V* r, int h) {
    FNN_IV low, high;
    int i, e;
#pragma GCC unroll 16
    for (e = 0; e < FNN_LANES; e++) {  /* lanes below FNN_LANES from a, the others b */
        int chunk = e / (2 * h) * (2 * h), at = e % (2 * h);
        low[e] = at < h ? chunk + at : FNN_LANES + chunk + at - h;
        high[e] = at < h ? chunk + h + at : FNN_LANES + chunk + at;
    }
#pragma GCC unroll 16
    for (i = 0; i < FNN_LANES; i++) {
        FNN_V a = r[i], b;
        if (i & h)
            continue;
        b = r[i + h];
        r[i] = FNN_NAME(fnn_permute2)(a, low, b);
        r[i + h] = FNN_NAME(fnn_permute2)(a, high, b);
    }
}

/* The FNN_LANES x FNN_LANES block in r transposed in registers (r[c] becomes what
 * was column c): log2(FNN_LANES) stages, of h = FNN_LANES / 2 down to 1. */
FNN_INLINE FNN_TARGET void FNN_NAME(fnn_transpose_block)(FNN_V* r) {
    if (FNN_LANES == 16)
        FNN_NAME(fnn_transpose_stage)(r, 8);
    FNN_NAME(fnn_transpose_stage)(r, 4);
    FNN_NAME(fnn_transpose_stage)(r, 2);
    FNN_NAME(fnn_transpose_stage)(r, 1);
}
#endif

#if FNN_BYTES == 64
/* fnn_transpose of the first rows of src (returned: a multiple of FNN_LANES) where they
 * lie end to end (ss == cols) and 2 <= cols <= 4: FNN_LANES of them are cols whole
 * vectors, and column j's vector is taken from them by a two-source permute per pair
 * of vectors its lanes lie in, blended (a 300 x 2 batch: 0.25 us by gathers, 0.04 so). */
FNN_INLINE FNN_TARGET ptrdiff_t FNN_NAME(fnn_transpose_few)(const FNN_T* src, FNN_T* dst,
                                                            ptrdiff_t rows, ptrdiff_t cols,
                                                            ptrdiff_t ds) {
    FNN_IV idx[4];    /* column j's lanes: where each lies in its pair of vectors, */
    FNN_V second[4];  /* and 1 where that pair is the second (columns 3 and 4) */
    FNN_V v[4] = {{0}, {0}, {0}, {0}}, out;
    ptrdiff_t i, j, t;
    for (j = 0; j < cols; j++)
        for (t = 0; t < FNN_LANES; t++) {
            ptrdiff_t at = j + cols * t, from = at / FNN_LANES;  /* its vector */
            idx[j][t] = (FNN_I) (from % 2 * FNN_LANES + at % FNN_LANES);
            second[j][t] = (FNN_T) (from >= 2);
        }
    for (i = 0; i + FNN_LANES <= rows; i += FNN_LANES) {
        for (t = 0; t < cols; t++)  /* the block's own vectors, none past it */
            v[t] = FNN_NAME(fnn_load)(src + (i * cols + t * FNN_LANES), FNN_LANES);
        if (cols == 3)  /* the second pair: the third vector twice */
            v[3] = v[2];
        for (j = 0; j < cols; j++) {
            out = FNN_NAME(fnn_permute2)(v[0], idx[j], v[1]);
            if (cols > 2)
                out = FNN_NAME(fnn_positive)(second[j],
                                             FNN_NAME(fnn_permute2)(v[2], idx[j], v[3]),
                                             out);
            FNN_NAME(fnn_store)(dst + j * ds + i, out, FNN_LANES);
        }
    }
    return i;
}
#endif

/* dst (cols, rows) = src (rows, cols)^T, row i of src at src + i ss, row j of dst at
 * dst + j ds. With AVX-512, where src has a vector of rows or more and two of columns,
 * in blocks of FNN_LANES x FNN_LANES read along src's rows and transposed in registers:
 * gathers read each line FNN_LANES times, and where rows are 1 KB apart or more those
 * lines share a few of L1's sets (a 128 x 128 W^T copy took 19 us by gathers, 5.8 in
 * blocks; 64 x 64 about level). With fewer columns (a batch of samples-are-rows made
 * feature-major), a block's transposition costs as much for its few columns, and
 * gathers win (300 x 10 doubles: 0.47 against 0.82 us): with rows >= cols, each row of
 * dst is gathered from a column of src, a vector at a time; else (few long rows) value
 * by value, reading src's rows in order. */
FNN_TARGET
static void FNN_NAME(fnn_transpose)(const FNN_T* src, FNN_T* dst, ptrdiff_t rows,
                                    ptrdiff_t cols, ptrdiff_t ss, ptrdiff_t ds) {
    FNN_IV idx;
    ptrdiff_t i, j, t;
#if FNN_BYTES == 64
    if (rows >= FNN_LANES && cols >= 2 * FNN_LANES) {
        FNN_V block[FNN_LANES], zero = {0};
        ptrdiff_t n_rows, n_cols;
        for (i = 0; i < rows; i += FNN_LANES) {
            n_rows = rows - i < FNN_LANES ? rows - i : FNN_LANES;
            for (j = 0; j < cols; j += FNN_LANES) {
                n_cols = cols - j < FNN_LANES ? cols - j : FNN_LANES;
                for (t = 0; t < FNN_LANES; t++)
                    block[t] = t < n_rows ? FNN_NAME(fnn_load)(src + (i + t) * ss + j, n_cols)
                                          : zero;
                FNN_NAME(fnn_transpose_block)(block);
                for (t = 0; t < n_cols; t++)
                    FNN_NAME(fnn_store)(dst + (j + t) * ds + i, block[t], n_rows);
            }
        }
        return;
    }
    if (ss == cols && cols >= 2 && cols <= 4) {
        i = FNN_NAME(fnn_transpose_few)(src, dst, rows, cols, ds);
        for (; i < rows; i++)
            for (j = 0; j < cols; j++)
                dst[j * ds + i] = src[i * ss + j];
        return;
    }
#endif
    /* (the gather's lane offsets are FNN_I: int32 for float) */
    if (rows < cols || (sizeof(FNN_T) == 4 && ss > 0x7fffffff / FNN_LANES)) {
        for (i = 0; i < rows; i++)
            for (j = 0; j < cols; j++)
                dst[j * ds + i] = src[i * ss + j];
        return;
    }
    for (t = 0; t < FNN_LANES; t++)
        idx[t] = (FNN_I) (t * ss);
    for (j = 0; j < cols; j++) {
        const FNN_T* s = src + j;
        FNN_T* d = dst + j * ds;
        for (i = 0; i + FNN_LANES <= rows; i += FNN_LANES)
            FNN_NAME(fnn_store)(d + i, FNN_NAME(fnn_gather)(s + i * ss, ss, idx), FNN_LANES);
        for (; i < rows; i++)
            d[i] = s[i * ss];
    }
}

/* 1 when any of the size values is NaN or infinite, else 0: x * 0 is 0 for finite x
 * and NaN otherwise, so the sum of those products is 0 exactly when all are finite. */
FNN_TARGET
static int FNN_NAME(fnn_any_nonfinite)(const FNN_T* x, ptrdiff_t size) {
    FNN_V acc[4] = {{0}, {0}, {0}, {0}};
    ptrdiff_t i = 0, n, t;
    for (; i + FNN_WIDE <= size; i += FNN_WIDE)  /* four chains of adds */
        for (t = 0; t < 4; t++)
            acc[t] += FNN_NAME(fnn_load)(x + i + t * FNN_LANES, FNN_LANES) * 0;
    for (; i < size; i += n) {
        n = size - i < FNN_LANES ? size - i : FNN_LANES;
        acc[0] += FNN_NAME(fnn_load)(x + i, n) * 0;
    }
    return FNN_NAME(fnn_lanes_sum)((acc[0] + acc[1]) + (acc[2] + acc[3])) != 0;
}

/* The sum of x_i^2 over size values, in double (float32 squares overflow from 1.8e19):
 * eight values at a time converted to doubles, into eight vectors of eight running
 * sums (independent chains of adds), the rest into the lanes of their sum, whose
 * lanes are added in a fixed order at the end. */
FNN_TARGET
static double FNN_NAME(fnn_sum_squares)(const FNN_T* x, ptrdiff_t size) {
    typedef FNN_T eight __attribute__((vector_size(8 * sizeof(FNN_T))));
    typedef double eight_d __attribute__((vector_size(64)));
    eight_d sums[8] = {{0}}, v;
    eight values;
    double lanes[8];
    ptrdiff_t i = 0;
    int t;
    for (; i + 64 <= size; i += 64)
        for (t = 0; t < 8; t++) {
#if FNN_BYTES == 64  /* one instruction (GCC's conversion takes five) */
            if (sizeof(FNN_T) == 4)
                v = (eight_d) _mm512_cvtps_pd(_mm256_loadu_ps((const float*) x + i + 8 * t));
            else
#endif
            {
                memcpy(&values, x + i + 8 * t, sizeof values);
                v = __builtin_convertvector(values, eight_d);
            }
            sums[t] += v * v;
        }
    v = ((sums[0] + sums[1]) + (sums[2] + sums[3]))
        + ((sums[4] + sums[5]) + (sums[6] + sums[7]));
    memcpy(lanes, &v, sizeof lanes);
    for (; i < size; i++)
        lanes[i % 8] += (double) x[i] * x[i];
    return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
        + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

/* dst += src over size values; 1 when any sum is NaN or infinite (as fnn_any_nonfinite,
 * in the same pass), else 0. */
FNN_TARGET
static int FNN_NAME(fnn_add_into)(FNN_T* dst, const FNN_T* src, ptrdiff_t size) {
    FNN_V bad[2] = {{0}, {0}}, v;
    ptrdiff_t i = 0, n;
    for (; i + 2 * FNN_LANES <= size; i += 2 * FNN_LANES) {
        v = FNN_NAME(fnn_load)(dst + i, FNN_LANES) + FNN_NAME(fnn_load)(src + i, FNN_LANES);
        FNN_NAME(fnn_store)(dst + i, v, FNN_LANES);
        bad[0] += v * 0;
        v = FNN_NAME(fnn_load)(dst + i + FNN_LANES, FNN_LANES)
            + FNN_NAME(fnn_load)(src + i + FNN_LANES, FNN_LANES);
        FNN_NAME(fnn_store)(dst + i + FNN_LANES, v, FNN_LANES);
        bad[1] += v * 0;
    }
    for (; i < size; i += n) {
        n = size - i < FNN_LANES ? size - i : FNN_LANES;
        v = FNN_NAME(fnn_load)(dst + i, n) + FNN_NAME(fnn_load)(src + i, n);
        FNN_NAME(fnn_store)(dst + i, v, n);
        bad[0] += v * 0;
    }
    return FNN_NAME(fnn_lanes_sum)(bad[0] + bad[1]) != 0;
}

/* x = n ln 2 + r for x <= 0: returns r, |r| <= ln(2) / 2, exact (ln 2 in two parts),
 * and n = round(x / ln 2) as an integer in *k; the range reduction of exp
 * (fnn_exps_nonpositive) and of tanh's expm1. */
FNN_INLINE FNN_TARGET FNN_V FNN_NAME(fnn_ln2_reduce)(FNN_V x, FNN_IV* k) {
    const int dbl = sizeof(FNN_T) == 8;
    /* adding then subtracting shift rounds to an integer */
    const FNN_T shift = dbl ? 0x1.8p52 : 0x1.8p23;
    const FNN_T ln2_hi = dbl ? 0x1.62e42feep-1 : 0x1.62e4p-1;  /* n ln2_hi is exact */
    const FNN_T ln2_lo = dbl ? 1.9082149292705877e-10 : 1.4286067653e-06f;
    FNN_V zero = {0}, t = x * (FNN_T) 1.4426950408889634 + shift, n = t - shift;
    *k = (FNN_IV) t - (FNN_IV) (zero + shift);
    return (x - n * ln2_hi) - n * ln2_lo;
}

/* e^x for x <= 0, lane by lane, for count (<= FNN_CHAINS) vectors x in place, their
 * steps interleaved, within 2 ulp (-inf gives 0, NaN stays NaN): as 2^n e^r
 * (fnn_ln2_reduce), e^r by its Taylor series to r^13 / 13! (double) or r^7 / 7!
 * (float), whose remainder is below 2^-57 (2^-27) relative. 2^n is two normal powers of
 * two, so results in the subnormal range round once, like libm's. */
FNN_INLINE FNN_TARGET void FNN_NAME(fnn_exps_nonpositive)(FNN_V* x, int count) {
    const int dbl = sizeof(FNN_T) == 8, terms = dbl ? 14 : 8;
    const FNN_I bias = dbl ? 1023 : 127, mantissa = dbl ? 52 : 23;
    const FNN_T lowest = dbl ? -746.0 : -104.0;  /* below, e^x rounds to 0 */
    FNN_V zero = {0}, r[FNN_CHAINS], p[FNN_CHAINS];
    FNN_IV k[FNN_CHAINS], half;
    int i, q;
    for (q = 0; q < count; q++) {
        x[q] = FNN_NAME(fnn_positive)(lowest - x[q], zero + lowest, x[q]);  /* NaN stays */
        r[q] = FNN_NAME(fnn_ln2_reduce)(x[q], &k[q]);
        p[q] = zero + (FNN_T) fnn_inverse_factorial[terms - 1];
    }
    for (i = terms - 2; i >= 0; i--)
        for (q = 0; q < count; q++)
            p[q] = p[q] * r[q] + (FNN_T) fnn_inverse_factorial[i];
    for (q = 0; q < count; q++) {
        half = k[q] >> 1;
        x[q] = p[q] * (FNN_V) ((FNN_UV) (k[q] - half + bias) << mantissa)
                    * (FNN_V) ((FNN_UV) (half + bias) << mantissa);
    }
}

FNN_INLINE FNN_TARGET FNN_V FNN_NAME(fnn_exp_nonpositive)(FNN_V x) {
    FNN_NAME(fnn_exps_nonpositive)(&x, 1);
    return x;
}

/* 1 / (1 + e^-v) as (1 or e) / (1 + e) with e = e^-|v| (which never overflows), lane
 * by lane, for count vectors v in place (fnn_exps_nonpositive's chains); e gets e. */
FNN_INLINE FNN_TARGET void FNN_NAME(fnn_sigmoids_of)(FNN_V* v, FNN_V* e, int count) {
    FNN_V zero = {0}, one = zero + 1;
    int q;
    for (q = 0; q < count; q++)
        e[q] = FNN_NAME(fnn_positive)(v[q], -v[q], v[q]);  /* -|v| */
    FNN_NAME(fnn_exps_nonpositive)(e, count);
    for (q = 0; q < count; q++)
        v[q] = FNN_NAME(fnn_positive)(v[q], one, e[q]) / (1 + e[q]);
}

/* a_i = 1 / (1 + e^-z_i), as fnn_sigmoids_of, FNN_CHAINS vectors at a time. a may be z. */
FNN_TARGET
static void FNN_NAME(fnn_sigmoid)(const FNN_T* z, FNN_T* a, ptrdiff_t size) {
    FNN_V v[FNN_CHAINS], e[FNN_CHAINS];
    ptrdiff_t i = 0, n;
    int q;
    for (; i + FNN_CHAINS * FNN_LANES <= size; i += FNN_CHAINS * FNN_LANES) {
        for (q = 0; q < FNN_CHAINS; q++)
            v[q] = FNN_NAME(fnn_load)(z + i + q * FNN_LANES, FNN_LANES);
        FNN_NAME(fnn_sigmoids_of)(v, e, FNN_CHAINS);
        for (q = 0; q < FNN_CHAINS; q++)
            FNN_NAME(fnn_store)(a + i + q * FNN_LANES, v[q], FNN_LANES);
    }
    for (; i < size; i += n) {
        n = size - i < FNN_LANES ? size - i : FNN_LANES;
        v[0] = FNN_NAME(fnn_load)(z + i, n);
        FNN_NAME(fnn_sigmoids_of)(v, e, 1);
        FNN_NAME(fnn_store)(a + i, v[0], n);
    }
}

/* a_i = tanh(z_i) = s (1 - e) / (1 + e) with e = e^-y, y = 2 |z_i|, s the sign of z_i
 * (-0 stays -0), within 4 ulp. 1 - e is -expm1(-y), taken as exp's is
 * (fnn_ln2_reduce): -y = n ln 2 + r with |r| <= ln(2) / 2, expm1(-y) = 2^n expm1(r)
 * + (2^n - 1), expm1(r) = r (1 + r/2! + r^2/3! + ...) to r^12 / 13! (double) or
 * r^7 / 8! (float). Near 0 (n = 0) that is expm1(r) itself, free of the cancellation
 * 1 - e would suffer; further out 2^n - 1 is exact and the larger term. One series
 * for every z (the series of 1 - e below ln 2 and exp above took twice the work).
 * 1 + e is 2 - (1 - e). Past y = 64 (float: 32) e is below half an ulp of 1, and y is
 * held there. a may be z. */
FNN_TARGET
static void FNN_NAME(fnn_tanh)(const FNN_T* z, FNN_T* a, ptrdiff_t size) {
    const int dbl = sizeof(FNN_T) == 8, terms = dbl ? 13 : 8;
    const FNN_I bias = dbl ? 1023 : 127, mantissa = dbl ? 52 : 23;
    const FNN_T lowest = dbl ? -64.0 : -32.0;
    FNN_V zero = {0};
    FNN_IV sign = (FNN_IV) -zero;  /* the sign bit alone */
    ptrdiff_t i, n;
    int k;
    for (i = 0; i < size; i += n) {
        FNN_V v, x, r, q, s, num;
        FNN_IV power;
        n = size - i < FNN_LANES ? size - i : FNN_LANES;
        v = FNN_NAME(fnn_load)(z + i, n);
        x = -2 * (FNN_V) ((FNN_IV) v & ~sign);  /* -y */
        x = FNN_NAME(fnn_positive)(lowest - x, zero + lowest, x);  /* NaN stays */
        r = FNN_NAME(fnn_ln2_reduce)(x, &power);
        q = zero + (FNN_T) fnn_inverse_factorial[terms];
        for (k = terms - 1; k >= 1; k--)  /* expm1(r) / r = sum r^(k-1) / k! */
            q = q * r + (FNN_T) fnn_inverse_factorial[k];
        s = (FNN_V) ((FNN_UV) (power + bias) << mantissa);  /* 2^n */
        num = zero - (s * (r * q) + (s - 1));  /* 1 - e = -expm1(-y), +0 at 0 */
        num = num / (2 - num);
        FNN_NAME(fnn_store)(a + i, (FNN_V) ((FNN_IV) num | ((FNN_IV) v & sign)), n);
    }
}

/* p = softmax(z) over one row of k values: e^(z_j - zmax) (fnn_exp_nonpositive, within
 * 2 ulp: z_j - zmax <= 0) over their sum 1 + rest, a vector at a time (libm's exp took
 * one call a value); returns zmax, with rest in *rest for the caller's log1p. rest is
 * the sum of every e but the first maximum's (which is exactly 1), summed apart so that
 * a loss near 0, log(1 + rest), keeps its relative precision: with the 1 inside the
 * sum, rest's bits below 2^-53 were lost, a relative error of 1e-10 for a loss of
 * 1e-6. zmax is the scalar max from z[0], which skips a NaN after z[0]; that NaN's e is
 * NaN, and so are rest and every p. rest is the lanes' sum (fnn_lanes_sum) of the
 * vectors' sum. */
FNN_TARGET
static FNN_T FNN_NAME(fnn_softmax_row)(const FNN_T* z, FNN_T* p, ptrdiff_t k, FNN_T* rest) {
    static const FNN_T lane[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    FNN_V zero = {0}, total = zero, lanes = FNN_NAME(fnn_load)(lane, FNN_LANES);
    FNN_T zmax = z[0], s;
    ptrdiff_t j, n, at = 0;
    for (j = 1; j < k; j++)
        if (z[j] > zmax) {
            zmax = z[j];
            at = j;
        }
    for (j = 0; j < k; j += n) {
        FNN_V e, inside, away;
        n = k - j < FNN_LANES ? k - j : FNN_LANES;
        inside = (FNN_T) n - lanes;  /* > 0 in the row */
        away = (FNN_T) (at - j) - lanes;  /* 0 at the maximum's lane */
        /* the lanes past k: e^0, then 0 (e^-inf would underflow through subnormals,
         * whose microcode assist cost more than the exps: 3% of a one-sample
         * prediction) */
        e = FNN_NAME(fnn_exp_nonpositive)(
            FNN_NAME(fnn_positive)(inside, FNN_NAME(fnn_load)(z + j, n) - zmax, zero));
        e = FNN_NAME(fnn_positive)(inside, e, zero);
        FNN_NAME(fnn_store)(p + j, e, n);
        total += FNN_NAME(fnn_positive)(away * away, e, zero);
    }
    *rest = FNN_NAME(fnn_lanes_sum)(total);
    s = 1 + *rest;
    for (j = 0; j < k; j += n) {
        n = k - j < FNN_LANES ? k - j : FNN_LANES;
        FNN_NAME(fnn_store)(p + j, FNN_NAME(fnn_load)(p + j, n) / s, n);
    }
    return zmax;
}

/* log(1 + x) for x in [0, 1] (the e = exp(-|z|) of the binary cross-entropy), lane by
 * lane, for count (<= FNN_CHAINS) vectors x in place, as 2 atanh(s) = 2 s (1 + t R(t))
 * with s = x / (2 + x) <= 1/3 and t = s^2 <= 1/9, where R(t) = 1/3 + t/5 + t^2/7 + ...
 * is taken as its Chebyshev fit on [0, 1/9] (mpmath's chebyfit, computed once: 11
 * terms for double, 5 for float, against 16 and 8 of the series for the same error):
 * t R(t) within 2.2e-18 (double, 2^-58) and 1e-9 (float, 2^-30) of the truth. s
 * carries the relative accuracy of x itself, so small x lose nothing (log1p's point).
 * The loss is within about 3 ulp, in vector registers, where libm's log1p is one scalar
 * call per value. */
FNN_INLINE FNN_TARGET void FNN_NAME(fnn_log1ps_unit)(FNN_V* x, int count) {
    static const double fit_double[11] = {
        0.3333333333333333, 0.19999999999999762, 0.1428571428580005, 0.11111111099118386,
        0.09090909948981357, 0.07692271982430275, 0.06667589315724629, 0.05867139530651599,
        0.05422589197440007, 0.03746071897775383, 0.07815288900461426};
    static const double fit_float[5] = {
        0.3333333432674408, 0.19999852776527405, 0.142961785197258, 0.1085328757762909,
        0.11612164974212646};
    const int terms = sizeof(FNN_T) == 8 ? 11 : 5;
    const double* c = sizeof(FNN_T) == 8 ? fit_double : fit_float;
    FNN_V zero = {0}, s[FNN_CHAINS], t[FNN_CHAINS], r[FNN_CHAINS];
    int q, k;
    for (q = 0; q < count; q++) {
        s[q] = x[q] / (x[q] + 2);
        t[q] = s[q] * s[q];
        r[q] = zero + (FNN_T) c[terms - 1];
    }
    for (k = terms - 2; k >= 0; k--)  /* Horner's rule, the chains interleaved */
        for (q = 0; q < count; q++)
            r[q] = r[q] * t[q] + (FNN_T) c[k];
    /* 1 + t R (R's rounding shrinks by t, as in Horner's last step) */
    for (q = 0; q < count; q++)
        x[q] = 2 * s[q] * (1 + t[q] * r[q]);
}

/* The binary cross-entropy from logits z and targets y over size values, in one pass:
 * with e = e^-|z|, a = sigmoid(z) (fnn_sigmoids_of), dz = (a - y) scale and the loss
 * max(z, 0) - z y + log(1 + e), FNN_CHAINS vectors at a time. Returns the sum of the
 * losses: the vectors of each run of eight added lane by lane, that sum's lanes summed
 * (fnn_lanes_sum) and added to a double, in order (a sum of lanes for every vector made
 * a chain that cost a fifth of the time). a may be z. */
FNN_TARGET
static double FNN_NAME(fnn_sigmoid_bce)(const FNN_T* z, const FNN_T* y, FNN_T* a,
                                        FNN_T* dz, ptrdiff_t size, FNN_T scale) {
    static const FNN_T lane[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    FNN_V zero = {0}, v[FNN_CHAINS], t[FNN_CHAINS], e[FNN_CHAINS], p[FNN_CHAINS], loss;
    double total = 0;
    ptrdiff_t i = 0, n[FNN_CHAINS], at[FNN_CHAINS];
    int run, count, q;
    while (i < size) {
        FNN_V sum = zero;
        for (run = 0; run < 8 && i < size; run += count) {
            for (count = 0; count < FNN_CHAINS && run + count < 8 && i < size; count++) {
                n[count] = size - i < FNN_LANES ? size - i : FNN_LANES;
                at[count] = i;
                v[count] = FNN_NAME(fnn_load)(z + i, n[count]);
                t[count] = FNN_NAME(fnn_load)(y + i, n[count]);
                i += n[count];
            }
            for (q = 0; q < count; q++)
                p[q] = v[q];
            if (count == FNN_CHAINS) {  /* (a constant count in each) */
                FNN_NAME(fnn_sigmoids_of)(p, e, FNN_CHAINS);
                FNN_NAME(fnn_log1ps_unit)(e, FNN_CHAINS);
            } else {
                FNN_NAME(fnn_sigmoids_of)(p, e, 1);
                FNN_NAME(fnn_log1ps_unit)(e, 1);
            }
            for (q = 0; q < count; q++) {
                loss = (FNN_NAME(fnn_positive)(v[q], v[q], zero) - v[q] * t[q]) + e[q];
                if (n[q] < FNN_LANES)  /* the lanes past size hold log(2): 0 instead */
                    loss = FNN_NAME(fnn_positive)(
                        (FNN_T) n[q] - FNN_NAME(fnn_load)(lane, FNN_LANES), loss, zero);
                FNN_NAME(fnn_store)(a + at[q], p[q], n[q]);
                FNN_NAME(fnn_store)(dz + at[q], (p[q] - t[q]) * scale, n[q]);
                sum += loss;
            }
        }
        total += FNN_NAME(fnn_lanes_sum)(sum);
    }
    return total;
}

/* Adam's update of size parameters p with gradients g and moments m1, m2 (the formula
 * and its settings: _ops.pxd's _adam), value by value:
 *   g' = g + wd p;  m1 = b1 m1 + c1 g';  m2 = b2 m2 + c2 g'^2;
 *   p -= step m1 / (sqrt(m2) k + eps).
 * The square root and the division make the divider the bound, about five cycles a
 * value whatever the vector width. With AVX-512 both can come instead from the 14-bit
 * estimates vrsqrt14 and vrcp14, refined on the multiply-add units to 28 bits (a step
 * of Goldschmidt's iteration for the root, of Newton's for the reciprocal) and then
 * corrected by the residual (m2 - s^2 for the root s, a - d q for the quotient
 * q = a / d; GCC fuses these into multiply-adds), which leaves them within about an
 * ulp of the exact ones (the whole quotient within 3.1 ulp of one computed in long
 * double, over a million random moments from 1e-300 to 1e300, as the exact formula).
 * A vector where those steps do not hold (m2 negative, subnormal or not finite, step
 * m1 subnormal or not finite, the quotient not finite, a denominator not positive)
 * takes the exact formula, as the other builds do throughout. fnn_adam_way (_vector.h)
 * chooses: every vector from the estimates (Intel's CPUs), every one from the divider
 * (the exact formula a vector at a time, with the bits of one value at a time), or in
 * float64 the fourth vector of every four from the estimates and the others from the
 * divider, side by side (AMD's; float32 there takes the divider throughout). The
 * fours count from p, so a call on part of a W or b must start a multiple of
 * FNN_ADAM_PERIOD values from its start for the same values to take the same way. */
FNN_INLINE FNN_TARGET FNN_T FNN_NAME(fnn_adam_exact)(FNN_T* p, const FNN_T* g, FNN_T* m1,
                                                     FNN_T* m2, ptrdiff_t size, FNN_T step,
                                                     FNN_T b1, FNN_T b2, FNN_T c1, FNN_T c2,
                                                     FNN_T k, FNN_T eps, FNN_T wd) {
    ptrdiff_t i;
    FNN_T bad = 0;  /* the sum of the new p times 0: NaN once one is infinite or NaN */
    for (i = 0; i < size; i++) {
        FNN_T gi = g[i] + wd * p[i];
        m1[i] = b1 * m1[i] + c1 * gi;
        m2[i] = b2 * m2[i] + c2 * (gi * gi);
        /* (the root cast: ?: makes sqrtf's float a double, and float's update with it) */
        p[i] -= step * m1[i] / ((FNN_T) (sizeof(FNN_T) == 8 ? sqrt(m2[i]) : sqrtf(m2[i])) * k
                                + eps);
        bad += p[i] * 0;
    }
    return bad;
}

#if FNN_BYTES == 64
/* Whether a lane breaks what the refined root and quotient of fnn_adam need: the
 * moment v neither 0 nor a normal finite value (negative or subnormal, where the
 * root's residual would underflow, infinite or NaN), the step's numerator a = step m1
 * subnormal (where the quotient's residual would: off by 5e5 ulp, measured), the
 * denominator d not a normal positive value, or the quotient q not finite (as an
 * infinite or NaN step m1 makes it). One class test (vfpclass, AVX-512 DQ) for each,
 * tested once: fewer operations than the compares that did it without the test of a.
 * Classes: 0x01 quiet NaN, 0x02 +0, 0x04 -0, 0x08 +inf, 0x10 -inf, 0x20 subnormal,
 * 0x40 negative finite, 0x80 signalling NaN. */
FNN_INLINE FNN_TARGET int FNN_NAME(fnn_adam_unsafe)(FNN_V v, FNN_V a, FNN_V d, FNN_V q) {
    if (sizeof(FNN_T) == 8)
        return (_mm512_fpclass_pd_mask((__m512d) v, 0xf9)
                | _mm512_fpclass_pd_mask((__m512d) a, 0x20)
                | _mm512_fpclass_pd_mask((__m512d) d, 0xff)
                | _mm512_fpclass_pd_mask((__m512d) q, 0x99)) != 0;
    return (_mm512_fpclass_ps_mask((__m512) v, 0xf9)
            | _mm512_fpclass_ps_mask((__m512) a, 0x20)
            | _mm512_fpclass_ps_mask((__m512) d, 0xff)
            | _mm512_fpclass_ps_mask((__m512) q, 0x99)) != 0;
}

/* fnn_adam's vector at p by the divider: fnn_adam_exact's formula, in its order; adds
 * the new p times 0 to *bad. */
FNN_INLINE FNN_TARGET void FNN_NAME(fnn_adam_divided)(FNN_T* p, const FNN_T* g, FNN_T* m1,
                                                      FNN_T* m2, FNN_T step, FNN_T b1,
                                                      FNN_T b2, FNN_T c1, FNN_T c2, FNN_T k,
                                                      FNN_T eps, FNN_T wd, FNN_V* bad) {
    FNN_V pv = FNN_NAME(fnn_load)(p, FNN_LANES);
    FNN_V gv = FNN_NAME(fnn_load)(g, FNN_LANES) + wd * pv;
    FNN_V u = b1 * FNN_NAME(fnn_load)(m1, FNN_LANES) + c1 * gv;
    FNN_V v = b2 * FNN_NAME(fnn_load)(m2, FNN_LANES) + c2 * (gv * gv);
    FNN_V root = sizeof(FNN_T) == 8 ? (FNN_V) _mm512_sqrt_pd((__m512d) v)
                                    : (FNN_V) _mm512_sqrt_ps((__m512) v);
    pv -= step * u / (root * k + eps);
    FNN_NAME(fnn_store)(m1, u, FNN_LANES);
    FNN_NAME(fnn_store)(m2, v, FNN_LANES);
    FNN_NAME(fnn_store)(p, pv, FNN_LANES);
    *bad += pv * 0;
}

/* fnn_adam's vector at p from the refined estimates, or where a lane does not allow
 * them (fnn_adam_unsafe) from fnn_adam_exact; adds the new p times 0 to *bad. */
FNN_INLINE FNN_TARGET void FNN_NAME(fnn_adam_estimated)(FNN_T* p, const FNN_T* g,
                                                        FNN_T* m1, FNN_T* m2, FNN_T step,
                                                        FNN_T b1, FNN_T b2, FNN_T c1,
                                                        FNN_T c2, FNN_T k, FNN_T eps,
                                                        FNN_T wd, FNN_V* bad) {
    FNN_V zero = {0};
    FNN_V pv = FNN_NAME(fnn_load)(p, FNN_LANES);
    FNN_V gv = FNN_NAME(fnn_load)(g, FNN_LANES) + wd * pv;
    FNN_V u = b1 * FNN_NAME(fnn_load)(m1, FNN_LANES) + c1 * gv;
    FNN_V v = b2 * FNN_NAME(fnn_load)(m2, FNN_LANES) + c2 * (gv * gv);
    FNN_V y, half, e, r, root, d, a, q;
    /* root = sqrt(v): from y ~ 1 / sqrt(v), one step of Goldschmidt's coupled
     * iteration (g -> sqrt(v), h -> 1 / (2 sqrt(v)), 28 bits), then g corrected by
     * its residual, g + h (v - g^2): a shorter chain of dependent operations than
     * a Newton step on y first (10% faster in C, as accurate); 0 where v is 0
     * (where the estimate is infinite) */
    y = sizeof(FNN_T) == 8 ? (FNN_V) _mm512_rsqrt14_pd((__m512d) v)
                           : (FNN_V) _mm512_rsqrt14_ps((__m512) v);
    root = v * y;
    half = (FNN_T) 0.5 * y;
    e = (FNN_T) 0.5 - root * half;
    root = root + root * e;
    half = half + half * e;
    root = FNN_NAME(fnn_positive)(v, root + half * (v - root * root), zero);
    /* q = a / d: r ~ 1 / d, a r corrected by its residual */
    d = root * k + eps;
    a = step * u;
    r = sizeof(FNN_T) == 8 ? (FNN_V) _mm512_rcp14_pd((__m512d) d)
                           : (FNN_V) _mm512_rcp14_ps((__m512) d);
    r = r + r * (1 - d * r);
    q = a * r;
    q = q + (a - d * q) * r;
    if (FNN_NAME(fnn_adam_unsafe)(v, a, d, q)) {
        *bad += FNN_NAME(fnn_adam_exact)(p, g, m1, m2, FNN_LANES, step, b1, b2, c1, c2, k,
                                         eps, wd);
        return;
    }
    pv -= q;
    FNN_NAME(fnn_store)(m1, u, FNN_LANES);
    FNN_NAME(fnn_store)(m2, v, FNN_LANES);
    FNN_NAME(fnn_store)(p, pv, FNN_LANES);
    *bad += pv * 0;
}
#endif

/* Returns whether a parameter it wrote is infinite or NaN (the update overflowed). */
FNN_TARGET
static int FNN_NAME(fnn_adam)(FNN_T* p, const FNN_T* g, FNN_T* m1, FNN_T* m2,
                              ptrdiff_t size, FNN_T step, FNN_T b1, FNN_T b2, FNN_T c1,
                              FNN_T c2, FNN_T k, FNN_T eps, FNN_T wd) {
    ptrdiff_t i = 0;
    FNN_T bad = 0;
#if FNN_BYTES == 64
#define FNN_ADAM_AT(way, at) FNN_NAME(way)(p + (at), g + (at), m1 + (at), m2 + (at), step, \
                                           b1, b2, c1, c2, k, eps, wd, &bad_lanes)
    FNN_V bad_lanes = {0};
    int way = fnn_adam_way();
    if (way == FNN_ADAM_MIXED && sizeof(FNN_T) == 8) {  /* FNN_ADAM_PERIOD a round */
        for (; i + 4 * FNN_LANES <= size; i += 4 * FNN_LANES) {
            FNN_ADAM_AT(fnn_adam_divided, i);
            FNN_ADAM_AT(fnn_adam_divided, i + FNN_LANES);
            FNN_ADAM_AT(fnn_adam_divided, i + 2 * FNN_LANES);
            FNN_ADAM_AT(fnn_adam_estimated, i + 3 * FNN_LANES);
        }
    }
    if (way == FNN_ADAM_ESTIMATES) {
        for (; i + FNN_LANES <= size; i += FNN_LANES)
            FNN_ADAM_AT(fnn_adam_estimated, i);
    }
    for (; i + FNN_LANES <= size; i += FNN_LANES)
        FNN_ADAM_AT(fnn_adam_divided, i);
#undef FNN_ADAM_AT
    bad = FNN_NAME(fnn_lanes_sum)(bad_lanes);
#endif
    bad += FNN_NAME(fnn_adam_exact)(p + i, g + i, m1 + i, m2 + i, size - i, step, b1, b2, c1,
                                    c2, k, eps, wd);
    return bad != bad;
}

#if FNN_BYTES == 64
#include "_gemm_kernels.h"
#endif

#undef FNN_V
#undef FNN_IV
#undef FNN_UV
#undef FNN_LANES
#undef FNN_WIDE
#undef FNN_GRAD_ROWS
#undef FNN_GRAD_SUMS
#undef FNN_UNITS
