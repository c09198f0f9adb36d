/* test_cuda.c — the CUDA backend on a real device, against the oracles the
 * CPU answers to: generated kernels against the program interpreter (every
 * opcode, random programs, flat and broadcast); the template kernels
 * (layernorm, softmax, attention in all its layouts and windows, copies,
 * activation + residual) against the reference kernels; cuBLASLt GEMMs in
 * f32 and bf16 against a double-precision loop; whole CLIP exports through
 * the CUDA session against the CPU session.  Everywhere: our declarations of
 * CUDA's constants and structs against the toolkit's headers, where they
 * are installed.  Without a device the same checks run on the emulated
 * device (cuda_emulator.h): the kernels' CUDA C built for the host, cuBLASLt
 * interpreted; tests/gpu/run.sh runs them on a real one where there is. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "cuda_emulator.h"
#include "../../ir/program.h"
#include "../../runtime/cuda/cuda_driver.h"
#include "../../runtime/cuda/cuda_fused.h"
#include "../../runtime/cuda/cuda_ops.h"
#include "../../runtime/cuda/cuda_exec.h"
#include "../../runtime/cuda/cublaslt.h"
#include "../../runtime/cuda/nccl.h"
#include "../../ir/ops.h"
#include "../../runtime/cpu/session.h"
#include "../../runtime/npy.h"
#include "../../passes/passes.h"
#include "../../onnx/onnx_io.h"

#ifdef VCLIP_HAVE_CUDA_HEADERS
#include <cuda.h>
#include <cublasLt.h>
#include <nccl.h>
_Static_assert((int)VCLIP_CU_STREAM_NON_BLOCKING == (int)CU_STREAM_NON_BLOCKING, "cuda.h");
_Static_assert((int)VCLIP_CU_NOT_READY == (int)CUDA_ERROR_NOT_READY, "cuda.h");
_Static_assert((int)VCLIP_CU_EVENT_DISABLE_TIMING == (int)CU_EVENT_DISABLE_TIMING, "cuda.h");
_Static_assert((int)VCLIP_NCCL_SUCCESS == (int)ncclSuccess && (int)VCLIP_NCCL_IN_PROGRESS == (int)ncclInProgress, "nccl.h");
_Static_assert((int)VCLIP_NCCL_UINT8 == (int)ncclUint8 && (int)VCLIP_NCCL_FLOAT32 == (int)ncclFloat32 && (int)VCLIP_NCCL_FLOAT64 == (int)ncclFloat64, "nccl.h");
_Static_assert((int)VCLIP_NCCL_SUM == (int)ncclSum && (int)VCLIP_NCCL_AVG == (int)ncclAvg, "nccl.h");
_Static_assert(sizeof(NcclUniqueId) == sizeof(ncclUniqueId), "nccl.h");
_Static_assert((int)VCLIP_CU_CAPTURE_THREAD_LOCAL == (int)CU_STREAM_CAPTURE_MODE_THREAD_LOCAL, "cuda.h");
_Static_assert((int)VCLIP_CU_ATTR_CC_MAJOR == (int)CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, "cuda.h");
_Static_assert((int)VCLIP_CU_ATTR_CC_MINOR == (int)CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, "cuda.h");
_Static_assert(sizeof(CuPtr) == sizeof(CUdeviceptr), "cuda.h");
_Static_assert((int)LT_R_32F == (int)CUDA_R_32F && (int)LT_COMPUTE_32F == (int)CUBLAS_COMPUTE_32F, "cublasLt.h");
_Static_assert((int)LT_COMPUTE_32F_FAST_16F == (int)CUBLAS_COMPUTE_32F_FAST_16F && (int)LT_COMPUTE_32F_FAST_16BF == (int)CUBLAS_COMPUTE_32F_FAST_16BF, "cublasLt.h");
_Static_assert((int)LT_OP_N == (int)CUBLAS_OP_N && (int)LT_OP_T == (int)CUBLAS_OP_T, "cublasLt.h");
_Static_assert((int)LT_DESC_TRANSA == (int)CUBLASLT_MATMUL_DESC_TRANSA && (int)LT_DESC_TRANSB == (int)CUBLASLT_MATMUL_DESC_TRANSB, "cublasLt.h");
_Static_assert((int)LT_DESC_EPILOGUE == (int)CUBLASLT_MATMUL_DESC_EPILOGUE && (int)LT_DESC_BIAS_POINTER == (int)CUBLASLT_MATMUL_DESC_BIAS_POINTER, "cublasLt.h");
_Static_assert((int)LT_EPILOGUE_DEFAULT == (int)CUBLASLT_EPILOGUE_DEFAULT && (int)LT_EPILOGUE_BIAS == (int)CUBLASLT_EPILOGUE_BIAS, "cublasLt.h");
_Static_assert((int)LT_PREF_MAX_WORKSPACE_BYTES == (int)CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, "cublasLt.h");
_Static_assert(sizeof(LtAlgo) == sizeof(cublasLtMatmulAlgo_t) && sizeof(LtHeuristic) == sizeof(cublasLtMatmulHeuristicResult_t), "cublasLt.h");
_Static_assert(offsetof(LtHeuristic, state) == offsetof(cublasLtMatmulHeuristicResult_t, state), "cublasLt.h");
#define HEADERS_CHECKED 1
#else
#define HEADERS_CHECKED 0
#endif

#define TEST_RNG_SEED 0xC0DA5EEDull
#include "rand.h"

/* The interpreter over broadcast inputs, element by element. */
static void expected(const Program *p, Tensor *const *ins, Tensor *out)
{
    int rank = out->rank;
    for (int64_t i = 0; i < tensor_numel(out); i++) {
        double x[8];
        for (int k = 0; k < p->n_in; k++) {
            int64_t rem = i, off = 0, s = 1;
            for (int d = rank - 1; d >= 0; d--) {
                int64_t c = rem % out->dims[d];
                rem /= out->dims[d];
                int td = d - (rank - ins[k]->rank);
                int64_t dim = td >= 0 ? ins[k]->dims[td] : 1;
                off += (dim == 1 ? 0 : c) * s;
                s *= dim;
            }
            x[k] = ((float *)ins[k]->data)[off];
        }
        ((float *)out->data)[i] = (float)program_eval(p, x);
    }
}

