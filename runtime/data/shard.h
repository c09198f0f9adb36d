/* shard.h — a rank's share of an epoch, as PyTorch's DistributedSampler
 * deals it: position p of the epoch's (seed, epoch) order goes to rank
 * p mod size.  An epoch is n / global_batch steps on every world size (the
 * tail that fills no global batch is dropped, as drop_last does), so the
 * union of the ranks' batches at step k is the single-process batch k,
 * DistributedSampler's padding is never reached, and a run can resume on
 * another world size with the same global batch. */
#ifndef VCLIP_SHARD_H
#define VCLIP_SHARD_H

#include <stddef.h>

/* Steps per epoch for n items. */
size_t shard_steps(size_t n, size_t global_batch);
/* Writes this rank's positions' items (order[rank], order[rank + size], ...)
 * to out (n / size + 1 entries suffice); returns how many: shard_steps *
 * global_batch / size. */
size_t shard_take(const size_t *order, size_t n, size_t global_batch, int rank, int size, size_t *out);

#endif
