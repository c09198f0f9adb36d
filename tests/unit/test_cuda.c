/* test_cuda.c — generated kernels executed on a CUDA device against the
 * program interpreter (the same oracle the CPU kernels answer to): every
 * opcode and random programs, flat and broadcast.  Without a device it says
 * why and passes nothing (tests/gpu/run.sh runs it where there is one). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "../../codegen/program.h"
#include "../../runtime/cuda/cuda_driver.h"
#include "../../runtime/cuda/cuda_fused.h"

#define TEST_RNG_SEED 0xC0DA5EEDull
#include "rand.h"

/* The interpreter over broadcast inputs, element by element. */
static void expected(const Program *p, Tensor *const *ins, Tensor *out)
{
    int rank = out->rank;
    for (int64_t i = 0; i < tensor_numel(out); i++) {
        double x[8];
        for (int k = 0; k < p->n_in; k++) {
            int64_t rem = i, off = 0, s = 1;
            for (int d = rank - 1; d >= 0; d--) {
                int64_t c = rem % out->dims[d];
                rem /= out->dims[d];
                int td = d - (rank - ins[k]->rank);
                int64_t dim = td >= 0 ? ins[k]->dims[td] : 1;
                off += (dim == 1 ? 0 : c) * s;
                s *= dim;
            }
            x[k] = ((float *)ins[k]->data)[off];
        }
        ((float *)out->data)[i] = (float)program_eval(p, x);
    }
}

static void check_program(const int64_t *code, int n_instr, int n_in, Tensor *const *ins, const float *consts, int n_consts,
                          const int64_t *out_dims, int out_rank, const char *what)
{
    Program p = {n_in, n_consts, n_instr, consts, malloc(sizeof(Instr) * (size_t)n_instr)};
    for (int i = 0; i < n_instr; i++) p.code[i] = (Instr){(int)code[3 * i], (int)code[3 * i + 1], (int)code[3 * i + 2]};
    Tensor *got = tensor_new(DT_F32, out_rank, out_dims), *want = tensor_new(DT_F32, out_rank, out_dims);
    char err[2048];
    int rc = cuda_run_fused(&p, (const Tensor *const *)ins, n_in, got, err, sizeof err);
    CHECK(rc == 0, "%s: %s", what, err);
    expected(&p, ins, want);
    double worst = 0, scale = 1e-6;
    for (int64_t i = 0; i < tensor_numel(want); i++) scale = fmax(scale, fabs(((float *)want->data)[i]));
    for (int64_t i = 0; !rc && i < tensor_numel(want); i++)
        worst = fmax(worst, fabs(((float *)got->data)[i] - ((float *)want->data)[i]) / scale);
    CHECK(rc || worst < 1e-5, "%s: device vs interpreter %g", what, worst);
    tensor_free(got);
    tensor_free(want);
    free(p.code);
}

int main(void)
{
    CudaInfo info;
    char why[512];
    if (cuda_probe(&info, why, sizeof why)) {
        printf("SKIP: CUDA execution tests: %s\n", why);
        return 0;
    }
    printf("device: %s\n", why);
    int64_t da[3] = {3, 1, 7}, db[2] = {5, 1}, dout[3] = {3, 5, 7};
    for (int op = 0; op < PR_COUNT; op++) {
        int positive = op == PR_LOG || op == PR_SQRT || op == PR_POW, ar = program_op_arity(op);
        Tensor *ins[2] = {rand_tensor(3, da, positive ? 0.2 : -2.5, 2.5), rand_tensor(2, db, positive ? 0.2 : -2.5, 2.5)};
        int64_t code[3] = {op, 0, ar == 2 ? 1 : -1};
        check_program(code, 1, ar, ins, NULL, 0, ar == 2 ? dout : da, 3, program_op_name(op));
        tensor_free(ins[0]);
        tensor_free(ins[1]);
    }
    for (int t = 0; t < 16; t++) { /* random chains over three broadcast inputs, then every input added */
        int64_t d0[3] = {4, 3, 33}, d1[2] = {3, 1}, d2[1] = {33}, full[3] = {4, 3, 33};
        int flat = t % 2;
        Tensor *ins[3] = {rand_tensor(3, d0, -1.5, 1.5), flat ? rand_tensor(3, full, -1.5, 1.5) : rand_tensor(2, d1, -1.5, 1.5),
                          flat ? rand_tensor(3, full, -1.5, 1.5) : rand_tensor(1, d2, -1.5, 1.5)};
        const int ops[] = {PR_ADD, PR_SUB, PR_MUL, PR_MAX, PR_NEG, PR_EXP, PR_SIGMOID, PR_TANH, PR_ABS, PR_QUICK_GELU, PR_GELU};
        float consts[1] = {(float)(urand() - 0.5)};
        int64_t code[3 * 12];
        int m = 3 + (int)(urand() * 5);
        for (int i = 0; i < m; i++) {
            int op = ops[(int)(urand() * (sizeof ops / sizeof *ops))];
            code[3 * i] = op;
            code[3 * i + 1] = i ? 4 + i - 1 : 0;
            code[3 * i + 2] = program_op_arity(op) == 2 ? (int64_t)(urand() * (4 + i)) : -1;
        }
        for (int k = 0; k < 3; k++, m++) { code[3 * m] = PR_ADD; code[3 * m + 1] = 4 + m - 1; code[3 * m + 2] = k; }
        char what[64];
        snprintf(what, sizeof what, "random program %d (%s)", t, flat ? "flat" : "broadcast");
        check_program(code, m, 3, ins, consts, 1, full, 3, what);
        for (int k = 0; k < 3; k++) tensor_free(ins[k]);
    }
    return TEST_SUMMARY();
}
