/* session.c — a graph on the CPU: inputs bound and checked, nodes run in
 * order (exec_node.c), each intermediate freed after its last use, and from
 * the second run with the same input shapes every intermediate placed in one
 * planned arena (memory_plan.c). */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "session.h"
#include "kernels.h"
#include "memory_plan.h"
#include "../../ir/base.h"

struct Session {
    Graph *g;
    ExecOptions opt;
    int *last_use;      /* per value: index of the last node reading it; n_nodes for outputs */
    Tensor **slots;
    size_t *counted;    /* per value: bytes it adds to the live total (0 for views) */
    size_t live, peak;
    size_t *bytes;      /* per value: its buffer's size in the last run (0: none) */
    MemoryPlan plan;    /* from the last run's sizes; used while the input shapes stay */
    char *arena;
    int64_t *signature; /* the input dims the plan is for */
    int sig_len, use_arena;
    int *output_of;     /* per value: its first index among the graph's outputs, or -1 */
    void (*observer)(void *ctx, int output, const Tensor *value);
    void *observer_ctx;
};

static int debug_level(void);

/* ExecOptions.alloc: the planned place, when the size is the planned one. */
static void *arena_alloc(void *ctx, const Value *v, size_t bytes)
{
    Session *s = ctx;
    if (!s->arena || v->id >= s->g->n_values || s->plan.offset[v->id] == PLAN_NONE || s->bytes[v->id] != bytes) return NULL;
    return s->arena + s->plan.offset[v->id];
}

static void replan(Session *s, int64_t *sig, int len);

/* VCLIP_DEBUG >= 1: the generated kernels a session will run, and the GEMMs
 * that carry a fused epilogue or packed weights. */
static void list_kernels(const Graph *g)
{
    int k = 0, gemms = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const Node *n = g->nodes[i];
        if (n->op == OP_FUSED_ELEMENTWISE || n->op == OP_FUSED_REDUCE) {
            const Attr *a = node_attr(n, "program"), *e = node_attr(n, "epilogue");
            fprintf(stderr, "vclip: kernel %d: %s (%s, %d inputs, %d + %d instructions%s)\n", k++, n->name, op_name(n->op), n->n_in,
                    a ? a->n / 3 : 0, e ? e->n / 3 : 0, node_attr(n, "loads") ? ", read through views" : "");
        } else if (n->op == OP_LINEAR && n->n_in > 1 && n->in[1]) {
            const char *act = node_attr_s(n, "activation", "");
            int packed = n->in[1]->shape.rank >= 3, residual = n->n_in > 3 && n->in[3];
            if (!packed && !*act && !residual) continue;
            fprintf(stderr, "vclip: gemm %s: %s weights%s%s%s\n", n->name, !packed ? "plain" : n->in[1]->dtype == DT_BF16 ? "bf16 packed" : "packed",
                    n->n_in > 2 && n->in[2] ? ", bias" : "", *act ? ", " : "", act);
            if (residual) fprintf(stderr, "vclip:   + residual %s\n", n->in[3]->name);
            gemms++;
        }
    }
    if (k) fprintf(stderr, "vclip: %d generated kernels (VCLIP_DEBUG=2 prints their sources)\n", k);
    if (gemms) fprintf(stderr, "vclip: %d GEMMs with packed weights or a fused epilogue\n", gemms);
}

/* A graph whose shapes are all static (a training graph) is planned before
 * its first run, so that its heap never grows to the unplanned peak. */
static void static_plan(Session *s)
{
    const Graph *g = s->g;
    if (!s->use_arena) return;
    int len = 0;
    for (int i = 0; i < g->n_inputs; i++) {
        if (g->inputs[i]->shape.rank < 0 || !shape_is_const(&g->inputs[i]->shape)) return;
        len += 1 + g->inputs[i]->shape.rank;
    }
    for (int i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i]->n_out; j++) {
            const Value *v = g->nodes[i]->out[j];
            if (!v) continue;
            if (v->shape.rank < 0 || !shape_is_const(&v->shape)) return;
            int view = op_table[g->nodes[i]->op].pattern == PAT_VIEW && j == 0 && !s->opt.reference_only;
            s->bytes[v->id] = view ? 0 : (size_t)shape_numel(&v->shape) * dtype_size(v->dtype);
        }
    int64_t *sig = malloc(sizeof(int64_t) * (size_t)(len ? len : 1));
    if (!sig) return;
    len = 0;
    for (int i = 0; i < g->n_inputs; i++) {
        sig[len++] = g->inputs[i]->shape.rank;
        for (int d = 0; d < g->inputs[i]->shape.rank; d++) sig[len++] = g->inputs[i]->shape.d[d].n;
    }
    replan(s, sig, len);
}

