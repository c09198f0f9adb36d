/* cuda_emulator.h — a host stand-in for the CUDA driver and cuBLASLt, so
 * that the CUDA backend runs, kernels included, on machines without a GPU.
 * "Device" memory is host memory.  A kernel is looked up by compiling its
 * source with NVRTC (so every kernel a test launches is also checked by the
 * device compiler) and building the same text for the host (cuda_host.h);
 * a launch runs that host build with the launch's geometry.  cuBLASLt is
 * interpreted: descriptors, layouts (column-major, leading dimensions),
 * transposes, the bias epilogue, compute type (bf16 / f16 inputs rounded as
 * the tensor cores would take them) and scales, then a double-precision
 * GEMM.  Stream capture records copies, launches (their argument values, as
 * CUDA copies them at launch) and GEMMs, and replays them, reading host
 * sources at replay time as CUDA does.
 *
 * Streams are in order, and an asynchronous copy from page-locked host
 * memory (host_alloc) is deferred: it happens only when its stream must
 * have done it (the stream's next other work, a synchronization, or an
 * event recorded after it being waited for).  That is a schedule a real
 * device may choose, so code that reads the destination, or refills the
 * source, without waiting on the right event reads stale data here. */
#ifndef VCLIP_CUDA_EMULATOR_H
#define VCLIP_CUDA_EMULATOR_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cuda_host.h"
#include "../../runtime/cuda/cublaslt.h"
#include "../../runtime/cuda/cuda_api.h"
#include "../../runtime/cuda/nccl.h"
#include "../../runtime/cuda/nvrtc.h"

#define EMU_MAX_FNS 2048
#define EMU_ARG_BYTES 512

typedef struct {
    uint64_t source_key;
    char name[64];
    HostKernel k;
} EmuFn;

/* a GEMM as the descriptors said it (column-major operands) */
typedef struct {
    int compute, trans_a, trans_b, epilogue;
    uint64_t m, n, k;
    int64_t lda, ldb, ldc, ldd;
    float alpha, beta;
    const float *A, *B, *C, *bias;
    float *D;
} EmuGemm;

typedef struct {
    int type;              /* 0 launch, 1 copy, 2 GEMM */
    EmuFn *fn;
    unsigned grid[3], block[3], shared;
    unsigned char args[EMU_ARG_BYTES] __attribute__((aligned(16)));
    CuPtr dst;
    const void *src;
    size_t bytes;
    EmuGemm gemm;
} EmuOp;

typedef struct { uint64_t key; int ok; } EmuChecked;

typedef struct { CuPtr dst; const void *src; size_t bytes; } EmuCopy;
typedef struct {
    EmuCopy *pending;       /* deferred copies, oldest first */
    int n, cap;
    long issued, done;      /* copies ever deferred on it, and carried out */
} EmuStream;
typedef struct { EmuStream *st; long upto; } EmuEvent; /* done once st has done `upto` copies */
#define EMU_MAX_PINNED 64

static struct {
    EmuFn fns[EMU_MAX_FNS];
    int n_fns;
    EmuChecked nvrtc[EMU_MAX_FNS];
    int n_nvrtc;
    int recording;
    EmuOp *rec;
    int n_rec, cap_rec;
    long live_allocs, launches, replays, gemms;
    EmuStream null_stream;
    struct { const char *base; size_t bytes; } pinned[EMU_MAX_PINNED];
    long live_pinned, deferred_copies;
} emu;

static int emu_alloc(CuPtr *p, size_t n)
{
    void *m = calloc(1, n ? n : 1);
    *p = (CuPtr)(uintptr_t)m;
    if (m) emu.live_allocs++;
    return m ? 0 : 2;
}
static int emu_free(CuPtr p) { if (p) emu.live_allocs--; free((void *)(uintptr_t)p); return 0; }

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

