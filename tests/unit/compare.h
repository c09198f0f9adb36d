/* compare.h — how the unit tests compare two tensors: the largest absolute
 * difference relative to the expected tensor's largest magnitude (at least
 * 1e-6), INFINITY when the element counts (or, at equal rank, the dims)
 * differ or a NaN meets a number (fmax alone would drop the NaN); two NaNs
 * at one place count as equal. */
#ifndef VCLIP_TEST_COMPARE_H
#define VCLIP_TEST_COMPARE_H

#include <math.h>
#include <string.h>
#include "../../ir/ir.h"

static inline double rel_diff(const Tensor *got, const Tensor *want)
{
    if (!got || !want || tensor_numel(got) != tensor_numel(want)) return INFINITY;
    if (got->rank == want->rank && memcmp(got->dims, want->dims, sizeof(int64_t) * (size_t)got->rank)) return INFINITY;
    double m = 0, scale = 1e-6;
    for (int64_t i = 0; i < tensor_numel(want); i++) scale = fmax(scale, fabs(tensor_get_f64(want, i)));
    for (int64_t i = 0; i < tensor_numel(want); i++) {
        double x = tensor_get_f64(got, i), y = tensor_get_f64(want, i);
        if (isnan(x) || isnan(y)) { if (isnan(x) != isnan(y)) return INFINITY; continue; }
        m = fmax(m, fabs(x - y));
    }
    return m / scale;
}

#endif
