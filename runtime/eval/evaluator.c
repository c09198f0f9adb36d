/* evaluator.c — see evaluator.h. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "evaluator.h"
#include "../npy.h"
#include "../safetensors.h"
#include "../../models/tokenizer/tokenizer_source.h"

/* Class features [C, D] from a .safetensors or a class list + the text encoder. */
Tensor *class_features_for(Evaluator *ev, const char *classes, StringList *names, char *err, size_t cap)
{
    size_t L = strlen(classes);
    memset(names, 0, sizeof *names);
    if (L > 12 && !strcmp(classes + L - 12, ".safetensors")) {
        char *meta = NULL;
        Tensor *t = safetensors_load(classes, "class_features", "classes", &meta, err, cap);
        json_t *a = meta ? json_loads(meta, 0, NULL) : NULL;
        free(meta);
        for (size_t i = 0; t && json_is_array(a) && i < json_array_size(a); i++) {
            const char *s = json_string_value(json_array_get(a, i));
            char **p = realloc(names->items, sizeof(char *) * (names->n + 1));
            if (!p) break;
            names->items = p;
            names->items[names->n++] = strdup(s ? s : "");
        }
        json_decref(a);
        if (t && (t->dtype != DT_F32 || t->rank != 2 || (names->n && (int64_t)names->n != t->dims[0]))) {
            snprintf(err, cap, "%s: class_features must be f32 [C, D] with C class names", classes);
            tensor_free(t);
            t = NULL;
        }
        return t;
    }
    if (!ev->has_text) { snprintf(err, cap, "--classes %s is not a .safetensors file: give --text-model to encode it", classes); return NULL; }
    if (prompts_load_classes(classes, names, err, cap)) return NULL;
    for (size_t i = 0; i < names->n; i++) {
        char *nn = prompts_normalize_class(names->items[i]);
        if (nn) { free(names->items[i]); names->items[i] = nn; }
    }
    StringList tmpl;
    prompts_default_templates(&tmpl);
    int64_t dims[2] = {(int64_t)names->n, ev->text.dim};
    Tensor *t = tensor_new(DT_F32, 2, dims);
    if (t && class_features(&ev->text, names, &tmpl, t->data, err, cap)) { tensor_free(t); t = NULL; }
    string_list_free(&tmpl);
    return t;
}

