/* test_ir.c — IR invariants: dim algebra, symbolic shape inference through
 * an exporter-style Shape->Gather->Concat->Reshape chain, .npy round trips,
 * external-data path rules, the verifier and bf16 rounding. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check.h"
#include "../../ir/ops.h"
#include "../../ir/verify.h"
#include "../../onnx/onnx_io.h"
#include "../../passes/passes.h"
#include "../../runtime/npy.h"

static void test_dims(void)
{
    Dim b = {1, 0};
    Dim b50 = dim_mul(b, dim_const(50));
    CHECK(b50.sym == 0 && b50.n == 50, "batch*50");
    Dim back = dim_div(b50, dim_const(50));
    CHECK(dim_equal(back, b), "batch*50/50 == batch");
    CHECK(dim_is_const(dim_div(b50, b)) && dim_div(b50, b).n == 50, "batch*50/batch == 50");
    CHECK(dim_mul(b, b).sym == DIM_UNKNOWN, "batch*batch is unknown");
    CHECK(dim_div(dim_const(7), dim_const(2)).sym == DIM_UNKNOWN, "inexact division is unknown");
    int64_t big[2] = {(int64_t)1 << 62, 4};
    CHECK(dims_numel_checked(2, big) == -1, "numel overflow detected");
    int64_t neg[1] = {-3};
    CHECK(dims_numel_checked(1, neg) == -1, "negative dim refused");
    CHECK(tensor_new(DT_F32, 2, big) == NULL, "overflowing allocation refused");
}

static Value *const_i64(Graph *g, const char *name, int n, const int64_t *vals)
{
    Value *v = graph_new_value(g, name);
    int64_t d[1] = {n};
    Tensor *t = tensor_new(DT_I64, n < 0 ? 0 : 1, d);
    memcpy(t->data, vals, sizeof(int64_t) * (size_t)n);
    value_set_const(v, t);
    return v;
}

static void test_symbolic_reshape(void)
{
    /* x: f32[batch,50,64] -> Shape -> Gather(0) -> Unsqueeze -> Concat([b,-1]) -> Reshape */
    Graph *g = graph_new("sym");
    g->opset = 17;
    int s = graph_intern_sym(g, "batch");
    Value *x = graph_new_value(g, "x");
    x->dtype = DT_F32;
    x->shape = (Shape){3, {{1, s}, {50, -1}, {64, -1}}};
    graph_add_input(g, x);
    Value *shp = graph_new_value(g, "shp"), *b = graph_new_value(g, "b"), *bu = graph_new_value(g, "bu");
    Value *cat = graph_new_value(g, "cat"), *y = graph_new_value(g, "y");
    int64_t zero = 0, m1 = -1, ax0 = 0;
    Value *idx = graph_new_value(g, "idx");
    Tensor *it = tensor_new(DT_I64, 0, NULL);
    *(int64_t *)it->data = zero;
    value_set_const(idx, it);
    Value *axes = const_i64(g, "axes", 1, &ax0), *minus1 = const_i64(g, "m1", 1, &m1);
    Value *in1[1] = {x}, *o1[1] = {shp};
    graph_add_node(g, OP_SHAPE, "shape", 1, in1, 1, o1);
    Value *in2[2] = {shp, idx}, *o2[1] = {b};
    graph_add_node(g, OP_GATHER, "gather", 2, in2, 1, o2);
    Value *in3[2] = {b, axes}, *o3[1] = {bu};
    graph_add_node(g, OP_UNSQUEEZE, "unsq", 2, in3, 1, o3);
    Value *in4[2] = {bu, minus1}, *o4[1] = {cat};
    node_add_attr(graph_add_node(g, OP_CONCAT, "cat", 2, in4, 1, o4), "axis", ATTR_INT)->i = 0;
    Value *in5[2] = {x, cat}, *o5[1] = {y};
    graph_add_node(g, OP_RESHAPE, "reshape", 2, in5, 1, o5);
    graph_add_output(g, y);
    char err[512];
    CHECK(infer_graph(g, err, sizeof err) == 0, "%s", err);
    char buf[128];
    shape_format(g, &y->shape, buf, sizeof buf);
    CHECK(strcmp(buf, "[batch,3200]") == 0, "reshape output is %s", buf);
    CHECK(cat->n_known == 2 && cat->known[0].sym == s, "concat content is known symbolically");
    CHECK(graph_verify(g, err, sizeof err) == 0, "%s", err);
    /* the verifier catches a node reading a value before it is computed */
    Node *tmp = g->nodes[0];
    g->nodes[0] = g->nodes[1];
    g->nodes[1] = tmp;
    CHECK(graph_verify(g, err, sizeof err) != 0 && strstr(err, "before it is computed"), "verifier: %s", err);
    graph_free(g);
    (void)zero;
}

