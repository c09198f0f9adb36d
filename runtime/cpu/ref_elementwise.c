/* ref_elementwise.c — reference kernels for unary, binary (broadcasting),
 * comparison, Where, Clip and Cast.  f32 has typed inner loops (these are
 * on the hot path until codegen replaces them); other dtypes go through a
 * generic int64/double path. */
#include <math.h>
#include <string.h>
#include "kernels.h"

/* The fusable ops' arithmetic comes from ir/scalar_ops.def, the rows the
 * generated kernels are rendered from; the rest is written here. */
static float unary_f32(int op, float a)
{
    const float b = 0; /* the table's binary rows read b; this switch only reaches unary ones */
    (void)b;
    switch (op) {
#define SCALAR_OP(id, name, arity, ir, expr) case OP_##ir: if (arity == 1) return expr; break;
#include "../../ir/scalar_ops.def"
#undef SCALAR_OP
    case OP_FLOOR: return floorf(a);
    case OP_CEIL: return ceilf(a);
    default: break;
    }
    return NAN;
}

int ref_unary(KernelCtx *k)
{
    const Tensor *x = k->in[0];
    Tensor *y = k->out[0];
    int op = k->ic->node->op;
    int64_t n = tensor_numel(x);
    if (op == OP_ISNAN || op == OP_ISINF) {
        for (int64_t i = 0; i < n; i++) {
            double v = tensor_get_f64(x, i);
            ((uint8_t *)y->data)[i] = op == OP_ISNAN ? isnan(v) : isinf(v);
        }
        return 0;
    }
    if (op == OP_NOT) {
        for (int64_t i = 0; i < n; i++) ((uint8_t *)y->data)[i] = !((const uint8_t *)x->data)[i];
        return 0;
    }
    if (x->dtype == DT_F32) {
        const float *a = x->data;
        float *o = y->data;
        for (int64_t i = 0; i < n; i++) o[i] = unary_f32(op, a[i]);
        return 0;
    }
    if (!dtype_is_float(x->dtype) && op != OP_NEG && op != OP_ABS && op != OP_RELU)
        return kernel_fail(k, "%s is not defined for %s", op_name(op), dtype_name(x->dtype));
    for (int64_t i = 0; i < n; i++) {
        if (!dtype_is_float(x->dtype)) {
            int64_t v = tensor_get_i64(x, i);
            v = op == OP_NEG ? -v : op == OP_ABS ? (v < 0 ? -v : v) : (v > 0 ? v : 0);
            ((x->dtype == DT_I64) ? (void)(((int64_t *)y->data)[i] = v) : tensor_set_f64(y, i, (double)v));
        } else tensor_set_f64(y, i, unary_f32(op, (float)tensor_get_f64(x, i)));
    }
    return 0;
}

int ref_copy(KernelCtx *k)
{
    if (k->out[0]->data != k->in[0]->data) memcpy(k->out[0]->data, k->in[0]->data, k->out[0]->nbytes);
    if (k->n_out > 1 && k->out[1] && k->ic->node->op == OP_DROPOUT)
        memset(k->out[1]->data, 1, k->out[1]->nbytes);
    return 0;
}

int ref_clip(KernelCtx *k)
{
    const Tensor *x = k->in[0];
    double lo = -INFINITY, hi = INFINITY;
    if (k->ic->opset < 11) {
        lo = node_attr_f(k->ic->node, "min", -INFINITY);
        hi = node_attr_f(k->ic->node, "max", INFINITY);
    } else {
        if (k->n_in > 1 && k->in[1]) lo = tensor_get_f64(k->in[1], 0);
        if (k->n_in > 2 && k->in[2]) hi = tensor_get_f64(k->in[2], 0);
    }
    int64_t n = tensor_numel(x);
    for (int64_t i = 0; i < n; i++) {
        double v = tensor_get_f64(x, i);
        tensor_set_f64(k->out[0], i, v < lo ? lo : v > hi ? hi : v);
    }
    return 0;
}

