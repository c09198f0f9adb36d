/* verify.c — checks SSA (one producer per value, unique names), topological
 * order, producer back-pointers, op ids, typed outputs, and that graph
 * outputs are computed. */
#include <stdio.h>
#include <stdlib.h>
#include "name_map.h"
#include "ops.h"
#include "verify.h"

int graph_verify(const Graph *g, char *err, size_t cap)
{
    int rc = -1;
    NameMap names = {0};
    char *ready = calloc((size_t)(g->n_values ? g->n_values : 1), 1);
    if (!ready) { snprintf(err, cap, "out of memory"); return -1; }
    for (int i = 0; i < g->n_values; i++) {
        const Value *v = g->values[i];
        if (v->id != i) { snprintf(err, cap, "value '%s' has id %d at index %d", v->name, v->id, i); goto done; }
        if (name_map_get(&names, v->name)) { snprintf(err, cap, "value name '%s' is used twice", v->name); goto done; }
        name_map_put(&names, v->name, (void *)v);
        if (v->konst || v->is_input) ready[i] = 1;
        if (v->konst && v->producer) { snprintf(err, cap, "constant '%s' also has a producer", v->name); goto done; }
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const Node *n = g->nodes[i];
        if (n->op < 0 || n->op >= OP_COUNT) { snprintf(err, cap, "node '%s' has invalid op %d", n->name, n->op); goto done; }
        for (int j = 0; j < n->n_in; j++) {
            const Value *v = n->in[j];
            if (!v) continue;
            if (v->id < 0 || v->id >= g->n_values || g->values[v->id] != v) {
                snprintf(err, cap, "node '%s' reads a value not in the graph", n->name); goto done;
            }
            if (!ready[v->id]) { snprintf(err, cap, "node '%s' reads '%s' before it is computed", n->name, v->name); goto done; }
        }
        for (int j = 0; j < n->n_out; j++) {
            const Value *v = n->out[j];
            if (!v) continue;
            if (v->producer != n) { snprintf(err, cap, "value '%s' does not point back to its producer '%s'", v->name, n->name); goto done; }
            if (ready[v->id]) { snprintf(err, cap, "value '%s' is defined twice", v->name); goto done; }
            if (v->dtype == DT_UNDEF) { snprintf(err, cap, "output '%s' of node '%s' has no dtype", v->name, n->name); goto done; }
            ready[v->id] = 1;
        }
    }
    for (int i = 0; i < g->n_outputs; i++)
        if (!ready[g->outputs[i]->id]) { snprintf(err, cap, "graph output '%s' is never computed", g->outputs[i]->name); goto done; }
    rc = 0;
done:
    name_map_free(&names);
    free(ready);
    return rc;
}
