/* cuda_fused.h — generated kernels on a CUDA device: launching an
 * elementwise one or a reduction on device buffers (the graph executor,
 * cuda_exec.c), and running an elementwise one on host tensors
 * (tests/unit/test_cuda.c, against the interpreter). */
#ifndef VCLIP_CUDA_FUSED_H
#define VCLIP_CUDA_FUSED_H

#include <stddef.h>
#include <stdint.h>
#include "cuda_api.h"
#include "../../ir/program.h"
#include "../../ir/ir.h"

/* The longest parameter block a launch takes: strides and base offsets of
 * 64 streams of rank 8, and the Concats' axes and boundaries (ir/loads.h). */
#define CUDA_FUSED_MAX_PARAMS (64 * 9 + 2 * 64)
/* Device bytes a launch needs for its pointers, dims and parameters. */
#define CUDA_FUSED_SCRATCH ((64 + 8 + CUDA_FUSED_MAX_PARAMS) * 8)

/* The strides of a plain program's n_in inputs (dims, ranks) broadcast
 * over the output: the parameter count, or 0 when every input has the
 * output's shape (the flat path, no parameters). */
size_t cuda_fused_broadcast_params(int n_in, const int64_t *const *in_dims, const int *in_rank, int rank, const int64_t *dims,
                                   int64_t *params);

/* out [dims] = the program over its streams (one device pointer per input,
 * or per piece of a view program) with the parameter block `params`
 * (n_params entries; NULL for the flat path), queued on stream.  The
 * pointers, dims and parameters are read from `scratch` (CUDA_FUSED_SCRATCH
 * bytes), written there first when `upload` (a recorded CUDA graph replays
 * the launch alone, so its parameters must already be in place). */
int cuda_fused_launch(const Program *p, const CuPtr *streams, const int64_t *params, size_t n_params, CuPtr out, int rank,
                      const int64_t *dims, CuStream stream, CuPtr scratch, int upload, char *err, size_t cap);
/* out [rows] = a fused reduction (ir/program.h: the prologue pro over
 * n_in streams, reduce, then the epilogue epi) over rows of K elements,
 * stream k read at row * rs[k] + (rs[k] ? column : 0); a block per row.
 * The pointers and row strides are read from `scratch`, written there
 * first when `upload`, as for cuda_fused_launch. */
int cuda_reduce_launch(const Program *pro, const Program *epi, int reduce, const CuPtr *streams, const int64_t *rs, int n_in,
                       int64_t rows, int64_t K, CuPtr out, CuStream stream, CuPtr scratch, int upload, char *err, size_t cap);
/* out (allocated by the caller, the broadcast shape of ins) = the plain
 * program over ins, computed on device 0.  0, or -1 with a message (no
 * device, a compile or driver error). */
int cuda_run_fused(const Program *p, const Tensor *const *ins, int n_in, Tensor *out, char *err, size_t cap);

#endif
