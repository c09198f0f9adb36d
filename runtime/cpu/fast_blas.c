/* fast_blas.c — MatMul, Gemm and Conv through BLAS sgemm (multi-threaded by
 * the BLAS library); Gemm (a training step's products whose operands change
 * every call) and the patch-embedding Conv (stride = kernel, no padding;
 * in bf16 too) through gemm.c where the CPU has AVX-512, whose kernel beats OpenBLAS's
 * there (bench/results/gemm/).  Checked against ref_linear.c in tests/unit. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include "gemm.h"
#include "kernels.h"

static int f32_only(KernelCtx *k)
{
    if (k->in[0]->dtype != DT_F32) return ref_kernels[k->ic->node->op](k);
    return 1;
}

int fast_matmul(KernelCtx *k)
{
    int r = f32_only(k);
    if (r != 1) return r;
    const Tensor *a = k->in[0], *b = k->in[1];
    Tensor *y = k->out[0];
    int ar = a->rank, br = b->rank;
    int64_t m = ar == 1 ? 1 : a->dims[ar - 2], kk = a->dims[ar - 1], n = br == 1 ? 1 : b->dims[br - 1];
    int64_t ny = tensor_numel(y);
    if (ny == 0) return 0;
    if (kk == 0) { memset(y->data, 0, y->nbytes); return 0; }
    if (br <= 2) {
        /* weights: fold every batch dim of A into M, one GEMM */
        int64_t rows = tensor_numel(a) / kk;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)n, (int)kk, 1.0f,
                    a->data, (int)kk, b->data, (int)n, 0.0f, y->data, (int)n);
        return 0;
    }
    /* batched: broadcast over leading dims */
    int brank = y->rank - (ar == 1 ? 0 : 1) - 1;
    int64_t bdims[IR_MAX_RANK], sa[IR_MAX_RANK], sb[IR_MAX_RANK], nb = 1, s;
    for (int i = 0; i < brank; i++) { bdims[i] = y->dims[i]; nb *= bdims[i]; }
    int abr = ar > 2 ? ar - 2 : 0, bbr = br - 2;
    s = m * kk;
    for (int i = brank - 1; i >= 0; i--) { int j = i - (brank - abr); sa[i] = (j < 0 || a->dims[j] == 1) ? 0 : s; if (j >= 0) s *= a->dims[j]; }
    s = kk * n;
    for (int i = brank - 1; i >= 0; i--) { int j = i - (brank - bbr); sb[i] = (j < 0 || b->dims[j] == 1) ? 0 : s; if (j >= 0) s *= b->dims[j]; }
    const float *A = a->data, *B = b->data;
    float *Y = y->data;
    for (int64_t bi = 0; bi < nb; bi++) {
        int64_t oa = 0, ob = 0, rem = bi;
        for (int i = brank - 1; i >= 0; i--) { int64_t d = rem % bdims[i]; rem /= bdims[i]; oa += d * sa[i]; ob += d * sb[i]; }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)kk, 1.0f,
                    A + oa, (int)kk, B + ob, (int)n, 0.0f, Y + bi * m * n, (int)n);
    }
    return 0;
}

/* Gemm on gemm.c: op(B) packed into panels of dtype for this call (bf16,
 * for a Gemm marked bf16 (ir/ops.h): rounded, and op(A) rounded as the GEMM
 * packs it), op(A) read in place (transposed or not), then Y = alpha *
 * product + b0 * Y (Y holds C when b0 is not 0).  At alpha = beta = 1 a
 * C of one row is the GEMM's bias and a whole [M, N] one its residual (a
 * weight gradient's second half, fused by fuse-linear-epilogue), both added
 * in registers instead. */
static int our_gemm(KernelCtx *k, DType dtype, int ta, int tb, float alpha, float b0, const float *bias, const float *residual)
{
    const Tensor *a = k->in[0], *b = k->in[1];
    Tensor *y = k->out[0];
    int64_t m = y->dims[0], n = y->dims[1], kk = ta ? a->dims[0] : a->dims[1];
    float *prod = alpha != 1.0f || b0 != 0.0f ? malloc(sizeof(float) * (size_t)(m * n)) : y->data;
    GemmEpilogue ep = {.bias = bias, .residual = residual, .ldr = n};
    int rc = -1;
    if (!prod) goto done;
    if (gemm_unpacked(dtype, m, a->data, ta ? m : kk, ta, b->data, kk, n, tb, prod, n, &ep)) goto done;
    if (prod != y->data) {
        float *Y = y->data;
        for (int64_t i = 0; i < m * n; i++) Y[i] = alpha * prod[i] + (b0 != 0.0f ? b0 * Y[i] : 0.0f);
    }
    rc = 0;
done:
    if (prod != y->data) free(prod);
    return rc ? kernel_fail(k, "out of memory for a GEMM [%lld, %lld, %lld]", (long long)m, (long long)kk, (long long)n) : 0;
}

