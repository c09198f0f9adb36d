/* ref_grad.c — reference kernels of the gradient ops that autodiff emits
 * (passes/grad_*.c) and of IWR's InterpolateWeights: plain loops with double
 * accumulation, checked against finite differences in tests/unit.  The
 * attention gradient has its own file. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "kernels.h"

static void rows_cols(const Tensor *x, int64_t axis, int64_t *rows, int64_t *cols)
{
    *rows = 1; *cols = 1;
    for (int64_t i = 0; i < axis; i++) *rows *= x->dims[i];
    for (int i = (int)axis; i < x->rank; i++) *cols *= x->dims[i];
}

/* (dy, x, scale) -> dx, dscale, dbias for LayerNormalization over axis.. */
int ref_layernorm_grad(KernelCtx *k)
{
    const Tensor *dy = k->in[0], *x = k->in[1], *scale = k->in[2];
    int64_t axis, rows, cols;
    if (norm_axis(node_attr_i(k->ic->node, "axis", -1), x->rank, &axis)) return kernel_fail(k, "axis out of range");
    double eps = node_attr_f(k->ic->node, "epsilon", 1e-5f);
    rows_cols(x, axis, &rows, &cols);
    int64_t ns = tensor_numel(scale);
    if (ns != cols && ns != 1) return kernel_fail(k, "Scale must hold %lld elements", (long long)cols);
    double *acc = calloc((size_t)(2 * cols + 2 * cols), sizeof(double)); /* dscale, dbias, g, xhat */
    if (!acc) return kernel_fail(k, "out of memory");
    double *ds = acc, *db = acc + cols, *g = acc + 2 * cols, *xh = acc + 3 * cols;
    const float *X = x->data, *DY = dy->data;
    float *DX = k->out[0] ? k->out[0]->data : NULL;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = X + r * cols, *dr = DY + r * cols;
        double mean = 0, var = 0;
        for (int64_t c = 0; c < cols; c++) mean += xr[c];
        mean /= (double)cols;
        for (int64_t c = 0; c < cols; c++) var += (xr[c] - mean) * (xr[c] - mean);
        double inv = 1.0 / sqrt(var / (double)cols + eps), mg = 0, mgx = 0;
        for (int64_t c = 0; c < cols; c++) {
            xh[c] = (xr[c] - mean) * inv;
            g[c] = dr[c] * tensor_get_f64(scale, ns == 1 ? 0 : c);
            mg += g[c];
            mgx += g[c] * xh[c];
            ds[c] += dr[c] * xh[c];
            db[c] += dr[c];
        }
        mg /= (double)cols;
        mgx /= (double)cols;
        if (DX)
            for (int64_t c = 0; c < cols; c++) DX[r * cols + c] = (float)(inv * (g[c] - mg - xh[c] * mgx));
    }
    for (int o = 1; o < 3; o++) {
        Tensor *t = k->n_out > o ? k->out[o] : NULL;
        if (!t) continue;
        const double *src = o == 1 ? ds : db;
        if (ns == 1) { double s = 0; for (int64_t c = 0; c < cols; c++) s += src[c]; tensor_set_f64(t, 0, s); }
        else for (int64_t c = 0; c < cols; c++) tensor_set_f64(t, c, src[c]);
    }
    free(acc);
    return 0;
}

/* (dy, y) -> y * (dy - sum(dy * y)) along axis */
int ref_softmax_grad(KernelCtx *k)
{
    const Tensor *dy = k->in[0], *y = k->in[1];
    int64_t axis;
    if (norm_axis(node_attr_i(k->ic->node, "axis", -1), y->rank, &axis)) return kernel_fail(k, "axis out of range");
    int64_t outer = 1, len = y->dims[axis], inner = 1;
    for (int64_t i = 0; i < axis; i++) outer *= y->dims[i];
    for (int i = (int)axis + 1; i < y->rank; i++) inner *= y->dims[i];
    const float *D = dy->data, *Y = y->data;
    float *DX = k->out[0]->data;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t in = 0; in < inner; in++) {
            int64_t base = o * len * inner + in;
            double dot = 0;
            for (int64_t j = 0; j < len; j++) dot += (double)D[base + j * inner] * Y[base + j * inner];
            for (int64_t j = 0; j < len; j++)
                DX[base + j * inner] = (float)(Y[base + j * inner] * (D[base + j * inner] - dot));
        }
    return 0;
}

