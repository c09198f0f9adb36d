/* cuda_templates.c — see cuda_templates.h.  Semantics follow the CPU
 * reference kernels (runtime/cpu/ref_*.c); tests/unit/test_cuda.c checks
 * each against them on a device. */
#include "cuda_templates.h"

#define STR(...) #__VA_ARGS__
#define XSTR(...) STR(__VA_ARGS__)

static const char source[] =
    "/* vclip template kernels */\n"
    "struct AttnArgs { " XSTR(CUDA_ATTN_FIELDS) " };\n"
    "#define INFINITY __int_as_float(0x7f800000)\n"
    STR(
__device__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* every thread of the block gets the total; red: 32 floats of shared memory */
__device__ float block_reduce(float v, float *red, int is_max)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    v = is_max ? warp_max(v) : warp_sum(v);
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = lane < warps ? red[lane] : (is_max ? -INFINITY : 0.0f);
    return is_max ? warp_max(t) : warp_sum(t);
}

/* A row's mean and 1 / sqrt(variance + eps), every thread of the block gets them */
__device__ void row_moments(const float *xr, int cols, float eps, float *red, float *mean, float *inv)
{
    float s = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) s += xr[c];
    const float m = block_reduce(s, red, 0) / cols;
    float v = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) { const float d = xr[c] - m; v += d * d; }
    *mean = m;
    *inv = rsqrtf(block_reduce(v, red, 0) / cols + eps);
}

/* LayerNormalization over the last axis: a block per row */
extern "C" __global__ void vclip_layernorm(const float *x, const float *gamma, const float *beta, float *y, long long rows,
                                           int cols, float eps)
{
    __shared__ float red[32];
    const long long r = blockIdx.x;
    if (r >= rows) return;
    const float *xr = x + r * cols;
    float mean, inv;
    row_moments(xr, cols, eps, red, &mean, &inv);
    for (int c = threadIdx.x; c < cols; c += blockDim.x)
        y[r * cols + c] = (xr[c] - mean) * inv * (gamma ? gamma[c] : 1.0f) + (beta ? beta[c] : 0.0f);
}

/* Softmax over the last axis: a block per row */
extern "C" __global__ void vclip_softmax(const float *x, float *y, long long rows, int cols)
{
    __shared__ float red[32];
    const long long r = blockIdx.x;
    if (r >= rows) return;
    const float *xr = x + r * cols;
    float m = -INFINITY;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, xr[c]);
    m = block_reduce(m, red, 1);
    float s = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) s += expf(xr[c] - m);
    const float inv = 1.0f / block_reduce(s, red, 0);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) y[r * cols + c] = expf(xr[c] - m) * inv;
}

/* The frames a batch row's keys come from (runtime/cpu/attention_sources.c):
 * itself, or t+1..t+w, t-1..t-w, t; -1 for a zero-filled frame. */
__device__ int attention_sources(const AttnArgs &a, long long b, long long *src)
{
    if (!a.frames || !a.window) { src[0] = b; return 1; }
    const long long t = b % a.frames, base = b - t;
    int n = 0;
    for (int pass = 0; pass < 3; pass++) {
        const long long from = pass == 2 ? 0 : 1, to = pass == 2 ? 0 : a.window;
        for (long long o = from; o <= to; o++) {
            const long long f = pass == 0 ? t + o : pass == 1 ? t - o : t;
            if (f >= 0 && f < a.frames) src[n++] = base + f;
            else if (a.boundary == 0) src[n++] = -1;
        }
    }
    return n;
}

/* A head's slice of a row into a lane's 8 registers (channels lane + 32 t), times mul */
__device__ void load_head(const float *X, long long row, long long C, long long off, long long h, int d, int lane, float mul, float *r)
{
    for (int t = 0; t < 8; t++) {
        const int c = lane + 32 * t;
        r[t] = c < d ? X[row * C + off + h * d + c] * mul : 0.0f;
    }
}

__device__ void store_head(float *X, long long row, long long C, long long off, long long h, int d, int lane, const float *r)
{
    for (int t = 0; t < 8; t++) {
        const int c = lane + 32 * t;
        if (c < d) X[row * C + off + h * d + c] = r[t];
    }
}

/* sum over the warp of a . b (8 registers a lane) */
__device__ float warp_dot(const float *a, const float *b)
{
    float part = 0.0f;
    for (int t = 0; t < 8; t++) part += a[t] * b[t];
    return warp_sum(part);
}

