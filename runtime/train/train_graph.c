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
#include "../../passes/rewrite.h"

typedef struct { Graph *g; char *err; size_t cap; int failed; } Builder;

static Value *op(Builder *b, int opid, const char *name, int n_in, Value **in)
{
    if (b->failed) return NULL;
    for (int i = 0; i < n_in; i++) if (!in[i]) { b->failed = 1; snprintf(b->err, b->cap, "out of memory"); return NULL; }
    Value *v = append_node(b->g, opid, name, n_in, in);
    if (!v) { b->failed = 1; snprintf(b->err, b->cap, "training graph: cannot build node '%s'", name); }
    return v;
}

static Value *op2(Builder *b, int opid, const char *name, Value *x, Value *y) { return op(b, opid, name, 2, (Value *[]){x, y}); }

static Value *reduce_sum(Builder *b, const char *name, Value *x, int64_t axis, int keepdims)
{
    if (b->failed || !x) return NULL;
    Node *n = new_node(b->g, OP_REDUCE_SUM, name, 2, (Value *[]){x, int_vector_const(b->g, "axes", 1, &axis)});
    Attr *a = n ? node_add_attr(n, "keepdims", ATTR_INT) : NULL;
    if (!a || !n->in[1]) { b->failed = 1; snprintf(b->err, b->cap, "out of memory"); return NULL; }
    a->i = keepdims;
    if (infer_node(b->g, n, b->err, b->cap)) { b->failed = 1; return NULL; }
    return n->out[0];
}

static Value *l2_normalize(Builder *b, const char *name, Value *x)
{
    Value *ss = reduce_sum(b, name, op2(b, OP_MUL, name, x, x), -1, 1);
    return op2(b, OP_DIV, name, x, op(b, OP_SQRT, name, 1, &ss));
}

static Value *cross_entropy(Builder *b, const char *name, Value *scores, Value *labels)
{
    return op2(b, OP_SOFTMAX_CE, name, scores, labels);
}

static Value *transpose2(Builder *b, const char *name, Value *x)
{
    if (b->failed) return NULL;
    Node *n = new_node(b->g, OP_TRANSPOSE, name, 1, &x);
    Attr *a = n ? node_add_attr(n, "perm", ATTR_INTS) : NULL;
    if (!a || !(a->ints = malloc(2 * sizeof(int64_t)))) { b->failed = 1; snprintf(b->err, b->cap, "out of memory"); return NULL; }
    a->n = 2; a->ints[0] = 1; a->ints[1] = 0;
    if (infer_node(b->g, n, b->err, b->cap)) { b->failed = 1; return NULL; }
    return n->out[0];
}

static Value *new_input(Graph *g, const char *name, DType t, int rank, const int64_t *dims)
{
    Value *v = graph_new_value(g, name);
    if (!v) return NULL;
    v->dtype = t;
    v->shape.rank = rank;
    for (int i = 0; i < rank; i++) v->shape.d[i] = dim_const(dims[i]);
    graph_add_input(g, v);
    return v;
}

