/* lower_to_standard_ops.c — expands our ai.vclip ops back into standard ONNX
 * ops, so that any ONNX runtime can execute (and check) a compiled graph:
 *   QuickGelu(x) = x * Sigmoid(x * 1.702)
 *   Gelu(x)      = (x * (Erf(x / sqrt 2) + 1)) * 0.5
 *   Linear(x, W, b, r) = act(MatMul(x, W) + b) + r, a packed W unpacked
 *   Attention: see lower_attention.c
 *   FusedElementwise: its views (Transpose, Slice, Concat...) and its
 *                     program, one standard op per instruction
 *   FusedReduce: prologue ops, ReduceSum/Mean/Max over the last axis, epilogue ops
 * Used by `vclipc compile --export-standard-ops`. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "passes.h"
#include "rewrite.h"
#include "../ir/program.h"
#include "../ir/loads.h"

static Value *bin(Graph *g, int op, const char *base, Value *a, Value *b)
{
    Value *in[2] = {a, b};
    return (a && b) ? append_node(g, op, base, 2, in) : NULL;
}

static Value *quick_gelu(Graph *g, const char *nm, Value *x)
{
    Value *t = bin(g, OP_MUL, nm, x, scalar_const(g, "quick_gelu_alpha", 1.702f));
    Value *s = t ? append_node(g, OP_SIGMOID, nm, 1, &t) : NULL;
    return bin(g, OP_MUL, nm, x, s);
}

static Value *gelu(Graph *g, const char *nm, Value *x)
{
    Value *d = bin(g, OP_DIV, nm, x, scalar_const(g, "gelu_sqrt2", (float)sqrt(2.0)));
    Value *e = d ? append_node(g, OP_ERF, nm, 1, &d) : NULL;
    Value *a = bin(g, OP_ADD, nm, e, scalar_const(g, "gelu_one", 1.0f));
    return bin(g, OP_MUL, nm, bin(g, OP_MUL, nm, x, a), scalar_const(g, "gelu_half", 0.5f));
}

/* The IR op of a program opcode (QuickGelu and Gelu are expanded by the caller). */
static int ir_op_of(int pr)
{
    for (int op = 0; op < OP_COUNT; op++)
        if (program_op_of(op) == pr && !*op_table[op].domain) return op;
    return -1;
}

/* A program's instructions as standard ops over `in`; the identity gives in[0]. */
static Value *lower_program(Graph *g, const char *name, const Program *p, Value **in)
{
    if (!p->n_instr) return in[0];
    int total = p->n_in + p->n_const + p->n_instr;
    Value **reg = calloc((size_t)total, sizeof(Value *)), *out = NULL;
    if (!reg) return NULL;
    for (int i = 0; i < p->n_in; i++) reg[i] = in[i];
    for (int i = 0; i < p->n_const; i++) reg[p->n_in + i] = scalar_const(g, "fused_const", p->consts[i]);
    for (int i = 0, base = p->n_in + p->n_const; i < p->n_instr; i++) {
        const Instr *ins = &p->code[i];
        Value *a = reg[ins->a], *b = ins->b >= 0 ? reg[ins->b] : NULL;
        if (ins->op == PR_QUICK_GELU) reg[base + i] = a ? quick_gelu(g, name, a) : NULL;
        else if (ins->op == PR_GELU) reg[base + i] = a ? gelu(g, name, a) : NULL;
        else {
            int op = ir_op_of(ins->op);
            reg[base + i] = op < 0 || !a ? NULL : b ? bin(g, op, name, a, b) : append_node(g, op, name, 1, &a);
        }
        if (!reg[base + i]) break;
        out = reg[base + i];
    }
    if (out != reg[total - 1]) out = NULL;
    free(reg);
    return out;
}

