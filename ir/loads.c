/* loads.c — see loads.h.  Each step runs the op's own shape rule on a
 * stand-in node (the step's attribute, its operands); the strided view it
 * makes follows from the same parameters (perm, slice starts and steps,
 * squeezed axes, the gathered index). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "loads.h"

static const int code_ops[VIEW_CODE_END] = {
    [VIEW_RESHAPE] = OP_RESHAPE, [VIEW_FLATTEN] = OP_FLATTEN, [VIEW_SQUEEZE] = OP_SQUEEZE, [VIEW_UNSQUEEZE] = OP_UNSQUEEZE,
    [VIEW_TRANSPOSE] = OP_TRANSPOSE, [VIEW_SLICE] = OP_SLICE, [VIEW_GATHER] = OP_GATHER, [VIEW_EXPAND] = OP_EXPAND,
};

int view_op_of_code(int code) { return code > 0 && code < VIEW_CODE_END ? code_ops[code] : -1; }

int view_code_of_op(int op)
{
    for (int c = 1; c < VIEW_CODE_END; c++) if (code_ops[c] == op) return c;
    return 0;
}

const char *view_attr_name(int code, int *is_list)
{
    *is_list = code == VIEW_TRANSPOSE || code == VIEW_SQUEEZE || code == VIEW_UNSQUEEZE;
    switch (code) {
    case VIEW_TRANSPOSE: return "perm";
    case VIEW_SQUEEZE: case VIEW_UNSQUEEZE: return "axes";
    case VIEW_FLATTEN: case VIEW_GATHER: return "axis";
    case VIEW_RESHAPE: return "allowzero";
    default: return NULL;
    }
}

void loads_free(LoadPlan *lp)
{
    free(lp->loads);
    free(lp->pieces);
    free(lp->steps);
    memset(lp, 0, sizeof *lp);
}

static int bad(char *err, size_t cap, const Node *n, const char *what)
{
    snprintf(err, cap, "node '%s': malformed 'loads' attribute (%s)", n->name, what);
    return -1;
}

int loads_decode(const Node *n, LoadPlan *lp, char *err, size_t cap)
{
    memset(lp, 0, sizeof *lp);
    const Attr *a = node_attr(n, "loads");
    if (!a) { /* register k reads input k */
        lp->n_loads = lp->n_pieces = n->n_in;
        lp->loads = calloc((size_t)n->n_in + 1, sizeof *lp->loads);
        lp->pieces = calloc((size_t)n->n_in + 1, sizeof *lp->pieces);
        if (!lp->loads || !lp->pieces) { loads_free(lp); snprintf(err, cap, "out of memory"); return -1; }
        for (int k = 0; k < n->n_in; k++) {
            lp->loads[k] = (ViewLoad){1, -1, k};
            lp->pieces[k] = (ViewPiece){k, 0, 0};
        }
        return 0;
    }
    if (a->type != ATTR_INTS || a->n < 1) return bad(err, cap, n, "not a list of ints");
    const int64_t *v = a->ints;
    int at = 0, len = a->n;
