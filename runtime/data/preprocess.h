/* preprocess.h — frames to the model's input tensor. */
#ifndef VCLIP_PREPROCESS_H
#define VCLIP_PREPROCESS_H

#include <stdint.h>
#include "clip_sampler.h"

/* T upright RGB24 frames (w x h) -> out [T, 3, crop, crop] float: bilinear
 * resize (PyTorch's align_corners=False, no antialiasing) of the short side,
 * crop, optional flip, /255 and CLIP's mean/std. */
void preprocess_clip(const uint8_t *frames, int T, int w, int h, const ClipPlan *p, int crop, float *out);

#endif
