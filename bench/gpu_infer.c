/* gpu_infer.c — the C side of bench/bench_gpu.py: builds a CLIP image tower
 * of ViT-B size (our builder, seeded random weights: OpenAI's architecture),
 * compiles it for CUDA (compile API), and times it on the CUDA backend (fp32
 * or bf16 GEMMs) after warm-up (the arena is planned and the CUDA graph
 * recorded by then); then runs the CPU backend once on the same input and
 * reports the device's error against it.  Prints one JSON line.
 * Usage: gpu_infer PATCH BATCH REPEAT fp32|bf16 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../models/clip_builder.h"
#include "../runtime/model.h"
#include "../ir/base.h"

static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

int main(int argc, char **argv)
{
    if (argc < 5) { fprintf(stderr, "usage: gpu_infer PATCH BATCH REPEAT fp32|bf16\n"); return 2; }
    int patch = atoi(argv[1]), batch = atoi(argv[2]), repeat = atoi(argv[3]), bf16 = !strcmp(argv[4], "bf16");
    char err[1024];
    ClipConfig c = {.image = 224, .patch = patch, .width = 768, .layers = 12, .heads = 12, .embed = 512};
    Graph *g = clip_visual_graph(&c, 7, err, sizeof err);
    CompileOptions co = {.target = TARGET_CUDA, .precision = bf16 ? PRECISION_BF16 : PRECISION_FP32}, cpu_co = {0};
    if (!g || compile_graph(g, &co, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    Tensor *x = tensor_new(DT_F32, 4, (int64_t[]){batch, 3, 224, 224}), *y = NULL;
    uint64_t s = 11;
    for (int64_t i = 0; i < tensor_numel(x); i++) { s = s * 6364136223846793005ull + 1; ((float *)x->data)[i] = (float)((s >> 40) / 8388608.0 - 1.0); }
    Model *cs = model_new(g, 0, &co, err, sizeof err);
    if (!cs) { fprintf(stderr, "%s\n", err); return 1; }
    double *t = calloc((size_t)repeat, sizeof *t);
    for (int it = -3; it < repeat; it++) {
        tensor_free(y);
        y = NULL;
        double a = now_ms();
        if (model_run(cs, &x, &y, err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
        if (it >= 0) t[it] = now_ms() - a;
    }
    qsort(t, (size_t)repeat, sizeof *t, cmp);
    Model *cpu = model_new(g, 0, &cpu_co, err, sizeof err);
    Tensor *want = NULL;
    if (!cpu || model_run(cpu, &x, &want, err, sizeof err)) { fprintf(stderr, "cpu: %s\n", err); return 1; }
    double worst = 0, scale = 1e-6;
    for (int64_t i = 0; i < tensor_numel(want); i++) scale = fmax(scale, fabs(((float *)want->data)[i]));
    for (int64_t i = 0; i < tensor_numel(want); i++) worst = fmax(worst, fabs(((float *)y->data)[i] - ((float *)want->data)[i]) / scale);
    model_free(cpu);
    tensor_free(want);
    ModelStats ms;
    model_stats(cs, &ms);
    const BackendStats st = ms.backend;
    printf("{\"patch\": %d, \"batch\": %d, \"precision\": \"%s\", \"median_ms\": %.3f, \"min_ms\": %.3f, \"arena_mb\": %.1f, "
           "\"weights_mb\": %.1f, \"device_nodes\": %d, \"host_nodes\": %d, \"graph_replays\": %d, \"graph_note\": \"%s\", "
           "\"max_rel_err_vs_cpu\": %.3g}\n",
           patch, batch, argv[4], t[repeat / 2], t[0], st.arena_bytes / 1e6, st.weight_bytes / 1e6, st.device_nodes, st.host_nodes,
           st.graph_replays, st.note, worst);
    model_free(cs);
    tensor_free(x);
    tensor_free(y);
    free(t);
    graph_free(g);
    return 0;
}
