/* metrics.h — classification metrics over a score matrix [N videos, C classes]. */
#ifndef VCLIP_METRICS_H
#define VCLIP_METRICS_H

#include <stddef.h>

typedef struct {
    double top1, top5;          /* fractions of videos */
    double mean_class_accuracy; /* mean over classes that have videos */
    size_t n;
} ClassMetrics;

/* Rank of the true class: the number of classes scoring strictly higher,
 * plus those scoring equal with a lower index (ties go to the lower class
 * index, as a stable descending sort would order them).  top-k counts a
 * video when its rank < k. */
size_t true_class_rank(const float *scores, int C, int label);
/* Predicted class: the highest score, the lowest index among ties. */
int predicted_class(const float *scores, int C);

/* confusion (C*C, row = true, column = predicted) and per_class (C) may be NULL. */
void class_metrics(const float *scores, const int *labels, size_t n, int C, ClassMetrics *m, long *confusion,
                   double *per_class);

/* Mean and standard deviation of x[n]; ddof 0: the population's (np.std,
 * as papers report over splits), 1: the sample's (over seeds). */
void mean_std(const double *x, int n, int ddof, double *mean, double *std);
/* Mean of n paired differences and the half-width of its 95% confidence
 * interval (Student's t, n - 1 degrees of freedom); NAN for n < 2. */
double paired_interval95(const double *d, int n, double *mean);

#endif
