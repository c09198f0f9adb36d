/* pretrain.c — see pretrain.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "pretrain.h"
#include "optimizer.h"
#include "../model.h"
#include "../../passes/autodiff.h"
#include "../../ir/base.h"

/* Copies the trained weights into a stand-alone tower by name. */
static int copy_weights(Graph *dst, const Graph *src, char *err, size_t cap)
{
    for (int i = 0; i < dst->n_values; i++) {
        Value *v = dst->values[i];
        if (!v->konst || v->producer || v->dtype != DT_F32 || v->konst->rank == 0) continue;
        const Value *w = graph_find_value(src, v->name);
        if (!w || !w->konst || w->konst->nbytes != v->konst->nbytes) continue; /* constants of the builder (shapes, ...) */
        Tensor *t = tensor_copy(w->konst);
        if (!t) { snprintf(err, cap, "out of memory"); return -1; }
        value_set_const(v, t);
    }
    return 0;
}

int clip_pretrain(const PretrainConfig *c, Graph **visual, Graph **text, PretrainResult *res, char *err, size_t cap)
{
    *visual = *text = NULL;
    int rc = -1, n_params = 0;
    Graph *g = graph_new("clip_pretrain");
    Model *s = NULL;
    Value **params = NULL, **grads = NULL;
    Tensor **data = NULL, *in[2] = {0}, **outs = NULL;
    const char **names = NULL;
    AdamW opt = {0};
    if (!g) { snprintf(err, cap, "out of memory"); return -1; }
    g->opset = 17;
    Builder b = {g, err, cap, 0};
    int64_t B = c->batch, S = c->clip.image, L = c->clip.context;
    Value *image = b_input(&b, "image", DT_F32, 4, (int64_t[]){B, 3, S, S});
    Value *tokens = b_input(&b, "text", DT_I64, 2, (int64_t[]){B, L});
    uint64_t rng = c->seed;
    Value *fi = b_l2_normalize(&b, "image_norm", clip_add_visual(&b, &c->clip, image, &rng));
    Value *ft = b_l2_normalize(&b, "text_norm", clip_add_text(&b, &c->clip, tokens, &rng));
    Value *ls = b_scalar(&b, "logit_scale", (float)log(1 / 0.07));
    Tensor *ar = tensor_new(DT_I64, 1, &B);
    if (ar) for (int64_t i = 0; i < B; i++) ((int64_t *)ar->data)[i] = i;
    Value *diag = b_const(&b, "pairs", ar);
    Value *logits = b_op2(&b, OP_MUL, "logits", b_op2(&b, OP_MATMUL, "sim", fi, b_transpose2(&b, "text_t", ft)), b_op1(&b, OP_EXP, "scale", ls));
    Value *l1 = b_op2(&b, OP_SOFTMAX_CE, "loss_i2t", logits, diag);
    Value *l2 = b_op2(&b, OP_SOFTMAX_CE, "loss_t2i", b_transpose2(&b, "logits_t", logits), diag);
    Value *loss = b_op2(&b, OP_MUL, "loss", b_op2(&b, OP_ADD, "loss_sum", l1, l2), b_scalar(&b, "half", 0.5f));
    if (b.failed) goto done;
    /* parameters: every f32 weight the builders made (named visual.*, text.*) and the scale */
    params = calloc((size_t)g->n_values, sizeof(Value *));
    if (!params) { snprintf(err, cap, "out of memory"); goto done; }
    for (int i = 0; i < g->n_values; i++) {
        Value *v = g->values[i];
        if (v->konst && !v->producer && v->dtype == DT_F32 && (!strncmp(v->name, "visual.", 7) || !strncmp(v->name, "text.", 5)))
            params[n_params++] = v;
    }
    params[n_params++] = ls;
    grads = calloc((size_t)n_params, sizeof(Value *));
    data = calloc((size_t)n_params, sizeof(Tensor *));
    names = calloc((size_t)n_params, sizeof(char *));
    if (!grads || !data || !names) { snprintf(err, cap, "out of memory"); goto done; }
    char msg[IR_ERR_CAP];
    if (autodiff(g, loss, params, n_params, grads, msg, sizeof msg)) { snprintf(err, cap, "pretraining graph: %s", msg); goto done; }
    graph_add_output(g, loss);
    for (int i = 0; i < n_params; i++) { graph_add_output(g, grads[i]); data[i] = params[i]->konst; names[i] = params[i]->name; }
    AdamWConfig ac = ADAMW_DEFAULTS;
    ac.weight_decay = c->weight_decay;
    if (adamw_init(&opt, &ac, data, names, n_params)) { snprintf(err, cap, "out of memory"); goto done; }
    s = model_new(g, 0, &(CompileOptions){.threads = c->threads, .outputs_in_arena = 1}, err, cap);
    in[0] = tensor_new(DT_F32, 4, (int64_t[]){B, 3, S, S});
    in[1] = tensor_new(DT_I64, 2, (int64_t[]){B, L});
    outs = calloc((size_t)g->n_outputs, sizeof(Tensor *));
    if (!s || !in[0] || !in[1] || !outs) { if (s) snprintf(err, cap, "out of memory"); goto done; }
    LrSchedule sched = {c->lr, c->lr / 100, c->lr / 100, c->steps / 10, c->steps};
    double l = NAN;
    int tty = !c->quiet && isatty(2);
    double t0 = now_ms();
    for (int64_t step = 0; step < c->steps; step++) {
        if (c->fill(c->ctx, step, in[0], in[1], err, cap)) goto done;
        if (model_run(s, in, outs, err, cap)) goto done;
        l = tensor_get_f64(outs[0], 0);
        double norm = grad_global_norm(outs + 1, n_params);
        if (!isfinite(l) || !isfinite(norm)) { snprintf(err, cap, "pretraining diverged at step %lld (loss %g)", (long long)step + 1, l); goto done; }
        adamw_step(&opt, outs + 1, lr_at(&sched, step), clip_scale(norm, 1.0));
        for (int i = 0; i < g->n_outputs; i++) { tensor_free(outs[i]); outs[i] = NULL; }
        if (!c->quiet && (tty || (step + 1) % (c->steps >= 10 ? c->steps / 10 : 1) == 0))
            fprintf(stderr, tty ? "\r  pretraining CLIP: step %lld/%lld  loss %.4f  %.0f ms/step " : "  pretraining CLIP: step %lld/%lld  loss %.4f  %.0f ms/step\n",
                    (long long)step + 1, (long long)c->steps, l, (now_ms() - t0) / (double)(step + 1));
    }
    if (tty) fputc('\n', stderr);
    res->loss = l;
    res->logit_scale = *(float *)ls->konst->data;
    res->ms_per_step = (now_ms() - t0) / (double)(c->steps ? c->steps : 1);
    *visual = clip_visual_graph(&c->clip, 0, err, cap);
    *text = *visual ? clip_text_graph(&c->clip, 0, err, cap) : NULL;
    if (!*text || copy_weights(*visual, g, err, cap) || copy_weights(*text, g, err, cap)) goto done;
    rc = 0;
done:
    if (rc) { graph_free(*visual); graph_free(*text); *visual = *text = NULL; }
    for (int i = 0; outs && i < g->n_outputs; i++) tensor_free(outs[i]);
    free(outs);
    tensor_free(in[0]);
    tensor_free(in[1]);
    model_free(s);
    adamw_free(&opt);
    free(params);
    free(grads);
    free(data);
    free(names);
    graph_free(g);
    return rc;
}