static void check_program(const int64_t *code, int n_instr, int n_in, Tensor *const *ins, const float *consts, int n_consts,
                          const int64_t *out_dims, int out_rank, const char *what)
{
    Program p = {.n_in = n_in, .n_const = n_consts, .n_instr = n_instr, .consts = consts, .code = malloc(sizeof(Instr) * (size_t)n_instr)};
    for (int i = 0; i < n_instr; i++) p.code[i] = (Instr){(int)code[3 * i], (int)code[3 * i + 1], (int)code[3 * i + 2]};
    Tensor *got = tensor_new(DT_F32, out_rank, out_dims), *want = tensor_new(DT_F32, out_rank, out_dims);
    char err[2048];
    int rc = cuda_run_fused(&p, (const Tensor *const *)ins, n_in, got, err, sizeof err);
    CHECK(rc == 0, "%s: %s", what, err);
    expected(&p, ins, want);
    double worst = 0, scale = 1e-6;
    for (int64_t i = 0; i < tensor_numel(want); i++) scale = fmax(scale, fabs(((float *)want->data)[i]));
    for (int64_t i = 0; !rc && i < tensor_numel(want); i++) {
        float x = ((float *)got->data)[i], y = ((float *)want->data)[i];
        worst = isnan(x) || isnan(y) ? (isnan(x) == isnan(y) ? worst : INFINITY) : fmax(worst, fabs(x - y) / scale);
    }
    CHECK(rc || worst < 1e-5, "%s: device vs interpreter %g", what, worst);
    tensor_free(got);
    tensor_free(want);
    free(p.code);
}

/* ---- template kernels and GEMMs against the reference kernels ---------- */

static CuPtr up(const Tensor *t)
{
    const CudaApi *cu = cuda_api(NULL, 0);
    CuPtr p = 0;
    if (!t) return 0;
    if (cu->mem_alloc(&p, t->nbytes ? t->nbytes : 4) || (t->nbytes && cu->h2d(p, t->data, t->nbytes))) return 0;
    return p;
}

static void down_and_free(Tensor *t, CuPtr p)
{
    const CudaApi *cu = cuda_api(NULL, 0);
    cu->ctx_sync();
    if (t->nbytes) cu->d2h(t->data, p, t->nbytes);
    cu->mem_free(p);
}

static double worst(const Tensor *got, const Tensor *want)
{
    double w = 0, scale = 1e-6;
    for (int64_t i = 0; i < tensor_numel(want); i++) scale = fmax(scale, fabs(((float *)want->data)[i]));
    for (int64_t i = 0; i < tensor_numel(want); i++) {
        float x = ((float *)got->data)[i], y = ((float *)want->data)[i];
        if (isnan(x) || isnan(y)) { if (isnan(x) != isnan(y)) return INFINITY; continue; }
        w = fmax(w, fabs(x - y) / scale);
    }
    return w;
}

/* The reference kernel's answers (n_out of them) for a one-node graph over ins. */
static void reference_outputs(int op, int n_in, Tensor **ins, void (*attrs)(Node *, const void *), const void *ctx, int n_out, Tensor **outs)
{
    Graph *g = graph_new("ref");
    g->opset = 17;
    Value *iv[8], *ov[4];
    for (int i = 0; i < n_in; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "x%d", i);
        iv[i] = ins[i] ? graph_new_value(g, nm) : NULL;
        if (ins[i]) value_set_const(iv[i], tensor_copy(ins[i]));
    }
    for (int j = 0; j < n_out; j++) {
        char nm[16];
        snprintf(nm, sizeof nm, "y%d", j);
        ov[j] = graph_new_value(g, nm);
    }
    Node *n = graph_add_node(g, op, "n", n_in, iv, n_out, ov);
    if (attrs) attrs(n, ctx);
    char err[512];
    const Tensor *ci[8];
    for (int i = 0; i < n_in; i++) ci[i] = ins[i];
    CHECK(exec_node(g, n, ci, outs, &(ExecOptions){.reference_only = 1}, err, sizeof err) == 0, "reference: %s", err);
    graph_free(g);
}

