/* fuse_attention.c — multi-head attention  ->  ai.vclip.Attention.
 *
 * Anchor: Softmax(last axis) of scale * (Q @ K^T) [+ constant mask], whose
 * result multiplies V.  Q [B,H,N,d], K^T [B,H,d,M] and V [B,H,M,d] are each
 * traced back through layout ops (Reshape, Transpose, Squeeze, Unsqueeze,
 * Gather, Slice, Flatten) to the tensor they were cut from, and the output
 * forward to where the heads are merged again.  Instead of matching every
 * exporter's chain of layout ops, the chain is *probed*: run by the reference
 * kernels on a tensor holding its own element indices, the result must be
 * exactly a head split (or merge) of a token-major [B,N,C] or [N,B,C] tensor
 * at some channel offset.  That covers OpenAI's packed in_proj with its
 * [N,B,C] layout, Hugging Face's separate q/k/v, and the dynamo exporter
 * alike, and proves the rewrite exact for those shapes.
 * A constant causal mask becomes causal=1; any other constant mask is kept.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "passes.h"
#include "rewrite.h"
#include "../runtime/cpu/exec_node.h"
#include "../ir/base.h"

#define MAX_CHAIN 24
#define PROBE_BATCH 2

static int is_layout(const Node *n)
{
    switch (n->op) {
    case OP_RESHAPE: case OP_TRANSPOSE: case OP_SQUEEZE: case OP_UNSQUEEZE: case OP_GATHER: case OP_SLICE:
    case OP_FLATTEN: case OP_IDENTITY:
        for (int i = 1; i < n->n_in; i++) if (n->in[i] && !n->in[i]->konst) return 0;
        return n->n_out == 1;
    default:
        return 0;
    }
}

/* Strips Mul/Div by scalar constants, folding them into *scale. */
static Value *strip_scale(Value *v, double *scale)
{
    for (;;) {
        Node *p = v->producer;
        double c;
        if (p && p->op == OP_MUL && const_scalar(p->in[1], &c)) { *scale *= c; v = p->in[0]; }
        else if (p && p->op == OP_MUL && const_scalar(p->in[0], &c)) { *scale *= c; v = p->in[1]; }
        else if (p && p->op == OP_DIV && const_scalar(p->in[1], &c) && c != 0) { *scale /= c; v = p->in[0]; }
        else return v;
    }
}

/* Layout chain from its source to v; returns the source. */
static Value *trace_back(Value *v, Node **chain, int *n)
{
    Node *rev[MAX_CHAIN];
    int k = 0;
    while (v->producer && is_layout(v->producer) && k < MAX_CHAIN) {
        rev[k++] = v->producer;
        v = v->producer->in[0];
    }
    for (int i = 0; i < k; i++) chain[i] = rev[k - 1 - i];
    *n = k;
    return v;
}

static int concrete_dims(const Value *v, int64_t *dims)
{
    if (v->shape.rank < 0) return -1;
    for (int i = 0; i < v->shape.rank; i++) {
        Dim d = v->shape.d[i];
        if (dim_is_const(d)) dims[i] = d.n;
        else if (d.sym >= 0) dims[i] = d.n * PROBE_BATCH;
        else return -1;
    }
    return 0;
}

/* Runs the chain on a tensor of these dims whose elements are their own indices. */
static Tensor *probe_dims(const Graph *g, int rank, const int64_t *dims, Node **chain, int n)
{
    Tensor *t = tensor_new(DT_F32, rank, dims);
    int64_t numel = t ? tensor_numel(t) : 0;
    if (!t || numel > (1 << 24)) { tensor_free(t); return NULL; } /* f32 holds exact integers up to 2^24 */
    for (int64_t i = 0; i < numel; i++) ((float *)t->data)[i] = (float)i;
    ExecOptions opt = {.reference_only = 1};
    for (int i = 0; i < n && t; i++) {
        const Tensor *ins[16] = {t};
        Tensor *outs[8] = {0};
        char err[IR_ERR_CAP];
        for (int j = 1; j < chain[i]->n_in && j < 16; j++) ins[j] = chain[i]->in[j] ? chain[i]->in[j]->konst : NULL;
        int rc = exec_node(g, chain[i], ins, outs, &opt, err, sizeof err);
        tensor_free(t);
        t = rc ? NULL : outs[0];
    }
    return t;
}

static Tensor *probe(const Graph *g, const Value *src, Node **chain, int n)
{
    int64_t dims[IR_MAX_RANK];
    return concrete_dims(src, dims) ? NULL : probe_dims(g, src->shape.rank, dims, chain, n);
}

typedef struct { int seq_first; int64_t offset, batch, len, channels; } Split;

