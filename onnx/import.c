/* import.c — ONNX ModelProto -> IR Graph.
 *
 * Everything in the file is untrusted: tensor sizes are checked against their
 * payloads, dims against overflow, names against SSA, ops against the op
 * table (an unknown op names itself, its node, domain and opset), and
 * external data against the model's folder.  Weights are not held twice:
 * large inline payloads bypass protobuf-c (payload_split.c) and are borrowed
 * from the mapped file, or copied when misaligned with those file pages
 * released right away; external data is mmapped.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "onnx.pb-c.h"
#include "onnx_io.h"
#include "payload_split.h"
#include "proto_guard.h"
#include "../ir/name_map.h"
#include "../ir/ops.h"

typedef struct {
    const char *file;       /* for messages */
    const char *base_dir;   /* for external data; NULL = refuse */
    char *err;
    size_t cap;
    Graph *g;
    NameMap names;
    /* external files mapped once each */
    struct { char *location; void *addr; size_t len; } ext[64];
    int n_ext;
    /* large inline payloads, split off before decoding */
    const uint8_t *payload_base;
    size_t payload_len;
    const PayloadRef *refs;
    size_t n_refs, next_ref;
    int borrow_payloads;     /* the base outlives the graph (a mapping it owns) */
    int borrowed_any;
} Importer;

static int fail(Importer *im, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(Importer *im, const char *fmt, ...)
{
    char msg[IR_ERR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(im->err, im->cap, "%s: %s", im->file, msg);
    return -1;
}

static const char *str_or(const char *s, const char *dflt) { return (s && *s) ? s : dflt; }

static int map_external(Importer *im, const char *location, void **addr, size_t *len)
{
    for (int i = 0; i < im->n_ext; i++)
        if (strcmp(im->ext[i].location, location) == 0) {
            *addr = im->ext[i].addr;
            *len = im->ext[i].len;
            return 0;
        }
    if (!im->base_dir) return fail(im, "external data '%s' cannot be resolved for an in-memory model", location);
    if (im->n_ext == 64) return fail(im, "more than 64 external data files");
    char msg[IR_ERR_CAP];
    char *path = external_data_path(im->base_dir, location, msg, sizeof msg);
    if (!path) return fail(im, "%s", msg);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        fail(im, "external data '%s': %s", path, strerror(e));
        free(path);
        return -1;
    }
    void *p = NULL;
    if (st.st_size > 0) {
        p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) { close(fd); fail(im, "cannot map '%s': %s", path, strerror(errno)); free(path); return -1; }
        graph_add_mapping(im->g, p, (size_t)st.st_size);
    }
    close(fd);
    free(path);
    im->ext[im->n_ext].location = strdup(location);
    im->ext[im->n_ext].addr = p;
    im->ext[im->n_ext].len = (size_t)st.st_size;
    im->n_ext++;
    *addr = p;
    *len = (size_t)st.st_size;
    return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno || s[0] == '-') return -1;
    *out = v;
    return 0;
}

