/* cuda_templates.h — the hand-written CUDA kernels of the CUDA backend, next
 * to the generated elementwise ones: layernorm and softmax (a block per row,
 * warp-shuffle reductions), attention (online softmax, flash-attention
 * style: one warp per query row walks the keys of its temporal window once,
 * keeping a running max, sum and output), a strided copy (Transpose,
 * Concat, the patch im2col and its way back to NCHW), and the
 * activation + residual step after a cuBLASLt GEMM; for training graphs,
 * IWR's weight interpolation, the activations' gradients, sums over axes
 * (bias and scale gradients) and layernorm's gradient; integer index
 * arithmetic (Cast, comparisons, Add/Sub/Mul, ArgMax/ArgMin) so that the
 * text tower's end-of-text lookup stays on the device.  One CUDA C source,
 * compiled by NVRTC (every test run compiles it for sm_80 and sm_90). */
#ifndef VCLIP_CUDA_TEMPLATES_H
#define VCLIP_CUDA_TEMPLATES_H

/* ai.vclip.Attention's parameters, passed by value: the same fields, in
 * the same order, in the host struct and in the kernel's. */
#define CUDA_ATTN_FIELDS                                                                                   \
    long long B, N, M, Cq, Ck, Cv, Co, heads, head_dim, q_off, k_off, v_off, frames, window;               \
    float scale;                                                                                           \
    int causal, seq_first, boundary, has_mask;
typedef struct { CUDA_ATTN_FIELDS } CudaAttnArgs;

#define CUDA_COPY_MAX_RANK 8

/* vclip_int_elementwise's ops, and the element types of the integer kernels
 * (F32 only as the arg-reductions' input) */
enum { CUDA_INT_ADD, CUDA_INT_SUB, CUDA_INT_MUL, CUDA_INT_EQUAL, CUDA_INT_LESS, CUDA_INT_LESS_EQUAL, CUDA_INT_GREATER,
       CUDA_INT_GREATER_EQUAL, CUDA_INT_CAST };
enum { CUDA_ELEM_I64, CUDA_ELEM_I32, CUDA_ELEM_I8, CUDA_ELEM_U8, CUDA_ELEM_BOOL, CUDA_ELEM_F32 };
#define CUDA_SUM_MAX_RANK 8

/* The source (a static string) and its kernel names. */
const char *cuda_templates_source(void);
extern const char *const cuda_template_kernels[];
extern const int cuda_template_kernel_count;

#endif