/* Transformer layers repeat the same chains: probe verdicts are cached by a
 * hash of the source shape, the chain's ops, attributes and constant inputs. */
#define PROBE_CACHE 64
typedef struct { uint64_t key; int ok; Split s; int64_t dims[4]; } ProbeEntry;
typedef struct { ProbeEntry e[PROBE_CACHE]; int n; } ProbeCache;

static uint64_t chain_key(const Value *src, Node **chain, int n, int transposed)
{
    uint64_t h = FNV_OFFSET;
    h = fnv1a(h, &transposed, sizeof transposed);
    h = fnv1a(h, &src->shape.rank, sizeof src->shape.rank); /* field by field: dims past the rank and Dim's padding hold garbage */
    for (int i = 0; i < src->shape.rank; i++) {
        h = fnv1a(h, &src->shape.d[i].n, sizeof src->shape.d[i].n);
        h = fnv1a(h, &src->shape.d[i].sym, sizeof src->shape.d[i].sym);
    }
    for (int i = 0; i < n; i++) {
        const Node *c = chain[i];
        h = fnv1a(h, &c->op, sizeof c->op);
        for (int a = 0; a < c->n_attrs; a++) {
            const Attr *at = &c->attrs[a];
            h = fnv1a(h, at->name, strlen(at->name));
            h = fnv1a(h, &at->i, sizeof at->i);
            if (at->type == ATTR_INTS && at->n) h = fnv1a(h, at->ints, sizeof(int64_t) * (size_t)at->n);
        }
        for (int j = 1; j < c->n_in; j++)
            if (c->in[j] && c->in[j]->konst) h = fnv1a(h, c->in[j]->konst->data, c->in[j]->konst->nbytes);
    }
    return h;
}

/* Is p (of shape [B,H,L,d], or [B,H,d,L] when transposed) exactly the heads of
 * the source src ([B,L,C] or [L,B,C]) from channel `offset` on? */
static int check_split(const Tensor *p, const Value *src, int transposed, Split *s)
{
    int64_t sd[IR_MAX_RANK];
    if (!p || p->rank != 4 || src->shape.rank != 3 || concrete_dims(src, sd)) return 0;
    int64_t B = p->dims[0], H = p->dims[1], L = transposed ? p->dims[3] : p->dims[2], d = transposed ? p->dims[2] : p->dims[3];
    const float *x = p->data;
    int64_t first = (int64_t)x[0], C = sd[2];
    for (int seq_first = 0; seq_first < 2; seq_first++) {
        int64_t b_ax = seq_first ? 1 : 0, l_ax = 1 - b_ax;
        if (sd[b_ax] != B || sd[l_ax] != L || first % C + H * d > C || first / C != 0) continue;
        int64_t off = first % C, ok = 1;
        for (int64_t b = 0; b < B && ok; b++)
            for (int64_t h = 0; h < H && ok; h++)
                for (int64_t l = 0; l < L && ok; l++)
                    for (int64_t j = 0; j < d && ok; j++) {
                        int64_t at = transposed ? ((b * H + h) * d + j) * L + l : ((b * H + h) * L + l) * d + j;
                        int64_t row = seq_first ? l * B + b : b * L + l;
                        ok = (int64_t)x[at] == row * C + off + h * d + j;
                    }
        if (ok) { *s = (Split){seq_first, off, B, L, C}; return 1; }
    }
    return 0;
}

/* check_split of the chain's probe, through the cache; dims gets the probe's shape. */
static int probe_split(const Graph *g, ProbeCache *cache, const Value *src, Node **chain, int n, int transposed, Split *s,
                       int64_t *dims)
{
    uint64_t key = chain_key(src, chain, n, transposed);
    for (int i = 0; i < cache->n; i++)
        if (cache->e[i].key == key) {
            *s = cache->e[i].s;
            memcpy(dims, cache->e[i].dims, sizeof cache->e[i].dims);
            return cache->e[i].ok;
        }
    Tensor *p = probe(g, src, chain, n);
    int ok = check_split(p, src, transposed, s);
    for (int i = 0; i < 4; i++) dims[i] = p && p->rank == 4 ? p->dims[i] : 0;
    tensor_free(p);
    if (cache->n < PROBE_CACHE) {
        ProbeEntry *e = &cache->e[cache->n++];
        e->key = key;
        e->ok = ok;
        e->s = *s;
        memcpy(e->dims, dims, sizeof e->dims);
    }
    return ok;
}

/* Forward chain from the attention output o while each value has one reader
 * that is a layout op; returns the last value. */
