/* cuda_exec.c — see cuda_exec.h.  A value lives on the host, on the device,
 * or both (Slot); a node runs where its kind says (classify) and pulls its
 * inputs across first.  Device buffers come from cuMemAlloc in an eager run
 * (freed when it ends) and from the planned arena afterwards; weights and
 * the per-node parameter blocks live for the session. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cuda_exec.h"
#include "cuda_fused.h"
#include "cuda_ops.h"
#include "cuda_stage.h"
#include "../cpu/kernels.h"
#include "../cpu/exec_node.h"
#include "../cpu/memory_plan.h"
#include "../../ir/program.h"
#include "../../ir/loads.h"
#include "../../ir/base.h"

typedef enum { K_HOST, K_SHAPE, K_VIEW, K_LINEAR, K_MATMUL, K_FUSED, K_ELEMWISE, K_LAYERNORM, K_SOFTMAX, K_ATTENTION, K_TRANSPOSE, K_CONCAT, K_GATHER, K_CONV, K_REDUCE, K_GEMM, K_INTERPOLATE, K_ACT_GRAD, K_SUM, K_LAYERNORM_GRAD, K_ATTENTION_GRAD, K_SOFTMAX_CE, K_SOFTMAX_CE_GRAD, K_EXPAND, K_SLICE, K_GATHER_GRAD,
               K_CONV_GRAD, K_INT_ELEMWISE, K_ARGREDUCE, K_COUNT } Kind;

typedef struct {
    Tensor *host;   /* host copy (owned unless it is the value's constant or borrowed) */
    int borrowed;   /* host is the caller's input tensor, read for the run's duration */
    CuPtr dev;      /* device copy, 0 when none */
    int rank;       /* shape, known once the value exists */
    int64_t dims[IR_MAX_RANK];
} Slot;

typedef struct {
    CuPtr params;   /* parameter block (fused kernels, gathers), for the session */
    CuPtr temp;     /* the patch Conv's im2col and GEMM result, layernorm gradient's dy * xhat */
    size_t temp_bytes;
    int params_ready;           /* uploaded for the current input shapes */
    uint64_t params_hash;       /* of what was uploaded */
    void *staging;              /* host bytes a captured upload reads from */
    size_t staging_bytes;
} NodeState;

typedef struct { CuPtr ptr; size_t bytes; int bf16; } Weight;

struct CudaSession {
    Graph *g;
    CudaOptions opt;
    const CudaApi *cu;
    CuStream stream;
    Slot *slots;
    int *last_use;
    Kind *kind;             /* per node, from the last run */
    char *dynamic;          /* per value: depends on the inputs' values (not only on their shapes) */
    Weight *weights;        /* per value: its device copy as a constant */
    NodeState *nodes;
    size_t *bytes;          /* per value: device bytes in the last run (0: none, or a view) */
    MemoryPlan plan;
    CuPtr arena;
    int64_t *sig;
    int sig_len, planned_runs, capturable;
    CuGraphExec graph;
    Slot *out_shape;        /* per graph output: its shape in the recorded run */
    CuPtr *input_dev;       /* per graph input: its device copy, for the current shapes */
    CudaStager *stager;     /* inputs copied ahead of their runs (cuda_session_stage), or NULL */
    int *taken;             /* per graph input: whether this run took it from a staged batch */
    int (*while_running)(void *ctx, char *err, size_t cap); /* cuda_session_while_running */
    void *while_running_ctx;
    int capturing;          /* recording a CUDA graph: nothing may be allocated */
    CuPtr *eager;           /* this run's cuMemAlloc'd buffers */
    int n_eager, cap_eager;
    CudaStats stats;
    CudaTrainSpec train;     /* n_params > 0: training in device memory (cuda_session_train) */
    CuPtr *moments;         /* per parameter: m, v, then SWA's running mean: 3 * its bytes */
    CuPtr ctl;              /* the update's control block: CTL_COUNT doubles (cuda_ops.h) */
    CuGraphExec update_graph; /* the update, recorded once the step's graph is (same buffers) */
    CudaTrainStep *step;    /* the update to make at the end of this run, or NULL */
};

#define PARAMS_BYTES (CUDA_FUSED_SCRATCH > 8 * 3 * CUDA_COPY_MAX_RANK * 8 ? CUDA_FUSED_SCRATCH : 8 * 3 * CUDA_COPY_MAX_RANK * 8)

static size_t numel_of(int rank, const int64_t *dims)
{
    size_t n = 1;
    for (int d = 0; d < rank; d++) n *= (size_t)dims[d];
    return n;
}

/* ---- device memory ---------------------------------------------------- */

static CuPtr eager_alloc(CudaSession *s, size_t bytes)
{
    CuPtr p = 0;
    if (s->n_eager == s->cap_eager) {
        int cap = s->cap_eager ? 2 * s->cap_eager : 64;
        CuPtr *e = realloc(s->eager, sizeof *e * (size_t)cap);
        if (!e) return 0;
        s->eager = e;
        s->cap_eager = cap;
    }
    if (s->cu->mem_alloc(&p, bytes ? bytes : 4)) return 0;
    s->eager[s->n_eager++] = p;
    return p;
}

/* A device buffer for value v: its planned place, or a new allocation. */
static CuPtr value_buffer(CudaSession *s, const Value *v, size_t bytes, int planned)
{
    if (planned && s->arena && s->plan.offset[v->id] != PLAN_NONE && s->bytes[v->id] == bytes) return s->arena + s->plan.offset[v->id];
    if (s->capturing) return 0; /* a recorded graph must not use this run's allocations */
    s->bytes[v->id] = bytes;
    return eager_alloc(s, bytes);
}

static void free_eager(CudaSession *s)
{
    for (int i = 0; i < s->n_eager; i++) s->cu->mem_free(s->eager[i]);
    s->n_eager = 0;
}

/* ---- where a node runs ------------------------------------------------ */

/* f32 inputs and outputs (of a gradient op, some outputs may be unused) */
static int f32_inputs(const Node *n)
{
    int outs = 0;
    for (int i = 0; i < n->n_in; i++) if (n->in[i] && n->in[i]->dtype != DT_F32) return 0;
    for (int j = 0; j < n->n_out; j++) {
        if (n->out[j] && n->out[j]->dtype != DT_F32) return 0;
        outs += n->out[j] != NULL;
    }
    return outs > 0;
}

/* Plain device nodes: f32 in, one f32 out. */
static int plain(const Node *n)
{
    for (int j = 1; j < n->n_out; j++) if (n->out[j]) return 0;
    return n->out[0] && f32_inputs(n);
}

/* weights: constants (packed or not, f32 or bf16), or f32 values computed
 * on the way ([K, N], e.g. IWR's interpolated weights) */
static int fits_linear(const Node *n, const Slot *x)
{
    (void)x;
    return plain(n) && (n->in[1]->dtype == DT_F32 || (n->in[1]->konst && n->in[1]->dtype == DT_BF16));
}

/* [.., K] x [K, N]: the second operand 2-D (checked at launch when it is not a constant) */
static int fits_matmul(const Node *n, const Slot *x)
{
    const Tensor *b = n->in[1]->konst;
    return plain(n) && (!b || b->rank == 2) && x && x->rank >= 2;
}

/* ONNX Gemm: C absent, a bias row [N] or an [M, N] residual */
static int fits_gemm(const Node *n, const Slot *x) { return plain(n) && n->n_in >= 2 && x && x->rank == 2; }

/* a kernel reading through views takes the views' operands (shapes, indices) from the host */
static int fits_fused(const Node *n, const Slot *x)
{
    (void)x;
    return n->n_in <= 64 && (node_attr(n, "loads") ? n->out[0]->dtype == DT_F32 : plain(n));
}

static int fits_layernorm(const Node *n, const Slot *x)
{
    (void)x;
    return plain(n) && n->n_in >= 2 && n->in[1];
}

static int fits_plain(const Node *n, const Slot *x) { (void)x; return plain(n); }
static int fits_transpose(const Node *n, const Slot *x) { return plain(n) && x && x->rank <= CUDA_COPY_MAX_RANK; }
static int fits_concat(const Node *n, const Slot *x) { return plain(n) && x && x->rank <= CUDA_COPY_MAX_RANK && n->n_in <= 8; }

static int fits_conv(const Node *n, const Slot *x)
{
    (void)x;
    return plain(n);
}

/* f32 rows picked by int64 indices: a few constant ones (the class token)
 * by copies, any others (token embeddings, the end-of-text row) by a
 * gather kernel reading them on the device */
static int fits_gather(const Node *n, const Slot *x)
{
    return n->n_in == 2 && n->in[0]->dtype == DT_F32 && n->out[0] && n->out[0]->dtype == DT_F32 &&
           (n->in[1]->dtype == DT_I64 || (n->in[1]->konst && n->in[1]->dtype == DT_I32)) && x && x->rank <= CUDA_COPY_MAX_RANK;
}

static int fits_reduce(const Node *n, const Slot *x)
{
    (void)x;
    return plain(n) && n->n_in <= 64;
}

/* ReduceSum of f32 over constant axes (or none) */
static int fits_sum(const Node *n, const Slot *x)
{
    for (int j = 1; j < n->n_out; j++) if (n->out[j]) return 0;
    return n->in[0]->dtype == DT_F32 && n->out[0]->dtype == DT_F32 && (n->n_in < 2 || !n->in[1] || n->in[1]->konst) && x &&
           x->rank <= CUDA_SUM_MAX_RANK;
}

/* (dy, x, scale) -> dx, dscale, dbias: any of the three */
static int fits_layernorm_grad(const Node *n, const Slot *x)
{
    (void)x;
    return n->n_in == 3 && f32_inputs(n) && n->n_out <= 3;
}

/* (dout, q, k, v, mask?) -> dq, dk, dv */
static int fits_attention_grad(const Node *n, const Slot *x)
{
    (void)x;
    return (n->n_in == 4 || n->n_in == 5) && f32_inputs(n) && n->n_out <= 3;
}

/* f32 data in, f32 out; the other inputs int64 (labels, shapes, indices) */
static int f32_data(const Node *n, int n_f32)
{
    for (int i = 0; i < n->n_in; i++)
        if (n->in[i] && (i < n_f32 ? n->in[i]->dtype != DT_F32 : n->in[i]->dtype != DT_I64)) return 0;
    for (int j = 0; j < n->n_out; j++) if (n->out[j] && n->out[j]->dtype != DT_F32) return 0;
    return n->n_out >= 1;
}
static int fits_softmax_ce(const Node *n, const Slot *x) { (void)x; return n->n_in == 2 && n->out[0] && f32_data(n, 1); }
static int fits_softmax_ce_grad(const Node *n, const Slot *x) { (void)x; return n->n_in == 3 && n->out[0] && f32_data(n, 2); }
/* Expand, Slice, GatherGrad: the data f32, shapes / bounds / indices constants */
static int fits_copying(const Node *n, const Slot *x)
{
    for (int i = 1; i < n->n_in; i++) if (n->in[i] && !n->in[i]->konst) return 0;
    return n->out[0] && f32_data(n, 1) && n->n_out == 1 && x && x->rank <= CUDA_COPY_MAX_RANK;
}
/* (dy, x, w) -> dx, dw of the patch embedding */
static int fits_conv_grad(const Node *n, const Slot *x) { (void)x; return n->n_in == 3 && f32_inputs(n); }

/* The integer kernels' element type of a dtype, or -1 */
static int int_elem(DType t)
{
    switch (t) {
    case DT_I64: return CUDA_ELEM_I64;
    case DT_I32: return CUDA_ELEM_I32;
    case DT_I8: return CUDA_ELEM_I8;
    case DT_U8: return CUDA_ELEM_U8;
    case DT_BOOL: return CUDA_ELEM_BOOL;
    default: return -1;
    }
}

/* vclip_int_elementwise's op for an ONNX op, or -1 */
static int int_op(int op)
{
    switch (op) {
    case OP_ADD: return CUDA_INT_ADD;
    case OP_SUB: return CUDA_INT_SUB;
    case OP_MUL: return CUDA_INT_MUL;
    case OP_EQUAL: return CUDA_INT_EQUAL;
    case OP_LESS: return CUDA_INT_LESS;
    case OP_LESS_OR_EQUAL: return CUDA_INT_LESS_EQUAL;
    case OP_GREATER: return CUDA_INT_GREATER;
    case OP_GREATER_OR_EQUAL: return CUDA_INT_GREATER_EQUAL;
    case OP_CAST: return CUDA_INT_CAST;
    default: return -1;
    }
}

/* Integers in and out: a cast between integer types, a comparison, or
 * Add/Sub/Mul into int64 (the reference wraps those in 64 bits) */
static int fits_int_elementwise(const Node *n)
{
    int op = int_op(n->op), arity = op == CUDA_INT_CAST ? 1 : 2;
    if (op < 0 || n->n_in != arity || n->n_out != 1 || !n->out[0] || int_elem(n->out[0]->dtype) < 0) return 0;
    for (int i = 0; i < arity; i++) if (!n->in[i] || int_elem(n->in[i]->dtype) < 0) return 0;
    return op >= CUDA_INT_EQUAL || n->out[0]->dtype == DT_I64;
}

