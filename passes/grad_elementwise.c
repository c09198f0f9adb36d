/* grad_elementwise.c — gradient rules of the elementwise and broadcasting
 * ops.  Broadcast inputs get their gradient summed back to their own shape. */
#include "autodiff.h"
#include "rewrite.h"

#define X(i) (c->node->in[i])
#define Y (c->node->out[0])
#define DY (c->dy[0])

static Value *k(GradCtx *c, float v) { return scalar_const(c->g, "grad_const", v); }

int grad_neg(GradCtx *c) { c->dx[0] = grad_op(c, OP_NEG, 1, &DY); return c->dx[0] ? 0 : -1; }
int grad_identity(GradCtx *c) { c->dx[0] = DY; return 0; }
int grad_exp(GradCtx *c) { return (c->dx[0] = grad_op2(c, OP_MUL, DY, Y)) ? 0 : -1; }
int grad_log(GradCtx *c) { return (c->dx[0] = grad_op2(c, OP_DIV, DY, X(0))) ? 0 : -1; }

/* d sqrt(x) = dy * 0.5 / y */
int grad_sqrt(GradCtx *c)
{
    return (c->dx[0] = grad_op2(c, OP_DIV, grad_op2(c, OP_MUL, DY, k(c, 0.5f)), Y)) ? 0 : -1;
}

/* d (1/x) = -dy * y^2 */
int grad_reciprocal(GradCtx *c)
{
    return (c->dx[0] = grad_op(c, OP_NEG, 1, (Value *[]){grad_op2(c, OP_MUL, DY, grad_op2(c, OP_MUL, Y, Y))})) ? 0 : -1;
}

/* dy * y * (1 - y) */
int grad_sigmoid(GradCtx *c)
{
    Value *one_minus = grad_op2(c, OP_SUB, k(c, 1), Y);
    return (c->dx[0] = grad_op2(c, OP_MUL, DY, grad_op2(c, OP_MUL, Y, one_minus))) ? 0 : -1;
}

/* d log(1 + e^x) = dy * sigmoid(x) */
int grad_softplus(GradCtx *c)
{
    return (c->dx[0] = grad_op2(c, OP_MUL, DY, grad_op(c, OP_SIGMOID, 1, (Value *[]){X(0)}))) ? 0 : -1;
}

/* dy * (1 - y^2) */
int grad_tanh(GradCtx *c)
{
    Value *d = grad_op2(c, OP_SUB, k(c, 1), grad_op2(c, OP_MUL, Y, Y));
    return (c->dx[0] = grad_op2(c, OP_MUL, DY, d)) ? 0 : -1;
}

/* dy where x > 0 */
int grad_relu(GradCtx *c)
{
    Value *pos = grad_op2(c, OP_GREATER, X(0), k(c, 0));
    return (c->dx[0] = grad_op(c, OP_WHERE, 3, (Value *[]){pos, DY, k(c, 0)})) ? 0 : -1;
}

/* float -> float casts pass the gradient through (cast back) */
int grad_cast(GradCtx *c)
{
    if (!dtype_is_float(X(0)->dtype)) return 0;
    if (X(0)->dtype == DY->dtype) { c->dx[0] = DY; return 0; }
    Node *n = grad_node(c, OP_CAST, 1, &DY, 1, NULL);
    if (!n) return -1;
    grad_set_int(n, "to", dtype_to_onnx(X(0)->dtype));
    return (c->dx[0] = grad_finish(c, n)) ? 0 : -1;
}

static int both(GradCtx *c, Value *da, Value *db)
{
    if (c->needs[0] && !(c->dx[0] = grad_reduce_to(c, da, &X(0)->shape))) return -1;
    if (c->needs[1] && !(c->dx[1] = grad_reduce_to(c, db, &X(1)->shape))) return -1;
    return 0;
}

int grad_add(GradCtx *c) { return both(c, DY, DY); }

int grad_sub(GradCtx *c) { return both(c, DY, c->needs[1] ? grad_op(c, OP_NEG, 1, &DY) : NULL); }

int grad_mul(GradCtx *c)
{
    return both(c, c->needs[0] ? grad_op2(c, OP_MUL, DY, X(1)) : NULL, c->needs[1] ? grad_op2(c, OP_MUL, DY, X(0)) : NULL);
}

/* y = a / b: da = dy / b, db = -dy * y / b */
int grad_div(GradCtx *c)
{
    Value *da = c->needs[0] ? grad_op2(c, OP_DIV, DY, X(1)) : NULL;
    Value *db = c->needs[1] ? grad_op(c, OP_NEG, 1, (Value *[]){grad_op2(c, OP_MUL, DY, grad_op2(c, OP_DIV, Y, X(1)))}) : NULL;
    return both(c, da, db);
}

/* x ^ p with a constant scalar p: dy * p * x^(p-1) */
int grad_pow(GradCtx *c)
{
    double p;
    if (c->needs[1] || !const_scalar(X(1), &p)) return grad_fail(c, "only a constant scalar exponent is differentiable");
    Value *d = grad_op2(c, OP_MUL, k(c, (float)p), grad_op2(c, OP_POW, X(0), k(c, (float)(p - 1))));
    return (c->dx[0] = grad_op2(c, OP_MUL, DY, d)) ? 0 : -1;
}

/* where(cond, a, b): dy goes to a where cond holds, to b elsewhere */
int grad_where(GradCtx *c)
{
    Value *zero = k(c, 0);
    if (c->needs[1] && !(c->dx[1] = grad_reduce_to(c, grad_op(c, OP_WHERE, 3, (Value *[]){X(0), DY, zero}), &X(1)->shape))) return -1;
    if (c->needs[2] && !(c->dx[2] = grad_reduce_to(c, grad_op(c, OP_WHERE, 3, (Value *[]){X(0), zero, DY}), &X(2)->shape))) return -1;
    return 0;
}
