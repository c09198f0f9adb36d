/* svg_plot.h — a small line plot as SVG, for curves people look at. */
#ifndef VCLIP_SVG_PLOT_H
#define VCLIP_SVG_PLOT_H
#include <stddef.h>
#include <stdio.h>
/* Points (x[i], y[i]) in [0, 1] joined in order, each labelled; axes in %.
 * Written atomically.  0 or -1 with a message. */
void svg_curve_write(FILE *f, const double *x, const double *y, const char *const *labels, int n, const char *title,
                     const char *xlabel, const char *ylabel);
/* Text with <, > and & escaped, for SVG and HTML. */
void svg_escape(FILE *f, const char *s);
int svg_curve(const char *path, const double *x, const double *y, const char *const *labels, int n, const char *title,
              const char *xlabel, const char *ylabel, char *err, size_t cap);
#endif
