/* patch_weights.c — Open-VCLIP's test-time patch: every weight of a
 * fine-tuned model moved back toward CLIP's,
 *   theta = r * theta_clip + (1 - r) * theta_finetuned,
 * for two graphs of the same structure (the initializers are matched by
 * name; integer initializers, shapes included, must be equal). */
#include <stdio.h>
#include <string.h>
#include "passes.h"

int patch_weights(Graph *clip, const Graph *finetuned, float r, char *err, size_t cap)
{
    int n = 0;
    for (int i = 0; i < clip->n_values; i++) {
        Value *v = clip->values[i];
        if (!v->konst || v->producer) continue;
        const Value *w = graph_find_value(finetuned, v->name);
        if (!w || !w->konst) { snprintf(err, cap, "weight '%s' is not in the fine-tuned model", v->name); return -1; }
        const Tensor *a = v->konst, *b = w->konst;
        if (a->dtype != b->dtype || a->rank != b->rank || memcmp(a->dims, b->dims, sizeof(int64_t) * (size_t)a->rank)) {
            snprintf(err, cap, "weight '%s' differs in type or shape between the models", v->name);
            return -1;
        }
        if (a->dtype != DT_F32) {
            if (a->nbytes && memcmp(a->data, b->data, a->nbytes)) { snprintf(err, cap, "non-float weight '%s' differs", v->name); return -1; }
            continue;
        }
        Tensor *t = tensor_copy(a);
        if (!t) { snprintf(err, cap, "out of memory"); return -1; }
        const float *fa = a->data, *fb = b->data;
        float *o = t->data;
        for (int64_t k = 0, m = tensor_numel(a); k < m; k++) o[k] = r * fa[k] + (1.0f - r) * fb[k];
        value_set_const(v, t);
        n++;
    }
    return n;
}