/* Key row m of source batch row src (-1: a zero-filled frame) */
__device__ long long key_row(const AttnArgs &a, long long src, long long m)
{
    return src < 0 ? -1 : (a.seq_first ? m * a.B + src : src * a.M + m);
}

/* The logit of query i (its head's slice in qs, already scaled) against
 * key row kv (0 for a zero-filled frame), plus the additive mask */
__device__ float attention_logit(const AttnArgs &a, const float *qs, const float *K, const float *mask, long long kv, long long i,
                                 long long m, long long h, int lane)
{
    float score = 0.0f;
    if (kv >= 0) {
        float k[8];
        load_head(K, kv, a.Ck, a.k_off, h, (int)a.head_dim, lane, 1.0f, k);
        score = warp_dot(qs, k);
    }
    if (a.has_mask) score += mask[i * a.M + m];
    return score;
}

/* One query row's attention by online softmax: o (unnormalized), its max
 * and sum; the forward kernel and the backward's statistics share it */
__device__ void attention_row(const AttnArgs &a, const float *qs, const float *K, const float *V, const float *mask, long long b,
                              long long i, long long h, int lane, float *o, float *mx_out, float *sum_out)
{
    long long src[129];
    const int ns = attention_sources(a, b, src);
    float mx = -INFINITY, sum = 0.0f;
    for (int t = 0; t < 8; t++) o[t] = 0.0f;
    for (int s = 0; s < ns; s++)
        for (long long m = 0; m < a.M; m++) {
            const long long kv = key_row(a, src[s], m);
            const float score = attention_logit(a, qs, K, mask, kv, i, m, h, lane);
            if (a.causal && m > i) continue;
            if (score == -INFINITY) continue;
            const float mn = fmaxf(mx, score), alpha = expf(mx - mn), p = expf(score - mn);
            float v[8] = {0.0f}; /* a zero-filled frame: no value */
            if (kv >= 0) load_head(V, kv, a.Cv, a.v_off, h, (int)a.head_dim, lane, 1.0f, v);
            sum = sum * alpha + p;
            for (int t = 0; t < 8; t++) o[t] = o[t] * alpha + p * v[t];
            mx = mn;
        }
    *mx_out = mx;
    *sum_out = sum;
}

/* ai.vclip.Attention, online softmax: grid (N, B * heads), one warp per
 * query row, head_dim <= 256 (8 values per lane) */
extern "C" __global__ void vclip_attention(const float *Q, const float *K, const float *V, const float *mask, float *O, AttnArgs a)
{
    const int lane = threadIdx.x & 31, d = (int)a.head_dim;
    const long long i = blockIdx.x, b = blockIdx.y / a.heads, h = blockIdx.y % a.heads;
    if (i >= a.N || d > 256) return;
    const long long qrow = a.seq_first ? i * a.B + b : b * a.N + i;
    float qs[8], o[8], mx, sum;
    load_head(Q, qrow, a.Cq, a.q_off, h, d, lane, a.scale, qs);
    attention_row(a, qs, K, V, mask, b, i, h, lane, o, &mx, &sum);
    for (int t = 0; t < 8; t++) o[t] /= sum;
    store_head(O, qrow, a.Co, 0, h, d, lane, o);
}

/* ---- the attention's gradient in one kernel, flash style: the scores are
 * recomputed where they are needed and never stored.  A block owns one head
 * of one clip (the frames whose windows read each other's keys; a single
 * frame without a window), so every row its work needs is its own.  Its
 * warps take rows in turn through three phases, with a barrier after each:
 * each query row's log-sum-exp and D = dO . O (the forward recomputed) into
 * stats; dQ by query rows; dK and dV by key rows, walking the query rows
 * whose window holds the key's frame.  With P = exp(logit - lse) and
 * dS = P (dO . V - D) scale: dQ = sum dS K, dK = sum dS Q, dV = sum P dO. ---- */

