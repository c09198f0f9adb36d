/* backend.h — what a backend is: a table of functions that makes a session
 * from an optimized graph, runs it on host tensors, reports what it did,
 * and moves raw buffers to and from its memory.  The CPU backend
 * (backend_cpu.c over runtime/cpu/) and the CUDA backend (backend_cuda.c
 * over runtime/cuda/) are the two tables; the compile API (model.h) picks
 * one by target, and nothing above it names a backend's own functions.
 * Adding a backend: a folder runtime/NAME/ with its session, a file
 * runtime/backend_NAME.c with its table, a row in backend_for(). */
#ifndef VCLIP_BACKEND_H
#define VCLIP_BACKEND_H

#include <stddef.h>
#include "../ir/ir.h"

typedef enum { TARGET_CPU, TARGET_CUDA } Target;
/* AUTO: the target's choice for inference (Backend.auto_precision): the
 * compile API resolves it before any pass or session sees it. */
typedef enum { PRECISION_FP32, PRECISION_BF16, PRECISION_FP16, PRECISION_AUTO } Precision;

/* "cpu"/"cuda" and "fp32"/"bf16"/"fp16"/"auto": 0, or -1 for anything else. */
int target_parse(const char *s, Target *t);
int precision_parse(const char *s, Precision *p);
const char *target_name(Target t);
const char *precision_name(Precision p);

typedef struct {
    int threads;          /* CPU threads; 0 = every core */
    Precision precision;  /* GEMM inputs; sums stay f32 */
    int reference_only;   /* CPU: the reference kernels only (the test oracle) */
    int outputs_in_arena; /* outputs stay valid only until the next run (the trainer reads them first) */
    int no_graphs;        /* CUDA: never capture CUDA graphs */
} BackendOptions;

typedef struct {
    size_t peak_bytes;      /* CPU: live intermediates at their peak in the last run */
    size_t arena_bytes;     /* the planned arena (0 before a run with the same shapes again) */
    size_t weight_bytes;    /* weights held in the backend's own memory (0 on the CPU) */
    int device_nodes;       /* CUDA: nodes the last run ran on the device */
    int host_nodes;         /* CUDA: nodes that fell back to the host's kernels */
    int graph_replays;      /* CUDA: runs served by a captured CUDA graph */
    char note[256];         /* CUDA: why runs are not captured, if they are not */
} BackendStats;

/* Training in the backend's own memory: the parameters (graph constants
 * params[i], gradients outputs grad_first + i) and AdamW's moments stay
 * there; a run computes the gradients, their global norm and the update. */
typedef struct {
    int n_params, grad_first;
    Value *const *params;
    const unsigned char *decay;     /* per parameter: weight decay applies */
    double beta1, beta2, eps, weight_decay;
} TrainSpec;
typedef struct {
    int64_t step;                   /* the update's number, from 1 */
    double lr;
    /* The rule for the gradients' scale, applied where they are (see
     * CudaTrainStep): S = loss_scale (0: 1) times the loss's gradients,
     * their norm / S clipped to max_norm (0: none); skipped when that norm
     * or, with check_loss, the loss (output 0) is not finite. */
    double max_norm, loss_scale;
    int check_loss;
    double norm;                    /* out: the global gradient norm */
    int applied;                    /* out: whether the update was made */
    /* Data parallel: averages the gradients over the ranks where they are
     * (grads[i]: buffer handles as buffer_alloc's, numel[i] floats), after
     * the backward pass and before the norm.  NULL: one process. */
    int (*reduce)(void *ctx, const unsigned long long *grads, const int64_t *numel, int n, char *err, size_t cap);
    void *reduce_ctx;
} TrainStep;

typedef struct Backend {
    const char *name;
    /* 0 when it can run here, else -1 and the reason. */
    int (*available)(char *why, size_t cap);
    /* What --precision auto means here. */
    Precision (*auto_precision)(void);
    /* NULL, or whether the GEMM at this precision reads A's rows in place
     * where they are not a multiple of 4 KB apart (and packs them where they
     * are): compile_kernels then pads the hidden rows between two Linears
     * (passes/pad_linear_hidden.c). */
    int (*reads_rows_in_place)(Precision p);
    /* A session over g (which must outlive it); NULL with the reason. */
    void *(*session_new)(Graph *g, const BackendOptions *opt, char *err, size_t cap);
    /* inputs[i] matches g->inputs[i]; outputs[i] receives g->outputs[i] as a
     * host tensor the caller frees (unless outputs_in_arena).  0, or -1
     * with a message naming the node. */
    int (*run)(void *session, Tensor *const *inputs, Tensor **outputs, char *err, size_t cap);
    /* NULL where the backend keeps no training state (the CPU: the trainer
     * updates the graph's constants itself).  train_run is run plus the
     * update; its gradient outputs stay in the backend (NULL).  train_sync
     * copies the parameters to (to_host) or from the graph's constants, and
     * the moments and SWA's mean to or from m, v, swa (NULL: not those).
     * train_swa folds the parameters into SWA's mean with this weight.  0,
     * or -1 with the reason. */
    int (*train_begin)(void *session, const TrainSpec *spec, char *err, size_t cap);
    int (*train_run)(void *session, Tensor *const *inputs, Tensor **outputs, TrainStep *step, char *err, size_t cap);
    int (*train_sync)(void *session, Tensor *const *m, Tensor *const *v, Tensor *const *swa, int to_host, char *err, size_t cap);
    int (*train_swa)(void *session, double weight, char *err, size_t cap);
    /* NULL where inputs are not copied ahead (the CPU); else starts moving
     * a later run's inputs to where they run now (NULL entries: not
     * staged), and each run takes the oldest staged batch, which must
     * equal its own inputs; at most two wait.  0, or -1 with the reason. */
    int (*stage)(void *session, Tensor *const *inputs, char *err, size_t cap);
    /* NULL with stage; else fn is called in each later run once its work
     * is queued where it runs asynchronously, before the host waits for
     * it (the caller fetches and stages its next batch meanwhile); its
     * failure fails the run.  fn NULL: none. */
    void (*while_running)(void *session, int (*fn)(void *ctx, char *err, size_t cap), void *ctx);
    /* NULL where runs cannot be watched; else as session_observe in
     * runtime/cpu/session.h: fn hears of each graph output as soon as a
     * run completes it (and of every other node with -1), while it runs. */
    void (*observe)(void *session, void (*fn)(void *ctx, int output, const Tensor *value), void *ctx);
    void (*stats)(const void *session, BackendStats *st);
    void (*session_free)(void *session);
    /* Raw buffers in the backend's memory (handles: host pointers on the
     * CPU, device addresses on CUDA), for data that stays there between
     * runs.  0, or -1 with the reason. */
    int (*buffer_alloc)(size_t bytes, unsigned long long *handle, char *err, size_t cap);
    int (*buffer_write)(unsigned long long handle, const void *src, size_t bytes, char *err, size_t cap);
    int (*buffer_read)(void *dst, unsigned long long handle, size_t bytes, char *err, size_t cap);
    void (*buffer_free)(unsigned long long handle);
    /* NULL where there is one device; else which device this process uses
     * (a data-parallel rank's local rank), before its first session.  0, or
     * -1 with the reason. */
    int (*select_device)(int ordinal, char *err, size_t cap);
} Backend;

extern const Backend cpu_backend;
extern const Backend cuda_backend;
const Backend *backend_for(Target t);

#endif
