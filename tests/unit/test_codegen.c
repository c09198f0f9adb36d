/* test_codegen.c — generated kernels against the reference kernels.
 *
 *  - every program opcode, alone, on odd broadcast shapes: the JIT-compiled C
 *    kernel, the program interpreter and the unfused op's own reference
 *    kernel (an independent oracle) agree;
 *  - random programs: compiled C, interpreter and the graph lowered back to
 *    standard ops agree, on the flat (same-shape) and strided paths;
 *  - the fusion pass: a graph runs to the same outputs fused and unfused, and
 *    a value used outside a chain is not swallowed by it;
 *  - views: random chains of Transpose, Slice, Reshape, Squeeze, Unsqueeze,
 *    Gather, Expand, Flatten (and Concats of them) read inside a kernel give
 *    the unfused graph's reference answer, compiled, interpreted and lowered;
 *    malformed "loads" attributes are refused;
 *  - NVRTC compiles the CUDA rendering of every program above and of every
 *    kernel of a real training graph for sm_80 and sm_90 (a missing libnvrtc
 *    fails the test: tools/install-deps.sh provides one);
 *  - without a working compiler the fused op falls back to the interpreter. */
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "check.h"
#include "compare.h"
#include "../../runtime/cuda/cuda_templates.h"
#include "../../runtime/cuda/nvrtc.h"
#include "../../codegen/render.h"
#include "../../ir/loads.h"
#include "../../ir/ops.h"
#include "../../passes/passes.h"
#include "../../passes/rewrite.h"
#include "../../runtime/cpu/gemm.h"
#include "../../runtime/cpu/session.h"
#include "../../runtime/safetensors.h"
#include "../../runtime/train/train_graph.h"

#define TEST_RNG_SEED 0xC0DE6E17ull
#include "rand.h"

static char *sources[4096];
static int n_sources;
static char *reduce_sources[256]; /* fused reductions' CUDA kernels */
static int n_reduce_sources;

static void keep_cuda(const Program *p)
{
    if (n_sources < 4096) sources[n_sources++] = program_render_cuda(p);
}

/* A graph of one FusedElementwise node over constant inputs. */
static Graph *fused_graph(int n_in, Tensor **ins, const int64_t *code, int n_code, const float *consts, int n_consts)
{
    Graph *g = graph_new("codegen");
    g->opset = 17;
    Value *iv[8], *out = graph_new_value(g, "y");
    for (int i = 0; i < n_in; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "x%d", i);
        iv[i] = graph_new_value(g, nm);
        value_set_const(iv[i], tensor_copy(ins[i]));
    }
    Node *n = graph_add_node(g, OP_FUSED_ELEMENTWISE, "fused", n_in, iv, 1, &out);
    Attr *a = node_add_attr(n, "program", ATTR_INTS);
    a->n = n_code;
    a->ints = malloc(sizeof(int64_t) * (size_t)n_code);
    memcpy(a->ints, code, sizeof(int64_t) * (size_t)n_code);
    a = node_add_attr(n, "constants", ATTR_FLOATS);
    a->n = n_consts;
    a->floats = malloc(sizeof(float) * (size_t)(n_consts + 1));
    if (n_consts) memcpy(a->floats, consts, sizeof(float) * (size_t)n_consts);
    graph_add_output(g, out);
    char err[512];
    CHECK(infer_graph(g, err, sizeof err) == 0, "infer: %s", err);
    return g;
}

static Tensor *run_graph(Graph *g, int reference)
{
    char err[512];
    ExecOptions o = {.reference_only = reference};
    Session *s = session_new(g, &o, err, sizeof err);
    Tensor *out = NULL;
    int rc = s ? session_run(s, NULL, &out, err, sizeof err) : -1;
    CHECK(rc == 0, "run: %s", err);
    session_free(s);
    return out;
}

static void test_each_opcode(void)
{
    int64_t da[3] = {3, 1, 7}, db[2] = {5, 1};
    for (int op = 0; op < PR_COUNT; op++) {
        int positive = op == PR_LOG || op == PR_SQRT || op == PR_POW;
        double lo = positive ? 0.2 : -2.5, hi = 2.5;
        Tensor *a = rand_tensor(3, da, lo, hi), *b = rand_tensor(2, db, positive ? 0.2 : -2.5, 2.5);
        int ar = program_op_arity(op);
        int64_t code[3] = {op, 0, ar == 2 ? 1 : -1};
        Tensor *ins[2] = {a, b};
        Graph *g = fused_graph(ar, ins, code, 3, NULL, 0);
        Program p;
        char err[256];
        if (program_from_node(g->nodes[0], &p, err, sizeof err) == 0) { keep_cuda(&p); program_free(&p); }
        Tensor *fast = run_graph(g, 0), *ref = run_graph(g, 1);
        /* the unfused op's reference kernel: an independent oracle */
        int ir = -1;
        for (int k = 0; k < OP_COUNT && ir < 0; k++) if (program_op_of(k) == op) ir = k;
        Graph *u = graph_new("unfused");
        u->opset = 17;
        Value *iv[2], *out = graph_new_value(u, "y");
        for (int i = 0; i < ar; i++) { iv[i] = graph_new_value(u, i ? "b" : "a"); value_set_const(iv[i], tensor_copy(ins[i])); }
        graph_add_node(u, ir, "op", ar, iv, 1, &out);
        graph_add_output(u, out);
        CHECK(infer_graph(u, err, sizeof err) == 0, "%s", err);
        Tensor *oracle = run_graph(u, 1);
        double d1 = rel_diff(fast, ref), d2 = rel_diff(ref, oracle);
        CHECK(d1 < 2e-6, "%s: generated kernel vs interpreter: %g", program_op_name(op), d1);
        CHECK(d2 < 2e-6, "%s: interpreter vs the op's reference kernel: %g", program_op_name(op), d2);
        tensor_free(fast); tensor_free(ref); tensor_free(oracle); tensor_free(a); tensor_free(b);
        graph_free(g);
        graph_free(u);
    }
}

/* Random straight-line programs: compiled C vs interpreter vs standard ops. */
static void test_random_programs(void)
{
    int64_t shapes[2][3][4] = {{{3, 2, 3, 5}, {2, 3, 1}, {1, 5}}, {{3, 4, 1, 6}, {3, 4, 1, 6}, {3, 4, 1, 6}}};
    const int safe[] = {PR_ADD, PR_SUB, PR_MUL, PR_MAX, PR_MIN, PR_NEG, PR_EXP, PR_SIGMOID, PR_TANH, PR_RELU, PR_ABS,
                        PR_ERF, PR_QUICK_GELU, PR_GELU, PR_DIV, PR_SQRT};
    for (int t = 0; t < 24; t++) {
        int flat = t % 2, n_in = 3, n_consts = 2, m = 3 + (int)(urand() * 6);
        Tensor *ins[3];
        for (int i = 0; i < n_in; i++) ins[i] = rand_tensor((int)shapes[flat][i][0], &shapes[flat][i][1], -1.5, 1.5);
        float consts[2] = {(float)(urand() * 2 - 1), 0.75f + (float)t * 1e-3f};
        int64_t code[3 * 12];
        for (int i = 0; i < m; i++) {
            int op = safe[(int)(urand() * (sizeof safe / sizeof *safe))], avail = n_in + n_consts + i;
            if (op == PR_DIV || op == PR_SQRT) op = op == PR_DIV ? PR_MUL : PR_ABS; /* keep values finite */
            int a = i ? n_in + n_consts + i - 1 : (int)(urand() * n_in);      /* a chain, with side inputs */
            int b = program_op_arity(op) == 2 ? (int)(urand() * avail) : -1;
            code[3 * i] = op; code[3 * i + 1] = a; code[3 * i + 2] = b;
        }
        for (int k = 0; k < n_in; k++, m++) { /* every input used: the output shape is their broadcast */
            code[3 * m] = PR_ADD; code[3 * m + 1] = n_in + n_consts + m - 1; code[3 * m + 2] = k;
        }
        Graph *g = fused_graph(n_in, ins, code, 3 * m, consts, n_consts);
        Program p;
        char err[256];
        if (program_from_node(g->nodes[0], &p, err, sizeof err) == 0) { keep_cuda(&p); program_free(&p); }
        Tensor *fast = run_graph(g, 0), *ref = run_graph(g, 1);
        CHECK(pass_lower_to_standard_ops(g, err, sizeof err) >= 0, "lower: %s", err);
        CHECK(infer_graph(g, err, sizeof err) == 0, "%s", err);
        Tensor *std = run_graph(g, 1);
        double d1 = rel_diff(fast, ref), d2 = rel_diff(ref, std);
        CHECK(d1 < 1e-5, "random program %d (%s path): generated vs interpreter %g", t, flat ? "flat" : "strided", d1);
        CHECK(d2 < 1e-5, "random program %d: interpreter vs standard ops %g", t, d2);
        tensor_free(fast); tensor_free(ref); tensor_free(std);
        for (int i = 0; i < n_in; i++) tensor_free(ins[i]);
        graph_free(g);
    }
}