/* stats[2 r], stats[2 r + 1] for query row i of frame b, r = (b * heads + h) * N + i */
__device__ void attention_grad_stats(const AttnArgs &a, const float *Q, const float *K, const float *V, const float *mask,
                                     const float *dO, float *stats, long long b, long long i, long long h, int lane)
{
    const long long qrow = a.seq_first ? i * a.B + b : b * a.N + i;
    float qs[8], o[8], g[8], mx, sum;
    load_head(Q, qrow, a.Cq, a.q_off, h, (int)a.head_dim, lane, a.scale, qs);
    load_head(dO, qrow, a.Co, 0, h, (int)a.head_dim, lane, 1.0f, g);
    attention_row(a, qs, K, V, mask, b, i, h, lane, o, &mx, &sum);
    for (int t = 0; t < 8; t++) o[t] /= sum;
    const float D = warp_dot(g, o);
    const long long r = (b * a.heads + h) * a.N + i;
    if (lane == 0) {
        stats[2 * r] = mx + logf(sum);
        stats[2 * r + 1] = D;
    }
}

/* dQ of query row i of frame b */
__device__ void attention_grad_dq(const AttnArgs &a, const float *Q, const float *K, const float *V, const float *mask,
                                  const float *dO, const float *stats, float *dQ, long long b, long long i, long long h, int lane)
{
    const int d = (int)a.head_dim;
    const long long qrow = a.seq_first ? i * a.B + b : b * a.N + i, r = (b * a.heads + h) * a.N + i;
    const float lse = stats[2 * r], D = stats[2 * r + 1];
    float qs[8], g[8], dq[8];
    load_head(Q, qrow, a.Cq, a.q_off, h, d, lane, a.scale, qs);
    load_head(dO, qrow, a.Co, 0, h, d, lane, 1.0f, g);
    for (int t = 0; t < 8; t++) dq[t] = 0.0f;
    long long src[129];
    const int ns = attention_sources(a, b, src);
    for (int s = 0; s < ns; s++)
        for (long long m = 0; m < a.M; m++) {
            const long long kv = key_row(a, src[s], m);
            const float score = attention_logit(a, qs, K, mask, kv, i, m, h, lane);
            if ((a.causal && m > i) || kv < 0) continue; /* a zero-filled frame has no key to move */
            float k[8], v[8];
            load_head(K, kv, a.Ck, a.k_off, h, d, lane, 1.0f, k);
            load_head(V, kv, a.Cv, a.v_off, h, d, lane, 1.0f, v);
            const float ds = expf(score - lse) * (warp_dot(g, v) - D) * a.scale;
            for (int t = 0; t < 8; t++) dq[t] += ds * k[t];
        }
    store_head(dQ, qrow, a.Cq, a.q_off, h, d, lane, dq);
}

/* dK and dV (either may be null) of key row m of frame bk, from the query
 * rows of frames first .. last - 1 that read it */
__device__ void attention_grad_dkv(const AttnArgs &a, const float *Q, const float *K, const float *V, const float *mask,
                                   const float *dO, const float *stats, float *dK, float *dV, long long bk, long long m,
                                   long long first, long long last, long long h, int lane)
{
    const int d = (int)a.head_dim;
    const long long kv = key_row(a, bk, m);
    float v[8], dk[8], dv[8];
    load_head(V, kv, a.Cv, a.v_off, h, d, lane, 1.0f, v);
    for (int t = 0; t < 8; t++) dk[t] = dv[t] = 0.0f;
    for (long long b = first; b < last; b++) {
        long long src[129];
        const int ns = attention_sources(a, b, src);
        int reads = 0;
        for (int s = 0; s < ns; s++) reads |= src[s] == bk;
        if (!reads) continue;
        for (long long i = 0; i < a.N; i++) {
            if (a.causal && m > i) continue;
            const long long qrow = a.seq_first ? i * a.B + b : b * a.N + i, r = (b * a.heads + h) * a.N + i;
            float q[8], qs[8], g[8];
            load_head(Q, qrow, a.Cq, a.q_off, h, d, lane, 1.0f, q);
            load_head(dO, qrow, a.Co, 0, h, d, lane, 1.0f, g);
            for (int t = 0; t < 8; t++) qs[t] = q[t] * a.scale;
            const float p = expf(attention_logit(a, qs, K, mask, kv, i, m, h, lane) - stats[2 * r]);
            const float ds = p * (warp_dot(g, v) - stats[2 * r + 1]) * a.scale;
            for (int t = 0; t < 8; t++) {
                dk[t] += ds * q[t];
                dv[t] += p * g[t];
            }
        }
    }
    if (dK) store_head(dK, kv, a.Ck, a.k_off, h, d, lane, dk);
    if (dV) store_head(dV, kv, a.Cv, a.v_off, h, d, lane, dv);
}

