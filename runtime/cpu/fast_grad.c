/* fast_grad.c — fast versions of the heavy gradient ops.
 *
 * AttentionGrad: attention_grad_avx512.c where the AVX-512 kernel fits;
 * elsewhere, per (head, batch row) the softmax is recomputed as in
 * fast_attention.c, then dP = dO V^T, dS = P * (dP - rowsum(P * dP)) * scale,
 * dQ = dS K, dK = dS^T Q, dV = P^T dO, all by sgemm (bf16 = 1: on operands
 * rounded to bf16 first, as ref_attention_grad.c defines it).  Neighbouring frames
 * share keys, so batch rows of one head accumulate into the same dK/dV rows:
 * the pool splits the work by head (disjoint channels), never by batch row.
 *
 * ConvGrad for patch embeddings (stride = kernel, no padding, one group):
 * patches are rows of an im2col matrix, so dW = dY_rows^T X_cols and
 * dX_cols = dY_rows W are two GEMMs (sgemm, or with bf16 = 1 our bf16 GEMM,
 * which rounds both operands); other convolutions use the reference.
 * InterpolateWeights (IWR's second forward's weights) over the thread pool.
 * All are checked against the reference kernels in tests/unit. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "attention.h"
#include "gemm.h"
#include "parallel.h"

int openblas_get_num_threads(void);
void openblas_set_num_threads(int);
float fast_softmax_row(const float *in, float *out, int64_t len); /* fast_math.c */

/* P [N, ns*M] scores -> probabilities: additive mask, causal mask, softmax per row. */
static void softmax_rows(const AttentionParams *p, float *P, int64_t N, int64_t M, int ns, const float *mask)
{
    int64_t L = ns * M;
    for (int64_t i = 0; i < N; i++) {
        float *r = P + i * L;
        if (mask)
            for (int s = 0; s < ns; s++)
                for (int64_t m = 0; m < M; m++) r[s * M + m] += mask[i * M + m];
        if (p->causal)
            for (int s = 0; s < ns; s++)
                for (int64_t m = i + 1; m < M; m++) r[s * M + m] = -INFINITY;
        fast_softmax_row(r, r, L);
    }
}

static void gather_rows(float *dst, const float *src, int64_t rows, int64_t d, int64_t (*row)(const AttnArgs *, int64_t, int64_t, int64_t),
                        const AttnArgs *a, int64_t b, int64_t C, int64_t off)
{
    for (int64_t i = 0; i < rows; i++) memcpy(dst + i * d, src + row(a, b, i, C) + off, sizeof(float) * (size_t)d);
}

static int64_t qrow(const AttnArgs *a, int64_t b, int64_t i, int64_t C) { return a->p.seq_first ? (i * a->B + b) * C : (b * a->N + i) * C; }
static int64_t krow(const AttnArgs *a, int64_t b, int64_t m, int64_t C) { return a->p.seq_first ? (m * a->B + b) * C : (b * a->M + m) * C; }

