/* cmd_metrics.c — `vclip-run metrics --scores S.npy --labels L.npy`: top-1,
 * top-5 and mean class accuracy of a saved score matrix (as `eval --scores`
 * writes it), with the tie rule of runtime/eval/metrics.h. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include "../runtime/eval/metrics.h"
#include "../runtime/npy.h"
#include "cli.h"
#include "commands.h"

#define TOOL "vclip-run metrics"

int cmd_metrics(int argc, char **argv)
{
    static const struct option opts[] = {{"scores", 1, 0, 's'}, {"labels", 1, 0, 'l'}, {"json", 0, 0, 'j'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *sp = NULL, *lp = NULL;
    int json = 0, c;
    while ((c = getopt_long(argc, argv, "s:l:jh", opts, NULL)) != -1) {
        if (c == 's') sp = optarg;
        else if (c == 'l') lp = optarg;
        else if (c == 'j') json = 1;
        else if (c == 'h') { printf("usage: vclip-run metrics --scores SCORES.npy (f32 [N, C]) --labels LABELS.npy (int [N]) [--json]\n"); return 0; }
        else return 2;
    }
    if (!sp || !lp) { cli_error(TOOL, NULL, "needs --scores and --labels"); return 2; }
    char err[1024];
    Tensor *s = npy_load(sp, err, sizeof err), *l = s ? npy_load(lp, err, sizeof err) : NULL;
    int rc = 1;
    if (!s || !l) { cli_error(TOOL, NULL, err); goto done; }
    if (s->dtype != DT_F32 || s->rank != 2 || l->rank != 1 || l->dims[0] != s->dims[0] || dtype_is_float(l->dtype)) {
        cli_error(TOOL, NULL, "scores must be f32 [N, C] and labels integers [N]");
        goto done;
    }
    int64_t n = s->dims[0], C = s->dims[1];
    int *labels = malloc(sizeof(int) * (size_t)(n ? n : 1));
    if (!labels) { cli_error(TOOL, NULL, "out of memory"); goto done; }
    for (int64_t i = 0; i < n; i++) {
        int64_t y = tensor_get_i64(l, i);
        if (y < 0 || y >= C) { fprintf(stderr, "%s: label %lld of video %lld is not a class index 0..%lld\n", TOOL, (long long)y, (long long)i, (long long)(C - 1)); free(labels); goto done; }
        labels[i] = (int)y;
    }
    ClassMetrics m;
    class_metrics(s->data, labels, (size_t)n, (int)C, &m, NULL, NULL);
    free(labels);
    if (json) printf("{\"top1\": %.6f, \"top5\": %.6f, \"mean_class_accuracy\": %.6f, \"n_videos\": %lld}\n", m.top1, m.top5, m.mean_class_accuracy, (long long)n);
    else printf("top-1 %.2f%%  top-5 %.2f%%  mean class accuracy %.2f%%  (%lld videos)\n", 100 * m.top1, 100 * m.top5, 100 * m.mean_class_accuracy, (long long)n);
    rc = 0;
done:
    tensor_free(s);
    tensor_free(l);
    return rc;
}
