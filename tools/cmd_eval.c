/* cmd_eval.c — `vclip-run eval`: zero-shot video classification on one list,
 * or over a whole protocol (EP1/EP2/EP3 of UCF-101 and HMDB-51, the three
 * Kinetics-600 splits) driven by the released code's list files.
 *
 * Each video's test views run through the video encoder; frame embeddings are
 * L2-normalized, logits = scale * f . W^T against unit class features, averaged
 * over frames and summed over views (DESIGN.md §2).  Video features are cached
 * on disk (model hash + preprocessing), so splits sharing videos decode them
 * once.  Ties rank the lower class index first. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../runtime/eval/metrics.h"
#include "../runtime/eval/video_features.h"
#include "../runtime/npy.h"
#include "../runtime/safetensors.h"
#include "cli.h"
#include "commands.h"
#include "html_report.h"
#include "../runtime/eval/evaluator.h"
#include "../runtime/eval/text_features.h"

#define TOOL "vclip-run eval"

static const char *usage =
    "usage: vclip-run eval --visual MODEL.onnx --classes CLASSES --list LIST.csv --root DIR [options]\n"
    "       vclip-run eval --visual MODEL.onnx --text-model TEXT.onnx --protocol P --dataset D --root DIR\n"
    "  --visual MODEL      a video encoder (vclipc compile --frames T) or an image encoder,\n"
    "                      made temporal here (--frames, default 8; --temporal-window, default 1;\n"
    "                      window 0 is frame-averaged CLIP)\n"
    "  --classes F         class features from `vclip-run encode-text` (.safetensors), or a\n"
    "                      class list (text, or index-to-class JSON) with --text-model\n"
    "  --text-model M      text encoder for the class features (28 templates)\n"
    "  --list LIST.csv     'relative/path,label_index' lines; --root DIR is prefixed\n"
    "  --protocol ep1|ep2|ep3|k600 --dataset ucf101|hmdb51|k600\n"
    "                      EP1: 10 half-class splits, EP2: all classes, EP3: 3 official splits,\n"
    "                      K600: 3 splits of 160 new classes; prints mean and std over splits\n"
    "  --protocols DIR     the protocol lists (default ../shared/data/protocols next to vclip)\n"
    "  --views N --crops 1|3 --stride S   test views per video (3, 1), sampling stride (16)\n"
    "  --logit-scale X     default 100 (CLIP's)\n"
    "  --batch N --workers N --threads N   videos per forward pass (4), decoders (2), BLAS threads\n"
    CLI_COMPILE_HELP
    "  --no-cache          do not read or write the feature cache ($VCLIP_CACHE_DIR)\n"
    "  --predictions F.csv --scores F.npy --confusion F.csv   outputs (single list)\n"
    "  --json              one JSON object: top1, top5, mean_class_accuracy, n_videos, n_skipped\n"
    "  --report DIR        DIR/index.html, a page to look at: the metrics, the confusion matrix as a\n"
    "                      heat map, per-class accuracy, the most confused pairs (single list)\n"
    "  --sweep F.json      with --report: also the patch-ratio curve of `vclip-run sweep --json`\n"
    CLI_COMM_TIMEOUT_HELP
    "Unreadable videos are reported, left out of the metrics and counted (n_skipped).\n"
    "mpirun -np N vclip-run eval ... shares the videos among N processes; rank 0 prints and writes,\n"
    "and the metrics are the single process's.\n";

/* The splits of a protocol: list and class file paths, relative to the protocol folder. */
static int protocol_splits(const char *protocol, const char *dataset, char lists[10][512], char classes[10][512], char *name, size_t cap)
{
    const char *pre = !strcmp(dataset, "ucf101") ? "ucf101" : !strcmp(dataset, "hmdb51") ? "hmdb" : !strcmp(dataset, "k600") ? "k600" : NULL;
    const char *json = !strcmp(dataset, "ucf101") ? "ucf101-index2cls.json" : "hmdb-index2cls.json";
    if (!pre) return -1;
    int k600 = !strcmp(pre, "k600"), n = 0;
    if (k600 != !strcmp(protocol, "k600")) return -1;
    if (!strcmp(protocol, "ep1"))
        for (n = 0; n < 10; n++) {
            snprintf(lists[n], 512, "%s_half_test/%d/test.csv", pre, n);
            snprintf(classes[n], 512, "%s_half_test/%d/%s", pre, n, json);
        }
    else if (!strcmp(protocol, "ep2")) {
        snprintf(lists[0], 512, "%s_full/test.csv", pre);
        snprintf(classes[0], 512, "%s", json);
        n = 1;
    } else if (!strcmp(protocol, "ep3") || k600)
        for (n = 0; n < 3; n++) {
            snprintf(lists[n], 512, "%s_split%d/test.csv", pre, n + 1);
            if (k600) snprintf(classes[n], 512, "k600_split%d/k600-openset-index2cls.json", n + 1);
            else snprintf(classes[n], 512, "%s", json);
        }
    else return -1;
    snprintf(name, cap, "%s %s", !strcmp(pre, "ucf101") ? "UCF-101" : !strcmp(pre, "hmdb") ? "HMDB-51" : "Kinetics-600",
             k600 ? "" : !strcmp(protocol, "ep1") ? "EP1" : !strcmp(protocol, "ep2") ? "EP2" : "EP3");
    return n;
}

