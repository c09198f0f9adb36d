/* clip_reader.c — probe, plan, decode and preprocess one video; see
 * clip_reader.h.  Shared by `vclip-run frames` and the loader, so the tensor
 * `frames` shows is the one training and evaluation see. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "clip_reader.h"
#include "preprocess.h"

int clips_per_video(const SamplingConfig *c) { return c->train || c->sparse ? 1 : c->views * c->crops; }

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
    /* one decoding pass for all views: the sorted union of their frame indices */
    int64_t *uniq = malloc(sizeof(int64_t) * (size_t)(n * T));
    int nu = 0;
    for (int i = 0; uniq && i < n; i++)
        for (int t = 0; t < T; t++) {
            int64_t v = plans[i].index[t];
            int k = nu;
            while (k > 0 && uniq[k - 1] > v) k--;
            if (k > 0 && uniq[k - 1] == v) continue;
            memmove(uniq + k + 1, uniq + k, sizeof(int64_t) * (size_t)(nu - k));
            uniq[k] = v;
            nu++;
        }
    size_t fsz = (size_t)W * H * 3;
    uint8_t *all = uniq ? malloc(fsz * (size_t)(nu ? nu : 1)) : NULL, *rgb = malloc(fsz * (size_t)T);
    if (!uniq || !all || !rgb) { free(uniq); free(all); free(rgb); snprintf(err, cap, "%s: out of memory", path); return -1; }
    int rc = video_decode_frames(path, &vi, uniq, nu, time_limit_s, 0, all, NULL, err, cap);
    size_t per_clip = (size_t)T * c->crop_size * c->crop_size * 3;
    for (int i = 0; i < n && !rc; i++) {
        int rw, rh;
        plan_resized_size(W, H, plans[i].short_side, &rw, &rh);
        if (rw < c->crop_size || rh < c->crop_size) {
            snprintf(err, cap, "%s: frames of %dx%d resize to %dx%d, smaller than the %d crop", path, W, H, rw, rh, c->crop_size);
            rc = -1;
            break;
        }
        plan_crop(c, &plans[i], rw, rh, &rng);
        for (int t = 0; t < T; t++) {
            int k = 0;
            while (uniq[k] != plans[i].index[t]) k++;
            memcpy(rgb + (size_t)t * fsz, all + (size_t)k * fsz, fsz);
        }
        preprocess_clip_u8(rgb, T, W, H, &plans[i], c->crop_size, out + (size_t)i * per_clip);
    }
    free(uniq);
    free(all);
    free(rgb);
    return rc;
}
