/* narrow_to_pooled_row.c — a vision transformer that pools one token (CLIP's
 * class token: ln_post(x)[:, 0] feeds the projection) needs every token
 * only as the keys and values of its last attention.  From that attention's
 * queries on, each op works on one row at a time, so the last block's
 * queries, out_proj, MLP, layernorms and residual adds need the pooled row
 * alone: ViT-B/32 at 50 tokens spends about 6% of its GEMM work on rows
 * nobody reads.
 *
 * The rows a value's readers need are worked out backwards from the graph's
 * outputs: all of them, or one row (index i along axis 1 of a [B, N, C]
 * value, or rows i, i + N, ... of the same value flattened to [B*N, C]).
 * A Gather of a constant scalar index along axis 1 asks its data for that
 * row; a row-wise op (LayerNormalization over the last axis, Linear, a
 * Gemm without transA, an activation, an elementwise op whose other operand
 * has no row axis, the Reshapes that flatten and unflatten the rows) passes
 * the request to its row operands; an Attention without mask or causality
 * passes it to its queries and needs every key and value.  Every other
 * reader needs all rows.
 *
 * The text towers pool differently: each sequence's end-of-text row, a
 * Gather along axis 0 of the rows flattened to [B*N, C] at indices computed
 * from the tokens (argmax + N * arange).  That asks its data for those rows
 * (NEED_ROWS), which the same row-wise ops pass back to the last attention's
 * output: causal, it needs every row, so the out-projection, the MLP and the
 * final LayerNorm run on the B gathered rows ([B', C]) alone, 6% of the text
 * tower's GEMM work.  A Shape reads no rows: one of a narrowed value reads a
 * whole value of the same shape instead (the exports take the batch size
 * from ln_final's output).
 *
 * Then each row-wise op whose output is needed at one row only is copied to
 * compute that row ([B, 1, C], or [B, C] flattened), reading the narrowed
 * copies of its row operands, or that row gathered from an operand that
 * others need in full (the packed QKV that the narrowed attention's queries
 * come from); the
 * Gather becomes a Reshape of the narrowed row.  The originals are then dead.
 * Each row is computed by the same kernels as before, so the outputs are
 * the full graph's (tests/unit/test_model.c compares them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "passes.h"
#include "rewrite.h"

enum { NEED_NONE, NEED_ROW, NEED_ROWS, NEED_ALL };

typedef struct {
    int kind;
    int64_t period, index; /* NEED_ROW: the row at `index` of every `period` */
    const Value *rows;     /* NEED_ROWS: the rows at these indices of the value flattened to [B*period, C] */
} Need;

typedef struct {
    Graph *g;
    int n_values;     /* the values before the rewrite: the arrays' length */
    Need *need;
    Value **narrowed; /* by value id: the row the value's readers need, computed alone */
    Value **sliced;   /* by value id: that row sliced out of the full value */
} Narrowing;

static int known(const Narrowing *z, const Value *v) { return v && v->id < z->n_values; }

static void join(Need *n, Need want)
{
    if (want.kind == NEED_NONE || n->kind == NEED_ALL) return;
    if (want.kind == NEED_ALL || (n->kind != NEED_NONE && (n->kind != want.kind || n->period != want.period || n->index != want.index ||
                                                           n->rows != want.rows))) {
        n->kind = NEED_ALL;
        return;
    }
    *n = want;
}

static const Need need_all = {NEED_ALL, 0, 0, NULL};

static int same_shape(const Shape *a, const Shape *b)
{
    if (a->rank < 0 || a->rank != b->rank) return 0;
    for (int i = 0; i < a->rank; i++)
        if (a->d[i].n != b->d[i].n || a->d[i].sym != b->d[i].sym || a->d[i].sym == DIM_UNKNOWN) return 0;
    return 1;
}

/* v has rows of `period` along axis 1 ([B, period, C]) or is such rows flattened ([R, C]) */
static int has_rows(const Value *v, int64_t period)
{
    const Shape *s = &v->shape;
    if (v->dtype != DT_F32 || s->rank < 2 || !dim_is_const(s->d[s->rank - 1])) return 0;
    return s->rank == 2 || (s->rank == 3 && dim_is_const(s->d[1]) && s->d[1].n == period);
}

