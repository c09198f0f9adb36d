/* attention_avx512.c — ai.vclip.Attention on AVX-512, one (batch row, head)
 * pair at a time and four query rows per pass.  The keys are read once per
 * pair into a transposed [d, Lp] panel (16 x 16 register transposes), so a
 * row's scores come from d broadcast FMAs per block of 16 keys.  The four
 * rows of scores (4 x Lp floats) are turned into probabilities by an exact
 * softmax, then the output rows are the probability-weighted sums of the
 * value rows, read in place.  The key sets here are short (a frame's tokens
 * times the window's frames), so one max and one sum per row beat an online
 * softmax, whose per-block reductions and rescaling cost as much as the FMAs.
 * Zero-filled frames (boundary 0) are keys with score 0 and no value; masked
 * frames are absent.  Selected at run time when the CPU has AVX-512;
 * fast_attention.c's portable kernel runs everything else.  Also holds the
 * key-set helpers the gradient (attention_grad_avx512.c) shares.  Checked against
 * ref_attention.c in tests/unit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "attention.h"

#if defined(__x86_64__)
#include "attention_avx512.h"

AVX512 void attention_transpose_keys(const AttnArgs *a, const int64_t *src, int64_t L, int64_t Lp, const float *base, int64_t C,
                                     int64_t off, float *panel)
{
    static const float zeros[16] __attribute__((aligned(64)));
    for (int64_t j0 = 0; j0 < Lp; j0 += ATTN_BLOCK) { /* 16 x 16 at a time; absent keys read zeros */
        const float *krow[ATTN_BLOCK];
        for (int64_t j = j0; j < j0 + ATTN_BLOCK; j++) {
            int64_t row = attention_key_row(a, src, L, j);
            krow[j - j0] = row < 0 ? NULL : base + row * C + off;
        }
        for (int64_t c0 = 0; c0 < a->p.head_dim; c0 += 16) {
            const float *rows[ATTN_BLOCK];
            for (int r = 0; r < ATTN_BLOCK; r++) rows[r] = krow[r] ? krow[r] + c0 : zeros;
            transpose_16x16(rows, panel + c0 * Lp + j0, Lp);
        }
    }
}

/* Source by source: a source's first `live` keys (all of them, or those up
 * to position i where causal) take row i of the mask or 0, the rest and the
 * padding -inf; runs of copies and fills (a causal text tower asks for one
 * row per query row, and the per-key test cost 40% of its attention). */
void attention_bias_row(const AttnArgs *a, int64_t L, int64_t Lp, int64_t i, float *row)
{
    int64_t M = a->M, live = a->p.causal && i + 1 < M ? i + 1 : M;
    for (int64_t s0 = 0; s0 < Lp; s0 += M) {
        int64_t end = s0 + M < Lp ? s0 + M : Lp, keys = L - s0 < live ? L - s0 : live, j = s0;
        if (keys > 0 && a->mask) {
            memcpy(row + s0, a->mask + i * M, sizeof(float) * (size_t)keys);
            j += keys;
        } else
            for (; j < s0 + keys; j++) row[j] = 0.0f;
        for (; j < end; j++) row[j] = -INFINITY;
    }
}

int attention_avx512_fits(const AttnArgs *a)
{
    int64_t d = a->p.head_dim;
    return (d == 16 || d == 32 || d == 64 || d == 128) && __builtin_cpu_supports("avx512f");
}

typedef struct {
    float *kt, *scores, *bias; /* [d, Lp] panel; ROWS rows of Lp each */
    const float **val;         /* [Lp] value rows (NULL: no value) */
} PairBuffers;

/* One (batch row b, head h); NV = d / 16, a constant in each instance. */
INLINE_AVX512 void attention_pair(const AttnArgs *a, const PairBuffers *w, int64_t b, int64_t h, const int NV)
{
    const AttentionParams *p = &a->p;
    int64_t B = a->B, N = a->N, d = 16 * NV, src[2 * 64 + 1];
    int ns = attention_sources(p, b, src);
    int64_t L = ns * a->M, Lp = attention_padded(L);
    attention_transpose_keys(a, src, L, Lp, a->K, a->Ck, p->k_off + h * d, w->kt);
    for (int64_t j = 0; j < Lp; j++) {
        int64_t row = attention_key_row(a, src, L, j);
        w->val[j] = row < 0 ? NULL : a->V + row * a->Cv + p->v_off + h * d;
    }
    int per_row = a->mask || p->causal;
    if (!per_row) attention_bias_row(a, L, Lp, 0, w->bias);
    for (int64_t i0 = 0; i0 < N; i0 += ROWS) {
        const float *qrow[ROWS];
        float *orow[ROWS];
        for (int r = 0; r < ROWS; r++) {
            int64_t i = i0 + r < N ? i0 + r : N - 1, row = p->seq_first ? i * B + b : b * N + i;
            qrow[r] = a->Q + row * a->Cq + p->q_off + h * d;
            orow[r] = i0 + r < N ? a->O + row * a->Co + h * d : NULL;
            if (per_row) attention_bias_row(a, L, Lp, i, w->bias + r * Lp);
        }
        /* causal over one source: blocks wholly after the last row's position are all masked */
        int64_t n = Lp, last = (i0 + ROWS < N ? i0 + ROWS : N);
        if (p->causal && ns == 1 && attention_padded(last) < n) n = attention_padded(last);
        score_rows(qrow, p->scale, w->kt, Lp, n, w->bias, per_row ? Lp : 0, w->scores, NV);
        for (int r = 0; r < ROWS; r++) softmax_row(w->scores + r * Lp, n);
        weighted_rows(orow, w->scores, Lp, 1, w->val, n < L ? n : L, 1, NV);
    }
}

AVX512 void attention_avx512_pairs(void *args, int64_t pb, int64_t pe)
{
    AttnArgs *a = args;
    int64_t d = a->p.head_dim, H = a->p.heads, Lmax = (2 * a->p.window + 1) * a->M;
    int64_t Lp = attention_padded(Lmax);
    PairBuffers w;
    w.kt = aligned_alloc(64, sizeof(float) * (size_t)((d + 2 * ROWS) * Lp));
    w.val = malloc(sizeof(*w.val) * (size_t)Lp);
    if (!w.kt || !w.val) { a->failed = 1; goto done; }
    w.scores = w.kt + d * Lp;
    w.bias = w.scores + ROWS * Lp;
    for (int64_t pair = pb; pair < pe; pair++) switch (d / 16) {
        case 1: attention_pair(a, &w, pair / H, pair % H, 1); break;
        case 2: attention_pair(a, &w, pair / H, pair % H, 2); break;
        case 4: attention_pair(a, &w, pair / H, pair % H, 4); break;
        default: attention_pair(a, &w, pair / H, pair % H, 8); break;
        }
done:
    free(w.kt);
    free(w.val);
}

#else /* not x86-64: the portable kernel (fast_attention.c) runs everything */
int attention_avx512_fits(const AttnArgs *a) { (void)a; return 0; }
void attention_avx512_pairs(void *args, int64_t pb, int64_t pe) { (void)args; (void)pb; (void)pe; }
#endif
