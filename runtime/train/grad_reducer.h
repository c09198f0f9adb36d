/* grad_reducer.h — gradients averaged over the ranks of a data-parallel
 * run, DDP's way: the gradients are grouped into buckets of about
 * bucket_bytes in the order the backward pass makes them (the last layers'
 * first), and a bucket's all-reduce starts as soon as its last gradient is
 * complete, while the rest of the backward pass runs (the session tells us
 * through its observer, model_observe).  IWR's two backward passes are one
 * in our graph (their gradients are summed before they are outputs), so one
 * reduction per step carries both.  finish() waits for every bucket and
 * writes the mean back into the gradient tensors. */
#ifndef VCLIP_GRAD_REDUCER_H
#define VCLIP_GRAD_REDUCER_H

#include "../comm/comm.h"
#include "../../ir/ir.h"

typedef struct GradReducer GradReducer;

/* Gradients are the graph outputs first .. first + n - 1, of numel[i]
 * floats each.  NULL with a message. */
GradReducer *grad_reducer_new(Comm *c, int first, int n, const int64_t *numel, size_t bucket_bytes, char *err, size_t cap);
void grad_reducer_free(GradReducer *r);

/* The observer to hand to model_observe (ctx: the reducer). */
void grad_reducer_observe(void *ctx, int output, const Tensor *value);
/* After the run: starts what is left, waits, and writes the mean gradient
 * into outputs[first + i].  0, or -1 with a message (a peer that never
 * answered, a gradient of the wrong size). */
int grad_reducer_finish(GradReducer *r, Tensor **outputs, char *err, size_t cap);

typedef struct {
    int buckets;
    size_t bytes;               /* per step */
    double overlapped;          /* fraction of the bytes whose all-reduce started during the run, last step */
    double lead_seconds;        /* last step: how long before the run's end they started, weighted by bytes
                                 * (0 for bytes started after it): the time there was to hide them */
    double wait_seconds;        /* in finish(), summed over the steps: communication the run did not hide */
} GradReducerStats;
void grad_reducer_stats(const GradReducer *r, GradReducerStats *st);

#endif
