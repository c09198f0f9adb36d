/* train_graph.c — see train_graph.h.  The head follows DESIGN.md §2: each
 * frame's embedding is L2-normalized, scored against the class features with
 * exp(logit_scale), and the logits are averaged over the frames; the caption
 * loss compares the normalized mean of the normalized frame embeddings with
 * each video's caption feature, symmetric InfoNCE within the batch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "train_graph.h"
#include "../../onnx/onnx_io.h"
#include "../../passes/autodiff.h"
#include "../../passes/passes.h"
#include "../model.h"
#include "../../ir/builder.h"

/* The f32 initializers of the file: what training updates. */
static char **initializer_names(const Graph *g, int *n)
{
    char **names = calloc((size_t)g->n_values + 1, sizeof(char *));
    *n = 0;
    for (int i = 0; names && i < g->n_values; i++) {
        const Value *v = g->values[i];
        if (v->konst && !v->producer && v->dtype == DT_F32) names[(*n)++] = strdup(v->name);
    }
    return names;
}

int train_graph_build(const char *onnx_path, const TrainGraphConfig *cfg, TrainGraph *tg, char *err, size_t cap)
{
    memset(tg, 0, sizeof *tg);
    if (cfg->batch < 1 || cfg->frames < 1 || !cfg->class_features || cfg->class_features->rank != 2) {
        snprintf(err, cap, "training graph: needs batch >= 1, frames >= 1 and class features [classes, D]");
        return -1;
    }
    Graph *g = onnx_load(onnx_path, err, cap);
    if (!g) return -1;
    tg->g = g;
    int n_init = 0;
    char **names = initializer_names(g, &n_init);
    char msg[IR_ERR_CAP];
    CompileOptions co = {.verify = 1, .frames = cfg->frames, .window = (int)cfg->window, .boundary_mask = cfg->boundary_mask};
    if (!names || compile_frontend(g, &co, msg, sizeof msg) || specialize_batch(g, cfg->batch, msg, sizeof msg) < 0) {
        snprintf(err, cap, "%.300s: %s", onnx_path, names ? msg : "out of memory");
        goto fail;
    }
    Value *fe = g->n_outputs == 1 ? g->outputs[0] : NULL;
    int64_t B = cfg->batch, T = cfg->frames, C = cfg->class_features->dims[0], D = cfg->class_features->dims[1];
    if (!fe || fe->shape.rank != 3 || fe->shape.d[2].n != D) {
        snprintf(err, cap, "%.300s: the encoder's embedding width does not match the class features' %lld", onnx_path, (long long)D);
        goto fail;
    }
    fe->is_output = 0;
    g->n_outputs = 0;
    tg->params = calloc((size_t)n_init + 1, sizeof(Value *));
    if (!tg->params) { snprintf(err, cap, "out of memory"); goto fail; }
    for (int i = 0; i < n_init; i++) {
        Value *v = graph_find_value(g, names[i]);
        if (!v || !v->konst || v->producer) continue; /* folded away: constant by construction */
        tg->params[tg->n_params++] = v;
    }
    Builder b = {g, err, cap, 0};
    Tensor *ls = tensor_new(DT_F32, 0, NULL);
    if (ls) *(float *)ls->data = cfg->logit_scale;
    Value *logit_scale = b_const(&b, "logit_scale", ls);
    tg->params[tg->n_params++] = logit_scale;
    /* inputs */
    tg->video = g->inputs[0];
    tg->labels = b_input(&b, "labels", DT_I64, 1, &B);
    Tensor *ftT = tensor_new(DT_F32, 2, (int64_t[]){D, C});
    if (!ftT || !tg->labels || !logit_scale) { tensor_free(ftT); snprintf(err, cap, "out of memory"); goto fail; }
    for (int64_t c = 0; c < C; c++)
        for (int64_t d = 0; d < D; d++) ((float *)ftT->data)[d * C + c] = (float)tensor_get_f64(cfg->class_features, c * D + d);
    Value *text = b_const(&b, "class_features_t", ftT);
    /* L(θ) */
    Value *f = b_l2_normalize(&b, "frame_features", fe);
    Value *scale = b_op1(&b, OP_EXP, "logit_scale_exp", logit_scale);
    Value *lt = b_op2(&b, OP_MATMUL, "frame_logits", f, text);
    Value *avg = b_op2(&b, OP_MUL, "frame_average", b_reduce_sum(&b, "frame_sum", lt, 1, 0), b_scalar(&b, "inv_frames", 1.0f / (float)T));
    Value *logits = b_op2(&b, OP_MUL, "logits", avg, scale);
    Value *loss = b_op2(&b, OP_SOFTMAX_CE, "loss_ce", logits, tg->labels);
    tg->loss_ce = loss;
    tg->logits = logits;
    if (cfg->captions) {
        tg->caption_features = b_input(&b, "caption_features", DT_F32, 2, (int64_t[]){B, D});
        tg->caption_mask = b_input(&b, "caption_mask", DT_F32, 2, (int64_t[]){B, B});
        Tensor *ar = tensor_new(DT_I64, 1, &B);
        if (ar) for (int64_t i = 0; i < B; i++) ((int64_t *)ar->data)[i] = i;
        Value *diag = b_const(&b, "caption_targets", ar);
        Value *v = b_l2_normalize(&b, "video_features", b_reduce_sum(&b, "video_sum", f, 1, 0));
        Value *sim = b_op2(&b, OP_MUL, "caption_logits_unmasked", b_op2(&b, OP_MATMUL, "caption_sim", v, b_transpose2(&b, "captions_t", tg->caption_features)), scale);
        /* another video with the same caption is no negative: the mask (symmetric) takes it out of both directions */
        sim = b_op2(&b, OP_ADD, "caption_logits", sim, tg->caption_mask);
        Value *l1 = b_op2(&b, OP_SOFTMAX_CE, "loss_video_to_text", sim, diag);
        Value *l2 = b_op2(&b, OP_SOFTMAX_CE, "loss_text_to_video", b_transpose2(&b, "caption_logits_t", sim), diag);
        Value *lc = b_op2(&b, OP_MUL, "loss_caption", b_op2(&b, OP_ADD, "loss_caption_sum", l1, l2), b_scalar(&b, "half", 0.5f));
        loss = b_op2(&b, OP_ADD, "loss_with_captions", loss, b_op2(&b, OP_MUL, "loss_caption_weighted", lc, b_scalar(&b, "lambda", cfg->caption_weight)));
    }
    if (b.failed) goto fail;
    /* L(θ~) */
    if (cfg->iwr) {
        tg->alpha = b_input(&b, "alpha", DT_F32, 0, NULL);
        Value *lt2 = tg->alpha ? interpolate_weights(g, tg->params, tg->n_params, tg->alpha, loss, cfg->exact_gradient, err, cap) : NULL;
        if (!lt2) goto fail;
        loss = b_op2(&b, OP_ADD, "loss_total", loss, b_op2(&b, OP_MUL, "loss_interpolated", lt2, b_scalar(&b, "beta", cfg->beta)));
    }
    if (cfg->captions && cfg->iwr) { /* keep the documented input order: video, labels, alpha, caption_features, caption_mask */
        Value *alpha = g->inputs[g->n_inputs - 1];
        for (int k = g->n_inputs - 1; k > 2; k--) g->inputs[k] = g->inputs[k - 1];
        g->inputs[2] = alpha;
    }
    if (b.failed) goto fail;
    /* Parameters get private, writable data; the file's (possibly mapped)
     * data stays behind as θ_CLIP in the interpolation's w0 views. */
    tg->initial = calloc((size_t)tg->n_params, sizeof(Tensor *));
    if (!tg->initial) { snprintf(err, cap, "out of memory"); goto fail; }
    for (int i = 0; i < tg->n_params; i++) {
        Tensor *k = tg->params[i]->konst;
        if (!(tg->initial[i] = tensor_view(k, k->rank, k->dims))) { snprintf(err, cap, "out of memory"); goto fail; }
        Tensor *own = tensor_copy(tg->params[i]->konst);
        if (!own) { snprintf(err, cap, "out of memory"); goto fail; }
        value_set_const(tg->params[i], own);
    }
    tg->loss = loss;
    tg->grads = calloc((size_t)tg->n_params, sizeof(Value *));
    if (!tg->grads) { snprintf(err, cap, "out of memory"); goto fail; }
    Value *target = loss; /* what the gradients are of: the loss, or S times it */
    if (cfg->loss_scale) {
        tg->loss_scale = b_input(&b, "loss_scale", DT_F32, 0, NULL);
        target = tg->loss_scale ? b_op2(&b, OP_MUL, "loss_scaled", loss, tg->loss_scale) : NULL;
        if (!target || b.failed) goto fail;
    }
    int n_forward = g->n_nodes;
    Node **forward = malloc(sizeof(Node *) * (size_t)(n_forward ? n_forward : 1));
    if (!forward) { snprintf(err, cap, "out of memory"); goto fail; }
    memcpy(forward, g->nodes, sizeof(Node *) * (size_t)n_forward);
    int bad = autodiff(g, target, tg->params, tg->n_params, tg->grads, msg, sizeof msg);
    /* the backward pass comes after the forward pass, which keeps its order */
    if (!bad && cfg->recompute) {
        if (g->n_nodes < n_forward || memcmp(forward, g->nodes, sizeof(Node *) * (size_t)n_forward)) {
            snprintf(msg, sizeof msg, "recompute: the backward pass is not after the forward pass");
            bad = 1;
        } else bad = recompute_blocks(g, n_forward, &tg->recompute, msg, sizeof msg) != 0;
    }
    free(forward);
    if (bad) { snprintf(err, cap, "%.300s: %s", onnx_path, msg); goto fail; }
    graph_add_output(g, loss);
    graph_add_output(g, tg->loss_ce);
    graph_add_output(g, logits);
    for (int i = 0; i < tg->n_params; i++) graph_add_output(g, tg->grads[i]);
    /* forward and backward through the same kernel fusion; outputs may be
     * replaced by fused nodes, so the handles are taken again */
    for (int i = 0; i < tg->n_params; i++) tg->params[i]->trainable = 1;
    co.precision = cfg->cpu_bf16 ? PRECISION_BF16 : PRECISION_FP32;
    if (compile_kernels(g, &co, msg, sizeof msg)) { snprintf(err, cap, "%.300s: %s", onnx_path, msg); goto fail; }
    tg->loss = g->outputs[0];
    tg->loss_ce = g->outputs[1];
    tg->logits = g->outputs[2];
    for (int i = 0; i < tg->n_params; i++) tg->grads[i] = g->outputs[3 + i];
    for (int i = 0; i < n_init; i++) free(names[i]);
    free(names);
    return 0;
fail:
    for (int i = 0; names && i < n_init; i++) free(names[i]);
    free(names);
    train_graph_free(tg);
    return -1;
}

void caption_mask_fill(const Tensor *captions, Tensor *mask)
{
    int64_t B = captions->dims[0], D = captions->dims[1];
    const float *c = captions->data;
    float *m = mask->data;
    for (int64_t i = 0; i < B; i++)
        for (int64_t j = 0; j < B; j++)
            m[i * B + j] = i != j && !memcmp(c + i * D, c + j * D, sizeof(float) * (size_t)D) ? CAPTION_MASKED : 0.0f;
}

void train_graph_free(TrainGraph *tg)
{
    for (int i = 0; tg->initial && i < tg->n_params; i++) tensor_free(tg->initial[i]);
    free(tg->initial);
    graph_free(tg->g);
    free(tg->params);
    free(tg->grads);
    memset(tg, 0, sizeof *tg);
}
