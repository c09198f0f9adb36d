/* cmd_demo.c — `vclip-run demo`: the whole method on a world small enough to
 * run on two cores in minutes (runtime/data/shape_world.c); the pieces are
 * in runtime/demo/, this file strings them together and prints.
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
#include "../ir/base.h"
#include "../runtime/demo/demo.h"
#include "../runtime/eval/text_features.h"
#include "../runtime/train/trainer.h"
#include "cli.h"
#include "commands.h"
#include "../runtime/eval/evaluator.h"
#include "svg_plot.h"

#define TOOL "vclip-run demo"

static const char *usage =
    "usage: vclip-run demo [--out DIR] [--seeds N] [--threads N] [--quick]\n"
    "  Pretrains a tiny CLIP on a generated world of coloured shapes, fine-tunes VCLIP on\n"
    "  the seen colours plainly, with each part of Open-VCLIP++ (IWR, SWA, the patch, a\n"
    "  caption per video) and with all together, over several seeds, and evaluates zero-shot\n"
    "  on unseen colours and close-set on the seen ones.\n"
    "  --out DIR     results.json, curve.svg, clip/, seed-K/{plain,iwr,captions,open_vclip}/\n"
    "                (default demo-out)\n"
    "  --seeds N     fine-tuning seeds (default 3): training videos, batch order, IWR draws and\n"
    "                test videos differ by seed; rows are mean +- std, and Open-VCLIP++ minus\n"
    "                plain fine-tuning is given with its 95% interval\n"
    "  --threads N   compute threads (default: all cores)\n"
    "  --target cpu  where it runs (cuda: fine-tuning and eval on device 0)\n"
    "  --precision fp32|bf16  fine-tuning's GEMMs (default fp32; bf16 on the CPU needs AVX512-BF16);\n"
    "                evaluation stays fp32\n"
    "  --quick       a few steps of everything (a smoke test; the numbers mean nothing)\n"
    "  --epochs N --lr X   fine-tuning epochs (12) and peak learning rate (3e-4)\n"
    "  --caption-weight L  the caption loss's weight (1: chosen on --split val; the paper's best on K400 is 4)\n"
    "  --captions video|class   each video's own caption (default) or its class's description\n"
    "  --split test|val    evaluate on the test videos (default) or on validation videos of the same\n"
    "                classes (other seeds): choose settings there, report on test\n"
    "  --write-videos  also write seed 0's test videos (OUT/videos/{seen,unseen}/*.nut, lossless),\n"
    "                their lists and class features, so `vclip-run eval` can reproduce its rows\n"
    "  The pretrained CLIP is cached in $VCLIP_CACHE_DIR (or ~/.cache/vclip) after the first run.\n";

/* "12.3 ± 1.2" (no ± with one seed) */
static const char *pm(char *buf, size_t cap, const double *x, int n)
{
    double m, sd;
    mean_std(x, n, 1, &m, &sd);
    if (n > 1) snprintf(buf, cap, "%5.1f ± %4.1f", m, sd);
    else snprintf(buf, cap, "%5.1f", m);
    return buf;
}

static void json_row(FILE *f, const double *zs, const double *cs, int n)
{
    double mz, sz, mc, sc;
    mean_std(zs, n, 1, &mz, &sz);
    mean_std(cs, n, 1, &mc, &sc);
    fprintf(f, "{\"zero_shot_top1\": %.4f, \"closed_set_top1\": %.4f, \"zero_shot_std\": %.4f, \"closed_set_std\": %.4f}", mz, mc, sz, sc);
}

/* results.json: the rows (means over seeds; the keys of the single-seed
 * demo stay), the ablation, each seed's rows, the paired difference, the
 * mean curve. */
