/* test_autodiff.c — every gradient rule against central finite differences.
 *
 * Each case builds a small graph around one op with random shapes and data,
 * takes loss = sum(y * R) for a random R (so every output element matters
 * with its own weight), runs the autodiff pass, and compares the analytic
 * gradient of each parameter with (L(p + e) - L(p - e)) / 2e at sampled
 * elements.  The backward runs on the reference kernels and on the fast ones.
 * A wrong rule (a missing factor, a transposed operand, a dropped broadcast
 * sum) is off by O(1); the tolerances allow only float32 rounding. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "../../ir/ops.h"
#include "../../passes/autodiff.h"
#include "../../passes/passes.h"
#include "../../runtime/cpu/session.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static double urand(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (double)(rng >> 11) * (1.0 / 9007199254740992.0);
}
static int64_t irand(int64_t lo, int64_t hi) { return lo + (int64_t)(urand() * (double)(hi - lo + 1)); }

/* f32 tensor with values of magnitude in [lo, hi] and random sign (sign=0) or positive (sign=1) */
static Tensor *rand_f32(int rank, const int64_t *dims, double lo, double hi, int positive)
{
    Tensor *t = tensor_new(DT_F32, rank, dims);
    for (int64_t i = 0; i < tensor_numel(t); i++) {
        double v = lo + (hi - lo) * urand();
        ((float *)t->data)[i] = (float)(positive || urand() < 0.5 ? v : -v);
    }
    return t;
}

static Graph *new_graph(void)
{
    Graph *g = graph_new("grad");
    g->opset = 17;
    return g;
}

static Value *constant(Graph *g, const char *name, Tensor *t)
{
    char *u = graph_unique_name(g, name);
    Value *v = graph_new_value(g, u);
    free(u);
    value_set_const(v, t);
    return v;
}

static Value *param(Graph *g, const char *name, int rank, const int64_t *dims, double lo, double hi, int positive)
{
    return constant(g, name, rand_f32(rank, dims, lo, hi, positive));
}

static Value *ints(Graph *g, int n, const int64_t *v)
{
    int64_t d[1] = {n};
    Tensor *t = tensor_new(DT_I64, 1, d);
    memcpy(t->data, v, sizeof(int64_t) * (size_t)n);
    return constant(g, "ints", t);
}

static Node *node(Graph *g, int op, int n_in, Value **in, int n_out)
{
    Value *out[8];
    for (int i = 0; i < n_out; i++) {
        char *u = graph_unique_name(g, "y");
        out[i] = graph_new_value(g, u);
        free(u);
    }
    char *u = graph_unique_name(g, op_name(op));
    Node *n = graph_add_node(g, op, u, n_in, in, n_out, out);
    free(u);
    return n;
}

static void set_i(Node *n, const char *k, int64_t v) { node_add_attr(n, k, ATTR_INT)->i = v; }
static void set_f(Node *n, const char *k, float v) { node_add_attr(n, k, ATTR_FLOAT)->f = v; }
static void set_ints(Node *n, const char *k, int c, const int64_t *v)
{
    Attr *a = node_add_attr(n, k, ATTR_INTS);
    a->n = c;
    a->ints = malloc(sizeof(int64_t) * (size_t)c);
    memcpy(a->ints, v, sizeof(int64_t) * (size_t)c);
}

static double run_loss(Session *s, Tensor **outs, char *err)
{
    if (session_run(s, NULL, outs, err, 512)) return NAN;
    double l = tensor_get_f64(outs[0], 0);
    return l;
}

