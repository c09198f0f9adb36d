/* fast_math.c — f32 kernels for the exp-heavy ops (Sigmoid, Exp, Erf,
 * QuickGelu, Gelu, Softmax, the activations' gradients), LayerNorm and its
 * gradient, written so the compiler vectorizes them: a branch-free expf
 * (Cody-Waite range reduction + degree-6 polynomial, ~2 ulp) instead of
 * libm's scalar call, sums in 16 lanes.  The loops are cloned for AVX-512,
 * AVX2 and baseline x86-64 and picked at load time, so one binary runs
 * everywhere.  Checked against the reference
 * kernels (double precision) in tests/unit/test_kernels.c.  Anything outside
 * their fast path (other dtypes) goes to the reference kernel. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "kernels.h"
#include "parallel.h"
#if defined(__x86_64__)
#include "avx512_math.h"
#endif

static inline float expf_poly(float x)
{
    x = x < -87.3f ? -87.3f : (x > 88.7f ? 88.7f : x);
    /* round to nearest by the 1.5*2^23 trick: no floorf call, so it vectorizes */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;          /* ln2 split in two for precision */
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;  /* 2^n; n in [-126, 128) after the clamp */
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
}

/* erf via Abramowitz & Stegun 7.1.26 refined: |error| < 1.5e-7 */
static inline float erf_poly(float x)
{
    float a = fabsf(x), t = 1.0f / (1.0f + 0.3275911f * a);
    float y = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t;
    y = 1.0f - y * expf_poly(-a * a);
    return x < 0 ? -y : y;
}

VECTOR_CLONES static void sigmoid_loop(const float *a, float *o, int64_t n)
{
    for (int64_t i = 0; i < n; i++) o[i] = 1.0f / (1.0f + expf_poly(-a[i]));
}

VECTOR_CLONES static void exp_loop(const float *a, float *o, int64_t n)
{
    for (int64_t i = 0; i < n; i++) o[i] = expf_poly(a[i]);
}

VECTOR_CLONES static void erf_loop(const float *a, float *o, int64_t n)
{
    for (int64_t i = 0; i < n; i++) o[i] = erf_poly(a[i]);
}

VECTOR_CLONES static void quick_gelu_loop(const float *a, float *o, int64_t n)
{
    for (int64_t i = 0; i < n; i++) o[i] = a[i] / (1.0f + expf_poly(-1.702f * a[i]));
}

VECTOR_CLONES static void gelu_loop(const float *a, float *o, int64_t n)
{
    for (int64_t i = 0; i < n; i++) o[i] = 0.5f * a[i] * (1.0f + erf_poly(a[i] * 0.70710678118654752f));
}

VECTOR_CLONES static float softmax_row(const float *a, float *o, int64_t len, float mx)
{
    float sum = 0;
    for (int64_t i = 0; i < len; i++) { o[i] = expf_poly(a[i] - mx); sum += o[i]; }
    return sum;
}

typedef struct { const float *a; float *o; int op; } MapArgs;

static void map_range(void *vctx, int64_t b, int64_t e)
{
    const MapArgs *m = vctx;
    switch (m->op) {
    case OP_SIGMOID: sigmoid_loop(m->a + b, m->o + b, e - b); break;
    case OP_EXP: exp_loop(m->a + b, m->o + b, e - b); break;
    case OP_ERF: erf_loop(m->a + b, m->o + b, e - b); break;
    case OP_QUICK_GELU: quick_gelu_loop(m->a + b, m->o + b, e - b); break;
    default: gelu_loop(m->a + b, m->o + b, e - b); break;
    }
}

#define ELEMENT_GRAIN 16384

int fast_unary(KernelCtx *k)
{
    const Tensor *x = k->in[0];
    int op = k->ic->node->op;
    if (x->dtype != DT_F32 || (op != OP_SIGMOID && op != OP_EXP && op != OP_ERF)) return ref_unary(k);
    const float *a = x->data;
    float *o = k->out[0]->data;
    int64_t n = tensor_numel(x);
    MapArgs m = {a, o, op};
    parallel_for(n, ELEMENT_GRAIN, map_range, &m);
    for (int64_t i = 0; i < n; i++) if (a[i] != a[i]) o[i] = a[i]; /* NaN propagates */
    return 0;
}

/* The largest of a[0..n) (NaNs are passed over), 16 lanes at a time: a
 * maximum is exact in any order. */