/* Converts a TensorProto; borrow = 1 lets large payloads stay where they are. */
static Tensor *convert_tensor(Importer *im, const Onnx__TensorProto *tp, const char *what)
{
    const char *name = str_or(tp->name, what);
    DType dt = dtype_from_onnx(tp->data_type);
    if (dt == DT_UNDEF) { fail(im, "tensor '%s': unsupported data type %d", name, (int)tp->data_type); return NULL; }
    if (tp->n_dims > IR_MAX_RANK) { fail(im, "tensor '%s': rank %zu above %d", name, tp->n_dims, IR_MAX_RANK); return NULL; }
    int64_t dims[IR_MAX_RANK];
    for (size_t i = 0; i < tp->n_dims; i++) dims[i] = tp->dims[i];
    int64_t numel = dims_numel_checked((int)tp->n_dims, dims);
    size_t es = dtype_size(dt), bytes;
    if (numel < 0 || __builtin_mul_overflow((size_t)numel, es, &bytes)) {
        fail(im, "tensor '%s': invalid or overflowing dims", name);
        return NULL;
    }
    if (tp->segment) { fail(im, "tensor '%s': segmented tensors are not supported", name); return NULL; }
    if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        const char *loc = NULL;
        uint64_t off = 0, len = UINT64_MAX;
        for (size_t i = 0; i < tp->n_external_data; i++) {
            const char *k = tp->external_data[i]->key, *v = tp->external_data[i]->value;
            if (!k || !v) continue;
            if (strcmp(k, "location") == 0) loc = v;
            else if (strcmp(k, "offset") == 0 && parse_u64(v, &off)) { fail(im, "tensor '%s': bad external offset '%s'", name, v); return NULL; }
            else if (strcmp(k, "length") == 0 && parse_u64(v, &len)) { fail(im, "tensor '%s': bad external length '%s'", name, v); return NULL; }
        }
        if (!loc) { fail(im, "tensor '%s': external data without a location", name); return NULL; }
        void *addr = NULL;
        size_t flen = 0;
        if (map_external(im, loc, &addr, &flen)) return NULL;
        if (len == UINT64_MAX) len = bytes;
        if (len != bytes || off > flen || bytes > flen - off) {
            fail(im, "tensor '%s': external data needs %zu bytes at offset %llu of '%s' (%zu bytes, length field %llu)",
                 name, bytes, (unsigned long long)off, loc, flen, (unsigned long long)len);
            return NULL;
        }
        char *p = (char *)addr + off;
        if (((uintptr_t)p % (es ? es : 1)) == 0) return tensor_borrow(dt, (int)tp->n_dims, dims, p);
        Tensor *t = tensor_new(dt, (int)tp->n_dims, dims);
        if (t) memcpy(t->data, p, bytes);
        return t;
    }
    if (tp->has_raw_data) {
        if (tp->raw_data.len != bytes) {
            fail(im, "tensor '%s': raw_data holds %zu bytes, dims need %zu", name, tp->raw_data.len, bytes);
            return NULL;
        }
        /* protobuf-c's allocations are malloc-aligned, fine for any dtype */
        return tensor_borrow(dt, (int)tp->n_dims, dims, tp->raw_data.data);
    }
    size_t have;
    switch (dt) {
    case DT_F32: have = tp->n_float_data; break;
    case DT_F64: have = tp->n_double_data; break;
    case DT_I64: have = tp->n_int64_data; break;
    default: have = tp->n_int32_data; break;
    }
    if (have != (size_t)numel) { /* checked before allocating: the dims are the file's claim */
        fail(im, "tensor '%s': %zu values stored, dims need %lld", name, have, (long long)numel);
        return NULL;
    }
    Tensor *t = tensor_new(dt, (int)tp->n_dims, dims);
    if (!t) { fail(im, "tensor '%s': cannot allocate %zu bytes", name, bytes); return NULL; }
    for (int64_t i = 0; i < numel; i++) {
        switch (dt) {
        case DT_F32: ((float *)t->data)[i] = tp->float_data[i]; break;
        case DT_F64: ((double *)t->data)[i] = tp->double_data[i]; break;
        case DT_I64: ((int64_t *)t->data)[i] = tp->int64_data[i]; break;
        case DT_I32: ((int32_t *)t->data)[i] = tp->int32_data[i]; break;
        case DT_F16: case DT_BF16: ((uint16_t *)t->data)[i] = (uint16_t)tp->int32_data[i]; break;
        default: ((uint8_t *)t->data)[i] = (uint8_t)tp->int32_data[i]; break;
        }
    }
    return t;
}

