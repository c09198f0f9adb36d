/* gemm.c — the AVX-512 GEMM behind Linear, Gemm and the patch embedding
 * Conv (gemm.h).  A 12x32 micro-kernel (24 accumulators, B rows loaded, A
 * broadcast; FMA for f32 weights, VDPBF16PS on k pairs for bf16 ones) over A
 * packed per block 768 deep (up to 960, where a thin last block joins the
 * others) and as many rows as fit the L2 cache, B
 * pre-packed in panels of 32 columns (f32 A of more than one row block, its
 * rows not a multiple of 4 KB apart, is read in place instead, tile_direct;
 * passes/pad_linear_hidden.c widens the MLP's hidden rows so that fc2's A
 * qualifies).  A may also come in bf16 (gemm_typed: activations their
 * producers stored in bf16, passes/bf16_activations.c), packed without rounding or, past one row
 * block, read in place (tile_direct_bf16), and C may be stored in bf16,
 * rounded in the epilogue.  Where the CPU has AMX, bf16 weights of a depth that is a multiple
 * of 32 run on its tiles instead: 32x32 of C in four f32 tiles, A packed in
 * bf16 pairs as whole 1 KB tiles, B's panels loaded as they are (a panel's
 * 16 k pairs x 32 columns are two tiles' rows, 128 bytes apart).  Work is cut
 * into (row block, column range) units that the thread pool takes dynamically, so both cores stay
 * busy at batch 1 and the GEMM never competes with BLAS's own spinning
 * threads.  The bf16 packing loops that walk many rows at once (the training
 * step's per-call operands) prefetch the rows ahead of them: the hardware's
 * prefetchers lose track of that many streams.  Checked against ref_linear.c (double accumulation) in
 * tests/unit/test_kernels.c. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "gemm.h"
#include "parallel.h"

#define MR 12      /* rows per micro-tile: 24 accumulators */
#define NR 32      /* columns per micro-tile and per B panel: two vectors */
#define MP 96      /* rows per piece of A packed by one task (whole micro-panels and AMX tile pairs) */
#define KC 768     /* depth per A block */
#define KC_MAX (KC + KC / 4) /* ... up to this, where a thin last block joins the others */
#define PACK_AHEAD 16 /* rows prefetched ahead by the packing loops that walk down many rows at once */
#define KC_AMX 1536 /* depth per A block on AMX tiles: KC's bytes in bf16 (fewer passes over C: ViT-B/32 auto 72 -> 68 ms) */

_Static_assert(NR == LINEAR_PANEL, "the micro-kernel's width is the packed weight's panel");

int64_t gemm_packed_floats(int64_t K, int64_t N) { return (N + NR - 1) / NR * K * NR; }

static const char *const kernel_names[GEMM_KERNEL_COUNT] = {"avx512-f32", "avx2-f32", "avx512-bf16", "amx-bf16"};
static int pinned_f32 = -1, pinned_bf16 = -1; /* gemm_pin's choices, or -1 */

const char *gemm_kernel_name(GemmKernel k) { return (unsigned)k < GEMM_KERNEL_COUNT ? kernel_names[k] : "?"; }
DType gemm_kernel_dtype(GemmKernel k) { return k == GEMM_KERNEL_AVX512 || k == GEMM_KERNEL_AVX2 ? DT_F32 : DT_BF16; }

int gemm_pin(GemmKernel k)
{
    if (!gemm_kernel_runs(k)) return -1;
    *(gemm_kernel_dtype(k) == DT_BF16 ? &pinned_bf16 : &pinned_f32) = (int)k;
    return 0;
}

void gemm_unpin(void) { pinned_f32 = pinned_bf16 = -1; }

/* The fastest first */
int gemm_kernel_for(DType dtype)
{
    static const GemmKernel f32[] = {GEMM_KERNEL_AVX512, GEMM_KERNEL_AVX2}, bf16[] = {GEMM_KERNEL_AMX_BF16, GEMM_KERNEL_AVX512_BF16};
    if (dtype != DT_F32 && dtype != DT_BF16) return -1;
    int pinned = dtype == DT_F32 ? pinned_f32 : pinned_bf16;
    if (pinned >= 0) return pinned;
    for (int i = 0; i < 2; i++)
        if (gemm_kernel_runs(dtype == DT_F32 ? f32[i] : bf16[i])) return dtype == DT_F32 ? f32[i] : bf16[i];
    return -1;
}

typedef struct { const float *B; int64_t K, N; int transposed; float *panels; } PackJob;

/* Panels qb..qe: B [K, N] row by row across all of them (each row's span
 * read in order), B^T [N, K] column by column (a column is a row of B^T,
 * written NR apart); zeros past N. */
static void pack_panels(void *ctx, int64_t qb, int64_t qe)
{
    const PackJob *p = ctx;
    int64_t K = p->K, N = p->N;
    if (qe * NR > N) memset(p->panels + (qe - 1) * K * NR, 0, sizeof(float) * (size_t)(K * NR)); /* the last panel is partial */
    if (!p->transposed) {
        int64_t n_end = qe * NR < N ? qe * NR : N;
        for (int64_t k = 0; k < K; k++)
            for (int64_t q = qb; q < qe; q++) {
                int64_t n0 = q * NR, cols = n_end - n0 < NR ? n_end - n0 : NR;
                memcpy(p->panels + (q * K + k) * NR, p->B + k * N + n0, sizeof(float) * (size_t)cols);
            }
        return;
    }
    for (int64_t q = qb; q < qe; q++) {
        float *d = p->panels + q * K * NR;
        for (int64_t j = 0; j < NR && q * NR + j < N; j++) {
            const float *r = p->B + (q * NR + j) * K;
            for (int64_t k = 0; k < K; k++) d[k * NR + j] = r[k];
        }
    }
}

void gemm_pack_b(const float *B, int64_t K, int64_t N, int transposed, float *panels)
{
    PackJob p = {B, K, N, transposed, panels};
    parallel_for((N + NR - 1) / NR, 4, pack_panels, &p); /* weights being trained are packed on every call */
}

/* One element of the epilogue (bias, activation, residual) in scalar code */
static float epilogue1(float v, const GemmEpilogue *ep, int64_t row, int64_t col)
{
    if (ep->bias) v += ep->bias[col];
    if (ep->act == LINEAR_ACT_QUICK_GELU) v = v / (1.0f + expf(-1.702f * v));
    else if (ep->act == LINEAR_ACT_GELU) v = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    if (ep->residual) v += ep->residual[row * ep->ldr + col];
    return v;
}

void gemm_epilogue_scalar(int64_t M, float *C, int64_t ldc, int64_t N, const GemmEpilogue *ep)
{
    for (int64_t i = 0; i < M; i++)
        for (int64_t n = 0; n < N; n++) C[i * ldc + n] = epilogue1(C[i * ldc + n], ep, i, n);
}

int64_t gemm_packed_bf16_halves(int64_t K, int64_t N) { return (N + NR - 1) / NR * ((K + 1) / 2) * 2 * NR; }

typedef struct { const float *B; int64_t K, N; int transposed; uint16_t *panels; } PackJob16;

/* Panel q of the bf16 layout, one element at a time (CPUs without AVX512-BF16) */
static void pack_panel_bf16_scalar(const PackJob16 *p, int64_t q)
{
    int64_t K2 = (p->K + 1) / 2;
    for (int64_t k = 0; k < 2 * K2; k++) {
        uint16_t *d = p->panels + (q * K2 + k / 2) * 2 * NR + k % 2;
        for (int64_t j = 0; j < NR; j++) {
            int64_t n = q * NR + j;
            d[2 * j] = n >= p->N || k >= p->K ? 0 : float_to_bf16(p->transposed ? p->B[n * p->K + k] : p->B[k * p->N + n]);
        }
    }
}

static void pack_panels_bf16_avx512(const PackJob16 *p, int64_t qb, int64_t qe);
static void pack_panels_bf16(void *ctx, int64_t qb, int64_t qe)
{
    const PackJob16 *p = ctx;
    if (gemm_available(DT_BF16)) pack_panels_bf16_avx512(p, qb, qe);
    else
        for (int64_t q = qb; q < qe; q++) pack_panel_bf16_scalar(p, q);
}

