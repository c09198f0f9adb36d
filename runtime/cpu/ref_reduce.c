/* ref_reduce.c — reference kernels for reductions, ArgMax/ArgMin, Softmax,
 * LayerNormalization and CumSum.  Accumulation is in double so the oracle is
 * at least as accurate as anything it checks. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include "kernels.h"

int ref_reduce(KernelCtx *k)
{
    const Tensor *x = k->in[0];
    Tensor *y = k->out[0];
    int op = k->ic->node->op;
    uint8_t mask[IR_MAX_RANK];
    if (op_reduce_axes(k->ic, x->rank, mask)) return -1;
    int64_t ny = tensor_numel(y), nx = tensor_numel(x);
    double *acc = malloc(sizeof(double) * (size_t)(ny ? ny : 1));
    if (!acc) return kernel_fail(k, "out of memory");
    double init = op == OP_REDUCE_MAX ? -INFINITY : op == OP_REDUCE_MIN ? INFINITY : op == OP_REDUCE_PROD ? 1 : 0;
    for (int64_t i = 0; i < ny; i++) acc[i] = init;
    /* Output strides laid over the input's index space (0 on reduced axes). */
    int64_t st[2][IR_MAX_RANK], ydims_full[IR_MAX_RANK], ys[IR_MAX_RANK];
    for (int i = 0; i < x->rank; i++) ydims_full[i] = mask[i] ? 1 : x->dims[i];
    contiguous_strides(x->rank, ydims_full, ys);
    contiguous_strides(x->rank, x->dims, st[0]);
    for (int i = 0; i < x->rank; i++) st[1][i] = mask[i] ? 0 : ys[i];
    StridedIter it;
    siter_init(&it, x->rank, x->dims, 2, st);
    while (siter_next(&it))
        for (int64_t i = 0; i < it.inner; i++) {
            double v = tensor_get_f64(x, it.off[0] + i);
            double *a = &acc[it.off[1] + i * it.inner_stride[1]];
            switch (op) {
            case OP_REDUCE_MAX: if (v > *a || isnan(v)) *a = v; break;
            case OP_REDUCE_MIN: if (v < *a || isnan(v)) *a = v; break;
            case OP_REDUCE_PROD: *a *= v; break;
            case OP_REDUCE_L2: *a += v * v; break;
            default: *a += v;
            }
        }
    int64_t count = ny ? nx / ny : 0;
    for (int64_t i = 0; i < ny; i++) {
        double v = acc[i];
        if (op == OP_REDUCE_MEAN) v = count ? v / (double)count : NAN;
        if (op == OP_REDUCE_L2) v = sqrt(v);
        tensor_set_f64(y, i, v);
    }
    free(acc);
    return 0;
}

/* outer x axis x inner decomposition around one axis */
static void split_axis(const Tensor *x, int64_t axis, int64_t *outer, int64_t *len, int64_t *inner)
{
    *outer = 1; *inner = 1;
    for (int64_t i = 0; i < axis; i++) *outer *= x->dims[i];
    *len = x->rank ? x->dims[axis] : 1;
    for (int i = (int)axis + 1; i < x->rank; i++) *inner *= x->dims[i];
}

int ref_argreduce(KernelCtx *k)
{
    const Tensor *x = k->in[0];
    int64_t axis, outer, len, inner;
    if (norm_axis(node_attr_i(k->ic->node, "axis", 0), x->rank, &axis)) return kernel_fail(k, "axis out of range");
    split_axis(x, axis, &outer, &len, &inner);
    if (len == 0) return kernel_fail(k, "reduction over an empty axis");
    int want_max = k->ic->node->op == OP_ARGMAX, last = (int)node_attr_i(k->ic->node, "select_last_index", 0);
    int64_t *y = k->out[0]->data;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t best = 0;
            double bv = tensor_get_f64(x, o * len * inner + i);
            for (int64_t a = 1; a < len; a++) {
                double v = tensor_get_f64(x, (o * len + a) * inner + i);
                int better = want_max ? (last ? v >= bv : v > bv) : (last ? v <= bv : v < bv);
                if (better) { bv = v; best = a; }
            }
            y[o * inner + i] = best;
        }
    return 0;
}

