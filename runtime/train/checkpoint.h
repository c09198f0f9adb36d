/* checkpoint.h — training checkpoints in safetensors: the weights under their
 * ONNX names (so `vclip-run patch` and `average` read them directly), AdamW's
 * moments, the SWA running average, and the state needed to resume exactly
 * (step, epoch, position in the epoch, RNG) plus the run's config as
 * metadata.  Written atomically: temporary file, fsync, rename. */
#ifndef VCLIP_CHECKPOINT_H
#define VCLIP_CHECKPOINT_H

#include "optimizer.h"

typedef struct {
    int64_t step;            /* optimizer updates done */
    int64_t epoch;           /* epochs completed */
    int64_t step_in_epoch;   /* batches consumed in the current epoch */
    uint64_t rng;            /* the alpha sampler's state */
    int64_t swa_count;       /* epochs averaged into swa */
    int64_t skipped;         /* non-finite steps skipped so far */
    double loss_scale;       /* dynamic loss scaling's S (0: not scaling) */
    int64_t scale_good_steps; /* finite steps since S last changed */
} TrainState;

typedef struct {
    int n;
    const char *const *names;
    Tensor *const *params;   /* the weights */
    const AdamW *opt;        /* NULL: no optimizer state (exported weights) */
    Tensor *const *swa;      /* NULL: none */
    const TrainState *state; /* NULL: none */
    const char *config_json; /* NULL: none */
} CheckpointView;

int checkpoint_save(const char *path, const CheckpointView *v, char *err, size_t cap);
/* Fills params (and opt's moments, swa, state when given) from path; every
 * tensor must exist with the same shape.  0 or -1 with a message naming the
 * file and the tensor. */
int checkpoint_load(const char *path, const CheckpointView *v, AdamW *opt, TrainState *state, char *err, size_t cap);
/* One named tensor of a checkpoint (NULL with a message). */
Tensor *checkpoint_tensor(const char *path, const char *name, char *err, size_t cap);

/* Is `name` a weight (not "adamw.m/...", "adamw.v/..." or "swa/...")? */
int checkpoint_is_weight(const char *name);
/* Sets every f32 initializer of g named in the file's weights to the file's
 * data (shapes must match); *applied counts them, *unused the file's weights
 * that g does not have (logit_scale, for an image encoder).  0 or -1. */
int checkpoint_apply(Graph *g, const char *path, int *applied, int *unused, char *err, size_t cap);

#endif
