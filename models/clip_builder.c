/* clip_builder.c — see clip_builder.h.  The layout follows OpenAI's CLIP:
 * patch Conv without bias, class token, positional embedding, ln_pre,
 * pre-LN residual blocks (packed QKV attention, QuickGELU MLP), ln_post on
 * the class token, projection; the text tower uses causal attention,
 * ln_final and pools the EOT position (as a one-hot sum, so no gather of
 * data-dependent indices is needed).  Initialization follows OpenAI's:
 * N(0, 0.02) token embeddings, width^-0.5 scaled class/positional
 * embeddings and projections, 1/sqrt(fan_in) linear layers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "clip_builder.h"

static double normal(uint64_t *s)
{
    double u[2];
    for (int i = 0; i < 2; i++) { /* splitmix64 -> (0, 1) */
        uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        u[i] = ((double)(z >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    }
    return sqrt(-2 * log(u[0])) * cos(2 * M_PI * u[1]);
}

/* A weight of the given shape: N(0, std) (std 0: constant `fill`). */
static Value *weight(Builder *b, const char *name, int rank, const int64_t *dims, double std, float fill, uint64_t *rng)
{
    Tensor *t = tensor_new(DT_F32, rank, dims);
    if (t)
        for (int64_t i = 0; i < tensor_numel(t); i++) ((float *)t->data)[i] = std > 0 ? (float)(std * normal(rng)) : fill;
    if (b->failed) { tensor_free(t); return NULL; }
    if (graph_find_value(b->g, name)) { tensor_free(t); b->failed = 1; snprintf(b->err, b->cap, "weight '%s' exists twice", name); return NULL; }
    Value *v = t ? graph_new_value(b->g, name) : NULL;
    if (!v) { tensor_free(t); b->failed = 1; snprintf(b->err, b->cap, "out of memory"); return NULL; }
    value_set_const(v, t);
    return v;
}

static Value *layernorm(Builder *b, const char *prefix, Value *x, int width, uint64_t *rng)
{
    char n[256];
    int64_t d[1] = {width};
    snprintf(n, sizeof n, "%s.weight", prefix);
    Value *w = weight(b, n, 1, d, 0, 1.0f, rng);
    snprintf(n, sizeof n, "%s.bias", prefix);
    Value *bias = weight(b, n, 1, d, 0, 0.0f, rng);
    Node *ln = b_node(b, OP_LAYER_NORM, prefix, 3, (Value *[]){x, w, bias});
    b_attr_i(ln, "axis", -1);
    b_attr_f(ln, "epsilon", 1e-5f);
    return b_finish(b, ln);
}

static Value *linear(Builder *b, const char *prefix, Value *x, int in, int out, uint64_t *rng)
{
    char n[256];
    snprintf(n, sizeof n, "%s.weight", prefix);
    Value *w = weight(b, n, 2, (int64_t[]){in, out}, 1.0 / sqrt((double)in), 0, rng);
    snprintf(n, sizeof n, "%s.bias", prefix);
    Value *bias = weight(b, n, 1, (int64_t[]){out}, 0, 0.0f, rng);
    return b_op(b, OP_LINEAR, prefix, 3, (Value *[]){x, w, bias});
}

