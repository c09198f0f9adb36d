/* rewrite.c — see rewrite.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rewrite.h"

Node *producer_is(const Value *v, int op)
{
    return (v && v->producer && v->producer->op == op) ? v->producer : NULL;
}

Node *sole_reader(Graph *g, const Value *v, const int *uses)
{
    if (!v || v->is_output || uses[v->id] != 1) return NULL;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->op >= 0)
            for (int j = 0; j < g->nodes[i]->n_in; j++)
                if (g->nodes[i]->in[j] == v) return g->nodes[i];
    return NULL;
}

int const_scalar(const Value *v, double *out)
{
    if (!v || !v->konst || tensor_numel(v->konst) != 1 || !dtype_is_float(v->konst->dtype)) return 0;
    *out = tensor_get_f64(v->konst, 0);
    return 1;
}

Value *other_input(const Node *n, const Value *v)
{
    if (n->n_in != 2) return NULL;
    if (n->in[0] == v) return n->in[1];
    if (n->in[1] == v) return n->in[0];
    return NULL;
}

int reduces_last_axis(const Graph *g, const Node *n)
{
    const Value *x = n->in[0];
    if (!x || x->shape.rank < 1 || !node_attr_i(n, "keepdims", 1)) return 0;
    int64_t axis;
    if (g->opset >= 18) {
        const Value *a = n->n_in > 1 ? n->in[1] : NULL;
        if (!a || !a->konst || tensor_numel(a->konst) != 1) return 0;
        axis = tensor_get_i64(a->konst, 0);
    } else {
        const Attr *a = node_attr(n, "axes");
        if (!a || a->type != ATTR_INTS || a->n != 1) return 0;
        axis = a->ints[0];
    }
    return axis == -1 || axis == x->shape.rank - 1;
}

Node *new_node(Graph *g, int op, const char *base, int n_in, Value **in)
{
    char *name = graph_unique_name(g, base);
    Value *out = name ? graph_new_value(g, name) : NULL;
    Node *n = out ? graph_add_node(g, op, name, n_in, in, 1, &out) : NULL;
    free(name);
    return n;
}

Value *fresh_value(Graph *g, const char *base)
{
    char *name = graph_unique_name(g, base);
    Value *v = name ? graph_new_value(g, name) : NULL;
    free(name);
    return v;
}

Node *clone_node(Graph *g, const Node *n, Value *const *in, const char *prefix, char *err, size_t cap)
{
    Value *ins[16], *outs[8];
    if (n->n_in > 16 || n->n_out > 8) { snprintf(err, cap, "node '%s' has too many edges to copy", n->name); return NULL; }
    memcpy(ins, in, sizeof(Value *) * (size_t)n->n_in);
    char base[300];
    for (int j = 0; j < n->n_out; j++) {
        snprintf(base, sizeof base, "%s%s", prefix, n->out[j] ? n->out[j]->name : "unused");
        if (!(outs[j] = fresh_value(g, base))) { snprintf(err, cap, "out of memory"); return NULL; }
    }
    snprintf(base, sizeof base, "%s%s", prefix, n->name);
    char *name = graph_unique_name(g, base);
    Node *c = name ? graph_add_node(g, n->op, name, n->n_in, ins, n->n_out, outs) : NULL;
    free(name);
    if (!c || node_copy_attrs(c, n)) { snprintf(err, cap, "out of memory"); return NULL; }
    free(c->domain);
    if (!(c->domain = strdup(n->domain ? n->domain : ""))) { snprintf(err, cap, "out of memory"); return NULL; }
    return infer_node(g, c, err, cap) ? NULL : c;
}

Value *append_node(Graph *g, int op, const char *base, int n_in, Value **in)
{
    Node *n = new_node(g, op, base, n_in, in);
    char err[IR_ERR_CAP];
    return (n && infer_node(g, n, err, sizeof err) == 0) ? n->out[0] : NULL;
}

Node *replace_with_node(Graph *g, Value *like, int op, const char *name, int n_in, Value **in)
{
    Value *out = append_node(g, op, name, n_in, in);
    if (!out) return NULL;
    graph_replace_uses(g, like, out);
    return out->producer;
}

int fuse_mul_rooted_activation(Graph *g, int op, Value *(*match)(Node *mul), const char *pass, char *err, size_t cap)
{
    int changed = 0, n = g->n_nodes;
    for (int i = 0; i < n; i++) {
        Node *mul = g->nodes[i];
        Value *x = mul->op == OP_MUL && mul->n_in == 2 ? match(mul) : NULL;
        if (!x || x->dtype != DT_F32) continue;
        if (!replace_with_node(g, mul->out[0], op, mul->name, 1, &x)) { snprintf(err, cap, "%s: out of memory", pass); return -1; }
        changed++;
    }
    return graph_topo_sort(g) ? (snprintf(err, cap, "%s: cycle", pass), -1) : changed;
}

Value *scalar_const(Graph *g, const char *base, float v)
{
    char *name = graph_unique_name(g, base);
    Value *c = name ? graph_new_value(g, name) : NULL;
    Tensor *t = tensor_new(DT_F32, 0, NULL);
    free(name);
    if (!c || !t) { tensor_free(t); return NULL; }
    *(float *)t->data = v;
    value_set_const(c, t);
    return c;
}

Value *int_vector_const(Graph *g, const char *base, int n, const int64_t *vals)
{
    int64_t d[1] = {n};
    Tensor *t = tensor_new(DT_I64, 1, d);
    char *name = graph_unique_name(g, base);
    Value *v = (t && name) ? graph_new_value(g, name) : NULL;
    free(name);
    if (!v) { tensor_free(t); return NULL; }
    if (n) memcpy(t->data, vals, sizeof(int64_t) * (size_t)n);
    value_set_const(v, t);
    return v;
}

Value *new_const(Graph *g, const char *base, const char *suffix, Tensor *t)
{
    char nm[256];
    snprintf(nm, sizeof nm, "%.200s%s", base, suffix);
    char *name = t ? graph_unique_name(g, nm) : NULL;
    Value *v = name ? graph_new_value(g, name) : NULL;
    free(name);
    if (!v) { tensor_free(t); return NULL; }
    value_set_const(v, t);
    return v;
}
