/* cost.h — static cost estimates of a graph for a given binding of its
 * symbolic dims (e.g. batch = 8). */
#ifndef VCLIP_COST_H
#define VCLIP_COST_H
#include "ir.h"
typedef struct {
    double gemm_flops;     /* MatMul, Gemm, Conv: 2 x multiply-adds */
    double other_flops;    /* one per output element of every other compute op */
    int unknown_nodes;     /* nodes whose shapes could not be evaluated */
} GraphCost;
/* sym_value[i] binds g->syms[i]; a value < 0 leaves it unknown. */
void graph_cost(const Graph *g, const int64_t *sym_value, GraphCost *out);
#endif
