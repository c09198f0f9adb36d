/* pass_manager.c — runs named passes in order, verifies the graph after each
 * (when asked), dumps it after the requested ones, and reports statistics. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "passes.h"
#include "../ir/print.h"
#include "../ir/verify.h"
#include "../ir/base.h"

const Pass default_pipeline[] = {
    {"fold-constants", "evaluate constant nodes and known shape computations", pass_fold_constants, 0},
    {"fold-reshape-targets", "write symbolic Reshape targets as constants (0 = copy, -1 = infer)", pass_fold_reshape_targets, 0},
    {"remove-identities", "forward Identity, inference Dropout and no-op Cast", pass_remove_identities, 0},
    {"eliminate-common-subexpressions", "merge nodes with the same op, inputs and attributes", pass_eliminate_common_subexpressions, 0},
    {"eliminate-dead-code", "drop nodes and weights that reach no output", pass_eliminate_dead_code, 0},
    {"fuse-layernorm", "decomposed LayerNorm -> LayerNormalization", pass_fuse_layernorm, 1},
    {"fuse-gelu", "0.5*x*(1+erf(x/sqrt2)) -> ai.vclip.Gelu", pass_fuse_gelu, 1},
    {"fuse-quick-gelu", "x*sigmoid(1.702x) -> ai.vclip.QuickGelu", pass_fuse_quick_gelu, 1},
    {"fuse-linear", "MatMul + bias -> ai.vclip.Linear", pass_fuse_linear, 1},
    {"fuse-attention", "multi-head attention (any exporter's layout) -> ai.vclip.Attention", pass_fuse_attention, 1},
    {"eliminate-dead-code-after-fusion", "drop what the fusions left unused", pass_eliminate_dead_code, 1},
    {"sink-attention-transposes", "sequence-first attention blocks kept batch-first: their two Transposes go", pass_sink_attention_transposes, 1},
    {"narrow-to-pooled-row", "after the last attention's keys, only the pooled token's row (or each text's end-of-text row) is computed", pass_narrow_to_pooled_row, 1},
    {NULL, NULL, NULL, 0},
};

const Pass kernel_pipeline[] = {
    {"linear-from-gemm", "Gemm or MatMul over a constant weight -> ai.vclip.Linear", pass_linear_from_gemm, 1},
    {"fuse-linear-epilogue", "Linear + QuickGelu/Gelu + residual Add -> one Linear with a GEMM epilogue", pass_fuse_linear_epilogue, 1},
    {"pack-linear-weights", "constant Linear/Gemm weights -> column panels for the CPU GEMM", pass_pack_linear_weights, 1},
    {"shape-before-transpose", "Shape(Transpose(x)) -> Shape(x) gathered by the permutation", pass_shape_before_transpose, 1},
    {"fuse-elementwise", "elementwise chains, and the views they read -> ai.vclip.FusedElementwise (generated kernels)", pass_fuse_elementwise, 1},
    {"fuse-reduce", "last-axis reductions with their elementwise prologue and epilogue -> ai.vclip.FusedReduce", pass_fuse_reduce, 1},
    {NULL, NULL, NULL, 0},
};

static int dump(Graph *g, const PassOptions *opt, int index, const char *name, char *err, size_t cap)
{
    const char *dir = opt->dump_dir ? opt->dump_dir : ".";
    static const char *ext[] = {"txt", "dot", "onnx"};
    char path[4096];
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) { snprintf(err, cap, "%s: %s", dir, strerror(errno)); return -1; }
    snprintf(path, sizeof path, "%s/%02d-%s.%s", dir, index, name, ext[opt->dump_format]);
    if (opt->dump_format == DUMP_ONNX) {
        if (!opt->write_onnx) { snprintf(err, cap, "ONNX dumps need a writer (PassOptions.write_onnx)"); return -1; }
        return opt->write_onnx(g, path, err, cap);
    }
    FILE *f = fopen(path, "w");
    if (!f) { snprintf(err, cap, "%s: %s", path, strerror(errno)); return -1; }
    if (opt->dump_format == DUMP_DOT) graph_print_dot(g, f);
    else graph_print_text(g, f);
    if (fclose(f) != 0) { snprintf(err, cap, "%s: %s", path, strerror(errno)); return -1; }
    return 0;
}

int run_passes(Graph *g, const Pass *pipeline, const PassOptions *opt, char *err, size_t cap)
{
    PassOptions none = {0};
    if (!opt) opt = &none;
    const Pass *const known[] = {default_pipeline, kernel_pipeline, pipeline};
    if (opt->dump_after && strcmp(opt->dump_after, "all") != 0) {
        int found = strcmp(opt->dump_after, "import") == 0;
        for (int k = 0; k < 3; k++)
            for (const Pass *p = known[k]; p->name; p++) if (strcmp(p->name, opt->dump_after) == 0) found = 1;
        if (!found) {
            size_t len = (size_t)snprintf(err, cap, "--dump-after: unknown pass '%s' (passes: import", opt->dump_after);
            for (int k = 0; k < 2; k++)
                for (const Pass *p = known[k]; p->name && len < cap; p++) len += (size_t)snprintf(err + len, cap - len, ", %s", p->name);
            if (len < cap) snprintf(err + len, cap - len, ", all)");
            return -1;
        }
    }
    int want_all = opt->dump_after && strcmp(opt->dump_after, "all") == 0;
    if (!opt->first_index) { /* the first pipeline of a compilation also shows the imported graph */
        if ((want_all || (opt->dump_after && strcmp(opt->dump_after, "import") == 0)) && dump(g, opt, 0, "import", err, cap)) return -1;
        if (opt->stats) fprintf(stderr, "%-24s %8s %8s %10s\n", "pass", "nodes", "changes", "ms");
        if (opt->stats) fprintf(stderr, "%-24s %8d %8s %10s\n", "import", g->n_nodes, "-", "-");
    }
    int index = opt->first_index ? opt->first_index : 1;
    for (const Pass *p = pipeline; p->name; p++, index++) {
        if (p->fusion && opt->no_fusion) continue;
        double t0 = now_ms();
        int changes = p->run(g, err, cap);
        double t1 = now_ms();
        if (changes < 0) return -1;
        if (opt->stats) fprintf(stderr, "%-24s %8d %8d %10.2f\n", p->name, g->n_nodes, changes, t1 - t0);
        if (opt->verify) {
            char msg[IR_ERR_CAP];
            if (graph_verify(g, msg, sizeof msg)) { snprintf(err, cap, "verifier failed after pass '%s': %s", p->name, msg); return -1; }
        }
        if ((want_all || (opt->dump_after && strcmp(opt->dump_after, p->name) == 0)) && dump(g, opt, index, p->name, err, cap))
            return -1;
    }
    return 0;
}

int pipeline_length(const Pass *pipeline)
{
    int n = 0;
    while (pipeline[n].name) n++;
    return n;
}