static Value *trace_forward(const Graph *g, const int *uses, Value *o, Node **chain, int *n)
{
    *n = 0;
    for (;;) {
        if (o->is_output || uses[o->id] != 1 || *n == MAX_CHAIN) return o;
        Node *next = NULL;
        for (int i = 0; i < g->n_nodes && !next; i++)
            for (int j = 0; j < g->nodes[i]->n_in; j++)
                if (g->nodes[i]->in[j] == o) { next = g->nodes[i]; break; }
        if (!next || !is_layout(next) || next->in[0] != o) return o;
        chain[(*n)++] = next;
        o = next->out[0];
    }
}

/* Does r hold the heads of o ([B,H,N,d]) merged back into [B,N,C] / [N,B,C]
 * order (possibly flattened to 2-D)?  *seq_first says which. */
static int check_merge(const Tensor *r, const int64_t *od, int *seq_first)
{
    int64_t B = od[0], H = od[1], N = od[2], d = od[3], C = H * d;
    if (!r || tensor_numel(r) != B * N * C || r->dims[r->rank - 1] != C) return 0;
    const float *x = r->data;
    for (int sf = 0; sf < 2; sf++) {
        int ok = 1;
        for (int64_t b = 0; b < B && ok; b++)
            for (int64_t n = 0; n < N && ok; n++)
                for (int64_t h = 0; h < H && ok; h++)
                    for (int64_t j = 0; j < d && ok; j++) {
                        int64_t row = sf ? n * B + b : b * N + n;
                        ok = (int64_t)x[row * C + h * d + j] == ((b * H + h) * N + n) * d + j;
                    }
        if (ok) { *seq_first = sf; return 1; }
    }
    return 0;
}

/* A constant additive mask of N*M elements: 1 if causal (0 on and below the
 * diagonal, very negative above), else 0 and *mask2d receives an [N, M] copy. */
static int classify_mask(Graph *g, const Value *m, int64_t N, int64_t M, Value **mask2d)
{
    const Tensor *t = m->konst;
    int causal = N == M;
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < M; j++) {
            double v = tensor_get_f64(t, i * M + j);
            if (j <= i ? v != 0 : v > -1e4) causal = 0;
        }
    if (causal) return 1;
    int64_t dims[2] = {N, M};
    Tensor *c = tensor_new(DT_F32, 2, dims);
    char *name = graph_unique_name(g, m->name);
    Value *v = (c && name) ? graph_new_value(g, name) : NULL;
    free(name);
    if (!v) { tensor_free(c); *mask2d = NULL; return -1; }
    for (int64_t i = 0; i < N * M; i++) ((float *)c->data)[i] = (float)tensor_get_f64(t, i);
    value_set_const(v, c);
    *mask2d = v;
    return 0;
}

static Node *reader_of(const Graph *g, const Value *v, int op)
{
    Node *found = NULL;
    for (int i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i]->n_in; j++)
            if (g->nodes[i]->in[j] == v) {
                if (found || g->nodes[i]->op != op) return NULL;
                found = g->nodes[i];
                break;
            }
    return found;
}

