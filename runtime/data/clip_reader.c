/* clip_reader.c — probe, plan, decode and preprocess one video; see
 * clip_reader.h.  Shared by `vclip-run frames` and the loader, so the tensor
 * `frames` shows is the one training and evaluation see. */
#include <stdio.h>
#include <stdlib.h>
#include "clip_reader.h"
#include "preprocess.h"

int clips_per_video(const SamplingConfig *c) { return c->train ? 1 : c->views * c->crops; }

size_t clip_bytes(const SamplingConfig *c)
{
    return (size_t)clips_per_video(c) * c->frames * c->crop_size * c->crop_size * 3;
}

int read_clips(const char *path, const SamplingConfig *c, uint64_t seed, uint64_t sample, double time_limit_s,
               uint8_t *out, ClipPlan *plans, VideoInfo *info, char *err, size_t cap)
{
    VideoInfo vi;
    ClipPlan local[64 * 3];
    if (!plans) plans = local;
    if (video_probe(path, time_limit_s, &vi, err, cap)) return -1;
    if (info) *info = vi;
    ClipRng rng;
    clip_rng_seed(&rng, seed, sample);
    int n = plan_clips(c, vi.frames, vi.fps, &rng, plans, clips_per_video(c));
    int W = video_out_width(&vi), H = video_out_height(&vi), T = c->frames;
    uint8_t *rgb = malloc((size_t)W * H * 3 * T);
    if (!rgb) { snprintf(err, cap, "%s: out of memory", path); return -1; }
    size_t per_clip = (size_t)T * c->crop_size * c->crop_size * 3;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        int rw, rh;
        plan_resized_size(W, H, plans[i].short_side, &rw, &rh);
        if (rw < c->crop_size || rh < c->crop_size) {
            snprintf(err, cap, "%s: frames of %dx%d resize to %dx%d, smaller than the %d crop", path, W, H, rw, rh, c->crop_size);
            rc = -1;
            break;
        }
        plan_crop(c, &plans[i], rw, rh, &rng);
        rc = video_decode_frames(path, &vi, plans[i].index, T, time_limit_s, rgb, err, cap);
        if (!rc) preprocess_clip_u8(rgb, T, W, H, &plans[i], c->crop_size, out + (size_t)i * per_clip);
    }
    free(rgb);
    return rc;
}
