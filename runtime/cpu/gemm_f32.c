/* gemm_f32.c — the AVX-512 f32 GEMM behind Linear, Gemm and the patch
 * embedding Conv (gemm_f32.h).  An 8x32 micro-kernel (16 accumulators, B
 * rows loaded, A broadcast) over A packed per block of 96 rows and 768 deep,
 * B pre-packed in panels of 32 columns.  Work is cut into (row block, column
 * range) units that the thread pool takes dynamically, so both cores stay
 * busy at batch 1 and the GEMM never competes with BLAS's own spinning
 * threads.  Checked against ref_linear.c (double accumulation) in
 * tests/unit/test_kernels.c. */
#include <stdlib.h>
#include <string.h>
#include "gemm_f32.h"
#include "parallel.h"

#define MR 8       /* rows per micro-tile */
#define NR 32      /* columns per micro-tile and per B panel: two vectors */
#define MC 96      /* rows per A block */
#define KC 768     /* depth per A block */

_Static_assert(NR == LINEAR_PANEL, "the micro-kernel's width is the packed weight's panel");

int64_t gemm_packed_floats(int64_t K, int64_t N) { return (N + NR - 1) / NR * K * NR; }

void gemm_pack_b(const float *B, int64_t K, int64_t N, int transposed, float *panels)
{
    for (int64_t q = 0; q < (N + NR - 1) / NR; q++)
        for (int64_t k = 0; k < K; k++) {
            float *d = panels + (q * K + k) * NR;
            for (int64_t j = 0; j < NR; j++) {
                int64_t n = q * NR + j;
                d[j] = n >= N ? 0.0f : transposed ? B[n * K + k] : B[k * N + n];
            }
        }
}

#if defined(__x86_64__)
#include "avx512_math.h"

int gemm_f32_available(void) { return __builtin_cpu_supports("avx512f"); }

/* A rows [mc, kc] -> micro-panels of MR rows, k-major, zero rows past mc */
static void pack_a(const float *A, int64_t lda, int64_t mc, int64_t kc, float *Ap)
{
    for (int64_t i0 = 0; i0 < mc; i0 += MR) {
        float *d = Ap + i0 * kc;
        int64_t mr = mc - i0 < MR ? mc - i0 : MR;
        for (int64_t k = 0; k < kc; k++) {
            for (int64_t i = 0; i < mr; i++) d[k * MR + i] = A[(i0 + i) * lda + k];
            for (int64_t i = mr; i < MR; i++) d[k * MR + i] = 0.0f;
        }
    }
}

typedef struct {
    int64_t row, col;      /* of the tile's first element in C */
    int mr, nr;            /* valid rows and columns */
    int accumulate, last;  /* add to C (a later depth block); apply the epilogue */
} Tile;

AVX512 static inline __m512 epilogue16(__m512 c, const GemmEpilogue *ep, int64_t row, int64_t col, __mmask16 m)
{
    if (ep->bias) c = _mm512_add_ps(c, _mm512_maskz_loadu_ps(m, ep->bias + col));
    if (ep->act == LINEAR_ACT_QUICK_GELU) c = quick_gelu16(c);
    else if (ep->act == LINEAR_ACT_GELU) c = gelu16(c);
    if (ep->residual) c = _mm512_add_ps(c, _mm512_maskz_loadu_ps(m, ep->residual + row * ep->ldr + col));
    return c;
}

AVX512 static void micro_kernel(int64_t kc, const float *Ap, const float *Bp, float *C, int64_t ldc, const Tile *t,
                                const GemmEpilogue *ep)
{
    __m512 c[MR][2];
    /* unrolled so that the 16 accumulators stay in registers at -O2 */
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; k++) {
        __m512 b0 = _mm512_loadu_ps(Bp + k * NR), b1 = _mm512_loadu_ps(Bp + k * NR + 16);
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            __m512 a = _mm512_set1_ps(Ap[k * MR + i]);
            c[i][0] = _mm512_fmadd_ps(a, b0, c[i][0]);
            c[i][1] = _mm512_fmadd_ps(a, b1, c[i][1]);
        }
    }
    __mmask16 m0 = t->nr >= 16 ? 0xffff : (__mmask16)((1u << t->nr) - 1);
    __mmask16 m1 = t->nr >= 32 ? 0xffff : t->nr <= 16 ? 0 : (__mmask16)((1u << (t->nr - 16)) - 1);
