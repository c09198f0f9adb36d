/* fused_reduce.c — the two CPU kernels of ai.vclip.FusedReduce: the
 * reference interprets prologue and epilogue per element in double precision
 * (rounding to f32 after each instruction, as the unfused ops would) and
 * sums in double; the fast one runs them rendered as C and compiled at run
 * time (codegen/jit_cpu.c), rows spread over the thread pool, or the
 * reference when no compiler is available. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "kernels.h"
#include "parallel.h"
#include "jit_cpu.h"
#include "../../ir/program.h"

typedef struct {
    Program pro, epi;
    int reduce;
    int64_t rows, K;
    const float *in[64];
    int64_t rs[64];   /* per input: K (full) or 0 (one element) */
    float *out;
    ReduceKernelFn fn;
} Job;

static int decode(KernelCtx *k, Job *j)
{
    const char *r = node_attr_s(k->ic->node, "reduce", "");
    j->reduce = !strcmp(r, "sum") ? REDUCE_SUM : !strcmp(r, "mean") ? REDUCE_MEAN : REDUCE_MAX;
    if (k->n_in > 64) return kernel_fail(k, "more than 64 inputs");
    if (program_from_attrs(k->ic->node, "program", "constants", k->n_in, &j->pro, k->ic->err, sizeof k->ic->err)) return -1;
    if (program_from_attrs(k->ic->node, "epilogue", "epilogue_constants", 1, &j->epi, k->ic->err, sizeof k->ic->err)) {
        program_free(&j->pro);
        return -1;
    }
    const Tensor *full = k->in[0]; /* the shape rows come from: any input with more than one element */
    for (int i = 0; i < k->n_in; i++)
        if (tensor_numel(k->in[i]) != 1) full = k->in[i];
    j->K = full->rank ? full->dims[full->rank - 1] : 1;
    j->rows = j->K ? tensor_numel(full) / j->K : tensor_numel(k->out[0]);
    for (int i = 0; i < k->n_in; i++) {
        j->in[i] = k->in[i]->data;
        j->rs[i] = tensor_numel(k->in[i]) == 1 && full != k->in[i] ? 0 : j->K;
    }
    j->out = k->out[0]->data;
    return 0;
}

static void interpret_rows(void *ctx, int64_t b, int64_t e)
{
    const Job *j = ctx;
    double x[64];
    for (int64_t r = b; r < e; r++) {
        double acc = j->reduce == REDUCE_MAX ? -INFINITY : 0.0;
        for (int64_t c = 0; c < j->K; c++) {
            for (int i = 0; i < j->pro.n_in; i++) x[i] = j->in[i][r * j->rs[i] + (j->rs[i] ? c : 0)];
            double v = (float)program_eval(&j->pro, x);
            acc = j->reduce == REDUCE_MAX ? fmax(acc, v) : acc + v;
        }
        if (j->reduce == REDUCE_MEAN) acc /= (double)j->K;
        double e0 = (float)acc;
        j->out[r] = (float)program_eval(&j->epi, &e0);
    }
}

static void jit_rows(void *ctx, int64_t b, int64_t e)
{
    const Job *j = ctx;
    j->fn(b, e, j->K, j->in, j->rs, j->out);
}

static int run(KernelCtx *k, int fast)
{
    Job j;
    memset(&j, 0, sizeof j);
    if (decode(k, &j)) return -1;
    if (fast) j.fn = jit_cpu_reduce(&j.pro, &j.epi, j.reduce);
    int64_t grain = j.K ? (1 << 14) / j.K + 1 : 1 << 14;
    parallel_for(j.rows, grain, j.fn ? jit_rows : interpret_rows, &j);
    program_free(&j.pro);
    program_free(&j.epi);
    return 0;
}

int ref_fused_reduce(KernelCtx *k) { return run(k, 0); }
int fast_fused_reduce(KernelCtx *k) { return run(k, 1); }
