/* fuse_layernorm.c — the decomposed LayerNorm of opset < 17 exports
 *   m = ReduceMean(x); d = x - m; v = ReduceMean(d^2); y = d / Sqrt(v + eps) * g + b
 * (last axis, Pow(d, 2) or d * d, either operand order of Mul and Add)
 *   -> LayerNormalization(x, g, b, axis=-1, epsilon=eps).
 * LayerNormalization arrived in opset 17; graphs of opset 13..16 are moved
 * to 17 (nothing they use changed meaning in between).  Older graphs stay. */
#include <math.h>
#include <stdio.h>
#include "passes.h"
#include "rewrite.h"

static int is_const_vector(const Value *v, const Value *x)
{
    return v && v->konst && v->konst->rank == 1 && x->shape.rank > 0 && dim_is_const(x->shape.d[x->shape.rank - 1]) &&
           v->konst->dims[0] == x->shape.d[x->shape.rank - 1].n && v->dtype == DT_F32;
}

typedef struct { Value *x, *gamma, *beta; double eps; } LnMatch;

static int match(const Graph *g, Node *root, LnMatch *m)
{
    for (int s1 = 0; s1 < 2; s1++) {
        Node *mul = producer_is(root->in[s1], OP_MUL);
        Value *beta = root->in[1 - s1];
        for (int s2 = 0; mul && mul->n_in == 2 && s2 < 2; s2++) {
            Node *div = producer_is(mul->in[s2], OP_DIV);
            Value *gamma = mul->in[1 - s2];
            Node *sqrt_ = div ? producer_is(div->in[1], OP_SQRT) : NULL;
            Node *sub = div ? producer_is(div->in[0], OP_SUB) : NULL;
            Node *add = sqrt_ ? producer_is(sqrt_->in[0], OP_ADD) : NULL;
            if (!sub || !add || add->n_in != 2) continue;
            double eps;
            Node *var = NULL;
            for (int s3 = 0; s3 < 2 && !var; s3++)
                if (const_scalar(add->in[1 - s3], &eps)) var = producer_is(add->in[s3], OP_REDUCE_MEAN);
            if (!var) continue;
            Node *sq = producer_is(var->in[0], OP_POW);
            double two;
            int squares = sq && sq->in[0] == sub->out[0] && const_scalar(sq->in[1], &two) && two == 2.0;
            if (!squares) {
                sq = producer_is(var->in[0], OP_MUL);
                squares = sq && sq->in[0] == sub->out[0] && sq->in[1] == sub->out[0];
            }
            Node *mean = producer_is(sub->in[1], OP_REDUCE_MEAN);
            Value *x = sub->in[0];
            if (!squares || !mean || mean->in[0] != x || !reduces_last_axis(g, mean) || !reduces_last_axis(g, var)) continue;
            if (!is_const_vector(gamma, x) || !is_const_vector(beta, x) || x->dtype != DT_F32) continue;
            *m = (LnMatch){x, gamma, beta, eps};
            return 1;
        }
    }
    return 0;
}

static void require_opset17(Graph *g)
{
    if (g->opset >= 17) return;
    g->opset = 17;
    for (int i = 0; i < g->n_opsets; i++) if (!*g->opsets[i].domain) g->opsets[i].version = 17;
}

int pass_fuse_layernorm(Graph *g, char *err, size_t cap)
{
    if (g->opset < 13) return 0;
    int changed = 0, n = g->n_nodes;
    for (int i = 0; i < n; i++) {
        Node *root = g->nodes[i];
        LnMatch m;
        if (root->op != OP_ADD || root->n_in != 2 || !match(g, root, &m)) continue;
        Value *in[3] = {m.x, m.gamma, m.beta};
        int old_opset = g->opset;
        require_opset17(g);
        Node *ln = replace_with_node(g, root->out[0], OP_LAYER_NORM, root->name, 3, in);
        if (!ln) { g->opset = old_opset; snprintf(err, cap, "out of memory"); return -1; }
        node_add_attr(ln, "axis", ATTR_INT)->i = -1;
        node_add_attr(ln, "epsilon", ATTR_FLOAT)->f = (float)m.eps;
        changed++;
    }
    return graph_topo_sort(g) ? (snprintf(err, cap, "fuse-layernorm: cycle"), -1) : changed;
}