static int write_results(const char *path, const DemoSeedResult *res, int n, const double *ratio, double chance, int quick,
                         const DemoPlan *p, const char *precision, double seconds, char *err, size_t cap)
{
    AtomicFile af;
    if (atomic_open(&af, path, "w", err, cap)) return -1;
    FILE *f = af.f;
    double zs[DEMO_ROWS][64], cs[DEMO_ROWS][64], dz[64], dc[64];
    for (int k = 0; k < n; k++) {
        for (int r = 0; r < DEMO_ROWS; r++) { zs[r][k] = res[k].zs[r]; cs[r][k] = res[k].cs[r]; }
        dz[k] = res[k].zs[DEMO_ALL] - res[k].zs[DEMO_PLAIN];
        dc[k] = res[k].cs[DEMO_ALL] - res[k].cs[DEMO_PLAIN];
    }
    fprintf(f, "{\n");
    for (int r = 0; r < DEMO_ROWS; r++) {
        fprintf(f, "  \"%s\": ", demo_row_keys[r]);
        json_row(f, zs[r], cs[r], n);
        fprintf(f, ",\n");
    }
    fprintf(f, "  \"ablation\": [");
    for (int r = DEMO_PLAIN; r < DEMO_ROWS; r++) {
        fprintf(f, "%s\n    {\"row\": \"%s\", \"label\": \"%s\", \"result\": ", r > DEMO_PLAIN ? "," : "", demo_row_keys[r], demo_row_labels[r] + (demo_row_labels[r][0] == ' ' ? 2 : 0));
        json_row(f, zs[r], cs[r], n);
        fprintf(f, "}");
    }
    double mz, mc, hz = paired_interval95(dz, n, &mz), hc = paired_interval95(dc, n, &mc);
    fprintf(f, "],\n  \"paired_difference\": {\"what\": \"open_vclip - finetune, per seed\", \"zero_shot\": {\"mean\": %.4f, \"ci95\": ", mz);
    if (isnan(hz)) fprintf(f, "null"); else fprintf(f, "[%.4f, %.4f]", mz - hz, mz + hz);
    fprintf(f, "}, \"closed_set\": {\"mean\": %.4f, \"ci95\": ", mc);
    if (isnan(hc)) fprintf(f, "null"); else fprintf(f, "[%.4f, %.4f]", mc - hc, mc + hc);
    fprintf(f, "}},\n  \"per_seed\": [");
    for (int k = 0; k < n; k++) {
        fprintf(f, "%s\n    {\"seed\": %d", k ? "," : "", k);
        for (int r = 0; r < DEMO_ROWS; r++)
            fprintf(f, ", \"%s\": {\"zero_shot_top1\": %.4f, \"closed_set_top1\": %.4f, \"zero_shot_right_colour\": %.4f, "
                       "\"zero_shot_right_shape\": %.4f, \"zero_shot_right_motion\": %.4f}",
                    demo_row_keys[r], res[k].zs[r], res[k].cs[r], res[k].zs_attr[r][0], res[k].zs_attr[r][1], res[k].zs_attr[r][2]);
        fprintf(f, "}");
    }
    fprintf(f, "],\n  \"curve\": [");
    for (int i = 0; i < DEMO_CURVE; i++) {
        double cz[64], cc[64], a, b, sd;
        for (int k = 0; k < n; k++) { cz[k] = res[k].curve_zs[i]; cc[k] = res[k].curve_cs[i]; }
        mean_std(cz, n, 1, &a, &sd);
        mean_std(cc, n, 1, &b, &sd);
        fprintf(f, "%s{\"ratio\": %.1f, \"zero_shot_top1\": %.4f, \"closed_set_top1\": %.4f}", i ? ", " : "", ratio[i], a, b);
    }
    fprintf(f, "],\n  \"seeds\": %d, \"split\": \"%s\", \"caption_source\": \"%s\", \"caption_weight\": %g, \"chance_top1\": %.4f, "
               "\"classes_per_split\": %d, \"test_videos_per_split\": %zu, \"quick\": %s, \"fine_tuning_precision\": \"%s\", "
               "\"seconds\": %.1f\n}\n",
            n, p->validation ? "val" : "test", p->class_captions ? "class" : "video", p->caption_weight, chance, DEMO_CLASSES, res[0].n_test,
            quick ? "true" : "false", precision, seconds);
    return atomic_commit(&af, err, cap);
}

