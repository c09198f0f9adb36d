/* graph.c — building and editing graphs: values, nodes, attributes, uses. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <sys/mman.h>
#include "ir.h"
#include "name_map.h"

static char *xstrdup(const char *s) { return strdup(s ? s : ""); }

Graph *graph_new(const char *name)
{
    Graph *g = calloc(1, sizeof *g);
    if (g) g->name = xstrdup(name);
    return g;
}

void attr_clear(Attr *a)
{
    free(a->name);
    free(a->s);
    free(a->ints);
    free(a->floats);
    for (int i = 0; a->strings && i < a->n; i++) free(a->strings[i]);
    free(a->strings);
    tensor_free(a->t);
    memset(a, 0, sizeof *a);
}

static void node_free(Node *n)
{
    free(n->name);
    free(n->domain);
    free(n->in);
    free(n->out);
    for (int i = 0; i < n->n_attrs; i++) attr_clear(&n->attrs[i]);
    free(n->attrs);
    free(n);
}

void graph_free(Graph *g)
{
    if (!g) return;
    for (int i = 0; i < g->n_nodes; i++) node_free(g->nodes[i]);
    for (int i = 0; i < g->n_values; i++) {
        free(g->values[i]->name);
        tensor_free(g->values[i]->konst);
        free(g->values[i]);
    }
    for (int i = 0; i < g->n_syms; i++) free(g->syms[i]);
    if (g->keepalive_free) g->keepalive_free(g->keepalive);
    for (int i = 0; i < g->n_maps; i++) munmap(g->maps[i].addr, g->maps[i].len);
    for (int i = 0; i < g->n_opsets; i++) free(g->opsets[i].domain);
    free(g->opsets);
    free(g->maps);
    free(g->syms);
    free(g->nodes);
    free(g->values);
    free(g->inputs);
    free(g->outputs);
    free(g->name);
    free(g->source_path);
    free(g->producer);
    free(g);
}

static int grow(void **arr, int *cap, int need, size_t elem)
{
    if (need <= *cap) return 0;
    int nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    void *p = realloc(*arr, (size_t)nc * elem);
    if (!p) return -1;
    *arr = p;
    *cap = nc;
    return 0;
}

Value *graph_new_value(Graph *g, const char *name)
{
    if (grow((void **)&g->values, &g->cap_values, g->n_values + 1, sizeof(Value *))) return NULL;
    Value *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->name = xstrdup(name);
    v->shape.rank = -1;
    v->n_known = -1;
    v->id = g->n_values;
    g->values[g->n_values++] = v;
    return v;
}

Value *graph_find_value(const Graph *g, const char *name)
{
    for (int i = 0; i < g->n_values; i++)
        if (strcmp(g->values[i]->name, name) == 0) return g->values[i];
    return NULL;
}

static int node_name_used(const Graph *g, const char *name)
{
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->op >= 0 && strcmp(g->nodes[i]->name, name) == 0) return 1;
    return 0;
}

char *graph_unique_name(const Graph *g, const char *base)
{
    char buf[512];
    for (int k = 0;; k++) {
        snprintf(buf, sizeof buf, k ? "%s_%d" : "%s", base, k);
        if (!graph_find_value(g, buf) && !node_name_used(g, buf)) return strdup(buf);
    }
}

int graph_intern_sym(Graph *g, const char *name)
{
    for (int i = 0; i < g->n_syms; i++)
        if (strcmp(g->syms[i], name) == 0) return i;
    char **p = realloc(g->syms, sizeof(char *) * (size_t)(g->n_syms + 1));
    if (!p) return -1;
    g->syms = p;
    g->syms[g->n_syms] = xstrdup(name);
    return g->n_syms++;
}

Node *graph_add_node(Graph *g, int op, const char *name, int n_in, Value **in,
                     int n_out, Value **out)
{
    if (grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof(Node *))) return NULL;
    Node *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->op = op;
    n->name = xstrdup(name);
    n->domain = xstrdup("");
    n->n_in = n_in;
    n->n_out = n_out;
    n->in = calloc((size_t)(n_in ? n_in : 1), sizeof(Value *));
    n->out = calloc((size_t)(n_out ? n_out : 1), sizeof(Value *));
    if (!n->in || !n->out) { node_free(n); return NULL; }
    if (n_in) memcpy(n->in, in, sizeof(Value *) * (size_t)n_in);
    if (n_out) memcpy(n->out, out, sizeof(Value *) * (size_t)n_out);
    for (int i = 0; i < n_out; i++) out[i]->producer = n;
    g->nodes[g->n_nodes++] = n;
    return n;
}

static int append_value(Value ***arr, int *n, Value *v)
{
    Value **p = realloc(*arr, sizeof(Value *) * (size_t)(*n + 1));
    if (!p) return -1;
    *arr = p;
    p[(*n)++] = v;
    return 0;
}

int graph_add_input(Graph *g, Value *v) { v->is_input = 1; return append_value(&g->inputs, &g->n_inputs, v); }
int graph_add_output(Graph *g, Value *v) { v->is_output = 1; return append_value(&g->outputs, &g->n_outputs, v); }

void graph_release_pages(const Graph *g, const Tensor *t)
{
    uintptr_t lo = (uintptr_t)t->data, hi = lo + t->nbytes, page = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < g->n_maps; i++) {
        uintptr_t base = (uintptr_t)g->maps[i].addr;
        if (lo < base || hi > base + g->maps[i].len) continue;
        uintptr_t a = (lo + page - 1) / page * page, b = hi / page * page;
        if (b > a) madvise((void *)a, b - a, MADV_DONTNEED); /* read-only file pages: a later read maps them again */
        return;
    }
}

