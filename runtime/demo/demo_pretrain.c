/* demo_pretrain.c — the demo's own CLIP: pretrained contrastively on
 * captioned stills of the shape world (distinct captions per batch, the
 * 28 prompt templates), cached after the first run (see demo.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "demo.h"
#include "../../ir/base.h"
#include "../../models/tokenizer/tokenizer_source.h"
#include "../../onnx/onnx_io.h"
#include "../data/preprocess.h"
#include "../train/pretrain.h"

/* ---- pretraining data: distinct captioned stills per batch ---- */
typedef struct { ClipTokenizer *tok; StringList templates; const DemoPlan *p; uint8_t *pix; } PreData;

static int pre_fill(void *ctx, int64_t step, Tensor *images, Tensor *texts, char *err, size_t cap)
{
    PreData *d = ctx;
    int S = d->p->clip.image, L = d->p->clip.context, n = SW_COLOURS * SW_SHAPES * (SW_MOTIONS + 1);
    int order[SW_COLOURS * SW_SHAPES * (SW_MOTIONS + 1)];
    uint64_t st = demo_mix(0xC11Bull ^ (uint64_t)step);
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = n - 1; i > 0; i--) { st = demo_mix(st); int j = (int)(st % (uint64_t)(i + 1)), t = order[i]; order[i] = order[j]; order[j] = t; }
    int64_t B = images->dims[0], row[64];
    for (int64_t b = 0; b < B; b++) {
        int k = order[b % n];
        SwItem it = {k / (SW_SHAPES * (SW_MOTIONS + 1)), k / (SW_MOTIONS + 1) % SW_SHAPES, k % (SW_MOTIONS + 1) - 1};
        uint64_t seed = demo_mix((uint64_t)step * 1000003u + (uint64_t)b);
        sw_render_image(&it, S, seed, d->pix);
        normalize_clip(d->pix, 1, S, (float *)images->data + b * 3 * S * S);
        char desc[128];
        sw_describe(&it, desc, sizeof desc);
        char *caption = prompts_fill(d->templates.items[demo_mix(seed) % d->templates.n], desc);
        if (!caption || clip_tokenize(d->tok, caption, strlen(caption), L, row)) { free(caption); snprintf(err, cap, "out of memory"); return -1; }
        free(caption);
        memcpy((int64_t *)texts->data + b * L, row, sizeof(int64_t) * (size_t)L);
    }
    return 0;
}

/* dst = a copy of src, written to a temporary name and renamed. */
int demo_copy_file(const char *src, const char *dst, char *err, size_t cap)
{
    FILE *in = fopen(src, "rb");
    if (!in) { snprintf(err, cap, "%.1000s: %s", src, strerror(errno)); return -1; }
    AtomicFile af;
    if (atomic_open(&af, dst, "wb", err, cap)) { fclose(in); return -1; }
    char buf[1 << 16];
    size_t n;
    int bad = 0;
    while (!bad && (n = fread(buf, 1, sizeof buf, in)) > 0) bad = fwrite(buf, 1, n, af.f) != n;
    bad |= ferror(in);
    fclose(in);
    if (bad) { snprintf(err, cap, "cannot copy %.1000s to %.1000s", src, dst); atomic_abort(&af); return -1; }
    return atomic_commit(&af, err, cap);
}

/* The pretrained CLIP: from the cache, or trained now and cached. */
int demo_pretrained_clip(const DemoPlan *p, int threads, int quiet, char *visual, char *text, size_t cap, double *logit_scale, char *err, size_t ecap)
{
    char sub[128], dir[3000];
    uint64_t h = demo_mix((uint64_t)p->pre_steps * 131 + (uint64_t)p->pre_batch) ^ demo_mix((uint64_t)p->clip.width << 8 | (uint64_t)p->clip.layers);
    /* bump the version when the world or the pretraining changes */
    snprintf(sub, sizeof sub, "demo/clip-v2-%016llx", (unsigned long long)h);
    if (vclip_cache_dir(sub, dir, sizeof dir, err, ecap)) return -1;
    snprintf(visual, cap, "%s/visual.onnx", dir);
    snprintf(text, cap, "%s/text.onnx", dir);
    char scale_path[3100];
    snprintf(scale_path, sizeof scale_path, "%s/logit_scale.txt", dir);
    struct stat st;
    FILE *sf = fopen(scale_path, "r");
    int cached = sf && fscanf(sf, "%lf", logit_scale) == 1 && !stat(visual, &st) && !stat(text, &st);
    if (sf) fclose(sf);
    if (cached) {
        if (!quiet) fprintf(stderr, "[1/4] pretrained CLIP from the cache: %s\n", dir);
        return 0;
    }
    if (!quiet) fprintf(stderr, "[1/4] pretraining a tiny CLIP on %lld batches of %d captioned images (cached afterwards)\n",
                        (long long)p->pre_steps, p->pre_batch);
    PreData d = {0};
    d.p = p;
    TokenizerSource src = {0};
    d.tok = tokenizer_open(&src, err, ecap);
    d.pix = malloc((size_t)p->clip.image * (size_t)p->clip.image * 3);
    if (!d.tok || !d.pix) { clip_tokenizer_free(d.tok); free(d.pix); if (d.tok) snprintf(err, ecap, "out of memory"); return -1; }
    prompts_default_templates(&d.templates);
    PretrainConfig pc = {.clip = p->clip, .batch = p->pre_batch, .steps = p->pre_steps, .lr = p->pre_lr, .weight_decay = 0.1,
                         .seed = 1234, .threads = threads, .quiet = quiet, .fill = pre_fill, .ctx = &d};
    Graph *gv = NULL, *gt = NULL;
    PretrainResult pr;
    int rc = clip_pretrain(&pc, &gv, &gt, &pr, err, ecap);
    OnnxSaveOptions so = {.external_data = 0, .producer = "vclip-run demo"};
    if (!rc) rc = onnx_save(gv, visual, &so, err, ecap) || onnx_save(gt, text, &so, err, ecap) ? -1 : 0;
    if (!rc) { /* the learned scale, which fine-tuning starts from; written last: it marks the cache entry complete */
        char line[64];
        int len = snprintf(line, sizeof line, "%.9g\n", pr.logit_scale);
        rc = atomic_write(scale_path, line, (size_t)len, err, ecap);
        *logit_scale = pr.logit_scale;
    }
    if (!rc && !quiet)
        fprintf(stderr, "      final contrastive loss %.4f (chance: ln %d = %.2f), logit scale %.1f, %.0f ms/step\n", pr.loss, p->pre_batch,
                log((double)p->pre_batch), exp(pr.logit_scale), pr.ms_per_step);
    graph_free(gv);
    graph_free(gt);
    clip_tokenizer_free(d.tok);
    string_list_free(&d.templates);
    free(d.pix);
    return rc;
}
