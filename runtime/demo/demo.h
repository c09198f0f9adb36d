/* demo.h — the demo world's pieces (docs/training.md): a plan of sizes, the
 * generated videos and their batch source, the pretrained tiny CLIP and its
 * cache, fine-tuning plainly or as Open-VCLIP, top-1 scoring of a patched
 * model, and the test splits written as files.  `vclip-run demo` strings
 * them together; tests and later experiments (seeds, ablations) reuse them. */
#ifndef VCLIP_DEMO_H
#define VCLIP_DEMO_H

#include <stddef.h>
#include <stdint.h>
#include "../../ir/ir.h"
#include "../../models/clip_builder.h"
#include "../../models/prompts.h"
#include "../data/shape_world.h"
#include "../eval/text_features.h"
#include "../backend.h"

#define DEMO_SEEN_COLOURS 3 /* red, green, blue; the other three are unseen */
#define DEMO_CLASSES (DEMO_SEEN_COLOURS * SW_SHAPES * SW_MOTIONS) /* classes per split */

typedef struct {
    ClipConfig clip;
    double caption_weight; /* λ of the caption loss (the paper's best: 4) */
    int class_captions;    /* captions: each class's description instead of each video's own caption */
    int validation;        /* evaluate on validation videos (other seeds) instead of the test videos */
    int frames, pre_batch, train_per_class, test_per_class, ft_batch, ft_epochs;
    int64_t pre_steps;
    double pre_lr, ft_lr;
} DemoPlan;
/* The default sizes, or a few steps of everything (quick: a smoke test). */
void demo_plan(DemoPlan *p, int quick);

typedef struct { SwItem it; uint64_t seed; int label; } DemoVideo;

/* splitmix64: the world's seeds and shuffles. */
uint64_t demo_mix(uint64_t x);
/* n videos per class of the classes whose colour is in [c0, c1), labels relative to c0's first class */
DemoVideo *demo_videos(int c0, int c1, int per_class, uint64_t salt, size_t *n);
/* The test videos as files, a list per split, and the class features in
 * encode-text's format: OUT/videos/SPLIT/NNNNN.nut, OUT/videos/SPLIT.csv,
 * OUT/videos/classes_SPLIT.safetensors. */
int demo_write_split(const char *out, const char *split, const DemoVideo *v, size_t n, const float *cf, int64_t D,
                     const StringList *names, size_t first_class, const DemoPlan *p, char *err, size_t cap);

/* The pretrained CLIP (visual and text ONNX paths, its learned logit scale):
 * from the cache ($VCLIP_CACHE_DIR/demo), or pretrained now and cached. */
int demo_pretrained_clip(const DemoPlan *p, int threads, int quiet, char *visual, char *text, size_t cap, double *logit_scale,
                         char *err, size_t ecap);
/* dst = a copy of src, complete or not at all. */
int demo_copy_file(const char *src, const char *dst, char *err, size_t cap);

/* What a fine-tuning run adds to plain training (the ablation's rows). */
typedef struct {
    int iwr;      /* interpolated weight optimization */
    int swa;      /* average the weights from the second epoch (swa.safetensors) */
    int captions; /* the caption loss over each video's own caption */
    double patch; /* final weights r * θ_CLIP + (1 - r) * θ (0: none) */
} DemoRecipe;

/* Fine-tunes VCLIP from clip_onnx on the n videos `train` into out/
 * (checkpoint.safetensors holds the last weights, weights.safetensors the
 * recipe's final ones).  captions: one feature row per video (needed by the
 * caption loss).  seed: the batch order and the IWR sampler. */
int demo_finetune(const DemoPlan *p, const char *clip_onnx, const Tensor *cf, const DemoVideo *train, size_t n, const float *captions,
                  const DemoRecipe *r, uint64_t seed, double logit_scale, const char *out, int threads, Target target,
                  Precision precision, int quiet, char *err, size_t cap);

/* Top-1 (%) of the encoder r * θ_CLIP + (1 - r) * weights (weights NULL:
 * CLIP) on videos v against class features cf [C, D], logits averaged over
 * the frames; attrs (NULL: not wanted) gets the share of predictions with
 * the right colour, shape and motion (%), which tells what an error got
 * wrong. */
typedef struct { const char *clip_onnx; int threads, frames, S; Target target; } DemoEval;
int demo_top1(const DemoEval *e, const char *weights, double r, int window, const DemoVideo *v, size_t n, const float *cf, int C,
              int64_t D, double *out, double *attrs, char *err, size_t cap);

/* The experiment, one seed at a time: the rows of the ablation (the paper's
 * Table IV for this world), each with zero-shot and close-set top-1. */
enum { DEMO_CLIP, DEMO_PLAIN, DEMO_IWR, DEMO_SWA, DEMO_PATCH, DEMO_CAPTIONS, DEMO_ALL, DEMO_ROWS };
extern const char *const demo_row_keys[DEMO_ROWS];   /* results.json's keys */
extern const char *const demo_row_labels[DEMO_ROWS]; /* the printed table's */
#define DEMO_CURVE 11                                /* patch ratios 0, 0.1, ..., 1 */
typedef struct {
    double zs[DEMO_ROWS], cs[DEMO_ROWS];             /* top-1 (%) */
    double zs_attr[DEMO_ROWS][3];                    /* zero-shot: right colour, shape, motion (%) */
    double curve_zs[DEMO_CURVE], curve_cs[DEMO_CURVE];
    size_t n_test;                                   /* test videos per split */
} DemoSeedResult;

/* What every seed shares: the pretrained CLIP, the class features of both
 * splits, the text encoder (for the training videos' captions). */
typedef struct {
    const DemoPlan *p;
    const char *clip_visual;
    Encoder *text;
    const Tensor *cf_seen;     /* [DEMO_CLASSES, D] */
    const float *cf_unseen;    /* [DEMO_CLASSES, D] */
    int64_t D;
    double logit_scale;
    int threads, quiet;
    Target target;             /* fine-tuning and evaluation (pretraining stays on the CPU) */
    Precision precision;       /* fine-tuning's GEMMs (evaluation is fp32) */
} DemoWorld;

/* A seed's test videos (seed 0: the ones the single-seed demo always had). */
void demo_test_videos(const DemoPlan *p, int seed, DemoVideo **seen, size_t *n_seen, DemoVideo **unseen, size_t *n_unseen);
/* Seed `seed`: its own training videos (captioned one by one), batch order
 * and IWR draws, its own test videos; four fine-tuning runs under dir
 * (plain/, iwr/, captions/, open_vclip/) and every row and curve point. */
int demo_run_seed(const DemoWorld *w, int seed, const char *dir, DemoSeedResult *res, char *err, size_t cap);

#endif