int ref_cast(KernelCtx *k)
{
    const Tensor *x = k->in[0];
    Tensor *y = k->out[0];
    int64_t n = tensor_numel(x);
    if (x->dtype == y->dtype) { memcpy(y->data, x->data, y->nbytes); return 0; }
    int int_to_int = !dtype_is_float(x->dtype) && !dtype_is_float(y->dtype);
    for (int64_t i = 0; i < n; i++) {
        if (int_to_int) {
            int64_t v = tensor_get_i64(x, i);
            switch (y->dtype) {
            case DT_I64: ((int64_t *)y->data)[i] = v; break;
            case DT_I32: ((int32_t *)y->data)[i] = (int32_t)v; break;
            case DT_I8: ((int8_t *)y->data)[i] = (int8_t)v; break;
            case DT_U8: ((uint8_t *)y->data)[i] = (uint8_t)v; break;
            default: ((uint8_t *)y->data)[i] = v != 0; break;
            }
        } else tensor_set_f64(y, i, tensor_get_f64(x, i));
    }
    return 0;
}

static float binary_f32(int op, float a, float b)
{
    if (op == OP_POW && (b == 2.0f || b == 0.5f)) return b == 2.0f ? a * a : sqrtf(a); /* exact where powf may not be */
    switch (op) {
#define SCALAR_OP(id, name, arity, ir, expr) case OP_##ir: if (arity == 2) return expr; break;
#include "../../ir/scalar_ops.def"
#undef SCALAR_OP
    case OP_MOD: return fmodf(a, b);
    default: break;
    }
    return NAN;
}

static int compare(int op, double a, double b)
{
    switch (op) {
    case OP_EQUAL: return a == b;
    case OP_LESS: return a < b;
    case OP_LESS_OR_EQUAL: return a <= b;
    case OP_GREATER: return a > b;
    case OP_GREATER_OR_EQUAL: return a >= b;
    case OP_AND: return a != 0 && b != 0;
    case OP_OR: return a != 0 || b != 0;
    case OP_XOR: return (a != 0) != (b != 0);
    default: return 0;
    }
}

/* Integers compare exactly (int64 ids above 2^53 must not go through double). */
static int compare_i64(int op, int64_t a, int64_t b)
{
    switch (op) {
    case OP_EQUAL: return a == b;
    case OP_LESS: return a < b;
    case OP_LESS_OR_EQUAL: return a <= b;
    case OP_GREATER: return a > b;
    case OP_GREATER_OR_EQUAL: return a >= b;
    default: return compare(op, (double)(a != 0), (double)(b != 0));
    }
}

static int64_t binary_i64(int op, int64_t a, int64_t b, int fmod_mode, int *div0)
{
    switch (op) {
    case OP_ADD: return (int64_t)((uint64_t)a + (uint64_t)b);
    case OP_SUB: return (int64_t)((uint64_t)a - (uint64_t)b);
    case OP_MUL: return (int64_t)((uint64_t)a * (uint64_t)b);
    case OP_DIV: if (!b) { *div0 = 1; return 0; } return (a == INT64_MIN && b == -1) ? a : a / b;
    case OP_MAX: return a > b ? a : b;
    case OP_MIN: return a < b ? a : b;
    case OP_MOD: {
        if (!b) { *div0 = 1; return 0; }
        if (a == INT64_MIN && b == -1) return 0;
        int64_t r = a % b;
        if (!fmod_mode && r != 0 && ((r < 0) != (b < 0))) r += b; /* Python-style sign */
        return r;
    }
    case OP_POW: { int64_t r = 1; for (int64_t e = 0; e < b && e < 64; e++) r *= a; return r; }
    default: return 0;
    }
}