static EmuStream *emu_stream(CuStream s) { return s ? (EmuStream *)s : &emu.null_stream; }
/* carry out st's deferred copies until it has done `upto` */
static void emu_catch_up(EmuStream *st, long upto)
{
    while (st->done < upto && st->n) {
        emu_h2d(st->pending[0].dst, st->pending[0].src, st->pending[0].bytes);
        memmove(st->pending, st->pending + 1, sizeof *st->pending * (size_t)--st->n);
        st->done++;
    }
}
static void emu_drain(CuStream s) { EmuStream *st = emu_stream(s); emu_catch_up(st, st->issued); }
static int emu_is_pinned(const void *p)
{
    for (int i = 0; i < EMU_MAX_PINNED; i++)
        if (emu.pinned[i].base && (const char *)p >= emu.pinned[i].base && (const char *)p < emu.pinned[i].base + emu.pinned[i].bytes) return 1;
    return 0;
}
static int emu_host_alloc(void **p, size_t n)
{
    for (int i = 0; i < EMU_MAX_PINNED; i++)
        if (!emu.pinned[i].base) {
            if (!(*p = calloc(1, n ? n : 1))) return 2;
            emu.pinned[i].base = *p;
            emu.pinned[i].bytes = n ? n : 1;
            emu.live_pinned++;
            return 0;
        }
    return 2;
}
static int emu_host_free(void *p)
{
    for (int i = 0; i < EMU_MAX_PINNED; i++)
        if (p && emu.pinned[i].base == p) {
            emu.pinned[i].base = NULL;
            emu.live_pinned--;
            free(p);
            return 0;
        }
    return p ? 1 : 0; /* CUDA_ERROR_INVALID_VALUE: not page-locked memory of ours */
}
static int emu_h2d_async(CuPtr d, const void *s, size_t n, CuStream st)
{
    if (emu.recording) { EmuOp op = {.type = 1, .dst = d, .src = s, .bytes = n}; emu_record(&op); return 0; }
    EmuStream *q = emu_stream(st);
    if (!emu_is_pinned(s)) { emu_drain(st); return emu_h2d(d, s, n); } /* pageable: CUDA stages it before returning */
    if (q->n == q->cap) {
        q->cap = q->cap ? 2 * q->cap : 8;
        q->pending = realloc(q->pending, sizeof *q->pending * (size_t)q->cap);
    }
    q->pending[q->n++] = (EmuCopy){d, s, n};
    q->issued++;
    emu.deferred_copies++;
    return 0;
}
static int emu_d2h_async(void *d, CuPtr s, size_t n, CuStream st)
{
    if (emu.recording) return 900;
    emu_drain(st);
    return emu_d2h(d, s, n);
}
static int emu_d2d_async(CuPtr d, CuPtr s, size_t n, CuStream st)
{
    if (emu.recording) return 900; /* not recorded here: the executor copies its inputs before a recording */
    emu_drain(st);
    memmove((void *)(uintptr_t)d, (const void *)(uintptr_t)s, n);
    return 0;
}
static int emu_event_create(CuEvent *e, unsigned flags) { (void)flags; *e = calloc(1, sizeof(EmuEvent)); return *e ? 0 : 2; }
static int emu_event_destroy(CuEvent e) { free(e); return 0; }
static int emu_event_record(CuEvent e, CuStream s)
{
    if (emu.recording) return 900;
    EmuEvent *ev = e;
    ev->st = emu_stream(s);
    ev->upto = ev->st->issued;
    return 0;
}
static int emu_event_sync(CuEvent e)
{
    EmuEvent *ev = e;
    if (ev->st) emu_catch_up(ev->st, ev->upto);
    return 0;
}
static int emu_stream_wait_event(CuStream s, CuEvent e, unsigned flags) { (void)s; (void)flags; return emu.recording ? 900 : emu_event_sync(e); }
static int emu_module_load(CuModule *m, const void *ptx) { (void)ptx; *m = NULL; return 0; }
static int emu_module_unload(CuModule m) { (void)m; return 0; }
static int emu_get_function(CuFunction *f, CuModule m, const char *n) { (void)f; (void)m; (void)n; return 500; }
static int emu_ctx_sync(void) { emu_drain(NULL); return 0; } /* the executor's streams are synchronized one by one */
static int emu_stream_create(CuStream *s, unsigned f) { (void)f; *s = calloc(1, sizeof(EmuStream)); return *s ? 0 : 2; }
static int emu_stream_destroy(CuStream s)
{
    emu_drain(s);
    if (s) { free(((EmuStream *)s)->pending); free(s); }
    return 0;
}
/* illegal while capturing, as in CUDA */
static int emu_stream_sync(CuStream s) { if (emu.recording) return 900; emu_drain(s); return 0; }
/* the emulated device finishes kernels as they are queued; deferred copies count as not done */
static int emu_stream_query(CuStream s) { return emu.recording ? 900 : emu_stream(s)->n ? VCLIP_CU_NOT_READY : 0; }
static int emu_begin_capture(CuStream s, int mode) { (void)s; (void)mode; emu.recording = 1; emu.n_rec = 0; return 0; }

