/* cuda_stage.h — a run's inputs copied to the device ahead of the run:
 * page-locked host buffers, asynchronous copies on a stream of their own,
 * two batches in flight.  So the next batch crosses while the device
 * computes the current one, and the run that takes it only copies device
 * to device.  Events order the three parties: a batch's copy before the
 * run that takes it; a page-locked buffer's refill after the copy that
 * last read it; a device buffer's refill after the take that last read it. */
#ifndef VCLIP_CUDA_STAGE_H
#define VCLIP_CUDA_STAGE_H

#include <stddef.h>
#include "cuda_api.h"
#include "../../ir/ir.h"

typedef struct CudaStager CudaStager;

/* NULL with the reason */
CudaStager *cuda_stager_new(const CudaApi *cu, int n_inputs, char *err, size_t cap);
/* Waits for its copies, then frees everything (NULL: nothing). */
void cuda_stager_free(CudaStager *st);
/* Copies inputs (n_inputs of them; NULL: not staged, the run brings its
 * own) into the next free buffers and starts their copy to the device.
 * -1 with the reason (two batches are already waiting, out of memory). */
int cuda_stager_put(CudaStager *st, Tensor *const *inputs, char *err, size_t cap);
/* The oldest waiting batch into dst[i] on stream s (after its copy, in
 * stream order); taken[i] says which inputs it held.  Each must match
 * inputs[i] in dtype and shape.  0, or -1 with the reason. */
int cuda_stager_take(CudaStager *st, Tensor *const *inputs, const CuPtr *dst, CuStream s, int *taken, char *err, size_t cap);

#endif
