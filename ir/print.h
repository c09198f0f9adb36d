/* print.h — human-readable graph dumps: text (one line per node) and DOT. */
#ifndef VCLIP_PRINT_H
#define VCLIP_PRINT_H
#include <stdio.h>
#include "ir.h"
void graph_print_text(const Graph *g, FILE *f);
void graph_print_dot(const Graph *g, FILE *f);
void value_type_string(const Graph *g, const Value *v, char *buf, size_t cap); /* f32[batch,3,224,224] */
#endif
