/* export.c — IR Graph -> ONNX ModelProto.
 *
 * Initializers point at the IR's tensor data (no copies); the packed model is
 * streamed to OUT.tmp.PID and renamed into place, so a failed write (a full
 * disk) never leaves a half-written model under the real name.  Large
 * weights go to an external-data file next to the model.  Symbolic dims
 * become dim_param, and every typed intermediate gets a value_info so that
 * Netron shows shapes.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "onnx.pb-c.h"
#include "onnx_io.h"
#include "../ir/ops.h"
#include "../ir/base.h"

#define EXTERNAL_THRESHOLD ((size_t)1 << 30)
#define EXTERNAL_ALIGN 4096

/* All allocations for one export, freed together. */
typedef struct { void **p; size_t n, cap; } Arena;

static void *arena_alloc(Arena *a, size_t bytes)
{
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 256;
        void **np = realloc(a->p, nc * sizeof *np);
        if (!np) return NULL;
        a->p = np;
        a->cap = nc;
    }
    void *m = calloc(1, bytes ? bytes : 1);
    if (m) a->p[a->n++] = m;
    return m;
}

static char *arena_str(Arena *a, const char *s)
{
    size_t l = strlen(s);
    char *d = arena_alloc(a, l + 1);
    if (d) memcpy(d, s, l + 1);
    return d;
}

static void arena_free(Arena *a)
{
    for (size_t i = 0; i < a->n; i++) free(a->p[i]);
    free(a->p);
}

typedef struct {
    const Graph *g;
    Arena a;
    FILE *ext;               /* external data file, when used */
    const char *ext_name;    /* its location relative to the model */
    size_t ext_off;
    char *err;
    size_t cap;
    int oom;
} Exporter;

#define NEW(ex, T) ((T *)arena_alloc(&(ex)->a, sizeof(T)))

static Onnx__TypeProto *make_type(Exporter *ex, const Value *v)
{
    Onnx__TypeProto *tp = NEW(ex, Onnx__TypeProto);
    Onnx__TypeProto__Tensor *tt = NEW(ex, Onnx__TypeProto__Tensor);
    if (!tp || !tt) { ex->oom = 1; return NULL; }
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = dtype_to_onnx(v->dtype);
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    if (v->shape.rank < 0) return tp;
    Onnx__TensorShapeProto *sp = NEW(ex, Onnx__TensorShapeProto);
    Onnx__TensorShapeProto__Dimension **dims = arena_alloc(&ex->a, sizeof(void *) * (size_t)(v->shape.rank + 1));
    if (!sp || !dims) { ex->oom = 1; return NULL; }
    onnx__tensor_shape_proto__init(sp);
    sp->n_dim = (size_t)v->shape.rank;
    sp->dim = dims;
    for (int i = 0; i < v->shape.rank; i++) {
        Onnx__TensorShapeProto__Dimension *d = NEW(ex, Onnx__TensorShapeProto__Dimension);
        if (!d) { ex->oom = 1; return NULL; }
        onnx__tensor_shape_proto__dimension__init(d);
        Dim x = v->shape.d[i];
        if (dim_is_const(x)) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = x.n;
        } else if (x.sym >= 0) {
            char buf[300];
            dim_format(ex->g, x, buf, sizeof buf);
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = arena_str(&ex->a, buf);
        }
        dims[i] = d;
    }
    tt->shape = sp;
    return tp;
}

static Onnx__ValueInfoProto *make_value_info(Exporter *ex, const Value *v)
{
    Onnx__ValueInfoProto *vi = NEW(ex, Onnx__ValueInfoProto);
    if (!vi) { ex->oom = 1; return NULL; }
    onnx__value_info_proto__init(vi);
    vi->name = arena_str(&ex->a, v->name);
    vi->type = make_type(ex, v);
    return vi;
}

