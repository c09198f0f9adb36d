/* text_features.c — see text_features.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "text_features.h"
#include "../../ir/base.h"

int encoder_open(Encoder *e, const char *model, const CompileOptions *co, char *err, size_t cap)
{
    CompileOptions o = *co;
    o.frames = 0;
    e->m = vclip_compile(model, &o, err, cap);
    if (!e->m) return -1;
    const Graph *g = model_graph(e->m);
    const Value *in = g->n_inputs == 1 ? g->inputs[0] : NULL, *out = g->outputs[0];
    if (!in || in->shape.rank != 2 || !dim_is_const(in->shape.d[1]) || (in->dtype != DT_I64 && in->dtype != DT_I32)) {
        snprintf(err, cap, "%s: expected a text encoder with one input of token ids [batch, context] (i64 or i32)", model);
        return -1;
    }
    if (out->shape.rank != 2 || !dim_is_const(out->shape.d[1]) || out->dtype != DT_F32) {
        snprintf(err, cap, "%s: expected its first output to be f32 features [batch, D]", model);
        return -1;
    }
    e->context = (int)in->shape.d[1].n;
    e->dim = (int)out->shape.d[1].n;
    e->in_dtype = in->dtype;
    return 0;
}

/* Unit-norm features of n texts into out[n * dim]. */
int encode_texts(Encoder *e, char *const *texts, size_t n, float *out, char *err, size_t cap)
{
    for (size_t start = 0; start < n; start += (size_t)e->batch) {
        size_t b = n - start < (size_t)e->batch ? n - start : (size_t)e->batch;
        int64_t dims[2] = {(int64_t)b, e->context};
        Tensor *ids = tensor_new(e->in_dtype, 2, dims);
        int64_t *row = malloc(sizeof(int64_t) * (size_t)e->context);
        if (!ids || !row) { tensor_free(ids); free(row); snprintf(err, cap, "out of memory"); return -1; }
        for (size_t i = 0; i < b; i++) {
            const char *t = texts[start + i];
            if (clip_tokenize(e->tok, t, strlen(t), e->context, row)) { tensor_free(ids); free(row); snprintf(err, cap, "out of memory"); return -1; }
            for (int k = 0; k < e->context; k++) {
                if (e->in_dtype == DT_I64) ((int64_t *)ids->data)[i * (size_t)e->context + (size_t)k] = row[k];
                else ((int32_t *)ids->data)[i * (size_t)e->context + (size_t)k] = (int32_t)row[k];
            }
        }
        free(row);
        Tensor *outs[8] = {0};
        int rc = model_run(e->m, &ids, outs, err, cap);
        tensor_free(ids);
        if (rc) return -1;
        for (size_t i = 0; i < b; i++) {
            memcpy(out + (start + i) * (size_t)e->dim, (float *)outs[0]->data + i * (size_t)e->dim, sizeof(float) * (size_t)e->dim);
            l2_normalize(out + (start + i) * (size_t)e->dim, e->dim);
        }
        for (int k = 0; k < model_graph(e->m)->n_outputs; k++) tensor_free(outs[k]);
    }
    return 0;
}

void encoder_close(Encoder *e)
{
    model_free(e->m);
    e->m = NULL;
}

int class_features(Encoder *e, const StringList *names, const StringList *templates, float *out, char *err, size_t cap)
{
    size_t D = (size_t)e->dim, n = names->n * templates->n;
    char **prompts = calloc(n ? n : 1, sizeof *prompts);
    float *pf = malloc(sizeof(float) * (n ? n : 1) * D);
    int rc = -1;
    if (!prompts || !pf) { snprintf(err, cap, "out of memory"); goto done; }
    for (size_t i = 0; i < names->n; i++)
        for (size_t k = 0; k < templates->n; k++)
            if (!(prompts[i * templates->n + k] = prompts_fill(templates->items[k], names->items[i]))) { snprintf(err, cap, "out of memory"); goto done; }
    if (encode_texts(e, prompts, n, pf, err, cap)) goto done;
    for (size_t i = 0; i < names->n; i++) {
        float *f = out + i * D;
        memset(f, 0, sizeof(float) * D);
        for (size_t k = 0; k < templates->n; k++)
            for (size_t d = 0; d < D; d++) f[d] += pf[(i * templates->n + k) * D + d];
        for (size_t d = 0; d < D; d++) f[d] /= (float)templates->n;
        l2_normalize(f, e->dim);
    }
    rc = 0;
done:
    for (size_t i = 0; prompts && i < n; i++) free(prompts[i]);
    free(prompts);
    free(pf);
    return rc;
}

/* captions JSONL -> texts and their video ids */
int load_captions(const char *path, StringList *texts, StringList *videos, char *err, size_t cap)
{
    size_t len;
    char *buf = read_file(path, &len, err, cap);
    if (!buf) return -1;
    int lineno = 0, rc = 0;
    memset(texts, 0, sizeof *texts);
    memset(videos, 0, sizeof *videos);
    for (size_t pos = 0; !rc && pos < len;) {
        char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        lineno++;
        size_t a = pos;
        while (a < end && (buf[a] == ' ' || buf[a] == '\t' || buf[a] == '\r')) a++;
        if (a < end) {
            json_error_t je;
            json_t *o = json_loadb(buf + a, end - a, 0, &je);
            json_t *v = o ? json_object_get(o, "video") : NULL, *c = o ? json_object_get(o, "caption") : NULL;
            json_t *cs = o ? json_object_get(o, "captions") : NULL;
            if (!o || !json_is_object(o)) { snprintf(err, cap, "%s:%d: %s", path, lineno, o ? "expected a JSON object" : je.text); rc = -1; }
            else if (!json_is_string(v) && !json_is_integer(v)) { snprintf(err, cap, "%s:%d: missing \"video\"", path, lineno); rc = -1; }
            else if (!json_is_string(c) && !json_is_array(cs)) { snprintf(err, cap, "%s:%d: missing \"caption\" or \"captions\"", path, lineno); rc = -1; }
            else {
                char vid[64];
                const char *vs = json_is_string(v) ? json_string_value(v) : (snprintf(vid, sizeof vid, "%lld", (long long)json_integer_value(v)), vid);
                size_t k = json_is_string(c) ? 1 : json_array_size(cs);
                for (size_t i = 0; !rc && i < k; i++) {
                    json_t *ci = json_is_string(c) ? c : json_array_get(cs, i);
                    if (!json_is_string(ci)) { snprintf(err, cap, "%s:%d: captions must be strings", path, lineno); rc = -1; break; }
                    char **t = realloc(texts->items, sizeof(char *) * (texts->n + 1));
                    char **vv = realloc(videos->items, sizeof(char *) * (videos->n + 1));
                    if (t) texts->items = t;
                    if (vv) videos->items = vv;
                    if (!t || !vv) { snprintf(err, cap, "out of memory"); rc = -1; break; }
                    texts->items[texts->n++] = strdup(json_string_value(ci));
                    videos->items[videos->n++] = strdup(vs);
                }
            }
            json_decref(o);
        }
        pos = end + 1;
    }
    free(buf);
    if (!rc && !texts->n) { snprintf(err, cap, "%s: no captions", path); rc = -1; }
    return rc;
}

