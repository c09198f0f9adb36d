/* eliminate_dead_code.c — removes nodes none of whose outputs reach a graph
 * output, and the initializers only they used; a live ConvGrad whose input
 * gradient nothing reads loses that output, so its kernels (which skip an
 * absent output) do not compute the gradient of the pixels. */
#include <stdlib.h>
#include <stdio.h>
#include "passes.h"
#include "../ir/ops.h"

int pass_eliminate_dead_code(Graph *g, char *err, size_t cap)
{
    int *uses = graph_use_counts(g), changed = 0;
    if (!uses) { snprintf(err, cap, "out of memory"); return -1; }
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        Node *n = g->nodes[i];
        int live = 0;
        for (int j = 0; j < n->n_out; j++) if (n->out[j] && uses[n->out[j]->id]) live = 1;
        if (live) {
            if (n->op == OP_CONV_GRAD && n->out[0] && !uses[n->out[0]->id]) { n->out[0]->producer = NULL; n->out[0] = NULL; changed++; }
            continue;
        }
        for (int j = 0; j < n->n_in; j++) if (n->in[j]) uses[n->in[j]->id]--;
        n->op = -1;
        changed++;
    }
    free(uses);
    graph_remove_dead(g);
    return changed;
}