/* loss = sum(y * R); checks d loss / d params by central differences. */
static void fd_check(Graph *g, Value *y, Value **params, int np, const char *what, double eps)
{
    char err[512];
    int64_t dims[IR_MAX_RANK];
    if (infer_graph(g, err, sizeof err)) { CHECK(0, "%s: infer: %s", what, err); graph_free(g); return; }
    for (int i = 0; i < y->shape.rank; i++) dims[i] = y->shape.d[i].n;
    Value *r = constant(g, "R", rand_f32(y->shape.rank, dims, 0.1, 1.0, 0));
    Node *mul = node(g, OP_MUL, 2, (Value *[]){y, r}, 1);
    Node *sum = node(g, OP_REDUCE_SUM, 1, (Value *[]){mul->out[0]}, 1);
    set_i(sum, "keepdims", 0);
    Value *loss = sum->out[0];
    if (infer_graph(g, err, sizeof err)) { CHECK(0, "%s: infer loss: %s", what, err); graph_free(g); return; }
    Value *grads[8];
    if (autodiff(g, loss, params, np, grads, err, sizeof err)) { CHECK(0, "%s: %s", what, err); graph_free(g); return; }
    graph_add_output(g, loss);
    for (int i = 0; i < np; i++) graph_add_output(g, grads[i]);
    char verr[IR_ERR_CAP];
    for (int fast = 0; fast < 2; fast++) {
        ExecOptions o = {.reference_only = !fast, .threads = 1};
        Session *s = session_new(g, &o, err, sizeof err);
        Tensor *outs[9] = {0};
        if (!s || session_run(s, NULL, outs, err, sizeof err)) { CHECK(0, "%s: run: %s", what, err); session_free(s); break; }
        double worst = 0;
        int checked = 0;
        for (int p = 0; p < np; p++) {
            Tensor *w = params[p]->konst, *gt = outs[1 + p];
            int64_t n = tensor_numel(w);
            CHECK(tensor_numel(gt) == n, "%s: gradient of %s has %lld elements, want %lld", what, params[p]->name,
                  (long long)tensor_numel(gt), (long long)n);
            if (tensor_numel(gt) != n) continue;
            /* every element of a small parameter (boundary frames, masked keys and the
             * last head all sit at particular indices); 64 random ones, the first and
             * the last of a larger one */
            int64_t n_check = n <= 512 ? n : 66;
            for (int64_t t = 0; t < n_check; t++) {
                int64_t i = n <= 512 ? t : t == 0 ? 0 : t == 1 ? n - 1 : irand(0, n - 1);
                float *pw = (float *)w->data + i, keep = *pw;
                Tensor *tmp[9] = {0};
                *pw = keep + (float)eps;
                double lp = run_loss(s, tmp, err);
                for (int q = 0; q < 1 + np; q++) { tensor_free(tmp[q]); tmp[q] = NULL; }
                *pw = keep - (float)eps;
                double lm = run_loss(s, tmp, err);
                for (int q = 0; q < 1 + np; q++) tensor_free(tmp[q]);
                *pw = keep;
                double fd = (lp - lm) / (2 * eps), an = tensor_get_f64(gt, i);
                double excess = fabs(fd - an) / (3e-3 + 2e-2 * fmax(fabs(fd), fabs(an)));
                if (excess > worst) worst = excess;
                if (excess > 1)
                    fprintf(stderr, "  %s [%s]: %s[%lld] analytic %.6g, finite difference %.6g\n", what, fast ? "fast" : "ref",
                            params[p]->name, (long long)i, an, fd);
                checked++;
            }
        }
        CHECK(worst <= 1 && checked > 0, "%s (%s kernels): gradient off by %.2fx the tolerance", what, fast ? "fast" : "ref", worst);
        for (int q = 0; q < 1 + np; q++) tensor_free(outs[q]);
        session_free(s);
    }
    (void)verr;
    graph_free(g);
}

static void test_unary(void)
{
    struct { int op; double lo, hi; int positive; } ops[] = {
        {OP_NEG, 0.1, 1, 0}, {OP_SQRT, 0.5, 2, 1}, {OP_RECIPROCAL, 0.5, 2, 0}, {OP_EXP, 0, 1, 0}, {OP_LOG, 0.5, 2, 1},
        {OP_SIGMOID, 0, 2, 0}, {OP_SOFTPLUS, 0, 3, 0}, {OP_TANH, 0, 1.5, 0}, {OP_RELU, 0.05, 1, 0}, {OP_IDENTITY, 0, 1, 0},
        {OP_QUICK_GELU, 0, 3, 0}, {OP_GELU, 0, 3, 0},
    };
    for (size_t k = 0; k < sizeof ops / sizeof *ops; k++) {
        Graph *g = new_graph();
        int64_t d[3] = {irand(1, 3), irand(2, 5), irand(1, 7)};
        Value *x = param(g, "x", 3, d, ops[k].lo, ops[k].hi, ops[k].positive);
        Node *n = node(g, ops[k].op, 1, &x, 1);
        fd_check(g, n->out[0], &x, 1, op_name(ops[k].op), 1e-3);
    }
}