typedef struct { EmuOp *ops; int n; } EmuGraph;
static EmuGraph *emu_graph_copy(const EmuOp *ops, int n)
{
    EmuGraph *eg = malloc(sizeof *eg);
    eg->ops = malloc(sizeof *eg->ops * (size_t)(n ? n : 1));
    memcpy(eg->ops, ops, sizeof *eg->ops * (size_t)n);
    eg->n = n;
    return eg;
}
static int emu_end_capture(CuStream s, CuGraph *g)
{
    (void)s;
    *g = emu_graph_copy(emu.rec, emu.n_rec);
    emu.recording = 0;
    return 0;
}
static int emu_graph_instantiate(CuGraphExec *e, CuGraph g, unsigned long long f)
{
    (void)f;
    const EmuGraph *src = g;
    *e = emu_graph_copy(src->ops, src->n);
    return 0;
}
static int emu_graph_free(void *g) { EmuGraph *eg = g; if (eg) free(eg->ops); free(eg); return 0; }

/* ---- kernels: NVRTC, then the host build -------------------------------- */

static CuFunction emu_lookup(const char *source, const char *name, char *err, size_t cap)
{
    uint64_t key = fnv1a_str(FNV_OFFSET, source);
    for (int i = 0; i < emu.n_fns; i++)
        if (emu.fns[i].source_key == key && !strcmp(emu.fns[i].name, name)) return &emu.fns[i];
    int checked = -1;
    for (int i = 0; i < emu.n_nvrtc && checked < 0; i++)
        if (emu.nvrtc[i].key == key) checked = emu.nvrtc[i].ok;
    if (checked < 0) { /* what the device would be given: NVRTC must accept it */
        char *ptx = nvrtc_compile(source, "compute_80", err, cap);
        checked = ptx != NULL;
        free(ptx);
        if (emu.n_nvrtc < EMU_MAX_FNS) emu.nvrtc[emu.n_nvrtc++] = (EmuChecked){key, checked};
        if (!checked) return NULL;
    }
    if (!checked) { snprintf(err, cap, "NVRTC rejected the source of '%s'", name); return NULL; }
    if (emu.n_fns == EMU_MAX_FNS) { snprintf(err, cap, "the emulator holds at most %d kernels", EMU_MAX_FNS); return NULL; }
    EmuFn *fn = &emu.fns[emu.n_fns];
    if (host_kernel(source, name, &fn->k, err, cap)) return NULL;
    if (fn->k.bytes > EMU_ARG_BYTES) { snprintf(err, cap, "kernel '%s': %zu bytes of parameters", name, fn->k.bytes); return NULL; }
    fn->source_key = key;
    snprintf(fn->name, sizeof fn->name, "%s", name);
    emu.n_fns++;
    return fn;
}

static int emu_run_launch(EmuOp *op)
{
    char err[1024];
    if (host_launch(&op->fn->k, op->args, op->grid, op->block, op->shared, err, sizeof err)) {
        fprintf(stderr, "emulated device: %s\n", err);
        return 719; /* CUDA_ERROR_LAUNCH_FAILED */
    }
    return 0;
}

static int emu_launch(CuFunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned sh,
                      CuStream s, void **args, void **extra)
{
    (void)extra;
    EmuOp op = {.type = 0, .fn = f, .grid = {gx, gy, gz}, .block = {bx, by, bz}, .shared = sh};
    if (!emu.recording) emu_drain(s); /* in order */
    host_pack(&op.fn->k, args, op.args);
    emu.launches++;
    if (emu.recording) { emu_record(&op); return 0; }
    return emu_run_launch(&op);
}

/* ---- cuBLASLt, interpreted ---------------------------------------------- */

enum { LT_OK = 0, LT_NOT_INITIALIZED = 1, LT_INVALID_VALUE = 7, LT_NOT_SUPPORTED = 15 };
typedef struct { int compute, scale_type, trans_a, trans_b, epilogue; const void *bias; } EmuDesc;
typedef struct { int type; uint64_t rows, cols; int64_t ld; } EmuLayout;
static int emu_handle;

