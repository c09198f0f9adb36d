/* render.h — fused-kernel programs (ir/program.h) as source text: C for the
 * CPU's JIT (runtime/cpu/jit_cpu.c) and CUDA C for NVRTC
 * (runtime/cuda/nvrtc.c).  Text only: compiling and loading happen in the
 * runtime. */
#ifndef VCLIP_RENDER_H
#define VCLIP_RENDER_H

#include "../ir/program.h"

/* Source text of the kernel (malloc'd, NUL-terminated).  The C kernel is
 *   void vclip_fused(int64_t begin, int64_t end, int rank, const int64_t *dims,
 *                    const float *const *in, const int64_t *strides, float *out)
 * over flat output indices [begin, end) with per-input element strides
 * (strides[k * rank + d], 0 on broadcast dims; NULL: every input is
 * contiguous and of the output's shape); the CUDA kernel is the same with
 * one thread per element.  A program with views reads one pointer per
 * piece from `in`, and `strides` is the parameter block of
 * loads_params (ir/loads.h).  Both are pure functions of the program. */
char *program_render_c(const Program *p);
char *program_render_cuda(const Program *p);

/* C:    void vclip_reduce(int64_t row_begin, int64_t row_end, int64_t K,
 *                         const float *const *in, const int64_t *rs, float *out)
 *       element k of row r of input i: in[i][r * rs[i] + (rs[i] ? k : 0)]
 *       (rs[i] = K: a full input, 0: a scalar);
 * CUDA: the same over one block per row (rows, K, in, rs, out). */
char *program_render_c_reduce(const Program *pro, const Program *epi, int reduce);
char *program_render_cuda_reduce(const Program *pro, const Program *epi, int reduce);

/* The C and CUDA C sources (malloc'd; pass NULL for one not wanted) of a
 * generated-kernel node (FusedElementwise, FusedReduce): 1, or 0 for any
 * other node, or -1 with a message. */
int program_node_sources(const Node *n, char **c_source, char **cuda_source, char *err, size_t cap);

#endif
