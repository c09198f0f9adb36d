/* cuda_emulator.h — a host stand-in for the CUDA driver, NVRTC and
 * cuBLASLt, so that the CUDA executor's own logic (where nodes run, what
 * moves across, the device arena, CUDA graph recording and replay) is
 * tested on machines without a GPU.  "Device" memory is host memory; each
 * template kernel and generated elementwise kernel is computed here from
 * its arguments (the latter from the program its source carries); stream
 * capture records copies and launches with their argument values and
 * replays them, reading host sources at replay time as CUDA does.  The
 * kernels themselves are checked on a real device by test_cuda.c. */
#ifndef VCLIP_CUDA_EMULATOR_H
#define VCLIP_CUDA_EMULATOR_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../runtime/cuda/cuda_templates.h"
#include "../../ir/program.h"
#include "../../runtime/cpu/kernels.h"
#include "../../runtime/cuda/cublaslt.h"
#include "../../runtime/cuda/cuda_api.h"

enum { EK_FUSED, EK_LAYERNORM, EK_SOFTMAX, EK_ATTENTION, EK_COPY, EK_ACT_RESIDUAL };

typedef struct {
    int kind;
    char *program_line;    /* fused kernels: the "program:" comment of their source */
    Program prog;
    float consts[64];
    Instr code[256];
    int pieces[64];
} EmuFn;

typedef struct {
    int type;              /* 0 launch, 1 copy, 2 GEMM */
    EmuFn *fn;
    unsigned grid;
    unsigned char args[256] __attribute__((aligned(16)));
    CuPtr dst;
    const void *src;
    size_t bytes;
} EmuOp;

static struct {
    EmuFn fns[512];
    int n_fns;
    int recording;
    EmuOp *rec;
    int n_rec, cap_rec;
    long live_allocs, launches, replays;
} emu;

static EmuFn fixed_fns[] = {{.kind = EK_FUSED}, {.kind = EK_LAYERNORM}, {.kind = EK_SOFTMAX}, {.kind = EK_ATTENTION}, {.kind = EK_COPY}, {.kind = EK_ACT_RESIDUAL}};

static int emu_alloc(CuPtr *p, size_t n)
{
    void *m = calloc(1, n ? n : 1);
    *p = (CuPtr)(uintptr_t)m;
    if (m) emu.live_allocs++;
    return m ? 0 : 2;
}
static int emu_free(CuPtr p) { if (p) emu.live_allocs--; free((void *)(uintptr_t)p); return 0; }
static float *F(CuPtr p) { return (float *)(uintptr_t)p; }

static void emu_record(const EmuOp *op)
{
    if (emu.n_rec == emu.cap_rec) {
        emu.cap_rec = emu.cap_rec ? 2 * emu.cap_rec : 256;
        emu.rec = realloc(emu.rec, sizeof *emu.rec * (size_t)emu.cap_rec);
    }
    emu.rec[emu.n_rec++] = *op;
}

static int emu_h2d(CuPtr d, const void *s, size_t n) { memcpy((void *)(uintptr_t)d, s, n); return 0; }
static int emu_d2h(void *d, CuPtr s, size_t n) { memcpy(d, (const void *)(uintptr_t)s, n); return 0; }
static int emu_h2d_async(CuPtr d, const void *s, size_t n, CuStream st)
{
    (void)st;
    if (emu.recording) { EmuOp op = {.type = 1, .dst = d, .src = s, .bytes = n}; emu_record(&op); return 0; }
    return emu_h2d(d, s, n);
}
static int emu_d2h_async(void *d, CuPtr s, size_t n, CuStream st) { (void)st; return emu.recording ? 900 : emu_d2h(d, s, n); }
static int emu_module_load(CuModule *m, const void *ptx) { (void)ptx; *m = NULL; return 0; }
static int emu_module_unload(CuModule m) { (void)m; return 0; }
static int emu_get_function(CuFunction *f, CuModule m, const char *n) { (void)f; (void)m; (void)n; return 500; }
static int emu_ctx_sync(void) { return 0; }
static int emu_stream_create(CuStream *s, unsigned f) { (void)f; *s = (CuStream)&emu; return 0; }
static int emu_stream_destroy(CuStream s) { (void)s; return 0; }
static int emu_stream_sync(CuStream s) { (void)s; return emu.recording ? 900 : 0; } /* illegal while capturing, as in CUDA */
static int emu_begin_capture(CuStream s, int mode) { (void)s; (void)mode; emu.recording = 1; emu.n_rec = 0; return 0; }

