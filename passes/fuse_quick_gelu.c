/* fuse_quick_gelu.c — x * Sigmoid(1.702 * x)  ->  ai.vclip.QuickGelu(x)
 * (OpenAI CLIP's activation), in either operand order. */
#include <math.h>
#include <stdio.h>
#include "passes.h"
#include "rewrite.h"

static Value *match(Node *mul)
{
    for (int side = 0; side < 2; side++) {
        Node *sig = producer_is(mul->in[side], OP_SIGMOID);
        Value *x = mul->in[1 - side];
        Node *scale = sig ? producer_is(sig->in[0], OP_MUL) : NULL;
        double c;
        if (scale && other_input(scale, x) && const_scalar(other_input(scale, x), &c) && fabs(c - 1.702) < 1e-3)
            return x;
    }
    return NULL;
}

int pass_fuse_quick_gelu(Graph *g, char *err, size_t cap)
{
    int changed = 0, n = g->n_nodes;
    for (int i = 0; i < n; i++) {
        Node *mul = g->nodes[i];
        Value *x = mul->op == OP_MUL && mul->n_in == 2 ? match(mul) : NULL;
        if (!x || x->dtype != DT_F32) continue;
        if (!replace_with_node(g, mul->out[0], OP_QUICK_GELU, mul->name, 1, &x)) { snprintf(err, cap, "out of memory"); return -1; }
        changed++;
    }
    return graph_topo_sort(g) ? (snprintf(err, cap, "fuse-quick-gelu: cycle"), -1) : changed;
}
