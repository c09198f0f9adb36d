/* builder.h — building graphs by hand (models/clip_builder.c, the training
 * graph's loss head): nodes with fresh unique names, inferred as they are
 * added, constants and attributes.  The first failure sticks (b->failed, the
 * message in b->err) and every later call returns NULL, so a builder can
 * chain calls and check once at the end. */
#ifndef VCLIP_BUILDER_H
#define VCLIP_BUILDER_H

#include "ops.h"

typedef struct {
    Graph *g;
    char *err;
    size_t cap;
    int failed;
} Builder;

/* A node of op on in[] (NULL inputs fail the builder), not yet inferred. */
Node *b_node(Builder *b, int op, const char *name, int n_in, Value **in);
/* Infers n and returns its first output. */
Value *b_finish(Builder *b, Node *n);
Value *b_op(Builder *b, int op, const char *name, int n_in, Value **in);
Value *b_op1(Builder *b, int op, const char *name, Value *x);
Value *b_op2(Builder *b, int op, const char *name, Value *x, Value *y);
/* Attributes (no-ops on a NULL node). */
void b_attr_i(Node *n, const char *name, int64_t v);
void b_attr_f(Node *n, const char *name, float v);
void b_attr_ints(Node *n, const char *name, int count, const int64_t *v);
/* Constants; b_const takes ownership of t (NULL fails the builder). */
Value *b_const(Builder *b, const char *name, Tensor *t);
Value *b_ints(Builder *b, const char *name, int n, const int64_t *v);
Value *b_scalar(Builder *b, const char *name, float v);
/* A graph input of static shape. */
Value *b_input(Builder *b, const char *name, DType t, int rank, const int64_t *dims);
/* ReduceSum over one axis (axes as an input: opset 13+). */
Value *b_reduce_sum(Builder *b, const char *name, Value *x, int64_t axis, int keepdims);
/* x / ||x|| over the last axis. */
Value *b_l2_normalize(Builder *b, const char *name, Value *x);
/* Swaps the two axes of a matrix. */
Value *b_transpose2(Builder *b, const char *name, Value *x);

#endif
