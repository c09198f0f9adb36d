/* passes.h — graph passes and the manager that runs them in order. */
#ifndef VCLIP_PASSES_H
#define VCLIP_PASSES_H

#include "../ir/ir.h"

typedef struct {
    const char *name;
    const char *summary;
    /* Returns the number of changes made, or -1 with a message. */
    int (*run)(Graph *g, char *err, size_t cap);
    int fusion;               /* skipped with PassOptions.no_fusion */
} Pass;

/* One file each. */
int pass_fold_constants(Graph *g, char *err, size_t cap);
int pass_remove_identities(Graph *g, char *err, size_t cap);
int pass_eliminate_dead_code(Graph *g, char *err, size_t cap);
int pass_fold_reshape_targets(Graph *g, char *err, size_t cap);
int pass_eliminate_common_subexpressions(Graph *g, char *err, size_t cap);
int pass_fuse_layernorm(Graph *g, char *err, size_t cap);
int pass_fuse_gelu(Graph *g, char *err, size_t cap);
int pass_fuse_quick_gelu(Graph *g, char *err, size_t cap);
int pass_fuse_linear(Graph *g, char *err, size_t cap);
int pass_fuse_attention(Graph *g, char *err, size_t cap);
int pass_lower_to_standard_ops(Graph *g, char *err, size_t cap);
int pass_sink_attention_transposes(Graph *g, char *err, size_t cap);
int pass_narrow_to_pooled_row(Graph *g, char *err, size_t cap);
int pass_linear_from_gemm(Graph *g, char *err, size_t cap);
int pass_fuse_linear_epilogue(Graph *g, char *err, size_t cap);
int pass_pack_linear_weights(Graph *g, char *err, size_t cap);
int pass_pad_linear_hidden(Graph *g, char *err, size_t cap);
int pass_cast_linear_weights_bf16(Graph *g, char *err, size_t cap);
int pass_bf16_activations(Graph *g, char *err, size_t cap);
int pass_mark_bf16_gemms(Graph *g, char *err, size_t cap);
int pass_shape_before_transpose(Graph *g, char *err, size_t cap);
int pass_fuse_elementwise(Graph *g, char *err, size_t cap);
int pass_fuse_reduce(Graph *g, char *err, size_t cap);

typedef enum { DUMP_TEXT, DUMP_DOT, DUMP_ONNX } DumpFormat;

typedef struct {
    const char *dump_after;   /* pass name, "all", or NULL */
    const char *dump_dir;     /* default "." */
    DumpFormat dump_format;
    int verify;               /* run the verifier after each pass */
    int stats;                /* print node counts and time per pass to stderr */
    int no_fusion;            /* run the cleanup passes only */
    int first_index;          /* a later pipeline of the same compilation: dumps continue from this number */
    /* DUMP_ONNX writes through this (passes/ sits below onnx/; the compile
     * API, runtime/model.c, passes its ONNX writer). */
    int (*write_onnx)(const Graph *g, const char *path, char *err, size_t cap);
} PassOptions;

/* VCLIP: image encoder -> video encoder with temporal-window attention.
 * Runs after the default pipeline (it needs fused Attention ops); returns the
 * number of attentions made temporal, or -1 with a message. */
typedef struct { int64_t frames, window; int boundary_mask; } TemporalOptions;
int temporal_attention(Graph *g, const TemporalOptions *t, char *err, size_t cap);

/* Test-time patch (DESIGN.md §2): clip's float weights become
 * r * clip + (1 - r) * finetuned, matched by name.  Run on freshly imported
 * graphs.  Returns the number of weights changed, or -1 with a message. */
int patch_weights(Graph *clip, const Graph *finetuned, float r, char *err, size_t cap);

/* A text encoder on the first `length` positions of its context (its one
 * input [batch, context] of token ids): constants that span the context get
 * their prefix where the shorter input needs it.  Run on a freshly imported
 * graph.  Constants sliced (0 when length is the whole context), or -1 with
 * a message naming the node that cannot follow. */
int cut_sequence(Graph *g, int64_t length, char *err, size_t cap);

/* Every symbolic input dim becomes n times its factor; the graph is
 * re-inferred so all shapes are static.  Changes made, or -1. */
int specialize_batch(Graph *g, int64_t n, char *err, size_t cap);

/* Interpolated Weight Optimization (DESIGN.md §2): clones the part of the
 * graph between params and `out`, with each parameter W replaced by
 * InterpolateWeights(W0, W, alpha); W0 is a new constant holding W's current
 * data (shared, not copied: the caller gives W a private copy to train).
 * exact_gradient selects the chain rule's (1 - alpha) factor.  Returns the
 * clone of `out`, or NULL with a message. */
Value *interpolate_weights(Graph *g, Value *const *params, int n_params, Value *alpha, Value *out, int exact_gradient,
                           char *err, size_t cap);

/* Activation recomputation for a training graph whose nodes [0, n_forward)
 * are its forward pass and the rest its backward pass: each transformer
 * block (found from the residual stream) keeps only its input, and the
 * backward pass reads copies of the block's forward nodes, placed before
 * its first reader.  Run after autodiff, before kernel fusion. */
typedef struct { int blocks, nodes; } RecomputeStats; /* blocks recomputed, forward nodes copied */
int recompute_blocks(Graph *g, int n_forward, RecomputeStats *st, char *err, size_t cap);

/* The default pipeline, in order; NULL-terminated. */
extern const Pass default_pipeline[];
/* Kernel fusion for code generation, run after the default pipeline (and on
 * training graphs after autodiff): elementwise chains -> generated kernels. */
extern const Pass kernel_pipeline[];

int run_passes(Graph *g, const Pass *pipeline, const PassOptions *opt, char *err, size_t cap);
/* Passes in a pipeline (for numbering the next one's dumps). */
int pipeline_length(const Pass *pipeline);

#endif
