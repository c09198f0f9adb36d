/* svg_plot.c — see svg_plot.h.  Axes span the data's range (padded), with
 * ticks every 5 or 10 points. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "svg_plot.h"
#include "../ir/base.h"

static void esc(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

void svg_curve_write(FILE *f, const double *x, const double *y, const char *const *labels, int n, const char *title,
                     const char *xlabel, const char *ylabel)
{
    double x0 = 1, x1 = 0, y0 = 1, y1 = 0;
    for (int i = 0; i < n; i++) {
        x0 = fmin(x0, x[i]); x1 = fmax(x1, x[i]);
        y0 = fmin(y0, y[i]); y1 = fmax(y1, y[i]);
    }
    double px = fmax((x1 - x0) * 0.1, 0.02), py = fmax((y1 - y0) * 0.1, 0.02);
    x0 = fmax(0, x0 - px); x1 = fmin(1, x1 + px); y0 = fmax(0, y0 - py); y1 = fmin(1, y1 + py);
    const double W = 640, H = 480, L = 70, R = 20, T = 40, B = 60;
#define SX(v) (L + ((v) - x0) / (x1 - x0) * (W - L - R))
#define SY(v) (H - B - ((v) - y0) / (y1 - y0) * (H - T - B))
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<text x=\"%.0f\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">", W / 2);
    esc(f, title);
    fprintf(f, "</text>\n");
    double step = (x1 - x0 > 0.3 || y1 - y0 > 0.3) ? 0.1 : 0.05;
    for (double t = ceil(x0 / step) * step; t <= x1 + 1e-9; t += step)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#ddd\"/><text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%.0f</text>\n",
                SX(t), T, SX(t), H - B, SX(t), H - B + 16, 100 * t);
    for (double t = ceil(y0 / step) * step; t <= y1 + 1e-9; t += step)
        fprintf(f, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%.0f</text>\n",
                L, SY(t), W - R, SY(t), L - 6, SY(t) + 4, 100 * t);
    fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#333\"/>\n", L, T, W - L - R, H - T - B);
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">", (L + W - R) / 2, H - 18);
    esc(f, xlabel);
    fprintf(f, "</text>\n<text transform=\"translate(18,%.0f) rotate(-90)\" text-anchor=\"middle\">", (T + H - B) / 2);
    esc(f, ylabel);
    fprintf(f, "</text>\n<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"");
    for (int i = 0; i < n; i++) fprintf(f, "%s%.1f,%.1f", i ? " " : "", SX(x[i]), SY(y[i]));
    fprintf(f, "\"/>\n");
    for (int i = 0; i < n; i++) {
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"#1f77b4\"/><text x=\"%.1f\" y=\"%.1f\" font-size=\"10\">", SX(x[i]), SY(y[i]),
                SX(x[i]) + 6, SY(y[i]) - 6);
        esc(f, labels[i]);
        fprintf(f, "</text>\n");
    }
    fprintf(f, "</svg>\n");
#undef SX
#undef SY
}

int svg_curve(const char *path, const double *x, const double *y, const char *const *labels, int n, const char *title,
              const char *xlabel, const char *ylabel, char *err, size_t cap)
{
    AtomicFile af;
    if (atomic_open(&af, path, "w", err, cap)) return -1;
    svg_curve_write(af.f, x, y, labels, n, title, xlabel, ylabel);
    return atomic_commit(&af, err, cap);
}

void svg_escape(FILE *f, const char *s) { esc(f, s); }
