/* The AVX-512 build's matrix product and matrix-vector product (included by
 * _vector_kernels.h in that build only; fnn_gemv at the end).
 * C (m, n) = A (m, k) B (k, n) into row-major C, for the engine's GEMM layers, where
 * OpenBLAS packs both operands on every call (12% of a tabular step). Like BLIS's
 * kernels, with one operand packed: B in blocks of FNN_GEMM_KC rows by FNN_GEMM_NR
 * columns, copied into an aligned scratch that stays in L1 (zero past the last column),
 * each swept by A in tiles of FNN_GEMM_MR rows, whose values it reads where they are:
 * MR x NV vector accumulators (24 of the 32 registers), and for each p one load of B per
 * vector and one broadcast of A per row. Each C value is, for each block of rows of B in
 * order, one chain of fused multiply-adds over its p (from zero), added to what C holds
 * from the blocks before: a fixed order, so its bits do not depend on m or on which rows
 * a thread takes, and the rounding error grows with the block (128), not with k (dW sums
 * over every row of a batch: one chain over 100,000 rows was off by 1.8e-5 in float32). */

#define FNN_GEMM_MR 6
#define FNN_GEMM_NV 4
#define FNN_GEMM_NR (FNN_GEMM_NV * FNN_LANES)
#define FNN_GEMM_KC ((ptrdiff_t) (FNN_GEMM_PACK_BYTES / (FNN_GEMM_NR * sizeof(FNN_T))))

/* rows [p0, p0 + kc) and columns [j0, j0 + nv L) of B into pack (kc, FNN_GEMM_NR):
 * B(p, j) at b[p brs + j bcs], where bcs = 1 (rows of B) or brs = 1 (B a transposed
 * row-major array, W^T); the last vector has `last` columns of B, then zeros. Rows
 * a vector at a time; a transposed B in blocks of FNN_LANES x FNN_LANES, read along its
 * array's rows and transposed in registers (gathering its columns read every cache
 * line FNN_LANES times, and where rows are 1 or 2 KB apart those lines fall in a few
 * of L1's sets and evict each other: the pack of W^T for a 256-wide layer cost a fifth
 * of its product). */
FNN_INLINE FNN_TARGET void FNN_NAME(fnn_gemm_pack)(const FNN_T* b, ptrdiff_t brs,
                                                   ptrdiff_t bcs, ptrdiff_t kc, int nv,
                                                   ptrdiff_t last, FNN_T* pack) {
    ptrdiff_t p, n;
    int v, r;
    if (bcs == 1) {
        for (p = 0; p < kc; p++)
            for (v = 0; v < nv; v++)
                *(FNN_V*) (pack + p * FNN_GEMM_NR + v * FNN_LANES) = FNN_NAME(fnn_load)(
                    b + p * brs + v * FNN_LANES, v == nv - 1 ? last : FNN_LANES);
        return;
    }
    for (v = 0; v < nv; v++) {
        ptrdiff_t columns = v == nv - 1 ? last : FNN_LANES;
        for (p = 0; p < kc; p += n) {
            FNN_V block[FNN_LANES], zero = {0};
            n = kc - p < FNN_LANES ? kc - p : FNN_LANES;
            for (r = 0; r < FNN_LANES; r++)  /* r: a column of B, a row of its array */
                block[r] = r < columns
                    ? FNN_NAME(fnn_load)(b + (v * FNN_LANES + r) * bcs + p, n) : zero;
            FNN_NAME(fnn_transpose_block)(block);
            for (r = 0; r < n; r++)
                *(FNN_V*) (pack + (p + r) * FNN_GEMM_NR + v * FNN_LANES) = block[r];
        }
    }
}

/* a b + c, fused (explicitly: contracting a * b + c is up to the compiler's flags) */
FNN_INLINE FNN_TARGET FNN_V FNN_NAME(fnn_fma)(FNN_V a, FNN_V b, FNN_V c) {
    if (sizeof(FNN_T) == 8)
        return (FNN_V) _mm512_fmadd_pd((__m512d) a, (__m512d) b, (__m512d) c);
    return (FNN_V) _mm512_fmadd_ps((__m512) a, (__m512) b, (__m512) c);
}

