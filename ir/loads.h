/* loads.h — how the registers of a generated elementwise kernel
 * (ai.vclip.FusedElementwise) read the node's inputs.
 *
 * Without a "loads" attribute, register k is input k broadcast to the output
 * (numpy rules).  With one, each register is an input seen through a chain
 * of injective ops (Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Slice,
 * Gather of one index, Expand), or a Concat of such chains: the kernel reads
 * through the composed index map instead of materializing the intermediate
 * tensors (a strided view per chain; a Concat picks its piece by the index
 * along its axis).  The operands those ops take (target shapes, slice
 * bounds, the index) are further inputs of the node, by index, so that the
 * ops keep their ONNX meaning, dynamic shapes included: the same op rules
 * (ir/infer_shape.c) give the registers' shapes, symbolic or concrete.
 *
 * "loads" (ints): n_loads, then per load
 *     n_pieces, axis (the Concat's, >= 0, when n_pieces > 1; else -1),
 *     per piece: input, n_steps, then per step
 *         code (VIEW_*), n_operands, that many input indices (-1: absent),
 *         n_attr (-1: absent), that many values: perm (Transpose), axes
 *         (Squeeze, Unsqueeze before opset 13), or one int: axis (Flatten,
 *         Gather), allowzero (Reshape).
 * Reshape and Flatten apply only while the view is still contiguous. */
#ifndef VCLIP_LOADS_H
#define VCLIP_LOADS_H

#include <stddef.h>
#include "ops.h"

enum { VIEW_RESHAPE = 1, VIEW_FLATTEN, VIEW_SQUEEZE, VIEW_UNSQUEEZE, VIEW_TRANSPOSE, VIEW_SLICE, VIEW_GATHER, VIEW_EXPAND, VIEW_CODE_END };

#define VIEW_MAX_OPERANDS 4
typedef struct { int code, n_operands, operand[VIEW_MAX_OPERANDS], n_attr; const int64_t *attr; } ViewStep;
typedef struct { int input, first_step, n_steps; } ViewPiece;
typedef struct { int n_pieces, axis, first_piece; } ViewLoad;
typedef struct {
    int n_loads, n_pieces, n_steps, n_bounds; /* n_bounds: the Concats' boundaries, (n_pieces - 1) per load */
    ViewLoad *loads;
    ViewPiece *pieces;
    ViewStep *steps;
} LoadPlan;

/* The IR op of a step code, and the code of an IR op (0: not a view op). */
int view_op_of_code(int code);
int view_code_of_op(int op);
/* The one attribute a step may carry (NULL: none), and whether it is a list. */
const char *view_attr_name(int code, int *is_list);

/* Decodes n's "loads" (the identity plan over all inputs when absent) and
 * checks its indices; 0, or -1 with a message. */
int loads_decode(const Node *n, LoadPlan *lp, char *err, size_t cap);
void loads_free(LoadPlan *lp);

/* The shape of every register (regs[n_loads]) from the node's input infos,
 * symbolic or concrete. */
int loads_shapes(const LoadPlan *lp, const Node *n, int opset, const ValueInfo *const *in, Shape *regs, char *err, size_t cap);

/* Launch parameters over an output of `rank` dims, in one int64 block of
 * loads_param_count entries:
 *   n_pieces * rank  element strides of each piece over the output's dims
 *   n_pieces         each piece's base offset
 *   per Concat load: the output axis it picks along, then its n_pieces - 1
 *                    boundaries (a piece ends where the next begins)
 * Pieces read their own input's data (lp->pieces[i].input). */
size_t loads_param_count(const LoadPlan *lp, int rank);
int loads_params(const LoadPlan *lp, const Node *n, int opset, const Tensor *const *in, int rank, const int64_t *dims,
                 int64_t *params, char *err, size_t cap);

#endif