static Tensor *reference(int op, int n_in, Tensor **ins, void (*attrs)(Node *, const void *), const void *ctx)
{
    Tensor *outs[8] = {0};
    reference_outputs(op, n_in, ins, attrs, ctx, 1, outs);
    return outs[0];
}

static void test_layernorm_softmax(void)
{
    char err[1024];
    int64_t xd[2] = {37, 129}, cd[1] = {129};
    Tensor *x = rand_tensor(2, xd, -3, 3), *gm = rand_tensor(1, cd, 0.5, 1.5), *bt = rand_tensor(1, cd, -1, 1);
    Tensor *ins[3] = {x, gm, bt}, *want = reference(OP_LAYER_NORM, 3, ins, NULL, NULL), *got = tensor_new(DT_F32, 2, xd);
    CuPtr dx = up(x), dg = up(gm), db = up(bt), dy = up(got);
    CHECK(cuda_layernorm(dx, dg, db, dy, 37, 129, 1e-5f, NULL, err, sizeof err) == 0, "layernorm: %s", err);
    down_and_free(got, dy);
    CHECK(worst(got, want) < 1e-5, "layernorm vs reference: %g", worst(got, want));
    tensor_free(want);
    want = reference(OP_SOFTMAX, 1, ins, NULL, NULL);
    dy = up(got);
    CHECK(cuda_softmax(dx, dy, 37, 129, NULL, err, sizeof err) == 0, "softmax: %s", err);
    down_and_free(got, dy);
    CHECK(worst(got, want) < 1e-5, "softmax vs reference: %g", worst(got, want));
    const CudaApi *cu = cuda_api(err, sizeof err);
    cu->mem_free(dx); cu->mem_free(dg); cu->mem_free(db);
    tensor_free(want); tensor_free(got); tensor_free(x); tensor_free(gm); tensor_free(bt);
}

typedef struct { const int64_t *pro, *epi; int n_pro, n_epi; const char *reduce; } ReduceCase;

static void reduce_attrs(Node *n, const void *ctx)
{
    const ReduceCase *c = ctx;
    Attr *a = node_add_attr(n, "program", ATTR_INTS); /* (the next node_add_attr may move it) */
    a->n = 3 * c->n_pro;
    a->ints = malloc(sizeof(int64_t) * (size_t)a->n);
    memcpy(a->ints, c->pro, sizeof(int64_t) * (size_t)a->n);
    Attr *e = node_add_attr(n, "epilogue", ATTR_INTS);
    e->n = 3 * c->n_epi;
    e->ints = malloc(sizeof(int64_t) * (size_t)e->n);
    memcpy(e->ints, c->epi, sizeof(int64_t) * (size_t)e->n);
    node_add_attr(n, "reduce", ATTR_STRING)->s = strdup(c->reduce);
}

/* The generated reduction kernel (a block per row, warp shuffles, then a
 * second warp over the warps' sums) against the reference: sum, mean and
 * max of a prologue over rows longer than a block, shorter than a warp,
 * and of one element, with a broadcast scalar input and an epilogue. */
static void test_reduce(void)
{
    char err[1024];
    const CudaApi *cu = cuda_api(err, sizeof err);
    const char *kinds[3] = {"sum", "mean", "max"};
    int64_t Ks[3] = {300, 19, 1};
    for (int r = 0; r < 3; r++)
        for (int k = 0; k < 3; k++) {
            int64_t rows = 7, K = Ks[k], xd[2] = {rows, K};
            Tensor *x = rand_tensor(2, xd, -2, 2), *y = rand_tensor(2, xd, -2, 2), *s = rand_tensor(0, NULL, 0.5, 1.5);
            const int64_t pro[9] = {PR_MUL, 0, 1, PR_ADD, 3, 2, PR_TANH, 4, -1}, epi[3] = {PR_NEG, 0, -1};
            ReduceCase rc = {pro, epi, 3, 1, kinds[r]};
            Tensor *ins[3] = {x, y, s}, *want = reference(OP_FUSED_REDUCE, 3, ins, reduce_attrs, &rc);
            Tensor *got = tensor_new(DT_F32, 1, &rows);
            Instr pc[3] = {{PR_MUL, 0, 1}, {PR_ADD, 3, 2}, {PR_TANH, 4, -1}}, ec[1] = {{PR_NEG, 0, -1}};
            Program pp = {.n_in = 3, .n_instr = 3, .code = pc}, ep = {.n_in = 1, .n_instr = 1, .code = ec};
            CuPtr streams[3] = {up(x), up(y), up(s)}, scratch = 0, out = up(got);
            int64_t rs[3] = {K, K, 0};
            cu->mem_alloc(&scratch, CUDA_FUSED_SCRATCH);
            CHECK(cuda_reduce_launch(&pp, &ep, r, streams, rs, 3, rows, K, out, NULL, scratch, 1, err, sizeof err) == 0,
                  "fused reduction %s over %lld: %s", kinds[r], (long long)K, err);
            down_and_free(got, out);
            CHECK(want && worst(got, want) < 1e-5, "fused reduction %s over rows of %lld vs reference: %g", kinds[r], (long long)K,
                  want ? worst(got, want) : -1.0);
            for (int i = 0; i < 3; i++) cu->mem_free(streams[i]);
            cu->mem_free(scratch);
            tensor_free(x); tensor_free(y); tensor_free(s); tensor_free(want); tensor_free(got);
        }
}