/* Zero the channels that no head writes (outside off .. off + heads *
 * head_dim) in the rows of frames first .. first + span - 1 of X [.., C],
 * n rows a frame; every thread of the block strides */
__device__ void zero_outside_heads(const AttnArgs &a, float *X, long long C, long long off, long long n, long long first, long long span)
{
    const long long inside = a.heads * a.head_dim, outside = C - inside;
    for (long long e = threadIdx.x; e < span * n * outside; e += blockDim.x) {
        const long long c = e % outside, j = e / outside, b = first + j / n, i = j % n;
        const long long row = a.seq_first ? i * a.B + b : b * n + i;
        X[row * C + (c < off ? c : c + inside)] = 0.0f;
    }
}

/* grid (clips, heads), a block of whole warps; stats: room for
 * 2 * B * heads * N floats; dQ, dK, dV may each be null */
extern "C" __global__ void vclip_attention_grad(const float *Q, const float *K, const float *V, const float *mask, const float *dO,
                                                float *stats, float *dQ, float *dK, float *dV, AttnArgs a)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    if (a.head_dim > 256) return;
    const long long h = blockIdx.y, span = a.frames && a.window ? a.frames : 1, first = blockIdx.x * span, last = first + span;
    if (h == 0) { /* the channels outside the heads, once */
        if (dQ) zero_outside_heads(a, dQ, a.Cq, a.q_off, a.N, first, span);
        if (dK) zero_outside_heads(a, dK, a.Ck, a.k_off, a.M, first, span);
        if (dV) zero_outside_heads(a, dV, a.Cv, a.v_off, a.M, first, span);
    }
    for (long long w = warp; w < span * a.N; w += warps) attention_grad_stats(a, Q, K, V, mask, dO, stats, first + w / a.N, w % a.N, h, lane);
    __syncthreads();
    if (dQ)
        for (long long w = warp; w < span * a.N; w += warps)
            attention_grad_dq(a, Q, K, V, mask, dO, stats, dQ, first + w / a.N, w % a.N, h, lane);
    if (dK || dV)
        for (long long w = warp; w < span * a.M; w += warps)
            attention_grad_dkv(a, Q, K, V, mask, dO, stats, dK, dV, first + w / a.M, w % a.M, first, last, h, lane);
}

/* A row's log-sum-exp, every thread of the block gets it */
__device__ float row_lse(const float *x, long long cols, float *red)
{
    float m = -INFINITY;
    for (long long c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, x[c]);
    m = block_reduce(m, red, 1);
    float s = 0.0f;
    for (long long c = threadIdx.x; c < cols; c += blockDim.x) s += expf(x[c] - m);
    return m + logf(block_reduce(s, red, 0));
}

/* SoftmaxCrossEntropyLoss over scores [B, C] and labels [B] (int64), one
 * block for the batch (B is small; C up to thousands): loss (mode 0 mean,
 * 1 sum: one value; 2 none: [B]) and, when lp is not null, the log
 * probabilities [B, C].  A label outside [0, C) makes the loss NaN. */
extern "C" __global__ void vclip_softmax_ce(const float *scores, const long long *labels, float *loss, float *lp, long long B, long long C,
                                            int mode)
{
    __shared__ float red[32];
    float total = 0.0f;
    for (long long b = 0; b < B; b++) {
        const float *x = scores + b * C;
        const float lse = row_lse(x, C, red);
        const long long y = labels[b];
        const float l = y >= 0 && y < C ? lse - x[y] : __int_as_float(0x7fc00000);
        if (lp) for (long long c = threadIdx.x; c < C; c += blockDim.x) lp[b * C + c] = x[c] - lse;
        if (mode == 2 && threadIdx.x == 0) loss[b] = l;
        total += l;
    }
    if (mode != 2 && threadIdx.x == 0) loss[0] = mode == 0 ? total / (float)B : total;
}

/* Its gradient: ds = g (softmax - onehot), g = dloss (per row for mode 2)
 * over B for the mean; a block per row */