static void test_binary(void)
{
    int ops[] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV};
    int64_t shapes[][2][4] = { /* rank in [0][3], dims; broadcasting both ways */
        {{3, 2, 3, 4}, {3, 2, 3, 4}}, {{3, 2, 3, 4}, {2, 3, 1}}, {{2, 3, 1}, {3, 2, 1, 5}}, {{1, 5}, {3, 4, 1, 1}},
    };
    for (size_t k = 0; k < sizeof ops / sizeof *ops; k++)
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
            Graph *g = new_graph();
            Value *a = param(g, "a", (int)shapes[s][0][0], &shapes[s][0][1], 0.5, 1.5, 0);
            Value *b = param(g, "b", (int)shapes[s][1][0], &shapes[s][1][1], 0.5, 1.5, 0);
            Node *n = node(g, ops[k], 2, (Value *[]){a, b}, 1);
            char what[64];
            snprintf(what, sizeof what, "%s broadcast case %zu", op_name(ops[k]), s);
            fd_check(g, n->out[0], (Value *[]){a, b}, 2, what, 1e-3);
        }
    /* Pow with a constant exponent, Where with a broadcast condition */
    for (int e = 2; e <= 3; e++) {
        Graph *g = new_graph();
        int64_t d[2] = {3, 4};
        Value *x = param(g, "x", 2, d, 0.3, 1.2, 0);
        Tensor *pt = tensor_new(DT_F32, 0, NULL);
        *(float *)pt->data = (float)e;
        Node *n = node(g, OP_POW, 2, (Value *[]){x, constant(g, "p", pt)}, 1);
        fd_check(g, n->out[0], &x, 1, "Pow", 1e-3);
    }
    Graph *g = new_graph();
    int64_t dc[2] = {3, 1}, da[2] = {3, 4}, db[1] = {4};
    Tensor *ct = tensor_new(DT_BOOL, 2, dc);
    for (int i = 0; i < 3; i++) ((uint8_t *)ct->data)[i] = i != 1;
    Value *a = param(g, "a", 2, da, 0, 1, 0), *b = param(g, "b", 1, db, 0, 1, 0);
    Node *n = node(g, OP_WHERE, 3, (Value *[]){constant(g, "cond", ct), a, b}, 1);
    fd_check(g, n->out[0], (Value *[]){a, b}, 2, "Where", 1e-3);
}

static void test_reductions(void)
{
    for (int keep = 0; keep < 2; keep++) {
        Graph *g = new_graph();
        int64_t d[3] = {2, irand(2, 4), 5}, ax[2] = {0, -1};
        Value *x = param(g, "x", 3, d, 0, 1, 0);
        Node *n = node(g, OP_REDUCE_SUM, 2, (Value *[]){x, ints(g, 2, ax)}, 1);
        set_i(n, "keepdims", keep);
        fd_check(g, n->out[0], &x, 1, keep ? "ReduceSum keepdims" : "ReduceSum", 1e-3);
        g = new_graph();
        x = param(g, "x", 3, d, 0, 1, 0);
        n = node(g, OP_REDUCE_MEAN, 1, &x, 1);
        set_ints(n, "axes", 1, (int64_t[]){1});
        set_i(n, "keepdims", keep);
        fd_check(g, n->out[0], &x, 1, "ReduceMean", 1e-3);
    }
    for (int axis = 1; axis <= 2; axis++) {
        Graph *g = new_graph();
        int64_t d[3] = {2, 3, 5};
        Value *x = param(g, "x", 3, d, 0, 2, 0);
        Node *n = node(g, OP_SOFTMAX, 1, &x, 1);
        set_i(n, "axis", axis);
        fd_check(g, n->out[0], &x, 1, "Softmax", 1e-3);
    }
    Graph *g = new_graph();
    int64_t d[3] = {2, 3, 7}, c[1] = {7};
    Value *x = param(g, "x", 3, d, 0, 2, 0), *sc = param(g, "scale", 1, c, 0.5, 1.5, 0), *b = param(g, "bias", 1, c, 0, 1, 0);
    Node *n = node(g, OP_LAYER_NORM, 3, (Value *[]){x, sc, b}, 1);
    set_i(n, "axis", -1);
    set_f(n, "epsilon", 1e-5f);
    fd_check(g, n->out[0], (Value *[]){x, sc, b}, 3, "LayerNormalization", 1e-3);
}

