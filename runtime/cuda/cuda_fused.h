/* cuda_fused.h — generated elementwise kernels on a CUDA device: launching
 * one on device buffers (the graph executor, cuda_exec.c) and running one
 * on host tensors (tests/unit/test_cuda.c, against the interpreter). */
#ifndef VCLIP_CUDA_FUSED_H
#define VCLIP_CUDA_FUSED_H

#include <stdint.h>
#include "cuda_api.h"
#include "../../codegen/program.h"
#include "../../ir/ir.h"

/* Device bytes a launch needs for its pointers, dims and strides. */
#define CUDA_FUSED_SCRATCH ((64 + 8 + 64 * 8) * 8)

/* out [dims] = the program over broadcast inputs, queued on stream; the
 * pointers, dims and strides are read from `scratch` (CUDA_FUSED_SCRATCH
 * bytes), written there first when `upload` (a recorded CUDA graph replays
 * the launch alone, so its parameters must already be in place). */
int cuda_fused_launch(const Program *p, const CuPtr *in, const int64_t *const *in_dims, const int *in_rank, int n_in,
                      CuPtr out, int rank, const int64_t *dims, CuStream stream, CuPtr scratch, int upload, char *err, size_t cap);
/* out (allocated by the caller, the broadcast shape of ins) = the program
 * over ins, computed on device 0.  0, or -1 with a message (no device, a
 * compile or driver error). */
int cuda_run_fused(const Program *p, const Tensor *const *ins, int n_in, Tensor *out, char *err, size_t cap);

#endif
