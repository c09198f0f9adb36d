/* attention_avx512.h — the building blocks of the AVX-512 attention
 * kernels, forward (attention_avx512.c) and gradient
 * (attention_grad_avx512.c): a 16 x 16 register transpose for the key
 * panels, rows of scores against a transposed panel, an exact softmax over
 * a row, and sums of rows weighted by a matrix of coefficients, in f32 and
 * on bf16 pairs.  Each works
 * on ROWS rows at a time and takes NV = head size / 16 as a constant, so the
 * callers instantiate them per head size.  Only for functions compiled with
 * the AVX512 target attribute, after a run-time check of the CPU. */
#ifndef VCLIP_CPU_ATTENTION_AVX512_H
#define VCLIP_CPU_ATTENTION_AVX512_H

#if defined(__x86_64__)
#include <math.h>
#include <string.h>
#include "attention.h"
#include "avx512_math.h"

#define ROWS 4 /* rows per pass: four accumulators cover the FMA latency */
#define INLINE_AVX512 AVX512 static inline __attribute__((always_inline))
#define INLINE_AVX512_BF16 AVX512_BF16 static inline __attribute__((always_inline))

/* 16 rows of 16 floats -> out[c * ld + r] (row r, column c): a transpose in
 * registers (32-bit pairs, 64-bit pairs, then 128-bit lanes). */
INLINE_AVX512 void transpose_16x16(const float *const *rows, float *out, int64_t ld)
{
    __m512 u[4][4];
    for (int g = 0; g < 4; g++) {
        __m512 r0 = _mm512_loadu_ps(rows[4 * g]), r1 = _mm512_loadu_ps(rows[4 * g + 1]);
        __m512 r2 = _mm512_loadu_ps(rows[4 * g + 2]), r3 = _mm512_loadu_ps(rows[4 * g + 3]);
        __m512d a = _mm512_castps_pd(_mm512_unpacklo_ps(r0, r1)), b = _mm512_castps_pd(_mm512_unpackhi_ps(r0, r1));
        __m512d c = _mm512_castps_pd(_mm512_unpacklo_ps(r2, r3)), e = _mm512_castps_pd(_mm512_unpackhi_ps(r2, r3));
        /* u[g][k], lane l: column 4l + k of rows 4g .. 4g+3 */
        u[g][0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[g][1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[g][2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, e));
        u[g][3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, e));
    }
    for (int k = 0; k < 4; k++) {
        __m512 v0 = _mm512_shuffle_f32x4(u[0][k], u[1][k], 0x44), v1 = _mm512_shuffle_f32x4(u[0][k], u[1][k], 0xEE);
        __m512 v2 = _mm512_shuffle_f32x4(u[2][k], u[3][k], 0x44), v3 = _mm512_shuffle_f32x4(u[2][k], u[3][k], 0xEE);
        _mm512_storeu_ps(out + (0 + k) * ld, _mm512_shuffle_f32x4(v0, v2, 0x88));
        _mm512_storeu_ps(out + (4 + k) * ld, _mm512_shuffle_f32x4(v0, v2, 0xDD));
        _mm512_storeu_ps(out + (8 + k) * ld, _mm512_shuffle_f32x4(v1, v3, 0x88));
        _mm512_storeu_ps(out + (12 + k) * ld, _mm512_shuffle_f32x4(v1, v3, 0xDD));
    }
}

/* Key blocks are scored SPAN at a time (up to 3 blocks of 16 keys): ROWS x
 * SPAN independent sums cover the latency of the FMA or VDPBF16PS chains
 * (ROWS alone left two thirds of the bf16 units idle on Zen 5).  Every sum
 * keeps its order, so the span changes no bit. */
#define SPAN_MAX 3

/* score_rows' blocks kb .. kb + SPAN - 1 (xs: the rows, scaled) */
INLINE_AVX512 void score_span(const float xs[ROWS][128], const float *panel, int64_t Lp, int64_t kb, const float *bias,
                              int64_t bias_stride, float *out, const int NV, const int SPAN)
{
    __m512 s[SPAN_MAX][ROWS];
    #pragma GCC unroll 3
    for (int q = 0; q < SPAN; q++)
        #pragma GCC unroll 4
        for (int r = 0; r < ROWS; r++) s[q][r] = bias ? _mm512_loadu_ps(bias + r * bias_stride + kb + 16 * q) : _mm512_setzero_ps();
    for (int64_t c = 0; c < 16 * NV; c++) {
        __m512 k[SPAN_MAX];
        #pragma GCC unroll 3
        for (int q = 0; q < SPAN; q++) k[q] = _mm512_load_ps(panel + c * Lp + kb + 16 * q);
        #pragma GCC unroll 4
        for (int r = 0; r < ROWS; r++) {
            __m512 x = _mm512_set1_ps(xs[r][c]);
            #pragma GCC unroll 3
            for (int q = 0; q < SPAN; q++) s[q][r] = _mm512_fmadd_ps(x, k[q], s[q][r]);
        }
    }
    #pragma GCC unroll 3
    for (int q = 0; q < SPAN; q++)
        #pragma GCC unroll 4
        for (int r = 0; r < ROWS; r++) _mm512_store_ps(out + r * Lp + kb + 16 * q, s[q][r]);
}

