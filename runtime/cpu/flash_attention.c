/* flash_attention.c — the attention template kernel for the CPU: online
 * softmax over blocks of 16 keys (flash-attention style), AVX-512, one
 * (batch row, head) pair at a time and four query rows per pass.  Scores
 * never exist as a full [N, L] matrix: each block's scores update a running
 * max, a running sum and the output rows held in registers.  Keys are read
 * once per head into a transposed [d, L] panel (16 x 16 register transposes)
 * so a block's 16 scores come from d broadcast FMAs; values are read in place.  Zero-filled frames
 * (boundary 0) are keys with score 0 and no value; masked frames are absent.
 * Selected at run time when the CPU has AVX-512; fast_attention.c (BLAS) runs
 * everything else.  Checked against ref_attention.c in tests/unit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "attention.h"
#include "parallel.h"

#if defined(__x86_64__)
#include "avx512_math.h"

#define ROWS 4   /* query rows per pass */
#define BLOCK 16 /* keys per block: one vector of scores */

typedef struct {
    int64_t L, Lp;     /* keys, padded to a whole block */
    const float *kt;   /* [d, Lp] keys, transposed, zero past L */
    const float **val; /* [Lp] value rows (NULL: zero-filled frame) */
    int64_t M;         /* keys per source frame (mask and causal positions) */
} KeySet;

/* Output rows i0 .. i0+nrows-1 of one head over the keys before key_end
 * (a whole number of blocks).  bias: ROWS rows of Lp additive terms (mask,
 * causal, padding), bias_stride apart (0: one row for all).  NV = d / 16, a
 * constant in each instance. */
AVX512 static inline __attribute__((always_inline)) void flash_rows(const KeySet *ks, const float *const *qrow,
                                                                   float *const *orow, int nrows, float scale,
                                                                   const float *bias, int64_t bias_stride, int64_t key_end,
                                                                   const int NV)
{
    const int64_t d = 16 * NV;
    __m512 o[ROWS][8];
    float qs[ROWS][128] __attribute__((aligned(64)));
    float mx[ROWS], sum[ROWS], pr[ROWS][BLOCK] __attribute__((aligned(64)));
    #pragma GCC unroll 8
    for (int r = 0; r < ROWS; r++) {
        #pragma GCC unroll 8
        for (int v = 0; v < NV; v++) o[r][v] = _mm512_setzero_ps();
        for (int64_t c = 0; c < d; c++) qs[r][c] = r < nrows ? qrow[r][c] * scale : 0.0f;
        mx[r] = -INFINITY;
        sum[r] = 0.0f;
    }
    for (int64_t kb = 0; kb < key_end; kb += BLOCK) {
        __m512 s[ROWS];
        #pragma GCC unroll 8
        for (int r = 0; r < ROWS; r++) s[r] = _mm512_loadu_ps(bias + r * bias_stride + kb);
        for (int64_t c = 0; c < d; c++) {
            __m512 k = _mm512_load_ps(ks->kt + c * ks->Lp + kb);
            #pragma GCC unroll 8
            for (int r = 0; r < ROWS; r++) s[r] = _mm512_fmadd_ps(_mm512_set1_ps(qs[r][c]), k, s[r]);
        }
        int nk = ks->L - kb < BLOCK ? (int)(ks->L - kb) : BLOCK;
        /* online softmax: new running max, rescale what the rows hold */
        #pragma GCC unroll 8
        for (int r = 0; r < ROWS; r++) {
            float m = r < nrows ? fmaxf(mx[r], _mm512_reduce_max_ps(s[r])) : -INFINITY;
            if (m == -INFINITY) { /* every key so far masked (or a padding row) */
                _mm512_store_ps(pr[r], _mm512_setzero_ps());
                continue;
            }
            float alpha = expf(mx[r] - m);
            __m512 p = exp16(_mm512_sub_ps(s[r], _mm512_set1_ps(m)));
            mx[r] = m;
            sum[r] = sum[r] * alpha + _mm512_reduce_add_ps(p);
            _mm512_store_ps(pr[r], p);
            #pragma GCC unroll 8
            for (int v = 0; v < NV; v++) o[r][v] = _mm512_mul_ps(o[r][v], _mm512_set1_ps(alpha));
        }
        /* each value row is loaded once for all the rows */
        for (int j = 0; j < nk; j++) {
            const float *vr = ks->val[kb + j];
            if (!vr) continue;
            __m512 vv[8];
            #pragma GCC unroll 8
            for (int v = 0; v < NV; v++) vv[v] = _mm512_loadu_ps(vr + 16 * v);
            #pragma GCC unroll 8
            for (int r = 0; r < ROWS; r++) {
                __m512 pj = _mm512_set1_ps(pr[r][j]);
                #pragma GCC unroll 8
                for (int v = 0; v < NV; v++) o[r][v] = _mm512_fmadd_ps(pj, vv[v], o[r][v]);
            }
        }
    }
    #pragma GCC unroll 8
    for (int r = 0; r < nrows; r++) {
        __m512 inv = _mm512_set1_ps(1.0f / sum[r]);
        #pragma GCC unroll 8
        for (int v = 0; v < NV; v++) _mm512_storeu_ps(orow[r] + 16 * v, _mm512_mul_ps(o[r][v], inv));
    }
}