int fast_gemm(KernelCtx *k)
{
    int r = f32_only(k);
    if (r != 1) return r;
    const Tensor *a = k->in[0], *b = k->in[1], *c = k->n_in > 2 ? k->in[2] : NULL;
    Tensor *y = k->out[0];
    int ta = (int)node_attr_i(k->ic->node, "transA", 0), tb = (int)node_attr_i(k->ic->node, "transB", 0);
    float alpha = node_attr_f(k->ic->node, "alpha", 1.0f), beta = node_attr_f(k->ic->node, "beta", 1.0f);
    int64_t m = y->dims[0], n = y->dims[1], kk = ta ? a->dims[0] : a->dims[1];
    float *Y = y->data;
    float b0 = 0.0f;
    int bf16 = node_attr_i(k->ic->node, "bf16", 0) != 0, ours = bf16 ? gemm_available(DT_BF16) : gemm_kernel_for(DT_F32) == GEMM_KERNEL_AVX512;
    if (c && ours && alpha == 1.0f && beta == 1.0f && c->dtype == DT_F32 && kk > 0) {
        int whole = c->rank == 2 && c->dims[0] == m && c->dims[1] == n;
        int row = !whole && tensor_numel(c) == n && (c->rank == 1 || (c->rank == 2 && c->dims[0] == 1)); /* the out_proj's bias */
        if (whole || row) return our_gemm(k, bf16 ? DT_BF16 : DT_F32, ta, tb, 1.0f, 0.0f, row ? c->data : NULL, whole ? c->data : NULL);
    }
    if (c && beta != 0.0f) {
        if (c->dtype != DT_F32) return ref_gemm(k);
        int64_t cst[IR_MAX_RANK];
        broadcast_strides(c, 2, y->dims, cst);
        const float *C = c->data;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) Y[i * n + j] = C[i * cst[0] + j * cst[1]];
        b0 = beta;
    }
    if (m == 0 || n == 0) return 0;
    if (kk == 0) { if (b0 == 0.0f) memset(Y, 0, y->nbytes); return 0; }
    if (bf16) return ours ? our_gemm(k, DT_BF16, ta, tb, alpha, b0, NULL, NULL) : ref_gemm(k);
    if (ours) return our_gemm(k, DT_F32, ta, tb, alpha, b0, NULL, NULL); /* faster than OpenBLAS (bench/results/gemm) */
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n,
                (int)kk, alpha, a->data, ta ? (int)m : (int)kk, b->data, tb ? (int)kk : (int)n, b0, Y, (int)n);
    return 0;
}

/* ViT's patch embedding: every input pixel in exactly one patch.  The
 * patches go straight into the GEMM's column panels (B = im2col [C*KH*KW,
 * N*OH*OW]), W [M, C*KH*KW] is A, and the result is scattered to NCHW with
 * the bias.  With the attribute bf16 (passes/mark_bf16_gemms.c) the patches
 * are gathered as rows [N*OH*OW, C*KH*KW] and the bf16 GEMM rounds both
 * operands, as ref_conv does. */
static int patch_conv(KernelCtx *k, const ConvParams *p, int bf16)
{
    const Tensor *x = k->in[0], *w = k->in[1], *bias = k->n_in > 2 ? k->in[2] : NULL;
    Tensor *y = k->out[0];
    int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3], M = w->dims[0];
    int64_t KH = p->k[0], KW = p->k[1], OH = y->dims[2], OW = y->dims[3], P = OH * OW, K = C * KH * KW, NP = N * P;
    float *panels = aligned_alloc(64, sizeof(float) * (size_t)(((bf16 ? NP * K : gemm_packed_floats(K, NP)) + 31) / 16 * 16)); /* whole 64-byte lines */
    float *c = malloc(sizeof(float) * (size_t)(M * NP + 1));
    if (!panels || !c) { free(panels); free(c); return kernel_fail(k, "out of memory for the patch matrix"); }
    const float *X = x->data;
    int rc;
    if (bf16) {
        for (int64_t col = 0; col < NP; col++) {
            int64_t n = col / P, oh = col % P / OW, ow = col % OW;
            for (int64_t ch = 0; ch < C; ch++)
                for (int64_t kh = 0; kh < KH; kh++)
                    memcpy(panels + col * K + (ch * KH + kh) * KW, X + ((n * C + ch) * H + oh * KH + kh) * W + ow * KW,
                           sizeof(float) * (size_t)KW);
        }
        rc = gemm_unpacked(DT_BF16, M, w->data, K, 0, panels, K, NP, 1, c, NP, NULL);
    } else {
        for (int64_t q = 0; q * LINEAR_PANEL < NP; q++) {
            int64_t at[LINEAR_PANEL];
            for (int j = 0; j < LINEAR_PANEL; j++) {
                int64_t col = q * LINEAR_PANEL + j, n = col / P, oh = col % P / OW, ow = col % OW;
                at[j] = col < NP ? (n * C * H + oh * KH) * W + ow * KW : -1;
            }
            float *d = panels + q * K * LINEAR_PANEL;
            for (int64_t ch = 0; ch < C; ch++)
                for (int64_t kh = 0; kh < KH; kh++)
                    for (int64_t kw = 0; kw < KW; kw++, d += LINEAR_PANEL)
                        for (int j = 0; j < LINEAR_PANEL; j++) d[j] = at[j] < 0 ? 0.0f : X[at[j] + (ch * H + kh) * W + kw];
        }
        PackedB pb = {.dtype = DT_F32, .panels = panels, .K = K, .N = NP};
        rc = gemm(M, w->data, K, &pb, c, NP, NULL);
    }
    free(panels);
    if (rc) { free(c); return kernel_fail(k, "out of memory"); }
    float *Y = y->data;
    for (int64_t n = 0; n < N; n++)
        for (int64_t m = 0; m < M; m++) {
            float b = bias ? (float)tensor_get_f64(bias, m) : 0.0f;
            for (int64_t q = 0; q < P; q++) Y[(n * M + m) * P + q] = c[m * NP + n * P + q] + b;
        }
    free(c);
    return 0;
}