static void heads(void *vctx, int64_t hb, int64_t he)
{
    AttnArgs *a = vctx;
    const AttentionParams *p = &a->p;
    int64_t N = a->N, M = a->M, d = p->head_dim, S = (2 * p->window + 1) * M, src[2 * 64 + 1];
    float *Qh = malloc(sizeof(float) * (size_t)(N * d)), *DOh = malloc(sizeof(float) * (size_t)(N * d));
    float *Kh = malloc(sizeof(float) * (size_t)(S * d)), *Vh = malloc(sizeof(float) * (size_t)(S * d));
    float *P = malloc(sizeof(float) * (size_t)(N * S)), *dP = malloc(sizeof(float) * (size_t)(N * S));
    float *dQh = malloc(sizeof(float) * (size_t)(N * d)), *dKh = malloc(sizeof(float) * (size_t)(S * d)), *dVh = malloc(sizeof(float) * (size_t)(S * d));
    if (!Qh || !DOh || !Kh || !Vh || !P || !dP || !dQh || !dKh || !dVh) { a->failed = 1; goto done; }
    for (int64_t h = hb; h < he; h++)
        for (int64_t b = 0; b < a->B; b++) {
            int ns = attention_sources(p, b, src);
            int64_t L = ns * M;
            gather_rows(Qh, a->Q, N, d, qrow, a, b, a->Cq, p->q_off + h * d);
            gather_rows(DOh, a->dO, N, d, qrow, a, b, a->Co, h * d);
            for (int s = 0; s < ns; s++) {
                if (src[s] < 0) {
                    memset(Kh + s * M * d, 0, sizeof(float) * (size_t)(M * d));
                    memset(Vh + s * M * d, 0, sizeof(float) * (size_t)(M * d));
                    continue;
                }
                gather_rows(Kh + s * M * d, a->K, M, d, krow, a, src[s], a->Ck, p->k_off + h * d);
                gather_rows(Vh + s * M * d, a->V, M, d, krow, a, src[s], a->Cv, p->v_off + h * d);
            }
            if (p->bf16) { /* operands rounded before their products (ref_attention_grad.c) */
                attention_round_bf16(Qh, N * d, Qh);
                attention_round_bf16(DOh, N * d, DOh);
                attention_round_bf16(Kh, L * d, Kh);
                attention_round_bf16(Vh, L * d, Vh);
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)L, (int)d, p->scale, Qh, (int)d, Kh, (int)d, 0.0f, P, (int)L);
            softmax_rows(p, P, N, M, ns, a->mask);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)L, (int)d, 1.0f, DOh, (int)d, Vh, (int)d, 0.0f, dP, (int)L);
            for (int64_t i = 0; i < N; i++) {
                float *pr = P + i * L, *dr = dP + i * L;
                double dot = 0;
                for (int64_t j = 0; j < L; j++) dot += (double)pr[j] * dr[j];
                float fd = (float)dot;
                for (int64_t j = 0; j < L; j++) dr[j] = pr[j] * (dr[j] - fd) * p->scale;
                if (p->bf16) {
                    attention_round_bf16(pr, L, pr);
                    attention_round_bf16(dr, L, dr);
                }
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)d, (int)L, 1.0f, dP, (int)L, Kh, (int)d, 0.0f, dQh, (int)d);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)L, (int)d, (int)N, 1.0f, dP, (int)L, Qh, (int)d, 0.0f, dKh, (int)d);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)L, (int)d, (int)N, 1.0f, P, (int)L, DOh, (int)d, 0.0f, dVh, (int)d);
            for (int64_t i = 0; i < N; i++) {
                float *dst = a->dQ + qrow(a, b, i, a->Cq) + p->q_off + h * d;
                for (int64_t j = 0; j < d; j++) dst[j] += dQh[i * d + j];
            }
            for (int s = 0; s < ns; s++) {
                if (src[s] < 0) continue;
                for (int64_t m = 0; m < M; m++) {
                    float *dk = a->dK + krow(a, src[s], m, a->Ck) + p->k_off + h * d, *dv = a->dV + krow(a, src[s], m, a->Cv) + p->v_off + h * d;
                    const float *gk = dKh + (s * M + m) * d, *gv = dVh + (s * M + m) * d;
                    for (int64_t j = 0; j < d; j++) { dk[j] += gk[j]; dv[j] += gv[j]; }
                }
            }
        }
done:
    free(Qh); free(DOh); free(Kh); free(Vh); free(P); free(dP); free(dQh); free(dKh); free(dVh);
}

/* The three gradients start at zero (packed QKV leaves two thirds of each
 * untouched, and neighbouring frames add into dK and dV): zeroed in 64 KB
 * chunks spread over the pool rather than by one thread. */
#define ZERO_CHUNK 65536
typedef struct { Tensor *t[3]; } ZeroArgs;