extern "C" __global__ void vclip_softmax_ce_grad(const float *dloss, const float *scores, const long long *labels, float *ds, long long B,
                                                 long long C, int mode)
{
    __shared__ float red[32];
    const long long b = blockIdx.x;
    if (b >= B) return;
    const float *x = scores + b * C;
    const float lse = row_lse(x, C, red), g = dloss[mode == 2 ? b : 0] / (mode == 0 ? (float)B : 1.0f);
    const long long y = labels[b];
    for (long long c = threadIdx.x; c < C; c += blockDim.x)
        ds[b * C + c] = y >= 0 && y < C ? g * (expf(x[c] - lse) - (c == y ? 1.0f : 0.0f)) : __int_as_float(0x7fc00000);
}

/* Gather along an axis with indices on the device: y [outer, ni, inner] =
 * x [outer, len, inner] at idx (int64, negative from the end; outside
 * [-len, len) gives NaN) */
extern "C" __global__ void vclip_gather(const float *x, const long long *idx, float *y, long long outer, long long len, long long ni,
                                        long long inner)
{
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= outer * ni * inner) return;
    const long long c = i % inner, j = i / inner % ni, o = i / (inner * ni);
    long long g = idx[j];
    if (g < 0) g += len;
    y[i] = g >= 0 && g < len ? x[(o * len + g) * inner + c] : __int_as_float(0x7fc00000);
}

/* ---- integer index arithmetic (the text tower's end-of-text position:
 * Cast, Equal, ArgMax, Add), as runtime/cpu/ref_elementwise.c and
 * ref_reduce.c compute it.  Types: 0 int64, 1 int32, 2 int8, 3 uint8,
 * 4 bool, 5 float (read only, by the arg-reductions). */

__device__ long long int_get(const void *p, int t, long long i)
{
    return t == 0 ? ((const long long *)p)[i] : t == 1 ? (long long)((const int *)p)[i]
         : t == 2 ? (long long)((const signed char *)p)[i] : (long long)((const unsigned char *)p)[i];
}

__device__ void int_set(void *p, int t, long long i, long long v)
{
    if (t == 0) ((long long *)p)[i] = v;
    else if (t == 1) ((int *)p)[i] = (int)v;
    else if (t == 2) ((signed char *)p)[i] = (signed char)v;
    else if (t == 3) ((unsigned char *)p)[i] = (unsigned char)v;
    else ((unsigned char *)p)[i] = v != 0;
}

/* A thread per output element, inputs broadcast by strides: op 0 add,
 * 1 sub, 2 mul (wrapping in 64 bits), 3 equal, 4 less, 5 less or equal,
 * 6 greater, 7 greater or equal (0 or 1 out), 8 cast (a alone).  p: the
 * output's dims [rank], a's strides [rank], b's strides [rank] (0 where
 * an input is broadcast). */
extern "C" __global__ void vclip_int_elementwise(const void *a, int ta, const void *b, int tb, void *y, int ty, int op, long long n,
                                                 int rank, const long long *p)
{
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    long long rem = i, ia = 0, ib = 0;
    for (int d = rank - 1; d >= 0; d--) {
        const long long c = rem % p[d];
        rem /= p[d];
        ia += c * p[rank + d];
        ib += c * p[2 * rank + d];
    }
    const long long x = int_get(a, ta, ia);
    if (op == 8) { int_set(y, ty, i, x); return; }
    const long long z = int_get(b, tb, ib);
    const unsigned long long ux = (unsigned long long)x, uz = (unsigned long long)z;
    const long long r = op == 0 ? (long long)(ux + uz) : op == 1 ? (long long)(ux - uz) : op == 2 ? (long long)(ux * uz)
                      : op == 3 ? x == z : op == 4 ? x < z : op == 5 ? x <= z : op == 6 ? x > z : x >= z;
    int_set(y, ty, i, r);
}

/* ArgMax (want_max 1) or ArgMin over [outer, len, inner] of x, a thread
 * per output, compared in double as the reference does (a NaN is never
 * better; select_last takes the last of equal values) */
extern "C" __global__ void vclip_argreduce(const void *x, int t, long long *y, long long outer, long long len, long long inner,
                                           int want_max, int select_last)
{
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= outer * inner) return;
    const long long o = i / inner, c = i % inner;
    long long best = 0;
    double bv = t == 5 ? (double)((const float *)x)[o * len * inner + c] : (double)int_get(x, t, o * len * inner + c);
    for (long long k = 1; k < len; k++) {
        const long long at = (o * len + k) * inner + c;
        const double v = t == 5 ? (double)((const float *)x)[at] : (double)int_get(x, t, at);
        const int better = want_max ? (select_last ? v >= bv : v > bv) : (select_last ? v <= bv : v < bv);
        if (better) { bv = v; best = k; }
    }
    y[i] = best;
}

