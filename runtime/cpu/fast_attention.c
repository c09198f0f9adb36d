/* fast_attention.c — ai.vclip.Attention: the AVX-512 template kernel
 * (attention_avx512.c) for head sizes 16, 32, 64 and 128 on AVX-512 CPUs,
 * and this file's portable kernel for everything else (AVX2-only CPUs, other
 * head sizes, other architectures), compiled for AVX-512, AVX2 and plain
 * x86-64.  Per (batch row, head) the keys are transposed once into a [d, Lp]
 * panel; four query rows at a time, the scores come in blocks of KEY_BLOCK
 * keys summed over the channels in registers, then a softmax per row, then
 * the outputs are the probability-weighted sums of the value rows, in key
 * order, CH_BLOCK channels at a time in registers.  Every sum runs
 * in an order that does not depend on the number of keys, and a causal row
 * over one source stops at its own position: so a text encoder cut to its
 * longest prompt (passes/cut_sequence.c) gives the whole context's features
 * bit for bit here too.  (OpenBLAS, which ran this before, picks its kernels
 * by size: the cut was never exact off AVX-512, and encode-text then ran
 * every batch at the whole context.)  Zero-filled frames are keys of score 0
 * and no value.  bf16 = 1 rounds the keys in the panel, the query rows, the
 * values (into a copy) and the probabilities.  Checked against
 * ref_attention.c in tests/unit/test_kernels.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "attention.h"
#include "parallel.h"

float fast_softmax_row(const float *in, float *out, int64_t len); /* fast_math.c */

int64_t attention_key_row(const AttnArgs *a, const int64_t *src, int64_t L, int64_t j)
{
    int64_t s = j / a->M, m = j % a->M;
    if (j >= L || src[s] < 0) return -1;
    return a->p.seq_first ? m * a->B + src[s] : src[s] * a->M + m;
}

static int force_portable;
void attention_force_portable(int on) { force_portable = on; }

#define KEY_BLOCK 16 /* keys per block of scores: two 8-float vectors */
#define CH_BLOCK 16  /* output channels per block: two 8-float vectors */
#define ROWS 4       /* query rows per pass: each key and value load serves all four */

/* 8 floats, loaded and stored unaligned; the accumulators below are named
 * vectors so that they stay in registers (arrays of them were spilled). */
typedef float v8 __attribute__((vector_size(32), aligned(4)));

/* Compiled for x86-64-v3 (AVX2 and FMA: every AVX-512 CPU has it too) and
 * plain x86-64, with products contracted into FMAs.  The same machine always
 * runs the same clone, so the sums keep their one order. */
#if defined(__x86_64__) && !defined(__clang__)
#define FMA_CLONES __attribute__((target_clones("arch=x86-64-v3", "default"), optimize("O3", "fp-contract=fast")))
#else
#define FMA_CLONES VECTOR_CLONES
#endif

/* s[r * Lp + j] = scale * q_r . key j, for the key blocks covering [0, n);
 * the panel holds Lp (whole blocks) columns, zeros past the keys. */
FMA_CLONES static void score_rows(const float *const q[ROWS], const float *kt, int64_t d, int64_t Lp, int64_t n, float scale, float *s)
{
    for (int64_t j0 = 0; j0 < n; j0 += KEY_BLOCK) {
        v8 a00 = {0}, a01 = {0}, a10 = {0}, a11 = {0}, a20 = {0}, a21 = {0}, a30 = {0}, a31 = {0};
        for (int64_t c = 0; c < d; c++) {
            const v8 k0 = *(const v8 *)(kt + c * Lp + j0), k1 = *(const v8 *)(kt + c * Lp + j0 + 8);
            const float q0 = q[0][c], q1 = q[1][c], q2 = q[2][c], q3 = q[3][c];
            a00 += q0 * k0; a01 += q0 * k1;
            a10 += q1 * k0; a11 += q1 * k1;
            a20 += q2 * k0; a21 += q2 * k1;
            a30 += q3 * k0; a31 += q3 * k1;
        }
        float *o = s + j0;
        *(v8 *)o = scale * a00; *(v8 *)(o + 8) = scale * a01;
        *(v8 *)(o + Lp) = scale * a10; *(v8 *)(o + Lp + 8) = scale * a11;
        *(v8 *)(o + 2 * Lp) = scale * a20; *(v8 *)(o + 2 * Lp + 8) = scale * a21;
        *(v8 *)(o + 3 * Lp) = scale * a30; *(v8 *)(o + 3 * Lp + 8) = scale * a31;
    }
}