typedef struct { EmuOp *ops; int n; } EmuGraph;
static int emu_end_capture(CuStream s, CuGraph *g)
{
    (void)s;
    EmuGraph *eg = malloc(sizeof *eg);
    eg->ops = malloc(sizeof *eg->ops * (size_t)(emu.n_rec ? emu.n_rec : 1));
    memcpy(eg->ops, emu.rec, sizeof *eg->ops * (size_t)emu.n_rec);
    eg->n = emu.n_rec;
    emu.recording = 0;
    *g = eg;
    return 0;
}
static int emu_graph_instantiate(CuGraphExec *e, CuGraph g, unsigned long long f)
{
    (void)f;
    EmuGraph *src = g, *eg = malloc(sizeof *eg);
    eg->ops = malloc(sizeof *eg->ops * (size_t)(src->n ? src->n : 1));
    memcpy(eg->ops, src->ops, sizeof *eg->ops * (size_t)src->n);
    eg->n = src->n;
    *e = eg;
    return 0;
}
static int emu_graph_free(void *g) { EmuGraph *eg = g; if (eg) free(eg->ops); free(eg); return 0; }

static void emu_fused(const unsigned char *a)
{
    const EmuFn *fn;
    memcpy(&fn, a, sizeof fn);
    long long n;
    int rank;
    CuPtr dims, inptrs, strides, out;
    a += sizeof(void *);
    memcpy(&n, a, 8); memcpy(&rank, a + 8, 4); memcpy(&dims, a + 16, 8); memcpy(&inptrs, a + 24, 8); memcpy(&strides, a + 32, 8);
    memcpy(&out, a + 40, 8);
    const int64_t *d = (const int64_t *)(uintptr_t)dims, *st = (const int64_t *)(uintptr_t)strides;
    const CuPtr *in = (const CuPtr *)(uintptr_t)inptrs;
    const float *streams[64];
    for (int k = 0; k < (fn->prog.load_pieces ? fn->prog.n_pieces : fn->prog.n_in); k++) streams[k] = F(in[k]);
    for (long long i = 0; i < n; i++) {
        double x[64];
        int64_t idx[8];
        long long rem = i;
        for (int q = rank - 1; q >= 0; q--) { idx[q] = rem % d[q]; rem /= d[q]; }
        program_load_registers(&fn->prog, rank, idx, i, streams, st, x);
        F(out)[i] = (float)program_eval(&fn->prog, x);
    }
}