static Value *const_value(Graph *g, const char *name, Tensor *t)
{
    char *u = graph_unique_name(g, name);
    Value *v = (u && t) ? graph_new_value(g, u) : NULL;
    free(u);
    if (!v) { tensor_free(t); return NULL; }
    value_set_const(v, t);
    return v;
}

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
    PassOptions po = {.verify = 1};
    TemporalOptions to = {.frames = cfg->frames, .window = cfg->window, .boundary_mask = cfg->boundary_mask};
    if (!names || run_passes(g, default_pipeline, &po, msg, sizeof msg) || temporal_attention(g, &to, msg, sizeof msg) < 0 ||
        specialize_batch(g, cfg->batch, msg, sizeof msg) < 0) {
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
    Value *logit_scale = const_value(g, "logit_scale", ls);
    tg->params[tg->n_params++] = logit_scale;
    /* inputs */
    tg->video = g->inputs[0];
    tg->labels = new_input(g, "labels", DT_I64, 1, &B);
    Tensor *ftT = tensor_new(DT_F32, 2, (int64_t[]){D, C});
    if (!ftT || !tg->labels || !logit_scale) { tensor_free(ftT); snprintf(err, cap, "out of memory"); goto fail; }
    for (int64_t c = 0; c < C; c++)
        for (int64_t d = 0; d < D; d++) ((float *)ftT->data)[d * C + c] = (float)tensor_get_f64(cfg->class_features, c * D + d);
    Value *text = const_value(g, "class_features_t", ftT);
    /* L(θ) */
    Value *f = l2_normalize(&b, "frame_features", fe);
    Value *scale = op(&b, OP_EXP, "logit_scale_exp", 1, &logit_scale);
    Value *lt = op2(&b, OP_MATMUL, "frame_logits", f, text);
    Value *avg = op2(&b, OP_MUL, "frame_average", reduce_sum(&b, "frame_sum", lt, 1, 0), scalar_const(g, "inv_frames", 1.0f / (float)T));
    Value *logits = op2(&b, OP_MUL, "logits", avg, scale);
    Value *loss = cross_entropy(&b, "loss_ce", logits, tg->labels);
    tg->loss_ce = loss;
    tg->logits = logits;
    if (cfg->captions) {
        tg->caption_features = new_input(g, "caption_features", DT_F32, 2, (int64_t[]){B, D});
        Tensor *ar = tensor_new(DT_I64, 1, &B);
        if (ar) for (int64_t i = 0; i < B; i++) ((int64_t *)ar->data)[i] = i;
        Value *diag = const_value(g, "caption_targets", ar);
        Value *v = l2_normalize(&b, "video_features", reduce_sum(&b, "video_sum", f, 1, 0));
        Value *sim = op2(&b, OP_MUL, "caption_logits", op2(&b, OP_MATMUL, "caption_sim", v, transpose2(&b, "captions_t", tg->caption_features)), scale);
        Value *l1 = cross_entropy(&b, "loss_video_to_text", sim, diag);
        Value *l2 = cross_entropy(&b, "loss_text_to_video", transpose2(&b, "caption_logits_t", sim), diag);
        Value *lc = op2(&b, OP_MUL, "loss_caption", op2(&b, OP_ADD, "loss_caption_sum", l1, l2), scalar_const(g, "half", 0.5f));
        loss = op2(&b, OP_ADD, "loss_with_captions", loss, op2(&b, OP_MUL, "loss_caption_weighted", lc, scalar_const(g, "lambda", cfg->caption_weight)));
    }
    if (b.failed) goto fail;
    /* L(θ~) */
    if (cfg->iwr) {
        tg->alpha = new_input(g, "alpha", DT_F32, 0, NULL);
        Value *lt2 = tg->alpha ? interpolate_weights(g, tg->params, tg->n_params, tg->alpha, loss, cfg->exact_gradient, err, cap) : NULL;
        if (!lt2) goto fail;
        loss = op2(&b, OP_ADD, "loss_total", loss, op2(&b, OP_MUL, "loss_interpolated", lt2, scalar_const(g, "beta", cfg->beta)));
    }
    if (cfg->captions) { /* keep the documented input order: video, labels, alpha, caption_features */
        int k = g->n_inputs - 1;
        if (cfg->iwr) { Value *t = g->inputs[k]; g->inputs[k] = g->inputs[k - 1]; g->inputs[k - 1] = t; }
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
    if (autodiff(g, loss, tg->params, tg->n_params, tg->grads, msg, sizeof msg)) { snprintf(err, cap, "%.300s: %s", onnx_path, msg); goto fail; }
    graph_add_output(g, loss);
    graph_add_output(g, tg->loss_ce);
    graph_add_output(g, logits);
    for (int i = 0; i < tg->n_params; i++) graph_add_output(g, tg->grads[i]);
    for (int i = 0; i < n_init; i++) free(names[i]);
    free(names);
    return 0;
fail:
    for (int i = 0; names && i < n_init; i++) free(names[i]);
    free(names);
    train_graph_free(tg);
    return -1;
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
