/* cmd_demo.c — `vclip-run demo`: the whole method on a world small enough to
 * run on two cores in minutes (runtime/data/shape_world.c).
 *
 *  1. Pretrain a tiny CLIP from scratch on captioned still images of coloured
 *     shapes (motion shown only as trails), contrastively: our own CLIP.
 *  2. Fine-tune VCLIP on the videos of the seen colours (red, green, blue):
 *     once plainly, once as Open-VCLIP (IWR + SWA + patch, caption loss).
 *  3. Evaluate closed-set on held-out videos of the seen classes and zero-shot
 *     on the unseen colours (yellow, purple, orange), whose classes pair the
 *     known motions with colours that never move in training: zero-shot needs
 *     the image model's colours and the video training's motion.
 *  4. Print the paper's Table IV for this world, and write results.json and
 *     the patch-ratio curve (curve.svg).
 * The pretrained CLIP is cached (VCLIP_CACHE_DIR) after the first run. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <errno.h>
#include "../onnx/onnx_io.h"
#include "../passes/passes.h"
#include "../runtime/data/preprocess.h"
#include "../runtime/data/shape_world.h"
#include "../runtime/data/video_writer.h"
#include "../runtime/safetensors.h"
#include "../ir/base.h"
#include "../runtime/cpu/session.h"
#include "../runtime/train/checkpoint.h"
#include "../runtime/train/pretrain.h"
#include "../runtime/train/trainer.h"
#include "cli.h"
#include "commands.h"
#include "evaluator.h"
#include "svg_plot.h"
#include "../runtime/eval/text_features.h"

#define TOOL "vclip-run demo"
#define SEEN_COLOURS 3 /* red, green, blue; the other three are unseen */
#define CLASSES_PER_SPLIT (SEEN_COLOURS * SW_SHAPES * SW_MOTIONS)

static const char *usage =
    "usage: vclip-run demo [--out DIR] [--threads N] [--quick]\n"
    "  Pretrains a tiny CLIP on a generated world of coloured shapes, fine-tunes VCLIP on\n"
    "  the seen colours plainly and with Open-VCLIP (IWR + SWA + patch + captions), and\n"
    "  evaluates zero-shot on unseen colours and close-set on the seen ones.\n"
    "  --out DIR     results.json, curve.svg, clip/, plain/, open_vclip/ (default demo-out)\n"
    "  --threads N   compute threads (default: all cores)\n"
    "  --target cpu  where it runs (cuda: not supported yet, said at once); --precision fp32\n"
    "  --quick       a few steps of everything (a smoke test; the numbers mean nothing)\n"
    "  --epochs N --lr X   fine-tuning epochs (12) and peak learning rate (3e-4)\n"
    "  --write-videos  also write the test videos (OUT/videos/{seen,unseen}/*.nut, lossless), their\n"
    "                lists and class features, so `vclip-run eval` can reproduce the table\n"
    "  The pretrained CLIP is cached in $VCLIP_CACHE_DIR (or ~/.cache/vclip) after the first run.\n";

typedef struct {
    ClipConfig clip;
    int frames, pre_batch, train_per_class, test_per_class, ft_batch, ft_epochs;
    int64_t pre_steps;
    double pre_lr, ft_lr;
} Plan;

typedef struct { SwItem it; uint64_t seed; int label; } Video;

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* ---- pretraining data: distinct captioned stills per batch ---- */
typedef struct { ClipTokenizer *tok; StringList templates; const Plan *p; uint8_t *pix; } PreData;

