/* test_cut_sequence.c — a text encoder cut to the first L positions of its
 * context (passes.h cut_sequence, CompileOptions.context) gives, bit for
 * bit, the features of the whole context on the same kernels, for rows whose
 * end-of-text token lies inside the first L positions: on the OpenAI-layout
 * exports (opsets 14 and 17, the dynamo exporter, the full vocabulary) and
 * the Hugging Face ones, in fp32 and bf16, at several lengths and batch
 * sizes.  The cut model shares the whole model's weights
 * (CompileOptions.share_with): the constants both hold are one copy.  Bad
 * lengths and graphs that are not text encoders are refused by name.
 *
 * The encoder (text_features.h), on HMDB-51's names under the 28 templates:
 * sorted by length and cut, the features equal the whole-context run's in
 * the given order, bit for bit, with the cut on and far fewer positions, on
 * the AVX-512 attention kernel and on the portable one (head dim 8, and
 * every head size on a CPU without AVX-512); on an encoder whose attention
 * is not causal (its end-of-text token sees the positions after it, so the
 * cut changes the features) the check on the first batch turns the cut off
 * and the features are still the exact ones. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "check.h"
#include "../../onnx/onnx_io.h"
#include "../../models/clip_builder.h"
#include "../../models/prompts.h"
#include "../../models/tokenizer/tokenizer_source.h"
#include "../../runtime/cpu/attention.h"
#include "../../runtime/cpu/gemm.h"
#include "../../runtime/eval/text_features.h"
#include "../../runtime/model.h"

#define FIXTURES VCLIP_DATA_DIR "/tests/fixtures/"

static uint64_t rng = 7;
static double urand(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (double)(rng >> 11) * (1.0 / 9007199254740992.0);
}

/* Rows of b prompts: start token, words, end-of-text (the largest id, as
 * CLIP's is) at position len[i] - 1, zeros after. */
static Tensor *prompts(int64_t b, int64_t context, int64_t vocab, const int *len, DType dt)
{
    int64_t dims[2] = {b, context};
    Tensor *t = tensor_new(dt, 2, dims);
    for (int64_t i = 0; i < b; i++)
        for (int64_t k = 0; k < context; k++) {
            int64_t id = k == 0 ? vocab - 2 : k < len[i] - 1 ? 1 + (int64_t)(urand() * (double)(vocab - 3)) : k == len[i] - 1 ? vocab - 1 : 0;
            tensor_set_f64(t, i * context + k, (double)id);
        }
    return t;
}

static Tensor *prefix(const Tensor *ids, int64_t L)
{
    int64_t dims[2] = {ids->dims[0], L};
    Tensor *t = tensor_new(ids->dtype, 2, dims);
    for (int64_t i = 0; i < ids->dims[0]; i++)
        for (int64_t k = 0; k < L; k++) tensor_set_f64(t, i * L + k, tensor_get_f64(ids, i * ids->dims[1] + k));
    return t;
}

static Tensor *run1(Model *m, Tensor *in)
{
    char err[1024];
    Tensor *outs[8] = {0};
    int rc = model_run(m, &in, outs, err, sizeof err);
    CHECK(rc == 0, "%s", err);
    for (int k = 1; k < model_graph(m)->n_outputs; k++) tensor_free(outs[k]);
    return rc ? NULL : outs[0];
}

static void test_model(const char *name, int64_t vocab, Precision p)
{
    char path[512], err[1024];
    snprintf(path, sizeof path, FIXTURES "%s/model.onnx", name);
    CompileOptions co = {.precision = p, .threads = 2};
    Model *whole = vclip_compile(path, &co, err, sizeof err);
    CHECK(whole != NULL, "%s: %s", name, err);
    if (!whole) return;
    const Value *in = model_graph(whole)->inputs[0];
    int64_t C = in->shape.d[1].n;
    static const int lengths[] = {2, 5, 9, 16, 33, 76};
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        int L = lengths[li];
        CompileOptions cut = co;
        cut.context = L;
        cut.share_with = whole;
        Model *m = vclip_compile(path, &cut, err, sizeof err);
        CHECK(m != NULL, "%s cut to %d: %s", name, L, err);
        if (!m) continue;
        CHECK(model_graph(m)->inputs[0]->shape.d[1].n == L, "%s: input cut to %d", name, L);
        for (int64_t b = 1; b <= 5; b += 4) {
            int len[5];
            for (int64_t i = 0; i < b; i++) len[i] = i == 0 ? L : 2 + (int)(urand() * (L - 1));
            Tensor *ids = prompts(b, C, vocab, len, in->dtype), *short_ids = prefix(ids, L);
            Tensor *a = run1(whole, ids), *c = run1(m, short_ids);
            if (a && c) {
                CHECK(a->nbytes == c->nbytes && memcmp(a->data, c->data, a->nbytes) == 0,
                      "%s %s: batch %lld cut to %d differs from the whole context", name, precision_name(p), (long long)b, L);
            }
            tensor_free(a);
            tensor_free(c);
            tensor_free(ids);
            tensor_free(short_ids);
        }
        model_free(m);
    }
    model_free(whole);
}