/* ArgMax / ArgMin of integers or f32 into int64 */
static int fits_argreduce(const Node *n, const Slot *x)
{
    return n->n_in == 1 && n->out[0] && n->out[0]->dtype == DT_I64 && (int_elem(n->in[0]->dtype) >= 0 || n->in[0]->dtype == DT_F32) && x;
}

/* Shape arithmetic: integers computed from constants and shapes alone,
 * never from the inputs' values (fixed while the plan holds), run on the
 * host like Shape itself */
static int shape_arithmetic(const CudaSession *s, const Node *n)
{
    for (int j = 0; j < n->n_in; j++) if (n->in[j] && s->dynamic[n->in[j]->id]) return 0;
    for (int j = 0; j < n->n_out; j++) if (n->out[j] && int_elem(n->out[j]->dtype) < 0) return 0;
    return 1;
}

/* The ops with a device kernel of their own, indexed by op as the CPU's
 * kernel table is: what runs it, and whether this node fits it.  The
 * fusable scalar ops (ir/scalar_ops.def) run as one-op generated kernels;
 * every other op runs on the host. */
static const struct {
    Kind kind;
    int (*fits)(const Node *n, const Slot *x);
} device_ops[OP_COUNT] = {
    [OP_LINEAR] = {K_LINEAR, fits_linear},          [OP_MATMUL] = {K_MATMUL, fits_matmul},
    [OP_FUSED_ELEMENTWISE] = {K_FUSED, fits_fused}, [OP_LAYER_NORM] = {K_LAYERNORM, fits_layernorm},
    [OP_SOFTMAX] = {K_SOFTMAX, fits_plain},         [OP_ATTENTION] = {K_ATTENTION, fits_plain},
    [OP_TRANSPOSE] = {K_TRANSPOSE, fits_transpose}, [OP_CONCAT] = {K_CONCAT, fits_concat},
    [OP_CONV] = {K_CONV, fits_conv},                [OP_GATHER] = {K_GATHER, fits_gather},
    [OP_FUSED_REDUCE] = {K_REDUCE, fits_reduce},   [OP_GEMM] = {K_GEMM, fits_gemm},
    [OP_INTERPOLATE_WEIGHTS] = {K_INTERPOLATE, fits_plain},
    [OP_QUICK_GELU_GRAD] = {K_ACT_GRAD, fits_plain}, [OP_GELU_GRAD] = {K_ACT_GRAD, fits_plain},
    [OP_REDUCE_SUM] = {K_SUM, fits_sum},           [OP_LAYER_NORM_GRAD] = {K_LAYERNORM_GRAD, fits_layernorm_grad},
    [OP_ATTENTION_GRAD] = {K_ATTENTION_GRAD, fits_attention_grad},
    [OP_SOFTMAX_CE] = {K_SOFTMAX_CE, fits_softmax_ce}, [OP_SOFTMAX_CE_GRAD] = {K_SOFTMAX_CE_GRAD, fits_softmax_ce_grad},
    [OP_EXPAND] = {K_EXPAND, fits_copying},        [OP_SLICE] = {K_SLICE, fits_copying},
    [OP_GATHER_GRAD] = {K_GATHER_GRAD, fits_copying}, [OP_CONV_GRAD] = {K_CONV_GRAD, fits_conv_grad},
    [OP_ARGMAX] = {K_ARGREDUCE, fits_argreduce},   [OP_ARGMIN] = {K_ARGREDUCE, fits_argreduce},
};

static Kind classify(const CudaSession *s, const Node *n)
{
    const Slot *x = n->n_in && n->in[0] ? &s->slots[n->in[0]->id] : NULL;
    if (n->op == OP_SHAPE) return K_SHAPE;
    if (op_table[n->op].pattern == PAT_VIEW) return K_VIEW;
    if (shape_arithmetic(s, n)) return K_SHAPE;
    if (fits_int_elementwise(n)) return K_INT_ELEMWISE;
    if (device_ops[n->op].fits) return device_ops[n->op].fits(n, x) ? device_ops[n->op].kind : K_HOST;
    int pr = program_op_of(n->op);
    return pr >= 0 && plain(n) && n->n_in == program_op_arity(pr) && x && x->rank <= 8 ? K_ELEMWISE : K_HOST;
}

/* ---- moving values ------------------------------------------------------ */

static int need_host(CudaSession *s, const Value *v, char *err, size_t cap)
{
    Slot *sl = &s->slots[v->id];
    if (sl->host) return 0;
    if (!sl->dev) { snprintf(err, cap, "value '%s' has no data", v->name); return -1; }
    Tensor *t = tensor_new(v->dtype, sl->rank, sl->dims);
    if (!t) { snprintf(err, cap, "out of memory"); return -1; }
    if (s->cu->stream_sync(s->stream) || (t->nbytes && s->cu->d2h(t->data, sl->dev, t->nbytes))) {
        tensor_free(t);
        snprintf(err, cap, "value '%s': copy from the device failed", v->name);
        return -1;
    }
    sl->host = t;
    return 0;
}

/* Host bytes as a device copy.  While capturing, the copy is recorded and
 * replayed later, so it must read from bytes that stay: the node's staging. */
static int upload(CudaSession *s, NodeState *ns, const Tensor *t, CuPtr dst, int capturing, char *err, size_t cap)
{
    const void *src = t->data;
    if (capturing) {
        if (ns->staging_bytes < t->nbytes) {
            void *p = realloc(ns->staging, t->nbytes);
            if (!p) { snprintf(err, cap, "out of memory"); return -1; }
            ns->staging = p;
            ns->staging_bytes = t->nbytes;
        }
        memcpy(ns->staging, t->data, t->nbytes);
        src = ns->staging;
    }
    if (t->nbytes && s->cu->h2d_async(dst, src, t->nbytes, s->stream)) { snprintf(err, cap, "copy to the device failed"); return -1; }
    return 0;
}

/* A constant on the device, once per session; a packed Linear weight is
 * unpacked to [K, N] on the way (bf16 to f32: the GEMM then runs bf16). */
/* A constant's bytes as the device keeps them: as they are, or a packed
 * Linear weight unpacked to [K, N] (bf16 to f32: the GEMM then runs bf16).
 * *tmp: what the caller frees. */
static const Tensor *device_layout(const Node *n, int input, Tensor **tmp, int *bf16)
{
    const Tensor *t = n->in[input]->konst;
    *tmp = NULL;
    *bf16 = 0;
    if (!(n->op == OP_LINEAR && input == 1 && t->rank >= 3)) return t;
    int64_t N = node_attr_i(n, "packed_n", 0), K = t->rank == 3 ? t->dims[1] : node_attr_i(n, "packed_k", 0), K2 = (K + 1) / 2;
    int64_t d[2] = {K, N};
    if (!(*tmp = tensor_new(DT_F32, 2, d))) return NULL;
    float *dst = (*tmp)->data;
    for (int64_t k = 0; k < K; k++)
        for (int64_t c = 0; c < N; c++) {
            int64_t q = c / LINEAR_PANEL, j = c % LINEAR_PANEL;
            dst[k * N + c] = t->rank == 3 ? ((const float *)t->data)[(q * K + k) * LINEAR_PANEL + j]
                                          : bf16_to_float(((const uint16_t *)t->data)[((q * K2 + k / 2) * LINEAR_PANEL + j) * 2 + k % 2]);
        }
    *bf16 = t->rank == 4;
    return *tmp;
}

/* A constant on the device, once per session. */
static CuPtr weight(CudaSession *s, const Node *n, int input, char *err, size_t cap)
{
    const Value *v = n->in[input];
    Weight *w = &s->weights[v->id];
    if (w->ptr) return w->ptr;
    Tensor *tmp;
    const Tensor *t = device_layout(n, input, &tmp, &w->bf16);
    if (!t) { snprintf(err, cap, "out of memory"); return 0; }
    if (s->cu->mem_alloc(&w->ptr, t->nbytes ? t->nbytes : 4) || (t->nbytes && s->cu->h2d(w->ptr, t->data, t->nbytes))) {
        snprintf(err, cap, "weight '%s': device allocation or copy failed", v->name);
        w->ptr = 0;
    } else {
        w->bytes = t->nbytes;
        s->stats.weight_bytes += t->nbytes;
    }
    tensor_free(tmp);
    return w->ptr;
}

/* Input j of node i on the device. */
static CuPtr need_dev(CudaSession *s, int i, int j, int planned, int capturing, char *err, size_t cap)
{
    const Node *n = s->g->nodes[i];
    const Value *v = n->in[j];
    if (!v) return 0;
    Slot *sl = &s->slots[v->id];
    if (sl->dev) return sl->dev;
    if (v->konst) return weight(s, n, j, err, cap);
    if (!sl->host) { snprintf(err, cap, "node '%s': input '%s' has no value", n->name, v->name); return 0; }
    CuPtr d = value_buffer(s, v, sl->host->nbytes, planned);
    if (!d) { snprintf(err, cap, "device allocation failed for '%s'", v->name); return 0; }
    if (upload(s, &s->nodes[i], sl->host, d, capturing, err, cap)) return 0;
    sl->dev = d;
    return d;
}

/* ---- shapes ------------------------------------------------------------- */

/* A node's inputs as host tensors: the host copy or constant, or, for a
 * value only on the device, a head with its dtype and shape (all that the
 * shape rules need of it). */
static void input_tensors(CudaSession *s, const Node *n, const Tensor **ins, Tensor *heads)
{
    for (int i = 0; i < n->n_in && i < 16; i++) {
        if (!n->in[i]) continue;
        const Slot *sl = &s->slots[n->in[i]->id];
        ins[i] = sl->host ? sl->host : n->in[i]->konst;
        if (!ins[i]) {
            heads[i] = (Tensor){.dtype = n->in[i]->dtype, .rank = sl->rank};
            memcpy(heads[i].dims, sl->dims, sizeof sl->dims);
            ins[i] = &heads[i];
        }
    }
}

/* Output shapes of node n from its inputs' slots (run as exec_node does).
 * ic and vi are the caller's (vi: 24 entries); ic->out[k] has the shapes. */
static int infer(CudaSession *s, const Node *n, InferCtx *ic, ValueInfo *vi, Tensor *heads, char *err, size_t cap)
{
    const Tensor *ins[16] = {0};
    input_tensors(s, n, ins, heads);
    return exec_infer(s->g, n, ins, ic, vi, err, cap);
}

/* ---- device kernels ------------------------------------------------------ */

/* contiguous strides of dims */
static void strides_of(int rank, const int64_t *dims, int64_t *st)
{
    int64_t s = 1;
    for (int d = rank - 1; d >= 0; d--) { st[d] = s; s *= dims[d]; }
}

/* A node input's dims (a constant's, or its slot's); rank in *rank. */
static const int64_t *input_dims(const CudaSession *s, const Value *v, int *rank)
{
    if (v->konst) { *rank = v->konst->rank; return v->konst->dims; }
    *rank = s->slots[v->id].rank;
    return s->slots[v->id].dims;
}

typedef struct {
    CudaSession *s;
    int i, planned, capturing;
    const Node *n;
    InferCtx *ic;
    CuPtr out;
    CuPtr more[3];  /* outputs 1..3 (0 where the node has none) */
    const Slot *x;  /* input 0 */
    char *err;
    size_t cap;
} Launch;

static int params_once(Launch *L, const void *host, size_t bytes)
{
    NodeState *ns = &L->s->nodes[L->i];
    if (!ns->params && L->s->cu->mem_alloc(&ns->params, PARAMS_BYTES)) { snprintf(L->err, L->cap, "device allocation failed"); return -1; }
    if (ns->params_ready) return 0;
    if (bytes > PARAMS_BYTES || L->s->cu->h2d(ns->params, host, bytes)) { snprintf(L->err, L->cap, "parameter upload failed"); return -1; }
    ns->params_ready = L->planned; /* an eager run's shapes may not be the next run's */
    return 0;
}

/* The node's temporary device buffer, at least `need` bytes (made in an
 * eager or planned run, never while a CUDA graph is being recorded) */
static int node_temp(Launch *L, size_t need)
{
    NodeState *ns = &L->s->nodes[L->i];
    if (ns->temp_bytes >= need) return 0;
    if (ns->temp) L->s->cu->mem_free(ns->temp);
    ns->temp = 0;
    ns->temp_bytes = 0;
    if (L->capturing || L->s->cu->mem_alloc(&ns->temp, need)) { snprintf(L->err, L->cap, "device allocation failed"); return -1; }
    ns->temp_bytes = need;
    return 0;
}

static int run_gemm(Launch *L, CuPtr a, int64_t M, int64_t K, int64_t N, CuPtr w, int w_t, CuPtr bias, CuPtr c, CuPtr d, int bf16)
{
    LtGemm g = {.M = M, .N = N, .K = K, .A = a, .W = w, .bias = bias, .C = c, .D = d, .w_transposed = w_t, .alpha = 1.0f,
                .compute = bf16 ? GEMM_COMPUTE_BF16 : L->s->opt.compute};
    return cublaslt_gemm(&g, L->s->stream, L->err, L->cap);
}

