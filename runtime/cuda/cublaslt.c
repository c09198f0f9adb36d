/* cublaslt.c — see cublaslt.h.  cuBLASLt is column-major: the row-major
 * D [M, N] is the column-major D^T [N, M] = W^T · A^T, so W is cuBLASLt's A
 * operand and our A its B; the bias then runs along cuBLASLt's rows, which
 * is what its BIAS epilogue adds.  Descriptors are built per call (cheap
 * next to the GEMMs of a ViT); the enum values are cuBLASLt's, checked
 * against cublasLt.h by tests/unit/test_cuda.c where the toolkit is. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "cublaslt.h"

#define LT_WORKSPACE (32u << 20)

static struct {
    int tried, ok;
    char why[256];
    void *handle;
    CuPtr workspace;
    LtApi api;
} lt;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

void cublaslt_emulate(const LtApi *api)
{
    pthread_mutex_lock(&mu);
    lt.tried = lt.ok = 1;
    lt.api = *api;
    snprintf(lt.why, sizeof lt.why, "cuBLASLt (emulated)");
    pthread_mutex_unlock(&mu);
}

static int load(void)
{
    void *h = dlopen("libcublasLt.so", RTLD_NOW | RTLD_LOCAL);
    for (int v = 13; !h && v >= 11; v--) {
        char name[32];
        snprintf(name, sizeof name, "libcublasLt.so.%d", v);
        h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    }
    if (!h) { snprintf(lt.why, sizeof lt.why, "cuBLASLt not found (libcublasLt.so)"); return -1; }
    int missing = 0;
#define SYM(field, name)                                                 \
    do {                                                                 \
        lt.api.field = (__typeof__(lt.api.field))(uintptr_t)dlsym(h, name); \
        if (!lt.api.field) missing = 1;                                  \
    } while (0)
    SYM(create, "cublasLtCreate");
    SYM(destroy, "cublasLtDestroy");
    SYM(version, "cublasLtGetVersion");
    SYM(desc_create, "cublasLtMatmulDescCreate");
    SYM(desc_destroy, "cublasLtMatmulDescDestroy");
    SYM(desc_set, "cublasLtMatmulDescSetAttribute");
    SYM(layout_create, "cublasLtMatrixLayoutCreate");
    SYM(layout_destroy, "cublasLtMatrixLayoutDestroy");
    SYM(pref_create, "cublasLtMatmulPreferenceCreate");
    SYM(pref_destroy, "cublasLtMatmulPreferenceDestroy");
    SYM(pref_set, "cublasLtMatmulPreferenceSetAttribute");
    SYM(heuristic, "cublasLtMatmulAlgoGetHeuristic");
    SYM(matmul, "cublasLtMatmul");
#undef SYM
    if (missing) { snprintf(lt.why, sizeof lt.why, "libcublasLt lacks entry points we need"); return -1; }
    size_t v = lt.api.version();
    snprintf(lt.why, sizeof lt.why, "cuBLASLt %zu.%zu.%zu", v / 10000, v / 100 % 100, v % 100);
    return 0;
}

int cublaslt_available(char *why, size_t cap)
{
    pthread_mutex_lock(&mu);
    if (!lt.tried) { lt.tried = 1; lt.ok = load() == 0; }
    pthread_mutex_unlock(&mu);
    snprintf(why, cap, "%s", lt.why);
    return lt.ok;
}

/* The handle and workspace, made on first use (they need a device). */
static int ready(const CudaApi *cu, char *err, size_t cap)
{
    if (!cublaslt_available(err, cap)) return -1;
    pthread_mutex_lock(&mu);
    int rc = 0;
    if (!lt.handle && (lt.api.create(&lt.handle) || cu->mem_alloc(&lt.workspace, LT_WORKSPACE))) {
        snprintf(err, cap, "cannot create a cuBLASLt handle and its %u MiB workspace", LT_WORKSPACE >> 20);
        if (lt.handle) lt.api.destroy(lt.handle);
        lt.handle = NULL;
        lt.workspace = 0;
        rc = -1;
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

void cublaslt_release(void)
{
    char err[256];
    const CudaApi *cu = cuda_api(err, sizeof err);
    pthread_mutex_lock(&mu);
    if (lt.handle) lt.api.destroy(lt.handle);
    if (lt.workspace && cu) cu->mem_free(lt.workspace);
    lt.handle = NULL;
    lt.workspace = 0;
    pthread_mutex_unlock(&mu);
}

int cublaslt_gemm(const LtGemm *g, CuStream stream, char *err, size_t cap)
{
    const CudaApi *cu = cuda_api(err, cap);
    if (!cu || ready(cu, err, cap)) return -1;
    int compute = g->compute == GEMM_COMPUTE_BF16 ? LT_COMPUTE_32F_FAST_16BF : g->compute == GEMM_COMPUTE_F16 ? LT_COMPUTE_32F_FAST_16F
                                                                                                           : LT_COMPUTE_32F;
    void *desc = NULL, *la = NULL, *lb = NULL, *lc = NULL, *pref = NULL;
    int rc = -1, st;
    int32_t ta = g->w_transposed ? LT_OP_T : LT_OP_N, tb = g->a_transposed ? LT_OP_T : LT_OP_N;
    int32_t epi = g->bias ? LT_EPILOGUE_BIAS : LT_EPILOGUE_DEFAULT;
    uint64_t ws = LT_WORKSPACE;
    const void *bias = (const void *)(uintptr_t)g->bias;
    /* column-major: op(W) is [N, K], op(A) is [K, M] (A^T stored, or A
     * itself transposed back), D^T is [N, M] */
    if ((st = lt.api.desc_create(&desc, compute, LT_R_32F)) || (st = lt.api.desc_set(desc, LT_DESC_TRANSA, &ta, sizeof ta)) ||
        (st = lt.api.desc_set(desc, LT_DESC_TRANSB, &tb, sizeof tb)) || (st = lt.api.desc_set(desc, LT_DESC_EPILOGUE, &epi, sizeof epi)) ||
        (g->bias && (st = lt.api.desc_set(desc, LT_DESC_BIAS_POINTER, &bias, sizeof bias))) ||
        (st = lt.api.layout_create(&la, LT_R_32F, g->w_transposed ? (uint64_t)g->K : (uint64_t)g->N, g->w_transposed ? (uint64_t)g->N : (uint64_t)g->K,
                               g->w_transposed ? g->K : g->N)) ||
        (st = lt.api.layout_create(&lb, LT_R_32F, g->a_transposed ? (uint64_t)g->M : (uint64_t)g->K,
                                   g->a_transposed ? (uint64_t)g->K : (uint64_t)g->M, g->a_transposed ? g->M : g->K)) ||
        (st = lt.api.layout_create(&lc, LT_R_32F, (uint64_t)g->N, (uint64_t)g->M, g->N)) || (st = lt.api.pref_create(&pref)) ||
        (st = lt.api.pref_set(pref, LT_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws))) {
        snprintf(err, cap, "cuBLASLt descriptor setup failed (status %d)", st);
        goto done;
    }
    LtHeuristic h;
    int found = 0;
    if ((st = lt.api.heuristic(lt.handle, desc, la, lb, lc, lc, pref, 1, &h, &found)) || !found) {
        snprintf(err, cap, "cuBLASLt has no algorithm for [%lld x %lld] x [%lld x %lld] (status %d)", (long long)g->M, (long long)g->K,
                 (long long)g->K, (long long)g->N, st);
        goto done;
    }
    float alpha = g->alpha, beta = g->C ? 1.0f : 0.0f;
    const void *C = (const void *)(uintptr_t)(g->C ? g->C : g->D);
    if ((st = lt.api.matmul(lt.handle, desc, &alpha, (const void *)(uintptr_t)g->W, la, (const void *)(uintptr_t)g->A, lb, &beta, C, lc,
                        (void *)(uintptr_t)g->D, lc, &h.algo, (void *)(uintptr_t)lt.workspace, LT_WORKSPACE, stream))) {
        snprintf(err, cap, "cublasLtMatmul failed (status %d)", st);
        goto done;
    }
    rc = 0;
done:
    if (pref) lt.api.pref_destroy(pref);
    if (lc) lt.api.layout_destroy(lc);
    if (lb) lt.api.layout_destroy(lb);
    if (la) lt.api.layout_destroy(la);
    if (desc) lt.api.desc_destroy(desc);
    return rc;
}