int graph_add_mapping(Graph *g, void *addr, size_t len)
{
    Mapping *p = realloc(g->maps, sizeof(Mapping) * (size_t)(g->n_maps + 1));
    if (!p) return -1;
    g->maps = p;
    g->maps[g->n_maps++] = (Mapping){addr, len};
    return 0;
}

void graph_remove_dead(Graph *g)
{
    int k = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i]->op < 0) {
            for (int j = 0; j < g->nodes[i]->n_out; j++)
                if (g->nodes[i]->out[j] && g->nodes[i]->out[j]->producer == g->nodes[i])
                    g->nodes[i]->out[j]->producer = NULL;
            node_free(g->nodes[i]);
        } else g->nodes[k++] = g->nodes[i];
    }
    g->n_nodes = k;
    /* Drop values nothing refers to any more (keeps ids dense). */
    int *used = calloc((size_t)g->n_values, sizeof(int));
    if (!used) return;
    for (int i = 0; i < g->n_nodes; i++) {
        Node *n = g->nodes[i];
        for (int j = 0; j < n->n_in; j++) if (n->in[j]) used[n->in[j]->id] = 1;
        for (int j = 0; j < n->n_out; j++) if (n->out[j]) used[n->out[j]->id] = 1;
    }
    for (int i = 0; i < g->n_inputs; i++) used[g->inputs[i]->id] = 1;
    for (int i = 0; i < g->n_outputs; i++) used[g->outputs[i]->id] = 1;
    k = 0;
    for (int i = 0; i < g->n_values; i++) {
        Value *v = g->values[i];
        if (!used[i]) { free(v->name); tensor_free(v->konst); free(v); continue; }
        v->id = k;
        g->values[k++] = v;
    }
    g->n_values = k;
    free(used);
}

/* Each node keeps its place, except that a node's producers that come
 * after it are pulled in just before it (their own producers first): a
 * graph already in order stays as it is, and a node a pass appended at the
 * end runs where it is first needed, not after everything else. */
int graph_topo_sort(Graph *g)
{
    int n = g->n_nodes, rc = -1, k = 0, depth = 0;
    int *producer = malloc(sizeof(int) * (size_t)(g->n_values ? g->n_values : 1));
    char *state = calloc((size_t)(n ? n : 1), 1); /* 0 to place, 1 pulling its producers, 2 placed */
    int *stack = malloc(sizeof(int) * (size_t)(n ? n : 1)), *cursor = malloc(sizeof(int) * (size_t)(n ? n : 1));
    Node **order = malloc(sizeof(Node *) * (size_t)(n ? n : 1));
    if (!producer || !state || !stack || !cursor || !order) goto done;
    for (int v = 0; v < g->n_values; v++) producer[v] = -1;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < g->nodes[i]->n_out; j++) if (g->nodes[i]->out[j]) producer[g->nodes[i]->out[j]->id] = i;
    for (int i = 0; i < n; i++) {
        if (state[i]) continue;
        stack[depth] = i;
        cursor[depth++] = 0;
        state[i] = 1;
        while (depth) {
            int t = stack[depth - 1];
            const Node *nd = g->nodes[t];
            int pulled = 0;
            while (cursor[depth - 1] < nd->n_in && !pulled) {
                const Value *v = nd->in[cursor[depth - 1]++];
                int p = v ? producer[v->id] : -1;
                if (p < 0 || state[p] == 2) continue;
                if (state[p] == 1) goto done; /* a cycle */
                state[p] = 1;
                stack[depth] = p;
                cursor[depth++] = 0;
                pulled = 1;
            }
            if (pulled) continue;
            state[t] = 2;
            order[k++] = g->nodes[t];
            depth--;
        }
    }
    if (n) memcpy(g->nodes, order, sizeof(Node *) * (size_t)n); /* a graph with no nodes may have no array */
    rc = 0;
done:
    free(producer);
    free(state);
    free(stack);
    free(cursor);
    free(order);
    return rc;
}

const Attr *node_attr(const Node *n, const char *name)
{
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
    return NULL;
}

int64_t node_attr_i(const Node *n, const char *name, int64_t dflt)
{
    const Attr *a = node_attr(n, name);
    return (a && a->type == ATTR_INT) ? a->i : dflt;
}