#pragma GCC unroll 8
    for (int i = 0; i < t->mr; i++) {
        float *r = C + (t->row + i) * ldc + t->col;
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

/* K == 0: C = epilogue(0) */
AVX512 static void epilogue_only(int64_t M, float *C, int64_t ldc, int64_t N, const GemmEpilogue *ep)
{
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j += 16) {
            __mmask16 m = N - j >= 16 ? 0xffff : (__mmask16)((1u << (N - j)) - 1);
            _mm512_mask_storeu_ps(C + i * ldc + j, m, epilogue16(_mm512_setzero_ps(), ep, i, j, m));
        }
}

typedef struct {
    int64_t M, lda, ldc, row_blocks, col_chunks, panels_per_chunk;
    const float *A;
    const PackedB *B;
    float *C;
    const GemmEpilogue *ep;
    int failed;
} GemmJob;

AVX512 static void gemm_units(void *ctx, int64_t ub, int64_t ue)
{
    GemmJob *j = ctx;
    const PackedB *B = j->B;
    int64_t K = B->K, np = (B->N + NR - 1) / NR;
    float *Ap = aligned_alloc(64, sizeof(float) * MC * KC);
    if (!Ap) { j->failed = 1; return; }
    for (int64_t u = ub; u < ue; u++) {
        int64_t i0 = (u / j->col_chunks) * MC, mc = j->M - i0 < MC ? j->M - i0 : MC;
        int64_t p0 = (u % j->col_chunks) * j->panels_per_chunk, p1 = p0 + j->panels_per_chunk < np ? p0 + j->panels_per_chunk : np;
        for (int64_t k0 = 0; k0 < K; k0 += KC) {
            int64_t kc = K - k0 < KC ? K - k0 : KC;
            pack_a(j->A + i0 * j->lda + k0, j->lda, mc, kc, Ap);
            for (int64_t q = p0; q < p1; q++) {
                const float *Bp = B->panels + (q * K + k0) * NR;
                int nr = B->N - q * NR < NR ? (int)(B->N - q * NR) : NR;
                for (int64_t ii = 0; ii < mc; ii += MR) {
                    Tile t = {.row = i0 + ii, .col = q * NR, .mr = mc - ii < MR ? (int)(mc - ii) : MR, .nr = nr,
                              .accumulate = k0 > 0, .last = k0 + kc == K};
                    micro_kernel(kc, Ap + ii * kc, Bp, j->C, j->ldc, &t, j->ep);
                }
            }
        }
    }
    free(Ap);
}

int gemm_f32(int64_t M, const float *A, int64_t lda, const PackedB *B, float *C, int64_t ldc, const GemmEpilogue *ep)
{
    static const GemmEpilogue none = {0};
    if (!ep) ep = &none;
    if (M == 0 || B->N == 0) return 0;
    if (B->K == 0) { epilogue_only(M, C, ldc, B->N, ep); return 0; }
    int64_t np = (B->N + NR - 1) / NR, rb = (M + MC - 1) / MC, want = 4 * parallel_threads();
    int64_t cc = rb >= want ? 1 : (want + rb - 1) / rb;
    if (cc > np) cc = np;
    GemmJob j = {.M = M, .lda = lda, .ldc = ldc, .row_blocks = rb, .A = A, .B = B, .C = C, .ep = ep};
    j.panels_per_chunk = (np + cc - 1) / cc;
    j.col_chunks = (np + j.panels_per_chunk - 1) / j.panels_per_chunk;
    parallel_for(rb * j.col_chunks, 1, gemm_units, &j);
    return j.failed ? -1 : 0;
}

#else /* not x86-64: callers use BLAS */
int gemm_f32_available(void) { return 0; }
int gemm_f32(int64_t M, const float *A, int64_t lda, const PackedB *B, float *C, int64_t ldc, const GemmEpilogue *ep)
{ (void)M; (void)A; (void)lda; (void)B; (void)C; (void)ldc; (void)ep; return -1; }
#endif
