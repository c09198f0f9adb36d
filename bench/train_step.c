/* train_step.c — the C side of bench/bench_train.py: builds the Open-VCLIP
 * training graph for an image encoder (T frames, temporal window 1, IWR on,
 * released gradient convention), then times full steps (forward on θ and θ~,
 * backward, clipping, AdamW) on random inputs, in fp32 or bf16 (the CPU's
 * bf16 step: GEMM operands rounded, f32 sums), optionally recomputing each
 * block's activations in the backward pass.  Prints one JSON line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include "../runtime/model.h"
#include "../runtime/train/optimizer.h"
#include "../runtime/train/train_graph.h"
#include "../ir/base.h"

int main(int argc, char **argv)
{
    if (argc < 6) { fprintf(stderr, "usage: train_step MODEL.onnx BATCH FRAMES STEPS THREADS [CLASSES [fp32|bf16 [recompute]]]\n"); return 2; }
    int64_t batch = atoi(argv[2]), frames = atoi(argv[3]), classes = argc > 6 ? atoi(argv[6]) : 400;
    int bf16 = argc > 7 && !strcmp(argv[7], "bf16"), recompute = argc > 8 && !strcmp(argv[8], "recompute");
    int steps = atoi(argv[4]), threads = atoi(argv[5]);
    char err[1024];
    uint64_t s = 42;
    /* class features: D from a first build would need the model; the fixtures, ViT-B (512) and ViT-L (768) are among these */
    static const int64_t widths[] = {16, 32, 64, 128, 256, 512, 768, 1024};
    Tensor *cf = NULL;
    TrainGraph tg;
    double t_start = now_ms();
    for (size_t w = 0; w < sizeof widths / sizeof *widths; w++) {
        int64_t D = widths[w];
        tensor_free(cf);
        cf = tensor_new(DT_F32, 2, (int64_t[]){classes, D});
        for (int64_t i = 0; i < tensor_numel(cf); i++) { s = s * 6364136223846793005ull + 1; ((float *)cf->data)[i] = (float)((s >> 40) / 16777216.0 - 0.5); }
        TrainGraphConfig cfg = {.batch = batch, .frames = frames, .window = 1, .class_features = cf, .logit_scale = 4.6052f,
                                .iwr = 1, .beta = 0.5f, .exact_gradient = 0, .cpu_bf16 = bf16,
                                .recompute = recompute};
        if (train_graph_build(argv[1], &cfg, &tg, err, sizeof err) == 0) break;
        if (!strstr(err, "does not match the class features")) { fprintf(stderr, "%s\n", err); return 1; }
        if (D == 1024) { fprintf(stderr, "%s\n", err); return 1; }
    }
    double t_build = now_ms() - t_start;
    Model *sess = model_new(tg.g, 0, &(CompileOptions){.threads = threads, .precision = bf16 ? PRECISION_BF16 : PRECISION_FP32,
                                                         .outputs_in_arena = 1}, err, sizeof err);
    if (!sess) { fprintf(stderr, "%s\n", err); return 1; }
    const Value *vv = tg.video;
    int64_t vd[5];
    for (int i = 0; i < 5; i++) vd[i] = vv->shape.d[i].n;
    Tensor *in[3] = {tensor_new(DT_F32, 5, vd), tensor_new(DT_I64, 1, &batch), tensor_new(DT_F32, 0, NULL)};
    for (int64_t i = 0; i < tensor_numel(in[0]); i++) { s = s * 6364136223846793005ull + 1; ((float *)in[0]->data)[i] = (float)((s >> 40) / 8388608.0 - 1.0); }
    for (int64_t i = 0; i < batch; i++) ((int64_t *)in[1]->data)[i] = i % classes;
    *(float *)in[2]->data = 0.3f;
    Tensor **data = calloc((size_t)tg.n_params, sizeof(Tensor *));
    const char **names = calloc((size_t)tg.n_params, sizeof(char *));
    for (int i = 0; i < tg.n_params; i++) { data[i] = tg.params[i]->konst; names[i] = tg.params[i]->name; }
    AdamW opt;
    adamw_init(&opt, &ADAMW_DEFAULTS, data, names, tg.n_params);
    Tensor **outs = calloc((size_t)tg.g->n_outputs, sizeof(Tensor *));
    double best = 1e30, total = 0, loss = 0;
    for (int st = 0; st <= steps; st++) { /* step 0 warms up */
        double t0 = now_ms();
        if (model_run(sess, in, outs, err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
        loss = tensor_get_f64(outs[0], 0);
        double norm = grad_global_norm(outs + 3, tg.n_params);
        adamw_step(&opt, outs + 3, 1e-5, clip_scale(norm, 1.0));
        for (int i = 0; i < tg.g->n_outputs; i++) { tensor_free(outs[i]); outs[i] = NULL; }
        double dt = now_ms() - t0;
        if (st) { total += dt; if (dt < best) best = dt; }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    ModelStats ms;
    model_stats(sess, &ms);
    printf("{\"ms_per_step\": %.1f, \"best_ms\": %.1f, \"peak_rss_mb\": %.0f, \"arena_mb\": %.1f, \"loss\": %.5f, \"params\": %d, "
           "\"nodes\": %d, \"recomputed_blocks\": %d, \"build_ms\": %.0f}\n",
           total / steps, best, ru.ru_maxrss / 1024.0, ms.backend.arena_bytes / 1e6, loss, tg.n_params, tg.g->n_nodes, tg.recompute.blocks,
           t_build);
    return 0;
}
