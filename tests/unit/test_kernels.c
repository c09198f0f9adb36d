/* test_kernels.c — every fast CPU kernel against its reference kernel (the
 * oracle) on odd sizes, broadcasting and attribute variants; plus views.
 * test_kernels_amx.c builds it again around gemm.c with AMX's tile
 * instructions on a host stand-in, and runs its GEMM checks alone. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "compare.h"
#include "../../ir/ops.h"
#include "../../runtime/cpu/attention.h"
#include "../../runtime/cpu/gemm.h"
#include "../../runtime/cpu/session.h"
#if defined(__x86_64__)
#include "../../runtime/cpu/avx512_math.h"
#endif
#ifdef VCLIP_AMX_EMULATED
#define AMX_ON_STAND_IN 1
#else
#define AMX_ON_STAND_IN 0
#endif

static uint64_t rng = 88172645463325252ull;
static float frand(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static Tensor *rand_tensor(int rank, const int64_t *dims)
{
    Tensor *t = tensor_new(DT_F32, rank, dims);
    for (int64_t i = 0; i < tensor_numel(t); i++) ((float *)t->data)[i] = frand();
    return t;
}

/* A one-node graph whose inputs are the given tensors (all f32). */
static Graph *one_node(int op, int n_in, Tensor **ins)
{
    Graph *g = graph_new("t");
    g->opset = 17;
    Value *iv[8], *ov[1];
    for (int i = 0; i < n_in; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "x%d", i);
        iv[i] = graph_new_value(g, nm);
        if (ins[i]) value_set_const(iv[i], tensor_copy(ins[i]));
        else iv[i] = NULL;
    }
    ov[0] = graph_new_value(g, "y");
    graph_add_node(g, op, "n", n_in, iv, 1, ov);
    graph_add_output(g, ov[0]);
    return g;
}

/* Worst element against |fast - ref| <= abs_tol + rel_tol * |ref|; returns the
 * worst ratio (<= 1 passes). */
static double elementwise_excess(const Tensor *a, const Tensor *b, double rel_tol, double abs_tol)
{
    double worst = 0;
    for (int64_t i = 0; i < tensor_numel(a); i++) {
        double x = tensor_get_f64(a, i), y = tensor_get_f64(b, i);
        if (isnan(x) || isnan(y)) { if (isnan(x) != isnan(y)) return INFINITY; continue; }
        worst = fmax(worst, fabs(x - y) / (abs_tol + rel_tol * fabs(y)));
    }
    return worst;
}

/* Output buffers full of NaNs, as a reused arena would hand out stale
 * memory: a kernel that reads its output before writing all of it fails. */
typedef struct { void *blocks[16]; int n; } StaleArena;

static void *stale_alloc(void *ctx, const Value *v, size_t bytes)
{
    (void)v;
    StaleArena *a = ctx;
    float *p = a->n < 16 ? malloc(bytes + sizeof(float)) : NULL;
    if (!p) return NULL;
    for (size_t i = 0; i <= bytes / sizeof(float); i++) p[i] = NAN;
    return a->blocks[a->n++] = p;
}

/* Runs node 0 of g with fast kernels (into stale buffers) and reference
 * kernels; compares relative to the output's scale, and element by element
 * when rel_tol > 0. */
static void compare_fast_ref_tol(Graph *g, const char *what, double rel_tol, double abs_tol);
static void compare_fast_ref(Graph *g, const char *what) { compare_fast_ref_tol(g, what, 0, 0); }

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* For bf16 kernels that round a value they computed themselves (attention's
 * probabilities): the fast kernel's f32 value and the reference's double one
 * differ by an ulp or so, and where that straddles a bf16 rounding boundary
 * the two round apart, by one bf16 ulp, in every element it weights.  So:
 * the largest difference within max_rel (of the output's largest magnitude:
 * bounds those flips), and the median one within median_rel (most elements
 * agree to f32 sums; skipping a rounding moves nearly all of them). */
static void compare_bf16_rounding(const Tensor *fast, const Tensor *ref, const char *what, double max_rel, double median_rel)
{
    int64_t n = tensor_numel(ref);
    double *diff = malloc(sizeof(double) * (size_t)(n ? n : 1)), scale = 1e-6;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(tensor_get_f64(ref, i)));
    for (int64_t i = 0; i < n; i++) {
        double x = tensor_get_f64(fast, i), y = tensor_get_f64(ref, i);
        diff[i] = isnan(x) || isnan(y) ? (isnan(x) == isnan(y) ? 0 : INFINITY) : fabs(x - y) / scale;
    }
    qsort(diff, (size_t)n, sizeof *diff, cmp_double);
    CHECK(n > 0 && diff[n - 1] < max_rel, "%s: largest difference %g of the largest magnitude", what, n ? diff[n - 1] : 0.0);
    CHECK(n > 0 && diff[n / 2] < median_rel, "%s: median difference %g of the largest magnitude", what, n ? diff[n / 2] : 0.0);
    free(diff);
}

/* The node of g on the fast kernels (outputs in stale memory) and on the
 * reference ones: 0 when both ran and their outputs have one shape. */
static int run_fast_and_ref(Graph *g, const char *what, Tensor **fast, Tensor **ref, StaleArena *stale)
{
    char err[512];
    char msg[IR_ERR_CAP];
    if (infer_graph(g, msg, sizeof msg)) { CHECK(0, "%s: infer: %s", what, msg); return -1; }
    Node *n = g->nodes[0];
    const Tensor *ins[16] = {0};
    for (int i = 0; i < n->n_in; i++) ins[i] = n->in[i] ? n->in[i]->konst : NULL;
    ExecOptions of = {.alloc = stale_alloc, .alloc_ctx = stale}, orf = {.reference_only = 1};
    int rf = exec_node(g, n, ins, fast, &of, err, sizeof err);
    CHECK(rf == 0, "%s: fast: %s", what, err);
    int rr = exec_node(g, n, ins, ref, &orf, err, sizeof err);
    CHECK(rr == 0, "%s: ref: %s", what, err);
    if (rf || rr) return -1;
    int same = fast[0]->rank == ref[0]->rank && !memcmp(fast[0]->dims, ref[0]->dims, sizeof(int64_t) * (size_t)ref[0]->rank);
    CHECK(same, "%s: shapes differ", what);
    return same ? 0 : -1;
}

static void compare_fast_ref_tol(Graph *g, const char *what, double rel_tol, double abs_tol)
{
    Tensor *fast[8] = {0}, *ref[8] = {0};
    StaleArena stale = {0};
    if (!run_fast_and_ref(g, what, fast, ref, &stale)) {
        double d = rel_diff(fast[0], ref[0]);
        CHECK(d < 1e-5, "%s: fast vs ref rel diff %g", what, d);
        if (rel_tol > 0) {
            double e = elementwise_excess(fast[0], ref[0], rel_tol, abs_tol);
            CHECK(e <= 1, "%s: an element is off by %.2fx the tolerance", what, e);
        }
    }
    tensor_free(fast[0]);
    tensor_free(ref[0]);
    for (int i = 0; i < stale.n; i++) free(stale.blocks[i]);
}

/* Node 0 of g (inferred again) on the fast kernels (reference = 0, output in
 * stale memory) or the reference ones: its output 0, or NULL */
static Tensor *run_node0(Graph *g, int reference, const char *what)
{
    char err[512], msg[IR_ERR_CAP];
    if (infer_graph(g, msg, sizeof msg)) { CHECK(0, "%s: infer: %s", what, msg); return NULL; }
    Node *n = g->nodes[0];
    const Tensor *ins[16] = {0};
    for (int i = 0; i < n->n_in; i++) ins[i] = n->in[i] ? n->in[i]->konst : NULL;
    StaleArena stale = {0};
    ExecOptions o = {.reference_only = reference, .alloc = reference ? NULL : stale_alloc, .alloc_ctx = &stale};
    Tensor *out[8] = {0};
    int rc = exec_node(g, n, ins, out, &o, err, sizeof err);
    CHECK(rc == 0, "%s: %s", what, err);
    Tensor *y = rc ? NULL : tensor_copy(out[0]);
    tensor_free(out[0]);
    for (int i = 0; i < stale.n; i++) free(stale.blocks[i]);
    return y;
}

/* bf16_output = 1 (passes/bf16_activations.c) on node 0 of g: on the fast
 * kernels and on the reference ones, its output is bf16 and, bit for bit,
 * the same kernels' f32 output rounded as their bf16 Linear would round it
 * (fast: nearest even with denormals flushed, as VCVTNEPS2BF16; reference:
 * nearest even).  Leaves the attribute at 0. */
