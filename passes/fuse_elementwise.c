/* fuse_elementwise.c — kernel fusion for code generation: maximal groups of
 * f32 elementwise and broadcasting ops (pattern kinds ELEMWISE and BROADCAST
 * whose op has a program opcode, codegen/program.h) whose intermediate
 * values are used only inside the group become one ai.vclip.FusedElementwise
 * node: one pass over memory instead of one per op.  Scalar constants are
 * inlined into the program (trainable scalars, such as logit_scale, stay
 * inputs).  Groups grow from each not-yet-fused node towards its producers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "passes.h"
#include "rewrite.h"
#include "../codegen/program.h"

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

static int emit(Graph *g, Node **grp, int m, char *err, size_t cap)
{
    Set ins = {0}, consts = {0};
    int rc = -1;
    int64_t *code = malloc(sizeof(int64_t) * (size_t)(3 * m));
    if (!code) goto oom;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < grp[i]->n_in; j++) {
            Value *v = grp[i]->in[j];
            int inside = 0;
            for (int k = 0; k < m; k++) inside |= grp[k]->out[0] == v;
            if (inside) continue;
            if ((inlinable(v) ? set_add(&consts, v) : set_add(&ins, v)) < 0) goto oom;
        }
    if (!ins.n) { /* constants only (a gradient seed's chain): one stays an input, giving the shape */
        if (set_add(&ins, consts.vals[0]) < 0) goto oom;
        memmove(consts.vals, consts.vals + 1, sizeof(Value *) * (size_t)--consts.n);
    }
    int base = ins.n + consts.n;
    for (int i = 0; i < m; i++) {
        int reg[2] = {-1, -1};
        for (int j = 0; j < grp[i]->n_in; j++) {
            Value *v = grp[i]->in[j];
            int r = -1;
            for (int k = 0; k < i && r < 0; k++) if (grp[k]->out[0] == v) r = base + k;
            if (r < 0) r = set_index(&ins, v) >= 0 ? set_index(&ins, v) : ins.n + set_index(&consts, v);
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
    if (infer_node(g, f, err, cap)) goto done;
    graph_replace_uses(g, root->out[0], f->out[0]);
    for (int i = 0; i < m; i++) grp[i]->op = -1;
    rc = 0;
    goto done;
oom:
    snprintf(err, cap, "fuse-elementwise: out of memory");
done:
    free(code);
    free(ins.vals);
    free(consts.vals);
    return rc;
}

int pass_fuse_elementwise(Graph *g, char *err, size_t cap)
{
    int n = g->n_nodes, changed = 0;
    int *uses = graph_use_counts(g);
    char *taken = calloc((size_t)n + 1, 1);
    Node **grp = malloc(sizeof(Node *) * (size_t)(n + 1));
    int *idx = malloc(sizeof(int) * (size_t)(n + 1));
    if (!uses || !taken || !grp || !idx) { free(uses); free(taken); free(grp); free(idx); snprintf(err, cap, "out of memory"); return -1; }
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
        if (m < 2) continue;
        /* program order = graph order */
        for (int a = 1; a < m; a++)
            for (int b = a; b > 0 && idx[b - 1] > idx[b]; b--) { int t = idx[b]; idx[b] = idx[b - 1]; idx[b - 1] = t; }
        for (int a = 0; a < m; a++) grp[a] = g->nodes[idx[a]];
        if (emit(g, grp, m, err, cap)) { free(uses); free(taken); free(grp); free(idx); return -1; }
        changed++;
    }
    free(uses);
    free(taken);
    free(grp);
    free(idx);
    graph_remove_dead(g);
    if (graph_topo_sort(g)) { snprintf(err, cap, "fuse-elementwise: cycle"); return -1; }
    return changed;
}
