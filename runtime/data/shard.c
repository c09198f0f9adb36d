/* shard.c — see shard.h. */
#include "shard.h"

size_t shard_steps(size_t n, size_t global_batch) { return global_batch ? n / global_batch : 0; }

size_t shard_take(const size_t *order, size_t n, size_t global_batch, int rank, int size, size_t *out)
{
    size_t kept = shard_steps(n, global_batch) * global_batch, k = 0;
    for (size_t p = (size_t)rank; p < kept; p += (size_t)size) out[k++] = order[p];
    return k;
}