/* One view step (ir/loads.h) as its op, on x. */
static Value *view_step(Graph *g, Node *n, const ViewStep *st, Value *x)
{
    Value *in[1 + VIEW_MAX_OPERANDS] = {x};
    for (int o = 0; o < st->n_operands; o++) in[1 + o] = st->operand[o] >= 0 ? n->in[st->operand[o]] : NULL;
    Node *q = new_node(g, view_op_of_code(st->code), n->name, 1 + st->n_operands, in);
    int is_list;
    const char *an = view_attr_name(st->code, &is_list);
    if (q && an && st->n_attr >= 0) {
        Attr *a = node_add_attr(q, an, is_list ? ATTR_INTS : ATTR_INT);
        if (!a) return NULL;
        if (is_list) {
            if (!(a->ints = malloc(sizeof(int64_t) * (size_t)(st->n_attr ? st->n_attr : 1)))) return NULL;
            memcpy(a->ints, st->attr, sizeof(int64_t) * (size_t)st->n_attr);
            a->n = st->n_attr;
        } else a->i = st->n_attr ? st->attr[0] : 0;
    }
    char err[IR_ERR_CAP];
    return q && infer_node(g, q, err, sizeof err) == 0 ? q->out[0] : NULL;
}

/* The registers of a FusedElementwise: its inputs, or the views it reads
 * them through, each view op and Concat written out. */
static int lower_loads(Graph *g, Node *n, Value **reg)
{
    LoadPlan lp;
    char err[IR_ERR_CAP];
    if (loads_decode(n, &lp, err, sizeof err)) return -1;
    int rc = lp.n_loads > 64 ? -1 : 0;
    for (int l = 0; !rc && l < lp.n_loads; l++) {
        const ViewLoad *ld = &lp.loads[l];
        Value *pieces[64];
        for (int p = 0; !rc && p < ld->n_pieces; p++) {
            const ViewPiece *pc = &lp.pieces[ld->first_piece + p];
            Value *x = n->in[pc->input];
            for (int s = 0; x && s < pc->n_steps; s++) x = view_step(g, n, &lp.steps[pc->first_step + s], x);
            if (!(pieces[p] = x)) rc = -1;
        }
        if (rc || ld->n_pieces == 1) { reg[l] = pieces[0]; continue; }
        Node *c = new_node(g, OP_CONCAT, n->name, ld->n_pieces, pieces);
        Attr *a = c ? node_add_attr(c, "axis", ATTR_INT) : NULL;
        if (!a) { rc = -1; break; }
        a->i = ld->axis;
        if (infer_node(g, c, err, sizeof err)) rc = -1;
        reg[l] = c->out[0];
    }
    loads_free(&lp);
    return rc;
}

static Value *fused(Graph *g, Node *n)
{
    Program p;
    Value *reg[64], *out = NULL;
    char err[IR_ERR_CAP];
    if (program_from_node(n, &p, err, sizeof err)) return NULL;
    if (!lower_loads(g, n, reg)) out = lower_program(g, n->name, &p, reg);
    program_free(&p);
    return out;
}

/* prologue ops, the ONNX reduction over the last axis (axes as an input or
 * an attribute, as the graph's opset has it), epilogue ops */
