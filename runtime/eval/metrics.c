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