/* out[r * Lp + j] = scale * x[r] . key j + bias[r * bias_stride + j] (bias
 * NULL: none) for r < ROWS and the keys j < n (a whole number of blocks),
 * against the panel [d, Lp] of transposed keys.  out is 64-byte aligned. */
INLINE_AVX512 void score_rows(const float *const *x, float scale, const float *panel, int64_t Lp, int64_t n, const float *bias,
                              int64_t bias_stride, float *out, const int NV)
{
    const int64_t d = 16 * NV;
    float xs[ROWS][128] __attribute__((aligned(64)));
    for (int r = 0; r < ROWS; r++)
        for (int64_t c = 0; c < d; c++) xs[r][c] = x[r][c] * scale;
    int64_t kb = 0;
    for (; kb + SPAN_MAX * ATTN_BLOCK <= n; kb += SPAN_MAX * ATTN_BLOCK) score_span(xs, panel, Lp, kb, bias, bias_stride, out, NV, SPAN_MAX);
    if (n - kb == 2 * ATTN_BLOCK) score_span(xs, panel, Lp, kb, bias, bias_stride, out, NV, 2);
    else if (n - kb == ATTN_BLOCK) score_span(xs, panel, Lp, kb, bias, bias_stride, out, NV, 1);
}

/* The first n entries of a row of scores become probabilities, in place:
 * e^(s - max) / sum.  A row whose keys are all masked is NaN, as in the
 * reference kernels. */
INLINE_AVX512 void softmax_row(float *row, int64_t n)
{
    __m512 mx = _mm512_set1_ps(-INFINITY), sum = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; j += 16) mx = _mm512_max_ps(mx, _mm512_load_ps(row + j));
    float m = _mm512_reduce_max_ps(mx);
    if (m == -INFINITY || m != m) {
        for (int64_t j = 0; j < n; j++) row[j] = NAN;
        return;
    }
    for (int64_t j = 0; j < n; j += 16) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_load_ps(row + j), _mm512_set1_ps(m)));
        sum = _mm512_add_ps(sum, e);
        _mm512_store_ps(row + j, e);
    }
    __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    for (int64_t j = 0; j < n; j += 16) _mm512_store_ps(row + j, _mm512_mul_ps(_mm512_load_ps(row + j), inv));
}

/* sum over t < n of coef[r * r_stride + t * t_stride] * in[t], for r < ROWS,
 * stored into out[r] (store) or added to it; rows out[r] that are NULL are
 * left alone, rows in[t] that are NULL (zero-filled frames, padding) add
 * nothing. */
INLINE_AVX512 void weighted_rows(float *const *out, const float *coef, int64_t r_stride, int64_t t_stride,
                                 const float *const *in, int64_t n, const int store, const int NV)
{
    __m512 acc[ROWS][8];
    #pragma GCC unroll 4
    for (int r = 0; r < ROWS; r++)
        #pragma GCC unroll 8
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
    for (int64_t t = 0; t < n; t++) {
        if (!in[t]) continue;
        __m512 x[8];
        #pragma GCC unroll 8
        for (int v = 0; v < NV; v++) x[v] = _mm512_loadu_ps(in[t] + 16 * v);
        const float *ct = coef + t * t_stride;
        #pragma GCC unroll 4
        for (int r = 0; r < ROWS; r++) {
            __m512 w = _mm512_set1_ps(ct[r * r_stride]);
            #pragma GCC unroll 8
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(w, x[v], acc[r][v]);
        }
    }
    for (int r = 0; r < ROWS; r++) {
        if (!out[r]) continue;
        #pragma GCC unroll 8
        for (int v = 0; v < NV; v++)
            _mm512_storeu_ps(out[r] + 16 * v, store ? acc[r][v] : _mm512_add_ps(_mm512_loadu_ps(out[r] + 16 * v), acc[r][v]));
    }
}

/* ---- bf16 (on AVX512-BF16): each product takes two operand pairs per
 * lane (vdpbf16ps), sums f32.  Words hold two bf16: a channel pair of a row
 * (round_row_bf16), or the same channel of two rows (bf16_pairs16). */

/* n floats (a multiple of 16) -> n / 2 words of bf16 pairs, in order, rounded
 * to nearest even; NULL: zeros */
