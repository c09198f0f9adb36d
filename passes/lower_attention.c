/* lower_attention.c — ai.vclip.Attention as standard ONNX ops, for
 * --export-standard-ops.  Per input: Slice its channels, Transpose to
 * [B, L, C] if seq_first, Reshape [B, L, H, d], Transpose to [B, H, L, d].
 * With a temporal window, K and V become [B/T, T, H, M, d] and each
 * neighbour offset o is the frames shifted by o (Slice + Concat with zero
 * frames made by Where(false, x, 0), so no arithmetic touches the data);
 * the blocks [t+1..t+w | t-1..t-w | t] are concatenated along the key axis.
 * A masked boundary adds a per-frame -inf bias.  Then MatMul, scale, mask,
 * Softmax, MatMul, and the heads merged back. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "passes.h"
#include "rewrite.h"

static Value *const_tensor(Graph *g, const char *base, DType t, int rank, const int64_t *dims, const void *data)
{
    Tensor *x = tensor_new(t, rank, dims);
    char *name = graph_unique_name(g, base);
    Value *v = (x && name) ? graph_new_value(g, name) : NULL;
    free(name);
    if (!v) { tensor_free(x); return NULL; }
    if (x->nbytes) memcpy(x->data, data, x->nbytes);
    value_set_const(v, x);
    return v;
}

static Value *ints(Graph *g, const char *base, int n, const int64_t *vals)
{
    int64_t d[1] = {n};
    return const_tensor(g, base, DT_I64, 1, d, vals);
}

static Value *op2(Graph *g, int op, const char *base, Value *a, Value *b)
{
    Value *in[2] = {a, b};
    return (a && b) ? append_node(g, op, base, 2, in) : NULL;
}

static Value *transpose(Graph *g, const char *base, Value *x, int rank, const int64_t *perm)
{
    Node *n = x ? new_node(g, OP_TRANSPOSE, base, 1, &x) : NULL;
    if (!n) return NULL;
    Attr *a = node_add_attr(n, "perm", ATTR_INTS);
    if (!a || !(a->ints = malloc(sizeof(int64_t) * (size_t)rank))) return NULL;
    a->n = rank;
    memcpy(a->ints, perm, sizeof(int64_t) * (size_t)rank);
    char err[IR_ERR_CAP];
    return infer_node(g, n, err, sizeof err) ? NULL : n->out[0];
}

static Value *slice(Graph *g, const char *base, Value *x, int64_t axis, int64_t start, int64_t end)
{
    Value *in[4] = {x, ints(g, "starts", 1, &start), ints(g, "ends", 1, &end), ints(g, "axes", 1, &axis)};
    return (x && in[1] && in[2] && in[3]) ? append_node(g, OP_SLICE, base, 4, in) : NULL;
}

static Value *concat(Graph *g, const char *base, Value **xs, int n, int64_t axis)
{
    for (int i = 0; i < n; i++) if (!xs[i]) return NULL;
    Node *c = new_node(g, OP_CONCAT, base, n, xs);
    if (!c) return NULL;
    node_add_attr(c, "axis", ATTR_INT)->i = axis;
    char err[IR_ERR_CAP];
    return infer_node(g, c, err, sizeof err) ? NULL : c->out[0];
}

static Value *reshape(Graph *g, const char *base, Value *x, int n, const int64_t *shape)
{
    return op2(g, OP_RESHAPE, base, x, ints(g, "shape", n, shape));
}

/* q/k/v input -> [B, H, L, d] */
static Value *split_heads(Graph *g, const char *nm, Value *x, int64_t off, const AttentionParams *p)
{
    int64_t C = p->heads * p->head_dim;
    if (off != 0 || !dim_is_const(x->shape.d[2]) || x->shape.d[2].n != C) x = slice(g, nm, x, 2, off, off + C);
    static const int64_t swap01[3] = {1, 0, 2}, heads_first[4] = {0, 2, 1, 3};
    if (p->seq_first) x = transpose(g, nm, x, 3, swap01);
    const int64_t shape[4] = {0, 0, p->heads, p->head_dim};
    return transpose(g, nm, reshape(g, nm, x, 4, shape), 4, heads_first);
}

/* [B*T, H, M, d] -> [B*T, H, S*M, d] with the window's frames */
static Value *window_frames(Graph *g, const char *nm, Value *x, const AttentionParams *p, int64_t M)
{
    int64_t T = p->frames, w = p->window;
    const int64_t five[5] = {-1, T, p->heads, M, p->head_dim};
    Value *x5 = reshape(g, nm, x, 5, five);
    uint8_t no = 0;
    float zero = 0;
    Value *cond = const_tensor(g, "false", DT_BOOL, 0, NULL, &no), *z = const_tensor(g, "zero", DT_F32, 0, NULL, &zero);
    Value *blocks[2 * 64 + 1];
    int nb = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int64_t o = 1; o <= w; o++) {
            Value *zeros = NULL, *keep;
            Value *zin[3] = {cond, slice(g, nm, x5, 1, 0, o), z};
            if (zin[1]) zeros = append_node(g, OP_WHERE, nm, 3, zin); /* o frames of zeros, x5's dtype and shape */
            if (pass == 0) { /* frame t+o: drop the first o frames, zeros at the end */
                keep = slice(g, nm, x5, 1, o, T);
                Value *parts[2] = {keep, zeros};
                blocks[nb++] = concat(g, nm, parts, 2, 1);
            } else { /* frame t-o: zeros first, drop the last o frames */
                keep = slice(g, nm, x5, 1, 0, T - o);
                Value *parts[2] = {zeros, keep};
                blocks[nb++] = concat(g, nm, parts, 2, 1);
            }
        }
    blocks[nb++] = x5;
    const int64_t four[4] = {-1, p->heads, nb * M, p->head_dim};
    return reshape(g, nm, concat(g, nm, blocks, nb, 3), 4, four);
}

