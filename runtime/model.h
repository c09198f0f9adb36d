/* model.h — the one way in.  vclip_compile() loads an ONNX file, runs the
 * passes for a target and precision (the only place that chooses them),
 * and returns a Model with a backend session behind it (backend.h): run it
 * with tensors by position or by name, ask it for stats, free it.  Every
 * tool, the trainer, the evaluator and the benches come through here.
 *
 * The stages are also open on their own, for callers that change the graph
 * in between (the trainer adds its loss head and the backward pass after
 * the front end, `vclipc compile` writes the graph instead of running it):
 *   compile_frontend  default pipeline (folding, cleanup, op fusion), then
 *                     VCLIP's temporal attention when frames > 0;
 *   compile_kernels   kernel fusion and the target's precision passes;
 *   model_new         a backend session over a compiled graph. */
#ifndef VCLIP_MODEL_H
#define VCLIP_MODEL_H

#include <stddef.h>
#include "backend.h"
#include "../ir/ir.h"
#include "../passes/passes.h"

typedef struct Model Model;

typedef struct {
    Target target;          /* TARGET_CPU (default) or TARGET_CUDA */
    Precision precision;    /* PRECISION_FP32 (default), BF16, FP16 (CUDA), AUTO (the target's choice) */
    int threads;            /* CPU threads; 0 = every core */
    int64_t frames;         /* > 0: an image encoder becomes VCLIP's video encoder over this many frames */
    int window;             /* with frames: attend over frames t-w..t+w (the paper: 1; 0: each frame alone) */
    int boundary_mask;      /* mask the clip's ends instead of the released code's zero fill */
    int64_t context;        /* > 0: a text encoder on its first `context` positions (passes.h cut_sequence) */
    const Model *share_with;/* constants equal to one of this model's are shared, not held twice */
    int no_fusion;          /* cleanup passes only: no fused ops, no generated kernels */
    int reference_only;     /* CPU: the reference kernels only (the test oracle; slow) */
    int outputs_in_arena;   /* outputs valid only until the next run (no copies) */
    int no_graphs;          /* CUDA: never capture CUDA graphs */
    int verify;             /* run the verifier after every pass */
    /* dumps (passes.h): after pass dump_after ("all", a name, or NULL) */
    const char *dump_after, *dump_dir;
    DumpFormat dump_format;
    int pass_stats;         /* node counts and time per pass on stderr */
} CompileOptions;

/* Option combinations that cannot work anywhere (fp16 on the CPU, bf16
 * without fusion, temporal attention without fusion, the reference kernels
 * on CUDA, ...).  0, or -1 with a message that names the options. */
int compile_check(const CompileOptions *opt, char *err, size_t cap);

int compile_frontend(Graph *g, const CompileOptions *opt, char *err, size_t cap);
int compile_kernels(Graph *g, const CompileOptions *opt, char *err, size_t cap);
/* Both stages: the graph that a Model runs and `vclipc compile` writes. */
int compile_graph(Graph *g, const CompileOptions *opt, char *err, size_t cap);

/* Load + compile_graph + model_new.  NULL with a message naming the file
 * (an unavailable target says why: "--target cuda: no CUDA driver ..."). */
Model *vclip_compile(const char *onnx_path, const CompileOptions *opt, char *err, size_t cap);
/* The same for a graph already imported (or built); the model takes g and
 * frees it, on failure too.  name prefixes messages. */
Model *vclip_compile_graph(Graph *g, const char *name, const CompileOptions *opt, char *err, size_t cap);
/* A session over g, already compiled for opt's target.  take_graph: the
 * model frees g (else g must outlive the model).  NULL with the reason. */
Model *model_new(Graph *g, int take_graph, const CompileOptions *opt, char *err, size_t cap);
void model_free(Model *m);

Graph *model_graph(const Model *m);
const Backend *model_backend(const Model *m);
/* inputs[i] matches the graph's input i, outputs[i] receives output i (host
 * tensors the caller frees, unless outputs_in_arena).  0, or -1. */
int model_run(Model *m, Tensor *const *inputs, Tensor **outputs, char *err, size_t cap);
/* By name: every graph input must be given; outputs not asked for are
 * dropped.  An unknown name is an error naming it. */
int model_run_named(Model *m, int n_in, const char *const *in_names, Tensor *const *inputs, int n_out,
                    const char *const *out_names, Tensor **outputs, char *err, size_t cap);
/* Training in the backend's memory (backend.h): 1 where the backend keeps
 * no training state (the caller updates the constants), 0 once bound, -1. */
int model_train_begin(Model *m, const TrainSpec *spec, char *err, size_t cap);
int model_train_run(Model *m, Tensor *const *inputs, Tensor **outputs, TrainStep *step, char *err, size_t cap);
/* Inputs of a later run copied ahead (Backend.stage); 1 where the backend
 * does not stage (then runs take their inputs as they come). */
int model_stage(Model *m, Tensor *const *inputs, char *err, size_t cap);
int model_can_stage(const Model *m);
/* Where the backend stages: fn runs in each later run once its work is
 * queued, before the host waits for it (Backend.while_running); nothing
 * elsewhere, where runs are synchronous. */
void model_while_running(Model *m, int (*fn)(void *ctx, char *err, size_t cap), void *ctx);
int model_train_sync(Model *m, Tensor *const *mom1, Tensor *const *mom2, Tensor *const *swa, int to_host, char *err, size_t cap);
int model_train_swa(Model *m, double weight, char *err, size_t cap);
/* Which device of target t this process uses (a data-parallel rank: its
 * local rank), before its first model; a no-op where the backend has one
 * device (the CPU).  0, or -1 with the reason. */
int model_select_device(Target t, int ordinal, char *err, size_t cap);
/* Outputs as they are completed, during runs (backend.h's observe): 0, or
 * -1 where the backend cannot tell (the caller then waits for the run). */
int model_observe(Model *m, void (*fn)(void *ctx, int output, const Tensor *value), void *ctx);
/* Index of the input / output called name, or -1. */
int model_input_index(const Model *m, const char *name);
int model_output_index(const Model *m, const char *name);

typedef struct {
    BackendStats backend;   /* peak and arena bytes, device and host nodes, ... */
    int nodes;              /* nodes in the compiled graph */
    int generated_kernels;  /* FusedElementwise and FusedReduce nodes among them */
    Precision precision;    /* what it runs in (--precision auto resolved) */
} ModelStats;
void model_stats(const Model *m, ModelStats *st);

#endif