void gemm_pack_b_bf16(const float *B, int64_t K, int64_t N, int transposed, uint16_t *panels)
{
    PackJob16 p = {B, K, N, transposed, panels};
    parallel_for((N + NR - 1) / NR, 4, pack_panels_bf16, &p);
}

static int gemm_a(int64_t M, const void *A, int64_t lda, int a_transposed, int a_bf16, const PackedB *B, void *C, int64_t ldc, int c_bf16,
                  const GemmEpilogue *ep);

int gemm_unpacked(DType dtype, int64_t M, const float *A, int64_t lda, int a_transposed, const float *B, int64_t K, int64_t N, int transposed,
                  float *C, int64_t ldc, const GemmEpilogue *ep)
{
    size_t bytes = dtype == DT_BF16 ? sizeof(uint16_t) * (size_t)gemm_packed_bf16_halves(K, N) : sizeof(float) * (size_t)gemm_packed_floats(K, N);
    void *panels = aligned_alloc(64, (bytes + 127) / 64 * 64);
    if (!panels) return -1;
    if (dtype == DT_BF16) gemm_pack_b_bf16(B, K, N, transposed, panels);
    else gemm_pack_b(B, K, N, transposed, panels);
    PackedB pb = {.dtype = dtype, .panels = panels, .K = K, .N = N};
    int rc = gemm_a(M, A, lda, a_transposed, 0, &pb, C, ldc, 0, ep);
    free(panels);
    return rc;
}

#if defined(__x86_64__)
#include "avx512_math.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

int gemm_available(DType dtype)
{
    if (dtype == DT_BF16) return cpu_avx512_bf16();
    return dtype == DT_F32 && (__builtin_cpu_supports("avx512f") || (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")));
}

/* AMX: the CPU has tiles and bf16 products (CPUID 7.0 EDX bits 24, 22), and
 * Linux lets this process use the tile data (arch_prctl, once). */
static int amx_usable;
static void amx_probe(void)
{
#ifdef VCLIP_AMX_EMULATED /* tests/unit/test_kernels_amx.c: the tile instructions run on a host stand-in */
    amx_usable = 1;
    return;
#endif
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24)) || !(d & (1u << 22))) return;
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    amx_usable = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

int gemm_kernel_runs(GemmKernel k)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    switch (k) {
    case GEMM_KERNEL_AVX512: return __builtin_cpu_supports("avx512f");
    case GEMM_KERNEL_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case GEMM_KERNEL_AVX512_BF16: return gemm_available(DT_BF16);
    case GEMM_KERNEL_AMX_BF16: pthread_once(&once, amx_probe); return gemm_available(DT_BF16) && amx_usable;
    default: return 0;
    }
}

/* Every cache line of x[0..n) on its way into L1 */
AVX512 static inline void prefetch_span(const float *x, int64_t n)
{
    for (int64_t c = 0; c < n; c += 16) _mm_prefetch((const char *)(x + c), _MM_HINT_T0);
}

/* Panels qb..qe in bf16 k pairs, 16 columns at a time: B [K, N] gives
 * rows k and k + 1 as two vectors, rounded together and interleaved
 * (vpermw), row pair by row pair across all the panels (each row's span read
 * in order: a walk down one panel's columns misses the cache on every row);
 * B^T [N, K] gives a column's 32 k as one row, rounded into 16 pairs, and
 * 16 columns' pairs are transposed in registers.  Past N and K: zeros.  Same rounding as
 * float_to_bf16 (nearest even), except that denormals become zero. */
AVX512_BF16 static void pack_panel_bf16_transposed(const PackJob16 *p, int64_t q);
AVX512_BF16 static void pack_panels_bf16_avx512(const PackJob16 *p, int64_t qb, int64_t qe)
{
    if (p->transposed) {
        for (int64_t q = qb; q < qe; q++) pack_panel_bf16_transposed(p, q);
        return;
    }
    int64_t K = p->K, N = p->N, K2 = (K + 1) / 2;
    for (int64_t k2 = 0; k2 < K2; k2++)
        for (int64_t q = qb; q < qe; q++) {
            if (2 * k2 + PACK_AHEAD + 1 < K) /* the hardware's prefetchers lose track of this many rows (3x slower at 3072 x 768) */
                for (int r = 0; r < 2; r++) prefetch_span(p->B + (2 * k2 + PACK_AHEAD + r) * N + q * NR, NR);
            for (int h = 0; h < 2; h++) {
                int64_t n = q * NR + 16 * h, left = N - n;
                __mmask16 m = left >= 16 ? 0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
                const float *r = p->B + 2 * k2 * N + n;
                __m512 r0 = _mm512_maskz_loadu_ps(m, r), r1 = 2 * k2 + 1 < K ? _mm512_maskz_loadu_ps(m, r + N) : _mm512_setzero_ps();
                _mm512_storeu_si512(p->panels + (q * K2 + k2) * 2 * NR + 32 * h, bf16_pairs16(r0, r1));
            }
        }
}

/* 16 vectors of 16 words -> their transpose (32-bit interleaves, then
 * 64-bit ones, then 128-bit lanes gathered twice) */
AVX512 static inline void transpose_16x16_words(__m512i r[16])
{
    __m512i a[16], b[16];
    for (int i = 0; i < 8; i++) {
        a[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) { /* b[4i + m], lane L: rows 4i..4i+3 of column 4L + m */
        b[4 * i] = _mm512_unpacklo_epi64(a[4 * i], a[4 * i + 2]);
        b[4 * i + 1] = _mm512_unpackhi_epi64(a[4 * i], a[4 * i + 2]);
        b[4 * i + 2] = _mm512_unpacklo_epi64(a[4 * i + 1], a[4 * i + 3]);
        b[4 * i + 3] = _mm512_unpackhi_epi64(a[4 * i + 1], a[4 * i + 3]);
    }
    for (int m = 0; m < 4; m++) {
        __m512i s0 = _mm512_shuffle_i32x4(b[m], b[4 + m], 0x44), s1 = _mm512_shuffle_i32x4(b[m], b[4 + m], 0xEE);
        __m512i s2 = _mm512_shuffle_i32x4(b[8 + m], b[12 + m], 0x44), s3 = _mm512_shuffle_i32x4(b[8 + m], b[12 + m], 0xEE);
        r[m] = _mm512_shuffle_i32x4(s0, s2, 0x88);
        r[4 + m] = _mm512_shuffle_i32x4(s0, s2, 0xDD);
        r[8 + m] = _mm512_shuffle_i32x4(s1, s3, 0x88);
        r[12 + m] = _mm512_shuffle_i32x4(s1, s3, 0xDD);
    }
}

/* B^T [N, K]: 16 columns' next 32 k rounded into 16 pair words each, then
 * transposed into the panel's 16 pair rows (16 columns wide) */
AVX512_BF16 static void pack_panel_bf16_transposed(const PackJob16 *p, int64_t q)
{
    int64_t K = p->K, N = p->N, K2 = (K + 1) / 2, n0 = q * NR;
    uint32_t *words = (uint32_t *)p->panels + q * K2 * NR; /* pair k2, column j at k2 * NR + j */
    for (int64_t c = 0; c < K2; c += 16) {
        int64_t k = 2 * c, left = K - k, pairs = K2 - c < 16 ? K2 - c : 16;
        __mmask16 m0 = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
        __mmask16 m1 = left <= 16 ? 0 : left >= 32 ? 0xffff : (__mmask16)((1u << (left - 16)) - 1);
        for (int h = 0; h < 2; h++) {
            __m512i v[16];
            for (int jj = 0; jj < 16; jj++) {
                int64_t n = n0 + 16 * h + jj;
                const float *r = p->B + (n < N ? n : 0) * K + k;
                if (k + 2 * PACK_AHEAD + 32 <= K) prefetch_span(r + 2 * PACK_AHEAD, 32); /* this column's k two chunks on */
                v[jj] = n >= N ? _mm512_setzero_si512()
                               : (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, r + 16), _mm512_maskz_loadu_ps(m0, r));
            }
            transpose_16x16_words(v);
            for (int64_t pp = 0; pp < pairs; pp++) _mm512_storeu_si512(words + (c + pp) * NR + 16 * h, v[pp]);
        }
    }
}