/* mkstemp/mkdtemp template under $TMPDIR (default /tmp) */
/* graph_topo_sort: an ordered graph stays as it is; a node appended after
 * its consumer (as fusion passes do) moves to just before that consumer,
 * pulling its own late producer along, and nothing else moves; a cycle is
 * refused. */
static void test_topo_sort(void)
{
    Graph *g = graph_new("sort");
    Value *v[8];
    for (int i = 0; i < 8; i++) {
        char nm[8];
        snprintf(nm, sizeof nm, "v%d", i);
        v[i] = graph_new_value(g, nm);
    }
    graph_add_input(g, v[0]);
    /* a: v0 -> v1, b: v1 -> v2, c: (v2, v6) -> v3, d: v3 -> v4, h: v0 -> v7, then appended e: v5 -> v6 and
     * f: v1 -> v5 (sorting in sweeps would run h, which needs nothing late, before c and d) */
    Node *a = graph_add_node(g, OP_RELU, "a", 1, (Value *[]){v[0]}, 1, &v[1]);
    Node *b = graph_add_node(g, OP_RELU, "b", 1, (Value *[]){v[1]}, 1, &v[2]);
    Node *c = graph_add_node(g, OP_ADD, "c", 2, (Value *[]){v[2], v[6]}, 1, &v[3]);
    Node *d = graph_add_node(g, OP_RELU, "d", 1, (Value *[]){v[3]}, 1, &v[4]);
    Node *h = graph_add_node(g, OP_RELU, "h", 1, (Value *[]){v[0]}, 1, &v[7]);
    Node *e = graph_add_node(g, OP_RELU, "e", 1, (Value *[]){v[5]}, 1, &v[6]);
    Node *f = graph_add_node(g, OP_RELU, "f", 1, (Value *[]){v[1]}, 1, &v[5]);
    CHECK(graph_topo_sort(g) == 0, "sort failed");
    const Node *want[7] = {a, b, f, e, c, d, h};
    int same = 1;
    for (int i = 0; i < 7; i++) same &= g->nodes[i] == want[i];
    CHECK(same, "appended producers: got %s %s %s %s %s %s %s, want a b f e c d h", g->nodes[0]->name, g->nodes[1]->name,
          g->nodes[2]->name, g->nodes[3]->name, g->nodes[4]->name, g->nodes[5]->name, g->nodes[6]->name);
    CHECK(graph_topo_sort(g) == 0 && g->nodes[2] == f && g->nodes[6] == h, "an ordered graph moved");
    a->in[0] = v[4]; /* a reads d's output: a cycle */
    CHECK(graph_topo_sort(g) == -1, "a cycle was sorted");
    graph_free(g);
}

static void temp_template(char *buf, size_t cap, const char *name)
{
    const char *t = getenv("TMPDIR");
    snprintf(buf, cap, "%s/%s_XXXXXX", t && *t ? t : "/tmp", name);
}

static void test_npy_roundtrip(void)
{
    char path[512];
    temp_template(path, sizeof path, "vclip_npy");
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp %s", path);
    if (fd >= 0) close(fd);
    int64_t d[3] = {2, 1, 3};
    Tensor *t = tensor_new(DT_I64, 3, d);
    for (int i = 0; i < 6; i++) ((int64_t *)t->data)[i] = (int64_t)i * 1000000007LL - 3;
    char err[512];
    CHECK(npy_save(path, t, err, sizeof err) == 0, "%s", err);
    Tensor *u = npy_load(path, err, sizeof err);
    CHECK(u && u->dtype == DT_I64 && u->rank == 3 && !memcmp(u->data, t->data, t->nbytes), "round trip: %s", u ? "data differs" : err);
    /* truncate the payload: refused with a message naming the file */
    CHECK(truncate(path, 128 + 10) == 0, "truncate");
    Tensor *v = npy_load(path, err, sizeof err);
    CHECK(!v && strstr(err, path) && strstr(err, "truncated"), "truncated npy: %s", err);
    tensor_free(t);
    tensor_free(u);
    unlink(path);
}

