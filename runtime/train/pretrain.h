/* pretrain.h — CLIP's own contrastive pretraining on image-text pairs, for
 * the demo's tiny model: both towers (models/clip_builder.c), normalized
 * features, a learned logit scale, symmetric InfoNCE over the batch, the
 * autodiff backward and AdamW on a warm-up + cosine schedule. */
#ifndef VCLIP_PRETRAIN_H
#define VCLIP_PRETRAIN_H

#include "../../models/clip_builder.h"

typedef struct {
    ClipConfig clip;
    int batch;
    int64_t steps;
    double lr, weight_decay;
    uint64_t seed;
    int threads, quiet;
    /* Fills images [batch, 3, S, S] (normalized) and texts [batch, context]
     * (token ids) for a step; pairs on the diagonal match.  0 or -1. */
    int (*fill)(void *ctx, int64_t step, Tensor *images, Tensor *texts, char *err, size_t cap);
    void *ctx;
} PretrainConfig;

typedef struct { double loss, logit_scale, ms_per_step; } PretrainResult;

/* Trains from a seeded initialization; returns the two towers as stand-alone
 * graphs (symbolic batch) carrying the trained weights, the last loss and the
 * learned (log) logit scale. */
int clip_pretrain(const PretrainConfig *c, Graph **visual, Graph **text, PretrainResult *res, char *err, size_t cap);

#endif
