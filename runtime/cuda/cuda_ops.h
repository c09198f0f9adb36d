/* cuda_ops.h — launching the template kernels (cuda_templates.c) on
 * device buffers, queued on a stream: what the graph executor (cuda_exec.c)
 * and the device tests call.  Each returns 0, or -1 with the reason. */
#ifndef VCLIP_CUDA_OPS_H
#define VCLIP_CUDA_OPS_H

#include <stddef.h>
#include <stdint.h>
#include "cuda_api.h"
#include "cuda_templates.h"

int cuda_layernorm(CuPtr x, CuPtr gamma, CuPtr beta, CuPtr y, int64_t rows, int cols, float eps, CuStream s, char *err, size_t cap);
int cuda_softmax(CuPtr x, CuPtr y, int64_t rows, int cols, CuStream s, char *err, size_t cap);
int cuda_attention(CuPtr q, CuPtr k, CuPtr v, CuPtr mask, CuPtr o, const CudaAttnArgs *a, CuStream s, char *err, size_t cap);
/* out[out_base + sum c_d * out_strides[d]] = in[in_base + sum c_d * in_strides[d]]
 * over the n indices c of dims; params: a device copy of dims, in_strides
 * and out_strides (3 * rank int64) */
int cuda_copy(CuPtr in, CuPtr out, int64_t n, int rank, int64_t in_base, int64_t out_base, CuPtr params, CuStream s, char *err,
              size_t cap);
/* y = act(x) + r (act: LINEAR_ACT_*; r may be 0) */
int cuda_act_residual(CuPtr x, CuPtr r, CuPtr y, int64_t n, int act, CuStream s, char *err, size_t cap);

/* y = alpha w0 + (1 - alpha) w, alpha a device scalar */
int cuda_interpolate(CuPtr w0, CuPtr w, CuPtr alpha, CuPtr y, int64_t n, CuStream s, char *err, size_t cap);
/* dx = dy f'(x), f QuickGELU (quick) or erf GELU */
int cuda_activation_grad(CuPtr dy, CuPtr x, CuPtr dx, int64_t n, int quick, CuStream s, char *err, size_t cap);
/* y [n_out] = x summed over its reduced axes; params: a device copy of the
 * kept dims and their strides in x (ro each), then the reduced dims and
 * strides (rr each) */
int cuda_sum_axes(CuPtr x, CuPtr y, int64_t n_out, int ro, int rr, CuPtr params, CuStream s, char *err, size_t cap);
/* The attention's gradient in one kernel: dq, dk, dv (each may be 0) shaped
 * like q, k, v (zero outside the heads' channels); stats: device room for
 * 2 * B * heads * N floats */
int cuda_attention_grad(CuPtr dout, CuPtr q, CuPtr k, CuPtr v, CuPtr mask, CuPtr stats, CuPtr dq, CuPtr dk, CuPtr dv, const CudaAttnArgs *a,
                        CuStream s, char *err, size_t cap);
/* SoftmaxCrossEntropyLoss: scores [B, C], labels [B] int64; loss one value
 * (mode 0 mean, 1 sum) or [B] (2 none); lp [B, C] log probabilities or 0 */
int cuda_softmax_ce(CuPtr scores, CuPtr labels, CuPtr loss, CuPtr lp, int64_t B, int64_t C, int mode, CuStream s, char *err, size_t cap);
/* its gradient with respect to the scores */
int cuda_softmax_ce_grad(CuPtr dloss, CuPtr scores, CuPtr labels, CuPtr ds, int64_t B, int64_t C, int mode, CuStream s, char *err,
                         size_t cap);
/* Gather with device indices (int64): y [outer, ni, inner] from x [outer, len, inner] */
int cuda_gather(CuPtr x, CuPtr idx, CuPtr y, int64_t outer, int64_t len, int64_t ni, int64_t inner, CuStream s, char *err, size_t cap);
/* acc (a device double) += sum of g's squares */
int cuda_sum_squares(CuPtr g, int64_t n, CuPtr acc, CuStream s, char *err, size_t cap);
/* avg[i] += weight * (w[i] - avg[i]) (in double): SWA's running mean */
int cuda_swa(CuPtr avg, CuPtr w, int64_t n, double weight, CuStream s, char *err, size_t cap);
/* The update's control block, ctl: CTL_COUNT doubles on the device.  The
 * host writes the first five before each step; the device sums the
 * gradients' squares into CTL_SUM_SQUARES and derives the last two from it
 * (the kernels in cuda_templates.c index it by these numbers). */
enum { CTL_STEP_SIZE, CTL_BC2_SQRT, CTL_DECAY, CTL_MAX_NORM, CTL_LOSS_SCALE, CTL_SUM_SQUARES, CTL_GRAD_SCALE, CTL_APPLIED, CTL_COUNT };
/* The update's gradient scale and skip decision, from the sum of squares
 * in ctl; loss: the loss to check, or 0 */
int cuda_update_scale(CuPtr ctl, CuPtr loss, CuStream s, char *err, size_t cap);
/* One AdamW update of p [n] with moments m, v and gradient g, its scalars
 * from the control block ctl (none when it says skip); decays: weight decay
 * applies */
int cuda_adamw(CuPtr p, CuPtr m, CuPtr v, CuPtr g, int64_t n, CuPtr ctl, int decays, float beta1, float beta2, float eps, CuStream s,
               char *err, size_t cap);
/* y [n] = a op b over integers (CUDA_INT_*; b unused by CUDA_INT_CAST), types
 * CUDA_ELEM_*; params: a device copy of the output's dims, a's strides and
 * b's strides (3 * rank int64, strides 0 where broadcast) */
int cuda_int_elementwise(CuPtr a, int ta, CuPtr b, int tb, CuPtr y, int ty, int op, int64_t n, int rank, CuPtr params, CuStream s,
                         char *err, size_t cap);
/* y [outer, inner] (int64) = the position of the largest (want_max) or
 * smallest element of x [outer, len, inner] (type CUDA_ELEM_*) */
int cuda_argreduce(CuPtr x, int t, CuPtr y, int64_t outer, int64_t len, int64_t inner, int want_max, int select_last, CuStream s, char *err,
                   size_t cap);
/* y [n] = 0 */
int cuda_zero(CuPtr y, int64_t n, CuStream s, char *err, size_t cap);
/* LayerNormalization's gradient over rows of cols: dx (or 0), and t = dy *
 * xhat (or 0) for dscale */
int cuda_layernorm_grad(CuPtr dy, CuPtr x, CuPtr scale, CuPtr dx, CuPtr t, int64_t rows, int cols, float eps, CuStream s, char *err,
                        size_t cap);

#endif