/* A broadcast operand without a row axis: a scalar or a [C] vector, or 1s before its last dim. */
static int no_row_axis(const Value *v)
{
    for (int i = 0; i + 1 < v->shape.rank; i++)
        if (!dim_is_const(v->shape.d[i]) || v->shape.d[i].n != 1) return 0;
    return v->shape.rank >= 0;
}

/* Whether n computes each row of its output from the same row of its row
 * operands alone (marked in *rows, one bit per input), for an output with
 * rows of `period`. */
static int row_wise(const Node *n, int64_t period, unsigned *rows)
{
    const Value *o = n->out[0];
    *rows = 0;
    for (int j = 1; j < n->n_out; j++) if (n->out[j]) return 0;
    if (!has_rows(o, period)) return 0;
    switch (n->op) {
    case OP_LAYER_NORM: {
        int64_t axis = node_attr_i(n, "axis", -1);
        if ((axis != -1 && axis != o->shape.rank - 1) || !same_shape(&n->in[0]->shape, &o->shape)) return 0;
        *rows = 1;
        return 1;
    }
    case OP_LINEAR:
        if (n->in[0]->shape.rank != o->shape.rank || !has_rows(n->in[0], period) || (n->n_in > 2 && n->in[2] && !no_row_axis(n->in[2])))
            return 0;
        for (int d = 0; d + 1 < o->shape.rank; d++)
            if (n->in[0]->shape.d[d].n != o->shape.d[d].n || n->in[0]->shape.d[d].sym != o->shape.d[d].sym) return 0;
        *rows = 1;
        if (n->n_in > 3 && n->in[3]) {
            if (!same_shape(&n->in[3]->shape, &o->shape)) return 0;
            *rows |= 8;
        }
        return 1;
    case OP_GEMM:
        if (o->shape.rank != 2 || node_attr_i(n, "transA", 0) || n->in[0]->shape.rank != 2) return 0;
        *rows = 1;
        if (n->n_in > 2 && n->in[2]) {
            if (same_shape(&n->in[2]->shape, &o->shape)) *rows |= 4;
            else if (!no_row_axis(n->in[2])) return 0;
        }
        return 1;
    case OP_QUICK_GELU: case OP_GELU: case OP_RELU: case OP_SIGMOID: case OP_TANH: case OP_ERF:
        if (!same_shape(&n->in[0]->shape, &o->shape)) return 0;
        *rows = 1;
        return 1;
    case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV:
        for (int j = 0; j < 2; j++) {
            if (same_shape(&n->in[j]->shape, &o->shape)) *rows |= 1u << j;
            else if (!no_row_axis(n->in[j])) return 0;
        }
        return *rows != 0;
    default:
        return 0;
    }
}

/* A Reshape (or Flatten) that flattens [B, N, C] into [B*N, C] (1) or
 * unflattens it back (2); else 0. */
static int row_reshape(const Node *n, int64_t period)
{
    if ((n->op != OP_RESHAPE && n->op != OP_FLATTEN) || !n->in[0]) return 0;
    const Shape *x = &n->in[0]->shape, *y = &n->out[0]->shape;
    if (n->op == OP_FLATTEN && (x->rank != 3 || node_attr_i(n, "axis", 1) != 2)) return 0;
    if (x->rank < 2 || y->rank < 2 || !dim_is_const(x->d[x->rank - 1]) || x->d[x->rank - 1].n != y->d[y->rank - 1].n) return 0;
    if (x->rank == 3 && y->rank == 2 && dim_is_const(x->d[1]) && x->d[1].n == period && y->d[0].sym == x->d[0].sym &&
        y->d[0].n == x->d[0].n * period)
        return 1;
    if (x->rank == 2 && y->rank == 3 && dim_is_const(y->d[1]) && y->d[1].n == period && x->d[0].sym == y->d[0].sym &&
        x->d[0].n == y->d[0].n * period)
        return 2;
    return 0;
}

/* The Attention whose queries alone follow their output's rows. */
static int narrowable_attention(const Node *n)
{
    return n->op == OP_ATTENTION && n->n_in == 3 && !node_attr_i(n, "causal", 0) && !node_attr_i(n, "seq_first", 0) &&
           n->in[0]->shape.rank == 3;
}