INLINE_AVX512_BF16 void round_row_bf16(const float *x, int64_t n, uint32_t *out)
{
    for (int64_t c = 0; c < n; c += 16)
        _mm256_storeu_si256((__m256i *)((uint16_t *)out + c), x ? (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + c)) : _mm256_setzero_si256());
}

/* pair_score_rows' blocks kb .. kb + SPAN - 1 */
INLINE_AVX512_BF16 void pair_score_span(const uint32_t *const *xw, float scale, const uint32_t *panel, int64_t Lp, int64_t kb,
                                        const float *bias, int64_t bias_stride, float *out, const int NV, const int SPAN)
{
    __m512 s[SPAN_MAX][ROWS];
    #pragma GCC unroll 3
    for (int q = 0; q < SPAN; q++)
        #pragma GCC unroll 4
        for (int r = 0; r < ROWS; r++) s[q][r] = _mm512_setzero_ps();
    for (int64_t c = 0; c < 8 * NV; c++) {
        __m512bh k[SPAN_MAX];
        #pragma GCC unroll 3
        for (int q = 0; q < SPAN; q++) k[q] = (__m512bh)_mm512_loadu_si512(panel + c * Lp + kb + 16 * q);
        #pragma GCC unroll 4
        for (int r = 0; r < ROWS; r++) {
            __m512bh x = (__m512bh)_mm512_set1_epi32((int)xw[r][c]);
            #pragma GCC unroll 3
            for (int q = 0; q < SPAN; q++) s[q][r] = _mm512_dpbf16_ps(s[q][r], x, k[q]);
        }
    }
    #pragma GCC unroll 3
    for (int q = 0; q < SPAN; q++)
        #pragma GCC unroll 4
        for (int r = 0; r < ROWS; r++) {
            int64_t j = kb + 16 * q;
            _mm512_store_ps(out + r * Lp + j, bias ? _mm512_fmadd_ps(s[q][r], _mm512_set1_ps(scale), _mm512_loadu_ps(bias + r * bias_stride + j))
                                                   : _mm512_mul_ps(s[q][r], _mm512_set1_ps(scale)));
        }
}

/* out[r * Lp + j] = scale * x[r] . key j + bias[r * bias_stride + j] (bias
 * NULL: none) for r < ROWS and the keys j < n (whole blocks): x as d / 2
 * channel-pair words per row, the keys as a panel [d / 2, Lp] of them. */
INLINE_AVX512_BF16 void pair_score_rows(const uint32_t *const *xw, float scale, const uint32_t *panel, int64_t Lp, int64_t n,
                                        const float *bias, int64_t bias_stride, float *out, const int NV)
{
    int64_t kb = 0;
    for (; kb + SPAN_MAX * ATTN_BLOCK <= n; kb += SPAN_MAX * ATTN_BLOCK)
        pair_score_span(xw, scale, panel, Lp, kb, bias, bias_stride, out, NV, SPAN_MAX);
    if (n - kb == 2 * ATTN_BLOCK) pair_score_span(xw, scale, panel, Lp, kb, bias, bias_stride, out, NV, 2);
    else if (n - kb == ATTN_BLOCK) pair_score_span(xw, scale, panel, Lp, kb, bias, bias_stride, out, NV, 1);
}

/* weighted_rows on pairs: sum over pairs t < pairs of the coefficient word
 * coef[r * r_stride + t * t_stride] (two rows' coefficients) times the
 * word row in[t] (the same two rows, [pairs, d] words), for r < ROWS,
 * stored into out[r] or added to it; out[r] NULL: left alone. */
INLINE_AVX512_BF16 void pair_weighted_rows(float *const *out, const uint32_t *coef, int64_t r_stride, int64_t t_stride, const uint32_t *in,
                                           int64_t pairs, const int store, const int NV)
{
    __m512 acc[ROWS][8];
    #pragma GCC unroll 4
    for (int r = 0; r < ROWS; r++)
        #pragma GCC unroll 8
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
    for (int64_t t = 0; t < pairs; t++) {
        __m512bh x[8];
        #pragma GCC unroll 8
        for (int v = 0; v < NV; v++) x[v] = (__m512bh)_mm512_loadu_si512(in + t * 16 * NV + 16 * v);
        #pragma GCC unroll 4
        for (int r = 0; r < ROWS; r++) {
            __m512bh w = (__m512bh)_mm512_set1_epi32((int)coef[r * r_stride + t * t_stride]);
            #pragma GCC unroll 8
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], w, x[v]);
        }
    }
    for (int r = 0; r < ROWS; r++) {
        if (!out[r]) continue;
        #pragma GCC unroll 8
        for (int v = 0; v < NV; v++)
            _mm512_storeu_ps(out[r] + 16 * v, store ? acc[r][v] : _mm512_add_ps(_mm512_loadu_ps(out[r] + 16 * v), acc[r][v]));
    }
}

#endif
#endif
