/* infer_linear.c — shape rules for MatMul, Gemm and Conv, and the Conv
 * attribute decoder the kernels share. */
#include <string.h>
#include "ops.h"

static int check_dim(InferCtx *c, Dim a, Dim b, const char *what)
{
    if (dim_is_const(a) && dim_is_const(b) && a.n != b.n)
        return infer_fail(c, "%s mismatch: %lld vs %lld", what, (long long)a.n, (long long)b.n);
    return 0;
}

int infer_matmul(InferCtx *c)
{
    if (c->n_in < 2 || !c->in[0] || !c->in[1]) return infer_fail(c, "expects 2 inputs");
    const ValueInfo *a = c->in[0], *b = c->in[1];
    if (a->dtype != b->dtype) return infer_fail(c, "input dtypes differ");
    ValueInfo *o = c->out[0];
    o->dtype = a->dtype;
    if (a->shape.rank < 0 || b->shape.rank < 0) { o->shape.rank = -1; return 0; }
    if (a->shape.rank == 0 || b->shape.rank == 0) return infer_fail(c, "scalar operand");
    Shape sa = a->shape, sb = b->shape;
    int va = sa.rank == 1, vb = sb.rank == 1;
    if (va) { sa.rank = 2; sa.d[1] = sa.d[0]; sa.d[0] = dim_const(1); }
    if (vb) { sb.rank = 2; sb.d[1] = dim_const(1); }
    if (check_dim(c, sa.d[sa.rank - 1], sb.d[sb.rank - 2], "inner dimension")) return -1;
    Shape ba = sa, bb = sb, bo;
    ba.rank -= 2;
    bb.rank -= 2;
    if (infer_broadcast_shapes(c, &ba, &bb, &bo)) return -1;
    o->shape = bo;
    if (!va) o->shape.d[o->shape.rank++] = sa.d[sa.rank - 2];
    if (!vb) o->shape.d[o->shape.rank++] = sb.d[sb.rank - 1];
    return 0;
}

int infer_gemm(InferCtx *c)
{
    if (c->n_in < 2 || !c->in[0] || !c->in[1]) return infer_fail(c, "expects A and B");
    const ValueInfo *a = c->in[0], *b = c->in[1];
    ValueInfo *o = c->out[0];
    o->dtype = a->dtype;
    if (a->shape.rank != 2 || b->shape.rank != 2) return infer_fail(c, "A and B must be 2-D");
    int ta = (int)node_attr_i(c->node, "transA", 0), tb = (int)node_attr_i(c->node, "transB", 0);
    Dim m = a->shape.d[ta ? 1 : 0], ka = a->shape.d[ta ? 0 : 1];
    Dim kb = b->shape.d[tb ? 1 : 0], n = b->shape.d[tb ? 0 : 1];
    if (check_dim(c, ka, kb, "inner dimension")) return -1;
    o->shape.rank = 2;
    o->shape.d[0] = m;
    o->shape.d[1] = n;
    if (c->n_in > 2 && c->in[2]) {
        Shape t;
        if (infer_broadcast_shapes(c, &o->shape, &c->in[2]->shape, &t)) return -1;
    }
    return 0;
}

static int get_ints_attr(InferCtx *c, const char *name, int n, int64_t *dst, int64_t dflt)
{
    const Attr *a = node_attr(c->node, name);
    for (int i = 0; i < n; i++) dst[i] = dflt;
    if (!a) return 0;
    if (a->type != ATTR_INTS || a->n != n) return infer_fail(c, "attribute '%s' needs %d values", name, n);
    memcpy(dst, a->ints, sizeof(int64_t) * (size_t)n);
    return 0;
}