/* o_r = sum over the keys j < n[r], in key order, of p_r[j] * value row j
 * (none: nothing added); rows without an o_r have n[r] = 0. */
FMA_CLONES static void weighted_rows(const float *p, int64_t Lp, const float *const *val, const int64_t n[ROWS], int64_t d,
                                        float *const o[ROWS])
{
    int64_t nmin = n[0], nmax = n[0];
    for (int r = 1; r < ROWS; r++) {
        nmin = n[r] < nmin ? n[r] : nmin;
        nmax = n[r] > nmax ? n[r] : nmax;
    }
    int64_t c0 = 0;
    for (; c0 + CH_BLOCK <= d; c0 += CH_BLOCK) {
        v8 a00 = {0}, a01 = {0}, a10 = {0}, a11 = {0}, a20 = {0}, a21 = {0}, a30 = {0}, a31 = {0};
        for (int64_t j = 0; j < nmax; j++) {
            if (!val[j]) continue;
            const v8 v0 = *(const v8 *)(val[j] + c0), v1 = *(const v8 *)(val[j] + c0 + 8);
            if (j < nmin) { /* every row */
                const float p0 = p[j], p1 = p[Lp + j], p2 = p[2 * Lp + j], p3 = p[3 * Lp + j];
                a00 += p0 * v0; a01 += p0 * v1;
                a10 += p1 * v0; a11 += p1 * v1;
                a20 += p2 * v0; a21 += p2 * v1;
                a30 += p3 * v0; a31 += p3 * v1;
                continue;
            }
            if (j < n[0]) { a00 += p[j] * v0; a01 += p[j] * v1; }
            if (j < n[1]) { a10 += p[Lp + j] * v0; a11 += p[Lp + j] * v1; }
            if (j < n[2]) { a20 += p[2 * Lp + j] * v0; a21 += p[2 * Lp + j] * v1; }
            if (j < n[3]) { a30 += p[3 * Lp + j] * v0; a31 += p[3 * Lp + j] * v1; }
        }
        if (o[0]) { *(v8 *)(o[0] + c0) = a00; *(v8 *)(o[0] + c0 + 8) = a01; }
        if (o[1]) { *(v8 *)(o[1] + c0) = a10; *(v8 *)(o[1] + c0 + 8) = a11; }
        if (o[2]) { *(v8 *)(o[2] + c0) = a20; *(v8 *)(o[2] + c0 + 8) = a21; }
        if (o[3]) { *(v8 *)(o[3] + c0) = a30; *(v8 *)(o[3] + c0 + 8) = a31; }
    }
    for (int r = 0; c0 < d && r < ROWS; r++) { /* the channels past the last whole block, one row at a time */
        if (!o[r]) continue;
        for (int64_t c = c0; c < d; c++) o[r][c] = 0.0f;
        for (int64_t j = 0; j < n[r]; j++) {
            if (!val[j]) continue;
            const float pr = p[r * Lp + j];
            for (int64_t c = c0; c < d; c++) o[r][c] += pr * val[j][c];
        }
    }
}

void attention_round_bf16(const float *x, int64_t n, float *out)
{
    for (int64_t i = 0; i < n; i++) out[i] = bf16_round(x[i]);
}

