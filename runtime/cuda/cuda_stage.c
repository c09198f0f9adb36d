/* cuda_stage.c — see cuda_stage.h. */
#include "cuda_stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int staged;
    DType dtype;
    int rank;
    int64_t dims[IR_MAX_RANK];
    size_t bytes;
} Staged;

typedef struct {
    void **host;          /* page-locked, per input */
    CuPtr *dev;
    size_t *room;         /* bytes each pair holds */
    Staged *what;         /* per input: what the batch holds */
    CuEvent copied;       /* recorded on the copy stream after the batch's copies */
    CuEvent taken;        /* recorded on the run's stream after it took the batch */
} Slot;

struct CudaStager {
    const CudaApi *cu;
    int n_inputs;
    CuStream copies;
    Slot slot[2];
    int head, waiting;    /* the oldest waiting batch's slot; how many wait */
};

void cuda_stager_free(CudaStager *st)
{
    if (!st) return;
    const CudaApi *cu = st->cu;
    if (st->copies) cu->stream_sync(st->copies);
    for (int k = 0; k < 2; k++) {
        Slot *sl = &st->slot[k];
        if (sl->taken) cu->event_sync(sl->taken);
        for (int i = 0; sl->host && i < st->n_inputs; i++) {
            if (sl->host[i]) cu->host_free(sl->host[i]);
            if (sl->dev[i]) cu->mem_free(sl->dev[i]);
        }
        free(sl->host); free(sl->dev); free(sl->room); free(sl->what);
        if (sl->copied) cu->event_destroy(sl->copied);
        if (sl->taken) cu->event_destroy(sl->taken);
    }
    if (st->copies) cu->stream_destroy(st->copies);
    free(st);
}

CudaStager *cuda_stager_new(const CudaApi *cu, int n_inputs, char *err, size_t cap)
{
    CudaStager *st = calloc(1, sizeof *st);
    if (!st) { snprintf(err, cap, "out of memory"); return NULL; }
    st->cu = cu;
    st->n_inputs = n_inputs;
    size_t n = (size_t)(n_inputs ? n_inputs : 1);
    int bad = cu->stream_create(&st->copies, VCLIP_CU_STREAM_NON_BLOCKING) != 0;
    if (bad) st->copies = NULL;
    for (int k = 0; k < 2 && !bad; k++) {
        Slot *sl = &st->slot[k];
        sl->host = calloc(n, sizeof *sl->host);
        sl->dev = calloc(n, sizeof *sl->dev);
        sl->room = calloc(n, sizeof *sl->room);
        sl->what = calloc(n, sizeof *sl->what);
        bad = !sl->host || !sl->dev || !sl->room || !sl->what || cu->event_create(&sl->copied, VCLIP_CU_EVENT_DISABLE_TIMING) ||
              cu->event_create(&sl->taken, VCLIP_CU_EVENT_DISABLE_TIMING);
    }
    if (bad) { snprintf(err, cap, "cannot set up the input copies' stream and buffers"); cuda_stager_free(st); return NULL; }
    return st;
}

/* Room for `bytes` in input i's pair of buffers (neither is in use: the
 * slot's last copy and take are done) */
static int make_room(CudaStager *st, Slot *sl, int i, size_t bytes, char *err, size_t cap)
{
    const CudaApi *cu = st->cu;
    if (sl->room[i] >= bytes && sl->host[i]) return 0;
    if (sl->host[i]) cu->host_free(sl->host[i]);
    if (sl->dev[i]) cu->mem_free(sl->dev[i]);
    sl->host[i] = NULL;
    sl->dev[i] = 0;
    sl->room[i] = 0;
    if (cu->host_alloc(&sl->host[i], bytes ? bytes : 4)) { sl->host[i] = NULL; snprintf(err, cap, "page-locked host allocation of %zu bytes failed", bytes); return -1; }
    if (cu->mem_alloc(&sl->dev[i], bytes ? bytes : 4)) { sl->dev[i] = 0; snprintf(err, cap, "device allocation of %zu bytes failed", bytes); return -1; }
    sl->room[i] = bytes;
    return 0;
}

int cuda_stager_put(CudaStager *st, Tensor *const *inputs, char *err, size_t cap)
{
    const CudaApi *cu = st->cu;
    if (st->waiting == 2) { snprintf(err, cap, "two batches already wait for their runs"); return -1; }
    Slot *sl = &st->slot[(st->head + st->waiting) % 2];
    /* its page-locked buffers are free once their last copy is done; its
     * device buffers once the run that took them has copied them out */
    if (cu->event_sync(sl->copied) || cu->event_sync(sl->taken)) { snprintf(err, cap, "the device failed"); return -1; }
    for (int i = 0; i < st->n_inputs; i++) {
        Staged *w = &sl->what[i];
        const Tensor *t = inputs[i];
        w->staged = 0;
        if (!t) continue;
        if (make_room(st, sl, i, t->nbytes, err, cap)) return -1;
        *w = (Staged){1, t->dtype, t->rank, {0}, t->nbytes};
        memcpy(w->dims, t->dims, sizeof(int64_t) * (size_t)t->rank);
        memcpy(sl->host[i], t->data, t->nbytes);
        if (t->nbytes && cu->h2d_async(sl->dev[i], sl->host[i], t->nbytes, st->copies)) { snprintf(err, cap, "copy to the device failed"); return -1; }
    }
    if (cu->event_record(sl->copied, st->copies)) { snprintf(err, cap, "the device failed"); return -1; }
    st->waiting++;
    return 0;
}

int cuda_stager_take(CudaStager *st, Tensor *const *inputs, const CuPtr *dst, CuStream s, int *taken, char *err, size_t cap)
{
    const CudaApi *cu = st->cu;
    for (int i = 0; i < st->n_inputs; i++) taken[i] = 0;
    if (!st->waiting) return 0;
    Slot *sl = &st->slot[st->head];
    st->head = (st->head + 1) % 2;
    st->waiting--;
    for (int i = 0; i < st->n_inputs; i++) {
        const Staged *w = &sl->what[i];
        const Tensor *t = inputs[i];
        if (w->staged && (t->dtype != w->dtype || t->rank != w->rank || memcmp(t->dims, w->dims, sizeof(int64_t) * (size_t)t->rank))) {
            snprintf(err, cap, "input %d: the staged batch's shape or dtype differs from the run's", i);
            return -1;
        }
    }
    if (cu->stream_wait_event(s, sl->copied, 0)) { snprintf(err, cap, "the device failed"); return -1; }
    for (int i = 0; i < st->n_inputs; i++) {
        if (!sl->what[i].staged) continue;
        size_t bytes = sl->what[i].bytes;
        if (bytes && cu->d2d_async(dst[i], sl->dev[i], bytes, s)) { snprintf(err, cap, "input %d: device copy failed", i); return -1; }
        taken[i] = 1;
    }
    if (cu->event_record(sl->taken, s)) { snprintf(err, cap, "the device failed"); return -1; }
    return 0;
}
