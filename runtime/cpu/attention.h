/* attention.h — what the CPU attention kernels share: the decoded arguments
 * of one ai.vclip.Attention call and the per-(batch row, head) workers that
 * parallel_for spreads over the thread pool. */
#ifndef VCLIP_CPU_ATTENTION_H
#define VCLIP_CPU_ATTENTION_H

#include "kernels.h"

typedef struct {
    AttentionParams p;
    const float *Q, *K, *V, *mask;
    float *O;
    int64_t B, N, M, Cq, Ck, Cv, Co;
    int failed;
} AttnArgs;

/* flash_attention.c: 1 when the online-softmax kernel runs this call
 * (an AVX-512 CPU and a head size of 16, 32, 64 or 128). */
int flash_attention_fits(const AttnArgs *a);
void flash_attention_pairs(void *args, int64_t pair_begin, int64_t pair_end);

#endif
