/* grad_emit.c — the node-building helpers that the gradient rules share:
 * fresh nodes with copied attributes, static reshapes, and the reduction
 * that undoes numpy broadcasting. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "autodiff.h"
#include "rewrite.h"

int grad_fail(GradCtx *c, const char *fmt, ...)
{
    char msg[IR_ERR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->cap, "autodiff: node '%s' (%s): %s", c->node->name, op_name(c->node->op), msg);
    return -1;
}

Node *grad_node(GradCtx *c, int op, int n_in, Value **in, int n_out, const Node *attrs_from)
{
    char base[256];
    snprintf(base, sizeof base, "grad/%s/%s", c->node->name, op_name(op));
    Value *outs[8] = {0};
    char *name = graph_unique_name(c->g, base);
    if (!name || n_out > 8) { free(name); grad_fail(c, "out of memory"); return NULL; }
    for (int i = 0; i < n_out; i++) {
        char vname[300];
        snprintf(vname, sizeof vname, "%s:%d", name, i);
        char *u = graph_unique_name(c->g, vname);
        outs[i] = u ? graph_new_value(c->g, u) : NULL;
        free(u);
        if (!outs[i]) { free(name); grad_fail(c, "out of memory"); return NULL; }
    }
    Node *n = graph_add_node(c->g, op, name, n_in, in, n_out, outs);
    free(name);
    if (!n || (attrs_from && node_copy_attrs(n, attrs_from))) { grad_fail(c, "out of memory"); return NULL; }
    return n;
}

Value *grad_finish(GradCtx *c, Node *n)
{
    char err[IR_ERR_CAP];
    if (!n) return NULL;
    if (infer_node(c->g, n, err, sizeof err)) { grad_fail(c, "%s", err); return NULL; }
    return n->out[0];
}

Value *grad_op(GradCtx *c, int op, int n_in, Value **in)
{
    for (int i = 0; i < n_in; i++) if (!in[i]) return NULL;
    return grad_finish(c, grad_node(c, op, n_in, in, 1, NULL));
}

Value *grad_op2(GradCtx *c, int op, Value *a, Value *b)
{
    Value *in[2] = {a, b};
    return grad_op(c, op, 2, in);
}

Value *grad_reshape_to(GradCtx *c, Value *x, const Shape *s)
{
    if (!x) return NULL;
    int64_t dims[IR_MAX_RANK];
    for (int i = 0; i < s->rank; i++) {
        if (!dim_is_const(s->d[i])) { grad_fail(c, "needs static shapes"); return NULL; }
        dims[i] = s->d[i].n;
    }
    if (x->shape.rank == s->rank) {
        int same = 1;
        for (int i = 0; i < s->rank; i++) same &= dim_equal(x->shape.d[i], s->d[i]);
        if (same) return x;
    }
    return grad_op2(c, OP_RESHAPE, x, int_vector_const(c->g, "grad_shape", s->rank, dims));
}

Value *grad_sum_axes(GradCtx *c, Value *x, int n_axes, const int64_t *axes, int keepdims)
{
    if (!x) return NULL;
    if (!n_axes) return x;
    Node *n = grad_node(c, OP_REDUCE_SUM, 2, (Value *[]){x, int_vector_const(c->g, "grad_axes", n_axes, axes)}, 1, NULL);
    if (!n || !n->in[1]) return NULL;
    grad_set_int(n, "keepdims", keepdims);
    return grad_finish(c, n);
}

Value *grad_reduce_to(GradCtx *c, Value *g, const Shape *s)
{
    if (!g) return NULL;
    int gr = g->shape.rank, lead = gr - s->rank;
    if (lead < 0) { grad_fail(c, "gradient has lower rank than its input"); return NULL; }
    int64_t axes[IR_MAX_RANK];
    int n = 0;
    for (int i = 0; i < gr; i++) {
        Dim gd = g->shape.d[i];
        if (!dim_is_const(gd)) { grad_fail(c, "needs static shapes"); return NULL; }
        if (i < lead) axes[n++] = i;
        else if (dim_is_const(s->d[i - lead]) && s->d[i - lead].n == 1 && gd.n != 1) axes[n++] = i;
    }
    Value *r = grad_sum_axes(c, g, n, axes, 1);
    return grad_reshape_to(c, r, s);
}

void grad_set_int(Node *n, const char *name, int64_t v)
{
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0) { n->attrs[i].type = ATTR_INT; n->attrs[i].i = v; return; }
    Attr *a = node_add_attr(n, name, ATTR_INT);
    if (a) a->i = v;
}

int grad_set_ints(Node *n, const char *name, int count, const int64_t *v)
{
    Attr *a = node_add_attr(n, name, ATTR_INTS);
    if (!a || !(a->ints = malloc(sizeof(int64_t) * (size_t)(count ? count : 1)))) return -1;
    a->n = count;
    if (count) memcpy(a->ints, v, sizeof(int64_t) * (size_t)count);
    return 0;
}

void grad_infer_ctx(const GradCtx *c, InferCtx *ic, ValueInfo *vi)
{
    memset(ic, 0, sizeof *ic);
    ic->node = c->node;
    ic->opset = c->g->opset;
    ic->n_in = c->node->n_in;
    ic->n_out = c->node->n_out;
    for (int i = 0; i < c->node->n_in && i < 16; i++) {
        if (!c->node->in[i]) continue;
        value_info_from_value(&vi[i], c->node->in[i]);
        ic->in[i] = &vi[i];
    }
}
