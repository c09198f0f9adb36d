/* eliminate_common_subexpressions.c — CSE: a node with the same op, the same
 * inputs and the same attributes as an earlier node is replaced by it.
 * Exporters repeat Shape/Gather/Unsqueeze chains and constants per use. */
#include <string.h>
#include "passes.h"
#include "../ir/ops.h"

static int attr_equal(const Attr *a, const Attr *b)
{
    if (strcmp(a->name, b->name) || a->type != b->type) return 0;
    switch (a->type) {
    case ATTR_INT: return a->i == b->i;
    case ATTR_FLOAT: return memcmp(&a->f, &b->f, sizeof a->f) == 0;
    case ATTR_STRING: return strcmp(a->s, b->s) == 0;
    case ATTR_INTS: return a->n == b->n && (!a->n || !memcmp(a->ints, b->ints, sizeof(int64_t) * (size_t)a->n));
    case ATTR_FLOATS: return a->n == b->n && (!a->n || !memcmp(a->floats, b->floats, sizeof(float) * (size_t)a->n));
    case ATTR_TENSOR:
        return a->t->dtype == b->t->dtype && a->t->rank == b->t->rank && a->t->nbytes == b->t->nbytes &&
               !memcmp(a->t->dims, b->t->dims, sizeof(int64_t) * (size_t)a->t->rank) &&
               (!a->t->nbytes || !memcmp(a->t->data, b->t->data, a->t->nbytes));
    case ATTR_STRINGS:
        if (a->n != b->n) return 0;
        for (int i = 0; i < a->n; i++) if (strcmp(a->strings[i], b->strings[i])) return 0;
        return 1;
    }
    return 0;
}

static int same_node(const Node *a, const Node *b)
{
    if (a->op != b->op || a->n_in != b->n_in || a->n_out != b->n_out || a->n_attrs != b->n_attrs) return 0;
    for (int i = 0; i < a->n_in; i++) if (a->in[i] != b->in[i]) return 0;
    for (int i = 0; i < a->n_attrs; i++) {
        const Attr *o = node_attr(b, a->attrs[i].name);
        if (!o || !attr_equal(&a->attrs[i], o)) return 0;
    }
    return 1;
}

int pass_eliminate_common_subexpressions(Graph *g, char *err, size_t cap)
{
    (void)err; (void)cap;
    int changed = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        Node *n = g->nodes[i];
        for (int j = 0; j < i; j++) {
            Node *m = g->nodes[j];
            if (m->op < 0 || !same_node(n, m)) continue;
            int public_out = 0;
            for (int k = 0; k < n->n_out; k++) if (n->out[k]->is_output && m->out[k]->is_output) public_out = 1;
            if (public_out) break; /* two graph outputs stay two values */
            for (int k = 0; k < n->n_out; k++) graph_replace_uses(g, n->out[k], m->out[k]);
            n->op = -1;
            changed++;
            break;
        }
    }
    graph_remove_dead(g);
    return changed;
}
