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
 * frames are absent.  With bf16 = 1 the products run on bf16 pairs; q, k, v
 * may then come in bf16 (copied, not rounded) and O go out in bf16
 * (passes/bf16_activations.c).  Selected at run time when the CPU has AVX-512;
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

/* The keys' channels off .. off+d-1 of base rounded to bf16 (of base16 as
 * they are), as a panel [d / 2, Lp] of channel-pair words: 16 key rows
 * (staging, 16 x d / 2 words) at a time, transposed like floats; zeros where
 * there is no row. */
AVX512_BF16 void attention_pair_panel(const AttnArgs *a, const int64_t *src, int64_t L, int64_t Lp, const float *base,
                                      const uint16_t *base16, int64_t C, int64_t off, uint32_t *staging, uint32_t *panel)
{
    int64_t d = a->p.head_dim, d2 = d / 2;
    for (int64_t j0 = 0; j0 < Lp; j0 += ATTN_BLOCK) {
        const float *words[ATTN_BLOCK];
        for (int64_t j = 0; j < ATTN_BLOCK; j++) {
            int64_t row = attention_key_row(a, src, L, j0 + j);
            if (row >= 0 && base16) memcpy(staging + j * d2, base16 + row * C + off, sizeof(uint16_t) * (size_t)d);
            else round_row_bf16(row < 0 ? NULL : base + row * C + off, d, staging + j * d2);
        }
        for (int64_t c0 = 0; c0 + 16 <= d2; c0 += 16) {
            for (int r = 0; r < ATTN_BLOCK; r++) words[r] = (const float *)(staging + r * d2 + c0);
            transpose_16x16(words, (float *)(panel + c0 * Lp + j0), Lp);
        }
        if (d2 < 16) /* head size 16: 8 words a key */
            for (int64_t c = 0; c < d2; c++)
                for (int r = 0; r < ATTN_BLOCK; r++) panel[c * Lp + j0 + r] = staging[r * d2 + c];
    }
}

/* The keys' channels as words of key pairs [(L + 1) / 2, d]: rows 2t and
 * 2t + 1 rounded (from base16: as they are) and interleaved, 2t in the low
 * halves (bf16_pairs16); zeros where there is no row. */
AVX512_BF16 void attention_key_pairs(const AttnArgs *a, const int64_t *src, int64_t L, const float *base, const uint16_t *base16, int64_t C,
                                     int64_t off, uint32_t *pairs)
{
    int64_t d = a->p.head_dim;
    for (int64_t t = 0; t < L; t += 2) {
        int64_t r0 = attention_key_row(a, src, L, t), r1 = t + 1 < L ? attention_key_row(a, src, L, t + 1) : -1;
        if (base16) {
            const uint16_t *w0 = r0 < 0 ? NULL : base16 + r0 * C + off, *w1 = r1 < 0 ? NULL : base16 + r1 * C + off;
            for (int64_t c = 0; c < d; c += 16) {
                __m512i lo = w0 ? _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(w0 + c))) : _mm512_setzero_si512();
                __m512i hi = w1 ? _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(w1 + c))) : _mm512_setzero_si512();
                _mm512_storeu_si512(pairs + t / 2 * d + c, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
            }
            continue;
        }
        const float *v0 = r0 < 0 ? NULL : base + r0 * C + off, *v1 = r1 < 0 ? NULL : base + r1 * C + off;
        for (int64_t c = 0; c < d; c += 16)
            _mm512_storeu_si512(pairs + t / 2 * d + c, bf16_pairs16(v0 ? _mm512_loadu_ps(v0 + c) : _mm512_setzero_ps(),
                                                                  v1 ? _mm512_loadu_ps(v1 + c) : _mm512_setzero_ps()));
    }
}

int attention_avx512_fits(const AttnArgs *a)
{
    int64_t d = a->p.head_dim;
    return (d == 16 || d == 32 || d == 64 || d == 128) && __builtin_cpu_supports("avx512f") &&
           (!a->p.bf16 || cpu_avx512_bf16());
}