static int lt_create(void **h) { *h = &emu_handle; return LT_OK; }
static int lt_destroy(void *h) { return h == &emu_handle ? LT_OK : LT_NOT_INITIALIZED; }
static size_t lt_version(void) { return 130000; }
static int lt_desc_create(void **d, int compute, int scale_type)
{
    if (compute != LT_COMPUTE_32F && compute != LT_COMPUTE_32F_FAST_16BF && compute != LT_COMPUTE_32F_FAST_16F) return LT_NOT_SUPPORTED;
    if (scale_type != LT_R_32F) return LT_NOT_SUPPORTED;
    EmuDesc *e = calloc(1, sizeof *e);
    e->compute = compute;
    e->scale_type = scale_type;
    e->epilogue = LT_EPILOGUE_DEFAULT;
    *d = e;
    return LT_OK;
}
static int lt_desc_destroy(void *d) { free(d); return LT_OK; }
static int lt_desc_set(void *d, int attr, const void *buf, size_t size)
{
    EmuDesc *e = d;
    int32_t v;
    switch (attr) {
    case LT_DESC_TRANSA: case LT_DESC_TRANSB: case LT_DESC_EPILOGUE:
        if (size != sizeof v) return LT_INVALID_VALUE;
        memcpy(&v, buf, sizeof v);
        if (attr != LT_DESC_EPILOGUE && v != LT_OP_N && v != LT_OP_T) return LT_INVALID_VALUE;
        if (attr == LT_DESC_EPILOGUE && v != LT_EPILOGUE_DEFAULT && v != LT_EPILOGUE_BIAS) return LT_NOT_SUPPORTED;
        *(attr == LT_DESC_TRANSA ? &e->trans_a : attr == LT_DESC_TRANSB ? &e->trans_b : &e->epilogue) = v;
        return LT_OK;
    case LT_DESC_BIAS_POINTER:
        if (size != sizeof e->bias) return LT_INVALID_VALUE;
        memcpy(&e->bias, buf, sizeof e->bias);
        return LT_OK;
    default: return LT_INVALID_VALUE;
    }
}
static int lt_layout_create(void **l, int type, uint64_t rows, uint64_t cols, int64_t ld)
{
    if (type != LT_R_32F) return LT_NOT_SUPPORTED;
    if (ld < (int64_t)(rows ? rows : 1)) return LT_INVALID_VALUE; /* column-major: a column is ld apart */
    EmuLayout *e = malloc(sizeof *e);
    *e = (EmuLayout){type, rows, cols, ld};
    *l = e;
    return LT_OK;
}
static int lt_layout_destroy(void *l) { free(l); return LT_OK; }
static int lt_pref_create(void **p) { *p = malloc(1); return LT_OK; }
static int lt_pref_destroy(void *p) { free(p); return LT_OK; }
static int lt_pref_set(void *p, int attr, const void *buf, size_t size)
{
    (void)p; (void)buf;
    return attr == LT_PREF_MAX_WORKSPACE_BYTES && size == sizeof(uint64_t) ? LT_OK : LT_INVALID_VALUE;
}

/* op(A) [m, k], op(B) [k, n], C and D [m, n]: 0, or the status for a mismatch */
static int lt_shapes(const EmuDesc *d, const EmuLayout *a, const EmuLayout *b, const EmuLayout *c, const EmuLayout *dd, uint64_t *mnk)
{
    uint64_t m = d->trans_a ? a->cols : a->rows, ka = d->trans_a ? a->rows : a->cols;
    uint64_t kb = d->trans_b ? b->cols : b->rows, n = d->trans_b ? b->rows : b->cols;
    if (ka != kb || c->rows != m || c->cols != n || dd->rows != m || dd->cols != n) return LT_INVALID_VALUE;
    mnk[0] = m; mnk[1] = n; mnk[2] = ka;
    return LT_OK;
}
static int lt_heuristic(void *h, void *desc, void *a, void *b, void *c, void *d, void *pref, int requested, LtHeuristic *out, int *found)
{
    uint64_t mnk[3];
    *found = 0;
    if (h != &emu_handle || !pref || requested < 1) return LT_INVALID_VALUE;
    if (lt_shapes(desc, a, b, c, d, mnk)) return LT_INVALID_VALUE;
    memset(out, 0, sizeof *out);
    out->algo.data[0] = 0xE3u;
    *found = 1;
    return LT_OK;
}

static float emu_round_input(float x, int compute)
{
    if (compute == LT_COMPUTE_32F_FAST_16BF) { /* to bf16, nearest even */
        uint32_t u;
        memcpy(&u, &x, 4);
        u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
        memcpy(&x, &u, 4);
    } else if (compute == LT_COMPUTE_32F_FAST_16F) x = (float)(_Float16)x;
    return x;
}

