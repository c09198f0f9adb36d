/* cuda_ptx.c — see cuda_ptx.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cuda_ptx.h"
#include "cuda_driver.h"
#include "nvrtc.h"
#include "../../codegen/render.h"
#include "../../ir/base.h"

int cuda_kernels_to_ptx(const Graph *g, const char *dir, char *err, size_t cap)
{
    char why[512], arch[2][32] = {"compute_80", "compute_90"};
    int n_arch = 2, k = 0;
    CudaInfo ci;
    if (cuda_probe(&ci, why, sizeof why) == 0) { snprintf(arch[0], sizeof arch[0], "compute_%d%d", ci.major, ci.minor); n_arch = 1; }
    if (!nvrtc_available(why, sizeof why)) { snprintf(err, cap, "--target cuda: %s", why); return -1; }
    for (int i = 0; i < g->n_nodes; i++) {
        char *src;
        int r = program_node_sources(g->nodes[i], NULL, &src, err, cap);
        if (r < 0) return -1;
        if (!r) continue;
        for (int a = 0; a < n_arch; a++) {
            char *ptx = src ? nvrtc_compile(src, arch[a], err, cap) : NULL;
            if (!ptx) { free(src); return -1; }
            if (dir) {
                char path[4096];
                snprintf(path, sizeof path, "%s/%02d-%s.ptx", dir, k, arch[a]);
                if (atomic_write(path, ptx, strlen(ptx), err, cap)) { free(ptx); free(src); return -1; }
            }
            free(ptx);
        }
        free(src);
        k++;
    }
    fprintf(stderr, "%d generated kernels compiled to PTX for %s%s%s (%s)\n", k, arch[0], n_arch > 1 ? " and " : "",
            n_arch > 1 ? arch[1] : "", why);
    return 0;
}