static void test_linear_algebra(void)
{
    struct { int ra; int64_t a[4]; int rb; int64_t b[4]; } mm[] = {
        {3, {2, 3, 4}, 2, {4, 5}}, {3, {2, 3, 4}, 3, {2, 4, 2}}, {4, {2, 2, 3, 4}, 3, {2, 4, 3}}, {3, {2, 3, 4}, 3, {1, 4, 5}},
    };
    for (size_t k = 0; k < sizeof mm / sizeof *mm; k++) {
        Graph *g = new_graph();
        Value *a = param(g, "a", mm[k].ra, mm[k].a, 0, 1, 0), *b = param(g, "b", mm[k].rb, mm[k].b, 0, 1, 0);
        Node *n = node(g, OP_MATMUL, 2, (Value *[]){a, b}, 1);
        char what[64];
        snprintf(what, sizeof what, "MatMul case %zu", k);
        fd_check(g, n->out[0], (Value *[]){a, b}, 2, what, 1e-3);
    }
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            Graph *g = new_graph();
            int64_t M = 3, K = 4, N = 5, da[2] = {ta ? K : M, ta ? M : K}, db[2] = {tb ? N : K, tb ? K : N}, dc[1] = {N};
            Value *a = param(g, "a", 2, da, 0, 1, 0), *b = param(g, "b", 2, db, 0, 1, 0), *c = param(g, "c", 1, dc, 0, 1, 0);
            Node *n = node(g, OP_GEMM, 3, (Value *[]){a, b, c}, 1);
            set_i(n, "transA", ta);
            set_i(n, "transB", tb);
            set_f(n, "alpha", 0.7f);
            set_f(n, "beta", 1.3f);
            char what[64];
            snprintf(what, sizeof what, "Gemm transA=%d transB=%d", ta, tb);
            fd_check(g, n->out[0], (Value *[]){a, b, c}, 3, what, 1e-3);
        }
    Graph *g = new_graph();
    int64_t dx[3] = {2, 3, 4}, dw[2] = {4, 6}, dbias[1] = {6};
    Value *x = param(g, "x", 3, dx, 0, 1, 0), *w = param(g, "w", 2, dw, 0, 1, 0), *b = param(g, "b", 1, dbias, 0, 1, 0);
    Node *n = node(g, OP_LINEAR, 3, (Value *[]){x, w, b}, 1);
    fd_check(g, n->out[0], (Value *[]){x, w, b}, 3, "Linear", 1e-3);
    /* Conv: a ViT patch embedding (stride = kernel, no bias) and a padded conv with bias */
    for (int k = 0; k < 2; k++) {
        g = new_graph();
        int64_t xd[4] = {2, 3, 8, 8}, wd[4] = {5, 3, k ? 3 : 4, k ? 3 : 4}, bd[1] = {5};
        Value *xi = param(g, "x", 4, xd, 0, 1, 0), *wi = param(g, "w", 4, wd, 0, 1, 0), *bi = param(g, "b", 1, bd, 0, 1, 0);
        Node *cn = node(g, OP_CONV, k ? 3 : 2, (Value *[]){xi, wi, bi}, 1);
        set_ints(cn, "kernel_shape", 2, &wd[2]);
        set_ints(cn, "strides", 2, k ? (int64_t[]){2, 1} : (int64_t[]){4, 4});
        if (k) set_ints(cn, "pads", 4, (int64_t[]){1, 0, 1, 2});
        fd_check(g, cn->out[0], (Value *[]){xi, wi, bi}, k ? 3 : 2, k ? "Conv padded" : "Conv patch embedding", 1e-3);
    }
}