static void emu_run(int kind, const unsigned char *a, unsigned grid)
{
    (void)grid;
    CuPtr p[6];
    switch (kind) {
    case EK_FUSED: emu_fused(a); break;
    case EK_LAYERNORM: {
        long long rows; int cols; float eps;
        memcpy(p, a, 32); memcpy(&rows, a + 32, 8); memcpy(&cols, a + 40, 4); memcpy(&eps, a + 44, 4);
        for (long long r = 0; r < rows; r++) {
            const float *x = F(p[0]) + r * cols;
            double m = 0, v = 0;
            for (int c = 0; c < cols; c++) m += x[c];
            m /= cols;
            for (int c = 0; c < cols; c++) v += (x[c] - m) * (x[c] - m);
            double inv = 1.0 / sqrt(v / cols + eps);
            for (int c = 0; c < cols; c++)
                F(p[3])[r * cols + c] = (float)((x[c] - m) * inv * (p[1] ? F(p[1])[c] : 1.0f) + (p[2] ? F(p[2])[c] : 0.0f));
        }
        break;
    }
    case EK_SOFTMAX: {
        long long rows; int cols;
        memcpy(p, a, 16); memcpy(&rows, a + 16, 8); memcpy(&cols, a + 24, 4);
        for (long long r = 0; r < rows; r++) {
            const float *x = F(p[0]) + r * cols;
            double m = -INFINITY, s = 0;
            for (int c = 0; c < cols; c++) m = fmax(m, x[c]);
            for (int c = 0; c < cols; c++) s += exp(x[c] - m);
            for (int c = 0; c < cols; c++) F(p[1])[r * cols + c] = (float)(exp(x[c] - m) / s);
        }
        break;
    }
    case EK_ATTENTION: {
        CudaAttnArgs g;
        memcpy(p, a, 40); memcpy(&g, a + 40, sizeof g);
        AttentionParams ap = {.heads = g.heads, .head_dim = g.head_dim, .frames = g.frames, .window = g.window, .boundary = g.boundary};
        for (long long b = 0; b < g.B; b++)
            for (long long h = 0; h < g.heads; h++)
                for (long long i = 0; i < g.N; i++) {
                    int64_t src[129];
                    int ns = attention_sources(&ap, b, src);
                    long long qr = g.seq_first ? i * g.B + b : b * g.N + i, d = g.head_dim;
                    double sc[4096], mx = -INFINITY, sum = 0;
                    for (int s = 0; s < ns; s++)
                        for (long long m = 0; m < g.M; m++) {
                            double v = 0;
                            if (src[s] >= 0) {
                                long long kr = g.seq_first ? m * g.B + src[s] : src[s] * g.M + m;
                                for (long long c = 0; c < d; c++)
                                    v += (double)F(p[0])[qr * g.Cq + g.q_off + h * d + c] * F(p[1])[kr * g.Ck + g.k_off + h * d + c];
                                v *= g.scale;
                            }
                            if (g.has_mask) v += F(p[3])[i * g.M + m];
                            if (g.causal && m > i) v = -INFINITY;
                            sc[s * g.M + m] = v;
                            mx = fmax(mx, v);
                        }
                    for (long long j = 0; j < ns * g.M; j++) sum += sc[j] = exp(sc[j] - mx);
                    for (long long c = 0; c < d; c++) {
                        double o = 0;
                        for (int s = 0; s < ns; s++)
                            for (long long m = 0; m < g.M && src[s] >= 0; m++) {
                                long long vr = g.seq_first ? m * g.B + src[s] : src[s] * g.M + m;
                                o += sc[s * g.M + m] * F(p[2])[vr * g.Cv + g.v_off + h * d + c];
                            }
                        F(p[4])[qr * g.Co + h * d + c] = (float)(o / sum);
                    }
                }
        break;
    }
    case EK_COPY: {
        long long n, ib, ob; int rank;
        memcpy(p, a, 16); memcpy(&n, a + 16, 8); memcpy(&rank, a + 24, 4); memcpy(&ib, a + 32, 8); memcpy(&ob, a + 40, 8);
        memcpy(&p[2], a + 48, 8);
        const int64_t *q = (const int64_t *)(uintptr_t)p[2];
        for (long long i = 0; i < n; i++) {
            long long rem = i, s = ib, t = ob;
            for (int d = rank - 1; d >= 0; d--) { long long c = rem % q[d]; rem /= q[d]; s += c * q[rank + d]; t += c * q[2 * rank + d]; }
            F(p[1])[t] = F(p[0])[s];
        }
        break;
    }
    case EK_ACT_RESIDUAL: {
        long long n; int act;
        memcpy(p, a, 24); memcpy(&n, a + 24, 8); memcpy(&act, a + 32, 4);
        for (long long i = 0; i < n; i++) {
            double v = F(p[0])[i];
            if (act == LINEAR_ACT_QUICK_GELU) v = v / (1 + exp(-1.702 * v));
            else if (act == LINEAR_ACT_GELU) v = 0.5 * v * (1 + erf(v / sqrt(2.0)));
            F(p[2])[i] = (float)(v + (p[1] ? F(p[1])[i] : 0.0));
        }
        break;
    }
    }
}

/* The argument values of a launch, packed as the kernels' parameters (8-byte slots; CudaAttnArgs whole). */
static void emu_pack(const EmuFn *fn, void **args, unsigned char *out)
{
    static const int sizes[6][8] = {
        {8, 4, 8, 8, 8, 8, 0}, {8, 8, 8, 8, 8, 4, 4, 0}, {8, 8, 8, 4, 0}, {8, 8, 8, 8, 8, (int)sizeof(CudaAttnArgs), 0},
        {8, 8, 8, 4, 8, 8, 8, 0}, {8, 8, 8, 8, 4, 0}};
    /* offsets as emu_run reads them */
    static const int offs[6][8] = {{0, 8, 16, 24, 32, 40}, {0, 8, 16, 24, 32, 40, 44}, {0, 8, 16, 24}, {0, 8, 16, 24, 32, 40},
                                   {0, 8, 16, 24, 32, 40, 48}, {0, 8, 16, 24, 32}};
    int base = 0;
    if (fn->kind == EK_FUSED) { memcpy(out, &fn, sizeof fn); base = sizeof(void *); }
    for (int i = 0; i < 8 && sizes[fn->kind][i]; i++) memcpy(out + base + offs[fn->kind][i], args[i], (size_t)sizes[fn->kind][i]);
}

static int emu_launch(CuFunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned sh,
                      CuStream s, void **args, void **extra)
{
    (void)gy; (void)gz; (void)bx; (void)by; (void)bz; (void)sh; (void)s; (void)extra;
    EmuOp op = {.type = 0, .fn = f, .grid = gx};
    emu_pack(op.fn, args, op.args);
    emu.launches++;
    if (emu.recording) emu_record(&op);
    else emu_run(op.fn->kind, op.args, gx);
    return 0;
}

static int emu_gemm(const LtGemm *g, CuStream s, char *err, size_t cap);

