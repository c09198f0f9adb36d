/* fold_reshape_targets.c — shape-subgraph folding with a symbolic batch.
 *
 * Exporters compute Reshape targets at run time (Shape -> Gather -> Concat)
 * even when only the batch dim varies.  When shape inference knows the target
 * symbolically, this pass writes it as a constant: a symbolic entry equal to
 * the input's dim at the same position becomes 0 ("copy"), and at most one
 * other symbolic entry becomes -1 ("infer").  The shape chains are then dead.
 */
#include <stdio.h>
#include <stdlib.h>
#include "passes.h"
#include "../ir/ops.h"

static int fold_one(Graph *g, Node *n, char *err, size_t cap)
{
    Value *x = n->in[0], *s = n->n_in > 1 ? n->in[1] : NULL;
    if (!s || s->konst || s->n_known < 0 || x->shape.rank < 0) return 0;
    if (node_attr_i(n, "allowzero", 0)) return 0;
    int64_t vals[IR_MAX_KNOWN];
    int infer = 0;
    for (int i = 0; i < s->n_known; i++) {
        Dim d = s->known[i];
        if (dim_is_const(d)) {
            vals[i] = d.n;
            if (d.n == -1) infer++;
            if (d.n == 0) return 0; /* a literal 0 would now mean "copy" too: leave as is */
        } else if (d.sym >= 0 && i < x->shape.rank && dim_equal(d, x->shape.d[i])) vals[i] = 0;
        else { vals[i] = -1; infer++; }
    }
    if (infer > 1) return 0;
    int64_t dims[1] = {s->n_known};
    Tensor *t = tensor_new(DT_I64, 1, dims);
    char *name = graph_unique_name(g, s->name);
    Value *c = name ? graph_new_value(g, name) : NULL;
    free(name);
    if (!t || !c) { tensor_free(t); snprintf(err, cap, "out of memory"); return -1; }
    for (int i = 0; i < s->n_known; i++) ((int64_t *)t->data)[i] = vals[i];
    value_set_const(c, t); /* its content is the literal 0/-1 target: nothing symbolic that could go stale */
    n->in[1] = c;
    return 1;
}

int pass_fold_reshape_targets(Graph *g, char *err, size_t cap)
{
    int changed = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i]->op != OP_RESHAPE) continue;
        int r = fold_one(g, g->nodes[i], err, cap);
        if (r < 0) return -1;
        changed += r;
    }
    return changed;
}