static int launch_linear(Launch *L)
{
    CudaSession *s = L->s;
    const Node *n = L->n;
    LinearParams p;
    if (op_linear_params(L->ic, &p)) { snprintf(L->err, L->cap, "%s", L->ic->err); return -1; }
    CuPtr x = need_dev(s, L->i, 0, L->planned, L->capturing, L->err, L->cap), w = need_dev(s, L->i, 1, L->planned, L->capturing, L->err, L->cap);
    CuPtr b = p.has_bias ? need_dev(s, L->i, 2, L->planned, L->capturing, L->err, L->cap) : 0;
    CuPtr r = p.has_residual ? need_dev(s, L->i, 3, L->planned, L->capturing, L->err, L->cap) : 0;
    if (!x || !w || (p.has_bias && !b) || (p.has_residual && !r)) return -1;
    int64_t rows = (int64_t)(numel_of(L->x->rank, L->x->dims) / (size_t)(p.K ? p.K : 1));
    int bf16 = s->weights[n->in[1]->id].bf16;
    if (run_gemm(L, x, rows, p.K, p.N, w, 0, b, p.act == LINEAR_ACT_NONE ? r : 0, L->out, bf16)) return -1;
    if (p.act != LINEAR_ACT_NONE) return cuda_act_residual(L->out, r, L->out, rows * p.N, p.act, s->stream, L->err, L->cap);
    return 0;
}

static int launch_matmul(Launch *L)
{
    int br;
    const int64_t *bd = input_dims(L->s, L->n->in[1], &br);
    if (br != 2 || L->x->dims[L->x->rank - 1] != bd[0]) return 1; /* a batched product: the host */
    CuPtr x = need_dev(L->s, L->i, 0, L->planned, L->capturing, L->err, L->cap), w = need_dev(L->s, L->i, 1, L->planned, L->capturing, L->err, L->cap);
    if (!x || !w) return -1;
    int64_t K = bd[0], N = bd[1], rows = (int64_t)(numel_of(L->x->rank, L->x->dims) / (size_t)(K ? K : 1));
    return run_gemm(L, x, rows, K, N, w, 0, 0, 0, L->out, 0);
}

static int launch_gemm(Launch *L)
{
    const Node *n = L->n;
    int ta = (int)node_attr_i(n, "transA", 0), tb = (int)node_attr_i(n, "transB", 0), br, cr = 0;
    float alpha = node_attr_f(n, "alpha", 1.0f), beta = node_attr_f(n, "beta", 1.0f);
    const Value *c = n->n_in > 2 ? n->in[2] : NULL;
    const int64_t *ad = L->x->dims, *bd = input_dims(L->s, n->in[1], &br), *cd = c ? input_dims(L->s, c, &cr) : NULL;
    int64_t M = ad[ta ? 1 : 0], K = ad[ta ? 0 : 1], N = bd[tb ? 0 : 1];
    size_t cn = c ? numel_of(cr, cd) : 0;
    int bias = c && cn == (size_t)N && (cr == 1 || (cr == 2 && cd[0] == 1)) && N != 1;
    int residual = c && !bias && cr == 2 && cd[0] == M && cd[1] == N;
    if (br != 2 || (c && (beta != 1.0f || (!bias && !residual)))) return 1; /* C broadcast otherwise: the host */
    CuPtr a = need_dev(L->s, L->i, 0, L->planned, L->capturing, L->err, L->cap), w = need_dev(L->s, L->i, 1, L->planned, L->capturing, L->err, L->cap);
    CuPtr cp = c ? need_dev(L->s, L->i, 2, L->planned, L->capturing, L->err, L->cap) : 0;
    if (!a || !w || (c && !cp)) return -1;
    LtGemm g = {.M = M, .N = N, .K = K, .A = a, .W = w, .bias = bias ? cp : 0, .C = residual ? cp : 0, .D = L->out,
                .a_transposed = ta, .w_transposed = tb, .alpha = alpha, .compute = L->s->opt.compute};
    return cublaslt_gemm(&g, L->s->stream, L->err, L->cap);
}

/* A plain program reads its inputs broadcast; a view program (ir/loads.h)
 * reads its pieces through the parameters loads_params computes from the
 * inputs' shapes and the views' operands (host values). */
static int launch_program(Launch *L, const Program *p)
{
    const Node *n = L->n;
    const Shape *o = &L->ic->out[0]->shape;
    int64_t od[IR_MAX_RANK], params[CUDA_FUSED_MAX_PARAMS];
    for (int d = 0; d < o->rank; d++) od[d] = o->d[d].n;
    CuPtr streams[64];
    size_t n_params = 0;
    if (p->load_pieces) {
        LoadPlan lp;
        const Tensor *ins[16] = {0};
        Tensor heads[16];
        input_tensors(L->s, n, ins, heads);
        if (loads_decode(n, &lp, L->err, L->cap)) return -1;
        int rc = loads_param_count(&lp, o->rank) > CUDA_FUSED_MAX_PARAMS || lp.n_pieces > 64 ? -1 : 0;
        if (rc) snprintf(L->err, L->cap, "too many views for one kernel");
        if (!rc) rc = loads_params(&lp, n, L->s->g->opset, ins, o->rank, od, params, L->err, L->cap);
        for (int q = 0; !rc && q < lp.n_pieces; q++)
            if (!(streams[q] = need_dev(L->s, L->i, lp.pieces[q].input, L->planned, L->capturing, L->err, L->cap))) rc = -1;
        n_params = loads_param_count(&lp, o->rank);
        loads_free(&lp);
        if (rc) return -1;
    } else {
        const int64_t *dims[64];
        int ranks[64];
        for (int k = 0; k < n->n_in; k++) {
            if (!(streams[k] = need_dev(L->s, L->i, k, L->planned, L->capturing, L->err, L->cap))) return -1;
            const Slot *sl = &L->s->slots[n->in[k]->id];
            const Tensor *t = n->in[k]->konst;
            dims[k] = t ? t->dims : sl->dims;
            ranks[k] = t ? t->rank : sl->rank;
        }
        n_params = cuda_fused_broadcast_params(n->n_in, dims, ranks, o->rank, od, params);
    }
    NodeState *ns = &L->s->nodes[L->i];
    if (!ns->params && L->s->cu->mem_alloc(&ns->params, PARAMS_BYTES)) { snprintf(L->err, L->cap, "device allocation failed"); return -1; }
    /* uploaded again when a view's operands changed (those come from values, not only from shapes) */
    uint64_t h = FNV_OFFSET;
    for (size_t i = 0; i < n_params; i++) h = fnv1a_u64(h, (uint64_t)params[i]);
    int upload = !ns->params_ready || h != ns->params_hash;
    int rc = cuda_fused_launch(p, streams, n_params ? params : NULL, n_params, L->out, o->rank, od, L->s->stream, ns->params, upload,
                               L->err, L->cap);
    if (!rc) { ns->params_ready = L->planned; ns->params_hash = h; }
    return rc;
}

static int launch_fused(Launch *L)
{
    Program p;
    if (program_from_node(L->n, &p, L->err, L->cap)) return -1;
    int rc = launch_program(L, &p);
    program_free(&p);
    return rc;
}

/* ai.vclip.FusedReduce over the last axis, rows as the CPU kernel takes
 * them: every input the full shape, or one element read by every row. */
static int launch_reduce(Launch *L)
{
    const Node *n = L->n;
    Program pro, epi;
    if (program_from_attrs(n, "program", "constants", n->n_in, &pro, L->err, L->cap)) return -1;
    if (program_from_attrs(n, "epilogue", "epilogue_constants", 1, &epi, L->err, L->cap)) { program_free(&pro); return -1; }
    const char *r = node_attr_s(n, "reduce", "sum");
    int reduce = !strcmp(r, "sum") ? REDUCE_SUM : !strcmp(r, "mean") ? REDUCE_MEAN : REDUCE_MAX;
    CuPtr streams[64];
    int64_t rs[64], numel[64], K = 1, rows;
    int full = 0, rc = 0;
    for (int k = 0; k < n->n_in; k++) {
        const Slot *sl = &L->s->slots[n->in[k]->id];
        const Tensor *t = n->in[k]->konst;
        numel[k] = (int64_t)(t ? numel_of(t->rank, t->dims) : numel_of(sl->rank, sl->dims));
        if (numel[k] != 1) full = k;
        if (!(streams[k] = need_dev(L->s, L->i, k, L->planned, L->capturing, L->err, L->cap))) rc = -1;
    }
    const Slot *fs = &L->s->slots[n->in[full]->id];
    const Tensor *ft = n->in[full]->konst;
    int frank = ft ? ft->rank : fs->rank;
    if (frank) K = ft ? ft->dims[frank - 1] : fs->dims[frank - 1];
    const Shape *os = &L->ic->out[0]->shape;
    int64_t out_numel = 1;
    for (int d = 0; d < os->rank; d++) out_numel *= os->d[d].n;
    rows = K ? numel[full] / K : out_numel;
    for (int k = 0; k < n->n_in; k++) rs[k] = numel[k] == 1 && k != full ? 0 : K;
    NodeState *ns = &L->s->nodes[L->i];
    if (!rc && !ns->params && L->s->cu->mem_alloc(&ns->params, PARAMS_BYTES)) { snprintf(L->err, L->cap, "device allocation failed"); rc = -1; }
    if (!rc) {
        uint64_t h = FNV_OFFSET;
        for (int k = 0; k < n->n_in; k++) h = fnv1a_u64(fnv1a_u64(h, streams[k]), (uint64_t)rs[k]);
        rc = cuda_reduce_launch(&pro, &epi, reduce, streams, rs, n->n_in, rows, K, L->out, L->s->stream, ns->params,
                                !ns->params_ready || h != ns->params_hash, L->err, L->cap);
        if (!rc) { ns->params_ready = L->planned; ns->params_hash = h; }
    }
    program_free(&pro);
    program_free(&epi);
    return rc;
}

static int launch_interpolate(Launch *L)
{
    CuPtr w0 = need_dev(L->s, L->i, 0, L->planned, L->capturing, L->err, L->cap), w = need_dev(L->s, L->i, 1, L->planned, L->capturing, L->err, L->cap);
    CuPtr a = need_dev(L->s, L->i, 2, L->planned, L->capturing, L->err, L->cap);
    if (!w0 || !w || !a) return -1;
    int r;
    const int64_t *d = input_dims(L->s, L->n->in[1], &r);
    return cuda_interpolate(w0, w, a, L->out, (int64_t)numel_of(r, d), L->s->stream, L->err, L->cap);
}

static int launch_activation_grad(Launch *L)
{
    int r0, r1;
    const int64_t *d0 = input_dims(L->s, L->n->in[0], &r0), *d1 = input_dims(L->s, L->n->in[1], &r1);
    if (numel_of(r0, d0) != numel_of(r1, d1)) return 1;
    CuPtr dy = need_dev(L->s, L->i, 0, L->planned, L->capturing, L->err, L->cap), x = need_dev(L->s, L->i, 1, L->planned, L->capturing, L->err, L->cap);
    if (!dy || !x) return -1;
    return cuda_activation_grad(dy, x, L->out, (int64_t)numel_of(r0, d0), L->n->op == OP_QUICK_GELU_GRAD, L->s->stream, L->err, L->cap);
}

/* ReduceSum: the kept and reduced axes as two strided index spaces */
static int launch_sum(Launch *L)
{
    int rank = L->x->rank, ro = 0, rr = 0;
    uint8_t mask[IR_MAX_RANK];
    if (op_reduce_axes(L->ic, rank, mask)) { snprintf(L->err, L->cap, "%s", L->ic->err); return -1; }
    int64_t st[IR_MAX_RANK], keep[2][IR_MAX_RANK], red[2][IR_MAX_RANK], params[4 * CUDA_SUM_MAX_RANK];
    strides_of(rank, L->x->dims, st);
    for (int d = 0; d < rank; d++) {
        if (mask[d]) { red[0][rr] = L->x->dims[d]; red[1][rr++] = st[d]; }
        else { keep[0][ro] = L->x->dims[d]; keep[1][ro++] = st[d]; }
    }
    memcpy(params, keep[0], sizeof(int64_t) * (size_t)ro);
    memcpy(params + ro, keep[1], sizeof(int64_t) * (size_t)ro);
    memcpy(params + 2 * ro, red[0], sizeof(int64_t) * (size_t)rr);
    memcpy(params + 2 * ro + rr, red[1], sizeof(int64_t) * (size_t)rr);
    CuPtr x = need_dev(L->s, L->i, 0, L->planned, L->capturing, L->err, L->cap);
    if (!x || params_once(L, params, sizeof(int64_t) * (size_t)(2 * (ro + rr)))) return -1;
    return cuda_sum_axes(x, L->out, (int64_t)numel_of(ro, keep[0]), ro, rr, L->s->nodes[L->i].params, L->s->stream, L->err, L->cap);
}

/* dx by the row kernel; dscale and dbias as column sums of dy * xhat (in the
 * node's temporary buffer) and of dy */
