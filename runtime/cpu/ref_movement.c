/* ref_movement.c — reference kernels for shape and data-movement ops.  They
 * copy elements as raw bytes (dtype-agnostic) and bound-check every index
 * read from a tensor, since indices come from untrusted model files. */
#include <string.h>
#include "kernels.h"

#define ES(t) dtype_size((t)->dtype)

int ref_shape(KernelCtx *k)
{
    const Tensor *x = k->in[0];
    int64_t start = node_attr_i(k->ic->node, "start", 0);
    if (start < 0) start += x->rank;
    if (start < 0) start = 0;
    int64_t n = tensor_numel(k->out[0]);
    for (int64_t i = 0; i < n; i++) ((int64_t *)k->out[0]->data)[i] = x->dims[start + i];
    return 0;
}

int ref_size(KernelCtx *k)
{
    *(int64_t *)k->out[0]->data = tensor_numel(k->in[0]);
    return 0;
}

int ref_constant(KernelCtx *k)
{
    const Attr *a = &k->ic->node->attrs[0];
    Tensor *y = k->out[0];
    if (a->type == ATTR_TENSOR) memcpy(y->data, a->t->data, y->nbytes);
    else if (a->type == ATTR_FLOAT) *(float *)y->data = a->f;
    else if (a->type == ATTR_INT) *(int64_t *)y->data = a->i;
    else if (a->type == ATTR_INTS) memcpy(y->data, a->ints, y->nbytes);
    else if (a->type == ATTR_FLOATS) memcpy(y->data, a->floats, y->nbytes);
    else return kernel_fail(k, "unsupported constant attribute");
    return 0;
}

int ref_constant_of_shape(KernelCtx *k)
{
    const Attr *a = node_attr(k->ic->node, "value");
    Tensor *y = k->out[0];
    size_t es = ES(y);
    int64_t n = tensor_numel(y);
    if (!a || a->type != ATTR_TENSOR) { memset(y->data, 0, y->nbytes); return 0; }
    for (int64_t i = 0; i < n; i++) memcpy((char *)y->data + (size_t)i * es, a->t->data, es);
    return 0;
}

int ref_range(KernelCtx *k)
{
    Tensor *y = k->out[0];
    int64_t n = tensor_numel(y);
    if (!dtype_is_float(y->dtype)) {
        int64_t s = tensor_get_i64(k->in[0], 0), d = tensor_get_i64(k->in[2], 0);
        for (int64_t i = 0; i < n; i++) {
            int64_t v = (int64_t)((uint64_t)s + (uint64_t)i * (uint64_t)d); /* wraps as shape inference's values do, never UB */
            if (y->dtype == DT_I64) ((int64_t *)y->data)[i] = v;
            else tensor_set_f64(y, i, (double)v);
        }
    } else {
        double s = tensor_get_f64(k->in[0], 0), d = tensor_get_f64(k->in[2], 0);
        for (int64_t i = 0; i < n; i++) tensor_set_f64(y, i, s + (double)i * d);
    }
    return 0;
}

int ref_transpose(KernelCtx *k)
{
    const Tensor *x = k->in[0];
    Tensor *y = k->out[0];
    int perm[IR_MAX_RANK];
    if (op_transpose_perm(k->ic, x->rank, perm)) return -1;
    int64_t xs[IR_MAX_RANK], st[2][IR_MAX_RANK];
    contiguous_strides(x->rank, x->dims, xs);
    for (int i = 0; i < y->rank; i++) st[0][i] = xs[perm[i]];
    contiguous_strides(y->rank, y->dims, st[1]);
    StridedIter it;
    siter_init(&it, y->rank, y->dims, 2, st);
    size_t es = ES(x);
    const char *src = x->data;
    char *dst = y->data;
    if (es == 4) {
        while (siter_next(&it)) {
            const float *s = (const float *)src + it.off[0];
            float *d = (float *)dst + it.off[1];
            for (int64_t i = 0; i < it.inner; i++) d[i] = s[i * it.inner_stride[0]];
        }
        return 0;
    }
    while (siter_next(&it))
        for (int64_t i = 0; i < it.inner; i++)
            memcpy(dst + (size_t)(it.off[1] + i) * es, src + (size_t)(it.off[0] + i * it.inner_stride[0]) * es, es);
    return 0;
}

int ref_slice(KernelCtx *k)
{
    const Tensor *x = k->in[0];
    Tensor *y = k->out[0];
    SliceParams p;
    Shape in, out;
    in.rank = x->rank;
    for (int i = 0; i < x->rank; i++) in.d[i] = dim_const(x->dims[i]);
    if (op_slice_params(k->ic, &in, &p, &out)) return -1;
    int64_t xs[IR_MAX_RANK], st[2][IR_MAX_RANK], base = 0;
    contiguous_strides(x->rank, x->dims, xs);
    for (int i = 0; i < x->rank; i++) { st[0][i] = xs[i] * p.step[i]; base += xs[i] * p.start[i]; }
    contiguous_strides(y->rank, y->dims, st[1]);
    StridedIter it;
    siter_init(&it, y->rank, y->dims, 2, st);
    size_t es = ES(x);
    while (siter_next(&it))
        for (int64_t i = 0; i < it.inner; i++)
            memcpy((char *)y->data + (size_t)(it.off[1] + i) * es,
                   (const char *)x->data + (size_t)(base + it.off[0] + i * it.inner_stride[0]) * es, es);
    return 0;
}

