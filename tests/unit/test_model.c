/* test_model.c — the compile API (runtime/model.h) and the backend tables
 * (runtime/backend.h): option combinations that cannot work are refused
 * with the option named; a target that is not here says so; the same
 * export compiled for the CPU runs by position and by name and agrees
 * with the reference kernels (the oracle); --no-fusion leaves no generated
 * kernels; frames make an image encoder a video encoder; narrowing the
 * last block to the pooled row changes no output bit; on the emulated
 * device (cuda_emulator.h) the CUDA target gives the CPU's answer and every
 * buffer it took is returned; both backends' buffers round-trip bytes; the
 * trainer refuses a target it cannot train on. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "compare.h"
#include "cuda_emulator.h"
#include "../../onnx/onnx_io.h"
#include "../../passes/passes.h"
#include "../../runtime/cpu/gemm.h"
#include "../../runtime/model.h"
#include "../../runtime/npy.h"
#include "../../runtime/train/trainer.h"

#define FIXTURE VCLIP_DATA_DIR "/tests/fixtures/openai_visual_op17/model.onnx"
#define INPUT VCLIP_DATA_DIR "/tests/fixtures/openai_visual_op17/input_image.npy"

static void test_refusals(void)
{
    char err[512];
    struct { CompileOptions o; const char *names; } bad[] = {
        {{.precision = PRECISION_FP16}, "fp16"},
        {{.target = TARGET_CUDA, .reference_only = 1}, "--reference"},
        {{.precision = PRECISION_BF16, .no_fusion = 1}, "--no-fusion"},
        {{.frames = 8, .window = 1, .no_fusion = 1}, "--frames"},
        {{.frames = -1}, "negative"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        CHECK(compile_check(&bad[i].o, err, sizeof err) == -1 && strstr(err, bad[i].names), "case %zu: %s", i, err);
        Model *m = vclip_compile(FIXTURE, &bad[i].o, err, sizeof err);
        CHECK(m == NULL, "case %zu compiled", i);
        model_free(m);
    }
    CHECK(compile_check(&(CompileOptions){.target = TARGET_CUDA, .precision = PRECISION_FP16}, err, sizeof err) == 0, "%s", err);
    Target t;
    Precision p;
    CHECK(target_parse("cuda", &t) == 0 && t == TARGET_CUDA && target_parse("gpu", &t) == -1, "target names");
    CHECK(precision_parse("bf16", &p) == 0 && p == PRECISION_BF16 && precision_parse("f32", &p) == -1, "precision names");
    CHECK(trainer_check_target(TARGET_CPU, err, sizeof err) == 0, "the trainer runs on the CPU");
    if (cuda_backend.available(err, sizeof err))
        CHECK(trainer_check_target(TARGET_CUDA, err, sizeof err) == -1 && strstr(err, "--target cuda: cannot train there"), "%s", err);
    Model *m = vclip_compile(VCLIP_DATA_DIR "/tests/fixtures/no-such-model.onnx", &(CompileOptions){0}, err, sizeof err);
    CHECK(m == NULL && strstr(err, "no-such-model.onnx"), "a missing file is named: %s", err);
}

/* Before the emulator: the CUDA target on this machine. */
static void test_unavailable_target(void)
{
    char why[512], err[1024];
    if (cuda_backend.available(why, sizeof why) == 0) {
        printf("SKIP: the unavailable-target check: this machine has a CUDA device (%s)\n", why);
        return;
    }
    Model *m = vclip_compile(FIXTURE, &(CompileOptions){.target = TARGET_CUDA}, err, sizeof err);
    CHECK(m == NULL && strstr(err, "--target cuda:") && strstr(err, why), "the reason is given: %s", err);
    model_free(m);
}

static Tensor *run_one(Model *m, const Tensor *in)
{
    char err[1024];
    Tensor *out[4] = {0};
    Tensor *x = (Tensor *)in;
    CHECK(model_run(m, &x, out, err, sizeof err) == 0, "%s", err);
    for (int k = 1; k < model_graph(m)->n_outputs; k++) tensor_free(out[k]);
    return out[0];
}

