/* demo_finetune.c — fine-tuning VCLIP on the seen colours' videos, plainly
 * or as Open-VCLIP, through the trainer; the videos are rendered batch by
 * batch in a per-epoch shuffle (see demo.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "demo.h"
#include "../data/preprocess.h"
#include "../train/trainer.h"

/* ---- fine-tuning data: generated videos of the seen classes ---- */
typedef struct { const DemoVideo *v; size_t n, *order, pos; int T, S, batch; const float *captions; int64_t dim; uint8_t *pix; uint64_t seed; } WorldSource;

static int world_begin(BatchSource *s, int64_t epoch, int64_t skip, char *err, size_t cap)
{
    (void)err; (void)cap;
    WorldSource *w = s->ctx;
    uint64_t st = demo_mix(0xE70Cull ^ (uint64_t)epoch ^ demo_mix(w->seed));
    for (size_t i = 0; i < w->n; i++) w->order[i] = i;
    for (size_t i = w->n - 1; i > 0; i--) { st = demo_mix(st); size_t j = st % (i + 1), t = w->order[i]; w->order[i] = w->order[j]; w->order[j] = t; }
    w->pos = (size_t)skip * (size_t)w->batch;
    return 0;
}

static int world_next(BatchSource *s, Tensor *video, Tensor *labels, Tensor *captions, char *err, size_t cap)
{
    (void)err; (void)cap;
    WorldSource *w = s->ctx;
    int64_t B = labels->dims[0];
    if (w->pos + (size_t)B > w->n) return 0;
    size_t clip = (size_t)w->T * 3 * (size_t)w->S * (size_t)w->S;
    for (int64_t b = 0; b < B; b++) {
        size_t idx = w->order[w->pos++];
        const DemoVideo *v = &w->v[idx];
        sw_render_video(&v->it, w->T, w->S, v->seed, w->pix);
        normalize_clip(w->pix, w->T, w->S, (float *)video->data + (size_t)b * clip);
        ((int64_t *)labels->data)[b] = v->label;
        if (captions) memcpy((float *)captions->data + b * w->dim, w->captions + idx * (size_t)w->dim, sizeof(float) * (size_t)w->dim);
    }
    return 1;
}

int demo_finetune(const DemoPlan *p, const char *clip_onnx, const Tensor *cf, const DemoVideo *train, size_t n, const float *captions,
                  const DemoRecipe *r, uint64_t seed, double logit_scale, const char *out, int threads, Target target,
                  Precision precision, int quiet, char *err, size_t cap)
{
    if (r->captions && !captions) { snprintf(err, cap, "the caption loss needs the videos' caption features"); return -1; }
    WorldSource ws = {train, n, calloc(n + 1, sizeof(size_t)), 0, p->frames, p->clip.image, p->ft_batch, captions, cf->dims[1],
                      malloc((size_t)p->frames * (size_t)p->clip.image * (size_t)p->clip.image * 3), seed};
    if (!ws.order || !ws.pix) { free(ws.order); free(ws.pix); snprintf(err, cap, "out of memory"); return -1; }
    TrainerConfig tc;
    trainer_defaults(&tc, p->ft_batch, p->ft_epochs);
    tc.graph.frames = p->frames;
    tc.graph.class_features = cf;
    tc.graph.logit_scale = (float)logit_scale;
    tc.graph.iwr = r->iwr;
    tc.graph.captions = r->captions;
    tc.graph.caption_weight = (float)p->caption_weight;
    tc.warmup_epochs = p->ft_epochs > 2 ? 1 : 0;
    tc.lr = p->ft_lr;
    tc.lr_min = tc.lr_start = p->ft_lr / 100;
    tc.swa_start = r->swa ? (p->ft_epochs > 1 ? 1 : 0) : -1; /* from the second epoch, as the released code */
    tc.patch_ratio = r->patch;
    tc.seed = seed;
    tc.out_dir = out;
    tc.threads = threads;
    tc.target = target;
    tc.precision = precision;
    tc.quiet = quiet;
    tc.progress = !quiet;
    char config[160];
    snprintf(config, sizeof config, "{\"demo\": {\"iwr\": %d, \"swa\": %d, \"captions\": %d, \"patch\": %g, \"seed\": %llu}}", r->iwr, r->swa,
             r->captions, r->patch, (unsigned long long)seed);
    tc.config_json = config;
    BatchSource src = {world_begin, world_next, (int64_t)(n / (size_t)p->ft_batch), &ws};
    TrainResult res;
    int rc = trainer_run(clip_onnx, &tc, &src, &res, err, cap);
    if (!rc && !quiet) fprintf(stderr, "      %lld steps in %.0f s, final loss %.4f\n", (long long)res.steps, res.seconds, res.last_loss);
    free(ws.order);
    free(ws.pix);
    return rc;
}
