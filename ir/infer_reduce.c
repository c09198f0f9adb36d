/* infer_reduce.c — shape rules for reductions, ArgMax/ArgMin and
 * LayerNormalization, plus the axes decoder the kernels share. */
#include <string.h>
#include "ops.h"

int op_reduce_axes(InferCtx *c, int rank, uint8_t *mask)
{
    int op = c->node->op;
    /* ReduceSum takes axes as an input from opset 13, the others from 18. */
    int axes_as_input = (op == OP_REDUCE_SUM) ? c->opset >= 13 : c->opset >= 18;
    Dim ax[IR_MAX_RANK * 2];
    int n = 0;
    memset(mask, 0, (size_t)(rank ? rank : 1));
    if (axes_as_input) {
        if (c->n_in > 1 && c->in[1]) {
            n = infer_get_ints(c, 1, ax, IR_MAX_RANK * 2);
            if (n < 0) return infer_fail(c, "axes input is not a known constant");
        }
    } else {
        const Attr *a = node_attr(c->node, "axes");
        if (a && a->type == ATTR_INTS) {
            if (a->n > IR_MAX_RANK * 2) return infer_fail(c, "too many axes");
            for (int i = 0; i < a->n; i++) ax[i] = dim_const(a->ints[i]);
            n = a->n;
        }
    }
    if (n == 0) {
        if (node_attr_i(c->node, "noop_with_empty_axes", 0)) return 0;
        memset(mask, 1, (size_t)(rank ? rank : 1));
        return 0;
    }
    for (int i = 0; i < n; i++) {
        int64_t a;
        if (!dim_is_const(ax[i]) || norm_axis(ax[i].n, rank, &a))
            return infer_fail(c, "axis out of range for rank %d", rank);
        mask[a] = 1;
    }
    return 0;
}

int infer_reduce(InferCtx *c)
{
    if (c->n_in < 1 || !c->in[0]) return infer_fail(c, "missing input");
    const ValueInfo *x = c->in[0];
    ValueInfo *o = c->out[0];
    o->dtype = x->dtype;
    if (x->shape.rank < 0) { o->shape.rank = -1; return 0; }
    uint8_t mask[IR_MAX_RANK];
    if (op_reduce_axes(c, x->shape.rank, mask)) return -1;
    int keep = (int)node_attr_i(c->node, "keepdims", 1), r = 0;
    for (int i = 0; i < x->shape.rank; i++) {
        if (!mask[i]) o->shape.d[r++] = x->shape.d[i];
        else if (keep) o->shape.d[r++] = dim_const(1);
    }
    o->shape.rank = r;
    return 0;
}

int infer_argreduce(InferCtx *c)
{
    if (c->n_in < 1 || !c->in[0]) return infer_fail(c, "missing input");
    const ValueInfo *x = c->in[0];
    ValueInfo *o = c->out[0];
    o->dtype = DT_I64;
    if (x->shape.rank < 0) { o->shape.rank = -1; return 0; }
    int64_t axis;
    if (norm_axis(node_attr_i(c->node, "axis", 0), x->shape.rank, &axis))
        return infer_fail(c, "axis out of range");
    int keep = (int)node_attr_i(c->node, "keepdims", 1), r = 0;
    for (int i = 0; i < x->shape.rank; i++) {
        if (i != axis) o->shape.d[r++] = x->shape.d[i];
        else if (keep) o->shape.d[r++] = dim_const(1);
    }
    o->shape.rank = r;
    return 0;
}

int infer_layernorm(InferCtx *c)
{
    if (c->n_in < 2 || !c->in[0] || !c->in[1]) return infer_fail(c, "expects X and Scale");
    const ValueInfo *x = c->in[0];
    if (!dtype_is_float(x->dtype)) return infer_fail(c, "X must be floating point");
    c->out[0]->dtype = x->dtype;
    c->out[0]->shape = x->shape;
    if (node_attr_i(c->node, "bf16_output", 0)) { /* Y rounded to bf16 (ir/ops.h, passes/bf16_activations.c) */
        if (x->dtype != DT_F32 || c->n_out > 1) return infer_fail(c, "bf16_output needs an f32 X and Y alone");
        c->out[0]->dtype = DT_BF16;
    }
    int64_t axis;
    if (x->shape.rank >= 0 && norm_axis(node_attr_i(c->node, "axis", -1), x->shape.rank, &axis))
        return infer_fail(c, "axis out of range");
    for (int k = 1; k < c->n_out && k < 3; k++) { /* Mean, InvStdDev: reduced dims kept as 1 */
        if (!c->out[k]) continue;
        c->out[k]->dtype = DT_F32;
        c->out[k]->shape = x->shape;
        for (int i = (int)axis; i < x->shape.rank; i++) c->out[k]->shape.d[i] = dim_const(1);
    }
    return 0;
}