/* An initializer whose raw_data was split off before decoding. */
static Tensor *convert_split_payload(Importer *im, const Onnx__TensorProto *tp, const PayloadRef *ref)
{
    const char *name = str_or(tp->name, "initializer");
    if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        fail(im, "tensor '%s': both inline and external data", name);
        return NULL;
    }
    DType dt = dtype_from_onnx(tp->data_type);
    size_t es = dtype_size(dt), bytes;
    if (dt == DT_UNDEF) { fail(im, "tensor '%s': unsupported data type %d", name, (int)tp->data_type); return NULL; }
    if (tp->n_dims > IR_MAX_RANK) { fail(im, "tensor '%s': rank %zu above %d", name, tp->n_dims, IR_MAX_RANK); return NULL; }
    int64_t dims[IR_MAX_RANK];
    for (size_t i = 0; i < tp->n_dims; i++) dims[i] = tp->dims[i];
    int64_t numel = dims_numel_checked((int)tp->n_dims, dims);
    if (numel < 0 || __builtin_mul_overflow((size_t)numel, es, &bytes)) {
        fail(im, "tensor '%s': invalid or overflowing dims", name);
        return NULL;
    }
    if (ref->len != bytes || ref->offset > im->payload_len || ref->len > im->payload_len - ref->offset) {
        fail(im, "tensor '%s': raw_data holds %zu bytes, dims need %zu", name, ref->len, bytes);
        return NULL;
    }
    const uint8_t *src = im->payload_base + ref->offset;
    if (im->borrow_payloads && (uintptr_t)src % es == 0) {
        im->borrowed_any = 1;
        return tensor_borrow(dt, (int)tp->n_dims, dims, (void *)src);
    }
    Tensor *t = tensor_new(dt, (int)tp->n_dims, dims);
    if (!t) { fail(im, "tensor '%s': cannot allocate %zu bytes", name, bytes); return NULL; }
    memcpy(t->data, src, bytes);
    if (im->borrow_payloads) { /* drop the file pages only this payload used */
        uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), lo = ((uintptr_t)src + pg - 1) & ~(pg - 1),
                  hi = ((uintptr_t)src + bytes) & ~(pg - 1);
        if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
    }
    return t;
}

static int convert_attr(Importer *im, const Node *n, Attr *a, const Onnx__AttributeProto *ap)
{
    const char *nn = n->name;
    switch (ap->type) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: a->type = ATTR_INT; a->i = ap->i; return 0;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: a->type = ATTR_FLOAT; a->f = ap->f; return 0;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING:
        a->type = ATTR_STRING;
        a->s = malloc(ap->s.len + 1);
        if (!a->s) return fail(im, "out of memory");
        if (ap->s.len) memcpy(a->s, ap->s.data, ap->s.len);
        a->s[ap->s.len] = 0;
        return 0;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
        a->type = ATTR_INTS;
        if (ap->n_ints > (1u << 20)) return fail(im, "node '%s': attribute '%s' too long", nn, a->name);
        a->n = (int)ap->n_ints;
        a->ints = malloc(sizeof(int64_t) * (ap->n_ints + 1));
        if (!a->ints) return fail(im, "out of memory");
        if (ap->n_ints) memcpy(a->ints, ap->ints, sizeof(int64_t) * ap->n_ints);
        return 0;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
        a->type = ATTR_FLOATS;
        if (ap->n_floats > (1u << 20)) return fail(im, "node '%s': attribute '%s' too long", nn, a->name);
        a->n = (int)ap->n_floats;
        a->floats = malloc(sizeof(float) * (ap->n_floats + 1));
        if (!a->floats) return fail(im, "out of memory");
        if (ap->n_floats) memcpy(a->floats, ap->floats, sizeof(float) * ap->n_floats);
        return 0;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS:
        a->type = ATTR_STRINGS;
        if (ap->n_strings > (1u << 16)) return fail(im, "node '%s': attribute '%s' too long", nn, a->name);
        a->strings = calloc(ap->n_strings + 1, sizeof(char *));
        if (!a->strings) return fail(im, "out of memory");
        for (size_t i = 0; i < ap->n_strings; i++) {
            a->strings[i] = malloc(ap->strings[i].len + 1);
            if (!a->strings[i]) return fail(im, "out of memory");
            if (ap->strings[i].len) memcpy(a->strings[i], ap->strings[i].data, ap->strings[i].len);
            a->strings[i][ap->strings[i].len] = 0;
            a->n = (int)i + 1;
        }
        return 0;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR: {
        if (!ap->t) return fail(im, "node '%s': attribute '%s' has no tensor", nn, a->name);
        Tensor *t = convert_tensor(im, ap->t, a->name);
        if (!t) return -1;
        a->type = ATTR_TENSOR;
        a->t = tensor_copy(t); /* attributes own their data */
        tensor_free(t);
        return a->t ? 0 : fail(im, "out of memory");
    }
    default:
        return fail(im, "node '%s': attribute '%s' has unsupported type %d (graphs, sparse tensors and type protos are not supported)",
                    nn, a->name, (int)ap->type);
    }
}

