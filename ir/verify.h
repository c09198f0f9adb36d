/* verify.h — the graph invariants every pass must preserve. */
#ifndef VCLIP_VERIFY_H
#define VCLIP_VERIFY_H
#include "ir.h"
/* 0 if the graph is well formed, else -1 with the first violation. */
int graph_verify(const Graph *g, char *err, size_t cap);
#endif
