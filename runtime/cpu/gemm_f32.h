/* gemm_f32.h — our f32 GEMM for weights: C = epilogue(A · B), B packed
 * into column panels (constant weights once, by passes/pack_linear_weights.c),
 * the epilogue (bias, activation, residual) applied while
 * the tile is still in registers.  AVX-512 only; gemm_f32_available() says
 * whether this CPU runs it (else the caller uses BLAS). */
#ifndef VCLIP_GEMM_F32_H
#define VCLIP_GEMM_F32_H

#include <stdint.h>
#include "../../ir/ops.h"

/* ceil(N / LINEAR_PANEL) panels of [K, LINEAR_PANEL], zero past N: the
 * packed layout of ai.vclip.Linear's weight (ir/ops.h). */
typedef struct {
    const float *panels;
    float *owned;    /* set when gemm_pack_b allocated the panels */
    int64_t K, N;
} PackedB;

typedef struct {
    const float *bias;     /* [N] or NULL */
    int act;               /* LINEAR_ACT_* */
    const float *residual; /* [M, ldr] added last, or NULL */
    int64_t ldr;
} GemmEpilogue;

int gemm_f32_available(void);
/* Packs B [K, N] row-major, or [N, K] when transposed (a Gemm's transB),
 * into panels (size: gemm_packed_floats); the caller owns them. */
int64_t gemm_packed_floats(int64_t K, int64_t N);
void gemm_pack_b(const float *B, int64_t K, int64_t N, int transposed, float *panels);
/* C [M, ldc] = epilogue(A [M, lda] · B) on the thread pool; -1 when out of memory. */
int gemm_f32(int64_t M, const float *A, int64_t lda, const PackedB *B, float *C, int64_t ldc, const GemmEpilogue *ep);

#endif
