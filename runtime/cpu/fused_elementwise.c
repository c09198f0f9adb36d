/* fused_elementwise.c — the two CPU kernels of ai.vclip.FusedElementwise:
 * the reference interprets the program per element in double precision
 * (rounding to f32 after each instruction, as the unfused ops would); the
 * fast one runs the program rendered as C and compiled at run time
 * (codegen/jit_cpu.c) over the thread pool, or the reference when no
 * compiler is available.  Both read their inputs through the node's views
 * (ir/loads.h), with the parameters loads_params computes for the run. */
#include <stdlib.h>
#include "kernels.h"
#include "parallel.h"
#include "jit_cpu.h"
#include "../../ir/program.h"
#include "../../ir/loads.h"

typedef struct {
    const Program *p;
    FusedKernelFn fn;
    int rank;
    const int64_t *dims, *params;  /* params: ir/loads.h's block */
    const int64_t *call_strides;   /* what the compiled kernel gets: NULL on the flat path */
    const float *const *in;        /* per piece */
    float *out;
} Job;

static void jit_range(void *ctx, int64_t b, int64_t e)
{
    const Job *j = ctx;
    j->fn(b, e, j->rank, j->dims, j->in, j->call_strides, j->out);
}

/* The strides of a plain program's inputs over the output (broadcast: 0);
 * *contiguous when every input already has the output's shape. */
static void broadcast_params(const KernelCtx *k, int64_t *params, int *contiguous)
{
    const Tensor *y = k->out[0];
    *contiguous = 1;
    for (int i = 0; i < k->n_in; i++) {
        broadcast_strides(k->in[i], y->rank, y->dims, params + (size_t)i * (size_t)y->rank);
        if (tensor_numel(k->in[i]) != tensor_numel(y) || k->in[i]->rank != y->rank) *contiguous = 0;
    }
}

static void interpret_range(void *ctx, int64_t b, int64_t e)
{
    const Job *j = ctx;
    double x[64];
    int64_t idx[IR_MAX_RANK];
    for (int64_t i = b; i < e; i++) {
        int64_t rem = i;
        for (int d = j->rank - 1; d >= 0; d--) { idx[d] = rem % j->dims[d]; rem /= j->dims[d]; }
        program_load_registers(j->p, j->rank, idx, i, j->in, j->params, x);
        j->out[i] = (float)program_eval(j->p, x);
    }
}

static int run(KernelCtx *k, int fast)
{
    const Node *n = k->ic->node;
    Program p;
    LoadPlan lp;
    if (program_from_node(n, &p, k->ic->err, sizeof k->ic->err)) return -1;
    if (loads_decode(n, &lp, k->ic->err, sizeof k->ic->err)) { program_free(&p); return -1; }
    Tensor *y = k->out[0];
    int rank = y->rank, contiguous = 0, rc = -1;
    int64_t *params = malloc(sizeof(int64_t) * (loads_param_count(&lp, rank) + 1));
    const float *in[64];
    if (!params) { kernel_fail(k, "out of memory"); goto done; }
    if (p.n_in > 64 || lp.n_pieces > 64) { kernel_fail(k, "more than 64 inputs"); goto done; }
    for (int q = 0; q < lp.n_pieces; q++) in[q] = k->in[lp.pieces[q].input]->data;
    if (p.load_pieces) {
        if (loads_params(&lp, n, k->ic->opset, (const Tensor *const *)k->in, rank, y->dims, params, k->ic->err, sizeof k->ic->err)) goto done;
    } else broadcast_params(k, params, &contiguous);
    Job j = {&p, NULL, rank, y->dims, params, NULL, in, y->data};
    int64_t total = tensor_numel(y);
    if (fast) j.fn = jit_cpu_program(&p);
    if (j.fn) {
        j.call_strides = contiguous ? NULL : params;
        parallel_for(total, 1 << 14, jit_range, &j);
    } else {
        parallel_for(total, 4096, interpret_range, &j);
    }
    rc = 0;
done:
    free(params);
    loads_free(&lp);
    program_free(&p);
    return rc;
}

int ref_fused_elementwise(KernelCtx *k) { return run(k, 0); }
int fast_fused_elementwise(KernelCtx *k) { return run(k, 1); }
