/* bf16_activations.c — stores in bf16 the activations that only readers
 * which round them to bf16 anyway read: Linears on bf16 weights (their X)
 * and bf16 Attentions (q, k, v).  The node that produces such a value may
 * as well store it rounded (bf16_output, ir/ops.h) and the readers take it
 * as it is: the same products, half the bytes written and read, and the CPU
 * GEMM reads the rows without rounding them, in place past one row block,
 * instead of packing them (runtime/cpu/gemm.c).  The producers that can: a
 * Linear on bf16 weights (fc1 for fc2, the QKV projection for the
 * attention), a LayerNormalization with Y alone (ln_1 for the QKV
 * projection, ln_2 for fc1) and a bf16 Attention (for the output
 * projection, through the Reshape that flattens its rows).  Every reader
 * must be one of those, directly or through Reshapes (a Linear at an even
 * depth: k pairs are words), and the value no graph output; so every output
 * is bit-identical to the graph's without the pass.  Run after
 * cast-linear-weights-bf16 and mark-bf16-gemms, on the CPU's bf16 path. */
#include <stdio.h>
#include <stdlib.h>
#include "passes.h"
#include "rewrite.h"

/* A Linear over bf16 weights in k pairs (cast-linear-weights-bf16's) */
static int bf16_linear(const Node *n)
{
    const Value *w = n->n_in > 1 ? n->in[1] : NULL;
    return n->op == OP_LINEAR && n->in[0] && w && w->dtype == DT_BF16 && w->konst; /* bf16: packed in pairs (ir/ops.h) */
}

/* Can n store its output in bf16 (and does it not yet)? */
static int bf16_producer(const Node *n)
{
    if (n->n_out != 1 || !n->out[0] || n->out[0]->dtype != DT_F32) return 0;
    if (n->op == OP_LAYER_NORM) return n->in[0] && n->in[0]->dtype == DT_F32;
    if (n->op == OP_ATTENTION) return node_attr_i(n, "bf16", 0) != 0;
    return bf16_linear(n);
}

/* Does every reader round v to bf16 before it multiplies it: a bf16
 * Linear's X of even depth, a bf16 Attention's q, k or v, directly or
 * through Reshapes (at most `depth` deep)?  0 also for a graph output and
 * for a value nothing reads. */
static int read_in_bf16(const Graph *g, const Value *v, int depth)
{
    if (v->is_output || depth < 0) return 0;
    int readers = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const Node *n = g->nodes[i];
        if (n->op < 0) continue;
        for (int j = 0; j < n->n_in; j++) {
            if (n->in[j] != v) continue;
            readers++;
            if (n->op == OP_RESHAPE && j == 0 && n->n_out == 1 && n->out[0] && read_in_bf16(g, n->out[0], depth - 1)) continue;
            if (bf16_linear(n) && j == 0 && node_attr_i(n, "packed_k", 1) % 2 == 0) continue;
            if (n->op == OP_ATTENTION && j < 3 && node_attr_i(n, "bf16", 0)) continue;
            return 0;
        }
    }
    return readers > 0;
}

/* v's dtype after n changed: every node that reads it, through Reshapes */
static int reinfer_readers(Graph *g, const Value *v, char *msg, size_t cap)
{
    for (int i = 0; i < g->n_nodes; i++) {
        Node *n = g->nodes[i];
        if (n->op < 0) continue;
        for (int j = 0; j < n->n_in; j++)
            if (n->in[j] == v) {
                if (infer_node(g, n, msg, cap)) return -1;
                if (n->op == OP_RESHAPE && reinfer_readers(g, n->out[0], msg, cap)) return -1;
                break;
            }
    }
    return 0;
}

int pass_bf16_activations(Graph *g, char *err, size_t cap)
{
    int changed = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        Node *n = g->nodes[i];
        if (n->op < 0 || !bf16_producer(n) || !read_in_bf16(g, n->out[0], 4)) continue;
        Attr *a = node_add_attr(n, "bf16_output", ATTR_INT);
        if (!a) { snprintf(err, cap, "bf16-activations: out of memory"); return -1; }
        a->i = 1;
        char msg[IR_ERR_CAP];
        if (infer_node(g, n, msg, sizeof msg) || reinfer_readers(g, n->out[0], msg, sizeof msg)) {
            snprintf(err, cap, "bf16-activations: node '%s' or a reader: %s", n->name, msg);
            return -1;
        }
        changed++;
    }
    return changed;
}