static void check_bf16_output(Graph *g, const char *what)
{
    Attr *a = node_add_attr(g->nodes[0], "bf16_output", ATTR_INT);
    for (int ref = 0; ref < 2; ref++) {
        a->i = 0;
        Tensor *f = run_node0(g, ref, what);
        a->i = 1;
        Tensor *h = run_node0(g, ref, what);
        int64_t n = f ? tensor_numel(f) : 0, off = 0;
        CHECK(f && h && f->dtype == DT_F32 && h->dtype == DT_BF16 && tensor_numel(h) == n, "%s: bf16_output: dtype %s", what,
              h ? dtype_name(h->dtype) : "-");
        if (f && h && h->dtype == DT_BF16 && tensor_numel(h) == n)
            for (int64_t i = 0; i < n; i++) {
                float x = ((const float *)f->data)[i];
                off += ((const uint16_t *)h->data)[i] != (ref ? float_to_bf16(x) : float_to_bf16_flushed(x));
            }
        CHECK(off == 0, "%s (%s kernels): bf16_output differs from the rounded f32 output in %lld of %lld", what,
              ref ? "reference" : "fast", (long long)off, (long long)n);
        tensor_free(f);
        tensor_free(h);
    }
    a->i = 0;
}

/* Inputs 0 .. n-1 of node 0 of g turned to bf16 (as passes/bf16_activations.c
 * stores them for a kernel that rounds them anyway): on the fast kernels and
 * on the reference ones the output is bit-identical to the f32 inputs' (the
 * random inputs hold no denormals, which the fast rounding flushes).
 * Leaves those inputs in bf16. */
static void check_bf16_inputs(Graph *g, int n, const char *what)
{
    Tensor *before[2];
    for (int ref = 0; ref < 2; ref++) before[ref] = run_node0(g, ref, what);
    for (int i = 0; i < n; i++) {
        const Tensor *f = g->nodes[0]->in[i]->konst;
        Tensor *h = tensor_new(DT_BF16, f->rank, f->dims);
        for (int64_t e = 0; e < tensor_numel(f); e++) ((uint16_t *)h->data)[e] = float_to_bf16(((const float *)f->data)[e]);
        value_set_const(g->nodes[0]->in[i], h);
    }
    for (int ref = 0; ref < 2; ref++) {
        Tensor *after = run_node0(g, ref, what);
        CHECK(before[ref] && after && after->nbytes == before[ref]->nbytes && !memcmp(after->data, before[ref]->data, after->nbytes),
              "%s (%s kernels): bf16 inputs change the output", what, ref ? "reference" : "fast");
        tensor_free(before[ref]);
        tensor_free(after);
    }
}

static void compare_fast_ref_bf16(Graph *g, const char *what, double max_rel, double median_rel)
{
    Tensor *fast[8] = {0}, *ref[8] = {0};
    StaleArena stale = {0};
    if (!run_fast_and_ref(g, what, fast, ref, &stale)) compare_bf16_rounding(fast[0], ref[0], what, max_rel, median_rel);
    tensor_free(fast[0]);
    tensor_free(ref[0]);
    for (int i = 0; i < stale.n; i++) free(stale.blocks[i]);
}

static void test_matmul(void)
{
    struct { int ra; int64_t a[4]; int rb; int64_t b[4]; } cases[] = {
        {2, {5, 7}, 2, {7, 3}},
        {4, {2, 3, 5, 7}, 2, {7, 4}},          /* weights: batch folded into M */
        {4, {2, 1, 5, 7}, 3, {3, 7, 4}},       /* broadcast batch dims */
        {3, {3, 5, 7}, 3, {1, 7, 4}},
        {1, {7}, 2, {7, 3}},                   /* vector x matrix */
        {2, {5, 7}, 1, {7}},                   /* matrix x vector */
        {3, {2, 1, 13}, 3, {2, 13, 1}},
        {2, {17, 64}, 2, {64, 33}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        Tensor *ins[2] = {rand_tensor(cases[c].ra, cases[c].a), rand_tensor(cases[c].rb, cases[c].b)};
        Graph *g = one_node(OP_MATMUL, 2, ins);
        char what[64];
        snprintf(what, sizeof what, "matmul case %zu", c);
        compare_fast_ref(g, what);
        graph_free(g);
        tensor_free(ins[0]);
        tensor_free(ins[1]);
    }
}

/* Gemm with every transpose and C broadcast, alpha and beta 1 (a row of C
 * and a whole C then go into the GEMM's epilogue) or not, in f32 and marked bf16 (both
 * operands rounded; ir/ops.h), at a small size, a backward pass's size (800
 * deep: 768 and a thin 32, joined into one depth block) and 1601 deep (two
 * joined blocks of 802 and 799, an odd last k). */
static void test_gemm(void)
{
    for (int unit = 0; unit < 2; unit++)
    for (int bf16 = 0; bf16 < 2; bf16++)
    for (int size = 0; size < 3; size++)
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int cshape = 0; cshape < 4; cshape++) {
                int64_t M = size ? 40 : 5, N = size ? 70 : 9, K = size == 2 ? 1601 : size ? 800 : 11;
                int64_t ad[2] = {ta ? K : M, ta ? M : K}, bd[2] = {tb ? N : K, tb ? K : N};
                int64_t cd[4][2] = {{M, N}, {1, N}, {M, 1}, {1, 1}};
                Tensor *ins[3] = {rand_tensor(2, ad), rand_tensor(2, bd), rand_tensor(2, cd[cshape])};
                Graph *g = one_node(OP_GEMM, 3, ins);
                Node *n = g->nodes[0];
                node_add_attr(n, "transA", ATTR_INT)->i = ta;
                node_add_attr(n, "transB", ATTR_INT)->i = tb;
                node_add_attr(n, "alpha", ATTR_FLOAT)->f = unit ? 1.0f : 0.75f;
                node_add_attr(n, "beta", ATTR_FLOAT)->f = unit ? 1.0f : 1.5f;
                if (bf16) node_add_attr(n, "bf16", ATTR_INT)->i = 1;
                char what[128];
                snprintf(what, sizeof what, "gemm %lldx%lldx%lld tA=%d tB=%d C%d%s%s", (long long)M, (long long)K, (long long)N,
                         ta, tb, cshape, bf16 ? " bf16" : "", unit ? " alpha=beta=1" : "");
                /* f32 sums of K products of rounded operands: the absolute error grows with K */
                compare_fast_ref_tol(g, what, 2e-5, 2e-6 + 2e-7 * (double)K);
                graph_free(g);
                for (int i = 0; i < 3; i++) tensor_free(ins[i]);
            }
}

static void test_conv(void)
{
    struct { int64_t x[4], w[4]; int64_t stride, pad, dil, group; int bias; } cases[] = {
        {{2, 3, 32, 32}, {16, 3, 8, 8}, 8, 0, 1, 1, 0},   /* ViT patch embedding */
        {{1, 3, 13, 11}, {5, 3, 3, 3}, 1, 1, 1, 1, 1},
        {{2, 4, 9, 10}, {6, 2, 3, 2}, 2, 1, 1, 2, 1},      /* groups */
        {{1, 2, 12, 12}, {3, 2, 3, 3}, 1, 2, 2, 1, 0},     /* dilation */
        {{3, 3, 23, 19}, {37, 3, 5, 5}, 5, 0, 1, 1, 1},    /* patches, leftover pixels, odd sizes */
    };
    /* bf16 = 1 (--precision bf16/auto): the patch embedding on the bf16 GEMM, the rest on ref_conv, both rounding operands */
    const size_t nc = sizeof cases / sizeof *cases;
    for (size_t c = 0; c < 2 * nc; c++) {
        int bf16 = c >= nc;
        int64_t bd[1] = {cases[c % nc].w[0]};
        Tensor *ins[3] = {rand_tensor(4, cases[c % nc].x), rand_tensor(4, cases[c % nc].w), cases[c % nc].bias ? rand_tensor(1, bd) : NULL};
        Graph *g = one_node(OP_CONV, cases[c % nc].bias ? 3 : 2, ins);
        Node *n = g->nodes[0];
        if (bf16) node_add_attr(n, "bf16", ATTR_INT)->i = 1;
        Attr *a = node_add_attr(n, "strides", ATTR_INTS);
        a->n = 2; a->ints = malloc(2 * sizeof(int64_t)); a->ints[0] = a->ints[1] = cases[c % nc].stride;
        a = node_add_attr(n, "pads", ATTR_INTS);
        a->n = 4; a->ints = malloc(4 * sizeof(int64_t)); for (int i = 0; i < 4; i++) a->ints[i] = cases[c % nc].pad;
        a = node_add_attr(n, "dilations", ATTR_INTS);
        a->n = 2; a->ints = malloc(2 * sizeof(int64_t)); a->ints[0] = a->ints[1] = cases[c % nc].dil;
        node_add_attr(n, "group", ATTR_INT)->i = cases[c % nc].group;
        char what[64];
        snprintf(what, sizeof what, "conv case %zu%s", c % nc, bf16 ? " (bf16)" : "");
        compare_fast_ref(g, what);
        graph_free(g);
        for (int i = 0; i < 3; i++) tensor_free(ins[i]);
    }
}

