/* fast_attention.c — ai.vclip.Attention: the AVX-512 template kernel
 * (attention_avx512.c) where it fits, else BLAS: for each (batch row,
 * head) gather Q [N, d] and the concatenated key/value blocks [S*M, d]
 * (zeros for zero-filled frames), S = scale * Q K^T by sgemm, softmax rows
 * with the vectorized exp, O = P V by sgemm; the pairs are spread over the
 * thread pool, each running single-threaded BLAS.  Checked against
 * ref_attention.c in tests/unit/test_kernels.c. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "attention.h"
#include "parallel.h"

int openblas_get_num_threads(void);
void openblas_set_num_threads(int);

float fast_softmax_row(const float *in, float *out, int64_t len); /* fast_math.c */

void attention_softmax_rows(const AttentionParams *p, float *P, int64_t N, int64_t M, int ns, const float *mask)
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

/* (batch row, head) pairs [pb, pe) with their own buffers */
static void attention_pairs(void *vctx, int64_t pb, int64_t pe)
{
    AttnArgs *a = vctx;
    const AttentionParams *p = &a->p;
    int64_t B = a->B, N = a->N, M = a->M, d = p->head_dim, H = p->heads, S = (2 * p->window + 1) * M, src[2 * 64 + 1];
    float *Qh = malloc(sizeof(float) * (size_t)(N * d)), *Kh = malloc(sizeof(float) * (size_t)(S * d));
    float *Vh = malloc(sizeof(float) * (size_t)(S * d)), *P = malloc(sizeof(float) * (size_t)(N * S));
    float *Oh = malloc(sizeof(float) * (size_t)(N * d));
    if (!Qh || !Kh || !Vh || !P || !Oh) { a->failed = 1; goto done; }
    for (int64_t pair = pb; pair < pe; pair++) {
        int64_t b = pair / H, h = pair % H;
        int ns = attention_sources(p, b, src);
        int64_t L = ns * M;
        for (int64_t i = 0; i < N; i++) {
            int64_t row = p->seq_first ? (i * B + b) * a->Cq : (b * N + i) * a->Cq;
            memcpy(Qh + i * d, a->Q + row + p->q_off + h * d, sizeof(float) * (size_t)d);
        }
        for (int s = 0; s < ns; s++)
            for (int64_t m = 0; m < M; m++) {
                float *kd = Kh + (s * M + m) * d, *vd = Vh + (s * M + m) * d;
                if (src[s] < 0) { memset(kd, 0, sizeof(float) * (size_t)d); memset(vd, 0, sizeof(float) * (size_t)d); continue; }
                int64_t kr = p->seq_first ? (m * B + src[s]) * a->Ck : (src[s] * M + m) * a->Ck;
                int64_t vr = p->seq_first ? (m * B + src[s]) * a->Cv : (src[s] * M + m) * a->Cv;
                memcpy(kd, a->K + kr + p->k_off + h * d, sizeof(float) * (size_t)d);
                memcpy(vd, a->V + vr + p->v_off + h * d, sizeof(float) * (size_t)d);
            }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)L, (int)d, p->scale, Qh, (int)d, Kh, (int)d, 0.0f, P, (int)L);
        attention_softmax_rows(p, P, N, M, ns, a->mask);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)d, (int)L, 1.0f, P, (int)L, Vh, (int)d, 0.0f, Oh, (int)d);
        for (int64_t i = 0; i < N; i++) {
            int64_t row = p->seq_first ? (i * B + b) * a->Co : (b * N + i) * a->Co;
            memcpy(a->O + row + h * d, Oh + i * d, sizeof(float) * (size_t)d);
        }
    }
done:
    free(Qh);
    free(Kh);
    free(Vh);
    free(P);
    free(Oh);
}

int fast_attention(KernelCtx *k)
{
    AttnArgs a;
    memset(&a, 0, sizeof a);
    if (op_attention_params(k->ic, &a.p)) return -1;
    const Tensor *q = k->in[0], *kk = k->in[1], *v = k->in[2], *mask = k->n_in > 3 ? k->in[3] : NULL;
    int bi = a.p.seq_first ? 1 : 0, si = 1 - bi;
    a.B = q->dims[bi];
    a.N = q->dims[si];
    a.M = kk->dims[si];
    a.Cq = q->dims[2];
    a.Ck = kk->dims[2];
    a.Cv = v->dims[2];
    a.Co = a.p.heads * a.p.head_dim;
    if (kk->dims[bi] != a.B || v->dims[bi] != a.B || v->dims[si] != a.M || (a.p.frames && a.B % a.p.frames) || a.p.window > 64 ||
        (mask && (mask->dims[0] != a.N || mask->dims[1] != a.M)))
        return ref_attention(k); /* let the reference report the problem */
    a.Q = q->data;
    a.K = kk->data;
    a.V = v->data;
    a.mask = mask ? mask->data : NULL;
    a.O = k->out[0]->data;
    if (attention_avx512_fits(&a)) {
        parallel_for(a.B * a.p.heads, 1, attention_avx512_pairs, &a);
        return a.failed ? kernel_fail(k, "out of memory") : 0;
    }
    /* BLAS inside the workers must not fan out again: one thread each */
    int blas = parallel_threads() > 1 ? openblas_get_num_threads() : 1;
    if (blas > 1) openblas_set_num_threads(1);
    parallel_for(a.B * a.p.heads, 1, attention_pairs, &a);
    if (blas > 1) openblas_set_num_threads(blas);
    return a.failed ? kernel_fail(k, "out of memory") : 0;
}
