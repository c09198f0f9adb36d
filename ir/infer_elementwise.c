/* infer_elementwise.c — shape rules for unary, binary (broadcasting),
 * comparison, Where and Cast, including the propagation of known integer
 * content through the small arithmetic that shape subgraphs do. */
#include <string.h>
#include "loads.h"
#include "ops.h"

static int need_inputs(InferCtx *c, int n)
{
    for (int i = 0; i < n; i++)
        if (i >= c->n_in || !c->in[i]) return infer_fail(c, "expects at least %d inputs", n);
    return 0;
}

static void copy_known(ValueInfo *dst, const ValueInfo *src)
{
    dst->n_known = src->n_known;
    if (src->n_known > 0) memcpy(dst->known, src->known, sizeof(Dim) * (size_t)src->n_known);
}

int infer_unary(InferCtx *c)
{
    if (need_inputs(c, 1)) return -1;
    c->out[0]->dtype = c->in[0]->dtype;
    c->out[0]->shape = c->in[0]->shape;
    int op = c->node->op;
    if (op == OP_IDENTITY) copy_known(c->out[0], c->in[0]);
    if (op == OP_NOT && c->in[0]->dtype != DT_BOOL) return infer_fail(c, "Not expects bool input");
    return 0;
}

int infer_predicate(InferCtx *c)
{
    if (need_inputs(c, 1)) return -1;
    c->out[0]->dtype = DT_BOOL;
    c->out[0]->shape = c->in[0]->shape;
    return 0;
}

int infer_dropout(InferCtx *c)
{
    if (infer_unary(c)) return -1;
    copy_known(c->out[0], c->in[0]);
    if (c->n_out > 1 && c->out[1]) { /* mask output: all true at inference */
        c->out[1]->dtype = DT_BOOL;
        c->out[1]->shape = c->in[0]->shape;
    }
    return 0;
}

int infer_cast(InferCtx *c)
{
    if (need_inputs(c, 1)) return -1;
    const Attr *to = node_attr(c->node, "to");
    if (!to || to->type != ATTR_INT) return infer_fail(c, "missing integer attribute 'to'");
    DType t = dtype_from_onnx((int32_t)to->i);
    if (t == DT_UNDEF) return infer_fail(c, "unsupported target type %lld", (long long)to->i);
    c->out[0]->dtype = t;
    c->out[0]->shape = c->in[0]->shape;
    if ((t == DT_I64 || t == DT_I32) && (c->in[0]->dtype == DT_I64 || c->in[0]->dtype == DT_I32))
        copy_known(c->out[0], c->in[0]);
    return 0;
}

/* Known-content arithmetic for scalar/vector shape math (e.g. batch*50). */
static void binary_known(InferCtx *c)
{
    Dim a[IR_MAX_KNOWN], b[IR_MAX_KNOWN];
    int na = infer_get_ints(c, 0, a, IR_MAX_KNOWN), nb = infer_get_ints(c, 1, b, IR_MAX_KNOWN);
    if (na < 0 || nb < 0 || (na != nb && na != 1 && nb != 1)) return;
    if (c->in[0]->dtype != DT_I64 && c->in[0]->dtype != DT_I32) return;
    int n = na > nb ? na : nb, op = c->node->op;
    ValueInfo *o = c->out[0];
    for (int i = 0; i < n; i++) {
        Dim x = a[na == 1 ? 0 : i], y = b[nb == 1 ? 0 : i], r;
        switch (op) {
        case OP_ADD: r = dim_add(x, y); break;
        case OP_SUB: r = dim_sub(x, y); break;
        case OP_MUL: r = dim_mul(x, y); break;
        case OP_DIV:
            /* integer Div truncates; only exact divisions are representable */
            r = dim_div(x, y);
            if (dim_is_const(x) && dim_is_const(y) && y.n != 0) r = dim_const(x.n / y.n);
            break;
        case OP_MOD: /* integer Mod: the result takes the divisor's sign (fmod=0) */
            if (!dim_is_const(x) || !dim_is_const(y) || y.n == 0 || node_attr_i(c->node, "fmod", 0)) r = dim_unknown();
            else {
                int64_t m = (x.n == INT64_MIN && y.n == -1) ? 0 : x.n % y.n;
                if (m != 0 && ((m < 0) != (y.n < 0))) m += y.n;
                r = dim_const(m);
            }
            break;
        case OP_MAX: case OP_MIN:
            if (!dim_is_const(x) || !dim_is_const(y)) r = dim_unknown();
            else r = dim_const(op == OP_MAX ? (x.n > y.n ? x.n : y.n) : (x.n < y.n ? x.n : y.n));
            break;
        default: r = dim_unknown();
        }
        o->known[i] = r;
    }
    o->n_known = n;
}