static Value *block(Builder *b, const char *prefix, Value *x, int width, int heads, int causal, uint64_t *rng)
{
    char n[256];
    snprintf(n, sizeof n, "%s.ln_1", prefix);
    Value *h = layernorm(b, n, x, width, rng);
    snprintf(n, sizeof n, "%s.attn.in_proj", prefix);
    Value *qkv = linear(b, n, h, width, 3 * width, rng);
    snprintf(n, sizeof n, "%s.attn", prefix);
    Node *at = b_node(b, OP_ATTENTION, n, 3, (Value *[]){qkv, qkv, qkv});
    int hd = width / heads;
    b_attr_i(at, "num_heads", heads);
    b_attr_i(at, "head_dim", hd);
    b_attr_i(at, "q_offset", 0);
    b_attr_i(at, "k_offset", width);
    b_attr_i(at, "v_offset", 2 * width);
    b_attr_f(at, "scale", (float)(1.0 / sqrt((double)hd)));
    b_attr_i(at, "causal", causal);
    snprintf(n, sizeof n, "%s.attn.out_proj", prefix);
    x = b_op2(b, OP_ADD, prefix, x, linear(b, n, b_finish(b, at), width, width, rng));
    snprintf(n, sizeof n, "%s.ln_2", prefix);
    h = layernorm(b, n, x, width, rng);
    snprintf(n, sizeof n, "%s.mlp.c_fc", prefix);
    h = b_op1(b, OP_QUICK_GELU, prefix, linear(b, n, h, width, 4 * width, rng));
    snprintf(n, sizeof n, "%s.mlp.c_proj", prefix);
    return b_op2(b, OP_ADD, prefix, x, linear(b, n, h, 4 * width, width, rng));
}

Value *clip_add_visual(Builder *b, const ClipConfig *c, Value *image, uint64_t *rng)
{
    int W = c->width, g = c->image / c->patch, tokens = g * g + 1;
    double s = 1.0 / sqrt((double)W);
    Value *conv_w = weight(b, "visual.conv1.weight", 4, (int64_t[]){W, 3, c->patch, c->patch}, 1.0 / sqrt(3.0 * c->patch * c->patch), 0, rng);
    Node *conv = b_node(b, OP_CONV, "visual.conv1", 2, (Value *[]){image, conv_w});
    b_attr_ints(conv, "kernel_shape", 2, (int64_t[]){c->patch, c->patch});
    b_attr_ints(conv, "strides", 2, (int64_t[]){c->patch, c->patch});
    Value *x = b_finish(b, conv);                                                   /* [B, W, g, g] */
    x = b_op2(b, OP_RESHAPE, "visual.flatten", x, b_ints(b, "visual.flat_shape", 3, (int64_t[]){0, W, g * g}));
    Node *tr = b_node(b, OP_TRANSPOSE, "visual.tokens", 1, &x);
    b_attr_ints(tr, "perm", 3, (int64_t[]){0, 2, 1});
    x = b_finish(b, tr);                                                            /* [B, g*g, W] */
    /* class token, expanded to the batch through the image's shape */
    Value *cls = weight(b, "visual.class_embedding", 3, (int64_t[]){1, 1, W}, s, 0, rng);
    Value *shape = b_op1(b, OP_SHAPE, "visual.image_shape", image);
    Node *gb = b_node(b, OP_GATHER, "visual.batch", 2, (Value *[]){shape, b_ints(b, "visual.zero", 1, (int64_t[]){0})});
    b_attr_i(gb, "axis", 0);
    Node *cat = b_node(b, OP_CONCAT, "visual.cls_shape", 2, (Value *[]){b_finish(b, gb), b_ints(b, "visual.one_w", 2, (int64_t[]){1, W})});
    b_attr_i(cat, "axis", 0);
    Value *clsb = b_op2(b, OP_EXPAND, "visual.cls", cls, b_finish(b, cat));
    Node *tok = b_node(b, OP_CONCAT, "visual.with_cls", 2, (Value *[]){clsb, x});
    b_attr_i(tok, "axis", 1);
    x = b_op2(b, OP_ADD, "visual.pos", b_finish(b, tok), weight(b, "visual.positional_embedding", 2, (int64_t[]){tokens, W}, s, 0, rng));
    x = layernorm(b, "visual.ln_pre", x, W, rng);
    for (int l = 0; l < c->layers; l++) {
        char p[64];
        snprintf(p, sizeof p, "visual.transformer.resblocks.%d", l);
        x = block(b, p, x, W, c->heads, 0, rng);
    }
    Node *first = b_node(b, OP_GATHER, "visual.cls_token", 2, (Value *[]){x, b_ints(b, "visual.first", 1, (int64_t[]){0})});
    b_attr_i(first, "axis", 1);
    x = b_op2(b, OP_RESHAPE, "visual.cls_flat", b_finish(b, first), b_ints(b, "visual.cls_shape2", 2, (int64_t[]){0, W}));
    x = layernorm(b, "visual.ln_post", x, W, rng);
    return b_op2(b, OP_MATMUL, "visual.proj_out", x, weight(b, "visual.proj", 2, (int64_t[]){W, c->embed}, s, 0, rng));
}