static int write_external(Exporter *ex, Onnx__TensorProto *tp, const Tensor *t)
{
    static const char zeros[EXTERNAL_ALIGN];
    size_t pad = (EXTERNAL_ALIGN - ex->ext_off % EXTERNAL_ALIGN) % EXTERNAL_ALIGN;
    if ((pad && fwrite(zeros, 1, pad, ex->ext) != pad) ||
        (t->nbytes && fwrite(t->data, 1, t->nbytes, ex->ext) != t->nbytes)) {
        snprintf(ex->err, ex->cap, "writing external data: %s", strerror(errno));
        return -1;
    }
    ex->ext_off += pad;
    Onnx__StringStringEntryProto **kv = arena_alloc(&ex->a, sizeof(void *) * 3);
    if (!kv) { ex->oom = 1; return -1; }
    const char *keys[3] = {"location", "offset", "length"};
    char vals[3][64];
    snprintf(vals[1], sizeof vals[1], "%zu", ex->ext_off);
    snprintf(vals[2], sizeof vals[2], "%zu", t->nbytes);
    for (int i = 0; i < 3; i++) {
        kv[i] = NEW(ex, Onnx__StringStringEntryProto);
        if (!kv[i]) { ex->oom = 1; return -1; }
        onnx__string_string_entry_proto__init(kv[i]);
        kv[i]->key = arena_str(&ex->a, keys[i]);
        kv[i]->value = arena_str(&ex->a, i == 0 ? ex->ext_name : vals[i]);
    }
    tp->n_external_data = 3;
    tp->external_data = kv;
    tp->has_data_location = 1;
    tp->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    ex->ext_off += t->nbytes;
    return 0;
}

static Onnx__TensorProto *make_tensor(Exporter *ex, const char *name, const Tensor *t, int allow_external)
{
    Onnx__TensorProto *tp = NEW(ex, Onnx__TensorProto);
    int64_t *dims = arena_alloc(&ex->a, sizeof(int64_t) * (size_t)(t->rank + 1));
    if (!tp || !dims) { ex->oom = 1; return NULL; }
    onnx__tensor_proto__init(tp);
    tp->name = arena_str(&ex->a, name);
    tp->has_data_type = 1;
    tp->data_type = dtype_to_onnx(t->dtype);
    tp->n_dims = (size_t)t->rank;
    memcpy(dims, t->dims, sizeof(int64_t) * (size_t)t->rank);
    tp->dims = dims;
    if (allow_external && ex->ext && t->nbytes >= 1024) {
        if (write_external(ex, tp, t)) return NULL;
        return tp;
    }
    tp->has_raw_data = 1;
    tp->raw_data.len = t->nbytes;
    tp->raw_data.data = t->data; /* borrowed: packed straight from the IR */
    return tp;
}

static Onnx__AttributeProto *make_attr(Exporter *ex, const Attr *at)
{
    Onnx__AttributeProto *ap = NEW(ex, Onnx__AttributeProto);
    if (!ap) { ex->oom = 1; return NULL; }
    onnx__attribute_proto__init(ap);
    ap->name = arena_str(&ex->a, at->name);
    ap->has_type = 1;
    switch (at->type) {
    case ATTR_INT: ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT; ap->has_i = 1; ap->i = at->i; break;
    case ATTR_FLOAT: ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT; ap->has_f = 1; ap->f = at->f; break;
    case ATTR_STRING:
        ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
        ap->has_s = 1;
        ap->s.data = (uint8_t *)at->s;
        ap->s.len = strlen(at->s);
        break;
    case ATTR_INTS: ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS; ap->n_ints = (size_t)at->n; ap->ints = at->ints; break;
    case ATTR_FLOATS: ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS; ap->n_floats = (size_t)at->n; ap->floats = at->floats; break;
    case ATTR_STRINGS: {
        ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS;
        ProtobufCBinaryData *s = arena_alloc(&ex->a, sizeof *s * (size_t)(at->n + 1));
        if (!s) { ex->oom = 1; return NULL; }
        for (int i = 0; i < at->n; i++) { s[i].data = (uint8_t *)at->strings[i]; s[i].len = strlen(at->strings[i]); }
        ap->n_strings = (size_t)at->n;
        ap->strings = s;
        break;
    }
    case ATTR_TENSOR:
        ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
        ap->t = make_tensor(ex, "", at->t, 0);
        if (!ap->t) return NULL;
        break;
    }
    return ap;
}

