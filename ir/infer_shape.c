/* infer_shape.c — shape rules for the shape and data-movement ops (Shape,
 * Reshape, Slice, Gather, Concat, ...).  These propagate the known content of
 * shape vectors, which is what folds the Shape->Gather->Concat chains of
 * exports into static or batch-symbolic shapes. */
#include <string.h>
#include "ops.h"

#define BIG_END ((int64_t)1 << 62)

static int need(InferCtx *c, int n)
{
    for (int i = 0; i < n; i++)
        if (i >= c->n_in || !c->in[i]) return infer_fail(c, "expects at least %d inputs", n);
    return 0;
}

static int is_int(DType t) { return t == DT_I64 || t == DT_I32; }

static int shape_from_ints(InferCtx *c, int idx, Shape *s)
{
    Dim v[IR_MAX_RANK + 1];
    const ValueInfo *x = c->in[idx];
    int n = infer_get_ints(c, idx, v, IR_MAX_RANK);
    if (n < 0) {
        if (x->shape.rank == 1 && dim_is_const(x->shape.d[0]) && (x->shape.d[0].n > IR_MAX_RANK || x->shape.d[0].n < 0))
            return infer_fail(c, "shape input of length %lld (the maximum rank is %d)", (long long)x->shape.d[0].n, IR_MAX_RANK);
        s->rank = (x->shape.rank == 1 && dim_is_const(x->shape.d[0])) ? (int)x->shape.d[0].n : -1;
        for (int i = 0; i < s->rank; i++) s->d[i] = dim_unknown();
        return 0;
    }
    s->rank = n;
    for (int i = 0; i < n; i++) s->d[i] = v[i];
    return 0;
}

int infer_shape_op(InferCtx *c)
{
    if (need(c, 1)) return -1;
    const Shape *s = &c->in[0]->shape;
    ValueInfo *o = c->out[0];
    o->dtype = DT_I64;
    o->shape.rank = 1;
    if (s->rank < 0) { o->shape.d[0] = dim_unknown(); return 0; }
    int64_t start = node_attr_i(c->node, "start", 0), end = node_attr_i(c->node, "end", s->rank);
    if (start < 0) start += s->rank;
    if (end < 0) end += s->rank;
    if (start < 0) start = 0;
    if (end > s->rank) end = s->rank;
    if (end < start) end = start;
    o->shape.d[0] = dim_const(end - start);
    o->n_known = (int)(end - start);
    for (int64_t i = start; i < end; i++) o->known[i - start] = s->d[i];
    return 0;
}

int infer_size(InferCtx *c)
{
    if (need(c, 1)) return -1;
    ValueInfo *o = c->out[0];
    o->dtype = DT_I64;
    o->shape.rank = 0;
    int64_t n = shape_numel(&c->in[0]->shape);
    if (n >= 0) { o->n_known = 1; o->known[0] = dim_const(n); }
    return 0;
}

int infer_constant(InferCtx *c)
{
    const Node *n = c->node;
    ValueInfo *o = c->out[0];
    const Attr *a = n->n_attrs == 1 ? &n->attrs[0] : NULL;
    if (!a) return infer_fail(c, "needs exactly one value attribute");
    if (strcmp(a->name, "value") == 0 && a->type == ATTR_TENSOR) {
        o->dtype = a->t->dtype;
        o->shape.rank = a->t->rank;
        for (int i = 0; i < a->t->rank; i++) o->shape.d[i] = dim_const(a->t->dims[i]);
        ValueInfo tmp;
        value_info_from_tensor(&tmp, a->t);
        o->n_known = tmp.n_known;
        memcpy(o->known, tmp.known, sizeof tmp.known);
        return 0;
    }
    if (strcmp(a->name, "value_float") == 0) { o->dtype = DT_F32; o->shape.rank = 0; return 0; }
    if (strcmp(a->name, "value_int") == 0) {
        o->dtype = DT_I64; o->shape.rank = 0;
        o->n_known = 1; o->known[0] = dim_const(a->i);
        return 0;
    }
    if (strcmp(a->name, "value_floats") == 0 || strcmp(a->name, "value_ints") == 0) {
        o->dtype = a->type == ATTR_INTS ? DT_I64 : DT_F32;
        o->shape.rank = 1;
        o->shape.d[0] = dim_const(a->n);
        if (a->type == ATTR_INTS && a->n <= IR_MAX_KNOWN) {
            o->n_known = a->n;
            for (int i = 0; i < a->n; i++) o->known[i] = dim_const(a->ints[i]);
        }
        return 0;
    }
    return infer_fail(c, "unsupported value attribute '%s'", a->name);
}

