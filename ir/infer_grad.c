/* infer_grad.c — shape rules for the training ops: the softmax cross-entropy
 * loss, InterpolateWeights (IWR's alpha*w0 + (1-alpha)*w), and the ai.vclip
 * gradient ops that the autodiff pass emits.  Every gradient op returns
 * tensors shaped like the forward inputs it differentiates. */
#include <string.h>
#include "ops.h"

static int need_inputs(InferCtx *c, int n)
{
    for (int i = 0; i < n; i++)
        if (i >= c->n_in || !c->in[i]) return infer_fail(c, "expects at least %d inputs", n);
    return 0;
}

static void like(ValueInfo *o, const ValueInfo *x)
{
    if (!o) return;
    o->dtype = x->dtype;
    o->shape = x->shape;
}

/* SoftmaxCrossEntropyLoss(scores [B, C], labels [B]) -> loss (scalar for
 * reduction mean/sum, [B] for none), optional log_prob [B, C]. */
int infer_softmax_ce(InferCtx *c)
{
    if (need_inputs(c, 2)) return -1;
    const ValueInfo *s = c->in[0], *l = c->in[1];
    if (s->dtype != DT_F32) return infer_fail(c, "scores must be f32");
    if (l->dtype != DT_I64 && l->dtype != DT_I32) return infer_fail(c, "labels must be int64 or int32");
    if (c->n_in > 2 && c->in[2]) return infer_fail(c, "class weights are not supported");
    if (s->shape.rank >= 0 && s->shape.rank != 2) return infer_fail(c, "scores must be [batch, classes]");
    if (l->shape.rank >= 0 && l->shape.rank != 1) return infer_fail(c, "labels must be [batch]");
    if (node_attr(c->node, "ignore_index")) return infer_fail(c, "ignore_index is not supported");
    const char *red = node_attr_s(c->node, "reduction", "mean");
    c->out[0]->dtype = DT_F32;
    if (!strcmp(red, "none")) c->out[0]->shape = (Shape){1, {s->shape.d[0]}};
    else if (!strcmp(red, "mean") || !strcmp(red, "sum")) c->out[0]->shape.rank = 0;
    else return infer_fail(c, "unknown reduction '%s'", red);
    if (c->n_out > 1) like(c->out[1], s);
    return 0;
}

/* (dloss, scores, labels) -> dscores */
int infer_softmax_ce_grad(InferCtx *c)
{
    if (need_inputs(c, 3)) return -1;
    like(c->out[0], c->in[1]);
    return 0;
}

/* (w0, w, alpha) -> alpha*w0 + (1-alpha)*w, shaped like w */
int infer_interpolate_weights(InferCtx *c)
{
    if (need_inputs(c, 3)) return -1;
    const ValueInfo *w0 = c->in[0], *w = c->in[1], *a = c->in[2];
    if (w0->dtype != DT_F32 || w->dtype != DT_F32 || a->dtype != DT_F32) return infer_fail(c, "w0, w and alpha must be f32");
    if (w0->shape.rank != w->shape.rank) return infer_fail(c, "w0 and w differ in rank");
    for (int i = 0; i < w->shape.rank; i++)
        if (!dim_equal(w0->shape.d[i], w->shape.d[i])) return infer_fail(c, "w0 and w differ in shape");
    if (a->shape.rank > 1 || (a->shape.rank == 1 && !(dim_is_const(a->shape.d[0]) && a->shape.d[0].n == 1)))
        return infer_fail(c, "alpha must be a scalar");
    like(c->out[0], w);
    return 0;
}

/* (dy, x, scale) -> dx, dscale, dbias */
int infer_layernorm_grad(InferCtx *c)
{
    if (need_inputs(c, 3)) return -1;
    like(c->out[0], c->in[1]);
    for (int k = 1; k < 3 && k < c->n_out; k++) like(c->out[k], c->in[2]);
    return 0;
}

/* one output like input 0 (dy) */
int infer_first_shape(InferCtx *c)
{
    if (need_inputs(c, 2)) return -1;
    like(c->out[0], c->in[0]);
    return 0;
}

/* (dout, q, k, v, mask?) -> dq, dk, dv */
int infer_attention_grad(InferCtx *c)
{
    if (need_inputs(c, 4)) return -1;
    for (int k = 0; k < 3 && k < c->n_out; k++) like(c->out[k], c->in[1 + k]);
    return 0;
}

/* (dy, x, w) -> dx, dw */
int infer_conv_grad(InferCtx *c)
{
    if (need_inputs(c, 3)) return -1;
    like(c->out[0], c->in[1]);
    if (c->n_out > 1) like(c->out[1], c->in[2]);
    return 0;
}

/* SliceGrad / GatherGrad: dy scattered into zeros of the attribute `shape` */
int infer_scatter_grad(InferCtx *c)
{
    if (need_inputs(c, 2)) return -1;
    const Attr *s = node_attr(c->node, "shape");
    if (!s || s->type != ATTR_INTS || s->n > IR_MAX_RANK) return infer_fail(c, "needs an ints attribute 'shape'");
    c->out[0]->dtype = c->in[0]->dtype;
    c->out[0]->shape.rank = s->n;
    for (int i = 0; i < s->n; i++) {
        if (s->ints[i] < 0) return infer_fail(c, "negative dim in 'shape'");
        c->out[0]->shape.d[i] = dim_const(s->ints[i]);
    }
    return 0;
}
