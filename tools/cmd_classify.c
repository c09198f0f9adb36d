/* cmd_classify.c — `vclip-run classify`: zero-shot labels for the user's own
 * videos and class names (runtime/eval/classify.h: the paper's prompt
 * ensemble and test views), as a small table or JSON lines.  A video that
 * cannot be read gets a line saying why and the others still run; the exit
 * status then says that one failed. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../runtime/eval/classify.h"
#include "../runtime/train/checkpoint.h"
#include "../onnx/onnx_io.h"
#include "cli.h"
#include "commands.h"

#define TOOL "vclip-run classify"

static const char *usage =
    "usage: vclip-run classify VIDEO... --visual MODEL --text-model TEXT.onnx (--classes \"a,b,c\" | --classes-file F)\n"
    "                          [--top-k 5] [--json] [options]\n"
    "  --visual MODEL      an image encoder (made temporal here: --frames, default 8, --temporal-window,\n"
    "                      default 1), a VCLIP video encoder (vclipc compile --frames), or an image\n"
    "                      encoder with --weights\n"
    "  --weights W         trained weights (vclip-run train's weights.safetensors) for --visual's encoder\n"
    "  --text-model T      the text encoder; each class name goes through the 28 prompt templates\n"
    "  --classes \"a,b,c\"   class names, comma-separated\n"
    "  --classes-file F    class names, one per line (or {\"0\": \"name\", ...} JSON)\n"
    "  --top-k K           classes shown per video (5; at most the number of classes)\n"
    "  --views N --stride S   test views per video (3) and the sampling stride (16)\n"
    "  --logit-scale X     default 100 (CLIP's)\n"
    "  --json              one JSON object per video: {\"video\", \"top\": [{\"class\", \"probability\"}, ...]},\n"
    "                      or {\"video\", \"error\"} for one that cannot be read\n"
    "  --threads N         compute threads\n"
    CLI_COMPILE_HELP
    "Probabilities: a softmax over the classes of the logits averaged over frames and views.\n"
    "Exit status: 0, or 1 when a video could not be read (the others are still classified).\n";

/* "a,b,c" -> names, each trimmed of surrounding spaces. */
static int split_classes(const char *s, StringList *out)
{
    memset(out, 0, sizeof *out);
    for (const char *p = s;;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        while (n && (*p == ' ' || *p == '\t')) p++, n--;
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
        char **grown = realloc(out->items, sizeof(char *) * (out->n + 1));
        if (!grown) return -1;
        out->items = grown;
        if (!(out->items[out->n] = strndup(p, n))) return -1;
        out->n++;
        if (!e) return 0;
        p = e + 1;
    }
}