Session *session_new(Graph *g, const ExecOptions *opt, char *err, size_t cap)
{
    Session *s = calloc(1, sizeof *s);
    if (!s) { snprintf(err, cap, "out of memory"); return NULL; }
    s->g = g;
    if (opt) s->opt = *opt;
    s->last_use = malloc(sizeof(int) * (size_t)(g->n_values ? g->n_values : 1));
    s->slots = calloc((size_t)(g->n_values ? g->n_values : 1), sizeof(Tensor *));
    s->counted = calloc((size_t)(g->n_values ? g->n_values : 1), sizeof(size_t));
    s->bytes = calloc((size_t)(g->n_values ? g->n_values : 1), sizeof(size_t));
    s->output_of = malloc(sizeof(int) * (size_t)(g->n_values ? g->n_values : 1));
    const char *na = getenv("VCLIP_NO_ARENA");
    s->use_arena = !(na && *na && strcmp(na, "0"));
    if (!s->last_use || !s->slots || !s->counted || !s->bytes || !s->output_of) { session_free(s); snprintf(err, cap, "out of memory"); return NULL; }
    for (int i = 0; i < g->n_values; i++) s->last_use[i] = s->output_of[i] = -1;
    for (int i = g->n_outputs - 1; i >= 0; i--) s->output_of[g->outputs[i]->id] = i;
    for (int i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i]->n_in; j++)
            if (g->nodes[i]->in[j]) s->last_use[g->nodes[i]->in[j]->id] = i;
    for (int i = 0; i < g->n_outputs; i++) s->last_use[g->outputs[i]->id] = g->n_nodes;
    exec_set_threads(s->opt.threads);
    static_plan(s);
    if (debug_level() >= 1) list_kernels(g);
    /* Keep freed activation buffers in the heap for the next node and the
     * next run: returning them to the OS costs a page fault per 4 KiB on
     * every reuse.  Peak memory is unchanged; it is just not given back. */
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    return s;
}

void session_free(Session *s)
{
    if (!s) return;
    free(s->last_use);
    free(s->slots);
    free(s->counted);
    free(s->bytes);
    free(s->output_of);
    memory_plan_free(&s->plan);
    free(s->arena);
    free(s->signature);
    free(s);
}

void session_observe(Session *s, void (*fn)(void *ctx, int output, const Tensor *value), void *ctx)
{
    s->observer = fn;
    s->observer_ctx = ctx;
}

size_t session_peak_bytes(const Session *s) { return s->peak; }
size_t session_arena_bytes(const Session *s) { return s->arena ? s->plan.arena_bytes : 0; }

/* The input dims of this run, flattened with their ranks. */
/* After a run: plan the arena for this run's sizes unless it already is. */
static void replan(Session *s, int64_t *sig, int len)
{
    if (s->arena && s->sig_len == len && !memcmp(s->signature, sig, sizeof(int64_t) * (size_t)len)) { free(sig); return; }
    memory_plan_free(&s->plan);
    free(s->arena);
    free(s->signature);
    s->arena = NULL;
    s->signature = sig;
    s->sig_len = len;
    if (plan_memory(s->g, s->bytes, s->opt.outputs_in_arena, &s->plan) == 0 && s->plan.arena_bytes) {
        s->arena = aligned_alloc(64, (s->plan.arena_bytes + 63) / 64 * 64);
        malloc_trim(0); /* the heap the unplanned run kept is not needed next to the arena */
        if (debug_level() >= 1)
            fprintf(stderr, "vclip: memory plan: %d buffers, arena %.1f MB (%.1f MB without reuse)%s\n", s->plan.n_planned,
                    s->plan.arena_bytes / 1e6, s->plan.planned_bytes / 1e6, s->peak ? ", from the sizes of a first run" : ", from static shapes");
    }
}