static void emu_gemm_run(const EmuGemm *g)
{
    for (uint64_t j = 0; j < g->n; j++)
        for (uint64_t i = 0; i < g->m; i++) {
            double acc = 0;
            for (uint64_t p = 0; p < g->k; p++) {
                float a = g->trans_a ? g->A[p + i * g->lda] : g->A[i + p * g->lda];
                float b = g->trans_b ? g->B[j + p * g->ldb] : g->B[p + j * g->ldb];
                acc += (double)emu_round_input(a, g->compute) * emu_round_input(b, g->compute);
            }
            double v = g->alpha * acc + (g->beta != 0.0f ? g->beta * (double)g->C[i + j * g->ldc] : 0.0);
            if (g->epilogue == LT_EPILOGUE_BIAS) v += g->bias[i]; /* the bias runs along the rows */
            g->D[i + j * g->ldd] = (float)v;
        }
}

static int lt_matmul(void *h, void *desc, const void *alpha, const void *A, void *la, const void *B, void *lb, const void *beta,
                     const void *C, void *lc, void *D, void *ld, const LtAlgo *algo, void *ws, size_t ws_bytes, CuStream s)
{
    (void)ws; (void)ws_bytes;
    if (!emu.recording) emu_drain(s);
    const EmuDesc *d = desc;
    const EmuLayout *a = la, *b = lb, *c = lc, *dd = ld;
    uint64_t mnk[3];
    if (h != &emu_handle || !algo || algo->data[0] != 0xE3u || lt_shapes(d, a, b, c, dd, mnk)) return LT_INVALID_VALUE;
    if (d->epilogue == LT_EPILOGUE_BIAS && !d->bias) return LT_INVALID_VALUE;
    EmuGemm g = {.compute = d->compute, .trans_a = d->trans_a, .trans_b = d->trans_b, .epilogue = d->epilogue,
                 .m = mnk[0], .n = mnk[1], .k = mnk[2], .lda = a->ld, .ldb = b->ld, .ldc = c->ld, .ldd = dd->ld,
                 .alpha = *(const float *)alpha, .beta = *(const float *)beta, .A = A, .B = B, .C = C, .D = D, .bias = d->bias};
    emu.gemms++;
    if (emu.recording) { /* recorded like a launch, computed at replay */
        EmuOp op = {.type = 2, .gemm = g};
        emu_record(&op);
        return LT_OK;
    }
    emu_gemm_run(&g);
    return LT_OK;
}

static const LtApi emu_lt = {
    .create = lt_create, .destroy = lt_destroy, .version = lt_version, .desc_create = lt_desc_create, .desc_destroy = lt_desc_destroy,
    .desc_set = lt_desc_set, .layout_create = lt_layout_create, .layout_destroy = lt_layout_destroy, .pref_create = lt_pref_create,
    .pref_destroy = lt_pref_destroy, .pref_set = lt_pref_set, .heuristic = lt_heuristic, .matmul = lt_matmul,
};

static int emu_graph_launch(CuGraphExec e, CuStream s)
{
    emu_drain(s);
    EmuGraph *eg = e;
    for (int i = 0; i < eg->n; i++) {
        EmuOp *op = &eg->ops[i];
        int rc = 0;
        if (op->type == 1) emu_h2d(op->dst, op->src, op->bytes);
        else if (op->type == 2) emu_gemm_run(&op->gemm);
        else rc = emu_run_launch(op);
        if (rc) return rc;
    }
    emu.replays++;
    return 0;
}

static const CudaApi emu_api = {
    .major = 9, .minor = 0, .device = "emulated device",
    .mem_alloc = emu_alloc, .mem_free = emu_free, .h2d = emu_h2d, .d2h = emu_d2h, .h2d_async = emu_h2d_async,
    .d2h_async = emu_d2h_async, .d2d_async = emu_d2d_async, .host_alloc = emu_host_alloc, .host_free = emu_host_free,
    .event_create = emu_event_create, .event_destroy = emu_event_destroy, .event_record = emu_event_record, .event_sync = emu_event_sync,
    .stream_wait_event = emu_stream_wait_event, .module_load = emu_module_load,
    .module_unload = emu_module_unload, .get_function = emu_get_function, .launch = emu_launch, .ctx_sync = emu_ctx_sync,
    .stream_create = emu_stream_create, .stream_destroy = emu_stream_destroy, .stream_sync = emu_stream_sync, .stream_query = emu_stream_query,
    .begin_capture = emu_begin_capture, .end_capture = emu_end_capture, .graph_instantiate = emu_graph_instantiate,
    .graph_launch = emu_graph_launch, .graph_exec_destroy = emu_graph_free, .graph_destroy = emu_graph_free,
};

