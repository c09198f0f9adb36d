/* autodiff.c — the reverse-mode pass (see autodiff.h): find the nodes between
 * the parameters and the loss, seed d loss = 1, call each node's gradient
 * rule in reverse order, and sum the contributions per value. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "autodiff.h"
#include "rewrite.h"

const GradFn grad_rules[OP_COUNT] = {
#define OP(id, dom, name, pat, inf, ref, fast, grad) [OP_##id] = grad,
#include "../ir/ops.def"
#undef OP
};

static Value *zeros_like(Graph *g, const Value *v)
{
    int64_t dims[IR_MAX_RANK];
    for (int i = 0; i < v->shape.rank; i++) dims[i] = v->shape.d[i].n;
    Tensor *t = tensor_new(DT_F32, v->shape.rank, dims);
    char base[300];
    snprintf(base, sizeof base, "grad/%s", v->name);
    char *name = graph_unique_name(g, base);
    Value *z = (t && name) ? graph_new_value(g, name) : NULL;
    free(name);
    if (!z) { tensor_free(t); return NULL; }
    memset(t->data, 0, t->nbytes);
    value_set_const(z, t);
    return z;
}

static int static_shape(const Value *v, char *err, size_t cap)
{
    if (v->shape.rank >= 0 && shape_is_const(&v->shape)) return 0;
    snprintf(err, cap, "autodiff: value '%s' has no static shape; specialize the batch before differentiating", v->name);
    return -1;
}

int autodiff(Graph *g, Value *loss, Value *const *params, int n_params, Value **grads, char *err, size_t cap)
{
    if (loss->dtype != DT_F32 || shape_numel(&loss->shape) != 1) {
        snprintf(err, cap, "autodiff: the loss '%s' must be a scalar f32", loss->name);
        return -1;
    }
    if (g->opset < 13) { snprintf(err, cap, "autodiff: needs opset 13 or later (the graph has %d)", g->opset); return -1; }
    if (cap) err[0] = 0;
    int n_values = g->n_values, n_nodes = g->n_nodes, rc = -1;
    char *needs = calloc((size_t)n_values, 1), *reach = calloc((size_t)n_values, 1);
    Value **grad = calloc((size_t)n_values, sizeof(Value *));
    if (!needs || !reach || !grad) { snprintf(err, cap, "out of memory"); goto done; }
    for (int i = 0; i < n_params; i++) {
        if (params[i]->dtype != DT_F32) { snprintf(err, cap, "autodiff: parameter '%s' is not f32", params[i]->name); goto done; }
        needs[params[i]->id] = 1;
    }
    /* forward: values that depend on a parameter through float data */
    for (int i = 0; i < n_nodes; i++) {
        Node *n = g->nodes[i];
        int any = 0;
        for (int j = 0; j < n->n_in; j++) any |= n->in[j] && needs[n->in[j]->id];
        if (!any) continue;
        for (int j = 0; j < n->n_out; j++)
            if (n->out[j] && dtype_is_float(n->out[j]->dtype)) needs[n->out[j]->id] = 1;
    }
    /* backward: values the loss depends on */
    reach[loss->id] = 1;
    for (int i = n_nodes - 1; i >= 0; i--) {
        Node *n = g->nodes[i];
        int any = 0;
        for (int j = 0; j < n->n_out; j++) any |= n->out[j] && reach[n->out[j]->id];
        if (any)
            for (int j = 0; j < n->n_in; j++) if (n->in[j]) reach[n->in[j]->id] = 1;
    }
    if (!needs[loss->id]) { snprintf(err, cap, "autodiff: the loss '%s' does not depend on any parameter", loss->name); goto done; }
    Tensor *one = tensor_new(DT_F32, loss->shape.rank, (int64_t[IR_MAX_RANK]){1, 1, 1, 1, 1, 1, 1, 1});
    char *oname = graph_unique_name(g, "grad/seed");
    Value *seed = (one && oname) ? graph_new_value(g, oname) : NULL;
    free(oname);
    if (!seed) { tensor_free(one); snprintf(err, cap, "out of memory"); goto done; }
    *(float *)one->data = 1.0f;
    value_set_const(seed, one);
    grad[loss->id] = seed;
    for (int i = n_nodes - 1; i >= 0; i--) {
        Node *n = g->nodes[i];
        GradCtx c = {.g = g, .node = n, .err = err, .cap = cap};
        int any_out = 0, any_in = 0;
        for (int j = 0; j < n->n_out && j < 8; j++)
            if (n->out[j] && grad[n->out[j]->id]) { c.dy[j] = grad[n->out[j]->id]; any_out = 1; }
        for (int j = 0; j < n->n_in && j < 16; j++)
            if (n->in[j] && needs[n->in[j]->id] && reach[n->in[j]->id]) { c.needs[j] = 1; any_in = 1; }
        if (!any_out || !any_in) continue;
        for (int j = 0; j < n->n_in; j++) if (c.needs[j] && static_shape(n->in[j], err, cap)) goto done;
        for (int j = 0; j < n->n_out; j++) if (c.dy[j] && static_shape(n->out[j], err, cap)) goto done;
        GradFn rule = grad_rules[n->op];
        if (!rule) { grad_fail(&c, "no gradient rule for this op"); goto done; }
        if (rule(&c)) { if (!err[0]) grad_fail(&c, "out of memory"); goto done; }
        for (int j = 0; j < n->n_in && j < 16; j++) {
            if (!c.needs[j] || !c.dx[j]) continue;
            Value *x = n->in[j], *prev = grad[x->id];
            if (c.dx[j]->shape.rank != x->shape.rank || shape_numel(&c.dx[j]->shape) != shape_numel(&x->shape)) {
                grad_fail(&c, "rule produced a gradient shaped unlike input %d ('%s')", j, x->name);
                goto done;
            }
            grad[x->id] = prev ? grad_op2(&c, OP_ADD, prev, c.dx[j]) : c.dx[j];
            if (!grad[x->id]) { if (!err[0]) grad_fail(&c, "out of memory"); goto done; }
        }
    }
    for (int i = 0; i < n_params; i++) {
        Value *p = params[i];
        grads[i] = grad[p->id] ? grad[p->id] : zeros_like(g, p);
        if (!grads[i]) { snprintf(err, cap, "out of memory"); goto done; }
    }
    if (graph_topo_sort(g)) { snprintf(err, cap, "autodiff: the backward graph has a cycle"); goto done; }
    rc = 0;
done:
    free(needs);
    free(reach);
    free(grad);
    return rc;
}
