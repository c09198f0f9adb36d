/* demo_ablation.c — one seed of the demo's experiment: the ablation's four
 * fine-tuning runs (plain, + IWR, + captions, all together; SWA and the
 * patch come from the plain run's averages and weights at no extra cost)
 * and the evaluation of every row and of the patch-ratio curve, on this
 * seed's training and test videos (see demo.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "demo.h"

const char *const demo_row_keys[DEMO_ROWS] = {"clip_frame_avg", "finetune", "iwr", "swa", "patch", "captions", "open_vclip"};
const char *const demo_row_labels[DEMO_ROWS] = {
    "CLIP, frame-averaged", "VCLIP, plain fine-tuning", "  + IWR", "  + SWA", "  + patch (r = 0.5)", "  + captions",
    "Open-VCLIP++ (all together)",
};

void demo_test_videos(const DemoPlan *p, int seed, DemoVideo **seen, size_t *n_seen, DemoVideo **unseen, size_t *n_unseen)
{
    /* seed 0 keeps the single-seed demo's videos; validation videos are other ones of the same classes */
    uint64_t s = (uint64_t)seed * 0x9E3779B97F4A7C15ull ^ (p->validation ? 0x7A11DA7Eull : 0);
    *seen = demo_videos(0, DEMO_SEEN_COLOURS, p->test_per_class, 0x5EE4 ^ s, n_seen);
    *unseen = demo_videos(DEMO_SEEN_COLOURS, SW_COLOURS, p->test_per_class, 0x0A5EE4 ^ s, n_unseen);
}

/* Top-1 on both splits: zero-shot on the unseen colours, close-set on the seen. */
static int both_splits(const DemoWorld *w, const char *weights, double r, int window, const DemoVideo *seen, size_t n_seen,
                       const DemoVideo *unseen, size_t n_unseen, double *zs, double *zs_attr, double *cs, char *err, size_t cap)
{
    DemoEval e = {w->clip_visual, w->threads, w->p->frames, w->p->clip.image, w->target};
    return demo_top1(&e, weights, r, window, unseen, n_unseen, w->cf_unseen, DEMO_CLASSES, w->D, zs, zs_attr, err, cap) ||
                   demo_top1(&e, weights, r, window, seen, n_seen, w->cf_seen->data, DEMO_CLASSES, w->D, cs, NULL, err, cap)
               ? -1
               : 0;
}

int demo_run_seed(const DemoWorld *w, int seed, const char *dir, DemoSeedResult *res, char *err, size_t cap)
{
    const DemoPlan *p = w->p;
    memset(res, 0, sizeof *res);
    if (mkdir(dir, 0777) && errno != EEXIST) { snprintf(err, cap, "%.1000s: %s", dir, strerror(errno)); return -1; }
    size_t n_train, n_seen = 0, n_unseen = 0;
    uint64_t s = (uint64_t)seed * 0x9E3779B97F4A7C15ull;
    DemoVideo *train = demo_videos(0, DEMO_SEEN_COLOURS, p->train_per_class, 0x7A11 ^ s, &n_train), *seen = NULL, *unseen = NULL;
    demo_test_videos(p, seed, &seen, &n_seen, &unseen, &n_unseen);
    char **texts = calloc(n_train + 1, sizeof(char *));
    float *captions = malloc(sizeof(float) * (n_train + 1) * (size_t)w->D);
    int rc = -1;
    if (!train || !seen || !unseen || !texts || !captions) { snprintf(err, cap, "out of memory"); goto done; }
    /* each training video's own caption, encoded once */
    for (size_t i = 0; i < n_train; i++) {
        char c[256];
        if (p->class_captions) sw_describe(&train[i].it, c, sizeof c);
        else sw_caption_video(&train[i].it, p->frames, p->clip.image, train[i].seed, c, sizeof c);
        if (!(texts[i] = strdup(c))) { snprintf(err, cap, "out of memory"); goto done; }
    }
    if (encode_texts(w->text, texts, n_train, captions, err, cap)) goto done;
    static const struct { const char *name; DemoRecipe r; } runs[4] = {
        {"plain", {0, 1, 0, 0}}, {"iwr", {1, 0, 0, 0}}, {"captions", {0, 0, 1, 0}}, {"open_vclip", {1, 1, 1, 0.5}},
    };
    char run_dir[4][4200], last[4][4300], final[4][4300], swa[4][4300];
    for (int k = 0; k < 4; k++) {
        snprintf(run_dir[k], sizeof run_dir[k], "%s/%s", dir, runs[k].name);
        snprintf(last[k], sizeof last[k], "%.4200s/checkpoint.safetensors", run_dir[k]);
        snprintf(final[k], sizeof final[k], "%.4200s/weights.safetensors", run_dir[k]);
        snprintf(swa[k], sizeof swa[k], "%.4200s/swa.safetensors", run_dir[k]);
        if (!w->quiet) fprintf(stderr, "  seed %d: fine-tuning %s\n", seed, runs[k].name);
        if (demo_finetune(p, w->clip_visual, w->cf_seen, train, n_train, captions, &runs[k].r, (uint64_t)seed, w->logit_scale, run_dir[k],
                          w->threads, w->target, w->precision, w->quiet, err, cap))
            goto done;
    }
    /* the rows: CLIP itself (window 0: frame by frame), then each run's weights */
    struct { const char *weights; double r; int window; } rows[DEMO_ROWS] = {
        {NULL, 0, 0}, {last[0], 0, 1}, {last[1], 0, 1}, {swa[0], 0, 1}, {last[0], 0.5, 1}, {last[2], 0, 1}, {final[3], 0, 1},
    };
    for (int r = 0; r < DEMO_ROWS; r++)
        if (both_splits(w, rows[r].weights, rows[r].r, rows[r].window, seen, n_seen, unseen, n_unseen, &res->zs[r], res->zs_attr[r],
                        &res->cs[r], err, cap))
            goto done;
    /* the patch-ratio curve over Open-VCLIP++'s SWA weights */
    for (int i = 0; i < DEMO_CURVE; i++)
        if (both_splits(w, swa[3], i / 10.0, 1, seen, n_seen, unseen, n_unseen, &res->curve_zs[i], NULL, &res->curve_cs[i], err, cap))
            goto done;
    res->n_test = n_seen;
    rc = 0;
done:
    for (size_t i = 0; texts && i < n_train; i++) free(texts[i]);
    free(texts);
    free(captions);
    free(train);
    free(seen);
    free(unseen);
    return rc;
}
