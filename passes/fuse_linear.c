/* fuse_linear.c — MatMul(x, W) + b with constant W [K, N] and b [N], in
 * either Add order  ->  ai.vclip.Linear(x, W, b): one GEMM that starts from
 * the bias instead of a GEMM and a pass over its output. */
#include <stdio.h>
#include <stdlib.h>
#include "passes.h"
#include "rewrite.h"

int pass_fuse_linear(Graph *g, char *err, size_t cap)
{
    int changed = 0, n = g->n_nodes;
    for (int i = 0; i < n; i++) {
        Node *add = g->nodes[i];
        if (add->op != OP_ADD || add->n_in != 2) continue;
        for (int side = 0; side < 2; side++) {
            Node *mm = producer_is(add->in[side], OP_MATMUL);
            Value *b = add->in[1 - side];
            Value *w = mm ? mm->in[1] : NULL;
            if (!mm || !w->konst || w->konst->rank != 2 || w->dtype != DT_F32 || !b->konst || b->konst->rank != 1 ||
                b->dtype != DT_F32 || b->konst->dims[0] != w->konst->dims[1] || mm->in[0]->shape.rank < 1)
                continue;
            Value *in[3] = {mm->in[0], w, b};
            if (!replace_with_node(g, add->out[0], OP_LINEAR, add->name, 3, in)) { snprintf(err, cap, "out of memory"); return -1; }
            changed++;
            break;
        }
    }
    return graph_topo_sort(g) ? (snprintf(err, cap, "fuse-linear: cycle"), -1) : changed;
}