/* y = exp(a * b) + c * 2; e = a * b is also an output, so only exp(.) + c*2 fuses with it as an input. */
static void test_fusion_pass(void)
{
    Graph *g = graph_new("chain");
    g->opset = 17;
    int64_t d[2] = {4, 9}, dc[1] = {9};
    Value *a = graph_new_value(g, "a"), *b = graph_new_value(g, "b"), *c = graph_new_value(g, "c"), *two = graph_new_value(g, "two");
    value_set_const(a, rand_tensor(2, d, -1, 1));
    value_set_const(b, rand_tensor(2, d, -1, 1));
    value_set_const(c, rand_tensor(1, dc, -1, 1));
    Tensor *tt = tensor_new(DT_F32, 0, NULL);
    *(float *)tt->data = 2.0f;
    value_set_const(two, tt);
    Value *e = graph_new_value(g, "e"), *x = graph_new_value(g, "x"), *cy = graph_new_value(g, "c2"), *y = graph_new_value(g, "y");
    graph_add_node(g, OP_MUL, "mul", 2, (Value *[]){a, b}, 1, &e);
    graph_add_node(g, OP_EXP, "exp", 1, &e, 1, &x);
    graph_add_node(g, OP_MUL, "mul2", 2, (Value *[]){c, two}, 1, &cy);
    graph_add_node(g, OP_ADD, "add", 2, (Value *[]){x, cy}, 1, &y);
    graph_add_output(g, y);
    graph_add_output(g, e);
    char err[512];
    CHECK(infer_graph(g, err, sizeof err) == 0, "%s", err);
    Tensor *before[2] = {0}, *after[2] = {0};
    Session *s = session_new(g, &(ExecOptions){.reference_only = 1}, err, sizeof err);
    CHECK(s && session_run(s, NULL, before, err, sizeof err) == 0, "%s", err);
    session_free(s);
    int fused = pass_fuse_elementwise(g, err, sizeof err);
    CHECK(fused == 1, "fuse-elementwise made %d kernels, want 1: %s", fused, fused < 0 ? err : "");
    int n_fused = 0, n_mul = 0;
    for (int i = 0; i < g->n_nodes; i++) { n_fused += g->nodes[i]->op == OP_FUSED_ELEMENTWISE; n_mul += g->nodes[i]->op == OP_MUL; }
    CHECK(n_fused == 1 && n_mul == 1 && g->n_nodes == 2, "want the shared Mul kept and one kernel: %d nodes", g->n_nodes);
    CHECK(!strcmp(g->outputs[0]->name, "y") && !strcmp(g->outputs[1]->name, "e"), "outputs keep their names");
    s = session_new(g, &(ExecOptions){0}, err, sizeof err);
    CHECK(s && session_run(s, NULL, after, err, sizeof err) == 0, "%s", err);
    session_free(s);
    for (int i = 0; i < 2; i++) {
        CHECK(rel_diff(after[i], before[i]) < 1e-6, "output %d changed by fusion: %g", i, rel_diff(after[i], before[i]));
        tensor_free(before[i]);
        tensor_free(after[i]);
    }
    graph_free(g);
}

static Value *const_value(Graph *g, const char *name, int rank, const int64_t *dims)
{
    Value *v = graph_new_value(g, name);
    value_set_const(v, rand_tensor(rank, dims, -1, 1));
    return v;
}

/* An f32 graph input [rows, cols]. */
static Value *input_2d(Graph *g, const char *name, int64_t rows, int64_t cols)
{
    Value *x = graph_new_value(g, name);
    x->dtype = DT_F32;
    x->shape.rank = 2;
    x->shape.d[0] = dim_const(rows);
    x->shape.d[1] = dim_const(cols);
    graph_add_input(g, x);
    return x;
}

static int count_op(const Graph *g, int op)
{
    int k = 0;
    for (int i = 0; i < g->n_nodes; i++) k += g->nodes[i]->op == op;
    return k;
}

/* A transformer MLP block and a projection: Linear -> QuickGelu -> Linear ->
 * residual Add -> Gemm(transB) -> Linear over a trainable weight.  After
 * linear-from-gemm, fuse-linear-epilogue and pack-linear-weights: four Linears, the first with
 * the activation, the second with the residual, the Gemm's weight packed
 * from its transpose, the trainable weight untouched; the answers equal the
 * reference kernels' on the original graph, and so do those of the
 * graph lowered back to standard ops. */
static void test_linear_epilogue_pass(void)
{
    Graph *g = graph_new("mlp");
    g->opset = 17;
    int64_t xd[2] = {6, 40}, w1[2] = {40, 70}, b1[1] = {70}, w2[2] = {70, 40}, b2[1] = {40}, w3[2] = {24, 40}, b3[1] = {24};
    int64_t w4[2] = {24, 8};
    Value *x = input_2d(g, "x", 6, 40);
    Value *W4 = const_value(g, "w4", 2, w4);
    W4->trainable = 1;
    Value *v[6];
    const char *names[6] = {"l1", "a", "l2", "y", "z", "out"};
    for (int i = 0; i < 6; i++) v[i] = graph_new_value(g, names[i]);
    graph_add_node(g, OP_LINEAR, "fc1", 3, (Value *[]){x, const_value(g, "w1", 2, w1), const_value(g, "b1", 1, b1)}, 1, &v[0]);
    graph_add_node(g, OP_QUICK_GELU, "act", 1, &v[0], 1, &v[1]);
    graph_add_node(g, OP_LINEAR, "fc2", 3, (Value *[]){v[1], const_value(g, "w2", 2, w2), const_value(g, "b2", 1, b2)}, 1, &v[2]);
    graph_add_node(g, OP_ADD, "residual", 2, (Value *[]){x, v[2]}, 1, &v[3]);
    Node *gemm = graph_add_node(g, OP_GEMM, "proj", 3, (Value *[]){v[3], const_value(g, "w3", 2, w3), const_value(g, "b3", 1, b3)}, 1, &v[4]);
    node_add_attr(gemm, "transB", ATTR_INT)->i = 1;
    graph_add_node(g, OP_LINEAR, "head", 2, (Value *[]){v[4], W4}, 1, &v[5]);
    graph_add_output(g, v[5]);
    char err[512];
    CHECK(infer_graph(g, err, sizeof err) == 0, "%s", err);
    Tensor *in = rand_tensor(2, xd, -2, 2), *before = NULL, *after = NULL, *lowered = NULL;
    Session *s = session_new(g, &(ExecOptions){.reference_only = 1}, err, sizeof err);
    CHECK(s && session_run(s, &in, &before, err, sizeof err) == 0, "%s", err);
    session_free(s);
    int gemms = pass_linear_from_gemm(g, err, sizeof err), fused = pass_fuse_linear_epilogue(g, err, sizeof err);
    int packed = pass_pack_linear_weights(g, err, sizeof err);
    CHECK(gemms == 1 && fused == 2 && packed == 3, "%d Gemms made Linear (want 1), fused %d epilogues (want 2), packed %d weights (want 3): %s",
          gemms, fused, packed, err);
    CHECK(count_op(g, OP_LINEAR) == 4 && count_op(g, OP_QUICK_GELU) + count_op(g, OP_ADD) + count_op(g, OP_GEMM) == 0,
          "want four Linears and nothing else, got %d nodes", g->n_nodes);
    int with_act = 0, with_residual = 0, plain_weights = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const Node *n = g->nodes[i];
        with_act += !strcmp(node_attr_s(n, "activation", ""), "quick_gelu");
        with_residual += n->n_in == 4 && n->in[3] == x;
        plain_weights += n->in[1]->shape.rank == 2;
        if (n->in[1]->shape.rank == 2) CHECK(n->in[1] == W4, "only the trainable weight stays unpacked");
    }
    CHECK(with_act == 1 && with_residual == 1 && plain_weights == 1, "act %d residual %d plain %d", with_act, with_residual,
          plain_weights);
    for (int i = 0; i < g->n_values; i++)
        CHECK(!g->values[i]->konst || g->values[i]->konst->rank != 2 || g->values[i] == W4,
              "unpacked weight '%s' still held", g->values[i]->name);
    s = session_new(g, &(ExecOptions){0}, err, sizeof err);
    CHECK(s && session_run(s, &in, &after, err, sizeof err) == 0, "%s", err);
    session_free(s);
    CHECK(rel_diff(after, before) < 1e-5, "fused and packed: rel diff %g", rel_diff(after, before));
    CHECK(pass_lower_to_standard_ops(g, err, sizeof err) >= 0, "%s", err);
    CHECK(count_op(g, OP_LINEAR) == 0, "lowered");
    s = session_new(g, &(ExecOptions){.reference_only = 1}, err, sizeof err);
    CHECK(s && session_run(s, &in, &lowered, err, sizeof err) == 0, "%s", err);
    session_free(s);
    CHECK(rel_diff(lowered, before) < 1e-5, "lowered to standard ops: rel diff %g", rel_diff(lowered, before));
    tensor_free(in);
    tensor_free(before);
    tensor_free(after);
    tensor_free(lowered);
    graph_free(g);
}

