/* Vector kernels, included through _ops.pxd by _kernels.pyx and _engine.pyx:
 * register-blocked products for narrow layers (feature-major: one row of m values per
 * unit, the transpose of the samples-are-rows layout, so that every product runs along
 * the long batch dimension), register-blocked products for thin layers (row-major), the
 * sigmoid and tanh (and their exp), the binary cross-entropy, the finiteness scan and
 * the transposes between the two layouts.
 * Cython cannot say the two things that make them fast, hence this header:
 *   - explicit vector registers (GCC/Clang vector extensions; other compilers get one
 *     lane and the same code), because the auto-vectoriser does not keep block
 *     accumulators in registers;
 *   - on x86 with GCC or Clang, two more builds of every kernel, chosen at run time:
 *     32-byte vectors with fused multiply-add on CPUs that have FMA (AVX), 64-byte
 *     vectors on CPUs with AVX-512, because the portable baseline (SSE2: 16-byte
 *     vectors, no FMA) has a half or a quarter of their width.
 * Sums run in a fixed order, so results depend only on the build that ran them.
 */
#ifndef FASTNN_VECTOR_H
#define FASTNN_VECTOR_H

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
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

/* v held in a register from here: a load the compiler may no longer fold into each
 * multiply-add that reads v as its memory operand (GCC did so in the register blocks
 * below, loading each vector as many times as it is used: on AMD's Zen 4, which loads
 * one 64-byte vector a cycle, the loads then bound the blocks, not the multiply-adds) */
#if defined(__GNUC__) && (defined(__x86_64__) || (defined(__i386__) && defined(__SSE2__)))
#define FNN_IN_REGISTER(v) __asm__("" : "+v"(v))
#else
#define FNN_IN_REGISTER(v) ((void) 0)
#endif

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FNN_FMA_BUILD 1
#include <immintrin.h>  /* the AVX-512 build's masked loads and stores */
#endif

/* The engine's floating-point mode (_engine.pyx sets it around every computation, in
 * every thread of it): subnormal numbers flushed to zero, as inputs and as results
 * (x86: MXCSR's DAZ and FTZ bits; arm64: FPCR's FZ, as TensorFlow's ScopedFlushDenormal
 * sets them), until fnn_fp_restore puts back the mode fnn_flush_subnormals returned.
 * Weight decay drives a dead unit's weights towards 0 geometrically, into the
 * subnormal range, where x86 CPUs take a microcode assist of about a hundred cycles on
 * every operation that reads or makes one. Elsewhere IEEE's gradual underflow stays. */
#if defined(__x86_64__) || defined(_M_X64) || (defined(__i386__) && defined(__SSE2__))
#include <xmmintrin.h>
typedef unsigned int fnn_fp_mode;
static inline fnn_fp_mode fnn_flush_subnormals(void) {
    fnn_fp_mode mode = _mm_getcsr();
    _mm_setcsr(mode | 0x8040);  /* FTZ (bit 15), DAZ (bit 6) */
    return mode;
}
static inline void fnn_fp_restore(fnn_fp_mode mode) {  /* the status flags stay */
    _mm_setcsr((_mm_getcsr() & 0x3f) | (mode & ~0x3fu));
}
#elif defined(__aarch64__) && defined(__GNUC__)
typedef unsigned long long fnn_fp_mode;
static inline fnn_fp_mode fnn_flush_subnormals(void) {
    fnn_fp_mode mode;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(mode));
    __asm__ __volatile__("msr fpcr, %0" : : "r"(mode | (1ULL << 24)) : "memory");  /* FZ */
    return mode;
}
static inline void fnn_fp_restore(fnn_fp_mode mode) {
    __asm__ __volatile__("msr fpcr, %0" : : "r"(mode) : "memory");
}
#else
typedef int fnn_fp_mode;
static inline fnn_fp_mode fnn_flush_subnormals(void) { return 0; }
static inline void fnn_fp_restore(fnn_fp_mode mode) { (void) mode; }
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

/* The AVX-512 build's matrix product (_gemm_kernels.h) packs blocks of B of this many
 * bytes (a part of any L1 data cache), into a scratch of FNN_GEMM_SCRATCH bytes. */
#define FNN_GEMM_PACK_BYTES 32768
enum { FNN_GEMM_SCRATCH = FNN_GEMM_PACK_BYTES + 64 };

