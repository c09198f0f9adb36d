/* clip_sampler.h — which frames, scale, crop and flip a clip gets
 * (DESIGN.md §2, the released SlowFast-style loader). */
#ifndef VCLIP_CLIP_SAMPLER_H
#define VCLIP_CLIP_SAMPLER_H

#include <stdint.h>

#define CLIP_MAX_FRAMES 64

typedef struct {
    int frames;          /* T, default 8 */
    int stride;          /* S, default 16 */
    double target_fps;   /* the span is S*T frames at this rate (30); 0: S*T source frames */
    int train;           /* 1: one random clip; 0: `views` x `crops` test views */
    int views, crops;    /* test: temporal views (3) and spatial crops (1 or 3) */
    int crop_size;       /* 224 */
    int min_short, max_short; /* train short side range [224, 256]; test uses crop_size */
    int sparse;          /* 1: one clip of T frames spread over the whole video (the centre of each of T
                          * equal segments, as pseudo-captioning samples them); stride and views unused */
} SamplingConfig;

void sampling_defaults(SamplingConfig *c);

typedef struct {
    int64_t index[CLIP_MAX_FRAMES]; /* frame indices, ascending */
    double start, end;              /* the clip span, in frames (may pass the end: indices are clamped) */
    int short_side;                 /* resize the short side to this */
    int spatial;                    /* test: 0/1/2 = first/centre/last crop along the long side; -1 train */
    int crop_x, crop_y;             /* train: crop offsets in the resized frame (filled by plan_crop) */
    int flip;                       /* train: horizontal flip */
} ClipPlan;

/* Deterministic per (seed, sample): the same plans whatever the thread count. */
typedef struct { uint64_t s; } ClipRng;
void clip_rng_seed(ClipRng *r, uint64_t seed, uint64_t sample);
double clip_rng_uniform(ClipRng *r);          /* [0, 1) */

/* Fills the plans of one video: 1 (train) or views*crops (test). Returns the count. */
int plan_clips(const SamplingConfig *c, int64_t n_frames, double fps, ClipRng *rng, ClipPlan *plans, int max_plans);
/* Resized size for a frame of w x h with the plan's short side. */
void plan_resized_size(int w, int h, int short_side, int *rw, int *rh);
/* Crop offsets in the resized frame (train: random via rng; test: uniform_crop). */
void plan_crop(const SamplingConfig *c, ClipPlan *p, int rw, int rh, ClipRng *rng);

#endif
