/* shape_before_transpose.c — exporters measure tensors they also transpose
 * (OpenAI CLIP reads the batch size off the transposed patch embeddings to
 * expand the class token).  Shape(Transpose(x)) is Shape(x) gathered by the
 * permutation; measured that way, the transposed tensor has one reader
 * left, and fuse-elementwise can read through the Transpose instead of
 * writing it out. */
#include <stdio.h>
#include <stdlib.h>
#include "passes.h"
#include "rewrite.h"

static int rewrite_one(Graph *g, Node *s)
{
    Node *t = producer_is(s->in[0], OP_TRANSPOSE);
    if (!t || s->n_in != 1 || node_attr(s, "start") || node_attr(s, "end") || !t->in[0] || t->in[0]->shape.rank < 1) return 0;
    int rank = t->in[0]->shape.rank;
    int64_t perm[IR_MAX_RANK];
    const Attr *p = node_attr(t, "perm");
    if (p && (p->type != ATTR_INTS || p->n != rank)) return 0;
    for (int i = 0; i < rank; i++) perm[i] = p ? p->ints[i] : rank - 1 - i;
    Value *shape = append_node(g, OP_SHAPE, s->name, 1, &t->in[0]), *idx = int_vector_const(g, "perm", rank, perm);
    Node *gather = shape && idx ? new_node(g, OP_GATHER, s->name, 2, (Value *[]){shape, idx}) : NULL;
    Attr *axis = gather ? node_add_attr(gather, "axis", ATTR_INT) : NULL;
    char err[IR_ERR_CAP];
    if (!axis || infer_node(g, gather, err, sizeof err)) return -1;
    graph_replace_uses(g, s->out[0], gather->out[0]);
    s->op = -1;
    return 1;
}

int pass_shape_before_transpose(Graph *g, char *err, size_t cap)
{
    int n = g->n_nodes, changed = 0;
    for (int i = 0; i < n; i++) {
        if (g->nodes[i]->op != OP_SHAPE) continue;
        int r = rewrite_one(g, g->nodes[i]);
        if (r < 0) { snprintf(err, cap, "shape-before-transpose: node '%s': out of memory", g->nodes[i]->name); return -1; }
        changed += r;
    }
    graph_remove_dead(g);
    if (graph_topo_sort(g)) { snprintf(err, cap, "shape-before-transpose: cycle"); return -1; }
    return changed;
}