/* How the AVX-512 build's Adam (fnn_adam) takes its square root and quotient: with
 * the divider (vsqrt and vdiv, exact, as every other build), from the 14-bit estimates
 * refined on the multiply-add units, or both side by side. Intel's AVX-512 cores do
 * two 512-bit multiply-adds a cycle and divide slowly, and the estimates won there;
 * AMD's (Zen 4 and 5) split a 512-bit multiply-add in two halves and divide fast: the
 * divider took the update of 4,928 values from 4.9 to 4.2 us in float64 and from 2.5
 * to 1.4 us in float32, and of 42,560 from 42 to 37 and from 21 to 12 (a C harness on
 * the AMD EPYC VM). The two use different units, so in float64 the divider's vectors
 * leave the multiply-add units time for the estimates of others: one vector in four
 * from the estimates (FNN_ADAM_MIXED) took 4,928 values to 3.2 us (one in two 3.7, one
 * in five 3.4); in float32 the divider alone stayed fastest (1.4 against 1.5 to 1.8).
 * Chosen once, by the CPU's maker (AMD's: mixed); FASTNN_ADAM_DIVIDE=divider,
 * =estimates or =mixed in the environment before import sets it. */
enum { FNN_ADAM_ESTIMATES = 0, FNN_ADAM_DIVIDER = 1, FNN_ADAM_MIXED = 2, FNN_ADAM_WAYS = 3 };
/* The mixed way's round: four vectors of doubles (a whole number of floats' too) */
enum { FNN_ADAM_PERIOD = 32 };
/* the ways' names: the values FASTNN_ADAM_DIVIDE takes */
static const char* const fnn_adam_ways[FNN_ADAM_WAYS] = {"estimates", "divider", "mixed"};

static int fnn_adam_way(void) {
    static int way = -1;  /* set once per module, at import (as fnn_cpu_build) */
    int w, chosen;
    if (way < 0) {
        const char* choice = getenv("FASTNN_ADAM_DIVIDE");
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
        __builtin_cpu_init();
        chosen = __builtin_cpu_is("amd") ? FNN_ADAM_MIXED : FNN_ADAM_ESTIMATES;
#else
        chosen = FNN_ADAM_DIVIDER;
#endif
        for (w = 0; choice && w < FNN_ADAM_WAYS; w++)
            if (strcmp(choice, fnn_adam_ways[w]) == 0)
                chosen = w;
        way = chosen;
    }
    return way;
}

/* fnn_adam_way as a name: "estimates", "divider" or "mixed". */
static const char* fnn_adam_divide(void) {
    return fnn_adam_ways[fnn_adam_way()];
}

/* FNN_NAME(fnn_sigmoid) is fnn_sigmoid_d_fma in the FMA build for double, and so on */
#define FNN_JOIN(name, type, build) name##_##type##_##build
#define FNN_EXPAND_JOIN(name, type, build) FNN_JOIN(name, type, build)

/* the baseline build: 16-byte vectors (SSE2 on x86-64, NEON on arm64) */
#define FNN_BYTES 16
#define FNN_TARGET
#define FNN_BUILD base
#include "_vector_build.h"

/* the builds, as fnn_cpu_build numbers them (every compiler: _ops.pxd names them), and
 * their names: the values FASTNN_VECTOR_BUILD takes */
enum { FNN_BUILD_BASE = 0, FNN_BUILD_FMA = 1, FNN_BUILD_AVX512 = 2, FNN_BUILDS = 3 };
static const char* const fnn_vector_builds[FNN_BUILDS] = {"base", "fma", "avx512"};

#ifdef FNN_FMA_BUILD
/* 32-byte vectors and fused multiply-add (AVX2-era CPUs) */
#define FNN_BYTES 32
#define FNN_TARGET __attribute__((target("fma")))  /* FMA implies AVX */
#define FNN_BUILD fma
#include "_vector_build.h"

/* 64-byte vectors: AVX-512 Foundation and DQ (Intel since Skylake-SP, AMD since
 * Zen 4; DQ for vfpclass, which every such CPU has but the Xeon Phi) */
#define FNN_BYTES 64
#define FNN_TARGET __attribute__((target("avx512f,avx512dq,fma")))
#define FNN_BUILD avx512
#include "_vector_build.h"

/* The widest build this CPU runs (__builtin_cpu_supports also checks that the OS saves
 * the wider registers), no wider than FASTNN_VECTOR_BUILD=base or =fma asks. */