int ref_gather(KernelCtx *k)
{
    const Tensor *x = k->in[0], *idx = k->in[1];
    int64_t axis;
    if (norm_axis(node_attr_i(k->ic->node, "axis", 0), x->rank, &axis)) return kernel_fail(k, "axis out of range");
    int64_t outer = 1, inner = 1, len = x->dims[axis], ni = tensor_numel(idx);
    for (int64_t i = 0; i < axis; i++) outer *= x->dims[i];
    for (int i = (int)axis + 1; i < x->rank; i++) inner *= x->dims[i];
    size_t es = ES(x), row = (size_t)inner * es;
    char *dst = k->out[0]->data;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < ni; j++) {
            int64_t g = tensor_get_i64(idx, j);
            if (g < 0) g += len;
            if (g < 0 || g >= len)
                return kernel_fail(k, "index %lld out of range [0, %lld)", (long long)tensor_get_i64(idx, j), (long long)len);
            memcpy(dst + (size_t)(o * ni + j) * row, (const char *)x->data + (size_t)(o * len + g) * row, row);
        }
    return 0;
}

int ref_gather_elements(KernelCtx *k)
{
    const Tensor *x = k->in[0], *idx = k->in[1];
    Tensor *y = k->out[0];
    int64_t axis;
    if (norm_axis(node_attr_i(k->ic->node, "axis", 0), x->rank, &axis)) return kernel_fail(k, "axis out of range");
    int64_t xs[IR_MAX_RANK], n = tensor_numel(y);
    contiguous_strides(x->rank, x->dims, xs);
    size_t es = ES(x);
    for (int64_t i = 0; i < n; i++) {
        int64_t rem = i, off = 0;
        for (int d = y->rank - 1; d >= 0; d--) {
            int64_t c = rem % y->dims[d];
            rem /= y->dims[d];
            if (d == axis) {
                c = tensor_get_i64(idx, i);
                if (c < 0) c += x->dims[d];
                if (c < 0 || c >= x->dims[d]) return kernel_fail(k, "index out of range");
            } else if (c >= x->dims[d]) return kernel_fail(k, "indices shape exceeds data");
            off += c * xs[d];
        }
        memcpy((char *)y->data + (size_t)i * es, (const char *)x->data + (size_t)off * es, es);
    }
    return 0;
}

int ref_gather_nd(KernelCtx *k)
{
    const Tensor *x = k->in[0], *idx = k->in[1];
    int64_t b = node_attr_i(k->ic->node, "batch_dims", 0), depth = idx->dims[idx->rank - 1];
    int64_t xs[IR_MAX_RANK], nb = 1, per_batch_idx = 1, slice = 1;
    contiguous_strides(x->rank, x->dims, xs);
    for (int i = 0; i < b; i++) nb *= x->dims[i];
    for (int i = (int)b; i < idx->rank - 1; i++) per_batch_idx *= idx->dims[i];
    for (int i = (int)(b + depth); i < x->rank; i++) slice *= x->dims[i];
    size_t es = ES(x), sbytes = (size_t)slice * es;
    int64_t batch_stride = b ? xs[b - 1] : 0;
    char *dst = k->out[0]->data;
    for (int64_t bi = 0; bi < nb; bi++)
        for (int64_t j = 0; j < per_batch_idx; j++) {
            int64_t row = bi * per_batch_idx + j, off = bi * batch_stride;
            for (int64_t d = 0; d < depth; d++) {
                int64_t c = tensor_get_i64(idx, row * depth + d), lim = x->dims[b + d];
                if (c < 0) c += lim;
                if (c < 0 || c >= lim) return kernel_fail(k, "index out of range at depth %lld", (long long)d);
                off += c * xs[b + d];
            }
            memcpy(dst + (size_t)row * sbytes, (const char *)x->data + (size_t)off * es, sbytes);
        }
    return 0;
}

int ref_concat(KernelCtx *k)
{
    Tensor *y = k->out[0];
    int64_t axis;
    if (norm_axis(node_attr_i(k->ic->node, "axis", 0), y->rank, &axis)) return kernel_fail(k, "axis out of range");
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < axis; i++) outer *= y->dims[i];
    for (int i = (int)axis + 1; i < y->rank; i++) inner *= y->dims[i];
    size_t es = ES(y), yrow = (size_t)(y->dims[axis] * inner) * es, at = 0;
    for (int j = 0; j < k->n_in; j++) {
        const Tensor *x = k->in[j];
        size_t xrow = (size_t)(x->dims[axis] * inner) * es;
        for (int64_t o = 0; o < outer; o++)
            memcpy((char *)y->data + (size_t)o * yrow + at, (const char *)x->data + (size_t)o * xrow, xrow);
        at += xrow;
    }
    return 0;
}