Value *clip_add_text(Builder *b, const ClipConfig *c, Value *text, uint64_t *rng)
{
    int W = c->text_width, L = c->context;
    Value *emb = weight(b, "text.token_embedding.weight", 2, (int64_t[]){c->vocab, W}, 0.02, 0, rng);
    Node *ge = b_node(b, OP_GATHER, "text.embed", 2, (Value *[]){emb, text});
    b_attr_i(ge, "axis", 0);
    Value *x = b_op2(b, OP_ADD, "text.pos", b_finish(b, ge), weight(b, "text.positional_embedding", 2, (int64_t[]){L, W}, 0.01, 0, rng));
    for (int l = 0; l < c->text_layers; l++) {
        char p[64];
        snprintf(p, sizeof p, "text.transformer.resblocks.%d", l);
        x = block(b, p, x, W, c->text_heads, 1, rng);
    }
    x = layernorm(b, "text.ln_final", x, W, rng);
    /* pool the EOT token: one-hot of the row's largest id, summed over positions */
    Node *mx = b_node(b, OP_REDUCE_MAX, "text.eot_id", 1, &text);
    b_attr_ints(mx, "axes", 1, (int64_t[]){-1});
    b_attr_i(mx, "keepdims", 1);
    Value *onehot = b_op2(b, OP_EQUAL, "text.eot", text, b_finish(b, mx));
    Node *cast = b_node(b, OP_CAST, "text.eot_f", 1, &onehot);
    b_attr_i(cast, "to", dtype_to_onnx(DT_F32));
    Value *mask = b_op2(b, OP_UNSQUEEZE, "text.eot_mask", b_finish(b, cast), b_ints(b, "text.last", 1, (int64_t[]){-1}));
    x = b_reduce_sum(b, "text.pool", b_op2(b, OP_MUL, "text.eot_select", x, mask), 1, 0);
    return b_op2(b, OP_MATMUL, "text.proj_out", x, weight(b, "text.text_projection", 2, (int64_t[]){W, c->embed}, 1.0 / sqrt((double)W), 0, rng));
}

static Graph *tower(const ClipConfig *c, uint64_t seed, int visual, char *err, size_t cap)
{
    Graph *g = graph_new(visual ? "clip_visual" : "clip_text");
    if (!g) { snprintf(err, cap, "out of memory"); return NULL; }
    g->opset = 17;
    Builder b = {g, err, cap, 0};
    int batch = graph_intern_sym(g, "batch");
    Value *in = graph_new_value(g, visual ? "image" : "text");
    if (!in) { graph_free(g); snprintf(err, cap, "out of memory"); return NULL; }
    in->dtype = visual ? DT_F32 : DT_I64;
    in->shape = visual ? (Shape){4, {{1, batch}, dim_const(3), dim_const(c->image), dim_const(c->image)}}
                       : (Shape){2, {{1, batch}, dim_const(c->context)}};
    graph_add_input(g, in);
    uint64_t rng = seed;
    Value *out = visual ? clip_add_visual(&b, c, in, &rng) : clip_add_text(&b, c, in, &rng);
    if (!out || b.failed) { graph_free(g); return NULL; }
    free(out->name);
    out->name = strdup(visual ? "image_features" : "text_features");
    graph_add_output(g, out);
    return g;
}

Graph *clip_visual_graph(const ClipConfig *c, uint64_t seed, char *err, size_t cap) { return tower(c, seed, 1, err, cap); }
Graph *clip_text_graph(const ClipConfig *c, uint64_t seed, char *err, size_t cap) { return tower(c, seed, 0, err, cap); }
