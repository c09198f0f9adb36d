/* ir.h — the typed SSA graph that every stage of vclip reads and rewrites.
 *
 * A Graph owns Values (SSA: one producer each) and Nodes (kept in topological
 * order).  A Value has a dtype and a Shape whose dims may be symbolic
 * ("batch", or 50*batch after a reshape).  Initializers and constants carry a
 * Tensor.  Small integer tensors (shape vectors) may also carry their
 * *content* as symbolic dims ("known"), which is what lets shape inference see
 * through the Shape->Gather->Concat->Reshape chains that exporters emit.
 *
 * Ops are defined once, in ops.def; see ops.h for the table.
 */
#ifndef VCLIP_IR_H
#define VCLIP_IR_H

#include <stddef.h>
#include <stdint.h>

#define IR_MAX_RANK 8
#define IR_MAX_KNOWN 16 /* longest int vector whose content we track */

typedef enum {
    DT_UNDEF = 0,
    DT_F32, DT_F16, DT_BF16, DT_F64,
    DT_I64, DT_I32, DT_I8, DT_U8, DT_BOOL,
    DT_COUNT
} DType;

size_t dtype_size(DType t);
const char *dtype_name(DType t);
int dtype_is_float(DType t);
DType dtype_from_onnx(int32_t onnx_type); /* DT_UNDEF if unsupported */
int32_t dtype_to_onnx(DType t);

/* A dimension: a constant (sym == DIM_CONST, value n), n * symbol[sym]
 * (sym >= 0), or unknown. */
typedef struct { int64_t n; int32_t sym; } Dim;
#define DIM_CONST (-1)
#define DIM_UNKNOWN (-2)

typedef struct { int rank; Dim d[IR_MAX_RANK]; } Shape; /* rank < 0: unknown */

Dim dim_const(int64_t n);
Dim dim_unknown(void);
int dim_is_const(Dim d);
int dim_equal(Dim a, Dim b);
Dim dim_mul(Dim a, Dim b);
Dim dim_div(Dim a, Dim b);  /* exact division or unknown */
Dim dim_add(Dim a, Dim b);
Dim dim_sub(Dim a, Dim b);
int shape_is_const(const Shape *s);
int64_t shape_numel(const Shape *s); /* -1 if not constant */

/* A dense tensor.  Data is either owned (buf != NULL, refcounted) or borrowed
 * from memory that outlives the tensor (an mmap held by the Graph). */
typedef struct Buffer { void *ptr; int refs; } Buffer;
typedef struct Tensor {
    DType dtype;
    int rank;
    int64_t dims[IR_MAX_RANK];
    void *data;
    size_t nbytes;
    Buffer *buf;
} Tensor;

/* Returns NULL (and sets errno) on overflow or allocation failure. */
Tensor *tensor_new(DType t, int rank, const int64_t *dims);
Tensor *tensor_borrow(DType t, int rank, const int64_t *dims, void *data);
Tensor *tensor_view(const Tensor *src, int rank, const int64_t *dims); /* shares data */
Tensor *tensor_copy(const Tensor *src);
/* A new f32 tensor of src's values (exact from f16 and bf16); NULL: out of memory */
Tensor *tensor_to_f32(const Tensor *src);
void tensor_free(Tensor *t);
int64_t tensor_numel(const Tensor *t);
/* Element count of dims, or -1 on overflow / negative dims. */
int64_t dims_numel_checked(int rank, const int64_t *dims);
double tensor_get_f64(const Tensor *t, int64_t i);  /* any dtype */
int64_t tensor_get_i64(const Tensor *t, int64_t i); /* any dtype */
void tensor_set_f64(Tensor *t, int64_t i, double v);
/* bf16 <-> f32, rounding to nearest even (NaN stays NaN, quietened).
 * Inline and branch-free, so that loops over weights vectorize. */
static inline uint16_t float_to_bf16(float f)
{
    union { float f; uint32_t u; } v = {f};
    uint32_t x = v.u, rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16, quiet = (x >> 16) | 0x40u;
    return (uint16_t)((x & 0x7fffffffu) > 0x7f800000u ? quiet : rounded);
}
static inline float bf16_to_float(uint16_t h)
{
    union { uint32_t u; float f; } v = {(uint32_t)h << 16};
    return v.f;
}
/* x rounded to the nearest bf16, as a float */
static inline float bf16_round(float x) { return bf16_to_float(float_to_bf16(x)); }

typedef enum {
    ATTR_INT, ATTR_FLOAT, ATTR_STRING, ATTR_INTS, ATTR_FLOATS, ATTR_TENSOR, ATTR_STRINGS
} AttrType;