/* 4 rows x 16 k of A -> 16 groups of the 4 rows' values, MR apart (k-major):
 * a 4x16 transpose in registers (unpack pairs, shuffle quads, 128-bit lanes out). */
AVX512 static inline void transpose_4x16(const float *A, int64_t lda, float *d)
{
    __m512 r0 = _mm512_loadu_ps(A), r1 = _mm512_loadu_ps(A + lda), r2 = _mm512_loadu_ps(A + 2 * lda), r3 = _mm512_loadu_ps(A + 3 * lda);
    __m512 t0 = _mm512_unpacklo_ps(r0, r1), t1 = _mm512_unpackhi_ps(r0, r1); /* per lane: a0 b0 a1 b1, a2 b2 a3 b3 */
    __m512 t2 = _mm512_unpacklo_ps(r2, r3), t3 = _mm512_unpackhi_ps(r2, r3);
    __m512 u[4] = {_mm512_shuffle_ps(t0, t2, 0x44),  /* k = 4l: the four rows */
                   _mm512_shuffle_ps(t0, t2, 0xEE),  /* k = 4l+1 */
                   _mm512_shuffle_ps(t1, t3, 0x44),  /* k = 4l+2 */
                   _mm512_shuffle_ps(t1, t3, 0xEE)}; /* k = 4l+3 */
#define LANE(v, l) ((l) == 0 ? _mm512_extractf32x4_ps(v, 0) : (l) == 1 ? _mm512_extractf32x4_ps(v, 1) : (l) == 2 ? _mm512_extractf32x4_ps(v, 2) : _mm512_extractf32x4_ps(v, 3))
    for (int l = 0; l < 4; l++)
        for (int j = 0; j < 4; j++) _mm_storeu_ps(d + (4 * l + j) * MR, LANE(u[j], l));
#undef LANE
}
_Static_assert(MR % 4 == 0 && MP % MR == 0 && MP % 32 == 0, "A's micro-panels are packed four rows at a time; pieces hold whole ones");

/* A rows [mc, kc] -> micro-panels of MR rows, k-major, zero rows past mc */
AVX512 static void pack_a(const float *A, int64_t lda, int64_t mc, int64_t kc, float *Ap)
{
    for (int64_t i0 = 0; i0 < mc; i0 += MR) {
        float *d = Ap + i0 * kc;
        int64_t mr = mc - i0 < MR ? mc - i0 : MR, k = 0;
        if (mr == MR)
            for (; k + 16 <= kc; k += 16)
                for (int64_t i = 0; i < MR; i += 4) transpose_4x16(A + (i0 + i) * lda + k, lda, d + k * MR + i);
        for (; k < kc; k++) {
            for (int64_t i = 0; i < mr; i++) d[k * MR + i] = A[(i0 + i) * lda + k];
            for (int64_t i = mr; i < MR; i++) d[k * MR + i] = 0.0f;
        }
    }
}

/* kp pair words of 4 rows (ld words apart; `valid` of them, zeros for the
 * rest) into their place in a micro-panel, d = the panel's column of the
 * first row: 16 pairs at a time by the f32 packing's 4x16 transpose (the
 * words only move, so any bits are safe), the rest one by one */
AVX512 static void place_pairs_4rows(const uint32_t *src, int64_t ld, int valid, int64_t kp, uint32_t *d)
{
    int64_t p = 0;
    if (valid == 4)
        for (; p + 16 <= kp; p += 16) transpose_4x16((const float *)src + p, ld, (float *)d + p * MR);
    for (; p < kp; p++)
        for (int r = 0; r < 4; r++) d[p * MR + r] = r < valid ? src[r * ld + p] : 0;
}

/* bf16: A rows [mc, kc] -> micro-panels of MR rows by k pairs, each pair
 * two bf16 in one 32-bit word (low half: the even k), zero past kc and mc.
 * Four rows at a time are rounded 32 values at a time into words, then
 * moved into the panel by the f32 packing's 4x16 transpose (the words only
 * move, so any bits are safe). */
AVX512_BF16 static void pack_a_bf16(const float *A, int64_t lda, int64_t mc, int64_t kc, uint32_t *Ap)
{
    int64_t kp = (kc + 1) / 2;
    uint32_t rows[4][KC_MAX / 2] __attribute__((aligned(64)));
    for (int64_t i0 = 0; i0 < mc; i0 += MR) {
        uint32_t *d = Ap + i0 * kp;
        for (int64_t i = 0; i < MR; i += 4) {
            for (int r = 0; r < 4; r++) {
                if (i0 + i + r >= mc) {
                    memset(rows[r], 0, sizeof(uint32_t) * (size_t)kp);
                    continue;
                }
                const float *src = A + (i0 + i + r) * lda, *next = i0 + i + r + 4 < mc ? src + 4 * lda : NULL;
                for (int64_t k = 0; k < kc; k += 32) {
                    int64_t left = kc - k;
                    if (next) prefetch_span(next + k, 32); /* the row four on, while this one streams in (each row is a new stream to the hardware) */
                    __mmask16 m0 = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
                    __mmask16 m1 = left >= 32 ? 0xffff : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
                    __m512bh v = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, src + k + 16), _mm512_maskz_loadu_ps(m0, src + k));
                    _mm512_store_si512(rows[r] + k / 2, (__m512i)v);
                }
            }
            place_pairs_4rows(rows[0], KC_MAX / 2, 4, kp, d + i);
        }
    }
}

/* AMX: A rows [mc, kc] -> tiles of 16 rows x 16 bf16 pairs, each 1 KB
 * contiguous (row r, pair p at r * 16 + p), rows of tiles in k order: the
 * tile of rows 16g.. and pairs 16c.. starts at (g * kc / 32 + c) * 256.  Zero
 * rows up to a multiple of 32. */
AVX512_BF16 static void pack_a_amx(const float *A, int64_t lda, int64_t mc, int64_t kc, uint32_t *Ap)
{
    int64_t chunks = kc / 32, mcp = (mc + 31) / 32 * 32;
    for (int64_t i = 0; i < mcp; i++)
        for (int64_t c = 0; c < chunks; c++) {
            uint32_t *d = Ap + ((i / 16) * chunks + c) * 256 + (i % 16) * 16;
            if (i >= mc) { _mm512_storeu_si512(d, _mm512_setzero_si512()); continue; }
            const float *s = A + i * lda + c * 32;
            _mm512_storeu_si512(d, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + 16), _mm512_loadu_ps(s)));
        }
}

/* AMX, transposed A (A^T stored [K, M], element (i, k) at A[k * lda + i]):
 * pack_a_amx's tiles.  A tile's 16 k pairs of 16 rows come in as 16 words
 * per pair (two k rows of 16 floats, rounded together, bf16_pairs16: the
 * tile's columns) and are turned into its rows by one 16 x 16 transpose. */
AVX512_BF16 static void pack_a_amx_t(const float *A, int64_t lda, int64_t mc, int64_t kc, uint32_t *Ap)
{
    int64_t chunks = kc / 32, mcp = (mc + 31) / 32 * 32;
    for (int64_t i0 = 0; i0 < mcp; i0 += 16) {
        __mmask16 m = i0 >= mc ? 0 : mc - i0 >= 16 ? 0xffff : (__mmask16)((1u << (mc - i0)) - 1);
        for (int64_t c = 0; c < chunks; c++) {
            __m512i w[16];
            for (int p = 0; p < 16; p++) {
                const float *r = A + (c * 32 + 2 * p) * lda + i0;
                w[p] = bf16_pairs16(_mm512_maskz_loadu_ps(m, r), _mm512_maskz_loadu_ps(m, r + lda));
            }
            transpose_16x16_words(w);
            uint32_t *d = Ap + ((i0 / 16) * chunks + c) * 256;
            for (int i = 0; i < 16; i++) _mm512_storeu_si512(d + i * 16, w[i]);
        }
    }
}

