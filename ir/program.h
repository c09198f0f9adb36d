/* program.h — the description of a fused elementwise kernel, the one thing
 * both renderers (codegen/render.h: C for the CPU, CUDA C for NVRTC), the
 * fusion passes and the reference interpreter read.  It is part of the IR:
 * a FusedElementwise node carries its program in its attributes.
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
#include "ir.h"

/* The opcodes: one per row of scalar_ops.def, which also holds each one's
 * arithmetic. */
typedef enum {
#define SCALAR_OP(id, name, arity, ir, expr) PR_##id,
#include "scalar_ops.def"
#undef SCALAR_OP
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
/* The opcode's f32 C expression over the operands a and b, as written in
 * scalar_ops.def (what the renderers print); NULL for no opcode. */
const char *program_op_expr(int op);
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

/* Fused reductions (ai.vclip.FusedReduce): a prologue program over the
 * inputs at each element of a row, the row reduced, an epilogue program
 * over the result (register 0).  A program without instructions (n_in 1,
 * no constants) is the identity. */
typedef enum { REDUCE_SUM, REDUCE_MEAN, REDUCE_MAX, REDUCE_COUNT } ReduceOp;
/* The program in attributes code_attr / const_attr of n over n_in
 * registers; an absent code attribute is the identity. */
int program_from_attrs(const Node *n, const char *code_attr, const char *const_attr, int n_in, Program *p, char *err, size_t cap);

#endif
