/* html_report.h — an eval's results as one self-contained HTML page people
 * can look at (`vclip-run eval --report DIR`): the metrics, the confusion
 * matrix as an SVG heat map, per-class accuracy bars, the most confused
 * class pairs and, when given, the patch-ratio curve of a sweep.  No
 * scripts, no external files. */
#ifndef VCLIP_HTML_REPORT_H
#define VCLIP_HTML_REPORT_H

#include <stddef.h>
#include "../runtime/eval/metrics.h"

typedef struct {
    const char *model, *list;        /* what was evaluated (shown as given) */
    ClassMetrics m;
    size_t skipped;
    int C;
    char *const *names;              /* C class names */
    const long *confusion;           /* C x C, row = true class, column = predicted */
    /* a sweep's curve (vclip-run sweep --json), or n_curve 0 */
    const double *ratios, *zero_shot, *close_set;
    int n_curve;
} Report;

/* DIR/index.html (DIR made if needed), written atomically.  0, or -1 with a
 * message. */
int html_report_write(const char *dir, const Report *r, char *err, size_t cap);

#endif
