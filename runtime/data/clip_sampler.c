/* clip_sampler.c — the released loader's sampling, step by step:
 *   span   = S * T * fps / target_fps frames (S * T when target_fps is 0)
 *   delta  = max(n_frames - span, 0)
 *   start  = uniform(0, delta) (train) or delta * i / views (test view i)
 *   index  = linspace(start, start + span - 1, T) in float32, clamped to
 *            [0, n_frames - 1], truncated to integers
 * A video shorter than the span therefore repeats its last frames, as the
 * reference does.  Spatially: test views resize the short side to the crop
 * size and take SlowFast's uniform_crop (centre for one crop; first, centre,
 * last along the long side for three); training resizes the short side to
 * round(uniform(min, max)), crops at a random offset and flips with p = 0.5. */
#include <math.h>
#include "clip_sampler.h"

void sampling_defaults(SamplingConfig *c)
{
    *c = (SamplingConfig){.frames = 8, .stride = 16, .target_fps = 30, .train = 0, .views = 3, .crops = 1,
                          .crop_size = 224, .min_short = 224, .max_short = 256};
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void clip_rng_seed(ClipRng *r, uint64_t seed, uint64_t sample)
{
    r->s = seed * 0x2545F4914F6CDD1Dull ^ (sample + 0x632BE59BD9B4E019ull);
    splitmix(&r->s);
}

double clip_rng_uniform(ClipRng *r) { return (double)(splitmix(&r->s) >> 11) * (1.0 / 9007199254740992.0); }

/* torch.linspace in float32: the first half counts up from start, the second down from end */
static void linspace_f32(float start, float end, int n, float *out)
{
    if (n == 1) { out[0] = start; return; }
    float step = (end - start) / (float)(n - 1);
    int half = n / 2;
    for (int i = 0; i < n; i++) out[i] = i < half ? start + step * (float)i : end - step * (float)(n - i - 1);
}

static void fill_indices(const SamplingConfig *c, int64_t n_frames, double start, double span, ClipPlan *p)
{
    float v[CLIP_MAX_FRAMES];
    p->start = start;
    p->end = start + span - 1;
    linspace_f32((float)p->start, (float)p->end, c->frames, v);
    for (int i = 0; i < c->frames; i++) {
        float x = v[i] < 0 ? 0 : (v[i] > (float)(n_frames - 1) ? (float)(n_frames - 1) : v[i]);
        p->index[i] = (int64_t)x;
    }
}

int plan_clips(const SamplingConfig *c, int64_t n_frames, double fps, ClipRng *rng, ClipPlan *plans, int max_plans)
{
    double span = (double)c->stride * c->frames;
    if (c->target_fps > 0 && fps > 0) span = span / c->target_fps * fps;
    double delta = n_frames - span > 0 ? n_frames - span : 0;
    if (c->sparse) {
        if (max_plans < 1) return 0;
        ClipPlan *p = &plans[0];
        for (int i = 0; i < c->frames; i++) {
            int64_t k = (int64_t)((i + 0.5) * (double)n_frames / c->frames);
            p->index[i] = k < n_frames ? k : n_frames - 1;
        }
        p->start = 0;
        p->end = (double)n_frames;
        p->short_side = c->crop_size;
        p->spatial = 1;
        p->flip = 0;
        return 1;
    }
    if (c->train) {
        if (max_plans < 1) return 0;
        ClipPlan *p = &plans[0];
        fill_indices(c, n_frames, clip_rng_uniform(rng) * delta, span, p);
        p->short_side = (int)lround(c->min_short + clip_rng_uniform(rng) * (c->max_short - c->min_short));
        p->spatial = -1;
        p->flip = clip_rng_uniform(rng) < 0.5;
        return 1;
    }
    int n = 0;
    for (int v = 0; v < c->views; v++)
        for (int s = 0; s < c->crops && n < max_plans; s++) {
            ClipPlan *p = &plans[n++];
            fill_indices(c, n_frames, delta * v / c->views, span, p);
            p->short_side = c->crop_size;
            p->spatial = c->crops == 1 ? 1 : s;
            p->flip = 0;
        }
    return n;
}

void plan_resized_size(int w, int h, int short_side, int *rw, int *rh)
{
    if (w < h) { *rw = short_side; *rh = (int)floor((double)h / w * short_side); }
    else { *rh = short_side; *rw = (int)floor((double)w / h * short_side); }
}

void plan_crop(const SamplingConfig *c, ClipPlan *p, int rw, int rh, ClipRng *rng)
{
    int size = c->crop_size;
    if (p->spatial < 0) { /* random crop: randint(0, dim - size) excludes its upper end */
        p->crop_y = rh > size ? (int)(clip_rng_uniform(rng) * (rh - size)) : 0;
        p->crop_x = rw > size ? (int)(clip_rng_uniform(rng) * (rw - size)) : 0;
        return;
    }
    p->crop_y = (int)ceil((rh - size) / 2.0);
    p->crop_x = (int)ceil((rw - size) / 2.0);
    if (rh > rw) { if (p->spatial == 0) p->crop_y = 0; else if (p->spatial == 2) p->crop_y = rh - size; }
    else { if (p->spatial == 0) p->crop_x = 0; else if (p->spatial == 2) p->crop_x = rw - size; }
}
