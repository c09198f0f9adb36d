/* ref_fused.c — reference kernels for our own fused ops (ai.vclip domain),
 * written as the unfused ops would compute them, in double precision. */
#include <math.h>
#include "kernels.h"

static int f32_only(KernelCtx *k)
{
    return k->in[0]->dtype == DT_F32 ? 0 : kernel_fail(k, "only f32 is supported, got %s", dtype_name(k->in[0]->dtype));
}

/* x * sigmoid(1.702 x), as OpenAI's CLIP defines QuickGELU */
int ref_quick_gelu(KernelCtx *k)
{
    if (f32_only(k)) return -1;
    const float *x = k->in[0]->data;
    float *y = k->out[0]->data;
    for (int64_t i = 0, n = tensor_numel(k->in[0]); i < n; i++) y[i] = (float)(x[i] / (1.0 + exp(-1.702 * x[i])));
    return 0;
}

/* 0.5 x (1 + erf(x / sqrt 2)): exact GELU */
int ref_gelu(KernelCtx *k)
{
    if (f32_only(k)) return -1;
    const float *x = k->in[0]->data;
    float *y = k->out[0]->data;
    for (int64_t i = 0, n = tensor_numel(k->in[0]); i < n; i++) y[i] = (float)(0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0))));
    return 0;
}

/* act(X [..., K] @ W + B [N]) + R, W plain or packed (ops.h) */
int ref_linear(KernelCtx *k)
{
    LinearParams p;
    if (op_linear_params(k->ic, &p)) return -1;
    const Tensor *x = k->in[0], *w = k->in[1], *b = p.has_bias ? k->in[2] : NULL, *res = p.has_residual ? k->in[3] : NULL;
    int x16 = x->dtype == DT_BF16 && p.packed == 4; /* a bf16 X, with bf16 weights only (ops.h) */
    if (!x16 && f32_only(k)) return -1;
    int64_t K = p.K, N = p.N, rows = tensor_numel(k->out[0]) / (N ? N : 1);
    const float *X = x->data, *W = w->data, *B = b ? b->data : NULL, *R = res ? res->data : NULL;
    const uint16_t *X16 = x->data, *W16 = w->data;
    int64_t K2 = (K + 1) / 2;
    float *Y = k->out[0]->data;
    uint16_t *Y16 = k->out[0]->data;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t n = 0; n < N; n++) {
            double s = B ? B[n] : 0;
            for (int64_t t = 0; t < K; t++) {
                int64_t q = n / LINEAR_PANEL, j = n % LINEAR_PANEL;
                if (p.packed == 4) /* bf16 weights: X rounded to bf16 as well */
                    s += (double)(x16 ? bf16_to_float(X16[r * K + t]) : bf16_round(X[r * K + t])) *
                         bf16_to_float(W16[((q * K2 + t / 2) * LINEAR_PANEL + j) * 2 + t % 2]);
                else if (p.bf16) /* both rounded to bf16 */
                    s += (double)bf16_round(X[r * K + t]) *
                         bf16_round(p.packed ? W[(q * K + t) * LINEAR_PANEL + j] : W[t * N + n]);
                else
                    s += (double)X[r * K + t] * (p.packed ? W[(q * K + t) * LINEAR_PANEL + j] : W[t * N + n]);
            }
            if (p.act == LINEAR_ACT_QUICK_GELU) s = s / (1.0 + exp(-1.702 * s));
            else if (p.act == LINEAR_ACT_GELU) s = 0.5 * s * (1.0 + erf(s / sqrt(2.0)));
            float y = (float)(s + (R ? R[r * N + n] : 0.0));
            if (p.bf16_output) Y16[r * N + n] = float_to_bf16(y);
            else Y[r * N + n] = y;
        }
    return 0;
}
