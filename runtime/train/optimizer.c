/* optimizer.c — see optimizer.h.  The update is PyTorch's AdamW, term for
 * term (decoupled decay first, bias-corrected moments), so that a reference
 * run in PyTorch is an oracle for it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "optimizer.h"

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

double grad_global_norm(Tensor *const *grads, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) {
        const float *g = grads[i]->data;
        for (int64_t j = 0, m = tensor_numel(grads[i]); j < m; j++) s += (double)g[j] * g[j];
    }
    return sqrt(s);
}

double clip_scale(double norm, double max_norm)
{
    if (max_norm <= 0) return 1;
    double c = max_norm / (norm + 1e-6);
    return c < 1 ? c : 1;
}

void adamw_step(AdamW *o, Tensor *const *grads, double lr, double grad_scale)
{
    o->step++;
    const AdamWConfig *c = &o->cfg;
    double bc1 = 1 - pow(c->beta1, (double)o->step), bc2 = 1 - pow(c->beta2, (double)o->step);
    double step_size = lr / bc1, bc2_sqrt = sqrt(bc2);
    for (int i = 0; i < o->n; i++) {
        float *p = o->params[i]->data, *m = o->m[i]->data, *v = o->v[i]->data;
        const float *g = grads[i]->data;
        float decay = o->decay[i] ? (float)(1 - lr * c->weight_decay) : 1.0f;
        for (int64_t j = 0, n = tensor_numel(o->params[i]); j < n; j++) {
            float gj = (float)(g[j] * grad_scale);
            p[j] *= decay;
            m[j] = (float)(c->beta1 * m[j] + (1 - c->beta1) * gj);
            v[j] = (float)(c->beta2 * v[j] + (1 - c->beta2) * (double)gj * gj);
            double denom = sqrt((double)v[j]) / bc2_sqrt + c->eps;
            p[j] = (float)(p[j] - step_size * m[j] / denom);
        }
    }
}
