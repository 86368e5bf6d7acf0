/* Vector kernels, included through _ops.pxd by _kernels.pyx and _engine.pyx:
 * register-blocked products for narrow layers (feature-major: one row of m values per
 * unit, the transpose of the samples-are-rows layout, so that every product runs along
 * the long batch dimension), the sigmoid and tanh (and their exp), the log1p of the
 * binary cross-entropy and the finiteness scan.
 * Cython cannot say the two things that make them fast, hence this header:
 *   - explicit vector registers (GCC/Clang vector extensions; other compilers get one
 *     lane and the same code), because the auto-vectoriser does not keep block
 *     accumulators in registers;
 *   - on x86 with GCC or Clang, a second build of every kernel with 32-byte vectors and
 *     fused multiply-add, chosen at run time on CPUs that have FMA (AVX), because the
 *     portable baseline (SSE2: 16-byte vectors, no FMA) has half the width.
 * Sums run in a fixed order, so results depend only on the build that ran them.
 */
#ifndef FASTNN_VECTOR_H
#define FASTNN_VECTOR_H

#include <stddef.h>
#include <string.h>

/* exp's and the finiteness scan's NaN handling, and every sum's order, need IEEE rules */
#if defined(__FAST_MATH__) || (defined(__FINITE_MATH_ONLY__) && __FINITE_MATH_ONLY__)
#error "fastnn's vector kernels must not be compiled with -ffast-math or -ffinite-math-only"
#endif

#if defined(__GNUC__)
#define FNN_VECTOR(type, bytes) type __attribute__((vector_size(bytes)))
/* helpers become part of each build of their caller, never a call across builds */
#define FNN_INLINE static inline __attribute__((always_inline))
#else
#define FNN_VECTOR(type, bytes) type
#define FNN_INLINE static inline
#endif

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FNN_FMA_BUILD 1
#endif

/* fastnn's activation codes, in the order of fastnn.activations.ACTIVATIONS
 * (_ops.pxd takes them from here) */
enum { FNN_IDENTITY = 0, FNN_SIGMOID = 1, FNN_TANH = 2, FNN_RELU = 3, FNN_LEAKY_RELU = 4 };

/* 1 / k! for k = 0 .. 18: the Taylor coefficients of e^x */
static const double fnn_inverse_factorial[19] = {
    1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040, 1.0 / 40320,
    1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800.0,
    1.0 / 87178291200.0, 1.0 / 1307674368000.0, 1.0 / 20922789888000.0,
    1.0 / 355687428096000.0, 1.0 / 6402373705728000.0};

/* the baseline build: 16-byte vectors (SSE2 on x86-64, NEON on arm64) */
#define FNN_BYTES 16
#define FNN_TARGET
#define FNN_T double
#define FNN_I long long
#define FNN_NAME(name) name##_d_base
#include "_vector_kernels.h"
#undef FNN_T
#undef FNN_I
#undef FNN_NAME
#define FNN_T float
#define FNN_I int
#define FNN_NAME(name) name##_f_base
#include "_vector_kernels.h"
#undef FNN_T
#undef FNN_I
#undef FNN_NAME
#undef FNN_BYTES
#undef FNN_TARGET

#ifdef FNN_FMA_BUILD
#define FNN_BYTES 32
#define FNN_TARGET __attribute__((target("fma")))  /* FMA implies AVX */
#define FNN_T double
#define FNN_I long long
#define FNN_NAME(name) name##_d_fma
#include "_vector_kernels.h"
#undef FNN_T
#undef FNN_I
#undef FNN_NAME
#define FNN_T float
#define FNN_I int
#define FNN_NAME(name) name##_f_fma
#include "_vector_kernels.h"
#undef FNN_T
#undef FNN_I
#undef FNN_NAME
#undef FNN_BYTES
#undef FNN_TARGET

#include <stdlib.h>

/* 1 when the FMA build runs: the CPU has FMA (and the OS saves AVX registers, which
 * __builtin_cpu_supports checks), unless FASTNN_VECTOR_BUILD=base asks for the baseline. */
static int fnn_cpu_has_fma(void) {
    static int has = -1;  /* set once per module, at import (_kernels.pyx, _engine.pyx) */
    if (has < 0) {
        const char* choice = getenv("FASTNN_VECTOR_BUILD");
        __builtin_cpu_init();
        has = __builtin_cpu_supports("fma") && !(choice && strcmp(choice, "base") == 0);
    }
    return has;
}
#define FNN_DISPATCH(name, ...) \
    (fnn_cpu_has_fma() ? name##_fma(__VA_ARGS__) : name##_base(__VA_ARGS__))
#else
#define FNN_DISPATCH(name, ...) name##_base(__VA_ARGS__)
#define fnn_cpu_has_fma() 0
#endif

/* "fma" or "base": the build of these kernels that runs here. */
static const char* fnn_vector_build(void) { return fnn_cpu_has_fma() ? "fma" : "base"; }

/* The entry points: the fastest build this CPU can run. */
#define fnn_narrow_product_d(...) FNN_DISPATCH(fnn_narrow_product_d, __VA_ARGS__)
#define fnn_narrow_product_f(...) FNN_DISPATCH(fnn_narrow_product_f, __VA_ARGS__)
#define fnn_narrow_weight_grads_d(...) FNN_DISPATCH(fnn_narrow_weight_grads_d, __VA_ARGS__)
#define fnn_narrow_weight_grads_f(...) FNN_DISPATCH(fnn_narrow_weight_grads_f, __VA_ARGS__)
#define fnn_thin_dots_d(...) FNN_DISPATCH(fnn_thin_dots_d, __VA_ARGS__)
#define fnn_thin_dots_f(...) FNN_DISPATCH(fnn_thin_dots_f, __VA_ARGS__)
#define fnn_thin_gram_d(...) FNN_DISPATCH(fnn_thin_gram_d, __VA_ARGS__)
#define fnn_thin_gram_f(...) FNN_DISPATCH(fnn_thin_gram_f, __VA_ARGS__)
#define fnn_thin_combine_d(...) FNN_DISPATCH(fnn_thin_combine_d, __VA_ARGS__)
#define fnn_thin_combine_f(...) FNN_DISPATCH(fnn_thin_combine_f, __VA_ARGS__)
#define fnn_any_nonfinite_d(...) FNN_DISPATCH(fnn_any_nonfinite_d, __VA_ARGS__)
#define fnn_any_nonfinite_f(...) FNN_DISPATCH(fnn_any_nonfinite_f, __VA_ARGS__)
#define fnn_sigmoid_d(...) FNN_DISPATCH(fnn_sigmoid_d, __VA_ARGS__)
#define fnn_sigmoid_f(...) FNN_DISPATCH(fnn_sigmoid_f, __VA_ARGS__)
#define fnn_tanh_d(...) FNN_DISPATCH(fnn_tanh_d, __VA_ARGS__)
#define fnn_tanh_f(...) FNN_DISPATCH(fnn_tanh_f, __VA_ARGS__)
#define fnn_log1p_unit_d(...) FNN_DISPATCH(fnn_log1p_unit_d, __VA_ARGS__)
#define fnn_log1p_unit_f(...) FNN_DISPATCH(fnn_log1p_unit_f, __VA_ARGS__)

#endif
