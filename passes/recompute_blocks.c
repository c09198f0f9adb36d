/* recompute_blocks.c — activation recomputation (`--recompute`).  A training
 * graph keeps every forward value its backward pass reads, from the first
 * block to the last, so the activations of all blocks are alive at once when
 * the backward pass begins; for ViT-L/14 that is what does not fit.  Here
 * each transformer block keeps only its input: the backward pass's reads of
 * the block's inner values go to copies of the block's forward nodes, placed
 * just before the first backward node that needs them, so the copies live
 * only while that block's gradients are computed.  The price is one more
 * forward pass of the blocks.
 *
 * Blocks are found from the residual stream, whatever the exporter named
 * them: a value read by a LayerNormalization and by an Add is a residual
 * branch's start, and that Add's output its end; a branch holding an
 * Attention and the branch after it (the MLP) make one block.  A block's
 * nodes are the forward nodes that depend on its start and feed its end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "passes.h"
#include "rewrite.h"

typedef struct { Value *start, *end; int attention; } Branch;

/* member[i] for the forward nodes between start and end: they depend on
 * start and end depends on them (pos: each value's producer's index; member
 * has a flag for each of the first nn nodes). */
static void block_nodes(const Graph *g, int nn, const int *pos, const Value *start, const Value *end, char *member)
{
    int lo = pos[start->id] + 1, hi = pos[end->id];
    char *dep = calloc((size_t)g->n_values, 1), *feeds = calloc((size_t)g->n_values, 1);
    memset(member, 0, (size_t)nn);
    if (!dep || !feeds) { free(dep); free(feeds); return; }
    dep[start->id] = 1;
    for (int i = lo; i <= hi; i++) {
        const Node *n = g->nodes[i];
        int d = 0;
        for (int j = 0; j < n->n_in; j++) d |= n->in[j] && dep[n->in[j]->id];
        for (int j = 0; j < n->n_out; j++) if (n->out[j]) dep[n->out[j]->id] = (char)d;
    }
    feeds[end->id] = 1;
    for (int i = hi; i >= lo; i--) {
        const Node *n = g->nodes[i];
        int f = 0;
        for (int j = 0; j < n->n_out; j++) f |= n->out[j] && feeds[n->out[j]->id];
        if (!f || !n->n_out || !n->out[0] || !dep[n->out[0]->id]) continue;
        member[i] = 1;
        for (int j = 0; j < n->n_in; j++) if (n->in[j]) feeds[n->in[j]->id] = 1;
    }
    free(dep);
    free(feeds);
}

/* The residual branches of the forward nodes [0, n_forward), in order. */
static int find_branches(const Graph *g, int n_forward, Branch *br)
{
    int n = 0;
    for (int i = 0; i < n_forward; i++) {
        const Node *ln = g->nodes[i];
        if (ln->op != OP_LAYER_NORM || !ln->in[0]) continue;
        const Value *x = ln->in[0];
        for (int k = i + 1; k < n_forward; k++) {
            Node *add = g->nodes[k];
            if (add->op != OP_ADD || add->n_in != 2 || (add->in[0] != x && add->in[1] != x) || !add->out[0]) continue;
            br[n] = (Branch){(Value *)x, add->out[0], 0};
            for (int j = i; j < k; j++) br[n].attention |= g->nodes[j]->op == OP_ATTENTION;
            n++;
            break;
        }
    }
    return n;
}

