/* retrieval.c — see retrieval.h. */
#include <stdlib.h>
#include <string.h>
#include "retrieval.h"

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

static void summarize(size_t *ranks, size_t n, RetrievalMetrics *m)
{
    memset(m, 0, sizeof *m);
    if (!n) return;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        m->r1 += ranks[i] <= 1;
        m->r5 += ranks[i] <= 5;
        m->r10 += ranks[i] <= 10;
        sum += (double)ranks[i];
    }
    m->r1 /= (double)n;
    m->r5 /= (double)n;
    m->r10 /= (double)n;
    m->mean_rank = sum / (double)n;
    qsort(ranks, n, sizeof *ranks, cmp_size);
    m->median_rank = n % 2 ? (double)ranks[n / 2] : 0.5 * (double)(ranks[n / 2 - 1] + ranks[n / 2]);
}

void retrieval_metrics(const float *sim, size_t nc, size_t nv, const size_t *owner, RetrievalMetrics *t2v, RetrievalMetrics *v2t)
{
    size_t *ranks = malloc(sizeof(size_t) * (nc > nv ? nc : nv) + 1), *best = malloc(sizeof(size_t) * nv + 1);
    if (!ranks || !best) { free(ranks); free(best); memset(t2v, 0, sizeof *t2v); memset(v2t, 0, sizeof *v2t); return; }
    for (size_t i = 0; i < nc; i++) { /* text -> video */
        const float *row = sim + i * nv;
        float s = row[owner[i]];
        size_t r = 1;
        for (size_t v = 0; v < nv; v++) if (row[v] > s || (row[v] == s && v < owner[i])) r++;
        ranks[i] = r;
    }
    summarize(ranks, nc, t2v);
    for (size_t v = 0; v < nv; v++) best[v] = 0;
    for (size_t i = 0; i < nc; i++) { /* video -> text: column owner[i] */
        size_t v = owner[i], r = 1;
        float s = sim[i * nv + v];
        for (size_t j = 0; j < nc; j++) {
            float o = sim[j * nv + v];
            if (o > s || (o == s && j < i)) r++;
        }
        if (!best[v] || r < best[v]) best[v] = r;
    }
    size_t n = 0;
    for (size_t v = 0; v < nv; v++) if (best[v]) ranks[n++] = best[v];
    summarize(ranks, n, v2t);
    free(ranks);
    free(best);
}