/* A Linear with the given activation over constant weight w and bias b. */
static Value *linear(Graph *g, const char *name, Value *x, Value *w, Value *b, const char *act)
{
    Value *y = graph_new_value(g, name);
    Node *n = graph_add_node(g, OP_LINEAR, name, 3, (Value *[]){x, w, b}, 1, &y);
    if (act) node_add_attr(n, "activation", ATTR_STRING)->s = strdup(act);
    return y;
}

/* pad-linear-hidden on four MLPs over M rows (500: three row blocks, so
 * the GEMM reads the padded hidden rows in place, two depth blocks deep;
 * 40: one block, packed): the one whose 1024-wide hidden value only its
 * second Linear reads gains a zero panel (its first weight, shared with
 * another Linear, is copied) and the attributes that let the kernel skip
 * it; a 1000-wide hidden value, one that is also a graph output, and the
 * other reader of the shared weight stay as they were.  Every output equals
 * the reference kernels' on the original graph (the reference computes the
 * padding, the fast kernel skips it). */
static void test_pad_linear_hidden_pass(int64_t M)
{
    Graph *g = graph_new("mlps");
    g->opset = 17;
    int64_t D = 64, w1[2] = {D, 1024}, b1[1] = {1024}, w2[2] = {1024, D}, b2[1] = {D};
    int64_t v1[2] = {D, 1000}, c1[1] = {1000}, v2[2] = {1000, D};
    Value *x = input_2d(g, "x", M, D), *W1 = const_value(g, "w1", 2, w1);
    Value *h = linear(g, "h", x, W1, const_value(g, "b1", 1, b1), "gelu");
    Value *outs[5] = {
        linear(g, "y", h, const_value(g, "w2", 2, w2), const_value(g, "b2", 1, b2), NULL),
        linear(g, "shared", x, W1, const_value(g, "b1s", 1, b1), NULL),
        linear(g, "y_1000", linear(g, "h_1000", x, const_value(g, "v1", 2, v1), const_value(g, "c1", 1, c1), "quick_gelu"),
               const_value(g, "v2", 2, v2), const_value(g, "c2", 1, b2), NULL),
        linear(g, "h_out", x, const_value(g, "u1", 2, w1), const_value(g, "d1", 1, b1), NULL),
        NULL};
    outs[4] = linear(g, "y_out", outs[3], const_value(g, "u2", 2, w2), const_value(g, "d2", 1, b2), NULL);
    for (int i = 0; i < 5; i++) graph_add_output(g, outs[i]);
    char err[512];
    CHECK(infer_graph(g, err, sizeof err) == 0, "%s", err);
    Tensor *in = rand_tensor(2, (int64_t[]){M, D}, -2, 2), *before[5] = {0}, *after[5] = {0};
    Session *s = session_new(g, &(ExecOptions){.reference_only = 1}, err, sizeof err);
    CHECK(s && session_run(s, &in, before, err, sizeof err) == 0, "%s", err);
    session_free(s);
    CHECK(pass_pack_linear_weights(g, err, sizeof err) == 7, "seven Linears packed: %s", err);
    int padded = pass_pad_linear_hidden(g, err, sizeof err);
    CHECK(padded == 1, "one hidden value padded (got %d): %s", padded, err);
    int64_t want_width[5] = {1056, 1000, 1024, 1024, 1056}; /* h, h_1000, h_out, shared; y's weight depth */
    for (int i = 0; i < g->n_nodes; i++) {
        const Node *n = g->nodes[i];
        const Tensor *w = n->in[1]->konst;
        const char *names[5] = {"h", "h_1000", "h_out", "shared", "y"};
        for (int k = 0; k < 5; k++) {
            if (strcmp(n->name, names[k])) continue;
            int64_t width = k < 4 ? n->out[0]->shape.d[1].n : w->dims[1];
            CHECK(width == want_width[k], "%s: %s %lld, want %lld", n->name, k < 4 ? "width" : "depth", (long long)width,
                  (long long)want_width[k]);
            int64_t pad = node_attr_i(n, k == 4 ? "pad_rows" : "pad_columns", 0);
            CHECK(pad == (k == 0 || k == 4 ? 32 : 0), "%s: %s = %lld", n->name, k == 4 ? "pad_rows" : "pad_columns", (long long)pad);
        }
    }
    s = session_new(g, &(ExecOptions){0}, err, sizeof err);
    CHECK(s && session_run(s, &in, after, err, sizeof err) == 0, "%s", err);
    session_free(s);
    for (int i = 0; i < 5; i++) {
        CHECK(after[i] && after[i]->dims[1] == before[i]->dims[1] && rel_diff(after[i], before[i]) < 1e-5,
              "output %d after padding: rel diff %g", i, after[i] ? rel_diff(after[i], before[i]) : -1.0);
        tensor_free(before[i]);
        tensor_free(after[i]);
    }
    for (int i = 0; i < g->n_nodes; i++) /* padding that would leave nothing of W is refused */
        for (int a = 0; a < g->nodes[i]->n_attrs; a++) {
            Attr *at = &g->nodes[i]->attrs[a];
            if (strcmp(at->name, "pad_rows")) continue;
            at->i = 1056;
            CHECK(infer_node(g, g->nodes[i], err, sizeof err) != 0 && strstr(err, "pad_rows = 1056"), "pad_rows = K refused: %s", err);
        }
    tensor_free(in);
    graph_free(g);
}

/* IWR's weight gradients, X1^T dY1 + X2^T dY2, as autodiff leaves them: the
 * first Gemm takes the second's product as C (the Add goes), 1700 deep (two
 * depth blocks: C must survive the first block's partial sums), with the
 * fast kernels in f32 and bf16 against the reference kernels on the unfused
 * graph.  A Gemm read twice, and one whose beta is not 1, stay as they are. */
