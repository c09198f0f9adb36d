/* clip_reader.h — one video's clips, decoded and preprocessed to uint8. */
#ifndef VCLIP_CLIP_READER_H
#define VCLIP_CLIP_READER_H

#include <stdint.h>
#include "clip_sampler.h"
#include "video.h"

/* Bytes of one video's clips: clips * T * crop * crop * 3. */
size_t clip_bytes(const SamplingConfig *c);
int clips_per_video(const SamplingConfig *c);

/* Plans and reads the clips of `path` into out [clips, T, crop, crop, 3];
 * the randomness comes from (seed, sample) only.  plans (clips entries) and
 * info may be NULL.  0, or -1 with a message naming the file. */
int read_clips(const char *path, const SamplingConfig *c, uint64_t seed, uint64_t sample, double time_limit_s,
               uint8_t *out, ClipPlan *plans, VideoInfo *info, char *err, size_t cap);

#endif
