/* remove_identities.c — drops Identity, inference-mode Dropout and Casts to
 * the type the value already has, by forwarding their input to their readers. */
#include <stdlib.h>
#include "passes.h"
#include "../ir/ops.h"

int pass_remove_identities(Graph *g, char *err, size_t cap)
{
    (void)err; (void)cap;
    int changed = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        Node *n = g->nodes[i];
        int noop_cast = n->op == OP_CAST && n->in[0] && n->in[0]->dtype == n->out[0]->dtype;
        if (n->op != OP_IDENTITY && n->op != OP_DROPOUT && !noop_cast) continue;
        Value *in = n->in[0], *out = n->out[0];
        if (!in) continue;
        if (n->op == OP_DROPOUT && n->n_out > 1 && n->out[1]) {
            int *uses = graph_use_counts(g);
            int mask_used = uses ? uses[n->out[1]->id] : 1;
            free(uses);
            if (mask_used) continue;
        }
        /* keep the graph's public names: an input passed straight to an output stays */
        if (out->is_output && (in->is_input || in->is_output || in->konst)) continue;
        graph_replace_uses(g, out, in);
        n->op = -1;
        changed++;
    }
    graph_remove_dead(g);
    return changed;
}