static void test_cpu(const Tensor *in)
{
    char err[1024];
    Model *fast = vclip_compile(FIXTURE, &(CompileOptions){.threads = 2}, err, sizeof err);
    Model *ref = vclip_compile(FIXTURE, &(CompileOptions){.reference_only = 1, .no_fusion = 1}, err, sizeof err);
    CHECK(fast && ref, "%s", err);
    if (!fast || !ref) { model_free(fast); model_free(ref); return; }
    Tensor *a = run_one(fast, in), *b = run_one(ref, in);
    CHECK(rel_diff(a, b) < 1e-4, "fused CPU vs reference kernels: %g", rel_diff(a, b));
    /* by name: the same answer; unknown and missing names are named */
    const Graph *g = model_graph(fast);
    const char *in_name = g->inputs[0]->name, *out_name = g->outputs[0]->name;
    Tensor *x = (Tensor *)in, *named = NULL;
    CHECK(model_run_named(fast, 1, &in_name, &x, 1, &out_name, &named, err, sizeof err) == 0, "%s", err);
    CHECK(rel_diff(named, a) == 0, "by name vs by position: %g", rel_diff(named, a));
    const char *bogus = "no_such_input";
    Tensor *none = NULL;
    CHECK(model_run_named(fast, 1, &bogus, &x, 1, &out_name, &none, err, sizeof err) == -1 && strstr(err, "no_such_input"), "%s", err);
    CHECK(model_run_named(fast, 0, NULL, NULL, 1, &out_name, &none, err, sizeof err) == -1 && strstr(err, in_name) && !none, "%s", err);
    ModelStats fs, rs;
    model_stats(fast, &fs);
    model_stats(ref, &rs);
    CHECK(fs.generated_kernels > 0 && rs.generated_kernels == 0, "generated kernels: fused %d, --no-fusion %d", fs.generated_kernels, rs.generated_kernels);
    CHECK(fs.backend.peak_bytes > 0 && fs.nodes < rs.nodes, "stats: peak %zu, nodes %d vs %d", fs.backend.peak_bytes, fs.nodes, rs.nodes);
    CHECK(model_backend(fast) == &cpu_backend, "the CPU target runs on the CPU backend");
    tensor_free(a);
    tensor_free(b);
    tensor_free(named);
    model_free(fast);
    model_free(ref);
    /* frames: an image encoder becomes a video encoder */
    Model *v = vclip_compile(FIXTURE, &(CompileOptions){.frames = 8, .window = 1}, err, sizeof err);
    CHECK(v && model_graph(v)->inputs[0]->shape.rank == 5 && model_graph(v)->inputs[0]->shape.d[1].n == 8, "%s", v ? "rank" : err);
    model_free(v);
}

/* The fixture compiled through the default pipeline without
 * narrow-to-pooled-row, then as vclip_compile does: the narrowed graph
 * computes the last block's MLP on the pooled row alone, and its output is
 * the full graph's to the bit (the same kernels on the same rows), as an
 * image encoder, as VCLIP (frames 8) and in bf16 where the CPU has it. */
static Model *compiled_without_narrowing(const char *path, const CompileOptions *co, char *err, size_t cap)
{
    Pass pipeline[64];
    int n = 0;
    for (const Pass *p = default_pipeline; p->name && n < 63; p++)
        if (strcmp(p->name, "narrow-to-pooled-row")) pipeline[n++] = *p;
    pipeline[n] = (Pass){0};
    Graph *g = onnx_load(path, err, cap);
    if (!g) return NULL;
    TemporalOptions to = {.frames = co->frames, .window = co->window};
    if (run_passes(g, pipeline, &(PassOptions){0}, err, cap) || (co->frames && temporal_attention(g, &to, err, cap) < 0) ||
        compile_kernels(g, co, err, cap)) {
        graph_free(g);
        return NULL;
    }
    return model_new(g, 1, co, err, cap);
}