/* The keys of head h into the panel kt [d, Lp] (zeros for zero-filled
 * frames and past the keys), KEY_BLOCK keys at a time so that each store
 * writes a row piece; val: the value rows (NULL where none).  bf16: the
 * keys rounded, and the values rounded into vb [Lp, d], which val points at. */
static void transpose_keys(const AttnArgs *a, const int64_t *src, int64_t L, int64_t Lp, int64_t h, float *kt, const float **val,
                           float *vb)
{
    static const float zeros[1] = {0};
    const AttentionParams *p = &a->p;
    int64_t d = p->head_dim;
    for (int64_t j0 = 0; j0 < Lp; j0 += KEY_BLOCK) {
        const float *key[KEY_BLOCK];
        int64_t step[KEY_BLOCK];
        for (int j = 0; j < KEY_BLOCK; j++) {
            int64_t row = attention_key_row(a, src, L, j0 + j);
            key[j] = row < 0 ? zeros : a->K + row * a->Ck + p->k_off + h * d;
            step[j] = row < 0 ? 0 : 1;
            val[j0 + j] = row < 0 ? NULL : a->V + row * a->Cv + p->v_off + h * d;
            if (p->bf16 && val[j0 + j]) {
                attention_round_bf16(val[j0 + j], d, vb + (j0 + j) * d);
                val[j0 + j] = vb + (j0 + j) * d;
            }
        }
        for (int64_t c = 0; c < d; c++)
            for (int j = 0; j < KEY_BLOCK; j++) kt[c * Lp + j0 + j] = key[j][c * step[j]];
        if (p->bf16)
            for (int64_t c = 0; c < d; c++) attention_round_bf16(kt + c * Lp + j0, KEY_BLOCK, kt + c * Lp + j0);
    }
}

/* (batch row, head) pairs [pb, pe), each with its key panel, value rows and ROWS rows of scores */
static void attention_pairs(void *vctx, int64_t pb, int64_t pe)
{
    AttnArgs *a = vctx;
    const AttentionParams *p = &a->p;
    int64_t B = a->B, N = a->N, M = a->M, d = p->head_dim, H = p->heads, src[2 * 64 + 1];
    int64_t Lp = ((2 * p->window + 1) * M + KEY_BLOCK - 1) / KEY_BLOCK * KEY_BLOCK;
    /* the key panel, ROWS rows of scores; bf16: the rounded values and query rows */
    float *kt = malloc(sizeof(float) * (size_t)((d + ROWS) * Lp + (p->bf16 ? (Lp + ROWS) * d : 0)));
    const float **val = malloc(sizeof(*val) * (size_t)(Lp ? Lp : 1));
    if (!kt || !val) { a->failed = 1; goto done; }
    float *s = kt + d * Lp, *vb = s + ROWS * Lp, *qb = vb + Lp * d;
    for (int64_t pair = pb; pair < pe; pair++) {
        int64_t b = pair / H, h = pair % H;
        int ns = attention_sources(p, b, src);
        int64_t L = ns * M;
        transpose_keys(a, src, L, Lp, h, kt, val, vb);
        for (int64_t i0 = 0; i0 < N; i0 += ROWS) {
            const float *q[ROWS];
            float *o[ROWS];
            int64_t n[ROWS], nmax = 0;
            for (int r = 0; r < ROWS; r++) {
                int64_t i = i0 + r < N ? i0 + r : N - 1, qr = p->seq_first ? i * B + b : b * N + i;
                q[r] = a->Q + qr * a->Cq + p->q_off + h * d;
                if (p->bf16) {
                    attention_round_bf16(q[r], d, qb + r * d);
                    q[r] = qb + r * d;
                }
                o[r] = i0 + r < N ? a->O + qr * a->Co + h * d : NULL;
                /* causal over one source: the keys after i are not read at all */
                n[r] = !o[r] ? 0 : p->causal && ns == 1 ? (i + 1 < L ? i + 1 : L) : L;
                nmax = n[r] > nmax ? n[r] : nmax;
            }
            score_rows(q, kt, d, Lp, nmax, p->scale, s);
            for (int r = 0; r < ROWS && o[r]; r++) {
                float *sr = s + r * Lp;
                if (a->mask || (p->causal && ns > 1))
                    for (int64_t j = 0, m = 0; j < n[r]; j++, m = m + 1 < M ? m + 1 : 0) {
                        if (a->mask) sr[j] += a->mask[(i0 + r) * M + m];
                        if (p->causal && m > i0 + r) sr[j] = -INFINITY;
                    }
                fast_softmax_row(sr, sr, n[r]);
                if (p->bf16) attention_round_bf16(sr, n[r], sr);
            }
            weighted_rows(s, Lp, val, n, d, o);
        }
    }
done:
    free(kt);
    free(val);
}