/* A Gather of one constant row along axis 1 of [B, N, C]: 1, with the row in *index. */
static int row_gather(const Node *n, int64_t *index)
{
    const Tensor *t = n->n_in == 2 && n->in[1] ? n->in[1]->konst : NULL;
    if (n->op != OP_GATHER || !t || t->rank != 0 || (t->dtype != DT_I64 && t->dtype != DT_I32) || !n->in[0] || n->in[0]->shape.rank != 3 ||
        !dim_is_const(n->in[0]->shape.d[1]))
        return 0;
    double i = tensor_get_f64(t, 0);
    int64_t axis = node_attr_i(n, "axis", 0), N = n->in[0]->shape.d[1].n;
    if (axis != 1 && axis != -2) return 0;
    *index = (int64_t)i < 0 ? (int64_t)i + N : (int64_t)i;
    return *index >= 0 && *index < N;
}

/* A Gather along axis 0 of [B*N, C] rows that a flattening made from [B, N,
 * C] (CLIP's text pooling: the end-of-text row of each sequence, at indices
 * computed from the tokens): 1, with N in *period; the indices are in[1]. */
static int rows_gather(const Node *n, int64_t *period)
{
    if (n->op != OP_GATHER || n->n_in != 2 || !n->in[0] || !n->in[1] || n->in[0]->shape.rank != 2 || n->in[1]->shape.rank != 1 ||
        (n->in[1]->dtype != DT_I64 && n->in[1]->dtype != DT_I32) || node_attr_i(n, "axis", 0) != 0)
        return 0;
    const Node *flat = n->in[0]->producer;
    if (!flat || !flat->in[0] || flat->in[0]->shape.rank != 3 || !dim_is_const(flat->in[0]->shape.d[1])) return 0;
    *period = flat->in[0]->shape.d[1].n;
    return row_reshape(flat, *period) == 1;
}

/* Whether n follows one row of its output (rows of `period`) back to the
 * same row of some inputs, marked in *rows: a row-wise op, a row Reshape,
 * or (one row, not gathered ones) an Attention through its queries. */
static int row_operands(const Node *n, int64_t period, int kind, unsigned *rows)
{
    if (row_reshape(n, period) || (kind == NEED_ROW && narrowable_attention(n) && has_rows(n->out[0], period))) {
        *rows = 1;
        return 1;
    }
    if (row_wise(n, period, rows)) return 1;
    *rows = 0;
    return 0;
}

/* A Shape reads no rows; one of a value narrowed away reads, instead, a
 * value of the same shape that stays whole (up the row-wise ops' first
 * same-shaped row operand) */
static Value *whole_of_same_shape(const Need *need, Value *v)
{
    while (need[v->id].kind != NEED_ALL && v->producer) {
        const Node *n = v->producer;
        unsigned rows;
        Value *up = NULL;
        if (row_wise(n, need[v->id].period, &rows))
            for (int j = 0; j < n->n_in && !up; j++)
                if ((rows >> j & 1) && same_shape(&n->in[j]->shape, &v->shape)) up = n->in[j];
        if (!up) return NULL;
        v = up;
    }
    return need[v->id].kind == NEED_ALL ? v : NULL;
}

/* What n's inputs need, from what its outputs' readers need. */
static void propagate(Narrowing *z, const Node *n)
{
    Need *need = z->need, out = {NEED_NONE, 0, 0, NULL};
    for (int j = 0; j < n->n_out; j++)
        if (n->out[j]) {
            const Need *o = &need[n->out[j]->id];
            if (j == 0) out = *o;
            else if (o->kind != NEED_NONE) out.kind = NEED_ALL; /* a second output: not a row-wise op */
        }
    if (out.kind == NEED_NONE || n->op == OP_SHAPE) return;
    int64_t index, period;
    if (row_gather(n, &index)) {
        join(&need[n->in[0]->id], (Need){NEED_ROW, n->in[0]->shape.d[1].n, index, NULL});
        return;
    }
    if (rows_gather(n, &period)) {
        join(&need[n->in[0]->id], (Need){NEED_ROWS, period, 0, n->in[1]});
        join(&need[n->in[1]->id], need_all);
        return;
    }
    unsigned rows = 0; /* the inputs that follow the output's row */
    if (out.kind == NEED_ROW || out.kind == NEED_ROWS) row_operands(n, out.period, out.kind, &rows);
    for (int j = 0; j < n->n_in; j++)
        if (n->in[j]) join(&need[n->in[j]->id], rows >> j & 1 ? out : need_all);
}

