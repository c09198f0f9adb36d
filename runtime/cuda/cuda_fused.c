/* cuda_fused.c — see cuda_fused.h. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cuda_api.h"
#include "cuda_fused.h"
#include "../../codegen/render.h"

size_t cuda_fused_broadcast_params(int n_in, const int64_t *const *in_dims, const int *in_rank, int rank, const int64_t *dims,
                                   int64_t *params)
{
    int flat = 1;
    for (int k = 0; k < n_in; k++) {
        if (in_rank[k] != rank || memcmp(in_dims[k], dims, sizeof(int64_t) * (size_t)rank)) flat = 0;
        int64_t s = 1;
        for (int d = rank - 1; d >= 0; d--) {
            int td = d - (rank - in_rank[k]);
            int64_t dim = td >= 0 ? in_dims[k][td] : 1;
            params[k * rank + d] = dim == 1 ? 0 : s;
            s *= dim;
        }
    }
    return flat ? 0 : (size_t)n_in * (size_t)rank;
}

int cuda_fused_launch(const Program *p, const CuPtr *streams, const int64_t *params, size_t n_params, CuPtr out, int rank,
                      const int64_t *dims, CuStream stream, CuPtr scratch, int upload, char *err, size_t cap)
{
    const CudaApi *cu = cuda_api(err, cap);
    if (!cu) return -1;
    int n_streams = p->load_pieces ? p->n_pieces : p->n_in;
    if (n_streams > 64 || rank > 8 || n_params > CUDA_FUSED_MAX_PARAMS) {
        snprintf(err, cap, "a fused kernel reads at most 64 streams of rank 8");
        return -1;
    }
    char *src = program_render_cuda(p);
    CuFunction fn = src ? cuda_kernel(src, "vclip_fused", err, cap) : NULL;
    free(src);
    if (!fn) return -1;
    /* scratch: stream pointers, dims, parameters */
    int64_t host[64 + 8 + CUDA_FUSED_MAX_PARAMS];
    memcpy(host, streams, sizeof(CuPtr) * (size_t)n_streams);
    memcpy(host + 64, dims, sizeof(int64_t) * (size_t)rank);
    if (params) memcpy(host + 72, params, sizeof(int64_t) * n_params);
    size_t bytes = sizeof(int64_t) * (72 + n_params);
    if (upload && cu->h2d(scratch, host, bytes)) { snprintf(err, cap, "copy to the device failed"); return -1; }
    long long n = 1;
    for (int d = 0; d < rank; d++) n *= dims[d];
    CuPtr d_in = scratch, d_dims = scratch + 64 * 8, d_params = params ? scratch + 72 * 8 : 0;
    void *args[] = {&n, &rank, &d_dims, &d_in, &d_params, &out};
    unsigned threads = 256, blocks = (unsigned)((n + threads - 1) / threads);
    if (n && cu->launch(fn, blocks, 1, 1, threads, 1, 1, 0, stream, args, NULL)) { snprintf(err, cap, "kernel launch failed"); return -1; }
    return 0;
}

int cuda_reduce_launch(const Program *pro, const Program *epi, int reduce, const CuPtr *streams, const int64_t *rs, int n_in,
                       int64_t rows, int64_t K, CuPtr out, CuStream stream, CuPtr scratch, int upload, char *err, size_t cap)
{
    const CudaApi *cu = cuda_api(err, cap);
    if (!cu) return -1;
    if (n_in > 64) { snprintf(err, cap, "a fused reduction reads at most 64 streams"); return -1; }
    char *src = program_render_cuda_reduce(pro, epi, reduce);
    CuFunction fn = src ? cuda_kernel(src, "vclip_reduce", err, cap) : NULL;
    free(src);
    if (!fn) return -1;
    int64_t host[128];
    memcpy(host, streams, sizeof(CuPtr) * (size_t)n_in);
    memcpy(host + 64, rs, sizeof(int64_t) * (size_t)n_in);
    if (upload && (cu->h2d(scratch, host, sizeof(int64_t) * (size_t)n_in) ||
                   cu->h2d(scratch + 64 * 8, host + 64, sizeof(int64_t) * (size_t)n_in))) {
        snprintf(err, cap, "copy to the device failed");
        return -1;
    }
    long long r = rows, k = K;
    CuPtr d_in = scratch, d_rs = scratch + 64 * 8;
    void *args[] = {&r, &k, &d_in, &d_rs, &out};
    unsigned threads = K >= 256 ? 256 : (unsigned)((K + 31) / 32 * 32);
    if (!threads) threads = 32;
    if (rows && cu->launch(fn, (unsigned)rows, 1, 1, threads, 1, 1, 0, stream, args, NULL)) { snprintf(err, cap, "kernel launch failed"); return -1; }
    return 0;
}

int cuda_run_fused(const Program *p, const Tensor *const *ins, int n_in, Tensor *out, char *err, size_t cap)
{
    const CudaApi *cu = cuda_api(err, cap);
    if (!cu) return -1;
    if (n_in > 64 || p->load_pieces) { snprintf(err, cap, "more than 64 inputs, or views"); return -1; }
    int rc = -1, ranks[64];
    CuPtr d_in[64] = {0}, d_out = 0, scratch = 0;
    const int64_t *dims[64];
    int64_t params[64 * 8];
    for (int k = 0; k < n_in; k++) {
        dims[k] = ins[k]->dims;
        ranks[k] = ins[k]->rank;
        if (cu->mem_alloc(&d_in[k], ins[k]->nbytes ? ins[k]->nbytes : 4) || (ins[k]->nbytes && cu->h2d(d_in[k], ins[k]->data, ins[k]->nbytes))) {
            snprintf(err, cap, "device allocation or copy failed");
            goto done;
        }
    }
    if (cu->mem_alloc(&d_out, out->nbytes ? out->nbytes : 4) || cu->mem_alloc(&scratch, CUDA_FUSED_SCRATCH)) {
        snprintf(err, cap, "device allocation failed");
        goto done;
    }
    size_t np = cuda_fused_broadcast_params(n_in, dims, ranks, out->rank, out->dims, params);
    if (cuda_fused_launch(p, d_in, np ? params : NULL, np, d_out, out->rank, out->dims, NULL, scratch, 1, err, cap)) goto done;
    if (cu->ctx_sync()) { snprintf(err, cap, "the kernel failed on the device"); goto done; }
    if (out->nbytes && cu->d2h(out->data, d_out, out->nbytes)) { snprintf(err, cap, "copy back failed"); goto done; }
    rc = 0;
done:
    for (int k = 0; k < n_in; k++) if (d_in[k]) cu->mem_free(d_in[k]);
    if (d_out) cu->mem_free(d_out);
    if (scratch) cu->mem_free(scratch);
    return rc;
}
