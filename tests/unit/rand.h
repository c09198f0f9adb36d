/* rand.h — the tests' seeded random data: xorshift64 and f32 tensors with
 * values uniform in [lo, hi).  Define TEST_RNG_SEED before including. */
#ifndef VCLIP_TEST_RAND_H
#define VCLIP_TEST_RAND_H
#include <stdint.h>
#include "../../ir/ir.h"

static uint64_t rng = TEST_RNG_SEED;

static double urand(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (double)(rng >> 11) * (1.0 / 9007199254740992.0);
}

static Tensor *rand_tensor(int rank, const int64_t *dims, double lo, double hi)
{
    Tensor *t = tensor_new(DT_F32, rank, dims);
    for (int64_t i = 0; i < tensor_numel(t); i++) ((float *)t->data)[i] = (float)(lo + (hi - lo) * urand());
    return t;
}
#endif
