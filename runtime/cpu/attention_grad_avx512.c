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
 * are rounded, and P and dS after their row sums, so that every product
 * takes bf16 operands; the five products then run on VDPBF16PS, two operand
 * pairs per lane (grad_pair_bf16): the scores and dP against channel-pair
 * panels of K and V, as the forward's scores do, dQ against K's key pairs,
 * dK and dV against Q's and dO's query pairs with dS and P paired the same
 * way.  The sums stay f32.  Checked against ref_attention_grad.c in
 * tests/unit. */
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

/* The additive terms of query rows i0 .. i0 + ROWS - 1 where they differ
 * by row (mask, causal); rows past N repeat the last one */
static void block_bias_rows(const AttnArgs *a, int64_t L, int64_t Lp, int64_t i0, float *bias)
{
    for (int r = 0; r < ROWS; r++) attention_bias_row(a, L, Lp, i0 + r < a->N ? i0 + r : a->N - 1, bias + r * Lp);
}

typedef struct {
    float *kt, *vt, *P, *dS, *bias;       /* panels [d, Lp]; [Np, Lp] buffers; ROWS bias rows */
    const float **krow, **qrow, **dorow; /* [Lp] key rows of K; [Np] rows of Q and dO */
    float **dkrow, **dvrow;               /* [Lp] rows of dK and dV (NULL: no key) */
    /* bf16: words of two bf16 (attention_avx512.h) */
    uint32_t *kw, *vw;   /* [d / 2, Lp]: K and V, channel pairs (scores, dP) */
    uint32_t *kp;        /* [Lp / 2, d]: K's key pairs (dQ) */
    uint32_t *qp, *dop;  /* [Np / 2, d]: Q's and dO's query pairs (dK, dV) */
    uint32_t *qw, *dow;  /* [Np, d / 2]: Q's and dO's rows, channel pairs (scores, dP) */
    uint32_t *dsw;       /* [Np, Lp / 2]: dS's rows, key pairs (dQ) */
    uint32_t *dsp, *pp;  /* [Np / 2, Lp]: dS and P, query pairs (dK, dV) */
    uint32_t *staging;   /* 16 x d / 2 */
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
    int per_row = a->mask || p->causal;
    if (!per_row) attention_bias_row(a, L, Lp, 0, g->bias);
    for (int64_t i0 = 0; i0 < Np; i0 += ROWS) {
        if (per_row) block_bias_rows(a, L, Lp, i0, g->bias);
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

/* bf16 = 1: the same pair on VDPBF16PS.  q, k, v and dO are rounded as
 * they are laid out; P and dS after their row sums (dS from the f32 P), as
 * the reference does. */
INLINE_AVX512_BF16 void grad_pair_bf16(const AttnArgs *a, const GradBuffers *g, int64_t h, int64_t b, const int NV)
{
    const AttentionParams *p = &a->p;
    int64_t B = a->B, N = a->N, d = 16 * NV, d2 = 8 * NV, src[2 * 64 + 1];
    int ns = attention_sources(p, b, src);
    int64_t L = ns * a->M, Lp = attention_padded(L), Np = (N + ROWS - 1) / ROWS * ROWS;
    attention_pair_panel(a, src, L, Lp, a->K, NULL, a->Ck, p->k_off + h * d, g->staging, g->kw);
    attention_pair_panel(a, src, L, Lp, a->V, NULL, a->Cv, p->v_off + h * d, g->staging, g->vw);
    attention_key_pairs(a, src, L, a->K, NULL, a->Ck, p->k_off + h * d, g->kp);
    for (int64_t j = 0; j < Lp; j++) {
        int64_t row = attention_key_row(a, src, L, j);
        g->dkrow[j] = row < 0 ? NULL : a->dK + row * a->Ck + p->k_off + h * d;
        g->dvrow[j] = row < 0 ? NULL : a->dV + row * a->Cv + p->v_off + h * d;
    }
    for (int64_t i = 0; i < Np; i += 2) { /* rows past N repeat the last one; their P and dS rows are zeroed below */
        const float *q[2], *o[2];
        for (int r = 0; r < 2; r++) {
            int64_t ii = i + r < N ? i + r : N - 1, row = p->seq_first ? ii * B + b : b * N + ii;
            q[r] = a->Q + row * a->Cq + p->q_off + h * d;
            o[r] = a->dO + row * a->Co + h * d;
            round_row_bf16(q[r], d, g->qw + (i + r) * d2);
            round_row_bf16(o[r], d, g->dow + (i + r) * d2);
        }
        #pragma GCC unroll 8
        for (int v = 0; v < NV; v++) {
            _mm512_storeu_si512(g->qp + i / 2 * d + 16 * v, bf16_pairs16(_mm512_loadu_ps(q[0] + 16 * v), _mm512_loadu_ps(q[1] + 16 * v)));
            _mm512_storeu_si512(g->dop + i / 2 * d + 16 * v, bf16_pairs16(_mm512_loadu_ps(o[0] + 16 * v), _mm512_loadu_ps(o[1] + 16 * v)));
        }
    }
    int per_row = a->mask || p->causal;
    if (!per_row) attention_bias_row(a, L, Lp, 0, g->bias);
    for (int64_t i0 = 0; i0 < Np; i0 += ROWS) {
        if (per_row) block_bias_rows(a, L, Lp, i0, g->bias);
        float *prow = g->P + i0 * Lp, *dsrow = g->dS + i0 * Lp;
        const uint32_t *qw[ROWS], *dow[ROWS];
        for (int r = 0; r < ROWS; r++) {
            qw[r] = g->qw + (i0 + r) * d2;
            dow[r] = g->dow + (i0 + r) * d2;
        }
        pair_score_rows(qw, p->scale, g->kw, Lp, Lp, g->bias, per_row ? Lp : 0, prow, NV);
        pair_score_rows(dow, 1.0f, g->vw, Lp, Lp, NULL, 0, dsrow, NV);
        for (int r = 0; r < ROWS; r++) {
            if (i0 + r >= N) { /* padding rows take no part in the sums over queries */
                memset(prow + r * Lp, 0, sizeof(float) * (size_t)Lp);
                memset(dsrow + r * Lp, 0, sizeof(float) * (size_t)Lp);
            } else {
                softmax_row(prow + r * Lp, Lp);
                score_grad_row(prow + r * Lp, dsrow + r * Lp, Lp, p->scale);
            }
            round_row_bf16(dsrow + r * Lp, Lp, g->dsw + (i0 + r) * (Lp / 2));
        }
        for (int r = 0; r < ROWS; r += 2) /* P and dS, query pairs */
            for (int64_t j = 0; j < Lp; j += 16) {
                int64_t at = (i0 + r) / 2 * Lp + j;
                _mm512_storeu_si512(g->pp + at, bf16_pairs16(_mm512_load_ps(prow + r * Lp + j), _mm512_load_ps(prow + (r + 1) * Lp + j)));
                _mm512_storeu_si512(g->dsp + at, bf16_pairs16(_mm512_load_ps(dsrow + r * Lp + j), _mm512_load_ps(dsrow + (r + 1) * Lp + j)));
            }
    }
    for (int64_t i0 = 0; i0 < N; i0 += ROWS) { /* dQ rows: dS K */
        float *out[ROWS];
        for (int r = 0; r < ROWS; r++) {
            int64_t i = i0 + r, row = p->seq_first ? i * B + b : b * N + i;
            out[r] = i < N ? a->dQ + row * a->Cq + p->q_off + h * d : NULL;
        }
        pair_weighted_rows(out, g->dsw + i0 * (Lp / 2), Lp / 2, 1, g->kp, (L + 1) / 2, 0, NV);
    }
    for (int64_t j0 = 0; j0 < L; j0 += ROWS) { /* dK rows: dS^T Q; dV rows: P^T dO */
        if (!g->dkrow[j0] && !g->dkrow[j0 + 1] && !g->dkrow[j0 + 2] && !g->dkrow[j0 + 3]) continue;
        pair_weighted_rows(g->dkrow + j0, g->dsp + j0, 1, Lp, g->qp, Np / 2, 0, NV);
        pair_weighted_rows(g->dvrow + j0, g->pp + j0, 1, Lp, g->dop, Np / 2, 0, NV);
    }
}

AVX512_BF16 static void grad_pair_bf16_any(const AttnArgs *a, const GradBuffers *g, int64_t h, int64_t b)
{
    switch (a->p.head_dim / 16) {
    case 1: grad_pair_bf16(a, g, h, b, 1); break;
    case 2: grad_pair_bf16(a, g, h, b, 2); break;
    case 4: grad_pair_bf16(a, g, h, b, 4); break;
    default: grad_pair_bf16(a, g, h, b, 8); break;
    }
}

AVX512 void attention_grad_avx512_heads(void *args, int64_t hb, int64_t he)
{
    AttnArgs *a = args;
    int64_t d = a->p.head_dim, Lmax = (2 * a->p.window + 1) * a->M, Lp = attention_padded(Lmax);
    int64_t Np = (a->N + ROWS - 1) / ROWS * ROWS;
    GradBuffers g;
    /* f32: K and V panels [d, Lp]; both: P and dS [Np, Lp], ROWS bias rows; bf16: the words (in 4-byte units) */
    size_t words = a->p.bf16 ? (size_t)(d * Lp + Lp / 2 * d + 2 * Np * d + Np * Lp / 2 + Np * Lp + 8 * d) : 0;
    g.kt = aligned_alloc(64, sizeof(float) * ((size_t)((a->p.bf16 ? 0 : 2 * d * Lp) + 2 * Np * Lp + ROWS * Lp) + words));
    g.krow = malloc(sizeof(*g.krow) * (size_t)(Lp + 2 * Np));
    g.dkrow = malloc(sizeof(*g.dkrow) * (size_t)(2 * Lp));
    if (!g.kt || !g.krow || !g.dkrow) { a->failed = 1; goto done; }
    g.vt = g.kt + (a->p.bf16 ? 0 : d * Lp);
    g.P = g.vt + (a->p.bf16 ? 0 : d * Lp);
    g.dS = g.P + Np * Lp;
    g.bias = g.dS + Np * Lp;
    g.kw = (uint32_t *)(g.bias + ROWS * Lp); /* 64-byte aligned: every size above is a multiple of 16 floats */
    g.vw = g.kw + d / 2 * Lp;
    g.kp = g.vw + d / 2 * Lp;
    g.qp = g.kp + Lp / 2 * d;
    g.dop = g.qp + Np / 2 * d;
    g.qw = g.dop + Np / 2 * d;
    g.dow = g.qw + Np * d / 2;
    g.dsw = g.dow + Np * d / 2;
    g.dsp = g.dsw + Np * Lp / 2;
    g.pp = g.dsp + Np / 2 * Lp;
    g.staging = g.pp + Np / 2 * Lp;
    g.qrow = g.krow + Lp;
    g.dorow = g.qrow + Np;
    g.dvrow = g.dkrow + Lp;
    for (int64_t h = hb; h < he; h++)
        for (int64_t b = 0; b < a->B; b++) {
            if (a->p.bf16) grad_pair_bf16_any(a, &g, h, b);
            else switch (d / 16) {
                case 1: grad_pair(a, &g, h, b, 1); break;
                case 2: grad_pair(a, &g, h, b, 2); break;
                case 4: grad_pair(a, &g, h, b, 4); break;
                default: grad_pair(a, &g, h, b, 8); break;
                }
        }
done:
    free(g.kt);
    free(g.krow);
    free(g.dkrow);
}

#else /* not x86-64: attention_avx512_fits is 0, fast_grad.c's BLAS kernel runs */
void attention_grad_avx512_heads(void *args, int64_t hb, int64_t he) { (void)args; (void)hb; (void)he; }
#endif
