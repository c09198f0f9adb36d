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

int cmd_demo(int argc, char **argv)
{
    static const struct option opts[] = {{"out", 1, 0, 'o'}, {"threads", 1, 0, 't'}, {"quick", 0, 0, 'q'},
                                         {"write-videos", 0, 0, 'w'}, {"epochs", 1, 0, 'e'}, {"lr", 1, 0, 'l'},
                                         CLI_COMPILE_OPTIONS, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int epochs = 0;
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
    if (co.precision != PRECISION_FP32) { cli_error(TOOL, NULL, "--precision: the demo trains in fp32 for now"); return 1; }
    co.threads = threads;
    DemoPlan p;
    demo_plan(&p, quick);
    if (epochs) p.ft_epochs = epochs;
    if (lr > 0) p.ft_lr = lr;
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
    StringList names = {0}, templates = {0}, descs = {0};
    Tensor *cf_all = NULL, *cf_seen = NULL;
    float *caption_feats = NULL;
    DemoVideo *seen = NULL, *unseen = NULL;
    if (evaluator_open_text(&ev, text, &co, err, sizeof err)) { cli_error(TOOL, text, err); goto done; }
    /* class features of all 108 classes with the 28 templates; captions are the plain descriptions */
    names.items = calloc(SW_CLASSES, sizeof(char *));
    descs.items = calloc(DEMO_CLASSES, sizeof(char *));
    if (!names.items || !descs.items) { cli_error(TOOL, NULL, "out of memory"); goto done; }
    for (int k = 0; k < SW_CLASSES; k++) {
        char d[128];
        SwItem it = sw_item_of_class(k);
        sw_describe(&it, d, sizeof d);
        names.items[names.n++] = strdup(d);
        if (k < DEMO_CLASSES) descs.items[descs.n++] = strdup(d);
    }
    prompts_default_templates(&templates);
    int64_t D = ev.text.dim;
    cf_all = tensor_new(DT_F32, 2, (int64_t[]){SW_CLASSES, D});
    cf_seen = tensor_new(DT_F32, 2, (int64_t[]){DEMO_CLASSES, D});
    caption_feats = malloc(sizeof(float) * DEMO_CLASSES * (size_t)D);
    if (!cf_all || !cf_seen || !caption_feats || class_features(&ev.text, &names, &templates, cf_all->data, err, sizeof err) ||
        encode_texts(&ev.text, descs.items, descs.n, caption_feats, err, sizeof err)) {
        cli_error(TOOL, text, cf_all && cf_seen && caption_feats ? err : "out of memory");
        goto done;
    }
    memcpy(cf_seen->data, cf_all->data, cf_seen->nbytes);
    const float *cf_unseen = (const float *)cf_all->data + (size_t)DEMO_CLASSES * (size_t)D;
    char plain_dir[4200], ovc_dir[4200], w_plain[4300], w_ovc[4300], w_swa[4300];
    snprintf(plain_dir, sizeof plain_dir, "%s/plain", out);
    snprintf(ovc_dir, sizeof ovc_dir, "%s/open_vclip", out);
    snprintf(w_plain, sizeof w_plain, "%s/weights.safetensors", plain_dir);
    snprintf(w_ovc, sizeof w_ovc, "%s/weights.safetensors", ovc_dir);
    snprintf(w_swa, sizeof w_swa, "%s/swa.safetensors", ovc_dir);
    fprintf(stderr, "[2/4] fine-tuning VCLIP plainly on %d seen classes (%d videos each)\n", DEMO_CLASSES, p.train_per_class);
    if (demo_finetune(&p, visual, cf_seen, caption_feats, 0, logit_scale, plain_dir, threads, 0, err, sizeof err)) { cli_error(TOOL, NULL, err); goto done; }
    fprintf(stderr, "[3/4] fine-tuning Open-VCLIP (IWR + SWA + patch 0.5 + caption loss)\n");
    if (demo_finetune(&p, visual, cf_seen, caption_feats, 1, logit_scale, ovc_dir, threads, 0, err, sizeof err)) { cli_error(TOOL, NULL, err); goto done; }
    fprintf(stderr, "[4/4] evaluating: close-set on held-out videos of the seen classes, zero-shot on the unseen colours\n");
    size_t n_seen, n_unseen;
    seen = demo_videos(0, DEMO_SEEN_COLOURS, p.test_per_class, 0x5EE4, &n_seen);
    unseen = demo_videos(DEMO_SEEN_COLOURS, SW_COLOURS, p.test_per_class, 0x0A5EE4, &n_unseen);
    if (!seen || !unseen) { cli_error(TOOL, NULL, "out of memory"); goto done; }
    if (write_videos && (demo_write_split(out, "seen", seen, n_seen, cf_seen->data, D, &names, 0, &p, err, sizeof err) ||
                         demo_write_split(out, "unseen", unseen, n_unseen, cf_unseen, D, &names, DEMO_CLASSES, &p, err, sizeof err))) {
        cli_error(TOOL, NULL, err);
        goto done;
    }
    DemoEval env = {visual, threads, p.frames, p.clip.image};
    struct { const char *key, *label, *weights; int window; double zs, cs; } rows[3] = {
        {"clip_frame_avg", "CLIP, frame-averaged", NULL, 0, 0, 0},
        {"finetune", "VCLIP, plain fine-tuning", w_plain, 1, 0, 0},
        {"open_vclip", "Open-VCLIP (IWR+SWA+patch)", w_ovc, 1, 0, 0},
    };
    for (int r = 0; r < 3; r++)
        if (demo_top1(&env, rows[r].weights, 0, rows[r].window, unseen, n_unseen, cf_unseen, DEMO_CLASSES, D, &rows[r].zs, err, sizeof err) ||
            demo_top1(&env, rows[r].weights, 0, rows[r].window, seen, n_seen, cf_seen->data, DEMO_CLASSES, D, &rows[r].cs, err, sizeof err)) {
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
        if (demo_top1(&env, w_swa, ratio[i], 1, unseen, n_unseen, cf_unseen, DEMO_CLASSES, D, &zs[i], err, sizeof err) ||
            demo_top1(&env, w_swa, ratio[i], 1, seen, n_seen, cf_seen->data, DEMO_CLASSES, D, &cs[i], err, sizeof err)) {
            cli_error(TOOL, "curve", err);
            goto done;
        }
        snprintf(lab[i], sizeof lab[i], "r=%.1f", ratio[i]);
        labels[i] = lab[i];
    }
    double chance = 100.0 / DEMO_CLASSES;
    printf("\nShape world, %d frames, %d classes per split (chance %.1f%%); %zu test videos per split\n", p.frames, DEMO_CLASSES, chance, n_seen);
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
            chance, DEMO_CLASSES, n_seen, quick ? "true" : "false", (now_ms() - t0) / 1000);
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