/* ---- the optimizer ---- */

/* acc[0] += the sum of g's squares: block sums in f32, added in f64 */
extern "C" __global__ void vclip_sum_squares(const float *g, long long n, double *acc)
{
    __shared__ float red[32];
    float s = 0.0f;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) s += g[i] * g[i];
    s = block_reduce(s, red, 0);
    if (threadIdx.x == 0) atomicAdd(acc, (double)s);
}

/* The update's control block (double ctl[], cuda_ops.h's CTL_*): the host
 * writes 0-4 before each step; the device sums the squares into 5 and
 * derives 6-7 from it, so that a captured step needs no host in between:
 *   0 lr / (1 - beta1^t)   1 sqrt(1 - beta2^t)   2 1 - lr * weight_decay
 *   3 max_norm (0: no clipping)   4 the loss scale S   5 sum of squares
 *   6 the gradients' scale   7 1: update, 0: skip */

/* ctl[6], ctl[7] from the sum of squares, as runtime/train/optimizer.c's
 * clip_scale of the loss's own norm (sqrt(sum) / S), over S again; the step
 * is skipped when the norm, the loss (loss: 0 for no check) or the scale is
 * not finite (x - x is 0 only for finite x) */
extern "C" __global__ void vclip_update_scale(double *ctl, const float *loss)
{
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    const double norm = sqrt(ctl[5]) / ctl[4], max_norm = ctl[3];
    double scale = 1.0;
    if (max_norm > 0) {
        const double c = max_norm / (norm + 1e-6);
        scale = c < 1 ? c : 1;
    }
    scale /= ctl[4];
    const double l = loss ? (double)loss[0] : 0.0;
    ctl[6] = scale;
    ctl[7] = norm - norm == 0.0 && l - l == 0.0 && scale - scale == 0.0 ? 1.0 : 0.0;
}

/* AdamW on one parameter, as runtime/train/optimizer.c: g scaled (clipping),
 * decoupled decay where decays, bias corrections folded into ctl[0] and
 * ctl[1]; nothing when ctl[7] says skip */
extern "C" __global__ void vclip_adamw(float *p, float *m, float *v, const float *g, long long n, const double *ctl, int decays,
                                       float beta1, float beta2, float eps)
{
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n || ctl[7] == 0.0) return;
    const float grad_scale = (float)ctl[6], step_size = (float)ctl[0], bc2_sqrt = (float)ctl[1], decay = decays ? (float)ctl[2] : 1.0f;
    const float gj = g[i] * grad_scale;
    const float mj = beta1 * m[i] + (1.0f - beta1) * gj, vj = beta2 * v[i] + (1.0f - beta2) * gj * gj;
    m[i] = mj;
    v[i] = vj;
    p[i] = p[i] * decay - step_size * mj / (sqrtf(vj) / bc2_sqrt + eps);
}

/* SWA's running mean on one parameter: avg += weight * (w - avg), in double
 * as runtime/train/trainer.c computes it on the host (weight 1: avg = w) */
extern "C" __global__ void vclip_swa(float *avg, const float *w, long long n, double weight)
{
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) avg[i] = (float)((double)avg[i] + weight * ((double)w[i] - (double)avg[i]));
}

/* y[0..n) = 0 */
extern "C" __global__ void vclip_zero(float *y, long long n)
{
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = 0.0f;
}

/* A strided copy over an index space c (dims): out[out_base + sum c_d *
 * out_stride_d] = in[in_base + sum c_d * in_stride_d]; p = dims[rank],
 * in_strides[rank], out_strides[rank] */
extern "C" __global__ void vclip_copy(const float *in, float *out, long long n, int rank, long long in_base, long long out_base,
                                      const long long *p)
{
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    long long rem = i, src = in_base, dst = out_base;
    for (int d = rank - 1; d >= 0; d--) {
        const long long c = rem % p[d];
        rem /= p[d];
        src += c * p[rank + d];
        dst += c * p[2 * rank + d];
    }
    out[dst] = in[src];
}