static void test_pooled_row(const Tensor *image)
{
    char err[1024];
    int64_t vd[5] = {2, 8, image->dims[1], image->dims[2], image->dims[3]};
    Tensor *video = tensor_new(DT_F32, 5, vd);
    int64_t per = image->dims[1] * image->dims[2] * image->dims[3];
    for (int64_t f = 0; f < 16; f++) /* 16 frames: the first image, each brightened a little more */
        for (int64_t i = 0; i < per; i++) ((float *)video->data)[f * per + i] = ((const float *)image->data)[i] * (1.0f + 0.03f * (float)f);
    for (int c = 0; c < 4; c++) {
        int frames = c % 2 ? 8 : 0, bf16 = c >= 2;
        if (bf16 && !gemm_available(DT_BF16)) {
            printf("narrow-to-pooled-row in bf16: SKIPPED, this CPU has no AVX512-BF16\n");
            continue;
        }
        CompileOptions co = {.threads = 2, .frames = frames, .window = frames ? 1 : 0, .precision = bf16 ? PRECISION_BF16 : PRECISION_FP32};
        Model *narrowed = vclip_compile(FIXTURE, &co, err, sizeof err), *full = narrowed ? compiled_without_narrowing(FIXTURE, &co, err, sizeof err) : NULL;
        CHECK(narrowed && full, "%s", err);
        if (narrowed && full) {
            int one_row = 0, all_rows = 0;
            const Graph *g = model_graph(narrowed);
            for (int i = 0; i < g->n_nodes; i++) {
                const Value *o = g->nodes[i]->out[0];
                if (g->nodes[i]->op != OP_LINEAR || o->shape.rank != 3) continue;
                if (o->shape.d[1].n == 1) one_row++;
                else all_rows++;
            }
            CHECK(one_row == 2 && all_rows >= 3, "%s%s: %d Linears on the pooled row (want the last MLP's 2), %d on every row",
                  frames ? "VCLIP" : "image", bf16 ? " bf16" : "", one_row, all_rows);
            const Tensor *in = frames ? video : image;
            Tensor *a = run_one(narrowed, in), *b = run_one(full, in);
            CHECK(a && b && a->nbytes == b->nbytes && !memcmp(a->data, b->data, a->nbytes), "%s%s: narrowed vs full graph differ (%g)",
                  frames ? "VCLIP" : "image", bf16 ? " bf16" : "", a && b ? rel_diff(a, b) : -1.0);
            tensor_free(a);
            tensor_free(b);
        }
        model_free(narrowed);
        model_free(full);
    }
    tensor_free(video);
}

/* The text towers (OpenAI's and Hugging Face's exports) pool each sequence's
 * end-of-text row by a Gather at indices computed from the tokens: the
 * narrowed graph runs the last block from its out-projection on, and the
 * final LayerNorm, on those rows alone (three Linears and the projection on
 * [B, C]), and its features are the full graph's to the bit, in fp32 and in
 * bf16 where the CPU has it.  Sequences of different lengths, so that the
 * rows differ per batch element. */
