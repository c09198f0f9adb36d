/* html_report.c — see html_report.h.  The heat map draws only the cells
 * that hold videos (a 600-class matrix is sparse), shaded by the share of
 * the true class's videos; every cell and bar carries a <title> tooltip. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "html_report.h"
#include "svg_plot.h"
#include "../ir/base.h"

static long row_sum(const Report *r, int i)
{
    long s = 0;
    for (int j = 0; j < r->C; j++) s += r->confusion[(size_t)i * r->C + j];
    return s;
}

static void heat_map(FILE *f, const Report *r)
{
    int C = r->C, named = C <= 40;
    double side = C * 14.0 < 320 ? 320 : C * 14.0 > 720 ? 720 : C * 14.0, cell = side / C;
    double L = named ? 150 : 40, T = named ? 150 : 40;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" font-size=\"11\">\n",
            L + side + 20, T + side + 20);
    fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fafafa\" stroke=\"#999\"/>\n", L, T, side, side);
    fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L, T, L + side, T + side);
    for (int i = 0; i < C; i++) {
        long total = row_sum(r, i);
        for (int j = 0; j < C && total; j++) {
            long n = r->confusion[(size_t)i * C + j];
            if (!n) continue;
            double share = (double)n / (double)total;
            fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\" fill-opacity=\"%.3f\"><title>",
                    L + j * cell, T + i * cell, cell, cell, i == j ? "#1a7f37" : "#c2410c", 0.15 + 0.85 * share);
            svg_escape(f, r->names[i]);
            fputs(" \u2192 ", f);
            svg_escape(f, r->names[j]);
            fprintf(f, ": %ld of %ld videos (%.0f%%)</title></rect>\n", n, total, 100 * share);
        }
    }
    for (int i = 0; named && i < C; i++) {
        fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">", L - 4, T + (i + 0.7) * cell);
        svg_escape(f, r->names[i]);
        fprintf(f, "</text>\n<text transform=\"translate(%.1f,%.0f) rotate(-60)\">", L + (i + 0.7) * cell, T - 4);
        svg_escape(f, r->names[i]);
        fputs("</text>\n", f);
    }
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\" font-size=\"12\">predicted class</text>\n", L + side / 2,
            named ? 12.0 : T - 12);
    fprintf(f, "<text transform=\"translate(%.0f,%.0f) rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">true class</text>\n",
            named ? 12.0 : L - 12, T + side / 2);
    fputs("</svg>\n", f);
}

typedef struct { int c; double acc; long n; } ClassRow;
static int by_accuracy(const void *a, const void *b)
{
    const ClassRow *x = a, *y = b;
    return x->acc < y->acc ? -1 : x->acc > y->acc ? 1 : x->c - y->c;
}

static void accuracy_bars(FILE *f, const Report *r, ClassRow *rows, int n)
{
    const double L = 220, W = 360, H = 16;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" font-size=\"11\">\n",
            L + W + 90, n * H + 24);
    for (int t = 0; t <= 100; t += 25)
        fprintf(f, "<line x1=\"%.1f\" y1=\"0\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#eee\"/><text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%d%%</text>\n",
                L + W * t / 100, L + W * t / 100, n * H, L + W * t / 100, n * H + 16, t);
    for (int k = 0; k < n; k++) {
        const ClassRow *c = &rows[k];
        fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">", L - 6, k * H + 12);
        svg_escape(f, r->names[c->c]);
        fprintf(f, "</text><rect x=\"%.0f\" y=\"%.1f\" width=\"%.1f\" height=\"%.0f\" fill=\"%s\"><title>", L, k * H + 2, W * c->acc, H - 4,
                c->acc >= r->m.top1 ? "#2563eb" : "#f59e0b");
        svg_escape(f, r->names[c->c]);
        fprintf(f, ": %.1f%% of %ld videos</title></rect><text x=\"%.1f\" y=\"%.1f\">%.0f%% (%ld)</text>\n", 100 * c->acc, c->n,
                L + W * c->acc + 4, k * H + 12, 100 * c->acc, c->n);
    }
    fputs("</svg>\n", f);
}

typedef struct { int t, p; long n; double share; } Pair;
static int by_count(const void *a, const void *b)
{
    const Pair *x = a, *y = b;
    if (x->n != y->n) return x->n > y->n ? -1 : 1;
    return x->t != y->t ? x->t - y->t : x->p - y->p;
}

static void cell(FILE *f, const char *s)
{
    fputs("<td>", f);
    svg_escape(f, s);
    fputs("</td>", f);
}

int html_report_write(const char *dir, const Report *r, char *err, size_t cap)
{
    if (make_dirs(dir)) { snprintf(err, cap, "%s: %s", dir, strerror(errno)); return -1; }
    char path[4200];
    snprintf(path, sizeof path, "%s/index.html", dir);
    int C = r->C, n_rows = 0, n_pairs = 0;
    ClassRow *rows = calloc((size_t)C + 1, sizeof *rows);
    Pair *pairs = NULL;
    size_t off = 0;
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++) off += i != j && r->confusion[(size_t)i * C + j] > 0;
    pairs = calloc(off + 1, sizeof *pairs);
    if (!rows || !pairs) { free(rows); free(pairs); snprintf(err, cap, "out of memory"); return -1; }
    for (int i = 0; i < C; i++) {
        long total = row_sum(r, i);
        if (total) rows[n_rows++] = (ClassRow){i, (double)r->confusion[(size_t)i * C + i] / (double)total, total};
        for (int j = 0; j < C; j++) {
            long n = r->confusion[(size_t)i * C + j];
            if (i != j && n) pairs[n_pairs++] = (Pair){i, j, n, (double)n / (double)total};
        }
    }
    qsort(rows, (size_t)n_rows, sizeof *rows, by_accuracy);
    qsort(pairs, (size_t)n_pairs, sizeof *pairs, by_count);
    AtomicFile af;
    if (atomic_open(&af, path, "w", err, cap)) { free(rows); free(pairs); return -1; }
    FILE *f = af.f;
    fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>vclip eval: ", f);
    svg_escape(f, r->list);
    fputs("</title>\n<style>body{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}h1{font-size:1.4em}"
          "h2{font-size:1.15em;margin-top:2em}table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #ddd;"
          "text-align:left}td.n{text-align:right}.big{font-size:1.6em;font-weight:bold}.note{color:#666;font-size:.9em}</style>\n"
          "</head><body>\n<h1>Zero-shot evaluation: ", f);
    svg_escape(f, r->list);
    fputs("</h1>\n<p class=\"note\">model ", f);
    svg_escape(f, r->model);
    fputs(" &middot; written by vclip-run eval --report</p>\n<table>\n", f);
    fprintf(f, "<tr><th>top-1</th><th>top-5</th><th>mean class accuracy</th><th>videos</th><th>unreadable</th><th>classes</th></tr>\n"
               "<tr><td class=\"big\">%.2f%%</td><td class=\"big\">%.2f%%</td><td class=\"big\">%.2f%%</td><td>%zu</td><td>%zu</td><td>%d</td></tr>\n"
               "</table>\n", 100 * r->m.top1, 100 * r->m.top5, 100 * r->m.mean_class_accuracy, r->m.n, r->skipped, C);
    fputs("<h2>Confusion matrix</h2>\n<p class=\"note\">Rows: true class; columns: predicted. Shade: the share of the true "
          "class's videos (green on the diagonal, orange off it); hover a cell for its count.</p>\n", f);
    heat_map(f, r);
    fputs("<h2>Most confused pairs</h2>\n", f);
    if (!n_pairs) fputs("<p>No video was given a wrong class.</p>\n", f);
    else {
        fputs("<table><tr><th>true class</th><th>predicted as</th><th>videos</th><th>share of the true class</th></tr>\n", f);
        for (int k = 0; k < n_pairs && k < 20; k++) {
            fputs("<tr>", f);
            cell(f, r->names[pairs[k].t]);
            cell(f, r->names[pairs[k].p]);
            fprintf(f, "<td class=\"n\">%ld</td><td class=\"n\">%.0f%%</td></tr>\n", pairs[k].n, 100 * pairs[k].share);
        }
        fputs("</table>\n", f);
    }
    fputs("<h2>Accuracy per class</h2>\n<p class=\"note\">Worst first; orange: below the overall top-1. Classes without "
          "videos in the list are left out.</p>\n", f);
    accuracy_bars(f, r, rows, n_rows);
    if (r->n_curve > 0) {
        fputs("<h2>Patch ratio: zero-shot against close-set</h2>\n", f);
        char labels[64][16];
        const char *lp[64];
        int n = r->n_curve < 64 ? r->n_curve : 64;
        for (int i = 0; i < n; i++) snprintf(labels[i], sizeof labels[i], "%.2g", r->ratios[i]), lp[i] = labels[i];
        svg_curve_write(f, r->close_set, r->zero_shot, lp, n, "Patch ratio: zero-shot vs close-set", "close-set top-1 (%)",
                        "zero-shot top-1 (%)");
    }
    fputs("</body></html>\n", f);
    free(rows);
    free(pairs);
    return atomic_commit(&af, err, cap);
}
