/* parallel.h — a small thread pool for the CPU kernels that BLAS does not
 * cover (layernorm, activations, attention heads): parallel_for splits a
 * range into chunks that the caller and the pool's workers take in turn. */
#ifndef VCLIP_PARALLEL_H
#define VCLIP_PARALLEL_H

#include <stdint.h>

/* Threads including the caller; 0 = the number of online CPUs. */
void parallel_set_threads(int n);
int parallel_threads(void);

typedef void (*RangeFn)(void *ctx, int64_t begin, int64_t end);
/* fn over [0, n) in chunks of at least `grain`; serial when small. */
void parallel_for(int64_t n, int64_t grain, RangeFn fn, void *ctx);

#endif
