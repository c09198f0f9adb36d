/* infer_attention.c — ai.vclip.Attention: multi-head attention over
 * token-major tensors with the heads merged in the channels.
 *
 * Inputs: q [B, N, Cq], k [B, M, Ck], v [B, M, Cv] (or [N, B, C] when
 * seq_first=1), optional additive mask [N, M].  Head h of q is channels
 * q_offset + h*head_dim .. +head_dim (likewise k, v), so a packed QKV
 * projection is read in place.  Output [B, N, num_heads*head_dim] (seq_first:
 * [N, B, ...]).  scale multiplies QK^T; causal=1 masks keys after the query.
 *
 * Temporal window (VCLIP, DESIGN.md §2): with frames=T > 0 the batch holds
 * videos of T frames (b = video*T + t) and the queries of frame t attend to
 * the keys/values of frames t+1..t+window, t-1..t-window and t, concatenated
 * along the key axis.  boundary=0 ("zero") fills frames outside the clip with
 * zero keys and values (they still take softmax mass with logit 0, as the
 * released code does); boundary=1 ("mask") leaves them out.
 *
 * bf16=1 (the CPU's bf16 path, passes/mark_bf16_gemms.c): q, k and v are
 * rounded to bf16 (nearest even) and their products summed in f32, scale
 * applied to the sum; the softmax is f32, and its probabilities are rounded
 * to bf16 before they weight v.  AttentionGrad with bf16=1 is this
 * forward's gradient with the roundings passed through (as autocast's casts
 * are), every product on bf16 operands (runtime/cpu/ref_attention_grad.c).
 * bf16_output=1 (with bf16=1, passes/bf16_activations.c): O is stored in
 * bf16, rounded to nearest even.  With bf16=1, q, k and v may be bf16 too
 * (the same products: passes/bf16_activations.c stores them so).
 */
#include "ops.h"

int op_attention_params(InferCtx *c, AttentionParams *p)
{
    const Node *n = c->node;
    p->heads = node_attr_i(n, "num_heads", 0);
    p->head_dim = node_attr_i(n, "head_dim", 0);
    p->q_off = node_attr_i(n, "q_offset", 0);
    p->k_off = node_attr_i(n, "k_offset", 0);
    p->v_off = node_attr_i(n, "v_offset", 0);
    p->scale = node_attr_f(n, "scale", 1.0f);
    p->causal = (int)node_attr_i(n, "causal", 0);
    p->seq_first = (int)node_attr_i(n, "seq_first", 0);
    p->frames = node_attr_i(n, "frames", 0);
    p->window = node_attr_i(n, "window", 0);
    p->boundary = (int)node_attr_i(n, "boundary", 0);
    p->bf16 = node_attr_i(n, "bf16", 0) != 0;
    p->bf16_output = node_attr_i(n, "bf16_output", 0) != 0;
    if (p->bf16_output && !p->bf16) return infer_fail(c, "bf16_output needs bf16 = 1");
    if (p->heads < 1 || p->head_dim < 1) return infer_fail(c, "num_heads and head_dim must be positive");
    if (p->frames < 0 || p->window < 0 || p->window > 64 || p->boundary < 0 || p->boundary > 1)
        return infer_fail(c, "bad temporal attributes (frames %lld, window %lld, boundary %d)", (long long)p->frames,
                          (long long)p->window, p->boundary);
    int64_t width = p->heads * p->head_dim;
    const int64_t off[3] = {p->q_off, p->k_off, p->v_off};
    for (int i = 0; i < 3; i++) {
        const ValueInfo *x = c->in[i];
        if (!x || x->shape.rank != 3) return infer_fail(c, "q, k and v must be rank 3");
        Dim ch = x->shape.d[2];
        if (off[i] < 0 || (dim_is_const(ch) && off[i] + width > ch.n))
            return infer_fail(c, "input %d: channels %lld..%lld outside its %lld", i, (long long)off[i],
                              (long long)(off[i] + width), (long long)ch.n);
    }
    return 0;
}

int infer_attention(InferCtx *c)
{
    if (c->n_in < 3) return infer_fail(c, "expects q, k, v");
    AttentionParams p;
    if (op_attention_params(c, &p)) return -1;
    const ValueInfo *q = c->in[0], *k = c->in[1], *v = c->in[2];
    for (int i = 0; i < 3; i++) /* bf16 ones where the kernel would round them anyway */
        if (c->in[i]->dtype != DT_F32 && !(p.bf16 && c->in[i]->dtype == DT_BF16))
            return infer_fail(c, "q, k, v must be f32 (or bf16 with bf16 = 1)");
    int bi = p.seq_first ? 1 : 0, si = 1 - bi;
    if (!dim_equal(k->shape.d[si], v->shape.d[si]) && dim_is_const(k->shape.d[si]) && dim_is_const(v->shape.d[si]))
        return infer_fail(c, "k and v have different lengths");
    if (c->n_in > 3 && c->in[3]) {
        const ValueInfo *m = c->in[3];
        if (m->dtype != DT_F32 || m->shape.rank != 2) return infer_fail(c, "mask must be f32 [N, M]");
    }
    ValueInfo *o = c->out[0];
    o->dtype = p.bf16_output ? DT_BF16 : DT_F32;
    o->shape.rank = 3;
    o->shape.d[bi] = q->shape.d[bi];
    o->shape.d[si] = q->shape.d[si];
    o->shape.d[2] = dim_const(p.heads * p.head_dim);
    return 0;
}