static int pre_fill(void *ctx, int64_t step, Tensor *images, Tensor *texts, char *err, size_t cap)
{
    PreData *d = ctx;
    int S = d->p->clip.image, L = d->p->clip.context, n = SW_COLOURS * SW_SHAPES * (SW_MOTIONS + 1);
    int order[SW_COLOURS * SW_SHAPES * (SW_MOTIONS + 1)];
    uint64_t st = mix(0xC11Bull ^ (uint64_t)step);
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = n - 1; i > 0; i--) { st = mix(st); int j = (int)(st % (uint64_t)(i + 1)), t = order[i]; order[i] = order[j]; order[j] = t; }
    int64_t B = images->dims[0], row[64];
    for (int64_t b = 0; b < B; b++) {
        int k = order[b % n];
        SwItem it = {k / (SW_SHAPES * (SW_MOTIONS + 1)), k / (SW_MOTIONS + 1) % SW_SHAPES, k % (SW_MOTIONS + 1) - 1};
        uint64_t seed = mix((uint64_t)step * 1000003u + (uint64_t)b);
        sw_render_image(&it, S, seed, d->pix);
        normalize_clip(d->pix, 1, S, (float *)images->data + b * 3 * S * S);
        char desc[128];
        sw_describe(&it, desc, sizeof desc);
        char *caption = prompts_fill(d->templates.items[mix(seed) % d->templates.n], desc);
        if (!caption || clip_tokenize(d->tok, caption, strlen(caption), L, row)) { free(caption); snprintf(err, cap, "out of memory"); return -1; }
        free(caption);
        memcpy((int64_t *)texts->data + b * L, row, sizeof(int64_t) * (size_t)L);
    }
    return 0;
}

/* ---- fine-tuning data: generated videos of the seen classes ---- */
typedef struct { const Video *v; size_t n, *order, pos; int T, S, batch; const float *captions; int64_t dim; uint8_t *pix; } WorldSource;

static int world_begin(BatchSource *s, int64_t epoch, int64_t skip, char *err, size_t cap)
{
    (void)err; (void)cap;
    WorldSource *w = s->ctx;
    uint64_t st = mix(0xE70Cull ^ (uint64_t)epoch);
    for (size_t i = 0; i < w->n; i++) w->order[i] = i;
    for (size_t i = w->n - 1; i > 0; i--) { st = mix(st); size_t j = st % (i + 1), t = w->order[i]; w->order[i] = w->order[j]; w->order[j] = t; }
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
        const Video *v = &w->v[w->order[w->pos++]];
        sw_render_video(&v->it, w->T, w->S, v->seed, w->pix);
        normalize_clip(w->pix, w->T, w->S, (float *)video->data + (size_t)b * clip);
        ((int64_t *)labels->data)[b] = v->label;
        if (captions) memcpy((float *)captions->data + b * w->dim, w->captions + (size_t)v->label * (size_t)w->dim, sizeof(float) * (size_t)w->dim);
    }
    return 1;
}

/* The test videos as files, a list per split, and the class features in
 * encode-text's format: OUT/videos/{seen,unseen}.csv, OUT/videos/classes_{seen,unseen}.safetensors. */
static int write_split(const char *out, const char *split, const Video *v, size_t n, const float *cf, int64_t D, const StringList *names,
                       size_t first_class, const Plan *p, char *err, size_t cap)
{
    char dir[4300], path[4400], list[4400];
    snprintf(dir, sizeof dir, "%s/videos/%s", out, split);
    snprintf(path, sizeof path, "%s/videos", out);
    if ((mkdir(path, 0777) && errno != EEXIST) || (mkdir(dir, 0777) && errno != EEXIST)) { snprintf(err, cap, "%.1000s: %s", dir, strerror(errno)); return -1; }
    snprintf(list, sizeof list, "%s/videos/%s.csv", out, split);
    FILE *f = fopen(list, "w");
    uint8_t *pix = malloc((size_t)p->frames * (size_t)p->clip.image * (size_t)p->clip.image * 3);
    if (!f || !pix) { if (f) fclose(f); free(pix); snprintf(err, cap, "%.1000s: cannot write", list); return -1; }
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%05zu.nut", dir, i);
        sw_render_video(&v[i].it, p->frames, p->clip.image, v[i].seed, pix);
        if (video_write_rgb(path, pix, p->frames, p->clip.image, p->clip.image, 30, err, cap)) { fclose(f); free(pix); return -1; }
        fprintf(f, "%s/%05zu.nut,%d\n", split, i, v[i].label);
    }
    free(pix);
    if (fclose(f)) { snprintf(err, cap, "%.1000s: %s", list, strerror(errno)); return -1; }
    Tensor *t = tensor_new(DT_F32, 2, (int64_t[]){CLASSES_PER_SPLIT, D});
    size_t jl = 16;
    for (int c = 0; c < CLASSES_PER_SPLIT; c++) jl += strlen(names->items[first_class + (size_t)c]) + 4;
    char *json = malloc(jl);
    if (!t || !json) { tensor_free(t); free(json); snprintf(err, cap, "out of memory"); return -1; }
    memcpy(t->data, cf, t->nbytes);
    size_t at = 0;
    json[at++] = '[';
    for (int c = 0; c < CLASSES_PER_SPLIT; c++) at += (size_t)snprintf(json + at, jl - at, "%s\"%s\"", c ? ", " : "", names->items[first_class + (size_t)c]);
    snprintf(json + at, jl - at, "]");
    snprintf(path, sizeof path, "%s/videos/classes_%s.safetensors", out, split);
    NamedTensor nt = {"class_features", t};
    MetadataEntry md = {"classes", json};
    int rc = safetensors_save(path, &nt, 1, &md, 1, err, cap);
    tensor_free(t);
    free(json);
    return rc;
}