static void test_gemm_accumulate_pass(void)
{
    for (int bf16 = 0; bf16 < 2; bf16++) {
        Graph *g = graph_new("grads");
        g->opset = 17;
        int64_t xd[2] = {1700, 40}, dd[2] = {1700, 24};
        Value *x = input_2d(g, "x", 1700, 40);
        Value *d1 = const_value(g, "dy1", 2, dd), *x2 = const_value(g, "x2", 2, xd), *d2 = const_value(g, "dy2", 2, dd);
        Value *v[7];
        const char *names[7] = {"g1", "g2", "sum", "g3", "twice", "g4", "scaled"};
        for (int i = 0; i < 7; i++) v[i] = graph_new_value(g, names[i]);
        Node *g1 = graph_add_node(g, OP_GEMM, "g1", 2, (Value *[]){x, d1}, 1, &v[0]);
        Node *g2 = graph_add_node(g, OP_GEMM, "g2", 2, (Value *[]){x2, d2}, 1, &v[1]);
        node_add_attr(g1, "transA", ATTR_INT)->i = 1;
        node_add_attr(g2, "transA", ATTR_INT)->i = 1;
        node_add_attr(g2, "alpha", ATTR_FLOAT)->f = 0.5f;
        graph_add_node(g, OP_ADD, "sum", 2, (Value *[]){v[0], v[1]}, 1, &v[2]);
        Node *g3 = graph_add_node(g, OP_GEMM, "g3", 2, (Value *[]){x, d2}, 1, &v[3]); /* read twice: stays */
        node_add_attr(g3, "transA", ATTR_INT)->i = 1;
        graph_add_node(g, OP_ADD, "twice", 2, (Value *[]){v[2], v[3]}, 1, &v[4]);
        Node *g4 = graph_add_node(g, OP_GEMM, "g4", 2, (Value *[]){x2, d1}, 1, &v[5]); /* beta 2: stays */
        node_add_attr(g4, "transA", ATTR_INT)->i = 1;
        node_add_attr(g4, "beta", ATTR_FLOAT)->f = 2.0f;
        graph_add_node(g, OP_ADD, "scaled", 2, (Value *[]){v[4], v[5]}, 1, &v[6]);
        graph_add_output(g, v[6]);
        graph_add_output(g, v[3]);
        char err[512];
        CHECK(infer_graph(g, err, sizeof err) == 0, "%s", err);
        Tensor *in = rand_tensor(2, xd, -2, 2), *before[2] = {0}, *after[2] = {0};
        Session *s = session_new(g, &(ExecOptions){.reference_only = 1}, err, sizeof err);
        CHECK(s && session_run(s, &in, before, err, sizeof err) == 0, "%s", err);
        session_free(s);
        int fused = pass_fuse_linear_epilogue(g, err, sizeof err);
        CHECK(fused == 1 && count_op(g, OP_ADD) == 2 && count_op(g, OP_GEMM) == 4, "fused %d (want 1), %d Adds (want 2)", fused,
              count_op(g, OP_ADD));
        for (int i = 0; i < g->n_nodes; i++)
            if (g->nodes[i]->op == OP_GEMM && g->nodes[i]->n_in == 3)
                CHECK(g->nodes[i]->in[0] == x && g->nodes[i]->in[1] == d1, "the first Gemm takes the second's product as C");
        if (bf16) CHECK(pass_mark_bf16_gemms(g, err, sizeof err) == 4, "four Gemms marked bf16");
        if (bf16 && !gemm_available(DT_BF16)) {
            printf("Gemm + C in bf16: SKIPPED, this CPU has no AVX512-BF16 (the reference kernel would run both)\n");
        } else {
            s = session_new(g, &(ExecOptions){0}, err, sizeof err);
            CHECK(s && session_run(s, &in, after, err, sizeof err) == 0, "%s", err);
            session_free(s);
            for (int o = 0; o < 2 && after[o]; o++) {
                double d = rel_diff(after[o], before[o]);
                /* bf16: 2^-9 relative rounding of each operand over 1700 products */
                CHECK(d < (bf16 ? 1e-2 : 1e-5), "output %d%s: fused fast vs unfused reference rel diff %g", o, bf16 ? " (bf16)" : "", d);
            }
        }
        tensor_free(in);
        for (int o = 0; o < 2; o++) { tensor_free(before[o]); tensor_free(after[o]); }
        graph_free(g);
    }
}

static Value *reduce_node(Graph *g, int op, Value *x, const char *name, int keepdims)
{
    Value *y = graph_new_value(g, name);
    int64_t last = -1;
    Value *in[2] = {x, op == OP_REDUCE_SUM ? int_vector_const(g, "axes", 1, &last) : NULL};
    Node *n = graph_add_node(g, op, name, op == OP_REDUCE_SUM ? 2 : 1, in, 1, &y);
    node_add_attr(n, "keepdims", ATTR_INT)->i = keepdims;
    if (op != OP_REDUCE_SUM) {
        Attr *a = node_add_attr(n, "axes", ATTR_INTS);
        a->n = 1;
        a->ints = malloc(sizeof(int64_t));
        a->ints[0] = -1;
    }
    return y;
}

static Value *unary(Graph *g, int op, Value *x, const char *name)
{
    Value *y = graph_new_value(g, name);
    graph_add_node(g, op, name, 1, &x, 1, &y);
    return y;
}

static Value *binary(Graph *g, int op, Value *a, Value *b, const char *name)
{
    Value *y = graph_new_value(g, name);
    graph_add_node(g, op, name, 2, (Value *[]){a, b}, 1, &y);
    return y;
}

/* Reductions with their prologue and epilogue: a norm (x*y -> ReduceSum ->
 * Sqrt), a log-mean-exp over a chain (ReduceMean of exp(x*s + y) -> Log),
 * a max with only an epilogue (ReduceMax -> Neg -> Exp, keepdims 0), and a
 * ReduceSum over the first axis, which stays.  After fuse-elementwise and
 * fuse-reduce: three FusedReduce nodes and the one ReduceSum; the fast
 * (compiled) kernels, the reference interpreter and the graph lowered back
 * to standard ops all give the unfused graph's answers (rows of odd length,
 * 33, and of 1). */
static void test_fused_reduce(void)
{
    int64_t shapes[2][3] = {{4, 7, 33}, {3, 5, 1}};
    for (int sh = 0; sh < 2; sh++) {
        Graph *g = graph_new("reduce");
        g->opset = 17;
        Value *x = graph_new_value(g, "x"), *y = graph_new_value(g, "y"), *s2 = graph_new_value(g, "s");
        value_set_const(x, rand_tensor(3, shapes[sh], -1.5, 1.5));
        value_set_const(y, rand_tensor(3, shapes[sh], -1.5, 1.5));
        Tensor *st = tensor_new(DT_F32, 0, NULL);
        *(float *)st->data = 0.75f;
        value_set_const(s2, st);
        Value *norm = unary(g, OP_SQRT, reduce_node(g, OP_REDUCE_SUM, binary(g, OP_MUL, x, y, "xy"), "ss", 1), "norm");
        Value *chain = unary(g, OP_EXP, binary(g, OP_ADD, binary(g, OP_MUL, x, s2, "xs"), y, "xsy"), "e");
        Value *lme = unary(g, OP_LOG, reduce_node(g, OP_REDUCE_MEAN, chain, "me", 1), "lme");
        Value *mx = unary(g, OP_EXP, unary(g, OP_NEG, reduce_node(g, OP_REDUCE_MAX, x, "mx", 0), "neg"), "emx");
        Value *axis0 = graph_new_value(g, "col");
        Node *c0 = graph_add_node(g, OP_REDUCE_SUM, "col", 2, (Value *[]){binary(g, OP_MUL, x, x, "xx"), int_vector_const(g, "ax0", 1, (int64_t[]){0})}, 1, &axis0);
        node_add_attr(c0, "keepdims", ATTR_INT)->i = 1;
        Value *outs[4] = {norm, lme, mx, axis0};
        for (int i = 0; i < 4; i++) graph_add_output(g, outs[i]);
        char err[512];
        CHECK(infer_graph(g, err, sizeof err) == 0, "infer: %s", err);
        Tensor *before[4] = {0}, *fast[4] = {0}, *ref[4] = {0}, *lowered[4] = {0};
        Session *ss = session_new(g, &(ExecOptions){.reference_only = 1}, err, sizeof err);
        CHECK(ss && session_run(ss, NULL, before, err, sizeof err) == 0, "%s", err);
        session_free(ss);
        int fe = pass_fuse_elementwise(g, err, sizeof err), fr = pass_fuse_reduce(g, err, sizeof err);
        CHECK(fe >= 1 && fr == 3, "fuse-elementwise %d, fuse-reduce %d (want 3): %s", fe, fr, err);
        int n_fr = 0, n_rs = 0;
        for (int i = 0; i < g->n_nodes; i++) {
            n_fr += g->nodes[i]->op == OP_FUSED_REDUCE;
            n_rs += g->nodes[i]->op == OP_REDUCE_SUM;
            if (g->nodes[i]->op != OP_FUSED_REDUCE) continue;
            Program pro, epi;
            CHECK(program_from_attrs(g->nodes[i], "program", "constants", g->nodes[i]->n_in, &pro, err, sizeof err) == 0 &&
                  program_from_attrs(g->nodes[i], "epilogue", "epilogue_constants", 1, &epi, err, sizeof err) == 0, "%s", err);
            const char *r = node_attr_s(g->nodes[i], "reduce", "");
            if (n_reduce_sources < 256)
                reduce_sources[n_reduce_sources++] = program_render_cuda_reduce(&pro, &epi, !strcmp(r, "sum") ? REDUCE_SUM : !strcmp(r, "mean") ? REDUCE_MEAN : REDUCE_MAX);
            program_free(&pro);
            program_free(&epi);
        }
        CHECK(n_fr == 3 && n_rs == 1, "want 3 FusedReduce and the first-axis ReduceSum, got %d and %d", n_fr, n_rs);
        for (int pass = 0; pass < 2; pass++) {
            ss = session_new(g, &(ExecOptions){.reference_only = pass}, err, sizeof err);
            CHECK(ss && session_run(ss, NULL, pass ? ref : fast, err, sizeof err) == 0, "%s", err);
            session_free(ss);
        }
        CHECK(pass_lower_to_standard_ops(g, err, sizeof err) >= 0, "lower: %s", err);
        ss = session_new(g, &(ExecOptions){.reference_only = 1}, err, sizeof err);
        CHECK(ss && session_run(ss, NULL, lowered, err, sizeof err) == 0, "%s", err);
        session_free(ss);
        for (int i = 0; i < 4; i++) {
            CHECK(rel_diff(fast[i], before[i]) < 1e-5 && rel_diff(ref[i], before[i]) < 1e-6 && rel_diff(lowered[i], before[i]) < 1e-6,
                  "rows of %lld, output %d: compiled %g, reference %g, lowered %g", (long long)shapes[sh][2], i,
                  rel_diff(fast[i], before[i]), rel_diff(ref[i], before[i]), rel_diff(lowered[i], before[i]));
            tensor_free(before[i]); tensor_free(fast[i]); tensor_free(ref[i]); tensor_free(lowered[i]);
        }
        graph_free(g);
    }
}

