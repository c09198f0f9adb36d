/* cut_sequence.c — a text encoder run on the first `length` positions of its
 * context only.  With causal attention and pooling at the end-of-text token,
 * the positions after a batch's last end-of-text token cannot change the
 * output, so a batch of short prompts need not pay for all 77.
 *
 * The token input's context dim becomes `length` and the graph is re-inferred
 * node by node.  A node whose inference now fails because a constant still
 * spans the whole context (the positional embedding [77, D], an additive
 * causal mask [1, 1, 77, 77]) gets that constant's prefix along every axis of
 * the context's size; anything else that cannot follow is an error naming
 * the node.  Before that, target shapes that a tracing exporter froze (torch's
 * attention reshapes keys to [77, batch * heads, head_dim]: a Reshape or
 * Expand whose shape is a constant, or a Concat of constants, holding the
 * context length) get the new length there.  Exporters that derive positions from the input's shape (Hugging
 * Face's position_ids[:, :seq]) need nothing.  Whether the cut graph computes
 * what the full one does is not decided here: the caller (text_features.c)
 * compares the two on real batches. */
#include <stdio.h>
#include <string.h>
#include "passes.h"
#include "rewrite.h"
#include "../ir/ops.h"

/* src's prefix of `length` along every axis of size `full`. */
static Tensor *prefix_copy(const Tensor *src, int64_t full, int64_t length)
{
    int64_t dims[IR_MAX_RANK];
    for (int a = 0; a < src->rank; a++) dims[a] = src->dims[a] == full ? length : src->dims[a];
    Tensor *t = tensor_new(src->dtype, src->rank, dims);
    if (!t) return NULL;
    size_t es = dtype_size(src->dtype);
    int64_t n = tensor_numel(t), idx[IR_MAX_RANK] = {0};
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0;
        for (int a = 0; a < src->rank; a++) off = off * src->dims[a] + idx[a];
        memcpy((char *)t->data + (size_t)i * es, (const char *)src->data + (size_t)off * es, es);
        for (int a = src->rank - 1; a >= 0 && ++idx[a] == dims[a]; a--) idx[a] = 0;
    }
    return t;
}

/* v's data when it is a constant: an initializer, or a Constant node's value
 * (imported graphs are not folded yet). */
static const Tensor *constant_data(const Value *v)
{
    if (v && v->konst) return v->konst;
    const Node *c = producer_is(v, OP_CONSTANT);
    const Attr *a = c ? node_attr(c, "value") : NULL;
    return a && a->type == ATTR_TENSOR ? a->t : NULL;
}

/* The data of v when it is a constant with an axis as long as the context, else NULL. */
static const Tensor *spans_context(const Value *v, int64_t full)
{
    const Tensor *t = constant_data(v);
    for (int a = 0; t && a < t->rank; a++)
        if (t->dims[a] == full) return t;
    return NULL;
}

/* A constant integer vector (or scalar) with `full` among its entries: a
 * copy holding `length` there, or NULL (not such a constant, or no memory). */
static Tensor *retarget(const Value *v, int64_t full, int64_t length)
{
    const Tensor *t = constant_data(v);
    if (!t || t->rank > 1 || (t->dtype != DT_I64 && t->dtype != DT_I32)) return NULL;
    int64_t n = tensor_numel(t), hits = 0;
    for (int64_t i = 0; i < n; i++) hits += tensor_get_i64(t, i) == full;
    Tensor *c = hits ? tensor_copy(t) : NULL;
    for (int64_t i = 0; c && i < n; i++)
        if (tensor_get_i64(t, i) == full) tensor_set_f64(c, i, (double)length);
    return c;
}

/* Input k of n becomes a new constant t (other readers keep the old one). */
static int replace_input(Graph *g, Node *n, int k, Tensor *t)
{
    Value *v = new_const(g, n->in[k]->name, "_cut", t);
    if (!v) return -1;
    n->in[k] = v;
    return 0;
}

/* Frozen target shapes of Reshape and Expand: their constant entries equal
 * to the context length become `length`. */
static int retarget_shapes(Graph *g, int64_t full, int64_t length)
{
    for (int i = 0; i < g->n_nodes; i++) {
        Node *n = g->nodes[i];
        if ((n->op != OP_RESHAPE && n->op != OP_EXPAND) || n->n_in < 2 || !n->in[1]) continue;
        Node *cat = n->in[1]->producer && n->in[1]->producer->op == OP_CONCAT ? n->in[1]->producer : NULL;
        Tensor *t = retarget(n->in[1], full, length);
        if (t && replace_input(g, n, 1, t)) return -1;
        for (int k = 0; cat && k < cat->n_in; k++)
            if ((t = retarget(cat->in[k], full, length)) && replace_input(g, cat, k, t)) return -1;
    }
    return 0;
}

int cut_sequence(Graph *g, int64_t length, char *err, size_t cap)
{
    Value *in = g->n_inputs == 1 ? g->inputs[0] : NULL;
    if (!in || in->shape.rank != 2 || !dim_is_const(in->shape.d[1])) {
        snprintf(err, cap, "cutting the context needs one token input [batch, context]");
        return -1;
    }
    int64_t full = in->shape.d[1].n;
    /* length 1 would broadcast against the full-context constants instead of failing */
    if (length < 2 || length > full) {
        snprintf(err, cap, "context %lld is not between 2 and the model's %lld", (long long)length, (long long)full);
        return -1;
    }
    if (length == full) return 0;
    if (retarget_shapes(g, full, length)) { snprintf(err, cap, "out of memory"); return -1; }
    in->shape.d[1] = dim_const(length);
    int sliced = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        Node *n = g->nodes[i];
        char why[IR_ERR_CAP];
        if (!infer_node(g, n, why, sizeof why)) continue;
        int changed = 0;
        for (int k = 0; k < n->n_in; k++) {
            const Tensor *whole = spans_context(n->in[k], full);
            if (!whole) continue;
            Tensor *t = prefix_copy(whole, full, length);
            if (!t || replace_input(g, n, k, t)) { snprintf(err, cap, "out of memory"); return -1; }
            changed = 1;
        }
        if (!changed || infer_node(g, n, why, sizeof why)) {
            snprintf(err, cap, "cannot cut the context to %lld: %s", (long long)length, why);
            return -1;
        }
        sliced++;
    }
    return sliced;
}