static void test_exp_family(void)
{
    int ops[3] = {OP_SIGMOID, OP_EXP, OP_ERF};
    const char *names[3] = {"sigmoid", "exp", "erf"};
    int64_t d[2] = {37, 129};
    for (int o = 0; o < 3; o++) {
        Tensor *x = rand_tensor(2, d);
        float *v = x->data;
        for (int64_t i = 0; i < 37 * 129; i++) v[i] *= (o == 1) ? 80.0f : 12.0f; /* cover the clamp ranges */
        Graph *g = one_node(ops[o], 1, &x);
        /* exp/sigmoid: a few ulp everywhere; erf: 7e-7 absolute (A&S 7.1.26's
         * 1.5e-7 plus the float evaluation's rounding: the worst over [-12, 12]
         * in steps of 1e-6 is 6.4e-7, near |x| = 0.038; 5.2e-7 with FMAs) */
        compare_fast_ref_tol(g, names[o], 1e-6, o == 2 ? 7e-7 : 1e-37);
        graph_free(g);
        tensor_free(x);
    }
}

static void test_fused_ops(void)
{
    int64_t d[3] = {3, 7, 33};
    int ops[2] = {OP_QUICK_GELU, OP_GELU};
    for (int o = 0; o < 2; o++) {
        Tensor *x = rand_tensor(3, d);
        for (int64_t i = 0; i < tensor_numel(x); i++) ((float *)x->data)[i] *= 9.0f;
        Graph *g = one_node(ops[o], 1, &x);
        compare_fast_ref_tol(g, o ? "gelu" : "quick_gelu", 2e-6, 3e-7);
        graph_free(g);
        tensor_free(x);
    }
    int64_t xd[3] = {2, 5, 13}, wd[2] = {13, 11}, bd[1] = {11};
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        Tensor *ins[3] = {rand_tensor(3, xd), rand_tensor(2, wd), rand_tensor(1, bd)};
        Graph *g = one_node(OP_LINEAR, with_bias ? 3 : 2, ins);
        compare_fast_ref(g, with_bias ? "linear+bias" : "linear");
        graph_free(g);
        for (int i = 0; i < 3; i++) tensor_free(ins[i]);
    }
}

/* W [K, N] in Linear's packed layout (ir/ops.h), written out here by the
 * definition rather than by the runtime's packer. */
static Tensor *packed_by_definition(const Tensor *w)
{
    int64_t K = w->dims[0], N = w->dims[1], d[3] = {(N + LINEAR_PANEL - 1) / LINEAR_PANEL, K, LINEAR_PANEL};
    Tensor *p = tensor_new(DT_F32, 3, d);
    for (int64_t i = 0; i < tensor_numel(p); i++) ((float *)p->data)[i] = 0.0f;
    for (int64_t k = 0; k < K; k++)
        for (int64_t n = 0; n < N; n++)
            ((float *)p->data)[((n / LINEAR_PANEL) * K + k) * LINEAR_PANEL + n % LINEAR_PANEL] = ((float *)w->data)[k * N + n];
    return p;
}

/* W [K, N] in Linear's bf16 layout: k pairs interleaved, rounded to nearest even. */
static Tensor *bf16_packed_by_definition(const Tensor *w)
{
    int64_t K = w->dims[0], N = w->dims[1], K2 = (K + 1) / 2, d[4] = {(N + LINEAR_PANEL - 1) / LINEAR_PANEL, K2, LINEAR_PANEL, 2};
    Tensor *p = tensor_new(DT_BF16, 4, d);
    uint16_t *v = p->data;
    for (int64_t i = 0; i < tensor_numel(p); i++) v[i] = 0;
    for (int64_t k = 0; k < K; k++)
        for (int64_t n = 0; n < N; n++)
            v[(((n / LINEAR_PANEL) * K2 + k / 2) * LINEAR_PANEL + n % LINEAR_PANEL) * 2 + k % 2] = float_to_bf16(((float *)w->data)[k * N + n]);
    return p;
}

/* Linear's GEMM with its epilogue: odd sizes around the micro-tile (12 x 32),
 * the depth block (768; 1536 on AMX: 3200 deep is several of either) and the row block (a share of L2: 900 rows are
 * several blocks on any CPU, each packed in pieces, the last one partial; at
 * 400 a short tail joins the block before it), every activation, residual or
 * not, plain, packed f32 or packed bf16 weights (odd K: a half-empty last k
 * pair). */
static void test_linear_epilogue(void)
{
    struct { int64_t rows, K, N; } shapes[] = {{1, 1, 1}, {5, 7, 33}, {8, 32, 32}, {9, 33, 65}, {37, 13, 70}, {3, 800, 40}, {17, 0, 5},
                                               {45, 64, 40}, {100, 3200, 70}, {400, 64, 40}, {900, 96, 70}};
    static const char *acts[] = {"", "quick_gelu", "gelu"};
    int cases = 0;
    for (size_t sh = 0; sh < sizeof shapes / sizeof *shapes; sh++)
        for (int act = 0; act < 3; act++)
            for (int variant = 0; variant < 8; variant++) {
                int residual = variant & 1, packed = variant >> 1; /* 1 f32, 2 bf16, 3: an f32 W marked bf16 */
                int64_t xd[2] = {shapes[sh].rows, shapes[sh].K}, wd[2] = {shapes[sh].K, shapes[sh].N}, bd[1] = {shapes[sh].N};
                int64_t yd[2] = {shapes[sh].rows, shapes[sh].N};
                Tensor *w = rand_tensor(2, wd);
                Tensor *ins[4] = {rand_tensor(2, xd),
                                  packed == 2 ? bf16_packed_by_definition(w) : packed == 1 ? packed_by_definition(w) : tensor_copy(w),
                                  rand_tensor(1, bd), rand_tensor(2, yd)};
                for (int64_t i = 0; i < tensor_numel(ins[0]); i++) ((float *)ins[0]->data)[i] *= 2.0f; /* reach GELU's tails */
                Graph *g = one_node(OP_LINEAR, residual ? 4 : 3, ins);
                if (*acts[act]) node_add_attr(g->nodes[0], "activation", ATTR_STRING)->s = strdup(acts[act]);
                if (packed == 1 || packed == 2) node_add_attr(g->nodes[0], "packed_n", ATTR_INT)->i = shapes[sh].N;
                if (packed == 2) node_add_attr(g->nodes[0], "packed_k", ATTR_INT)->i = shapes[sh].K;
                if (packed == 3) node_add_attr(g->nodes[0], "bf16", ATTR_INT)->i = 1;
                char what[96];
                snprintf(what, sizeof what, "linear %lldx%lldx%lld act '%s'%s%s", (long long)shapes[sh].rows,
                         (long long)shapes[sh].K, (long long)shapes[sh].N, acts[act], residual ? " +residual" : "",
                         packed == 2 ? " bf16" : packed == 3 ? " f32 W marked bf16" : packed ? " packed" : "");
                /* f32 sums of K products: absolute error grows with K */
                compare_fast_ref_tol(g, what, 2e-5, 2e-6 + 2e-7 * (double)shapes[sh].K);
                graph_free(g);
                tensor_free(w);
                for (int i = 0; i < 4; i++) tensor_free(ins[i]);
                cases++;
            }
    CHECK(cases == 11 * 3 * 8, "ran %d linear cases", cases);
    /* the layout check: a packed weight whose packed_n disagrees is refused */
    int64_t xd[2] = {2, 3}, wd[3] = {1, 3, LINEAR_PANEL};
    Tensor *ins[2] = {rand_tensor(2, xd), rand_tensor(3, wd)};
    Graph *g = one_node(OP_LINEAR, 2, ins);
    node_add_attr(g->nodes[0], "packed_n", ATTR_INT)->i = 40;
    char msg[IR_ERR_CAP];
    CHECK(infer_graph(g, msg, sizeof msg) != 0 && strstr(msg, "packed_n"), "a bad packed_n is reported: %s", msg);
    graph_free(g);
    tensor_free(ins[0]);
    tensor_free(ins[1]);
}

/* Linear on bf16 weights with a bf16 X, a bf16 Y or both (bf16_output,
 * passes/bf16_activations.c): fast against the reference.  Shapes around
 * the tile, several depth blocks (a bf16 Y then goes through f32 sums), several
 * row blocks (X read in place) and no depth.  A bf16 Y rounds a value the
 * two compute apart (f32 and double sums): an element may round one bf16
 * ulp apart, most must agree. */
