/* fused_elementwise.c — the two CPU kernels of ai.vclip.FusedElementwise:
 * the reference interprets the program per element in double precision
 * (rounding to f32 after each instruction, as the unfused ops would); the
 * fast one runs the program rendered as C and compiled at run time
 * (codegen/jit_cpu.c) over the thread pool, or the reference when no
 * compiler is available. */
#include <stdlib.h>
#include "kernels.h"
#include "parallel.h"
#include "../../codegen/jit_cpu.h"
#include "../../codegen/program.h"

typedef struct {
    const Program *p;
    FusedKernelFn fn;
    int rank;
    const int64_t *dims, *strides;
    const int64_t *call_strides;   /* what the compiled kernel gets: NULL on the flat path */
    const float *const *in;
    float *out;
} Job;

static void jit_range(void *ctx, int64_t b, int64_t e)
{
    const Job *j = ctx;
    j->fn(b, e, j->rank, j->dims, j->in, j->call_strides, j->out);
}

static void strides_of(const KernelCtx *k, int64_t *strides, int *contiguous)
{
    const Tensor *y = k->out[0];
    *contiguous = 1;
    for (int i = 0; i < k->n_in; i++) {
        broadcast_strides(k->in[i], y->rank, y->dims, strides + (size_t)i * (size_t)(y->rank ? y->rank : 1));
        if (tensor_numel(k->in[i]) != tensor_numel(y) || k->in[i]->rank != y->rank) *contiguous = 0;
    }
}

static void interpret_range(void *ctx, int64_t b, int64_t e)
{
    const Job *j = ctx;
    double x[64];
    for (int64_t i = b; i < e; i++) {
        int64_t rem = i;
        for (int k = 0; k < j->p->n_in; k++) x[k] = 0;
        for (int d = j->rank - 1; d >= 0; d--) {
            int64_t c = rem % j->dims[d];
            rem /= j->dims[d];
            for (int k = 0; k < j->p->n_in; k++) x[k] += (double)(c * j->strides[k * j->rank + d]);
        }
        for (int k = 0; k < j->p->n_in; k++) x[k] = j->in[k][(int64_t)x[k]];
        j->out[i] = (float)program_eval(j->p, x);
    }
}

static int run(KernelCtx *k, int fast)
{
    Program p;
    if (program_from_node(k->ic->node, &p, k->ic->err, sizeof k->ic->err)) return -1;
    if (p.n_in > 64) { program_free(&p); return kernel_fail(k, "more than 64 inputs"); }
    Tensor *y = k->out[0];
    int rank = y->rank, contiguous;
    int64_t *strides = malloc(sizeof(int64_t) * (size_t)(k->n_in * (rank ? rank : 1)) + 1);
    const float *in[64];
    if (!strides) { program_free(&p); return kernel_fail(k, "out of memory"); }
    for (int i = 0; i < k->n_in; i++) in[i] = k->in[i]->data;
    strides_of(k, strides, &contiguous);
    Job j = {&p, NULL, rank, y->dims, strides, NULL, in, y->data};
    int64_t n = tensor_numel(y);
    if (fast) j.fn = jit_cpu_program(&p);
    if (j.fn) {
        j.call_strides = contiguous ? NULL : strides;
        parallel_for(n, 1 << 14, jit_range, &j);
    } else {
        parallel_for(n, 4096, interpret_range, &j);
    }
    free(strides);
    program_free(&p);
    return 0;
}

int ref_fused_elementwise(KernelCtx *k) { return run(k, 0); }
int fast_fused_elementwise(KernelCtx *k) { return run(k, 1); }
