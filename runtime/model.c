/* model.c — see model.h.  The pass pipeline for a target and precision is
 * decided here and nowhere else. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model.h"
#include "../ir/ops.h"
#include "../onnx/onnx_io.h"

struct Model {
    Graph *g;
    int owns_graph;
    const Backend *be;
    void *session;
    int outputs_in_arena; /* outputs belong to the session */
    Precision precision;  /* as resolved (never AUTO) */
};

/* o with --precision auto replaced by the target's choice (fp32 where the
 * options need the unfused or reference kernels). */
static CompileOptions resolved(const CompileOptions *o)
{
    CompileOptions r = *o;
    if (r.precision == PRECISION_AUTO)
        r.precision = r.no_fusion || r.reference_only ? PRECISION_FP32 : backend_for(r.target)->auto_precision();
    return r;
}

static int write_onnx_dump(const Graph *g, const char *path, char *err, size_t cap)
{
    OnnxSaveOptions so = {.external_data = -1};
    return onnx_save(g, path, &so, err, cap);
}

static PassOptions pass_options(const CompileOptions *o, int first_index)
{
    PassOptions po = {.dump_after = o->dump_after, .dump_dir = o->dump_dir, .dump_format = o->dump_format,
                      .verify = o->verify, .stats = o->pass_stats, .no_fusion = o->no_fusion,
                      .first_index = first_index, .write_onnx = write_onnx_dump};
    return po;
}

int compile_check(const CompileOptions *opt, char *err, size_t cap)
{
    CompileOptions r = resolved(opt);
    const CompileOptions *o = &r;
    if (o->precision == PRECISION_FP16 && o->target != TARGET_CUDA) {
        snprintf(err, cap, "--precision fp16 is for --target cuda (the CPU has bf16)");
        return -1;
    }
    if (o->reference_only && o->target != TARGET_CPU) {
        snprintf(err, cap, "--reference runs the CPU's reference kernels (drop --target %s)", target_name(o->target));
        return -1;
    }
    if (o->precision != PRECISION_FP32 && (o->no_fusion || o->reference_only)) {
        snprintf(err, cap, "--precision %s runs on the fused, packed kernels (drop --no-fusion and --reference)", precision_name(o->precision));
        return -1;
    }
    if (o->frames > 0 && o->no_fusion) {
        snprintf(err, cap, "--frames needs the fusion passes (drop --no-fusion)");
        return -1;
    }
    if (o->frames < 0 || o->window < 0) {
        snprintf(err, cap, "the frames and the temporal window cannot be negative");
        return -1;
    }
    return 0;
}

int compile_frontend(Graph *g, const CompileOptions *o, char *err, size_t cap)
{
    if (compile_check(o, err, cap)) return -1;
    PassOptions po = pass_options(o, 0);
    if (o->context > 0 && cut_sequence(g, o->context, err, cap) < 0) return -1;
    if (run_passes(g, default_pipeline, &po, err, cap)) return -1;
    if (o->frames > 0) {
        TemporalOptions to = {.frames = o->frames, .window = o->window, .boundary_mask = o->boundary_mask};
        if (temporal_attention(g, &to, err, cap) < 0) return -1;
    }
    return 0;
}

int compile_kernels(Graph *g, const CompileOptions *opt, char *err, size_t cap)
{
    CompileOptions r = resolved(opt);
    const CompileOptions *o = &r;
    PassOptions po = pass_options(o, pipeline_length(default_pipeline) + 1);
    if (run_passes(g, kernel_pipeline, &po, err, cap)) return -1;
    /* bf16 on the CPU: constant Linear weights stored in bf16 once, here;
     * GEMMs of f32 operands (weights being trained, the backward pass)
     * marked to round them; the activations that only bf16 Linears read
     * stored in bf16 by their producers.  CUDA casts per GEMM inside its
     * session (cuBLASLt's bf16/fp16 inputs). */
    if (o->target == TARGET_CPU && o->precision == PRECISION_BF16 &&
        (pass_cast_linear_weights_bf16(g, err, cap) < 0 || pass_mark_bf16_gemms(g, err, cap) < 0 ||
         pass_bf16_activations(g, err, cap) < 0)) return -1;
    /* f32 MLP hidden rows 4 KB multiples apart are packed by the CPU GEMM;
     * one zero panel more lets it read them in place */
    const Backend *be = backend_for(o->target);
    if (!o->no_fusion && !o->reference_only && be->reads_rows_in_place && be->reads_rows_in_place(o->precision) &&
        pass_pad_linear_hidden(g, err, cap) < 0) return -1;
    return 0;
}

int compile_graph(Graph *g, const CompileOptions *o, char *err, size_t cap)
{
    return compile_frontend(g, o, err, cap) || compile_kernels(g, o, err, cap) ? -1 : 0;
}

Model *model_new(Graph *g, int take_graph, const CompileOptions *opt, char *err, size_t cap)
{
    CompileOptions r = resolved(opt);
    const CompileOptions *o = &r;
    const Backend *be = backend_for(o->target);
    char why[512];
    Model *m = NULL;
    if (be->available(why, sizeof why)) { snprintf(err, cap, "--target %s: %s", be->name, why); goto fail; }
    m = calloc(1, sizeof *m);
    if (!m) { snprintf(err, cap, "out of memory"); goto fail; }
    BackendOptions bo = {.threads = o->threads, .precision = o->precision, .reference_only = o->reference_only,
                         .outputs_in_arena = o->outputs_in_arena, .no_graphs = o->no_graphs};
    m->session = be->session_new(g, &bo, err, cap);
    if (!m->session) goto fail;
    m->g = g;
    m->owns_graph = take_graph;
    m->outputs_in_arena = o->outputs_in_arena;
    m->precision = o->precision;
    m->be = be;
    return m;
fail:
    free(m);
    if (take_graph) graph_free(g);
    return NULL;
}

