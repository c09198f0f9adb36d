/* loader.c — the multi-threaded clip loader that feeds training and
 * evaluation.
 *
 * Workers take sample positions in order and decode/preprocess them into a
 * bounded ring of slots (at most `prefetch` samples in flight, held as
 * uint8); the consumer assembles batches from the ring in sample order.  A
 * sample's randomness depends only on (seed, epoch, item), and the order
 * only on (seed, epoch), so the batches are the same whatever the number of
 * workers.  A video that cannot be read is reported with its path and reason
 * and then skipped, or replaced by another item chosen deterministically, and
 * counted; a per-file time limit keeps a pathological file from hanging a
 * worker.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "loader.h"
#include "shard.h"

enum { SLOT_EMPTY, SLOT_FILLING, SLOT_READY, SLOT_FAILED };

typedef struct { int state; uint8_t *pixels; size_t item; } Slot;

struct Loader {
    LoaderConfig cfg;
    size_t n, *order;
    size_t next_start, consumed, skipped, replaced;
    Slot *slots;
    size_t clip_bytes;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t *threads;
    int n_threads, stopping;
};

static uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static void warn(const char *what, const char *msg)
{
    fprintf(stderr, "vclip: warning: %s: ", what);
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) fprintf(stderr, "\\x%02x", *p);
        else fputc(*p, stderr);
    }
    fputc('\n', stderr);
}

static int read_item(Loader *l, size_t item, uint8_t *out, char *err, size_t cap)
{
    uint64_t sample = mix64((uint64_t)l->cfg.epoch * 0x100000001B3ull ^ item);
    return read_clips(l->cfg.ds->items[item].path, &l->cfg.sampling, l->cfg.seed, sample, l->cfg.time_limit_s, out,
                      NULL, NULL, err, cap);
}

static void *worker(void *arg)
{
    Loader *l = arg;
    char err[1024];
    for (;;) {
        pthread_mutex_lock(&l->mu);
        while (!l->stopping && l->next_start < l->n && l->next_start >= l->consumed + (size_t)l->cfg.prefetch)
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->stopping || l->next_start >= l->n) { pthread_mutex_unlock(&l->mu); return NULL; }
        size_t pos = l->next_start++;
        Slot *s = &l->slots[pos % (size_t)l->cfg.prefetch];
        s->state = SLOT_FILLING;
        s->item = l->order[pos];
        pthread_mutex_unlock(&l->mu);

        int ok = read_item(l, s->item, s->pixels, err, sizeof err) == 0;
        size_t used = s->item;
        if (!ok) {
            warn(l->cfg.replace_broken ? "replacing an unreadable video" : "skipping an unreadable video", err);
            size_t items = l->cfg.ds->n;
            for (int k = 1; !ok && l->cfg.replace_broken && k <= 8 && items > 1; k++) { /* deterministic stand-ins */
                used = (s->item + (size_t)mix64(s->item * 31 + (uint64_t)k) % (items - 1) + 1) % items;
                ok = read_item(l, used, s->pixels, err, sizeof err) == 0;
                if (!ok) warn("the stand-in is unreadable too", err);
            }
        }
        pthread_mutex_lock(&l->mu);
        s->item = used;
        s->state = ok ? SLOT_READY : SLOT_FAILED;
        if (!ok) l->skipped++;
        else if (used != l->order[pos]) l->replaced++;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
    }
}