static int launch_layernorm_grad(Launch *L)
{
    const Node *n = L->n;
    int rank = L->x->rank, sr;
    const Slot *xs = &L->s->slots[n->in[1]->id];
    int64_t axis = node_attr_i(n, "axis", -1);
    if (axis < 0) axis += xs->rank;
    size_t cols = 1;
    for (int64_t d = axis; d >= 0 && d < xs->rank; d++) cols *= (size_t)xs->dims[d];
    const int64_t *sd = input_dims(L->s, n->in[2], &sr);
    if (axis < 0 || axis >= xs->rank || numel_of(sr, sd) != cols || cols > (1u << 30)) return 1; /* a scalar scale: the host */
    int64_t rows = (int64_t)(numel_of(rank, L->x->dims) / (cols ? cols : 1));
    CuPtr dy = need_dev(L->s, L->i, 0, L->planned, L->capturing, L->err, L->cap), x = need_dev(L->s, L->i, 1, L->planned, L->capturing, L->err, L->cap);
    CuPtr sc = need_dev(L->s, L->i, 2, L->planned, L->capturing, L->err, L->cap);
    if (!dy || !x || !sc) return -1;
    CuPtr dx = n->out[0] ? L->out : 0, dscale = n->n_out > 1 ? L->more[0] : 0, dbias = n->n_out > 2 ? L->more[1] : 0;
    NodeState *ns = &L->s->nodes[L->i];
    size_t need = dscale ? sizeof(float) * (size_t)rows * cols : 0;
    if (node_temp(L, need)) return -1;
    /* column sums over the rows: kept dims [cols] stride 1, reduced [rows] stride cols */
    int64_t params[4] = {(int64_t)cols, 1, rows, (int64_t)cols};
    if ((dscale || dbias) && params_once(L, params, sizeof params)) return -1;
    CuPtr p = ns->params;
    if (cuda_layernorm_grad(dy, x, sc, dx, dscale ? ns->temp : 0, rows, (int)cols, node_attr_f(n, "epsilon", 1e-5f), L->s->stream, L->err,
                            L->cap) ||
        (dscale && cuda_sum_axes(ns->temp, dscale, (int64_t)cols, 1, 1, p, L->s->stream, L->err, L->cap)) ||
        (dbias && cuda_sum_axes(dy, dbias, (int64_t)cols, 1, 1, p, L->s->stream, L->err, L->cap)))
        return -1;
    return 0;
}

static int launch_elemwise(Launch *L)
{
    Instr code = {program_op_of(L->n->op), 0, L->n->n_in == 2 ? 1 : -1};
    Program p = {.n_in = L->n->n_in, .n_instr = 1, .code = &code};
    return launch_program(L, &p);
}

static int launch_layernorm(Launch *L)
{
    int64_t axis = node_attr_i(L->n, "axis", -1), rank = L->x->rank;
    if (axis < 0) axis += rank;
    size_t cols = 1;
    for (int64_t d = axis; d < rank; d++) cols *= (size_t)L->x->dims[d];
    const Value *b = L->n->n_in > 2 ? L->n->in[2] : NULL;
    int gr, br = 0;
    const int64_t *gd = input_dims(L->s, L->n->in[1], &gr), *bd = b ? input_dims(L->s, b, &br) : NULL;
    if (axis < 0 || axis >= rank || numel_of(gr, gd) != cols || (b && numel_of(br, bd) != cols)) {
        snprintf(L->err, L->cap, "node '%s': layernorm parameters do not match the normalized size", L->n->name);
        return -1;
    }
    CuPtr x = need_dev(L->s, L->i, 0, L->planned, L->capturing, L->err, L->cap), gp = need_dev(L->s, L->i, 1, L->planned, L->capturing, L->err, L->cap);
    CuPtr bp = b ? need_dev(L->s, L->i, 2, L->planned, L->capturing, L->err, L->cap) : 0;
    if (!x || !gp || (b && !bp)) return -1;
    return cuda_layernorm(x, gp, bp, L->out, (int64_t)(numel_of((int)rank, L->x->dims) / cols), (int)cols,
                          node_attr_f(L->n, "epsilon", 1e-5f), L->s->stream, L->err, L->cap);
}

static int launch_softmax(Launch *L)
{
    int64_t rank = L->x->rank, axis = node_attr_i(L->n, "axis", L->ic->opset >= 13 ? -1 : 1);
    if (axis < 0) axis += rank;
    size_t cols = 1;
    if (L->ic->opset >= 13 && axis != rank - 1) return 1; /* not the last axis: the host runs it */
    for (int64_t d = axis; d < rank; d++) cols *= (size_t)L->x->dims[d];
    CuPtr x = need_dev(L->s, L->i, 0, L->planned, L->capturing, L->err, L->cap);
    if (!x) return -1;
    return cuda_softmax(x, L->out, (int64_t)(numel_of((int)rank, L->x->dims) / cols), (int)cols, L->s->stream, L->err, L->cap);
}

/* The kernels' arguments for q, k, v (inputs first .. first + 2) */
static CudaAttnArgs attention_args(const CudaSession *s, const Node *n, int first, const AttentionParams *p, int has_mask)
{
    int bi = p->seq_first ? 1 : 0, si = 1 - bi;
    const Slot *q = &s->slots[n->in[first]->id], *k = &s->slots[n->in[first + 1]->id], *v = &s->slots[n->in[first + 2]->id];
    return (CudaAttnArgs){.B = q->dims[bi], .N = q->dims[si], .M = k->dims[si], .Cq = q->dims[2], .Ck = k->dims[2], .Cv = v->dims[2],
                          .Co = p->heads * p->head_dim, .heads = p->heads, .head_dim = p->head_dim, .q_off = p->q_off,
                          .k_off = p->k_off, .v_off = p->v_off, .frames = p->frames, .window = p->window, .scale = p->scale,
                          .causal = p->causal, .seq_first = p->seq_first, .boundary = p->boundary, .has_mask = has_mask};
}

static int launch_attention(Launch *L)
{
    AttentionParams p;
    if (op_attention_params(L->ic, &p)) { snprintf(L->err, L->cap, "node '%s': %s", L->n->name, L->ic->err); return -1; }
    CudaAttnArgs a = attention_args(L->s, L->n, 0, &p, L->n->n_in > 3 && L->n->in[3] != NULL);
    if (p.head_dim > 256 || (a.frames && a.B % a.frames)) return 1;
    CuPtr q = need_dev(L->s, L->i, 0, L->planned, L->capturing, L->err, L->cap), kk = need_dev(L->s, L->i, 1, L->planned, L->capturing, L->err, L->cap);
    CuPtr v = need_dev(L->s, L->i, 2, L->planned, L->capturing, L->err, L->cap);
    CuPtr m = a.has_mask ? need_dev(L->s, L->i, 3, L->planned, L->capturing, L->err, L->cap) : 0;
    if (!q || !kk || !v || (a.has_mask && !m)) return -1;
    return cuda_attention(q, kk, v, m, L->out, &a, L->s->stream, L->err, L->cap);
}

/* (dout, q, k, v, mask?) -> dq, dk, dv, the recomputing kernel of
 * cuda_ops.h; each row's statistics in the node's temporary buffer */
static int launch_attention_grad(Launch *L)
{
    const Node *n = L->n;
    AttentionParams p;
    InferCtx shifted = *L->ic; /* op_attention_params reads q, k, v as inputs 0..2 */
    for (int i = 0; i < 3; i++) shifted.in[i] = L->ic->in[1 + i];
    if (op_attention_params(&shifted, &p)) { snprintf(L->err, L->cap, "node '%s': %s", n->name, shifted.err); return -1; }
    int has_mask = n->n_in > 4 && n->in[4] != NULL;
    CudaAttnArgs a = attention_args(L->s, n, 1, &p, has_mask);
    if (p.head_dim > 256 || (a.frames && a.B % a.frames) || (a.frames && a.window > 64)) return 1;
    CuPtr in[5] = {0};
    for (int j = 0; j < 4 + has_mask; j++)
        if (!(in[j] = need_dev(L->s, L->i, j, L->planned, L->capturing, L->err, L->cap))) return -1;
    NodeState *ns = &L->s->nodes[L->i];
    size_t need = sizeof(float) * 2 * (size_t)(a.B * a.heads * a.N);
    if (node_temp(L, need)) return -1;
    CuPtr dq = n->out[0] ? L->out : 0, dk = n->n_out > 1 ? L->more[0] : 0, dv = n->n_out > 2 ? L->more[1] : 0;
    return cuda_attention_grad(in[0], in[1], in[2], in[3], in[4], ns->temp, dq, dk, dv, &a, L->s->stream, L->err, L->cap);
}

static int launch_transpose(Launch *L)
{
    int perm[IR_MAX_RANK], rank = L->x->rank;
    if (op_transpose_perm(L->ic, rank, perm)) { snprintf(L->err, L->cap, "%s", L->ic->err); return -1; }
    int64_t params[3 * CUDA_COPY_MAX_RANK], in_st[IR_MAX_RANK], od[IR_MAX_RANK];
    strides_of(rank, L->x->dims, in_st);
    for (int d = 0; d < rank; d++) { od[d] = L->x->dims[perm[d]]; params[d] = od[d]; params[rank + d] = in_st[perm[d]]; }
    strides_of(rank, od, params + 2 * rank);
    CuPtr x = need_dev(L->s, L->i, 0, L->planned, L->capturing, L->err, L->cap);
    if (!x || params_once(L, params, sizeof(int64_t) * (size_t)(3 * rank))) return -1;
    return cuda_copy(x, L->out, (int64_t)numel_of(rank, L->x->dims), rank, 0, 0, L->s->nodes[L->i].params, L->s->stream, L->err, L->cap);
}

/* each input copied into its slab of the output */
static int launch_concat(Launch *L)
{
    const Node *n = L->n;
    int rank = L->x->rank;
    int64_t axis = node_attr_i(n, "axis", 0);
    if (axis < 0) axis += rank;
    const Shape *os = &L->ic->out[0]->shape;
    int64_t od[IR_MAX_RANK], out_st[IR_MAX_RANK], params[8 * 3 * CUDA_COPY_MAX_RANK], at = 0;
    for (int d = 0; d < rank; d++) od[d] = os->d[d].n;
    strides_of(rank, od, out_st);
    CuPtr in[8];
    for (int k = 0; k < n->n_in; k++) {
        const Slot *sl = &L->s->slots[n->in[k]->id];
        const Tensor *t = n->in[k]->konst;
        const int64_t *d = t ? t->dims : sl->dims;
        int64_t *p = params + k * 3 * rank;
        for (int j = 0; j < rank; j++) p[j] = d[j];
        strides_of(rank, d, p + rank);
        memcpy(p + 2 * rank, out_st, sizeof(int64_t) * (size_t)rank);
        if (!(in[k] = need_dev(L->s, L->i, k, L->planned, L->capturing, L->err, L->cap))) return -1;
    }
    if (params_once(L, params, sizeof(int64_t) * (size_t)(n->n_in * 3 * rank))) return -1;
    for (int k = 0; k < n->n_in; k++) {
        const int64_t *p = params + k * 3 * rank;
        int64_t cnt = (int64_t)numel_of(rank, p);
        if (cnt && cuda_copy(in[k], L->out, cnt, rank, 0, at * out_st[axis], L->s->nodes[L->i].params + sizeof(int64_t) * (size_t)(k * 3 * rank),
                             L->s->stream, L->err, L->cap))
            return -1;
        at += p[axis];
    }
    return 0;
}

/* Gather with indices computed on the way (int64, on the device) */
static int launch_gather_indexed(Launch *L)
{
    const Value *iv = L->n->in[1];
    const Slot *is = &L->s->slots[iv->id];
    int rank = L->x->rank;
    int64_t axis = node_attr_i(L->n, "axis", 0), outer = 1, inner = 1;
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank || iv->dtype != DT_I64) return 1;
    for (int64_t d = 0; d < axis; d++) outer *= L->x->dims[d];
    for (int d = (int)axis + 1; d < rank; d++) inner *= L->x->dims[d];
    int64_t ni = (int64_t)numel_of(is->rank, is->dims), len = L->x->dims[axis];
    if (is->host) /* on the host already: checked as the CPU kernel does */
        for (int64_t j = 0; j < ni; j++) {
            int64_t g = tensor_get_i64(is->host, j);
            if (g < -len || g >= len) { snprintf(L->err, L->cap, "node '%s': index %lld out of range", L->n->name, (long long)g); return -1; }
        }
    CuPtr x = need_dev(L->s, L->i, 0, L->planned, L->capturing, L->err, L->cap), idx = need_dev(L->s, L->i, 1, L->planned, L->capturing, L->err, L->cap);
    if (!x || !idx) return -1;
    return outer * ni * inner != 0 ? cuda_gather(x, idx, L->out, outer, len, ni, inner, L->s->stream, L->err, L->cap) : 0;
}

