/* fuse_elementwise.c — kernel fusion for code generation: maximal groups of
 * f32 elementwise and broadcasting ops (pattern kinds ELEMWISE and BROADCAST
 * whose op has a program opcode, codegen/program.h) whose intermediate
 * values are used only inside the group become one ai.vclip.FusedElementwise
 * node: one pass over memory instead of one per op.  Scalar constants are
 * inlined into the program (trainable scalars, such as logit_scale, stay
 * inputs).  Groups grow from each not-yet-fused node towards its producers.
 *
 * The injective ops that feed a group (Transpose, Slice, Reshape, Squeeze,
 * Unsqueeze, Flatten, Gather of one constant index, Expand, and a Concat of
 * such chains) are folded into the kernel's loads (ir/loads.h) when the group
 * is their only reader: the kernel reads through their index maps instead of
 * each of them writing a tensor. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "passes.h"
#include "rewrite.h"
#include "../ir/program.h"
#include "../ir/loads.h"

#define MAX_KERNEL_INPUTS 16 /* what the executors pass to a node */
#define MAX_STEPS 32

static int fusable(const Node *n)
{
    if (n->op < 0 || program_op_of(n->op) < 0 || n->n_out != 1 || !n->out[0] || n->out[0]->dtype != DT_F32) return 0;
    OpPattern pk = op_table[n->op].pattern;
    if (pk != PAT_ELEMWISE && pk != PAT_BROADCAST) return 0;
    for (int i = 0; i < n->n_in; i++) if (!n->in[i] || n->in[i]->dtype != DT_F32) return 0;
    return n->n_in == program_op_arity(program_op_of(n->op));
}

static int inlinable(const Value *v)
{
    return v->konst && !v->producer && !v->trainable && v->konst->dtype == DT_F32 && tensor_numel(v->konst) == 1 &&
           isfinite(*(const float *)v->konst->data) && !v->is_input;
}

typedef struct { Value **vals; int n, cap; } Set;

static int set_index(const Set *s, const Value *v)
{
    for (int i = 0; i < s->n; i++) if (s->vals[i] == v) return i;
    return -1;
}

static int set_add(Set *s, Value *v)
{
    int i = set_index(s, v);
    if (i >= 0) return i;
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 8;
        Value **p = realloc(s->vals, sizeof(Value *) * (size_t)cap);
        if (!p) return -1;
        s->vals = p;
        s->cap = cap;
    }
    s->vals[s->n] = v;
    return s->n++;
}

/* ---- views ---------------------------------------------------------------- */

/* One chain: the value it starts from and its ops, leaf first. */
typedef struct { Value *leaf; Node *step[MAX_STEPS]; int n; } Chain;
/* What a register reads: a chain, or a Concat (along `axis`) of chains. */
typedef struct { Node *concat; int n_pieces, axis; Chain *piece; } Reads;

static int is_strided(int code) { return code == VIEW_TRANSPOSE || code == VIEW_SLICE || code == VIEW_GATHER || code == VIEW_EXPAND; }

/* A view op the loads can express, on a known-rank f32 tensor. */
static int view_ok(const Graph *g, const Node *q)
{
    int code = view_code_of_op(q->op);
    if (!code || q->n_out != 1 || !q->out[0] || q->out[0]->dtype != DT_F32 || q->out[0]->shape.rank < 0) return 0;
    if (q->n_in < 1 || !q->in[0] || q->in[0]->dtype != DT_F32 || q->in[0]->shape.rank < 0 || q->n_in - 1 > VIEW_MAX_OPERANDS) return 0;
    if (code == VIEW_SLICE && g->opset < 10) return 0;
    if (code == VIEW_GATHER) {
        const Value *ix = q->n_in == 2 ? q->in[1] : NULL;
        return ix && ix->konst && ix->konst->rank == 0 && (ix->dtype == DT_I64 || ix->dtype == DT_I32);
    }
    return 1;
}

/* The chain of view ops that made u, each intermediate read only by the
 * next; a Reshape or Flatten needs a contiguous view, so the chain starts
 * at the last one that follows a strided op. */