typedef struct { int heads, d, q_off, k_off, v_off, causal, seq_first, frames, window, boundary; } AttnCase;

static void attention_attrs(Node *n, const void *ctx)
{
    const AttnCase *c = ctx;
    node_add_attr(n, "num_heads", ATTR_INT)->i = c->heads;
    node_add_attr(n, "head_dim", ATTR_INT)->i = c->d;
    node_add_attr(n, "q_offset", ATTR_INT)->i = c->q_off;
    node_add_attr(n, "k_offset", ATTR_INT)->i = c->k_off;
    node_add_attr(n, "v_offset", ATTR_INT)->i = c->v_off;
    node_add_attr(n, "scale", ATTR_FLOAT)->f = 0.35f;
    node_add_attr(n, "causal", ATTR_INT)->i = c->causal;
    node_add_attr(n, "seq_first", ATTR_INT)->i = c->seq_first;
    node_add_attr(n, "frames", ATTR_INT)->i = c->frames;
    node_add_attr(n, "window", ATTR_INT)->i = c->window;
    node_add_attr(n, "boundary", ATTR_INT)->i = c->boundary;
}

static void test_attention(void)
{
    struct { int B, N, heads, d, packed, causal, mask, seq_first, frames, window, boundary; } cases[] = {
        {3, 50, 2, 64, 1, 0, 0, 1, 0, 0, 0},  {2, 77, 2, 64, 1, 1, 0, 1, 0, 0, 0}, {2, 19, 3, 16, 0, 0, 1, 0, 0, 0, 0},
        {16, 17, 2, 64, 1, 0, 0, 1, 8, 1, 0}, {16, 17, 2, 64, 1, 0, 0, 1, 8, 1, 1}, {6, 4, 1, 8, 0, 0, 0, 0, 3, 2, 0},
        {2, 9, 1, 100, 0, 1, 1, 0, 0, 0, 0},
    };
    char err[1024];
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int B = cases[c].B, N = cases[c].N, H = cases[c].heads, d = cases[c].d, C = H * d, packed = cases[c].packed;
        int64_t ch = packed ? 3 * C + 5 : C + 3, dims[3] = {cases[c].seq_first ? N : B, cases[c].seq_first ? B : N, ch}, md[2] = {N, N};
        int64_t od[3] = {dims[0], dims[1], C};
        Tensor *x = rand_tensor(3, dims, -1, 1), *y = rand_tensor(3, dims, -1, 1), *z = rand_tensor(3, dims, -1, 1), *m = rand_tensor(2, md, -1, 1);
        AttnCase ac = {H, d, packed ? 1 : 2, packed ? 1 + C : 0, packed ? 1 + 2 * C : 3, cases[c].causal, cases[c].seq_first,
                       cases[c].frames, cases[c].window, cases[c].boundary};
        Tensor *ins[4] = {x, packed ? x : y, packed ? x : z, cases[c].mask ? m : NULL};
        Tensor *want = reference(OP_ATTENTION, cases[c].mask ? 4 : 3, ins, attention_attrs, &ac), *got = tensor_new(DT_F32, 3, od);
        CudaAttnArgs a = {.B = B, .N = N, .M = N, .Cq = ch, .Ck = ch, .Cv = ch, .Co = C, .heads = H, .head_dim = d, .q_off = ac.q_off,
                          .k_off = ac.k_off, .v_off = ac.v_off, .frames = ac.frames, .window = ac.window, .scale = 0.35f,
                          .causal = ac.causal, .seq_first = ac.seq_first, .boundary = ac.boundary, .has_mask = cases[c].mask};
        CuPtr dq = up(ins[0]), dk = up(ins[1]), dv = up(ins[2]), dm = cases[c].mask ? up(m) : 0, dout = up(got);
        CHECK(cuda_attention(dq, dk, dv, dm, dout, &a, NULL, err, sizeof err) == 0, "attention case %zu: %s", c, err);
        down_and_free(got, dout);
        CHECK(worst(got, want) < 1e-5, "attention case %zu vs reference: %g", c, worst(got, want));
        /* the gradient: dq, dk, dv for a random dout, against the reference's (three outputs even where packed) */
        Tensor *g = rand_tensor(3, od, -1, 1), *gins[5] = {g, ins[0], ins[1], ins[2], ins[3]}, *gwant[3] = {0};
        reference_outputs(OP_ATTENTION_GRAD, cases[c].mask ? 5 : 4, gins, attention_attrs, &ac, 3, gwant);
        const CudaApi *cu = cuda_api(err, sizeof err);
        CuPtr dg = up(g), stats = 0, grads[3];
        Tensor *ggot[3];
        for (int t = 0; t < 3; t++) { ggot[t] = rand_tensor(3, dims, 5, 6); grads[t] = up(ggot[t]); } /* stale values to overwrite */
        cu->mem_alloc(&stats, sizeof(float) * 2 * (size_t)(B * H * N));
        CHECK(cuda_attention_grad(dg, dq, dk, dv, dm, stats, grads[0], grads[1], grads[2], &a, NULL, err, sizeof err) == 0,
              "attention gradient case %zu: %s", c, err);
        for (int t = 0; t < 3; t++) {
            down_and_free(ggot[t], grads[t]);
            CHECK(gwant[t] && worst(ggot[t], gwant[t]) < 1e-5, "attention gradient case %zu, d%c vs reference: %g", c, "qkv"[t],
                  gwant[t] ? worst(ggot[t], gwant[t]) : -1.0);
            tensor_free(ggot[t]);
            tensor_free(gwant[t]);
        }
        cu->mem_free(dg); cu->mem_free(stats);
        tensor_free(g);
        cu->mem_free(dq); cu->mem_free(dk); cu->mem_free(dv); if (dm) cu->mem_free(dm);
        tensor_free(want); tensor_free(got); tensor_free(x); tensor_free(y); tensor_free(z); tensor_free(m);
    }
}

