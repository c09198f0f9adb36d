/* builder.c — see builder.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "builder.h"

static void *fail(Builder *b, const char *fmt, ...)
{
    if (!b->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b->err, b->cap, fmt, ap);
        va_end(ap);
    }
    b->failed = 1;
    return NULL;
}

static Value *fresh(Builder *b, const char *base)
{
    char *name = graph_unique_name(b->g, base);
    Value *v = name ? graph_new_value(b->g, name) : NULL;
    free(name);
    return v ? v : fail(b, "out of memory");
}

Node *b_node(Builder *b, int op, const char *name, int n_in, Value **in)
{
    if (b->failed) return NULL;
    for (int i = 0; i < n_in; i++) if (!in[i]) return fail(b, "building '%s': an input is missing", name);
    Value *out = fresh(b, name);
    char *nn = out ? graph_unique_name(b->g, name) : NULL;
    Node *n = nn ? graph_add_node(b->g, op, nn, n_in, in, 1, &out) : NULL;
    free(nn);
    return n ? n : fail(b, "out of memory");
}

Value *b_finish(Builder *b, Node *n)
{
    if (b->failed || !n) return NULL;
    char err[IR_ERR_CAP];
    if (infer_node(b->g, n, err, sizeof err)) return fail(b, "%s", err);
    return n->out[0];
}

Value *b_op(Builder *b, int op, const char *name, int n_in, Value **in) { return b_finish(b, b_node(b, op, name, n_in, in)); }
Value *b_op1(Builder *b, int op, const char *name, Value *x) { return b_op(b, op, name, 1, &x); }
Value *b_op2(Builder *b, int op, const char *name, Value *x, Value *y) { return b_op(b, op, name, 2, (Value *[]){x, y}); }

void b_attr_i(Node *n, const char *name, int64_t v)
{
    Attr *a = n ? node_add_attr(n, name, ATTR_INT) : NULL;
    if (a) a->i = v;
}

void b_attr_f(Node *n, const char *name, float v)
{
    Attr *a = n ? node_add_attr(n, name, ATTR_FLOAT) : NULL;
    if (a) a->f = v;
}

void b_attr_ints(Node *n, const char *name, int count, const int64_t *v)
{
    Attr *a = n ? node_add_attr(n, name, ATTR_INTS) : NULL;
    if (!a || !(a->ints = malloc(sizeof(int64_t) * (size_t)(count ? count : 1)))) return;
    a->n = count;
    memcpy(a->ints, v, sizeof(int64_t) * (size_t)count);
}

Value *b_const(Builder *b, const char *name, Tensor *t)
{
    if (!t) return fail(b, "out of memory");
    if (b->failed) { tensor_free(t); return NULL; }
    Value *v = fresh(b, name);
    if (!v) { tensor_free(t); return NULL; }
    value_set_const(v, t);
    return v;
}

Value *b_ints(Builder *b, const char *name, int n, const int64_t *v)
{
    int64_t d[1] = {n};
    Tensor *t = tensor_new(DT_I64, 1, d);
    if (t && n) memcpy(t->data, v, sizeof(int64_t) * (size_t)n);
    return b_const(b, name, t);
}

Value *b_scalar(Builder *b, const char *name, float v)
{
    Tensor *t = tensor_new(DT_F32, 0, NULL);
    if (t) *(float *)t->data = v;
    return b_const(b, name, t);
}

Value *b_input(Builder *b, const char *name, DType t, int rank, const int64_t *dims)
{
    if (b->failed) return NULL;
    Value *v = graph_new_value(b->g, name);
    if (!v) return fail(b, "out of memory");
    v->dtype = t;
    v->shape.rank = rank;
    for (int i = 0; i < rank; i++) v->shape.d[i] = dim_const(dims[i]);
    graph_add_input(b->g, v);
    return v;
}

Value *b_reduce_sum(Builder *b, const char *name, Value *x, int64_t axis, int keepdims)
{
    Node *n = b_node(b, OP_REDUCE_SUM, name, 2, (Value *[]){x, b_ints(b, "axes", 1, &axis)});
    b_attr_i(n, "keepdims", keepdims);
    return b_finish(b, n);
}

Value *b_l2_normalize(Builder *b, const char *name, Value *x)
{
    Value *ss = b_reduce_sum(b, name, b_op2(b, OP_MUL, name, x, x), -1, 1);
    return b_op2(b, OP_DIV, name, x, b_op1(b, OP_SQRT, name, ss));
}

Value *b_transpose2(Builder *b, const char *name, Value *x)
{
    Node *n = b_node(b, OP_TRANSPOSE, name, 1, &x);
    b_attr_ints(n, "perm", 2, (int64_t[]){1, 0});
    return b_finish(b, n);
}