#define NEXT(dst, lo, hi, what)                                                      \
    do {                                                                             \
        if (at >= len || v[at] < (lo) || v[at] > (hi)) { loads_free(lp); return bad(err, cap, n, what); } \
        (dst) = (int)v[at++];                                                        \
    } while (0)
    int n_loads;
    NEXT(n_loads, 1, 64, "load count");
    /* every count is bounded by the attribute's length, so these never overflow */
    lp->loads = calloc((size_t)n_loads, sizeof *lp->loads);
    lp->pieces = calloc((size_t)len, sizeof *lp->pieces);
    lp->steps = calloc((size_t)len, sizeof *lp->steps);
    if (!lp->loads || !lp->pieces || !lp->steps) { loads_free(lp); snprintf(err, cap, "out of memory"); return -1; }
    lp->n_loads = n_loads;
    for (int l = 0; l < n_loads; l++) {
        ViewLoad *ld = &lp->loads[l];
        NEXT(ld->n_pieces, 1, 64, "piece count");
        NEXT(ld->axis, ld->n_pieces > 1 ? 0 : -1, ld->n_pieces > 1 ? IR_MAX_RANK - 1 : -1, "concat axis");
        ld->first_piece = lp->n_pieces;
        lp->n_bounds += ld->n_pieces - 1;
        for (int p = 0; p < ld->n_pieces; p++) {
            ViewPiece *pc = &lp->pieces[lp->n_pieces++];
            NEXT(pc->input, 0, n->n_in - 1, "input index");
            NEXT(pc->n_steps, 0, 32, "step count");
            pc->first_step = lp->n_steps;
            for (int s = 0; s < pc->n_steps; s++) {
                ViewStep *st = &lp->steps[lp->n_steps++];
                NEXT(st->code, 1, VIEW_CODE_END - 1, "step code");
                NEXT(st->n_operands, 0, VIEW_MAX_OPERANDS, "operand count");
                for (int o = 0; o < st->n_operands; o++) NEXT(st->operand[o], -1, n->n_in - 1, "operand index");
                NEXT(st->n_attr, -1, IR_MAX_RANK, "attribute length");
                int is_list;
                const char *name = view_attr_name(st->code, &is_list);
                if (st->n_attr >= 0 && !name) { loads_free(lp); return bad(err, cap, n, "an attribute on a step that takes none"); }
                if (st->n_attr > 1 && !is_list) { loads_free(lp); return bad(err, cap, n, "a one-int attribute with several values"); }
                if (st->n_attr > 0 && at + st->n_attr > len) { loads_free(lp); return bad(err, cap, n, "attribute past the end"); }
                st->attr = v + at;
                at += st->n_attr > 0 ? st->n_attr : 0;
            }
        }
    }
#undef NEXT
    if (at != len) { loads_free(lp); return bad(err, cap, n, "trailing values"); }
    return 0;
}

/* ---- one step ----------------------------------------------------------- */

typedef struct {
    ValueInfo vi;                 /* the view's shape so far */
    int64_t st[IR_MAX_RANK], off; /* its element strides and offset into the input (concrete runs) */
} View;

static int contiguous(const View *v)
{
    int64_t s = 1;
    for (int d = v->vi.shape.rank - 1; d >= 0; d--) {
        int64_t n = v->vi.shape.d[d].n;
        if (n != 1 && v->st[d] != s) return 0;
        s *= n;
    }
    return 1;
}

static void contiguous_strides(View *v)
{
    int64_t s = 1;
    for (int d = v->vi.shape.rank - 1; d >= 0; d--) { v->st[d] = s; s *= v->vi.shape.d[d].n; }
}

