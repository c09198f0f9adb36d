/* gemm.c — the C side of bench/bench_gemm.py: times our GEMM (each f32 and
 * bf16 kernel this CPU runs, weights pre-packed as a compiled model holds them)
 * against OpenBLAS's sgemm on the Linear shapes of ViT-B/32 (tokens x 768 ->
 * 2304, 768, 3072; 3072 -> 768), on the same number of threads, the systems
 * alternating in rounds.  "cold" evicts the caches before every call (512 MB
 * written), as a model run meets its weights; "warm" reuses them.  Prints one
 * JSON line per (shape, system): the median ms and GFLOP/s. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../ir/base.h"
#include "../runtime/cpu/gemm.h"
#include "../runtime/cpu/parallel.h"

void openblas_set_num_threads(int);

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

int main(int argc, char **argv)
{
    if (argc < 3) { fprintf(stderr, "usage: gemm TOKENS THREADS [ROUNDS [REPEATS [warm|cold]]]\n"); return 2; }
    int64_t M = atoll(argv[1]);
    int threads = atoi(argv[2]), rounds = argc > 3 ? atoi(argv[3]) : 3, repeats = argc > 4 ? atoi(argv[4]) : 10;
    int cold = argc > 5 && !strcmp(argv[5], "cold");
    if (M < 1 || threads < 1 || rounds < 1 || repeats < 1 || repeats > 63) { fprintf(stderr, "gemm: bad arguments\n"); return 2; }
    size_t junk_bytes = (size_t)512 << 20;
    char *junk = cold ? calloc(1, junk_bytes) : NULL;
    if (cold && !junk) { fprintf(stderr, "gemm: out of memory\n"); return 1; }
    parallel_set_threads(threads);
    openblas_set_num_threads(threads);
    static const int64_t shapes[][2] = {{768, 2304}, {768, 768}, {768, 3072}, {3072, 768}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int64_t K = shapes[s][0], N = shapes[s][1];
        float *A = malloc(sizeof(float) * (size_t)(M * K)), *B = malloc(sizeof(float) * (size_t)(K * N));
        float *C = malloc(sizeof(float) * (size_t)(M * N));
        float *panels = aligned_alloc(64, sizeof(float) * (size_t)gemm_packed_floats(K, N));
        uint16_t *panels16 = aligned_alloc(64, (sizeof(uint16_t) * (size_t)gemm_packed_bf16_halves(K, N) + 63) / 64 * 64);
        uint64_t r = 7;
        for (int64_t i = 0; i < M * K; i++) { r = r * 6364136223846793005ull + 1; A[i] = (float)((r >> 40) / 16777216.0 - 0.5); }
        for (int64_t i = 0; i < K * N; i++) { r = r * 6364136223846793005ull + 1; B[i] = (float)((r >> 40) / 16777216.0 - 0.5); }
        gemm_pack_b(B, K, N, 0, panels);
        PackedB pb = {.dtype = DT_F32, .panels = panels, .K = K, .N = N}, pb16 = {.dtype = DT_BF16, .panels = panels16, .K = K, .N = N};
        int bf16 = gemm_available(DT_BF16);
        if (bf16) gemm_pack_b_bf16(B, K, N, 0, panels16);
        /* systems: OpenBLAS, then each kernel this CPU runs (bf16 ones on bf16 panels) */
        int kernels[GEMM_KERNEL_COUNT], nk = 0;
        for (int k = 0; k < GEMM_KERNEL_COUNT; k++)
            if (gemm_kernel_runs((GemmKernel)k)) kernels[nk++] = k;
        double *times = calloc((size_t)(nk + 1) * (size_t)rounds, sizeof(double));
        for (int round = 0; round < rounds; round++)
            for (int sys = 0; sys <= nk; sys++) {
                double t[64];
                if (sys > 0) gemm_pin((GemmKernel)kernels[sys - 1]);
                for (int it = 0; it <= repeats; it++) {
                    for (size_t z = 0; cold && z < junk_bytes; z += 64) junk[z]++;
                    double t0 = now_ms();
                    if (sys == 0) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, A, (int)K, B, (int)N, 0.0f, C, (int)N);
                    else gemm(M, A, K, gemm_kernel_dtype((GemmKernel)kernels[sys - 1]) == DT_BF16 ? &pb16 : &pb, C, N, NULL);
                    if (it > 0) t[it - 1] = now_ms() - t0;
                }
                gemm_unpin();
                if (sys == 0) usleep(300000); /* OpenBLAS's idle threads spin for a while: not into our rounds */
                times[sys * rounds + round] = median(t, repeats);
            }
        for (int sys = 0; sys <= nk; sys++) {
            double ms = median(times + sys * rounds, rounds);
            printf("{\"M\": %lld, \"K\": %lld, \"N\": %lld, \"cache\": \"%s\", \"system\": \"%s\", \"ms\": %.4f, \"gflops\": %.1f}\n",
                   (long long)M, (long long)K, (long long)N, cold ? "cold" : "warm", sys == 0 ? "openblas" : gemm_kernel_name((GemmKernel)kernels[sys - 1]), ms,
                   2.0 * (double)M * (double)K * (double)N / ms / 1e6);
        }
        free(times); free(A); free(B); free(C); free(panels); free(panels16);
    }
    free(junk);
    return 0;
}
