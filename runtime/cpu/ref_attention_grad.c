/* ref_attention_grad.c — the reference gradient of ai.vclip.Attention,
 * including the temporal window and both boundaries.  It recomputes each
 * query row's softmax (no stored probabilities), then
 *   dP = dout . v,  dS = P * (dP - dout . out),
 *   dq += scale * dS k,  dk += scale * dS q,  dv += P dout.
 * Zero-filled neighbour frames keep their softmax share (logit 0) but have no
 * keys or values to receive a gradient.  dq, dk, dv are shaped like q, k, v
 * and zero outside the channels the heads read, so packed QKV works.
 *
 * bf16 = 1 differentiates the bf16 forward (ref_attention.c), the rounding
 * passed through as autocast's casts are: q, k, v and dout are rounded to
 * bf16, so are dS and the P that weights dout; the softmax, its row sum
 * dout . (P v) and every sum stay in double. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "kernels.h"

static float rounded(float x, int bf16) { return bf16 ? bf16_round(x) : x; }

int ref_attention_grad(KernelCtx *k)
{
    AttentionParams p;
    InferCtx shifted = *k->ic; /* op_attention_params reads q, k, v as inputs 0..2 */
    for (int i = 0; i < 3; i++) shifted.in[i] = k->ic->in[1 + i];
    if (op_attention_params(&shifted, &p)) { memcpy(k->ic->err, shifted.err, sizeof shifted.err); return -1; }
    const Tensor *dout = k->in[0], *q = k->in[1], *kk = k->in[2], *v = k->in[3], *mask = k->n_in > 4 ? k->in[4] : NULL;
    int bi = p.seq_first ? 1 : 0, si = 1 - bi;
    int64_t B = q->dims[bi], N = q->dims[si], M = kk->dims[si], d = p.head_dim, H = p.heads;
    int64_t Cq = q->dims[2], Ck = kk->dims[2], Cv = v->dims[2], Co = H * d;
    if (p.frames && B % p.frames) return kernel_fail(k, "batch is not a multiple of frames");
    int64_t src[2 * 64 + 1];
    int64_t L = (2 * p.window + 1) * M + 1;
    double *P = malloc(sizeof(double) * (size_t)(2 * L + d));
    double *DQ = calloc((size_t)tensor_numel(q), sizeof(double)), *DK = calloc((size_t)tensor_numel(kk), sizeof(double));
    double *DV = calloc((size_t)tensor_numel(v), sizeof(double));
    if (!P || !DQ || !DK || !DV) { free(P); free(DQ); free(DK); free(DV); return kernel_fail(k, "out of memory"); }
    double *dP = P + L, *o = P + 2 * L;
    const float *Q = q->data, *K = kk->data, *V = v->data, *DO = dout->data;
    for (int64_t b = 0; b < B; b++) {
        int ns = attention_sources(&p, b, src);
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < N; i++) {
                int64_t qrow = p.seq_first ? (i * B + b) * Cq : (b * N + i) * Cq;
                int64_t orow = p.seq_first ? (i * B + b) * Co : (b * N + i) * Co;
                const float *qv = Q + qrow + p.q_off + h * d, *dov = DO + orow + h * d;
                double mx = -INFINITY, sum = 0;
                for (int s = 0; s < ns; s++)
                    for (int64_t m = 0; m < M; m++) {
                        double l = 0;
                        if (src[s] >= 0) {
                            const float *kv = K + (p.seq_first ? (m * B + src[s]) * Ck : (src[s] * M + m) * Ck) + p.k_off + h * d;
                            for (int64_t j = 0; j < d; j++) l += (double)rounded(qv[j], p.bf16) * rounded(kv[j], p.bf16);
                            l *= p.scale;
                        }
                        if (mask) l += ((const float *)mask->data)[i * M + m];
                        if (p.causal && m > i) l = -INFINITY;
                        P[s * M + m] = l;
                        if (l > mx) mx = l;
                    }
                for (int64_t t = 0; t < ns * M; t++) { P[t] = exp(P[t] - mx); sum += P[t]; }
                for (int64_t t = 0; t < ns * M; t++) P[t] /= sum;
                memset(o, 0, sizeof(double) * (size_t)d);
                double dot_do = 0;
                for (int s = 0; s < ns; s++) {
                    if (src[s] < 0) { for (int64_t m = 0; m < M; m++) dP[s * M + m] = 0; continue; }
                    for (int64_t m = 0; m < M; m++) {
                        const float *vv = V + (p.seq_first ? (m * B + src[s]) * Cv : (src[s] * M + m) * Cv) + p.v_off + h * d;
                        double acc = 0;
                        for (int64_t j = 0; j < d; j++) {
                            float x = rounded(vv[j], p.bf16);
                            acc += (double)rounded(dov[j], p.bf16) * x;
                            o[j] += P[s * M + m] * x;
                        }
                        dP[s * M + m] = acc;
                    }
                }
                for (int64_t j = 0; j < d; j++) dot_do += o[j] * rounded(dov[j], p.bf16);
                for (int s = 0; s < ns; s++) {
                    if (src[s] < 0) continue;
                    for (int64_t m = 0; m < M; m++) {
                        double pr = P[s * M + m], ds = pr * (dP[s * M + m] - dot_do) * p.scale;
                        if (p.bf16) { ds = bf16_round((float)ds); pr = bf16_round((float)pr); }
                        int64_t krow = (p.seq_first ? (m * B + src[s]) * Ck : (src[s] * M + m) * Ck) + p.k_off + h * d;
                        int64_t vrow = (p.seq_first ? (m * B + src[s]) * Cv : (src[s] * M + m) * Cv) + p.v_off + h * d;
                        for (int64_t j = 0; j < d; j++) {
                            DQ[qrow + p.q_off + h * d + j] += ds * rounded(K[krow + j], p.bf16);
                            DK[krow + j] += ds * rounded(qv[j], p.bf16);
                            DV[vrow + j] += pr * rounded(dov[j], p.bf16);
                        }
                    }
                }
            }
    }
    const double *acc[3] = {DQ, DK, DV};
    const Tensor *like[3] = {q, kk, v};
    for (int t = 0; t < 3; t++)
        if (k->n_out > t && k->out[t])
            for (int64_t i = 0, n = tensor_numel(like[t]); i < n; i++) ((float *)k->out[t]->data)[i] = (float)acc[t][i];
    free(P); free(DQ); free(DK); free(DV);
    return 0;
}