typedef struct {
    char *name;
    AttrType type;
    int64_t i;
    float f;
    char *s;
    int n;          /* length of ints / floats / strings */
    int64_t *ints;
    float *floats;
    char **strings;
    Tensor *t;
} Attr;

struct Node;

typedef struct Value {
    char *name;
    DType dtype;
    Shape shape;
    struct Node *producer;    /* NULL for graph inputs and initializers */
    Tensor *konst;            /* initializer / folded constant data */
    int n_known;              /* < 0: content unknown */
    Dim known[IR_MAX_KNOWN];
    int is_input, is_output;
    int trainable;            /* a parameter being trained: never folded or inlined */
    int id;
} Value;

typedef struct Node {
    int op;                   /* index into the op table */
    char *name;
    char *domain;             /* as imported; "" for the default domain */
    int n_in, n_out, n_attrs;
    Value **in;               /* an absent optional input is NULL */
    Value **out;
    Attr *attrs;
} Node;

typedef struct { void *addr; size_t len; } Mapping;
typedef struct { char *domain; int64_t version; } OpsetId;

typedef struct Graph {
    char *name;
    char *source_path;        /* the file it came from, for messages */
    char *producer;           /* producer_name of the model */
    int opset;                /* default-domain opset */
    OpsetId *opsets; int n_opsets;
    Node **nodes; int n_nodes, cap_nodes;
    Value **values; int n_values, cap_values;
    Value **inputs; int n_inputs;
    Value **outputs; int n_outputs;
    char **syms; int n_syms;  /* names of symbolic dims */
    Mapping *maps; int n_maps;
    int64_t ir_version;       /* of the imported file */
    /* Storage that borrowed tensors point into (e.g. the decoded protobuf). */
    void *keepalive;
    void (*keepalive_free)(void *);
} Graph;

Graph *graph_new(const char *name);
void graph_free(Graph *g);
Value *graph_new_value(Graph *g, const char *name);
Value *graph_find_value(const Graph *g, const char *name); /* linear */
int graph_intern_sym(Graph *g, const char *name);
Node *graph_add_node(Graph *g, int op, const char *name, int n_in, Value **in,
                     int n_out, Value **out);
int graph_add_input(Graph *g, Value *v);
int graph_add_output(Graph *g, Value *v);
void graph_remove_dead(Graph *g);  /* drop nodes marked with op < 0 */
/* Reorders nodes topologically: each node keeps its place unless one of its
 * producers comes after it, which is then pulled in just before it (passes
 * append new nodes and call this; an ordered graph stays as it is).  -1 on
 * a cycle. */
int graph_topo_sort(Graph *g);
int graph_add_mapping(Graph *g, void *addr, size_t len);
/* Every constant of g that has a namesake in `from` with the same dtype,
 * dims and bytes becomes a view of from's (one copy in memory); `from` must
 * outlive g.  Returns the bytes no longer held twice. */
size_t graph_share_constants(Graph *g, const Graph *from);
/* A tensor borrowed from one of the graph's mapped files is no longer
 * needed in memory: its pages leave the resident set (no-op otherwise). */
void graph_release_pages(const Graph *g, const Tensor *t);
/* A fresh name used by no value and no live node, derived from base. */
char *graph_unique_name(const Graph *g, const char *base);

/* Attributes. */
const Attr *node_attr(const Node *n, const char *name);
int64_t node_attr_i(const Node *n, const char *name, int64_t dflt);
float node_attr_f(const Node *n, const char *name, float dflt);
const char *node_attr_s(const Node *n, const char *name, const char *dflt);
Attr *node_add_attr(Node *n, const char *name, AttrType type);
void attr_clear(Attr *a);
/* Appends deep copies of src's attributes to dst; -1 when out of memory. */
int node_copy_attrs(Node *dst, const Node *src);

/* Uses: for every value id, the number of inputs of live nodes (op >= 0:
 * a node a pass has just removed reads nothing) that read it; graph
 * outputs count as one use. Caller frees. */
int *graph_use_counts(const Graph *g);
/* Replace every use of `from` (node inputs and graph outputs) with `to`. */
void graph_replace_uses(Graph *g, Value *from, Value *to);

void value_set_const(Value *v, Tensor *t);    /* takes ownership */
void value_set_known_from_tensor(Value *v);    /* fills known[] for small ints */

/* Formatting helpers (static buffer per call site is the caller's). */
void dim_format(const Graph *g, Dim d, char *buf, size_t cap);
void shape_format(const Graph *g, const Shape *s, char *buf, size_t cap);

/* Diagnostics: printf-style message into a caller buffer. */
#define IR_ERR_CAP 512

#endif