static void print_json(const char *video, const StringList *names, const float *probs, const int *order, int k, const char *error)
{
    json_t *o = json_object();
    json_object_set_new(o, "video", json_string(video));
    if (error) json_object_set_new(o, "error", json_string(error));
    else {
        json_t *top = json_array();
        for (int i = 0; i < k; i++) {
            json_t *e = json_object();
            json_object_set_new(e, "class", json_string(names->items[order[i]]));
            json_object_set_new(e, "probability", json_real(probs[order[i]]));
            json_array_append_new(top, e);
        }
        json_object_set_new(o, "top", top);
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
    if (s) puts(s);
    free(s);
    json_decref(o);
}

int cmd_classify(int argc, char **argv)
{
    static const struct option opts[] = {
        {"visual", 1, 0, 'V'}, {"weights", 1, 0, 'w'}, {"text-model", 1, 0, 'm'}, {"classes", 1, 0, 'c'},
        {"classes-file", 1, 0, 'f'}, {"top-k", 1, 0, 'k'}, {"views", 1, 0, 'v'}, {"stride", 1, 0, 'S'},
        {"frames", 1, 0, 'T'}, {"temporal-window", 1, 0, 'W'}, {"logit-scale", 1, 0, 'x'}, {"threads", 1, 0, 't'},
        {"json", 0, 0, 'j'}, CLI_COMPILE_OPTIONS, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *visual = NULL, *weights = NULL, *text_model = NULL, *classes = NULL, *classes_file = NULL;
    int top_k = 5, frames = 8, window = 1, threads = 0, json = 0, c;
    CompileOptions co = {.precision = PRECISION_AUTO};
    Evaluator ev;
    evaluator_init(&ev);
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'V': visual = optarg; break;
        case 'w': weights = optarg; break;
        case 'm': text_model = optarg; break;
        case 'c': classes = optarg; break;
        case 'f': classes_file = optarg; break;
        case 'k': bad = cli_parse_int(optarg, 1, 1 << 20, &top_k); break;
        case 'v': bad = cli_parse_int(optarg, 1, 64, &ev.sc.views); break;
        case 'S': bad = cli_parse_int(optarg, 1, 1 << 16, &ev.sc.stride); break;
        case 'T': bad = cli_parse_int(optarg, 1, CLIP_MAX_FRAMES, &frames); break;
        case 'W': bad = cli_parse_int(optarg, 0, 64, &window); break;
        case 'x': ev.scale = atof(optarg); bad = !(ev.scale > 0); break;
        case 't': bad = cli_parse_int(optarg, 1, 1024, &threads); break;
        case 'j': json = 1; break;
        case CLI_OPT_TARGET:
        case CLI_OPT_PRECISION:
            if (cli_compile_arg(TOOL, c, optarg, &co)) return 2;
            break;
        case 'h': fputs(usage, stdout); return 0;
        default: return cli_usage_error(TOOL, "unknown option (see --help)");
        }
        if (bad) { fprintf(stderr, "%s: bad value '%s'\n", TOOL, optarg ? optarg : ""); return 2; }
    }
    if (optind >= argc) return cli_usage_error(TOOL, "no videos given (see --help)");
    if (!visual || !text_model) return cli_usage_error(TOOL, "--visual and --text-model are required");
    if (!classes == !classes_file) return cli_usage_error(TOOL, "give the class names with one of --classes and --classes-file");
    co.threads = threads;
    char err[1024];
    int rc = 1, failed = 0;
    StringList names = {0};
    Tensor *W = NULL;
    float *probs = NULL;
    int *order = NULL;
    if (classes ? split_classes(classes, &names) : prompts_load_classes(classes_file, &names, err, sizeof err)) {
        cli_error(TOOL, classes_file, classes ? "out of memory" : err);
        goto done;
    }
    Graph *g = onnx_load(visual, err, sizeof err);
    if (!g) { cli_error(TOOL, NULL, err); goto done; }
    int applied = 0, unused = 0;
    if (weights && checkpoint_apply(g, weights, &applied, &unused, err, sizeof err)) { graph_free(g); cli_error(TOOL, NULL, err); goto done; }
    if (weights && !applied) { graph_free(g); fprintf(stderr, "%s: %s: none of its weights is a weight of %s\n", TOOL, weights, visual); goto done; }
    if (video_model_from_graph(&ev.vm, g, visual, frames, window, &co, err, sizeof err)) { cli_error(TOOL, NULL, err); goto done; }
    ev.sc.frames = ev.vm.T;
    ev.sc.crop_size = ev.vm.size;
    if (evaluator_open_text(&ev, text_model, &co, err, sizeof err)) { cli_error(TOOL, NULL, err); goto done; }
    if (!(W = classify_class_features(&ev, &names, err, sizeof err))) { cli_error(TOOL, classes_file, err); goto done; }
    int C = (int)W->dims[0], k = top_k < C ? top_k : C;
    probs = malloc(sizeof(float) * (size_t)C);
    order = malloc(sizeof(int) * (size_t)k);
    if (!probs || !order) { cli_error(TOOL, NULL, "out of memory"); goto done; }
    for (int i = optind; i < argc; i++) {
        const char *video = argv[i];
        int bad = classify_video(&ev, video, W, probs, err, sizeof err);
        failed |= bad != 0;
        if (!bad) classify_top_k(probs, C, k, order);
        if (json) print_json(video, &names, probs, order, k, bad ? err : NULL);
        else if (bad) printf("%s: cannot classify: %s\n", video, err);
        else {
            printf("%s\n", video);
            for (int j = 0; j < k; j++) printf("  %2d. %-32s %7.3f\n", j + 1, names.items[order[j]], probs[order[j]]);
        }
        fflush(stdout);
    }
    rc = failed;
done:
    free(probs);
    free(order);
    tensor_free(W);
    string_list_free(&names);
    video_model_close(&ev.vm);
    evaluator_close_text(&ev);
    return rc;
}
