/* vclipc — the compiler driver: inspect, run, compile and dump ONNX models.
 * Each subcommand is a small function over the library; argument errors and
 * model errors exit with status 2 and 1 and a message naming the file. */
#include <getopt.h>
#include <sys/stat.h>
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "../ir/cost.h"
#include "../ir/ops.h"
#include "../ir/print.h"
#include "../ir/verify.h"
#include "../onnx/onnx_io.h"
#include "../passes/passes.h"
#include "../runtime/cuda/cuda_ptx.h"
#include "../codegen/render.h"
#include "../runtime/model.h"
#include "../runtime/npy.h"
#include "cli.h"
#include "version.h"

static const char *usage_main =
    "usage: vclipc <command> [options]\n"
    "\n"
    "commands:\n"
    "  inspect MODEL.onnx [--batch N] [--json]\n"
    "      inputs and outputs (dtypes, symbolic shapes), op histogram, parameters,\n"
    "      opsets and estimated FLOPs with every symbolic dim bound to N (default 1)\n"
    "  run MODEL.onnx --input NAME=FILE.npy ... [--output NAME=FILE.npy ...]\n"
    "      [--threads N] [--repeat N] [--json] [--reference] [--no-fusion] [--target cpu|cuda]\n"
    "      run on the CPU; --repeat N times N iterations after one warm-up\n"
    "      (min/median, excluding load and compile); --reference uses only the\n"
    "      reference kernels\n"
    "  compile MODEL.onnx -o OUT.onnx [--dump-after NAME|all] [--dump-dir DIR]\n"
    "      [--dump-format text|dot|onnx] [--pass-stats] [--external-data]\n"
    "      [--no-fusion] [--export-standard-ops] [--emit-kernels DIR] [--target cpu|cuda]\n"
    "      [--frames T [--temporal-window 1|2|3] [--temporal-boundary zero|mask]]\n"
    "      run the graph passes and write the optimized model as ONNX\n"
    "  dump MODEL.onnx [--format text|dot]\n"
    "      print the imported graph, one line per node\n"
    "\n"
    "  vclipc COMMAND --help shows a command's options; vclipc --version.\n";

static void print_error(const char *prefix, const char *msg) { cli_error("vclipc", prefix, msg); }

static int die(const char *msg)
{
    print_error(NULL, msg);
    return 1;
}

static int usage_error(const char *cmd, const char *msg)
{
    fprintf(stderr, "vclipc %s: %s\n(see vclipc %s --help)\n", cmd, msg, cmd);
    return 2;
}

