/* kernels.h — the CPU kernel interface.  The executor infers output shapes
 * (ir/infer_*.c), allocates the outputs, and calls the op's kernel with the
 * same InferCtx, so kernels decode attributes through the shared helpers in
 * ir/ops.h.  REF kernels are the plain oracle; FAST kernels are checked
 * against them in tests/unit. */
#ifndef VCLIP_CPU_KERNELS_H
#define VCLIP_CPU_KERNELS_H

#include "../../ir/ops.h"

typedef struct {
    InferCtx *ic;              /* node, opset, input infos; ic->err for messages */
    const Tensor *in[16];      /* NULL for absent optional inputs */
    Tensor *out[8];
    int n_in, n_out;
    int threads;
} KernelCtx;

typedef int (*KernelFn)(KernelCtx *k);

/* A loop compiled for AVX-512, AVX2 and plain x86-64, the best chosen at
 * load (GCC's target clones), at -O3 so that it vectorizes. */
#if defined(__x86_64__) && !defined(__clang__)
#define VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default"), optimize("O3")))
#else
#define VECTOR_CLONES
#endif

/* f32 -> bf16 as the AVX512-BF16 conversions (VCVTNEPS2BF16) round:
 * float_to_bf16 (nearest even) with denormal inputs taken as zero, sign
 * kept.  The fast bf16 GEMM rounds its f32 activations so; a fast kernel
 * that stores an activation in bf16 for it (bf16_output) rounds the same
 * way, so that the GEMM multiplies the same bits. */
static inline uint16_t float_to_bf16_flushed(float f)
{
    union { float f; uint32_t u; } v = {f};
    return (v.u & 0x7f800000u) ? float_to_bf16(f) : (uint16_t)((v.u >> 16) & 0x8000u);
}

extern const KernelFn ref_kernels[OP_COUNT];
extern const KernelFn fast_kernels[OP_COUNT];

int kernel_fail(KernelCtx *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Walks the rows of an N-d index space for up to 4 strided operands; the
 * innermost dim is handled by the caller's loop with per-operand inner strides. */
#define SITER_MAX 4
typedef struct {
    int rank, k;
    int64_t dims[IR_MAX_RANK];
    int64_t strides[SITER_MAX][IR_MAX_RANK];
    int64_t idx[IR_MAX_RANK];
    int64_t off[SITER_MAX];
    int64_t inner;             /* length of the innermost dim */
    int64_t inner_stride[SITER_MAX];
    int64_t rows_left;
} StridedIter;
void siter_init(StridedIter *it, int rank, const int64_t *dims, int k, int64_t strides[][IR_MAX_RANK]);
int siter_next(StridedIter *it); /* 1 while a row is available in off[] */
/* Strides (elements) to read tensor t broadcast to rank/dims; 0 on broadcast dims. */
void broadcast_strides(const Tensor *t, int rank, const int64_t *dims, int64_t *strides);
void contiguous_strides(int rank, const int64_t *dims, int64_t *strides);

#define OP(id, dom, name, pat, inf, ref, fast, grad) int ref(KernelCtx *k);
#include "../../ir/ops.def"
#undef OP
int fast_matmul(KernelCtx *k);
int fast_gemm(KernelCtx *k);
int fast_conv(KernelCtx *k);
int fast_unary(KernelCtx *k);
int fast_softmax(KernelCtx *k);
int fast_layernorm(KernelCtx *k);
int fast_quick_gelu(KernelCtx *k);
int fast_gelu(KernelCtx *k);
int fast_linear(KernelCtx *k);
int fast_attention(KernelCtx *k);
int fast_attention_grad(KernelCtx *k);
int fast_fused_elementwise(KernelCtx *k);
int fast_fused_reduce(KernelCtx *k);
int fast_reduce(KernelCtx *k);
int fast_activation_grad(KernelCtx *k);
int fast_layernorm_grad(KernelCtx *k);
int fast_conv_grad(KernelCtx *k);
int fast_interpolate_weights(KernelCtx *k);
/* Key/value source rows for batch row b (-1: zero-filled); returns the count. */
int attention_sources(const AttentionParams *p, int64_t b, int64_t *src);

#endif