float node_attr_f(const Node *n, const char *name, float dflt)
{
    const Attr *a = node_attr(n, name);
    return (a && a->type == ATTR_FLOAT) ? a->f : dflt;
}

const char *node_attr_s(const Node *n, const char *name, const char *dflt)
{
    const Attr *a = node_attr(n, name);
    return (a && a->type == ATTR_STRING) ? a->s : dflt;
}

Attr *node_add_attr(Node *n, const char *name, AttrType type)
{
    Attr *p = realloc(n->attrs, sizeof(Attr) * (size_t)(n->n_attrs + 1));
    if (!p) return NULL;
    n->attrs = p;
    Attr *a = &p[n->n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = xstrdup(name);
    a->type = type;
    return a;
}

int node_copy_attrs(Node *dst, const Node *src)
{
    for (int i = 0; i < src->n_attrs; i++) {
        const Attr *a = &src->attrs[i];
        Attr *b = node_add_attr(dst, a->name, a->type);
        if (!b) return -1;
        b->i = a->i;
        b->f = a->f;
        b->n = a->n;
        if (a->s && !(b->s = strdup(a->s))) return -1;
        if (a->ints && a->n && !(b->ints = malloc(sizeof(int64_t) * (size_t)a->n))) return -1;
        if (b->ints) memcpy(b->ints, a->ints, sizeof(int64_t) * (size_t)a->n);
        if (a->floats && a->n && !(b->floats = malloc(sizeof(float) * (size_t)a->n))) return -1;
        if (b->floats) memcpy(b->floats, a->floats, sizeof(float) * (size_t)a->n);
        if (a->strings && a->n) {
            if (!(b->strings = calloc((size_t)a->n, sizeof(char *)))) return -1;
            for (int j = 0; j < a->n; j++) if (!(b->strings[j] = strdup(a->strings[j] ? a->strings[j] : ""))) return -1;
        }
        if (a->t && !(b->t = tensor_copy(a->t))) return -1;
    }
    return 0;
}

int *graph_use_counts(const Graph *g)
{
    int *uses = calloc((size_t)(g->n_values ? g->n_values : 1), sizeof(int));
    if (!uses) return NULL;
    for (int i = 0; i < g->n_nodes; i++)
        for (int j = 0; g->nodes[i]->op >= 0 && j < g->nodes[i]->n_in; j++)
            if (g->nodes[i]->in[j]) uses[g->nodes[i]->in[j]->id]++;
    for (int i = 0; i < g->n_outputs; i++) uses[g->outputs[i]->id]++;
    return uses;
}

void graph_replace_uses(Graph *g, Value *from, Value *to)
{
    for (int i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i]->n_in; j++)
            if (g->nodes[i]->in[j] == from) g->nodes[i]->in[j] = to;
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == from) {
            /* Graph outputs keep their public name: the replacement takes it. */
            g->outputs[i] = to;
            to->is_output = 1;
            from->is_output = 0;
            char *tmp = to->name; to->name = from->name; from->name = tmp;
        }
}

void value_set_known_from_tensor(Value *v)
{
    const Tensor *t = v->konst;
    v->n_known = -1;
    if (!t || t->rank > 1 || (t->dtype != DT_I64 && t->dtype != DT_I32)) return;
    int64_t n = tensor_numel(t);
    if (n < 0 || n > IR_MAX_KNOWN) return;
    for (int64_t i = 0; i < n; i++) v->known[i] = dim_const(tensor_get_i64(t, i));
    v->n_known = (int)n;
}

void value_set_const(Value *v, Tensor *t)
{
    tensor_free(v->konst);
    v->konst = t;
    v->dtype = t->dtype;
    v->shape.rank = t->rank;
    for (int i = 0; i < t->rank; i++) v->shape.d[i] = dim_const(t->dims[i]);
    value_set_known_from_tensor(v);
}

size_t graph_share_constants(Graph *g, const Graph *from)
{
    NameMap names = {0};
    size_t shared = 0;
    for (int i = 0; i < from->n_values; i++)
        if (from->values[i]->konst && name_map_put(&names, from->values[i]->name, from->values[i])) goto done;
    for (int i = 0; i < g->n_values; i++) {
        Value *v = g->values[i];
        const Value *w = v->konst && v->konst->buf ? name_map_get(&names, v->name) : NULL;
        const Tensor *a = v->konst, *b = w ? w->konst : NULL;
        if (!b || a->data == b->data || a->dtype != b->dtype || a->rank != b->rank || a->nbytes != b->nbytes) continue;
        if (memcmp(a->dims, b->dims, sizeof(int64_t) * (size_t)a->rank) || memcmp(a->data, b->data, a->nbytes)) continue;
        Tensor *view = tensor_view(b, b->rank, b->dims);
        if (!view) continue;
        shared += a->nbytes;
        value_set_const(v, view);
    }
done:
    name_map_free(&names);
    return shared;
}
