/* cmd_sweep.c — `vclip-run sweep`: the patch-ratio trade-off (the paper's
 * Figure 3).  For each r, the fine-tuned model's weights are moved toward
 * CLIP's (theta = r * clip + (1 - r) * finetuned) and evaluated zero-shot on
 * one list and close-set on another; the curve is printed and plotted. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../onnx/onnx_io.h"
#include "../passes/passes.h"
#include "../runtime/train/checkpoint.h"
#include "cli.h"
#include "commands.h"
#include "../runtime/eval/evaluator.h"
#include "svg_plot.h"

#define TOOL "vclip-run sweep"

static const char *usage =
    "usage: vclip-run sweep --clip CLIP.onnx (--finetuned FT.onnx | --weights W.safetensors) --ratios A:B:STEP\n"
    "                       --zero-shot-list L --zero-shot-classes C --close-list L --close-classes C\n"
    "                       --root DIR [--text-model TEXT.onnx] [--plot CURVE.svg] [--json]\n"
    "  --clip, --finetuned   two encoders of the same structure (image or video encoders)\n"
    "  --weights W           instead of --finetuned: trained weights (vclip-run train's weights.safetensors,\n"
    "                        swa.safetensors or a checkpoint) applied to --clip\n"
    "  --ratios 0:1:0.1      r from A to B by STEP; r = 1 is CLIP, r = 0 the fine-tuned model\n"
    "  --*-classes           encode-text .safetensors, or class lists with --text-model\n"
    "  --zero-shot-root, --close-root   when the two lists live under different folders\n"
    "  --views N --frames T --temporal-window W   as in eval\n"
    CLI_COMPILE_HELP;

int cmd_sweep(int argc, char **argv)
{
    static const struct option opts[] = {
        {"clip", 1, 0, 'a'}, {"finetuned", 1, 0, 'f'}, {"ratios", 1, 0, 'R'}, {"zero-shot-list", 1, 0, 'z'},
        {"zero-shot-classes", 1, 0, 'Z'}, {"close-list", 1, 0, 'c'}, {"close-classes", 1, 0, 'C'}, {"root", 1, 0, 'r'},
        {"zero-shot-root", 1, 0, '1'}, {"close-root", 1, 0, '2'}, {"text-model", 1, 0, 'm'}, {"plot", 1, 0, 'p'},
        {"views", 1, 0, 'v'}, {"frames", 1, 0, 'T'}, {"temporal-window", 1, 0, 'W'}, {"threads", 1, 0, 't'},
        {"weights", 1, 0, 'w'}, {"json", 0, 0, 'j'}, CLI_COMPILE_OPTIONS, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *clip = NULL, *ft = NULL, *weights = NULL, *ratios = "0:1:0.1", *zl = NULL, *zc = NULL, *cl = NULL, *cc = NULL, *root = ".";
    const char *zroot = NULL, *croot = NULL, *text_model = NULL, *plot = NULL;
    int frames = 8, window = 1, threads = 0, json = 0, c;
    CompileOptions co = {.precision = PRECISION_AUTO};
    Evaluator ev;
    evaluator_init(&ev);
    while ((c = getopt_long(argc, argv, "a:f:R:z:Z:c:C:r:1:2:m:p:v:T:W:t:jh", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'a': clip = optarg; break;
        case 'f': ft = optarg; break;
        case 'w': weights = optarg; break;
        case 'R': ratios = optarg; break;
        case 'z': zl = optarg; break;
        case 'Z': zc = optarg; break;
        case 'c': cl = optarg; break;
        case 'C': cc = optarg; break;
        case 'r': root = optarg; break;
        case '1': zroot = optarg; break;
        case '2': croot = optarg; break;
        case 'm': text_model = optarg; break;
        case 'p': plot = optarg; break;
        case 'v': bad = cli_parse_int(optarg, 1, 64, &ev.sc.views); break;
        case 'T': bad = cli_parse_int(optarg, 1, CLIP_MAX_FRAMES, &frames); break;
        case 'W': bad = cli_parse_int(optarg, 0, 64, &window); break;
        case 't': bad = cli_parse_int(optarg, 1, 1024, &threads); break;
        case 'j': json = 1; break;
        case CLI_OPT_TARGET:
        case CLI_OPT_PRECISION:
            if (cli_compile_arg(TOOL, c, optarg, &co)) return 2;
            break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
        if (bad) { fprintf(stderr, "%s: bad value '%s'\n", TOOL, optarg ? optarg : ""); return 2; }
    }
    double a, b, step;
    char extra;
    if (optind != argc || !clip || !ft == !weights || !zl || !zc || !cl || !cc) {
        cli_error(TOOL, NULL, "needs --clip, one of --finetuned and --weights, and both lists with their classes");
        return 2;
    }
    if (sscanf(ratios, "%lf:%lf:%lf%c", &a, &b, &step, &extra) != 3 || step <= 0 || a < 0 || b > 1 || a > b || (b - a) / step > 1000) {
        cli_error(TOOL, NULL, "--ratios is A:B:STEP with 0 <= A <= B <= 1 and STEP > 0");
        return 2;
    }
    char err[1024];
    int rc = 1, n = 0;
    double r[1001], zs[1001], cs[1001];
    Graph *ftg = onnx_load(ft ? ft : clip, err, sizeof err);
    if (!ftg) { cli_error(TOOL, NULL, err); return 1; }
    int applied, unused;
    if (weights && checkpoint_apply(ftg, weights, &applied, &unused, err, sizeof err)) { cli_error(TOOL, NULL, err); graph_free(ftg); return 1; }
    if (weights && !applied) { fprintf(stderr, "%s: %s: none of its weights is a weight of %s\n", TOOL, weights, clip); graph_free(ftg); return 1; }
    if (!ft) ft = weights;
    co.threads = threads;
    if (text_model && evaluator_open_text(&ev, text_model, &co, err, sizeof err)) { cli_error(TOOL, NULL, err); goto done; }
    if (!json) printf("%6s  %10s  %10s\n", "ratio", "zero-shot", "close-set");
    for (double x = a; x <= b + 1e-9 && n < 1001; x += step, n++) {
        Graph *g = onnx_load(clip, err, sizeof err);
        if (!g) { cli_error(TOOL, NULL, err); goto done; }
        if (patch_weights(g, ftg, (float)x, err, sizeof err) < 0) { graph_free(g); cli_error(TOOL, ft, err); goto done; }
        if (video_model_from_graph(&ev.vm, g, clip, frames, window, &co, err, sizeof err)) { video_model_close(&ev.vm); cli_error(TOOL, NULL, err); goto done; }
        ev.sc.frames = ev.vm.T;
        ev.sc.crop_size = ev.vm.size;
        SplitResult z = {0}, k = {0};
        int bad = eval_split(&ev, zl, zroot ? zroot : root, zc, NULL, &z, err, sizeof err) ||
                  eval_split(&ev, cl, croot ? croot : root, cc, NULL, &k, err, sizeof err);
        video_model_close(&ev.vm);
        if (bad) { cli_error(TOOL, NULL, err); goto done; }
        r[n] = x;
        zs[n] = z.m.top1;
        cs[n] = k.m.top1;
        if (!json) printf("%6.2f  %9.2f%%  %9.2f%%\n", x, 100 * zs[n], 100 * cs[n]);
        fflush(stdout);
    }
    if (json) {
        printf("{\"ratios\": [");
        for (int i = 0; i < n; i++) printf("%s%.4f", i ? ", " : "", r[i]);
        printf("], \"zero_shot_top1\": [");
        for (int i = 0; i < n; i++) printf("%s%.6f", i ? ", " : "", zs[i]);
        printf("], \"close_set_top1\": [");
        for (int i = 0; i < n; i++) printf("%s%.6f", i ? ", " : "", cs[i]);
        printf("]}\n");
    }
    if (plot) {
        char lab[1001][16];
        const char *labels[1001];
        for (int i = 0; i < n; i++) { snprintf(lab[i], sizeof lab[i], "r=%.2g", r[i]); labels[i] = lab[i]; }
        if (svg_curve(plot, cs, zs, labels, n, "Patch ratio: zero-shot vs close-set", "close-set top-1 (%)", "zero-shot top-1 (%)", err, sizeof err)) {
            cli_error(TOOL, NULL, err);
            goto done;
        }
    }
    rc = 0;
done:
    graph_free(ftg);
    evaluator_close_text(&ev);
    return rc;
}