/* Gather over constant indices: one strided copy per index */
static int launch_gather(Launch *L)
{
    const Tensor *idx = L->n->in[1]->konst;
    if (!idx || tensor_numel(idx) > 8 || idx->rank > 1) return launch_gather_indexed(L);
    int rank = L->x->rank;
    int64_t axis = node_attr_i(L->n, "axis", 0), ni = tensor_numel(idx), in_st[IR_MAX_RANK], params[3 * CUDA_COPY_MAX_RANK];
    if (axis < 0) axis += rank;
    strides_of(rank, L->x->dims, in_st);
    /* index space: the input's dims with the axis taken out (size 1), output strides of a [.., ni, ..] block */
    int64_t od[IR_MAX_RANK], out_st[IR_MAX_RANK];
    for (int d = 0; d < rank; d++) od[d] = d == axis ? ni : L->x->dims[d];
    strides_of(rank, od, out_st);
    for (int d = 0; d < rank; d++) {
        params[d] = d == axis ? 1 : L->x->dims[d];
        params[rank + d] = in_st[d];
        params[2 * rank + d] = out_st[d];
    }
    CuPtr x = need_dev(L->s, L->i, 0, L->planned, L->capturing, L->err, L->cap);
    if (!x || params_once(L, params, sizeof(int64_t) * (size_t)(3 * rank))) return -1;
    int64_t cnt = (int64_t)numel_of(rank, params);
    for (int64_t k = 0; k < ni; k++) {
        int64_t j = tensor_get_i64(idx, k);
        if (j < 0) j += L->x->dims[axis];
        if (j < 0 || j >= L->x->dims[axis]) { snprintf(L->err, L->cap, "node '%s': index %lld out of range", L->n->name, (long long)j); return -1; }
        if (cnt && cuda_copy(x, L->out, cnt, rank, j * in_st[axis], k * out_st[axis], L->s->nodes[L->i].params, L->s->stream, L->err, L->cap))
            return -1;
    }
    return 0;
}

/* Integer elementwise ops: each input's strides against the output's
 * dims, 0 along the axes it is broadcast on */
static int launch_int_elementwise(Launch *L)
{
    const Node *n = L->n;
    const Slot *o = &L->s->slots[n->out[0]->id];
    int rank = o->rank, op = int_op(n->op), arity = op == CUDA_INT_CAST ? 1 : 2;
    if (rank > CUDA_COPY_MAX_RANK) return 1;
    int64_t params[3 * CUDA_COPY_MAX_RANK] = {0};
    memcpy(params, o->dims, sizeof(int64_t) * (size_t)rank);
    CuPtr in[2] = {0, 0};
    for (int j = 0; j < arity; j++) {
        int r;
        const int64_t *d = input_dims(L->s, n->in[j], &r);
        int64_t st[IR_MAX_RANK];
        if (r > rank) return 1;
        strides_of(r, d, st);
        for (int k = 0; k < r; k++) params[(j + 1) * rank + rank - r + k] = d[k] == 1 ? 0 : st[k];
        if (!(in[j] = need_dev(L->s, L->i, j, L->planned, L->capturing, L->err, L->cap))) return -1;
    }
    int64_t count = (int64_t)numel_of(rank, o->dims);
    if (!count) return 0;
    if (params_once(L, params, sizeof(int64_t) * (size_t)(3 * (rank ? rank : 1)))) return -1;
    return cuda_int_elementwise(in[0], int_elem(n->in[0]->dtype), arity == 2 ? in[1] : in[0], int_elem(n->in[arity - 1]->dtype), L->out,
                                int_elem(n->out[0]->dtype), op, count, rank, L->s->nodes[L->i].params, L->s->stream, L->err, L->cap);
}

/* ArgMax / ArgMin along one axis */
static int launch_argreduce(Launch *L)
{
    int rank = L->x->rank;
    int64_t axis = node_attr_i(L->n, "axis", 0), outer = 1, inner = 1;
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= (rank ? rank : 1)) { snprintf(L->err, L->cap, "node '%s': axis out of range", L->n->name); return -1; }
    for (int64_t d = 0; d < axis; d++) outer *= L->x->dims[d];
    for (int d = (int)axis + 1; d < rank; d++) inner *= L->x->dims[d];
    int64_t len = rank ? L->x->dims[axis] : 1;
    if (len == 0) { snprintf(L->err, L->cap, "node '%s': reduction over an empty axis", L->n->name); return -1; }
    CuPtr x = need_dev(L->s, L->i, 0, L->planned, L->capturing, L->err, L->cap);
    if (!x) return -1;
    DType t = L->n->in[0]->dtype;
    if (outer * inner == 0) return 0;
    return cuda_argreduce(x, t == DT_F32 ? CUDA_ELEM_F32 : int_elem(t), L->out, outer, len, inner, L->n->op == OP_ARGMAX,
                          (int)node_attr_i(L->n, "select_last_index", 0), L->s->stream, L->err, L->cap);
}

/* the patch embedding: im2col by a gather, the GEMM with its bias, a gather back to NCHW */
static int launch_conv(Launch *L)
{
    ConvParams p;
    Shape os;
    if (op_conv_params(L->ic, &p, &os)) { snprintf(L->err, L->cap, "%s", L->ic->err); return -1; }
    if (p.nsp != 2 || p.group != 1 || p.stride[0] != p.k[0] || p.stride[1] != p.k[1] || p.dil[0] != 1 || p.dil[1] != 1 || p.pad_lo[0] ||
        p.pad_lo[1] || p.pad_hi[0] || p.pad_hi[1])
        return 1;
    const int64_t *xd = L->x->dims;
    int64_t N = xd[0], C = xd[1], H = xd[2], W = xd[3], KH = p.k[0], KW = p.k[1], OH = os.d[2].n, OW = os.d[3].n;
    int wr;
    int64_t M = input_dims(L->s, L->n->in[1], &wr)[0], K = C * KH * KW, P = OH * OW, NP = N * P;
    int64_t params[27] = {N, OH, OW, C, KH, KW, C * H * W, KH * W, KW, H * W, W, 1, /* im2col: [N, OH, OW, C, KH, KW] */
                          OH * OW * K, OW * K, K, KH * KW, KW, 1,                  /* into rows of K */
                          N, M, P, P * M, 1, M, M * P, P, 1};                      /* rows [NP, M] -> NCHW */
    NodeState *ns = &L->s->nodes[L->i];
    size_t need = sizeof(float) * (size_t)(NP * K + NP * M);
    if (node_temp(L, need)) return -1;
    CuPtr x = need_dev(L->s, L->i, 0, L->planned, L->capturing, L->err, L->cap), w = need_dev(L->s, L->i, 1, L->planned, L->capturing, L->err, L->cap);
    CuPtr b = L->n->n_in > 2 && L->n->in[2] ? need_dev(L->s, L->i, 2, L->planned, L->capturing, L->err, L->cap) : 0;
    if (!x || !w || (L->n->n_in > 2 && L->n->in[2] && !b) || params_once(L, params, sizeof params)) return -1;
    CuPtr col = ns->temp, rows = ns->temp + sizeof(float) * (size_t)(NP * K);
    if (cuda_copy(x, col, NP * K, 6, 0, 0, ns->params, L->s->stream, L->err, L->cap)) return -1;
    if (run_gemm(L, col, NP, K, M, w, 1, b, 0, rows, 0)) return -1;
    return cuda_copy(rows, L->out, N * M * P, 3, 0, 0, ns->params + 18 * sizeof(int64_t), L->s->stream, L->err, L->cap);
}

/* the reduction attribute as the kernels take it: 0 mean, 1 sum, 2 none */
static int ce_mode(Launch *L)
{
    const char *r = node_attr_s(L->n, "reduction", "mean");
    int mode = !strcmp(r, "mean") ? 0 : !strcmp(r, "sum") ? 1 : !strcmp(r, "none") ? 2 : -1;
    if (mode < 0) snprintf(L->err, L->cap, "node '%s': unknown reduction '%s'", L->n->name, r);
    return mode;
}

/* Labels on the host (inputs, constants) are checked there, as the CPU
 * kernel checks them; on the device a bad label makes the loss NaN. */
static int check_labels(Launch *L, int j, int64_t B, int64_t C)
{
    const Value *v = L->n->in[j];
    const Tensor *t = v->konst ? v->konst : L->s->slots[v->id].host;
    for (int64_t b = 0; t && b < B && b < tensor_numel(t); b++) {
        int64_t y = tensor_get_i64(t, b);
        if (y < 0 || y >= C) {
            snprintf(L->err, L->cap, "node '%s': label %lld of row %lld is outside [0, %lld)", L->n->name, (long long)y, (long long)b, (long long)C);
            return -1;
        }
    }
    return 0;
}

static int launch_softmax_ce(Launch *L)
{
    int mode = ce_mode(L);
    if (mode < 0) return -1;
    if (L->x->rank != 2) return 1;
    int64_t B = L->x->dims[0], C = L->x->dims[1];
    if (check_labels(L, 1, B, C)) return -1;
    CuPtr sc = need_dev(L->s, L->i, 0, L->planned, L->capturing, L->err, L->cap), lb = need_dev(L->s, L->i, 1, L->planned, L->capturing, L->err, L->cap);
    if (!sc || !lb) return -1;
    return cuda_softmax_ce(sc, lb, L->out, L->n->n_out > 1 ? L->more[0] : 0, B, C, mode, L->s->stream, L->err, L->cap);
}

static int launch_softmax_ce_grad(Launch *L)
{
    int mode = ce_mode(L);
    if (mode < 0) return -1;
    const Slot *ss = &L->s->slots[L->n->in[1]->id];
    if (ss->rank != 2) return 1;
    int64_t B = ss->dims[0], C = ss->dims[1];
    if (check_labels(L, 2, B, C)) return -1;
    CuPtr dl = need_dev(L->s, L->i, 0, L->planned, L->capturing, L->err, L->cap), sc = need_dev(L->s, L->i, 1, L->planned, L->capturing, L->err, L->cap);
    CuPtr lb = need_dev(L->s, L->i, 2, L->planned, L->capturing, L->err, L->cap);
    if (!dl || !sc || !lb) return -1;
    return cuda_softmax_ce_grad(dl, sc, lb, L->out, B, C, mode, L->s->stream, L->err, L->cap);
}

/* The output's dims from inference */
static int out_dims(const Launch *L, int64_t *od)
{
    const Shape *os = &L->ic->out[0]->shape;
    for (int d = 0; d < os->rank; d++) od[d] = os->d[d].n;
    return os->rank;
}

/* Expand: a copy reading broadcast dims with stride 0 */
static int launch_expand(Launch *L)
{
    int64_t od[IR_MAX_RANK], in_st[IR_MAX_RANK], params[3 * CUDA_COPY_MAX_RANK];
    int rank = out_dims(L, od), xr = L->x->rank;
    if (rank > CUDA_COPY_MAX_RANK || xr > rank) return 1;
    strides_of(xr, L->x->dims, in_st);
    for (int d = 0; d < rank; d++) {
        int xd = d - (rank - xr);
        params[d] = od[d];
        params[rank + d] = xd < 0 || L->x->dims[xd] == 1 ? 0 : in_st[xd];
    }
    strides_of(rank, od, params + 2 * rank);
    CuPtr x = need_dev(L->s, L->i, 0, L->planned, L->capturing, L->err, L->cap);
    if (!x || params_once(L, params, sizeof(int64_t) * (size_t)(3 * rank))) return -1;
    int64_t n = (int64_t)numel_of(rank, od);
    return n ? cuda_copy(x, L->out, n, rank, 0, 0, L->s->nodes[L->i].params, L->s->stream, L->err, L->cap) : 0;
}

/* Slice: a copy from a base offset with stepped strides */
static int launch_slice(Launch *L)
{
    int rank = L->x->rank;
    Shape xs = {rank, {{0}}}, ys;
    for (int d = 0; d < rank; d++) xs.d[d] = dim_const(L->x->dims[d]);
    SliceParams sp;
    if (op_slice_params(L->ic, &xs, &sp, &ys)) { snprintf(L->err, L->cap, "%s", L->ic->err); return -1; }
    int64_t st[IR_MAX_RANK], len[IR_MAX_RANK], params[3 * CUDA_COPY_MAX_RANK], base = 0;
    strides_of(rank, L->x->dims, st);
    for (int d = 0; d < rank; d++) {
        len[d] = sp.len[d] < 0 ? L->x->dims[d] : sp.len[d]; /* -1: an axis not sliced */
        params[d] = len[d];
        params[rank + d] = st[d] * sp.step[d];
        base += sp.start[d] * st[d];
    }
    strides_of(rank, len, params + 2 * rank);
    CuPtr x = need_dev(L->s, L->i, 0, L->planned, L->capturing, L->err, L->cap);
    if (!x || params_once(L, params, sizeof(int64_t) * (size_t)(3 * rank))) return -1;
    int64_t n = (int64_t)numel_of(rank, len);
    return n ? cuda_copy(x, L->out, n, rank, base, 0, L->s->nodes[L->i].params, L->s->stream, L->err, L->cap) : 0;
}

/* GatherGrad over constant, distinct indices: zeros, then each index's slab
 * of dy copied to its place (repeated indices would need sums: the host) */
