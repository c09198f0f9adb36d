/* attention_grad_avx512.c — the gradient of ai.vclip.Attention on AVX-512,
 * one (head, batch row) at a time, in place of fast_grad.c's five BLAS calls
 * per pair and their gathered copies.  For each pair the softmax is
 * recomputed from scratch:
 *   S = scale Q K^T + bias,  P = softmax(S),  dP = dO V^T,
 *   dS = scale P * (dP - rowsum(P * dP)),
 *   dQ += dS K,  dK += dS^T Q,  dV += P^T dO.
 * K and V are read once per pair into transposed [d, Lp] panels, so a row
 * of scores is d broadcast FMAs per block of 16 keys; the three products
 * that sum over keys or queries read their rows in place, four output rows
 * per pass (the building blocks of attention_avx512.h).  P
 * and dS live in two [N, Lp] buffers (about 32 KB each for a ViT-B/32 frame
 * with a window of 1).  Neighbouring batch rows share keys, so the pool
 * splits the work by head and a head's batch rows add into dK and dV one
 * after another.  With bf16 = 1 (the gradient of the bf16 forward, as
 * ir/infer_attention.c and ref_attention_grad.c define it) q, k, v and dO
 * are rounded into private copies and panels first, and P and dS after
 * their row sums, so that every product takes bf16 operands; the sums stay
 * f32.  Checked against ref_attention_grad.c in tests/unit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "attention.h"

#if defined(__x86_64__)
#include "attention_avx512.h"

/* dS row from P's row and dP's (held in ds): scale * P * (dP - P . dP),
 * the dot product summed in double lanes (as the BLAS kernel does) */
AVX512 static void score_grad_row(const float *prow, float *ds, int64_t Lp, float scale)
{
    __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
    for (int64_t j = 0; j < Lp; j += 16) {
        __m512d p = _mm512_castps_pd(_mm512_load_ps(prow + j)), q = _mm512_castps_pd(_mm512_load_ps(ds + j));
        lo = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_castpd512_pd256(p))),
                             _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_castpd512_pd256(q))), lo);
        hi = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(p, 1))),
                             _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(q, 1))), hi);
    }
    __m512 D = _mm512_set1_ps((float)_mm512_reduce_add_pd(_mm512_add_pd(lo, hi))), sc = _mm512_set1_ps(scale);
    for (int64_t j = 0; j < Lp; j += 16)
        _mm512_store_ps(ds + j, _mm512_mul_ps(_mm512_mul_ps(_mm512_load_ps(prow + j), sc), _mm512_sub_ps(_mm512_load_ps(ds + j), D)));
}

/* bf16: n floats (a multiple of 16) rounded in place; a row of d = 16 NV
 * copied rounded into dst, which is returned */
INLINE_AVX512 void round_in_place(float *x, int64_t n)
{
    for (int64_t j = 0; j < n; j += 16) _mm512_store_ps(x + j, bf16_round16(_mm512_load_ps(x + j)));
}

INLINE_AVX512 const float *rounded_row(const float *row, float *dst, const int NV)
{
    #pragma GCC unroll 8
    for (int v = 0; v < NV; v++) _mm512_store_ps(dst + 16 * v, bf16_round16(_mm512_loadu_ps(row + 16 * v)));
    return dst;
}

typedef struct {
    float *kt, *vt, *P, *dS, *bias;       /* panels [d, Lp]; [Np, Lp] buffers; ROWS bias rows */
    float *kr, *qr, *dor;                 /* bf16: rounded rows of K [Lp, d], Q and dO [Np, d] */
    const float **krow, **qrow, **dorow; /* [Lp] key rows of K; [Np] rows of Q and dO */
    float **dkrow, **dvrow;               /* [Lp] rows of dK and dV (NULL: no key) */
} GradBuffers;