/* Applies st to v; with `strided`, the shapes are concrete and the strides follow. */
static int apply(const ViewStep *st, const Node *n, int opset, const ValueInfo *const *in, View *v, int strided, char *err, size_t cap)
{
    int is_list, op = view_op_of_code(st->code);
    Attr attr = {.name = (char *)view_attr_name(st->code, &is_list), .type = is_list ? ATTR_INTS : ATTR_INT};
    if (st->n_attr >= 0) {
        attr.n = st->n_attr;
        attr.ints = (int64_t *)st->attr;
        attr.i = st->n_attr ? st->attr[0] : 0;
    }
    Node stand_in = {.op = op, .name = n->name, .n_attrs = st->n_attr >= 0, .attrs = &attr};
    InferCtx c = {.node = &stand_in, .opset = opset, .n_in = 1 + st->n_operands, .n_out = 1};
    ValueInfo out = {.n_known = -1};
    c.in[0] = &v->vi;
    for (int o = 0; o < st->n_operands; o++) c.in[1 + o] = st->operand[o] >= 0 ? in[st->operand[o]] : NULL;
    c.out[0] = &out;
    if (op_table[op].infer(&c)) { snprintf(err, cap, "node '%s': %s view: %s", n->name, op_name(op), c.err); return -1; }
    out.n_known = -1;
    out.data = NULL;
    if (!strided) { v->vi = out; return 0; }
    const Shape *is = &v->vi.shape, *os = &out.shape;
    int64_t st2[IR_MAX_RANK] = {0};
    uint8_t mask[IR_MAX_RANK];
    switch (st->code) {
    case VIEW_RESHAPE: case VIEW_FLATTEN:
        if (!contiguous(v)) { snprintf(err, cap, "node '%s': a %s of a strided view", n->name, op_name(op)); return -1; }
        v->vi = out;
        contiguous_strides(v);
        return 0;
    case VIEW_TRANSPOSE: {
        int perm[IR_MAX_RANK];
        if (op_transpose_perm(&c, is->rank, perm)) break;
        for (int d = 0; d < is->rank; d++) st2[d] = v->st[perm[d]];
        goto done;
    }
    case VIEW_SLICE: {
        SliceParams p;
        Shape tmp;
        if (op_slice_params(&c, is, &p, &tmp)) break;
        for (int d = 0; d < is->rank; d++) { v->off += p.start[d] * v->st[d]; st2[d] = v->st[d] * p.step[d]; }
        goto done;
    }
    case VIEW_SQUEEZE:
        if (op_squeeze_axes(&c, is, mask)) break;
        for (int d = 0, k = 0; d < is->rank; d++) if (!mask[d]) st2[k++] = v->st[d];
        goto done;
    case VIEW_UNSQUEEZE:
        if (op_unsqueeze_axes(&c, os->rank, mask)) break;
        for (int d = 0, k = 0; d < os->rank; d++) st2[d] = mask[d] ? 0 : v->st[k++];
        goto done;
    case VIEW_GATHER: {
        Dim ix[2];
        int64_t axis = node_attr_i(&stand_in, "axis", 0);
        if (axis < 0) axis += is->rank;
        if (c.in[1]->shape.rank != 0 || infer_get_ints(&c, 1, ix, 2) != 1 || !dim_is_const(ix[0])) {
            snprintf(err, cap, "node '%s': a Gather view takes one constant index", n->name);
            return -1;
        }
        int64_t k = ix[0].n < 0 ? ix[0].n + is->d[axis].n : ix[0].n;
        if (k < 0 || k >= is->d[axis].n) { snprintf(err, cap, "node '%s': Gather index %lld out of range", n->name, (long long)ix[0].n); return -1; }
        v->off += k * v->st[axis];
        for (int d = 0, q = 0; d < is->rank; d++) if (d != axis) st2[q++] = v->st[d];
        goto done;
    }
    case VIEW_EXPAND:
        for (int d = 0; d < os->rank; d++) {
            int id = d - (os->rank - is->rank);
            st2[d] = id < 0 || (is->d[id].n == 1 && os->d[d].n != 1) ? 0 : v->st[id];
        }
        goto done;
    }
    snprintf(err, cap, "node '%s': %s view: %s", n->name, op_name(op), c.err);
    return -1;
done:
    v->vi = out;
    memcpy(v->st, st2, sizeof st2);
    return 0;
}

static int piece_view(const LoadPlan *lp, const ViewPiece *pc, const Node *n, int opset, const ValueInfo *const *in, View *v,
                      int strided, char *err, size_t cap)
{
    memset(v, 0, sizeof *v);
    if (!in[pc->input]) { snprintf(err, cap, "node '%s': input %d is absent", n->name, pc->input); return -1; }
    v->vi = *in[pc->input];
    if (v->vi.dtype != DT_F32) { snprintf(err, cap, "node '%s': input %d is %s, not f32", n->name, pc->input, dtype_name(v->vi.dtype)); return -1; }
    if (strided) contiguous_strides(v);
    for (int s = 0; s < pc->n_steps; s++)
        if (apply(&lp->steps[pc->first_step + s], n, opset, in, v, strided, err, cap)) return -1;
    return 0;
}

/* The register's shape from its pieces' (a Concat sums its axis). */
static int concat_shape(const ViewLoad *ld, const View *pv, const Node *n, Shape *out, char *err, size_t cap)
{
    *out = pv[0].vi.shape;
    for (int p = 1; p < ld->n_pieces; p++) {
        const Shape *s = &pv[p].vi.shape;
        if (s->rank != out->rank || out->rank < 0) { snprintf(err, cap, "node '%s': concatenated views differ in rank", n->name); return -1; }
        for (int d = 0; d < s->rank; d++) {
            if (d == ld->axis) continue;
            if (dim_is_const(s->d[d]) && dim_is_const(out->d[d]) && s->d[d].n != out->d[d].n) {
                snprintf(err, cap, "node '%s': concatenated views differ in dim %d", n->name, d);
                return -1;
            }
        }
        out->d[ld->axis] = dim_add(out->d[ld->axis], s->d[ld->axis]);
    }
    if (ld->n_pieces > 1 && ld->axis >= out->rank) { snprintf(err, cap, "node '%s': concat axis %d beyond rank %d", n->name, ld->axis, out->rank); return -1; }
    return 0;
}