Model *vclip_compile_graph(Graph *g, const char *name, const CompileOptions *o, char *err, size_t cap)
{
    char msg[1024];
    if (compile_graph(g, o, msg, sizeof msg)) {
        snprintf(err, cap, "%s: %s", name, msg);
        graph_free(g);
        return NULL;
    }
    if (o->share_with) graph_share_constants(g, o->share_with->g);
    return model_new(g, 1, o, err, cap);
}

Model *vclip_compile(const char *onnx_path, const CompileOptions *o, char *err, size_t cap)
{
    char msg[1024];
    if (compile_check(o, msg, sizeof msg)) { snprintf(err, cap, "%s", msg); return NULL; }
    Graph *g = onnx_load(onnx_path, err, cap);
    return g ? vclip_compile_graph(g, onnx_path, o, err, cap) : NULL;
}

void model_free(Model *m)
{
    if (!m) return;
    m->be->session_free(m->session);
    if (m->owns_graph) graph_free(m->g);
    free(m);
}

Graph *model_graph(const Model *m) { return m->g; }
const Backend *model_backend(const Model *m) { return m->be; }

int model_run(Model *m, Tensor *const *inputs, Tensor **outputs, char *err, size_t cap)
{
    return m->be->run(m->session, inputs, outputs, err, cap);
}

int model_select_device(Target t, int ordinal, char *err, size_t cap)
{
    const Backend *be = backend_for(t);
    return be->select_device ? be->select_device(ordinal, err, cap) : 0;
}

int model_observe(Model *m, void (*fn)(void *ctx, int output, const Tensor *value), void *ctx)
{
    if (!m->be->observe) return -1;
    m->be->observe(m->session, fn, ctx);
    return 0;
}

int model_train_begin(Model *m, const TrainSpec *spec, char *err, size_t cap)
{
    if (!m->be->train_begin) return 1;
    return m->be->train_begin(m->session, spec, err, cap);
}

int model_train_run(Model *m, Tensor *const *inputs, Tensor **outputs, TrainStep *step, char *err, size_t cap)
{
    return m->be->train_run(m->session, inputs, outputs, step, err, cap);
}

int model_can_stage(const Model *m) { return m->be->stage != NULL; }

void model_while_running(Model *m, int (*fn)(void *ctx, char *err, size_t cap), void *ctx)
{
    if (m->be->while_running) m->be->while_running(m->session, fn, ctx);
}

int model_stage(Model *m, Tensor *const *inputs, char *err, size_t cap)
{
    if (!m->be->stage) return 1;
    return m->be->stage(m->session, inputs, err, cap);
}

int model_train_sync(Model *m, Tensor *const *mom1, Tensor *const *mom2, Tensor *const *swa, int to_host, char *err, size_t cap)
{
    return m->be->train_sync(m->session, mom1, mom2, swa, to_host, err, cap);
}

int model_train_swa(Model *m, double weight, char *err, size_t cap)
{
    return m->be->train_swa(m->session, weight, err, cap);
}

int model_input_index(const Model *m, const char *name)
{
    for (int i = 0; i < m->g->n_inputs; i++) if (!strcmp(m->g->inputs[i]->name, name)) return i;
    return -1;
}

int model_output_index(const Model *m, const char *name)
{
    for (int i = 0; i < m->g->n_outputs; i++) if (!strcmp(m->g->outputs[i]->name, name)) return i;
    return -1;
}

int model_run_named(Model *m, int n_in, const char *const *in_names, Tensor *const *inputs, int n_out,
                    const char *const *out_names, Tensor **outputs, char *err, size_t cap)
{
    const Graph *g = m->g;
    Tensor **in = calloc((size_t)g->n_inputs + 1, sizeof *in), **out = calloc((size_t)g->n_outputs + 1, sizeof *out);
    int rc = -1;
    if (!in || !out) { snprintf(err, cap, "out of memory"); goto done; }
    for (int i = 0; i < n_out; i++) outputs[i] = NULL;
    for (int i = 0; i < n_in; i++) {
        int k = model_input_index(m, in_names[i]);
        if (k < 0) { snprintf(err, cap, "the model has no input named '%s'", in_names[i]); goto done; }
        in[k] = inputs[i];
    }
    for (int k = 0; k < g->n_inputs; k++)
        if (!in[k]) { snprintf(err, cap, "input '%s' is not given", g->inputs[k]->name); goto done; }
    int want[64];
    if (n_out > 64) { snprintf(err, cap, "at most 64 outputs by name"); goto done; }
    for (int i = 0; i < n_out; i++) {
        want[i] = model_output_index(m, out_names[i]);
        if (want[i] < 0) { snprintf(err, cap, "the model has no output named '%s'", out_names[i]); goto done; }
    }
    if (model_run(m, in, out, err, cap)) goto done;
    for (int i = 0; i < n_out; i++) { outputs[i] = out[want[i]]; out[want[i]] = NULL; }
    rc = 0;
done:
    for (int k = 0; out && !m->outputs_in_arena && k < g->n_outputs; k++) tensor_free(out[k]); /* the ones not asked for */
    free(in);
    free(out);
    return rc;
}

void model_stats(const Model *m, ModelStats *st)
{
    memset(st, 0, sizeof *st);
    m->be->stats(m->session, &st->backend);
    st->nodes = m->g->n_nodes;
    st->precision = m->precision;
    for (int i = 0; i < m->g->n_nodes; i++) {
        int op = m->g->nodes[i]->op;
        st->generated_kernels += op == OP_FUSED_ELEMENTWISE || op == OP_FUSED_REDUCE;
    }
}