int cmd_demo(int argc, char **argv)
{
    static const struct option opts[] = {{"out", 1, 0, 'o'}, {"threads", 1, 0, 't'}, {"quick", 0, 0, 'q'},
                                         {"write-videos", 0, 0, 'w'}, {"epochs", 1, 0, 'e'}, {"lr", 1, 0, 'l'},
                                         {"seeds", 1, 0, 's'}, {"caption-weight", 1, 0, 'L'}, {"captions", 1, 0, 'C'},
                                         {"split", 1, 0, 'S'}, CLI_COMPILE_OPTIONS, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int epochs = 0, seeds = 3, class_captions = 0, validation = 0;
    double caption_weight = -1; /* the plan's */
    CompileOptions co = {0};
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
        case 's': if (cli_parse_int(optarg, 1, 64, &seeds)) return cli_usage_error(TOOL, "--seeds needs 1..64"); break;
        case 'L':
            caption_weight = strtod(optarg, &end);
            if (*end || !(caption_weight >= 0)) return cli_usage_error(TOOL, "--caption-weight needs 0 or more");
            break;
        case 'C':
            if (!strcmp(optarg, "class")) class_captions = 1;
            else if (strcmp(optarg, "video")) return cli_usage_error(TOOL, "--captions is video or class");
            break;
        case 'S':
            if (!strcmp(optarg, "val")) validation = 1;
            else if (strcmp(optarg, "test")) return cli_usage_error(TOOL, "--split is test or val");
            break;
        case CLI_OPT_TARGET:
        case CLI_OPT_PRECISION:
            if (cli_compile_arg(TOOL, c, optarg, &co)) return 2;
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
    if (co.precision != PRECISION_FP32 && co.precision != PRECISION_BF16) {
        cli_error(TOOL, NULL, "--precision: the demo fine-tunes in fp32 or bf16");
        return 1;
    }
    co.threads = threads;
    DemoPlan p;
    demo_plan(&p, quick);
    if (epochs) p.ft_epochs = epochs;
    if (lr > 0) p.ft_lr = lr;
    if (caption_weight >= 0) p.caption_weight = caption_weight;
    p.class_captions = class_captions;
    p.validation = validation;
    double t0 = now_ms();
    if (mkdir(out, 0777) && errno != EEXIST) { fprintf(stderr, "%s: %s: %s\n", TOOL, out, strerror(errno)); return 1; }
    double logit_scale = 0;
    if (demo_pretrained_clip(&p, threads, 0, visual, text, sizeof visual, &logit_scale, err, sizeof err)) { cli_error(TOOL, NULL, err); return 1; }
    { /* OUT/clip/: the pretrained model next to the results */
        char d[4200], v2[4300], t2[4300];
        snprintf(d, sizeof d, "%s/clip", out);
        snprintf(v2, sizeof v2, "%s/visual.onnx", d);
        snprintf(t2, sizeof t2, "%s/text.onnx", d);
        if ((mkdir(d, 0777) && errno != EEXIST) || demo_copy_file(visual, v2, err, sizeof err) || demo_copy_file(text, t2, err, sizeof err)) {
            cli_error(TOOL, d, err[0] ? err : strerror(errno));
            return 1;
        }
        snprintf(visual, sizeof visual, "%s", v2);
        snprintf(text, sizeof text, "%s", t2);
    }
    int rc = 1;
    Evaluator ev;
    evaluator_init(&ev);
    StringList names = {0}, templates = {0};
    Tensor *cf_all = NULL, *cf_seen = NULL;
    DemoSeedResult *res = calloc((size_t)seeds, sizeof *res);
    DemoVideo *seen = NULL, *unseen = NULL;
    if (!res) { cli_error(TOOL, NULL, "out of memory"); goto done; }
    CompileOptions eval_co = co;
    eval_co.precision = PRECISION_FP32; /* only fine-tuning takes --precision */
    if (evaluator_open_text(&ev, text, &eval_co, err, sizeof err)) { cli_error(TOOL, text, err); goto done; }
    /* class features of all 108 classes with the 28 templates */
    names.items = calloc(SW_CLASSES, sizeof(char *));
    if (!names.items) { cli_error(TOOL, NULL, "out of memory"); goto done; }
    for (int k = 0; k < SW_CLASSES; k++) {
        char d[128];
        SwItem it = sw_item_of_class(k);
        sw_describe(&it, d, sizeof d);
        names.items[names.n++] = strdup(d);
    }
    prompts_default_templates(&templates);
    int64_t D = ev.text.dim;
    cf_all = tensor_new(DT_F32, 2, (int64_t[]){SW_CLASSES, D});
    cf_seen = tensor_new(DT_F32, 2, (int64_t[]){DEMO_CLASSES, D});
    if (!cf_all || !cf_seen || class_features(&ev.text, &names, &templates, cf_all->data, err, sizeof err)) {
        cli_error(TOOL, text, cf_all && cf_seen ? err : "out of memory");
        goto done;
    }
    memcpy(cf_seen->data, cf_all->data, cf_seen->nbytes);
    const float *cf_unseen = (const float *)cf_all->data + (size_t)DEMO_CLASSES * (size_t)D;
    DemoWorld world = {&p, visual, &ev.text, cf_seen, cf_unseen, D, logit_scale, threads, 0, co.target, co.precision};
    fprintf(stderr, "[2/3] fine-tuning on %d seen classes (%d videos each), %d seed%s x 4 runs: plain, + IWR, + captions, all\n",
            DEMO_CLASSES, p.train_per_class, seeds, seeds > 1 ? "s" : "");
    for (int k = 0; k < seeds; k++) {
        char dir[4300];
        snprintf(dir, sizeof dir, "%s/seed-%d", out, k);
        if (demo_run_seed(&world, k, dir, &res[k], err, sizeof err)) { cli_error(TOOL, dir, err); goto done; }
    }
    fprintf(stderr, "[3/3] evaluated: close-set on held-out videos of the seen classes, zero-shot on the unseen colours\n");
    if (write_videos) {
        size_t n_seen, n_unseen;
        demo_test_videos(&p, 0, &seen, &n_seen, &unseen, &n_unseen);
        if (!seen || !unseen || demo_write_split(out, "seen", seen, n_seen, cf_seen->data, D, &names, 0, &p, err, sizeof err) ||
            demo_write_split(out, "unseen", unseen, n_unseen, cf_unseen, D, &names, DEMO_CLASSES, &p, err, sizeof err)) {
            cli_error(TOOL, NULL, seen && unseen ? err : "out of memory");
            goto done;
        }
    }
    double chance = 100.0 / DEMO_CLASSES, zs[DEMO_ROWS][64], cs[DEMO_ROWS][64], dz[64], dc[64];
    for (int k = 0; k < seeds; k++) {
        for (int r = 0; r < DEMO_ROWS; r++) { zs[r][k] = res[k].zs[r]; cs[r][k] = res[k].cs[r]; }
        dz[k] = res[k].zs[DEMO_ALL] - res[k].zs[DEMO_PLAIN];
        dc[k] = res[k].cs[DEMO_ALL] - res[k].cs[DEMO_PLAIN];
    }
    char a[64], b[64];
    printf("\nShape world, %d frames, %d classes per split (chance %.1f%%); %zu %s videos per split; %d seed%s (mean%s)\n", p.frames,
           DEMO_CLASSES, chance, res[0].n_test, validation ? "VALIDATION" : "test", seeds, seeds > 1 ? "s" : "", seeds > 1 ? " ± std" : "");
    printf("%-32s %18s %18s\n", "method", "zero-shot top-1", "close-set top-1");
    for (int r = 0; r < DEMO_ROWS; r++) printf("%-32s %18s %18s\n", demo_row_labels[r], pm(a, sizeof a, zs[r], seeds), pm(b, sizeof b, cs[r], seeds));
    printf("\nwhat zero-shot predictions get right (mean over seeds): %-11s %7s %7s %7s\n", "", "colour", "shape", "motion");
    for (int r = 0; r < DEMO_ROWS; r++) {
        double m[3] = {0, 0, 0};
        for (int k = 0; k < seeds; k++) for (int t = 0; t < 3; t++) m[t] += res[k].zs_attr[r][t] / seeds;
        printf("  %-66s %6.1f%% %6.1f%% %6.1f%%\n", demo_row_labels[r], m[0], m[1], m[2]);
    }
    double mz, mc, hz = paired_interval95(dz, seeds, &mz), hc = paired_interval95(dc, seeds, &mc);
    printf("\nOpen-VCLIP++ - plain fine-tuning, paired by seed: zero-shot %+.1f", mz);
    if (!isnan(hz)) printf(" (95%% interval %+.1f to %+.1f)", mz - hz, mz + hz);
    printf(", close-set %+.1f", mc);
    if (!isnan(hc)) printf(" (95%% interval %+.1f to %+.1f)", mc - hc, mc + hc);
    printf("\n\npatch ratio r (θ = r·θ_CLIP + (1−r)·θ_SWA of Open-VCLIP++), mean over seeds:\n");
    double ratio[DEMO_CURVE], xs[DEMO_CURVE], ys[DEMO_CURVE];
    char lab[DEMO_CURVE][16];
    const char *labels[DEMO_CURVE];
    for (int i = 0; i < DEMO_CURVE; i++) {
        double cz[64], cc[64], sd;
        for (int k = 0; k < seeds; k++) { cz[k] = res[k].curve_zs[i]; cc[k] = res[k].curve_cs[i]; }
        ratio[i] = i / 10.0;
        mean_std(cz, seeds, 1, &ys[i], &sd);
        mean_std(cc, seeds, 1, &xs[i], &sd);
        printf("  r=%.1f  zero-shot %5.1f%%  close-set %5.1f%%\n", ratio[i], ys[i], xs[i]);
        xs[i] /= 100;
        ys[i] /= 100;
        snprintf(lab[i], sizeof lab[i], "r=%.1f", ratio[i]);
        labels[i] = lab[i];
    }
    char path[4300];
    snprintf(path, sizeof path, "%s/curve.svg", out);
    if (svg_curve(path, xs, ys, labels, DEMO_CURVE, "Shape world: patch ratio, zero-shot vs close-set", "close-set top-1 (%)",
                  "zero-shot top-1 (%)", err, sizeof err)) {
        cli_error(TOOL, path, err);
        goto done;
    }
    snprintf(path, sizeof path, "%s/results.json", out);
    if (write_results(path, res, seeds, ratio, chance, quick, &p, precision_name(co.precision), (now_ms() - t0) / 1000, err, sizeof err)) { cli_error(TOOL, NULL, err); goto done; }
    printf("\nwrote %s/results.json and %s/curve.svg in %.0f s\n", out, out, (now_ms() - t0) / 1000);
    rc = 0;
done:
    free(res);
    free(seen);
    free(unseen);
    tensor_free(cf_all);
    tensor_free(cf_seen);
    string_list_free(&names);
    string_list_free(&templates);
    if (ev.has_text) evaluator_close_text(&ev);
    return rc;
}
