/* optimizer.c — see optimizer.h.  The update is PyTorch's AdamW, term for
 * term (decoupled decay first, bias-corrected moments), so that a reference
 * run in PyTorch is an oracle for it.  Both the update and the gradient norm
 * run on the thread pool and give the same bits for any thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "optimizer.h"
#include "../cpu/avx512_math.h"
#include "../cpu/parallel.h"

double lr_at(const LrSchedule *s, int64_t step)
{
    if (step < s->warmup_steps) return s->lr_start + (s->lr - s->lr_start) * (double)step / (double)s->warmup_steps;
    int64_t span = s->total_steps - s->warmup_steps;
    if (span <= 0) return s->lr;
    double t = (double)(step - s->warmup_steps) / (double)span;
    if (t > 1) t = 1;
    return s->lr_min + 0.5 * (s->lr - s->lr_min) * (1 + cos(M_PI * t));
}

int adamw_decays(const char *name, const Tensor *t)
{
    size_t len = strlen(name);
    if (len >= 4 && strcmp(name + len - 4, "bias") == 0) return 0;
    int big = 0;
    for (int i = 0; i < t->rank; i++) big += t->dims[i] > 1;
    return big >= 2;
}

int adamw_init(AdamW *o, const AdamWConfig *cfg, Tensor **params, const char *const *names, int n)
{
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->n = n;
    o->params = params;
    o->m = calloc((size_t)n + 1, sizeof(Tensor *));
    o->v = calloc((size_t)n + 1, sizeof(Tensor *));
    o->decay = calloc((size_t)n + 1, 1);
    if (!o->m || !o->v || !o->decay) { adamw_free(o); return -1; }
    for (int i = 0; i < n; i++) {
        o->m[i] = tensor_new(DT_F32, params[i]->rank, params[i]->dims);
        o->v[i] = tensor_new(DT_F32, params[i]->rank, params[i]->dims);
        if (!o->m[i] || !o->v[i]) { adamw_free(o); return -1; }
        memset(o->m[i]->data, 0, o->m[i]->nbytes);
        memset(o->v[i]->data, 0, o->v[i]->nbytes);
        o->decay[i] = (unsigned char)adamw_decays(names[i], params[i]);
    }
    return 0;
}

void adamw_free(AdamW *o)
{
    for (int i = 0; i < o->n; i++) {
        if (o->m) tensor_free(o->m[i]);
        if (o->v) tensor_free(o->v[i]);
    }
    free(o->m);
    free(o->v);
    free(o->decay);
    memset(o, 0, sizeof *o);
}

/* The norm's sum in fixed blocks, summed in order afterwards: the same
 * answer for any thread count (runs resume bit-exactly). */
#define NORM_BLOCK 65536
typedef struct { const float *g; int64_t n; double part[256]; } NormJob;

static void norm_blocks(void *ctx, int64_t b0, int64_t b1)
{
    NormJob *j = ctx;
    for (int64_t b = b0; b < b1; b++) {
        int64_t end = (b + 1) * NORM_BLOCK < j->n ? (b + 1) * NORM_BLOCK : j->n;
        double s = 0;
        for (int64_t i = b * NORM_BLOCK; i < end; i++) s += (double)j->g[i] * j->g[i];
        j->part[b] = s;
    }
}

double grad_global_norm(Tensor *const *grads, int n)
{
    double s = 0;
    NormJob j;
    for (int i = 0; i < n; i++) {
        const float *g = grads[i]->data;
        int64_t m = tensor_numel(grads[i]);
        for (int64_t at = 0; at < m; at += 256 * NORM_BLOCK) { /* 256 blocks at a time */
            j.g = g + at;
            j.n = m - at < 256 * NORM_BLOCK ? m - at : 256 * NORM_BLOCK;
            int64_t blocks = (j.n + NORM_BLOCK - 1) / NORM_BLOCK;
            parallel_for(blocks, 1, norm_blocks, &j);
            for (int64_t b = 0; b < blocks; b++) s += j.part[b];
        }
    }
    return sqrt(s);
}

double clip_scale(double norm, double max_norm)
{
    if (max_norm <= 0) return 1;
    double c = max_norm / (norm + 1e-6);
    return c < 1 ? c : 1;
}

typedef struct {
    const AdamWConfig *c;
    float *p, *m, *v;
    const float *g;
    double grad_scale, step_size, bc2_sqrt;
    float decay;
} AdamJob;

