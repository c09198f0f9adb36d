/* metrics.c — see metrics.h.  Ties are ordered by class index so that every
 * rerun ranks the same way. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "metrics.h"

size_t true_class_rank(const float *scores, int C, int label)
{
    size_t r = 0;
    float s = scores[label];
    for (int c = 0; c < C; c++)
        if (scores[c] > s || (scores[c] == s && c < label)) r++;
    return r;
}

int predicted_class(const float *scores, int C)
{
    int best = 0;
    for (int c = 1; c < C; c++) if (scores[c] > scores[best]) best = c;
    return best;
}

void class_metrics(const float *scores, const int *labels, size_t n, int C, ClassMetrics *m, long *confusion,
                   double *per_class)
{
    memset(m, 0, sizeof *m);
    m->n = n;
    long *hit = calloc((size_t)C, sizeof(long)), *count = calloc((size_t)C, sizeof(long));
    if (confusion) memset(confusion, 0, sizeof(long) * (size_t)C * C);
    for (size_t i = 0; i < n; i++) {
        const float *s = scores + i * (size_t)C;
        int y = labels[i], p = predicted_class(s, C);
        size_t r = true_class_rank(s, C, y);
        m->top1 += r < 1;
        m->top5 += r < 5;
        if (confusion) confusion[(size_t)y * C + p]++;
        if (hit && count) { count[y]++; hit[y] += p == y; }
    }
    if (n) { m->top1 /= (double)n; m->top5 /= (double)n; }
    int classes = 0;
    for (int c = 0; hit && count && c < C; c++) {
        double acc = count[c] ? (double)hit[c] / count[c] : NAN;
        if (per_class) per_class[c] = acc;
        if (count[c]) { m->mean_class_accuracy += acc; classes++; }
    }
    if (classes) m->mean_class_accuracy /= classes;
    free(hit);
    free(count);
}

void mean_std(const double *x, int n, int ddof, double *mean, double *std)
{
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = n ? s / n : 0;
    for (int i = 0; i < n; i++) q += (x[i] - *mean) * (x[i] - *mean);
    *std = n > ddof ? sqrt(q / (n - ddof)) : 0;
}

double paired_interval95(const double *d, int n, double *mean)
{
    /* t_{0.975} for 1..30 degrees of freedom; 1.96 beyond */
    static const double t975[30] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                    2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                    2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
    double sd;
    mean_std(d, n, 1, mean, &sd);
    if (n < 2) return NAN;
    return (n - 1 <= 30 ? t975[n - 2] : 1.96) * sd / sqrt((double)n);
}
