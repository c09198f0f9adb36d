/* retrieval.h — text-video retrieval metrics (MSR-VTT style). */
#ifndef VCLIP_RETRIEVAL_H
#define VCLIP_RETRIEVAL_H

#include <stddef.h>

typedef struct { double r1, r5, r10, median_rank, mean_rank; } RetrievalMetrics;

/* sim [n_captions][n_videos]; owner[i] = the video of caption i.  Ranks are
 * 1-based; ties put the lower index first.
 *   text->video: the rank of each caption's own video among all videos.
 *   video->text: for each video with captions, the best rank of any of its
 *   captions among all captions (videos without captions are left out). */
void retrieval_metrics(const float *sim, size_t n_captions, size_t n_videos, const size_t *owner,
                       RetrievalMetrics *t2v, RetrievalMetrics *v2t);

#endif