/* Compiled twice, the cut graph holds its weights once. */
static void test_sharing(void)
{
    char err[1024];
    const char *path = FIXTURES "openai_text_op17/model.onnx";
    CompileOptions co = {.threads = 1};
    Model *whole = vclip_compile(path, &co, err, sizeof err);
    Graph *g = onnx_load(path, err, sizeof err);
    CHECK(whole && g, "%s", err);
    if (!whole || !g) { model_free(whole); graph_free(g); return; }
    co.context = 12;
    CHECK(compile_graph(g, &co, err, sizeof err) == 0, "%s", err);
    size_t owned = 0;
    for (int i = 0; i < g->n_values; i++)
        if (g->values[i]->konst && g->values[i]->konst->buf) owned += g->values[i]->konst->nbytes;
    size_t shared = graph_share_constants(g, model_graph(whole));
    /* the packed Linear weights are most of what compiling makes */
    CHECK(shared > owned / 2, "shared %zu of %zu owned bytes", shared, owned);
    int same = 0;
    for (int i = 0; i < g->n_values; i++) {
        const Value *v = g->values[i];
        if (!v->konst || !strstr(v->name, "_packed")) continue;
        const Value *w = graph_find_value(model_graph(whole), v->name);
        same += w && w->konst && w->konst->data == v->konst->data;
    }
    int packed = 0;
    for (int i = 0; i < g->n_values; i++) packed += g->values[i]->konst && strstr(g->values[i]->name, "_packed") != NULL;
    CHECK(packed >= 9 && same == packed, "%d of %d packed weights point at the whole model's", same, packed);
    graph_free(g);
    model_free(whole);
}

static void test_refusals(void)
{
    char err[1024];
    CompileOptions co = {.context = 1};
    Model *m = vclip_compile(FIXTURES "openai_text_op17/model.onnx", &co, err, sizeof err);
    CHECK(!m && strstr(err, "context 1 is not between 2 and the model's 77"), "%s", err);
    model_free(m);
    co.context = 78;
    m = vclip_compile(FIXTURES "openai_text_op17/model.onnx", &co, err, sizeof err);
    CHECK(!m && strstr(err, "context 78"), "%s", err);
    model_free(m);
    co.context = 8;
    m = vclip_compile(FIXTURES "openai_visual_op17/model.onnx", &co, err, sizeof err);
    CHECK(!m && strstr(err, "one token input [batch, context]"), "%s", err);
    model_free(m);
}

