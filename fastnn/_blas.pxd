# Row-major GEMM over scipy.linalg.cython_blas, for the fused type `floating`.
#
# BLAS is column-major. A row-major matrix is, to BLAS, its own transpose, so the
# row-major product C = op(A) op(B) is computed as the column-major product
# C^T = op(B)^T op(A)^T: the operands (and their sizes) are swapped, not copied.
# Like scikit-learn's _cython_blas, no link step: scipy's BLAS is found at import.

from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm


cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k,
                      floating alpha, const floating* a, int lda,
                      const floating* b, int ldb, floating beta,
                      floating* c, int ldc) noexcept nogil:
    """C (m, n) = alpha * op(A) @ op(B) + beta * C, all row-major.

    op(A) is (m, k), op(B) is (k, n); op(X) = X.T when trans_x.
    lda, ldb, ldc: the row length (elements) of A, B, C as stored.
    """
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> b, &ldb, <float*> a, &lda,
              &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> b, &ldb, <double*> a, &lda,
              &beta, c, &ldc)
