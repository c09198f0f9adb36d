/* pack_linear_weights.c — lays constant Linear weights out for the CPU GEMM
 * once, at compile time, instead of on every call: W [K, N] becomes
 * [ceil(N / 32), K, 32] column panels (ir/ops.h, LinearParams) and the
 * original is dropped, so memory holds one copy.  Weights being trained,
 * graph inputs, and weights that any other node reads stay as they are. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "passes.h"
#include "rewrite.h"

static int packable(const Value *w)
{
    return w && w->konst && !w->producer && !w->trainable && !w->is_input && !w->is_output && w->dtype == DT_F32 &&
           w->konst->rank == 2;
}

/* Every reader of w is a Linear, reading it as its weight. */
static int only_weight_of_linears(const Graph *g, const Value *w)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const Node *n = g->nodes[i];
        for (int j = 0; j < n->n_in; j++) {
            if (n->in[j] != w) continue;
            if (j != 1 || n->op != OP_LINEAR) return 0;
        }
    }
    return 1;
}

static Value *packed_copy(Graph *g, const Value *w)
{
    const Tensor *t = w->konst;
    int64_t K = t->dims[0], N = t->dims[1];
    int64_t d[3] = {(N + LINEAR_PANEL - 1) / LINEAR_PANEL, K, LINEAR_PANEL};
    Tensor *p = tensor_new(DT_F32, 3, d);
    if (!p) return NULL;
    const float *src = t->data;
    float *dst = p->data;
    for (int64_t q = 0; q < d[0]; q++) /* the destination in order, a panel's row at a time */
        for (int64_t k = 0; k < K; k++) {
            int64_t n0 = q * LINEAR_PANEL, cols = N - n0 < LINEAR_PANEL ? N - n0 : LINEAR_PANEL;
            float *row = dst + (q * K + k) * LINEAR_PANEL;
            memcpy(row, src + k * N + n0, sizeof(float) * (size_t)cols);
            for (int64_t j = cols; j < LINEAR_PANEL; j++) row[j] = 0.0f;
        }
    return new_const(g, w->name, "_packed", p);
}

int pass_pack_linear_weights(Graph *g, char *err, size_t cap)
{
    int changed = 0, n = g->n_nodes;
    for (int i = 0; i < n; i++) {
        Node *node = g->nodes[i];
        if (node->op != OP_LINEAR || !packable(node->in[1]) || !only_weight_of_linears(g, node->in[1])) continue;
        Value *w = node->in[1], *packed = packed_copy(g, w);
        if (!packed) { snprintf(err, cap, "pack-linear-weights: out of memory"); return -1; }
        int64_t N = w->konst->dims[1];
        /* every reader at once (a weight may be shared), then the original goes */
        for (int j = i; j < n; j++) {
            Node *r = g->nodes[j];
            if (r->op != OP_LINEAR || r->n_in < 2 || r->in[1] != w) continue;
            Attr *a = node_add_attr(r, "packed_n", ATTR_INT);
            if (!a) { snprintf(err, cap, "pack-linear-weights: out of memory"); return -1; }
            a->i = N;
            r->in[1] = packed;
            char msg[IR_ERR_CAP];
            if (infer_node(g, r, msg, sizeof msg)) { snprintf(err, cap, "pack-linear-weights: node '%s': %s", r->name, msg); return -1; }
            changed++;
        }
        graph_release_pages(g, w->konst);
        tensor_free(w->konst);
        w->konst = NULL;
    }
    /* the unpacked weights are read by nothing now */
    return pass_eliminate_dead_code(g, err, cap) < 0 ? -1 : changed;
}
