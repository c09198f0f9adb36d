/* ref_attention.c — the reference ai.vclip.Attention (see
 * ir/infer_attention.c): loops and double precision, written straight from
 * the definition so it can be the oracle for the fast kernel and for the
 * fusion.  Zero-filled frames give logit 0 (plus any mask) and value 0.
 * bf16=1 rounds q, k, v and the normalised probabilities to bf16 first (q,
 * k, v may come in bf16 then); bf16_output=1 stores O rounded to bf16. */
#include <math.h>
#include <stdlib.h>
#include "kernels.h"

static float rounded(float x, int bf16) { return bf16 ? bf16_round(x) : x; }

int ref_attention(KernelCtx *k)
{
    AttentionParams p;
    if (op_attention_params(k->ic, &p)) return -1;
    const Tensor *q = k->in[0], *kk = k->in[1], *v = k->in[2], *mask = k->n_in > 3 ? k->in[3] : NULL;
    int bi = p.seq_first ? 1 : 0, si = 1 - bi;
    int64_t B = q->dims[bi], N = q->dims[si], M = kk->dims[si], d = p.head_dim, H = p.heads;
    int64_t Cq = q->dims[2], Ck = kk->dims[2], Cv = v->dims[2], Co = H * d;
    if (kk->dims[bi] != B || v->dims[bi] != B || v->dims[si] != M) return kernel_fail(k, "q, k, v batch or length differ");
    if (p.frames && B % p.frames) return kernel_fail(k, "batch %lld is not a multiple of frames %lld", (long long)B, (long long)p.frames);
    if (mask && (mask->dims[0] != N || mask->dims[1] != M)) return kernel_fail(k, "mask must be [%lld, %lld]", (long long)N, (long long)M);
    int64_t src[2 * 64 + 1];
    if (p.window > 64) return kernel_fail(k, "window above 64");
    /* bf16 q, k, v (bf16-activations, with bf16 = 1): their exact f32 values, which rounding leaves alone */
    Tensor *wide[3] = {0};
    const Tensor *in[3] = {q, kk, v};
    double *logit = malloc(sizeof(double) * (size_t)((2 * p.window + 1) * M + 1));
    int failed = !logit;
    for (int i = 0; i < 3; i++)
        if (in[i]->dtype == DT_BF16 && !(wide[i] = tensor_to_f32(in[i]))) failed = 1;
    if (failed) {
        free(logit);
        for (int i = 0; i < 3; i++) tensor_free(wide[i]);
        return kernel_fail(k, "out of memory");
    }
    const float *Q = wide[0] ? wide[0]->data : q->data, *K = wide[1] ? wide[1]->data : kk->data, *V = wide[2] ? wide[2]->data : v->data;
    float *O = p.bf16_output ? NULL : k->out[0]->data;
    uint16_t *O16 = p.bf16_output ? k->out[0]->data : NULL;
    for (int64_t b = 0; b < B; b++) {
        int ns = attention_sources(&p, b, src);
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < N; i++) {
                int64_t qrow = p.seq_first ? (i * B + b) * Cq : (b * N + i) * Cq;
                const float *qv = Q + qrow + p.q_off + h * d;
                double mx = -INFINITY;
                for (int s = 0; s < ns; s++)
                    for (int64_t m = 0; m < M; m++) {
                        double l = 0;
                        if (src[s] >= 0) {
                            int64_t krow = p.seq_first ? (m * B + src[s]) * Ck : (src[s] * M + m) * Ck;
                            const float *kv = K + krow + p.k_off + h * d;
                            for (int64_t j = 0; j < d; j++) l += (double)rounded(qv[j], p.bf16) * rounded(kv[j], p.bf16);
                            l *= p.scale;
                        }
                        if (mask) l += ((const float *)mask->data)[i * M + m];
                        if (p.causal && m > i) l = -INFINITY;
                        logit[s * M + m] = l;
                        if (l > mx) mx = l;
                    }
                double sum = 0;
                for (int64_t t = 0; t < ns * M; t++) { logit[t] = exp(logit[t] - mx); sum += logit[t]; }
                int64_t orow = p.seq_first ? (i * B + b) * Co : (b * N + i) * Co;
                for (int64_t j = 0; j < d; j++) {
                    double acc = 0;
                    for (int s = 0; s < ns; s++) {
                        if (src[s] < 0) continue;
                        for (int64_t m = 0; m < M; m++) {
                            int64_t vrow = p.seq_first ? (m * B + src[s]) * Cv : (src[s] * M + m) * Cv;
                            float w = rounded((float)(logit[s * M + m] / sum), p.bf16), x = rounded(V[vrow + p.v_off + h * d + j], p.bf16);
                            acc += p.bf16 ? (double)w * x : logit[s * M + m] * x;
                        }
                    }
                    float o = (float)(p.bf16 ? acc : acc / sum);
                    if (O16) O16[orow + h * d + j] = float_to_bf16(o);
                    else O[orow + h * d + j] = o;
                }
            }
    }
    free(logit);
    for (int i = 0; i < 3; i++) tensor_free(wide[i]);
    return 0;
}
