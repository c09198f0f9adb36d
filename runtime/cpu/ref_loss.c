/* ref_loss.c — the training loss: ONNX SoftmaxCrossEntropyLoss over
 * [batch, classes] scores, and its gradient (softmax - onehot, scaled by the
 * incoming gradient and the reduction).  Double precision, the oracle. */
#include <math.h>
#include <string.h>
#include "kernels.h"

static int reduction(KernelCtx *k, int *mode) /* 0 mean, 1 sum, 2 none */
{
    const char *r = node_attr_s(k->ic->node, "reduction", "mean");
    *mode = !strcmp(r, "mean") ? 0 : !strcmp(r, "sum") ? 1 : !strcmp(r, "none") ? 2 : -1;
    return *mode < 0 ? kernel_fail(k, "unknown reduction '%s'", r) : 0;
}

/* log-softmax of one row into lp (double) */
static void log_softmax_row(const float *s, int64_t C, double *lp)
{
    double mx = -INFINITY, sum = 0;
    for (int64_t c = 0; c < C; c++) if (s[c] > mx) mx = s[c];
    for (int64_t c = 0; c < C; c++) sum += exp((double)s[c] - mx);
    double lse = mx + log(sum);
    for (int64_t c = 0; c < C; c++) lp[c] = (double)s[c] - lse;
}

static int label_at(KernelCtx *k, const Tensor *labels, int64_t b, int64_t C, int64_t *out)
{
    int64_t y = tensor_get_i64(labels, b);
    if (y < 0 || y >= C) return kernel_fail(k, "label %lld of row %lld is outside [0, %lld)", (long long)y, (long long)b, (long long)C);
    *out = y;
    return 0;
}

int ref_softmax_ce(KernelCtx *k)
{
    const Tensor *s = k->in[0], *labels = k->in[1];
    int mode;
    if (reduction(k, &mode)) return -1;
    int64_t B = s->dims[0], C = s->dims[1];
    if (labels->dims[0] != B) return kernel_fail(k, "%lld labels for %lld rows", (long long)labels->dims[0], (long long)B);
    double total = 0, lp[4096];
    if (C > 4096) return kernel_fail(k, "more than 4096 classes");
    for (int64_t b = 0; b < B; b++) {
        int64_t y = 0;
        if (label_at(k, labels, b, C, &y)) return -1;
        log_softmax_row((const float *)s->data + b * C, C, lp);
        if (mode == 2) ((float *)k->out[0]->data)[b] = (float)-lp[y];
        total -= lp[y];
        if (k->n_out > 1 && k->out[1])
            for (int64_t c = 0; c < C; c++) ((float *)k->out[1]->data)[b * C + c] = (float)lp[c];
    }
    if (mode == 0) *(float *)k->out[0]->data = (float)(B ? total / (double)B : 0);
    if (mode == 1) *(float *)k->out[0]->data = (float)total;
    return 0;
}

/* (dloss, scores, labels) -> dscores = dloss * (softmax - onehot) [/ B for mean] */
int ref_softmax_ce_grad(KernelCtx *k)
{
    const Tensor *dl = k->in[0], *s = k->in[1], *labels = k->in[2];
    int mode;
    if (reduction(k, &mode)) return -1;
    int64_t B = s->dims[0], C = s->dims[1];
    double lp[4096];
    if (C > 4096) return kernel_fail(k, "more than 4096 classes");
    float *d = k->out[0]->data;
    for (int64_t b = 0; b < B; b++) {
        int64_t y = 0;
        if (label_at(k, labels, b, C, &y)) return -1;
        double g = tensor_get_f64(dl, mode == 2 ? b : 0) / (mode == 0 ? (double)B : 1.0);
        log_softmax_row((const float *)s->data + b * C, C, lp);
        for (int64_t c = 0; c < C; c++) d[b * C + c] = (float)(g * (exp(lp[c]) - (c == y)));
    }
    return 0;
}