static void test_linear_bf16_io(void)
{
    struct { int64_t rows, K, N; } shapes[] = {{9, 34, 65}, {37, 14, 70}, {17, 0, 5}, {100, 3200, 70}, {900, 96, 70}};
    static const char *acts[] = {"", "quick_gelu"};
    int cases = 0;
    for (size_t sh = 0; sh < sizeof shapes / sizeof *shapes; sh++)
        for (int act = 0; act < 2; act++)
            for (int variant = 1; variant < 8; variant++) {
                int x16 = variant & 1, y16 = (variant >> 1) & 1, residual = variant >> 2;
                if (!x16 && !y16) continue;
                int64_t xd[2] = {shapes[sh].rows, shapes[sh].K}, wd[2] = {shapes[sh].K, shapes[sh].N}, bd[1] = {shapes[sh].N};
                int64_t yd[2] = {shapes[sh].rows, shapes[sh].N};
                Tensor *w = rand_tensor(2, wd), *x = rand_tensor(2, xd);
                if (x16) {
                    Tensor *h = tensor_new(DT_BF16, 2, xd);
                    for (int64_t i = 0; i < tensor_numel(h); i++) ((uint16_t *)h->data)[i] = float_to_bf16(2.0f * ((float *)x->data)[i]);
                    tensor_free(x);
                    x = h;
                }
                Tensor *ins[4] = {x, bf16_packed_by_definition(w), rand_tensor(1, bd), rand_tensor(2, yd)};
                Graph *g = one_node(OP_LINEAR, residual ? 4 : 3, ins);
                if (*acts[act]) node_add_attr(g->nodes[0], "activation", ATTR_STRING)->s = strdup(acts[act]);
                node_add_attr(g->nodes[0], "packed_n", ATTR_INT)->i = shapes[sh].N;
                node_add_attr(g->nodes[0], "packed_k", ATTR_INT)->i = shapes[sh].K;
                if (y16) node_add_attr(g->nodes[0], "bf16_output", ATTR_INT)->i = 1;
                char what[112];
                snprintf(what, sizeof what, "linear %lldx%lldx%lld act '%s'%s, X %s, Y %s", (long long)shapes[sh].rows,
                         (long long)shapes[sh].K, (long long)shapes[sh].N, acts[act], residual ? " +residual" : "", x16 ? "bf16" : "f32",
                         y16 ? "bf16" : "f32");
                Tensor *fast[8] = {0}, *ref[8] = {0};
                StaleArena stale = {0};
                if (!run_fast_and_ref(g, what, fast, ref, &stale)) {
                    CHECK(fast[0]->dtype == (y16 ? DT_BF16 : DT_F32) && ref[0]->dtype == fast[0]->dtype, "%s: output dtype", what);
                    if (y16) compare_bf16_rounding(fast[0], ref[0], what, 1.0 / 64, 1e-9);
                    else {
                        double e = elementwise_excess(fast[0], ref[0], 2e-5, 2e-6 + 2e-7 * (double)shapes[sh].K);
                        CHECK(e <= 1, "%s: an element is off by %.2fx the tolerance", what, e);
                    }
                }
                tensor_free(fast[0]);
                tensor_free(ref[0]);
                for (int i = 0; i < stale.n; i++) free(stale.blocks[i]);
                graph_free(g);
                tensor_free(w);
                for (int i = 0; i < 4; i++) tensor_free(ins[i]);
                cases++;
            }
    CHECK(cases == 5 * 2 * 6, "ran %d bf16-io linear cases", cases);
}

static void set_attention_attrs(Node *n, int heads, int d, int q_off, int k_off, int v_off, float scale, int causal,
                                int seq_first, int frames, int window, int boundary)
{
    node_add_attr(n, "num_heads", ATTR_INT)->i = heads;
    node_add_attr(n, "head_dim", ATTR_INT)->i = d;
    node_add_attr(n, "q_offset", ATTR_INT)->i = q_off;
    node_add_attr(n, "k_offset", ATTR_INT)->i = k_off;
    node_add_attr(n, "v_offset", ATTR_INT)->i = v_off;
    node_add_attr(n, "scale", ATTR_FLOAT)->f = scale;
    node_add_attr(n, "causal", ATTR_INT)->i = causal;
    node_add_attr(n, "seq_first", ATTR_INT)->i = seq_first;
    node_add_attr(n, "frames", ATTR_INT)->i = frames;
    node_add_attr(n, "window", ATTR_INT)->i = window;
    node_add_attr(n, "boundary", ATTR_INT)->i = boundary;
}

static void test_attention(void)
{
    struct { int B, N, heads, d, packed, causal, mask, seq_first, frames, window, boundary; } cases[] = {
        {2, 5, 2, 3, 0, 0, 0, 0, 0, 0, 0},
        {3, 17, 2, 32, 1, 0, 0, 1, 0, 0, 0},  /* OpenAI: packed qkv, [N, B, C] */
        {2, 9, 3, 4, 0, 1, 0, 0, 0, 0, 0},    /* causal text */
        {2, 6, 2, 4, 0, 0, 1, 0, 0, 0, 0},    /* additive mask */
        {16, 5, 2, 4, 1, 0, 0, 1, 8, 1, 0},   /* VCLIP: T=8, window 1, zero boundary */
        {16, 5, 2, 4, 1, 0, 0, 1, 8, 1, 1},   /* masked boundary */
        {16, 5, 2, 4, 0, 0, 0, 0, 8, 2, 0},
        {16, 5, 2, 4, 0, 0, 0, 0, 8, 2, 1},
        {6, 4, 1, 8, 0, 0, 0, 0, 3, 2, 0},    /* window reaching past both ends */
        /* head sizes the AVX-512 kernel takes (attention_avx512.c) */
        {3, 50, 2, 64, 1, 0, 0, 1, 0, 0, 0},  /* ViT: 50 tokens, partial key block */
        {2, 77, 2, 64, 1, 1, 0, 1, 0, 0, 0},  /* text: causal */
        {2, 19, 3, 16, 0, 0, 1, 0, 0, 0, 0},  /* additive mask */
        {2, 21, 1, 32, 0, 1, 1, 0, 0, 0, 0},  /* mask and causal */
        {16, 17, 2, 64, 1, 0, 0, 1, 8, 1, 0}, /* VCLIP window, zero-filled boundary */
        {16, 17, 2, 64, 1, 0, 0, 1, 8, 1, 1}, /* masked boundary */
        {8, 9, 1, 128, 0, 0, 0, 0, 4, 2, 0},
        {5, 1, 1, 16, 0, 0, 0, 0, 0, 0, 0},   /* one token */
        /* more for the portable kernel: keys past one block, causal with a mask, causal over a window */
        {2, 40, 2, 8, 0, 1, 1, 0, 0, 0, 0},
        {16, 5, 2, 8, 0, 1, 0, 0, 8, 1, 0},
    };
    /* every case on the fastest kernel, then on the portable one (what a CPU
     * without AVX-512 runs), then both again with bf16 = 1 (--precision
     * auto's inference; the AVX512-BF16 kernel where the CPU has it) */
    size_t n_cases = sizeof cases / sizeof *cases;
    for (size_t c = 0; c < 4 * n_cases; c++) {
        int portable = (c / n_cases) % 2, bf16 = c >= 2 * n_cases;
        attention_force_portable(portable);
        size_t e = c % n_cases;
        int B = cases[e].B, N = cases[e].N, H = cases[e].heads, d = cases[e].d, C = H * d;
        int64_t ch = cases[e].packed ? 3 * C + 5 : C + 3; /* extra channels: offsets must be honoured */
        int64_t dims[3] = {cases[e].seq_first ? N : B, cases[e].seq_first ? B : N, ch}, md[2] = {N, N};
        Tensor *x = rand_tensor(3, dims), *y = rand_tensor(3, dims), *z = rand_tensor(3, dims), *m = rand_tensor(2, md);
        Tensor *ins[4] = {x, cases[e].packed ? x : y, cases[e].packed ? x : z, m};
        Graph *g = one_node(OP_ATTENTION, cases[e].mask ? 4 : 3, ins);
        set_attention_attrs(g->nodes[0], H, d, cases[e].packed ? 1 : 2, cases[e].packed ? 1 + C : 0,
                            cases[e].packed ? 1 + 2 * C : 3, 0.35f, cases[e].causal, cases[e].seq_first, cases[e].frames,
                            cases[e].window, cases[e].boundary);
        if (bf16) node_add_attr(g->nodes[0], "bf16", ATTR_INT)->i = 1;
        char what[64];
        snprintf(what, sizeof what, "attention case %zu%s%s", e, portable ? " (portable kernel)" : "", bf16 ? " (bf16)" : "");
        /* bf16: f32 sums of rounded operands, but a probability rounds apart where the kernel's f32 softmax and
         * the reference's double one straddle a bf16 boundary (one bf16 ulp, 2^-8 relative, of a weight) */
        if (bf16) {
            compare_fast_ref_bf16(g, what, 1e-2, 2e-6);
            check_bf16_output(g, what);
            check_bf16_inputs(g, 3, what);
        } else compare_fast_ref(g, what);
        graph_free(g);
        tensor_free(x); tensor_free(y); tensor_free(z); tensor_free(m);
    }
    attention_force_portable(0);
    if (!__builtin_cpu_supports("avx512bf16"))
        printf("attention kernel avx512-bf16: compiled, not run (this CPU lacks AVX512-BF16; the portable kernel ran bf16)\n");
}