static void chain_down(const Graph *g, Value *u, const int *uses, Chain *c)
{
    Node *top_down[MAX_STEPS];
    int n = 0;
    for (Value *at = u; n < MAX_STEPS; at = at->producer->in[0]) {
        Node *q = at->producer;
        if (!q || q->op < 0 || at->is_output || (at != u && uses[at->id] != 1) || !view_ok(g, q)) break;
        top_down[n++] = q;
    }
    int from = 0;
    for (int i = 0, strided = 0; i < n; i++) {
        int code = view_code_of_op(top_down[n - 1 - i]->op);
        if ((code == VIEW_RESHAPE || code == VIEW_FLATTEN) && strided) from = i;
        strided |= is_strided(code);
    }
    c->n = 0;
    for (int i = from; i < n; i++) c->step[c->n++] = top_down[n - 1 - i];
    c->leaf = c->n ? c->step[0]->in[0] : u;
}

/* How register value v (read only by the group) is read: through the view
 * ops that made it, when there are any.  Returns the steps absorbed, or -1
 * when out of memory. */
static int plan_reads(const Graph *g, Value *v, const int *uses, Reads *r)
{
    memset(r, 0, sizeof *r);
    Node *q = v->producer;
    int pieces = q && q->op == OP_CONCAT && !v->is_output && v->shape.rank > 0 && q->n_in >= 2 && q->n_in <= 64 ? q->n_in : 1;
    int64_t axis = pieces > 1 ? node_attr_i(q, "axis", 0) : -1;
    if (pieces > 1 && axis < 0) axis += v->shape.rank;
    if (pieces > 1 && (axis < 0 || axis >= v->shape.rank)) pieces = 1;
    for (int i = 0; pieces > 1 && i < q->n_in; i++) if (!q->in[i] || q->in[i]->dtype != DT_F32 || q->in[i]->shape.rank != v->shape.rank) pieces = 1;
    r->piece = calloc((size_t)pieces, sizeof(Chain));
    if (!r->piece) return -1;
    r->n_pieces = pieces;
    r->axis = pieces > 1 ? (int)axis : -1;
    if (pieces == 1) {
        chain_down(g, v, uses, &r->piece[0]);
        return r->piece[0].n;
    }
    r->concat = q;
    int steps = 1;
    for (int i = 0; i < pieces; i++) {
        /* a piece read elsewhere too stays a tensor of its own */
        Value *p = q->in[i];
        if (uses[p->id] == 1 && !p->is_output) chain_down(g, p, uses, &r->piece[i]);
        else r->piece[i] = (Chain){.leaf = p};
        steps += r->piece[i].n;
    }
    return steps;
}

static void reads_free(Reads *r, int n)
{
    for (int i = 0; i < n; i++) free(r[i].piece);
}

typedef struct { int64_t *v; int n, cap; } Ints;