static Value *fused_reduce(Graph *g, Node *n)
{
    Program pro, epi;
    char err[IR_ERR_CAP];
    if (program_from_attrs(n, "program", "constants", n->n_in, &pro, err, sizeof err)) return NULL;
    if (program_from_attrs(n, "epilogue", "epilogue_constants", 1, &epi, err, sizeof err)) { program_free(&pro); return NULL; }
    const char *r = node_attr_s(n, "reduce", "sum");
    int op = !strcmp(r, "sum") ? OP_REDUCE_SUM : !strcmp(r, "mean") ? OP_REDUCE_MEAN : OP_REDUCE_MAX;
    int axes_input = op == OP_REDUCE_SUM ? g->opset >= 13 : g->opset >= 18;
    Value *x = lower_program(g, n->name, &pro, n->in), *y = NULL;
    if (x) {
        int64_t last = -1;
        Value *in[2] = {x, axes_input ? int_vector_const(g, "reduce_axes", 1, &last) : NULL};
        Node *red = (!axes_input || in[1]) ? new_node(g, op, n->name, axes_input ? 2 : 1, in) : NULL;
        Attr *k = red ? node_add_attr(red, "keepdims", ATTR_INT) : NULL;
        if (k) k->i = node_attr_i(n, "keepdims", 1); /* before the next add moves the array */
        Attr *ax = k && !axes_input ? node_add_attr(red, "axes", ATTR_INTS) : NULL;
        if (ax && (ax->ints = malloc(sizeof(int64_t)))) { ax->n = 1; ax->ints[0] = -1; }
        if (k && (axes_input || (ax && ax->ints)) && infer_node(g, red, err, sizeof err) == 0) y = lower_program(g, n->name, &epi, red->out);
    }
    program_free(&pro);
    program_free(&epi);
    return y;
}

/* A packed Linear weight [panels, K, 32] back to [K, N] (ir/ops.h). */
static Value *unpacked_weight(Graph *g, const Value *w, int64_t N)
{
    const Tensor *t = w->konst;
    if (!t) return NULL;
    int64_t K = t->dims[1], d[2] = {K, N};
    Tensor *u = tensor_new(DT_F32, 2, d);
    if (!u) return NULL;
    const float *src = t->data;
    float *dst = u->data;
    for (int64_t k = 0; k < K; k++)
        for (int64_t n = 0; n < N; n++) dst[k * N + n] = src[((n / LINEAR_PANEL) * K + k) * LINEAR_PANEL + n % LINEAR_PANEL];
    return new_const(g, w->name, "", u);
}

static Value *lower_linear(Graph *g, Node *n)
{
    const char *nm = n->name, *act = node_attr_s(n, "activation", "");
    Value *w = n->in[1]->shape.rank == 3 ? unpacked_weight(g, n->in[1], node_attr_i(n, "packed_n", 0)) : n->in[1];
    Value *y = bin(g, OP_MATMUL, nm, n->in[0], w);
    if (n->n_in > 2 && n->in[2]) y = bin(g, OP_ADD, nm, y, n->in[2]);
    if (y && !strcmp(act, "quick_gelu")) y = quick_gelu(g, nm, y);
    else if (y && !strcmp(act, "gelu")) y = gelu(g, nm, y);
    return n->n_in > 3 && n->in[3] ? bin(g, OP_ADD, nm, y, n->in[3]) : y;
}

static Value *lower(Graph *g, Node *n)
{
    Value *x = n->in[0];
    const char *nm = n->name;
    switch (n->op) {
    case OP_QUICK_GELU:
        return quick_gelu(g, nm, x);
    case OP_GELU:
        return gelu(g, nm, x);
    case OP_FUSED_ELEMENTWISE:
        return fused(g, n);
    case OP_FUSED_REDUCE:
        return fused_reduce(g, n);
    case OP_ATTENTION:
        return lower_attention(g, n);
    case OP_LINEAR:
        return lower_linear(g, n);
    default:
        return NULL;
    }
}

int pass_lower_to_standard_ops(Graph *g, char *err, size_t cap)
{
    int changed = 0, n = g->n_nodes;
    for (int i = 0; i < n; i++) {
        Node *node = g->nodes[i];
        if (!*op_table[node->op].domain) continue;
        Value *y = lower(g, node);
        if (!y) { snprintf(err, cap, "node '%s': cannot lower %s.%s", node->name, op_table[node->op].domain, op_name(node->op)); return -1; }
        graph_replace_uses(g, node->out[0], y);
        node->op = -1;
        changed++;
    }
    graph_remove_dead(g);
    return graph_topo_sort(g) ? (snprintf(err, cap, "lower-to-standard-ops: cycle"), -1) : changed;
}