int recompute_blocks(Graph *g, int n_forward, RecomputeStats *st, char *err, size_t cap)
{
    int nn = g->n_nodes, nv = g->n_values, rc = -1;
    memset(st, 0, sizeof *st);
    int *pos = malloc(sizeof(int) * (size_t)(nv ? nv : 1));
    Branch *br = calloc((size_t)(n_forward ? n_forward : 1), sizeof *br);
    char *member = malloc((size_t)(nn ? nn : 1)), *needed = malloc((size_t)(nv ? nv : 1));
    Node **order = malloc(sizeof(Node *) * (size_t)(2 * nn + 1));
    Node ***clones = calloc((size_t)(nn ? nn : 1), sizeof *clones); /* per backward node: the copies that go before it */
    int *n_clones = calloc((size_t)(nn ? nn : 1), sizeof *n_clones);
    Value **map = calloc((size_t)(nv ? nv : 1), sizeof *map);
    if (!pos || !br || !member || !needed || !order || !clones || !n_clones || !map) { snprintf(err, cap, "out of memory"); goto done; }
    for (int v = 0; v < nv; v++) pos[v] = -1;
    for (int i = 0; i < nn; i++)
        for (int j = 0; j < g->nodes[i]->n_out; j++) if (g->nodes[i]->out[j]) pos[g->nodes[i]->out[j]->id] = i;
    int n_br = find_branches(g, n_forward, br);
    for (int b = 0; b < n_br; b++) {
        /* a block: the attention branch and the MLP branch after it */
        Value *start = br[b].start, *end = br[b].end;
        if (br[b].attention && b + 1 < n_br && br[b + 1].start == end && !br[b + 1].attention) end = br[++b].end;
        block_nodes(g, nn, pos, start, end, member);
        /* the inner values the backward pass reads, and the first node reading one */
        memset(needed, 0, (size_t)nv);
        int anchor = -1, any = 0;
        for (int i = n_forward; i < nn; i++) {
            const Node *n = g->nodes[i];
            for (int j = 0; j < n->n_in; j++) {
                const Value *v = n->in[j];
                if (!v || v == end || v->id >= nv || pos[v->id] < 0 || pos[v->id] >= n_forward || !member[pos[v->id]]) continue;
                needed[v->id] = 1;
                any = 1;
                if (anchor < 0) anchor = i;
            }
        }
        if (!any) continue;
        /* the nodes those values need, in forward order */
        for (int i = pos[end->id]; i > pos[start->id]; i--) {
            const Node *n = g->nodes[i];
            int need = 0;
            for (int j = 0; j < n->n_out; j++) need |= n->out[j] && needed[n->out[j]->id];
            if (!member[i] || !need) { member[i] = 0; continue; }
            for (int j = 0; j < n->n_in; j++)
                if (n->in[j] && pos[n->in[j]->id] >= 0 && member[pos[n->in[j]->id]]) needed[n->in[j]->id] = 1;
        }
        char prefix[64];
        snprintf(prefix, sizeof prefix, "recompute%d/", st->blocks);
        for (int i = pos[start->id] + 1; i <= pos[end->id]; i++) {
            if (!member[i]) continue;
            Node *n = g->nodes[i];
            Value *in[16];
            for (int j = 0; j < n->n_in && j < 16; j++) in[j] = n->in[j] && n->in[j]->id < nv && map[n->in[j]->id] ? map[n->in[j]->id] : n->in[j];
            Node *c = clone_node(g, n, in, prefix, err, cap);
            if (!c) goto done;
            for (int j = 0; j < n->n_out; j++) if (n->out[j]) map[n->out[j]->id] = c->out[j];
            Node **grown = realloc(clones[anchor], sizeof(Node *) * (size_t)(n_clones[anchor] + 1));
            if (!grown) { snprintf(err, cap, "out of memory"); goto done; }
            clones[anchor] = grown;
            clones[anchor][n_clones[anchor]++] = c;
            st->nodes++;
        }
        /* the backward pass reads the copies */
        for (int i = n_forward; i < nn; i++) {
            Node *n = g->nodes[i];
            for (int j = 0; j < n->n_in; j++)
                if (n->in[j] && n->in[j]->id < nv && map[n->in[j]->id]) n->in[j] = map[n->in[j]->id];
        }
        for (int i = pos[start->id] + 1; i <= pos[end->id]; i++)
            for (int j = 0; member[i] && j < g->nodes[i]->n_out; j++) if (g->nodes[i]->out[j]) map[g->nodes[i]->out[j]->id] = NULL;
        st->blocks++;
    }
    /* each block's copies just before the first backward node reading them */
    int k = 0;
    for (int i = 0; i < nn; i++) {
        for (int c = 0; c < n_clones[i]; c++) order[k++] = clones[i][c];
        order[k++] = g->nodes[i];
    }
    if (k != g->n_nodes) { snprintf(err, cap, "recompute: lost track of the copies"); goto done; }
    memcpy(g->nodes, order, sizeof(Node *) * (size_t)k);
    if (graph_topo_sort(g)) { snprintf(err, cap, "recompute: cycle"); goto done; }
    rc = 0;
done:
    for (int i = 0; clones && i < nn; i++) free(clones[i]);
    free(clones);
    free(n_clones);
    free(pos);
    free(br);
    free(member);
    free(needed);
    free(order);
    free(map);
    return rc;
}