int loads_shapes(const LoadPlan *lp, const Node *n, int opset, const ValueInfo *const *in, Shape *regs, char *err, size_t cap)
{
    View pv[64];
    for (int l = 0; l < lp->n_loads; l++) {
        const ViewLoad *ld = &lp->loads[l];
        for (int p = 0; p < ld->n_pieces; p++)
            if (piece_view(lp, &lp->pieces[ld->first_piece + p], n, opset, in, &pv[p], 0, err, cap)) return -1;
        if (concat_shape(ld, pv, n, &regs[l], err, cap)) return -1;
    }
    return 0;
}

size_t loads_param_count(const LoadPlan *lp, int rank)
{
    int concats = 0;
    for (int l = 0; l < lp->n_loads; l++) concats += lp->loads[l].n_pieces > 1;
    return (size_t)lp->n_pieces * (size_t)(rank + 1) + (size_t)concats + (size_t)lp->n_bounds;
}

int loads_params(const LoadPlan *lp, const Node *n, int opset, const Tensor *const *in, int rank, const int64_t *dims,
                 int64_t *params, char *err, size_t cap)
{
    ValueInfo vi[64];
    const ValueInfo *vp[64];
    if (n->n_in > 64) { snprintf(err, cap, "node '%s': more than 64 inputs", n->name); return -1; }
    for (int i = 0; i < n->n_in; i++) { value_info_from_tensor(&vi[i], in[i]); vp[i] = &vi[i]; }
    int64_t *strides = params, *base = params + (size_t)lp->n_pieces * (size_t)rank, *cat = base + lp->n_pieces;
    View pv[64];
    for (int l = 0; l < lp->n_loads; l++) {
        const ViewLoad *ld = &lp->loads[l];
        for (int p = 0; p < ld->n_pieces; p++)
            if (piece_view(lp, &lp->pieces[ld->first_piece + p], n, opset, vp, &pv[p], 1, err, cap)) return -1;
        Shape reg;
        if (concat_shape(ld, pv, n, &reg, err, cap)) return -1;
        int lead = rank - reg.rank, ax = ld->n_pieces > 1 ? lead + ld->axis : -1;
        if (lead < 0) { snprintf(err, cap, "node '%s': a view of rank %d in an output of rank %d", n->name, reg.rank, rank); return -1; }
        for (int d = 0; d < reg.rank; d++)
            if (reg.d[d].n != 1 && reg.d[d].n != dims[lead + d]) {
                snprintf(err, cap, "node '%s': view dim %d is %lld, the output's %lld", n->name, d, (long long)reg.d[d].n, (long long)dims[lead + d]);
                return -1;
            }
        /* broadcast along the concat axis: the register has one element there, from its one non-empty piece */
        int along = ax >= 0 && !(reg.d[ld->axis].n == 1 && dims[ax] != 1);
        if (ax >= 0) *cat++ = ax;
        int64_t start = 0;
        for (int p = 0; p < ld->n_pieces; p++) {
            int q = ld->first_piece + p;
            int64_t *s = strides + (size_t)q * (size_t)rank;
            for (int d = 0; d < rank; d++) {
                int id = d - lead;
                s[d] = id < 0 || (pv[p].vi.shape.d[id].n == 1 && dims[d] != 1) ? 0 : pv[p].st[id];
            }
            base[q] = pv[p].off;
            if (ax < 0) continue;
            int64_t size = pv[p].vi.shape.d[ld->axis].n;
            if (along) base[q] -= start * s[ax];
            start += size;
            if (p < ld->n_pieces - 1) *cat++ = along ? start : (size ? INT64_MAX : 0);
        }
    }
    return 0;
}
