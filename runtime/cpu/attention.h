/* attention.h — what the CPU attention kernels share: the decoded arguments
 * of one ai.vclip.Attention or AttentionGrad call, the workers that
 * parallel_for spreads over the thread pool, and the key-set helpers of the
 * AVX-512 kernels (attention_avx512.c, attention_grad_avx512.c). */
#ifndef VCLIP_CPU_ATTENTION_H
#define VCLIP_CPU_ATTENTION_H

#include "kernels.h"

typedef struct {
    AttentionParams p;
    const float *Q, *K, *V, *mask;
    const uint16_t *Q16, *K16, *V16; /* ... or those in bf16 (passes/bf16_activations.c; the AVX-512 bf16 kernel; the f32 pointer NULL) */
    float *O;                 /* Attention's output */
    uint16_t *O16;            /* ... or, with bf16_output, O rounded to bf16 (the AVX-512 bf16 kernel; O NULL) */
    const float *dO;          /* AttentionGrad: the output's gradient (Co channels) ... */
    float *dQ, *dK, *dV;      /* ... and the inputs' (shaped like Q, K and V) */
    int64_t B, N, M, Cq, Ck, Cv, Co;
    int failed;
} AttnArgs;

/* fast_attention.c: 1 sends every forward call to the portable kernel, as
 * on a CPU without AVX-512 (tests compare both); 0 returns to the fastest. */
void attention_force_portable(int on);

/* bf16 = 1 (ir/infer_attention.c): n floats rounded to bf16 into out (out
 * may be x), for the portable and BLAS kernels (fast_attention.c). */
void attention_round_bf16(const float *x, int64_t n, float *out);

/* attention_avx512.c: 1 when the AVX-512 kernels run this call
 * (an AVX-512 CPU and a head size of 16, 32, 64 or 128; with bf16 = 1,
 * AVX512-BF16 too). */
int attention_avx512_fits(const AttnArgs *a);
void attention_avx512_pairs(void *args, int64_t pair_begin, int64_t pair_end);

/* attention_grad_avx512.c: heads [head_begin, head_end) of the gradient, the
 * outputs zeroed beforehand; runs where attention_avx512_fits. */
void attention_grad_avx512_heads(void *args, int64_t head_begin, int64_t head_end);

/* The key set of one (batch row, head): L = sources * M keys, padded to Lp,
 * a whole number of ATTN_BLOCKs.  attention_key_row: the row of K or V that
 * holds key j, -1 for zero-filled frames and padding.  attention_transpose_keys:
 * panel [d, Lp] = the keys' channels off .. off+d-1 of base (C per row),
 * transposed, zeros where there is no row (AVX-512).  attention_bias_row: the
 * additive terms of query row i (padding, mask, causal positions). */
#define ATTN_BLOCK 16
static inline int64_t attention_padded(int64_t L) { return (L + ATTN_BLOCK - 1) / ATTN_BLOCK * ATTN_BLOCK; }
int64_t attention_key_row(const AttnArgs *a, const int64_t *src, int64_t L, int64_t j);
void attention_transpose_keys(const AttnArgs *a, const int64_t *src, int64_t L, int64_t Lp, const float *base, int64_t C,
                              int64_t off, float *panel);
void attention_bias_row(const AttnArgs *a, int64_t L, int64_t Lp, int64_t i, float *row);
/* bf16 (AVX512-BF16): attention_pair_panel: the keys rounded, as a panel
 * [d / 2, Lp] of channel-pair words (staging: 16 x d / 2 words of scratch);
 * attention_key_pairs: as words of key pairs [(L + 1) / 2, d].  The keys
 * come from base (f32, rounded) or, where it is not NULL, base16 (bf16,
 * taken as they are). */
void attention_pair_panel(const AttnArgs *a, const int64_t *src, int64_t L, int64_t Lp, const float *base, const uint16_t *base16,
                          int64_t C, int64_t off, uint32_t *staging, uint32_t *panel);
void attention_key_pairs(const AttnArgs *a, const int64_t *src, int64_t L, const float *base, const uint16_t *base16, int64_t C,
                         int64_t off, uint32_t *pairs);

#endif