/* The cache lines of d channels from element i of x (f32) or x16 (bf16, where not NULL) */
AVX512 static inline void prefetch_channels(const float *x, const uint16_t *x16, int64_t i, int64_t d, int hint)
{
    const char *at = x16 ? (const char *)(x16 + i) : (const char *)(x + i);
    for (int64_t byte = 0; byte < d * (x16 ? 2 : 4); byte += 64) {
        if (hint == _MM_HINT_T0) _mm_prefetch(at + byte, _MM_HINT_T0);
        else _mm_prefetch(at + byte, _MM_HINT_T1);
    }
}

/* Pair (b, h)'s query, key and value channels into L2, asked for while the
 * pair before it computes: rows lie a whole QKV row apart (9 KB in ViT-B),
 * which the hardware prefetchers do not follow, and a batch's QKV (44 MB for
 * an eval batch of 96 frames) outgrows L3. */
AVX512 static void prefetch_pair(const AttnArgs *a, int64_t b, int64_t h)
{
    const AttentionParams *p = &a->p;
    int64_t d = p->head_dim, src[2 * 64 + 1];
    int64_t L = attention_sources(p, b, src) * a->M;
    for (int64_t j = 0; j < L; j++) {
        int64_t row = attention_key_row(a, src, L, j);
        if (row < 0) continue;
        prefetch_channels(a->K, a->K16, row * a->Ck + p->k_off + h * d, d, _MM_HINT_T1);
        prefetch_channels(a->V, a->V16, row * a->Cv + p->v_off + h * d, d, _MM_HINT_T1);
    }
    for (int64_t i = 0; i < a->N; i++) {
        int64_t row = p->seq_first ? i * a->B + b : b * a->N + i;
        prefetch_channels(a->Q, a->Q16, row * a->Cq + p->q_off + h * d, d, _MM_HINT_T1);
    }
}

/* The query rows of the pass after i0's into L1 while this one computes:
 * with prefetch_pair's L2 prefetch alone, the bf16 kernel spent 44% of its
 * time waiting on their loads (text tower, batch 8, Zen 5) */
AVX512 static void prefetch_queries(const AttnArgs *a, int64_t b, int64_t h, int64_t i0)
{
    const AttentionParams *p = &a->p;
    int64_t d = p->head_dim;
    for (int64_t i = i0 + ROWS; i < i0 + 2 * ROWS && i < a->N; i++) {
        int64_t row = p->seq_first ? i * a->B + b : b * a->N + i;
        prefetch_channels(a->Q, a->Q16, row * a->Cq + p->q_off + h * d, d, _MM_HINT_T0);
    }
}

/* Causal attention over one source without a mask (the text tower) builds
 * no bias rows: the scores past each query row's own position are set to
 * -inf after scoring instead.  The same probabilities (a bias of 0 adds
 * nothing), and the rows, one per query, took a fifth of the fp32
 * attention's time. */
static int causal_cut(const AttnArgs *a, int ns) { return a->p.causal && !a->mask && ns == 1; }

static void cut_causal_scores(float *scores, int64_t Lp, int64_t i0, int64_t N, int64_t n)
{
    for (int r = 0; r < ROWS; r++)
        for (int64_t j = (i0 + r < N ? i0 + r : N - 1) + 1; j < n; j++) scores[r * Lp + j] = -INFINITY;
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
    int cut = causal_cut(a, ns), per_row = !cut && (a->mask || p->causal);
    if (!per_row && !cut) attention_bias_row(a, L, Lp, 0, w->bias);
    for (int64_t i0 = 0; i0 < N; i0 += ROWS) {
        const float *qrow[ROWS];
        float *orow[ROWS];
        prefetch_queries(a, b, h, i0);
        for (int r = 0; r < ROWS; r++) {
            int64_t i = i0 + r < N ? i0 + r : N - 1, row = p->seq_first ? i * B + b : b * N + i;
            qrow[r] = a->Q + row * a->Cq + p->q_off + h * d;
            orow[r] = i0 + r < N ? a->O + row * a->Co + h * d : NULL;
            if (per_row) attention_bias_row(a, L, Lp, i, w->bias + r * Lp);
        }
        /* causal over one source: blocks wholly after the last row's position are all masked */
        int64_t n = Lp, last = (i0 + ROWS < N ? i0 + ROWS : N);
        if (p->causal && ns == 1 && attention_padded(last) < n) n = attention_padded(last);
        score_rows(qrow, p->scale, w->kt, Lp, n, cut ? NULL : w->bias, per_row ? Lp : 0, w->scores, NV);
        if (cut) cut_causal_scores(w->scores, Lp, i0, N, n);
        for (int r = 0; r < ROWS; r++) softmax_row(w->scores + r * Lp, n);
        weighted_rows(orow, w->scores, Lp, 1, w->val, n < L ? n : L, 1, NV);
    }
}