static void test_pooled_text_rows(void)
{
    static const char *const paths[] = {VCLIP_DATA_DIR "/tests/fixtures/openai_text_op17/model.onnx",
                                        VCLIP_DATA_DIR "/tests/fixtures/hf_text_op17/model.onnx"};
    char err[1024];
    int64_t dims[2] = {3, 77};
    Tensor *tokens = tensor_new(DT_I64, 2, dims);
    int64_t *t = tokens->data;
    memset(t, 0, tokens->nbytes);
    for (int b = 0; b < 3; b++) {
        int64_t n = 4 + 9 * b; /* end of text at 5, 14, 23 */
        t[b * 77] = 998; /* the fixtures' vocabulary is 1000 tokens; end of text the largest (argmax pools it) */
        for (int64_t i = 1; i <= n; i++) t[b * 77 + i] = 10 + 31 * i + b;
        t[b * 77 + n + 1] = 999;
    }
    for (int c = 0; c < 4; c++) {
        const char *path = paths[c % 2];
        int bf16 = c >= 2;
        if (bf16 && !gemm_available(DT_BF16)) {
            printf("narrow-to-pooled-row on text in bf16: SKIPPED, this CPU has no AVX512-BF16\n");
            continue;
        }
        CompileOptions co = {.threads = 2, .precision = bf16 ? PRECISION_BF16 : PRECISION_FP32};
        Model *narrowed = vclip_compile(path, &co, err, sizeof err), *full = narrowed ? compiled_without_narrowing(path, &co, err, sizeof err) : NULL;
        CHECK(narrowed && full, "%s", err);
        if (narrowed && full) {
            int pooled = 0, every[2] = {0, 0}; /* Linears on the pooled rows; on every row, narrowed and full */
            for (int m = 0; m < 2; m++) {
                const Graph *g = model_graph(m ? full : narrowed);
                for (int i = 0; i < g->n_nodes; i++) {
                    const Value *o = g->nodes[i]->out[0];
                    if (g->nodes[i]->op != OP_LINEAR) continue;
                    if (o->shape.rank == 2 && o->shape.d[0].n == 1 && o->shape.d[0].sym == g->outputs[0]->shape.d[0].sym) pooled += !m;
                    else every[m]++;
                }
            }
            CHECK(pooled == 4 && every[0] == every[1] - 3, "%s%s: %d Linears on the pooled rows (want out_proj, fc1, fc2 and the projection), "
                  "%d on every row (want the full graph's %d less those three)", path, bf16 ? " bf16" : "", pooled, every[0], every[1]);
            Tensor *a = run_one(narrowed, tokens), *b = run_one(full, tokens);
            CHECK(a && b && a->nbytes == b->nbytes && !memcmp(a->data, b->data, a->nbytes), "%s%s: narrowed vs full graph differ (%g)", path,
                  bf16 ? " bf16" : "", a && b ? rel_diff(a, b) : -1.0);
            tensor_free(a);
            tensor_free(b);
        }
        model_free(narrowed);
        model_free(full);
    }
    tensor_free(tokens);
}

static void test_buffers(const Backend *be)
{
    char err[256];
    unsigned long long h = 0;
    float src[64], dst[64];
    for (int i = 0; i < 64; i++) { src[i] = (float)i * 0.5f - 3; dst[i] = 0; }
    CHECK(be->buffer_alloc(sizeof src, &h, err, sizeof err) == 0 && h, "%s: %s", be->name, err);
    CHECK(be->buffer_write(h, src, sizeof src, err, sizeof err) == 0, "%s: %s", be->name, err);
    CHECK(be->buffer_read(dst, h, sizeof dst, err, sizeof err) == 0 && !memcmp(src, dst, sizeof src), "%s: round trip", be->name);
    be->buffer_free(h);
}

static void test_emulated_cuda(const Tensor *in)
{
    char err[1024];
    emulate_cuda();
    long start = emu.live_allocs;
    Model *dev = vclip_compile(FIXTURE, &(CompileOptions){.target = TARGET_CUDA}, err, sizeof err);
    Model *cpu = vclip_compile(FIXTURE, &(CompileOptions){.threads = 2}, err, sizeof err);
    CHECK(dev && cpu, "%s", err);
    if (dev && cpu) {
        for (int run = 0; run < 3; run++) { /* eager, planned, captured */
            Tensor *a = run_one(dev, in), *b = run_one(cpu, in);
            CHECK(rel_diff(a, b) < 1e-4, "run %d: CUDA target vs CPU: %g", run, rel_diff(a, b));
            tensor_free(a);
            tensor_free(b);
        }
        ModelStats st;
        model_stats(dev, &st);
        CHECK(model_backend(dev) == &cuda_backend && st.backend.device_nodes > 0 && st.backend.weight_bytes > 0,
              "device nodes %d, weights %zu", st.backend.device_nodes, st.backend.weight_bytes);
    }
    model_free(dev);
    model_free(cpu);
    test_buffers(&cuda_backend);
    cublaslt_release();
    CHECK(emu.live_allocs == start, "%ld emulated device buffers never freed", emu.live_allocs - start);
}

int main(void)
{
    char err[1024];
    Tensor *in = npy_load(INPUT, err, sizeof err);
    CHECK(in != NULL, "%s", err);
    if (!in) return TEST_SUMMARY();
    test_refusals();
    test_unavailable_target();
    test_cpu(in);
    test_pooled_row(in);
    test_pooled_text_rows();
    test_buffers(&cpu_backend);
    test_emulated_cuda(in);
    tensor_free(in);
    return TEST_SUMMARY();
}