/* Tries one Softmax; 1 if fused, 0 if not an attention we can prove, -1 on OOM. */
static int fuse_one(Graph *g, const int *uses, Node *sm, ProbeCache *cache)
{
    Value *scores = sm->in[0];
    if (scores->shape.rank != 4) return 0;
    int64_t axis = node_attr_i(sm, "axis", g->opset >= 13 ? -1 : 1);
    if (axis != -1 && axis != 3) return 0;
    Value *mask = NULL;
    double scale = 1.0;
    Node *add = producer_is(scores, OP_ADD);
    if (add) {
        for (int s = 0; s < 2; s++)
            if (add->in[s]->konst && !add->in[1 - s]->konst) { mask = add->in[s]; scores = add->in[1 - s]; break; }
        if (!mask) return 0;
    }
    scores = strip_scale(scores, &scale);
    Node *qk = producer_is(scores, OP_MATMUL);
    Node *av = reader_of(g, sm->out[0], OP_MATMUL);
    if (!qk || !av || av->in[0] != sm->out[0]) return 0;
    Value *qv = strip_scale(qk->in[0], &scale), *kv = strip_scale(qk->in[1], &scale), *vv = av->in[1];
    Node *cq[MAX_CHAIN], *ck[MAX_CHAIN], *cv[MAX_CHAIN], *co[MAX_CHAIN];
    int nq, nk, nv, no;
    Value *sq = trace_back(qv, cq, &nq), *sk = trace_back(kv, ck, &nk), *sv = trace_back(vv, cv, &nv);
    Split q, k, v;
    int64_t od[4] = {0}, unused[4];
    int ok = probe_split(g, cache, sq, cq, nq, 0, &q, od) && probe_split(g, cache, sk, ck, nk, 1, &k, unused) &&
             probe_split(g, cache, sv, cv, nv, 0, &v, unused) && q.seq_first == k.seq_first &&
             k.seq_first == v.seq_first && q.batch == k.batch && k.len == v.len;
    if (!ok) return 0;
    /* output: o [B,H,N,d] -> heads merged */
    Value *r = trace_forward(g, uses, av->out[0], co, &no);
    int64_t B = od[0], H = od[1], N = od[2], d = od[3], M = k.len;
    int64_t odims[4] = {B, H, N, d};
    int out_seq_first = 0;
    /* the merge check, cached like the splits (the key includes o's dims via a stand-in shape) */
    Value shape_of_o = *av->out[0];
    uint64_t key = chain_key(&shape_of_o, co, no, 2) ^ (uint64_t)(B * 1000003 + H * 10007 + N * 101 + d);
    int cached = -1;
    for (int i = 0; i < cache->n; i++) if (cache->e[i].key == key) { cached = cache->e[i].ok; out_seq_first = cache->e[i].s.seq_first; }
    if (cached < 0) {
        Tensor *cur = probe_dims(g, 4, odims, co, no);
        cached = check_merge(cur, odims, &out_seq_first);
        tensor_free(cur);
        if (cache->n < PROBE_CACHE) {
            ProbeEntry *e = &cache->e[cache->n++];
            memset(e, 0, sizeof *e);
            e->key = key;
            e->ok = cached;
            e->s.seq_first = out_seq_first;
        }
    }
    ok = cached && out_seq_first == q.seq_first &&
         (r->shape.rank == 2 || (r->shape.rank == 3 && dim_is_const(r->shape.d[2]) && r->shape.d[2].n == H * d &&
                                 dim_is_const(r->shape.d[q.seq_first ? 0 : 1]) && r->shape.d[q.seq_first ? 0 : 1].n == N));
    if (!ok) return 0;
    int causal = 0;
    Value *mask2d = NULL;
    if (mask) {
        if (tensor_numel(mask->konst) != N * M) return 0; /* per-batch masks are not supported */
        causal = classify_mask(g, mask, N, M, &mask2d);
        if (causal < 0) return -1;
    }
    Value *in[4] = {sq, sk, sv, mask2d};
    char base[256];
    snprintf(base, sizeof base, "%s_attention", sm->name);
    Node *an = new_node(g, OP_ATTENTION, base, mask2d ? 4 : 3, in);
    if (!an) return -1;
    Value *att = an->out[0];
    node_add_attr(an, "num_heads", ATTR_INT)->i = H;
    node_add_attr(an, "head_dim", ATTR_INT)->i = d;
    node_add_attr(an, "q_offset", ATTR_INT)->i = q.offset;
    node_add_attr(an, "k_offset", ATTR_INT)->i = k.offset;
    node_add_attr(an, "v_offset", ATTR_INT)->i = v.offset;
    node_add_attr(an, "scale", ATTR_FLOAT)->f = (float)scale;
    node_add_attr(an, "causal", ATTR_INT)->i = causal;
    node_add_attr(an, "seq_first", ATTR_INT)->i = q.seq_first;
    char err[IR_ERR_CAP];
    if (infer_node(g, an, err, sizeof err)) { an->op = -1; return 0; } /* left for DCE */
    Value *result = att;
    if (r->shape.rank == 2) { /* merged and flattened: [B*N, C] or [N*B, C] */
        int64_t tdims[1] = {2};
        Tensor *t = tensor_new(DT_I64, 1, tdims);
        char *nm = graph_unique_name(g, "attention_flatten_shape");
        Value *shape = (t && nm) ? graph_new_value(g, nm) : NULL;
        free(nm);
        if (!shape) { tensor_free(t); return -1; }
        ((int64_t *)t->data)[0] = -1;
        ((int64_t *)t->data)[1] = H * d;
        value_set_const(shape, t);
        Value *rin[2] = {att, shape};
        result = append_node(g, OP_RESHAPE, base, 2, rin);
        if (!result) return -1;
    }
    graph_replace_uses(g, r, result);
    return 1;
}

int pass_fuse_attention(Graph *g, char *err, size_t cap)
{
    int changed = 0, n = g->n_nodes;
    ProbeCache *cache = calloc(1, sizeof *cache);
    if (!cache) { snprintf(err, cap, "fuse-attention: out of memory"); return -1; }
    for (int i = 0; i < n; i++) {
        if (g->nodes[i]->op != OP_SOFTMAX) continue;
        int *uses = graph_use_counts(g);
        int r = uses ? fuse_one(g, uses, g->nodes[i], cache) : -1;
        free(uses);
        if (r < 0) { free(cache); snprintf(err, cap, "fuse-attention: out of memory"); return -1; }
        changed += r;
    }
    free(cache);
    return graph_topo_sort(g) ? (snprintf(err, cap, "fuse-attention: cycle"), -1) : changed;
}
