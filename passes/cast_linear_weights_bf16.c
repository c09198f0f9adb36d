/* cast_linear_weights_bf16.c — the bf16 CPU path (`vclipc run --precision
 * bf16`): every packed f32 Linear weight becomes bf16 panels of k pairs
 * (ir/ops.h), rounded to nearest even, half the memory; the GEMM then
 * rounds its activations to bf16 and sums in f32 (runtime/cpu/gemm.c).
 * Run after pack-linear-weights; weights being trained are left alone. */
#include <stdio.h>
#include <stdlib.h>
#include "passes.h"
#include "rewrite.h"
#include "../ir/ops.h"

static Value *bf16_copy(Graph *g, const Value *w)
{
    const Tensor *t = w->konst;
    int64_t P = t->dims[0], K = t->dims[1], K2 = (K + 1) / 2, d[4] = {P, K2, LINEAR_PANEL, 2};
    Tensor *b = tensor_new(DT_BF16, 4, d);
    if (!b) return NULL;
    const float *src = t->data;
    uint16_t *dst = b->data;
    for (int64_t q = 0; q < P; q++)
        for (int64_t k2 = 0; k2 < K2; k2++) { /* rows 2 k2 and 2 k2 + 1 of the panel, interleaved */
            const float *even = src + (q * K + 2 * k2) * LINEAR_PANEL, *odd = even + LINEAR_PANEL;
            uint16_t *d = dst + (q * K2 + k2) * LINEAR_PANEL * 2;
            if (2 * k2 + 1 < K)
                for (int64_t j = 0; j < LINEAR_PANEL; j++) {
                    d[2 * j] = float_to_bf16(even[j]);
                    d[2 * j + 1] = float_to_bf16(odd[j]);
                }
            else
                for (int64_t j = 0; j < LINEAR_PANEL; j++) {
                    d[2 * j] = float_to_bf16(even[j]);
                    d[2 * j + 1] = 0;
                }
        }
    return new_const(g, w->name, "_bf16", b);
}

int pass_cast_linear_weights_bf16(Graph *g, char *err, size_t cap)
{
    int changed = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        Node *n = g->nodes[i];
        Value *w = n->op == OP_LINEAR && n->n_in > 1 ? n->in[1] : NULL;
        if (!w || !w->konst || w->trainable || w->is_input || w->is_output || w->dtype != DT_F32 || w->konst->rank != 3) continue;
        Value *b = bf16_copy(g, w);
        if (!b) { snprintf(err, cap, "cast-linear-weights-bf16: out of memory"); return -1; }
        int64_t K = w->konst->dims[1];
        for (int j = i; j < g->n_nodes; j++) { /* a shared weight: every reader at once */
            Node *r = g->nodes[j];
            if (r->op != OP_LINEAR || r->n_in < 2 || r->in[1] != w) continue;
            Attr *a = node_add_attr(r, "packed_k", ATTR_INT);
            if (!a) { snprintf(err, cap, "cast-linear-weights-bf16: out of memory"); return -1; }
            a->i = K;
            r->in[1] = b;
            char msg[IR_ERR_CAP];
            if (infer_node(g, r, msg, sizeof msg)) { snprintf(err, cap, "cast-linear-weights-bf16: node '%s': %s", r->name, msg); return -1; }
            changed++;
        }
        graph_release_pages(g, w->konst);
        tensor_free(w->konst);
        w->konst = NULL;
    }
    return pass_eliminate_dead_code(g, err, cap) < 0 ? -1 : changed;
}
