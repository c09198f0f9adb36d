/* parallel.c — see parallel.h.  Workers sleep on a condition variable
 * between jobs; a job hands out chunks through an atomic counter, so uneven
 * chunks balance themselves, and the caller works too.  A model runs a few
 * hundred jobs back to back, and a wake-up through the kernel costs 10-50
 * us each: so a worker first spins briefly (about 50 us) for the next job,
 * and the caller for the workers to finish, before sleeping — only while
 * there are no more threads than cores. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#include "parallel.h"

#define MAX_THREADS 64

static struct {
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    pthread_t tid[MAX_THREADS];
    int started, wanted;
    _Atomic uint64_t generation;
    RangeFn fn;
    void *ctx;
    int64_t n, chunk;
    atomic_llong next;
    atomic_int active; /* workers still on the current job */
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};

static void run_chunks(RangeFn fn, void *ctx, int64_t n, int64_t chunk)
{
    for (;;) {
        int64_t b = atomic_fetch_add(&pool.next, chunk);
        if (b >= n) return;
        fn(ctx, b, b + chunk < n ? b + chunk : n);
    }
}

static int spin_limit(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return pool.wanted <= cpus ? 20000 : 0;
}

static inline void relax(void)
{
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
}

static void *worker(void *arg)
{
    (void)arg;
    uint64_t seen = 0;
    int spins = spin_limit();
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        if (atomic_load(&pool.generation) == seen) {
            pthread_mutex_unlock(&pool.mu);
            for (int i = 0; i < spins && atomic_load_explicit(&pool.generation, memory_order_acquire) == seen; i++) relax();
            pthread_mutex_lock(&pool.mu);
        }
        while (atomic_load(&pool.generation) == seen) pthread_cond_wait(&pool.work, &pool.mu);
        seen = pool.generation;
        RangeFn fn = pool.fn;
        void *ctx = pool.ctx;
        int64_t n = pool.n, chunk = pool.chunk;
        pthread_mutex_unlock(&pool.mu);
        run_chunks(fn, ctx, n, chunk);
        pthread_mutex_lock(&pool.mu);
        if (atomic_fetch_sub(&pool.active, 1) == 1) pthread_cond_signal(&pool.done);
    }
    return NULL;
}

void parallel_set_threads(int n)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 0) n = cpus > 0 ? (int)cpus : 1;
    pool.wanted = n > MAX_THREADS ? MAX_THREADS : n;
}

int parallel_threads(void)
{
    if (!pool.wanted) parallel_set_threads(0);
    return pool.wanted;
}

void parallel_for(int64_t n, int64_t grain, RangeFn fn, void *ctx)
{
    int t = parallel_threads();
    if (grain < 1) grain = 1;
    if (t <= 1 || n < 2 * grain) { fn(ctx, 0, n); return; }
    pthread_mutex_lock(&pool.mu);
    while (pool.started < t - 1 && pthread_create(&pool.tid[pool.started], NULL, worker, NULL) == 0) {
        pthread_detach(pool.tid[pool.started]);
        pool.started++;
    }
    int workers = pool.started < t - 1 ? pool.started : t - 1;
    int64_t chunk = n / (4 * (workers + 1));
    if (chunk < grain) chunk = grain;
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    pool.chunk = chunk;
    atomic_store(&pool.next, 0);
    atomic_store(&pool.active, pool.started); /* every started worker wakes for each job */
    atomic_fetch_add(&pool.generation, 1);
    pthread_cond_broadcast(&pool.work);
    pthread_mutex_unlock(&pool.mu);
    run_chunks(fn, ctx, n, chunk);
    for (int i = 0, spins = spin_limit(); i < spins && atomic_load_explicit(&pool.active, memory_order_acquire) > 0; i++) relax();
    pthread_mutex_lock(&pool.mu);
    while (atomic_load(&pool.active) > 0) pthread_cond_wait(&pool.done, &pool.mu);
    pthread_mutex_unlock(&pool.mu);
}