static int convert_type(Importer *im, Value *v, const Onnx__TypeProto *tp)
{
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return fail(im, "value '%s': only tensor types are supported", v->name);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    v->dtype = dtype_from_onnx(tt->elem_type);
    if (v->dtype == DT_UNDEF) return fail(im, "value '%s': unsupported element type %d", v->name, (int)tt->elem_type);
    if (!tt->shape) { v->shape.rank = -1; return 0; }
    if (tt->shape->n_dim > IR_MAX_RANK) return fail(im, "value '%s': rank %zu above %d", v->name, tt->shape->n_dim, IR_MAX_RANK);
    v->shape.rank = (int)tt->shape->n_dim;
    for (size_t i = 0; i < tt->shape->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            if (d->dim_value < 0) return fail(im, "value '%s': negative dim %lld", v->name, (long long)d->dim_value);
            v->shape.d[i] = dim_const(d->dim_value);
        } else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && d->dim_param && *d->dim_param) {
            int s = graph_intern_sym(im->g, d->dim_param);
            if (s < 0) return fail(im, "out of memory");
            v->shape.d[i] = (Dim){1, s};
        } else {
            /* an anonymous dynamic dim: give it a name so it can still bind */
            char nm[300];
            snprintf(nm, sizeof nm, "%s_dim%zu", v->name, i);
            int s = graph_intern_sym(im->g, nm);
            if (s < 0) return fail(im, "out of memory");
            v->shape.d[i] = (Dim){1, s};
        }
    }
    return 0;
}

static Value *define(Importer *im, const char *name, const char *what)
{
    if (!name || !*name) { fail(im, "%s with an empty name", what); return NULL; }
    if (name_map_get(&im->names, name)) { fail(im, "value '%s' is defined twice (%s)", name, what); return NULL; }
    Value *v = graph_new_value(im->g, name);
    if (!v || name_map_put(&im->names, v->name, v)) { fail(im, "out of memory"); return NULL; }
    return v;
}

