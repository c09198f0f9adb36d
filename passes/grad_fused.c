/* grad_fused.c — gradient rules of the reductions, normalizations, fused
 * activations, attention and the loss.  Most emit one ai.vclip gradient op
 * (runtime/cpu/ref_grad.c, ref_attention_grad.c, ref_loss.c); reductions
 * broadcast the gradient back with Reshape + Expand. */
#include "autodiff.h"
#include "rewrite.h"

#define X(i) (c->node->in[i])
#define DY (c->dy[0])

static int reduce_back(GradCtx *c, int mean)
{
    InferCtx ic;
    ValueInfo vi[16];
    uint8_t mask[IR_MAX_RANK];
    Value *x = X(0);
    int r = x->shape.rank;
    grad_infer_ctx(c, &ic, vi);
    if (op_reduce_axes(&ic, r, mask)) return grad_fail(c, "%s", ic.err);
    Shape kept = x->shape;
    int64_t count = 1, dims[IR_MAX_RANK];
    for (int i = 0; i < r; i++) {
        dims[i] = x->shape.d[i].n;
        if (mask[i]) { count *= dims[i]; kept.d[i] = dim_const(1); }
    }
    Value *d = grad_reshape_to(c, DY, &kept);
    d = grad_op2(c, OP_EXPAND, d, int_vector_const(c->g, "grad_shape", r, dims));
    if (mean) d = grad_op2(c, OP_MUL, d, scalar_const(c->g, "grad_mean", (float)(1.0 / (double)(count ? count : 1))));
    return (c->dx[0] = d) ? 0 : -1;
}

int grad_reduce_sum(GradCtx *c) { return reduce_back(c, 0); }
int grad_reduce_mean(GradCtx *c) { return reduce_back(c, 1); }

int grad_softmax(GradCtx *c)
{
    int64_t axis;
    int r = X(0)->shape.rank;
    if (norm_axis(node_attr_i(c->node, "axis", c->g->opset >= 13 ? -1 : 1), r, &axis)) return grad_fail(c, "axis out of range");
    if (c->g->opset < 13 && axis != r - 1) return grad_fail(c, "Softmax before opset 13 is differentiable only over the last axis");
    Node *n = grad_node(c, OP_SOFTMAX_GRAD, 2, (Value *[]){DY, c->node->out[0]}, 1, NULL);
    if (!n) return -1;
    grad_set_int(n, "axis", axis);
    return (c->dx[0] = grad_finish(c, n)) ? 0 : -1;
}

int grad_layernorm(GradCtx *c)
{
    for (int j = 1; j < 3; j++) if (c->dy[j]) return grad_fail(c, "gradients through Mean/InvStdDev are not supported");
    Node *n = grad_node(c, OP_LAYER_NORM_GRAD, 3, (Value *[]){DY, X(0), X(1)}, 3, c->node);
    if (!grad_finish(c, n)) return -1;
    for (int j = 0; j < 3 && j < c->node->n_in; j++) c->dx[j] = c->needs[j] ? n->out[j] : NULL;
    return 0;
}

static int activation(GradCtx *c, int op)
{
    return (c->dx[0] = grad_op2(c, op, DY, X(0))) ? 0 : -1;
}

int grad_quick_gelu(GradCtx *c) { return activation(c, OP_QUICK_GELU_GRAD); }
int grad_gelu(GradCtx *c) { return activation(c, OP_GELU_GRAD); }

int grad_attention(GradCtx *c)
{
    int n_in = c->node->n_in > 3 && X(3) ? 5 : 4;
    if (c->node->n_in > 3 && c->needs[3]) return grad_fail(c, "the attention mask is not differentiable");
    Value *in[5] = {DY, X(0), X(1), X(2), n_in == 5 ? X(3) : NULL};
    Node *n = grad_node(c, OP_ATTENTION_GRAD, n_in, in, 3, c->node);
    if (!grad_finish(c, n)) return -1;
    for (int j = 0; j < 3; j++) c->dx[j] = c->needs[j] ? n->out[j] : NULL;
    return 0;
}

int grad_softmax_ce(GradCtx *c)
{
    if (c->node->n_out > 1 && c->dy[1]) return grad_fail(c, "gradients through log_prob are not supported");
    Node *n = grad_node(c, OP_SOFTMAX_CE_GRAD, 3, (Value *[]){DY, X(0), X(1)}, 1, c->node);
    return (c->dx[0] = grad_finish(c, n)) ? 0 : -1;
}

/* w~ = alpha w0 + (1 - alpha) w.  With exact_gradient=1 the chain rule's
 * (1 - alpha) scales dw; with 0 (the released Open-VCLIP code) dw = dw~. */
int grad_interpolate_weights(GradCtx *c)
{
    if (c->needs[0] || c->needs[2]) return grad_fail(c, "only the trained weights (input 1) are differentiable");
    if (!node_attr_i(c->node, "exact_gradient", 0)) { c->dx[1] = DY; return 0; }
    Value *keep = grad_op2(c, OP_SUB, scalar_const(c->g, "grad_one", 1.0f), X(2));
    return (c->dx[1] = grad_reshape_to(c, grad_op2(c, OP_MUL, DY, keep), &X(1)->shape)) ? 0 : -1;
}
