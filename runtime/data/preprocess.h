/* preprocess.h — frames to the model's input tensor. */
#ifndef VCLIP_PREPROCESS_H
#define VCLIP_PREPROCESS_H

#include <stdint.h>
#include "clip_sampler.h"

/* T upright RGB24 frames (w x h) -> out [T, crop, crop, 3] uint8: bilinear
 * resize (PyTorch's align_corners=False, no antialiasing) of the short side,
 * crop, optional flip, rounded to the nearest level.  uint8 is what loader
 * queues hold (a quarter of the memory of floats). */
void preprocess_clip_u8(const uint8_t *frames, int T, int w, int h, const ClipPlan *p, int crop, uint8_t *out);

/* [T, crop, crop, 3] uint8 -> [T, 3, crop, crop] float: /255, CLIP mean/std. */
void normalize_clip(const uint8_t *in, int T, int crop, float *out);

#endif
