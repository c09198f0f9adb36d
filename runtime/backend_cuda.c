/* backend_cuda.c — the CUDA backend's table (backend.h) over the CUDA
 * session (runtime/cuda/cuda_exec.h): device 0, cuBLASLt GEMMs, NVRTC
 * kernels, CUDA graphs.  Where there is no driver or device, available()
 * and session_new() say so. */
#include <stdio.h>
#include <string.h>
#include "backend.h"
#include "cuda/cuda_api.h"
#include "cuda/cuda_exec.h"
#include "cuda/cuda_driver.h"

static int cuda_available(char *why, size_t cap) { return cuda_api(why, cap) ? 0 : -1; }

static void *cuda_backend_session_new(Graph *g, const BackendOptions *o, char *err, size_t cap)
{
    if (o->reference_only) { snprintf(err, cap, "--reference runs the CPU's reference kernels (use --target cpu)"); return NULL; }
    CudaOptions co = {.compute = o->precision == PRECISION_BF16 ? GEMM_COMPUTE_BF16
                                 : o->precision == PRECISION_FP16 ? GEMM_COMPUTE_F16
                                                                  : GEMM_COMPUTE_F32,
                      .no_graphs = o->no_graphs};
    return cuda_session_new(g, &co, err, cap);
}

static int cuda_backend_run(void *s, Tensor *const *in, Tensor **out, char *err, size_t cap)
{
    return cuda_session_run(s, in, out, err, cap);
}

static int cuda_train_begin(void *s, const TrainSpec *t, char *err, size_t cap)
{
    CudaTrainSpec cs = {t->n_params, t->grad_first, t->params, t->decay, t->beta1, t->beta2, t->eps, t->weight_decay};
    return cuda_session_train(s, &cs, err, cap);
}

static int cuda_train_run(void *s, Tensor *const *in, Tensor **out, TrainStep *t, char *err, size_t cap)
{
    CudaTrainStep cs = {t->step, t->lr, t->max_norm, t->loss_scale, t->check_loss, 0, 0, t->reduce, t->reduce_ctx};
    int rc = cuda_session_train_run(s, in, out, &cs, err, cap);
    t->norm = cs.norm;
    t->applied = cs.applied;
    return rc;
}

static int cuda_backend_stage(void *s, Tensor *const *in, char *err, size_t cap) { return cuda_session_stage(s, in, err, cap); }

static void cuda_backend_while_running(void *s, int (*fn)(void *ctx, char *err, size_t cap), void *ctx) { cuda_session_while_running(s, fn, ctx); }

static int cuda_train_swa(void *s, double weight, char *err, size_t cap) { return cuda_session_train_swa(s, weight, err, cap); }

static int cuda_train_sync(void *s, Tensor *const *m, Tensor *const *v, Tensor *const *swa, int to_host, char *err, size_t cap)
{
    return cuda_session_train_sync(s, m, v, swa, to_host, err, cap);
}

static void cuda_backend_stats(const void *s, BackendStats *st)
{
    CudaStats cs;
    cuda_session_stats(s, &cs);
    memset(st, 0, sizeof *st);
    st->arena_bytes = cs.arena_bytes;
    st->weight_bytes = cs.weight_bytes;
    st->device_nodes = cs.device_nodes;
    st->host_nodes = cs.host_nodes;
    st->graph_replays = cs.graph_replays;
    snprintf(st->note, sizeof st->note, "%s", cs.graph_note);
}

static void cuda_backend_session_free(void *s) { cuda_session_free(s); }

static int cuda_buffer_alloc(size_t bytes, unsigned long long *h, char *err, size_t cap)
{
    const CudaApi *cu = cuda_api(err, cap);
    CuPtr p = 0;
    if (!cu) return -1;
    if (cu->mem_alloc(&p, bytes ? bytes : 1)) { snprintf(err, cap, "device allocation of %zu bytes failed", bytes); return -1; }
    *h = p;
    return 0;
}

static int cuda_buffer_write(unsigned long long h, const void *src, size_t bytes, char *err, size_t cap)
{
    const CudaApi *cu = cuda_api(err, cap);
    if (!cu) return -1;
    if (cu->h2d(h, src, bytes)) { snprintf(err, cap, "copy of %zu bytes to the device failed", bytes); return -1; }
    return 0;
}

static int cuda_buffer_read(void *dst, unsigned long long h, size_t bytes, char *err, size_t cap)
{
    const CudaApi *cu = cuda_api(err, cap);
    if (!cu) return -1;
    if (cu->d2h(dst, h, bytes)) { snprintf(err, cap, "copy of %zu bytes from the device failed", bytes); return -1; }
    return 0;
}

static void cuda_buffer_free(unsigned long long h)
{
    char err[8];
    const CudaApi *cu = cuda_api(err, sizeof err);
    if (cu && h) cu->mem_free(h);
}

/* fp32 until the device's bf16 path has been measured on a GPU (issue 15). */
static Precision cuda_auto_precision(void) { return PRECISION_FP32; }

const Backend cuda_backend = {
    .name = "cuda",
    .available = cuda_available,
    .auto_precision = cuda_auto_precision,
    .session_new = cuda_backend_session_new,
    .run = cuda_backend_run,
    .train_begin = cuda_train_begin,
    .train_run = cuda_train_run,
    .train_sync = cuda_train_sync,
    .train_swa = cuda_train_swa,
    .stage = cuda_backend_stage,
    .while_running = cuda_backend_while_running,
    .stats = cuda_backend_stats,
    .session_free = cuda_backend_session_free,
    .buffer_alloc = cuda_buffer_alloc,
    .buffer_write = cuda_buffer_write,
    .buffer_read = cuda_buffer_read,
    .buffer_free = cuda_buffer_free,
    .select_device = cuda_use_device,
};