/* Zero-filled neighbours by hand: one head, d=1, N=M=1, T=2, window 1.
 * Frame 0 sees [frame 1 | zero | frame 0]: logits scale*q*k1, 0, scale*q*k0. */
static void test_attention_zero_boundary_by_hand(void)
{
    int64_t dims[3] = {2, 1, 1};
    Tensor *q = tensor_new(DT_F32, 3, dims), *k = tensor_new(DT_F32, 3, dims), *v = tensor_new(DT_F32, 3, dims);
    float qs[2] = {1.0f, 2.0f}, ks[2] = {0.5f, -1.0f}, vs[2] = {3.0f, 5.0f};
    memcpy(q->data, qs, sizeof qs); memcpy(k->data, ks, sizeof ks); memcpy(v->data, vs, sizeof vs);
    Tensor *ins[3] = {q, k, v};
    for (int boundary = 0; boundary < 2; boundary++) {
        Graph *g = one_node(OP_ATTENTION, 3, ins);
        set_attention_attrs(g->nodes[0], 1, 1, 0, 0, 0, 1.0f, 0, 0, 2, 1, boundary);
        char msg[IR_ERR_CAP];
        CHECK(infer_graph(g, msg, sizeof msg) == 0, "%s", msg);
        const Tensor *in[3] = {g->nodes[0]->in[0]->konst, g->nodes[0]->in[1]->konst, g->nodes[0]->in[2]->konst};
        Tensor *out[8] = {0};
        ExecOptions o = {.reference_only = 1};
        CHECK(exec_node(g, g->nodes[0], in, out, &o, msg, sizeof msg) == 0, "%s", msg);
        /* frame 0: keys k1=-1 (frame 1), zero, k0=0.5; values 5, 0, 3 */
        double l[3] = {1.0 * -1.0, 0.0, 1.0 * 0.5}, w[3] = {exp(l[0]), boundary ? 0.0 : exp(l[1]), exp(l[2])};
        double want0 = (w[0] * 5 + w[2] * 3) / (w[0] + w[1] + w[2]);
        /* frame 1: keys zero (frame 2 missing), k0=0.5 (frame 0), k1=-1; values 0, 3, 5 */
        double m[3] = {boundary ? 0.0 : exp(0.0), exp(2.0 * 0.5), exp(2.0 * -1.0)};
        double want1 = (m[1] * 3 + m[2] * 5) / (m[0] + m[1] + m[2]);
        float *y = out[0]->data;
        CHECK(fabs(y[0] - want0) < 1e-6 && fabs(y[1] - want1) < 1e-6, "boundary %d: got %g %g want %g %g", boundary, y[0], y[1],
              want0, want1);
        tensor_free(out[0]);
        graph_free(g);
    }
    tensor_free(q); tensor_free(k); tensor_free(v);
}

static void test_softmax_layernorm(void)
{
    int64_t shapes[3][3] = {{3, 5, 7}, {2, 12, 50}, {1, 1, 1000}};
    for (int c = 0; c < 3; c++) {
        Tensor *x = rand_tensor(3, shapes[c]);
        for (int64_t i = 0; i < tensor_numel(x); i++) ((float *)x->data)[i] *= 30.0f;
        Graph *g = one_node(OP_SOFTMAX, 1, &x);
        compare_fast_ref(g, "softmax");
        graph_free(g);
        int64_t cols[1] = {shapes[c][2]};
        Tensor *ins[3] = {x, rand_tensor(1, cols), rand_tensor(1, cols)};
        g = one_node(OP_LAYER_NORM, 3, ins);
        node_add_attr(g->nodes[0], "epsilon", ATTR_FLOAT)->f = 1e-5f;
        compare_fast_ref(g, "layernorm");
        check_bf16_output(g, "layernorm");
        graph_free(g);
        /* outputs among the denormals: where the fast kernel's bf16 flushes them */
        for (int64_t i = 0; i < cols[0]; i++) {
            ((float *)ins[1]->data)[i] = 2e-39f * (float)(i % 3);
            ((float *)ins[2]->data)[i] = 0.0f;
        }
        g = one_node(OP_LAYER_NORM, 3, ins);
        check_bf16_output(g, "layernorm, denormal outputs");
        graph_free(g);
        for (int i = 0; i < 3; i++) tensor_free(ins[i]);
    }
}

/* ReduceSum (axes an input) and ReduceMean (axes an attribute) over
 * leading, trailing, middle and all axes, keepdims or not; rows long
 * enough to cross the fast kernel's column blocks. */
static void test_reductions(void)
{
    int64_t shapes[4][3] = {{37, 19, 1}, {3, 5, 7}, {2, 1, 33}, {5, 3, 1031}};
    int64_t axes[6][3] = {{0}, {0, 1}, {-1}, {1, 2}, {1}, {0, 1, 2}};
    int n_axes[6] = {1, 2, 1, 2, 1, 3};
    for (int sh = 0; sh < 4; sh++)
        for (int a = 0; a < 6; a++)
            for (int variant = 0; variant < 4; variant++) {
                int mean = variant & 1, keep = variant >> 1;
                Tensor *x = rand_tensor(3, shapes[sh]);
                int64_t na = n_axes[a];
                Tensor *ax = tensor_new(DT_I64, 1, &na);
                memcpy(ax->data, axes[a], sizeof(int64_t) * (size_t)na);
                Tensor *ins[2] = {x, ax};
                Graph *g = one_node(mean ? OP_REDUCE_MEAN : OP_REDUCE_SUM, mean ? 1 : 2, ins);
                node_add_attr(g->nodes[0], "keepdims", ATTR_INT)->i = keep;
                if (mean) {
                    Attr *at = node_add_attr(g->nodes[0], "axes", ATTR_INTS);
                    at->n = (int)na;
                    at->ints = malloc(sizeof(int64_t) * (size_t)na);
                    memcpy(at->ints, axes[a], sizeof(int64_t) * (size_t)na);
                }
                char what[96];
                snprintf(what, sizeof what, "%s over axes set %d of [%lld,%lld,%lld], keepdims %d", mean ? "ReduceMean" : "ReduceSum", a,
                         (long long)shapes[sh][0], (long long)shapes[sh][1], (long long)shapes[sh][2], keep);
                compare_fast_ref_tol(g, what, 1e-6, 1e-7);
                graph_free(g);
                tensor_free(x);
                tensor_free(ax);
            }
}

static void test_reference_conv_by_hand(void)
{
    /* 1x1x3x3 input, 1x1x2x2 kernel of ones, stride 1: sums of 2x2 windows */
    int64_t xd[4] = {1, 1, 3, 3}, wd[4] = {1, 1, 2, 2};
    Tensor *ins[2] = {tensor_new(DT_F32, 4, xd), tensor_new(DT_F32, 4, wd)};
    for (int i = 0; i < 9; i++) ((float *)ins[0]->data)[i] = (float)(i + 1);
    for (int i = 0; i < 4; i++) ((float *)ins[1]->data)[i] = 1;
    Graph *g = one_node(OP_CONV, 2, ins);
    char msg[IR_ERR_CAP];
    CHECK(infer_graph(g, msg, sizeof msg) == 0, "%s", msg);
    const Tensor *in[2] = {g->nodes[0]->in[0]->konst, g->nodes[0]->in[1]->konst};
    Tensor *out[8] = {0};
    ExecOptions o = {.reference_only = 1};
    CHECK(exec_node(g, g->nodes[0], in, out, &o, msg, sizeof msg) == 0, "%s", msg);
    float want[4] = {12, 16, 24, 28};
    for (int i = 0; out[0] && i < 4; i++) CHECK(((float *)out[0]->data)[i] == want[i], "conv[%d] = %g", i, ((float *)out[0]->data)[i]);
    tensor_free(out[0]);
    graph_free(g);
    tensor_free(ins[0]);
    tensor_free(ins[1]);
}