static int bind_input(Graph *g, Value *v, const Tensor *t, int64_t *symval, char *err, size_t cap)
{
    if (t->dtype != v->dtype) {
        snprintf(err, cap, "input '%s': expected dtype %s, got %s", v->name, dtype_name(v->dtype), dtype_name(t->dtype));
        return -1;
    }
    if (v->shape.rank >= 0 && v->shape.rank != t->rank) {
        snprintf(err, cap, "input '%s': expected rank %d, got %d", v->name, v->shape.rank, t->rank);
        return -1;
    }
    for (int d = 0; v->shape.rank >= 0 && d < t->rank; d++) {
        Dim e = v->shape.d[d];
        char buf[64];
        if (dim_is_const(e) && e.n != t->dims[d]) {
            snprintf(err, cap, "input '%s': dim %d must be %lld, got %lld", v->name, d, (long long)e.n, (long long)t->dims[d]);
            return -1;
        }
        if (e.sym >= 0 && e.n == 1) {
            if (symval[e.sym] >= 0 && symval[e.sym] != t->dims[d]) {
                dim_format(g, e, buf, sizeof buf);
                snprintf(err, cap, "input '%s': dim %d ('%s') is %lld here but %lld in another input", v->name, d, buf,
                         (long long)t->dims[d], (long long)symval[e.sym]);
                return -1;
            }
            symval[e.sym] = t->dims[d];
        }
    }
    return 0;
}

/* VCLIP_DEBUG >= 3: time per op type after each run; >= 4: every node. */
static int debug_level(void)
{
    const char *e = getenv("VCLIP_DEBUG");
    return e ? atoi(e) : 0;
}

static void print_profile(const double *ms, const int *count)
{
    double total = 0;
    for (int i = 0; i < OP_COUNT; i++) total += ms[i];
    fprintf(stderr, "vclip: per-op time (VCLIP_DEBUG=3), total %.2f ms\n", total);
    for (;;) {
        int best = -1;
        for (int i = 0; i < OP_COUNT; i++) if (count[i] && (best < 0 || ms[i] > ms[best])) best = i;
        if (best < 0) break;
        fprintf(stderr, "  %-22s %5d calls %10.3f ms %5.1f%%\n", op_name(best), count[best], ms[best],
                total > 0 ? 100 * ms[best] / total : 0);
        ((int *)count)[best] = 0;
    }
}

static void release(Session *s, Value *v)
{
    Tensor *t = s->slots[v->id];
    if (!t || v->konst) return;
    s->live -= s->counted[v->id];
    s->counted[v->id] = 0;
    tensor_free(t);
    s->slots[v->id] = NULL;
}

