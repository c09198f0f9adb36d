/* optimizer.h — AdamW with DESIGN.md §2's settings, global gradient-norm
 * clipping and the warm-up + cosine learning-rate schedule. */
#ifndef VCLIP_OPTIMIZER_H
#define VCLIP_OPTIMIZER_H

#include "../../ir/ir.h"

typedef struct {
    double lr, lr_min, lr_start;   /* peak, final, warm-up start */
    int64_t warmup_steps, total_steps;
} LrSchedule;

/* Linear warm-up from lr_start to lr over warmup_steps, then cosine decay to
 * lr_min at total_steps (step counts from 0). */
double lr_at(const LrSchedule *s, int64_t step);

typedef struct {
    double beta1, beta2, eps, weight_decay;
} AdamWConfig;
#define ADAMW_DEFAULTS ((AdamWConfig){0.9, 0.999, 1e-8, 0.01})

typedef struct {
    AdamWConfig cfg;
    int n;
    Tensor **params;               /* not owned: the training graph's parameter data */
    Tensor **m, **v;               /* first and second moments (owned) */
    unsigned char *decay;          /* 1 where weight decay applies */
    int64_t step;                  /* updates done */
} AdamW;

/* Decay applies to every parameter except biases and vectors (at most one
 * dim above 1: LayerNorm gains, the class token, logit_scale). */
int adamw_decays(const char *name, const Tensor *t);
int adamw_init(AdamW *o, const AdamWConfig *cfg, Tensor **params, const char *const *names, int n);
void adamw_free(AdamW *o);
/* The L2 norm over all gradients together (NaN/Inf if any element is). */
double grad_global_norm(Tensor *const *grads, int n);
/* One update with learning rate lr; gradients are scaled by grad_scale
 * first (clipping). */
void adamw_step(AdamW *o, Tensor *const *grads, double lr, double grad_scale);
/* torch.nn.utils.clip_grad_norm_'s factor: min(1, max_norm / (norm + 1e-6)). */
double clip_scale(double norm, double max_norm);

#endif