static Graph *load(const char *path)
{
    char err[1024];
    Graph *g = onnx_load(path, err, sizeof err);
    if (!g) print_error(NULL, err);
    return g;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

/* ---- inspect ---------------------------------------------------------- */

static int cmd_inspect(int argc, char **argv)
{
    static const struct option opts[] = {{"batch", 1, 0, 'b'}, {"json", 0, 0, 'j'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int batch = 1, json = 0, c;
    while ((c = getopt_long(argc, argv, "b:jh", opts, NULL)) != -1) {
        if (c == 'b') { if (cli_parse_int(optarg, 1, 1 << 30, &batch)) return usage_error("inspect", "--batch needs a positive integer"); }
        else if (c == 'j') json = 1;
        else if (c == 'h') { printf("usage: vclipc inspect MODEL.onnx [--batch N] [--json]\n"); return 0; }
        else return usage_error("inspect", "unknown option");
    }
    if (optind != argc - 1) return usage_error("inspect", "expects exactly one model file");
    Graph *g = load(argv[optind]);
    if (!g) return 1;
    int hist[OP_COUNT] = {0};
    for (int i = 0; i < g->n_nodes; i++) hist[g->nodes[i]->op]++;
    int64_t params = 0;
    size_t bytes = 0;
    int n_init = 0;
    for (int i = 0; i < g->n_values; i++) {
        const Tensor *t = g->values[i]->konst;
        if (!t) continue;
        n_init++;
        params += tensor_numel(t);
        bytes += t->nbytes;
    }
    int64_t *sym = malloc(sizeof(int64_t) * (size_t)(g->n_syms + 1));
    for (int i = 0; i < g->n_syms; i++) sym[i] = batch;
    GraphCost cost;
    graph_cost(g, sym, &cost);
    free(sym);
    char t[320];
    FILE *o = stdout;
    if (json) {
        fprintf(o, "{\"model\": ");
        json_str(o, argv[optind]);
        fprintf(o, ", \"producer\": ");
        json_str(o, g->producer);
        fprintf(o, ", \"opsets\": {");
        for (int i = 0; i < g->n_opsets; i++) {
            fprintf(o, "%s", i ? ", " : "");
            json_str(o, *g->opsets[i].domain ? g->opsets[i].domain : "ai.onnx");
            fprintf(o, ": %lld", (long long)g->opsets[i].version);
        }
        fprintf(o, "}, \"inputs\": [");
        for (int i = 0; i < g->n_inputs + g->n_outputs; i++) {
            if (i == g->n_inputs) fprintf(o, "], \"outputs\": [");
            const Value *v = i < g->n_inputs ? g->inputs[i] : g->outputs[i - g->n_inputs];
            shape_format(g, &v->shape, t, sizeof t);
            fprintf(o, "%s{\"name\": ", (i && i != g->n_inputs) ? ", " : "");
            json_str(o, v->name);
            fprintf(o, ", \"dtype\": \"%s\", \"shape\": ", dtype_name(v->dtype));
            json_str(o, t);
            fprintf(o, "}");
        }
        fprintf(o, "], \"nodes\": %d, \"ops\": {", g->n_nodes);
        int first = 1;
        for (int i = 0; i < OP_COUNT; i++)
            if (hist[i]) { fprintf(o, "%s\"%s\": %d", first ? "" : ", ", op_name(i), hist[i]); first = 0; }
        fprintf(o, "}, \"parameters\": %lld, \"parameter_bytes\": %zu, \"initializers\": %d, "
                   "\"batch\": %d, \"gemm_flops\": %.0f, \"other_flops\": %.0f, \"flops\": %.0f, \"flops_partial\": %s}\n",
                (long long)params, bytes, n_init, batch, cost.gemm_flops, cost.other_flops,
                cost.gemm_flops + cost.other_flops, cost.unknown_nodes ? "true" : "false");
    } else {
        fprintf(o, "model     %s\nproducer  %s\nopsets   ", argv[optind], *g->producer ? g->producer : "(unknown)");
        for (int i = 0; i < g->n_opsets; i++)
            fprintf(o, " %s %lld", *g->opsets[i].domain ? g->opsets[i].domain : "ai.onnx", (long long)g->opsets[i].version);
        fprintf(o, "\n\ninputs\n");
        for (int i = 0; i < g->n_inputs; i++) { value_type_string(g, g->inputs[i], t, sizeof t); fprintf(o, "  %-24s %s\n", g->inputs[i]->name, t); }
        fprintf(o, "outputs\n");
        for (int i = 0; i < g->n_outputs; i++) { value_type_string(g, g->outputs[i], t, sizeof t); fprintf(o, "  %-24s %s\n", g->outputs[i]->name, t); }
        fprintf(o, "\nparameters  %lld (%.2f MB in %d initializers)\n", (long long)params, bytes / 1e6, n_init);
        fprintf(o, "FLOPs       %.3f G at batch %d (matmul/conv %.3f G, other %.3f G)%s\n",
                (cost.gemm_flops + cost.other_flops) / 1e9, batch, cost.gemm_flops / 1e9, cost.other_flops / 1e9,
                cost.unknown_nodes ? "  [partial: some shapes are data-dependent]" : "");
        fprintf(o, "\nops (%d nodes)\n", g->n_nodes);
        for (int i = 0; i < OP_COUNT; i++) if (hist[i]) fprintf(o, "  %-22s %5d\n", op_name(i), hist[i]);
    }
    graph_free(g);
    return 0;
}

/* ---- run -------------------------------------------------------------- */

typedef struct { char *name; char *path; } Binding;

static int parse_binding(const char *arg, Binding *b)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1]) return -1;
    b->name = strndup(arg, (size_t)(eq - arg));
    b->path = strdup(eq + 1);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {{"input", 1, 0, 'i'}, {"output", 1, 0, 'o'}, {"threads", 1, 0, 't'},
                                         {"repeat", 1, 0, 'r'}, {"json", 0, 0, 'j'}, {"reference", 0, 0, 'R'},
                                         {"no-fusion", 0, 0, 'F'}, {"target", 1, 0, 'g'}, {"precision", 1, 0, 'p'},
                                         {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    Binding ins[64], outs[64];
    int n_in = 0, n_out = 0, repeat = 0, json = 0, c, rc = 1;
    CompileOptions co = {.precision = PRECISION_AUTO};
    while ((c = getopt_long(argc, argv, "i:o:t:r:jRFg:p:h", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            if (n_in == 64 || parse_binding(optarg, &ins[n_in])) { rc = usage_error("run", "--input needs NAME=FILE.npy"); goto bad_args; }
            n_in++;
            break;
        case 'o':
            if (n_out == 64 || parse_binding(optarg, &outs[n_out])) { rc = usage_error("run", "--output needs NAME=FILE.npy"); goto bad_args; }
            n_out++;
            break;
        case 't': if (cli_parse_int(optarg, 1, 1024, &co.threads)) { rc = usage_error("run", "--threads needs a positive integer"); goto bad_args; } break;
        case 'r': if (cli_parse_int(optarg, 1, 1000000, &repeat)) { rc = usage_error("run", "--repeat needs a positive integer"); goto bad_args; } break;
        case 'j': json = 1; break;
        case 'R': co.reference_only = 1; break;
        case 'F': co.no_fusion = 1; break;
        case 'g': if (target_parse(optarg, &co.target)) { rc = usage_error("run", "--target is cpu or cuda"); goto bad_args; } break;
        case 'p':
            if (precision_parse(optarg, &co.precision)) { rc = usage_error("run", "--precision is auto, fp32, bf16 or fp16 (fp16: --target cuda)"); goto bad_args; }
            break;
        case 'h':
            printf("usage: vclipc run MODEL.onnx --input NAME=FILE.npy ... [--output NAME=FILE.npy ...]\n"
                   "                  [--threads N] [--repeat N] [--json] [--reference] [--target cpu|cuda]\n"
                   "                  [--precision auto|fp32|bf16|fp16]\n"
                   "  --target cuda  run on CUDA device 0 (cuBLASLt GEMMs, generated and template kernels,\n"
                   "                 CUDA graphs for repeated runs); fails cleanly where there is none\n"
                   "  --precision bf16  Linear weights and their inputs in bf16, sums in f32 (on the CPU:\n"
                   "                 needs AVX512-BF16; the patch embedding and attention's q.k and\n"
                   "                 probability-weighted sums too; on CUDA: tensor-core GEMMs); the rest\n"
                   "                 stays f32\n"
                   "  --precision auto  (the default) bf16 where the CPU multiplies bf16 natively\n"
                   "                 (AVX512-BF16, AMX), else fp32; fp32 on cuda for now, and with\n"
                   "                 --reference or --no-fusion.  --precision fp32 for exact work\n"
                   "  --precision fp16  the same with fp16 inputs (CUDA only)\n"
                   "  Inputs and outputs are .npy files (f32, f64, f16, i64, i32, i8, u8, bool).\n"
                   "  Outputs without --output are summarized on stdout.\n"
                   "  --repeat N   N timed iterations after one warm-up; reports min/median ms\n"
                   "  --json       print the report as one JSON object (min_ms, median_ms, ...)\n"
                   "  --threads N  CPU threads (default: every core)\n"
                   "  --reference  use only the reference kernels (the test oracle; slow)\n"
                   "  --no-fusion  run the cleanup passes only (no fused ops)\n");
            return 0;
        default: { rc = usage_error("run", "unknown option"); goto bad_args; }
        }
    }
    if (optind != argc - 1) { rc = usage_error("run", "expects exactly one model file"); goto bad_args; }
    char err[1024];
    if (compile_check(&co, err, sizeof err)) { rc = usage_error("run", err); goto bad_args; }
    double t0 = now_ms();
    Model *m = vclip_compile(argv[optind], &co, err, sizeof err);
    if (!m) {
        cli_error("vclipc run", NULL, err);
        rc = 1;
        goto bad_args; /* frees the --input/--output bindings */
    }
    double load_ms = now_ms() - t0;
    const Graph *g = model_graph(m);
    Tensor **in_t = calloc((size_t)g->n_inputs + 1, sizeof(Tensor *));
    Tensor **out_t = calloc((size_t)g->n_outputs + 1, sizeof(Tensor *));
    double *times = calloc((size_t)repeat + 1, sizeof(double));
    for (int i = 0; i < n_in; i++)
        if (model_input_index(m, ins[i].name) < 0) { fprintf(stderr, "vclipc: %s: the model has no input named '%s'\n", argv[optind], ins[i].name); goto done; }
    for (int i = 0; i < n_out; i++)
        if (model_output_index(m, outs[i].name) < 0) { fprintf(stderr, "vclipc: %s: the model has no output named '%s'\n", argv[optind], outs[i].name); goto done; }
    for (int k = 0; k < g->n_inputs; k++) {
        for (int i = 0; i < n_in; i++)
            if (strcmp(g->inputs[k]->name, ins[i].name) == 0) {
                in_t[k] = npy_load(ins[i].path, err, sizeof err);
                if (!in_t[k]) { print_error("input", err); goto done; }
            }
        if (!in_t[k]) {
            char t[320];
            value_type_string(g, g->inputs[k], t, sizeof t);
            snprintf(err, sizeof err, "missing --input %s=FILE.npy (%s)", g->inputs[k]->name, t);
            die(err);
            goto done;
        }
    }
    int iters = repeat ? repeat + 1 : 1;
    for (int it = 0; it < iters; it++) {
        for (int k = 0; k < g->n_outputs; k++) { tensor_free(out_t[k]); out_t[k] = NULL; }
        double a = now_ms();
        if (model_run(m, in_t, out_t, err, sizeof err)) {
            print_error(argv[optind], err);
            goto done;
        }
        if (repeat && it > 0) times[it - 1] = now_ms() - a;
        if (!repeat) times[0] = now_ms() - a;
    }
    for (int i = 0; i < n_out; i++) {
        int k = model_output_index(m, outs[i].name);
        if (npy_save(outs[i].path, out_t[k], err, sizeof err)) { die(err); goto done; }
    }
    int nt = repeat ? repeat : 1;
    qsort(times, (size_t)nt, sizeof(double), cmp_double);
    double mn = times[0], med = nt % 2 ? times[nt / 2] : 0.5 * (times[nt / 2 - 1] + times[nt / 2]);
    ModelStats st;
    model_stats(m, &st);
    if (json) {
        printf("{\"model\": ");
        json_str(stdout, argv[optind]);
        printf(", \"target\": \"%s\", \"precision\": \"%s\", \"threads\": %d, \"repeat\": %d, \"load_ms\": %.3f, \"min_ms\": %.3f, \"median_ms\": %.3f, "
               "\"peak_activation_bytes\": %zu, \"arena_bytes\": %zu, \"generated_kernels\": %d, \"host_nodes\": %d, \"outputs\": {",
               target_name(co.target), precision_name(st.precision), co.threads, repeat, load_ms, mn, med, st.backend.peak_bytes, st.backend.arena_bytes,
               st.generated_kernels, st.backend.host_nodes);
        for (int k = 0; k < g->n_outputs; k++) {
            printf("%s", k ? ", " : "");
            json_str(stdout, g->outputs[k]->name);
            printf(": {\"dtype\": \"%s\", \"shape\": [", dtype_name(out_t[k]->dtype));
            for (int d = 0; d < out_t[k]->rank; d++) printf("%s%lld", d ? ", " : "", (long long)out_t[k]->dims[d]);
            printf("]}");
        }
        printf("}}\n");
    } else {
        for (int k = 0; k < g->n_outputs; k++) {
            const Tensor *t = out_t[k];
            int64_t n = tensor_numel(t);
            double sum = 0, amax = 0;
            for (int64_t e = 0; e < n; e++) { double v = tensor_get_f64(t, e); sum += v; if (fabs(v) > amax) amax = fabs(v); }
            printf("%s: %s[", g->outputs[k]->name, dtype_name(t->dtype));
            for (int d = 0; d < t->rank; d++) printf("%s%lld", d ? "," : "", (long long)t->dims[d]);
            printf("]  mean %.6g  max|x| %.6g\n", n ? sum / (double)n : 0.0, amax);
        }
        char th[32];
        if (co.threads) snprintf(th, sizeof th, "%d threads", co.threads);
        else snprintf(th, sizeof th, "default threads");
        if (repeat) printf("time: min %.3f ms, median %.3f ms over %d runs (load+compile %.1f ms, %s, %s)\n", mn, med, repeat,
                           load_ms, th, precision_name(st.precision));
        else printf("time: %.3f ms (first run; use --repeat N for timings), %s\n", mn, precision_name(st.precision));
        const BackendStats *b = &st.backend;
        if (co.target == TARGET_CPU) printf("peak activations: %.2f MB (planned arena: %.2f MB)\n", b->peak_bytes / 1e6, b->arena_bytes / 1e6);
        else
            printf("device: %d nodes on the GPU, %d on the host; arena %.2f MB, weights %.1f MB; %d runs replayed a CUDA graph%s%s%s\n",
                   b->device_nodes, b->host_nodes, b->arena_bytes / 1e6, b->weight_bytes / 1e6, b->graph_replays,
                   b->note[0] ? " (" : "", b->note, b->note[0] ? ")" : "");
    }
    rc = 0;
done:
    for (int k = 0; k < g->n_inputs; k++) tensor_free(in_t[k]);
    for (int k = 0; k < g->n_outputs; k++) tensor_free(out_t[k]);
    for (int i = 0; i < n_in; i++) { free(ins[i].name); free(ins[i].path); }
    for (int i = 0; i < n_out; i++) { free(outs[i].name); free(outs[i].path); }
    free(in_t);
    free(out_t);
    free(times);
    model_free(m);
    return rc;
bad_args:
    for (int i = 0; i < n_in; i++) { free(ins[i].name); free(ins[i].path); }
    for (int i = 0; i < n_out; i++) { free(outs[i].name); free(outs[i].path); }
    return rc;
}

/* ---- compile ---------------------------------------------------------- */

/* --emit-kernels: DIR/NN-NODE.c and .cu for every generated kernel. */
static int emit_kernels(const Graph *g, const char *dir, char *err, size_t cap)
{
    if (mkdir(dir, 0777) && errno != EEXIST) { snprintf(err, cap, "%s", strerror(errno)); return -1; }
    int k = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const Node *n = g->nodes[i];
        char *src[2];
        int r = program_node_sources(n, &src[0], &src[1], err, cap);
        if (r < 0) return -1;
        if (!r) continue;
        for (int d = 0; d < 2; d++) {
            char path[4096], safe[128];
            snprintf(safe, sizeof safe, "%s", n->name);
            for (char *s = safe; *s; s++) if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_')) *s = '_';
            snprintf(path, sizeof path, "%s/%02d-%s.%s", dir, k, safe, d ? "cu" : "c");
            FILE *f = src[d] ? fopen(path, "w") : NULL;
            int bad = !f || fputs(src[d], f) < 0;
            if (f && fclose(f)) bad = 1;
            if (bad) { snprintf(err, cap, "cannot write %.900s", path); free(src[0]); free(src[1]); return -1; }
        }
        free(src[0]);
        free(src[1]);
        k++;
    }
    fprintf(stderr, "vclipc: %d generated kernels written to %s\n", k, dir);
    return 0;
}

static int cmd_compile(int argc, char **argv)
{
    static const struct option opts[] = {{"output", 1, 0, 'o'}, {"dump-after", 1, 0, 'a'}, {"dump-dir", 1, 0, 'd'},
                                         {"dump-format", 1, 0, 'f'}, {"pass-stats", 0, 0, 's'},
                                         {"external-data", 0, 0, 'e'}, {"no-fusion", 0, 0, 'F'},
                                         {"export-standard-ops", 0, 0, 'S'}, {"frames", 1, 0, 'T'},
                                         {"temporal-window", 1, 0, 'W'}, {"temporal-boundary", 1, 0, 'B'},
                                         {"emit-kernels", 1, 0, 'K'}, {"target", 1, 0, 'g'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *out = NULL, *emit_dir = NULL;
    int standard_ops = 0, frames = 0;
    CompileOptions co = {.verify = 1, .window = 1};
    OnnxSaveOptions so = {.external_data = -1, .producer = "vclipc " VCLIP_VERSION};
    int c;
    while ((c = getopt_long(argc, argv, "o:a:d:f:seFST:W:B:K:g:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'K': emit_dir = optarg; break;
        case 'g': if (target_parse(optarg, &co.target)) return usage_error("compile", "--target is cpu or cuda"); break;
        case 'a': co.dump_after = optarg; break;
        case 'd': co.dump_dir = optarg; break;
        case 'f':
            if (strcmp(optarg, "text") == 0) co.dump_format = DUMP_TEXT;
            else if (strcmp(optarg, "dot") == 0) co.dump_format = DUMP_DOT;
            else if (strcmp(optarg, "onnx") == 0) co.dump_format = DUMP_ONNX;
            else return usage_error("compile", "--dump-format is text, dot or onnx");
            break;
        case 's': co.pass_stats = 1; break;
        case 'e': so.external_data = 1; break;
        case 'F': co.no_fusion = 1; break;
        case 'S': standard_ops = 1; break;
        case 'T': if (cli_parse_int(optarg, 1, 4096, &frames)) return usage_error("compile", "--frames needs a positive integer"); break;
        case 'W': if (cli_parse_int(optarg, 0, 64, &co.window)) return usage_error("compile", "--temporal-window is 0..64"); break;
        case 'B':
            if (!strcmp(optarg, "zero")) co.boundary_mask = 0;
            else if (!strcmp(optarg, "mask")) co.boundary_mask = 1;
            else return usage_error("compile", "--temporal-boundary is zero or mask");
            break;
        case 'h': {
            printf("usage: vclipc compile MODEL.onnx -o OUT.onnx [options]\n"
                   "  --dump-after NAME|all   dump the graph after a pass (or import, or all)\n"
                   "  --dump-dir DIR          where dumps go (default .), named NN-PASS.EXT\n"
                   "  --dump-format FMT       text (default), dot or onnx\n"
                   "  --pass-stats            node counts and time per pass on stderr\n"
                   "  --external-data         store weights in OUT.onnx.data (automatic above 1 GiB)\n"
                   "  --no-fusion             run the cleanup passes only\n"
                   "  --emit-kernels DIR      write every generated kernel's source (C and CUDA C) to DIR\n"
                   "  --target cuda           also compile the generated kernels to PTX with NVRTC (for the\n"
                   "                          device's architecture, else sm_80 and sm_90; .ptx files with\n"
                   "                          --emit-kernels); cpu (default): C only, compiled when run\n"
                   "  --export-standard-ops   expand our ai.vclip ops into standard ONNX ops, so any\n"
                   "                          ONNX runtime can run the result\n"
                   "  --frames T              VCLIP: input 'video' [B, T, 3, H, W], output\n"
                   "                          'frame_embeddings' [B, T, D]; every attention attends over\n"
                   "                          frames t-w..t+w (no new parameters)\n"
                   "  --temporal-window W     w, default 1 (the paper's); 0 = the image model per frame\n"
                   "  --temporal-boundary B   zero (default: missing neighbour frames are zero keys and\n"
                   "                          values, as the released code does) or mask (left out)\n"
                   "passes, in order:\n");
            for (const Pass *p = default_pipeline; p->name; p++) printf("  %-32s %s\n", p->name, p->summary);
            for (const Pass *p = kernel_pipeline; p->name; p++) printf("  %-32s %s\n", p->name, p->summary);
            return 0;
        }
        default: return usage_error("compile", "unknown option");
        }
    }
    if (optind != argc - 1) return usage_error("compile", "expects exactly one model file");
    if (!out) return usage_error("compile", "missing -o OUT.onnx");
    char err[1024];
    co.frames = frames;
    if (compile_check(&co, err, sizeof err)) return usage_error("compile", err);
    Graph *g = load(argv[optind]);
    if (!g) return 1;
    int rc = 1;
    if (compile_graph(g, &co, err, sizeof err)) print_error(argv[optind], err);
    else if (emit_dir && emit_kernels(g, emit_dir, err, sizeof err)) print_error(emit_dir, err);
    else if (co.target == TARGET_CUDA && cuda_kernels_to_ptx(g, emit_dir, err, sizeof err)) print_error(argv[optind], err);
    else if (standard_ops && pass_lower_to_standard_ops(g, err, sizeof err) < 0) print_error(argv[optind], err);
    else if (onnx_save(g, out, &so, err, sizeof err)) die(err);
    else rc = 0;
    graph_free(g);
    return rc;
}

/* ---- dump ------------------------------------------------------------- */

static int cmd_dump(int argc, char **argv)
{
    static const struct option opts[] = {{"format", 1, 0, 'f'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int dot = 0, c;
    while ((c = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
        if (c == 'f') {
            if (strcmp(optarg, "dot") == 0) dot = 1;
            else if (strcmp(optarg, "text") != 0) return usage_error("dump", "--format is text or dot");
        } else if (c == 'h') { printf("usage: vclipc dump MODEL.onnx [--format text|dot]\n"); return 0; }
        else return usage_error("dump", "unknown option");
    }
    if (optind != argc - 1) return usage_error("dump", "expects exactly one model file");
    Graph *g = load(argv[optind]);
    if (!g) return 1;
    if (dot) graph_print_dot(g, stdout);
    else graph_print_text(g, stdout);
    graph_free(g);
    return 0;
}

int main(int argc, char **argv)
{
    /* Past a file-size limit, let write() fail with EFBIG so the atomic
     * writers can clean up and report, instead of dying on SIGXFSZ. */
    signal(SIGXFSZ, SIG_IGN);
    /* Weights are copied while the passes lay them out (transposed, packed):
     * a fixed threshold keeps every large buffer in its own mapping, so the
     * copy it replaces goes back to the system at once (glibc's moving
     * threshold would keep freed weights in the heap).  Sessions raise it
     * again for activations (runtime/exec.c). */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    if (argc < 2) { fputs(usage_main, stderr); return 2; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) { fputs(usage_main, stdout); return 0; }
    if (!strcmp(cmd, "--version")) { printf("vclipc %s\n", VCLIP_VERSION); return 0; }
    argv++;
    argc--;
    if (!strcmp(cmd, "inspect")) return cmd_inspect(argc, argv);
    if (!strcmp(cmd, "run")) return cmd_run(argc, argv);
    if (!strcmp(cmd, "compile")) return cmd_compile(argc, argv);
    if (!strcmp(cmd, "dump")) return cmd_dump(argc, argv);
    fprintf(stderr, "vclipc: unknown command '%s'\n\n%s", cmd, usage_main);
    return 2;
}