static void test_views_share_data(void)
{
    int64_t d[3] = {2, 3, 4}, sd[1] = {2};
    Tensor *x = rand_tensor(3, d);
    Tensor *shape = tensor_new(DT_I64, 1, sd);
    ((int64_t *)shape->data)[0] = 6;
    ((int64_t *)shape->data)[1] = -1;
    Tensor *ins[2] = {x, shape};
    Graph *g = one_node(OP_RESHAPE, 2, ins);
    char msg[IR_ERR_CAP];
    CHECK(infer_graph(g, msg, sizeof msg) == 0, "%s", msg);
    CHECK(g->nodes[0]->out[0]->shape.d[1].n == 4, "reshape -1 inferred %lld", (long long)g->nodes[0]->out[0]->shape.d[1].n);
    const Tensor *in[2] = {g->nodes[0]->in[0]->konst, g->nodes[0]->in[1]->konst};
    Tensor *fast[8] = {0}, *ref[8] = {0};
    ExecOptions of = {0}, orf = {.reference_only = 1};
    CHECK(exec_node(g, g->nodes[0], in, fast, &of, msg, sizeof msg) == 0, "%s", msg);
    CHECK(exec_node(g, g->nodes[0], in, ref, &orf, msg, sizeof msg) == 0, "%s", msg);
    CHECK(fast[0] && fast[0]->data == in[0]->data, "fast reshape should alias its input");
    CHECK(ref[0] && ref[0]->data != in[0]->data && !memcmp(ref[0]->data, in[0]->data, in[0]->nbytes), "reference reshape copies");
    tensor_free(fast[0]);
    tensor_free(ref[0]);
    graph_free(g);
    tensor_free(x);
    tensor_free(shape);
}

/* Every output of node 0, fast (into stale buffers) against reference (for multi-output gradient ops). */
/* Every output of g's node, fast against reference: within 1e-5 relative,
 * or with max_rel > 0 within compare_bf16_rounding's two bounds. */
static void compare_outputs(Graph *g, int n_out, const char *what, double max_rel, double median_rel)
{
    char err[512], msg[IR_ERR_CAP];
    if (infer_graph(g, msg, sizeof msg)) { CHECK(0, "%s: infer: %s", what, msg); return; }
    Node *n = g->nodes[0];
    const Tensor *ins[16] = {0};
    for (int i = 0; i < n->n_in; i++) ins[i] = n->in[i] ? n->in[i]->konst : NULL;
    Tensor *fast[8] = {0}, *ref[8] = {0};
    StaleArena stale = {0};
    ExecOptions of = {.alloc = stale_alloc, .alloc_ctx = &stale}, orf = {.reference_only = 1};
    int rf = exec_node(g, n, ins, fast, &of, err, sizeof err);
    CHECK(rf == 0, "%s: fast: %s", what, err);
    int rr = exec_node(g, n, ins, ref, &orf, err, sizeof err);
    CHECK(rr == 0, "%s: ref: %s", what, err);
    for (int o = 0; !rf && !rr && o < n_out; o++) {
        char out_what[96];
        snprintf(out_what, sizeof out_what, "%s: output %d", what, o);
        if (max_rel > 0) compare_bf16_rounding(fast[o], ref[o], out_what, max_rel, median_rel);
        else {
            double d = rel_diff(fast[o], ref[o]);
            CHECK(d < 1e-5, "%s: fast vs ref rel diff %g", out_what, d);
        }
    }
    for (int o = 0; o < 8; o++) { tensor_free(fast[o]); tensor_free(ref[o]); }
    for (int i = 0; i < stale.n; i++) free(stale.blocks[i]);
}

static void compare_all_outputs(Graph *g, int n_out, const char *what) { compare_outputs(g, n_out, what, 0, 0); }

/* A node with n_out outputs over constant inputs (NULL = absent). */
static Graph *multi_out_node(int op, int n_in, Tensor **ins, int n_out)
{
    Graph *g = graph_new("t");
    g->opset = 17;
    Value *iv[8], *ov[8];
    for (int i = 0; i < n_in; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "x%d", i);
        iv[i] = ins[i] ? graph_new_value(g, nm) : NULL;
        if (ins[i]) value_set_const(iv[i], tensor_copy(ins[i]));
    }
    for (int i = 0; i < n_out; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "y%d", i);
        ov[i] = graph_new_value(g, nm);
    }
    graph_add_node(g, op, "n", n_in, iv, n_out, ov);
    return g;
}

static void test_gradient_kernels(void)
{
    struct { int B, N, heads, d, packed, causal, mask, seq_first, frames, window, boundary; } cases[] = {
        {2, 5, 2, 3, 0, 0, 0, 0, 0, 0, 0}, {3, 17, 2, 32, 1, 0, 0, 1, 0, 0, 0}, {2, 9, 3, 4, 0, 1, 0, 0, 0, 0, 0},
        {2, 6, 2, 4, 0, 0, 1, 0, 0, 0, 0}, {16, 5, 2, 4, 1, 0, 0, 1, 8, 1, 0}, {16, 5, 2, 4, 1, 0, 0, 1, 8, 1, 1},
        {6, 4, 1, 8, 0, 0, 0, 0, 3, 2, 0},
        /* head sizes of 16, 32, 64 and 128 run the AVX-512 kernel where the CPU has it: a VCLIP frame batch,
           zero-filled neighbours, causal, a mask, a window of 2, query rows not a multiple of 4 */
        {16, 50, 2, 64, 1, 0, 0, 1, 8, 1, 0}, {16, 7, 2, 64, 1, 0, 0, 0, 8, 1, 1}, {3, 13, 2, 16, 0, 1, 0, 0, 0, 0, 0},
        {2, 21, 1, 128, 0, 0, 1, 0, 0, 0, 0}, {6, 9, 2, 32, 0, 0, 0, 1, 3, 2, 0},
    };
    /* every case in f32, then with bf16 = 1 (--precision bf16's training: the
     * AVX-512 kernel for head sizes of 16 to 128, the BLAS one for the rest) */
    size_t n_cases = sizeof cases / sizeof *cases;
    for (size_t cb = 0; cb < 2 * n_cases; cb++) {
        size_t c = cb % n_cases;
        int bf16 = cb >= n_cases;
        int B = cases[c].B, N = cases[c].N, H = cases[c].heads, d = cases[c].d, C = H * d;
        int64_t ch = cases[c].packed ? 3 * C + 5 : C + 3;
        int64_t dims[3] = {cases[c].seq_first ? N : B, cases[c].seq_first ? B : N, ch}, md[2] = {N, N};
        int64_t od[3] = {dims[0], dims[1], C};
        Tensor *x = rand_tensor(3, dims), *y = rand_tensor(3, dims), *z = rand_tensor(3, dims), *m = rand_tensor(2, md), *dout = rand_tensor(3, od);
        Tensor *ins[5] = {dout, x, cases[c].packed ? x : y, cases[c].packed ? x : z, m};
        Graph *g = multi_out_node(OP_ATTENTION_GRAD, cases[c].mask ? 5 : 4, ins, 3);
        set_attention_attrs(g->nodes[0], H, d, cases[c].packed ? 1 : 2, cases[c].packed ? 1 + C : 0, cases[c].packed ? 1 + 2 * C : 3,
                            0.35f, cases[c].causal, cases[c].seq_first, cases[c].frames, cases[c].window, cases[c].boundary);
        if (bf16) node_add_attr(g->nodes[0], "bf16", ATTR_INT)->i = 1;
        char what[64];
        snprintf(what, sizeof what, "attention gradient case %zu%s", c, bf16 ? " (bf16)" : "");
        /* bf16: a probability or a score gradient that the kernel (f32) and the reference (double) hold on
         * either side of a bf16 boundary rounds apart by one bf16 ulp, 2^-8 of it, in every sum it enters */
        compare_outputs(g, 3, what, bf16 ? 1e-2 : 0, bf16 ? 2e-6 : 0);
        graph_free(g);
        tensor_free(x); tensor_free(y); tensor_free(z); tensor_free(m); tensor_free(dout);
    }
    for (int quick = 0; quick < 2; quick++) { /* activation gradients, odd size */
        int64_t d[2] = {37, 19};
        Tensor *dy = rand_tensor(2, d), *x = rand_tensor(2, d);
        for (int64_t i = 0; i < tensor_numel(x); i++) ((float *)x->data)[i] *= 4;
        Tensor *ins[2] = {dy, x};
        Graph *g = multi_out_node(quick ? OP_QUICK_GELU_GRAD : OP_GELU_GRAD, 2, ins, 1);
        compare_all_outputs(g, 1, quick ? "QuickGeluGrad" : "GeluGrad");
        graph_free(g);
        tensor_free(dy); tensor_free(x);
    }
    { /* LayerNormalizationGrad: dx, dscale, dbias over 33 rows of 70 */
        int64_t d[3] = {3, 11, 70}, c[1] = {70};
        Tensor *dy = rand_tensor(3, d), *x = rand_tensor(3, d), *sc = rand_tensor(1, c);
        Tensor *ins[3] = {dy, x, sc};
        Graph *g = multi_out_node(OP_LAYER_NORM_GRAD, 3, ins, 3);
        node_add_attr(g->nodes[0], "axis", ATTR_INT)->i = -1;
        node_add_attr(g->nodes[0], "epsilon", ATTR_FLOAT)->f = 1e-5f;
        compare_all_outputs(g, 3, "LayerNormalizationGrad");
        graph_free(g);
        tensor_free(dy); tensor_free(x); tensor_free(sc);
    }
    { /* InterpolateWeights over more elements than one thread's share: the reference's values, bit for bit */
        int64_t d[2] = {301, 1001};
        Tensor *w0 = rand_tensor(2, d), *w = rand_tensor(2, d), *alpha = tensor_new(DT_F32, 0, NULL);
        *(float *)alpha->data = 0.35f;
        Tensor *ins[3] = {w0, w, alpha}, *fast[8] = {0}, *ref[8] = {0};
        Graph *g = multi_out_node(OP_INTERPOLATE_WEIGHTS, 3, ins, 1);
        StaleArena stale = {0};
        if (!run_fast_and_ref(g, "InterpolateWeights", fast, ref, &stale))
            CHECK(!memcmp(fast[0]->data, ref[0]->data, ref[0]->nbytes), "InterpolateWeights: fast and reference values differ");
        tensor_free(fast[0]); tensor_free(ref[0]);
        for (int i = 0; i < stale.n; i++) free(stale.blocks[i]);
        graph_free(g);
        tensor_free(w0); tensor_free(w); tensor_free(alpha);
    }
    /* the GEMM path (patch embedding) and the fallback, in f32 and with bf16 = 1
     * (bf16 training: the bf16 GEMM, or the reference for the fallback) */
    for (int c = 0; c < 4; c++) {
        int patch = c % 2, bf16 = c >= 2;
        int64_t xd[4] = {3, 3, 32, 32}, wd[4] = {7, 3, 8, 8}, yd[4] = {3, 7, 4, 4};
        int64_t xd2[4] = {2, 3, 9, 9}, wd2[4] = {5, 3, 3, 3}, yd2[4] = {2, 5, 9, 9};
        Tensor *dy = rand_tensor(4, patch ? yd : yd2), *x = rand_tensor(4, patch ? xd : xd2), *w = rand_tensor(4, patch ? wd : wd2);
        Tensor *ins[3] = {dy, x, w};
        Graph *g = multi_out_node(OP_CONV_GRAD, 3, ins, 2);
        Attr *a = node_add_attr(g->nodes[0], "kernel_shape", ATTR_INTS);
        a->n = 2; a->ints = malloc(2 * sizeof(int64_t)); a->ints[0] = a->ints[1] = patch ? 8 : 3;
        Attr *st = node_add_attr(g->nodes[0], "strides", ATTR_INTS);
        st->n = 2; st->ints = malloc(2 * sizeof(int64_t)); st->ints[0] = st->ints[1] = patch ? 8 : 1;
        if (!patch) {
            Attr *pd = node_add_attr(g->nodes[0], "pads", ATTR_INTS);
            pd->n = 4; pd->ints = malloc(4 * sizeof(int64_t)); for (int i = 0; i < 4; i++) pd->ints[i] = 1;
        }
        if (bf16) node_add_attr(g->nodes[0], "bf16", ATTR_INT)->i = 1;
        char what[64];
        snprintf(what, sizeof what, "conv gradient (%s%s)", patch ? "patch embedding" : "padded", bf16 ? ", bf16" : "");
        compare_all_outputs(g, 2, what);
        graph_free(g);
        tensor_free(dy); tensor_free(x); tensor_free(w);
    }
}