int fast_conv(KernelCtx *k)
{
    int r = f32_only(k);
    if (r != 1) return r;
    const Tensor *x = k->in[0], *w = k->in[1], *bias = k->n_in > 2 ? k->in[2] : NULL;
    Tensor *y = k->out[0];
    ConvParams p;
    Shape out;
    if (op_conv_params(k->ic, &p, &out)) return -1;
    int bf16 = node_attr_i(k->ic->node, "bf16", 0) != 0;
    if (p.nsp != 2) return ref_conv(k);
    if (p.group == 1 && p.stride[0] == p.k[0] && p.stride[1] == p.k[1] && p.dil[0] == 1 && p.dil[1] == 1 && !p.pad_lo[0] &&
        !p.pad_lo[1] && !p.pad_hi[0] && !p.pad_hi[1] && w->dtype == DT_F32 && (!bias || bias->dtype == DT_F32) &&
        gemm_available(bf16 ? DT_BF16 : DT_F32))
        return patch_conv(k, &p, bf16);
    if (bf16) return ref_conv(k); /* only the patch embedding has a bf16 kernel */
    int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    int64_t M = w->dims[0], G = p.group, cg = C / G, mg = M / G, OH = y->dims[2], OW = y->dims[3];
    int64_t KH = p.k[0], KW = p.k[1], K = cg * KH * KW, P = OH * OW;
    size_t colbytes;
    if (__builtin_mul_overflow((size_t)K, (size_t)P * sizeof(float), &colbytes)) return kernel_fail(k, "im2col too large");
    float *col = malloc(colbytes ? colbytes : 4);
    if (!col) return kernel_fail(k, "out of memory for im2col (%zu bytes)", colbytes);
    const float *X = x->data, *Wt = w->data;
    float *Y = y->data;
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < G; g++) {
            /* im2col: rows (c, kh, kw), columns (oh, ow) */
            for (int64_t c = 0; c < cg; c++)
                for (int64_t kh = 0; kh < KH; kh++)
                    for (int64_t kw = 0; kw < KW; kw++) {
                        float *row = col + ((c * KH + kh) * KW + kw) * P;
                        const float *plane = X + ((n * C) + g * cg + c) * H * W;
                        for (int64_t oh = 0; oh < OH; oh++) {
                            int64_t ih = oh * p.stride[0] - p.pad_lo[0] + kh * p.dil[0];
                            for (int64_t ow = 0; ow < OW; ow++) {
                                int64_t iw = ow * p.stride[1] - p.pad_lo[1] + kw * p.dil[1];
                                row[oh * OW + ow] = (ih >= 0 && ih < H && iw >= 0 && iw < W) ? plane[ih * W + iw] : 0.0f;
                            }
                        }
                    }
            float *yg = Y + (n * M + g * mg) * P;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)mg, (int)P, (int)K, 1.0f,
                        Wt + g * mg * K, (int)K, col, (int)P, 0.0f, yg, (int)P);
            if (bias)
                for (int64_t m = 0; m < mg; m++) {
                    float bv = (float)tensor_get_f64(bias, g * mg + m);
                    for (int64_t q = 0; q < P; q++) yg[m * P + q] += bv;
                }
        }
    free(col);
    return 0;
}