/* C[i0 : i0 + mr, j0 : j0 + nv L] (the last vector `last` columns) = A's mr rows times
 * the packed block of kc rows, plus what C holds when accumulate. A's rows past mr
 * repeat its last row (computed, not stored), so that every tile has MR rows of
 * accumulators; inlined with a constant nv. */
FNN_INLINE FNN_TARGET void FNN_NAME(fnn_gemm_tile)(int nv, ptrdiff_t mr, const FNN_T* a,
                                                   ptrdiff_t ars, ptrdiff_t acs,
                                                   const FNN_T* pack, ptrdiff_t kc,
                                                   FNN_T* c, ptrdiff_t ldc, ptrdiff_t last,
                                                   int accumulate) {
    FNN_V acc[FNN_GEMM_MR][FNN_GEMM_NV], zero = {0};
    const FNN_T* row[FNN_GEMM_MR];
    ptrdiff_t p;
    int i, v;
    for (i = 0; i < FNN_GEMM_MR; i++) {
        row[i] = a + (i < mr ? i : mr - 1) * ars;
        for (v = 0; v < nv; v++)
            acc[i][v] = zero;
    }
    for (p = 0; p < kc; p++) {
        const FNN_V* bp = (const FNN_V*) (pack + p * FNN_GEMM_NR);
        for (i = 0; i < FNN_GEMM_MR; i++) {
            FNN_V ai = sizeof(FNN_T) == 8 ? (FNN_V) _mm512_set1_pd(row[i][p * acs])
                                          : (FNN_V) _mm512_set1_ps(row[i][p * acs]);
            for (v = 0; v < nv; v++)
                acc[i][v] = FNN_NAME(fnn_fma)(ai, bp[v], acc[i][v]);
        }
    }
    for (i = 0; i < mr; i++)
        for (v = 0; v < nv; v++) {
            FNN_T* at = c + i * ldc + v * FNN_LANES;
            ptrdiff_t n = v == nv - 1 ? last : FNN_LANES;
            FNN_NAME(fnn_store)(at, accumulate ? FNN_NAME(fnn_load)(at, n) + acc[i][v]
                                               : acc[i][v], n);
        }
}

/* C (m, n) = A (m, k) B (k, n), C row-major with row stride ldc, A(i, p) at
 * a[i ars + p acs] and B(p, j) at b[p brs + j bcs] (a row-major array or its
 * transpose each); scratch: FNN_GEMM_SCRATCH bytes, for the packed blocks of B. */
FNN_TARGET
static void FNN_NAME(fnn_gemm)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const FNN_T* a,
                               ptrdiff_t ars, ptrdiff_t acs, const FNN_T* b, ptrdiff_t brs,
                               ptrdiff_t bcs, FNN_T* c, ptrdiff_t ldc, void* scratch) {
    FNN_T* pack = (FNN_T*) ((char*) scratch + (64 - (size_t) scratch % 64) % 64);
    ptrdiff_t p0, j0, i0, kc, nc, last, i;
    int nv;
    if (k == 0)
        for (i = 0; i < m; i++)
            memset(c + i * ldc, 0, n * sizeof(FNN_T));
    for (p0 = 0; p0 < k; p0 += kc) {
        kc = k - p0 < FNN_GEMM_KC ? k - p0 : FNN_GEMM_KC;
        for (j0 = 0; j0 < n; j0 += FNN_GEMM_NR) {
            nc = n - j0 < FNN_GEMM_NR ? n - j0 : FNN_GEMM_NR;
            nv = (int) ((nc + FNN_LANES - 1) / FNN_LANES);
            last = nc - (nv - 1) * FNN_LANES;
            FNN_NAME(fnn_gemm_pack)(b + p0 * brs + j0 * bcs, brs, bcs, kc, nv, last, pack);
            for (i0 = 0; i0 < m; i0 += FNN_GEMM_MR) {
#define FNN_GEMM_TILE(nv) \
    FNN_NAME(fnn_gemm_tile)(nv, m - i0 < FNN_GEMM_MR ? m - i0 : FNN_GEMM_MR, \
                            a + i0 * ars + p0 * acs, ars, acs, pack, kc, c + i0 * ldc + j0, \
                            ldc, last, p0 > 0)
                switch (nv) {  /* a constant nv in each */
                case 1: FNN_GEMM_TILE(1); break;
                case 2: FNN_GEMM_TILE(2); break;
                case 3: FNN_GEMM_TILE(3); break;
                default: FNN_GEMM_TILE(FNN_GEMM_NV); break;
                }
#undef FNN_GEMM_TILE
            }
        }
    }
}

