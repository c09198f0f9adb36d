/* kernel_table.c — the REF and FAST columns of ops.def, plus helpers every
 * kernel file uses (strided iteration, broadcasting strides, errors). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "kernels.h"

const KernelFn ref_kernels[OP_COUNT] = {
#define OP(id, dom, name, pat, inf, ref, fast, grad) [OP_##id] = ref,
#include "../../ir/ops.def"
#undef OP
};

const KernelFn fast_kernels[OP_COUNT] = {
#define OP(id, dom, name, pat, inf, ref, fast, grad) [OP_##id] = fast,
#include "../../ir/ops.def"
#undef OP
};

int kernel_fail(KernelCtx *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->ic->err, sizeof k->ic->err, fmt, ap);
    va_end(ap);
    return -1;
}

void contiguous_strides(int rank, const int64_t *dims, int64_t *strides)
{
    int64_t s = 1;
    for (int i = rank - 1; i >= 0; i--) { strides[i] = s; s *= dims[i]; }
}

void broadcast_strides(const Tensor *t, int rank, const int64_t *dims, int64_t *strides)
{
    int64_t own[IR_MAX_RANK];
    contiguous_strides(t->rank, t->dims, own);
    for (int i = 0; i < rank; i++) {
        int j = i - (rank - t->rank);
        strides[i] = (j < 0 || (t->dims[j] == 1 && dims[i] != 1)) ? 0 : own[j];
    }
}

void siter_init(StridedIter *it, int rank, const int64_t *dims, int k, int64_t strides[][IR_MAX_RANK])
{
    memset(it, 0, sizeof *it);
    it->k = k;
    /* Treat a scalar as a rank-1 space of one element. */
    it->rank = rank ? rank : 1;
    for (int i = 0; i < it->rank; i++) it->dims[i] = rank ? dims[i] : 1;
    for (int j = 0; j < k; j++)
        for (int i = 0; i < it->rank; i++) it->strides[j][i] = rank ? strides[j][i] : 0;
    it->inner = it->dims[it->rank - 1];
    for (int j = 0; j < k; j++) it->inner_stride[j] = it->strides[j][it->rank - 1];
    int64_t rows = 1;
    for (int i = 0; i < it->rank - 1; i++) rows *= it->dims[i];
    it->rows_left = it->inner == 0 ? 0 : rows;
    for (int i = 0; i < it->rank - 1; i++) if (it->dims[i] == 0) it->rows_left = 0;
    it->idx[0] = -1; /* marks "before the first row" */
}

int siter_next(StridedIter *it)
{
    if (it->rows_left <= 0) return 0;
    it->rows_left--;
    if (it->idx[0] < 0) { it->idx[0] = 0; return 1; }
    for (int i = it->rank - 2; i >= 0; i--) {
        it->idx[i]++;
        for (int j = 0; j < it->k; j++) it->off[j] += it->strides[j][i];
        if (it->idx[i] < it->dims[i]) return 1;
        for (int j = 0; j < it->k; j++) it->off[j] -= it->strides[j][i] * it->dims[i];
        it->idx[i] = 0;
    }
    return 1;
}
