/* specialize_batch.c — fixes every symbolic input dim to a number and
 * re-infers the graph, so that all shapes are static (autodiff and training
 * need them).  Run it after the passes: folding after specialization would
 * turn parameter-dependent expansions (the class token's Expand) into
 * constants and freeze those parameters. */
#include <stdio.h>
#include "passes.h"
#include "../ir/ops.h"

int specialize_batch(Graph *g, int64_t n, char *err, size_t cap)
{
    if (n < 1) { snprintf(err, cap, "batch must be positive"); return -1; }
    int changed = 0;
    for (int i = 0; i < g->n_inputs; i++) {
        Shape *s = &g->inputs[i]->shape;
        for (int d = 0; d < s->rank; d++) {
            if (dim_is_const(s->d[d])) continue;
            if (s->d[d].sym == DIM_UNKNOWN) {
                snprintf(err, cap, "input '%s': dim %d is unknown, so the batch cannot fix it", g->inputs[i]->name, d);
                return -1;
            }
            s->d[d] = dim_const(s->d[d].n * n);
            changed++;
        }
    }
    if (infer_graph(g, err, cap)) return -1;
    return changed;
}
