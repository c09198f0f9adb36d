/* ops.h — the op table built from ops.def, and the inference interface.
 *
 * Shape inference runs in two modes through the same functions: symbolically
 * over the graph (dims may be "batch"; content of shape vectors may be known
 * symbolically) and at run time over concrete tensors, where every dim and
 * every small integer input is known.  One function per op family, so an op's
 * shape rule lives in exactly one place.
 */
#ifndef VCLIP_OPS_H
#define VCLIP_OPS_H

#include "ir.h"

typedef enum {
#define OP(id, dom, name, pat, inf, ref, fast, grad) OP_##id,
#include "ops.def"
#undef OP
    OP_COUNT
} OpId;

typedef enum {
    PAT_ELEMWISE, PAT_BROADCAST, PAT_INJECTIVE, PAT_REDUCTION,
    PAT_OUT_FUSABLE, PAT_OPAQUE, PAT_VIEW
} OpPattern;

/* What inference knows about one value. */
typedef struct {
    DType dtype;
    Shape shape;
    int n_known;                /* < 0: content unknown */
    Dim known[IR_MAX_KNOWN];
    const Tensor *data;         /* concrete data when available */
} ValueInfo;

typedef struct {
    const Node *node;
    int opset;
    int n_in, n_out;
    const ValueInfo *in[16];    /* NULL for an absent optional input */
    ValueInfo *out[8];
    char err[IR_ERR_CAP];
} InferCtx;

typedef int (*InferFn)(InferCtx *c);

typedef struct {
    const char *domain;
    const char *name;
    OpPattern pattern;
    InferFn infer;
} OpInfo;

extern const OpInfo op_table[OP_COUNT];

int op_lookup(const char *domain, const char *name); /* -1 if unknown */
const char *op_name(int op);
const char *pattern_name(OpPattern p);

/* Fill a ValueInfo from a graph value / a concrete tensor. */
void value_info_from_value(ValueInfo *vi, const Value *v);
void value_info_from_tensor(ValueInfo *vi, const Tensor *t);

/* Run inference for one node into its output Values (symbolic mode).
 * Returns 0, or -1 with a message naming the node in err. */
int infer_node(const Graph *g, Node *n, char *err, size_t cap);
/* Symbolic inference over the whole graph in order. */
int infer_graph(Graph *g, char *err, size_t cap);

/* Helpers shared by the infer_*.c files. */
int infer_fail(InferCtx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int norm_axis(int64_t axis, int rank, int64_t *out);
int infer_broadcast_shapes(InferCtx *c, const Shape *a, const Shape *b, Shape *out);
/* Read int vector content of input i (known or data); -1 if not known. */
int infer_get_ints(const InferCtx *c, int i, Dim *out, int cap);

#define OP(id, dom, name, pat, inf, ref, fast, grad) int inf(InferCtx *c);
#include "ops.def"
#undef OP


/* Parameter decoders shared by inference and the kernels, so the two can never
 * disagree about what an attribute or a parameter input means. */
int op_reduce_axes(InferCtx *c, int rank, uint8_t *mask); /* mask[rank]; -1 on error */
int op_unsqueeze_axes(InferCtx *c, int out_rank, uint8_t *mask);
int op_squeeze_axes(InferCtx *c, const Shape *in, uint8_t *mask);
int op_transpose_perm(InferCtx *c, int rank, int *perm);
typedef struct { int64_t start[IR_MAX_RANK], step[IR_MAX_RANK], len[IR_MAX_RANK]; } SliceParams;
int op_slice_params(InferCtx *c, const Shape *in, SliceParams *p, Shape *out);
int op_split_sizes(InferCtx *c, int64_t axis_len, int64_t *sizes); /* n_out sizes */
typedef struct {
    int nsp;                       /* spatial dims */
    int64_t group;
    int64_t k[IR_MAX_RANK], stride[IR_MAX_RANK], dil[IR_MAX_RANK];
    int64_t pad_lo[IR_MAX_RANK], pad_hi[IR_MAX_RANK];
} ConvParams;
int op_conv_params(InferCtx *c, ConvParams *p, Shape *out);
/* ai.vclip.Linear(X [..., K], W, B [N]?, R?) = act(X @ W + B) + R.
 * W is [K, N], or packed for the CPU GEMM (passes/pack_linear_weights.c):
 *   f32:  [ceil(N / LINEAR_PANEL), K, LINEAR_PANEL], attribute packed_n = N,
 *         element (k, n) at [n / LINEAR_PANEL, k, n % LINEAR_PANEL];
 *   bf16: [ceil(N / LINEAR_PANEL), ceil(K / 2), LINEAR_PANEL, 2], attributes
 *         packed_n = N and packed_k = K, element (k, n) at
 *         [n / LINEAR_PANEL, k / 2, n % LINEAR_PANEL, k % 2]; X is then
 *         rounded to bf16 too and the products summed in f32;
 *   zero past N (and K).
 * activation: "" (none), "quick_gelu" or "gelu"; R has the output's shape.
 * pad_columns = n (passes/pad_linear_hidden.c): the last n columns of W and
 *   B are zero, so those outputs are act(0) = 0 (every activation here);
 *   pad_rows = n: the last n rows of W are zero.  Fast kernels may skip
 *   them (and write the zeros); the reference computes them.
 * bf16 = 1 (on Linear, Gemm, Conv and ConvGrad with f32 operands: the CPU's bf16
 * path, passes/mark_bf16_gemms.c): both operands rounded to bf16 (nearest
 * even), products summed in f32, as a bf16-packed W does.
 * bf16_output = 1 (passes/bf16_activations.c; a bf16 W only): Y is stored
 *   in bf16, act(...) + R rounded to nearest even.  X may be bf16 wherever W
 *   is (a bf16 W rounds X to bf16 anyway: the same products); B and R stay f32.
 *   The same attribute on Attention (bf16 = 1) and on LayerNormalization (f32
 *   X, Y only) stores their Y rounded the same way (ir/infer_attention.c,
 *   ir/infer_reduce.c); it is internal to the CPU's bf16 path, never exported. */
#define LINEAR_PANEL 32
enum { LINEAR_ACT_NONE, LINEAR_ACT_QUICK_GELU, LINEAR_ACT_GELU };
typedef struct {
    int64_t K, N;
    int packed, act, has_bias, has_residual;  /* packed: 0, or the layout's rank (3 f32, 4 bf16) */
    int bf16;                                 /* an f32 W and X rounded to bf16 (attribute bf16) */
    int bf16_output;                          /* Y stored in bf16 (attribute bf16_output) */
    int64_t pad_rows, pad_columns;            /* W's zero last rows and columns (B's too) */
} LinearParams;
/* From the weight's shape and the attributes; -1 (message in c) when invalid. */
int op_linear_params(InferCtx *c, LinearParams *p);

typedef struct {
    int64_t heads, head_dim, q_off, k_off, v_off, frames, window;
    float scale;
    int causal, seq_first, boundary; /* boundary: 0 zero-filled, 1 masked */
    int bf16;                        /* q, k, v and the probabilities rounded to bf16 (infer_attention.c) */
    int bf16_output;                 /* O stored in bf16 (attribute bf16_output, with bf16 only) */
} AttentionParams;
int op_attention_params(InferCtx *c, AttentionParams *p);

#endif
