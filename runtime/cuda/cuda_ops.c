/* cuda_ops.c — see cuda_ops.h. */
#include <stdio.h>
#include "cuda_ops.h"

static int launch(const char *name, unsigned gx, unsigned gy, unsigned block, CuStream s, void **args, char *err, size_t cap)
{
    const CudaApi *cu = cuda_api(err, cap);
    CuFunction fn = cu ? cuda_kernel(cuda_templates_source(), name, err, cap) : NULL;
    if (!fn) return -1;
    if (!gx || !gy) return 0;
    if (cu->launch(fn, gx, gy, 1, block, 1, 1, 0, s, args, NULL)) { snprintf(err, cap, "%s: launch failed", name); return -1; }
    return 0;
}

static unsigned blocks_for(int64_t n, unsigned block) { return (unsigned)((n + block - 1) / block); }

int cuda_layernorm(CuPtr x, CuPtr gamma, CuPtr beta, CuPtr y, int64_t rows, int cols, float eps, CuStream s, char *err, size_t cap)
{
    long long r = rows;
    void *args[] = {&x, &gamma, &beta, &y, &r, &cols, &eps};
    return launch("vclip_layernorm", (unsigned)rows, 1, 256, s, args, err, cap);
}

int cuda_softmax(CuPtr x, CuPtr y, int64_t rows, int cols, CuStream s, char *err, size_t cap)
{
    long long r = rows;
    void *args[] = {&x, &y, &r, &cols};
    return launch("vclip_softmax", (unsigned)rows, 1, 256, s, args, err, cap);
}

int cuda_attention(CuPtr q, CuPtr k, CuPtr v, CuPtr mask, CuPtr o, const CudaAttnArgs *a, CuStream s, char *err, size_t cap)
{
    CudaAttnArgs copy = *a;
    void *args[] = {&q, &k, &v, &mask, &o, &copy};
    return launch("vclip_attention", (unsigned)a->N, (unsigned)(a->B * a->heads), 32, s, args, err, cap);
}

int cuda_copy(CuPtr in, CuPtr out, int64_t n, int rank, int64_t in_base, int64_t out_base, CuPtr params, CuStream s, char *err,
              size_t cap)
{
    long long nn = n, ib = in_base, ob = out_base;
    void *args[] = {&in, &out, &nn, &rank, &ib, &ob, &params};
    return launch("vclip_copy", blocks_for(n, 256), 1, 256, s, args, err, cap);
}

int cuda_act_residual(CuPtr x, CuPtr r, CuPtr y, int64_t n, int act, CuStream s, char *err, size_t cap)
{
    long long nn = n;
    void *args[] = {&x, &r, &y, &nn, &act};
    return launch("vclip_act_residual", blocks_for(n, 256), 1, 256, s, args, err, cap);
}

int cuda_interpolate(CuPtr w0, CuPtr w, CuPtr alpha, CuPtr y, int64_t n, CuStream s, char *err, size_t cap)
{
    long long nn = n;
    void *args[] = {&w0, &w, &alpha, &y, &nn};
    return launch("vclip_interpolate", blocks_for(n, 256), 1, 256, s, args, err, cap);
}

int cuda_activation_grad(CuPtr dy, CuPtr x, CuPtr dx, int64_t n, int quick, CuStream s, char *err, size_t cap)
{
    long long nn = n;
    void *args[] = {&dy, &x, &dx, &nn, &quick};
    return launch("vclip_activation_grad", blocks_for(n, 256), 1, 256, s, args, err, cap);
}

int cuda_sum_axes(CuPtr x, CuPtr y, int64_t n_out, int ro, int rr, CuPtr params, CuStream s, char *err, size_t cap)
{
    long long n = n_out;
    void *args[] = {&x, &y, &n, &ro, &rr, &params};
    return launch("vclip_sum_axes", blocks_for(n_out, 128), 1, 128, s, args, err, cap);
}

int cuda_layernorm_grad(CuPtr dy, CuPtr x, CuPtr scale, CuPtr dx, CuPtr t, int64_t rows, int cols, float eps, CuStream s, char *err,
                        size_t cap)
{
    long long r = rows;
    void *args[] = {&dy, &x, &scale, &dx, &t, &r, &cols, &eps};
    return launch("vclip_layernorm_grad", (unsigned)rows, 1, 256, s, args, err, cap);
}

int cuda_zero(CuPtr y, int64_t n, CuStream s, char *err, size_t cap)
{
    long long nn = n;
    void *args[] = {&y, &nn};
    return launch("vclip_zero", blocks_for(n, 256), 1, 256, s, args, err, cap);
}