static int launch_gather_grad(Launch *L)
{
    const Tensor *idx = L->n->in[1]->konst;
    int64_t od[IR_MAX_RANK], ni = tensor_numel(idx), axis = node_attr_i(L->n, "axis", 0);
    int rank = out_dims(L, od);
    if (axis < 0) axis += rank;
    /* dy is dx with the axis ni long, or without it for a scalar index */
    if (axis < 0 || axis >= rank || rank > CUDA_COPY_MAX_RANK || ni > 8 || idx->rank > 1 || L->x->rank != rank - (idx->rank == 0)) return 1;
    int64_t g[8];
    for (int64_t j = 0; j < ni; j++) {
        g[j] = tensor_get_i64(idx, j);
        if (g[j] < 0) g[j] += od[axis];
        if (g[j] < 0 || g[j] >= od[axis]) { snprintf(L->err, L->cap, "node '%s': index %lld out of range", L->n->name, (long long)g[j]); return -1; }
        for (int64_t q = 0; q < j; q++) if (g[q] == g[j]) return 1;
    }
    int64_t params[3 * CUDA_COPY_MAX_RANK], dy_st[IR_MAX_RANK], dx_st[IR_MAX_RANK], dyd[IR_MAX_RANK];
    for (int d = 0, k = 0; d < rank; d++) dyd[d] = idx->rank == 0 && d == axis ? 1 : L->x->dims[k++];
    strides_of(rank, dyd, dy_st);
    strides_of(rank, od, dx_st);
    for (int d = 0; d < rank; d++) {
        params[d] = d == axis ? 1 : od[d];
        params[rank + d] = dy_st[d];
        params[2 * rank + d] = dx_st[d];
    }
    CuPtr dy = need_dev(L->s, L->i, 0, L->planned, L->capturing, L->err, L->cap);
    if (!dy || params_once(L, params, sizeof(int64_t) * (size_t)(3 * rank))) return -1;
    int64_t n = (int64_t)numel_of(rank, od), cnt = (int64_t)numel_of(rank, params);
    if (n && cuda_zero(L->out, n, L->s->stream, L->err, L->cap)) return -1;
    for (int64_t j = 0; cnt && j < ni; j++)
        if (cuda_copy(dy, L->out, cnt, rank, j * dy_st[axis], g[j] * dx_st[axis], L->s->nodes[L->i].params, L->s->stream, L->err, L->cap))
            return -1;
    return 0;
}

/* The patch embedding's gradient (non-overlapping patches, as the forward):
 * dy [N, M, OH, OW] to rows [NP, M]; dw [M, K] = rows^T . im2col(x); dx =
 * col2im(rows . w), zero where no patch reaches */
static int launch_conv_grad(Launch *L)
{
    const Node *n = L->n;
    ConvParams p;
    Shape os;
    InferCtx shifted = *L->ic; /* op_conv_params reads x and w as inputs 0 and 1 */
    shifted.in[0] = L->ic->in[1];
    shifted.in[1] = L->ic->in[2];
    shifted.in[2] = NULL;
    shifted.n_in = 2;
    if (op_conv_params(&shifted, &p, &os)) { snprintf(L->err, L->cap, "%s", shifted.err); return -1; }
    if (p.nsp != 2 || p.group != 1 || p.stride[0] != p.k[0] || p.stride[1] != p.k[1] || p.dil[0] != 1 || p.dil[1] != 1 || p.pad_lo[0] ||
        p.pad_lo[1] || p.pad_hi[0] || p.pad_hi[1])
        return 1;
    const Slot *xs = &L->s->slots[n->in[1]->id];
    int wr;
    const int64_t *xd = xs->dims, *wd = input_dims(L->s, n->in[2], &wr);
    int64_t N = xd[0], C = xd[1], H = xd[2], W = xd[3], KH = p.k[0], KW = p.k[1], OH = os.d[2].n, OW = os.d[3].n;
    int64_t M = wd[0], K = C * KH * KW, P = OH * OW, NP = N * P;
    int64_t params[45] = {N, OH, OW, C, KH, KW, C * H * W, KH * W, KW, H * W, W, 1, /* im2col: [N, OH, OW, C, KH, KW] */
                          OH * OW * K, OW * K, K, KH * KW, KW, 1,                  /* into rows of K */
                          N, M, P, M * P, P, 1, P * M, 1, M,                       /* NCHW [N, M, P] -> rows [NP, M] */
                          N, OH, OW, C, KH, KW, OH * OW * K, OW * K, K, KH * KW, KW, 1, /* col2im: rows of K */
                          C * H * W, KH * W, KW, H * W, W, 1};                     /* back into the image */
    CuPtr dx = n->out[0] ? L->out : 0, dw = n->n_out > 1 ? L->more[0] : 0;
    NodeState *ns = &L->s->nodes[L->i];
    size_t need = sizeof(float) * (size_t)(NP * K + NP * M);
    if (node_temp(L, need)) return -1;
    CuPtr dy = need_dev(L->s, L->i, 0, L->planned, L->capturing, L->err, L->cap), x = need_dev(L->s, L->i, 1, L->planned, L->capturing, L->err, L->cap);
    CuPtr w = need_dev(L->s, L->i, 2, L->planned, L->capturing, L->err, L->cap);
    if (!dy || !x || !w || params_once(L, params, sizeof params)) return -1;
    CuPtr col = ns->temp, rows = ns->temp + sizeof(float) * (size_t)(NP * K), pp = ns->params;
    if (cuda_copy(dy, rows, N * M * P, 3, 0, 0, pp + 18 * sizeof(int64_t), L->s->stream, L->err, L->cap)) return -1;
    if (dw) {
        LtGemm g = {.M = M, .N = K, .K = NP, .A = rows, .W = col, .D = dw, .a_transposed = 1, .alpha = 1.0f, .compute = L->s->opt.compute};
        if (cuda_copy(x, col, NP * K, 6, 0, 0, pp, L->s->stream, L->err, L->cap) || cublaslt_gemm(&g, L->s->stream, L->err, L->cap)) return -1;
    }
    if (dx) { /* dcol [NP, K] = rows [NP, M] . w [M, K], then back to the image (the im2col strides swapped) */
        if (run_gemm(L, rows, NP, M, K, w, 0, 0, 0, col, 0) || cuda_zero(dx, N * C * H * W, L->s->stream, L->err, L->cap)) return -1;
        return cuda_copy(col, dx, NP * K, 6, 0, 0, ns->params + 27 * sizeof(int64_t), L->s->stream, L->err, L->cap);
    }
    return 0;
}

/* ---- the run -------------------------------------------------------------- */

static void drop_host(CudaSession *s, const Value *v)
{
    Slot *sl = &s->slots[v->id];
    if (sl->host && sl->host != v->konst && !sl->borrowed) tensor_free(sl->host);
    sl->host = NULL;
    sl->borrowed = 0;
}

static int run_host(CudaSession *s, int i, char *err, size_t cap)
{
    const Node *n = s->g->nodes[i];
    const Tensor *ins[16] = {0};
    Tensor *outs[8] = {0};
    for (int j = 0; j < n->n_in && j < 16; j++) {
        if (!n->in[j]) continue;
        if (need_host(s, n->in[j], err, cap)) return -1;
        ins[j] = s->slots[n->in[j]->id].host;
    }
    ExecOptions eo = {0};
    if (exec_node(s->g, n, ins, outs, &eo, err, cap)) return -1;
    for (int j = 0; j < n->n_out; j++) {
        if (!n->out[j]) { tensor_free(outs[j]); continue; }
        Slot *sl = &s->slots[n->out[j]->id];
        sl->host = outs[j];
        sl->rank = outs[j]->rank;
        memcpy(sl->dims, outs[j]->dims, sizeof sl->dims);
    }
    return 0;
}

/* Shape needs only its input's dims, wherever the data is. */
static int run_shape(CudaSession *s, int i, char *err, size_t cap)
{
    const Node *n = s->g->nodes[i];
    const Slot *x = &s->slots[n->in[0]->id];
    const Tensor *t = x->host ? x->host : n->in[0]->konst;
    Tensor head = {.dtype = n->in[0]->dtype, .rank = t ? t->rank : x->rank};
    memcpy(head.dims, t ? t->dims : x->dims, sizeof head.dims);
    const Tensor *ins[16] = {&head};
    Tensor *outs[8] = {0};
    ExecOptions eo = {0};
    if (exec_node(s->g, n, ins, outs, &eo, err, cap)) return -1;
    Slot *o = &s->slots[n->out[0]->id];
    o->host = outs[0];
    o->rank = outs[0]->rank;
    memcpy(o->dims, outs[0]->dims, sizeof o->dims);
    return 0;
}

/* A view wherever its input is: a host view of the host copy, the same
 * device bytes for the device copy (or both). */
static int run_view(CudaSession *s, int i, char *err, size_t cap)
{
    const Node *n = s->g->nodes[i];
    const Slot *x = &s->slots[n->in[0]->id];
    if (x->host && run_host(s, i, err, cap)) return -1;
    if (!x->dev) return 0;
    InferCtx *ic = calloc(1, sizeof *ic);
    ValueInfo *vi = calloc(24, sizeof *vi);
    Tensor heads[16];
    int rc = -1;
    if (!ic || !vi) snprintf(err, cap, "out of memory");
    else if (!infer(s, n, ic, vi, heads, err, cap)) {
        Slot *o = &s->slots[n->out[0]->id];
        o->rank = ic->out[0]->shape.rank;
        for (int d = 0; d < o->rank; d++) o->dims[d] = ic->out[0]->shape.d[d].n;
        o->dev = x->dev;
        rc = 0;
    }
    free(ic);
    free(vi);
    return rc;
}

/* The launch of each device kind. */
static int (*const launchers[K_COUNT])(Launch *) = {
    [K_LINEAR] = launch_linear,       [K_MATMUL] = launch_matmul,   [K_FUSED] = launch_fused,
    [K_ELEMWISE] = launch_elemwise,   [K_LAYERNORM] = launch_layernorm, [K_SOFTMAX] = launch_softmax,
    [K_ATTENTION] = launch_attention, [K_TRANSPOSE] = launch_transpose, [K_CONCAT] = launch_concat,
    [K_GATHER] = launch_gather,       [K_CONV] = launch_conv,       [K_REDUCE] = launch_reduce,
    [K_GEMM] = launch_gemm,           [K_INTERPOLATE] = launch_interpolate, [K_ACT_GRAD] = launch_activation_grad,
    [K_SUM] = launch_sum,             [K_LAYERNORM_GRAD] = launch_layernorm_grad, [K_ATTENTION_GRAD] = launch_attention_grad,
    [K_SOFTMAX_CE] = launch_softmax_ce, [K_SOFTMAX_CE_GRAD] = launch_softmax_ce_grad, [K_EXPAND] = launch_expand,
    [K_SLICE] = launch_slice,         [K_GATHER_GRAD] = launch_gather_grad, [K_CONV_GRAD] = launch_conv_grad,
    [K_INT_ELEMWISE] = launch_int_elementwise, [K_ARGREDUCE] = launch_argreduce,
};

static int run_device(CudaSession *s, int i, int planned, int capturing, char *err, size_t cap)
{
    const Node *n = s->g->nodes[i];
    InferCtx *ic = calloc(1, sizeof *ic);
    ValueInfo *vi = calloc(24, sizeof *vi);
    Tensor heads[16];
    int rc = -1;
    if (!ic || !vi) { snprintf(err, cap, "out of memory"); goto done; }
    if (infer(s, n, ic, vi, heads, err, cap)) goto done;
    Slot *o = n->out[0] ? &s->slots[n->out[0]->id] : NULL; /* a gradient op's first output may be unused */
    Launch L = {s, i, planned, capturing, n, ic, 0, {0}, &s->slots[n->in[0]->id], err, cap};
    if (o) {
        const Shape *os = &ic->out[0]->shape;
        o->rank = os->rank;
        for (int d = 0; d < os->rank; d++) o->dims[d] = os->d[d].n;
        size_t bytes = dtype_size(n->out[0]->dtype) * numel_of(o->rank, o->dims);
        if (!(L.out = value_buffer(s, n->out[0], bytes, planned))) {
            snprintf(err, cap, "node '%s': device allocation failed (%zu bytes)", n->name, bytes);
            goto done;
        }
    }
    for (int j = 1; j < n->n_out && j < 4; j++) { /* multi-output device nodes (the plain ones have one) */
        if (!n->out[j]) continue;
        Slot *oj = &s->slots[n->out[j]->id];
        const Shape *sj = &ic->out[j]->shape;
        oj->rank = sj->rank;
        for (int d = 0; d < sj->rank; d++) oj->dims[d] = sj->d[d].n;
        size_t bj = sizeof(float) * numel_of(oj->rank, oj->dims);
        if (!(L.more[j - 1] = value_buffer(s, n->out[j], bj, planned))) { snprintf(err, cap, "node '%s': device allocation failed", n->name); goto done; }
    }
    if (s->kind[i] < K_COUNT && launchers[s->kind[i]]) rc = launchers[s->kind[i]](&L);
    else snprintf(err, cap, "node '%s': no device kernel", n->name);
    if (rc == 0) {
        if (o) o->dev = L.out;
        for (int j = 1; j < n->n_out && j < 4; j++) if (n->out[j]) s->slots[n->out[j]->id].dev = L.more[j - 1];
    }
    else if (rc > 0) rc = 1; /* this instance needs the host */
    else if (!strstr(err, n->name)) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", err);
        snprintf(err, cap, "node '%s' (%s) on the device: %s", n->name, op_name(n->op), msg);
    }
