/* exec.h — running graphs on the CPU.
 *
 * exec_node() runs one node on concrete tensors (used by the session and by
 * constant folding).  A Session runs a whole graph: it binds the inputs
 * (checking dtypes and dims, symbolic dims consistently), runs the nodes in
 * order, and frees each intermediate after its last use. */
#ifndef VCLIP_EXEC_H
#define VCLIP_EXEC_H

#include "../ir/ir.h"
#include "../ir/ops.h"

typedef struct {
    int threads;        /* BLAS threads; 0 = library default */
    int reference_only; /* use only the reference kernels (the oracle) */
    size_t max_tensor_bytes; /* refuse larger intermediates; 0 = 1/2 of RAM */
    /* Output buffers from a caller's arena: memory for value v, or NULL to allocate. */
    void *(*alloc)(void *ctx, const Value *v, size_t bytes);
    void *alloc_ctx;
    /* Sessions: outputs live in the planned arena too and stay valid only
     * until the next run (the trainer reads its gradients before that). */
    int outputs_in_arena;
} ExecOptions;

/* Runs node n on ins (n->n_in entries, NULL for absent) into outs (n->n_out
 * entries, allocated here). 0, or -1 with a message naming the node. */
int exec_node(const Graph *g, const Node *n, const Tensor *const *ins, Tensor **outs,
              const ExecOptions *opt, char *err, size_t cap);

/* The output shapes of node n on concrete inputs (the shape rules of
 * ir/infer_*.c): ic->out[k] once it returns 0.  vi: 24 entries the caller
 * provides (16 inputs, 8 outputs).  -1 with a message naming the node. */
int exec_infer(const Graph *g, const Node *n, const Tensor *const *ins, InferCtx *ic, ValueInfo *vi, char *err, size_t cap);

typedef struct Session Session;
Session *session_new(Graph *g, const ExecOptions *opt, char *err, size_t cap);
void session_free(Session *s);
/* inputs[i] matches g->inputs[i]; outputs[i] receives g->outputs[i] (caller frees). */
int session_run(Session *s, Tensor *const *inputs, Tensor **outputs, char *err, size_t cap);
/* Peak bytes of live intermediates in the last run. */
size_t session_peak_bytes(const Session *s);
/* The memory plan's arena (0 before the first run, or with VCLIP_NO_ARENA=1):
 * after a run, intermediates of later runs with the same input shapes live at
 * planned offsets in one buffer of this size (passes/plan_memory.c). */
size_t session_arena_bytes(const Session *s);

void exec_set_threads(int n);
/* The inputs' ranks and dims in one array (*len entries, malloc'd): what a
 * memory plan is valid for. */
int64_t *exec_input_signature(const Graph *g, Tensor *const *inputs, int *len);

#endif