static void test_copy_and_activation(void)
{
    char err[1024];
    const CudaApi *cu = cuda_api(err, sizeof err);
    int64_t xd[3] = {3, 5, 7};
    Tensor *x = rand_tensor(3, xd, -3, 3), *r = rand_tensor(3, xd, -1, 1), *y = tensor_new(DT_F32, 3, xd);
    /* a transpose (2, 0, 1): out [7, 3, 5] */
    int64_t params[9] = {7, 3, 5, 1, 35, 7, 15, 5, 1};
    Tensor pt = {.dtype = DT_I64, .rank = 1, .dims = {9}, .data = params, .nbytes = sizeof params};
    CuPtr dx = up(x), dy = up(y), dp = up(&pt), dr = up(r);
    CHECK(cuda_copy(dx, dy, 105, 3, 0, 0, dp, NULL, err, sizeof err) == 0, "copy: %s", err);
    down_and_free(y, dy);
    int bad = 0;
    for (int a = 0; a < 7; a++)
        for (int b = 0; b < 3; b++)
            for (int c = 0; c < 5; c++) bad += ((float *)y->data)[(a * 3 + b) * 5 + c] != ((float *)x->data)[(b * 5 + c) * 7 + a];
    CHECK(bad == 0, "copy as a transpose: %d elements wrong", bad);
    for (int act = 0; act < 3; act++) {
        dy = up(y);
        CHECK(cuda_act_residual(dx, dr, dy, 105, act, NULL, err, sizeof err) == 0, "act %d: %s", act, err);
        down_and_free(y, dy);
        double w = 0;
        for (int i = 0; i < 105; i++) {
            double v = ((float *)x->data)[i];
            if (act == LINEAR_ACT_QUICK_GELU) v = v / (1 + exp(-1.702 * v));
            if (act == LINEAR_ACT_GELU) v = 0.5 * v * (1 + erf(v / sqrt(2.0)));
            w = fmax(w, fabs(((float *)y->data)[i] - (v + ((float *)r->data)[i])));
        }
        CHECK(w < 1e-5, "activation %d + residual: off by %g", act, w);
    }
    cu->mem_free(dx); cu->mem_free(dp); cu->mem_free(dr);
    tensor_free(x); tensor_free(r); tensor_free(y);
}

/* ---- integer index arithmetic, through the session --------------------- */

/* Random values of dtype t in [lo, hi] (f32: every fourth a tie with the
 * one before, and a NaN now and then); lo > hi: any int64 of up to 62 bits */
static Tensor *rand_values(DType t, int rank, const int64_t *dims, int64_t lo, int64_t hi)
{
    Tensor *x = tensor_new(t, rank, dims);
    for (int64_t i = 0; i < tensor_numel(x); i++) {
        double v = lo > hi ? (urand() - 0.5) * 0x1p63 : (double)lo + floor(urand() * (double)(hi - lo + 1));
        if (t == DT_F32) ((float *)x->data)[i] = i % 4 == 3 ? ((float *)x->data)[i - 1] : urand() < 0.05 ? NAN : (float)v * 0.37f;
        else if (t == DT_I64) ((int64_t *)x->data)[i] = (int64_t)v;
        else tensor_set_f64(x, i, v);
    }
    return x;
}