/* bf16 A, its k pairs already words (kc even): pack_a_bf16's micro-panels
 * without the rounding, four rows at a time through the same transpose */
AVX512 static void pack_a_words(const uint16_t *A, int64_t lda, int64_t mc, int64_t kc, uint32_t *Ap)
{
    int64_t kp = kc / 2;
    for (int64_t i0 = 0; i0 < mc; i0 += MR) {
        uint32_t *d = Ap + i0 * kp;
        for (int64_t i = i0; i < i0 + MR; i += 4)
            place_pairs_4rows((const uint32_t *)(A + (i < mc ? i : 0) * lda), lda / 2, mc - i >= 4 ? 4 : mc - i > 0 ? (int)(mc - i) : 0, kp,
                              d + (i - i0));
    }
}

/* AMX, bf16 A: pack_a_amx's tiles, copied */
AVX512 static void pack_a_amx_words(const uint16_t *A, int64_t lda, int64_t mc, int64_t kc, uint32_t *Ap)
{
    int64_t chunks = kc / 32, mcp = (mc + 31) / 32 * 32;
    for (int64_t i = 0; i < mcp; i++)
        for (int64_t c = 0; c < chunks; c++)
            _mm512_storeu_si512(Ap + ((i / 16) * chunks + c) * 256 + (i % 16) * 16,
                                i < mc ? _mm512_loadu_si512(A + i * lda + c * 32) : _mm512_setzero_si512());
}

/* Transposed A (A^T stored [K, M], element (i, k) at A[k * lda + i]): the
 * same micro-panels, now read as MR consecutive floats of each k row, so
 * the weight gradient X^T dY needs no transposed copy of X. */
AVX512 static void pack_a_t(const float *A, int64_t lda, int64_t mc, int64_t kc, float *Ap)
{
    for (int64_t i0 = 0; i0 < mc; i0 += MR) {
        float *d = Ap + i0 * kc;
        __mmask16 m = (__mmask16)((1u << (mc - i0 < MR ? mc - i0 : MR)) - 1);
        for (int64_t k = 0; k < kc; k++) _mm512_mask_storeu_ps(d + k * MR, (1u << MR) - 1, _mm512_maskz_loadu_ps(m, A + k * lda + i0));
    }
}

/* bf16, transposed A: rows 2p and 2p + 1 rounded together and interleaved
 * into MR words (the same rounding as pack_a_bf16) */
AVX512_BF16 static void pack_a_bf16_t(const float *A, int64_t lda, int64_t mc, int64_t kc, uint32_t *Ap)
{
    int64_t kp = (kc + 1) / 2;
    for (int64_t p = 0; p < kp; p++) { /* row pair by row pair, each row's mc floats once (a walk down 12 columns re-read every line) */
        for (int r = 0; r < 2; r++)
            if (2 * p + PACK_AHEAD + r < kc) prefetch_span(A + (2 * p + PACK_AHEAD + r) * lda, mc);
        for (int64_t i0 = 0; i0 < mc; i0 += MR) {
            __mmask16 m = (__mmask16)((1u << (mc - i0 < MR ? mc - i0 : MR)) - 1);
            const float *r = A + 2 * p * lda + i0;
            __m512 r0 = _mm512_maskz_loadu_ps(m, r), r1 = 2 * p + 1 < kc ? _mm512_maskz_loadu_ps(m, r + lda) : _mm512_setzero_ps();
            _mm512_mask_storeu_epi32(Ap + i0 * kp + p * MR, (1u << MR) - 1, bf16_pairs16(r0, r1));
        }
    }
}

typedef struct {
    int64_t row, col;      /* of the tile's first element in C */
    int mr, nr;            /* valid rows and columns */
    int accumulate, last;  /* add to C (a later depth block); apply the epilogue */
    int c_bf16;            /* C is bf16: store the tile rounded (with last only) */
} Tile;

AVX512 static inline __m512 epilogue16(__m512 c, const GemmEpilogue *ep, int64_t row, int64_t col, __mmask16 m)
{
    if (ep->bias) c = _mm512_add_ps(c, _mm512_maskz_loadu_ps(m, ep->bias + col));
    if (ep->act == LINEAR_ACT_QUICK_GELU) c = quick_gelu16(c);
    else if (ep->act == LINEAR_ACT_GELU) c = gelu16(c);
    if (ep->residual) c = _mm512_add_ps(c, _mm512_maskz_loadu_ps(m, ep->residual + row * ep->ldr + col));
    return c;
}

/* A row of a finished tile rounded into bf16 C (nearest even, as
 * pack_a_bf16 rounds: the next GEMM reads the same bits) */
AVX512_BF16 static void store_row_bf16(uint16_t *r, __m512 c0, __m512 c1, __mmask16 m0, __mmask16 m1)
{
    _mm256_mask_storeu_epi16(r, m0, (__m256i)_mm512_cvtneps_pbh(c0));
    _mm256_mask_storeu_epi16(r + 16, m1, (__m256i)_mm512_cvtneps_pbh(c1));
}

/* Accumulators -> C: adds what C holds (a later depth block), applies the
 * epilogue after the last one, stores the valid rows and columns (bf16 C:
 * rounded). */
AVX512 static inline __attribute__((always_inline)) void store_tile(__m512 c[MR][2], void *C, int64_t ldc, const Tile *t, const GemmEpilogue *ep)
{
    __mmask16 m0 = t->nr >= 16 ? 0xffff : (__mmask16)((1u << t->nr) - 1);
    __mmask16 m1 = t->nr >= 32 ? 0xffff : t->nr <= 16 ? 0 : (__mmask16)((1u << (t->nr - 16)) - 1);
#pragma GCC unroll 12
    for (int i = 0; i < t->mr; i++) {
        if (t->c_bf16) { /* one depth block (gemm_a): nothing to add */
            store_row_bf16((uint16_t *)C + (t->row + i) * ldc + t->col, epilogue16(c[i][0], ep, t->row + i, t->col, m0),
                           epilogue16(c[i][1], ep, t->row + i, t->col + 16, m1), m0, m1);
            continue;
        }
        float *r = (float *)C + (t->row + i) * ldc + t->col;
        if (t->accumulate) {
            c[i][0] = _mm512_add_ps(c[i][0], _mm512_maskz_loadu_ps(m0, r));
            c[i][1] = _mm512_add_ps(c[i][1], _mm512_maskz_loadu_ps(m1, r + 16));
        }
        if (t->last) {
            c[i][0] = epilogue16(c[i][0], ep, t->row + i, t->col, m0);
            c[i][1] = epilogue16(c[i][1], ep, t->row + i, t->col + 16, m1);
        }
        _mm512_mask_storeu_ps(r, m0, c[i][0]);
        _mm512_mask_storeu_ps(r + 16, m1, c[i][1]);
    }
}

/* R rows of the 12-row micro-panel (R < 12 only for the last tile of a block:
 * no FMAs spent on padding rows) */
AVX512 static inline __attribute__((always_inline)) void tile_rows(int64_t kc, const float *Ap, const float *Bp, const float *Bnext, int pf_shift,
                                                                  float *C, int64_t ldc, const Tile *t, const GemmEpilogue *ep, const int R)
{
    __m512 c[MR][2];
    /* unrolled so that the accumulators stay in registers at -O2; two k per
     * iteration (loop overhead off the FMA ports: 186 against 171 GFLOP/s) */
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; k++) {
        __m512 b0 = _mm512_loadu_ps(Bp + k * NR), b1 = _mm512_loadu_ps(Bp + k * NR + 16);
        _mm_prefetch((const char *)(Bnext + (k >> pf_shift) * NR), _MM_HINT_T1);
        _mm_prefetch((const char *)(Bnext + (k >> pf_shift) * NR + 16), _MM_HINT_T1);
#pragma GCC unroll 12
        for (int i = 0; i < R; i++) {
            __m512 a = _mm512_set1_ps(Ap[k * MR + i]);
            c[i][0] = _mm512_fmadd_ps(a, b0, c[i][0]);
            c[i][1] = _mm512_fmadd_ps(a, b1, c[i][1]);
        }
    }
    store_tile(c, C, ldc, t, ep);
}