/* gemm() itself on an A whose rows are not K apart (a view's rows): 3077
 * rows (more than one row block whatever the L2, the last with a 5-row
 * tail) read in place where K is one depth block, once with rows 7 floats of
 * padding apart and once 4 KB apart (which the GEMM packs instead: every row
 * in one L1 set), against sums in double. */
static void test_gemm_strided_a(void)
{
    /* in place at one depth block; packed (rows 4 KB apart); in place at two
     * depth blocks of 850 (1536 + a thin 164 joined) */
    const int64_t cases[3][2] = {{700, 707}, {700, 1024}, {1700, 1709}}, M = 3077, N = 45, ldc = N + 3;
    for (int s = 0; s < 3; s++) {
        int64_t K = cases[s][0], lda = cases[s][1];
        float *A = malloc(sizeof(float) * (size_t)(M * lda)), *B = malloc(sizeof(float) * (size_t)(K * N));
        float *C = malloc(sizeof(float) * (size_t)(M * ldc)), *bias = malloc(sizeof(float) * (size_t)N);
        float *panels = aligned_alloc(64, sizeof(float) * (size_t)gemm_packed_floats(K, N));
        for (int64_t i = 0; i < M * lda; i++) A[i] = frand();
        for (int64_t i = 0; i < K * N; i++) B[i] = frand();
        for (int64_t i = 0; i < N; i++) bias[i] = frand();
        for (int64_t i = 0; i < M * ldc; i++) C[i] = 1e30f; /* the columns past N stay untouched */
        gemm_pack_b(B, K, N, 0, panels);
        PackedB pb = {.dtype = DT_F32, .panels = panels, .K = K, .N = N};
        GemmEpilogue ep = {.bias = bias};
        CHECK(gemm(M, A, lda, &pb, C, ldc, &ep) == 0, "gemm with lda %lld", (long long)lda);
        double worst = 0.0;
        int untouched = 1;
        for (int64_t i = 0; i < M; i++) {
            for (int64_t n = 0; n < N; n++) {
                double want = bias[n];
                for (int64_t k = 0; k < K; k++) want += (double)A[i * lda + k] * B[k * N + n];
                double err = fabs(C[i * ldc + n] - want);
                if (err > worst) worst = err;
            }
            for (int64_t n = N; n < ldc; n++) untouched &= C[i * ldc + n] == 1e30f;
        }
        CHECK(worst < 2e-6 + 2e-7 * (double)K, "gemm %lld deep with A rows %lld apart: max error %.3g", (long long)K, (long long)lda, worst);
        CHECK(untouched, "gemm with A rows %lld apart writes only its N columns of C", (long long)lda);
        free(A); free(B); free(C); free(bias); free(panels);
    }
}

/* gemm_unpacked() with A given as A^T [K, lda] (the weight gradient's X^T,
 * read in place) on the pinned kernel, in its dtype (bf16: both operands
 * rounded), against double sums of the same operands: rows around the
 * micro-panels and tiles and past one row block, depths around the depth
 * blocks, A^T's rows wider than M. */
static void test_gemm_transposed_a(DType dtype)
{
    const int64_t cases[][4] = {{40, 800, 45, 43}, {97, 64, 33, 100}, {1300, 1600, 70, 1301}}; /* M, K, N, lda */
    for (size_t s = 0; s < sizeof cases / sizeof *cases; s++) {
        int64_t M = cases[s][0], K = cases[s][1], N = cases[s][2], lda = cases[s][3], ldc = N + 3;
        float *At = malloc(sizeof(float) * (size_t)(K * lda)), *B = malloc(sizeof(float) * (size_t)(K * N));
        float *C = malloc(sizeof(float) * (size_t)(M * ldc));
        for (int64_t i = 0; i < K * lda; i++) At[i] = frand();
        for (int64_t i = 0; i < K * N; i++) B[i] = frand();
        for (int64_t i = 0; i < M * ldc; i++) C[i] = 1e30f; /* the columns past N stay untouched */
        CHECK(gemm_unpacked(dtype, M, At, lda, 1, B, K, N, 0, C, ldc, NULL) == 0, "gemm_unpacked %lldx%lldx%lld, A transposed",
              (long long)M, (long long)K, (long long)N);
        double worst = 0.0;
        int untouched = 1;
        for (int64_t i = 0; i < M; i++) {
            for (int64_t n = 0; n < N; n++) {
                double want = 0.0;
                for (int64_t k = 0; k < K; k++) {
                    float a = At[k * lda + i], b = B[k * N + n];
                    if (dtype == DT_BF16) { a = bf16_to_float(float_to_bf16(a)); b = bf16_to_float(float_to_bf16(b)); }
                    want += (double)a * b;
                }
                double err = fabs(C[i * ldc + n] - want);
                if (err > worst) worst = err;
            }
            for (int64_t n = N; n < ldc; n++) untouched &= C[i * ldc + n] == 1e30f;
        }
        CHECK(worst < 2e-6 + 2e-7 * (double)K, "gemm_unpacked %lldx%lldx%lld (%s), A transposed, rows %lld apart: max error %.3g",
              (long long)M, (long long)K, (long long)N, dtype == DT_BF16 ? "bf16" : "f32", (long long)lda, worst);
        CHECK(untouched, "gemm_unpacked with A transposed writes only its N columns of C");
        free(At); free(B); free(C);
    }
}