AVX512 static void flash_rows_nv(const KeySet *ks, const float *const *qrow, float *const *orow, int nrows, float scale,
                                 const float *bias, int64_t bias_stride, int64_t key_end, int NV)
{
    switch (NV) {
    case 1: flash_rows(ks, qrow, orow, nrows, scale, bias, bias_stride, key_end, 1); break;
    case 2: flash_rows(ks, qrow, orow, nrows, scale, bias, bias_stride, key_end, 2); break;
    case 4: flash_rows(ks, qrow, orow, nrows, scale, bias, bias_stride, key_end, 4); break;
    default: flash_rows(ks, qrow, orow, nrows, scale, bias, bias_stride, key_end, 8); break;
    }
}

/* 16 rows of 16 floats -> out[c * ld + r] (row r, column c): a transpose in
 * registers (32-bit pairs, 64-bit pairs, then 128-bit lanes). */
AVX512 static inline void transpose_16x16(const float *const *rows, float *out, int64_t ld)
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

/* Additive terms of query row i over the keys: padding past L, then the
 * mask and causal positions of each source frame. */
static void bias_row(const AttnArgs *a, const KeySet *ks, int64_t i, float *row)
{
    int64_t m = 0;
    for (int64_t j = 0; j < ks->Lp; j++) {
        float v = j < ks->L ? 0.0f : -INFINITY;
        if (j < ks->L && a->mask) v += a->mask[i * ks->M + m];
        if (j < ks->L && a->p.causal && m > i) v = -INFINITY;
        row[j] = v;
        if (++m == ks->M) m = 0;
    }
}

int flash_attention_fits(const AttnArgs *a)
{
    int64_t d = a->p.head_dim;
    return (d == 16 || d == 32 || d == 64 || d == 128) && __builtin_cpu_supports("avx512f");
}

AVX512 void flash_attention_pairs(void *args, int64_t pb, int64_t pe)
{
    static const float zeros[16] __attribute__((aligned(64)));
    AttnArgs *a = args;
    const AttentionParams *p = &a->p;
    int64_t B = a->B, N = a->N, M = a->M, d = p->head_dim, H = p->heads, src[2 * 64 + 1];
    int64_t Lmax = (2 * p->window + 1) * M, Lp = (Lmax + BLOCK - 1) / BLOCK * BLOCK;
    float *kt = aligned_alloc(64, sizeof(float) * (size_t)(d * Lp));
    float *bias = malloc(sizeof(float) * (size_t)(ROWS * Lp));
    const float **val = malloc(sizeof(*val) * (size_t)Lp);
    if (!kt || !bias || !val) { a->failed = 1; goto done; }
    for (int64_t pair = pb; pair < pe; pair++) {
        int64_t b = pair / H, h = pair % H;
        int ns = attention_sources(p, b, src);
        KeySet ks = {.L = ns * M, .kt = kt, .val = val, .M = M};
        ks.Lp = (ks.L + BLOCK - 1) / BLOCK * BLOCK;
        for (int64_t j0 = 0; j0 < ks.Lp; j0 += BLOCK) { /* keys transposed 16 x 16 at a time; absent keys read zeros */
            const float *krow[BLOCK];
            for (int64_t j = j0; j < j0 + BLOCK; j++) {
                int64_t s = j / M, m = j % M;
                krow[j - j0] = zeros;
                val[j] = NULL;
                if (j < ks.L && src[s] >= 0) {
                    int64_t row = p->seq_first ? m * B + src[s] : src[s] * M + m;
                    krow[j - j0] = a->K + row * a->Ck + p->k_off + h * d;
                    val[j] = a->V + row * a->Cv + p->v_off + h * d;
                }
            }
            for (int64_t c0 = 0; c0 < d; c0 += 16) {
                const float *rows[BLOCK];
                for (int r = 0; r < BLOCK; r++) rows[r] = krow[r] == zeros ? zeros : krow[r] + c0;
                transpose_16x16(rows, kt + c0 * ks.Lp + j0, ks.Lp);
            }
        }
        int per_row = a->mask || p->causal;
        if (!per_row) bias_row(a, &ks, 0, bias);
        for (int64_t i0 = 0; i0 < N; i0 += ROWS) {
            int nrows = N - i0 < ROWS ? (int)(N - i0) : ROWS;
            const float *qrow[ROWS];
            float *orow[ROWS];
            for (int r = 0; r < ROWS; r++) {
                int64_t i = i0 + (r < nrows ? r : 0);
                qrow[r] = a->Q + (p->seq_first ? i * B + b : b * N + i) * a->Cq + p->q_off + h * d;
                orow[r] = a->O + (p->seq_first ? i * B + b : b * N + i) * a->Co + h * d;
                if (per_row) bias_row(a, &ks, i, bias + r * ks.Lp);
            }
            /* causal over one source: blocks wholly after the last row's position are all masked */
            int64_t key_end = ks.Lp;
            if (p->causal && ns == 1 && (i0 + nrows + BLOCK - 1) / BLOCK * BLOCK < key_end) key_end = (i0 + nrows + BLOCK - 1) / BLOCK * BLOCK;
            flash_rows_nv(&ks, qrow, orow, nrows, p->scale, bias, per_row ? ks.Lp : 0, key_end, (int)(d / 16));
        }
    }
done:
    free(kt);
    free(bias);
    free(val);
}

#else /* not x86-64: the BLAS kernel runs everything */
int flash_attention_fits(const AttnArgs *a) { (void)a; return 0; }
void flash_attention_pairs(void *args, int64_t pb, int64_t pe) { (void)args; (void)pb; (void)pe; }
#endif
