/* bf16_linear_hidden.c — keeps the value between two bf16 Linears (the
 * transformer's MLP: fc1 with its activation, then fc2) in bf16.  A bf16
 * weight rounds its X to bf16 anyway, so the first Linear may as well store
 * its output rounded (bf16_output, ir/ops.h) and the second read it as it
 * is: the same products, half the bytes written and read, and the CPU GEMM
 * packs fc2's A without rounding it (runtime/cpu/gemm.c).  Only where the
 * second Linear is the value's sole reader (and it is no graph output) and
 * the depth is even (k pairs are words).  Run after
 * cast-linear-weights-bf16, on the CPU's bf16 path. */
#include <stdio.h>
#include <stdlib.h>
#include "passes.h"
#include "rewrite.h"

/* A Linear over bf16 weights in k pairs (cast-linear-weights-bf16's) */
static int bf16_linear(const Node *n)
{
    const Value *w = n->n_in > 1 ? n->in[1] : NULL;
    return n->op == OP_LINEAR && n->in[0] && w && w->dtype == DT_BF16 && w->konst; /* bf16: packed in pairs (ir/ops.h) */
}

int pass_bf16_linear_hidden(Graph *g, char *err, size_t cap)
{
    int *uses = graph_use_counts(g), changed = 0;
    if (!uses) { snprintf(err, cap, "bf16-linear-hidden: out of memory"); return -1; }
    for (int i = 0; i < g->n_nodes; i++) {
        Node *fc1 = g->nodes[i];
        if (!bf16_linear(fc1) || fc1->out[0]->dtype != DT_F32) continue; /* (bf16_output already: a bf16 one) */
        Node *fc2 = sole_reader(g, fc1->out[0], uses);
        if (!fc2 || !bf16_linear(fc2) || fc2->in[0] != fc1->out[0] || node_attr_i(fc2, "packed_k", 1) % 2) continue;
        Attr *a = node_add_attr(fc1, "bf16_output", ATTR_INT);
        if (!a) { free(uses); snprintf(err, cap, "bf16-linear-hidden: out of memory"); return -1; }
        a->i = 1;
        char msg[IR_ERR_CAP];
        if (infer_node(g, fc1, msg, sizeof msg) || infer_node(g, fc2, msg, sizeof msg)) {
            snprintf(err, cap, "bf16-linear-hidden: nodes '%s', '%s': %s", fc1->name, fc2->name, msg);
            free(uses);
            return -1;
        }
        changed++;
    }
    free(uses);
    return changed;
}