int ref_split(KernelCtx *k)
{
    const Tensor *x = k->in[0];
    int64_t axis, sizes[8];
    if (norm_axis(node_attr_i(k->ic->node, "axis", 0), x->rank, &axis)) return kernel_fail(k, "axis out of range");
    if (op_split_sizes(k->ic, x->dims[axis], sizes)) return -1;
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < axis; i++) outer *= x->dims[i];
    for (int i = (int)axis + 1; i < x->rank; i++) inner *= x->dims[i];
    size_t es = ES(x), xrow = (size_t)(x->dims[axis] * inner) * es, at = 0;
    for (int j = 0; j < k->n_out; j++) {
        size_t yrow = (size_t)(sizes[j] * inner) * es;
        if (k->out[j])
            for (int64_t o = 0; o < outer; o++)
                memcpy((char *)k->out[j]->data + (size_t)o * yrow, (const char *)x->data + (size_t)o * xrow + at, yrow);
        at += yrow;
    }
    return 0;
}

int ref_expand(KernelCtx *k)
{
    const Tensor *x = k->in[0];
    Tensor *y = k->out[0];
    int64_t st[2][IR_MAX_RANK];
    broadcast_strides(x, y->rank, y->dims, st[0]);
    contiguous_strides(y->rank, y->dims, st[1]);
    StridedIter it;
    siter_init(&it, y->rank, y->dims, 2, st);
    size_t es = ES(x);
    while (siter_next(&it))
        for (int64_t i = 0; i < it.inner; i++)
            memcpy((char *)y->data + (size_t)(it.off[1] + i) * es,
                   (const char *)x->data + (size_t)(it.off[0] + i * it.inner_stride[0]) * es, es);
    return 0;
}

int ref_tile(KernelCtx *k)
{
    const Tensor *x = k->in[0];
    Tensor *y = k->out[0];
    int64_t xs[IR_MAX_RANK], n = tensor_numel(y);
    contiguous_strides(x->rank, x->dims, xs);
    size_t es = ES(x);
    for (int64_t i = 0; i < n; i++) {
        int64_t rem = i, off = 0;
        for (int d = y->rank - 1; d >= 0; d--) {
            off += (rem % y->dims[d]) % x->dims[d] * xs[d];
            rem /= y->dims[d];
        }
        memcpy((char *)y->data + (size_t)i * es, (const char *)x->data + (size_t)off * es, es);
    }
    return 0;
}

int ref_trilu(KernelCtx *k)
{
    const Tensor *x = k->in[0];
    Tensor *y = k->out[0];
    if (x->rank < 2) return kernel_fail(k, "input must have rank >= 2");
    int64_t diag = (k->n_in > 1 && k->in[1]) ? tensor_get_i64(k->in[1], 0) : 0;
    int upper = (int)node_attr_i(k->ic->node, "upper", 1);
    int64_t R = x->dims[x->rank - 2], C = x->dims[x->rank - 1], mats = (R > 0 && C > 0) ? tensor_numel(x) / (R * C) : 0;
    size_t es = ES(x);
    memcpy(y->data, x->data, y->nbytes);
    for (int64_t m = 0; m < mats; m++)
        for (int64_t r = 0; r < R; r++)
            for (int64_t c = 0; c < C; c++) {
                int keep = upper ? (c - r >= diag) : (c - r <= diag);
                if (!keep) memset((char *)y->data + (size_t)((m * R + r) * C + c) * es, 0, es);
            }
    return 0;
}

int ref_scatter_nd(KernelCtx *k)
{
    const Tensor *x = k->in[0], *idx = k->in[1], *upd = k->in[2];
    Tensor *y = k->out[0];
    if (!idx || !upd || idx->rank < 1) return kernel_fail(k, "expects data, indices and updates");
    const char *red = node_attr_s(k->ic->node, "reduction", "none");
    if (strcmp(red, "none") != 0) return kernel_fail(k, "reduction '%s' is not supported", red);
    memcpy(y->data, x->data, y->nbytes);
    int64_t depth = idx->dims[idx->rank - 1], xs[IR_MAX_RANK], slice = 1, rows = tensor_numel(idx) / (depth ? depth : 1);
    if (depth > x->rank) return kernel_fail(k, "index depth exceeds data rank");
    contiguous_strides(x->rank, x->dims, xs);
    for (int i = (int)depth; i < x->rank; i++) slice *= x->dims[i];
    if (tensor_numel(upd) != rows * slice || upd->dtype != x->dtype) return kernel_fail(k, "updates shape mismatch");
    size_t es = ES(x);
    for (int64_t r = 0; r < rows; r++) {
        int64_t off = 0;
        for (int64_t d = 0; d < depth; d++) {
            int64_t c = tensor_get_i64(idx, r * depth + d);
            if (c < 0) c += x->dims[d];
            if (c < 0 || c >= x->dims[d]) return kernel_fail(k, "index out of range");
            off += c * xs[d];
        }
        memcpy((char *)y->data + (size_t)off * es, (const char *)upd->data + (size_t)(r * slice) * es, (size_t)slice * es);
    }
    return 0;
}
