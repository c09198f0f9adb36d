/* classify.c — see classify.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "classify.h"
#include "../data/clip_reader.h"

Tensor *classify_class_features(Evaluator *ev, const StringList *names, char *err, size_t cap)
{
    if (!ev->has_text) { snprintf(err, cap, "class names need a text encoder"); return NULL; }
    if (!names->n) { snprintf(err, cap, "the class list is empty"); return NULL; }
    for (size_t i = 0; i < names->n; i++) {
        if (!names->items[i][strspn(names->items[i], " \t")]) { snprintf(err, cap, "class %zu has an empty name", i + 1); return NULL; }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(names->items[i], names->items[j])) {
                snprintf(err, cap, "class '%s' is given twice (classes %zu and %zu)", names->items[i], j + 1, i + 1);
                return NULL;
            }
    }
    StringList norm = {calloc(names->n, sizeof(char *)), names->n}, tmpl;
    Tensor *t = NULL;
    int ok = norm.items != NULL;
    for (size_t i = 0; ok && i < names->n; i++) {
        norm.items[i] = prompts_normalize_class(names->items[i]);
        ok = norm.items[i] != NULL;
    }
    if (!ok) { snprintf(err, cap, "out of memory"); string_list_free(&norm); return NULL; }
    prompts_default_templates(&tmpl);
    int64_t dims[2] = {(int64_t)names->n, ev->text.dim};
    t = tensor_new(DT_F32, 2, dims);
    if (!t) snprintf(err, cap, "out of memory");
    else if (class_features(&ev->text, &norm, &tmpl, t->data, err, cap)) { tensor_free(t); t = NULL; }
    string_list_free(&tmpl);
    string_list_free(&norm);
    return t;
}

int classify_video(Evaluator *ev, const char *path, const Tensor *W, float *probs, char *err, size_t cap)
{
    int V = clips_per_video(&ev->sc), T = ev->vm.T, D = ev->vm.D, C = (int)W->dims[0];
    if (W->dims[1] != D) { snprintf(err, cap, "the class features have %lld dims, the video features %d", (long long)W->dims[1], D); return -1; }
    size_t px = (size_t)V * T * ev->vm.size * ev->vm.size * 3;
    uint8_t *pixels = malloc(px);
    float *feat = malloc(sizeof(float) * (size_t)V * T * D), *scores = malloc(sizeof(float) * (size_t)C);
    int rc = -1;
    if (!pixels || !feat || !scores) { snprintf(err, cap, "out of memory"); goto done; }
    if (read_clips(path, &ev->sc, 0, 0, 60, pixels, NULL, NULL, err, cap) || video_embed(&ev->vm, pixels, 1, V, feat, err, cap)) goto done;
    video_scores(feat, 1, V, T, D, W->data, C, ev->scale, scores); /* summed over the views */
    double top = -INFINITY, sum = 0;
    for (int c = 0; c < C; c++) top = fmax(top, scores[c] / V);
    for (int c = 0; c < C; c++) sum += exp(scores[c] / V - top);
    for (int c = 0; c < C; c++) probs[c] = (float)(exp(scores[c] / V - top) / sum);
    rc = 0;
done:
    free(pixels);
    free(feat);
    free(scores);
    return rc;
}

void classify_top_k(const float *probs, int C, int k, int *order)
{
    for (int i = 0; i < k && i < C; i++) {
        int best = -1;
        for (int c = 0; c < C; c++) {
            int taken = 0;
            for (int j = 0; j < i && !taken; j++) taken = order[j] == c;
            if (!taken && (best < 0 || probs[c] > probs[best])) best = c;
        }
        order[i] = best;
    }
}
