/* fast_attention.c — ai.vclip.Attention with BLAS: for each (batch row,
 * head) gather Q [N, d] and the concatenated key/value blocks [S*M, d]
 * (zeros for zero-filled frames), S = scale * Q K^T by sgemm, softmax rows
 * with the vectorized exp, O = P V by sgemm.  Checked against
 * ref_attention.c in tests/unit/test_kernels.c. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "kernels.h"

float fast_softmax_row(const float *in, float *out, int64_t len); /* fast_math.c */

int fast_attention(KernelCtx *k)
{
    AttentionParams p;
    if (op_attention_params(k->ic, &p)) return -1;
    const Tensor *q = k->in[0], *kk = k->in[1], *v = k->in[2], *mask = k->n_in > 3 ? k->in[3] : NULL;
    int bi = p.seq_first ? 1 : 0, si = 1 - bi;
    int64_t B = q->dims[bi], N = q->dims[si], M = kk->dims[si], d = p.head_dim, H = p.heads;
    int64_t Cq = q->dims[2], Ck = kk->dims[2], Cv = v->dims[2], Co = H * d;
    if (kk->dims[bi] != B || v->dims[bi] != B || v->dims[si] != M || (p.frames && B % p.frames) || p.window > 64 ||
        (mask && (mask->dims[0] != N || mask->dims[1] != M)))
        return ref_attention(k); /* let the reference report the problem */
    int64_t src[2 * 64 + 1], S = (2 * p.window + 1) * M;
    float *Qh = malloc(sizeof(float) * (size_t)(N * d)), *Kh = malloc(sizeof(float) * (size_t)(S * d));
    float *Vh = malloc(sizeof(float) * (size_t)(S * d)), *P = malloc(sizeof(float) * (size_t)(N * S));
    float *Oh = malloc(sizeof(float) * (size_t)(N * d));
    int rc = 0;
    if (!Qh || !Kh || !Vh || !P || !Oh) { rc = kernel_fail(k, "out of memory"); goto done; }
    const float *Q = q->data, *K = kk->data, *V = v->data;
    float *O = k->out[0]->data;
    for (int64_t b = 0; b < B; b++) {
        int ns = attention_sources(&p, b, src);
        int64_t L = ns * M;
        for (int64_t h = 0; h < H; h++) {
            for (int64_t i = 0; i < N; i++) {
                int64_t row = p.seq_first ? (i * B + b) * Cq : (b * N + i) * Cq;
                memcpy(Qh + i * d, Q + row + p.q_off + h * d, sizeof(float) * (size_t)d);
            }
            for (int s = 0; s < ns; s++)
                for (int64_t m = 0; m < M; m++) {
                    float *kd = Kh + (s * M + m) * d, *vd = Vh + (s * M + m) * d;
                    if (src[s] < 0) { memset(kd, 0, sizeof(float) * (size_t)d); memset(vd, 0, sizeof(float) * (size_t)d); continue; }
                    int64_t kr = p.seq_first ? (m * B + src[s]) * Ck : (src[s] * M + m) * Ck;
                    int64_t vr = p.seq_first ? (m * B + src[s]) * Cv : (src[s] * M + m) * Cv;
                    memcpy(kd, K + kr + p.k_off + h * d, sizeof(float) * (size_t)d);
                    memcpy(vd, V + vr + p.v_off + h * d, sizeof(float) * (size_t)d);
                }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)L, (int)d, p.scale, Qh, (int)d, Kh, (int)d,
                        0.0f, P, (int)L);
            for (int64_t i = 0; i < N; i++) {
                float *r = P + i * L;
                if (mask)
                    for (int s = 0; s < ns; s++)
                        for (int64_t m = 0; m < M; m++) r[s * M + m] += ((const float *)mask->data)[i * M + m];
                if (p.causal)
                    for (int s = 0; s < ns; s++)
                        for (int64_t m = i + 1; m < M; m++) r[s * M + m] = -INFINITY;
                fast_softmax_row(r, r, L);
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)d, (int)L, 1.0f, P, (int)L, Vh, (int)d,
                        0.0f, Oh, (int)d);
            for (int64_t i = 0; i < N; i++) {
                int64_t row = p.seq_first ? (i * B + b) * Co : (b * N + i) * Co;
                memcpy(O + row + h * d, Oh + i * d, sizeof(float) * (size_t)d);
            }
        }
    }
done:
    free(Qh);
    free(Kh);
    free(Vh);
    free(P);
    free(Oh);
    return rc;
}