/* ---- views: injective ops read through inside a kernel (ir/loads.h) ---- */

static int irand(int lo, int hi) { return lo + (int)(urand() * (hi - lo + 1)); }

static Value *vconst(Graph *g, const char *base, Tensor *t)
{
    char nm[64];
    snprintf(nm, sizeof nm, "%s%d", base, g->n_values);
    Value *v = graph_new_value(g, nm);
    value_set_const(v, t);
    return v;
}

static Value *ivec(Graph *g, int n, const int64_t *vals)
{
    int64_t d[1] = {n};
    Tensor *t = tensor_new(DT_I64, 1, d);
    memcpy(t->data, vals, sizeof(int64_t) * (size_t)n);
    return vconst(g, "i", t);
}

static Value *op_node(Graph *g, int op, int n_in, Value **in, const char *attr, int n_attr, const int64_t *vals)
{
    char nm[64];
    snprintf(nm, sizeof nm, "n%d", g->n_nodes);
    Value *out = graph_new_value(g, nm);
    Node *n = graph_add_node(g, op, nm, n_in, in, 1, &out);
    if (attr) {
        Attr *a = node_add_attr(n, attr, n_attr < 0 ? ATTR_INT : ATTR_INTS);
        if (n_attr < 0) a->i = vals[0];
        else { a->n = n_attr; a->ints = malloc(sizeof(int64_t) * (size_t)(n_attr + 1)); memcpy(a->ints, vals, sizeof(int64_t) * (size_t)n_attr); }
    }
    char err[512];
    CHECK(infer_node(g, n, err, sizeof err) == 0, "%s: %s", op_name(op), err);
    return out;
}

/* bf16-activations over M rows (500: the Linears read the bf16 rows in
 * place; 40: one row block, packed) on bf16 weights.  Stored in bf16: the
 * MLP's hidden value (fc1 -> fc2), one that two Linears read, a
 * LayerNormalization's Y that only a Linear reads, a bf16 Attention's
 * output that a Reshape flattens for a Linear, and the QKV projection that
 * two bf16 Attentions read through a Reshape.  Left f32: a hidden value
 * that is a graph output, one of odd width (k pairs would straddle rows), a
 * Y that an Add reads too, an Attention output that is a graph output.
 * Every output is bit-identical to the graph's before the pass, on the fast
 * kernels and on the reference ones (a bf16 weight rounds its X anyway). */
static void test_bf16_activations_pass(int64_t M)
{
    Graph *g = graph_new("bf16 activations");
    g->opset = 17;
    int64_t D = 64, w1[2] = {D, 1024}, b1[1] = {1024}, w2[2] = {1024, D}, b2[1] = {D}, wd[2] = {D, D}, dv[1] = {D};
    int64_t v1[2] = {D, 1001}, c1[1] = {1001}, v2[2] = {1001, D};
    Value *x = input_2d(g, "x", M, D);
    Value *h = linear(g, "h", x, const_value(g, "w1", 2, w1), const_value(g, "b1", 1, b1), "gelu");
    Value *twice = linear(g, "h_twice", x, const_value(g, "t1", 2, w1), const_value(g, "e1", 1, b1), NULL);
    Value *h_out = linear(g, "h_out", x, const_value(g, "u1", 2, w1), const_value(g, "d1", 1, b1), NULL);
    Value *ln = graph_new_value(g, "ln"), *ln_shared = graph_new_value(g, "ln_shared");
    node_add_attr(graph_add_node(g, OP_LAYER_NORM, "ln", 3, (Value *[]){x, const_value(g, "g1", 1, dv), const_value(g, "f1", 1, dv)}, 1, &ln),
                  "epsilon", ATTR_FLOAT)->f = 1e-5f;
    graph_add_node(g, OP_LAYER_NORM, "ln_shared", 2, (Value *[]){x, const_value(g, "g2", 1, dv)}, 1, &ln_shared);
    /* attention over M / 4 tokens of 4 rows, 2 heads of 32, q, k, v from one projection */
    int64_t wq[2] = {D, 3 * D}, bq[1] = {3 * D};
    Value *qkv = linear(g, "qkv", x, const_value(g, "wq", 2, wq), const_value(g, "bq", 1, bq), NULL), *seq = graph_new_value(g, "seq");
    graph_add_node(g, OP_RESHAPE, "seq", 2, (Value *[]){qkv, ivec(g, 3, (int64_t[]){4, M / 4, 3 * D})}, 1, &seq);
    Value *att[2];
    for (int i = 0; i < 2; i++) {
        att[i] = graph_new_value(g, i ? "att_out" : "att");
        Node *a = graph_add_node(g, OP_ATTENTION, att[i]->name, 3, (Value *[]){seq, seq, seq}, 1, &att[i]);
        node_add_attr(a, "num_heads", ATTR_INT)->i = 2;
        node_add_attr(a, "head_dim", ATTR_INT)->i = 32;
        node_add_attr(a, "k_offset", ATTR_INT)->i = D;
        node_add_attr(a, "v_offset", ATTR_INT)->i = 2 * D;
        node_add_attr(a, "scale", ATTR_FLOAT)->f = 0.125f;
        node_add_attr(a, "causal", ATTR_INT)->i = i;
        node_add_attr(a, "bf16", ATTR_INT)->i = 1;
    }
    Value *rows[2];
    for (int i = 0; i < 2; i++) {
        rows[i] = graph_new_value(g, i ? "rows_out" : "rows");
        graph_add_node(g, OP_RESHAPE, rows[i]->name, 2, (Value *[]){att[i], ivec(g, 2, (int64_t[]){M, D})}, 1, &rows[i]);
    }
    Value *ln_add = graph_new_value(g, "ln_add");
    graph_add_node(g, OP_ADD, "ln_add", 2, (Value *[]){ln_shared, x}, 1, &ln_add);
    Value *outs[] = {
        linear(g, "y", h, const_value(g, "w2", 2, w2), const_value(g, "b2", 1, b2), NULL),
        linear(g, "y_odd", linear(g, "h_odd", x, const_value(g, "v1", 2, v1), const_value(g, "c1", 1, c1), "quick_gelu"),
               const_value(g, "v2", 2, v2), const_value(g, "c2", 1, b2), NULL),
        h_out,
        linear(g, "y_out", h_out, const_value(g, "u2", 2, w2), const_value(g, "d2", 1, b2), NULL),
        linear(g, "y_twice_a", twice, const_value(g, "t2", 2, w2), const_value(g, "e2", 1, b2), NULL),
        linear(g, "y_twice_b", twice, const_value(g, "t3", 2, w2), const_value(g, "e3", 1, b2), NULL),
        linear(g, "y_ln", ln, const_value(g, "l1", 2, wd), const_value(g, "k1", 1, dv), NULL),
        linear(g, "y_ln_shared", ln_shared, const_value(g, "l2", 2, wd), const_value(g, "k2", 1, dv), NULL),
        ln_add,
        linear(g, "y_att", rows[0], const_value(g, "o1", 2, wd), const_value(g, "p1", 1, dv), NULL),
        linear(g, "y_att_out", rows[1], const_value(g, "o2", 2, wd), const_value(g, "p2", 1, dv), NULL),
        att[1]};
    enum { OUTS = sizeof outs / sizeof *outs };
    for (int i = 0; i < OUTS; i++) graph_add_output(g, outs[i]);
    char err[512];
    CHECK(infer_graph(g, err, sizeof err) == 0, "%s", err);
    CHECK(pass_pack_linear_weights(g, err, sizeof err) == 14, "fourteen Linears packed: %s", err);
    CHECK(pass_cast_linear_weights_bf16(g, err, sizeof err) >= 0, "%s", err);
    Tensor *in = rand_tensor(2, (int64_t[]){M, D}, -2, 2), *before[2][OUTS] = {{0}}, *after[2][OUTS] = {{0}};
    for (int ref = 0; ref < 2; ref++) {
        Session *s = session_new(g, &(ExecOptions){.reference_only = ref}, err, sizeof err);
        CHECK(s && session_run(s, &in, before[ref], err, sizeof err) == 0, "%s", err);
        session_free(s);
    }
    int kept = pass_bf16_activations(g, err, sizeof err);
    CHECK(kept == 5, "five values stored in bf16 (got %d): %s", kept, err);
    static const char *const bf16_values[] = {"h", "h_twice", "ln", "att", "qkv"};
    for (int i = 0; i < g->n_nodes; i++) {
        const Node *n = g->nodes[i];
        int want = 0;
        for (int k = 0; k < 5; k++) want |= !strcmp(n->name, bf16_values[k]);
        want |= n->op == OP_RESHAPE && n->in[0]->dtype == DT_BF16; /* the Reshapes follow their inputs */
        CHECK((n->out[0]->dtype == DT_BF16) == want && (n->op == OP_RESHAPE || (node_attr_i(n, "bf16_output", 0) == 1) == want),
              "%s: output %s", n->name, dtype_name(n->out[0]->dtype));
    }
    for (int ref = 0; ref < 2; ref++) {
        Session *s = session_new(g, &(ExecOptions){.reference_only = ref}, err, sizeof err);
        CHECK(s && session_run(s, &in, after[ref], err, sizeof err) == 0, "%s", err);
        session_free(s);
        for (int i = 0; i < OUTS; i++) {
            CHECK(after[ref][i] && after[ref][i]->dtype == DT_F32 && tensor_numel(after[ref][i]) == tensor_numel(before[ref][i]) &&
                      !memcmp(after[ref][i]->data, before[ref][i]->data, sizeof(float) * (size_t)tensor_numel(before[ref][i])),
                  "%s kernels, %lld rows: output %d changed by the bf16 activations", ref ? "reference" : "fast", (long long)M, i);
            tensor_free(before[ref][i]);
            tensor_free(after[ref][i]);
        }
    }
    tensor_free(in);
    graph_free(g);
}