VECTOR_CLONES static float row_max(const float *a, int64_t n)
{
    float lane[16], mx = -INFINITY;
    for (int k = 0; k < 16; k++) lane[k] = -INFINITY;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++) lane[k] = a[i + k] > lane[k] ? a[i + k] : lane[k];
    for (; i < n; i++) mx = a[i] > mx ? a[i] : mx;
    for (int k = 0; k < 16; k++) mx = lane[k] > mx ? lane[k] : mx;
    return mx;
}

VECTOR_CLONES static void scale_row(float *a, int64_t n, float s)
{
    for (int64_t i = 0; i < n; i++) a[i] *= s;
}

/* Softmax of one contiguous row (in may equal out); shared with fast_attention.c. */
float fast_softmax_row(const float *in, float *out, int64_t len);
float fast_softmax_row(const float *in, float *out, int64_t len)
{
    float mx = row_max(in, len);
    if (mx == -INFINITY || mx != mx || mx == INFINITY) {
        for (int64_t i = 0; i < len; i++) out[i] = NAN;
        return 0;
    }
    float inv = 1.0f / softmax_row(in, out, len, mx);
    scale_row(out, len, inv);
    return inv;
}

int fast_quick_gelu(KernelCtx *k)
{
    if (k->in[0]->dtype != DT_F32) return ref_quick_gelu(k);
    MapArgs m = {k->in[0]->data, k->out[0]->data, OP_QUICK_GELU};
    parallel_for(tensor_numel(k->in[0]), ELEMENT_GRAIN, map_range, &m);
    return 0;
}

int fast_gelu(KernelCtx *k)
{
    if (k->in[0]->dtype != DT_F32) return ref_gelu(k);
    MapArgs m = {k->in[0]->data, k->out[0]->data, OP_GELU};
    parallel_for(tensor_numel(k->in[0]), ELEMENT_GRAIN, map_range, &m);
    return 0;
}

typedef struct { const float *in; float *out; int64_t len; } RowArgs;

static void softmax_rows(void *vctx, int64_t b, int64_t e)
{
    const RowArgs *r = vctx;
    for (int64_t i = b; i < e; i++) fast_softmax_row(r->in + i * r->len, r->out + i * r->len, r->len);
}

int fast_softmax(KernelCtx *k)
{
    const Tensor *x = k->in[0];
    int64_t axis;
    if (x->dtype != DT_F32 || k->ic->opset < 13 || k->ic->node->op != OP_SOFTMAX) return ref_softmax(k);
    if (norm_axis(node_attr_i(k->ic->node, "axis", -1), x->rank, &axis) || axis != x->rank - 1) return ref_softmax(k);
    int64_t len = x->dims[axis], rows = len ? tensor_numel(x) / len : 0;
    RowArgs ra = {x->data, k->out[0]->data, len};
    parallel_for(rows, ELEMENT_GRAIN / (len ? len : 1) + 1, softmax_rows, &ra);
    return 0;
}

/* n floats -> bf16 as the bf16 GEMM rounds them (kernels.h): by the
 * instruction where the CPU has it (plain C ran at a third of its speed,
 * and the bf16 path's LayerNorms took 3% of the text tower) */
typedef void (*RoundBf16Fn)(const float *x, int64_t n, uint16_t *out);
static void round_bf16_portable(const float *x, int64_t n, uint16_t *out)
{
    for (int64_t i = 0; i < n; i++) out[i] = float_to_bf16_flushed(x[i]);
}
#if defined(__x86_64__)
AVX512_BF16 static void round_bf16_avx512(const float *x, int64_t n, uint16_t *out) { floats_to_bf16(x, n, out); }
#endif
static RoundBf16Fn round_bf16_for_cpu(void)
{
#if defined(__x86_64__)
    if (cpu_avx512_bf16()) return round_bf16_avx512;
#endif
    return round_bf16_portable;
}

/* out16 (bf16_output): Y in bf16, each row computed in f32 a chunk at a time and rounded by round_bf16 */
#define LN_CHUNK 512
typedef struct { const float *in; float *out; uint16_t *out16; RoundBf16Fn round_bf16; const float *g, *b; int64_t cols; float eps; } LnArgs;

/* Sums in 16 independent lanes: vectorizable without reassociating a
 * single chain (and more accurate than one running sum). */
static inline float lane_sum(const float *a, int64_t n, float shift, int squares)
{
    float acc[16] = {0};
    int64_t c = 0;
    for (; c + 16 <= n; c += 16)
        for (int j = 0; j < 16; j++) { float d = a[c + j] - shift; acc[j] += squares ? d * d : d; }
    float s = 0;
    for (int j = 0; j < 16; j++) s += acc[j];
    for (; c < n; c++) { float d = a[c] - shift; s += squares ? d * d : d; }
    return s;
}