static void test_movement(void)
{
    int64_t d[3] = {2, 3, 4};
    Graph *g = new_graph();
    Value *x = param(g, "x", 3, d, 0, 1, 0);
    Node *n = node(g, OP_RESHAPE, 2, (Value *[]){x, ints(g, 2, (int64_t[]){4, 6})}, 1);
    fd_check(g, n->out[0], &x, 1, "Reshape", 1e-3);
    g = new_graph();
    x = param(g, "x", 3, d, 0, 1, 0);
    n = node(g, OP_TRANSPOSE, 1, &x, 1);
    set_ints(n, "perm", 3, (int64_t[]){1, 2, 0});
    fd_check(g, n->out[0], &x, 1, "Transpose", 1e-3);
    g = new_graph();
    x = param(g, "x", 3, d, 0, 1, 0);
    n = node(g, OP_SLICE, 5, (Value *[]){x, ints(g, 2, (int64_t[]){1, 3}), ints(g, 2, (int64_t[]){3, -5}), ints(g, 2, (int64_t[]){1, 2}),
                                         ints(g, 2, (int64_t[]){1, -2})}, 1);
    fd_check(g, n->out[0], &x, 1, "Slice with steps", 1e-3);
    for (int vec = 0; vec < 2; vec++) {
        g = new_graph();
        x = param(g, "x", 3, d, 0, 1, 0);
        Tensor *it = vec ? tensor_new(DT_I64, 1, (int64_t[]){3}) : tensor_new(DT_I64, 0, NULL);
        int64_t iv[3] = {2, -1, 2};
        memcpy(it->data, iv, (size_t)tensor_numel(it) * 8);
        n = node(g, OP_GATHER, 2, (Value *[]){x, constant(g, "idx", it)}, 1);
        set_i(n, "axis", 2);
        fd_check(g, n->out[0], &x, 1, vec ? "Gather repeated indices" : "Gather scalar index", 1e-3);
    }
    g = new_graph();
    int64_t d1[3] = {2, 1, 4}, d2[3] = {2, 3, 4};
    Value *a = param(g, "a", 3, d1, 0, 1, 0), *b = param(g, "b", 3, d2, 0, 1, 0), *c = param(g, "c", 3, d1, 0, 1, 0);
    n = node(g, OP_CONCAT, 3, (Value *[]){a, b, c}, 1);
    set_i(n, "axis", 1);
    fd_check(g, n->out[0], (Value *[]){a, b, c}, 3, "Concat", 1e-3);
    g = new_graph();
    a = param(g, "a", 3, d1, 0, 1, 0);
    n = node(g, OP_EXPAND, 2, (Value *[]){a, ints(g, 4, (int64_t[]){3, 2, 5, 4})}, 1);
    fd_check(g, n->out[0], &a, 1, "Expand", 1e-3);
    g = new_graph();
    a = param(g, "a", 3, d1, 0, 1, 0);
    n = node(g, OP_SQUEEZE, 2, (Value *[]){a, ints(g, 1, (int64_t[]){1})}, 1);
    Node *u = node(g, OP_UNSQUEEZE, 2, (Value *[]){n->out[0], ints(g, 1, (int64_t[]){0})}, 1);
    Node *f = node(g, OP_FLATTEN, 1, (Value *[]){u->out[0]}, 1);
    set_i(f, "axis", 2);
    fd_check(g, f->out[0], &a, 1, "Squeeze/Unsqueeze/Flatten", 1e-3);
}

