# Row-major GEMM over scipy.linalg.cython_blas, for the fused type `floating`.
#
# BLAS is column-major. A row-major matrix is, to BLAS, its own transpose, so the
# row-major product C = op(A) op(B) is computed as the column-major product
# C^T = op(B)^T op(A)^T: the operands (and their sizes) are swapped, not copied.
# Like scikit-learn's _cython_blas, no link step: scipy's BLAS is found at import.
# A product with one row or one column is a matrix-vector product: GEMV, which
# skips the packing of both operands that GEMM does (measured: 0.44 us against
# 1.77 us for one 64-sample row through a 64x64 layer).

from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv


cdef inline void _gemv(bint trans, int rows, int cols, floating alpha, const floating* a,
                       int lda, const floating* x, int incx, floating beta,
                       floating* y, int incy) noexcept nogil:
    """y = alpha op(A) x + beta y for the column-major A (rows, cols)."""
    cdef char t = b'T' if trans else b'N'
    if floating is float:
        sgemv(&t, &rows, &cols, &alpha, <float*> a, &lda, <float*> x, &incx, &beta,
              y, &incy)
    else:
        dgemv(&t, &rows, &cols, &alpha, <double*> a, &lda, <double*> x, &incx, &beta,
              y, &incy)


cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k,
                      floating alpha, const floating* a, int lda,
                      const floating* b, int ldb, floating beta,
                      floating* c, int ldc) noexcept nogil:
    """C (m, n) = alpha * op(A) @ op(B) + beta * C, all row-major.

    op(A) is (m, k), op(B) is (k, n); op(X) = X.T when trans_x.
    lda, ldb, ldc: the row length (elements) of A, B, C as stored.
    """
    cdef char ta, tb
    if n == 1:
        # C's column = op(A) op(B)'s column; row-major A is column-major A^T.
        _gemv(not trans_a, k if not trans_a else m, m if not trans_a else k, alpha,
              a, lda, b, 1 if trans_b else ldb, beta, c, ldc)
    elif m == 1:
        # C's row^T = op(B)^T op(A)'s row^T.
        _gemv(trans_b, k if trans_b else n, n if trans_b else k, alpha,
              b, ldb, a, lda if trans_a else 1, beta, c, 1)
    else:
        ta = b'T' if trans_a else b'N'
        tb = b'T' if trans_b else b'N'
        if floating is float:
            sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> b, &ldb, <float*> a, &lda,
                  &beta, c, &ldc)
        else:
            dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> b, &ldb, <double*> a, &lda,
                  &beta, c, &ldc)