/* f32, a full 12-row tile read from A in place (row stride lda) instead of
 * a packed micro-panel: four row pointers, each with the next two rows at
 * lda and 2 lda.  Used where K is one depth block and A has more than one
 * row block (gemm_a says when): packing A was a pass of
 * its own over memory and a barrier, which a GEMM with few column panels
 * (ViT-B/32's out-projection, 768 x 768) never earned back.  Deeper A is
 * still packed: its rows, read in place, ran slower (2048 and 3072 deep). */
AVX512 static void tile_direct(int64_t kc, const float *A, int64_t lda, const float *Bp, const float *Bnext, int pf_shift, float *C,
                               int64_t ldc, const Tile *t, const GemmEpilogue *ep)
{
    __m512 c[MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
    const float *a0 = A, *a3 = A + 3 * lda, *a6 = A + 6 * lda, *a9 = A + 9 * lda;
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; k++) {
        __m512 b0 = _mm512_loadu_ps(Bp + k * NR), b1 = _mm512_loadu_ps(Bp + k * NR + 16);
        _mm_prefetch((const char *)(Bnext + (k >> pf_shift) * NR), _MM_HINT_T1);
        _mm_prefetch((const char *)(Bnext + (k >> pf_shift) * NR + 16), _MM_HINT_T1);
        const float *base[4] = {a0 + k, a3 + k, a6 + k, a9 + k};
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            __m512 a = _mm512_set1_ps(base[i / 3][(i % 3) * lda]);
            c[i][0] = _mm512_fmadd_ps(a, b0, c[i][0]);
            c[i][1] = _mm512_fmadd_ps(a, b1, c[i][1]);
        }
    }
    store_tile(c, C, ldc, t, ep);
}

AVX512 static void micro_kernel(int64_t kc, const float *Ap, const float *Bp, const float *Bnext, int pf_shift, float *C, int64_t ldc,
                                const Tile *t, const GemmEpilogue *ep)
{
    if (t->mr > 8) tile_rows(kc, Ap, Bp, Bnext, pf_shift, C, ldc, t, ep, 12);
    else if (t->mr > 4) tile_rows(kc, Ap, Bp, Bnext, pf_shift, C, ldc, t, ep, 8);
    else if (t->mr > 2) tile_rows(kc, Ap, Bp, Bnext, pf_shift, C, ldc, t, ep, 4);
    else if (t->mr > 1) tile_rows(kc, Ap, Bp, Bnext, pf_shift, C, ldc, t, ep, 2);
    else tile_rows(kc, Ap, Bp, Bnext, pf_shift, C, ldc, t, ep, 1);
}

/* bf16: kp k pairs; each B row pair is 32 columns x 2 = two vectors.  Like
 * the f32 kernel, it prefetches its share of the next panel's pairs into L2
 * (prefetch_shift), and the pair loop is unrolled twice. */
AVX512_BF16 static void micro_kernel_bf16(int64_t kp, const uint32_t *Ap, const uint16_t *Bp, const uint16_t *Bnext, int pf_shift, void *C,
                                          int64_t ldc, const Tile *t, const GemmEpilogue *ep)
{
    __m512 c[MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
#pragma GCC unroll 2
    for (int64_t p = 0; p < kp; p++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(Bp + p * 2 * NR), b1 = (__m512bh)_mm512_loadu_si512(Bp + p * 2 * NR + NR);
        _mm_prefetch((const char *)(Bnext + (p >> pf_shift) * 2 * NR), _MM_HINT_T1);
        _mm_prefetch((const char *)(Bnext + (p >> pf_shift) * 2 * NR + NR), _MM_HINT_T1);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            __m512bh a = (__m512bh)_mm512_set1_epi32((int)Ap[p * MR + i]);
            c[i][0] = _mm512_dpbf16_ps(c[i][0], a, b0);
            c[i][1] = _mm512_dpbf16_ps(c[i][1], a, b1);
        }
    }
    store_tile(c, C, ldc, t, ep);
}

/* bf16, a full 12-row tile read from bf16 A in place (row stride lda
 * halves, k pairs as words): tile_direct's rows with micro_kernel_bf16's
 * pairs */
AVX512_BF16 static void tile_direct_bf16(int64_t kp, const uint16_t *A, int64_t lda, const uint16_t *Bp, const uint16_t *Bnext, int pf_shift,
                                         void *C, int64_t ldc, const Tile *t, const GemmEpilogue *ep)
{
    __m512 c[MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
    int64_t ldw = lda / 2;
    const uint32_t *a0 = (const uint32_t *)A, *a3 = a0 + 3 * ldw, *a6 = a0 + 6 * ldw, *a9 = a0 + 9 * ldw;
#pragma GCC unroll 2
    for (int64_t p = 0; p < kp; p++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(Bp + p * 2 * NR), b1 = (__m512bh)_mm512_loadu_si512(Bp + p * 2 * NR + NR);
        _mm_prefetch((const char *)(Bnext + (p >> pf_shift) * 2 * NR), _MM_HINT_T1);
        _mm_prefetch((const char *)(Bnext + (p >> pf_shift) * 2 * NR + NR), _MM_HINT_T1);
        const uint32_t *base[4] = {a0 + p, a3 + p, a6 + p, a9 + p};
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            __m512bh a = (__m512bh)_mm512_set1_epi32((int)base[i / 3][(i % 3) * ldw]);
            c[i][0] = _mm512_dpbf16_ps(c[i][0], a, b0);
            c[i][1] = _mm512_dpbf16_ps(c[i][1], a, b1);
        }
    }
    store_tile(c, C, ldc, t, ep);
}

/* ---- AVX2 (f32, no AVX-512): 6 rows x 16 columns, 12 ymm accumulators ---- */
#define MR2 6
#define AVX2_FMA __attribute__((target("avx2,fma")))
_Static_assert(MP % MR2 == 0 && NR == 2 * 16, "pieces of A hold whole AVX2 micro-panels; a panel is two halves");

/* A rows [mc, kc] -> micro-panels of MR2 rows, k-major, zero rows past mc */
static void pack_a_avx2(const float *A, int64_t lda, int64_t mc, int64_t kc, float *Ap)
{
    for (int64_t i0 = 0; i0 < mc; i0 += MR2) {
        float *d = Ap + i0 * kc;
        int64_t mr = mc - i0 < MR2 ? mc - i0 : MR2;
        for (int64_t k = 0; k < kc; k++)
            for (int64_t i = 0; i < MR2; i++) d[k * MR2 + i] = i < mr ? A[(i0 + i) * lda + k] : 0.0f;
    }
}

/* Transposed A (A^T stored [K, M]): the same micro-panels are MR2
 * consecutive floats of each k row, copied as they are */
static void pack_a_avx2_t(const float *A, int64_t lda, int64_t mc, int64_t kc, float *Ap)
{
    for (int64_t i0 = 0; i0 < mc; i0 += MR2) {
        float *d = Ap + i0 * kc;
        int64_t mr = mc - i0 < MR2 ? mc - i0 : MR2;
        for (int64_t k = 0; k < kc; k++)
            for (int64_t i = 0; i < MR2; i++) d[k * MR2 + i] = i < mr ? A[k * lda + i0 + i] : 0.0f;
    }
}