Value *lower_attention(Graph *g, Node *n)
{
    InferCtx ic = {.node = n, .opset = g->opset, .n_in = n->n_in};
    ValueInfo vi[4];
    for (int i = 0; i < n->n_in && i < 4; i++) { value_info_from_value(&vi[i], n->in[i]); ic.in[i] = &vi[i]; }
    AttentionParams p;
    if (op_attention_params(&ic, &p)) return NULL;
    const char *nm = n->name;
    int si = p.seq_first ? 0 : 1;
    if (!dim_is_const(n->in[0]->shape.d[si]) || !dim_is_const(n->in[1]->shape.d[si])) return NULL;
    int64_t N = n->in[0]->shape.d[si].n, M = n->in[1]->shape.d[si].n;
    Value *q = split_heads(g, nm, n->in[0], p.q_off, &p), *k = split_heads(g, nm, n->in[1], p.k_off, &p);
    Value *v = split_heads(g, nm, n->in[2], p.v_off, &p);
    int temporal = p.frames && p.window;
    if (temporal) { k = window_frames(g, nm, k, &p, M); v = window_frames(g, nm, v, &p, M); }
    int64_t S = temporal ? (2 * p.window + 1) : 1, L = S * M;
    static const int64_t kt[4] = {0, 1, 3, 2};
    Value *scores = op2(g, OP_MUL, nm, op2(g, OP_MATMUL, nm, q, transpose(g, nm, k, 4, kt)), scalar_const(g, "attention_scale", p.scale));
    /* additive bias [N, S*M]: the mask and the causal rule, repeated per block */
    const Value *mask = n->n_in > 3 ? n->in[3] : NULL;
    if (mask || p.causal) {
        float *bias = calloc((size_t)(N * L), sizeof(float));
        if (!bias) return NULL;
        for (int64_t i = 0; i < N; i++)
            for (int64_t s = 0; s < S; s++)
                for (int64_t m = 0; m < M; m++) {
                    float b = mask && mask->konst ? (float)tensor_get_f64(mask->konst, i * M + m) : 0.0f;
                    if (p.causal && m > i) b = -INFINITY;
                    bias[i * L + s * M + m] = b;
                }
        int64_t bd[2] = {N, L};
        Value *bv = mask && !mask->konst ? NULL : const_tensor(g, "attention_bias", DT_F32, 2, bd, bias);
        free(bias);
        if (!bv) return NULL; /* a run-time mask is not lowered */
        scores = op2(g, OP_ADD, nm, scores, bv);
    }
    if (temporal && p.boundary == 1) { /* frames outside the clip take no attention */
        float *fb = calloc((size_t)(p.frames * L), sizeof(float));
        if (!fb) return NULL;
        for (int64_t t = 0; t < p.frames; t++) {
            int64_t s = 0;
            for (int pass = 0; pass < 2; pass++)
                for (int64_t o = 1; o <= p.window; o++, s++) {
                    int64_t f = pass == 0 ? t + o : t - o;
                    if (f < 0 || f >= p.frames)
                        for (int64_t m = 0; m < M; m++) fb[t * L + s * M + m] = -INFINITY;
                }
        }
        int64_t fd[4] = {p.frames, 1, 1, L};
        Value *fbv = const_tensor(g, "frame_bias", DT_F32, 4, fd, fb);
        free(fb);
        const int64_t five[5] = {-1, p.frames, p.heads, N, L}, four[4] = {-1, p.heads, N, L};
        scores = reshape(g, nm, op2(g, OP_ADD, nm, reshape(g, nm, scores, 5, five), fbv), 4, four);
    }
    Node *sm = scores ? new_node(g, OP_SOFTMAX, nm, 1, &scores) : NULL;
    if (!sm) return NULL;
    node_add_attr(sm, "axis", ATTR_INT)->i = -1;
    char err[IR_ERR_CAP];
    if (infer_node(g, sm, err, sizeof err)) return NULL;
    static const int64_t back[4] = {0, 2, 1, 3}, swap01[3] = {1, 0, 2};
    const int64_t merged[3] = {0, 0, p.heads * p.head_dim};
    Value *o = reshape(g, nm, transpose(g, nm, op2(g, OP_MATMUL, nm, sm->out[0], v), 4, back), 3, merged);
    return p.seq_first ? transpose(g, nm, o, 3, swap01) : o;
}
