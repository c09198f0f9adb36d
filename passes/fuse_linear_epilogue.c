/* fuse_linear_epilogue.c — kernel fusion around the GEMM: a Linear whose
 * only reader is QuickGelu or Gelu takes the activation as an attribute,
 * and a Linear whose only reader is an Add with a same-shaped operand (the
 * transformer's residual), directly or through a Reshape of its rows, takes
 * that operand (viewed as its rows) as its residual input.  Likewise a Gemm
 * whose only reader is such an Add takes the operand as its C (IWR's weight
 * gradients: the interpolated pass's X^T dY added to the plain pass's).  The
 * GEMM then applies bias, activation and residual to each tile while it is
 * in registers (runtime/cpu/gemm.c) instead of more passes over memory.
 * Run after autodiff: the backward keeps its own readers, so a training
 * graph fuses only where the forward value is not needed again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "passes.h"
#include "rewrite.h"

static int same_shape(const Shape *a, const Shape *b)
{
    if (a->rank < 0 || a->rank != b->rank) return 0;
    for (int i = 0; i < a->rank; i++)
        if (a->d[i].n != b->d[i].n || a->d[i].sym != b->d[i].sym || a->d[i].sym == DIM_UNKNOWN) return 0;
    return 1;
}

/* A copy of Linear `lin` (its inputs, attributes) with `residual` as input 3
 * and `act` set, standing in for `replaced` (NULL when out of memory). */
static Node *refuse(Graph *g, Node *lin, const char *act, Value *residual, Node *replaced)
{
    Value *in[4] = {lin->in[0], lin->in[1], lin->n_in > 2 ? lin->in[2] : NULL, residual};
    Node *n = new_node(g, OP_LINEAR, replaced->name, residual ? 4 : 3, in);
    if (!n) return NULL;
    for (int a = 0; a < lin->n_attrs; a++) {
        const Attr *src = &lin->attrs[a];
        if (!strcmp(src->name, "activation")) continue;
        Attr *d = node_add_attr(n, src->name, src->type);
        if (!d || src->type != ATTR_INT) return NULL; /* Linear's other attributes are packed_n, packed_k */
        d->i = src->i;
    }
    if (act) {
        Attr *d = node_add_attr(n, "activation", ATTR_STRING);
        if (!d || !(d->s = strdup(act))) return NULL;
    }
    char msg[IR_ERR_CAP];
    if (infer_node(g, n, msg, sizeof msg)) return NULL;
    graph_replace_uses(g, replaced->out[0], n->out[0]);
    lin->op = replaced->op = -1;
    return n;
}

/* Gemm `gemm` (no C) whose only reader is Add `add` with a same-shaped
 * other operand: a copy with that operand as C (beta 1) stands in for the
 * Add.  0 when it does not apply, 1 when fused, -1 out of memory. */
static int fuse_gemm_add(Graph *g, Node *gemm, Node *add)
{
    if (gemm->n_in != 2 || add->op != OP_ADD || add->n_in != 2 || gemm->out[0]->dtype != DT_F32 || gemm->out[0]->shape.rank != 2 ||
        node_attr_f(gemm, "beta", 1.0f) != 1.0f)
        return 0;
    Value *other = add->in[0] == gemm->out[0] ? add->in[1] : add->in[0];
    if (other == gemm->out[0] || other->dtype != DT_F32 || !same_shape(&other->shape, &gemm->out[0]->shape) ||
        !same_shape(&add->out[0]->shape, &gemm->out[0]->shape))
        return 0;
    Node *n = new_node(g, OP_GEMM, add->name, 3, (Value *[]){gemm->in[0], gemm->in[1], other});
    if (!n || node_copy_attrs(n, gemm)) return -1;
    char msg[IR_ERR_CAP];
    if (infer_node(g, n, msg, sizeof msg)) return -1;
    graph_replace_uses(g, add->out[0], n->out[0]);
    gemm->op = add->op = -1;
    return 1;
}

static int sweep(Graph *g, int residual, int *changed)
{
    int *uses = graph_use_counts(g);
    if (!uses) return -1;
    int n = g->n_nodes;
    for (int i = 0; i < n; i++) {
        Node *lin = g->nodes[i];
        if (residual && lin->op == OP_GEMM) {
            Node *r = sole_reader(g, lin->out[0], uses);
            int f = r && r->op >= 0 ? fuse_gemm_add(g, lin, r) : 0;
            if (f < 0) goto oom;
            *changed += f;
            continue;
        }
        if (lin->op != OP_LINEAR || lin->n_in > 3 || lin->out[0]->dtype != DT_F32) continue;
        Node *r = sole_reader(g, lin->out[0], uses);
        if (!r || r->op < 0) continue;
        const char *act = node_attr_s(lin, "activation", "");
        if (!residual && !*act && (r->op == OP_QUICK_GELU || r->op == OP_GELU)) {
            if (!refuse(g, lin, r->op == OP_GELU ? "gelu" : "quick_gelu", NULL, r)) goto oom;
            (*changed)++;
        } else if (residual && r->op == OP_RESHAPE && r->out[0]->shape.rank >= 1 && lin->out[0]->shape.rank == 2) {
            /* lin [R, N] -> Reshape [..., N] -> Add: the residual is read through a view */
            Node *add = sole_reader(g, r->out[0], uses);
            const Shape *ls = &lin->out[0]->shape, *rs = &r->out[0]->shape;
            if (!add || add->op != OP_ADD || add->n_in != 2 || !dim_is_const(ls->d[1]) ||
                rs->d[rs->rank - 1].n != ls->d[1].n || !dim_is_const(rs->d[rs->rank - 1]))
                continue;
            Value *other = add->in[0] == r->out[0] ? add->in[1] : add->in[0];
            if (other == r->out[0] || other->dtype != DT_F32 || !same_shape(&other->shape, rs) || !same_shape(&add->out[0]->shape, rs))
                continue;
            Value *target = int_vector_const(g, "residual_rows", 2, (int64_t[]){-1, ls->d[1].n});
            Value *rows = target ? append_node(g, OP_RESHAPE, add->name, 2, (Value *[]){other, target}) : NULL;
            Node *fused = rows ? refuse(g, lin, *act ? act : NULL, rows, r) : NULL;
            /* the Reshape now follows the fused Linear; the Add is gone */
            Value *back = fused ? append_node(g, OP_RESHAPE, r->name, 2, (Value *[]){fused->out[0], r->in[1]}) : NULL;
            if (!back) goto oom;
            graph_replace_uses(g, add->out[0], back);
            add->op = -1;
            (*changed)++;
        } else if (residual && r->op == OP_ADD && r->n_in == 2) {
            Value *other = r->in[0] == lin->out[0] ? r->in[1] : r->in[0];
            if (other == lin->out[0] || other->dtype != DT_F32 || !same_shape(&other->shape, &lin->out[0]->shape) ||
                !same_shape(&r->out[0]->shape, &lin->out[0]->shape))
                continue;
            if (!refuse(g, lin, *act ? act : NULL, other, r)) goto oom;
            (*changed)++;
        }
    }
    free(uses);
    graph_remove_dead(g);
    return 0;
oom:
    free(uses);
    return -1;
}

int pass_fuse_linear_epilogue(Graph *g, char *err, size_t cap)
{
    int changed = 0;
    if (sweep(g, 0, &changed) || sweep(g, 1, &changed)) { snprintf(err, cap, "fuse-linear-epilogue: out of memory"); return -1; }
    return graph_topo_sort(g) ? (snprintf(err, cap, "fuse-linear-epilogue: cycle"), -1) : changed;
}