/* kc steps of 6 rows x one 16-column half of a panel, into acc (row stride 16) */
AVX2_FMA static void tile_avx2(int64_t kc, const float *Ap, const float *Bp, float *acc)
{
    __m256 c[MR2][2];
#pragma GCC unroll 6
    for (int i = 0; i < MR2; i++) c[i][0] = c[i][1] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; k++) {
        __m256 b0 = _mm256_loadu_ps(Bp + k * NR), b1 = _mm256_loadu_ps(Bp + k * NR + 8);
#pragma GCC unroll 6
        for (int i = 0; i < MR2; i++) {
            __m256 a = _mm256_broadcast_ss(Ap + k * MR2 + i);
            c[i][0] = _mm256_fmadd_ps(a, b0, c[i][0]);
            c[i][1] = _mm256_fmadd_ps(a, b1, c[i][1]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < MR2; i++) {
        _mm256_storeu_ps(acc + i * 16, c[i][0]);
        _mm256_storeu_ps(acc + i * 16 + 8, c[i][1]);
    }
}

/* K == 0: C = epilogue(0) */
AVX512 static void epilogue_only(int64_t M, float *C, int64_t ldc, int64_t N, const GemmEpilogue *ep)
{
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j += 16) {
            __mmask16 m = N - j >= 16 ? 0xffff : (__mmask16)((1u << (N - j)) - 1);
            _mm512_mask_storeu_ps(C + i * ldc + j, m, epilogue16(_mm512_setzero_ps(), ep, i, j, m));
        }
}

/* Rows per A block: the packed block (KC deep) fills about 0.6 of L2, so each
 * B panel streamed in from L3 or memory serves as many micro-panels as the
 * core's cache allows (L2 2 MB: 384 rows; 1 MB, Zen 4 and 5: 192), in whole
 * pieces so that every block but the last needs no padding.  Only the
 * schedule depends on it, never a sum's order. */
static int64_t row_block_rows(void)
{
    static int64_t rows;
    if (!rows) {
        long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
        int64_t r = (int64_t)((l2 > 0 ? (double)l2 : 1048576.0) * 0.6 / (KC * sizeof(float))) / MP * MP;
        rows = r < MP ? MP : r > 16 * MP ? 16 * MP : r;
    }
    return rows;
}

typedef struct {
    int64_t M, lda, ldc, mc, kc, row_blocks, k_blocks, pieces, col_chunks, panels_per_chunk;
    GemmKernel kernel;
    int amx;       /* bf16 on AMX tiles: A packed as whole tiles, row blocks padded to 32 rows */
    int a_transposed; /* A stored as A^T [K, M] (row stride lda) */
    int direct;       /* f32 or bf16 A read in place, not packed */
    int c_bf16;       /* C in bf16 (one depth block) */
    const float *A;
    const uint16_t *A16; /* A in bf16 instead (bf16 B) */
    void *Apack;   /* all of A packed, once: row block i0 and depth block k0 at apack_at() */
    const PackedB *B;
    void *C;
    const GemmEpilogue *ep;
} GemmJob;

/* k rows per panel of B's layout (K unless its zero last rows are skipped) */
static int64_t panel_k(const PackedB *B) { return B->panel_rows ? B->panel_rows : B->K; }

/* Rows of the block at i0: mc, or what is left for the last one */
static int64_t block_rows(const GemmJob *j, int64_t i0) { return i0 / j->mc == j->row_blocks - 1 ? j->M - i0 : j->mc; }

/* Where row block i0's depth block k0 is packed: each row block holds its K
 * (or K/2 pairs for bf16) in order, micro-panels of MR rows per depth block. */
static size_t apack_at(const GemmJob *j, int64_t i0, int64_t mc, int64_t k0)
{
    int64_t align = j->amx ? 32 : j->kernel == GEMM_KERNEL_AVX2 ? MR2 : MR, mcp = (mc + align - 1) / align * align;
    return j->B->dtype == DT_BF16 ? (size_t)(i0 * ((j->B->K + 1) / 2) + k0 / 2 * mcp) : (size_t)(i0 * j->B->K + k0 * mcp);
}

/* (row block, depth block, MP rows) pieces of A into Apack: a piece r0 rows
 * into its block lies r0 micro-panel rows into the block's depth block */
static void pack_pieces(void *ctx, int64_t b, int64_t e)
{
    GemmJob *j = ctx;
    for (int64_t u = b; u < e; u++) {
        int64_t piece = u % j->pieces, block = u / j->pieces;
        int64_t i0 = (block / j->k_blocks) * j->mc, mc = block_rows(j, i0);
        int64_t k0 = (block % j->k_blocks) * j->kc, kc = j->B->K - k0 < j->kc ? j->B->K - k0 : j->kc;
        int64_t r0 = piece * MP, rows = mc - r0 < MP ? mc - r0 : MP;
        if (rows <= 0) continue;
        size_t at = apack_at(j, i0, mc, k0) + (size_t)(r0 * (j->B->dtype == DT_BF16 ? (kc + 1) / 2 : kc));
        if (j->A16) {
            const uint16_t *A = j->A16 + (i0 + r0) * j->lda + k0;
            if (j->amx) pack_a_amx_words(A, j->lda, rows, kc, (uint32_t *)j->Apack + at);
            else pack_a_words(A, j->lda, rows, kc, (uint32_t *)j->Apack + at);
            continue;
        }
        if (j->a_transposed) {
            const float *A = j->A + k0 * j->lda + i0 + r0;
            if (j->amx) pack_a_amx_t(A, j->lda, rows, kc, (uint32_t *)j->Apack + at);
            else if (j->kernel == GEMM_KERNEL_AVX2) pack_a_avx2_t(A, j->lda, rows, kc, (float *)j->Apack + at);
            else if (j->B->dtype == DT_BF16) pack_a_bf16_t(A, j->lda, rows, kc, (uint32_t *)j->Apack + at);
            else pack_a_t(A, j->lda, rows, kc, (float *)j->Apack + at);
            continue;
        }
        const float *A = j->A + (i0 + r0) * j->lda + k0;
        if (j->amx) pack_a_amx(A, j->lda, rows, kc, (uint32_t *)j->Apack + at);
        else if (j->B->dtype == DT_BF16) pack_a_bf16(A, j->lda, rows, kc, (uint32_t *)j->Apack + at);
        else if (j->kernel == GEMM_KERNEL_AVX2) pack_a_avx2(A, j->lda, rows, kc, (float *)j->Apack + at);
        else pack_a(A, j->lda, rows, kc, (float *)j->Apack + at);
    }
}

/* While a B panel serves a block's micro-panels, the first 2^shift of them
 * bring the next panel's depth block into L2, each a 2^-shift share of it
 * (two lines every 2^shift steps).  One micro-panel fetching it all asked
 * L3 or memory for two lines per step, more than they deliver: at batch 1
 * the weights' stream bounds the GEMM, and within a model B always comes
 * from outside L2. */
static int prefetch_shift(int64_t mc)
{
    int s = 0;
    while (s < 4 && (MR << (s + 1)) <= mc) s++;
    return s;
}

/* Where micro-panel ii of panel q prefetches from, as an offset from its own
 * panel: its share of the next panel (`steps` steps of `step` elements, the
 * next panel `panel` elements on), or 0 (its own panel, in cache already). */
static int64_t prefetch_offset(int64_t ii, int64_t q, int64_t np, int shift, int64_t steps, int64_t step, int64_t panel)
{
    int64_t t = ii / MR;
    return t < ((int64_t)1 << shift) && q + 1 < np ? panel + t * (steps >> shift) * step : 0;
}