/* --report: the page, with a sweep's curve when given. */
static int write_report(const char *dir, const char *sweep, const char *visual, const char *list, const SplitResult *r, const long *confusion,
                        StringList *names, char *err, size_t cap)
{
    int C = (int)names->n;
    if (!confusion || !C) { snprintf(err, cap, "--report: no confusion matrix"); return -1; }
    Report rep = {visual, list, r->m, r->skipped, C, names->items, confusion, NULL, NULL, NULL, 0};
    double *curve = NULL;
    json_t *j = NULL;
    if (sweep) {
        json_error_t je;
        if (!(j = json_load_file(sweep, 0, &je))) { snprintf(err, cap, "%s: line %d: %s", sweep, je.line, je.text); return -1; }
        json_t *xs = json_object_get(j, "ratios"), *zs = json_object_get(j, "zero_shot_top1"), *cs = json_object_get(j, "close_set_top1");
        size_t n = json_array_size(xs);
        if (!n || json_array_size(zs) != n || json_array_size(cs) != n) {
            snprintf(err, cap, "%s: not the output of vclip-run sweep --json (ratios, zero_shot_top1, close_set_top1)", sweep);
            json_decref(j);
            return -1;
        }
        curve = malloc(sizeof(double) * 3 * n);
        if (!curve) { json_decref(j); snprintf(err, cap, "out of memory"); return -1; }
        for (size_t i = 0; i < n; i++) {
            curve[i] = json_number_value(json_array_get(xs, i));
            curve[n + i] = json_number_value(json_array_get(zs, i));
            curve[2 * n + i] = json_number_value(json_array_get(cs, i));
        }
        rep.ratios = curve, rep.zero_shot = curve + n, rep.close_set = curve + 2 * n, rep.n_curve = (int)n;
    }
    int rc = html_report_write(dir, &rep, err, cap);
    free(curve);
    json_decref(j);
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {
        {"visual", 1, 0, 'V'}, {"classes", 1, 0, 'c'}, {"text-model", 1, 0, 'm'}, {"list", 1, 0, 'L'}, {"root", 1, 0, 'r'},
        {"views", 1, 0, 'v'}, {"crops", 1, 0, 'C'}, {"frames", 1, 0, 'T'}, {"temporal-window", 1, 0, 'W'},
        {"stride", 1, 0, 'S'}, {"logit-scale", 1, 0, 'x'}, {"batch", 1, 0, 'b'}, {"workers", 1, 0, 'w'},
        {"threads", 1, 0, 't'}, {"predictions", 1, 0, 'P'}, {"scores", 1, 0, 'Q'}, {"confusion", 1, 0, 'M'},
        {"protocol", 1, 0, 'p'}, {"dataset", 1, 0, 'd'}, {"protocols", 1, 0, 'D'}, {"no-cache", 0, 0, 'N'},
        {"json", 0, 0, 'j'}, {"comm-timeout", 1, 0, 'Z'}, {"report", 1, 0, 'R'}, {"sweep", 1, 0, 'E'}, CLI_COMPILE_OPTIONS, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *visual = NULL, *classes = NULL, *text_model = NULL, *list = NULL, *root = ".", *protocol = NULL, *dataset = NULL;
    const char *protocols_dir = NULL, *report = NULL, *sweep = NULL;
    Outputs outs = {0};
    int frames = 8, window = 1, threads = 0, json = 0, no_cache = 0, c;
    double comm_timeout = 300;
    CompileOptions co = {.precision = PRECISION_AUTO};
    Evaluator ev;
    evaluator_init(&ev);
    while ((c = getopt_long(argc, argv, "V:c:m:L:r:v:C:T:W:S:x:b:w:t:P:Q:M:p:d:D:Njh", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'V': visual = optarg; break;
        case 'c': classes = optarg; break;
        case 'm': text_model = optarg; break;
        case 'L': list = optarg; break;
        case 'r': root = optarg; break;
        case 'v': bad = cli_parse_int(optarg, 1, 64, &ev.sc.views); break;
        case 'C': bad = cli_parse_int(optarg, 1, 3, &ev.sc.crops) || ev.sc.crops == 2; break;
        case 'T': bad = cli_parse_int(optarg, 1, CLIP_MAX_FRAMES, &frames); break;
        case 'W': bad = cli_parse_int(optarg, 0, 64, &window); break;
        case 'S': bad = cli_parse_int(optarg, 1, 1 << 16, &ev.sc.stride); break;
        case 'x': ev.scale = atof(optarg); bad = !(ev.scale > 0); break;
        case 'b': bad = cli_parse_int(optarg, 1, 4096, &ev.batch); break;
        case 'w': bad = cli_parse_int(optarg, 1, 256, &ev.workers); break;
        case 't': bad = cli_parse_int(optarg, 1, 1024, &threads); break;
        case 'P': outs.pred = optarg; break;
        case 'Q': outs.scores = optarg; break;
        case 'M': outs.confusion = optarg; break;
        case 'p': protocol = optarg; break;
        case 'd': dataset = optarg; break;
        case 'D': protocols_dir = optarg; break;
        case 'N': no_cache = 1; break;
        case 'j': json = 1; break;
        case 'R': report = optarg; break;
        case 'E': sweep = optarg; break;
        case 'Z': comm_timeout = atof(optarg); bad = !(comm_timeout > 0); break;
        case CLI_OPT_TARGET:
        case CLI_OPT_PRECISION:
            if (cli_compile_arg(TOOL, c, optarg, &co)) return 2;
            break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
        if (bad) { fprintf(stderr, "%s: bad value '%s'\n", TOOL, optarg ? optarg : ""); return 2; }
    }
    if (optind != argc || !visual || (protocol ? (!dataset || !text_model) : (!classes || !list))) {
        cli_error(TOOL, NULL, optind != argc ? "unexpected argument" : !visual ? "missing --visual"
                              : protocol ? "--protocol needs --dataset and --text-model" : !classes ? "missing --classes" : "missing --list");
        return 2;
    }
    if ((report || sweep) && protocol) { cli_error(TOOL, NULL, "--report is for one list (--list), not a protocol"); return 2; }
    if (sweep && !report) { cli_error(TOOL, NULL, "--sweep goes into a --report"); return 2; }
    char lists[10][512], cls[10][512], name[64];
    int n_splits = protocol ? protocol_splits(protocol, dataset, lists, cls, name, sizeof name) : 1;
    if (n_splits < 0) { cli_error(TOOL, NULL, "use --protocol ep1|ep2|ep3 with --dataset ucf101|hmdb51, or --protocol k600 with --dataset k600"); return 2; }
    char err[1024], *pdir = NULL;
    int rc = 1;
    co.threads = threads;
    char tool[64];
    Comm *comm = cli_comm_open(TOOL, comm_timeout, co.target, tool, sizeof tool);
    if (!comm) return 1;
    ev.comm = comm;
    if (video_model_open(&ev.vm, visual, frames, window, &co, err, sizeof err)) { cli_error(tool, NULL, err); goto done; }
    ev.sc.frames = ev.vm.T;
    ev.sc.crop_size = ev.vm.size;
    if (text_model && evaluator_open_text(&ev, text_model, &co, err, sizeof err)) { cli_error(tool, NULL, err); goto done; }
    if (!no_cache) {
        char settings[256];
        snprintf(settings, sizeof settings, "frames=%d stride=%d views=%d crops=%d size=%d window=%d tfps=%g target=%s precision=%s", ev.sc.frames,
                 ev.sc.stride, ev.sc.views, ev.sc.crops, ev.sc.crop_size, window, ev.sc.target_fps, target_name(co.target),
                 precision_name(co.precision));
        if (feature_cache_open(&ev.cache, visual, settings, err, sizeof err)) { cli_error(tool, "warning (running without a cache)", err); }
    }
    double t0 = now_ms();
    if (!protocol) {
        SplitResult r = {0};
        long *confusion = NULL;
        StringList names = {0};
        if (report) outs.confusion_matrix = &confusion, outs.class_names = &names;
        int bad = eval_split(&ev, list, root, classes, &outs, &r, err, sizeof err) ||
                  (report && comm_rank(comm) == 0 && write_report(report, sweep, visual, list, &r, confusion, &names, err, sizeof err));
        free(confusion);
        string_list_free(&names);
        if (bad) { cli_error(tool, NULL, err); goto done; }
        double sec = (now_ms() - t0) / 1e3;
        if (json)
            printf("{\"top1\": %.6f, \"top5\": %.6f, \"mean_class_accuracy\": %.6f, \"n_videos\": %zu, \"n_skipped\": %zu, "
                   "\"decoded\": %zu, \"views\": %d, \"frames\": %d, \"input_size\": %d, \"seconds\": %.2f}\n",
                   r.m.top1, r.m.top5, r.m.mean_class_accuracy, r.m.n, r.skipped, r.decoded, clips_per_video(&ev.sc),
                   ev.vm.T, ev.vm.size, sec);
        else
            printf("top-1 %.2f%%  top-5 %.2f%%  mean class accuracy %.2f%%  on %zu videos (%zu unreadable), %d views x %d "
                   "frames at %d px, %.1f s\n", 100 * r.m.top1, 100 * r.m.top5, 100 * r.m.mean_class_accuracy, r.m.n,
                   r.skipped, clips_per_video(&ev.sc), ev.vm.T, ev.vm.size, sec);
        rc = 0;
        goto done;
    }
    pdir = protocols_dir ? strdup(protocols_dir) : data_path("../shared/data/protocols");
    if (!pdir) { cli_error(tool, NULL, "cannot find the protocol lists: pass --protocols DIR"); goto done; }
    double top1[10], top5[10];
    size_t videos = 0, skipped = 0, decoded = 0;
    if (json) printf("{\"protocol\": \"%s\", \"dataset\": \"%s\", \"splits\": [", protocol, dataset);
    for (int i = 0; i < n_splits; i++) {
        char lp[1100], cp[1100];
        snprintf(lp, sizeof lp, "%s/%s", pdir, lists[i]);
        snprintf(cp, sizeof cp, "%s/%s", pdir, cls[i]);
        SplitResult r = {0};
        if (eval_split(&ev, lp, root, cp, NULL, &r, err, sizeof err)) { if (json) printf("]}\n"); cli_error(tool, NULL, err); goto done; }
        top1[i] = r.m.top1;
        top5[i] = r.m.top5;
        videos += r.m.n;
        skipped += r.skipped;
        decoded += r.decoded;
        if (json) printf("%s{\"list\": \"%s\", \"top1\": %.6f, \"top5\": %.6f, \"n_videos\": %zu, \"n_skipped\": %zu}", i ? ", " : "",
                         lists[i], r.m.top1, r.m.top5, r.m.n, r.skipped);
        else printf("  %-32s top-1 %6.2f%%  top-5 %6.2f%%  (%zu videos, %zu unreadable)\n", lists[i], 100 * r.m.top1, 100 * r.m.top5, r.m.n, r.skipped);
    }
    double m1, s1, m5, s5;
    mean_std(top1, n_splits, 0, &m1, &s1); /* population std over splits, as np.std */
    mean_std(top5, n_splits, 0, &m5, &s5);
    if (json)
        printf("], \"top1\": %.6f, \"top1_std\": %.6f, \"top5\": %.6f, \"top5_std\": %.6f, \"n_videos\": %zu, \"n_skipped\": %zu, "
               "\"decoded\": %zu}\n", m1, s1, m5, s5, videos, skipped, decoded);
    else
        printf("%s: top-1 %.1f ± %.1f  top-5 %.1f ± %.1f  (%d split%s, %zu videos, %zu unreadable)\n", name, 100 * m1, 100 * s1,
               100 * m5, 100 * s5, n_splits, n_splits > 1 ? "s" : "", videos, skipped);
    rc = 0;
done:
    free(pdir);
    video_model_close(&ev.vm);
    evaluator_close_text(&ev);
    comm_close(comm, rc != 0);
    return rc;
}
