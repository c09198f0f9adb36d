/* cmd_eval.c — `vclip-run eval`: zero-shot video classification.
 *
 * For each video of the list: its test views (--views temporal x --crops
 * spatial), preprocessed at the model's input size, run through the video
 * encoder; each frame embedding L2-normalized, logits = scale * f . W^T
 * against the unit class features W, averaged over the frames, summed over
 * the views (DESIGN.md §2).  An image encoder (input [B, 3, H, W]) is made
 * temporal on the fly (--temporal-window 0 gives frame-averaged CLIP).
 * Reports top-1, top-5, mean class accuracy; writes predictions, scores and
 * the confusion matrix on request. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../onnx/onnx_io.h"
#include "../passes/passes.h"
#include "../runtime/data/loader.h"
#include "../runtime/data/preprocess.h"
#include "../runtime/eval/metrics.h"
#include "../runtime/exec.h"
#include "../runtime/npy.h"
#include "../runtime/safetensors.h"
#include "cli.h"
#include "commands.h"
#include "text_features.h"

#define TOOL "vclip-run eval"

static const char *usage =
    "usage: vclip-run eval --visual MODEL.onnx --classes CLASSES --list LIST.csv --root DIR [options]\n"
    "  --visual MODEL      a video encoder (vclipc compile --frames T) or an image encoder,\n"
    "                      made temporal here (--frames, --temporal-window)\n"
    "  --classes F         class features from `vclip-run encode-text` (.safetensors), or a\n"
    "                      class list (text or index-to-class JSON) with --text-model\n"
    "  --text-model M      text encoder to compute the class features with (28 templates)\n"
    "  --list LIST.csv     'relative/path,label_index' lines; --root DIR is prefixed\n"
    "  --views N --crops 1|3   test views per video (3, 1); logits of the views are summed\n"
    "  --frames T          for an image encoder (default 8); --temporal-window W (default 1)\n"
    "  --stride S          sampling stride (default 16)\n"
    "  --logit-scale X     default 100 (CLIP's)\n"
    "  --batch N --workers N --threads N   videos per forward pass (4), decoders (2), BLAS threads\n"
    "  Unreadable videos are reported, left out of the metrics and counted (n_skipped).\n"
    "  --predictions F.csv --scores F.npy --confusion F.csv   outputs\n"
    "  --json              one JSON object: top1, top5, mean_class_accuracy, n_videos, n_skipped\n";

static Tensor *load_class_features(const char *classes, const char *text_model, int threads, StringList *names, char *err, size_t cap)
{
    size_t L = strlen(classes);
    if (L > 12 && !strcmp(classes + L - 12, ".safetensors")) {
        char *meta = NULL;
        Tensor *t = safetensors_load(classes, "class_features", "classes", &meta, err, cap);
        if (!t) return NULL;
        json_t *a = meta ? json_loads(meta, 0, NULL) : NULL;
        free(meta);
        memset(names, 0, sizeof *names);
        for (size_t i = 0; json_is_array(a) && i < json_array_size(a); i++) {
            char **p = realloc(names->items, sizeof(char *) * (names->n + 1));
            if (!p) break;
            names->items = p;
            names->items[names->n++] = strdup(json_string_value(json_array_get(a, i)) ? json_string_value(json_array_get(a, i)) : "");
        }
        json_decref(a);
        if (t->dtype != DT_F32 || t->rank != 2 || (names->n && (int64_t)names->n != t->dims[0])) {
            snprintf(err, cap, "%s: class_features must be f32 [C, D] with C class names", classes);
            tensor_free(t);
            return NULL;
        }
        return t;
    }
    if (!text_model) { snprintf(err, cap, "--classes %s is not a .safetensors file: give --text-model to encode it", classes); return NULL; }
    StringList tmpl;
    if (prompts_load_classes(classes, names, err, cap)) return NULL;
    for (size_t i = 0; i < names->n; i++) {
        char *nn = prompts_normalize_class(names->items[i]);
        if (nn) { free(names->items[i]); names->items[i] = nn; }
    }
    prompts_default_templates(&tmpl);
    TokenizerSource src = {0};
    Encoder e = {.batch = 64};
    Tensor *t = NULL;
    if ((e.tok = tokenizer_open(&src, err, cap)) && !encoder_open(&e, text_model, threads, err, cap)) {
        int64_t dims[2] = {(int64_t)names->n, e.dim};
        t = tensor_new(DT_F32, 2, dims);
        if (t && class_features(&e, names, &tmpl, t->data, err, cap)) { tensor_free(t); t = NULL; }
    }
    encoder_close(&e);
    clip_tokenizer_free(e.tok);
    string_list_free(&tmpl);
    return t;
}

int cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {
        {"visual", 1, 0, 'V'}, {"classes", 1, 0, 'c'}, {"text-model", 1, 0, 'm'}, {"list", 1, 0, 'L'}, {"root", 1, 0, 'r'},
        {"views", 1, 0, 'v'}, {"crops", 1, 0, 'C'}, {"frames", 1, 0, 'T'}, {"temporal-window", 1, 0, 'W'},
        {"stride", 1, 0, 'S'}, {"logit-scale", 1, 0, 'x'}, {"batch", 1, 0, 'b'}, {"workers", 1, 0, 'w'},
        {"threads", 1, 0, 't'}, {"predictions", 1, 0, 'P'}, {"scores", 1, 0, 'Q'},
        {"confusion", 1, 0, 'M'}, {"json", 0, 0, 'j'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *visual = NULL, *classes = NULL, *text_model = NULL, *list = NULL, *root = ".";
    const char *pred_path = NULL, *scores_path = NULL, *conf_path = NULL;
    int views = 3, crops = 1, frames = 8, window = 1, stride = 16, batch = 4, workers = 2, threads = 0, json = 0, c;
    double scale = 100.0;
    while ((c = getopt_long(argc, argv, "V:c:m:L:r:v:C:T:W:S:x:b:w:t:P:Q:M:jh", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'V': visual = optarg; break;
        case 'c': classes = optarg; break;
        case 'm': text_model = optarg; break;
        case 'L': list = optarg; break;
        case 'r': root = optarg; break;
        case 'v': bad = cli_parse_int(optarg, 1, 64, &views); break;
        case 'C': bad = cli_parse_int(optarg, 1, 3, &crops) || crops == 2; break;
        case 'T': bad = cli_parse_int(optarg, 1, CLIP_MAX_FRAMES, &frames); break;
        case 'W': bad = cli_parse_int(optarg, 0, 64, &window); break;
        case 'S': bad = cli_parse_int(optarg, 1, 1 << 16, &stride); break;
        case 'x': scale = atof(optarg); bad = !(scale > 0); break;
        case 'b': bad = cli_parse_int(optarg, 1, 4096, &batch); break;
        case 'w': bad = cli_parse_int(optarg, 1, 256, &workers); break;
        case 't': bad = cli_parse_int(optarg, 1, 1024, &threads); break;
        case 'P': pred_path = optarg; break;
        case 'Q': scores_path = optarg; break;
        case 'M': conf_path = optarg; break;
        case 'j': json = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
        if (bad) { fprintf(stderr, "%s: bad value '%s'\n", TOOL, optarg ? optarg : ""); return 2; }
    }
    if (!visual || !classes || !list || optind != argc) {
        cli_error(TOOL, NULL, !visual ? "missing --visual" : !classes ? "missing --classes" : !list ? "missing --list" : "unexpected argument");
        return 2;
    }
    char err[1024];
    int rc = 1;
    StringList names = {0};
    Dataset ds = {0};
    Graph *g = NULL;
    Session *s = NULL;
    Loader *ld = NULL;
    Tensor *W = NULL;
    float *scores = NULL;
    int *labels = NULL;
    char *ok = NULL;
    size_t n_done = 0;
    W = load_class_features(classes, text_model, threads, &names, err, sizeof err);
    if (!W) { cli_error(TOOL, NULL, err); goto done; }
    int C = (int)W->dims[0], D = (int)W->dims[1];
    if (!(g = onnx_load(visual, err, sizeof err))) { cli_error(TOOL, NULL, err); goto done; }
    PassOptions po = {0};
    if (run_passes(g, default_pipeline, &po, err, sizeof err)) { cli_error(TOOL, visual, err); goto done; }
    if (g->n_inputs == 1 && g->inputs[0]->shape.rank == 4) {
        TemporalOptions to = {frames, window, 0};
        if (temporal_attention(g, &to, err, sizeof err) < 0) { cli_error(TOOL, visual, err); goto done; }
    }
    const Value *in = g->n_inputs == 1 ? g->inputs[0] : NULL, *out = g->outputs[0];
    if (!in || in->shape.rank != 5 || !shape_is_const(&(Shape){4, {in->shape.d[1], in->shape.d[2], in->shape.d[3], in->shape.d[4]}}) ||
        in->shape.d[3].n != in->shape.d[4].n || in->shape.d[2].n != 3 || out->shape.rank != 3 || !dim_is_const(out->shape.d[2])) {
        cli_error(TOOL, visual, "expected a video encoder: input [B, T, 3, S, S], output [B, T, D]");
        goto done;
    }
    if (out->shape.d[2].n != D) {
        fprintf(stderr, "%s: the video features have %lld dims but the class features %d\n", TOOL, (long long)out->shape.d[2].n, D);
        goto done;
    }
    int T = (int)in->shape.d[1].n, size = (int)in->shape.d[3].n;
    if (dataset_load_csv(list, root, &ds, err, sizeof err)) { cli_error(TOOL, NULL, err); goto done; }
    for (size_t i = 0; i < ds.n; i++)
        if (ds.items[i].label >= C) {
            fprintf(stderr, "%s: %s: label %d but only %d classes\n", TOOL, ds.items[i].path, ds.items[i].label, C);
            goto done;
        }
    ExecOptions eo = {.threads = threads};
    if (!(s = session_new(g, &eo, err, sizeof err))) { cli_error(TOOL, NULL, err); goto done; }
    LoaderConfig lc = {.ds = &ds, .batch = batch, .workers = workers, .prefetch = 2 * batch, .replace_broken = 0, .time_limit_s = 60};
    sampling_defaults(&lc.sampling);
    lc.sampling.frames = T;
    lc.sampling.stride = stride;
    lc.sampling.views = views;
    lc.sampling.crops = crops;
    lc.sampling.crop_size = size;
    scores = calloc(ds.n * (size_t)C, sizeof(float));
    labels = calloc(ds.n, sizeof(int));
    ok = calloc(ds.n, 1);
    if (!scores || !labels || !ok) { cli_error(TOOL, NULL, "out of memory"); goto done; }
    if (!(ld = loader_start(&lc, err, sizeof err))) { cli_error(TOOL, NULL, err); goto done; }
    double t0 = cli_now_ms();
    Batch b;
    int r;
    int V = views * crops;
    size_t clip_px = (size_t)T * size * size * 3;
    while ((r = loader_next(ld, &b)) == 1) {
        int64_t dims[5] = {(int64_t)b.n * V, T, 3, size, size};
        Tensor *x = tensor_new(DT_F32, 5, dims);
        Tensor *outs[8] = {0};
        if (!x) { batch_free(&b); cli_error(TOOL, NULL, "out of memory"); goto done; }
        for (int k = 0; k < b.n * V; k++) normalize_clip(b.pixels + (size_t)k * clip_px, T, size, (float *)x->data + (size_t)k * clip_px);
        int rr = session_run(s, &x, outs, err, sizeof err);
        tensor_free(x);
        if (rr) { batch_free(&b); cli_error(TOOL, visual, err); goto done; }
        float *f = outs[0]->data; /* [b.n * V, T, D] */
        for (int vi = 0; vi < b.n; vi++) {
            float *sc = scores + b.items[vi] * (size_t)C;
            for (int k = 0; k < V * T; k++) {
                float *e = f + ((size_t)vi * V * T + k) * D;
                l2_normalize(e, D);
                for (int cl = 0; cl < C; cl++) {
                    double dot = 0;
                    for (int d = 0; d < D; d++) dot += (double)e[d] * ((const float *)W->data)[(size_t)cl * D + d];
                    sc[cl] += (float)(scale * dot / T); /* mean over frames, summed over views */
                }
            }
            labels[b.items[vi]] = b.labels[vi];
            ok[b.items[vi]] = 1;
            n_done++;
        }
        for (int k = 0; k < g->n_outputs; k++) tensor_free(outs[k]);
        batch_free(&b);
        if (!json && isatty(2)) fprintf(stderr, "\r%zu/%zu videos", n_done + loader_skipped(ld), ds.n);
    }
    if (!json && isatty(2)) fputc('\n', stderr);
    size_t skipped = loader_skipped(ld);
    /* metrics over the videos that were read, in list order */
    size_t n = 0;
    for (size_t i = 0; i < ds.n; i++)
        if (ok[i]) {
            memmove(scores + n * (size_t)C, scores + i * (size_t)C, sizeof(float) * (size_t)C);
            labels[n] = labels[i];
            n++;
        }
    ClassMetrics m;
    long *conf = calloc((size_t)C * C, sizeof(long));
    class_metrics(scores, labels, n, C, &m, conf, NULL);
    double sec = (cli_now_ms() - t0) / 1e3;
    if (pred_path) {
        FILE *pf = fopen(pred_path, "w");
        if (!pf) { perror(pred_path); free(conf); goto done; }
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
    if (scores_path) {
        int64_t sd[2] = {(int64_t)n, C};
        Tensor *st = tensor_borrow(DT_F32, 2, sd, scores);
        if (!st || npy_save(scores_path, st, err, sizeof err)) { cli_error(TOOL, NULL, st ? err : "out of memory"); tensor_free(st); free(conf); goto done; }
        tensor_free(st);
    }
    if (conf_path && conf) {
        FILE *cf = fopen(conf_path, "w");
        if (!cf) { perror(conf_path); free(conf); goto done; }
        for (int i = 0; i < C; i++)
            for (int j = 0; j < C; j++) fprintf(cf, "%ld%c", conf[(size_t)i * C + j], j + 1 < C ? ',' : '\n');
        fclose(cf);
    }
    free(conf);
    if (json)
        printf("{\"top1\": %.6f, \"top5\": %.6f, \"mean_class_accuracy\": %.6f, \"n_videos\": %zu, \"n_skipped\": %zu, "
               "\"classes\": %d, \"views\": %d, \"frames\": %d, \"input_size\": %d, \"seconds\": %.2f}\n",
               m.top1, m.top5, m.mean_class_accuracy, n, skipped, C, V, T, size, sec);
    else
        printf("top-1 %.2f%%  top-5 %.2f%%  mean class accuracy %.2f%%  on %zu videos (%zu unreadable), %d classes, "
               "%d views x %d frames at %d px, %.1f s\n", 100 * m.top1, 100 * m.top5, 100 * m.mean_class_accuracy, n, skipped,
               C, V, T, size, sec);
    rc = r < 0 ? 1 : 0;
done:
    loader_stop(ld);
    session_free(s);
    graph_free(g);
    tensor_free(W);
    dataset_free(&ds);
    string_list_free(&names);
    free(scores);
    free(labels);
    free(ok);
    return rc;
}