/* y (n) = A x + b for A (n, k) row-major and b NULL or (n): one sample through a
 * layer, where OpenBLAS's gemv took half of a one-sample prediction (measured gains:
 * _own_gemv in _ops.pxd). FNN_LANES rows of A at a time, each a vector accumulator
 * along k that shares each load of x (rows past n repeat the last, computed, not
 * stored), in two sets (even and odd vectors of k, so that the multiply-adds' latency
 * does not pace a row), then their lanes summed together (fnn_lane_sums): a fixed
 * order of chains, sets and tree. With out not NULL, also out (n) = act(y) for act
 * identity, relu or leaky_relu, as fnn_bias_act computes it. */
FNN_TARGET
static void FNN_NAME(fnn_gemv)(ptrdiff_t n, ptrdiff_t k, const FNN_T* a, const FNN_T* x,
                               const FNN_T* b, FNN_T* y, FNN_T* out, int act, FNN_T slope) {
    ptrdiff_t j, p, left, rows;
    int r;
    for (j = 0; j < n; j += FNN_LANES) {
        FNN_V acc[FNN_LANES], odd[FNN_LANES], zero = {0}, sums;
        const FNN_T* row[FNN_LANES];
        rows = n - j < FNN_LANES ? n - j : FNN_LANES;
        for (r = 0; r < FNN_LANES; r++) {
            row[r] = a + (j + (r < rows ? r : rows - 1)) * k;
            acc[r] = odd[r] = zero;
        }
        for (p = 0; p + 2 * FNN_LANES <= k; p += 2 * FNN_LANES) {
            FNN_V x0 = FNN_NAME(fnn_load)(x + p, FNN_LANES);
            FNN_V x1 = FNN_NAME(fnn_load)(x + p + FNN_LANES, FNN_LANES);
            for (r = 0; r < FNN_LANES; r++) {
                FNN_V w0 = FNN_NAME(fnn_load)(row[r] + p, FNN_LANES);
                FNN_V w1 = FNN_NAME(fnn_load)(row[r] + p + FNN_LANES, FNN_LANES);
                acc[r] = FNN_NAME(fnn_fma)(w0, x0, acc[r]);
                odd[r] = FNN_NAME(fnn_fma)(w1, x1, odd[r]);
            }
        }
        for (; p < k; p += FNN_LANES) {
            FNN_V xv;
            left = k - p < FNN_LANES ? k - p : FNN_LANES;
            xv = FNN_NAME(fnn_load)(x + p, left);
            for (r = 0; r < FNN_LANES; r++)
                acc[r] = FNN_NAME(fnn_fma)(FNN_NAME(fnn_load)(row[r] + p, left), xv, acc[r]);
        }
        for (r = 0; r < FNN_LANES; r++)
            acc[r] += odd[r];
        sums = FNN_NAME(fnn_lane_sums)(acc);
        if (b)
            sums += FNN_NAME(fnn_load)(b + j, rows);
        FNN_NAME(fnn_store)(y + j, sums, rows);
        if (out)
            FNN_NAME(fnn_store)(out + j, FNN_NAME(fnn_gate)(sums, sums, act, slope), rows);
    }
}

#undef FNN_GEMM_MR
#undef FNN_GEMM_NV
#undef FNN_GEMM_NR
#undef FNN_GEMM_KC
