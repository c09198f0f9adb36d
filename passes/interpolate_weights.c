/* interpolate_weights.c — the dual-weight forward of Interpolated Weight
 * Optimization.  Open-VCLIP trains θ while also asking the interpolated
 * weights θ~ = α θ_CLIP + (1 - α) θ to do well, so the training graph holds
 * the forward twice: once on θ and once, cloned here, on θ~.  Only the nodes
 * that depend on a parameter are cloned; the rest (input reshapes, the
 * constant class features) are shared.  θ_CLIP is held once, as one constant
 * per parameter that borrows the parameter's original data. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "passes.h"
#include "rewrite.h"

Value *interpolate_weights(Graph *g, Value *const *params, int n_params, Value *alpha, Value *out, int exact_gradient,
                           char *err, size_t cap)
{
    int n_values = g->n_values, n_nodes = g->n_nodes;
    Value **map = calloc((size_t)n_values, sizeof(Value *));
    Value *result = NULL;
    if (!map) { snprintf(err, cap, "out of memory"); return NULL; }
    for (int i = 0; i < n_params; i++) {
        Value *w = params[i];
        char base[300];
        snprintf(base, sizeof base, "clip/%s", w->name);
        Value *w0 = fresh_value(g, base);
        Tensor *view = w->konst ? tensor_view(w->konst, w->konst->rank, w->konst->dims) : NULL;
        if (!w0 || !view) { tensor_free(view); snprintf(err, cap, "interpolate-weights: '%s' is not a constant parameter", w->name); goto done; }
        value_set_const(w0, view);
        snprintf(base, sizeof base, "interpolated/%s", w->name);
        Node *n = new_node(g, OP_INTERPOLATE_WEIGHTS, base, 3, (Value *[]){w0, w, alpha});
        Attr *a = n ? node_add_attr(n, "exact_gradient", ATTR_INT) : NULL;
        if (!a) { snprintf(err, cap, "out of memory"); goto done; }
        a->i = exact_gradient;
        if (infer_node(g, n, err, cap)) goto done;
        map[w->id] = n->out[0];
    }
    for (int i = 0; i < n_nodes; i++) {
        Node *n = g->nodes[i];
        int depends = 0;
        for (int j = 0; j < n->n_in; j++) depends |= n->in[j] && n->in[j]->id < n_values && map[n->in[j]->id];
        if (!depends) continue;
        Value *in[16];
        for (int j = 0; j < n->n_in && j < 16; j++) in[j] = n->in[j] && map[n->in[j]->id] ? map[n->in[j]->id] : n->in[j];
        Node *c = clone_node(g, n, in, "interpolated/", err, cap);
        if (!c) goto done;
        for (int j = 0; j < n->n_out; j++) if (n->out[j]) map[n->out[j]->id] = c->out[j];
    }
    result = map[out->id];
    if (!result) snprintf(err, cap, "interpolate-weights: '%s' does not depend on the parameters", out->name);
    else if (graph_topo_sort(g)) { snprintf(err, cap, "interpolate-weights: cycle"); result = NULL; }
done:
    free(map);
    return result;
}