/* Each element on its own, in the same arithmetic whatever the split. */
static void adam_elements(float *p, float *m, float *v, const float *g, int64_t n, double grad_scale, double step_size,
                          double bc2_sqrt, float decay, double beta1, double beta2, double eps)
{
    for (int64_t j = 0; j < n; j++) {
        float gj = (float)(g[j] * grad_scale);
        float pj = p[j] * decay;
        m[j] = (float)(beta1 * m[j] + (1 - beta1) * gj);
        v[j] = (float)(beta2 * v[j] + (1 - beta2) * (double)gj * gj);
        double denom = sqrt((double)v[j]) / bc2_sqrt + eps;
        p[j] = (float)(pj - step_size * m[j] / denom);
    }
}

#if defined(__x86_64__)
/* The same operations on 8 elements at a time (no FMA: each product and sum
 * rounds as the scalar code's does, so the bits are the same); returns how
 * many it did, leaving the rest to adam_elements.  88M parameters: about 2x
 * faster than the scalar loop, whose double sqrt and division dominate. */
AVX512 static int64_t adam_elements_avx512(float *p, float *m, float *v, const float *g, int64_t n, double grad_scale, double step_size,
                                          double bc2_sqrt, float decay, double beta1, double beta2, double eps)
{
    const __m512d gs = _mm512_set1_pd(grad_scale), ss = _mm512_set1_pd(step_size), bc = _mm512_set1_pd(bc2_sqrt);
    const __m512d b1 = _mm512_set1_pd(beta1), b2 = _mm512_set1_pd(beta2), c1 = _mm512_set1_pd(1 - beta1), c2 = _mm512_set1_pd(1 - beta2);
    const __m512d ep = _mm512_set1_pd(eps);
    const __m256 dc = _mm256_set1_ps(decay);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 gj = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtps_pd(_mm256_loadu_ps(g + j)), gs));
        __m512d gd = _mm512_cvtps_pd(gj);
        __m256 pj = _mm256_mul_ps(_mm256_loadu_ps(p + j), dc);
        __m256 mj = _mm512_cvtpd_ps(_mm512_add_pd(_mm512_mul_pd(b1, _mm512_cvtps_pd(_mm256_loadu_ps(m + j))), _mm512_mul_pd(c1, gd)));
        __m256 vj = _mm512_cvtpd_ps(_mm512_add_pd(_mm512_mul_pd(b2, _mm512_cvtps_pd(_mm256_loadu_ps(v + j))), _mm512_mul_pd(_mm512_mul_pd(c2, gd), gd)));
        __m512d denom = _mm512_add_pd(_mm512_div_pd(_mm512_sqrt_pd(_mm512_cvtps_pd(vj)), bc), ep);
        __m512d step = _mm512_div_pd(_mm512_mul_pd(ss, _mm512_cvtps_pd(mj)), denom);
        _mm256_storeu_ps(m + j, mj);
        _mm256_storeu_ps(v + j, vj);
        _mm256_storeu_ps(p + j, _mm512_cvtpd_ps(_mm512_sub_pd(_mm512_cvtps_pd(pj), step)));
    }
    return j;
}
#endif

static void adam_range(void *ctx, int64_t b, int64_t e)
{
    const AdamJob *a = ctx;
    const AdamWConfig *c = a->c;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx512f"))
        b += adam_elements_avx512(a->p + b, a->m + b, a->v + b, a->g + b, e - b, a->grad_scale, a->step_size, a->bc2_sqrt, a->decay,
                                  c->beta1, c->beta2, c->eps);
#endif
    adam_elements(a->p + b, a->m + b, a->v + b, a->g + b, e - b, a->grad_scale, a->step_size, a->bc2_sqrt, a->decay, c->beta1, c->beta2,
                  c->eps);
}

void adamw_step(AdamW *o, Tensor *const *grads, double lr, double grad_scale)
{
    o->step++;
    const AdamWConfig *c = &o->cfg;
    double bc1 = 1 - pow(c->beta1, (double)o->step), bc2 = 1 - pow(c->beta2, (double)o->step);
    for (int i = 0; i < o->n; i++) {
        AdamJob a = {c, o->params[i]->data, o->m[i]->data, o->v[i]->data, grads[i]->data, grad_scale, lr / bc1, sqrt(bc2),
                     o->decay[i] ? (float)(1 - lr * c->weight_decay) : 1.0f};
        parallel_for(tensor_numel(o->params[i]), 1 << 14, adam_range, &a);
    }
}