/* ---- bf16 (attribute bf16, on AVX512-BF16): each dot product is d / 2
 * pair products (vdpbf16ps) instead of d FMAs.  The keys' panel holds
 * words of channel pairs [d / 2, Lp]: each key row rounded to bf16, then
 * 16 keys x 16 words transposed like floats.  The values are re-laid as
 * words of key pairs [Lp / 2, d] (rows 2t and 2t + 1 interleaved), so the
 * weighted sums take two keys per instruction against a broadcast pair of
 * probabilities.  Scores, softmax and sums stay f32. */
typedef struct {
    uint32_t *kw;      /* [d / 2, Lp] */
    uint32_t *vw;      /* [Lp / 2, d] */
    uint32_t *staging; /* 16 rounded key rows of d / 2 words */
    float *scores, *bias;
} PairBuffersBf16;

INLINE_AVX512_BF16 void attention_pair_bf16(const AttnArgs *a, const PairBuffersBf16 *w, int64_t b, int64_t h, const int NV)
{
    const AttentionParams *p = &a->p;
    int64_t B = a->B, N = a->N, d = 16 * NV, src[2 * 64 + 1];
    int ns = attention_sources(p, b, src);
    int64_t L = ns * a->M, Lp = attention_padded(L);
    attention_pair_panel(a, src, L, Lp, a->K, a->K16, a->Ck, p->k_off + h * d, w->staging, w->kw);
    attention_key_pairs(a, src, L, a->V, a->V16, a->Cv, p->v_off + h * d, w->vw);
    int cut = causal_cut(a, ns), per_row = !cut && (a->mask || p->causal);
    if (!per_row && !cut) attention_bias_row(a, L, Lp, 0, w->bias);
    uint32_t qw[ROWS][64] __attribute__((aligned(64)));
    float staged[ROWS][128] __attribute__((aligned(64))); /* O16: the rows before rounding */
    for (int64_t i0 = 0; i0 < N; i0 += ROWS) {
        float *orow[ROWS];
        uint16_t *orow16[ROWS];
        prefetch_queries(a, b, h, i0);
        for (int r = 0; r < ROWS; r++) {
            int64_t i = i0 + r < N ? i0 + r : N - 1, row = p->seq_first ? i * B + b : b * N + i;
            if (a->Q16) memcpy(qw[r], a->Q16 + row * a->Cq + p->q_off + h * d, sizeof(uint16_t) * (size_t)d);
            else round_row_bf16(a->Q + row * a->Cq + p->q_off + h * d, d, qw[r]);
            orow16[r] = a->O16 && i0 + r < N ? a->O16 + row * a->Co + h * d : NULL;
            orow[r] = i0 + r >= N ? NULL : a->O16 ? staged[r] : a->O + row * a->Co + h * d;
            if (per_row) attention_bias_row(a, L, Lp, i, w->bias + r * Lp);
        }
        int64_t n = Lp, last = (i0 + ROWS < N ? i0 + ROWS : N);
        if (p->causal && ns == 1 && attention_padded(last) < n) n = attention_padded(last);
        const uint32_t *qwr[ROWS] = {qw[0], qw[1], qw[2], qw[3]};
        pair_score_rows(qwr, p->scale, w->kw, Lp, n, cut ? NULL : w->bias, per_row ? Lp : 0, w->scores, NV);
        if (cut) cut_causal_scores(w->scores, Lp, i0, N, n);
        int64_t nv = n < L ? n : L, pairs = (nv + 1) / 2;
        uint32_t *prob = w->staging; /* ROWS rows of Lp / 2 words: the probabilities, rounded */
        for (int r = 0; r < ROWS; r++) {
            softmax_row(w->scores + r * Lp, n);
            round_row_bf16(w->scores + r * Lp, n, prob + r * (Lp / 2));
        }
        pair_weighted_rows(orow, prob, Lp / 2, 1, w->vw, pairs, 1, NV);
        for (int r = 0; r < ROWS; r++)
            if (orow16[r]) round_row_bf16(staged[r], d, (uint32_t *)orow16[r]);
    }
}

