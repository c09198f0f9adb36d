/* pad_linear_hidden.c — widens the hidden value between two Linears (the
 * transformer's MLP: fc1 [D, 4D] with its activation, then fc2 [4D, D]) by
 * one zero panel where its rows would otherwise lie a multiple of 4 KB
 * apart.  The CPU GEMM reads fc2's A in place only when its rows are not
 * that far apart (rows 4 KB apart all fall in one L1 set, and are packed
 * instead, runtime/cpu/gemm.c); 3104 floats apart instead of 3072, fc2 ran
 * 9-28% faster in place than packed.  fc1 gains LINEAR_PANEL zero columns
 * (weight and bias), so the extra hidden columns are act(0); fc2 gains as
 * many zero rows, so they add nothing; attributes pad_columns and pad_rows
 * say so, and the CPU kernel skips them (no extra work).  Run after
 * pack-linear-weights, on f32 only (compile_kernels asks the backend). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "passes.h"
#include "rewrite.h"

#define PAD LINEAR_PANEL

/* A Linear over a packed f32 constant weight (not trained): its N, else 0
 * (its K is the weight's dims[1]). */
static int64_t packed_f32_columns(const Node *n)
{
    const Value *w = n->n_in > 1 ? n->in[1] : NULL;
    if (n->op != OP_LINEAR || !w || !w->konst || w->trainable || w->is_input || w->is_output || w->dtype != DT_F32 ||
        w->konst->rank != 3 || node_attr_i(n, "bf16", 0))
        return 0;
    int64_t N = node_attr_i(n, "packed_n", 0);
    return N > 0 ? N : 0;
}

/* fc1's weight with one more panel of zeros */
static Value *wider(Graph *g, const Value *w)
{
    const Tensor *t = w->konst;
    Tensor *p = tensor_new(DT_F32, 3, (int64_t[]){t->dims[0] + 1, t->dims[1], t->dims[2]});
    if (!p) return NULL;
    size_t floats = (size_t)tensor_numel(t);
    memcpy(p->data, t->data, sizeof(float) * floats);
    memset((float *)p->data + floats, 0, sizeof(float) * (size_t)(tensor_numel(p) - (int64_t)floats));
    return new_const(g, w->name, "_padded", p);
}

/* fc2's weight with PAD zero rows after each panel's K */
static Value *deeper(Graph *g, const Value *w)
{
    const Tensor *t = w->konst;
    int64_t P = t->dims[0], K = t->dims[1];
    Tensor *p = tensor_new(DT_F32, 3, (int64_t[]){P, K + PAD, LINEAR_PANEL});
    if (!p) return NULL;
    for (int64_t q = 0; q < P; q++) {
        float *dst = (float *)p->data + q * (K + PAD) * LINEAR_PANEL;
        memcpy(dst, (const float *)t->data + q * K * LINEAR_PANEL, sizeof(float) * (size_t)(K * LINEAR_PANEL));
        memset(dst + K * LINEAR_PANEL, 0, sizeof(float) * PAD * LINEAR_PANEL);
    }
    return new_const(g, w->name, "_padded", p);
}

/* fc1's bias with PAD zeros (a missing bias stays missing: its columns are 0) */
static Value *longer(Graph *g, const Value *b, int64_t N)
{
    Tensor *p = tensor_new(DT_F32, 1, (int64_t[]){N + PAD});
    if (!p) return NULL;
    memcpy(p->data, b->konst->data, sizeof(float) * (size_t)N);
    memset((float *)p->data + N, 0, sizeof(float) * PAD);
    return new_const(g, b->name, "_padded", p);
}

/* Frees v's data when the node being padded was its only reader, so that
 * no more than one MLP's weights are held twice while the pass runs. */
static void drop_if_unread(Value *v, const int *uses)
{
    if (uses[v->id] == 1 && !v->is_output) {
        tensor_free(v->konst);
        v->konst = NULL;
    }
}

static int pad_pair(Graph *g, Node *fc1, Node *fc2, int64_t N, const int *uses, char *err, size_t cap)
{
    Value *w1 = fc1->in[1], *w2 = fc2->in[1], *b = fc1->n_in > 2 ? fc1->in[2] : NULL;
    Value *pw1 = wider(g, w1), *pw2 = pw1 ? deeper(g, w2) : NULL, *pb = b && pw2 ? longer(g, b, N) : NULL;
    if (!pw2 || (b && !pb)) { snprintf(err, cap, "pad-linear-hidden: out of memory"); return -1; }
    drop_if_unread(w1, uses);
    drop_if_unread(w2, uses);
    fc1->in[1] = pw1;
    if (b) fc1->in[2] = pb;
    for (int a = 0; a < fc1->n_attrs; a++)
        if (!strcmp(fc1->attrs[a].name, "packed_n")) fc1->attrs[a].i = N + PAD;
    fc2->in[1] = pw2;
    /* the kernels may skip the zeros (ir/ops.h): no extra work where the
     * GEMM packs A anyway */
    Attr *cols = node_add_attr(fc1, "pad_columns", ATTR_INT), *rows = node_add_attr(fc2, "pad_rows", ATTR_INT);
    if (!cols || !rows) { snprintf(err, cap, "pad-linear-hidden: out of memory"); return -1; }
    cols->i = rows->i = PAD;
    char msg[IR_ERR_CAP];
    if (infer_node(g, fc1, msg, sizeof msg) || infer_node(g, fc2, msg, sizeof msg)) {
        snprintf(err, cap, "pad-linear-hidden: nodes '%s', '%s': %s", fc1->name, fc2->name, msg);
        return -1;
    }
    return 0;
}

int pass_pad_linear_hidden(Graph *g, char *err, size_t cap)
{
    int *uses = graph_use_counts(g), changed = 0;
    if (!uses) { snprintf(err, cap, "pad-linear-hidden: out of memory"); return -1; }
    for (int i = 0; i < g->n_nodes; i++) {
        Node *fc1 = g->nodes[i];
        int64_t N1 = packed_f32_columns(fc1);
        if (!N1 || N1 % 1024 || (fc1->n_in > 3 && fc1->in[3]) || fc1->out[0]->dtype != DT_F32) continue;
        const Value *b = fc1->n_in > 2 ? fc1->in[2] : NULL;
        if (b && (!b->konst || b->trainable || b->dtype != DT_F32 || b->konst->rank != 1)) continue;
        Node *fc2 = sole_reader(g, fc1->out[0], uses);
        if (!fc2 || !packed_f32_columns(fc2) || fc2->in[0] != fc1->out[0] || fc2->in[1]->konst->dims[1] != N1 ||
            node_attr(fc1, "pad_columns") || node_attr(fc2, "pad_rows"))
            continue;
        /* padded copies, as a weight may be shared; what nothing reads any
         * more goes with the dead code */
        if (pad_pair(g, fc1, fc2, N1, uses, err, cap)) { free(uses); return -1; }
        changed++;
    }
    free(uses);
    return pass_eliminate_dead_code(g, err, cap) < 0 ? -1 : changed;
}