static int import_graph(Importer *im, const Onnx__GraphProto *gp)
{
    Graph *g = im->g;
    for (size_t i = 0; i < gp->n_initializer; i++) {
        const Onnx__TensorProto *tp = gp->initializer[i];
        Value *v = define(im, tp->name, "initializer");
        if (!v) return -1;
        Tensor *t;
        if (im->next_ref < im->n_refs && im->refs[im->next_ref].initializer == i)
            t = convert_split_payload(im, tp, &im->refs[im->next_ref++]);
        else t = convert_tensor(im, tp, "initializer");
        if (!t) return -1;
        value_set_const(v, t);
    }
    if (gp->n_sparse_initializer) return fail(im, "sparse initializers are not supported");
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        Value *v = name_map_get(&im->names, str_or(vi->name, ""));
        if (v && v->konst) continue; /* old exporters list initializers as inputs */
        v = define(im, vi->name, "graph input");
        if (!v || convert_type(im, v, vi->type) || graph_add_input(g, v)) return -1;
    }
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        char autoname[64];
        snprintf(autoname, sizeof autoname, "node%zu", i);
        const char *nname = str_or(np->name, autoname);
        const char *dom = np->domain ? np->domain : "";
        const char *opname = np->op_type ? np->op_type : "";
        int op = op_lookup(dom, opname);
        if (op < 0) {
            int64_t ver = 0;
            const char *d = (!*dom || strcmp(dom, "ai.onnx") == 0) ? "" : dom;
            for (int k = 0; k < g->n_opsets; k++)
                if (strcmp(g->opsets[k].domain, d) == 0) ver = g->opsets[k].version;
            return fail(im, "unsupported op '%s' (node '%s', domain '%s', opset %lld)", opname, nname,
                        *dom ? dom : "ai.onnx", (long long)ver);
        }
        if (np->n_input > 64 || np->n_output > 8)
            return fail(im, "node '%s' (%s): too many inputs or outputs", nname, opname);
        Value *ins[64], *outs[8];
        for (size_t k = 0; k < np->n_input; k++) {
            const char *in = np->input[k];
            ins[k] = NULL;
            if (!in || !*in) continue;
            ins[k] = name_map_get(&im->names, in);
            if (!ins[k]) return fail(im, "node '%s' (%s): input '%s' is not defined before use", nname, opname, in);
        }
        for (size_t k = 0; k < np->n_output; k++) {
            outs[k] = NULL;
            if (!np->output[k] || !*np->output[k]) {
                /* an unused optional output still needs a value to land in */
                char nm[128];
                snprintf(nm, sizeof nm, "%s_unused_out%zu", nname, k);
                char *u = graph_unique_name(g, nm);
                outs[k] = u ? define(im, u, "node output") : NULL;
                free(u);
            } else outs[k] = define(im, np->output[k], "node output");
            if (!outs[k]) return -1;
        }
        int n_in = (int)np->n_input;
        if (op != OP_CONCAT && n_in > 16) return fail(im, "node '%s' (%s): too many inputs", nname, opname);
        if (n_in > 16) return fail(im, "node '%s' (Concat): more than 16 inputs are not supported", nname);
        Node *n = graph_add_node(g, op, nname, n_in, ins, (int)np->n_output, outs);
        if (!n) return fail(im, "out of memory");
        free(n->domain);
        n->domain = strdup(dom);
        for (size_t k = 0; k < np->n_attribute; k++) {
            const Onnx__AttributeProto *ap = np->attribute[k];
            if (ap->ref_attr_name && *ap->ref_attr_name) return fail(im, "node '%s': attribute references are not supported", nname);
            Attr *a = node_add_attr(n, str_or(ap->name, "?"), ATTR_INT);
            if (!a) return fail(im, "out of memory");
            if (convert_attr(im, n, a, ap)) return -1;
        }
    }
    for (size_t i = 0; i < gp->n_output; i++) {
        const Onnx__ValueInfoProto *vi = gp->output[i];
        Value *v = name_map_get(&im->names, str_or(vi->name, ""));
        if (!v) return fail(im, "graph output '%s' is never computed", str_or(vi->name, ""));
        if (graph_add_output(g, v)) return fail(im, "out of memory");
    }
    if (!g->n_outputs) return fail(im, "graph has no outputs");
    return 0;
}

static void free_model(void *p) { onnx__model_proto__free_unpacked(p, NULL); }

#define SPLIT_THRESHOLD 4096 /* payloads at least this large bypass protobuf-c */

/* borrow: data is a mapping that the graph may keep (ownership passes to the
 * graph when a tensor borrows from it; *kept says so). */