/* ---- evaluation: top-1 of frame-averaged cosine logits ---- */
typedef struct { const char *clip_onnx; int threads, frames, S; } EvalEnv;

/* The encoder = r * θ_CLIP + (1 - r) * weights (weights NULL: CLIP). */
static int top1(const EvalEnv *e, const char *weights, double r, int window, const Video *v, size_t n, const float *cf, int C, int64_t D,
                double *out, char *err, size_t cap)
{
    int rc = -1, applied, unused;
    Model *s = NULL;
    Tensor *in = NULL;
    char msg[IR_ERR_CAP];
    Graph *g = onnx_load(e->clip_onnx, err, cap), *t = NULL;
    if (!g) return -1;
    if (weights) {
        if (!(t = onnx_load(e->clip_onnx, err, cap)) || checkpoint_apply(t, weights, &applied, &unused, err, cap)) goto done;
        if (patch_weights(g, t, (float)r, msg, sizeof msg) < 0) { snprintf(err, cap, "%s", msg); goto done; }
    }
    s = vclip_compile_graph(g, e->clip_onnx, &(CompileOptions){.threads = e->threads, .frames = e->frames, .window = window}, err, cap);
    g = NULL; /* the model's now */
    if (!s) goto done;
    const int B = 16;
    size_t clip = (size_t)e->frames * 3 * (size_t)e->S * (size_t)e->S, correct = 0;
    uint8_t *pix = malloc(clip);
    int64_t dims[5] = {B, e->frames, 3, e->S, e->S};
    in = tensor_new(DT_F32, 5, dims);
    if (!pix || !in) { free(pix); snprintf(err, cap, "out of memory"); goto done; }
    for (size_t start = 0; start < n; start += B) {
        size_t b = n - start < (size_t)B ? n - start : (size_t)B;
        in->dims[0] = (int64_t)b;
        in->nbytes = b * clip * sizeof(float);
        for (size_t i = 0; i < b; i++) {
            sw_render_video(&v[start + i].it, e->frames, e->S, v[start + i].seed, pix);
            normalize_clip(pix, e->frames, e->S, (float *)in->data + i * clip);
        }
        Tensor *o = NULL;
        if (model_run(s, &in, &o, err, cap)) { free(pix); goto done; }
        const float *f = o->data;
        for (size_t i = 0; i < b; i++) {
            double best = -INFINITY;
            int arg = 0;
            for (int c = 0; c < C; c++) {
                double acc = 0;
                for (int tt = 0; tt < e->frames; tt++) {
                    const float *x = f + (i * (size_t)e->frames + (size_t)tt) * (size_t)D;
                    double dot = 0, nn = 0;
                    for (int64_t d = 0; d < D; d++) { dot += (double)x[d] * cf[(size_t)c * (size_t)D + (size_t)d]; nn += (double)x[d] * x[d]; }
                    acc += dot / sqrt(nn > 0 ? nn : 1);
                }
                if (acc > best) { best = acc; arg = c; }
            }
            correct += arg == v[start + i].label;
        }
        tensor_free(o);
    }
    free(pix);
    *out = 100.0 * (double)correct / (double)(n ? n : 1);
    rc = 0;
done:
    tensor_free(in);
    model_free(s);
    graph_free(g);
    graph_free(t);
    return rc;
}

