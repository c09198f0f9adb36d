/* grad_movement.c — gradient rules of the shape and data-movement ops: views
 * reshape back, transposes invert, slices and gathers scatter into zeros,
 * concatenations slice apart, expansions sum back. */
#include <stdlib.h>
#include "autodiff.h"
#include "rewrite.h"

#define X(i) (c->node->in[i])
#define DY (c->dy[0])

static int static_dims(GradCtx *c, const Value *v, int64_t *dims)
{
    for (int i = 0; i < v->shape.rank; i++) {
        if (!dim_is_const(v->shape.d[i])) return grad_fail(c, "needs static shapes");
        dims[i] = v->shape.d[i].n;
    }
    return 0;
}

/* Reshape, Flatten, Squeeze, Unsqueeze */
int grad_reshape(GradCtx *c) { return (c->dx[0] = grad_reshape_to(c, DY, &X(0)->shape)) ? 0 : -1; }

int grad_transpose(GradCtx *c)
{
    InferCtx ic;
    ValueInfo vi[16];
    int perm[IR_MAX_RANK], r = X(0)->shape.rank;
    int64_t inv[IR_MAX_RANK];
    grad_infer_ctx(c, &ic, vi);
    if (op_transpose_perm(&ic, r, perm)) return grad_fail(c, "%s", ic.err);
    for (int i = 0; i < r; i++) inv[perm[i]] = i;
    Node *n = grad_node(c, OP_TRANSPOSE, 1, &DY, 1, NULL);
    if (!n || grad_set_ints(n, "perm", r, inv)) return -1;
    return (c->dx[0] = grad_finish(c, n)) ? 0 : -1;
}

int grad_slice(GradCtx *c)
{
    if (c->g->opset < 10) return grad_fail(c, "Slice before opset 10 is not differentiable");
    int64_t dims[IR_MAX_RANK];
    if (static_dims(c, X(0), dims)) return -1;
    Value *in[5] = {DY};
    for (int i = 1; i < c->node->n_in && i < 5; i++) in[i] = X(i);
    Node *n = grad_node(c, OP_SLICE_GRAD, c->node->n_in, in, 1, NULL);
    if (!n || grad_set_ints(n, "shape", X(0)->shape.rank, dims)) return -1;
    return (c->dx[0] = grad_finish(c, n)) ? 0 : -1;
}

int grad_gather(GradCtx *c)
{
    int64_t dims[IR_MAX_RANK];
    if (static_dims(c, X(0), dims)) return -1;
    Node *n = grad_node(c, OP_GATHER_GRAD, 2, (Value *[]){DY, X(1)}, 1, c->node);
    if (!n || grad_set_ints(n, "shape", X(0)->shape.rank, dims)) return -1;
    return (c->dx[0] = grad_finish(c, n)) ? 0 : -1;
}

int grad_concat(GradCtx *c)
{
    int r = DY->shape.rank;
    int64_t axis;
    if (norm_axis(node_attr_i(c->node, "axis", 0), r, &axis)) return grad_fail(c, "axis out of range");
    int64_t at = 0;
    for (int i = 0; i < c->node->n_in; i++) {
        Dim len = X(i)->shape.d[axis];
        if (!dim_is_const(len)) return grad_fail(c, "needs static shapes");
        if (c->needs[i]) {
            int64_t st = at, en = at + len.n, ax = axis;
            Value *in[4] = {DY, int_vector_const(c->g, "grad_start", 1, &st), int_vector_const(c->g, "grad_end", 1, &en),
                            int_vector_const(c->g, "grad_axis", 1, &ax)};
            if (!(c->dx[i] = grad_op(c, OP_SLICE, 4, in))) return -1;
        }
        at += len.n;
    }
    return 0;
}

int grad_expand(GradCtx *c) { return (c->dx[0] = grad_reduce_to(c, DY, &X(0)->shape)) ? 0 : -1; }