static void test_external_paths(void)
{
    char dir[512];
    temp_template(dir, sizeof dir, "vclip_ext");
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char p[600], err[512];
    snprintf(p, sizeof p, "%s/w.bin", dir);
    FILE *f = fopen(p, "w");
    fputs("x", f);
    fclose(f);
    char *ok = external_data_path(dir, "w.bin", err, sizeof err);
    CHECK(ok != NULL, "plain relative location: %s", err);
    free(ok);
    CHECK(!external_data_path(dir, "/etc/passwd", err, sizeof err) && strstr(err, "absolute"), "absolute: %s", err);
    CHECK(!external_data_path(dir, "../etc/passwd", err, sizeof err) && strstr(err, ".."), "dotdot: %s", err);
    CHECK(!external_data_path(dir, "a/../../x", err, sizeof err), "nested dotdot");
    snprintf(p, sizeof p, "%s/link", dir);
    CHECK(symlink("/etc/hostname", p) == 0, "symlink");
    CHECK(!external_data_path(dir, "link", err, sizeof err) && strstr(err, "outside"), "symlink escape: %s", err);
    unlink(p);
    snprintf(p, sizeof p, "%s/w.bin", dir);
    unlink(p);
    rmdir(dir);
}

/* float_to_bf16 against rounding done in double arithmetic: the two bf16
 * values around a float (its truncation and the next one up in magnitude),
 * the nearer one, ties to the even mantissa.  Edge patterns first (ties,
 * just off ties, the largest finite floats, infinities, NaNs, denormals,
 * zeros), then 2^20 random bit patterns. */
static uint16_t bf16_by_value(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if (isnan(f)) return (uint16_t)((x >> 16) | 0x40);
    uint32_t lo_bits = x & 0xffff0000u, hi_bits = lo_bits + 0x10000u; /* magnitude up; past the largest: infinity */
    float lo, hi;
    memcpy(&lo, &lo_bits, 4);
    memcpy(&hi, &hi_bits, 4);
    if (isinf(f)) return (uint16_t)(x >> 16);
    /* an infinite neighbour stands for 2^128, the next value up were the exponent unbounded */
    double dlo = fabs((double)f - lo), dhi = isinf(hi) ? 0x1p128 - fabs((double)f) : fabs((double)f - hi);
    uint32_t pick = dlo < dhi ? lo_bits : dhi < dlo ? hi_bits : ((lo_bits >> 16) & 1) ? hi_bits : lo_bits;
    return (uint16_t)(pick >> 16);
}

static void test_bf16_rounding(void)
{
    static const uint32_t edges[] = {0x3f808000, 0x3f818000, 0x3f808001, 0x3f807fff, 0xbf808000, 0xbf818000, 0x7f7fffff,
                                     0x7f7f8000, 0x7f7f7fff, 0xff7fffff, 0x7f800000, 0xff800000, 0x7f800001, 0x7fc00000,
                                     0xffffffff, 0x00000001, 0x00008000, 0x00018000, 0x007fffff, 0x80000000, 0x00000000,
                                     0x3f800000, 0x477fe000, 0x0080ffff};
    int bad = 0;
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++) {
        float f;
        memcpy(&f, &edges[i], 4);
        uint16_t got = float_to_bf16(f), want = bf16_by_value(f);
        CHECK(got == want, "float bits 0x%08x -> bf16 0x%04x, want 0x%04x", (unsigned)edges[i], got, want);
        CHECK(isnan(f) == isnan(bf16_to_float(got)), "NaN 0x%08x must stay NaN", (unsigned)edges[i]);
    }
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 1 << 20; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        uint32_t x = (uint32_t)(s >> 11);
        float f;
        memcpy(&f, &x, 4);
        uint16_t got = float_to_bf16(f), want = bf16_by_value(f);
        if (got != want && bad++ < 5) CHECK(0, "float bits 0x%08x -> bf16 0x%04x, want 0x%04x", (unsigned)x, got, want);
        uint32_t back;
        float r = bf16_to_float(got);
        memcpy(&back, &r, 4);
        if (back != (uint32_t)got << 16 && bad++ < 5) CHECK(0, "bf16 0x%04x widens to 0x%08x", got, (unsigned)back);
    }
    CHECK(!bad, "%d of 2^20 random floats rounded differently", bad);
}

int main(void)
{
    test_dims();
    test_symbolic_reshape();
    test_topo_sort();
    test_npy_roundtrip();
    test_external_paths();
    test_bf16_rounding();
    return TEST_SUMMARY();
}
