/* pack_linear_weights.c — lays constant Linear weights out for the CPU GEMM
 * once, at compile time, instead of on every call: W [K, N] becomes
 * [ceil(N / 32), K, 32] column panels (ir/ops.h, LinearParams) and the
 * original is dropped, so memory holds one copy.  A Gemm with a constant
 * B, a 1-D (or no) C, alpha = beta = 1 and no transA becomes such a Linear
 * too (transB folds into the packing).  Weights being trained, graph inputs,
 * and weights that any other node reads stay as they are. */
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

/* A Gemm computing x @ B (+ c) over a packable B. */
static int gemm_is_linear(const Node *n)
{
    if (n->op != OP_GEMM || n->n_in < 2 || !n->in[0] || n->in[0]->shape.rank != 2 || !packable(n->in[1])) return 0;
    if (node_attr_i(n, "transA", 0) || node_attr_f(n, "alpha", 1.0f) != 1.0f) return 0;
    const Value *c = n->n_in > 2 ? n->in[2] : NULL;
    int64_t N = node_attr_i(n, "transB", 0) ? n->in[1]->konst->dims[0] : n->in[1]->konst->dims[1];
    return !c || (node_attr_f(n, "beta", 1.0f) == 1.0f && c->dtype == DT_F32 && c->shape.rank == 1 && c->shape.d[0].n == N &&
                  c->shape.d[0].sym == DIM_CONST);
}

/* Every reader of w is a Linear (as its weight) or a Gemm that becomes one. */
static int only_weight_of_linears(const Graph *g, const Value *w)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const Node *n = g->nodes[i];
        for (int j = 0; j < n->n_in; j++) {
            if (n->in[j] != w) continue;
            if (j != 1 || !(n->op == OP_LINEAR || gemm_is_linear(n))) return 0;
        }
    }
    return 1;
}

static Value *packed_copy(Graph *g, const Value *w, int transposed)
{
    const Tensor *t = w->konst;
    int64_t K = transposed ? t->dims[1] : t->dims[0], N = transposed ? t->dims[0] : t->dims[1];
    int64_t d[3] = {(N + LINEAR_PANEL - 1) / LINEAR_PANEL, K, LINEAR_PANEL};
    Tensor *p = tensor_new(DT_F32, 3, d);
    char base[256];
    snprintf(base, sizeof base, "%.200s_packed", w->name);
    char *name = p ? graph_unique_name(g, base) : NULL;
    Value *v = name ? graph_new_value(g, name) : NULL;
    free(name);
    if (!v) { tensor_free(p); return NULL; }
    const float *src = t->data;
    float *dst = p->data;
    for (int64_t q = 0; q < d[0]; q++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < LINEAR_PANEL; j++) {
                int64_t n = q * LINEAR_PANEL + j;
                dst[(q * K + k) * LINEAR_PANEL + j] = n >= N ? 0.0f : transposed ? src[n * K + k] : src[k * N + n];
            }
    value_set_const(v, p);
    return v;
}

/* Linear or Gemm `node` reading `packed` (N columns) as a packed Linear. */
static int convert(Graph *g, Node *node, Value *packed, int64_t N, char *err, size_t cap)
{
    int gemm = node->op == OP_GEMM;
    Node *lin = node;
    if (gemm) {
        Value *in[3] = {node->in[0], packed, node->n_in > 2 ? node->in[2] : NULL};
        if (!(lin = new_node(g, OP_LINEAR, node->name, in[2] ? 3 : 2, in))) goto oom;
    }
    Attr *a = node_add_attr(lin, "packed_n", ATTR_INT);
    if (!a) goto oom;
    a->i = N;
    lin->in[1] = packed;
    char msg[IR_ERR_CAP];
    if (infer_node(g, lin, msg, sizeof msg)) {
        snprintf(err, cap, "pack-linear-weights: node '%s': %s", lin->name, msg);
        return -1;
    }
    if (gemm) {
        graph_replace_uses(g, node->out[0], lin->out[0]);
        node->op = -1;
    }
    return 0;
oom:
    snprintf(err, cap, "pack-linear-weights: out of memory");
    return -1;
}

static int transposed_b(const Node *n) { return n->op == OP_GEMM && node_attr_i(n, "transB", 0); }

static int reads(const Graph *g, const Value *v)
{
    for (int i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i]->n_in; j++)
            if (g->nodes[i]->op >= 0 && g->nodes[i]->in[j] == v) return 1;
    return 0;
}

int pass_pack_linear_weights(Graph *g, char *err, size_t cap)
{
    int changed = 0, n = g->n_nodes;
    for (int i = 0; i < n; i++) {
        Node *node = g->nodes[i];
        if (node->op < 0 || !((node->op == OP_LINEAR && packable(node->in[1])) || gemm_is_linear(node))) continue;
        Value *w = node->in[1];
        if (!only_weight_of_linears(g, w)) continue;
        int transposed = transposed_b(node);
        int64_t N = transposed ? w->konst->dims[0] : w->konst->dims[1];
        Value *packed = packed_copy(g, w, transposed);
        if (!packed) { snprintf(err, cap, "pack-linear-weights: out of memory"); return -1; }
        /* every reader at once (a weight may be shared), then the original goes */
        for (int j = i; j < n; j++) {
            Node *r = g->nodes[j];
            if (r->op < 0 || r->n_in < 2 || r->in[1] != w || transposed_b(r) != transposed) continue;
            if (convert(g, r, packed, N, err, cap)) return -1;
            changed++;
        }
        if (!reads(g, w)) {
            graph_release_pages(g, w->konst);
            tensor_free(w->konst);
            w->konst = NULL;
        }
    }
    graph_remove_dead(g);
    if (graph_topo_sort(g)) { snprintf(err, cap, "pack-linear-weights: cycle"); return -1; }
    /* the unpacked weights are read by nothing now */
    return pass_eliminate_dead_code(g, err, cap) < 0 ? -1 : changed;
}