int infer_constant_of_shape(InferCtx *c)
{
    if (need(c, 1)) return -1;
    const Attr *a = node_attr(c->node, "value");
    ValueInfo *o = c->out[0];
    o->dtype = (a && a->type == ATTR_TENSOR) ? a->t->dtype : DT_F32;
    if (a && a->type == ATTR_TENSOR && tensor_numel(a->t) != 1)
        return infer_fail(c, "value must hold one element");
    if (shape_from_ints(c, 0, &o->shape)) return -1;
    for (int i = 0; i < o->shape.rank; i++)
        if (dim_is_const(o->shape.d[i]) && o->shape.d[i].n < 0) return infer_fail(c, "negative dim");
    int64_t n = shape_numel(&o->shape);
    if (is_int(o->dtype) && o->shape.rank <= 1 && n >= 0 && n <= IR_MAX_KNOWN) {
        int64_t v = (a && a->type == ATTR_TENSOR) ? tensor_get_i64(a->t, 0) : 0;
        o->n_known = (int)n;
        for (int i = 0; i < n; i++) o->known[i] = dim_const(v);
    }
    return 0;
}

int infer_range(InferCtx *c)
{
    if (need(c, 3)) return -1;
    ValueInfo *o = c->out[0];
    o->dtype = c->in[0]->dtype;
    o->shape.rank = 1;
    o->shape.d[0] = dim_unknown();
    const Tensor *s = c->in[0]->data, *l = c->in[1]->data, *d = c->in[2]->data;
    Dim ks, kl, kd;
    if (!(s && l && d) && infer_get_ints(c, 0, &ks, 1) == 1 && infer_get_ints(c, 1, &kl, 1) == 1 &&
        infer_get_ints(c, 2, &kd, 1) == 1 && dim_is_const(kd) && kd.n == 1) {
        o->shape.d[0] = dim_sub(kl, ks); /* arange(batch): length batch */
        if (dim_is_const(o->shape.d[0]) && o->shape.d[0].n < 0) o->shape.d[0] = dim_const(0); /* limit below start: empty */
        return 0;
    }
    if (s && l && d) {
        if (tensor_numel(s) != 1 || tensor_numel(l) != 1 || tensor_numel(d) != 1)
            return infer_fail(c, "start, limit and delta must be scalars");
        double st = tensor_get_f64(s, 0), li = tensor_get_f64(l, 0), de = tensor_get_f64(d, 0);
        if (de == 0) return infer_fail(c, "delta is zero");
        double cnt = (li - st) / de;
        if (cnt != cnt || cnt > 1e12) return infer_fail(c, "range too long or undefined");
        int64_t n = cnt <= 0 ? 0 : (int64_t)cnt;
        if (n < cnt) n++;
        o->shape.d[0] = dim_const(n);
        if (is_int(o->dtype) && n <= IR_MAX_KNOWN) {
            o->n_known = (int)n;
            for (int64_t i = 0; i < n; i++)
                o->known[i] = dim_const((int64_t)((uint64_t)tensor_get_i64(s, 0) + (uint64_t)i * (uint64_t)tensor_get_i64(d, 0)));
        }
    }
    return 0;
}

static Dim product(const Shape *s, int from, int to)
{
    Dim p = dim_const(1);
    for (int i = from; i < to; i++) p = dim_mul(p, s->d[i]);
    return p;
}

