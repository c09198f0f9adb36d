/* lower_to_standard_ops.c — expands our ai.vclip ops back into standard ONNX
 * ops, so that any ONNX runtime can execute (and check) a compiled graph:
 *   QuickGelu(x) = x * Sigmoid(x * 1.702)
 *   Gelu(x)      = (x * (Erf(x / sqrt 2) + 1)) * 0.5
 *   Linear(x, W, b) = MatMul(x, W) + b
 *   Attention: see lower_attention.c
 * Used by `vclipc compile --export-standard-ops`. */
#include <math.h>
#include <stdio.h>
#include "passes.h"
#include "rewrite.h"

static Value *bin(Graph *g, int op, const char *base, Value *a, Value *b)
{
    Value *in[2] = {a, b};
    return (a && b) ? append_node(g, op, base, 2, in) : NULL;
}

static Value *lower(Graph *g, Node *n)
{
    Value *x = n->in[0];
    const char *nm = n->name;
    switch (n->op) {
    case OP_QUICK_GELU: {
        Value *t = bin(g, OP_MUL, nm, x, scalar_const(g, "quick_gelu_alpha", 1.702f));
        Value *s = t ? append_node(g, OP_SIGMOID, nm, 1, &t) : NULL;
        return bin(g, OP_MUL, nm, x, s);
    }
    case OP_GELU: {
        Value *d = bin(g, OP_DIV, nm, x, scalar_const(g, "gelu_sqrt2", (float)sqrt(2.0)));
        Value *e = d ? append_node(g, OP_ERF, nm, 1, &d) : NULL;
        Value *a = bin(g, OP_ADD, nm, e, scalar_const(g, "gelu_one", 1.0f));
        return bin(g, OP_MUL, nm, bin(g, OP_MUL, nm, x, a), scalar_const(g, "gelu_half", 0.5f));
    }
    case OP_ATTENTION:
        return lower_attention(g, n);
    case OP_LINEAR: {
        Value *mm = bin(g, OP_MATMUL, nm, x, n->in[1]);
        return (n->n_in > 2 && n->in[2]) ? bin(g, OP_ADD, nm, mm, n->in[2]) : mm;
    }
    default:
        return NULL;
    }
}

int pass_lower_to_standard_ops(Graph *g, char *err, size_t cap)
{
    int changed = 0, n = g->n_nodes;
    for (int i = 0; i < n; i++) {
        Node *node = g->nodes[i];
        if (!*op_table[node->op].domain) continue;
        Value *y = lower(g, node);
        if (!y) { snprintf(err, cap, "node '%s': cannot lower %s.%s", node->name, op_table[node->op].domain, op_name(node->op)); return -1; }
        graph_replace_uses(g, node->out[0], y);
        node->op = -1;
        changed++;
    }
    graph_remove_dead(g);
    return graph_topo_sort(g) ? (snprintf(err, cap, "lower-to-standard-ops: cycle"), -1) : changed;
}