/* ---- training ---- */

/* IWR's interpolated weights: y = alpha w0 + (1 - alpha) w, alpha read on the device */
extern "C" __global__ void vclip_interpolate(const float *w0, const float *w, const float *alpha, float *y, long long n)
{
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float a = alpha[0];
    y[i] = a * w0[i] + (1.0f - a) * w[i];
}

/* dx = dy f'(x) for QuickGELU (quick 1) or erf GELU (quick 0) */
extern "C" __global__ void vclip_activation_grad(const float *dy, const float *x, float *dx, long long n, int quick)
{
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float v = x[i];
    float d;
    if (quick) {
        const float s = 1.0f / (1.0f + expf(-1.702f * v));
        d = s + 1.702f * v * s * (1.0f - s);
    } else d = 0.5f * (1.0f + erff(v * 0.70710678118654752f)) + v * expf(-0.5f * v * v) * 0.39894228040143268f;
    dx[i] = dy[i] * d;
}

/* y[o] = the sum of x over the reduced axes, a thread per output (Kahan
 * sums: rows of a bias gradient run to batch x tokens).  p: the kept dims
 * [ro] and their strides in x [ro], then the reduced dims [rr] and strides [rr] */
extern "C" __global__ void vclip_sum_axes(const float *x, float *y, long long n_out, int ro, int rr, const long long *p)
{
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n_out) return;
    long long rem = i, base = 0, n_red = 1;
    for (int d = ro - 1; d >= 0; d--) { base += rem % p[d] * p[ro + d]; rem /= p[d]; }
    for (int d = 0; d < rr; d++) n_red *= p[2 * ro + d];
    float sum = 0.0f, lost = 0.0f;
    for (long long j = 0; j < n_red; j++) {
        long long r = j, off = base;
        for (int d = rr - 1; d >= 0; d--) { off += r % p[2 * ro + d] * p[2 * ro + rr + d]; r /= p[2 * ro + d]; }
        const float v = x[off] - lost, t = sum + v;
        lost = (t - sum) - v;
        sum = t;
    }
    y[i] = sum;
}

/* LayerNormalization's gradient, a block per row: dx, and (when t is not
 * null) t = dy * xhat, whose column sums are dscale */
extern "C" __global__ void vclip_layernorm_grad(const float *dy, const float *x, const float *scale, float *dx, float *t, long long rows,
                                                int cols, float eps)
{
    __shared__ float red[32];
    const long long r = blockIdx.x;
    if (r >= rows) return;
    const float *xr = x + r * cols, *dr = dy + r * cols;
    float mean, inv;
    row_moments(xr, cols, eps, red, &mean, &inv);
    float mg = 0.0f, mgx = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        const float g = dr[c] * scale[c];
        mg += g;
        mgx += g * (xr[c] - mean) * inv;
    }
    mg = block_reduce(mg, red, 0) / cols;
    mgx = block_reduce(mgx, red, 0) / cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        const float xh = (xr[c] - mean) * inv;
        if (dx) dx[r * cols + c] = inv * (dr[c] * scale[c] - mg - xh * mgx);
        if (t) t[r * cols + c] = dr[c] * xh;
    }
}

/* y = act(x) + r after a GEMM (act 1: QuickGELU, 2: erf GELU; r may be null) */
extern "C" __global__ void vclip_act_residual(const float *x, const float *r, float *y, long long n, int act)
{
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = x[i];
    if (act == 1) v = v / (1.0f + expf(-1.702f * v));
    else if (act == 2) v = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    y[i] = v + (r ? r[i] : 0.0f);
}
);

const char *cuda_templates_source(void) { return source; }

const char *const cuda_template_kernels[] = {"vclip_layernorm", "vclip_softmax", "vclip_attention", "vclip_copy", "vclip_act_residual",
                                             "vclip_interpolate", "vclip_activation_grad", "vclip_sum_axes", "vclip_layernorm_grad",
                                             "vclip_attention_grad", "vclip_zero",
                                             "vclip_softmax_ce", "vclip_softmax_ce_grad", "vclip_gather", "vclip_sum_squares",
                                             "vclip_update_scale", "vclip_adamw", "vclip_swa", "vclip_int_elementwise", "vclip_argreduce"};
const int cuda_template_kernel_count = sizeof cuda_template_kernels / sizeof *cuda_template_kernels;