/* ---- NCCL stand-in: a world of one rank, where a sum and a mean leave the
 * buffer as it is; it refuses arguments NCCL would refuse and counts what
 * it was asked, so a test can check which buffers the trainer reduced. */
enum { EMU_NCCL_INVALID = 4 };
static struct { long calls, avg_calls, elements, groups; int in_group, comms; } emu_nccl;
static int nccl_version(int *v) { *v = 22809; return 0; }
static int nccl_unique_id(NcclUniqueId *id) { memset(id, 0x5a, sizeof *id); return 0; }
static int nccl_init(NcclComm *c, int n, NcclUniqueId id, int rank)
{
    for (size_t i = 0; i < sizeof id.internal; i++)
        if (id.internal[i] != 0x5a) return EMU_NCCL_INVALID; /* not the id rank 0 made */
    if (n != 1 || rank != 0) return EMU_NCCL_INVALID;
    *c = &emu_nccl;
    emu_nccl.comms++;
    return 0;
}
static int nccl_destroy(NcclComm c) { if (c != &emu_nccl) return EMU_NCCL_INVALID; emu_nccl.comms--; return 0; }
static int nccl_async_error(NcclComm c, int *e) { *e = 0; return c == &emu_nccl ? 0 : EMU_NCCL_INVALID; }
static const char *nccl_error_string(int r) { return r == EMU_NCCL_INVALID ? "invalid argument (emulated NCCL)" : "emulated NCCL error"; }
static size_t nccl_size(int dt) { return dt == VCLIP_NCCL_FLOAT64 ? 8 : dt == VCLIP_NCCL_FLOAT32 ? 4 : dt == VCLIP_NCCL_UINT8 ? 1 : 0; }
static int nccl_all_reduce(const void *s, void *r, size_t count, int dt, int op, NcclComm c, CuStream st)
{
    (void)st;
    if (c != &emu_nccl || !nccl_size(dt) || (op != VCLIP_NCCL_SUM && op != VCLIP_NCCL_AVG) || !s || !r) return EMU_NCCL_INVALID;
    if (s != r) memcpy(r, s, count * nccl_size(dt));
    emu_nccl.calls++;
    emu_nccl.avg_calls += op == VCLIP_NCCL_AVG;
    emu_nccl.elements += (long)count;
    return 0;
}
static int nccl_broadcast(const void *s, void *r, size_t count, int dt, int root, NcclComm c, CuStream st)
{
    (void)st;
    if (c != &emu_nccl || !nccl_size(dt) || root != 0) return EMU_NCCL_INVALID;
    if (s != r) memcpy(r, s, count * nccl_size(dt));
    return 0;
}
static int nccl_all_gather(const void *s, void *r, size_t count, int dt, NcclComm c, CuStream st)
{
    (void)st;
    if (c != &emu_nccl || !nccl_size(dt)) return EMU_NCCL_INVALID;
    if (s != r) memcpy(r, s, count * nccl_size(dt));
    return 0;
}
static int nccl_group_start(void) { emu_nccl.in_group++; return 0; }
static int nccl_group_end(void) { if (!emu_nccl.in_group) return EMU_NCCL_INVALID; emu_nccl.in_group--; emu_nccl.groups++; return 0; }

static const NcclApi emu_nccl_api = {
    .get_version = nccl_version, .get_unique_id = nccl_unique_id, .comm_init_rank = nccl_init, .comm_destroy = nccl_destroy,
    .comm_abort = nccl_destroy, .comm_get_async_error = nccl_async_error, .get_error_string = nccl_error_string,
    .all_reduce = nccl_all_reduce, .broadcast = nccl_broadcast, .all_gather = nccl_all_gather, .group_start = nccl_group_start,
    .group_end = nccl_group_end,
};

static void emulate_cuda(void)
{
    cuda_api_emulate(&emu_api, emu_lookup);
    cublaslt_emulate(&emu_lt);
    nccl_emulate(&emu_nccl_api);
}

#endif
