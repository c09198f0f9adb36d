/* autodiff.h — reverse-mode automatic differentiation over the IR.
 *
 * The pass walks the forward nodes backwards from a scalar loss.  For each
 * node it calls the op's gradient rule (the GRAD column of ir/ops.def), which
 * appends ordinary graph nodes computing the gradients of the inputs that
 * need one from the gradients of the outputs; where a value has several
 * consumers the contributions are summed with Add.  The backward graph is
 * therefore an ordinary graph: it runs, fuses, exports and plans memory like
 * the forward.  Shapes must be static (specialize the batch first), so every
 * rule can emit constant shapes and reduction axes. */
#ifndef VCLIP_AUTODIFF_H
#define VCLIP_AUTODIFF_H

#include "../ir/ops.h"

typedef struct {
    Graph *g;
    Node *node;              /* the forward node */
    Value *dy[8];            /* gradient of each output; NULL where none flows */
    int needs[16];           /* input i needs a gradient */
    Value *dx[16];           /* set by the rule (NULL: no contribution) */
    char *err;
    size_t cap;
} GradCtx;

typedef int (*GradFn)(GradCtx *c);

/* The rules named in ops.def (grad_*.c). */
int grad_neg(GradCtx *c);
int grad_sqrt(GradCtx *c);
int grad_reciprocal(GradCtx *c);
int grad_exp(GradCtx *c);
int grad_log(GradCtx *c);
int grad_sigmoid(GradCtx *c);
int grad_softplus(GradCtx *c);
int grad_tanh(GradCtx *c);
int grad_relu(GradCtx *c);
int grad_cast(GradCtx *c);
int grad_identity(GradCtx *c);
int grad_add(GradCtx *c);
int grad_sub(GradCtx *c);
int grad_mul(GradCtx *c);
int grad_div(GradCtx *c);
int grad_pow(GradCtx *c);
int grad_where(GradCtx *c);
int grad_reduce_mean(GradCtx *c);
int grad_reduce_sum(GradCtx *c);
int grad_softmax(GradCtx *c);
int grad_layernorm(GradCtx *c);
int grad_matmul(GradCtx *c);
int grad_gemm(GradCtx *c);
int grad_conv(GradCtx *c);
int grad_linear(GradCtx *c);
int grad_reshape(GradCtx *c);
int grad_transpose(GradCtx *c);
int grad_slice(GradCtx *c);
int grad_gather(GradCtx *c);
int grad_concat(GradCtx *c);
int grad_expand(GradCtx *c);
int grad_quick_gelu(GradCtx *c);
int grad_gelu(GradCtx *c);
int grad_attention(GradCtx *c);
int grad_softmax_ce(GradCtx *c);
int grad_interpolate_weights(GradCtx *c);

extern const GradFn grad_rules[OP_COUNT];

/* Appends the backward of g for loss (a scalar f32 value) with respect to
 * params; grads[i] receives d loss / d params[i] (a zero constant where the
 * loss does not depend on it).  0, or -1 with a message naming the node. */
int autodiff(Graph *g, Value *loss, Value *const *params, int n_params, Value **grads, char *err, size_t cap);

/* Helpers the rules share (grad_emit.c). */
int grad_fail(GradCtx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A new node of op on in[] with n_out fresh outputs, attributes copied from
 * `attrs_from` when not NULL; not yet inferred. */
Node *grad_node(GradCtx *c, int op, int n_in, Value **in, int n_out, const Node *attrs_from);
/* Infers n; its first output or NULL (with the message in c->err). */
Value *grad_finish(GradCtx *c, Node *n);
/* One-output node with no attributes, inferred. */
Value *grad_op(GradCtx *c, int op, int n_in, Value **in);
Value *grad_op2(GradCtx *c, int op, Value *a, Value *b);
/* Reshape x to shape s (static). */
Value *grad_reshape_to(GradCtx *c, Value *x, const Shape *s);
/* Sum g over the axes that numpy broadcasting added or stretched, so the
 * result has shape s. */
Value *grad_reduce_to(GradCtx *c, Value *g, const Shape *s);
/* ReduceSum over the given axes (keepdims as given). */
Value *grad_sum_axes(GradCtx *c, Value *x, int n_axes, const int64_t *axes, int keepdims);
void grad_set_int(Node *n, const char *name, int64_t v);
int grad_set_ints(Node *n, const char *name, int count, const int64_t *v);
/* An InferCtx over a forward node's input values, to decode its attributes
 * with the shared op_*_params helpers. */
void grad_infer_ctx(const GradCtx *c, InferCtx *ic, ValueInfo *vi);

#endif