done:
    free(ic);
    free(vi);
    return rc;
}


/* The value whose device bytes v's are (views alias their input). */
static const Value *view_root(const Value *v)
{
    while (v->producer && op_table[v->producer->op].pattern == PAT_VIEW && v->producer->n_in && v->producer->in[0])
        v = v->producer->in[0];
    return v;
}

/* Whether a run can be recorded once and replayed: no node on the host may
 * read anything that depends on the inputs' values (their shapes are fixed
 * while the plan holds). */
static void decide_capture(CudaSession *s)
{
    const Graph *g = s->g;
    s->capturable = 0;
    const char *blocker = NULL;
    for (int i = 0; i < g->n_nodes && !blocker; i++) {
        const Node *n = g->nodes[i];
        int dyn = 0;
        for (int j = 0; j < n->n_in; j++) if (n->in[j] && s->dynamic[n->in[j]->id]) dyn = 1;
        int host_reads = s->kind[i] == K_HOST;
        if (s->kind[i] == K_FUSED) /* a view's operands are read on the host */
            for (int j = 0; j < n->n_in; j++) host_reads |= n->in[j] && n->in[j]->dtype != DT_F32 && s->dynamic[n->in[j]->id];
        if (n->op != OP_SHAPE && dyn && host_reads) blocker = n->name;
    }
    for (int i = 0; i < g->n_outputs && !blocker; i++) {
        const Value *v = view_root(g->outputs[i]);
        if (!s->arena || s->plan.offset[v->id] == PLAN_NONE || !s->bytes[v->id]) blocker = g->outputs[i]->name;
    }
    if (s->opt.no_graphs) snprintf(s->stats.graph_note, sizeof s->stats.graph_note, "CUDA graphs turned off");
    else if (blocker) snprintf(s->stats.graph_note, sizeof s->stats.graph_note, "not captured: '%.180s' is computed on the host from the inputs' values", blocker);
    else { s->capturable = 1; s->stats.graph_note[0] = 0; }
}

/* Which values depend on the inputs' values: everything downstream of an
 * input, except through Shape (shapes are fixed while a plan holds). */
static void mark_dynamic(CudaSession *s)
{
    const Graph *g = s->g;
    for (int i = 0; i < g->n_inputs; i++) s->dynamic[g->inputs[i]->id] = 1;
    for (int i = 0; i < g->n_nodes; i++) {
        const Node *n = g->nodes[i];
        int dyn = 0;
        for (int j = 0; j < n->n_in && n->op != OP_SHAPE; j++) dyn |= n->in[j] && s->dynamic[n->in[j]->id];
        for (int j = 0; j < n->n_out; j++) if (n->out[j]) s->dynamic[n->out[j]->id] = (char)dyn;
    }
}

/* stats.host_ops: each op that fell back to the host, with its count, in graph order */
static void describe_host_ops(CudaSession *s)
{
    int counts[OP_COUNT] = {0}, order[OP_COUNT], n = 0;
    for (int i = 0; i < s->g->n_nodes; i++) {
        int op = s->g->nodes[i]->op;
        if (s->kind[i] != K_HOST) continue;
        if (!counts[op]++) order[n++] = op;
    }
    char *p = s->stats.host_ops, *end = p + sizeof s->stats.host_ops;
    *p = 0;
    for (int j = 0; j < n && p < end; j++) {
        int w = counts[order[j]] > 1 ? snprintf(p, (size_t)(end - p), "%s%s x%d", j ? ", " : "", op_name(order[j]), counts[order[j]])
                                     : snprintf(p, (size_t)(end - p), "%s%s", j ? ", " : "", op_name(order[j]));
        p += w > 0 ? w : 0;
    }
}

static void forget_plan(CudaSession *s)
{
    if (s->graph) s->cu->graph_exec_destroy(s->graph);
    if (s->update_graph) s->cu->graph_exec_destroy(s->update_graph);
    s->graph = s->update_graph = NULL;
    if (s->arena) s->cu->mem_free(s->arena);
    s->arena = 0;
    memory_plan_free(&s->plan);
    free(s->sig);
    s->sig = NULL;
    s->planned_runs = 0;
    for (int i = 0; i < s->g->n_nodes; i++) s->nodes[i].params_ready = 0;
    for (int i = 0; i < s->g->n_inputs; i++) {
        if (s->input_dev[i]) s->cu->mem_free(s->input_dev[i]);
        s->input_dev[i] = 0;
    }
}

static int outputs_to_host(CudaSession *s, Tensor **outputs, char *err, size_t cap)
{
    const Graph *g = s->g;
    if (s->cu->stream_sync(s->stream)) { snprintf(err, cap, "the device failed while running the graph"); return -1; }
    for (int i = 0; i < g->n_outputs; i++) {
        const Value *v = g->outputs[i];
        if (s->step && i >= s->train.grad_first) { outputs[i] = NULL; continue; } /* gradients stay on the device */
        if (need_host(s, v, err, cap)) return -1;
        if (!(outputs[i] = tensor_copy(s->slots[v->id].host))) { snprintf(err, cap, "out of memory"); return -1; }
    }
    return 0;
}

/* ---- training in device memory ----------------------------------------- */

/* A constant's device buffer, uploaded by way of its first reader if it is not there yet */
static CuPtr constant_on_device(CudaSession *s, const Value *v, char *err, size_t cap)
{
    if (s->weights[v->id].ptr) return s->weights[v->id].ptr;
    for (int i = 0; i < s->g->n_nodes; i++)
        for (int j = 0; j < s->g->nodes[i]->n_in; j++)
            if (s->g->nodes[i]->in[j] == v) return weight(s, s->g->nodes[i], j, err, cap);
    snprintf(err, cap, "parameter '%s' is read by no node", v->name);
    return 0;
}

int cuda_session_train(CudaSession *s, const CudaTrainSpec *spec, char *err, size_t cap)
{
    if (spec->n_params < 1 || spec->grad_first < 0 || spec->grad_first + spec->n_params > s->g->n_outputs) {
        snprintf(err, cap, "training: %d parameters with gradients from output %d, of %d outputs", spec->n_params, spec->grad_first,
                 s->g->n_outputs);
        return -1;
    }
    s->train = *spec;
    if (!(s->moments = calloc((size_t)spec->n_params, sizeof *s->moments))) { snprintf(err, cap, "out of memory"); return -1; }
    if (s->cu->mem_alloc(&s->ctl, CTL_COUNT * sizeof(double))) { snprintf(err, cap, "device allocation failed"); return -1; }
    for (int i = 0; i < spec->n_params; i++) {
        const Value *p = spec->params[i];
        if (!p->konst || p->dtype != DT_F32 || !constant_on_device(s, p, err, cap)) {
            if (!err[0] || p->konst) snprintf(err, cap, "parameter '%s' is not an f32 constant on the device", p->name);
            return -1;
        }
        if (s->weights[p->id].bytes != p->konst->nbytes) { snprintf(err, cap, "parameter '%s' is kept in another layout", p->name); return -1; }
        size_t b = p->konst->nbytes;
        if (s->cu->mem_alloc(&s->moments[i], b ? 3 * b : 8) ||
            (b && cuda_zero(s->moments[i], 2 * (int64_t)(b / sizeof(float)), s->stream, err, cap)) ||
            (b && cuda_swa(s->moments[i] + 2 * b, s->weights[p->id].ptr, (int64_t)(b / sizeof(float)), 1.0, s->stream, err, cap))) {
            snprintf(err, cap, "device allocation for parameter '%s''s moments failed", p->name);
            return -1;
        }
    }
    return s->cu->stream_sync(s->stream) ? (snprintf(err, cap, "the device failed"), -1) : 0;
}

/* Before a training run: the step's scalars into the control block, as
 * the host derives them from the learning rate and the step's number */
static int write_step_scalars(CudaSession *s, char *err, size_t cap)
{
    const CudaTrainStep *st = s->step;
    const CudaTrainSpec *t = &s->train;
    double bc1 = 1 - pow(t->beta1, (double)st->step), bc2 = 1 - pow(t->beta2, (double)st->step);
    double host[CTL_SUM_SQUARES] = {st->lr / bc1, sqrt(bc2), 1 - st->lr * t->weight_decay, st->max_norm, st->loss_scale > 0 ? st->loss_scale : 1};
    if (s->cu->h2d(s->ctl, host, sizeof host)) { snprintf(err, cap, "writing the step's scalars to the device failed"); return -1; }
    return 0;
}

/* The device buffer of graph output i (a view's: its root's) */
static CuPtr output_on_device(const CudaSession *s, int i)
{
    const Value *v = s->g->outputs[i];
    return s->slots[v->id].dev ? s->slots[v->id].dev : s->slots[view_root(v)->id].dev;
}

/* The update on the stream: the sum of the gradients' squares, the scale
 * and skip decision from it, AdamW on every parameter; nothing on the host
 * reads anything in between, so it can be recorded */
static int queue_update(CudaSession *s, const CuPtr *grads, const int64_t *numel, char *err, size_t cap)
{
    const CudaTrainSpec *t = &s->train;
    CuPtr sum = s->ctl + CTL_SUM_SQUARES * sizeof(double), loss = s->step->check_loss ? output_on_device(s, 0) : 0;
    if (cuda_zero(sum, 2, s->stream, err, cap)) return -1;
    for (int i = 0; i < t->n_params; i++)
        if (cuda_sum_squares(grads[i], numel[i], sum, s->stream, err, cap)) return -1;
    if (cuda_update_scale(s->ctl, loss, s->stream, err, cap)) return -1;
    for (int i = 0; i < t->n_params; i++) {
        CuPtr w = s->weights[t->params[i]->id].ptr, m = s->moments[i], v = m + (CuPtr)(numel[i] * (int64_t)sizeof(float));
        if (numel[i] && cuda_adamw(w, m, v, grads[i], numel[i], s->ctl, t->decay[i], (float)t->beta1, (float)t->beta2, (float)t->eps, s->stream,
                                   err, cap))
            return -1;
    }
    return 0;
}

/* After the backward pass: the ranks' mean of the gradients (where there
 * are ranks), then the update, replayed from its recording once the step's
 * graph is recorded (the buffers are the same from then on) */
static int run_update(CudaSession *s, char *err, size_t cap)
{
    const CudaTrainSpec *t = &s->train;
    CuPtr grads[t->n_params];
    int64_t numel[t->n_params];
    for (int i = 0; i < t->n_params; i++) {
        grads[i] = output_on_device(s, t->grad_first + i);
        numel[i] = (int64_t)(t->params[i]->konst->nbytes / sizeof(float));
        if (!grads[i]) { snprintf(err, cap, "the gradient '%s' is not on the device", s->g->outputs[t->grad_first + i]->name); return -1; }
    }
    if (s->step->check_loss && !output_on_device(s, 0)) { snprintf(err, cap, "the loss is not on the device"); return -1; }
    if (s->step->reduce) { /* the backward pass is done once the stream is; then the ranks' mean, in place */
        if (s->cu->stream_sync(s->stream)) { snprintf(err, cap, "the device failed"); return -1; }
        if (s->step->reduce(s->step->reduce_ctx, grads, numel, t->n_params, err, cap)) return -1;
    }
    if (s->graph && !s->update_graph && !s->cu->begin_capture(s->stream, VCLIP_CU_CAPTURE_THREAD_LOCAL)) {
        CuGraph graph = NULL;
        int rc = queue_update(s, grads, numel, err, cap);
        if (s->cu->end_capture(s->stream, &graph) || rc || s->cu->graph_instantiate(&s->update_graph, graph, 0)) {
            if (!rc) snprintf(err, cap, "recording the update's CUDA graph failed");
            if (graph) s->cu->graph_destroy(graph);
            s->update_graph = NULL;
            return -1;
        }
        s->cu->graph_destroy(graph);
    }
    if (!s->update_graph) return queue_update(s, grads, numel, err, cap);
    if (s->cu->graph_launch(s->update_graph, s->stream)) { snprintf(err, cap, "CUDA graph launch failed (the update)"); return -1; }
    s->stats.update_replays++;
    return 0;
}

/* Once the stream is done: what the device decided (the logged scalars) */
static int read_update(CudaSession *s, char *err, size_t cap)
{
    double got[CTL_COUNT - CTL_SUM_SQUARES];
    if (s->cu->stream_sync(s->stream) || s->cu->d2h(got, s->ctl + CTL_SUM_SQUARES * sizeof(double), sizeof got)) {
        snprintf(err, cap, "reading the gradient norm failed");
        return -1;
    }
    s->step->norm = sqrt(got[0]);
    s->step->applied = got[CTL_APPLIED - CTL_SUM_SQUARES] != 0;
    return 0;
}

int cuda_session_train_run(CudaSession *s, Tensor *const *inputs, Tensor **outputs, CudaTrainStep *step, char *err, size_t cap)
{
    if (!s->moments) { snprintf(err, cap, "cuda_session_train was not called"); return -1; }
    s->step = step;
    int rc = cuda_session_run(s, inputs, outputs, err, cap);
    s->step = NULL;
    return rc;
}