/* gemm_typed() against gemm() on the same values: a bf16 A holding what
 * gemm() rounds its f32 A to must give the same bits (packed, or read in
 * place past one row block, 4 KB apart or not), and a bf16 C the f32 C
 * rounded to nearest even.  3077 rows (several row blocks, a 5-row tail) and
 * 40; one depth block and two (a bf16 C then sums in f32 first); no depth. */
static void test_gemm_bf16_operands(void)
{
    const int64_t cases[][3] = {{3077, 700, 706}, {3077, 2048, 2048}, {3077, 1700, 1700}, {40, 700, 700}, {40, 0, 2}}, N = 45, ldc = N + 3;
    for (size_t s = 0; s < sizeof cases / sizeof *cases; s++) {
        int64_t M = cases[s][0], K = cases[s][1], lda = cases[s][2];
        float *A = malloc(sizeof(float) * (size_t)(M * lda)), *B = malloc(sizeof(float) * (size_t)(K * N + 1)), *bias = malloc(sizeof(float) * N);
        uint16_t *A16 = malloc(sizeof(uint16_t) * (size_t)(M * lda)), *C16 = malloc(sizeof(uint16_t) * (size_t)(M * ldc));
        float *C = malloc(sizeof(float) * (size_t)(M * ldc)), *Ct = malloc(sizeof(float) * (size_t)(M * ldc));
        uint16_t *panels = aligned_alloc(64, (sizeof(uint16_t) * (size_t)gemm_packed_bf16_halves(K, N) + 64) / 64 * 64);
        for (int64_t i = 0; i < M * lda; i++) A[i] = bf16_to_float(A16[i] = float_to_bf16(frand()));
        for (int64_t i = 0; i < K * N; i++) B[i] = frand();
        for (int64_t i = 0; i < N; i++) bias[i] = frand();
        for (int64_t i = 0; i < M * ldc; i++) { C[i] = Ct[i] = 1e30f; C16[i] = 0x7777; }
        gemm_pack_b_bf16(B, K, N, 0, panels);
        PackedB pb = {.dtype = DT_BF16, .panels = panels, .K = K, .N = N};
        GemmEpilogue ep = {.bias = bias, .act = LINEAR_ACT_QUICK_GELU};
        int rc = gemm(M, A, lda, &pb, C, ldc, &ep);
        rc |= gemm_typed(M, A16, DT_BF16, lda, &pb, Ct, DT_F32, ldc, &ep);
        rc |= gemm_typed(M, A16, DT_BF16, lda, &pb, C16, DT_BF16, ldc, &ep);
        CHECK(rc == 0, "gemm_typed %lldx%lld (A rows %lld apart)", (long long)M, (long long)K, (long long)lda);
        int64_t a_off = 0, c_off = 0, untouched = 1;
        for (int64_t i = 0; i < M; i++) {
            for (int64_t n = 0; n < N; n++) {
                a_off += memcmp(&C[i * ldc + n], &Ct[i * ldc + n], sizeof(float)) != 0;
                c_off += C16[i * ldc + n] != float_to_bf16(C[i * ldc + n]);
            }
            for (int64_t n = N; n < ldc; n++) untouched &= Ct[i * ldc + n] == 1e30f && C16[i * ldc + n] == 0x7777;
        }
        CHECK(a_off == 0, "gemm %lldx%lld, A rows %lld apart: bf16 A gives other bits than the same values in f32 (%lld elements)",
              (long long)M, (long long)K, (long long)lda, (long long)a_off);
        CHECK(c_off == 0, "gemm %lldx%lld: bf16 C is not the f32 C rounded (%lld elements)", (long long)M, (long long)K, (long long)c_off);
        CHECK(untouched, "gemm_typed %lldx%lld writes only its N columns of C", (long long)M, (long long)K);
        free(A); free(B); free(bias); free(A16); free(C16); free(C); free(Ct); free(panels);
    }
}

/* float_to_bf16_flushed (kernels.h: the portable kernels' bf16 for the
 * bf16 GEMM) against the instruction it stands for, VCVTNEPS2BF16
 * (floats_to_bf16), where the CPU has it: zeros, denormals, the smallest
 * normals, ties, the overflow to infinity, NaNs, and random bit patterns. */
#if defined(__x86_64__)
AVX512_BF16 static void bf16_by_instruction(const float *x, int64_t n, uint16_t *out) { floats_to_bf16(x, n, out); }
#endif
static void test_bf16_rounding_matches_instruction(void)
{
#if defined(__x86_64__)
    if (!cpu_avx512_bf16()) {
        printf("bf16 rounding against VCVTNEPS2BF16: not run (this CPU lacks AVX512-BF16)\n");
        return;
    }
    enum { N = 4099 };
    static const uint32_t special[] = {0x00000000u, 0x80000000u, 0x00000001u, 0x807fffffu, 0x000ae398u, 0x00800000u, 0x80800000u,
                                       0x3f808000u, 0x3f818000u, 0x3f807fffu, 0x7f7fffffu, 0x7f7f8000u, 0x7f800000u, 0xff800000u,
                                       0x7fc00000u, 0xffc12345u, 0x7f800001u, 0x3f800000u};
    uint32_t bits[N];
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < N; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        bits[i] = i < (int)(sizeof special / sizeof *special) ? special[i] : (uint32_t)(s >> 32);
    }
    float x[N];
    uint16_t want[N];
    memcpy(x, bits, sizeof x);
    bf16_by_instruction(x, N, want);
    int off = 0;
    for (int i = 0; i < N; i++) off += float_to_bf16_flushed(x[i]) != want[i];
    CHECK(off == 0, "float_to_bf16_flushed differs from VCVTNEPS2BF16 in %d of %d values", off, N);
#endif
}

/* The GEMM checks on one micro-kernel, pinned; one this CPU cannot run is named */
static void test_gemm_kernel(GemmKernel k)
{
    if (!gemm_kernel_runs(k)) {
        printf("gemm kernel %s: compiled, not run (this CPU lacks it)\n", gemm_kernel_name(k));
        return;
    }
    CHECK(gemm_pin(k) == 0, "pin %s", gemm_kernel_name(k));
    CHECK(gemm_kernel_for(gemm_kernel_dtype(k)) == (int)k, "%s is used once pinned", gemm_kernel_name(k));
    int before = checks_failed;
    test_gemm();
    test_gemm_transposed_a(gemm_kernel_dtype(k));
    if (gemm_kernel_dtype(k) == DT_F32) test_gemm_strided_a();
    test_linear_epilogue();
    if (gemm_kernel_dtype(k) == DT_BF16) {
        test_gemm_bf16_operands();
        test_linear_bf16_io();
    }
    printf("gemm kernel %s%s: %s against the reference\n", gemm_kernel_name(k), AMX_ON_STAND_IN && k == GEMM_KERNEL_AMX_BF16 ? " (tiles on the host stand-in)" : "",
           checks_failed == before ? "agrees" : "DISAGREES");
    gemm_unpin();
}

int main(void)
{
    exec_set_threads(2);
    if (AMX_ON_STAND_IN) { /* test_kernels_amx: the GEMM checks on the AMX kernel alone; test_kernels runs the rest */
        test_gemm_kernel(GEMM_KERNEL_AMX_BF16);
        return TEST_SUMMARY();
    }
    test_matmul();
    /* every GEMM micro-kernel this CPU runs, each in turn; the others are named */
    for (int k = 0; k < GEMM_KERNEL_COUNT; k++) test_gemm_kernel((GemmKernel)k);
    if (gemm_kernel_for(DT_F32) < 0) { /* a CPU without AVX2 and FMA: Linear and Gemm run on BLAS, checked the same way */
        int before = checks_failed;
        test_gemm();
        test_linear_epilogue();
        printf("gemm: no kernel runs on this CPU; the BLAS path %s against the reference\n", checks_failed == before ? "agrees" : "DISAGREES");
    }
    test_conv();
    test_exp_family();
    test_bf16_rounding_matches_instruction();
    test_softmax_layernorm();
    test_reductions();
    test_fused_ops();
    test_attention();
    test_attention_zero_boundary_by_hand();
    test_reference_conv_by_hand();
    test_views_share_data();
    test_gradient_kernels();
    return TEST_SUMMARY();
}
