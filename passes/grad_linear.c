/* grad_linear.c — gradient rules of MatMul, Gemm, ai.vclip.Linear and Conv.
 * Weight gradients of token-major activations become one 2-D GEMM over all
 * rows (X^T dY) instead of a batched product reduced afterwards. */
#include "autodiff.h"
#include "rewrite.h"

#define X(i) (c->node->in[i])
#define DY (c->dy[0])

static Value *gemm(GradCtx *c, Value *a, Value *b, int ta, int tb, float alpha)
{
    if (!a || !b) return NULL;
    Node *n = grad_node(c, OP_GEMM, 2, (Value *[]){a, b}, 1, NULL);
    if (!n) return NULL;
    if (ta) grad_set_int(n, "transA", 1);
    if (tb) grad_set_int(n, "transB", 1);
    if (alpha != 1.0f) {
        Attr *at = node_add_attr(n, "alpha", ATTR_FLOAT);
        if (at) at->f = alpha;
    }
    return grad_finish(c, n);
}

/* x viewed as [rows, last] */
static Value *as_rows(GradCtx *c, Value *x)
{
    int r = x->shape.rank;
    int64_t last = x->shape.d[r - 1].n, rows = shape_numel(&x->shape) / (last ? last : 1);
    Shape s = {2, {dim_const(rows), dim_const(last)}};
    return grad_reshape_to(c, x, &s);
}

/* swap the last two axes */
static Value *transpose_last2(GradCtx *c, Value *x)
{
    int r = x->shape.rank;
    int64_t perm[IR_MAX_RANK];
    for (int i = 0; i < r; i++) perm[i] = i;
    perm[r - 2] = r - 1;
    perm[r - 1] = r - 2;
    Node *n = grad_node(c, OP_TRANSPOSE, 1, &x, 1, NULL);
    if (!n || grad_set_ints(n, "perm", r, perm)) return NULL;
    return grad_finish(c, n);
}

int grad_matmul(GradCtx *c)
{
    Value *a = X(0), *b = X(1);
    if (a->shape.rank < 2 || b->shape.rank < 2) return grad_fail(c, "MatMul with a 1-D operand is not differentiable yet");
    if (c->needs[0]) {
        Value *d = b->shape.rank == 2 ? grad_reshape_to(c, gemm(c, as_rows(c, DY), b, 0, 1, 1), &a->shape)
                                      : grad_reduce_to(c, grad_op2(c, OP_MATMUL, DY, transpose_last2(c, b)), &a->shape);
        if (!(c->dx[0] = d)) return -1;
    }
    if (c->needs[1]) {
        Value *d = b->shape.rank == 2 ? gemm(c, as_rows(c, a), as_rows(c, DY), 1, 0, 1)
                                      : grad_reduce_to(c, grad_op2(c, OP_MATMUL, transpose_last2(c, a), DY), &b->shape);
        if (!(c->dx[1] = d)) return -1;
    }
    return 0;
}

/* Y = alpha op(A) op(B) + beta C */
int grad_gemm(GradCtx *c)
{
    const Node *n = c->node;
    int ta = (int)node_attr_i(n, "transA", 0), tb = (int)node_attr_i(n, "transB", 0);
    float alpha = node_attr_f(n, "alpha", 1.0f), beta = node_attr_f(n, "beta", 1.0f);
    if (c->needs[0] && !(c->dx[0] = ta ? gemm(c, X(1), DY, tb, 1, alpha) : gemm(c, DY, X(1), 0, !tb, alpha))) return -1;
    if (c->needs[1] && !(c->dx[1] = tb ? gemm(c, DY, X(0), 1, ta, alpha) : gemm(c, X(0), DY, !ta, 0, alpha))) return -1;
    if (n->n_in > 2 && c->needs[2]) {
        Value *d = beta == 1.0f ? DY : grad_op2(c, OP_MUL, DY, scalar_const(c->g, "grad_beta", beta));
        if (!(c->dx[2] = grad_reduce_to(c, d, &X(2)->shape))) return -1;
    }
    return 0;
}

/* Y = X W + B with X [..., K], W [K, N] */
int grad_linear(GradCtx *c)
{
    Value *dy2 = as_rows(c, DY);
    if (c->needs[0] && !(c->dx[0] = grad_reshape_to(c, gemm(c, dy2, X(1), 0, 1, 1), &X(0)->shape))) return -1;
    if (c->needs[1] && !(c->dx[1] = gemm(c, as_rows(c, X(0)), dy2, 1, 0, 1))) return -1;
    if (c->node->n_in > 2 && X(2) && c->needs[2] && !(c->dx[2] = grad_sum_axes(c, dy2, 1, (int64_t[]){0}, 0))) return -1;
    return 0;
}

/* ai.vclip.ConvGrad gives dx and dw; the bias gradient sums dy over batch and space */
int grad_conv(GradCtx *c)
{
    if (c->needs[0] || c->needs[1]) {
        Node *n = grad_node(c, OP_CONV_GRAD, 3, (Value *[]){DY, X(0), X(1)}, 2, c->node);
        if (!grad_finish(c, n)) return -1;
        c->dx[0] = c->needs[0] ? n->out[0] : NULL;
        c->dx[1] = c->needs[1] ? n->out[1] : NULL;
    }
    if (c->node->n_in > 2 && X(2) && c->needs[2]) {
        int64_t axes[IR_MAX_RANK];
        int na = 0;
        for (int i = 0; i < DY->shape.rank; i++) if (i != 1) axes[na++] = i;
        if (!(c->dx[2] = grad_sum_axes(c, DY, na, axes, 0))) return -1;
    }
    return 0;
}