/* dst = a copy of src, written to a temporary name and renamed. */
static int copy_file(const char *src, const char *dst, char *err, size_t cap)
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
static int pretrained_clip(const Plan *p, int threads, int quiet, char *visual, char *text, size_t cap, double *logit_scale, char *err, size_t ecap)
{
    char sub[128], dir[3000];
    uint64_t h = mix((uint64_t)p->pre_steps * 131 + (uint64_t)p->pre_batch) ^ mix((uint64_t)p->clip.width << 8 | (uint64_t)p->clip.layers);
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

/* n videos per class of the classes whose colour is in [c0, c1), labels relative to c0's first class */
static Video *make_videos(int c0, int c1, int per_class, uint64_t salt, size_t *n)
{
    *n = (size_t)(c1 - c0) * SW_SHAPES * SW_MOTIONS * (size_t)per_class;
    Video *v = calloc(*n + 1, sizeof *v);
    size_t k = 0;
    for (int cls = c0 * SW_SHAPES * SW_MOTIONS; v && cls < c1 * SW_SHAPES * SW_MOTIONS; cls++)
        for (int i = 0; i < per_class; i++) {
            v[k].it = sw_item_of_class(cls);
            v[k].label = cls - c0 * SW_SHAPES * SW_MOTIONS;
            v[k].seed = mix(salt ^ (uint64_t)k * 7919u);
            k++;
        }
    return v;
}

static int finetune(const Plan *p, const char *clip_onnx, const Tensor *cf, const float *captions, int open_vclip, double logit_scale,
                    const char *out, int threads, int quiet, char *err, size_t cap)
{
    size_t n;
    Video *v = make_videos(0, SEEN_COLOURS, p->train_per_class, 0x7A11, &n);
    WorldSource ws = {v, n, calloc(n + 1, sizeof(size_t)), 0, p->frames, p->clip.image, p->ft_batch, captions, cf->dims[1],
                      malloc((size_t)p->frames * (size_t)p->clip.image * (size_t)p->clip.image * 3)};
    if (!v || !ws.order || !ws.pix) { free(v); free(ws.order); free(ws.pix); snprintf(err, cap, "out of memory"); return -1; }
    TrainerConfig tc;
    trainer_defaults(&tc, p->ft_batch, p->ft_epochs);
    tc.graph.frames = p->frames;
    tc.graph.class_features = cf;
    tc.graph.logit_scale = (float)logit_scale;
    tc.graph.iwr = open_vclip;
    tc.graph.captions = open_vclip;
    tc.warmup_epochs = p->ft_epochs > 2 ? 1 : 0;
    tc.lr = p->ft_lr;
    tc.lr_min = tc.lr_start = p->ft_lr / 100;
    tc.swa_start = open_vclip ? (p->ft_epochs > 1 ? 1 : 0) : -1;
    tc.patch_ratio = open_vclip ? 0.5 : 0;
    tc.out_dir = out;
    tc.threads = threads;
    tc.quiet = quiet;
    tc.progress = !quiet;
    tc.config_json = open_vclip ? "{\"demo\": \"open_vclip\"}" : "{\"demo\": \"plain\"}";
    BatchSource src = {world_begin, world_next, (int64_t)(n / (size_t)p->ft_batch), &ws};
    TrainResult res;
    int rc = trainer_run(clip_onnx, &tc, &src, &res, err, cap);
    if (!rc && !quiet) fprintf(stderr, "      %lld steps in %.0f s, final loss %.4f\n", (long long)res.steps, res.seconds, res.last_loss);
    free(v);
    free(ws.order);
    free(ws.pix);
    return rc;
}

int cmd_demo(int argc, char **argv)
{
    static const struct option opts[] = {{"out", 1, 0, 'o'}, {"threads", 1, 0, 't'}, {"quick", 0, 0, 'q'},
                                         {"write-videos", 0, 0, 'w'}, {"epochs", 1, 0, 'e'}, {"lr", 1, 0, 'l'},
                                         CLI_COMPILE_OPTIONS, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int epochs = 0;
    CompileOptions co = {0};
    char cerr[256];
    double lr = 0;
    char *end;
    const char *out = "demo-out";
    int threads = 0, quick = 0, write_videos = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 't': if (cli_parse_int(optarg, 1, 256, &threads)) return cli_usage_error(TOOL, "--threads needs 1..256"); break;
        case 'q': quick = 1; break;
        case 'w': write_videos = 1; break;
        case CLI_OPT_TARGET:
        case CLI_OPT_PRECISION:
            if (cli_compile_option(c, optarg, &co, cerr, sizeof cerr)) return cli_usage_error(TOOL, cerr);
            break;
        case 'e': if (cli_parse_int(optarg, 1, 1000, &epochs)) return cli_usage_error(TOOL, "--epochs needs 1..1000"); break;
        case 'l': lr = strtod(optarg, &end); if (*end || !(lr > 0)) return cli_usage_error(TOOL, "--lr needs a positive number"); break;
        case 'h': fputs(usage, stdout); return 0;
        default: return cli_usage_error(TOOL, "unknown option (see --help)");
        }
    }
    if (optind < argc) return cli_usage_error(TOOL, "unexpected argument (see --help)");
    char err[2048] = "", visual[4400], text[4400];
    if (trainer_check_target(co.target, err, sizeof err)) { cli_error(TOOL, NULL, err); return 1; }
    if (co.precision != PRECISION_FP32) { cli_error(TOOL, NULL, "--precision: the demo trains in fp32 for now"); return 1; }
    co.threads = threads;
    Plan p = {.clip = {.image = 32, .patch = 8, .width = 64, .layers = 2, .heads = 2, .context = 16, .vocab = 49408,
                       .text_width = 64, .text_layers = 2, .text_heads = 2, .embed = 32},
              .frames = 8, .pre_batch = 64, .train_per_class = 8, .test_per_class = 8, .ft_batch = 8, .ft_epochs = 12,
              .pre_steps = 4000, .pre_lr = 1e-3, .ft_lr = 3e-4};
    if (quick) { p.pre_steps = 6; p.pre_batch = 16; p.train_per_class = 1; p.test_per_class = 1; p.ft_epochs = 2; }
    if (epochs) p.ft_epochs = epochs;
    if (lr > 0) p.ft_lr = lr;
    double t0 = now_ms();
    if (mkdir(out, 0777) && errno != EEXIST) { fprintf(stderr, "%s: %s: %s\n", TOOL, out, strerror(errno)); return 1; }
    double logit_scale = 0;
    if (pretrained_clip(&p, threads, 0, visual, text, sizeof visual, &logit_scale, err, sizeof err)) { cli_error(TOOL, NULL, err); return 1; }
    { /* OUT/clip/: the pretrained model next to the results */
        char d[4200], v2[4300], t2[4300];
        snprintf(d, sizeof d, "%s/clip", out);
        snprintf(v2, sizeof v2, "%s/visual.onnx", d);
        snprintf(t2, sizeof t2, "%s/text.onnx", d);
        if ((mkdir(d, 0777) && errno != EEXIST) || copy_file(visual, v2, err, sizeof err) || copy_file(text, t2, err, sizeof err)) {
            cli_error(TOOL, d, err[0] ? err : strerror(errno));
            return 1;
        }
        snprintf(visual, sizeof visual, "%s", v2);
        snprintf(text, sizeof text, "%s", t2);
    }
    int rc = 1;
    Evaluator ev;
    evaluator_init(&ev);
    StringList names = {0}, templates = {0}, descs = {0};
    Tensor *cf_all = NULL, *cf_seen = NULL;
    float *caption_feats = NULL;
    Video *seen = NULL, *unseen = NULL;
    if (evaluator_open_text(&ev, text, &co, err, sizeof err)) { cli_error(TOOL, text, err); goto done; }
    /* class features of all 108 classes with the 28 templates; captions are the plain descriptions */
    names.items = calloc(SW_CLASSES, sizeof(char *));
    descs.items = calloc(CLASSES_PER_SPLIT, sizeof(char *));
    if (!names.items || !descs.items) { cli_error(TOOL, NULL, "out of memory"); goto done; }
    for (int k = 0; k < SW_CLASSES; k++) {
        char d[128];
        SwItem it = sw_item_of_class(k);
        sw_describe(&it, d, sizeof d);
        names.items[names.n++] = strdup(d);
        if (k < CLASSES_PER_SPLIT) descs.items[descs.n++] = strdup(d);
    }
    prompts_default_templates(&templates);
    int64_t D = ev.text.dim;
    cf_all = tensor_new(DT_F32, 2, (int64_t[]){SW_CLASSES, D});
    cf_seen = tensor_new(DT_F32, 2, (int64_t[]){CLASSES_PER_SPLIT, D});
    caption_feats = malloc(sizeof(float) * CLASSES_PER_SPLIT * (size_t)D);
    if (!cf_all || !cf_seen || !caption_feats || class_features(&ev.text, &names, &templates, cf_all->data, err, sizeof err) ||
        encode_texts(&ev.text, descs.items, descs.n, caption_feats, err, sizeof err)) {
        cli_error(TOOL, text, cf_all && cf_seen && caption_feats ? err : "out of memory");
        goto done;
    }
    memcpy(cf_seen->data, cf_all->data, cf_seen->nbytes);
    const float *cf_unseen = (const float *)cf_all->data + (size_t)CLASSES_PER_SPLIT * (size_t)D;
    char plain_dir[4200], ovc_dir[4200], w_plain[4300], w_ovc[4300], w_swa[4300];
    snprintf(plain_dir, sizeof plain_dir, "%s/plain", out);
    snprintf(ovc_dir, sizeof ovc_dir, "%s/open_vclip", out);
    snprintf(w_plain, sizeof w_plain, "%s/weights.safetensors", plain_dir);
    snprintf(w_ovc, sizeof w_ovc, "%s/weights.safetensors", ovc_dir);
    snprintf(w_swa, sizeof w_swa, "%s/swa.safetensors", ovc_dir);
    fprintf(stderr, "[2/4] fine-tuning VCLIP plainly on %d seen classes (%d videos each)\n", CLASSES_PER_SPLIT, p.train_per_class);
    if (finetune(&p, visual, cf_seen, caption_feats, 0, logit_scale, plain_dir, threads, 0, err, sizeof err)) { cli_error(TOOL, NULL, err); goto done; }
    fprintf(stderr, "[3/4] fine-tuning Open-VCLIP (IWR + SWA + patch 0.5 + caption loss)\n");
    if (finetune(&p, visual, cf_seen, caption_feats, 1, logit_scale, ovc_dir, threads, 0, err, sizeof err)) { cli_error(TOOL, NULL, err); goto done; }
    fprintf(stderr, "[4/4] evaluating: close-set on held-out videos of the seen classes, zero-shot on the unseen colours\n");
    size_t n_seen, n_unseen;
    seen = make_videos(0, SEEN_COLOURS, p.test_per_class, 0x5EE4, &n_seen);
    unseen = make_videos(SEEN_COLOURS, SW_COLOURS, p.test_per_class, 0x0A5EE4, &n_unseen);
    if (!seen || !unseen) { cli_error(TOOL, NULL, "out of memory"); goto done; }
    if (write_videos && (write_split(out, "seen", seen, n_seen, cf_seen->data, D, &names, 0, &p, err, sizeof err) ||
                         write_split(out, "unseen", unseen, n_unseen, cf_unseen, D, &names, CLASSES_PER_SPLIT, &p, err, sizeof err))) {
        cli_error(TOOL, NULL, err);
        goto done;
    }
    EvalEnv env = {visual, threads, p.frames, p.clip.image};
    struct { const char *key, *label, *weights; int window; double zs, cs; } rows[3] = {
        {"clip_frame_avg", "CLIP, frame-averaged", NULL, 0, 0, 0},
        {"finetune", "VCLIP, plain fine-tuning", w_plain, 1, 0, 0},
        {"open_vclip", "Open-VCLIP (IWR+SWA+patch)", w_ovc, 1, 0, 0},
    };
    for (int r = 0; r < 3; r++)
        if (top1(&env, rows[r].weights, 0, rows[r].window, unseen, n_unseen, cf_unseen, CLASSES_PER_SPLIT, D, &rows[r].zs, err, sizeof err) ||
            top1(&env, rows[r].weights, 0, rows[r].window, seen, n_seen, cf_seen->data, CLASSES_PER_SPLIT, D, &rows[r].cs, err, sizeof err)) {
            cli_error(TOOL, rows[r].key, err);
            goto done;
        }
    /* the patch-ratio curve over the SWA weights */
    enum { NR = 11 };
    double ratio[NR], zs[NR], cs[NR];
    char lab[NR][16];
    const char *labels[NR];
    for (int i = 0; i < NR; i++) {
        ratio[i] = i / 10.0;
        if (top1(&env, w_swa, ratio[i], 1, unseen, n_unseen, cf_unseen, CLASSES_PER_SPLIT, D, &zs[i], err, sizeof err) ||
            top1(&env, w_swa, ratio[i], 1, seen, n_seen, cf_seen->data, CLASSES_PER_SPLIT, D, &cs[i], err, sizeof err)) {
            cli_error(TOOL, "curve", err);
            goto done;
        }
        snprintf(lab[i], sizeof lab[i], "r=%.1f", ratio[i]);
        labels[i] = lab[i];
    }
    double chance = 100.0 / CLASSES_PER_SPLIT;
    printf("\nShape world, %d frames, %d classes per split (chance %.1f%%); %zu test videos per split\n", p.frames, CLASSES_PER_SPLIT, chance, n_seen);
    printf("%-30s %18s %18s\n", "method", "zero-shot top-1", "close-set top-1");
    for (int r = 0; r < 3; r++) printf("%-30s %17.1f%% %17.1f%%\n", rows[r].label, rows[r].zs, rows[r].cs);
    printf("\npatch ratio r (θ = r·θ_CLIP + (1−r)·θ_SWA):\n");
    for (int i = 0; i < NR; i++) printf("  r=%.1f  zero-shot %5.1f%%  close-set %5.1f%%\n", ratio[i], zs[i], cs[i]);
    char path[4300];
    double xs[NR], ys[NR];
    for (int i = 0; i < NR; i++) { xs[i] = cs[i] / 100; ys[i] = zs[i] / 100; }
    snprintf(path, sizeof path, "%s/curve.svg", out);
    if (svg_curve(path, xs, ys, labels, NR, "Shape world: patch ratio, zero-shot vs close-set", "close-set top-1 (%)", "zero-shot top-1 (%)", err, sizeof err)) {
        cli_error(TOOL, path, err);
        goto done;
    }
    snprintf(path, sizeof path, "%s/results.json", out);
    AtomicFile af;
    if (atomic_open(&af, path, "w", err, sizeof err)) { cli_error(TOOL, NULL, err); goto done; }
    FILE *f = af.f;
    fprintf(f, "{\n");
    for (int r = 0; r < 3; r++)
        fprintf(f, "  \"%s\": {\"zero_shot_top1\": %.4f, \"closed_set_top1\": %.4f},\n", rows[r].key, rows[r].zs, rows[r].cs);
    fprintf(f, "  \"curve\": [");
    for (int i = 0; i < NR; i++)
        fprintf(f, "%s{\"ratio\": %.1f, \"zero_shot_top1\": %.4f, \"closed_set_top1\": %.4f}", i ? ", " : "", ratio[i], zs[i], cs[i]);
    fprintf(f, "],\n  \"chance_top1\": %.4f, \"classes_per_split\": %d, \"test_videos_per_split\": %zu, \"quick\": %s, \"seconds\": %.1f\n}\n",
            chance, CLASSES_PER_SPLIT, n_seen, quick ? "true" : "false", (now_ms() - t0) / 1000);
    if (atomic_commit(&af, err, sizeof err)) { cli_error(TOOL, NULL, err); goto done; }
    printf("\nwrote %s/results.json and %s/curve.svg in %.0f s\n", out, out, (now_ms() - t0) / 1000);
    rc = 0;
done:
    free(seen);
    free(unseen);
    free(caption_feats);
    tensor_free(cf_all);
    tensor_free(cf_seen);
    string_list_free(&names);
    string_list_free(&templates);
    string_list_free(&descs);
    if (ev.has_text) evaluator_close_text(&ev);
    return rc;
}
