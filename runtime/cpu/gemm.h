/* gemm.h — our GEMM for weights: C = epilogue(A · B) with A f32, B packed
 * into column panels (constant weights once, by passes/pack_linear_weights.c),
 * the epilogue (bias, activation, residual) applied while the tile is still
 * in registers.  B is f32, or bf16 (A is then rounded to bf16 as it is
 * packed and products are summed in f32).  f32 on AVX-512, or AVX2 + FMA;
 * bf16 on AVX512-BF16, or AMX where the CPU has its tiles; gemm_available()
 * says whether this CPU runs a kind (else callers use BLAS). */
#ifndef VCLIP_GEMM_H
#define VCLIP_GEMM_H

#include <stdint.h>
#include "../../ir/ops.h"

/* f32: ceil(N / LINEAR_PANEL) panels of [K, LINEAR_PANEL];
 * bf16: panels of [ceil(K / 2), LINEAR_PANEL, 2] (k pairs interleaved);
 * zero past N and K: the packed layouts of ai.vclip.Linear's weight (ir/ops.h). */
typedef struct {
    DType dtype;       /* DT_F32 or DT_BF16 */
    const void *panels;
    int64_t K, N;
    int64_t panel_rows; /* k rows each panel holds (0: K); more than K where the
                         * weight's last rows are zero and skipped (pad_rows, ir/ops.h) */
} PackedB;

typedef struct {
    const float *bias;     /* [N] or NULL */
    int act;               /* LINEAR_ACT_* */
    const float *residual; /* [M, ldr] added last, or NULL */
    int64_t ldr;
} GemmEpilogue;

int gemm_available(DType dtype);

/* The micro-kernels of this build.  Each dtype uses the fastest this CPU
 * runs, unless gemm_pin() chose one (tests and benches compare them). */
typedef enum {
    GEMM_KERNEL_AVX512,      /* f32: 12x32 FMA tile */
    GEMM_KERNEL_AVX2,        /* f32: 6x16 FMA tile, each 32-column panel in two halves (no AVX-512) */
    GEMM_KERNEL_AVX512_BF16, /* bf16: 12x32 VDPBF16PS tile */
    GEMM_KERNEL_AMX_BF16,    /* bf16: 32x32 of four AMX tiles (depth a multiple of 32) */
    GEMM_KERNEL_COUNT
} GemmKernel;
const char *gemm_kernel_name(GemmKernel k);
DType gemm_kernel_dtype(GemmKernel k);
/* Whether this CPU (and, for AMX, its kernel's permission) runs k. */
int gemm_kernel_runs(GemmKernel k);
/* Use k for its dtype from now on (process-wide); -1 if this CPU cannot.
 * gemm_unpin() returns to the fastest. */
int gemm_pin(GemmKernel k);
void gemm_unpin(void);
/* What gemm() would use for weights of this dtype; -1 if none. */
int gemm_kernel_for(DType dtype);
/* Packs f32 B [K, N] row-major, or [N, K] when transposed (a Gemm's transB),
 * into f32 panels of gemm_packed_floats(K, N) floats. */
int64_t gemm_packed_floats(int64_t K, int64_t N);
void gemm_pack_b(const float *B, int64_t K, int64_t N, int transposed, float *panels);
/* The same into bf16 panels of gemm_packed_bf16_halves(K, N) halves, rounded
 * to nearest even (what the bf16 GEMM runs on). */
int64_t gemm_packed_bf16_halves(int64_t K, int64_t N);
void gemm_pack_b_bf16(const float *B, int64_t K, int64_t N, int transposed, uint16_t *panels);
/* C [M, ldc] = epilogue(A [M, lda] · B) on the thread pool; -1 when out of memory. */
int gemm(int64_t M, const float *A, int64_t lda, const PackedB *B, float *C, int64_t ldc, const GemmEpilogue *ep);
/* gemm() with A or C (or both) in bf16, for a bf16 B: A [M, lda] of bf16
 * (lda and K even) is used as it is, the values its packing would round
 * to; C is rounded to bf16 (nearest even) after the epilogue.  -1 when out
 * of memory, or when B is not bf16. */
int gemm_typed(int64_t M, const void *A, DType a_dtype, int64_t lda, const PackedB *B, void *C, DType c_dtype, int64_t ldc, const GemmEpilogue *ep);
/* The same for an f32 B [K, N] ([N, K] when transposed) packed into panels
 * of dtype (bf16: rounded) for this call only: weights being trained, the
 * backward pass's operands.  A is [M, lda], or with a_transposed A^T
 * [K, lda] (the weight gradient's X^T, read in place).  Needs
 * gemm_available(dtype); -1 when out of memory. */
int gemm_unpacked(DType dtype, int64_t M, const float *A, int64_t lda, int a_transposed, const float *B, int64_t K, int64_t N,
                  int transposed, float *C, int64_t ldc, const GemmEpilogue *ep);
/* C [M, ldc] (N columns) = epilogue(C) in scalar code: after BLAS. */
void gemm_epilogue_scalar(int64_t M, float *C, int64_t ldc, int64_t N, const GemmEpilogue *ep);

#endif