int op_conv_params(InferCtx *c, ConvParams *p, Shape *out)
{
    const ValueInfo *x = c->in[0], *w = c->in[1];
    if (x->shape.rank < 3 || w->shape.rank != x->shape.rank)
        return infer_fail(c, "X and W must have the same rank >= 3");
    memset(p, 0, sizeof *p);
    p->nsp = x->shape.rank - 2;
    p->group = node_attr_i(c->node, "group", 1);
    if (p->group < 1) return infer_fail(c, "group must be >= 1");
    for (int i = 0; i < p->nsp; i++) {
        if (!dim_is_const(w->shape.d[2 + i])) return infer_fail(c, "kernel dims must be static");
        p->k[i] = w->shape.d[2 + i].n;
    }
    int64_t pads[IR_MAX_RANK * 2];
    if (get_ints_attr(c, "strides", p->nsp, p->stride, 1) ||
        get_ints_attr(c, "dilations", p->nsp, p->dil, 1) ||
        get_ints_attr(c, "pads", 2 * p->nsp, pads, 0))
        return -1;
    const char *ap = node_attr_s(c->node, "auto_pad", "NOTSET");
    out->rank = x->shape.rank;
    out->d[0] = x->shape.d[0];
    out->d[1] = w->shape.d[0];
    for (int i = 0; i < p->nsp; i++) {
        if (p->stride[i] < 1 || p->dil[i] < 1 || p->k[i] < 1)
            return infer_fail(c, "strides, dilations and kernel dims must be >= 1");
        p->pad_lo[i] = pads[i];
        p->pad_hi[i] = pads[p->nsp + i];
        Dim in = x->shape.d[2 + i];
        if (!dim_is_const(in)) { out->d[2 + i] = dim_unknown(); continue; }
        int64_t ek = p->dil[i] * (p->k[i] - 1) + 1;
        if (strcmp(ap, "SAME_UPPER") == 0 || strcmp(ap, "SAME_LOWER") == 0) {
            int64_t o = (in.n + p->stride[i] - 1) / p->stride[i];
            int64_t total = (o - 1) * p->stride[i] + ek - in.n;
            if (total < 0) total = 0;
            p->pad_lo[i] = strcmp(ap, "SAME_UPPER") == 0 ? total / 2 : total - total / 2;
            p->pad_hi[i] = total - p->pad_lo[i];
        } else if (strcmp(ap, "VALID") == 0) {
            p->pad_lo[i] = p->pad_hi[i] = 0;
        }
        if (p->pad_lo[i] < 0 || p->pad_hi[i] < 0) return infer_fail(c, "negative pads");
        int64_t span = in.n + p->pad_lo[i] + p->pad_hi[i] - ek;
        if (span < 0) return infer_fail(c, "kernel larger than padded input");
        out->d[2 + i] = dim_const(span / p->stride[i] + 1);
    }
    Dim cin = x->shape.d[1], wc = w->shape.d[1];
    if (dim_is_const(cin) && dim_is_const(wc) && cin.n != wc.n * p->group)
        return infer_fail(c, "input channels %lld != %lld x group %lld", (long long)cin.n,
                          (long long)wc.n, (long long)p->group);
    if (dim_is_const(w->shape.d[0]) && w->shape.d[0].n % p->group)
        return infer_fail(c, "output channels not divisible by group");
    return 0;
}

int infer_conv(InferCtx *c)
{
    if (c->n_in < 2 || !c->in[0] || !c->in[1]) return infer_fail(c, "expects X and W");
    if (c->in[0]->dtype != c->in[1]->dtype) return infer_fail(c, "X and W dtypes differ");
    c->out[0]->dtype = c->in[0]->dtype;
    if (c->in[0]->shape.rank < 0) { c->out[0]->shape.rank = -1; return 0; }
    ConvParams p;
    return op_conv_params(c, &p, &c->out[0]->shape);
}

