/* loader.h — batches of preprocessed clips from a dataset, on worker threads. */
#ifndef VCLIP_LOADER_H
#define VCLIP_LOADER_H

#include <stddef.h>
#include <stdint.h>
#include "clip_reader.h"
#include "dataset.h"

typedef struct {
    const Dataset *ds;
    SamplingConfig sampling;
    int batch;              /* videos per batch */
    int workers;            /* decoding threads */
    int prefetch;           /* videos decoded ahead (the queue's bound) */
    uint64_t seed;
    int epoch;
    int shuffle;            /* order of items: shuffled per (seed, epoch) */
    int replace_broken;     /* 1: an unreadable video is replaced by another; 0: skipped */
    double time_limit_s;    /* per file */
    size_t start;           /* first sample position of the epoch (resuming mid-epoch); 0 normally */
    int shard_rank, shard_count; /* count > 0: this rank's share of whole global batches of batch * count (shard.h) */
} LoaderConfig;

typedef struct {
    int n, clips, frames, crop;
    uint8_t *pixels;        /* [n][clips][frames][crop][crop][3]; normalize_clip() per clip */
    int *labels;
    size_t *items;          /* dataset index of each video (after replacement) */
} Batch;

typedef struct Loader Loader;
Loader *loader_start(const LoaderConfig *cfg, char *err, size_t cap);
/* 1 with a batch, 0 at the end of the epoch, -1 out of memory. */
int loader_next(Loader *l, Batch *b);
void batch_free(Batch *b);
size_t loader_skipped(const Loader *l);
size_t loader_replaced(const Loader *l);
void loader_stop(Loader *l);

#endif