/* A random chain of 1-4 view ops on x; the first may be a Reshape. */
static Value *random_views(Graph *g, Value *x)
{
    int steps = irand(1, 4);
    for (int s = 0; s < steps; s++) {
        const Shape *sh = &x->shape;
        int r = sh->rank, kind = irand(0, 6);
        int64_t d[IR_MAX_RANK];
        for (int i = 0; i < r; i++) d[i] = sh->d[i].n;
        if (kind == 0 && s == 0 && r >= 2) { /* Reshape: merge two neighbours */
            int a = irand(0, r - 2);
            int64_t t[IR_MAX_RANK];
            int k = 0;
            for (int i = 0; i < r; i++) t[k++] = i == a ? d[i] * d[i + 1] : d[i + (i > a)];
            k = r - 1;
            t[0] = a == 0 ? -1 : t[0];
            x = op_node(g, OP_RESHAPE, 2, (Value *[]){x, ivec(g, k, t)}, NULL, 0, NULL);
        } else if (kind <= 1 && r >= 2) { /* Transpose */
            int64_t perm[IR_MAX_RANK];
            for (int i = 0; i < r; i++) perm[i] = i;
            for (int i = r - 1; i > 0; i--) { int j = irand(0, i); int64_t t = perm[i]; perm[i] = perm[j]; perm[j] = t; }
            x = op_node(g, OP_TRANSPOSE, 1, &x, "perm", r, perm);
        } else if (kind == 2) { /* Slice with a step, maybe negative */
            int a = irand(0, r - 1);
            int64_t step = irand(1, 2) * (irand(0, 1) ? 1 : -1), n = d[a];
            int64_t st = step > 0 ? irand(0, (int)n - 1) : irand(0, (int)n - 1) - n, en = step > 0 ? n + 5 : -n - 5, ax = a;
            x = op_node(g, OP_SLICE, 5, (Value *[]){x, ivec(g, 1, &st), ivec(g, 1, &en), ivec(g, 1, &ax), ivec(g, 1, &step)}, NULL, 0, NULL);
        } else if (kind == 3 && r < 5) { /* Unsqueeze */
            int64_t a = irand(0, r) - (irand(0, 1) ? r + 1 : 0);
            x = op_node(g, OP_UNSQUEEZE, 2, (Value *[]){x, ivec(g, 1, &a)}, NULL, 0, NULL);
        } else if (kind == 4) { /* Squeeze a dim of one, or Gather one index */
            int a = -1;
            for (int i = 0; i < r; i++) if (d[i] == 1) a = i;
            if (a >= 0 && r >= 2) {
                int64_t ax = a;
                x = op_node(g, OP_SQUEEZE, 2, (Value *[]){x, ivec(g, 1, &ax)}, NULL, 0, NULL);
            } else if (r >= 2) {
                int64_t ax = irand(0, r - 1);
                Tensor *ix = tensor_new(DT_I64, 0, NULL);
                *(int64_t *)ix->data = irand(0, (int)d[ax] - 1) - (irand(0, 1) ? d[ax] : 0);
                x = op_node(g, OP_GATHER, 2, (Value *[]){x, vconst(g, "ix", ix)}, "axis", -1, &ax);
            }
        } else if (kind == 5) { /* Expand a dim of one, or a new leading dim */
            int a = -1;
            for (int i = 0; i < r; i++) if (d[i] == 1) a = i;
            int64_t t[IR_MAX_RANK + 1];
            int k = 0;
            if (a < 0) t[k++] = 2;
            for (int i = 0; i < r; i++) t[k++] = i == a ? 3 : d[i];
            x = op_node(g, OP_EXPAND, 2, (Value *[]){x, ivec(g, k, t)}, NULL, 0, NULL);
        } else if (r >= 2) { /* Flatten */
            int64_t ax = irand(0, r);
            x = op_node(g, OP_FLATTEN, 1, &x, "axis", -1, &ax);
        }
    }
    return x;
}

/* Random view chains (and Concats of them) feeding x * z + z on odd shapes:
 * the fused graph (compiled and interpreted) and the graph lowered back to
 * standard ops give what the unfused graph's reference kernels give. */