typedef struct { ProtobufCBuffer base; FILE *f; int failed; } FileBuffer;

static void file_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
    FileBuffer *fb = (FileBuffer *)b;
    if (!fb->failed && len && fwrite(data, 1, len, fb->f) != len) fb->failed = 1;
}

static int build_and_write(Exporter *ex, FILE *out, const OnnxSaveOptions *opt)
{
    const Graph *g = ex->g;
    Onnx__ModelProto mp;
    Onnx__GraphProto gp;
    onnx__model_proto__init(&mp);
    onnx__graph_proto__init(&gp);
    mp.has_ir_version = 1;
    mp.ir_version = g->ir_version > 8 ? g->ir_version : 8;
    mp.producer_name = arena_str(&ex->a, opt && opt->producer ? opt->producer : "vclip");
    mp.graph = &gp;
    gp.name = arena_str(&ex->a, g->name);
    /* opsets: the graph's, plus version 1 of any op domain not yet listed (ai.vclip) */
    mp.opset_import = arena_alloc(&ex->a, sizeof(void *) * (size_t)(g->n_opsets + OP_COUNT + 1));
    if (!mp.opset_import) return ex->oom = 1, -1;
    for (int i = 0; i < g->n_opsets + g->n_nodes; i++) {
        const char *dom = i < g->n_opsets ? g->opsets[i].domain : op_table[g->nodes[i - g->n_opsets]->op].domain;
        int64_t ver = i < g->n_opsets ? (*dom ? g->opsets[i].version : g->opset) : (*dom ? 1 : g->opset);
        int seen = 0;
        for (size_t k = 0; k < mp.n_opset_import; k++) if (strcmp(mp.opset_import[k]->domain, dom) == 0) seen = 1;
        if (seen) continue;
        Onnx__OperatorSetIdProto *os = NEW(ex, Onnx__OperatorSetIdProto);
        if (!os) return ex->oom = 1, -1;
        onnx__operator_set_id_proto__init(os);
        os->domain = arena_str(&ex->a, dom);
        os->has_version = 1;
        os->version = ver;
        mp.opset_import[mp.n_opset_import++] = os;
    }
    int *uses = graph_use_counts(g);
    size_t n_init = 0, n_vi = 0;
    gp.initializer = arena_alloc(&ex->a, sizeof(void *) * (size_t)(g->n_values + 1));
    gp.value_info = arena_alloc(&ex->a, sizeof(void *) * (size_t)(g->n_values + 1));
    gp.node = arena_alloc(&ex->a, sizeof(void *) * (size_t)(g->n_nodes + 1));
    gp.input = arena_alloc(&ex->a, sizeof(void *) * (size_t)(g->n_inputs + 1));
    gp.output = arena_alloc(&ex->a, sizeof(void *) * (size_t)(g->n_outputs + 1));
    if (!uses || !gp.initializer || !gp.value_info || !gp.node || !gp.input || !gp.output) { free(uses); return ex->oom = 1, -1; }
    for (int i = 0; i < g->n_values; i++) {
        const Value *v = g->values[i];
        if (v->konst && uses[i]) {
            Onnx__TensorProto *tp = make_tensor(ex, v->name, v->konst, 1);
            if (!tp) { free(uses); return -1; }
            gp.initializer[n_init++] = tp;
        } else if (!v->konst && !v->is_input && !v->is_output && v->producer && v->dtype != DT_UNDEF) {
            gp.value_info[n_vi++] = make_value_info(ex, v);
        }
    }
    free(uses);
    gp.n_initializer = n_init;
    gp.n_value_info = n_vi;
    for (int i = 0; i < g->n_inputs; i++) gp.input[gp.n_input++] = make_value_info(ex, g->inputs[i]);
    for (int i = 0; i < g->n_outputs; i++) gp.output[gp.n_output++] = make_value_info(ex, g->outputs[i]);
    for (int i = 0; i < g->n_nodes; i++) {
        const Node *n = g->nodes[i];
        Onnx__NodeProto *np = NEW(ex, Onnx__NodeProto);
        char **ins = arena_alloc(&ex->a, sizeof(char *) * (size_t)(n->n_in + 1));
        char **outs = arena_alloc(&ex->a, sizeof(char *) * (size_t)(n->n_out + 1));
        Onnx__AttributeProto **attrs = arena_alloc(&ex->a, sizeof(void *) * (size_t)(n->n_attrs + 1));
        if (!np || !ins || !outs || !attrs) return ex->oom = 1, -1;
        onnx__node_proto__init(np);
        np->name = arena_str(&ex->a, n->name);
        np->op_type = arena_str(&ex->a, op_table[n->op].name);
        np->domain = arena_str(&ex->a, op_table[n->op].domain);
        for (int k = 0; k < n->n_in; k++) ins[k] = arena_str(&ex->a, n->in[k] ? n->in[k]->name : "");
        for (int k = 0; k < n->n_out; k++) outs[k] = arena_str(&ex->a, n->out[k] ? n->out[k]->name : "");
        for (int k = 0; k < n->n_attrs; k++) if (!(attrs[k] = make_attr(ex, &n->attrs[k]))) return -1;
        np->n_input = (size_t)n->n_in;
        np->input = ins;
        np->n_output = (size_t)n->n_out;
        np->output = outs;
        np->n_attribute = (size_t)n->n_attrs;
        np->attribute = attrs;
        gp.node[gp.n_node++] = np;
    }
    if (ex->oom) return -1;
    FileBuffer fb = {{file_append}, out, 0};
    protobuf_c_message_pack_to_buffer(&mp.base, &fb.base);
    if (fb.failed) { snprintf(ex->err, ex->cap, "write failed: %s", strerror(errno)); return -1; }
    return 0;
}