int ref_softmax(KernelCtx *k)
{
    const Tensor *x = k->in[0];
    if (x->dtype != DT_F32) return kernel_fail(k, "only f32 is supported, got %s", dtype_name(x->dtype));
    int64_t axis, outer, len, inner;
    int64_t dflt = k->ic->opset >= 13 ? -1 : 1;
    if (norm_axis(node_attr_i(k->ic->node, "axis", dflt), x->rank, &axis)) return kernel_fail(k, "axis out of range");
    if (k->ic->opset < 13) { /* coerced to 2-D: softmax over everything from axis on */
        outer = 1; len = 1; inner = 1;
        for (int64_t i = 0; i < axis; i++) outer *= x->dims[i];
        for (int i = (int)axis; i < x->rank; i++) len *= x->dims[i];
    } else split_axis(x, axis, &outer, &len, &inner);
    int logsm = k->ic->node->op == OP_LOG_SOFTMAX;
    const float *in = x->data;
    float *out = k->out[0]->data;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const float *r = in + o * len * inner + i;
            float *w = out + o * len * inner + i;
            float mx = -INFINITY;
            for (int64_t a = 0; a < len; a++) if (r[a * inner] > mx) mx = r[a * inner];
            double sum = 0;
            for (int64_t a = 0; a < len; a++) sum += exp((double)r[a * inner] - mx);
            for (int64_t a = 0; a < len; a++)
                w[a * inner] = logsm ? (float)((double)r[a * inner] - mx - log(sum))
                                     : (float)(exp((double)r[a * inner] - mx) / sum);
        }
    return 0;
}

int ref_layernorm(KernelCtx *k)
{
    const Tensor *x = k->in[0], *scale = k->in[1], *bias = k->n_in > 2 ? k->in[2] : NULL;
    if (x->dtype != DT_F32) return kernel_fail(k, "only f32 is supported, got %s", dtype_name(x->dtype));
    int64_t axis;
    if (norm_axis(node_attr_i(k->ic->node, "axis", -1), x->rank, &axis)) return kernel_fail(k, "axis out of range");
    double eps = node_attr_f(k->ic->node, "epsilon", 1e-5f);
    int64_t rows = 1, cols = 1;
    for (int64_t i = 0; i < axis; i++) rows *= x->dims[i];
    for (int i = (int)axis; i < x->rank; i++) cols *= x->dims[i];
    int64_t ns = tensor_numel(scale), nb = bias ? tensor_numel(bias) : 0;
    if ((ns != cols && ns != 1) || (bias && nb != cols && nb != 1))
        return kernel_fail(k, "Scale/B must hold %lld elements", (long long)cols);
    const float *in = x->data;
    float *out = k->out[0]->dtype == DT_BF16 ? NULL : k->out[0]->data; /* else bf16_output (ir/ops.h) */
    uint16_t *out16 = out ? NULL : k->out[0]->data;
    for (int64_t r = 0; r < rows; r++) {
        const float *row = in + r * cols;
        double mean = 0, var = 0;
        for (int64_t c = 0; c < cols; c++) mean += row[c];
        mean /= (double)cols;
        for (int64_t c = 0; c < cols; c++) var += ((double)row[c] - mean) * ((double)row[c] - mean);
        var /= (double)cols;
        double inv = 1.0 / sqrt(var + eps);
        for (int64_t c = 0; c < cols; c++) {
            double v = ((double)row[c] - mean) * inv * tensor_get_f64(scale, ns == 1 ? 0 : c);
            if (bias) v += tensor_get_f64(bias, nb == 1 ? 0 : c);
            if (out16) out16[r * cols + c] = float_to_bf16((float)v);
            else out[r * cols + c] = (float)v;
        }
        if (k->n_out > 1 && k->out[1]) tensor_set_f64(k->out[1], r, mean);
        if (k->n_out > 2 && k->out[2]) tensor_set_f64(k->out[2], r, inv);
    }
    return 0;
}

int ref_cumsum(KernelCtx *k)
{
    const Tensor *x = k->in[0];
    if (k->n_in < 2 || !k->in[1] || tensor_numel(k->in[1]) != 1) return kernel_fail(k, "axis must be a scalar");
    int64_t axis, outer, len, inner;
    if (norm_axis(tensor_get_i64(k->in[1], 0), x->rank, &axis)) return kernel_fail(k, "axis out of range");
    split_axis(x, axis, &outer, &len, &inner);
    int excl = (int)node_attr_i(k->ic->node, "exclusive", 0), rev = (int)node_attr_i(k->ic->node, "reverse", 0);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            double s = 0;
            for (int64_t t = 0; t < len; t++) {
                int64_t a = rev ? len - 1 - t : t, idx = (o * len + a) * inner + i;
                double v = tensor_get_f64(x, idx);
                if (excl) { tensor_set_f64(k->out[0], idx, s); s += v; }
                else { s += v; tensor_set_f64(k->out[0], idx, s); }
            }
        }
    return 0;
}