static void test_views(void)
{
    int with_loads = 0, concats = 0;
    for (int trial = 0; trial < 60; trial++) {
        Graph *g = graph_new("views");
        g->opset = 17;
        int r = irand(1, 4);
        int64_t d[IR_MAX_RANK];
        for (int i = 0; i < r; i++) d[i] = irand(1, 5);
        Value *x = random_views(g, vconst(g, "x", rand_tensor(r, d, -2, 2)));
        if (x->shape.rank >= 1 && trial % 3 == 0) { /* Concat with a second chain along a random axis */
            int rk = x->shape.rank, ax = irand(0, rk - 1);
            int64_t e[IR_MAX_RANK];
            for (int i = 0; i < rk; i++) e[i] = x->shape.d[i].n;
            e[ax] = irand(1, 3);
            Value *w = trial % 2 ? random_views(g, op_node(g, OP_TRANSPOSE, 1, (Value *[]){vconst(g, "w", rand_tensor(rk, e, -2, 2))}, NULL, 0, NULL))
                                 : vconst(g, "w", rand_tensor(rk, e, -2, 2));
            if (w->shape.rank == rk) {
                int ok = 1;
                for (int i = 0; i < rk; i++) ok &= i == ax || w->shape.d[i].n == x->shape.d[i].n;
                int64_t axis = ax - (irand(0, 1) ? rk : 0);
                if (ok) { x = op_node(g, OP_CONCAT, 2, (Value *[]){irand(0, 1) ? x : w, x == w ? w : w}, "axis", -1, &axis); concats++; }
            }
        }
        int rk = x->shape.rank;
        int64_t zd[IR_MAX_RANK];
        for (int i = 0; i < rk; i++) zd[i] = irand(0, 2) ? x->shape.d[i].n : 1;
        Value *z = vconst(g, "z", rand_tensor(rk, zd, -2, 2));
        Value *m = op_node(g, OP_MUL, 2, (Value *[]){x, z}, NULL, 0, NULL);
        Value *y = op_node(g, OP_ADD, 2, (Value *[]){m, z}, NULL, 0, NULL);
        graph_add_output(g, y);
        char err[512];
        CHECK(pass_eliminate_dead_code(g, err, sizeof err) >= 0, "%s", err); /* a second chain no Concat took */
        Tensor *want = run_graph(g, 1);
        int views = count_op(g, OP_TRANSPOSE) + count_op(g, OP_SLICE) + count_op(g, OP_CONCAT) + count_op(g, OP_GATHER) +
                    count_op(g, OP_EXPAND) + count_op(g, OP_SQUEEZE) + count_op(g, OP_UNSQUEEZE);
        CHECK(pass_fuse_elementwise(g, err, sizeof err) >= 1, "trial %d: %s", trial, err);
        const Node *f = NULL;
        for (int i = 0; i < g->n_nodes; i++) if (g->nodes[i]->op == OP_FUSED_ELEMENTWISE) f = g->nodes[i];
        CHECK(f != NULL, "trial %d: no kernel", trial);
        if (f && node_attr(f, "loads")) {
            with_loads++;
            Program p;
            if (program_from_node(f, &p, err, sizeof err) == 0) { keep_cuda(&p); program_free(&p); }
        } else CHECK(views == 0, "trial %d: %d view ops and no views in the kernel", trial, views);
        Tensor *fast = run_graph(g, 0), *ref = run_graph(g, 1);
        CHECK(pass_lower_to_standard_ops(g, err, sizeof err) >= 0, "trial %d: lower: %s", trial, err);
        Tensor *low = run_graph(g, 1);
        CHECK(rel_diff(fast, want) < 1e-6 && rel_diff(ref, want) < 1e-6 && rel_diff(low, want) < 1e-6,
              "trial %d: compiled %g, interpreted %g, lowered %g", trial, rel_diff(fast, want), rel_diff(ref, want), rel_diff(low, want));
        tensor_free(want); tensor_free(fast); tensor_free(ref); tensor_free(low);
        graph_free(g);
    }
    CHECK(with_loads >= 40 && concats >= 10, "only %d kernels read through views, %d with a Concat", with_loads, concats);
    printf("views: %d random kernels read through views, %d of them with a Concat\n", with_loads, concats);
}

/* The same code read plainly and through views is two kernels: the JIT
 * memo must not hand one out for the other. */
static void test_view_and_plain_kernels_differ(void)
{
    int64_t d[2] = {3, 4};
    Tensor *a = rand_tensor(2, d, -1, 1), *b = rand_tensor(2, d, -1, 1);
    int64_t code[3] = {PR_ADD, 0, 1};
    Tensor *ins[2] = {a, b};
    Graph *plain = fused_graph(2, ins, code, 3, NULL, 0);
    Tensor *p1 = run_graph(plain, 0);
    Graph *g = graph_new("transposed");
    g->opset = 17;
    Value *x = vconst(g, "a", tensor_copy(a)), *y = vconst(g, "b", tensor_copy(b));
    int64_t perm[2] = {1, 0};
    Value *t = op_node(g, OP_TRANSPOSE, 1, &x, "perm", 2, perm), *u = op_node(g, OP_TRANSPOSE, 1, &y, "perm", 2, perm);
    graph_add_output(g, op_node(g, OP_ADD, 2, (Value *[]){t, u}, NULL, 0, NULL));
    char err[512];
    Tensor *want = run_graph(g, 1);
    CHECK(pass_fuse_elementwise(g, err, sizeof err) == 1 && g->n_nodes == 1 && node_attr(g->nodes[0], "loads"), "one kernel with views");
    Tensor *got = run_graph(g, 0);
    CHECK(rel_diff(got, want) < 1e-6, "the view kernel after the plain one: %g", rel_diff(got, want));
    tensor_free(p1); tensor_free(want); tensor_free(got); tensor_free(a); tensor_free(b);
    graph_free(plain);
    graph_free(g);
}

/* Random "loads" attributes (small numbers, so that many decode) over two
 * f32 inputs and an int operand: whatever decodes and infers must run, on
 * both kernels, without reading out of bounds (the ASan build runs this). */
static void test_random_loads(void)
{
    int decoded = 0, ran = 0;
    for (int trial = 0; trial < 400; trial++) {
        int64_t d[3] = {2, 3, 2}, code[3] = {PR_ADD, 0, 1}; /* its own transpose's shape */
        Tensor *ins[2] = {rand_tensor(3, d, -1, 1), rand_tensor(3, d, -1, 1)};
        Graph *g = fused_graph(2, ins, code, 3, NULL, 0);
        Node *n = g->nodes[0];
        int64_t shape[3] = {2, 3, 2}; /* a third input: an int operand (a shape, axes or an index) */
        Value *op = ivec(g, irand(1, 3), shape);
        Value **in = realloc(n->in, sizeof(Value *) * 3);
        in[2] = op;
        n->in = in;
        n->n_in = 3;
        Attr *la = node_add_attr(n, "loads", ATTR_INTS);
        int len = trial % 4 ? 12 : irand(5, 24);
        la->ints = malloc(sizeof(int64_t) * (size_t)len);
        la->n = len;
        /* a valid skeleton (two loads of one piece each), then random edits */
        int64_t base[24] = {2, 1, -1, 0, 1, VIEW_TRANSPOSE, 0, -1, 1, -1, 1, 0};
        for (int i = 0; i < len; i++) la->ints[i] = i < 12 ? base[i] : irand(-2, 9);
        for (int e = irand(0, 3); e > 0; e--) la->ints[irand(0, len - 1)] = irand(-2, 9);
        char err[512];
        if (infer_node(g, n, err, sizeof err) == 0) {
            decoded++;
            for (int ref = 0; ref < 2; ref++) {
                Session *s = session_new(g, &(ExecOptions){.reference_only = ref}, err, sizeof err);
                Tensor *out = NULL;
                ran += s && session_run(s, NULL, &out, err, sizeof err) == 0;
                tensor_free(out);
                session_free(s);
            }
        }
        graph_free(g);
        tensor_free(ins[0]);
        tensor_free(ins[1]);
    }
    CHECK(decoded > 0, "no random loads attribute decoded");
    printf("random loads: %d of 400 decoded and inferred, %d runs completed\n", decoded, ran);
}

/* A chain over more inputs than an executor passes to one node (16) is
 * left unfused rather than made into a kernel nothing can run. */
static void test_wide_chain(void)
{
    Graph *g = graph_new("wide");
    g->opset = 17;
    int64_t d[2] = {3, 5};
    Value *acc = vconst(g, "x", rand_tensor(2, d, -1, 1));
    for (int i = 0; i < 20; i++) acc = op_node(g, OP_ADD, 2, (Value *[]){acc, vconst(g, "x", rand_tensor(2, d, -1, 1))}, NULL, 0, NULL);
    graph_add_output(g, acc);
    char err[512];
    Tensor *want = run_graph(g, 1);
    CHECK(pass_fuse_elementwise(g, err, sizeof err) >= 0, "%s", err);
    for (int i = 0; i < g->n_nodes; i++) CHECK(g->nodes[i]->n_in <= 16, "node '%s' has %d inputs", g->nodes[i]->name, g->nodes[i]->n_in);
    Tensor *got = run_graph(g, 0);
    CHECK(rel_diff(got, want) < 1e-6, "wide chain: %g", rel_diff(got, want));
    tensor_free(want); tensor_free(got);
    graph_free(g);
}

