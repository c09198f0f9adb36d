/* fuse_reduce.c — kernel fusion around reductions: a ReduceSum, ReduceMean
 * or ReduceMax over the last axis takes the elementwise work that only it
 * reads (a FusedElementwise or single elementwise op whose inputs have the
 * reduced tensor's shape or one element: the x*x of a norm, a gradient
 * chain) as its prologue, and the elementwise work that only reads its
 * result (the Sqrt of a norm) as its epilogue: one ai.vclip.FusedReduce, one
 * pass over the rows, no intermediate tensors.  Run after fuse-elementwise,
 * which builds the chains. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "passes.h"
#include "rewrite.h"
#include "../ir/program.h"

static int last_axis_only(const Graph *g, Node *r)
{
    const Value *x = r->in[0];
    if (x->dtype != DT_F32 || x->shape.rank < 1 || r->out[0]->dtype != DT_F32) return 0;
    InferCtx ic;
    ValueInfo vi[2];
    memset(&ic, 0, sizeof ic);
    memset(vi, 0, sizeof vi);
    ic.node = r;
    ic.opset = g->opset;
    ic.n_in = r->n_in;
    for (int i = 0; i < r->n_in && i < 2; i++)
        if (r->in[i]) { value_info_from_value(&vi[i], r->in[i]); ic.in[i] = &vi[i]; }
    uint8_t mask[IR_MAX_RANK];
    if (op_reduce_axes(&ic, x->shape.rank, mask)) return 0;
    for (int d = 0; d < x->shape.rank; d++)
        if (mask[d] != (d == x->shape.rank - 1)) return 0;
    return 1;
}

/* v has x's shape, or one element */
static int fits(const Value *v, const Value *x)
{
    if (v->dtype != DT_F32 || v->shape.rank < 0) return 0;
    if (shape_is_const(&v->shape) && shape_numel(&v->shape) == 1) return 1;
    if (v->shape.rank != x->shape.rank) return 0;
    for (int d = 0; d < v->shape.rank; d++)
        if (!dim_equal(v->shape.d[d], x->shape.d[d])) return 0;
    return 1;
}

static int elementwise(const Node *n)
{
    int pr = n->op >= 0 ? program_op_of(n->op) : -1;
    return pr >= 0 && n->n_out == 1 && n->n_in == program_op_arity(pr) && n->out[0]->dtype == DT_F32;
}

static int copy_attr(Node *to, const char *name, const Attr *a)
{
    Attr *d = node_add_attr(to, name, a->type);
    if (!d) return -1;
    d->n = a->n;
    if (a->type == ATTR_INTS) {
        if (!(d->ints = malloc(sizeof(int64_t) * (size_t)(a->n ? a->n : 1)))) return -1;
        memcpy(d->ints, a->ints, sizeof(int64_t) * (size_t)a->n);
    } else {
        if (!(d->floats = malloc(sizeof(float) * (size_t)(a->n ? a->n : 1)))) return -1;
        memcpy(d->floats, a->floats, sizeof(float) * (size_t)a->n);
    }
    return 0;
}

static int set_single_op(Node *to, const char *name, const Node *op)
{
    int pr = program_op_of(op->op);
    Attr *d = node_add_attr(to, name, ATTR_INTS);
    if (!d || !(d->ints = malloc(3 * sizeof(int64_t)))) return -1;
    d->n = 3;
    d->ints[0] = pr;
    d->ints[1] = 0;
    d->ints[2] = program_op_arity(pr) == 2 ? 1 : -1;
    return 0;
}

static int fuse_one(Graph *g, Node *r, const int *uses, char *err, size_t cap)
{
    Value *x = r->in[0];
    Node *pro = x->producer && uses[x->id] == 1 && !x->is_output ? x->producer : NULL;
    /* a prologue reads its inputs row by row: one that reads through views does not fit */
    if (pro && !((pro->op == OP_FUSED_ELEMENTWISE && !node_attr(pro, "loads")) || elementwise(pro))) pro = NULL;
    for (int i = 0; pro && i < pro->n_in; i++)
        if (!pro->in[i] || !fits(pro->in[i], x)) pro = NULL;
    if (pro && pro->n_in > 64) pro = NULL;
    Node *epi = sole_reader(g, r->out[0], uses);
    if (epi && !((epi->op == OP_FUSED_ELEMENTWISE && epi->n_in == 1 && !node_attr(epi, "loads")) || (elementwise(epi) && epi->n_in == 1))) epi = NULL;
    if (!pro && !epi) return 0;
    Value **in = pro ? pro->in : &x;
    Node *f = new_node(g, OP_FUSED_REDUCE, r->name, pro ? pro->n_in : 1, in);
    if (!f) goto oom;
    const char *red = r->op == OP_REDUCE_SUM ? "sum" : r->op == OP_REDUCE_MEAN ? "mean" : "max";
    Attr *a = node_add_attr(f, "reduce", ATTR_STRING); /* filled before the next add moves the array */
    if (!a || !(a->s = strdup(red))) goto oom;
    Attr *k = node_add_attr(f, "keepdims", ATTR_INT);
    if (!k) goto oom;
    k->i = node_attr_i(r, "keepdims", 1);
    if (pro && pro->op == OP_FUSED_ELEMENTWISE) {
        const Attr *c = node_attr(pro, "constants");
        if (copy_attr(f, "program", node_attr(pro, "program")) || (c && copy_attr(f, "constants", c))) goto oom;
    } else if (pro && set_single_op(f, "program", pro)) goto oom;
    if (epi && epi->op == OP_FUSED_ELEMENTWISE) {
        const Attr *c = node_attr(epi, "constants");
        if (copy_attr(f, "epilogue", node_attr(epi, "program")) || (c && copy_attr(f, "epilogue_constants", c))) goto oom;
    } else if (epi && set_single_op(f, "epilogue", epi)) goto oom;
    char msg[IR_ERR_CAP];
    if (infer_node(g, f, msg, sizeof msg)) { snprintf(err, cap, "fuse-reduce: node '%s': %s", r->name, msg); return -1; }
    graph_replace_uses(g, (epi ? epi : r)->out[0], f->out[0]);
    r->op = -1;
    if (pro) pro->op = -1;
    if (epi) epi->op = -1;
    return 1;
oom:
    snprintf(err, cap, "fuse-reduce: out of memory");
    return -1;
}

int pass_fuse_reduce(Graph *g, char *err, size_t cap)
{
    int changed = 0, n = g->n_nodes;
    for (int i = 0; i < n; i++) {
        Node *r = g->nodes[i];
        if (r->op != OP_REDUCE_SUM && r->op != OP_REDUCE_MEAN && r->op != OP_REDUCE_MAX) continue;
        if (!last_axis_only(g, r)) continue;
        int *uses = graph_use_counts(g);
        if (!uses) { snprintf(err, cap, "fuse-reduce: out of memory"); return -1; }
        int rc = fuse_one(g, r, uses, err, cap);
        free(uses);
        if (rc < 0) return -1;
        changed += rc;
    }
    graph_remove_dead(g);
    return graph_topo_sort(g) ? (snprintf(err, cap, "fuse-reduce: cycle"), -1) : changed;
}
