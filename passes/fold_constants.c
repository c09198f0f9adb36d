/* fold_constants.c — evaluates every node whose inputs are all constant (with
 * the reference kernels), and every integer value whose content shape
 * inference already knows (Shape -> Gather -> Concat chains on static dims).
 * Outputs larger than FOLD_LIMIT bytes stay computed at run time. */
#include <stdio.h>
#include "passes.h"
#include "../ir/ops.h"
#include "../runtime/cpu/exec_node.h"

#define FOLD_LIMIT ((size_t)64 << 20)

static int known_is_const(const Value *v)
{
    if (v->n_known < 0 || (v->dtype != DT_I64 && v->dtype != DT_I32) || v->shape.rank > 1) return 0;
    if (shape_numel(&v->shape) != v->n_known) return 0;
    for (int i = 0; i < v->n_known; i++) if (!dim_is_const(v->known[i])) return 0;
    return 1;
}

static Tensor *tensor_from_known(const Value *v)
{
    int64_t dims[1] = {v->n_known};
    Tensor *t = tensor_new(v->dtype, v->shape.rank, dims);
    for (int i = 0; t && i < v->n_known; i++) {
        if (v->dtype == DT_I64) ((int64_t *)t->data)[i] = v->known[i].n;
        else ((int32_t *)t->data)[i] = (int32_t)v->known[i].n;
    }
    return t;
}

int pass_fold_constants(Graph *g, char *err, size_t cap)
{
    int changed = 0;
    ExecOptions opt = {.reference_only = 1, .max_tensor_bytes = FOLD_LIMIT};
    for (int i = 0; i < g->n_nodes; i++) {
        Node *n = g->nodes[i];
        if (n->op < 0) continue;
        /* integer outputs whose content is fully known */
        int all_known = n->n_out > 0;
        for (int j = 0; j < n->n_out; j++) if (!n->out[j] || !known_is_const(n->out[j])) all_known = 0;
        if (all_known) {
            for (int j = 0; j < n->n_out; j++) {
                Tensor *t = tensor_from_known(n->out[j]);
                if (!t) { snprintf(err, cap, "out of memory"); return -1; }
                value_set_const(n->out[j], t);
            }
            n->op = -1;
            changed++;
            continue;
        }
        int all_const = 1;
        for (int j = 0; j < n->n_in; j++) if (n->in[j] && !n->in[j]->konst) all_const = 0;
        if (!all_const) continue;
        const Tensor *ins[16] = {0};
        Tensor *outs[8] = {0};
        for (int j = 0; j < n->n_in && j < 16; j++) ins[j] = n->in[j] ? n->in[j]->konst : NULL;
        char msg[IR_ERR_CAP];
        if (exec_node(g, n, ins, outs, &opt, msg, sizeof msg)) continue; /* too big, or fails: leave it to run time */
        for (int j = 0; j < n->n_out; j++) if (n->out[j] && outs[j]) value_set_const(n->out[j], outs[j]); else tensor_free(outs[j]);
        n->op = -1;
        changed++;
    }
    graph_remove_dead(g);
    return changed;
}