/* One depth block of one (row block, column range) unit. */
AVX512_BF16 static void block_bf16(const GemmJob *j, int64_t i0, int64_t mc, int64_t k0, int64_t kc, int64_t p0, int64_t p1)
{
    const PackedB *B = j->B;
    int64_t kp = (kc + 1) / 2, K2 = (panel_k(B) + 1) / 2;
    const uint32_t *Ap = j->direct ? NULL : (const uint32_t *)j->Apack + apack_at(j, i0, mc, k0);
    int64_t np = (B->N + NR - 1) / NR, full = mc / MR * MR;
    int shift = prefetch_shift(mc);
    uint32_t tail[MR * KC_MAX / 2] __attribute__((aligned(64))); /* A in place: the block's last rows short of a tile, packed once */
    if (j->direct && full < mc) pack_a_words(j->A16 + (i0 + full) * j->lda + k0, j->lda, mc - full, kc, tail);
    for (int64_t q = p0; q < p1; q++) {
        const uint16_t *Bp = (const uint16_t *)B->panels + (q * K2 + k0 / 2) * 2 * NR;
        int nr = B->N - q * NR < NR ? (int)(B->N - q * NR) : NR;
        for (int64_t ii = 0; ii < mc; ii += MR) {
            Tile t = {.row = i0 + ii, .col = q * NR, .mr = mc - ii < MR ? (int)(mc - ii) : MR, .nr = nr,
                      .accumulate = k0 > 0, .last = k0 + kc == B->K, .c_bf16 = j->c_bf16};
            const uint16_t *Bn = Bp + prefetch_offset(ii, q, np, shift, kp, 2 * NR, K2 * 2 * NR);
            if (j->direct && t.mr == MR) tile_direct_bf16(kp, j->A16 + (i0 + ii) * j->lda + k0, j->lda, Bp, Bn, shift, j->C, j->ldc, &t, j->ep);
            else micro_kernel_bf16(kp, j->direct ? tail : Ap + ii * kp, Bp, Bn, shift, j->C, j->ldc, &t, j->ep);
        }
    }
}

/* AMX: the tile configuration (palette 1; every tile 16 rows of 64 bytes):
 * C in tiles 0-3 (rows 0-15 / 16-31 x columns 0-15 / 16-31), A in 4-5, B in 6-7. */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((packed)) TileConfig;

AMX_BF16 static void block_amx(const GemmJob *j, int64_t i0, int64_t mc, int64_t k0, int64_t kc, int64_t p0, int64_t p1)
{
    const PackedB *B = j->B;
    int64_t kp = kc / 2, K2 = panel_k(B) / 2;
    const uint32_t *Ap = (const uint32_t *)j->Apack + apack_at(j, i0, mc, k0);
    TileConfig cfg = {.palette = 1};
    for (int t = 0; t < 8; t++) { cfg.rows[t] = 16; cfg.colsb[t] = 64; }
    _tile_loadconfig(&cfg);
    float acc[32][32] __attribute__((aligned(64)));
    for (int64_t q = p0; q < p1; q++) {
        const uint16_t *Bp = (const uint16_t *)B->panels + (q * K2 + k0 / 2) * 2 * NR;
        int nr = B->N - q * NR < NR ? (int)(B->N - q * NR) : NR;
        for (int64_t ii = 0; ii < mc; ii += 32) {
            const uint32_t *A0 = Ap + ii * kp, *A1 = A0 + 16 * kp; /* (ii / 16) * chunks * 256 = ii * kp */
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (int64_t p = 0; p < kp; p += 16) {
                _tile_loadd(4, A0 + p * 16, 64);
                _tile_loadd(5, A1 + p * 16, 64);
                _tile_loadd(6, Bp + p * 2 * NR, 2 * NR * 2);
                _tile_loadd(7, Bp + p * 2 * NR + NR, 2 * NR * 2);
                _tile_dpbf16ps(0, 4, 6);
                _tile_dpbf16ps(1, 4, 7);
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
            }
            _tile_stored(0, &acc[0][0], 128);
            _tile_stored(1, &acc[0][16], 128);
            _tile_stored(2, &acc[16][0], 128);
            _tile_stored(3, &acc[16][16], 128);
            for (int64_t r = 0; r < 32 && ii + r < mc; r += 8) {
                __m512 c[MR][2];
                for (int i = 0; i < 8; i++) { c[i][0] = _mm512_load_ps(&acc[r + i][0]); c[i][1] = _mm512_load_ps(&acc[r + i][16]); }
                Tile t = {.row = i0 + ii + r, .col = q * NR, .mr = mc - ii - r < 8 ? (int)(mc - ii - r) : 8, .nr = nr,
                          .accumulate = k0 > 0, .last = k0 + kc == B->K, .c_bf16 = j->c_bf16};
                store_tile(c, j->C, j->ldc, &t, j->ep);
            }
        }
    }
    _tile_release();
}

static void block_avx2(const GemmJob *j, int64_t i0, int64_t mc, int64_t k0, int64_t kc, int64_t p0, int64_t p1)
{
    const PackedB *B = j->B;
    const float *Ap = (const float *)j->Apack + apack_at(j, i0, mc, k0);
    int accumulate = k0 > 0, last = k0 + kc == B->K;
    float acc[MR2 * 16];
    for (int64_t q = p0; q < p1; q++) {
        const float *Bp = (const float *)B->panels + (q * panel_k(B) + k0) * NR;
        for (int h = 0; h < 2 && q * NR + 16 * h < B->N; h++) {
            int64_t col = q * NR + 16 * h, nc = B->N - col < 16 ? B->N - col : 16;
            for (int64_t ii = 0; ii < mc; ii += MR2) {
                tile_avx2(kc, Ap + ii * kc, Bp + 16 * h, acc);
                for (int64_t i = 0; i < MR2 && ii + i < mc; i++) {
                    float *c = (float *)j->C + (i0 + ii + i) * j->ldc + col;
                    for (int64_t n = 0; n < nc; n++) {
                        float v = acc[i * 16 + n] + (accumulate ? c[n] : 0.0f);
                        c[n] = last ? epilogue1(v, j->ep, i0 + ii + i, col + n) : v;
                    }
                }
            }
        }
    }
}

AVX512 static void block_f32(const GemmJob *j, int64_t i0, int64_t mc, int64_t k0, int64_t kc, int64_t p0, int64_t p1)
{
    const PackedB *B = j->B;
    const float *Ap = j->direct ? NULL : (const float *)j->Apack + apack_at(j, i0, mc, k0);
    int64_t np = (B->N + NR - 1) / NR, full = mc / MR * MR;
    int shift = prefetch_shift(mc);
    float tail[MR * KC_MAX] __attribute__((aligned(64))); /* A in place: the block's last rows short of a tile, packed once */
    if (j->direct && full < mc) pack_a(j->A + (i0 + full) * j->lda + k0, j->lda, mc - full, kc, tail);
    for (int64_t q = p0; q < p1; q++) {
        const float *Bp = (const float *)B->panels + (q * panel_k(B) + k0) * NR;
        int nr = B->N - q * NR < NR ? (int)(B->N - q * NR) : NR;
        for (int64_t ii = 0; ii < mc; ii += MR) {
            Tile t = {.row = i0 + ii, .col = q * NR, .mr = mc - ii < MR ? (int)(mc - ii) : MR, .nr = nr,
                      .accumulate = k0 > 0, .last = k0 + kc == B->K};
            const float *Bn = Bp + prefetch_offset(ii, q, np, shift, kc, NR, panel_k(B) * NR);
            float *C = j->C;
            if (j->direct && t.mr == MR) tile_direct(kc, j->A + (i0 + ii) * j->lda + k0, j->lda, Bp, Bn, shift, C, j->ldc, &t, j->ep);
            else micro_kernel(kc, j->direct ? tail : Ap + ii * kc, Bp, Bn, shift, C, j->ldc, &t, j->ep);
        }
    }
}

static void gemm_units(void *ctx, int64_t ub, int64_t ue)
{
    const GemmJob *j = ctx;
    int64_t K = j->B->K, np = (j->B->N + NR - 1) / NR;
    for (int64_t u = ub; u < ue; u++) {
        int64_t i0 = (u / j->col_chunks) * j->mc, mc = block_rows(j, i0);
        int64_t p0 = (u % j->col_chunks) * j->panels_per_chunk, p1 = p0 + j->panels_per_chunk < np ? p0 + j->panels_per_chunk : np;
        for (int64_t k0 = 0; k0 < K; k0 += j->kc) {
            int64_t kc = K - k0 < j->kc ? K - k0 : j->kc;
            if (j->amx) block_amx(j, i0, mc, k0, kc, p0, p1);
            else if (j->B->dtype == DT_BF16) block_bf16(j, i0, mc, k0, kc, p0, p1);
            else if (j->kernel == GEMM_KERNEL_AVX2) block_avx2(j, i0, mc, k0, kc, p0, p1);
            else block_f32(j, i0, mc, k0, kc, p0, p1);
        }
    }
}