int op_linear_params(InferCtx *c, LinearParams *p)
{
    const Node *n = c->node;
    const ValueInfo *w = c->in[1];
    const char *act = node_attr_s(n, "activation", "");
    p->act = !*act ? LINEAR_ACT_NONE : !strcmp(act, "quick_gelu") ? LINEAR_ACT_QUICK_GELU : !strcmp(act, "gelu") ? LINEAR_ACT_GELU : -1;
    if (p->act < 0) return infer_fail(c, "unknown activation '%s' (expected quick_gelu or gelu)", act);
    p->has_bias = c->n_in > 2 && c->in[2];
    p->has_residual = c->n_in > 3 && c->in[3];
    p->bf16 = node_attr_i(n, "bf16", 0) != 0;
    p->bf16_output = node_attr_i(n, "bf16_output", 0) != 0;
    p->pad_rows = node_attr_i(n, "pad_rows", 0);
    p->pad_columns = node_attr_i(n, "pad_columns", 0);
    p->packed = w->shape.rank == 3 || w->shape.rank == 4 ? w->shape.rank : 0;
    if (w->shape.rank < 2 || w->shape.rank > 4)
        return infer_fail(c, "W must be [K, N] or packed ([panels, K, %d] f32, [panels, K/2, %d, 2] bf16)", LINEAR_PANEL, LINEAR_PANEL);
    if ((p->packed == 4) != (w->dtype == DT_BF16)) return infer_fail(c, "a bf16 W must be packed in k pairs, and only a bf16 W");
    if (p->bf16_output && w->dtype != DT_BF16) return infer_fail(c, "bf16_output needs a bf16 W");
    if (!shape_is_const(&w->shape)) { p->K = p->N = -1; return 0; }
    if (p->packed) {
        p->K = p->packed == 3 ? w->shape.d[1].n : node_attr_i(n, "packed_k", -1);
        p->N = node_attr_i(n, "packed_n", -1);
        int64_t rows = p->packed == 3 ? p->K : (p->K + 1) / 2;
        if (p->N < 0 || p->K < 0 || w->shape.d[2].n != LINEAR_PANEL || (p->packed == 4 && w->shape.d[3].n != 2) ||
            w->shape.d[1].n != rows || (p->N + LINEAR_PANEL - 1) / LINEAR_PANEL != w->shape.d[0].n)
            return infer_fail(c, "packed W [%lld, %lld, %lld%s] does not hold packed_n = %lld columns (packed_k = %lld) in panels of %d",
                              (long long)w->shape.d[0].n, (long long)w->shape.d[1].n, (long long)w->shape.d[2].n,
                              p->packed == 4 ? ", 2" : "", (long long)p->N, (long long)p->K, LINEAR_PANEL);
    } else {
        p->K = w->shape.d[0].n;
        p->N = w->shape.d[1].n;
    }
    if (p->pad_rows < 0 || p->pad_rows >= (p->K > 0 ? p->K : 1) || p->pad_columns < 0 || p->pad_columns >= (p->N > 0 ? p->N : 1))
        return infer_fail(c, "pad_rows = %lld and pad_columns = %lld must leave some of W [%lld, %lld]", (long long)p->pad_rows,
                          (long long)p->pad_columns, (long long)p->K, (long long)p->N);
    return 0;
}

/* ai.vclip.Linear: see LinearParams in ops.h */
int infer_linear_op(InferCtx *c)
{
    if (c->n_in < 2 || !c->in[0] || !c->in[1]) return infer_fail(c, "expects X and W");
    if (c->n_in > 4) return infer_fail(c, "expects at most X, W, B and a residual");
    const ValueInfo *x = c->in[0], *w = c->in[1], *b = c->n_in > 2 ? c->in[2] : NULL;
    /* the dtype of the sums, B and R: X's, or f32 where X and W are bf16 */
    DType sums = x->dtype == DT_BF16 && w->dtype == DT_BF16 ? DT_F32 : x->dtype;
    if ((x->dtype != w->dtype && !(x->dtype == DT_F32 && w->dtype == DT_BF16)) || (b && b->dtype != sums))
        return infer_fail(c, "input dtypes differ");
    LinearParams p;
    if (op_linear_params(c, &p)) return -1;
    if (b && b->shape.rank != 1) return infer_fail(c, "B must be 1-D");
    ValueInfo *o = c->out[0];
    o->dtype = p.bf16_output ? DT_BF16 : sums;
    if (x->shape.rank < 1 || p.K < 0) { o->shape.rank = -1; return 0; }
    Dim k = dim_const(p.K), nn = dim_const(p.N);
    if (!p.packed) { k = w->shape.d[0]; nn = w->shape.d[1]; }
    if (check_dim(c, x->shape.d[x->shape.rank - 1], k, "inner dimension")) return -1;
    if (b && check_dim(c, b->shape.d[0], nn, "bias length")) return -1;
    o->shape = x->shape;
    o->shape.d[o->shape.rank - 1] = nn;
    if (p.has_residual) {
        const ValueInfo *r = c->in[3];
        if (r->dtype != sums) return infer_fail(c, "residual dtype differs");
        if (r->shape.rank >= 0 && r->shape.rank != o->shape.rank) return infer_fail(c, "residual must have the output's shape");
        for (int d = 0; r->shape.rank >= 0 && d < r->shape.rank; d++)
            if (check_dim(c, r->shape.d[d], o->shape.d[d], "residual dimension")) return -1;
    }
    return 0;
}