/* One node over graph inputs (their values live on the device) through the
 * CUDA session, against the reference kernel: the same bytes, nothing left
 * to the host. */
static void check_index_node(int op, Tensor **ins, int n_in, const char *attr, int64_t a, const char *attr2, int64_t a2, const char *what)
{
    char err[512];
    Graph *g = graph_new("index");
    g->opset = 17;
    Value *iv[2], *ov = graph_new_value(g, "y");
    for (int i = 0; i < n_in; i++) {
        iv[i] = graph_new_value(g, i ? "b" : "a");
        iv[i]->dtype = ins[i]->dtype;
        iv[i]->shape.rank = ins[i]->rank;
        for (int d = 0; d < ins[i]->rank; d++) iv[i]->shape.d[d] = dim_const(ins[i]->dims[d]);
        graph_add_input(g, iv[i]);
    }
    Node *n = graph_add_node(g, op, "n", n_in, iv, 1, &ov);
    if (attr) node_add_attr(n, attr, ATTR_INT)->i = a;
    if (attr2) node_add_attr(n, attr2, ATTR_INT)->i = a2;
    graph_add_output(g, ov);
    Tensor *want = NULL, *got = NULL;
    const Tensor *ci[2] = {ins[0], n_in > 1 ? ins[1] : NULL};
    CudaSession *cs = NULL;
    int ok = infer_graph(g, err, sizeof err) == 0 && exec_node(g, n, ci, &want, &(ExecOptions){.reference_only = 1}, err, sizeof err) == 0 &&
             (cs = cuda_session_new(g, NULL, err, sizeof err)) && cuda_session_run(cs, ins, &got, err, sizeof err) == 0;
    CHECK(ok, "%s: %s", what, err);
    if (ok) {
        CudaStats st;
        cuda_session_stats(cs, &st);
        CHECK(st.host_nodes == 0 && st.device_nodes == 1, "%s: ran on the host (%s)", what, st.host_ops);
        CHECK(got->dtype == want->dtype && got->nbytes == want->nbytes && !memcmp(got->data, want->data, want->nbytes),
              "%s: the device's bytes differ from the reference's", what);
    }
    tensor_free(want);
    tensor_free(got);
    cuda_session_free(cs);
    graph_free(g);
}

/* Add/Sub/Mul into int64 (wrapping), comparisons, casts between the integer
 * types (truncation, bool as nonzero), ArgMax/ArgMin of integers and f32
 * (ties, NaNs, select_last_index, keepdims) */
static void test_index_ops(void)
{
    const DType types[] = {DT_I64, DT_I32, DT_I8, DT_U8, DT_BOOL};
    const int onnx_types[] = {7, 6, 3, 2, 9};
    const int arith[] = {OP_ADD, OP_SUB, OP_MUL}, cmp[] = {OP_EQUAL, OP_LESS, OP_LESS_OR_EQUAL, OP_GREATER, OP_GREATER_OR_EQUAL};
    int64_t da[3] = {3, 1, 5}, db[2] = {4, 1};
    char what[128];
    for (int k = 0; k < 3; k++) {
        Tensor *ins[2] = {rand_values(DT_I64, 3, da, 1, 0), rand_values(DT_I64, 2, db, 1, 0)};
        snprintf(what, sizeof what, "%s of int64, broadcast", op_name(arith[k]));
        check_index_node(arith[k], ins, 2, NULL, 0, NULL, 0, what);
        tensor_free(ins[0]);
        tensor_free(ins[1]);
    }
    for (int k = 0; k < 5; k++)
        for (int t = 0; t < 5; t++) {
            Tensor *ins[2] = {rand_values(types[t], 3, da, 0, types[t] == DT_BOOL ? 1 : 3), rand_values(types[t], 2, db, 0, types[t] == DT_BOOL ? 1 : 3)};
            snprintf(what, sizeof what, "%s of %s, broadcast", op_name(cmp[k]), dtype_name(types[t]));
            check_index_node(cmp[k], ins, 2, NULL, 0, NULL, 0, what);
            tensor_free(ins[0]);
            tensor_free(ins[1]);
        }
    for (int from = 0; from < 5; from++)
        for (int to = 0; to < 5; to++) {
            int64_t d[2] = {7, 9};
            int64_t lo = types[from] == DT_BOOL ? 0 : types[from] == DT_U8 ? 0 : types[from] == DT_I8 ? -128 : -300000;
            int64_t hi = types[from] == DT_BOOL ? 1 : types[from] == DT_U8 ? 255 : types[from] == DT_I8 ? 127 : 300000;
            Tensor *x = rand_values(types[from], 2, d, lo, hi);
            snprintf(what, sizeof what, "Cast %s to %s", dtype_name(types[from]), dtype_name(types[to]));
            check_index_node(OP_CAST, &x, 1, "to", onnx_types[to], NULL, 0, what);
            tensor_free(x);
        }
    const DType arg_types[] = {DT_F32, DT_I64, DT_I32, DT_BOOL};
    for (int t = 0; t < 4; t++)
        for (int axis = -1; axis < 3; axis++)
            for (int last = 0; last < 2; last++)
                for (int op = 0; op < 2; op++) {
                    int64_t d[3] = {3, 6, 77};
                    Tensor *x = rand_values(arg_types[t], 3, d, -4, 4);
                    snprintf(what, sizeof what, "%s of %s, axis %d, select_last_index %d", op ? "ArgMin" : "ArgMax", dtype_name(arg_types[t]), axis, last);
                    check_index_node(op ? OP_ARGMIN : OP_ARGMAX, &x, 1, "axis", axis, "select_last_index", last, what);
                    tensor_free(x);
                }
}