int cuda_attention_grad(CuPtr dout, CuPtr q, CuPtr k, CuPtr v, CuPtr mask, CuPtr stats, CuPtr dq, CuPtr dk, CuPtr dv, const CudaAttnArgs *a,
                        CuStream s, char *err, size_t cap)
{
    CudaAttnArgs copy = *a;
    const int64_t span = a->frames && a->window ? a->frames : 1;
    if (a->B % span) {
        snprintf(err, cap, "attention gradient: batch %lld is not a whole number of %lld-frame clips", (long long)a->B, (long long)span);
        return -1;
    }
    void *args[] = {&q, &k, &v, &mask, &dout, &stats, &dq, &dk, &dv, &copy};
    return launch("vclip_attention_grad", (unsigned)(a->B / span), (unsigned)a->heads, 256, s, args, err, cap);
}

int cuda_softmax_ce(CuPtr scores, CuPtr labels, CuPtr loss, CuPtr lp, int64_t B, int64_t C, int mode, CuStream s, char *err, size_t cap)
{
    long long b = B, c = C;
    void *args[] = {&scores, &labels, &loss, &lp, &b, &c, &mode};
    return launch("vclip_softmax_ce", 1, 1, 256, s, args, err, cap);
}

int cuda_softmax_ce_grad(CuPtr dloss, CuPtr scores, CuPtr labels, CuPtr ds, int64_t B, int64_t C, int mode, CuStream s, char *err,
                         size_t cap)
{
    long long b = B, c = C;
    void *args[] = {&dloss, &scores, &labels, &ds, &b, &c, &mode};
    return launch("vclip_softmax_ce_grad", (unsigned)B, 1, 256, s, args, err, cap);
}

int cuda_gather(CuPtr x, CuPtr idx, CuPtr y, int64_t outer, int64_t len, int64_t ni, int64_t inner, CuStream s, char *err, size_t cap)
{
    long long o = outer, l = len, n = ni, in = inner;
    void *args[] = {&x, &idx, &y, &o, &l, &n, &in};
    return launch("vclip_gather", blocks_for(outer * ni * inner, 256), 1, 256, s, args, err, cap);
}

int cuda_sum_squares(CuPtr g, int64_t n, CuPtr acc, CuStream s, char *err, size_t cap)
{
    long long nn = n;
    void *args[] = {&g, &nn, &acc};
    unsigned blocks = blocks_for(n, 256);
    return launch("vclip_sum_squares", blocks < 1024 ? blocks : 1024, 1, 256, s, args, err, cap);
}

int cuda_swa(CuPtr avg, CuPtr w, int64_t n, double weight, CuStream s, char *err, size_t cap)
{
    long long nn = n;
    void *args[] = {&avg, &w, &nn, &weight};
    return launch("vclip_swa", blocks_for(n, 256), 1, 256, s, args, err, cap);
}

int cuda_update_scale(CuPtr ctl, CuPtr loss, CuStream s, char *err, size_t cap)
{
    void *args[] = {&ctl, &loss};
    return launch("vclip_update_scale", 1, 1, 32, s, args, err, cap);
}

int cuda_adamw(CuPtr p, CuPtr m, CuPtr v, CuPtr g, int64_t n, CuPtr ctl, int decays, float beta1, float beta2, float eps, CuStream s,
               char *err, size_t cap)
{
    long long nn = n;
    void *args[] = {&p, &m, &v, &g, &nn, &ctl, &decays, &beta1, &beta2, &eps};
    return launch("vclip_adamw", blocks_for(n, 256), 1, 256, s, args, err, cap);
}

int cuda_int_elementwise(CuPtr a, int ta, CuPtr b, int tb, CuPtr y, int ty, int op, int64_t n, int rank, CuPtr params, CuStream s,
                         char *err, size_t cap)
{
    long long nn = n;
    void *args[] = {&a, &ta, &b, &tb, &y, &ty, &op, &nn, &rank, &params};
    return launch("vclip_int_elementwise", blocks_for(n, 256), 1, 256, s, args, err, cap);
}

int cuda_argreduce(CuPtr x, int t, CuPtr y, int64_t outer, int64_t len, int64_t inner, int want_max, int select_last, CuStream s, char *err,
                   size_t cap)
{
    long long o = outer, l = len, in = inner;
    void *args[] = {&x, &t, &y, &o, &l, &in, &want_max, &select_last};
    return launch("vclip_argreduce", blocks_for(outer * inner, 128), 1, 128, s, args, err, cap);
}