int infer_binary(InferCtx *c)
{
    if (need_inputs(c, 2)) return -1;
    if (c->in[0]->dtype != c->in[1]->dtype && c->node->op != OP_POW)
        return infer_fail(c, "input dtypes differ (%s vs %s)", dtype_name(c->in[0]->dtype),
                          dtype_name(c->in[1]->dtype));
    c->out[0]->dtype = c->in[0]->dtype;
    if (infer_broadcast_shapes(c, &c->in[0]->shape, &c->in[1]->shape, &c->out[0]->shape)) return -1;
    if (c->out[0]->shape.rank <= 1) binary_known(c);
    return 0;
}

/* Equal on shape vectors, e.g. Equal([batch,-1,-1], -1) from torch's expand:
 * a dim (>= 0) never equals a negative constant. Bools are stored as 0/1. */
static void equal_known(InferCtx *c)
{
    Dim a[IR_MAX_KNOWN], b[IR_MAX_KNOWN];
    int na = infer_get_ints(c, 0, a, IR_MAX_KNOWN), nb = infer_get_ints(c, 1, b, IR_MAX_KNOWN);
    if (na < 0 || nb < 0 || (na != nb && na != 1 && nb != 1)) return;
    int n = na > nb ? na : nb;
    Dim r[IR_MAX_KNOWN];
    for (int i = 0; i < n; i++) {
        Dim x = a[na == 1 ? 0 : i], y = b[nb == 1 ? 0 : i];
        if (dim_is_const(x) && dim_is_const(y)) r[i] = dim_const(x.n == y.n);
        else if (dim_equal(x, y)) r[i] = dim_const(1);
        else if ((x.sym >= 0 && dim_is_const(y) && y.n < 0) || (y.sym >= 0 && dim_is_const(x) && x.n < 0)) r[i] = dim_const(0);
        else return;
    }
    memcpy(c->out[0]->known, r, sizeof(Dim) * (size_t)n);
    c->out[0]->n_known = n;
}

int infer_compare(InferCtx *c)
{
    if (need_inputs(c, 2)) return -1;
    if (c->in[0]->dtype != c->in[1]->dtype)
        return infer_fail(c, "input dtypes differ (%s vs %s)", dtype_name(c->in[0]->dtype),
                          dtype_name(c->in[1]->dtype));
    int op = c->node->op;
    if ((op == OP_AND || op == OP_OR || op == OP_XOR) && c->in[0]->dtype != DT_BOOL)
        return infer_fail(c, "expects bool inputs");
    c->out[0]->dtype = DT_BOOL;
    if (infer_broadcast_shapes(c, &c->in[0]->shape, &c->in[1]->shape, &c->out[0]->shape)) return -1;
    if (op == OP_EQUAL && c->out[0]->shape.rank <= 1 && (c->in[0]->dtype == DT_I64 || c->in[0]->dtype == DT_I32))
        equal_known(c);
    return 0;
}