/* Variants 0-5: W or W^T, with or without C, f32 or bf16; 6 and 7: A
 * stored transposed ([K, M], as the weight gradients take it), with a
 * scale alpha, with W^T and with C. */
static void test_cublaslt(void)
{
    char err[1024];
    if (!cublaslt_available(err, sizeof err)) { CHECK(0, "cuBLASLt: %s", err); return; }
    const CudaApi *cu = cuda_api(err, sizeof err);
    int64_t M = 37, K = 65, N = 70, ad[2] = {M, K}, atd[2] = {K, M}, wd[2] = {K, N}, wtd[2] = {N, K}, bd[1] = {N}, cd[2] = {M, N};
    for (int variant = 0; variant < 8; variant++) {
        int transposed = variant & 1, bf16 = variant == 4 || variant == 5, with_c = variant >= 2, a_t = variant >= 6;
        float alpha = a_t ? 0.625f : 1.0f;
        Tensor *a = rand_tensor(2, a_t ? atd : ad, -1, 1), *w = rand_tensor(2, transposed ? wtd : wd, -1, 1), *b = rand_tensor(1, bd, -1, 1);
        Tensor *c = rand_tensor(2, cd, -1, 1), *d = tensor_new(DT_F32, 2, cd), *want = tensor_new(DT_F32, 2, cd);
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += (double)((float *)a->data)[a_t ? k * M + i : i * K + k] * ((float *)w->data)[transposed ? j * K + k : k * N + j];
                s = alpha * s + ((float *)b->data)[j] + (with_c ? ((float *)c->data)[i * N + j] : 0);
                ((float *)want->data)[i * N + j] = (float)s;
            }
        LtGemm g = {.M = M, .N = N, .K = K, .A = up(a), .W = up(w), .bias = up(b), .C = with_c ? up(c) : 0, .D = up(d),
                    .a_transposed = a_t, .w_transposed = transposed, .alpha = alpha, .compute = bf16 ? GEMM_COMPUTE_BF16 : GEMM_COMPUTE_F32};
        CHECK(cublaslt_gemm(&g, NULL, err, sizeof err) == 0, "GEMM variant %d: %s", variant, err);
        down_and_free(d, g.D);
        double tol = bf16 ? 2e-2 : 1e-5;
        CHECK(worst(d, want) < tol, "GEMM variant %d (%s%s%s%s): %g", variant, a_t ? "A^T, " : "", transposed ? "W^T" : "W",
              with_c ? ", + C" : "", bf16 ? ", bf16" : "", worst(d, want));
        cu->mem_free(g.A); cu->mem_free(g.W); cu->mem_free(g.bias); if (g.C) cu->mem_free(g.C);
        tensor_free(a); tensor_free(w); tensor_free(b); tensor_free(c); tensor_free(d); tensor_free(want);
    }
}

/* Whole exports through the CUDA session against the CPU session, repeated
 * (eager, planned, recorded as a CUDA graph, replayed). */
