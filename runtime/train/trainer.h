/* trainer.h — the Open-VCLIP training loop: draws IWR's alpha, runs the
 * training graph, skips non-finite steps, clips, updates with AdamW on the
 * warm-up + cosine schedule, keeps the SWA average of per-epoch weights,
 * checkpoints atomically, resumes exactly, and writes the final (SWA,
 * patched) weights.  Batches come from a BatchSource: video files through the
 * FFmpeg loader (vclip-run train) or the demo's generated world.
 *
 * Data parallel (a Comm of several ranks, docs/distributed.md): every rank
 * runs this loop on its own shard with the per-rank batch; the gradients
 * are averaged by bucketed all-reduce during the backward pass
 * (grad_reducer.h) and the losses after it, so every rank makes the same
 * update; alpha comes from the same seed everywhere; rank 0 alone writes
 * the metrics, checkpoints and weights, and every rank resumes from them. */
#ifndef VCLIP_TRAINER_H
#define VCLIP_TRAINER_H

#include <stdio.h>
#include "optimizer.h"
#include "train_graph.h"
#include "../backend.h"
#include "../comm/comm.h"

typedef struct BatchSource {
    /* Starts epoch `epoch` (from 0), skipping its first `skip` batches. */
    int (*begin_epoch)(struct BatchSource *s, int64_t epoch, int64_t skip, char *err, size_t cap);
    /* Fills video [B, T, 3, H, W], labels [B] and, when not NULL, caption
     * features [B, D].  1 with a batch, 0 at the end of the epoch, -1 error. */
    int (*next)(struct BatchSource *s, Tensor *video, Tensor *labels, Tensor *captions, char *err, size_t cap);
    int64_t batches_per_epoch;
    void *ctx;
} BatchSource;

typedef struct {
    TrainGraphConfig graph;
    int64_t epochs, warmup_epochs;
    double lr, lr_min, lr_start;   /* peak, end of the cosine, start of the warm-up */
    double clip_norm;              /* <= 0: no clipping */
    AdamWConfig adamw;
    double alpha_lo, alpha_hi;
    uint64_t seed;
    int64_t swa_start;             /* first epoch (from 0) averaged into SWA; < 0: no SWA */
    double patch_ratio;            /* final weights r*θ_CLIP + (1-r)*θ; 0: none */
    const char *out_dir;           /* checkpoint.safetensors, metrics.jsonl, weights.safetensors */
    int keep_epochs;               /* also write OUT/epoch-N.safetensors (weights) after each epoch */
    int64_t save_every;            /* also checkpoint every N steps (0: at epoch ends only) */
    int resume;
    const char *init;              /* start from these weights (.safetensors) instead of the ONNX file's */
    int max_bad_steps;             /* consecutive non-finite steps that stop the run */
    int progress;                  /* 1: a progress bar (terminal); 0: plain lines */
    int quiet;
    const char *config_json;       /* stored in checkpoints */
    int threads;
    Target target;                 /* where the step runs (on CUDA also the AdamW update and SWA's mean) */
    Precision precision;           /* the step's GEMMs (CUDA: bf16, fp16 or fp32; sums, norms, softmax and losses stay f32) */
    /* dynamic loss scaling (on with fp16, or when loss_scale > 0): the gradients are taken of S * loss and
     * divided by S in the update; a step whose gradients overflow is skipped and halves S, and
     * loss_scale_window finite steps in a row double it (PyTorch's GradScaler) */
    double loss_scale;             /* the first S (0: 65536 with fp16, none otherwise) */
    int64_t loss_scale_window;     /* 0: 2000 */
    Comm *comm;                    /* NULL or one rank: a single process; graph.batch is the per-rank batch */
    size_t bucket_bytes;           /* gradient all-reduce buckets (0: 25 MB, DDP's default) */
} TrainerConfig;

/* DESIGN.md §2's recipe for a global batch of `batch` (lr scaled linearly
 * from 3.33e-6 at 64) and `epochs`; everything else to its default. */
void trainer_defaults(TrainerConfig *c, int64_t batch, int64_t epochs);

/* Whether the trainer can run on target t here: 0, or -1 and why (callers
 * ask before any other work). */
int trainer_check_target(Target t, char *err, size_t cap);

typedef struct {
    double last_loss;
    int64_t steps, skipped;
    double seconds;
    double comm_wait_seconds;      /* data parallel: waiting for the gradient all-reduce after the backward pass */
    double overlapped;             /* the fraction of the gradient bytes whose all-reduce started during it */
    double lead_seconds;           /* how long before its end, on average over the bytes (grad_reducer.h) */
    int buckets;
    size_t grad_bytes;             /* all-reduced per step */
    int device_reduce;             /* the gradients were averaged on the device, by NCCL (with one rank too) */
} TrainResult;

/* 0, or -1 with a message; the last good checkpoint is left intact. */
int trainer_run(const char *onnx, const TrainerConfig *cfg, BatchSource *src, TrainResult *res, char *err, size_t cap);

#endif