static int ints_put(Ints *a, int64_t x)
{
    if (a->n == a->cap) {
        int cap = a->cap ? 2 * a->cap : 64;
        int64_t *p = realloc(a->v, sizeof(int64_t) * (size_t)cap);
        if (!p) return -1;
        a->v = p;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 0;
}

/* The "loads" attribute for regs read as `reads`; node inputs collected in ins. */
static int encode_loads(Set *regs, const Reads *reads, Set *ins, Ints *out)
{
    if (ints_put(out, regs->n)) return -1;
    for (int k = 0; k < regs->n; k++) {
        const Reads *r = &reads[k];
        if (ints_put(out, r->n_pieces) || ints_put(out, r->axis)) return -1;
        for (int p = 0; p < r->n_pieces; p++) {
            const Chain *c = &r->piece[p];
            int li = set_add(ins, c->leaf);
            if (li < 0 || ints_put(out, li) || ints_put(out, c->n)) return -1;
            for (int s = 0; s < c->n; s++) {
                const Node *q = c->step[s];
                int code = view_code_of_op(q->op);
                if (ints_put(out, code) || ints_put(out, q->n_in - 1)) return -1;
                for (int o = 1; o < q->n_in; o++) {
                    int oi = q->in[o] ? set_add(ins, q->in[o]) : -1;
                    if ((q->in[o] && oi < 0) || ints_put(out, oi)) return -1;
                }
                int is_list;
                const char *an = view_attr_name(code, &is_list);
                const Attr *a = an ? node_attr(q, an) : NULL;
                if (a && a->type == ATTR_INTS && a->n <= IR_MAX_RANK) {
                    if (ints_put(out, a->n)) return -1;
                    for (int i = 0; i < a->n; i++) if (ints_put(out, a->ints[i])) return -1;
                } else if (a && a->type == ATTR_INT) {
                    if (ints_put(out, 1) || ints_put(out, a->i)) return -1;
                } else if (ints_put(out, -1)) return -1;
            }
        }
    }
    return 0;
}

static int same_shape(const Shape *a, const Shape *b)
{
    if (a->rank != b->rank || a->rank < 0) return 0;
    for (int d = 0; d < a->rank; d++) if (!dim_equal(a->d[d], b->d[d]) || a->d[d].sym == DIM_UNKNOWN) return 0;
    return 1;
}

/* ---- one group -------------------------------------------------------------- */

/* Emits the group as one node, reading its inputs through views when
 * with_views.  1: done; 0: not possible this way (too many inputs, or the
 * views do not give the group's shape); -1: error. */
static int emit(Graph *g, Node **grp, int m, const int *uses, int with_views, char *err, size_t cap)
{
    Set regs = {0}, consts = {0}, ins = {0};
    Ints loads = {0};
    Reads *reads = NULL;
    int rc = -1, absorbed = 0;
    int64_t *code = malloc(sizeof(int64_t) * (size_t)(3 * m));
    if (!code) goto oom;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < grp[i]->n_in; j++) {
            Value *v = grp[i]->in[j];
            int inside = 0;
            for (int k = 0; k < m; k++) inside |= grp[k]->out[0] == v;
            if (inside) continue;
            if ((inlinable(v) ? set_add(&consts, v) : set_add(&regs, v)) < 0) goto oom;
        }
    if (!regs.n) { /* constants only (a gradient seed's chain): one stays an input, giving the shape */
        if (set_add(&regs, consts.vals[0]) < 0) goto oom;
        memmove(consts.vals, consts.vals + 1, sizeof(Value *) * (size_t)--consts.n);
    }
    if (regs.n > 64) { rc = 0; goto done; }
    if (with_views) {
        if (!(reads = calloc((size_t)regs.n, sizeof *reads))) goto oom;
        for (int k = 0; k < regs.n; k++) {
            Value *v = regs.vals[k];
            int inside = 0; /* every use of v must be in the group */
            for (int b = 0; b < m; b++)
                for (int q = 0; q < grp[b]->n_in; q++) inside += grp[b]->in[q] == v;
            if (inside != uses[v->id] || v->is_output) {
                if (!(reads[k].piece = calloc(1, sizeof(Chain)))) goto oom;
                reads[k].n_pieces = 1;
                reads[k].axis = -1;
                reads[k].piece[0].leaf = v;
                continue;
            }
            int s = plan_reads(g, v, uses, &reads[k]);
            if (s < 0) goto oom;
            absorbed += s;
        }
        if (!absorbed) { rc = 0; goto done; }
        if (encode_loads(&regs, reads, &ins, &loads)) goto oom;
    } else {
        for (int k = 0; k < regs.n; k++) if (set_add(&ins, regs.vals[k]) < 0) goto oom;
        if (m < 2) { rc = 0; goto done; }
    }
    if (ins.n > MAX_KERNEL_INPUTS) { rc = 0; goto done; }
    int base = regs.n + consts.n;
    for (int i = 0; i < m; i++) {
        int reg[2] = {-1, -1};
        for (int j = 0; j < grp[i]->n_in; j++) {
            Value *v = grp[i]->in[j];
            int r = -1;
            for (int k = 0; k < i && r < 0; k++) if (grp[k]->out[0] == v) r = base + k;
            if (r < 0) r = set_index(&regs, v) >= 0 ? set_index(&regs, v) : regs.n + set_index(&consts, v);
            reg[j] = r;
        }
        code[3 * i] = program_op_of(grp[i]->op);
        code[3 * i + 1] = reg[0];
        code[3 * i + 2] = reg[1];
    }
    Node *root = grp[m - 1];
    char name[300];
    snprintf(name, sizeof name, "fused/%s", root->name);
    Node *f = new_node(g, OP_FUSED_ELEMENTWISE, name, ins.n, ins.vals);
    Attr *pa = f ? node_add_attr(f, "program", ATTR_INTS) : NULL; /* each add may move the attribute array */
    if (!pa) goto oom;
    pa->ints = code;
    pa->n = 3 * m;
    code = NULL;
    Attr *ka = node_add_attr(f, "constants", ATTR_FLOATS);
    if (!ka) goto oom;
    ka->n = consts.n;
    ka->floats = malloc(sizeof(float) * (size_t)(consts.n ? consts.n : 1));
    if (!ka->floats) goto oom;
    for (int i = 0; i < consts.n; i++) ka->floats[i] = *(const float *)consts.vals[i]->konst->data;
    if (with_views) {
        Attr *la = node_add_attr(f, "loads", ATTR_INTS);
        if (!la) goto oom;
        la->ints = loads.v;
        la->n = loads.n;
        loads.v = NULL;
    }
    if (infer_node(g, f, err, cap)) {
        if (!with_views) goto done;
        f->op = -1; /* views the op rules refuse: fuse without them */
        rc = 0;
        goto done;
    }
    if (with_views && !same_shape(&f->out[0]->shape, &root->out[0]->shape)) { f->op = -1; rc = 0; goto done; }
    graph_replace_uses(g, root->out[0], f->out[0]);
    for (int i = 0; i < m; i++) grp[i]->op = -1;
    for (int k = 0; with_views && k < regs.n; k++) {
        if (reads[k].concat) reads[k].concat->op = -1;
        for (int p = 0; p < reads[k].n_pieces; p++)
            for (int s = 0; s < reads[k].piece[p].n; s++) reads[k].piece[p].step[s]->op = -1;
    }
    rc = 1;
    goto done;
oom:
    snprintf(err, cap, "fuse-elementwise: out of memory");
done:
    if (reads) reads_free(reads, regs.n);
    free(reads);
    free(code);
    free(loads.v);
    free(regs.vals);
    free(consts.vals);
    free(ins.vals);
    return rc;
}