int session_run(Session *s, Tensor *const *inputs, Tensor **outputs, char *err, size_t cap)
{
    Graph *g = s->g;
    int rc = -1;
    int64_t *symval = malloc(sizeof(int64_t) * (size_t)(g->n_syms + 1));
    if (!symval) { snprintf(err, cap, "out of memory"); return -1; }
    for (int i = 0; i < g->n_syms; i++) symval[i] = -1;
    memset(s->slots, 0, sizeof(Tensor *) * (size_t)g->n_values);
    s->live = s->peak = 0;
    memset(s->counted, 0, sizeof(size_t) * (size_t)g->n_values);
    for (int i = 0; i < g->n_values; i++)
        if (g->values[i]->konst) s->slots[i] = g->values[i]->konst;
    int sig_len = 0;
    int64_t *sig = s->use_arena ? exec_input_signature(g, inputs, &sig_len) : NULL;
    ExecOptions eo = s->opt;
    int planned = sig && s->arena && s->sig_len == sig_len && !memcmp(s->signature, sig, sizeof(int64_t) * (size_t)sig_len);
    if (planned) { eo.alloc = arena_alloc; eo.alloc_ctx = s; }
    for (int i = 0; i < g->n_inputs; i++) {
        if (bind_input(g, g->inputs[i], inputs[i], symval, err, cap)) goto done;
        s->slots[g->inputs[i]->id] = tensor_view(inputs[i], inputs[i]->rank, inputs[i]->dims);
        if (!s->slots[g->inputs[i]->id]) { snprintf(err, cap, "out of memory"); goto done; }
    }
    int profile = debug_level() >= 3;
    double prof_ms[OP_COUNT] = {0};
    int prof_count[OP_COUNT] = {0};
    for (int i = 0; i < g->n_nodes; i++) {
        Node *n = g->nodes[i];
        const Tensor *ins[16] = {0};
        Tensor *outs[8] = {0};
        for (int j = 0; j < n->n_in && j < 16; j++) {
            if (!n->in[j]) continue;
            ins[j] = s->slots[n->in[j]->id];
            if (!ins[j]) { snprintf(err, cap, "node '%s': input '%s' has no value", n->name, n->in[j]->name); goto done; }
        }
        double t0 = profile ? now_ms() : 0;
        if (exec_node(g, n, ins, outs, &eo, err, cap)) goto done;
        if (profile) {
            double dt = now_ms() - t0;
            prof_ms[n->op] += dt;
            prof_count[n->op]++;
            if (debug_level() >= 4 && outs[0]) {
                fprintf(stderr, "  %8.3f ms  %-12s %s [", dt, op_name(n->op), n->name);
                for (int d = 0; d < outs[0]->rank; d++) fprintf(stderr, "%s%lld", d ? "," : "", (long long)outs[0]->dims[d]);
                fprintf(stderr, "]\n");
            }
        }
        for (int j = 0; j < n->n_out; j++) {
            if (!n->out[j]) continue;
            s->slots[n->out[j]->id] = outs[j];
            int is_view = outs[j] && n->n_in && ins[0] && outs[j]->data == ins[0]->data;
            s->counted[n->out[j]->id] = (outs[j] && !is_view) ? outs[j]->nbytes : 0;
            s->bytes[n->out[j]->id] = s->counted[n->out[j]->id];
            s->live += s->counted[n->out[j]->id];
        }
        if (s->live > s->peak) s->peak = s->live;
        if (s->observer) {
            int told = 0;
            for (int j = 0; j < n->n_out; j++)
                if (n->out[j] && outs[j] && s->output_of[n->out[j]->id] >= 0) {
                    s->observer(s->observer_ctx, s->output_of[n->out[j]->id], outs[j]);
                    told = 1;
                }
            if (!told) s->observer(s->observer_ctx, -1, NULL);
        }
        for (int j = 0; j < n->n_in; j++)
            if (n->in[j] && s->last_use[n->in[j]->id] == i) release(s, n->in[j]);
        for (int j = 0; j < n->n_out; j++) /* unused outputs (e.g. Dropout's mask) */
            if (n->out[j] && s->last_use[n->out[j]->id] < i) release(s, n->out[j]);
    }
    for (int i = 0; i < g->n_outputs; i++) {
        Tensor *t = s->slots[g->outputs[i]->id];
        for (int j = 0; !t && j < i; j++) /* the same value listed twice: already handed out */
            if (g->outputs[j] == g->outputs[i]) t = outputs[j];
        if (!t) { snprintf(err, cap, "output '%s' was not computed", g->outputs[i]->name); goto done; }
        if (t != s->slots[g->outputs[i]->id]) {
            if (!(outputs[i] = tensor_copy(t))) { snprintf(err, cap, "out of memory"); goto done; }
            continue;
        }
        outputs[i] = g->outputs[i]->konst || g->outputs[i]->is_input ? tensor_copy(t) : t;
        if (outputs[i] == t) s->slots[g->outputs[i]->id] = NULL;
    }
    if (profile) print_profile(prof_ms, prof_count);
    if (sig) { replan(s, sig, sig_len); sig = NULL; }
    rc = 0;
done:
    for (int i = 0; i < g->n_values; i++)
        if (s->slots[i] && !g->values[i]->konst) tensor_free(s->slots[i]);
    memset(s->slots, 0, sizeof(Tensor *) * (size_t)g->n_values);
    free(symval);
    free(sig);
    return rc;
}
