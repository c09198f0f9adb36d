/* ops.c — the op table (expanded from ops.def), lookup, and the driver that
 * runs each op's inference over a graph. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ops.h"

const OpInfo op_table[OP_COUNT] = {
#define OP(id, dom, nm, pat, inf, ref, fast, grad) [OP_##id] = {dom, nm, pat, inf},
#include "ops.def"
#undef OP
};

int op_lookup(const char *domain, const char *name)
{
    if (!domain || strcmp(domain, "ai.onnx") == 0) domain = "";
    for (int i = 0; i < OP_COUNT; i++)
        if (strcmp(op_table[i].name, name) == 0 && strcmp(op_table[i].domain, domain) == 0) return i;
    return -1;
}

const char *op_name(int op) { return (op >= 0 && op < OP_COUNT) ? op_table[op].name : "?"; }

const char *pattern_name(OpPattern p)
{
    static const char *names[] = {"elemwise", "broadcast", "injective", "reduction",
                                  "out-fusable", "opaque", "view"};
    return (unsigned)p < sizeof names / sizeof *names ? names[p] : "?";
}

int infer_fail(InferCtx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return -1;
}

int norm_axis(int64_t axis, int rank, int64_t *out)
{
    if (axis < -rank || axis >= rank) return -1;
    *out = axis < 0 ? axis + rank : axis;
    return 0;
}

int infer_broadcast_shapes(InferCtx *c, const Shape *a, const Shape *b, Shape *out)
{
    if (a->rank < 0 || b->rank < 0) { out->rank = -1; return 0; }
    int r = a->rank > b->rank ? a->rank : b->rank;
    out->rank = r;
    for (int i = 0; i < r; i++) {
        int ia = i - (r - a->rank), ib = i - (r - b->rank);
        Dim da = ia >= 0 ? a->d[ia] : dim_const(1);
        Dim db = ib >= 0 ? b->d[ib] : dim_const(1);
        if (dim_is_const(da) && da.n == 1) out->d[i] = db;
        else if (dim_is_const(db) && db.n == 1) out->d[i] = da;
        else if (dim_equal(da, db)) out->d[i] = da;
        else if (dim_is_const(da) && dim_is_const(db))
            return infer_fail(c, "cannot broadcast dims %lld and %lld (axis %d)",
                              (long long)da.n, (long long)db.n, i);
        else if (da.sym == DIM_UNKNOWN) out->d[i] = db;
        else if (db.sym == DIM_UNKNOWN) out->d[i] = da;
        else out->d[i] = dim_unknown();
    }
    return 0;
}

int infer_get_ints(const InferCtx *c, int i, Dim *out, int cap)
{
    if (i >= c->n_in || !c->in[i]) return -1;
    const ValueInfo *v = c->in[i];
    if (v->n_known >= 0) {
        if (v->n_known > cap) return -1;
        memcpy(out, v->known, sizeof(Dim) * (size_t)v->n_known);
        return v->n_known;
    }
    if (v->data && v->data->rank <= 1) {
        int64_t n = tensor_numel(v->data);
        if (n < 0 || n > cap) return -1;
        for (int64_t k = 0; k < n; k++) out[k] = dim_const(tensor_get_i64(v->data, k));
        return (int)n;
    }
    return -1;
}

static void known_from_tensor(ValueInfo *vi, const Tensor *t)
{
    vi->n_known = -1;
    if (!t || t->rank > 1 || (t->dtype != DT_I64 && t->dtype != DT_I32)) return;
    int64_t n = tensor_numel(t);
    if (n < 0 || n > IR_MAX_KNOWN) return;
    for (int64_t i = 0; i < n; i++) vi->known[i] = dim_const(tensor_get_i64(t, i));
    vi->n_known = (int)n;
}

void value_info_from_value(ValueInfo *vi, const Value *v)
{
    vi->dtype = v->dtype;
    vi->shape = v->shape;
    vi->n_known = v->n_known;
    if (v->n_known > 0) memcpy(vi->known, v->known, sizeof(Dim) * (size_t)v->n_known);
    vi->data = v->konst;
}

/* A tensor without data (a head: the dtype and shape of a value held
 * elsewhere, e.g. on a device) gives a value info without contents. */
void value_info_from_tensor(ValueInfo *vi, const Tensor *t)
{
    int head = !t->data && tensor_numel(t) > 0;
    vi->dtype = t->dtype;
    vi->shape.rank = t->rank;
    for (int i = 0; i < t->rank; i++) vi->shape.d[i] = dim_const(t->dims[i]);
    vi->data = head ? NULL : t;
    known_from_tensor(vi, head ? NULL : t);
}

int infer_node(const Graph *g, Node *n, char *err, size_t cap)
{
    InferCtx *c = calloc(1, sizeof *c);
    ValueInfo *ins = calloc(16, sizeof *ins), *outs = calloc(8, sizeof *outs);
    int rc = -1;
    if (!c || !ins || !outs) { snprintf(err, cap, "out of memory"); goto done; }
    if (n->n_out < 1) {
        snprintf(err, cap, "node '%s' (%s): has no outputs", n->name, op_name(n->op));
        goto done;
    }
    if (n->n_in > 16 || n->n_out > 8) {
        snprintf(err, cap, "node '%s' (%s): too many inputs/outputs", n->name, op_name(n->op));
        goto done;
    }
    c->node = n;
    c->opset = g->opset;
    c->n_in = n->n_in;
    c->n_out = n->n_out;
    for (int i = 0; i < n->n_in; i++) {
        if (!n->in[i]) continue;
        value_info_from_value(&ins[i], n->in[i]);
        c->in[i] = &ins[i];
    }
    for (int i = 0; i < n->n_out; i++) {
        outs[i].shape.rank = -1;
        outs[i].n_known = -1;
        c->out[i] = &outs[i];
    }
    if (op_table[n->op].infer(c)) {
        snprintf(err, cap, "node '%s' (%s): %s", n->name, op_name(n->op), c->err);
        goto done;
    }
    for (int i = 0; i < n->n_out; i++) {
        if (n->out[i] && outs[i].dtype == DT_UNDEF) {
            snprintf(err, cap, "node '%s' (%s): output %d ('%s') is not produced by this op (too many outputs?)",
                     n->name, op_name(n->op), i, n->out[i]->name);
            goto done;
        }
    }
    for (int i = 0; i < n->n_out; i++) {
        Value *v = n->out[i];
        if (!v) continue;
        v->dtype = outs[i].dtype;
        v->shape = outs[i].shape;
        v->n_known = outs[i].n_known;
        if (outs[i].n_known > 0) memcpy(v->known, outs[i].known, sizeof(Dim) * (size_t)outs[i].n_known);
    }
    rc = 0;
done:
    free(c);
    free(ins);
    free(outs);
    return rc;
}

int infer_graph(Graph *g, char *err, size_t cap)
{
    for (int i = 0; i < g->n_nodes; i++)
        if (infer_node(g, g->nodes[i], err, cap)) return -1;
    return 0;
}