int pass_fuse_elementwise(Graph *g, char *err, size_t cap)
{
    int n = g->n_nodes, changed = 0, rc = 0;
    int *uses = graph_use_counts(g);
    char *taken = calloc((size_t)n + 1, 1);
    Node **grp = malloc(sizeof(Node *) * (size_t)(n + 1));
    int *idx = malloc(sizeof(int) * (size_t)(n + 1));
    if (!uses || !taken || !grp || !idx) { snprintf(err, cap, "out of memory"); rc = -1; goto done; }
    for (int r = n - 1; r >= 0; r--) {
        if (taken[r] || !fusable(g->nodes[r])) continue;
        int m = 0;
        idx[m++] = r;
        taken[r] = 1;
        for (int grew = 1; grew;) {
            grew = 0;
            for (int a = 0; a < m; a++) {
                Node *nd = g->nodes[idx[a]];
                for (int j = 0; j < nd->n_in; j++) {
                    Value *v = nd->in[j];
                    Node *p = v->producer;
                    if (!p || v->is_output || !fusable(p)) continue;
                    int pi = -1;
                    for (int k = 0; k < n; k++) if (g->nodes[k] == p) { pi = k; break; }
                    if (pi < 0 || taken[pi]) continue;
                    int inside = 0; /* every use of v must be in the group */
                    for (int b = 0; b < m; b++)
                        for (int q = 0; q < g->nodes[idx[b]]->n_in; q++) inside += g->nodes[idx[b]]->in[q] == v;
                    if (inside != uses[v->id]) continue;
                    idx[m++] = pi;
                    taken[pi] = 1;
                    grew = 1;
                }
            }
        }
        /* program order = graph order */
        for (int a = 1; a < m; a++)
            for (int b = a; b > 0 && idx[b - 1] > idx[b]; b--) { int t = idx[b]; idx[b] = idx[b - 1]; idx[b - 1] = t; }
        for (int a = 0; a < m; a++) grp[a] = g->nodes[idx[a]];
        int done_one = emit(g, grp, m, uses, 1, err, cap);
        if (done_one == 0) done_one = emit(g, grp, m, uses, 0, err, cap);
        if (done_one < 0) { rc = -1; goto done; }
        if (done_one) {
            changed++;
            free(uses);
            if (!(uses = graph_use_counts(g))) { snprintf(err, cap, "out of memory"); rc = -1; goto done; }
        }
    }
done:
    free(uses);
    free(taken);
    free(grp);
    free(idx);
    graph_remove_dead(g);
    if (rc) return rc;
    if (graph_topo_sort(g)) { snprintf(err, cap, "fuse-elementwise: cycle"); return -1; }
    return changed;
}
