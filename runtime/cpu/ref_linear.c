/* ref_linear.c — reference MatMul, Gemm and Conv: plain loops with double
 * accumulation.  They are the oracle for fast_blas.c and must stay simple. */
#include <stdlib.h>
#include "kernels.h"

/* Batch offsets of A and B for each batch index of a broadcast MatMul. */
typedef struct { int brank; int64_t bdims[IR_MAX_RANK], sa[IR_MAX_RANK], sb[IR_MAX_RANK]; int64_t m, n, kk, nbatch; } MatmulPlan;

static int matmul_plan(KernelCtx *k, MatmulPlan *p)
{
    const Tensor *a = k->in[0], *b = k->in[1];
    Tensor *y = k->out[0];
    if (a->dtype != DT_F32) return kernel_fail(k, "only f32 is supported, got %s", dtype_name(a->dtype));
    int ar = a->rank, br = b->rank;
    p->m = ar == 1 ? 1 : a->dims[ar - 2];
    p->kk = a->dims[ar - 1];
    p->n = br == 1 ? 1 : b->dims[br - 1];
    p->brank = y->rank - (ar == 1 ? 0 : 1) - (br == 1 ? 0 : 1);
    p->nbatch = 1;
    for (int i = 0; i < p->brank; i++) { p->bdims[i] = y->dims[i]; p->nbatch *= y->dims[i]; }
    /* batch strides in units of whole matrices */
    int64_t mat_a = p->m * p->kk, mat_b = p->kk * p->n;
    int abr = ar > 2 ? ar - 2 : 0, bbr = br > 2 ? br - 2 : 0;
    int64_t s = mat_a;
    for (int i = p->brank - 1; i >= 0; i--) {
        int j = i - (p->brank - abr);
        p->sa[i] = (j < 0 || a->dims[j] == 1) ? 0 : s;
        if (j >= 0) s *= a->dims[j];
    }
    s = mat_b;
    for (int i = p->brank - 1; i >= 0; i--) {
        int j = i - (p->brank - bbr);
        p->sb[i] = (j < 0 || b->dims[j] == 1) ? 0 : s;
        if (j >= 0) s *= b->dims[j];
    }
    return 0;
}

static void batch_offsets(const MatmulPlan *p, int64_t bi, int64_t *oa, int64_t *ob)
{
    *oa = 0; *ob = 0;
    for (int i = p->brank - 1; i >= 0; i--) {
        int64_t d = bi % p->bdims[i];
        bi /= p->bdims[i];
        *oa += d * p->sa[i];
        *ob += d * p->sb[i];
    }
}

int ref_matmul(KernelCtx *k)
{
    MatmulPlan p = {0};
    if (matmul_plan(k, &p)) return -1;
    const float *A = k->in[0]->data, *B = k->in[1]->data;
    float *Y = k->out[0]->data;
    for (int64_t bi = 0; bi < p.nbatch; bi++) {
        int64_t oa, ob;
        batch_offsets(&p, bi, &oa, &ob);
        for (int64_t i = 0; i < p.m; i++)
            for (int64_t j = 0; j < p.n; j++) {
                double s = 0;
                for (int64_t t = 0; t < p.kk; t++) s += (double)A[oa + i * p.kk + t] * B[ob + t * p.n + j];
                Y[bi * p.m * p.n + i * p.n + j] = (float)s;
            }
    }
    return 0;
}

int ref_gemm(KernelCtx *k)
{
    const Tensor *a = k->in[0], *b = k->in[1], *c = k->n_in > 2 ? k->in[2] : NULL;
    Tensor *y = k->out[0];
    if (a->dtype != DT_F32) return kernel_fail(k, "only f32 is supported, got %s", dtype_name(a->dtype));
    int ta = (int)node_attr_i(k->ic->node, "transA", 0), tb = (int)node_attr_i(k->ic->node, "transB", 0);
    int bf16 = node_attr_i(k->ic->node, "bf16", 0) != 0; /* operands rounded to bf16 (ops.h) */
    double alpha = node_attr_f(k->ic->node, "alpha", 1.0f), beta = node_attr_f(k->ic->node, "beta", 1.0f);
    int64_t m = y->dims[0], n = y->dims[1], kk = ta ? a->dims[0] : a->dims[1];
    const float *A = a->data, *B = b->data;
    int64_t cst[IR_MAX_RANK];
    if (c) broadcast_strides(c, 2, y->dims, cst);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t t = 0; t < kk; t++) {
                float x = A[ta ? t * m + i : i * kk + t], w = B[tb ? j * kk + t : t * n + j];
                if (bf16) { x = bf16_round(x); w = bf16_round(w); }
                s += (double)x * w;
            }
            s *= alpha;
            if (c) s += beta * tensor_get_f64(c, i * cst[0] + j * cst[1]);
            ((float *)y->data)[i * n + j] = (float)s;
        }
    return 0;
}

int ref_conv(KernelCtx *k)
{
    const Tensor *x = k->in[0], *w = k->in[1], *bias = k->n_in > 2 ? k->in[2] : NULL;
    Tensor *y = k->out[0];
    if (x->dtype != DT_F32) return kernel_fail(k, "only f32 is supported, got %s", dtype_name(x->dtype));
    ConvParams p;
    Shape out;
    if (op_conv_params(k->ic, &p, &out)) return -1;
    int nsp = p.nsp;
    int64_t N = x->dims[0], C = x->dims[1], M = w->dims[0], G = p.group, cg = C / G, mg = M / G;
    int64_t xsp = 1, ysp = 1, ksp = 1;
    for (int i = 0; i < nsp; i++) { xsp *= x->dims[2 + i]; ysp *= y->dims[2 + i]; ksp *= p.k[i]; }
    const float *X = x->data, *W = w->data;
    float *Y = y->data;
    int bf16 = node_attr_i(k->ic->node, "bf16", 0) != 0; /* operands rounded to bf16, as for Gemm (ops.h) */
    for (int64_t n = 0; n < N; n++)
        for (int64_t m = 0; m < M; m++) {
            int64_t g = m / mg;
            for (int64_t o = 0; o < ysp; o++) {
                int64_t opos[IR_MAX_RANK], rem = o;
                for (int i = nsp - 1; i >= 0; i--) { opos[i] = rem % y->dims[2 + i]; rem /= y->dims[2 + i]; }
                double s = bias ? tensor_get_f64(bias, m) : 0;
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
                        float xv = X[(n * C + g * cg + c) * xsp + xoff], wv = W[(m * cg + c) * ksp + kq];
                        if (bf16) { xv = bf16_round(xv); wv = bf16_round(wv); }
                        s += (double)xv * wv;
                    }
                Y[(n * M + m) * ysp + o] = (float)s;
            }
        }
    return 0;
}