/* (dy, x) -> dy * f'(x) for QuickGelu and Gelu */
int ref_activation_grad(KernelCtx *k)
{
    const Tensor *dy = k->in[0], *x = k->in[1];
    if (tensor_numel(dy) != tensor_numel(x)) return kernel_fail(k, "dy and x differ in size");
    const float *D = dy->data, *X = x->data;
    float *DX = k->out[0]->data;
    int quick = k->ic->node->op == OP_QUICK_GELU_GRAD;
    for (int64_t i = 0, n = tensor_numel(x); i < n; i++) {
        double v = X[i], d;
        if (quick) { double s = 1.0 / (1.0 + exp(-1.702 * v)); d = s + 1.702 * v * s * (1 - s); }
        else d = 0.5 * (1 + erf(v / sqrt(2.0))) + v * exp(-0.5 * v * v) / sqrt(2 * M_PI);
        DX[i] = (float)(D[i] * d);
    }
    return 0;
}

/* (w0, w, alpha) -> alpha*w0 + (1-alpha)*w */
int ref_interpolate_weights(KernelCtx *k)
{
    const float *W0 = k->in[0]->data, *W = k->in[1]->data;
    double a = tensor_get_f64(k->in[2], 0);
    float *Y = k->out[0]->data;
    for (int64_t i = 0, n = tensor_numel(k->in[1]); i < n; i++) Y[i] = (float)(a * W0[i] + (1 - a) * W[i]);
    return 0;
}

/* (dy, starts, ends, axes?, steps?) -> zeros of attr shape with dy at the sliced places */
int ref_slice_grad(KernelCtx *k)
{
    Tensor *dx = k->out[0];
    const Tensor *dy = k->in[0];
    Shape xs = {dx->rank, {{0}}}, ys;
    for (int i = 0; i < dx->rank; i++) xs.d[i] = dim_const(dx->dims[i]);
    SliceParams p;
    if (op_slice_params(k->ic, &xs, &p, &ys)) return -1;
    for (int i = 0; i < dx->rank; i++)
        if (ys.d[i].n != dy->dims[i]) return kernel_fail(k, "dy does not match the slice");
    memset(dx->data, 0, dx->nbytes);
    int64_t xst[IR_MAX_RANK], n = tensor_numel(dy);
    contiguous_strides(dx->rank, dx->dims, xst);
    const float *D = dy->data;
    float *X = dx->data;
    for (int64_t i = 0; i < n; i++) {
        int64_t rem = i, off = 0;
        for (int d = dy->rank - 1; d >= 0; d--) {
            int64_t c = rem % dy->dims[d];
            rem /= dy->dims[d];
            off += (p.start[d] + c * p.step[d]) * xst[d];
        }
        X[off] += D[i];
    }
    return 0;
}

/* (dy, indices) -> zeros of attr shape with dy added at the gathered rows */
int ref_gather_grad(KernelCtx *k)
{
    Tensor *dx = k->out[0];
    const Tensor *dy = k->in[0], *idx = k->in[1];
    int64_t axis;
    if (norm_axis(node_attr_i(k->ic->node, "axis", 0), dx->rank, &axis)) return kernel_fail(k, "axis out of range");
    int64_t outer = 1, inner = 1, len = dx->dims[axis], ni = tensor_numel(idx);
    for (int64_t i = 0; i < axis; i++) outer *= dx->dims[i];
    for (int i = (int)axis + 1; i < dx->rank; i++) inner *= dx->dims[i];
    if (tensor_numel(dy) != outer * ni * inner) return kernel_fail(k, "dy does not match the gather");
    memset(dx->data, 0, dx->nbytes);
    const float *D = dy->data;
    float *X = dx->data;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < ni; j++) {
            int64_t g = tensor_get_i64(idx, j);
            if (g < 0) g += len;
            if (g < 0 || g >= len) return kernel_fail(k, "index %lld out of range", (long long)tensor_get_i64(idx, j));
            for (int64_t c = 0; c < inner; c++) X[(o * len + g) * inner + c] += D[(o * ni + j) * inner + c];
        }
    return 0;
}

