/* fast_reduce.c — ReduceSum and ReduceMean over f32 where the reduced axes
 * are a leading block (the bias gradients of training: columns summed over
 * rows) or a trailing block (rows summed), in parallel, in double like the
 * reference (ref_reduce.c), which takes every other case.  Column sums run
 * in AVX-512 double lanes where the CPU has them, rows in the same order as
 * the scalar loop, so the sums are the same. */
#include <stdlib.h>
#include "kernels.h"
#include "parallel.h"
#if defined(__x86_64__)
#include "avx512_math.h"
#endif

typedef struct {
    const float *x;
    float *y;
    int64_t rows, cols;
    double scale; /* 1, or 1/count for a mean */
} Job;

#if defined(__x86_64__)
/* Columns c0..c1 (c0 a multiple of 16), up to 2048 at a time: each row's
 * span is read in order into double sums in L1 (a walk down 128 columns,
 * one row every few KB, ran at a quarter of memory speed), rows in order. */
AVX512 static void column_sums_avx512(const Job *j, int64_t c0, int64_t c1)
{
    enum { BLOCK = 2048 };
    __m512d acc[BLOCK / 8];
    for (int64_t b = c0; b < c1; b += BLOCK) {
        int64_t n = c1 - b < BLOCK ? c1 - b : BLOCK, groups = (n + 15) / 16;
        __mmask16 tail = n % 16 ? (__mmask16)((1u << (n % 16)) - 1) : 0xffff;
        for (int64_t g = 0; g < 2 * groups; g++) acc[g] = _mm512_setzero_pd();
        for (int64_t r = 0; r < j->rows; r++) {
            const float *row = j->x + r * j->cols + b;
            for (int64_t g = 0; g < groups; g++) {
                __m512 x = _mm512_maskz_loadu_ps(g == groups - 1 ? tail : 0xffff, row + 16 * g);
                acc[2 * g] = _mm512_add_pd(acc[2 * g], _mm512_cvtps_pd(_mm512_castps512_ps256(x)));
                acc[2 * g + 1] = _mm512_add_pd(acc[2 * g + 1], _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1))));
            }
        }
        __m512d scale = _mm512_set1_pd(j->scale);
        for (int64_t g = 0; g < groups; g++) {
            __m256 l = _mm512_cvtpd_ps(_mm512_mul_pd(acc[2 * g], scale)), h = _mm512_cvtpd_ps(_mm512_mul_pd(acc[2 * g + 1], scale));
            _mm512_mask_storeu_ps(j->y + b + 16 * g, g == groups - 1 ? tail : 0xffff,
                                  _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(l)), _mm256_castps_pd(h), 1)));
        }
    }
}
#endif

/* y[c] = sum over r of x[r, c], for a block of columns */
static void column_sums(void *ctx, int64_t c0, int64_t c1)
{
    const Job *j = ctx;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx512f")) {
        column_sums_avx512(j, c0, c1);
        return;
    }
#endif
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

/* column_sums over 16-column groups g0..g1 */
static void column_group_sums(void *ctx, int64_t g0, int64_t g1)
{
    const Job *j = ctx;
    column_sums(ctx, 16 * g0, 16 * g1 < j->cols ? 16 * g1 : j->cols);
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
    if (leading) { /* whole 16-column groups, shared evenly (768 columns in 256s left one of two threads a third idle) */
        int64_t groups = (j.cols + 15) / 16, per = (groups + parallel_threads() - 1) / parallel_threads();
        parallel_for(groups, per, column_group_sums, &j);
    }
    else parallel_for(j.rows, 64, row_sums, &j);
    return 0;
}
