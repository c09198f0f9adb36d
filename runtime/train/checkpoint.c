/* checkpoint.c — see checkpoint.h.  Names: "<param>", "adamw.m/<param>",
 * "adamw.v/<param>", "swa/<param>"; metadata "format", "state" (JSON) and
 * "config" (JSON). */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "checkpoint.h"
#include "../safetensors.h"

#define FORMAT "vclip-checkpoint-1"

int checkpoint_save(const char *path, const CheckpointView *v, char *err, size_t cap)
{
    int per = 1 + (v->opt ? 2 : 0) + (v->swa ? 1 : 0), n = 0, rc = -1;
    NamedTensor *t = calloc((size_t)(v->n * per + 1), sizeof *t);
    char **names = calloc((size_t)(v->n * per + 1), sizeof(char *));
    char state[512];
    if (!t || !names) { snprintf(err, cap, "out of memory"); goto done; }
    for (int i = 0; i < v->n; i++) {
        const char *prefix[4] = {"", "adamw.m/", "adamw.v/", "swa/"};
        const Tensor *src[4] = {v->params[i], v->opt ? v->opt->m[i] : NULL, v->opt ? v->opt->v[i] : NULL, v->swa ? v->swa[i] : NULL};
        for (int k = 0; k < 4; k++) {
            if (!src[k]) continue;
            size_t len = strlen(prefix[k]) + strlen(v->names[i]) + 1;
            if (!(names[n] = malloc(len))) { snprintf(err, cap, "out of memory"); goto done; }
            snprintf(names[n], len, "%s%s", prefix[k], v->names[i]);
            t[n].name = names[n];
            t[n].tensor = src[k];
            n++;
        }
    }
    MetadataEntry meta[3] = {{"format", FORMAT}};
    int nm = 1;
    if (v->state) {
        const TrainState *s = v->state;
        snprintf(state, sizeof state,
                 "{\"step\": %" PRId64 ", \"epoch\": %" PRId64 ", \"step_in_epoch\": %" PRId64 ", \"rng\": \"%" PRIu64
                 "\", \"swa_count\": %" PRId64 ", \"skipped\": %" PRId64 ", \"adamw_step\": %" PRId64 ", \"loss_scale\": %.17g, "
                 "\"scale_good_steps\": %" PRId64 "}",
                 s->step, s->epoch, s->step_in_epoch, s->rng, s->swa_count, s->skipped, v->opt ? v->opt->step : 0, s->loss_scale,
                 s->scale_good_steps);
        meta[nm++] = (MetadataEntry){"state", state};
    }
    if (v->config_json) meta[nm++] = (MetadataEntry){"config", v->config_json};
    rc = safetensors_save(path, t, n, meta, nm, err, cap);
done:
    for (int i = 0; names && i < n; i++) free(names[i]);
    free(names);
    free(t);
    return rc;
}

Tensor *checkpoint_tensor(const char *path, const char *name, char *err, size_t cap)
{
    return safetensors_load(path, name, NULL, NULL, err, cap);
}

static int load_into(const char *path, const char *name, Tensor *dst, char *err, size_t cap)
{
    Tensor *t = safetensors_load(path, name, NULL, NULL, err, cap);
    if (!t) return -1;
    int ok = t->dtype == dst->dtype && tensor_numel(t) == tensor_numel(dst) && t->nbytes == dst->nbytes;
    if (ok) memcpy(dst->data, t->data, t->nbytes);
    else snprintf(err, cap, "%s: tensor '%s' has %lld elements of %s, the model needs %lld of %s", path, name,
                  (long long)tensor_numel(t), dtype_name(t->dtype), (long long)tensor_numel(dst), dtype_name(dst->dtype));
    tensor_free(t);
    return ok ? 0 : -1;
}

static int64_t json_i64(json_t *o, const char *k) { return (int64_t)json_integer_value(json_object_get(o, k)); }

int checkpoint_load(const char *path, const CheckpointView *v, AdamW *opt, TrainState *state, char *err, size_t cap)
{
    char *fmt = NULL;
    Tensor *probe = safetensors_load(path, v->names[0], "format", &fmt, err, cap);
    if (!probe) return -1;
    tensor_free(probe);
    int bad = !fmt || strcmp(fmt, FORMAT) != 0;
    free(fmt);
    if (bad && (opt || state)) { snprintf(err, cap, "%s: not a vclip training checkpoint (format is not %s)", path, FORMAT); return -1; }
    for (int i = 0; i < v->n; i++) {
        char name[512];
        if (load_into(path, v->names[i], v->params[i], err, cap)) return -1;
        if (opt) {
            snprintf(name, sizeof name, "adamw.m/%s", v->names[i]);
            if (load_into(path, name, opt->m[i], err, cap)) return -1;
            snprintf(name, sizeof name, "adamw.v/%s", v->names[i]);
            if (load_into(path, name, opt->v[i], err, cap)) return -1;
        }
        if (v->swa) {
            snprintf(name, sizeof name, "swa/%s", v->names[i]);
            if (load_into(path, name, v->swa[i], err, cap)) return -1;
        }
    }
    if (!state) return 0;
    char *js = NULL;
    Tensor *t = safetensors_load(path, v->names[0], "state", &js, err, cap);
    tensor_free(t);
    json_t *o = js ? json_loads(js, 0, NULL) : NULL;
    free(js);
    if (!json_is_object(o)) { json_decref(o); snprintf(err, cap, "%s: no training state in the metadata", path); return -1; }
    state->step = json_i64(o, "step");
    state->epoch = json_i64(o, "epoch");
    state->step_in_epoch = json_i64(o, "step_in_epoch");
    state->swa_count = json_i64(o, "swa_count");
    state->skipped = json_i64(o, "skipped");
    state->loss_scale = json_number_value(json_object_get(o, "loss_scale")); /* 0 in checkpoints from before it */
    state->scale_good_steps = json_i64(o, "scale_good_steps");
    const char *r = json_string_value(json_object_get(o, "rng"));
    state->rng = r ? strtoull(r, NULL, 10) : 0;
    if (opt) opt->step = json_i64(o, "adamw_step");
    json_decref(o);
    return 0;
}

int checkpoint_is_weight(const char *name)
{
    return strncmp(name, "adamw.", 6) != 0 && strncmp(name, "swa/", 4) != 0;
}

int checkpoint_apply(Graph *g, const char *path, int *applied, int *unused, char *err, size_t cap)
{
    char **names;
    int n, rc = -1;
    *applied = *unused = 0;
    if (safetensors_names(path, &names, &n, err, cap)) return -1;
    for (int i = 0; i < n; i++) {
        if (!checkpoint_is_weight(names[i])) continue;
        Value *v = graph_find_value(g, names[i]);
        if (!v || !v->konst || v->producer || v->dtype != DT_F32) { (*unused)++; continue; }
        Tensor *t = safetensors_load(path, names[i], NULL, NULL, err, cap);
        if (!t) goto done;
        if (t->dtype != DT_F32 || tensor_numel(t) != tensor_numel(v->konst)) {
            snprintf(err, cap, "%s: weight '%s' has %lld elements, the model's has %lld", path, names[i], (long long)tensor_numel(t),
                     (long long)tensor_numel(v->konst));
            tensor_free(t);
            goto done;
        }
        Tensor *shaped = tensor_view(t, v->konst->rank, v->konst->dims);
        tensor_free(t);
        if (!shaped) { snprintf(err, cap, "out of memory"); goto done; }
        value_set_const(v, shaped);
        (*applied)++;
    }
    rc = 0;
done:
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}
