/* sink_attention_transposes.c — PyTorch's nn.MultiheadAttention (OpenAI and
 * open_clip CLIP) works sequence-first, so its exports wrap every attention
 * in x.permute(1, 0, 2) and back:
 *   Transpose(x) -> Linear (qkv) -> Attention(seq_first) -> Reshape [L*B, C]
 *     -> Linear/Gemm (out proj) -> Reshape [L, B, C] -> Transpose
 * The projections work row by row and our Attention takes either layout,
 * so the graph can stay batch-first: the qkv projection reads x, the
 * attention is told seq_first = 0, the last Reshape targets the batch-first
 * shape, and both transposes (two full copies of the activations per block)
 * go — which also lets the residual Add that follows fuse into the output
 * projection's GEMM. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "passes.h"
#include "rewrite.h"

static int swaps_first_two(const Node *n)
{
    const Attr *a = node_attr(n, "perm");
    return n->op == OP_TRANSPOSE && a && a->type == ATTR_INTS && a->n == 3 && a->ints[0] == 1 && a->ints[1] == 0 && a->ints[2] == 2;
}

static int row_wise(const Node *n)
{
    return n && (n->op == OP_LINEAR || (n->op == OP_GEMM && !node_attr_i(n, "transA", 0)));
}

static int rewrite(Graph *g, Node *attn, const int *uses, char *err, size_t cap)
{
    Node *qkv = producer_is(attn->in[0], OP_LINEAR);
    if (!qkv || attn->in[1] != attn->in[0] || attn->in[2] != attn->in[0] || uses[qkv->out[0]->id] != 3) return 0;
    Node *t1 = producer_is(qkv->in[0], OP_TRANSPOSE);
    if (!t1 || !swaps_first_two(t1) || uses[t1->out[0]->id] != 1) return 0;
    Node *r1 = sole_reader(g, attn->out[0], uses);
    Node *proj = r1 && r1->op == OP_RESHAPE ? sole_reader(g, r1->out[0], uses) : NULL;
    Node *r2 = row_wise(proj) && proj->in[0] == r1->out[0] ? sole_reader(g, proj->out[0], uses) : NULL;
    Node *t2 = r2 && r2->op == OP_RESHAPE ? sole_reader(g, r2->out[0], uses) : NULL;
    if (!t2 || !swaps_first_two(t2) || r1->out[0]->shape.rank != 2) return 0;
    const Shape *want = &t2->out[0]->shape; /* [B, L, C] */
    if (want->rank != 3 || !dim_is_const(want->d[1]) || !dim_is_const(want->d[2])) return 0;
    Value *target = int_vector_const(g, "batch_first_shape", 3, (int64_t[]){-1, want->d[1].n, want->d[2].n});
    Attr *sf = (Attr *)node_attr(attn, "seq_first");
    if (!target || !sf) { snprintf(err, cap, "sink-attention-transposes: out of memory or no seq_first"); return -1; }
    qkv->in[0] = t1->in[0];
    sf->i = 0;
    r2->in[1] = target;
    Node *chain[4] = {qkv, attn, r1, proj};
    char msg[IR_ERR_CAP];
    for (int i = 0; i < 4; i++)
        if (infer_node(g, chain[i], msg, sizeof msg)) { snprintf(err, cap, "sink-attention-transposes: node '%s': %s", chain[i]->name, msg); return -1; }
    if (infer_node(g, r2, msg, sizeof msg)) { snprintf(err, cap, "sink-attention-transposes: node '%s': %s", r2->name, msg); return -1; }
    graph_replace_uses(g, t2->out[0], r2->out[0]);
    t1->op = t2->op = -1;
    return 1;
}

int pass_sink_attention_transposes(Graph *g, char *err, size_t cap)
{
    int changed = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        Node *a = g->nodes[i];
        if (a->op != OP_ATTENTION || !node_attr_i(a, "seq_first", 0) || a->n_in < 3) continue;
        int *uses = graph_use_counts(g);
        if (!uses) { snprintf(err, cap, "sink-attention-transposes: out of memory"); return -1; }
        int r = rewrite(g, a, uses, err, cap);
        free(uses);
        if (r < 0) return -1;
        changed += r;
    }
    graph_remove_dead(g);
    return graph_topo_sort(g) ? (snprintf(err, cap, "sink-attention-transposes: cycle"), -1) : changed;
}