int cuda_session_train_swa(CudaSession *s, double weight, char *err, size_t cap)
{
    const CudaTrainSpec *t = &s->train;
    if (!s->moments) { snprintf(err, cap, "cuda_session_train was not called"); return -1; }
    for (int i = 0; i < t->n_params; i++) {
        size_t b = t->params[i]->konst->nbytes;
        if (b && cuda_swa(s->moments[i] + 2 * b, s->weights[t->params[i]->id].ptr, (int64_t)(b / sizeof(float)), weight, s->stream, err, cap))
            return -1;
    }
    return s->cu->stream_sync(s->stream) ? (snprintf(err, cap, "the device failed"), -1) : 0;
}

int cuda_session_train_sync(CudaSession *s, Tensor *const *m, Tensor *const *v, Tensor *const *swa, int to_host, char *err, size_t cap)
{
    const CudaTrainSpec *t = &s->train;
    for (int i = 0; i < t->n_params; i++) {
        Tensor *p = t->params[i]->konst;
        CuPtr w = s->weights[t->params[i]->id].ptr, mom = s->moments[i];
        size_t b = p->nbytes;
        Tensor *host[4] = {p, m ? m[i] : NULL, v ? v[i] : NULL, swa ? swa[i] : NULL};
        for (int k = 0; k < 4; k++) {
            CuPtr d = k == 0 ? w : mom + (size_t)(k - 1) * b; /* m, v, SWA follow one another */
            if (!host[k] || !b) continue;
            if (host[k]->nbytes != b) { snprintf(err, cap, "parameter '%s': host and device sizes differ", t->params[i]->name); return -1; }
            if (to_host ? s->cu->d2h(host[k]->data, d, b) : s->cu->h2d(d, host[k]->data, b)) {
                snprintf(err, cap, "parameter '%s': copy %s the device failed", t->params[i]->name, to_host ? "from" : "to");
                return -1;
            }
        }
    }
    return 0;
}

/* After the graph's nodes: a training run's update, then the outputs to
 * the host and what the update decided */
static int finish_run(CudaSession *s, Tensor **outputs, char *err, size_t cap)
{
    if (s->step && run_update(s, err, cap)) return -1;
    if (outputs_to_host(s, outputs, err, cap)) return -1;
    return s->step ? read_update(s, err, cap) : 0;
}

static void clear_slots(CudaSession *s)
{
    for (int v = 0; v < s->g->n_values; v++) {
        drop_host(s, s->g->values[v]);
        memset(&s->slots[v], 0, sizeof s->slots[v]);
    }
}

/* The caller's hook, once the run's work is queued */
static int while_running(CudaSession *s, char *err, size_t cap)
{
    return s->while_running ? s->while_running(s->while_running_ctx, err, cap) : 0;
}

void cuda_session_while_running(CudaSession *s, int (*fn)(void *ctx, char *err, size_t cap), void *ctx)
{
    s->while_running = fn;
    s->while_running_ctx = ctx;
}

int cuda_session_stage(CudaSession *s, Tensor *const *inputs, char *err, size_t cap)
{
    if (!s->stager && !(s->stager = cuda_stager_new(s->cu, s->g->n_inputs, err, cap))) return -1;
    return cuda_stager_put(s->stager, inputs, err, cap);
}

int cuda_session_run(CudaSession *s, Tensor *const *inputs, Tensor **outputs, char *err, size_t cap)
{
    Graph *g = s->g;
    int len = 0, rc = -1, capturing = 0;
    int64_t *sig = exec_input_signature(g, inputs, &len);
    if (!sig) { snprintf(err, cap, "out of memory"); return -1; }
    int planned = s->arena && s->sig_len == len && !memcmp(s->sig, sig, sizeof(int64_t) * (size_t)len);
    if (!planned) {
        forget_plan(s);
        memset(s->bytes, 0, sizeof(size_t) * (size_t)(g->n_values ? g->n_values : 1));
    }
    for (int i = 0; i < g->n_inputs; i++)
        if (inputs[i]->dtype != g->inputs[i]->dtype) {
            snprintf(err, cap, "input '%s': expected dtype %s, got %s", g->inputs[i]->name, dtype_name(g->inputs[i]->dtype),
                     dtype_name(inputs[i]->dtype));
            free(sig);
            return -1;
        }
    clear_slots(s);
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v]->konst) {
            Slot *sl = &s->slots[v];
            sl->host = g->values[v]->konst;
            sl->rank = sl->host->rank;
            memcpy(sl->dims, sl->host->dims, sizeof sl->dims);
        }
    for (int i = 0; i < g->n_inputs; i++) {
        Slot *sl = &s->slots[g->inputs[i]->id];
        sl->host = inputs[i]; /* borrowed, not copied: a batch of video is tens of MB */
        sl->borrowed = 1;
        sl->rank = inputs[i]->rank;
        memcpy(sl->dims, inputs[i]->dims, sizeof sl->dims);
    }
    /* the inputs go to the device buffers a recorded graph reads: from a
     * staged batch, copied ahead, or from the host now */
    for (int i = 0; i < g->n_inputs; i++)
        if (!s->input_dev[i] && s->cu->mem_alloc(&s->input_dev[i], inputs[i]->nbytes ? inputs[i]->nbytes : 4)) {
            s->input_dev[i] = 0;
            snprintf(err, cap, "input '%s': device allocation failed", g->inputs[i]->name);
            goto done;
        }
    if (s->stager && cuda_stager_take(s->stager, inputs, s->input_dev, s->stream, s->taken, err, cap)) goto done;
    for (int i = 0; i < g->n_inputs; i++) {
        int taken = s->stager && s->taken[i];
        s->stats.staged_inputs += taken;
        if (!taken && inputs[i]->nbytes && s->cu->h2d(s->input_dev[i], inputs[i]->data, inputs[i]->nbytes)) {
            snprintf(err, cap, "input '%s': copy to the device failed", g->inputs[i]->name);
            goto done;
        }
        s->slots[g->inputs[i]->id].dev = s->input_dev[i];
    }
    if (s->step && write_step_scalars(s, err, cap)) goto done;
    if (planned && s->graph) { /* replay: one launch */
        if (s->cu->graph_launch(s->graph, s->stream)) { snprintf(err, cap, "CUDA graph launch failed"); goto done; }
        for (int i = 0; i < g->n_outputs; i++) { /* where the recording left the outputs */
            Slot *sl = &s->slots[g->outputs[i]->id];
            drop_host(s, g->outputs[i]);
            sl->dev = s->arena + s->plan.offset[view_root(g->outputs[i])->id];
            sl->rank = s->out_shape[i].rank;
            memcpy(sl->dims, s->out_shape[i].dims, sizeof sl->dims);
        }
        if (while_running(s, err, cap)) goto done;
        rc = finish_run(s, outputs, err, cap);
        if (!rc) s->stats.graph_replays++;
        goto done;
    }
    if (planned && s->planned_runs >= 1 && s->capturable) {
        if (s->cu->begin_capture(s->stream, VCLIP_CU_CAPTURE_THREAD_LOCAL)) snprintf(s->stats.graph_note, sizeof s->stats.graph_note, "stream capture refused");
        else capturing = s->capturing = 1;
    }
    s->stats.device_nodes = s->stats.host_nodes = s->stats.shape_nodes = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const Node *n = g->nodes[i];
        s->kind[i] = classify(s, n);
        int r = s->kind[i] == K_HOST    ? 1
                : s->kind[i] == K_SHAPE ? (n->op == OP_SHAPE ? run_shape(s, i, err, cap) : run_host(s, i, err, cap))
                : s->kind[i] == K_VIEW  ? run_view(s, i, err, cap)
                                        : run_device(s, i, planned, capturing, err, cap);
        if (r > 0) { /* the host, after all (while recording: only nodes that do not read the inputs' values) */
            s->kind[i] = K_HOST;
            r = run_host(s, i, err, cap);
        }
        if (r) goto done;
        if (s->kind[i] == K_HOST) s->stats.host_nodes++;
        else if (s->kind[i] == K_SHAPE) s->stats.shape_nodes++;
        else if (s->kind[i] != K_VIEW) s->stats.device_nodes++;
    }
    describe_host_ops(s);
    if (capturing) {
        CuGraph graph = NULL;
        capturing = s->capturing = 0;
        if (s->cu->end_capture(s->stream, &graph) || s->cu->graph_instantiate(&s->graph, graph, 0)) {
            snprintf(err, cap, "recording the CUDA graph failed");
            if (graph) s->cu->graph_destroy(graph);
            s->graph = NULL;
            goto done;
        }
        s->cu->graph_destroy(graph);
        if (s->cu->graph_launch(s->graph, s->stream)) { snprintf(err, cap, "CUDA graph launch failed"); goto done; }
        s->stats.graph_replays++;
    }
    for (int i = 0; i < g->n_outputs; i++) s->out_shape[i] = s->slots[g->outputs[i]->id];
    if (while_running(s, err, cap) || finish_run(s, outputs, err, cap)) goto done;
    if (!planned) { /* plan the arena from this run's sizes */
        s->sig = sig;
        s->sig_len = len;
        sig = NULL;
        if (plan_memory(g, s->bytes, 1, &s->plan) == 0 && s->plan.arena_bytes && !s->cu->mem_alloc(&s->arena, s->plan.arena_bytes))
            s->stats.arena_bytes = s->plan.arena_bytes;
        else { s->arena = 0; memory_plan_free(&s->plan); }
        decide_capture(s);
    } else s->planned_runs++;
    rc = 0;
done:
    if (capturing) { /* abandon a broken recording */
        CuGraph graph = NULL;
        s->capturing = 0;
        s->cu->end_capture(s->stream, &graph);
        if (graph) s->cu->graph_destroy(graph);
    }
    if (rc) { s->cu->stream_sync(s->stream); forget_plan(s); }
    else s->cu->stream_sync(s->stream);
    free_eager(s);
    clear_slots(s);
    free(sig);
    return rc;
}

CudaSession *cuda_session_new(Graph *g, const CudaOptions *opt, char *err, size_t cap)
{
    const CudaApi *cu = cuda_api(err, cap);
    if (!cu) return NULL;
    char why[256];
    if (!cublaslt_available(why, sizeof why)) { snprintf(err, cap, "%s", why); return NULL; }
    CudaSession *s = calloc(1, sizeof *s);
    size_t nv = (size_t)(g->n_values ? g->n_values : 1), nn = (size_t)(g->n_nodes ? g->n_nodes : 1);
    if (!s) { snprintf(err, cap, "out of memory"); return NULL; }
    s->g = g;
    s->cu = cu;
    if (opt) s->opt = *opt;
    s->slots = calloc(nv, sizeof *s->slots);
    s->weights = calloc(nv, sizeof *s->weights);
    s->bytes = calloc(nv, sizeof *s->bytes);
    s->kind = calloc(nn, sizeof *s->kind);
    s->dynamic = calloc(nv, 1);
    s->nodes = calloc(nn, sizeof *s->nodes);
    s->out_shape = calloc((size_t)(g->n_outputs ? g->n_outputs : 1), sizeof *s->out_shape);
    s->input_dev = calloc((size_t)(g->n_inputs ? g->n_inputs : 1), sizeof *s->input_dev);
    s->taken = calloc((size_t)(g->n_inputs ? g->n_inputs : 1), sizeof *s->taken);
    if (!s->slots || !s->weights || !s->bytes || !s->kind || !s->dynamic || !s->nodes || !s->out_shape || !s->input_dev || !s->taken) { cuda_session_free(s); snprintf(err, cap, "out of memory"); return NULL; }
    mark_dynamic(s);
    if (cu->stream_create(&s->stream, VCLIP_CU_STREAM_NON_BLOCKING)) { cuda_session_free(s); snprintf(err, cap, "cannot create a CUDA stream"); return NULL; }
    return s;
}

void cuda_session_free(CudaSession *s)
{
    if (!s) return;
    if (s->cu) {
        if (s->stream) s->cu->stream_sync(s->stream);
        cuda_stager_free(s->stager);
        if (s->nodes && s->input_dev) forget_plan(s);
        free_eager(s);
        for (int v = 0; s->weights && v < s->g->n_values; v++) if (s->weights[v].ptr) s->cu->mem_free(s->weights[v].ptr);
        for (int i = 0; s->moments && i < s->train.n_params; i++) if (s->moments[i]) s->cu->mem_free(s->moments[i]);
        if (s->ctl) s->cu->mem_free(s->ctl);
        for (int i = 0; s->nodes && i < s->g->n_nodes; i++) {
            if (s->nodes[i].params) s->cu->mem_free(s->nodes[i].params);
            if (s->nodes[i].temp) s->cu->mem_free(s->nodes[i].temp);
            free(s->nodes[i].staging);
        }
        if (s->stream) s->cu->stream_destroy(s->stream);
    }
    if (s->slots) clear_slots(s);
    free(s->slots);
    free(s->weights);
    free(s->bytes);
    free(s->kind);
    free(s->dynamic);
    free(s->nodes);
    free(s->out_shape);
    free(s->input_dev);
    free(s->taken);
    free(s->eager);
    free(s->sig);
    free(s->moments);
    free(s);
}

void cuda_session_stats(const CudaSession *s, CudaStats *st) { *st = s->stats; }
