/* exec_node.h — one node on concrete tensors on the CPU: what sessions
 * (session.h) run for every node, and what constant folding and attention
 * probing in passes/ run on single nodes (they never run a session). */
#ifndef VCLIP_EXEC_NODE_H
#define VCLIP_EXEC_NODE_H

#include "../../ir/ir.h"
#include "../../ir/ops.h"

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

void exec_set_threads(int n);

#endif
