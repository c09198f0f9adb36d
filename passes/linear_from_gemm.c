/* linear_from_gemm.c — the kernel pipeline's first step: a Gemm over a
 * constant weight (alpha = beta = 1, no transA, a 1-D or no C), or a MatMul
 * over one without a bias (CLIP's final projections), becomes an
 * ai.vclip.Linear, so that it gets the GEMM epilogue and packed weights
 * like every other projection (nn.MultiheadAttention's out_proj exports as
 * Gemm with transB).  transB takes a transposed copy of the weight; weights
 * being trained are left alone, so a training graph's parameters keep
 * their names and layout. */
#include <stdio.h>
#include <stdlib.h>
#include "passes.h"
#include "rewrite.h"

static int matmul_is_linear(const Node *n)
{
    const Value *w = n->n_in == 2 ? n->in[1] : NULL;
    return n->op == OP_MATMUL && n->in[0] && n->in[0]->shape.rank >= 2 && n->in[0]->dtype == DT_F32 && w && w->konst &&
           !w->producer && !w->trainable && !w->is_input && w->dtype == DT_F32 && w->konst->rank == 2;
}

static int gemm_is_linear(const Node *n)
{
    const Value *w = n->n_in >= 2 ? n->in[1] : NULL, *c = n->n_in > 2 ? n->in[2] : NULL;
    if (n->op != OP_GEMM || !n->in[0] || n->in[0]->shape.rank != 2 || !w || !w->konst || w->producer || w->trainable ||
        w->is_input || w->dtype != DT_F32 || w->konst->rank != 2)
        return 0;
    if (node_attr_i(n, "transA", 0) || node_attr_f(n, "alpha", 1.0f) != 1.0f) return 0;
    int64_t N = node_attr_i(n, "transB", 0) ? w->konst->dims[0] : w->konst->dims[1];
    return !c || (node_attr_f(n, "beta", 1.0f) == 1.0f && c->konst && c->dtype == DT_F32 && c->konst->rank == 1 &&
                  c->konst->dims[0] == N);
}

/* W^T as a new constant (the original goes when nothing else reads it). */
static Value *transposed(Graph *g, const Value *w)
{
    int64_t N = w->konst->dims[0], K = w->konst->dims[1], d[2] = {K, N};
    Tensor *t = tensor_new(DT_F32, 2, d);
    if (!t) return NULL;
    const float *src = w->konst->data;
    float *dst = t->data;
    for (int64_t k = 0; k < K; k++)
        for (int64_t n = 0; n < N; n++) dst[k * N + n] = src[n * K + k];
    return new_const(g, w->name, "_t", t);
}

int pass_linear_from_gemm(Graph *g, char *err, size_t cap)
{
    int changed = 0, n = g->n_nodes, *uses = graph_use_counts(g);
    if (!uses) { snprintf(err, cap, "linear-from-gemm: out of memory"); return -1; }
    for (int i = 0; i < n; i++) {
        Node *gemm = g->nodes[i];
        if (!gemm_is_linear(gemm) && !matmul_is_linear(gemm)) continue;
        Value *w = gemm->op == OP_GEMM && node_attr_i(gemm, "transB", 0) ? transposed(g, gemm->in[1]) : gemm->in[1];
        Value *in[3] = {gemm->in[0], w, gemm->n_in > 2 ? gemm->in[2] : NULL};
        if (!w || !replace_with_node(g, gemm->out[0], OP_LINEAR, gemm->name, in[2] ? 3 : 2, in)) {
            free(uses);
            snprintf(err, cap, "linear-from-gemm: out of memory");
            return -1;
        }
        Value *orig = gemm->in[1];
        gemm->op = -1;
        if (w != orig && uses[orig->id] == 1) { /* only the copy is read now */
            graph_release_pages(g, orig->konst);
            tensor_free(orig->konst);
            orig->konst = NULL;
        }
        changed++;
    }
    free(uses);
    graph_remove_dead(g);
    if (pass_eliminate_dead_code(g, err, cap) < 0) return -1; /* the transposed originals */
    return graph_topo_sort(g) ? (snprintf(err, cap, "linear-from-gemm: cycle"), -1) : changed;
}
