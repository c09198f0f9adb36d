/* cublaslt.h — the GEMMs of the CUDA backend through cuBLASLt, loaded with
 * dlopen (libcublasLt.so): row-major D [M, N] = alpha · A [M, K] · W + bias
 * [N] (+ C, the residual, when given), A stored [M, K] or [K, M] and W
 * [K, N] or [N, K] (transposed).
 * Storage is f32; compute is f32, or bf16 / f16 inputs with f32 sums on the
 * tensor cores (cuBLASLt's FAST_16BF / FAST_16F compute types).  The bias is
 * cuBLASLt's own epilogue; activations that it does not compute exactly
 * (QuickGELU, erf GELU) are the caller's. */
#ifndef VCLIP_CUBLASLT_H
#define VCLIP_CUBLASLT_H

#include <stddef.h>
#include <stdint.h>
#include "cuda_api.h"

/* cuBLASLt's values and structs as we declare them (cublasLt.h, cublas_api.h,
 * library_types.h; checked against them by tests/unit/test_cuda.c). */
enum {
    LT_R_32F = 0,
    LT_COMPUTE_32F = 68, LT_COMPUTE_32F_FAST_16F = 74, LT_COMPUTE_32F_FAST_16BF = 75,
    LT_OP_N = 0, LT_OP_T = 1,
    LT_DESC_TRANSA = 3, LT_DESC_TRANSB = 4, LT_DESC_EPILOGUE = 7, LT_DESC_BIAS_POINTER = 8,
    LT_EPILOGUE_DEFAULT = 1, LT_EPILOGUE_BIAS = 4,
    LT_PREF_MAX_WORKSPACE_BYTES = 1,
};
typedef struct { uint64_t data[8]; } LtAlgo;
typedef struct { LtAlgo algo; size_t workspace; int state; float waves; int reserved[4]; } LtHeuristic;

typedef enum { GEMM_COMPUTE_F32, GEMM_COMPUTE_BF16, GEMM_COMPUTE_F16 } GemmCompute;

typedef struct {
    int64_t M, N, K;
    CuPtr A, W, bias, C, D; /* bias, C: 0 for none */
    int a_transposed;       /* A is [K, M] */
    int w_transposed;       /* W is [N, K] */
    float alpha;            /* D = alpha · A·W + bias + C */
    GemmCompute compute;
} LtGemm;

/* 1 when libcublasLt loads (its version in why), else 0 and the reason. */
int cublaslt_available(char *why, size_t cap);
/* Queues the GEMM on stream; 0, or -1 with cuBLASLt's status. */
int cublaslt_gemm(const LtGemm *g, CuStream stream, char *err, size_t cap);

/* Frees the handle and workspace (made on the first GEMM); the next GEMM
 * makes them again. */
void cublaslt_release(void);

/* The cuBLASLt entry points we call, as cublasLt.h declares them (opaque
 * handles as void *). */
typedef struct {
    int (*create)(void **handle);
    int (*destroy)(void *handle);
    size_t (*version)(void);
    int (*desc_create)(void **desc, int compute, int scale_type);
    int (*desc_destroy)(void *desc);
    int (*desc_set)(void *desc, int attr, const void *buf, size_t size);
    int (*layout_create)(void **layout, int type, uint64_t rows, uint64_t cols, int64_t ld);
    int (*layout_destroy)(void *layout);
    int (*pref_create)(void **pref);
    int (*pref_destroy)(void *pref);
    int (*pref_set)(void *pref, int attr, const void *buf, size_t size);
    int (*heuristic)(void *handle, void *desc, void *a, void *b, void *c, void *d, void *pref, int requested, LtHeuristic *out,
                     int *found);
    int (*matmul)(void *handle, void *desc, const void *alpha, const void *A, void *la, const void *B, void *lb, const void *beta,
                  const void *C, void *lc, void *D, void *ld, const LtAlgo *algo, void *workspace, size_t workspace_bytes,
                  CuStream stream);
} LtApi;

/* Tests only: these entry points (a stand-in that interprets the
 * descriptors on the host) instead of libcublasLt's. */
void cublaslt_emulate(const LtApi *api);

#endif
