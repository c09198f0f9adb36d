/* memory_plan.h — where each intermediate of a graph lives in one arena:
 * liveness from the node order, buffers of the same run reused once dead.
 * Both sessions use it (CPU: session.c, CUDA: runtime/cuda/cuda_exec.c),
 * from the sizes their first run with new input shapes recorded. */
#ifndef VCLIP_MEMORY_PLAN_H
#define VCLIP_MEMORY_PLAN_H

#include <stddef.h>
#include "../../ir/ir.h"

/* Arena offsets for the intermediates,
 * given each value's size in bytes (0: not a buffer).  Inputs and constants
 * get PLAN_NONE, and so do graph outputs (or views of them) unless
 * with_outputs, which plans them alive to the end of the graph. */
#define PLAN_NONE ((size_t)-1)
typedef struct {
    size_t *offset;          /* per value id */
    size_t arena_bytes;      /* the arena's size: the planned peak of activations */
    size_t planned_bytes;    /* the sum of the planned buffers (no reuse) */
    int n_planned;
} MemoryPlan;
int plan_memory(const Graph *g, const size_t *bytes, int with_outputs, MemoryPlan *plan);
void memory_plan_free(MemoryPlan *plan);

/* The inputs' ranks and dims in one array (*len entries, malloc'd): what a
 * memory plan is valid for. */
int64_t *exec_input_signature(const Graph *g, Tensor *const *inputs, int *len);

#endif