int infer_reshape(InferCtx *c)
{
    if (need(c, 2)) return -1;
    const ValueInfo *x = c->in[0];
    ValueInfo *o = c->out[0];
    o->dtype = x->dtype;
    Shape t;
    if (shape_from_ints(c, 1, &t)) return -1;
    if (t.rank < 0) { o->shape.rank = -1; return 0; }
    int allowzero = (int)node_attr_i(c->node, "allowzero", 0), infer_at = -1;
    Dim rest = dim_const(1);
    for (int i = 0; i < t.rank; i++) {
        Dim d = t.d[i];
        if (dim_is_const(d) && d.n == 0 && !allowzero) {
            if (x->shape.rank < 0 || i >= x->shape.rank) {
                if (x->shape.rank >= 0) return infer_fail(c, "0 at axis %d beyond input rank", i);
                t.d[i] = dim_unknown();
            } else t.d[i] = x->shape.d[i];
        } else if (dim_is_const(d) && d.n == -1) {
            if (infer_at >= 0) return infer_fail(c, "more than one -1 in target shape");
            infer_at = i;
            continue;
        } else if (dim_is_const(d) && d.n < 0) return infer_fail(c, "invalid target dim %lld", (long long)d.n);
        rest = dim_mul(rest, t.d[i]);
    }
    Dim total = x->shape.rank >= 0 ? product(&x->shape, 0, x->shape.rank) : dim_unknown();
    if (infer_at >= 0) {
        if (dim_is_const(rest) && rest.n == 0) return infer_fail(c, "cannot infer -1 with a zero dim");
        t.d[infer_at] = dim_div(total, rest);
        if (dim_is_const(total) && dim_is_const(rest) && total.n % rest.n)
            return infer_fail(c, "cannot reshape %lld elements into a multiple of %lld",
                              (long long)total.n, (long long)rest.n);
    } else if (dim_is_const(total) && dim_is_const(rest) && total.n != rest.n)
        return infer_fail(c, "cannot reshape %lld elements into %lld", (long long)total.n, (long long)rest.n);
    o->shape = t;
    if (x->n_known >= 0 && t.rank <= 1) {
        o->n_known = x->n_known;
        memcpy(o->known, x->known, sizeof(Dim) * (size_t)x->n_known);
    }
    return 0;
}

int infer_flatten(InferCtx *c)
{
    if (need(c, 1)) return -1;
    const Shape *s = &c->in[0]->shape;
    ValueInfo *o = c->out[0];
    o->dtype = c->in[0]->dtype;
    if (s->rank < 0) { o->shape.rank = -1; return 0; }
    int64_t axis = node_attr_i(c->node, "axis", 1);
    if (axis < 0) axis += s->rank;
    if (axis < 0 || axis > s->rank) return infer_fail(c, "axis out of range");
    o->shape.rank = 2;
    o->shape.d[0] = product(s, 0, (int)axis);
    o->shape.d[1] = product(s, (int)axis, s->rank);
    return 0;
}

static int axes_from_attr_or_input(InferCtx *c, int from_opset, Dim *ax, int cap)
{
    if (c->opset >= from_opset) {
        if (c->n_in < 2 || !c->in[1]) return 0;
        int n = infer_get_ints(c, 1, ax, cap);
        return n < 0 ? infer_fail(c, "axes input is not a known constant") : n;
    }
    const Attr *a = node_attr(c->node, "axes");
    if (!a) return 0;
    if (a->type != ATTR_INTS || a->n > cap) return infer_fail(c, "bad 'axes' attribute");
    for (int i = 0; i < a->n; i++) ax[i] = dim_const(a->ints[i]);
    return a->n;
}

int op_unsqueeze_axes(InferCtx *c, int out_rank, uint8_t *mask)
{
    Dim ax[IR_MAX_RANK];
    int n = axes_from_attr_or_input(c, 13, ax, IR_MAX_RANK);
    if (n < 0) return -1;
    if (n == 0) return infer_fail(c, "no axes");
    memset(mask, 0, IR_MAX_RANK);
    for (int i = 0; i < n; i++) {
        int64_t a;
        if (norm_axis(ax[i].n, out_rank, &a) || mask[a]) return infer_fail(c, "bad axis %lld", (long long)ax[i].n);
        mask[a] = 1;
    }
    return 0;
}

int infer_unsqueeze(InferCtx *c)
{
    if (need(c, 1)) return -1;
    const ValueInfo *x = c->in[0];
    ValueInfo *o = c->out[0];
    o->dtype = x->dtype;
    if (x->shape.rank < 0) { o->shape.rank = -1; return 0; }
    Dim ax[IR_MAX_RANK];
    int n = axes_from_attr_or_input(c, 13, ax, IR_MAX_RANK);
    if (n < 0) return -1;
    int r = x->shape.rank + n;
    if (r > IR_MAX_RANK) return infer_fail(c, "rank %d exceeds the maximum %d", r, IR_MAX_RANK);
    uint8_t mask[IR_MAX_RANK];
    if (op_unsqueeze_axes(c, r, mask)) return -1;
    o->shape.rank = r;
    for (int i = 0, k = 0; i < r; i++) o->shape.d[i] = mask[i] ? dim_const(1) : x->shape.d[k++];
    if (x->n_known >= 0 && r <= 1) { o->n_known = x->n_known; memcpy(o->known, x->known, sizeof o->known); }
    return 0;
}