static int fnn_cpu_build(void) {
    static int build = -1;  /* set once per module, at import (_kernels.pyx, _engine.pyx) */
    if (build < 0) {
        const char* choice = getenv("FASTNN_VECTOR_BUILD");
        int most = FNN_BUILD_AVX512, b;
        for (b = 0; choice && b < FNN_BUILDS; b++)
            if (strcmp(choice, fnn_vector_builds[b]) == 0)
                most = b;
        __builtin_cpu_init();
        build = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
                    && __builtin_cpu_supports("fma")
                    ? FNN_BUILD_AVX512
                    : __builtin_cpu_supports("fma") ? FNN_BUILD_FMA : FNN_BUILD_BASE;
        build = build < most ? build : most;
    }
    return build;
}
#define FNN_DISPATCH(name, ...) \
    (fnn_cpu_build() == FNN_BUILD_AVX512 ? name##_avx512(__VA_ARGS__) \
     : fnn_cpu_build() == FNN_BUILD_FMA ? name##_fma(__VA_ARGS__) : name##_base(__VA_ARGS__))
/* fastnn's own matrix products, in the AVX-512 build only (BLAS elsewhere) */
#define fnn_gemm_d(...) fnn_gemm_d_avx512(__VA_ARGS__)
#define fnn_gemm_f(...) fnn_gemm_f_avx512(__VA_ARGS__)
#define fnn_gemv_d(...) fnn_gemv_d_avx512(__VA_ARGS__)
#define fnn_gemv_f(...) fnn_gemv_f_avx512(__VA_ARGS__)
#else
#define FNN_DISPATCH(name, ...) name##_base(__VA_ARGS__)
#define fnn_cpu_build() 0
#define fnn_gemm_d(...) ((void) 0)  /* not called: fnn_cpu_build() is never 2 here */
#define fnn_gemm_f(...) ((void) 0)
#define fnn_gemv_d(...) ((void) 0)
#define fnn_gemv_f(...) ((void) 0)
#endif

/* "avx512", "fma" or "base": the build of these kernels that runs here. */
static const char* fnn_vector_build(void) {
    return fnn_vector_builds[fnn_cpu_build()];
}

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
#define fnn_sum_squares_d(...) FNN_DISPATCH(fnn_sum_squares_d, __VA_ARGS__)
#define fnn_sum_squares_f(...) FNN_DISPATCH(fnn_sum_squares_f, __VA_ARGS__)
#define fnn_add_into_d(...) FNN_DISPATCH(fnn_add_into_d, __VA_ARGS__)
#define fnn_add_into_f(...) FNN_DISPATCH(fnn_add_into_f, __VA_ARGS__)
#define fnn_sigmoid_d(...) FNN_DISPATCH(fnn_sigmoid_d, __VA_ARGS__)
#define fnn_sigmoid_f(...) FNN_DISPATCH(fnn_sigmoid_f, __VA_ARGS__)
#define fnn_tanh_d(...) FNN_DISPATCH(fnn_tanh_d, __VA_ARGS__)
#define fnn_tanh_f(...) FNN_DISPATCH(fnn_tanh_f, __VA_ARGS__)
#define fnn_sigmoid_bce_d(...) FNN_DISPATCH(fnn_sigmoid_bce_d, __VA_ARGS__)
#define fnn_sigmoid_bce_f(...) FNN_DISPATCH(fnn_sigmoid_bce_f, __VA_ARGS__)
#define fnn_softmax_row_d(...) FNN_DISPATCH(fnn_softmax_row_d, __VA_ARGS__)
#define fnn_softmax_row_f(...) FNN_DISPATCH(fnn_softmax_row_f, __VA_ARGS__)
#define fnn_transpose_d(...) FNN_DISPATCH(fnn_transpose_d, __VA_ARGS__)
#define fnn_transpose_f(...) FNN_DISPATCH(fnn_transpose_f, __VA_ARGS__)
#define fnn_adam_d(...) FNN_DISPATCH(fnn_adam_d, __VA_ARGS__)
#define fnn_adam_f(...) FNN_DISPATCH(fnn_adam_f, __VA_ARGS__)
#define fnn_bias_act_d(...) FNN_DISPATCH(fnn_bias_act_d, __VA_ARGS__)
#define fnn_bias_act_f(...) FNN_DISPATCH(fnn_bias_act_f, __VA_ARGS__)
#define fnn_act_grad_d(...) FNN_DISPATCH(fnn_act_grad_d, __VA_ARGS__)
#define fnn_act_grad_f(...) FNN_DISPATCH(fnn_act_grad_f, __VA_ARGS__)
#define fnn_column_sums_d(...) FNN_DISPATCH(fnn_column_sums_d, __VA_ARGS__)
#define fnn_column_sums_f(...) FNN_DISPATCH(fnn_column_sums_f, __VA_ARGS__)
#define fnn_act_grad_sums_d(...) FNN_DISPATCH(fnn_act_grad_sums_d, __VA_ARGS__)
#define fnn_act_grad_sums_f(...) FNN_DISPATCH(fnn_act_grad_sums_f, __VA_ARGS__)

#endif
