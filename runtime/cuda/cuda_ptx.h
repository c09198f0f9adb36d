/* cuda_ptx.h — a compiled graph's generated kernels as PTX ahead of time
 * (`vclipc compile --target cuda`): every FusedElementwise and FusedReduce
 * through NVRTC, for the device's architecture where there is one, else for
 * sm_80 and sm_90, so a kernel NVRTC refuses is found before any run. */
#ifndef VCLIP_CUDA_PTX_H
#define VCLIP_CUDA_PTX_H

#include <stddef.h>
#include "../../ir/ir.h"

/* dir: also write DIR/NN-ARCH.ptx (NULL: compile only).  Says on stderr
 * how many were compiled and for what.  0, or -1 with NVRTC's log. */
int cuda_kernels_to_ptx(const Graph *g, const char *dir, char *err, size_t cap);

#endif