static void test_attention(void)
{
    struct { int B, N, heads, d, packed, causal, mask, seq_first, frames, window, boundary; } cases[] = {
        {2, 5, 2, 3, 0, 0, 0, 0, 0, 0, 0},
        {3, 4, 2, 4, 1, 0, 0, 1, 0, 0, 0},   /* OpenAI: packed qkv, [N, B, C] */
        {2, 5, 2, 3, 0, 1, 0, 0, 0, 0, 0},   /* causal text */
        {2, 4, 2, 3, 0, 0, 1, 0, 0, 0, 0},   /* additive mask */
        {8, 3, 2, 3, 1, 0, 0, 1, 4, 1, 0},   /* VCLIP, T=4, window 1, zero-filled boundary */
        {8, 3, 2, 3, 1, 0, 0, 1, 4, 1, 1},   /* masked boundary */
        {6, 3, 1, 4, 0, 0, 0, 0, 3, 2, 0},   /* window reaching past both ends */
        {10, 3, 2, 2, 1, 0, 0, 1, 5, 2, 0},  /* window 2 over 5 frames, zero-filled: inner and boundary frames */
        {10, 3, 2, 2, 1, 0, 0, 1, 5, 2, 1},  /* the same, masked */
        {8, 3, 2, 2, 0, 0, 0, 0, 4, 3, 1},   /* window 3 over 4 frames, masked: every frame at a boundary */
        {8, 3, 2, 2, 0, 0, 0, 0, 4, 3, 0},   /* window 3, zero-filled */
        {6, 2, 2, 2, 1, 0, 1, 1, 3, 1, 1},   /* masked boundary with an additive mask too */
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        int B = cases[k].B, N = cases[k].N, H = cases[k].heads, dh = cases[k].d, C = H * dh;
        int64_t ch = cases[k].packed ? 3 * C + 1 : C + 2;
        int64_t dims[3] = {cases[k].seq_first ? N : B, cases[k].seq_first ? B : N, ch}, md[2] = {N, N};
        Graph *g = new_graph();
        Value *q = param(g, "q", 3, dims, 0, 1, 0);
        Value *kk = cases[k].packed ? q : param(g, "k", 3, dims, 0, 1, 0), *v = cases[k].packed ? q : param(g, "v", 3, dims, 0, 1, 0);
        Value *in[4] = {q, kk, v, cases[k].mask ? constant(g, "mask", rand_f32(2, md, 0, 1, 0)) : NULL};
        Node *n = node(g, OP_ATTENTION, cases[k].mask ? 4 : 3, in, 1);
        int packed = cases[k].packed;
        set_i(n, "num_heads", H); set_i(n, "head_dim", dh);
        set_i(n, "q_offset", packed ? 1 : 2); set_i(n, "k_offset", packed ? 1 + C : 0); set_i(n, "v_offset", packed ? 1 + 2 * C : 1);
        set_f(n, "scale", 0.6f); set_i(n, "causal", cases[k].causal); set_i(n, "seq_first", cases[k].seq_first);
        set_i(n, "frames", cases[k].frames); set_i(n, "window", cases[k].window); set_i(n, "boundary", cases[k].boundary);
        char what[48];
        snprintf(what, sizeof what, "Attention case %zu", k);
        fd_check(g, n->out[0], packed ? (Value *[]){q} : (Value *[]){q, kk, v}, packed ? 1 : 3, what, 1e-3);
    }
}

static void test_loss_and_interpolation(void)
{
    for (int red = 0; red < 2; red++) {
        Graph *g = new_graph();
        int64_t d[2] = {4, 6}, ld[1] = {4};
        Value *s = param(g, "scores", 2, d, 0, 2, 0);
        Tensor *lt = tensor_new(DT_I64, 1, ld);
        for (int i = 0; i < 4; i++) ((int64_t *)lt->data)[i] = (i * 5) % 6;
        Node *n = node(g, OP_SOFTMAX_CE, 2, (Value *[]){s, constant(g, "labels", lt)}, 1);
        Attr *a = node_add_attr(n, "reduction", ATTR_STRING);
        a->s = strdup(red ? "sum" : "mean");
        fd_check(g, n->out[0], &s, 1, red ? "SoftmaxCrossEntropyLoss sum" : "SoftmaxCrossEntropyLoss mean", 1e-3);
    }
    /* exact chain rule: d/dw of f(alpha w0 + (1 - alpha) w) by finite differences */
    Graph *g = new_graph();
    int64_t d[2] = {3, 4};
    Value *w0 = constant(g, "w0", rand_f32(2, d, 0, 1, 0)), *w = param(g, "w", 2, d, 0, 1, 0);
    Tensor *at = tensor_new(DT_F32, 0, NULL);
    *(float *)at->data = 0.35f;
    Node *n = node(g, OP_INTERPOLATE_WEIGHTS, 3, (Value *[]){w0, w, constant(g, "alpha", at)}, 1);
    set_i(n, "exact_gradient", 1);
    Node *sq = node(g, OP_MUL, 2, (Value *[]){n->out[0], n->out[0]}, 1);
    fd_check(g, sq->out[0], &w, 1, "InterpolateWeights exact", 1e-3);
}

