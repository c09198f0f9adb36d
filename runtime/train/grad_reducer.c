/* grad_reducer.c — see grad_reducer.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "grad_reducer.h"
#include "../../ir/base.h"

typedef struct {
    float *data;
    size_t numel;
    int missing;          /* gradients not yet copied in this step */
    CommRequest *req;
    int started_early;    /* during the run */
    double started_ms;
} Bucket;

struct GradReducer {
    Comm *comm;
    int first, n, n_buckets, next;  /* next: the first bucket not started (buckets start in order on every rank) */
    int *bucket_of;       /* per gradient */
    size_t *offset;       /* per gradient: where it sits in its bucket */
    int64_t *numel;
    unsigned char *seen;  /* per gradient, this step */
    Bucket *b;
    int running;          /* between the first observed output and finish */
    char err[512];        /* the first failure inside the observer, reported by finish */
    double wait_ms;
    double overlapped, lead_ms;
};

GradReducer *grad_reducer_new(Comm *c, int first, int n, const int64_t *numel, size_t bucket_bytes, char *err, size_t cap)
{
    GradReducer *r = calloc(1, sizeof *r);
    if (!r) { snprintf(err, cap, "out of memory"); return NULL; }
    r->comm = c;
    r->first = first;
    r->n = n;
    r->bucket_of = malloc(sizeof(int) * (size_t)(n + 1));
    r->offset = malloc(sizeof(size_t) * (size_t)(n + 1));
    r->numel = malloc(sizeof(int64_t) * (size_t)(n + 1));
    r->seen = calloc((size_t)n + 1, 1);
    r->b = calloc((size_t)n + 1, sizeof(Bucket));
    if (!r->bucket_of || !r->offset || !r->numel || !r->seen || !r->b) goto oom;
    size_t limit = bucket_bytes / sizeof(float) ? bucket_bytes / sizeof(float) : 1;
    /* the backward pass makes the last parameters' gradients first */
    for (int i = n - 1; i >= 0; i--) {
        Bucket *cur = r->n_buckets ? &r->b[r->n_buckets - 1] : NULL;
        if (!cur || (cur->numel > 0 && cur->numel + (size_t)numel[i] > limit)) cur = &r->b[r->n_buckets++];
        r->numel[i] = numel[i];
        r->bucket_of[i] = (int)(cur - r->b);
        r->offset[i] = cur->numel;
        cur->numel += (size_t)numel[i];
    }
    for (int k = 0; k < r->n_buckets; k++)
        if (!(r->b[k].data = malloc(sizeof(float) * (r->b[k].numel ? r->b[k].numel : 1)))) goto oom;
    return r;
oom:
    grad_reducer_free(r);
    snprintf(err, cap, "out of memory for the gradient buckets");
    return NULL;
}

void grad_reducer_free(GradReducer *r)
{
    if (!r) return;
    for (int k = 0; k < r->n_buckets; k++) free(r->b[k].data);
    free(r->b);
    free(r->bucket_of);
    free(r->offset);
    free(r->numel);
    free(r->seen);
    free(r);
}

static void step_reset(GradReducer *r)
{
    memset(r->seen, 0, (size_t)r->n);
    for (int k = 0; k < r->n_buckets; k++) r->b[k].missing = 0, r->b[k].req = NULL, r->b[k].started_early = 0;
    for (int i = 0; i < r->n; i++) r->b[r->bucket_of[i]].missing++;
    r->next = 0;
    r->running = 1;
}

static int take(GradReducer *r, int i, const Tensor *t, char *err, size_t cap)
{
    if (r->seen[i]) return 0;
    if (!t || t->dtype != DT_F32 || tensor_numel(t) != r->numel[i]) {
        snprintf(err, cap, "gradient %d: %lld floats expected for the all-reduce", i, (long long)r->numel[i]);
        return -1;
    }
    Bucket *b = &r->b[r->bucket_of[i]];
    memcpy(b->data + r->offset[i], t->data, sizeof(float) * (size_t)r->numel[i]);
    r->seen[i] = 1;
    b->missing--;
    return 0;
}

/* Starts complete buckets, in order, and moves the ones in flight along. */
static int pump(GradReducer *r, int early, char *err, size_t cap)
{
    for (; r->next < r->n_buckets && r->b[r->next].missing == 0; r->next++) {
        Bucket *b = &r->b[r->next];
        if (comm_iallreduce(r->comm, b->data, b->numel, COMM_F32, &b->req, err, cap)) return -1;
        b->started_early = early;
        b->started_ms = now_ms();
    }
    for (int k = 0; k < r->next; k++) {
        int done;
        if (r->b[k].req && comm_test(r->comm, r->b[k].req, &done, err, cap)) return -1;
    }
    return 0;
}

void grad_reducer_observe(void *ctx, int output, const Tensor *value)
{
    GradReducer *r = ctx;
    if (!r->running) step_reset(r);
    if (r->err[0]) return;
    int i = output - r->first;
    if (output >= 0 && i >= 0 && i < r->n && take(r, i, value, r->err, sizeof r->err)) return;
    pump(r, 1, r->err, sizeof r->err);
}

int grad_reducer_finish(GradReducer *r, Tensor **outputs, char *err, size_t cap)
{
    if (!r->running) step_reset(r); /* nothing was observed (a backend that cannot tell) */
    r->running = 0;
    if (r->err[0]) { snprintf(err, cap, "%s", r->err); r->err[0] = 0; return -1; }
    for (int i = 0; i < r->n; i++)
        if (take(r, i, outputs[r->first + i], err, cap)) return -1;
    double t0 = now_ms(), lead = 0; /* t0: the run is over */
    if (pump(r, 0, err, cap)) return -1;
    size_t early = 0, total = 0;
    for (int k = 0; k < r->n_buckets; k++) {
        if (comm_wait(r->comm, r->b[k].req, err, cap)) return -1;
        r->b[k].req = NULL;
        total += r->b[k].numel;
        if (r->b[k].started_early) early += r->b[k].numel, lead += (double)r->b[k].numel * (t0 - r->b[k].started_ms);
    }
    r->wait_ms += now_ms() - t0;
    r->overlapped = total ? (double)early / (double)total : 0;
    r->lead_ms = total ? lead / (double)total : 0;
    float ranks = (float)comm_size(r->comm);
    for (int i = 0; i < r->n; i++) {
        const float *src = r->b[r->bucket_of[i]].data + r->offset[i];
        float *dst = outputs[r->first + i]->data;
        for (int64_t j = 0; j < r->numel[i]; j++) dst[j] = src[j] / ranks; /* the mean, as comm_allreduce's */
    }
    return 0;
}

void grad_reducer_stats(const GradReducer *r, GradReducerStats *st)
{
    size_t total = 0;
    for (int k = 0; k < r->n_buckets; k++) total += r->b[k].numel;
    *st = (GradReducerStats){r->n_buckets, total * sizeof(float), r->overlapped, r->lead_ms / 1e3, r->wait_ms / 1e3};
}
