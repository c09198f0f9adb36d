/* program.h — the description of a fused elementwise kernel, the one thing
 * both renderers (C for the CPU, CUDA C for NVRTC) and the reference
 * interpreter read.
 *
 * A program computes one f32 output element from the elements of its inputs
 * (numpy broadcasting) with straight-line code over registers:
 *   registers 0 .. n_in-1           the inputs at the element
 *   registers n_in .. n_in+n_const-1 scalar constants
 *   then one register per instruction; the last one is the output.
 * It lives in an ai.vclip.FusedElementwise node as two attributes:
 * "program" (ints: opcode, a, b per instruction; b = -1 for unary ops) and
 * "constants" (floats). */
#ifndef VCLIP_PROGRAM_H
#define VCLIP_PROGRAM_H

#include <stddef.h>
#include <stdint.h>
#include "../ir/ir.h"

#define PROGRAM_OPS(X)                       \
    X(PR_ADD, "add", 2) X(PR_SUB, "sub", 2)  \
    X(PR_MUL, "mul", 2) X(PR_DIV, "div", 2)  \
    X(PR_MAX, "max", 2) X(PR_MIN, "min", 2)  \
    X(PR_POW, "pow", 2) X(PR_NEG, "neg", 1)  \
    X(PR_EXP, "exp", 1) X(PR_LOG, "log", 1)  \
    X(PR_SQRT, "sqrt", 1) X(PR_RECIP, "recip", 1) \
    X(PR_SIGMOID, "sigmoid", 1) X(PR_TANH, "tanh", 1) \
    X(PR_RELU, "relu", 1) X(PR_ABS, "abs", 1) \
    X(PR_ERF, "erf", 1) X(PR_QUICK_GELU, "quick_gelu", 1) X(PR_GELU, "gelu", 1)

typedef enum {
#define X(id, name, arity) id,
    PROGRAM_OPS(X)
#undef X
    PR_COUNT
} ProgramOp;

typedef struct { int op, a, b; } Instr;

typedef struct Program {
    int n_in, n_const, n_instr;
    const float *consts;
    Instr *code;            /* n_instr entries (owned) */
    /* Registers read through views (ir/loads.h): how many pieces each
     * input register concatenates (n_in entries, owned), n_pieces in all;
     * NULL when register k is input k, broadcast. */
    int *load_pieces;
    int n_pieces;
} Program;

const char *program_op_name(int op);
int program_op_arity(int op);
/* The program opcode of an IR op, or -1 when the op is not fusable. */
int program_op_of(int ir_op);

/* Decodes and checks a node's attributes (operands refer to earlier
 * registers, opcodes exist).  0, or -1 with a message. */
int program_from_node(const Node *n, Program *p, char *err, size_t cap);
void program_free(Program *p);

/* One output element in double precision from the inputs' elements. */
double program_eval(const Program *p, const double *inputs);
/* The input registers at output element idx[rank] (flat index `flat`), as
 * the rendered kernels read them: from `in` (one pointer per input, or per
 * piece of a view program) through `params` (the kernel's strides argument:
 * NULL for contiguous same-shape inputs). */
void program_load_registers(const Program *p, int rank, const int64_t *idx, int64_t flat, const float *const *in,
                            const int64_t *params, double *x);

/* Source text of the kernel (malloc'd, NUL-terminated).  The C kernel is
 *   void vclip_fused(int64_t begin, int64_t end, int rank, const int64_t *dims,
 *                    const float *const *in, const int64_t *strides, float *out)
 * over flat output indices [begin, end) with per-input element strides
 * (strides[k * rank + d], 0 on broadcast dims; NULL: every input is
 * contiguous and of the output's shape); the CUDA kernel is the same with
 * one thread per element.  A program with views reads one pointer per
 * piece from `in`, and `strides` is the parameter block of
 * loads_params (ir/loads.h).  Both are pure functions of the program. */
char *program_render_c(const Program *p);
char *program_render_cuda(const Program *p);
/* Fused reductions (ai.vclip.FusedReduce): a prologue program over the
 * inputs at each element of a row, the row reduced, an epilogue program
 * over the result (register 0).  A program without instructions (n_in 1,
 * no constants) is the identity. */
typedef enum { REDUCE_SUM, REDUCE_MEAN, REDUCE_MAX, REDUCE_COUNT } ReduceOp;
/* The program in attributes code_attr / const_attr of n over n_in
 * registers; an absent code attribute is the identity. */
int program_from_attrs(const Node *n, const char *code_attr, const char *const_attr, int n_in, Program *p, char *err, size_t cap);
/* C:    void vclip_reduce(int64_t row_begin, int64_t row_end, int64_t K,
 *                         const float *const *in, const int64_t *rs, float *out)
 *       element k of row r of input i: in[i][r * rs[i] + (rs[i] ? k : 0)]
 *       (rs[i] = K: a full input, 0: a scalar);
 * CUDA: the same over one block per row (rows, K, in, rs, out). */
char *program_render_c_reduce(const Program *pro, const Program *epi, int reduce);
char *program_render_cuda_reduce(const Program *pro, const Program *epi, int reduce);

/* The C and CUDA C sources (malloc'd; pass NULL for one not wanted) of a
 * generated-kernel node (FusedElementwise, FusedReduce): 1, or 0 for any
 * other node, or -1 with a message. */
int program_node_sources(const Node *n, char **c_source, char **cuda_source, char *err, size_t cap);

/* FNV-1a of a string: the cache key of sources. */
uint64_t program_hash(const char *s, uint64_t h);

#endif