int onnx_save(const Graph *g, const char *path, const OnnxSaveOptions *opt, char *err, size_t cap)
{
    Exporter ex = {.g = g, .err = err, .cap = cap};
    char ext_path[4096], msg[IR_ERR_CAP] = "";
    ex.err = msg;
    ex.cap = sizeof msg;
    size_t total = 0;
    for (int i = 0; i < g->n_values; i++) if (g->values[i]->konst) total += g->values[i]->konst->nbytes;
    int mode = opt ? opt->external_data : -1;
    int use_ext = mode == 1 || (mode < 0 && total > EXTERNAL_THRESHOLD);
    snprintf(ext_path, sizeof ext_path, "%s.data", path);
    char *base = strdup(ext_path);
    ex.ext_name = base ? basename(base) : "model.data";
    AtomicFile out, ext;
    if (atomic_open(&out, path, "wb", err, cap)) { free(base); return -1; }
    if (use_ext) {
        if (atomic_open(&ext, ext_path, "wb", err, cap)) { atomic_abort(&out); free(base); return -1; }
        ex.ext = ext.f;
    }
    int rc = -1;
    /* the data file first: the model never names data that is not complete */
    if (build_and_write(&ex, out.f, opt)) {
        snprintf(err, cap, "%s: %s", path, ex.oom ? "out of memory" : *msg ? msg : strerror(errno));
        atomic_abort(&out);
        if (use_ext) atomic_abort(&ext);
    } else if (use_ext && atomic_commit(&ext, err, cap)) {
        atomic_abort(&out);
    } else rc = atomic_commit(&out, err, cap);
    arena_free(&ex.a);
    free(base);
    return rc;
}