int fast_attention(KernelCtx *k)
{
    AttnArgs a;
    memset(&a, 0, sizeof a);
    if (op_attention_params(k->ic, &a.p)) return -1;
    const Tensor *q = k->in[0], *kk = k->in[1], *v = k->in[2], *mask = k->n_in > 3 ? k->in[3] : NULL;
    int bi = a.p.seq_first ? 1 : 0, si = 1 - bi;
    a.B = q->dims[bi];
    a.N = q->dims[si];
    a.M = kk->dims[si];
    a.Cq = q->dims[2];
    a.Ck = kk->dims[2];
    a.Cv = v->dims[2];
    a.Co = a.p.heads * a.p.head_dim;
    if (kk->dims[bi] != a.B || v->dims[bi] != a.B || v->dims[si] != a.M || (a.p.frames && a.B % a.p.frames) || a.p.window > 64 ||
        (mask && (mask->dims[0] != a.N || mask->dims[1] != a.M)))
        return ref_attention(k); /* let the reference report the problem */
    a.mask = mask ? mask->data : NULL;
    if (!force_portable && attention_avx512_fits(&a)) {
        a.Q = q->dtype == DT_BF16 ? NULL : q->data, a.Q16 = a.Q ? NULL : q->data;
        a.K = kk->dtype == DT_BF16 ? NULL : kk->data, a.K16 = a.K ? NULL : kk->data;
        a.V = v->dtype == DT_BF16 ? NULL : v->data, a.V16 = a.V ? NULL : v->data;
        if (a.p.bf16_output) a.O16 = k->out[0]->data;
        else a.O = k->out[0]->data;
        parallel_for(a.B * a.p.heads, 1, attention_avx512_pairs, &a);
        return a.failed ? kernel_fail(k, "out of memory") : 0;
    }
    /* bf16 inputs or output here (a head size the AVX-512 kernel lacks):
     * through f32 copies, exact */
    Tensor *wide[3] = {0};
    const Tensor *in[3] = {q, kk, v};
    for (int i = 0; i < 3; i++)
        if (in[i]->dtype == DT_BF16 && !(wide[i] = tensor_to_f32(in[i]))) a.failed = 1;
    int64_t n = tensor_numel(k->out[0]);
    a.Q = wide[0] ? wide[0]->data : q->data;
    a.K = wide[1] ? wide[1]->data : kk->data;
    a.V = wide[2] ? wide[2]->data : v->data;
    a.O = a.p.bf16_output ? malloc(sizeof(float) * (size_t)n) : k->out[0]->data;
    if (!a.O) a.failed = 1;
    if (!a.failed) parallel_for(a.B * a.p.heads, 1, attention_pairs, &a);
    if (a.p.bf16_output && !a.failed)
        for (int64_t i = 0; i < n; i++) ((uint16_t *)k->out[0]->data)[i] = float_to_bf16_flushed(a.O[i]);
    if (a.p.bf16_output) free(a.O);
    for (int i = 0; i < 3; i++) tensor_free(wide[i]);
    return a.failed ? kernel_fail(k, "out of memory") : 0;
}
