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
    o.context = 0;
    o.share_with = NULL;
    e->m = vclip_compile(model, &o, err, cap);
    if (!e->m) return -1;
    const Graph *g = model_graph(e->m);
    const Value *in = g->n_inputs == 1 ? g->inputs[0] : NULL, *out = g->outputs[0];
    if (!in || in->shape.rank != 2 || !dim_is_const(in->shape.d[1]) || (in->dtype != DT_I64 && in->dtype != DT_I32)) {
        snprintf(err, cap, "%s: expected a text encoder with one input of token ids [batch, context] (i64 or i32)", model);
        goto fail;
    }
    if (out->shape.rank != 2 || !dim_is_const(out->shape.d[1]) || out->dtype != DT_F32) {
        snprintf(err, cap, "%s: expected its first output to be f32 features [batch, D]", model);
        goto fail;
    }
    e->context = (int)in->shape.d[1].n;
    e->dim = (int)out->shape.d[1].n;
    e->in_dtype = in->dtype;
    e->co = o;
    e->path = strdup(model);
    e->cut = calloc((size_t)e->context + 1, sizeof *e->cut);
    e->cut_off = 0;
    e->positions = e->positions_full = 0;
    if (!e->path || !e->cut) { snprintf(err, cap, "out of memory"); goto fail; }
    return 0;
fail:
    encoder_close(e);
    return -1;
}

void encoder_close(Encoder *e)
{
    for (int i = 0; e->cut && i <= e->context; i++) model_free(e->cut[i]);
    free(e->cut);
    e->cut = NULL;
    model_free(e->m);
    e->m = NULL;
    free(e->path);
    e->path = NULL;
}

/* Positions a tokenized row needs: through its last non-padding token. */
static int row_length(const int64_t *row, int context)
{
    int n = context;
    while (n > 2 && row[n - 1] == 0) n--;
    return n;
}

typedef struct { int len; size_t row; } RowLength;
static int by_length(const void *a, const void *b)
{
    const RowLength *x = a, *y = b;
    return x->len != y->len ? (x->len > y->len) - (x->len < y->len) : (x->row > y->row) - (x->row < y->row);
}

/* Runs rows [b, L] of ids (row stride context) through m; the features
 * tensor, or NULL. */
static Tensor *run_rows(Encoder *e, Model *m, const int64_t *ids, const size_t *rows, size_t b, int L, char *err, size_t cap)
{
    int64_t dims[2] = {(int64_t)b, L};
    Tensor *in = tensor_new(e->in_dtype, 2, dims);
    if (!in) { snprintf(err, cap, "out of memory"); return NULL; }
    for (size_t i = 0; i < b; i++)
        for (int k = 0; k < L; k++) {
            int64_t t = ids[rows[i] * (size_t)e->context + (size_t)k];
            if (e->in_dtype == DT_I64) ((int64_t *)in->data)[i * (size_t)L + (size_t)k] = t;
            else ((int32_t *)in->data)[i * (size_t)L + (size_t)k] = (int32_t)t;
        }
    Tensor *outs[8] = {0};
    int rc = model_run(m, &in, outs, err, cap);
    tensor_free(in);
    for (int k = 1; k < model_graph(m)->n_outputs; k++) tensor_free(outs[k]);
    return rc ? NULL : outs[0];
}

static void cut_off(Encoder *e, const char *why)
{
    fprintf(stderr, "note: %s: %s; encoding texts at the whole context (%d positions) from here on\n", e->path, why, e->context);
    e->cut_off = 1;
}

/* The model for batches of at most L positions, compiled on first use
 * (NULL: the whole context's). */
static Model *cut_model(Encoder *e, int L, int *fresh)
{
    *fresh = 0;
    if (e->cut_off || e->full_context || L >= e->context) return NULL;
    if (e->cut[L]) return e->cut[L];
    CompileOptions o = e->co;
    o.context = L;
    o.share_with = e->m;
    char why[1024];
    if (!(e->cut[L] = vclip_compile(e->path, &o, why, sizeof why))) { cut_off(e, why); return NULL; }
    *fresh = 1;
    return e->cut[L];
}

/* Unit-norm features of n texts into out[n * dim]. */
int encode_texts(Encoder *e, char *const *texts, size_t n, float *out, char *err, size_t cap)
{
    size_t C = (size_t)e->context, D = (size_t)e->dim;
    int64_t *ids = malloc(sizeof(int64_t) * (n ? n : 1) * C);
    int *len = malloc(sizeof(int) * (n ? n : 1));
    size_t *order = malloc(sizeof(size_t) * (n ? n : 1));
    int64_t positions = e->positions, positions_full = e->positions_full;
    int rc = -1;
    if (!ids || !len || !order) { snprintf(err, cap, "out of memory"); goto done; }
    for (size_t i = 0; i < n; i++) {
        if (clip_tokenize(e->tok, texts[i], strlen(texts[i]), e->context, ids + i * C)) { snprintf(err, cap, "out of memory"); goto done; }
        len[i] = row_length(ids + i * C, e->context);
    }
restart: /* (again when the cut has just turned off: the given batches, the whole context, counted anew) */
    e->positions = positions;
    e->positions_full = positions_full;
    for (size_t i = 0; i < n; i++) order[i] = i;
    int sorted = !e->full_context && !e->cut_off;
    if (sorted && n > 1) { /* similar lengths share a batch */
        RowLength *rl = malloc(sizeof *rl * n);
        if (!rl) { snprintf(err, cap, "out of memory"); goto done; }
        for (size_t i = 0; i < n; i++) rl[i] = (RowLength){len[i], i};
        qsort(rl, n, sizeof *rl, by_length);
        for (size_t i = 0; i < n; i++) order[i] = rl[i].row;
        free(rl);
    }
    for (size_t start = 0; start < n; start += (size_t)e->batch) {
        size_t b = n - start < (size_t)e->batch ? n - start : (size_t)e->batch;
        const size_t *rows = order + start;
        int L = 2, fresh;
        for (size_t i = 0; i < b; i++) L = len[rows[i]] > L ? len[rows[i]] : L;
        Model *m = cut_model(e, L, &fresh);
        if (sorted && e->cut_off) goto restart; /* the cut just failed to compile */
        Tensor *f = run_rows(e, m ? m : e->m, ids, rows, b, m ? L : e->context, err, cap);
        if (!f) goto done;
        if (fresh) { /* a new cut's first batch: also at the whole context, compared bit for bit */
            Tensor *whole = run_rows(e, e->m, ids, rows, b, e->context, err, cap);
            if (!whole) { tensor_free(f); goto done; }
            int same = memcmp(whole->data, f->data, f->nbytes) == 0;
            tensor_free(whole);
            if (!same) {
                char why[128];
                snprintf(why, sizeof why, "features on the first %d positions differ from the whole context's", L);
                tensor_free(f);
                cut_off(e, why);
                goto restart;
            }
        }
        e->positions += (int64_t)b * (m ? L : e->context);
        e->positions_full += (int64_t)b * e->context;
        for (size_t i = 0; i < b; i++) {
            float *o = out + rows[i] * D;
            memcpy(o, (float *)f->data + i * D, sizeof(float) * D);
            l2_normalize(o, e->dim);
        }
        tensor_free(f);
    }
    rc = 0;
done:
    free(ids);
    free(len);
    free(order);
    return rc;
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