/* The released-code convention: the gradient at the interpolated weights is
 * added without the (1 - alpha) factor, i.e. exactly 1/(1 - alpha) times the
 * chain rule's. */
static void test_interpolation_conventions(void)
{
    float alpha = 0.35f;
    double g_rule[2] = {0};
    for (int exact = 0; exact < 2; exact++) {
        Graph *g = new_graph();
        int64_t d[1] = {1};
        Tensor *w0t = tensor_new(DT_F32, 1, d), *wt = tensor_new(DT_F32, 1, d), *at = tensor_new(DT_F32, 0, NULL);
        *(float *)w0t->data = 0.8f;
        *(float *)wt->data = -0.4f;
        *(float *)at->data = alpha;
        Value *w = constant(g, "w", wt);
        Node *n = node(g, OP_INTERPOLATE_WEIGHTS, 3, (Value *[]){constant(g, "w0", w0t), w, constant(g, "alpha", at)}, 1);
        set_i(n, "exact_gradient", exact);
        Node *sq = node(g, OP_MUL, 2, (Value *[]){n->out[0], n->out[0]}, 1);
        Node *sum = node(g, OP_REDUCE_SUM, 1, (Value *[]){sq->out[0]}, 1);
        set_i(sum, "keepdims", 0);
        char err[512];
        Value *gr;
        CHECK(infer_graph(g, err, sizeof err) == 0, "%s", err);
        CHECK(autodiff(g, sum->out[0], &w, 1, &gr, err, sizeof err) == 0, "%s", err);
        graph_add_output(g, gr);
        Session *s = session_new(g, &(ExecOptions){0}, err, sizeof err);
        Tensor *out = NULL;
        CHECK(s && session_run(s, NULL, &out, err, sizeof err) == 0, "%s", err);
        if (out) g_rule[exact] = tensor_get_f64(out, 0);
        tensor_free(out);
        session_free(s);
        graph_free(g);
    }
    double wt = alpha * 0.8 + (1 - alpha) * -0.4; /* d(w~^2)/dw~ = 2 w~ */
    CHECK(fabs(g_rule[0] - 2 * wt) < 1e-6, "released convention: %g, want %g", g_rule[0], 2 * wt);
    CHECK(fabs(g_rule[1] - 2 * wt * (1 - alpha)) < 1e-6, "exact convention: %g, want %g", g_rule[1], 2 * wt * (1 - alpha));
}

/* A value with several consumers sums their gradients; an unused parameter gets zeros. */
static void test_accumulation(void)
{
    Graph *g = new_graph();
    int64_t d[2] = {3, 4};
    Value *x = param(g, "x", 2, d, 0.5, 1, 0), *unused = param(g, "unused", 2, d, 0, 1, 0);
    Node *e = node(g, OP_EXP, 1, &x, 1);
    Node *m = node(g, OP_MUL, 2, (Value *[]){e->out[0], x}, 1);
    Node *a = node(g, OP_ADD, 2, (Value *[]){m->out[0], x}, 1);
    fd_check(g, a->out[0], (Value *[]){x, unused}, 2, "several consumers", 1e-3);
    /* a rule-less op on the path is a clear error naming the node */
    g = new_graph();
    x = param(g, "x", 2, d, 0.5, 1, 0);
    Node *c = node(g, OP_CUMSUM, 2, (Value *[]){x, ints(g, 1, (int64_t[]){0})}, 1);
    Node *s = node(g, OP_REDUCE_SUM, 1, (Value *[]){c->out[0]}, 1);
    set_i(s, "keepdims", 0);
    char err[512];
    Value *gr;
    CHECK(infer_graph(g, err, sizeof err) == 0, "%s", err);
    int rc = autodiff(g, s->out[0], &x, 1, &gr, err, sizeof err);
    CHECK(rc < 0 && strstr(err, "CumSum") && strstr(err, "no gradient rule"), "want a clear error, got: %s", rc ? err : "success");
    graph_free(g);
}

int main(void)
{
    test_unary();
    test_binary();
    test_reductions();
    test_linear_algebra();
    test_movement();
    test_attention();
    test_loss_and_interpolation();
    test_interpolation_conventions();
    test_accumulation();
    return TEST_SUMMARY();
}