int infer_where(InferCtx *c)
{
    if (need_inputs(c, 3)) return -1;
    if (c->in[0]->dtype != DT_BOOL) return infer_fail(c, "condition must be bool");
    if (c->in[1]->dtype != c->in[2]->dtype) return infer_fail(c, "X and Y dtypes differ");
    Shape t;
    if (infer_broadcast_shapes(c, &c->in[0]->shape, &c->in[1]->shape, &t)) return -1;
    c->out[0]->dtype = c->in[1]->dtype;
    if (infer_broadcast_shapes(c, &t, &c->in[2]->shape, &c->out[0]->shape)) return -1;
    /* select between shape vectors when the condition is known */
    Dim k[IR_MAX_KNOWN], x[IR_MAX_KNOWN], y[IR_MAX_KNOWN];
    int nk = c->in[0]->n_known, nx = infer_get_ints(c, 1, x, IR_MAX_KNOWN), ny = infer_get_ints(c, 2, y, IR_MAX_KNOWN);
    if (c->out[0]->shape.rank > 1 || nk < 0 || nx < 0 || ny < 0) return 0;
    if (c->in[1]->dtype != DT_I64 && c->in[1]->dtype != DT_I32) return 0;
    memcpy(k, c->in[0]->known, sizeof(Dim) * (size_t)nk);
    int n = nk > nx ? nk : nx;
    n = n > ny ? n : ny;
    if ((nk != n && nk != 1) || (nx != n && nx != 1) || (ny != n && ny != 1)) return 0;
    for (int i = 0; i < n; i++) {
        Dim ci = k[nk == 1 ? 0 : i];
        if (!dim_is_const(ci)) return 0;
        c->out[0]->known[i] = ci.n ? x[nx == 1 ? 0 : i] : y[ny == 1 ? 0 : i];
    }
    c->out[0]->n_known = n;
    return 0;
}

/* ai.vclip.FusedElementwise: its registers (ir/loads.h: the f32 inputs, or
 * views of them) broadcast together */
int infer_fused_elementwise(InferCtx *c)
{
    if (need_inputs(c, 1)) return -1;
    LoadPlan lp;
    Shape regs[64];
    if (loads_decode(c->node, &lp, c->err, sizeof c->err)) return -1;
    int rc = lp.n_loads > 64 ? infer_fail(c, "more than 64 registers") : loads_shapes(&lp, c->node, c->opset, c->in, regs, c->err, sizeof c->err);
    Shape s = regs[0];
    for (int i = 1; !rc && i < lp.n_loads; i++) {
        Shape t = s; /* infer_broadcast_shapes must not write over its input */
        rc = infer_broadcast_shapes(c, &t, &regs[i], &s);
    }
    loads_free(&lp);
    if (rc) return -1;
    c->out[0]->dtype = DT_F32;
    c->out[0]->shape = s;
    return 0;
}

/* ai.vclip.FusedReduce: inputs of one shape (or single elements), reduced
 * over the last axis; attributes reduce = sum|mean|max, keepdims */
int infer_fused_reduce(InferCtx *c)
{
    if (need_inputs(c, 1)) return -1;
    const char *r = node_attr_s(c->node, "reduce", "");
    if (strcmp(r, "sum") && strcmp(r, "mean") && strcmp(r, "max")) return infer_fail(c, "reduce must be sum, mean or max, not '%s'", r);
    Shape s = {.rank = -1};
    for (int i = 0; i < c->n_in; i++) {
        const ValueInfo *x = c->in[i];
        if (x->dtype != DT_F32) return infer_fail(c, "input %d is %s, not f32", i, dtype_name(x->dtype));
        if (x->shape.rank < 0) { c->out[0]->dtype = DT_F32; c->out[0]->shape.rank = -1; return 0; }
        if (x->shape.rank >= 0 && shape_is_const(&x->shape) && shape_numel(&x->shape) == 1) continue; /* a single element */
        if (s.rank < 0) { s = x->shape; continue; }
        if (x->shape.rank != s.rank) return infer_fail(c, "inputs must share one shape (or hold one element)");
        for (int d = 0; d < s.rank; d++)
            if (dim_is_const(x->shape.d[d]) && dim_is_const(s.d[d]) && x->shape.d[d].n != s.d[d].n)
                return infer_fail(c, "input %d: dimension %d is %lld, not %lld", i, d, (long long)x->shape.d[d].n, (long long)s.d[d].n);
    }
    c->out[0]->dtype = DT_F32;
    if (s.rank < 0) s = c->in[0]->shape; /* every input a single element */
    if (s.rank < 1) return infer_fail(c, "needs inputs of rank 1 or more");
    if (node_attr_i(c->node, "keepdims", 1)) s.d[s.rank - 1] = dim_const(1);
    else s.rank--;
    c->out[0]->shape = s;
    return 0;
}