VECTOR_CLONES static void layernorm_rows(void *vctx, int64_t rb, int64_t re)
{
    const LnArgs *l = vctx;
    int64_t cols = l->cols;
    for (int64_t r = rb; r < re; r++) {
        const float *a = l->in + r * cols;
        float *o = l->out ? l->out + r * cols : NULL;
        float mean = lane_sum(a, cols, 0.0f, 0) / (float)cols, sq = lane_sum(a, cols, mean, 1);
        float inv = 1.0f / sqrtf(sq / (float)cols + l->eps);
        if (l->out16) { /* the same floats, rounded as the bf16 GEMM would */
            float chunk[LN_CHUNK];
            for (int64_t c0 = 0; c0 < cols; c0 += LN_CHUNK) {
                int64_t n = cols - c0 < LN_CHUNK ? cols - c0 : LN_CHUNK;
                const float *ac = a + c0, *gc = l->g + c0, *bc = l->b ? l->b + c0 : NULL;
                if (bc) for (int64_t c = 0; c < n; c++) chunk[c] = (ac[c] - mean) * inv * gc[c] + bc[c];
                else for (int64_t c = 0; c < n; c++) chunk[c] = (ac[c] - mean) * inv * gc[c];
                l->round_bf16(chunk, n, l->out16 + r * cols + c0);
            }
        } else if (l->b) for (int64_t c = 0; c < cols; c++) o[c] = (a[c] - mean) * inv * l->g[c] + l->b[c];
        else for (int64_t c = 0; c < cols; c++) o[c] = (a[c] - mean) * inv * l->g[c];
    }
}

int fast_layernorm(KernelCtx *k)
{
    const Tensor *x = k->in[0], *scale = k->in[1], *bias = k->n_in > 2 ? k->in[2] : NULL;
    int64_t axis;
    if (x->dtype != DT_F32 || scale->dtype != DT_F32 || (bias && bias->dtype != DT_F32) || k->n_out > 1 ||
        norm_axis(node_attr_i(k->ic->node, "axis", -1), x->rank, &axis))
        return ref_layernorm(k);
    int64_t cols = 1;
    for (int i = (int)axis; i < x->rank; i++) cols *= x->dims[i];
    if (tensor_numel(scale) != cols || (bias && tensor_numel(bias) != cols) || cols == 0) return ref_layernorm(k);
    int out16 = k->out[0]->dtype == DT_BF16;
    LnArgs la = {x->data, out16 ? NULL : k->out[0]->data, out16 ? k->out[0]->data : NULL, out16 ? round_bf16_for_cpu() : NULL,
                 scale->data, bias ? bias->data : NULL, cols, node_attr_f(k->ic->node, "epsilon", 1e-5f)};
    parallel_for(tensor_numel(x) / cols, ELEMENT_GRAIN / cols + 1, layernorm_rows, &la);
    return 0;
}

/* LayerNormalizationGrad over the last axes: dx row by row, its sums in
 * double lanes, then dscale and dbias column block by column block (each
 * thread owns its columns). */
typedef struct {
    const float *dy, *x, *g;
    float *dx, *ds, *db, *mean, *inv;
    int64_t rows, cols;
    float eps;
} LnGradArgs;

/* sum over c of (a[c] - a_shift) * (b[c] - b_shift) * g[c], b or g NULL
 * meaning 1, in 16 double lanes: a gradient's row statistics keep double
 * precision (the data-parallel test compares ranks to 1e-6) and still
 * vectorize. */
static inline double lane_dot(const float *a, float a_shift, const float *b, float b_shift, const float *g, int64_t n)
{
    double acc[16] = {0};
    int64_t c = 0;
    for (; c + 16 <= n; c += 16)
        for (int j = 0; j < 16; j++)
            acc[j] += ((double)a[c + j] - a_shift) * (b ? (double)b[c + j] - b_shift : 1.0) * (g ? (double)g[c + j] : 1.0);
    double s = 0;
    for (int j = 0; j < 16; j++) s += acc[j];
    for (; c < n; c++) s += ((double)a[c] - a_shift) * (b ? (double)b[c] - b_shift : 1.0) * (g ? (double)g[c] : 1.0);
    return s;
}

