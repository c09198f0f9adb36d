/* fast_linear.c — ai.vclip.Linear, act(X @ W + B) + R: on gemm.c with its
 * fused epilogue where the CPU has AVX-512 (a plain W is packed per call, a
 * packed one is used in place, less its zero padding, pad_rows and
 * pad_columns; bf16 panels need AVX512-BF16, and take X and give Y in bf16
 * where the graph says so, bf16_output; an f32 W marked
 * bf16 is rounded into bf16 panels per call), else BLAS (per panel for a
 * packed f32 W) followed by the epilogue in scalar code, or the reference
 * kernel for bf16.  Checked against ref_linear. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include "gemm.h"
#include "kernels.h"

static int blas_linear(const LinearParams *p, const float *X, const float *W, float *Y, int64_t rows)
{
    if (p->K == 0) memset(Y, 0, sizeof(float) * (size_t)(rows * p->N));
    else if (!p->packed)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)p->N, (int)p->K, 1.0f, X, (int)p->K, W,
                    (int)p->N, 0.0f, Y, (int)p->N);
    else
        for (int64_t q = 0; q * LINEAR_PANEL < p->N; q++) {
            int64_t cols = p->N - q * LINEAR_PANEL < LINEAR_PANEL ? p->N - q * LINEAR_PANEL : LINEAR_PANEL;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)cols, (int)p->K, 1.0f, X, (int)p->K,
                        W + q * p->K * LINEAR_PANEL, LINEAR_PANEL, 0.0f, Y + q * LINEAR_PANEL, (int)p->N);
        }
    return 0;
}

int fast_linear(KernelCtx *k)
{
    LinearParams p;
    if (op_linear_params(k->ic, &p)) return -1;
    DType wt = k->in[1]->dtype, xt = k->in[0]->dtype, yt = k->out[0]->dtype; /* bf16 X and Y: with a packed bf16 W only */
    for (int i = 0; i < k->n_in; i++)
        if (k->in[i] && k->in[i]->dtype != DT_F32 && !(i < 2 && k->in[i]->dtype == DT_BF16 && wt == DT_BF16 && p.packed)) return ref_linear(k);
    if ((wt == DT_BF16 && !gemm_available(DT_BF16)) || (xt == DT_BF16 && (p.K - p.pad_rows) % 2)) return ref_linear(k); /* gemm_typed: K even */
    const float *X = k->in[0]->data, *W = k->in[1]->data;
    const float *B = p.has_bias ? k->in[2]->data : NULL, *R = p.has_residual ? k->in[3]->data : NULL;
    float *Y = k->out[0]->data;
    int64_t rows = tensor_numel(k->out[0]) / (p.N ? p.N : 1);
    if (rows == 0 || p.N == 0) return 0;
    if (p.bf16 && (p.packed || !gemm_available(DT_BF16))) return ref_linear(k);
    if (!p.bf16 && !gemm_available(DT_F32)) {
        blas_linear(&p, X, W, Y, rows);
        gemm_epilogue_scalar(rows, Y, p.N, p.N, &(GemmEpilogue){.bias = B, .act = p.act, .residual = R, .ldr = p.N});
        return 0;
    }
    GemmEpilogue ep = {.bias = B, .act = p.act, .residual = R, .ldr = p.N};
    int rc;
    if (p.packed) { /* W's zero last rows and columns skipped, those columns of Y written as act(0) = 0 */
        PackedB pb = {.dtype = wt, .panels = W, .K = p.K - p.pad_rows, .N = p.N - p.pad_columns, .panel_rows = p.K};
        rc = gemm_typed(rows, X, xt, p.K, &pb, Y, yt, p.N, &ep);
        size_t y_size = dtype_size(yt);
        for (int64_t i = 0; !rc && p.pad_columns && i < rows; i++)
            memset((char *)Y + (i * p.N + pb.N) * y_size, 0, y_size * (size_t)p.pad_columns);
    } else /* a weight being trained, packed (bf16: rounded) per call */
        rc = gemm_unpacked(p.bf16 ? DT_BF16 : DT_F32, rows, X, p.K, 0, W, p.K, p.N, 0, Y, p.N, &ep);
    return rc ? kernel_fail(k, "out of memory for the GEMM [%lld, %lld, %lld]", (long long)rows, (long long)p.K, (long long)p.N) : 0;
}
