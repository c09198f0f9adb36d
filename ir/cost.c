/* cost.c — FLOP estimates from inferred shapes; see cost.h. */
#include "cost.h"
#include "ops.h"

static int eval_dim(Dim d, const int64_t *sym, int64_t *out)
{
    if (dim_is_const(d)) { *out = d.n; return 0; }
    if (d.sym >= 0 && sym[d.sym] >= 0) { *out = d.n * sym[d.sym]; return 0; }
    return -1;
}

static int eval_numel(const Shape *s, const int64_t *sym, double *out)
{
    if (s->rank < 0) return -1;
    double n = 1;
    for (int i = 0; i < s->rank; i++) {
        int64_t v;
        if (eval_dim(s->d[i], sym, &v)) return -1;
        n *= (double)v;
    }
    *out = n;
    return 0;
}

void graph_cost(const Graph *g, const int64_t *sym, GraphCost *c)
{
    c->gemm_flops = c->other_flops = 0;
    c->unknown_nodes = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const Node *n = g->nodes[i];
        OpPattern pat = op_table[n->op].pattern;
        double out;
        if (pat == PAT_VIEW || n->op == OP_SHAPE || n->op == OP_CONSTANT || n->op == OP_SIZE) continue;
        if (!n->out[0] || eval_numel(&n->out[0]->shape, sym, &out)) { c->unknown_nodes++; continue; }
        int64_t k = 0;
        if (n->op == OP_MATMUL) {
            const Shape *a = &n->in[0]->shape;
            if (a->rank < 1 || eval_dim(a->d[a->rank - 1], sym, &k)) { c->unknown_nodes++; continue; }
            c->gemm_flops += 2.0 * out * (double)k;
        } else if (n->op == OP_GEMM) {
            const Shape *a = &n->in[0]->shape;
            int ta = (int)node_attr_i(n, "transA", 0);
            if (a->rank != 2 || eval_dim(a->d[ta ? 0 : 1], sym, &k)) { c->unknown_nodes++; continue; }
            c->gemm_flops += 2.0 * out * (double)k;
        } else if (n->op == OP_CONV) {
            const Shape *w = &n->in[1]->shape;
            double per = 1;
            int ok = w->rank >= 3;
            for (int d = 1; ok && d < w->rank; d++) { int64_t v; if (eval_dim(w->d[d], sym, &v)) ok = 0; else per *= (double)v; }
            if (!ok) { c->unknown_nodes++; continue; }
            c->gemm_flops += 2.0 * out * per;
        } else c->other_flops += out;
    }
}