/* One (head h, batch row b); NV = d / 16, a constant in each instance. */
INLINE_AVX512 void grad_pair(const AttnArgs *a, const GradBuffers *g, int64_t h, int64_t b,
                                                                  const int NV)
{
    const AttentionParams *p = &a->p;
    int64_t B = a->B, N = a->N, d = 16 * NV, src[2 * 64 + 1];
    int ns = attention_sources(p, b, src);
    int64_t L = ns * a->M, Lp = attention_padded(L), Np = (N + ROWS - 1) / ROWS * ROWS;
    attention_transpose_keys(a, src, L, Lp, a->K, a->Ck, p->k_off + h * d, g->kt);
    attention_transpose_keys(a, src, L, Lp, a->V, a->Cv, p->v_off + h * d, g->vt);
    for (int64_t j = 0; j < Lp; j++) {
        int64_t row = attention_key_row(a, src, L, j);
        g->krow[j] = row < 0 ? NULL : a->K + row * a->Ck + p->k_off + h * d;
        g->dkrow[j] = row < 0 ? NULL : a->dK + row * a->Ck + p->k_off + h * d;
        g->dvrow[j] = row < 0 ? NULL : a->dV + row * a->Cv + p->v_off + h * d;
    }
    for (int64_t i = 0; i < Np; i++) { /* rows past N repeat the last one; their P and dS rows are zeroed below */
        int64_t r = (p->seq_first ? (i < N ? i : N - 1) * B + b : b * N + (i < N ? i : N - 1));
        g->qrow[i] = a->Q + r * a->Cq + p->q_off + h * d;
        g->dorow[i] = a->dO + r * a->Co + h * d;
    }
    if (p->bf16) {
        round_in_place(g->kt, d * Lp);
        round_in_place(g->vt, d * Lp);
        for (int64_t j = 0; j < Lp; j++)
            if (g->krow[j]) g->krow[j] = rounded_row(g->krow[j], g->kr + j * d, NV);
        for (int64_t i = 0; i < Np; i++) {
            g->qrow[i] = rounded_row(g->qrow[i], g->qr + i * d, NV);
            g->dorow[i] = rounded_row(g->dorow[i], g->dor + i * d, NV);
        }
    }
    int per_row = a->mask || p->causal;
    if (!per_row) attention_bias_row(a, L, Lp, 0, g->bias);
    for (int64_t i0 = 0; i0 < Np; i0 += ROWS) {
        if (per_row)
            for (int r = 0; r < ROWS; r++) attention_bias_row(a, L, Lp, i0 + r < N ? i0 + r : N - 1, g->bias + r * Lp);
        float *prow = g->P + i0 * Lp, *dsrow = g->dS + i0 * Lp;
        score_rows(g->qrow + i0, p->scale, g->kt, Lp, Lp, g->bias, per_row ? Lp : 0, prow, NV);
        score_rows(g->dorow + i0, 1.0f, g->vt, Lp, Lp, NULL, 0, dsrow, NV);
        for (int r = 0; r < ROWS; r++) {
            if (i0 + r >= N) { /* padding rows take no part in the sums over queries */
                memset(prow + r * Lp, 0, sizeof(float) * (size_t)Lp);
                memset(dsrow + r * Lp, 0, sizeof(float) * (size_t)Lp);
                continue;
            }
            softmax_row(prow + r * Lp, Lp);
            score_grad_row(prow + r * Lp, dsrow + r * Lp, Lp, p->scale);
            if (p->bf16) {
                round_in_place(prow + r * Lp, Lp);
                round_in_place(dsrow + r * Lp, Lp);
            }
        }
    }
    for (int64_t i0 = 0; i0 < N; i0 += ROWS) { /* dQ rows: dS K */
        float *out[ROWS];
        for (int r = 0; r < ROWS; r++) {
            int64_t i = i0 + r, row = p->seq_first ? i * B + b : b * N + i;
            out[r] = i < N ? a->dQ + row * a->Cq + p->q_off + h * d : NULL;
        }
        weighted_rows(out, g->dS + i0 * Lp, Lp, 1, g->krow, Lp, 0, NV);
    }
    for (int64_t j0 = 0; j0 < L; j0 += ROWS) { /* dK rows: dS^T Q; dV rows: P^T dO */
        if (!g->dkrow[j0] && !g->dkrow[j0 + 1] && !g->dkrow[j0 + 2] && !g->dkrow[j0 + 3]) continue;
        weighted_rows(g->dkrow + j0, g->dS + j0, 1, Lp, g->qrow, Np, 0, NV);
        weighted_rows(g->dvrow + j0, g->P + j0, 1, Lp, g->dorow, Np, 0, NV);
    }
}

AVX512 void attention_grad_avx512_heads(void *args, int64_t hb, int64_t he)
{
    AttnArgs *a = args;
    int64_t d = a->p.head_dim, Lmax = (2 * a->p.window + 1) * a->M, Lp = attention_padded(Lmax);
    int64_t Np = (a->N + ROWS - 1) / ROWS * ROWS;
    GradBuffers g;
    g.kt = aligned_alloc(64, sizeof(float) * (size_t)(2 * d * Lp + 2 * Np * Lp + ROWS * Lp + (a->p.bf16 ? (Lp + 2 * Np) * d : 0)));
    g.krow = malloc(sizeof(*g.krow) * (size_t)(Lp + 2 * Np));
    g.dkrow = malloc(sizeof(*g.dkrow) * (size_t)(2 * Lp));
    if (!g.kt || !g.krow || !g.dkrow) { a->failed = 1; goto done; }
    g.vt = g.kt + d * Lp;
    g.P = g.vt + d * Lp;
    g.dS = g.P + Np * Lp;
    g.bias = g.dS + Np * Lp;
    g.kr = g.bias + ROWS * Lp;
    g.qr = g.kr + Lp * d;
    g.dor = g.qr + Np * d;
    g.qrow = g.krow + Lp;
    g.dorow = g.qrow + Np;
    g.dvrow = g.dkrow + Lp;
    for (int64_t h = hb; h < he; h++)
        for (int64_t b = 0; b < a->B; b++) switch (d / 16) {
            case 1: grad_pair(a, &g, h, b, 1); break;
            case 2: grad_pair(a, &g, h, b, 2); break;
            case 4: grad_pair(a, &g, h, b, 4); break;
            default: grad_pair(a, &g, h, b, 8); break;
            }
done:
    free(g.kt);
    free(g.krow);
    free(g.dkrow);
}

#else /* not x86-64: attention_avx512_fits is 0, fast_grad.c's BLAS kernel runs */
void attention_grad_avx512_heads(void *args, int64_t hb, int64_t he) { (void)args; (void)hb; (void)he; }
#endif