VECTOR_CLONES static void ln_grad_rows(void *vctx, int64_t rb, int64_t re)
{
    const LnGradArgs *a = vctx;
    int64_t C = a->cols;
    for (int64_t r = rb; r < re; r++) {
        const float *x = a->x + r * C, *dy = a->dy + r * C;
        float mean = (float)(lane_dot(x, 0.0f, NULL, 0.0f, NULL, C) / (double)C);
        float inv = (float)(1.0 / sqrt(lane_dot(x, mean, x, mean, NULL, C) / (double)C + a->eps));
        a->mean[r] = mean;
        a->inv[r] = inv;
        if (!a->dx) continue;
        float mg = (float)(lane_dot(dy, 0.0f, NULL, 0.0f, a->g, C) / (double)C);
        float mgx = (float)(lane_dot(dy, 0.0f, x, mean, a->g, C) * inv / (double)C);
        float *dx = a->dx + r * C;
        for (int64_t c = 0; c < C; c++) dx[c] = inv * (dy[c] * a->g[c] - mg - (x[c] - mean) * inv * mgx);
    }
}

VECTOR_CLONES static void ln_grad_cols(void *vctx, int64_t cb, int64_t ce)
{
    const LnGradArgs *a = vctx;
    int64_t C = a->cols;
    for (int64_t c = cb; c < ce; c++) { if (a->ds) a->ds[c] = 0; if (a->db) a->db[c] = 0; }
    for (int64_t r = 0; r < a->rows; r++) {
        const float *x = a->x + r * C, *dy = a->dy + r * C;
        float mean = a->mean[r], inv = a->inv[r];
        if (a->ds) for (int64_t c = cb; c < ce; c++) a->ds[c] += dy[c] * (x[c] - mean) * inv;
        if (a->db) for (int64_t c = cb; c < ce; c++) a->db[c] += dy[c];
    }
}

int fast_layernorm_grad(KernelCtx *k)
{
    const Tensor *dy = k->in[0], *x = k->in[1], *scale = k->in[2];
    int64_t axis;
    if (dy->dtype != DT_F32 || x->dtype != DT_F32 || scale->dtype != DT_F32 ||
        norm_axis(node_attr_i(k->ic->node, "axis", -1), x->rank, &axis))
        return ref_layernorm_grad(k);
    int64_t cols = 1;
    for (int i = (int)axis; i < x->rank; i++) cols *= x->dims[i];
    if (!cols || tensor_numel(scale) != cols) return ref_layernorm_grad(k);
    int64_t rows = tensor_numel(x) / cols;
    float *stats = malloc(sizeof(float) * (size_t)(2 * rows + 1));
    if (!stats) return kernel_fail(k, "out of memory");
    LnGradArgs a = {dy->data, x->data, scale->data, k->out[0] ? k->out[0]->data : NULL,
                    k->n_out > 1 && k->out[1] ? k->out[1]->data : NULL, k->n_out > 2 && k->out[2] ? k->out[2]->data : NULL,
                    stats, stats + rows, rows, cols, node_attr_f(k->ic->node, "epsilon", 1e-5f)};
    parallel_for(rows, 1 + 16384 / cols, ln_grad_rows, &a);
    if (a.ds || a.db) parallel_for(cols, 64, ln_grad_cols, &a);
    free(stats);
    return 0;
}

/* QuickGeluGrad / GeluGrad: dy * f'(x) */
VECTOR_CLONES static void quick_gelu_grad_loop(const float *dy, const float *x, float *o, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + expf_poly(-1.702f * x[i]));
        o[i] = dy[i] * (s + 1.702f * x[i] * s * (1.0f - s));
    }
}

VECTOR_CLONES static void gelu_grad_loop(const float *dy, const float *x, float *o, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float v = x[i], cdf = 0.5f * (1.0f + erf_poly(v * 0.70710678118654752f));
        o[i] = dy[i] * (cdf + v * 0.39894228040143268f * expf_poly(-0.5f * v * v));
    }
}

typedef struct { const float *dy, *x; float *o; int quick; } GradMapArgs;

static void grad_map_range(void *vctx, int64_t b, int64_t e)
{
    const GradMapArgs *m = vctx;
    if (m->quick) quick_gelu_grad_loop(m->dy + b, m->x + b, m->o + b, e - b);
    else gelu_grad_loop(m->dy + b, m->x + b, m->o + b, e - b);
}

int fast_activation_grad(KernelCtx *k)
{
    const Tensor *dy = k->in[0], *x = k->in[1];
    if (dy->dtype != DT_F32 || x->dtype != DT_F32 || tensor_numel(dy) != tensor_numel(x)) return ref_activation_grad(k);
    GradMapArgs m = {dy->data, x->data, k->out[0]->data, k->ic->node->op == OP_QUICK_GELU_GRAD};
    parallel_for(tensor_numel(x), ELEMENT_GRAIN, grad_map_range, &m);
    return 0;
}