static Graph *load_impl(const void *data, size_t len, const char *name, const char *base_dir, int borrow,
                        int *kept, char *err, size_t cap)
{
    Importer im = {.file = name, .base_dir = base_dir, .err = err, .cap = cap};
    char why[IR_ERR_CAP];
    PayloadSplit split;
    *kept = 0;
    if (len == 0) { fail(&im, "empty file"); return NULL; }
    if (proto_guard_check(data, len, why, sizeof why)) { fail(&im, "not a valid ONNX model: %s", why); return NULL; }
    if (payload_split(data, len, SPLIT_THRESHOLD, &split)) { fail(&im, "not a valid ONNX model (or out of memory)"); return NULL; }
    im.payload_base = data;
    im.payload_len = len;
    im.refs = split.refs;
    im.n_refs = split.n_refs;
    im.borrow_payloads = borrow;
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, split.len, split.bytes);
    free(split.bytes);
    split.bytes = NULL;
    if (!mp) { payload_split_free(&split); fail(&im, "not a valid ONNX model (protobuf decoding failed: truncated or corrupt)"); return NULL; }
    if (!mp->graph) { onnx__model_proto__free_unpacked(mp, NULL); fail(&im, "model has no graph"); return NULL; }
    im.g = graph_new(str_or(mp->graph->name, "graph"));
    if (!im.g) { onnx__model_proto__free_unpacked(mp, NULL); fail(&im, "out of memory"); return NULL; }
    Graph *g = im.g;
    g->keepalive = mp;
    g->keepalive_free = free_model;
    g->source_path = strdup(name);
    g->producer = strdup(str_or(mp->producer_name, ""));
    g->ir_version = mp->ir_version;
    g->opsets = calloc(mp->n_opset_import + 1, sizeof(OpsetId));
    for (size_t i = 0; g->opsets && i < mp->n_opset_import; i++) {
        const char *d = str_or(mp->opset_import[i]->domain, "");
        if (strcmp(d, "ai.onnx") == 0) d = "";
        g->opsets[g->n_opsets].domain = strdup(d);
        g->opsets[g->n_opsets++].version = mp->opset_import[i]->version;
        if (!*d) g->opset = (int)mp->opset_import[i]->version;
    }
    int rc = -1;
    if (!g->opsets) fail(&im, "out of memory");
    else if (mp->n_functions) fail(&im, "model-local functions are not supported (%zu defined); inline them first", mp->n_functions);
    else if (g->opset <= 0) fail(&im, "no default-domain opset import");
    else if (g->opset < 7 || g->opset > 23) fail(&im, "opset %d is outside the supported range 7..23", g->opset);
    else if (import_graph(&im, mp->graph) == 0) {
        char msg[IR_ERR_CAP];
        if (infer_graph(g, msg, sizeof msg)) fail(&im, "%s", msg);
        else rc = 0;
    }
    name_map_free(&im.names);
    for (int i = 0; i < im.n_ext; i++) free(im.ext[i].location);
    payload_split_free(&split);
    if (rc) { graph_free(g); return NULL; }
    if (im.borrowed_any && graph_add_mapping(g, (void *)data, len) == 0) *kept = 1;
    else if (im.borrowed_any) { graph_free(g); snprintf(err, cap, "%s: out of memory", name); return NULL; }
    return g;
}

Graph *onnx_load_bytes(const void *data, size_t len, const char *name, const char *base_dir,
                       char *err, size_t cap)
{
    int kept;
    return load_impl(data, len, name, base_dir, 0, &kept, err, cap);
}

Graph *onnx_load(const char *path, char *err, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, cap, "%s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) { close(fd); snprintf(err, cap, "%s: not a regular file", path); return NULL; }
    if (st.st_size == 0) { close(fd); snprintf(err, cap, "%s: empty file", path); return NULL; }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) { snprintf(err, cap, "%s: cannot map: %s", path, strerror(errno)); return NULL; }
    char *dup = strdup(path);
    char *dir = dup ? dirname(dup) : NULL;
    int kept = 0;
    Graph *g = dir ? load_impl(p, (size_t)st.st_size, path, dir, 1, &kept, err, cap) : NULL;
    if (!dir) snprintf(err, cap, "out of memory");
    free(dup);
    if (!kept) munmap(p, (size_t)st.st_size); /* nothing borrows from it */
    return g;
}