static void zero_chunks(void *vctx, int64_t cb, int64_t ce)
{
    const ZeroArgs *z = vctx;
    for (int64_t c = cb; c < ce; c++) {
        int64_t at = c * ZERO_CHUNK;
        for (int t = 0; t < 3; t++) {
            int64_t n = (int64_t)z->t[t]->nbytes;
            if (at < n) { memset((char *)z->t[t]->data + at, 0, (size_t)(n - at < ZERO_CHUNK ? n - at : ZERO_CHUNK)); break; }
            at -= (n + ZERO_CHUNK - 1) / ZERO_CHUNK * ZERO_CHUNK;
        }
    }
}

int fast_attention_grad(KernelCtx *k)
{
    AttnArgs a;
    memset(&a, 0, sizeof a);
    InferCtx shifted = *k->ic;
    for (int i = 0; i < 3; i++) shifted.in[i] = k->ic->in[1 + i];
    if (op_attention_params(&shifted, &a.p)) return ref_attention_grad(k);
    const Tensor *dout = k->in[0], *q = k->in[1], *kk = k->in[2], *v = k->in[3], *mask = k->n_in > 4 ? k->in[4] : NULL;
    int bi = a.p.seq_first ? 1 : 0, si = 1 - bi;
    a.B = q->dims[bi]; a.N = q->dims[si]; a.M = kk->dims[si];
    a.Cq = q->dims[2]; a.Ck = kk->dims[2]; a.Cv = v->dims[2]; a.Co = a.p.heads * a.p.head_dim;
    if (kk->dims[bi] != a.B || v->dims[bi] != a.B || v->dims[si] != a.M || (a.p.frames && a.B % a.p.frames) || a.p.window > 64 ||
        (mask && (mask->dims[0] != a.N || mask->dims[1] != a.M)) || k->n_out < 3 || !k->out[0] || !k->out[1] || !k->out[2])
        return ref_attention_grad(k);
    a.Q = q->data; a.K = kk->data; a.V = v->data; a.dO = dout->data; a.mask = mask ? mask->data : NULL;
    a.dQ = k->out[0]->data; a.dK = k->out[1]->data; a.dV = k->out[2]->data;
    ZeroArgs z = {{k->out[0], k->out[1], k->out[2]}};
    int64_t chunks = 0;
    for (int t = 0; t < 3; t++) chunks += ((int64_t)k->out[t]->nbytes + ZERO_CHUNK - 1) / ZERO_CHUNK;
    parallel_for(chunks, 4, zero_chunks, &z);
    if (attention_avx512_fits(&a)) {
        parallel_for(a.p.heads, 1, attention_grad_avx512_heads, &a);
        return a.failed ? kernel_fail(k, "out of memory") : 0;
    }
    int blas = parallel_threads() > 1 ? openblas_get_num_threads() : 1;
    if (blas > 1) openblas_set_num_threads(1);
    parallel_for(a.p.heads, 1, heads, &a);
    if (blas > 1) openblas_set_num_threads(blas);
    return a.failed ? kernel_fail(k, "out of memory") : 0;
}

/* InterpolateWeights, IWR's θ~ = α θ_CLIP + (1 - α) θ: the reference's
 * double arithmetic, bit for bit, over the thread pool (a pass over every
 * weight of the model each step; one thread's before). */
typedef struct {
    const float *w0, *w;
    float *y;
    double alpha;
} InterpolateArgs;

static void interpolate_range(void *vctx, int64_t b, int64_t e)
{
    const InterpolateArgs *m = vctx;
    for (int64_t i = b; i < e; i++) m->y[i] = (float)(m->alpha * m->w0[i] + (1 - m->alpha) * m->w[i]);
}

int fast_interpolate_weights(KernelCtx *k)
{
    const Tensor *w0 = k->in[0], *w = k->in[1];
    if (w0->dtype != DT_F32 || w->dtype != DT_F32 || tensor_numel(w0) != tensor_numel(w)) return ref_interpolate_weights(k);
    InterpolateArgs m = {w0->data, w->data, k->out[0]->data, tensor_get_f64(k->in[2], 0)};
    parallel_for(tensor_numel(w), 65536, interpolate_range, &m);
    return 0;
}

/* Non-overlapping patches of an image batch <-> rows of an im2col matrix. */
typedef struct { int64_t N, C, H, W, kh, kw, OH, OW; } PatchShape;