/* One list against one class set. */
int eval_split(Evaluator *ev, const char *list, const char *root, const char *classes, const Outputs *o, SplitResult *r,
                      char *err, size_t cap)
{
    StringList names;
    Dataset ds = {0};
    Tensor *W = class_features_for(ev, classes, &names, err, cap);
    float *feat = NULL, *scores = NULL;
    char *ok = NULL;
    int *labels = NULL, rc = -1;
    long *conf = NULL;
    if (!W) goto done;
    int C = (int)W->dims[0], V = clips_per_video(&ev->sc), T = ev->vm.T, D = ev->vm.D;
    if (W->dims[1] != D) { snprintf(err, cap, "the video features have %d dims but the class features %lld", D, (long long)W->dims[1]); goto done; }
    if (dataset_load_csv(list, root, &ds, err, cap)) goto done;
    for (size_t i = 0; i < ds.n; i++)
        if (ds.items[i].label >= C) { snprintf(err, cap, "%s: label %d but only %d classes", ds.items[i].path, ds.items[i].label, C); goto done; }
    feat = malloc(sizeof(float) * ds.n * (size_t)V * T * D);
    scores = malloc(sizeof(float) * ds.n * (size_t)C);
    ok = calloc(ds.n, 1);
    labels = malloc(sizeof(int) * ds.n);
    conf = calloc((size_t)C * C, sizeof(long));
    if (!feat || !scores || !ok || !labels || !conf) { snprintf(err, cap, "out of memory"); goto done; }
    if (video_features_ranks(&ev->vm, &ds, &ev->sc, ev->batch, ev->workers, &ev->cache, ev->comm, feat, ok, &r->skipped, &r->decoded,
                             err, cap))
        goto done;
    if (comm_rank(ev->comm) != 0) o = NULL; /* rank 0 writes the files */
    size_t n = 0, per = (size_t)V * T * D;
    for (size_t i = 0; i < ds.n; i++)
        if (ok[i]) { memmove(feat + n * per, feat + i * per, sizeof(float) * per); labels[n++] = ds.items[i].label; }
    r->skipped = ds.n - n;
    video_scores(feat, n, V, T, D, W->data, C, ev->scale, scores);
    class_metrics(scores, labels, n, C, &r->m, conf, NULL);
    if (o && o->pred) {
        FILE *pf = fopen(o->pred, "w");
        if (!pf) { snprintf(err, cap, "%s: cannot write", o->pred); goto done; }
        fprintf(pf, "path,label,prediction,rank_of_label,score_of_prediction\n");
        for (size_t i = 0, k = 0; i < ds.n; i++) {
            if (!ok[i]) { fprintf(pf, "%s,%d,,,\n", ds.items[i].path, ds.items[i].label); continue; }
            const float *sc = scores + k * (size_t)C;
            int p = predicted_class(sc, C);
            fprintf(pf, "%s,%d,%d,%zu,%.6f\n", ds.items[i].path, labels[k], p, true_class_rank(sc, C, labels[k]), sc[p]);
            k++;
        }
        fclose(pf);
    }
    if (o && o->scores) {
        int64_t sd[2] = {(int64_t)n, C};
        Tensor *st = tensor_borrow(DT_F32, 2, sd, scores);
        int bad = !st || npy_save(o->scores, st, err, cap);
        tensor_free(st);
        if (bad) goto done;
    }
    if (o && o->confusion) {
        FILE *cf = fopen(o->confusion, "w");
        if (!cf) { snprintf(err, cap, "%s: cannot write", o->confusion); goto done; }
        for (int i = 0; i < C; i++)
            for (int j = 0; j < C; j++) fprintf(cf, "%ld%c", conf[(size_t)i * C + j], j + 1 < C ? ',' : '\n');
        fclose(cf);
    }
    if (o && o->confusion_matrix) { *o->confusion_matrix = conf; conf = NULL; }
    if (o && o->class_names) {
        while (names.n < (size_t)C) { /* features without names: "class N" */
            char **grown = realloc(names.items, sizeof(char *) * (names.n + 1)), label[32];
            if (!grown) { snprintf(err, cap, "out of memory"); goto done; }
            names.items = grown;
            snprintf(label, sizeof label, "class %zu", names.n);
            if (!(names.items[names.n] = strdup(label))) { snprintf(err, cap, "out of memory"); goto done; }
            names.n++;
        }
        *o->class_names = names;
        memset(&names, 0, sizeof names);
    }
    rc = 0;
done:
    tensor_free(W);
    string_list_free(&names);
    dataset_free(&ds);
    free(feat);
    free(scores);
    free(ok);
    free(labels);
    free(conf);
    return rc;
}


int evaluator_open_text(Evaluator *ev, const char *text_model, const CompileOptions *co, char *err, size_t cap)
{
    TokenizerSource src = {0};
    ev->text.batch = 64;
    if (!(ev->text.tok = tokenizer_open(&src, err, cap)) || encoder_open(&ev->text, text_model, co, err, cap)) return -1;
    ev->has_text = 1;
    return 0;
}

void evaluator_close_text(Evaluator *ev)
{
    encoder_close(&ev->text);
    clip_tokenizer_free(ev->text.tok);
    ev->text.tok = NULL;
    ev->has_text = 0;
}

void evaluator_init(Evaluator *ev)
{
    memset(ev, 0, sizeof *ev);
    sampling_defaults(&ev->sc);
    ev->batch = 4;
    ev->workers = 2;
    ev->scale = 100.0;
}
