/* feature_cache.h — per-video frame features on disk, so that other class
 * sets, prompts or protocols never decode a video twice. */
#ifndef VCLIP_FEATURE_CACHE_H
#define VCLIP_FEATURE_CACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char dir[4096];   /* CACHE/features/<model and preprocessing key> */
    int enabled;
} FeatureCache;

/* Key: a hash of the model file's bytes and of the preprocessing settings
 * (frames, stride, views, crops, size, window).  The folder is
 * $VCLIP_CACHE_DIR or $XDG_CACHE_HOME/vclip or ~/.cache/vclip.  0 or -1. */
int feature_cache_open(FeatureCache *c, const char *model_path, const char *settings, char *err, size_t cap);
/* Reads `count` floats for the video (keyed by path, size and mtime); 1 hit, 0 miss. */
int feature_cache_get(const FeatureCache *c, const char *video, float *out, size_t count);
/* Writes atomically; failures only cost a later recomputation. */
void feature_cache_put(const FeatureCache *c, const char *video, const float *feat, size_t count);

#endif