/* (dy, x, w) -> dx, dw: the adjoint of ref_conv's loop, same attributes */
int ref_conv_grad(KernelCtx *k)
{
    const Tensor *dy = k->in[0], *x = k->in[1], *w = k->in[2];
    ConvParams p;
    Shape out;
    /* op_conv_params reads x and w as inputs 0 and 1 */
    InferCtx shifted = *k->ic;
    shifted.in[0] = k->ic->in[1];
    shifted.in[1] = k->ic->in[2];
    shifted.in[2] = NULL;
    shifted.n_in = 2;
    if (op_conv_params(&shifted, &p, &out)) { memcpy(k->ic->err, shifted.err, sizeof shifted.err); return -1; }
    int nsp = p.nsp;
    int64_t N = x->dims[0], C = x->dims[1], M = w->dims[0], G = p.group, cg = C / G, mg = M / G;
    int64_t xsp = 1, ysp = 1, ksp = 1;
    for (int i = 0; i < nsp; i++) { xsp *= x->dims[2 + i]; ysp *= dy->dims[2 + i]; ksp *= p.k[i]; }
    double *dx = calloc((size_t)tensor_numel(x), sizeof(double)), *dw = calloc((size_t)tensor_numel(w), sizeof(double));
    if (!dx || !dw) { free(dx); free(dw); return kernel_fail(k, "out of memory"); }
    const float *X = x->data, *W = w->data, *DY = dy->data;
    int bf16 = node_attr_i(k->ic->node, "bf16", 0) != 0; /* operands rounded (ir/ops.h) */
    for (int64_t n = 0; n < N; n++)
        for (int64_t m = 0; m < M; m++) {
            int64_t g = m / mg;
            for (int64_t o = 0; o < ysp; o++) {
                int64_t opos[IR_MAX_RANK], rem = o;
                for (int i = nsp - 1; i >= 0; i--) { opos[i] = rem % dy->dims[2 + i]; rem /= dy->dims[2 + i]; }
                float dv = DY[(n * M + m) * ysp + o];
                double d = bf16 ? bf16_round(dv) : dv;
                for (int64_t c = 0; c < cg; c++)
                    for (int64_t kq = 0; kq < ksp; kq++) {
                        int64_t kpos[IR_MAX_RANK], r2 = kq, xoff = 0, inside = 1;
                        for (int i = nsp - 1; i >= 0; i--) { kpos[i] = r2 % p.k[i]; r2 /= p.k[i]; }
                        for (int i = 0; i < nsp; i++) {
                            int64_t xi = opos[i] * p.stride[i] - p.pad_lo[i] + kpos[i] * p.dil[i];
                            if (xi < 0 || xi >= x->dims[2 + i]) { inside = 0; break; }
                            xoff = xoff * x->dims[2 + i] + xi;
                        }
                        if (!inside) continue;
                        int64_t xi = (n * C + g * cg + c) * xsp + xoff, wi = (m * cg + c) * ksp + kq;
                        dx[xi] += d * (bf16 ? bf16_round(W[wi]) : W[wi]);
                        dw[wi] += d * (bf16 ? bf16_round(X[xi]) : X[xi]);
                    }
            }
        }
    if (k->out[0]) for (int64_t i = 0, n = tensor_numel(x); i < n; i++) ((float *)k->out[0]->data)[i] = (float)dx[i];
    if (k->n_out > 1 && k->out[1]) for (int64_t i = 0, n = tensor_numel(w); i < n; i++) ((float *)k->out[1]->data)[i] = (float)dw[i];
    free(dx);
    free(dw);
    return 0;
}