static void test_sessions(void)
{
    const char *fx[][2] = {{"openai_visual_op17", "input_image.npy"}, {"openai_text_op17", "input_text.npy"},
                           {"hf_visual_op17", "input_pixel_values.npy"}, {"hf_text_op17", "input_input_ids.npy"}};
    for (size_t f = 0; f < sizeof fx / sizeof *fx; f++) {
        char path[1024], err[1024];
        snprintf(path, sizeof path, VCLIP_DATA_DIR "/tests/fixtures/%s/model.onnx", fx[f][0]);
        Graph *g = onnx_load(path, err, sizeof err);
        PassOptions po = {0};
        CHECK(g && !run_passes(g, default_pipeline, &po, err, sizeof err) && !run_passes(g, kernel_pipeline, &po, err, sizeof err), "%s: %s", path, err);
        snprintf(path, sizeof path, VCLIP_DATA_DIR "/tests/fixtures/%s/%s", fx[f][0], fx[f][1]);
        Tensor *in = npy_load(path, err, sizeof err);
        Session *cpu = g ? session_new(g, &(ExecOptions){0}, err, sizeof err) : NULL;
        CudaSession *cs = g ? cuda_session_new(g, NULL, err, sizeof err) : NULL;
        CHECK(in && cpu && cs, "%s: %s", fx[f][0], err);
        for (int run = 0; in && cpu && cs && run < 4; run++) {
            Tensor *want = NULL, *got = NULL;
            CHECK(session_run(cpu, &in, &want, err, sizeof err) == 0, "%s: cpu: %s", fx[f][0], err);
            CHECK(cuda_session_run(cs, &in, &got, err, sizeof err) == 0, "%s run %d: %s", fx[f][0], run, err);
            CHECK(got && want && worst(got, want) < 1e-3, "%s run %d: device vs CPU %g", fx[f][0], run, got && want ? worst(got, want) : -1.0);
            tensor_free(want);
            tensor_free(got);
        }
        CudaStats st;
        if (cs) {
            cuda_session_stats(cs, &st);
            printf("%s: %d nodes on the device, %d of shape arithmetic on the host, arena %.1f MB, %d graph replays %s\n", fx[f][0],
                   st.device_nodes, st.shape_nodes, st.arena_bytes / 1e6, st.graph_replays, st.graph_note);
            CHECK(st.host_nodes == 0 && st.graph_replays > 0, "%s: %d nodes fell back to the host (%s); %d graph replays %s", fx[f][0],
                  st.host_nodes, st.host_ops, st.graph_replays, st.graph_note);
        }
        cuda_session_free(cs);
        session_free(cpu);
        tensor_free(in);
        graph_free(g);
    }
}

int main(void)
{
    printf("CUDA header checks: %s\n", HEADERS_CHECKED ? "our constants and structs match cuda.h and cublasLt.h" : "skipped (no toolkit headers)");
    CudaInfo info;
    char why[512];
    int emulated = cuda_probe(&info, why, sizeof why) != 0;
    if (emulated) {
        printf("no CUDA device (%s): every kernel runs as the host build of its CUDA C on the emulated device\n", why);
        emulate_cuda();
    } else printf("device: %s\n", why);
    int64_t da[3] = {3, 1, 7}, db[2] = {5, 1}, dout[3] = {3, 5, 7};
    for (int op = 0; op < PR_COUNT; op++) {
        int positive = op == PR_LOG || op == PR_SQRT || op == PR_POW, ar = program_op_arity(op);
        Tensor *ins[2] = {rand_tensor(3, da, positive ? 0.2 : -2.5, 2.5), rand_tensor(2, db, positive ? 0.2 : -2.5, 2.5)};
        int64_t code[3] = {op, 0, ar == 2 ? 1 : -1};
        check_program(code, 1, ar, ins, NULL, 0, ar == 2 ? dout : da, 3, program_op_name(op));
        tensor_free(ins[0]);
        tensor_free(ins[1]);
    }
    for (int t = 0; t < 16; t++) { /* random chains over three broadcast inputs, then every input added */
        int64_t d0[3] = {4, 3, 33}, d1[2] = {3, 1}, d2[1] = {33}, full[3] = {4, 3, 33};
        int flat = t % 2;
        Tensor *ins[3] = {rand_tensor(3, d0, -1.5, 1.5), flat ? rand_tensor(3, full, -1.5, 1.5) : rand_tensor(2, d1, -1.5, 1.5),
                          flat ? rand_tensor(3, full, -1.5, 1.5) : rand_tensor(1, d2, -1.5, 1.5)};
        const int ops[] = {PR_ADD, PR_SUB, PR_MUL, PR_MAX, PR_NEG, PR_EXP, PR_SIGMOID, PR_TANH, PR_ABS, PR_QUICK_GELU, PR_GELU};
        float consts[1] = {(float)(urand() - 0.5)};
        int64_t code[3 * 12];
        int m = 3 + (int)(urand() * 5);
        for (int i = 0; i < m; i++) {
            int op = ops[(int)(urand() * (sizeof ops / sizeof *ops))];
            code[3 * i] = op;
            code[3 * i + 1] = i ? 4 + i - 1 : 0;
            code[3 * i + 2] = program_op_arity(op) == 2 ? (int64_t)(urand() * (4 + i)) : -1;
        }
        for (int k = 0; k < 3; k++, m++) { code[3 * m] = PR_ADD; code[3 * m + 1] = 4 + m - 1; code[3 * m + 2] = k; }
        char what[64];
        snprintf(what, sizeof what, "random program %d (%s)", t, flat ? "flat" : "broadcast");
        check_program(code, m, 3, ins, consts, 1, full, 3, what);
        for (int k = 0; k < 3; k++) tensor_free(ins[k]);
    }
    test_layernorm_softmax();
    test_reduce();
    test_attention();
    test_copy_and_activation();
    test_index_ops();
    test_cublaslt();
    test_sessions();
    if (emulated) {
        cublaslt_release();
        CHECK(emu.live_allocs == 0, "%ld emulated device buffers never freed", emu.live_allocs);
        printf("emulated device: %ld kernel launches, %ld GEMMs, %ld graph replays\n", emu.launches, emu.gemms, emu.replays);
    }
    return TEST_SUMMARY();
}