AVX512_BF16 static void attention_avx512_bf16_pairs(AttnArgs *a, int64_t pb, int64_t pe)
{
    int64_t d = a->p.head_dim, H = a->p.heads, Lmax = (2 * a->p.window + 1) * a->M;
    int64_t Lp = attention_padded(Lmax);
    PairBuffersBf16 w;
    /* panel d/2 x Lp, values Lp/2 x d, staging (16 key rows or ROWS probability rows), scores and bias */
    size_t staging = (size_t)(ATTN_BLOCK * d / 2 > ROWS * Lp / 2 ? ATTN_BLOCK * d / 2 : ROWS * Lp / 2);
    w.kw = aligned_alloc(64, sizeof(uint32_t) * ((size_t)(d * Lp) + staging) + sizeof(float) * (size_t)(2 * ROWS * Lp));
    if (!w.kw) { a->failed = 1; return; }
    w.vw = w.kw + d / 2 * Lp;
    w.staging = w.vw + Lp / 2 * d;
    w.scores = (float *)(w.staging + staging);
    w.bias = w.scores + ROWS * Lp;
    for (int64_t pair = pb; pair < pe; pair++) {
        if (pair + 1 < pe) prefetch_pair(a, (pair + 1) / H, (pair + 1) % H);
        switch (d / 16) {
        case 1: attention_pair_bf16(a, &w, pair / H, pair % H, 1); break;
        case 2: attention_pair_bf16(a, &w, pair / H, pair % H, 2); break;
        case 4: attention_pair_bf16(a, &w, pair / H, pair % H, 4); break;
        default: attention_pair_bf16(a, &w, pair / H, pair % H, 8); break;
        }
    }
    free(w.kw);
}

AVX512 void attention_avx512_pairs(void *args, int64_t pb, int64_t pe)
{
    AttnArgs *a = args;
    if (a->p.bf16) {
        attention_avx512_bf16_pairs(a, pb, pe);
        return;
    }
    int64_t d = a->p.head_dim, H = a->p.heads, Lmax = (2 * a->p.window + 1) * a->M;
    int64_t Lp = attention_padded(Lmax);
    PairBuffers w;
    w.kt = aligned_alloc(64, sizeof(float) * (size_t)((d + 2 * ROWS) * Lp));
    w.val = malloc(sizeof(*w.val) * (size_t)Lp);
    if (!w.kt || !w.val) { a->failed = 1; goto done; }
    w.scores = w.kt + d * Lp;
    w.bias = w.scores + ROWS * Lp;
    for (int64_t pair = pb; pair < pe; pair++) {
        if (pair + 1 < pe) prefetch_pair(a, (pair + 1) / H, (pair + 1) % H);
        switch (d / 16) {
        case 1: attention_pair(a, &w, pair / H, pair % H, 1); break;
        case 2: attention_pair(a, &w, pair / H, pair % H, 2); break;
        case 4: attention_pair(a, &w, pair / H, pair % H, 4); break;
        default: attention_pair(a, &w, pair / H, pair % H, 8); break;
        }
    }
done:
    free(w.kt);
    free(w.val);
}

#else /* not x86-64: the portable kernel (fast_attention.c) runs everything */
int attention_avx512_fits(const AttnArgs *a) { (void)a; return 0; }
void attention_avx512_pairs(void *args, int64_t pb, int64_t pe) { (void)args; (void)pb; (void)pe; }
#endif