int ref_binary(KernelCtx *k)
{
    const Tensor *a = k->in[0], *b = k->in[1];
    Tensor *y = k->out[0];
    int op = k->ic->node->op;
    int cmp = op >= OP_EQUAL && op <= OP_XOR;
    int64_t st[3][IR_MAX_RANK];
    broadcast_strides(a, y->rank, y->dims, st[0]);
    broadcast_strides(b, y->rank, y->dims, st[1]);
    contiguous_strides(y->rank, y->dims, st[2]);
    StridedIter it;
    siter_init(&it, y->rank, y->dims, 3, st);
    int fmod_mode = (int)node_attr_i(k->ic->node, "fmod", 0), div0 = 0;
    int is_int = !dtype_is_float(a->dtype);
    if (!cmp && a->dtype == DT_F32 && b->dtype == DT_F32) {
        const float *pa = a->data, *pb = b->data;
        float *po = y->data;
        while (siter_next(&it)) {
            const float *ra = pa + it.off[0], *rb = pb + it.off[1];
            float *ro = po + it.off[2];
            int64_t sa = it.inner_stride[0], sb = it.inner_stride[1];
            if (op == OP_ADD && sa == 1 && sb == 1) for (int64_t i = 0; i < it.inner; i++) ro[i] = ra[i] + rb[i];
            else if (op == OP_ADD && sa == 1 && sb == 0) for (int64_t i = 0; i < it.inner; i++) ro[i] = ra[i] + rb[0];
            else if (op == OP_MUL && sa == 1 && sb == 1) for (int64_t i = 0; i < it.inner; i++) ro[i] = ra[i] * rb[i];
            else if (op == OP_MUL && sa == 1 && sb == 0) for (int64_t i = 0; i < it.inner; i++) ro[i] = ra[i] * rb[0];
            else for (int64_t i = 0; i < it.inner; i++) ro[i] = binary_f32(op, ra[i * sa], rb[i * sb]);
        }
        return 0;
    }
    while (siter_next(&it)) {
        for (int64_t i = 0; i < it.inner; i++) {
            int64_t ia = it.off[0] + i * it.inner_stride[0], ib = it.off[1] + i * it.inner_stride[1];
            int64_t io = it.off[2] + i * it.inner_stride[2];
            if (cmp) {
                int r = is_int ? compare_i64(op, tensor_get_i64(a, ia), tensor_get_i64(b, ib))
                               : compare(op, tensor_get_f64(a, ia), tensor_get_f64(b, ib));
                ((uint8_t *)y->data)[io] = (uint8_t)r;
            } else if (is_int) {
                int64_t r = binary_i64(op, tensor_get_i64(a, ia), tensor_get_i64(b, ib), fmod_mode, &div0);
                if (y->dtype == DT_I64) ((int64_t *)y->data)[io] = r;
                else tensor_set_f64(y, io, (double)r);
            } else {
                double x = tensor_get_f64(a, ia), z = tensor_get_f64(b, ib), r;
                if (op == OP_POW) r = pow(x, z);
                else if (op == OP_MOD) r = fmod(x, z);
                else r = binary_f32(op, (float)x, (float)z);
                if (y->dtype == DT_F64 && op != OP_POW && op != OP_MOD) {
                    r = op == OP_ADD ? x + z : op == OP_SUB ? x - z : op == OP_MUL ? x * z : op == OP_DIV ? x / z
                      : op == OP_MAX ? (x > z ? x : z) : (x < z ? x : z);
                }
                tensor_set_f64(y, io, r);
            }
        }
    }
    if (div0) return kernel_fail(k, "integer division by zero");
    return 0;
}

int ref_where(KernelCtx *k)
{
    const Tensor *c = k->in[0], *a = k->in[1], *b = k->in[2];
    Tensor *y = k->out[0];
    int64_t st[4][IR_MAX_RANK];
    broadcast_strides(c, y->rank, y->dims, st[0]);
    broadcast_strides(a, y->rank, y->dims, st[1]);
    broadcast_strides(b, y->rank, y->dims, st[2]);
    contiguous_strides(y->rank, y->dims, st[3]);
    StridedIter it;
    siter_init(&it, y->rank, y->dims, 4, st);
    size_t es = dtype_size(y->dtype);
    const uint8_t *pc = c->data;
    const char *pa = a->data, *pb = b->data;
    char *po = y->data;
    while (siter_next(&it))
        for (int64_t i = 0; i < it.inner; i++) {
            int64_t ic = it.off[0] + i * it.inner_stride[0];
            int64_t src = pc[ic] ? it.off[1] + i * it.inner_stride[1] : it.off[2] + i * it.inner_stride[2];
            memcpy(po + (size_t)(it.off[3] + i) * es, (pc[ic] ? pa : pb) + (size_t)src * es, es);
        }
    return 0;
}