/* v's needed row taken out of the full value ([B, 1, C], or [B, C] for
 * [B*N, C]) by a Gather of a one-element index, whose gradient (GatherGrad)
 * both backends run; gathered rows: [B', C] by a Gather of the indices from
 * v flattened */
static Value *slice_row(Narrowing *z, Value *v, const Need *nd)
{
    if (z->sliced[v->id]) return z->sliced[v->id];
    Graph *g = z->g;
    int64_t C = v->shape.d[v->shape.rank - 1].n;
    Value *x = v;
    if (nd->kind == NEED_ROWS) {
        if (v->shape.rank == 3) x = append_node(g, OP_RESHAPE, v->name, 2, (Value *[]){v, int_vector_const(g, "rows_flat", 2, (int64_t[]){-1, C})});
        Node *gather = x ? new_node(g, OP_GATHER, v->name, 2, (Value *[]){x, (Value *)nd->rows}) : NULL;
        char msg[IR_ERR_CAP];
        return z->sliced[v->id] = gather && !infer_node(g, gather, msg, sizeof msg) ? gather->out[0] : NULL;
    }
    if (v->shape.rank == 2) x = append_node(g, OP_RESHAPE, v->name, 2, (Value *[]){v, int_vector_const(g, "rows", 3, (int64_t[]){-1, nd->period, C})});
    Value *index = int_vector_const(g, "row", 1, &nd->index);
    Node *gather = x && index ? new_node(g, OP_GATHER, v->name, 2, (Value *[]){x, index}) : NULL;
    Attr *axis = gather ? node_add_attr(gather, "axis", ATTR_INT) : NULL;
    char msg[IR_ERR_CAP];
    if (!axis) return NULL;
    axis->i = 1;
    Value *s = infer_node(g, gather, msg, sizeof msg) ? NULL : gather->out[0];
    if (s && v->shape.rank == 2) s = append_node(g, OP_RESHAPE, v->name, 2, (Value *[]){s, int_vector_const(g, "row_flat", 2, (int64_t[]){-1, C})});
    return z->sliced[v->id] = s;
}

static Value *row_of(Narrowing *z, Value *v, const Need *nd)
{
    if (!known(z, v)) return NULL; /* made by this pass: never a row operand */
    return z->narrowed[v->id] ? z->narrowed[v->id] : slice_row(z, v, nd);
}

/* n's copy on the needed row of its output; 0, or -1 with err set */
static int narrow(Narrowing *z, Node *n, char *err, size_t cap)
{
    Graph *g = z->g;
    const Need *nd = &z->need[n->out[0]->id];
    unsigned rows;
    if (!row_operands(n, nd->period, nd->kind, &rows)) return 0;
    int reshape = row_reshape(n, nd->period);
    for (int j = 0; j < n->n_in; j++)
        if ((rows >> j & 1) && !known(z, n->in[j])) return 0; /* an input this pass made: left whole, its readers slice it */
    Value *in[16];
    for (int j = 0; j < n->n_in && j < 16; j++) {
        in[j] = n->in[j];
        if ((rows >> j & 1) && !(in[j] = row_of(z, n->in[j], nd))) goto oom;
    }
    int64_t C = n->out[0]->shape.d[n->out[0]->shape.rank - 1].n;
    if (reshape && nd->kind == NEED_ROWS) { /* gathered rows are [B', C] on both sides */
        z->narrowed[n->out[0]->id] = in[0];
        return 1;
    }
    if (reshape) {
        Value *shape = reshape == 1 ? int_vector_const(g, "row_flat", 2, (int64_t[]){-1, C}) : int_vector_const(g, "row", 3, (int64_t[]){-1, 1, C});
        if (!shape || !(z->narrowed[n->out[0]->id] = append_node(g, OP_RESHAPE, n->name, 2, (Value *[]){in[0], shape}))) goto oom;
        return 1;
    }
    Node *c = clone_node(g, n, in, "pooled_row/", err, cap);
    if (!c) return -1;
    if (c->op == OP_LAYER_NORM && nd->kind == NEED_ROWS && node_attr_i(c, "axis", -1) != -1) { /* rank 3 -> 2: the last axis still */
        node_add_attr(c, "axis", ATTR_INT)->i = -1;
        if (infer_node(g, c, err, cap)) return -1;
    }
    z->narrowed[n->out[0]->id] = c->out[0];
    return 1;
oom:
    snprintf(err, cap, "narrow-to-pooled-row: out of memory at '%s'", n->name);
    return -1;
}

