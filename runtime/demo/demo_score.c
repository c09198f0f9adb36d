/* demo_score.c — top-1 of a (patched) video encoder on the demo world's
 * videos: the model compiled through the compile API, frame logits
 * averaged (see demo.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "demo.h"
#include "../../onnx/onnx_io.h"
#include "../../passes/passes.h"
#include "../data/preprocess.h"
#include "../model.h"
#include "../train/checkpoint.h"

int demo_top1(const DemoEval *e, const char *weights, double r, int window, const DemoVideo *v, size_t n, const float *cf, int C,
              int64_t D, double *out, double *attrs, char *err, size_t cap)
{
    size_t right[3] = {0, 0, 0}; /* predictions with the right colour, shape, motion */
    int rc = -1, applied, unused;
    Model *s = NULL;
    Tensor *in = NULL;
    char msg[IR_ERR_CAP];
    Graph *g = onnx_load(e->clip_onnx, err, cap), *t = NULL;
    if (!g) return -1;
    if (weights) {
        if (!(t = onnx_load(e->clip_onnx, err, cap)) || checkpoint_apply(t, weights, &applied, &unused, err, cap)) goto done;
        if (patch_weights(g, t, (float)r, msg, sizeof msg) < 0) { snprintf(err, cap, "%s", msg); goto done; }
    }
    s = vclip_compile_graph(g, e->clip_onnx, &(CompileOptions){.target = e->target, .threads = e->threads, .frames = e->frames, .window = window}, err, cap);
    g = NULL; /* the model's now */
    if (!s) goto done;
    const int B = 16;
    size_t clip = (size_t)e->frames * 3 * (size_t)e->S * (size_t)e->S, correct = 0;
    uint8_t *pix = malloc(clip);
    int64_t dims[5] = {B, e->frames, 3, e->S, e->S};
    in = tensor_new(DT_F32, 5, dims);
    if (!pix || !in) { free(pix); snprintf(err, cap, "out of memory"); goto done; }
    for (size_t start = 0; start < n; start += B) {
        size_t b = n - start < (size_t)B ? n - start : (size_t)B;
        in->dims[0] = (int64_t)b;
        in->nbytes = b * clip * sizeof(float);
        for (size_t i = 0; i < b; i++) {
            sw_render_video(&v[start + i].it, e->frames, e->S, v[start + i].seed, pix);
            normalize_clip(pix, e->frames, e->S, (float *)in->data + i * clip);
        }
        Tensor *o = NULL;
        if (model_run(s, &in, &o, err, cap)) { free(pix); goto done; }
        const float *f = o->data;
        for (size_t i = 0; i < b; i++) {
            double best = -INFINITY;
            int arg = 0;
            for (int c = 0; c < C; c++) {
                double acc = 0;
                for (int tt = 0; tt < e->frames; tt++) {
                    const float *x = f + (i * (size_t)e->frames + (size_t)tt) * (size_t)D;
                    double dot = 0, nn = 0;
                    for (int64_t d = 0; d < D; d++) { dot += (double)x[d] * cf[(size_t)c * (size_t)D + (size_t)d]; nn += (double)x[d] * x[d]; }
                    acc += dot / sqrt(nn > 0 ? nn : 1);
                }
                if (acc > best) { best = acc; arg = c; }
            }
            int want = v[start + i].label, sm = SW_SHAPES * SW_MOTIONS;
            correct += arg == want;
            right[0] += arg / sm == want / sm;
            right[1] += arg / SW_MOTIONS % SW_SHAPES == want / SW_MOTIONS % SW_SHAPES;
            right[2] += arg % SW_MOTIONS == want % SW_MOTIONS;
        }
        tensor_free(o);
    }
    free(pix);
    *out = 100.0 * (double)correct / (double)(n ? n : 1);
    for (int a = 0; attrs && a < 3; a++) attrs[a] = 100.0 * (double)right[a] / (double)(n ? n : 1);
    rc = 0;
done:
    tensor_free(in);
    model_free(s);
    graph_free(g);
    graph_free(t);
    return rc;
}