int op_squeeze_axes(InferCtx *c, const Shape *in, uint8_t *mask)
{
    Dim ax[IR_MAX_RANK];
    int n = axes_from_attr_or_input(c, 13, ax, IR_MAX_RANK);
    if (n < 0) return -1;
    memset(mask, 0, IR_MAX_RANK);
    if (n == 0) {
        for (int i = 0; i < in->rank; i++) mask[i] = dim_is_const(in->d[i]) && in->d[i].n == 1;
        return 0;
    }
    for (int i = 0; i < n; i++) {
        int64_t a;
        if (norm_axis(ax[i].n, in->rank, &a)) return infer_fail(c, "axis out of range");
        if (dim_is_const(in->d[a]) && in->d[a].n != 1) return infer_fail(c, "cannot squeeze axis %lld of size %lld", (long long)a, (long long)in->d[a].n);
        mask[a] = 1;
    }
    return 0;
}

int infer_squeeze(InferCtx *c)
{
    if (need(c, 1)) return -1;
    const ValueInfo *x = c->in[0];
    ValueInfo *o = c->out[0];
    o->dtype = x->dtype;
    if (x->shape.rank < 0) { o->shape.rank = -1; return 0; }
    uint8_t mask[IR_MAX_RANK];
    if (op_squeeze_axes(c, &x->shape, mask)) return -1;
    o->shape.rank = 0;
    for (int i = 0; i < x->shape.rank; i++)
        if (!mask[i]) o->shape.d[o->shape.rank++] = x->shape.d[i];
    if (x->n_known >= 0 && o->shape.rank <= 1) { o->n_known = x->n_known; memcpy(o->known, x->known, sizeof o->known); }
    return 0;
}

int op_transpose_perm(InferCtx *c, int rank, int *perm)
{
    const Attr *a = node_attr(c->node, "perm");
    if (!a) {
        for (int i = 0; i < rank; i++) perm[i] = rank - 1 - i;
        return 0;
    }
    if (a->type != ATTR_INTS || a->n != rank) return infer_fail(c, "perm must list %d axes", rank);
    uint8_t seen[IR_MAX_RANK] = {0};
    for (int i = 0; i < rank; i++) {
        if (a->ints[i] < 0 || a->ints[i] >= rank || seen[a->ints[i]]) return infer_fail(c, "perm is not a permutation");
        seen[a->ints[i]] = 1;
        perm[i] = (int)a->ints[i];
    }
    return 0;
}

