/* video_features.h — a video encoder run over a dataset: unit-norm frame
 * embeddings per test view, and zero-shot scores from them. */
#ifndef VCLIP_VIDEO_FEATURES_H
#define VCLIP_VIDEO_FEATURES_H

#include "../../ir/ir.h"
#include "../data/loader.h"
#include "../model.h"
#include "feature_cache.h"
#include "../comm/comm.h"

typedef struct {
    Model *m;
    int T, size, D;  /* frames, input size, embedding width */
} VideoModel;

/* A video encoder ([B,T,3,S,S] -> [B,T,D]), or an image encoder made temporal
 * here with `frames` and `window`, compiled with co (target, precision,
 * threads).  0 or -1 with a message. */
int video_model_open(VideoModel *m, const char *path, int frames, int window, const CompileOptions *co, char *err, size_t cap);
/* The same from an imported graph, which the model then owns (freed by close, also on failure). */
int video_model_from_graph(VideoModel *m, Graph *g, const char *path, int frames, int window, const CompileOptions *co,
                           char *err, size_t cap);
void video_model_close(VideoModel *m);

/* feat[n][views][T][D]: unit-norm frame embeddings of every video of ds
 * (sampling sc; its frames and crop size must be the model's).  ok[i] = 0
 * marks an unreadable video; *decoded counts the videos not found in cache. */
int video_features(VideoModel *m, const Dataset *ds, const SamplingConfig *sc, int batch, int workers,
                   const FeatureCache *cache, float *feat, char *ok, size_t *skipped, size_t *decoded, char *err, size_t cap);

/* feat[videos][views][T][D]: unit-norm frame embeddings of decoded clips
 * (pixels as the loader's Batch holds them: [videos][views][T][S][S][3]
 * uint8).  0 or -1 with a message. */
int video_embed(VideoModel *m, const uint8_t *pixels, int videos, int views, float *feat, char *err, size_t cap);

/* The same spread over the ranks of comm (NULL: this process alone): rank r
 * computes the r-th contiguous share of ds, and every rank receives all of
 * feat and ok, in ds's order, and the job's skipped and decoded counts.
 * Each video is computed by one rank, so feature cache entries have one
 * writer per job (and the cache's writes are atomic across jobs). */
int video_features_ranks(VideoModel *m, const Dataset *ds, const SamplingConfig *sc, int batch, int workers,
                         const FeatureCache *cache, Comm *comm, float *feat, char *ok, size_t *skipped, size_t *decoded,
                         char *err, size_t cap);

/* v /= |v| (zero vectors stay zero). */
void l2_normalize(float *v, int d);

/* scores[i][c] = sum over views of the mean over frames of scale * f . W_c */
void video_scores(const float *feat, size_t n, int views, int T, int D, const float *W, int C, double scale, float *scores);

#endif
