/* cuda_exec.h — running a whole graph on a CUDA device.
 *
 * The graph is the one the CPU runs (after the default and kernel
 * pipelines), or a training graph.  Each node runs on the device when there
 * is a CUDA kernel for it: GEMMs through cuBLASLt (Linear, MatMul, Gemm,
 * the patch Conv and its gradient), generated elementwise kernels and
 * reductions, layernorm, softmax, attention and their gradients, softmax
 * cross-entropy, IWR's interpolation, sums over axes, copies (Transpose,
 * Concat, Slice, Expand, Gather, GatherGrad), views.  Otherwise it runs on
 * the host with the CPU kernels (shape arithmetic, token-index arithmetic),
 * values moving between the two as the next reader needs them.  Weights go
 * to the device once; trained parameters are updated there
 * (cuda_session_train).
 *
 * The first run with new input shapes allocates as it goes and records
 * every device buffer's size; the memory plan (passes/plan_memory.c) then
 * places them in one device arena, used by every later run with those
 * shapes.  The second such run records the work on the stream as a CUDA
 * Graph when nothing on the host depends on the inputs' values, and later
 * runs replay it (one launch for the whole network). */
#ifndef VCLIP_CUDA_EXEC_H
#define VCLIP_CUDA_EXEC_H

#include <stddef.h>
#include "cublaslt.h"
#include "../../ir/ir.h"

typedef struct {
    GemmCompute compute; /* f32, or bf16/f16 tensor-core GEMMs with f32 sums */
    int no_graphs;       /* never capture CUDA graphs */
} CudaOptions;

typedef struct CudaSession CudaSession;

/* NULL with the reason (no driver or device, out of memory). */
CudaSession *cuda_session_new(Graph *g, const CudaOptions *opt, char *err, size_t cap);
void cuda_session_free(CudaSession *s);
/* inputs[i] matches g->inputs[i]; outputs[i] receives g->outputs[i] as host
 * tensors the caller frees.  0, or -1 with a message naming the node. */
int cuda_session_run(CudaSession *s, Tensor *const *inputs, Tensor **outputs, char *err, size_t cap);
/* Starts copying a later run's inputs to the device now (cuda_stage.h:
 * page-locked buffers, a copy stream, two batches ahead): inputs[i] NULL
 * is not staged.  Each run takes the oldest staged batch, whose inputs
 * must equal, in value, shape and dtype, the ones it is given (they stay
 * its host copies).  0, or -1 with the reason. */
int cuda_session_stage(CudaSession *s, Tensor *const *inputs, char *err, size_t cap);
/* fn is called in each later run once its work is queued on the device,
 * before the host waits for it (the caller fetches and stages its next
 * batch meanwhile); its failure fails the run.  fn NULL: none. */
void cuda_session_while_running(CudaSession *s, int (*fn)(void *ctx, char *err, size_t cap), void *ctx);

/* Training in device memory: the parameters (graph constants params[i],
 * their gradients outputs grad_first + i) stay on the device with AdamW's
 * moments; each cuda_session_train_run computes the gradients, their global
 * norm, and (when it is finite) the update, and copies only the outputs
 * before grad_first back.  decay[i]: weight decay applies to parameter i. */
typedef struct {
    int n_params, grad_first;
    Value *const *params;
    const unsigned char *decay;
    double beta1, beta2, eps, weight_decay;
} CudaTrainSpec;
int cuda_session_train(CudaSession *s, const CudaTrainSpec *spec, char *err, size_t cap);
/* step: the update's number (from 1, for the bias corrections).  The
 * gradients' scale is decided on the device, so a captured step needs no
 * host in the middle: the gradients are loss_scale (S; 0 means 1) times
 * the loss's, their norm over S is clipped to max_norm (0: no clipping),
 * and the update is skipped when the norm or, with check_loss, the loss
 * (output 0) is not finite.  *norm: the global norm of the gradients as the
 * graph gives them (NaN or Inf when not finite); *applied: whether the
 * update was made. */
typedef struct {
    int64_t step;
    double lr;
    double max_norm, loss_scale;
    int check_loss;
    double norm;
    int applied;
    /* data parallel: averages the gradients (device addresses) over the ranks before the norm; NULL: one process */
    int (*reduce)(void *ctx, const unsigned long long *grads, const int64_t *numel, int n, char *err, size_t cap);
    void *reduce_ctx;
} CudaTrainStep;
int cuda_session_train_run(CudaSession *s, Tensor *const *inputs, Tensor **outputs, CudaTrainStep *step, char *err, size_t cap);
/* SWA's running mean, kept on the device from the parameters' first
 * values: avg += weight * (θ - avg) for every parameter (weight 1/(k+1) for
 * the k-th epoch averaged). */
int cuda_session_train_swa(CudaSession *s, double weight, char *err, size_t cap);
/* The parameters to (to_host) or from the graph's constants' data, and
 * the moments and SWA's mean to or from m[i], v[i], swa[i] (NULL: not those). */
int cuda_session_train_sync(CudaSession *s, Tensor *const *m, Tensor *const *v, Tensor *const *swa, int to_host, char *err, size_t cap);

typedef struct {
    int device_nodes, host_nodes; /* where the last run ran each node (host: fell back to the CPU's kernels) */
    int shape_nodes;              /* shape arithmetic on the host: Shape, and integers computed from shapes and constants alone */
    size_t arena_bytes;           /* the planned device arena (0 before a second run) */
    size_t weight_bytes;          /* weights held on the device */
    int graph_replays;            /* runs served by a CUDA graph */
    int update_replays;           /* training: updates (norm, clipping, AdamW) served by a CUDA graph */
    int staged_inputs;            /* inputs that came from staged batches (cuda_session_stage) */
    char graph_note[256];         /* why runs are not captured, if they are not */
    char host_ops[512];           /* the ops that fell back to the host, with counts ("ArgMax, Range x2") */
} CudaStats;
void cuda_session_stats(const CudaSession *s, CudaStats *st);

#endif
