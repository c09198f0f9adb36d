/* backend_cpu.c — the CPU backend's table (backend.h) over the CPU session
 * (runtime/cpu/session.h): host memory, our kernels and the JIT. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "backend.h"
#include "cpu/gemm.h"
#include "cpu/session.h"

static int cpu_available(char *why, size_t cap)
{
    (void)why;
    (void)cap;
    return 0;
}

/* VCLIP_GEMM=NAME pins one GEMM micro-kernel (benchmarks compare them):
 * 0, or -1 naming the kernels this CPU runs. */
static int pin_gemm_from_env(char *err, size_t cap)
{
    const char *want = getenv("VCLIP_GEMM");
    if (!want || !*want) return 0;
    char names[128] = "";
    for (int k = 0; k < GEMM_KERNEL_COUNT; k++) {
        if (!gemm_kernel_runs((GemmKernel)k)) continue;
        if (!strcmp(want, gemm_kernel_name((GemmKernel)k))) return gemm_pin((GemmKernel)k);
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", *names ? ", " : "", gemm_kernel_name((GemmKernel)k));
    }
    snprintf(err, cap, "VCLIP_GEMM=%s: not a GEMM kernel this CPU runs (it runs: %s)", want, *names ? names : "none; BLAS instead");
    return -1;
}

/* gemm.c's AVX-512 f32 kernel (tile_direct) */
static int cpu_reads_rows_in_place(Precision p) { return p == PRECISION_FP32 && gemm_kernel_for(DT_F32) == GEMM_KERNEL_AVX512; }

static void *cpu_session_new(Graph *g, const BackendOptions *o, char *err, size_t cap)
{
    if (pin_gemm_from_env(err, cap)) return NULL;
    if (o->precision == PRECISION_FP16) { snprintf(err, cap, "--precision fp16 is for --target cuda (the CPU has bf16)"); return NULL; }
    if (o->precision == PRECISION_BF16 && !gemm_available(DT_BF16)) {
        snprintf(err, cap, "--precision bf16: this CPU has no AVX512-BF16; use --precision fp32");
        return NULL;
    }
    ExecOptions eo = {.threads = o->threads, .reference_only = o->reference_only, .outputs_in_arena = o->outputs_in_arena};
    return session_new(g, &eo, err, cap);
}

static int cpu_run(void *s, Tensor *const *in, Tensor **out, char *err, size_t cap) { return session_run(s, in, out, err, cap); }

static void cpu_observe(void *s, void (*fn)(void *ctx, int output, const Tensor *value), void *ctx) { session_observe(s, fn, ctx); }

static void cpu_stats(const void *s, BackendStats *st)
{
    memset(st, 0, sizeof *st);
    st->peak_bytes = session_peak_bytes(s);
    st->arena_bytes = session_arena_bytes(s);
}

static void cpu_session_free(void *s) { session_free(s); }

static int cpu_buffer_alloc(size_t bytes, unsigned long long *h, char *err, size_t cap)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) { snprintf(err, cap, "out of memory (%zu bytes)", bytes); return -1; }
    *h = (unsigned long long)(uintptr_t)p;
    return 0;
}

static int cpu_buffer_write(unsigned long long h, const void *src, size_t bytes, char *err, size_t cap)
{
    (void)err;
    (void)cap;
    memcpy((void *)(uintptr_t)h, src, bytes);
    return 0;
}

static int cpu_buffer_read(void *dst, unsigned long long h, size_t bytes, char *err, size_t cap)
{
    (void)err;
    (void)cap;
    memcpy(dst, (const void *)(uintptr_t)h, bytes);
    return 0;
}

static void cpu_buffer_free(unsigned long long h) { free((void *)(uintptr_t)h); }

/* bf16 where the CPU multiplies bf16 natively (AVX512-BF16; AMX machines
 * have it too), as OpenVINO decides; fp32 elsewhere. */
static Precision cpu_auto_precision(void) { return gemm_available(DT_BF16) ? PRECISION_BF16 : PRECISION_FP32; }

const Backend cpu_backend = {
    .name = "cpu",
    .available = cpu_available,
    .auto_precision = cpu_auto_precision,
    .reads_rows_in_place = cpu_reads_rows_in_place,
    .session_new = cpu_session_new,
    .run = cpu_run,
    .observe = cpu_observe,
    .stats = cpu_stats,
    .session_free = cpu_session_free,
    .buffer_alloc = cpu_buffer_alloc,
    .buffer_write = cpu_buffer_write,
    .buffer_read = cpu_buffer_read,
    .buffer_free = cpu_buffer_free,
};
