/* cmd_average.c — `vclip-run average`: the uniform average of the weights of
 * several checkpoints or weight files (SWA done offline, e.g. over the
 * epoch-N.safetensors that `train --keep-epochs` writes). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../runtime/safetensors.h"
#include "../runtime/train/checkpoint.h"
#include "cli.h"
#include "commands.h"

#define TOOL "vclip-run average"

static const char *usage =
    "usage: vclip-run average A.safetensors B.safetensors [...] -o OUT.safetensors\n"
    "  Averages the weights (not the optimizer or SWA state) of checkpoints or weight files;\n"
    "  every file must hold the same weights with the same shapes.\n";

int cmd_average(int argc, char **argv)
{
    static const struct option opts[] = {{"output", 1, 0, 'o'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *out = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        if (c == 'o') out = optarg;
        else if (c == 'h') { fputs(usage, stdout); return 0; }
        else return cli_usage_error(TOOL, "unknown option (see --help)");
    }
    int n_files = argc - optind;
    if (!out || n_files < 1) return cli_usage_error(TOOL, "give the files to average and -o OUT.safetensors");
    char err[1024], **names = NULL;
    int n = 0, k = 0, rc = 1;
    if (safetensors_names(argv[optind], &names, &n, err, sizeof err)) { cli_error(TOOL, NULL, err); return 1; }
    Tensor **acc = calloc((size_t)n + 1, sizeof(Tensor *));
    const char **wn = calloc((size_t)n + 1, sizeof(char *));
    if (!acc || !wn) { cli_error(TOOL, NULL, "out of memory"); goto done; }
    for (int i = 0; i < n; i++) {
        if (!checkpoint_is_weight(names[i])) continue;
        wn[k] = names[i];
        if (!(acc[k] = safetensors_load(argv[optind], names[i], NULL, NULL, err, sizeof err))) { cli_error(TOOL, NULL, err); goto done; }
        if (acc[k]->dtype != DT_F32) { fprintf(stderr, "%s: %s: '%s' is not f32\n", TOOL, argv[optind], names[i]); goto done; }
        k++;
    }
    for (int f = 1; f < n_files; f++) {
        const char *path = argv[optind + f];
        for (int i = 0; i < k; i++) {
            Tensor *t = safetensors_load(path, wn[i], NULL, NULL, err, sizeof err);
            if (!t) { cli_error(TOOL, NULL, err); goto done; }
            int same = t->dtype == DT_F32 && t->rank == acc[i]->rank && !memcmp(t->dims, acc[i]->dims, sizeof(int64_t) * (size_t)t->rank);
            if (same) {
                float *a = acc[i]->data;
                const float *x = t->data;
                for (int64_t j = 0, m = tensor_numel(t); j < m; j++) a[j] += (x[j] - a[j]) / (float)(f + 1); /* running mean */
            }
            tensor_free(t);
            if (!same) { fprintf(stderr, "%s: %s: '%s' differs in type or shape from %s\n", TOOL, path, wn[i], argv[optind]); goto done; }
        }
    }
    CheckpointView v = {k, wn, acc, NULL, NULL, NULL, NULL};
    if (checkpoint_save(out, &v, err, sizeof err)) { cli_error(TOOL, NULL, err); goto done; }
    printf("averaged %d weights over %d files into %s\n", k, n_files, out);
    rc = 0;
done:
    for (int i = 0; acc && i < k; i++) tensor_free(acc[i]);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    free(acc);
    free(wn);
    return rc;
}