Loader *loader_start(const LoaderConfig *cfg, char *err, size_t cap)
{
    if (!cfg->ds || !cfg->ds->n || cfg->batch < 1 || cfg->workers < 1 || cfg->prefetch < 1) {
        snprintf(err, cap, "loader: empty dataset or bad batch/workers/prefetch");
        return NULL;
    }
    Loader *l = calloc(1, sizeof *l);
    if (!l) { snprintf(err, cap, "out of memory"); return NULL; }
    l->cfg = *cfg;
    l->n = cfg->ds->n;
    l->clip_bytes = clip_bytes(&cfg->sampling);
    l->order = malloc(sizeof(size_t) * l->n);
    l->slots = calloc((size_t)cfg->prefetch, sizeof(Slot));
    l->threads = calloc((size_t)cfg->workers, sizeof(pthread_t));
    int ok = l->order && l->slots && l->threads;
    for (int i = 0; ok && i < cfg->prefetch; i++) ok = (l->slots[i].pixels = malloc(l->clip_bytes)) != NULL;
    if (!ok) { snprintf(err, cap, "out of memory for %d prefetched samples", cfg->prefetch); loader_stop(l); return NULL; }
    for (size_t i = 0; i < l->n; i++) l->order[i] = i;
    if (cfg->shuffle) { /* Fisher-Yates, keyed by (seed, epoch) */
        uint64_t st = mix64(cfg->seed ^ mix64((uint64_t)cfg->epoch + 1));
        for (size_t i = l->n - 1; i > 0; i--) {
            st = mix64(st);
            size_t j = (size_t)(st % (i + 1)), t = l->order[i];
            l->order[i] = l->order[j];
            l->order[j] = t;
        }
    }
    if (cfg->shard_count > 0) /* in place: position rank + count * i >= i */
        l->n = shard_take(l->order, l->n, (size_t)cfg->batch * (size_t)cfg->shard_count, cfg->shard_rank, cfg->shard_count, l->order);
    l->next_start = l->consumed = cfg->start < l->n ? cfg->start : l->n;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    for (int i = 0; i < cfg->workers; i++) {
        if (pthread_create(&l->threads[i], NULL, worker, l)) { snprintf(err, cap, "cannot start worker threads"); loader_stop(l); return NULL; }
        l->n_threads++;
    }
    return l;
}

int loader_next(Loader *l, Batch *b)
{
    memset(b, 0, sizeof *b);
    const SamplingConfig *sc = &l->cfg.sampling;
    b->clips = clips_per_video(sc);
    b->frames = sc->frames;
    b->crop = sc->crop_size;
    b->pixels = malloc(l->clip_bytes * (size_t)l->cfg.batch);
    b->labels = malloc(sizeof(int) * (size_t)l->cfg.batch);
    b->items = malloc(sizeof(size_t) * (size_t)l->cfg.batch);
    if (!b->pixels || !b->labels || !b->items) { batch_free(b); return -1; }
    pthread_mutex_lock(&l->mu);
    while (b->n < l->cfg.batch && l->consumed < l->n) {
        Slot *s = &l->slots[l->consumed % (size_t)l->cfg.prefetch];
        while (s->state != SLOT_READY && s->state != SLOT_FAILED) pthread_cond_wait(&l->cv, &l->mu);
        if (s->state == SLOT_READY) {
            memcpy(b->pixels + l->clip_bytes * (size_t)b->n, s->pixels, l->clip_bytes);
            b->labels[b->n] = l->cfg.ds->items[s->item].label;
            b->items[b->n] = s->item;
            b->n++;
        }
        s->state = SLOT_EMPTY;
        l->consumed++;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    if (!b->n) { batch_free(b); return 0; }
    return 1;
}

void batch_free(Batch *b)
{
    free(b->pixels);
    free(b->labels);
    free(b->items);
    memset(b, 0, sizeof *b);
}

size_t loader_skipped(const Loader *l) { return l->skipped; }
size_t loader_replaced(const Loader *l) { return l->replaced; }

void loader_stop(Loader *l)
{
    if (!l) return;
    if (l->n_threads) {
        pthread_mutex_lock(&l->mu);
        l->stopping = 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        for (int i = 0; i < l->n_threads; i++) pthread_join(l->threads[i], NULL);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
    }
    for (int i = 0; l->slots && i < l->cfg.prefetch; i++) free(l->slots[i].pixels);
    free(l->slots);
    free(l->order);
    free(l->threads);
    free(l);
}