int pass_narrow_to_pooled_row(Graph *g, char *err, size_t cap)
{
    if (!g->n_nodes) return 0;
    Narrowing z = {g, g->n_values, calloc((size_t)g->n_values + 1, sizeof(Need)), calloc((size_t)g->n_values + 1, sizeof(Value *)),
                   calloc((size_t)g->n_values + 1, sizeof(Value *))};
    int n_nodes = g->n_nodes, changed = 0;
    Node **order = malloc(sizeof(Node *) * (size_t)(n_nodes + 1));
    if (!z.need || !z.narrowed || !z.sliced || !order) { snprintf(err, cap, "narrow-to-pooled-row: out of memory"); changed = -1; goto done; }
    memcpy(order, g->nodes, sizeof(Node *) * (size_t)n_nodes);
    for (int i = 0; i < g->n_outputs; i++) join(&z.need[g->outputs[i]->id], need_all);
    for (int i = n_nodes - 1; i >= 0; i--) propagate(&z, order[i]);
    /* worth it only where a computation, not just the pooling Gather, shrinks */
    int compute = 0;
    for (int i = 0; i < n_nodes; i++) {
        Node *n = order[i];
        unsigned rows;
        const Need *nd = n->out[0] ? &z.need[n->out[0]->id] : NULL;
        if (nd && (nd->kind == NEED_ROW || nd->kind == NEED_ROWS) && n->op != OP_RESHAPE && n->op != OP_FLATTEN &&
            row_operands(n, nd->period, nd->kind, &rows))
            compute++;
    }
    if (!compute) goto done;
    for (int i = 0; i < n_nodes; i++) {
        Node *n = order[i];
        int64_t index, period;
        int kind = n->out[0] && known(&z, n->out[0]) ? z.need[n->out[0]->id].kind : NEED_NONE;
        if (kind == NEED_ROW || kind == NEED_ROWS) {
            int r = narrow(&z, n, err, cap);
            if (r < 0) { changed = -1; goto done; }
            changed += r;
        } else if (rows_gather(n, &period) && known(&z, n->in[0]) && z.need[n->in[0]->id].kind == NEED_ROWS) {
            Value *rows = row_of(&z, n->in[0], &z.need[n->in[0]->id]);
            if (!rows) { snprintf(err, cap, "narrow-to-pooled-row: out of memory at '%s'", n->name); changed = -1; goto done; }
            graph_replace_uses(g, n->out[0], rows);
        } else if (n->op == OP_SHAPE && known(&z, n->in[0]) && z.need[n->in[0]->id].kind != NEED_ALL) {
            Value *whole = whole_of_same_shape(z.need, n->in[0]);
            if (whole) n->in[0] = whole;
        } else if (row_gather(n, &index) && known(&z, n->in[0]) && z.need[n->in[0]->id].kind == NEED_ROW) {
            Need *nd = &z.need[n->in[0]->id];
            Value *row = row_of(&z, n->in[0], nd);
            int64_t C = n->in[0]->shape.d[2].n;
            Value *flat = row ? append_node(g, OP_RESHAPE, n->name, 2, (Value *[]){row, int_vector_const(g, "pooled_row", 2, (int64_t[]){-1, C})}) : NULL;
            if (!flat) { snprintf(err, cap, "narrow-to-pooled-row: out of memory at '%s'", n->name); changed = -1; goto done; }
            graph_replace_uses(g, n->out[0], flat);
        }
    }
    graph_remove_dead(g);
    if (pass_eliminate_dead_code(g, err, cap) < 0 || graph_topo_sort(g)) {
        if (!*err) snprintf(err, cap, "narrow-to-pooled-row: cycle");
        changed = -1;
    }
done:
    free(z.need);
    free(z.narrowed);
    free(z.sliced);
    free(order);
    return changed;
}