/* C [M, ldc] of bf16 = Cf [M, N] rounded (the instruction store_row_bf16 uses) */
AVX512_BF16 static void round_rows_bf16(int64_t M, int64_t N, const float *Cf, uint16_t *C, int64_t ldc)
{
    for (int64_t i = 0; i < M; i++) floats_to_bf16(Cf + i * N, N, C + i * ldc);
}

/* bf16 C that needs f32 sums between depth blocks (or has no depth):
 * computed in f32, then rounded */
static int gemm_via_f32(int64_t M, const void *A, int64_t lda, int a_bf16, const PackedB *B, uint16_t *C, int64_t ldc, const GemmEpilogue *ep)
{
    float *Cf = malloc(sizeof(float) * (size_t)(M * B->N));
    if (!Cf) return -1;
    int rc = gemm_a(M, A, lda, 0, a_bf16, B, Cf, B->N, 0, ep);
    if (!rc) round_rows_bf16(M, B->N, Cf, C, ldc);
    free(Cf);
    return rc;
}

static int gemm_a(int64_t M, const void *A, int64_t lda, int a_transposed, int a_bf16, const PackedB *B, void *C, int64_t ldc, int c_bf16,
                  const GemmEpilogue *ep)
{
    static const GemmEpilogue none = {0};
    if (!ep) ep = &none;
    if (!gemm_available(B->dtype)) return -1;
    if ((a_bf16 || c_bf16) && (B->dtype != DT_BF16 || (a_bf16 && (a_transposed || lda % 2 || B->K % 2)))) return -1;
    if (M == 0 || B->N == 0) return 0;
    if (c_bf16 && B->K == 0) return gemm_via_f32(M, A, lda, a_bf16, B, C, ldc, ep);
    int kernel = gemm_kernel_for(B->dtype);
    if (B->K == 0) {
        if (kernel == GEMM_KERNEL_AVX2) {
            for (int64_t i = 0; i < M; i++) memset((float *)C + i * ldc, 0, sizeof(float) * (size_t)B->N);
            gemm_epilogue_scalar(M, C, ldc, B->N, ep);
        } else epilogue_only(M, C, ldc, B->N, ep);
        return 0;
    }
    int64_t mcb = row_block_rows(), np = (B->N + NR - 1) / NR, rb = (M + mcb - 1) / mcb, want = 4 * parallel_threads();
    /* a short tail joins the block before it rather than streaming all of B
     * again for a few rows (ViT-B/32 at batch 8: 400 rows, one block) */
    if (rb > 1 && M - (rb - 1) * mcb <= mcb / 4) rb--;
    int64_t cc = rb >= want ? 1 : (want + rb - 1) / rb;
    /* whole rounds of units for the threads (the text tower at batch 8, 616
     * rows: 3 row blocks x 3 column ranges left one of 2 threads idle for
     * the ninth unit) */
    while (cc < np && (rb * cc) % parallel_threads()) cc++;
    if (cc > np) cc = np;
    int64_t tallest = M - (rb - 1) * mcb > mcb ? M - (rb - 1) * mcb : mcb; /* the last block's rows, or mcb */
    int amx = kernel == GEMM_KERNEL_AMX_BF16 && B->K % 32 == 0;
    int64_t kcb = amx ? KC_AMX : KC, kb = (B->K + kcb - 1) / kcb;
    /* a thin last depth block joins the others, as the rows' tail does: the
     * weight gradient over ViT-B/32's 16 frames has K = 800, and 768 + 32
     * passed over all of C twice (10.5 against 9.5 ms for K = 768) */
    if (!amx && kb > 1 && B->K - (kb - 1) * kcb <= kcb / 4) {
        kb--;
        kcb = ((B->K + kb - 1) / kb + 1) / 2 * 2; /* even: bf16 packs k in pairs */
    }
    if (c_bf16 && kb > 1) return gemm_via_f32(M, A, lda, a_bf16, B, C, ldc, ep);
    GemmJob j = {.M = M, .lda = lda, .ldc = ldc, .mc = mcb, .kc = kcb, .row_blocks = rb, .k_blocks = kb,
                 .pieces = ((tallest < M ? tallest : M) + MP - 1) / MP, .A = a_bf16 ? NULL : A, .A16 = a_bf16 ? A : NULL,
                 .B = B, .C = C, .c_bf16 = c_bf16, .ep = ep,
                 .kernel = (GemmKernel)kernel, .amx = amx, .a_transposed = a_transposed,
                 /* not within one row block (batch 1: every unit walks all of A; in place
                  * ran 5-15% slower there, 30% at 8 rows), nor, for f32, on rows a multiple
                  * of 4 KB apart (all in one L1 set: 7% slower than packing at 2048 and 3072
                  * deep).  At 3104 deep (fc2, padded) it beats packing by 9-28%.  bf16 A
                  * (a line holds 16 k pairs, not 16 k) reads in place at any stride: at
                  * 2048 deep, 4 KB apart, 3% faster than packing it (616 rows), 16%
                  * (1232 rows); 400 rows 3072 deep: the same */
                 .direct = !a_transposed && rb > 1 &&
                           ((kernel == GEMM_KERNEL_AVX512 && lda % 1024) || (a_bf16 && kernel == GEMM_KERNEL_AVX512_BF16))};
    j.panels_per_chunk = (np + cc - 1) / cc;
    j.col_chunks = (np + j.panels_per_chunk - 1) / j.panels_per_chunk;
    /* A packed once for every column range (the last block's rows rounded up
     * to its micro-panels or tile pairs, zero-padded) */
    size_t words = (size_t)(M + 31) * (size_t)B->K;
    if (!j.direct && !(j.Apack = aligned_alloc(64, (words * sizeof(float) + 63) / 64 * 64))) return -1;
    if (!j.direct) parallel_for(rb * j.k_blocks * j.pieces, 1, pack_pieces, &j);
    parallel_for(rb * j.col_chunks, 1, gemm_units, &j);
    free(j.Apack);
    return 0;
}

int gemm(int64_t M, const float *A, int64_t lda, const PackedB *B, float *C, int64_t ldc, const GemmEpilogue *ep)
{
    return gemm_a(M, A, lda, 0, 0, B, C, ldc, 0, ep);
}

int gemm_typed(int64_t M, const void *A, DType a_dtype, int64_t lda, const PackedB *B, void *C, DType c_dtype, int64_t ldc, const GemmEpilogue *ep)
{
    return gemm_a(M, A, lda, 0, a_dtype == DT_BF16, B, C, ldc, c_dtype == DT_BF16, ep);
}

#else /* not x86-64: callers use BLAS */
static void pack_panels_bf16_avx512(const PackJob16 *p, int64_t qb, int64_t qe)
{
    for (int64_t q = qb; q < qe; q++) pack_panel_bf16_scalar(p, q);
}
int gemm_available(DType dtype) { (void)dtype; return 0; }
int gemm_kernel_runs(GemmKernel k) { (void)k; return 0; }
static int gemm_a(int64_t M, const void *A, int64_t lda, int a_transposed, int a_bf16, const PackedB *B, void *C, int64_t ldc, int c_bf16,
                  const GemmEpilogue *ep)
{ (void)M; (void)A; (void)lda; (void)a_transposed; (void)a_bf16; (void)B; (void)C; (void)ldc; (void)c_bf16; (void)ep; return -1; }
int gemm(int64_t M, const float *A, int64_t lda, const PackedB *B, float *C, int64_t ldc, const GemmEpilogue *ep)
{ return gemm_a(M, A, lda, 0, 0, B, C, ldc, 0, ep); }
int gemm_typed(int64_t M, const void *A, DType a_dtype, int64_t lda, const PackedB *B, void *C, DType c_dtype, int64_t ldc, const GemmEpilogue *ep)
{ return gemm_a(M, A, lda, 0, a_dtype == DT_BF16, B, C, ldc, c_dtype == DT_BF16, ep); }
#endif
