/* rewrite.h — small helpers the fusion and lowering passes share: looking
 * through producers and constants, and replacing a value with a new node. */
#ifndef VCLIP_REWRITE_H
#define VCLIP_REWRITE_H

#include "../ir/ops.h"

/* v's producer when it is an `op` node, else NULL. */
Node *producer_is(const Value *v, int op);
/* The one live node reading v: NULL when none or several do (uses from
 * graph_use_counts) or v is a graph output. */
Node *sole_reader(Graph *g, const Value *v, const int *uses);
/* v holds a single constant element; its value in *out. */
int const_scalar(const Value *v, double *out);
/* For a two-input node, the input that is not v (NULL if v is neither). */
Value *other_input(const Node *n, const Value *v);
/* True when the reduce node averages over the last axis only, keeping dims. */
int reduces_last_axis(const Graph *g, const Node *n);

/* A new node of `op` computing a value like `like` (dtype, shape); every
 * use of `like` is moved to it. */
Node *replace_with_node(Graph *g, Value *like, int op, const char *name, int n_in, Value **in);
/* A new node with one fresh output named after `base`, not yet inferred
 * (set its attributes, then infer_node). */
Node *new_node(Graph *g, int op, const char *base, int n_in, Value **in);
/* A fresh value named after base (made unique). */
Value *fresh_value(Graph *g, const char *base);
/* A copy of n (op, domain, attributes) reading `in` (n->n_in values), with
 * fresh outputs named prefix + each output's name; inferred.  NULL with a
 * message naming the node when it cannot be made. */
Node *clone_node(Graph *g, const Node *n, Value *const *in, const char *prefix, char *err, size_t cap);
/* The same, inferred; returns its output (NULL if inference fails). */
Value *append_node(Graph *g, int op, const char *base, int n_in, Value **in);
/* ai.vclip.Attention as standard ops (lower_attention.c); its output or NULL. */
Value *lower_attention(Graph *g, Node *n);
/* Replaces every f32 binary Mul whose `match` finds the activation's input x
 * with a one-input `op` node on x; returns how many (or -1 with err set,
 * naming `pass`). */
int fuse_mul_rooted_activation(Graph *g, int op, Value *(*match)(Node *mul), const char *pass, char *err, size_t cap);
/* An int64 vector constant (shapes, axes, slice bounds). */
Value *int_vector_const(Graph *g, const char *base, int n, const int64_t *vals);
/* A constant value named after base + suffix, holding t (taken; freed
 * when the value cannot be made).  NULL when t is NULL or out of memory. */
Value *new_const(Graph *g, const char *base, const char *suffix, Tensor *t);
/* A scalar f32 constant value. */
Value *scalar_const(Graph *g, const char *base, float v);

#endif