static void patches(const PatchShape *s, float *img, float *cols, int to_cols)
{
    int64_t CK = s->C * s->kh * s->kw;
    for (int64_t n = 0; n < s->N; n++)
        for (int64_t oh = 0; oh < s->OH; oh++)
            for (int64_t ow = 0; ow < s->OW; ow++) {
                int64_t r = (n * s->OH + oh) * s->OW + ow;
                for (int64_t c = 0; c < s->C; c++)
                    for (int64_t i = 0; i < s->kh; i++) {
                        float *pi = img + ((n * s->C + c) * s->H + oh * s->kh + i) * s->W + ow * s->kw;
                        float *pc = cols + r * CK + (c * s->kh + i) * s->kw;
                        memcpy(to_cols ? pc : pi, to_cols ? pi : pc, sizeof(float) * (size_t)s->kw);
                    }
            }
}

int fast_conv_grad(KernelCtx *k)
{
    const Tensor *dy = k->in[0], *x = k->in[1], *w = k->in[2];
    InferCtx shifted = *k->ic;
    shifted.in[0] = k->ic->in[1];
    shifted.in[1] = k->ic->in[2];
    shifted.in[2] = NULL;
    shifted.n_in = 2;
    ConvParams p;
    Shape out;
    int bf16 = node_attr_i(k->ic->node, "bf16", 0) != 0; /* on the bf16 GEMM, or the reference where the CPU has none */
    if (op_conv_params(&shifted, &p, &out) || p.nsp != 2 || p.group != 1 || x->rank != 4 || (bf16 && !gemm_available(DT_BF16)))
        return ref_conv_grad(k);
    for (int i = 0; i < 2; i++)
        if (p.stride[i] != p.k[i] || p.dil[i] != 1 || p.pad_lo[i] || p.pad_hi[i] || x->dims[2 + i] != dy->dims[2 + i] * p.k[i])
            return ref_conv_grad(k);
    int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3], M = w->dims[0], kh = p.k[0], kw = p.k[1];
    int64_t OH = dy->dims[2], OW = dy->dims[3], R = N * OH * OW, CK = C * kh * kw;
    float *cols = malloc(sizeof(float) * (size_t)(R * CK)), *dyr = malloc(sizeof(float) * (size_t)(R * M));
    if (!cols || !dyr) { free(cols); free(dyr); return kernel_fail(k, "out of memory"); }
    const float *DY = dy->data;
    PatchShape ps = {N, C, H, W, kh, kw, OH, OW};
    patches(&ps, x->data, cols, 1);
    for (int64_t n = 0; n < N; n++)
        for (int64_t m = 0; m < M; m++)
            for (int64_t o = 0; o < OH * OW; o++) dyr[(n * OH * OW + o) * M + m] = DY[(n * M + m) * OH * OW + o];
    int rc = 0;
    if (k->n_out > 1 && k->out[1]) { /* dW [M, CK] = dY_rows^T [M, R] . cols [R, CK] */
        if (bf16) rc = gemm_unpacked(DT_BF16, M, dyr, M, 1, cols, R, CK, 0, k->out[1]->data, CK, NULL);
        else
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)M, (int)CK, (int)R, 1.0f, dyr, (int)M, cols, (int)CK, 0.0f,
                        k->out[1]->data, (int)CK);
    }
    if (!rc && k->out[0]) { /* dX_cols [R, CK] = dY_rows [R, M] . W [M, CK], scattered back (patches do not overlap) */
        if (bf16) rc = gemm_unpacked(DT_BF16, R, dyr, M, 0, w->data, M, CK, 0, cols, CK, NULL);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)R, (int)CK, (int)M, 1.0f, dyr, (int)M, w->data, (int)CK, 0.0f, cols,
                        (int)CK);
        if (!rc) patches(&ps, k->out[0]->data, cols, 0);
    }
    free(cols);
    free(dyr);
    return rc ? kernel_fail(k, "out of memory") : 0;
}