/* Hostile "loads" attributes are refused with the node named, never read past. */
static void test_malformed_loads(void)
{
    static const int64_t bad[][12] = {
        {1, 1, -1, 5, 0},                 /* input index past the inputs */
        {1, 1, -1, 0, 1, 99, 0, -1},      /* unknown step code */
        {1, 1, -1, 0, 1, VIEW_TRANSPOSE, 0, 7, 0}, /* attribute past the end */
        {1, 2, 0, 0, 0},                  /* a Concat missing its second piece */
        {2, 1, -1, 0, 0},                 /* a second load missing */
        {1, 1, -1, 0, 0, 4},              /* trailing values */
        {1, 1, -1, 0, 1, VIEW_GATHER, 1, 0, 1, 0}, /* Gather whose index is the f32 input itself */
        {1, 1, -1, 0, 1, VIEW_RESHAPE, 1, -1, -1}, /* Reshape without a shape */
        {1, 1, -1, 0, 1, VIEW_SLICE, 0, 1, 3},     /* an attribute on a step that takes none */
    };
    static const int lens[] = {5, 8, 9, 5, 5, 6, 10, 9, 9};
    for (int c = 0; c < (int)(sizeof lens / sizeof *lens); c++) {
        int64_t d[2] = {3, 4}, code[3] = {PR_NEG, 0, -1};
        Tensor *a = rand_tensor(2, d, -1, 1);
        Graph *g = fused_graph(1, &a, code, 3, NULL, 0);
        Node *n = g->nodes[0];
        Attr *la = node_add_attr(n, "loads", ATTR_INTS);
        la->n = lens[c];
        la->ints = malloc(sizeof(int64_t) * (size_t)lens[c]);
        memcpy(la->ints, bad[c], sizeof(int64_t) * (size_t)lens[c]);
        char err[512] = "";
        int rc = infer_node(g, n, err, sizeof err);
        CHECK(rc != 0 && strstr(err, "fused"), "case %d: accepted, or the node is not named: '%s'", c, err);
        graph_free(g);
        tensor_free(a);
    }
}

/* Every kernel of a real training graph (forward and backward fused). */
static void collect_training_kernels(void)
{
    char err[512];
    Tensor *cf = safetensors_load(VCLIP_DATA_DIR "/tests/fixtures/train_step/reference.safetensors", "class_features", NULL, NULL, err, sizeof err);
    CHECK(cf != NULL, "%s", err);
    if (!cf) return;
    TrainGraphConfig c = {.batch = 2, .frames = 8, .window = 1, .class_features = cf, .logit_scale = 2.6f, .iwr = 1, .beta = 0.5f,
                          .exact_gradient = 1, .captions = 1, .caption_weight = 4};
    TrainGraph tg;
    int rc = train_graph_build(VCLIP_DATA_DIR "/tests/fixtures/train_step/visual.onnx", &c, &tg, err, sizeof err);
    CHECK(rc == 0, "%s", err);
    int k = 0;
    for (int i = 0; !rc && i < tg.g->n_nodes; i++) {
        Program p;
        if (tg.g->nodes[i]->op != OP_FUSED_ELEMENTWISE || program_from_node(tg.g->nodes[i], &p, err, sizeof err)) continue;
        keep_cuda(&p);
        program_free(&p);
        k++;
    }
    CHECK(k >= 10, "the training graph has %d generated kernels", k);
    if (!rc) train_graph_free(&tg);
    tensor_free(cf);
}

/* Every source for both architectures; each PTX must hold `entry`. */
static void compile_all(char *const *srcs, int n, const char *entry, const char *what, const char *why)
{
    const char *arch[2] = {"compute_80", "compute_90"};
    char err[4096];
    int ok = 0;
    for (int i = 0; i < n; i++)
        for (int a = 0; a < 2; a++) {
            char *ptx = srcs[i] ? nvrtc_compile(srcs[i], arch[a], err, sizeof err) : NULL;
            CHECK(ptx && strstr(ptx, entry), "%s %d for %s: %s", what, i, arch[a], ptx ? "no entry point" : err);
            ok += ptx != NULL;
            free(ptx);
        }
    printf("%s: %d %ss compiled for sm_80 and sm_90 (%d PTX)\n", why, n, what, ok);
}

static void test_nvrtc(void)
{
    char why[256], err[4096];
    /* every test run compiles the CUDA kernels; none may pass without it */
    CHECK(nvrtc_available(why, sizeof why), "NVRTC is missing (%s): run tools/install-deps.sh (CUDA toolkit or the "
          "nvidia-cuda-nvrtc wheel in .venv), or point VCLIP_NVRTC at a libnvrtc.so", why);
    if (!nvrtc_available(why, sizeof why)) return;
    const char *arch[2] = {"compute_80", "compute_90"};
    compile_all(sources, n_sources, ".entry vclip_fused", "CUDA kernel", why);
    /* the template kernels (attention, layernorm, softmax, copies) */
    for (int a = 0; a < 2; a++) {
        char *ptx = nvrtc_compile(cuda_templates_source(), arch[a], err, sizeof err);
        CHECK(ptx != NULL, "template kernels for %s: %s", arch[a], err);
        for (int k = 0; ptx && k < cuda_template_kernel_count; k++) {
            char entry[96];
            snprintf(entry, sizeof entry, ".entry %s(", cuda_template_kernels[k]);
            CHECK(strstr(ptx, entry) != NULL, "template kernel %s missing from the %s PTX", cuda_template_kernels[k], arch[a]);
        }
        free(ptx);
    }
    printf("%s: %d template kernels compiled for sm_80 and sm_90\n", why, cuda_template_kernel_count);
    compile_all(reduce_sources, n_reduce_sources, ".entry vclip_reduce", "fused reduction kernel", why);
}

/* Last: breaks the process's compiler on purpose. */
static void test_fallback_without_compiler(void)
{
    setenv("VCLIP_CC", "/nonexistent/vclip-test-cc", 1);
    int64_t d[2] = {7, 3};
    Tensor *a = rand_tensor(2, d, -1, 1);
    int64_t code[6] = {PR_EXP, 0, -1, PR_MUL, 2, 1};
    float k = 0.123456f;
    Tensor *ins[1] = {a};
    Graph *g = fused_graph(1, ins, code, 6, &k, 1);
    Tensor *fast = run_graph(g, 0), *ref = run_graph(g, 1);
    CHECK(rel_diff(fast, ref) < 1e-6, "fallback result differs: %g", rel_diff(fast, ref));
    tensor_free(fast); tensor_free(ref); tensor_free(a);
    graph_free(g);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

int main(void)
{
    char *tmp = getenv("TMPDIR"), path[4096];
    snprintf(path, sizeof path, "%s/vclip-codegen-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    char *made = mkdtemp(path);
    CHECK(made != NULL, "mkdtemp %s", path);
    if (!made) return TEST_SUMMARY();
    setenv("VCLIP_CACHE_DIR", made, 1); /* never the user's kernel cache; removed at the end */
    exec_set_threads(2);
    test_each_opcode();
    test_random_programs();
    test_fusion_pass();
    test_linear_epilogue_pass();
    test_pad_linear_hidden_pass(500);
    test_pad_linear_hidden_pass(40);
    test_bf16_activations_pass(500);
    test_bf16_activations_pass(40);
    test_gemm_accumulate_pass();
    test_fused_reduce();
    test_views();
    test_view_and_plain_kernels_differ();
    test_malformed_loads();
    test_wide_chain();
    test_random_loads();
    collect_training_kernels();
    test_nvrtc();
    test_fallback_without_compiler();
    for (int i = 0; i < n_sources; i++) free(sources[i]);
    for (int i = 0; i < n_reduce_sources; i++) free(reduce_sources[i]);
    nftw(made, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return TEST_SUMMARY();
}