/* The encoder over model (file), cut and whole; expect_cut: the cut stays on. */
static void test_encoder(const char *model, int expect_cut, Precision p)
{
    char err[1024];
    StringList names = {0}, tmpl = {0};
    CHECK(prompts_load_classes(VCLIP_DATA_DIR "/tests/fixtures/labels/hmdb51.txt", &names, err, sizeof err) == 0, "%s", err);
    prompts_default_templates(&tmpl);
    size_t n = names.n * tmpl.n;
    char **texts = calloc(n, sizeof *texts);
    for (size_t i = 0; i < names.n; i++)
        for (size_t k = 0; k < tmpl.n; k++) texts[i * tmpl.n + k] = prompts_fill(tmpl.items[k], names.items[i]);
    float *f[2] = {malloc(sizeof(float) * n * 64), malloc(sizeof(float) * n * 64)};
    int64_t positions[2] = {0, 0}, full = 0;
    int off = -1, dim = 0;
    for (int whole = 0; whole < 2; whole++) {
        Encoder e = {.batch = 64, .full_context = whole};
        CompileOptions co = {.threads = 2, .precision = p};
        e.tok = tokenizer_open(&(TokenizerSource){0}, err, sizeof err);
        CHECK(e.tok && encoder_open(&e, model, &co, err, sizeof err) == 0, "%s", err);
        if (!e.m) { clip_tokenizer_free(e.tok); continue; }
        CHECK(e.dim <= 64, "dim %d", e.dim);
        dim = e.dim;
        CHECK(encode_texts(&e, texts, n, f[whole], err, sizeof err) == 0, "%s", err);
        positions[whole] = e.positions;
        full = e.positions_full;
        if (!whole) off = e.cut_off;
        encoder_close(&e);
        clip_tokenizer_free(e.tok);
    }
    CHECK(dim && memcmp(f[0], f[1], sizeof(float) * n * (size_t)dim) == 0, "%s %s: sorted and cut features differ from the whole context's", model, precision_name(p));
    CHECK(positions[1] == full, "the whole context computes every position");
    if (expect_cut)
        CHECK(off == 0 && positions[0] * 4 < full, "%s: cut %s, %lld of %lld positions", model, off ? "off" : "on", (long long)positions[0], (long long)full);
    else
        CHECK(off == 1, "%s: the check turned the cut off", model);
    for (size_t i = 0; i < n; i++) free(texts[i]);
    free(texts);
    free(f[0]);
    free(f[1]);
    string_list_free(&names);
    string_list_free(&tmpl);
}

/* A random CLIP text tower (real vocabulary, head dim 32) saved as ONNX at
 * path (a mkstemps template ending in .onnx); causal 0 drops its attention's
 * causal mask. */
static void save_text_tower(char *path, int causal)
{
    char err[1024];
    ClipConfig cfg = {.context = 77, .vocab = 49408, .text_width = 64, .text_layers = 2, .text_heads = 2, .embed = 32};
    Graph *g = clip_text_graph(&cfg, 5, err, sizeof err);
    for (int i = 0; g && !causal && i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i]->n_attrs; k++)
            if (!strcmp(g->nodes[i]->attrs[k].name, "causal")) g->nodes[i]->attrs[k].i = 0;
    int fd = mkstemps(path, 5);
    CHECK(g && fd >= 0 && onnx_save(g, path, &(OnnxSaveOptions){.external_data = -1}, err, sizeof err) == 0, "%s", err);
    if (fd >= 0) close(fd);
    graph_free(g);
}

int main(void)
{
    static const struct { const char *name; int64_t vocab; } models[] = {
        {"openai_text_op17", 1000}, {"openai_text_op14", 1000}, {"openai_text_dynamo", 1000},
        {"hf_text_op17", 1000}, {"hf_text_op14", 1000},
    };
    int bf16 = gemm_available(DT_BF16);
    if (!bf16) printf("bf16 cases SKIPPED: this CPU has no AVX512-BF16 (the CPU backend refuses bf16 here)\n");
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        test_model(models[i].name, models[i].vocab, PRECISION_FP32);
        if (bf16) test_model(models[i].name, models[i].vocab, PRECISION_BF16);
    }
    test_sharing();
    test_refusals();
    /* a CLIP text tower of the real vocabulary with head dim 32 (the AVX-512 attention kernel, and the portable one) */
    char path[] = "/tmp/vclip-test-cut-XXXXXX.onnx";
    save_text_tower(path, 1);
    test_encoder(path, 1, PRECISION_FP32);
    if (bf16) test_encoder(path, 1, PRECISION_BF16);
    attention_force_portable(1);
    test_encoder(path, 1, PRECISION_FP32);
    attention_force_portable(0);
    unlink(path);
    /* head dim 8: the portable kernel on every CPU */
    test_encoder(FIXTURES "openai_text_fullvocab/model.onnx", 1, PRECISION_FP32);
    /* the same tower without its causal mask: the cut is caught */
    char open_path[] = "/tmp/vclip-test-cut-XXXXXX.onnx";
    save_text_tower(open_path, 0);
    test_encoder(open_path, 0, PRECISION_FP32);
    unlink(open_path);
    return TEST_SUMMARY();
}
