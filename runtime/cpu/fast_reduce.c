/* fast_reduce.c — ReduceSum and ReduceMean over f32 where the reduced axes
 * are a leading block (the bias gradients of training: columns summed over
 * rows) or a trailing block (rows summed), in parallel, in double like the
 * reference (ref_reduce.c), which takes every other case. */
#include <stdlib.h>
#include "kernels.h"
#include "parallel.h"

typedef struct {
    const float *x;
    float *y;
    int64_t rows, cols;
    double scale; /* 1, or 1/count for a mean */
} Job;

/* y[c] = sum over r of x[r, c], for a block of columns */
static void column_sums(void *ctx, int64_t c0, int64_t c1)
{
    const Job *j = ctx;
    enum { BLOCK = 512 };
    double acc[BLOCK];
    for (int64_t b = c0; b < c1; b += BLOCK) {
        int64_t n = c1 - b < BLOCK ? c1 - b : BLOCK;
        for (int64_t c = 0; c < n; c++) acc[c] = 0;
        for (int64_t r = 0; r < j->rows; r++) {
            const float *row = j->x + r * j->cols + b;
            for (int64_t c = 0; c < n; c++) acc[c] += row[c];
        }
        for (int64_t c = 0; c < n; c++) j->y[b + c] = (float)(acc[c] * j->scale);
    }
}

/* y[r] = sum over c of x[r, c] */
static void row_sums(void *ctx, int64_t r0, int64_t r1)
{
    const Job *j = ctx;
    for (int64_t r = r0; r < r1; r++) {
        const float *row = j->x + r * j->cols;
        double a[4] = {0, 0, 0, 0};
        int64_t c = 0;
        for (; c + 4 <= j->cols; c += 4) { a[0] += row[c]; a[1] += row[c + 1]; a[2] += row[c + 2]; a[3] += row[c + 3]; }
        for (; c < j->cols; c++) a[0] += row[c];
        j->y[r] = (float)((a[0] + a[1] + a[2] + a[3]) * j->scale);
    }
}

int fast_reduce(KernelCtx *k)
{
    const Tensor *x = k->in[0];
    int op = k->ic->node->op;
    if (x->dtype != DT_F32 || x->rank == 0 || (op != OP_REDUCE_SUM && op != OP_REDUCE_MEAN)) return ref_reduce(k);
    uint8_t mask[IR_MAX_RANK];
    if (op_reduce_axes(k->ic, x->rank, mask)) return -1;
    int lead = 0, trail = 0;
    while (lead < x->rank && mask[lead]) lead++;
    while (trail < x->rank && mask[x->rank - 1 - trail]) trail++;
    int reduced = 0;
    for (int i = 0; i < x->rank; i++) reduced += mask[i];
    int leading = lead == reduced, trailing = trail == reduced;
    if (!reduced || (!leading && !trailing)) return ref_reduce(k);
    int64_t split = 1, n = tensor_numel(x);
    for (int i = 0; i < (leading ? lead : x->rank - trail); i++) split *= x->dims[i];
    Job j = {x->data, k->out[0]->data, split, split ? n / split : 0, 1.0};
    int64_t count = leading ? j.rows : j.cols;
    if (count == 0) return ref_reduce(k); /* an empty reduction: the reference's answer (0, or NaN for a mean) */
    if (op == OP_REDUCE_MEAN) j.scale = 1.0 / (double)count;
    if (leading) parallel_for(j.cols, 256, column_sums, &j);
    else parallel_for(j.rows, 64, row_sums, &j);
    return 0;
}
