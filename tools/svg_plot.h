/* svg_plot.h — a small line plot as SVG, for curves people look at. */
#ifndef VCLIP_SVG_PLOT_H
#define VCLIP_SVG_PLOT_H
#include <stddef.h>
/* Points (x[i], y[i]) in [0, 1] joined in order, each labelled; axes in %.
 * Written atomically.  0 or -1 with a message. */
int svg_curve(const char *path, const double *x, const double *y, const char *const *labels, int n, const char *title,
              const char *xlabel, const char *ylabel, char *err, size_t cap);
#endif