static int emu_graph_launch(CuGraphExec e, CuStream s)
{
    (void)s;
    EmuGraph *eg = e;
    for (int i = 0; i < eg->n; i++) {
        const EmuOp *op = &eg->ops[i];
        if (op->type == 1) emu_h2d(op->dst, op->src, op->bytes);
        else if (op->type == 2) emu_gemm((const LtGemm *)op->args, NULL, NULL, 0);
        else emu_run(op->fn->kind, op->args, op->grid);
    }
    emu.replays++;
    return 0;
}

static CuFunction emu_lookup(const char *source, const char *name)
{
    static const char *names[] = {"vclip_fused", "vclip_layernorm", "vclip_softmax", "vclip_attention", "vclip_copy", "vclip_act_residual"};
    int kind = -1;
    for (int k = 0; k < 6; k++) if (!strcmp(names[k], name)) kind = k;
    if (kind < 0) return NULL;
    if (kind != EK_FUSED) return source == cuda_templates_source() ? &fixed_fns[kind] : NULL;
    const char *line = strstr(source, "/* program: ");
    if (!line) return NULL;
    size_t len = strcspn(line, "\n");
    for (int i = 0; i < emu.n_fns; i++)
        if (strlen(emu.fns[i].program_line) == len && !strncmp(emu.fns[i].program_line, line, len)) return &emu.fns[i];
    if (emu.n_fns == 512) return NULL;
    EmuFn *fn = &emu.fns[emu.n_fns];
    fn->kind = EK_FUSED;
    fn->program_line = strndup(line, len);
    const char *at = line + strlen("/* program: ");
    int used;
    sscanf(at, "%d %d %d |%n", &fn->prog.n_in, &fn->prog.n_const, &fn->prog.n_instr, &used);
    at += used;
    for (int k = 0; k < fn->prog.n_const; k++) { sscanf(at, "%a%n", &fn->consts[k], &used); at += used; }
    while (*at == ' ' || *at == '|') at++;
    for (int i = 0; i < fn->prog.n_instr; i++) {
        sscanf(at, "%d %d %d%n", &fn->code[i].op, &fn->code[i].a, &fn->code[i].b, &used);
        at += used;
    }
    if (!strncmp(at, " | pieces", 9)) { /* a view program: pieces per register */
        at += 9;
        fn->prog.load_pieces = fn->pieces;
        for (int k = 0; k < fn->prog.n_in; k++) {
            sscanf(at, "%d%n", &fn->pieces[k], &used);
            at += used;
            fn->prog.n_pieces += fn->pieces[k];
        }
    }
    fn->prog.consts = fn->consts;
    fn->prog.code = fn->code;
    emu.n_fns++;
    return fn;
}

static int emu_gemm(const LtGemm *g, CuStream s, char *err, size_t cap)
{
    (void)s; (void)err; (void)cap;
    if (emu.recording) { /* recorded like a launch, computed at replay */
        EmuOp op = {.type = 2};
        memcpy(op.args, g, sizeof *g);
        emu_record(&op);
        return 0;
    }
    for (int64_t i = 0; i < g->M; i++)
        for (int64_t j = 0; j < g->N; j++) {
            double acc = 0;
            for (int64_t k = 0; k < g->K; k++)
                acc += (double)F(g->A)[i * g->K + k] * (g->w_transposed ? F(g->W)[j * g->K + k] : F(g->W)[k * g->N + j]);
            if (g->bias) acc += F(g->bias)[j];
            if (g->C) acc += F(g->C)[i * g->N + j];
            F(g->D)[i * g->N + j] = (float)acc;
        }
    return 0;
}

static const CudaApi emu_api = {
    .major = 9, .minor = 0, .device = "emulated device",
    .mem_alloc = emu_alloc, .mem_free = emu_free, .h2d = emu_h2d, .d2h = emu_d2h, .h2d_async = emu_h2d_async,
    .d2h_async = emu_d2h_async, .module_load = emu_module_load,
    .module_unload = emu_module_unload, .get_function = emu_get_function, .launch = emu_launch, .ctx_sync = emu_ctx_sync,
    .stream_create = emu_stream_create, .stream_destroy = emu_stream_destroy, .stream_sync = emu_stream_sync,
    .begin_capture = emu_begin_capture, .end_capture = emu_end_capture, .graph_instantiate = emu_graph_instantiate,
    .graph_launch = emu_graph_launch, .graph_exec_destroy = emu_graph_free, .graph_destroy = emu_graph_free,
};

static void emulate_cuda(void)
{
    cuda_api_emulate(&emu_api, emu_lookup);
    cublaslt_emulate(emu_gemm);
}

#endif