int infer_transpose(InferCtx *c)
{
    if (need(c, 1)) return -1;
    const ValueInfo *x = c->in[0];
    ValueInfo *o = c->out[0];
    o->dtype = x->dtype;
    o->shape.rank = x->shape.rank;
    if (x->shape.rank < 0) return 0;
    int perm[IR_MAX_RANK];
    if (op_transpose_perm(c, x->shape.rank, perm)) return -1;
    for (int i = 0; i < x->shape.rank; i++) o->shape.d[i] = x->shape.d[perm[i]];
    return 0;
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

int op_slice_params(InferCtx *c, const Shape *in, SliceParams *p, Shape *out)
{
    Dim st[IR_MAX_RANK], en[IR_MAX_RANK], ax[IR_MAX_RANK], sp[IR_MAX_RANK];
    int n, ne, na = -1, ns = -1;
    if (c->opset >= 10) {
        if (need(c, 3)) return -1;
        n = infer_get_ints(c, 1, st, IR_MAX_RANK);
        ne = infer_get_ints(c, 2, en, IR_MAX_RANK);
        if (c->n_in > 3 && c->in[3]) na = infer_get_ints(c, 3, ax, IR_MAX_RANK);
        if (c->n_in > 4 && c->in[4]) ns = infer_get_ints(c, 4, sp, IR_MAX_RANK);
        if (n < 0 || ne != n || (c->n_in > 3 && c->in[3] && na != n) || (c->n_in > 4 && c->in[4] && ns != n))
            return infer_fail(c, "starts/ends/axes/steps must be known and of equal length");
    } else {
        const Attr *s = node_attr(c->node, "starts"), *e = node_attr(c->node, "ends"), *a = node_attr(c->node, "axes");
        if (!s || !e || s->n != e->n || s->n > IR_MAX_RANK) return infer_fail(c, "bad starts/ends");
        n = s->n;
        for (int i = 0; i < n; i++) { st[i] = dim_const(s->ints[i]); en[i] = dim_const(e->ints[i]); }
        if (a) { if (a->n != n) return infer_fail(c, "bad axes"); na = n; for (int i = 0; i < n; i++) ax[i] = dim_const(a->ints[i]); }
    }
    *out = *in;
    for (int i = 0; i < in->rank; i++) { p->start[i] = 0; p->step[i] = 1; p->len[i] = -1; }
    uint8_t seen[IR_MAX_RANK] = {0};
    for (int i = 0; i < n; i++) {
        int64_t a = i;
        if (na >= 0 && (!dim_is_const(ax[i]) || norm_axis(ax[i].n, in->rank, &a))) return infer_fail(c, "axis out of range");
        if (seen[a]++) return infer_fail(c, "repeated axis");
        if (!dim_is_const(st[i]) || !dim_is_const(en[i])) { out->d[a] = dim_unknown(); continue; }
        int64_t step = ns >= 0 ? sp[i].n : 1, s0 = st[i].n, e0 = en[i].n;
        if (ns >= 0 && !dim_is_const(sp[i])) return infer_fail(c, "step must be known");
        if (step == 0) return infer_fail(c, "step is zero");
        p->step[a] = step;
        Dim d = in->d[a];
        if (!dim_is_const(d)) {
            /* a symbolic dim sliced whole stays symbolic */
            out->d[a] = (s0 == 0 && e0 >= BIG_END / 4 && step == 1) ? d : dim_unknown();
            p->len[a] = -1;
            continue;
        }
        int64_t dn = d.n, s, e;
        if (s0 < 0) s0 += dn;
        if (e0 < 0) e0 += dn;
        if (step > 0) { s = clamp64(s0, 0, dn); e = clamp64(e0, 0, dn); }
        else { s = clamp64(s0, -1, dn - 1); e = clamp64(e0, -1, dn - 1); }
        if (step == INT64_MIN) step = -INT64_MAX; /* same slice, and -step stays representable */
        /* ceil((e - s) / step) without forming e - s + step - 1, which overflows for huge steps */
        int64_t len = step > 0 ? (e > s ? (e - s - 1) / step + 1 : 0) : (s > e ? (s - e - 1) / (-step) + 1 : 0);
        p->start[a] = s;
        p->len[a] = len;
        if (len <= 1) p->step[a] = 1; /* a huge step selects one element; keep stride math in range */
        out->d[a] = dim_const(len);
    }
    return 0;
}

int infer_slice(InferCtx *c)
{
    if (need(c, 1)) return -1;
    const ValueInfo *x = c->in[0];
    ValueInfo *o = c->out[0];
    o->dtype = x->dtype;
    if (x->shape.rank < 0) { o->shape.rank = -1; return 0; }
    SliceParams p;
    if (op_slice_params(c, &x->shape, &p, &o->shape)) return -1;
    if (x->n_known >= 0 && x->shape.rank == 1 && p.len[0] >= 0) {
        o->n_known = (int)p.len[0];
        for (int64_t i = 0; i < p.len[0]; i++) o->known[i] = x->known[p.start[0] + i * p.step[0]];
    }
    return 0;
}

int infer_gather(InferCtx *c)
{
    if (need(c, 2)) return -1;
    const ValueInfo *x = c->in[0], *idx = c->in[1];
    ValueInfo *o = c->out[0];
    o->dtype = x->dtype;
    if (!is_int(idx->dtype)) return infer_fail(c, "indices must be int32 or int64");
    if (x->shape.rank < 0 || idx->shape.rank < 0) { o->shape.rank = -1; return 0; }
    int64_t axis;
    if (norm_axis(node_attr_i(c->node, "axis", 0), x->shape.rank, &axis)) return infer_fail(c, "axis out of range");
    int r = x->shape.rank - 1 + idx->shape.rank;
    if (r > IR_MAX_RANK) return infer_fail(c, "output rank %d too large", r);
    o->shape.rank = 0;
    for (int i = 0; i < axis; i++) o->shape.d[o->shape.rank++] = x->shape.d[i];
    for (int i = 0; i < idx->shape.rank; i++) o->shape.d[o->shape.rank++] = idx->shape.d[i];
    for (int i = (int)axis + 1; i < x->shape.rank; i++) o->shape.d[o->shape.rank++] = x->shape.d[i];
    Dim iv[IR_MAX_KNOWN];
    int ni = infer_get_ints(c, 1, iv, IR_MAX_KNOWN);
    if (x->n_known >= 0 && x->shape.rank == 1 && ni >= 0 && idx->shape.rank <= 1) {
        for (int i = 0; i < ni; i++) {
            int64_t k = iv[i].n;
            if (!dim_is_const(iv[i])) return 0;
            if (k < 0) k += x->n_known;
            if (k < 0 || k >= x->n_known) return infer_fail(c, "index %lld out of range", (long long)iv[i].n);
            o->known[i] = x->known[k];
        }
        o->n_known = ni;
    }
    return 0;
}

int infer_gather_elements(InferCtx *c)
{
    if (need(c, 2)) return -1;
    if (!is_int(c->in[1]->dtype)) return infer_fail(c, "indices must be int32 or int64");
    if (c->in[0]->shape.rank != c->in[1]->shape.rank) return infer_fail(c, "data and indices ranks differ");
    c->out[0]->dtype = c->in[0]->dtype;
    c->out[0]->shape = c->in[1]->shape;
    return 0;
}

int infer_concat(InferCtx *c)
{
    if (need(c, 1)) return -1;
    ValueInfo *o = c->out[0];
    const ValueInfo *x0 = c->in[0];
    o->dtype = x0->dtype;
    if (x0->shape.rank < 0) { o->shape.rank = -1; return 0; }
    int64_t axis;
    if (norm_axis(node_attr_i(c->node, "axis", 0), x0->shape.rank, &axis)) return infer_fail(c, "axis out of range");
    o->shape = x0->shape;
    int all_known = 1, nk = 0;
    for (int i = 0; i < c->n_in; i++) {
        const ValueInfo *x = c->in[i];
        if (!x) return infer_fail(c, "missing input %d", i);
        if (x->dtype != x0->dtype) return infer_fail(c, "input %d dtype differs", i);
        if (x->shape.rank != x0->shape.rank) return infer_fail(c, "input %d rank differs", i);
        for (int d = 0; d < x0->shape.rank; d++) {
            if (d == axis) continue;
            Dim a = x->shape.d[d], b = x0->shape.d[d];
            if (dim_is_const(a) && dim_is_const(b) && a.n != b.n) return infer_fail(c, "input %d dim %d differs", i, d);
        }
        if (i) o->shape.d[axis] = dim_add(o->shape.d[axis], x->shape.d[axis]);
        if (x->n_known < 0 || nk + x->n_known > IR_MAX_KNOWN) all_known = 0;
        else { memcpy(o->known + nk, x->known, sizeof(Dim) * (size_t)x->n_known); nk += x->n_known; }
    }
    if (all_known && x0->shape.rank == 1) o->n_known = nk;
    return 0;
}

int op_split_sizes(InferCtx *c, int64_t axis_len, int64_t *sizes)
{
    Dim sv[8];
    int n = -1;
    if (c->opset >= 13 && c->n_in > 1 && c->in[1]) {
        n = infer_get_ints(c, 1, sv, 8);
        if (n < 0) return infer_fail(c, "split input is not a known constant");
    } else if (c->opset < 13) {
        const Attr *a = node_attr(c->node, "split");
        if (a) { if (a->n > 8) return infer_fail(c, "too many splits"); n = a->n; for (int i = 0; i < n; i++) sv[i] = dim_const(a->ints[i]); }
    }
    if (n >= 0) {
        if (n != c->n_out) return infer_fail(c, "split lists %d sizes for %d outputs", n, c->n_out);
        int64_t tot = 0;
        for (int i = 0; i < n; i++) {
            sizes[i] = sv[i].n;
            if (sv[i].n < 0) return infer_fail(c, "negative split");
            if (sv[i].n > INT64_MAX - tot) return infer_fail(c, "split sizes overflow");
            tot += sv[i].n;
        }
        if (axis_len >= 0 && tot != axis_len) return infer_fail(c, "splits sum to %lld, axis has %lld", (long long)tot, (long long)axis_len);
        return 0;
    }
    if (axis_len < 0) { for (int i = 0; i < c->n_out; i++) sizes[i] = -1; return 0; }
    int64_t chunk = (axis_len + c->n_out - 1) / c->n_out;
    for (int i = 0; i < c->n_out; i++) {
        int64_t left = axis_len - chunk * i;
        sizes[i] = left < 0 ? 0 : (left < chunk ? left : chunk);
    }
    return 0;
}

int infer_split(InferCtx *c)
{
    if (need(c, 1)) return -1;
    const ValueInfo *x = c->in[0];
    if (x->shape.rank < 0) return infer_fail(c, "input rank unknown");
    int64_t axis;
    if (norm_axis(node_attr_i(c->node, "axis", 0), x->shape.rank, &axis)) return infer_fail(c, "axis out of range");
    int64_t sizes[8];
    Dim ad = x->shape.d[axis];
    if (op_split_sizes(c, dim_is_const(ad) ? ad.n : -1, sizes)) return -1;
    for (int i = 0; i < c->n_out; i++) {
        if (!c->out[i]) continue;
        c->out[i]->dtype = x->dtype;
        c->out[i]->shape = x->shape;
        c->out[i]->shape.d[axis] = sizes[i] >= 0 ? dim_const(sizes[i]) : dim_unknown();
    }
    return 0;
}

int infer_expand(InferCtx *c)
{
    if (need(c, 2)) return -1;
    Shape t;
    if (shape_from_ints(c, 1, &t)) return -1;
    c->out[0]->dtype = c->in[0]->dtype;
    if (t.rank < 0) { c->out[0]->shape.rank = -1; return 0; }
    return infer_broadcast_shapes(c, &c->in[0]->shape, &t, &c->out[0]->shape);
}

int infer_tile(InferCtx *c)
{
    if (need(c, 2)) return -1;
    const ValueInfo *x = c->in[0];
    ValueInfo *o = c->out[0];
    o->dtype = x->dtype;
    o->shape = x->shape;
    if (x->shape.rank < 0) return 0;
    Dim rep[IR_MAX_RANK];
    int n = infer_get_ints(c, 1, rep, IR_MAX_RANK);
    if (n < 0) { for (int i = 0; i < x->shape.rank; i++) o->shape.d[i] = dim_unknown(); return 0; }
    if (n != x->shape.rank) return infer_fail(c, "repeats has %d entries for rank %d", n, x->shape.rank);
    for (int i = 0; i < n; i++) {
        if (dim_is_const(rep[i]) && rep[i].n < 0) return infer_fail(c, "negative repeat");
        o->shape.d[i] = dim_mul(x->shape.d[i], rep[i]);
    }
    return 0;
}

int infer_gather_nd(InferCtx *c)
{
    if (need(c, 2)) return -1;
    const ValueInfo *x = c->in[0], *idx = c->in[1];
    ValueInfo *o = c->out[0];
    o->dtype = x->dtype;
    if (!is_int(idx->dtype)) return infer_fail(c, "indices must be int32 or int64");
    if (x->shape.rank < 0 || idx->shape.rank < 1) { o->shape.rank = -1; return 0; }
    int64_t b = node_attr_i(c->node, "batch_dims", 0);
    Dim last = idx->shape.d[idx->shape.rank - 1];
    if (!dim_is_const(last)) { o->shape.rank = -1; return 0; }
    int64_t k = last.n;
    if (b < 0 || b >= idx->shape.rank || b + k > x->shape.rank)
        return infer_fail(c, "index depth %lld with batch_dims %lld exceeds data rank %d", (long long)k, (long long)b, x->shape.rank);
    int r = idx->shape.rank - 1 + x->shape.rank - (int)(b + k);
    if (r > IR_MAX_RANK) return infer_fail(c, "output rank too large");
    o->shape.rank = 0;
    for (int i = 0; i < idx->shape.rank - 1; i++) o->shape.d[o->shape.rank++] = idx->shape.d[i];
    for (int i = (int)(b + k); i < x->shape.rank; i++) o->shape.d[o->shape.rank++] = x->shape.d[i];
    return 0;
}
