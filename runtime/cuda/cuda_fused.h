/* cuda_fused.h — running one generated elementwise kernel on a CUDA device
 * through the driver API (loaded with dlopen): upload the inputs, load the
 * NVRTC-compiled PTX, launch one thread per element, download the result.
 * The first piece of CUDA execution, used by tests/unit/test_cuda.c on
 * machines with a device (tests/gpu/run.sh); a whole-graph backend with a
 * device arena and streams comes next. */
#ifndef VCLIP_CUDA_FUSED_H
#define VCLIP_CUDA_FUSED_H

#include "../../codegen/program.h"
#include "../../ir/ir.h"

/* out (allocated by the caller, the broadcast shape of ins) = the program
 * over ins, computed on device 0.  0, or -1 with a message (no device, a
 * compile or driver error). */
int cuda_run_fused(const Program *p, const Tensor *const *ins, int n_in, Tensor *out, char *err, size_t cap);

#endif
