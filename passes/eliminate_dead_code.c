/* eliminate_dead_code.c — removes nodes none of whose outputs reach a graph
 * output, and the initializers only they used. */
#include <stdlib.h>
#include <stdio.h>
#include "passes.h"

int pass_eliminate_dead_code(Graph *g, char *err, size_t cap)
{
    int *uses = graph_use_counts(g), changed = 0;
    if (!uses) { snprintf(err, cap, "out of memory"); return -1; }
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        Node *n = g->nodes[i];
        int live = 0;
        for (int j = 0; j < n->n_out; j++) if (n->out[j] && uses[n->out[j]->id]) live = 1;
        if (live) continue;
        for (int j = 0; j < n->n_in; j++) if (n->in[j]) uses[n->in[j]->id]--;
        n->op = -1;
        changed++;
    }
    free(uses);
    graph_remove_dead(g);
    return changed;
}
