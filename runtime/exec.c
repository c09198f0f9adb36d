/* exec.c — the CPU interpreter: per-node shape inference on concrete
 * tensors, output allocation (views for PAT_VIEW ops), kernel dispatch, and
 * liveness-based freeing of intermediates. */
#include <cblas.h>
#include <malloc.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "exec.h"
#include "cpu/kernels.h"
#include "cpu/parallel.h"
#include "../passes/passes.h"

/* OpenBLAS' own knob; declared here to avoid depending on its extra headers. */
void openblas_set_num_threads(int);

void exec_set_threads(int n)
{
    if (n > 0) openblas_set_num_threads(n);
    parallel_set_threads(n); /* 0: every online CPU */
}

static size_t default_limit(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGE_SIZE);
    if (pages <= 0 || psz <= 0) return (size_t)1 << 34;
    return (size_t)pages * (size_t)psz / 2;
}

int exec_infer(const Graph *g, const Node *n, const Tensor *const *ins, InferCtx *ic, ValueInfo *vi, char *err, size_t cap)
{
    if (n->n_in > 16 || n->n_out > 8) { snprintf(err, cap, "node '%s': too many inputs/outputs", n->name); return -1; }
    memset(ic, 0, sizeof *ic);
    memset(vi, 0, sizeof *vi * (16 + 8));
    ic->node = n;
    ic->opset = g->opset;
    ic->n_in = n->n_in;
    ic->n_out = n->n_out;
    for (int i = 0; i < n->n_in; i++) {
        if (!ins[i]) continue;
        value_info_from_tensor(&vi[i], ins[i]);
        ic->in[i] = &vi[i];
    }
    for (int i = 0; i < n->n_out; i++) {
        vi[16 + i].shape.rank = -1;
        vi[16 + i].n_known = -1;
        ic->out[i] = &vi[16 + i];
    }
    if (op_table[n->op].infer(ic)) {
        snprintf(err, cap, "node '%s' (%s): %s", n->name, op_name(n->op), ic->err);
        return -1;
    }
    for (int i = 0; i < n->n_out; i++) {
        if (!n->out[i] || shape_is_const(&ic->out[i]->shape)) continue;
        int at = snprintf(err, cap, "node '%s' (%s): could not determine the shape of output '%s' from inputs", n->name,
                          op_name(n->op), n->out[i]->name);
        for (int j = 0; j < n->n_in && at > 0 && (size_t)at < cap; j++) {
            at += snprintf(err + at, cap - (size_t)at, " [");
            for (int d = 0; ins[j] && d < ins[j]->rank && (size_t)at < cap; d++)
                at += snprintf(err + at, cap - (size_t)at, "%s%lld", d ? "," : "", (long long)ins[j]->dims[d]);
            if ((size_t)at < cap) at += snprintf(err + at, cap - (size_t)at, "]");
        }
        return -1;
    }
    return 0;
}

int exec_node(const Graph *g, const Node *n, const Tensor *const *ins, Tensor **outs,
              const ExecOptions *opt, char *err, size_t cap)
{
    InferCtx *ic = calloc(1, sizeof *ic);
    ValueInfo *vi = calloc(16 + 8, sizeof *vi);
    KernelCtx kc;
    int rc = -1;
    for (int i = 0; i < n->n_out && i < 8; i++) outs[i] = NULL;
    if (!ic || !vi) { snprintf(err, cap, "out of memory"); goto done; }
    if (exec_infer(g, n, ins, ic, vi, err, cap)) goto done;
    memset(&kc, 0, sizeof kc);
    for (int i = 0; i < n->n_in; i++) kc.in[i] = ins[i];
    size_t limit = opt && opt->max_tensor_bytes ? opt->max_tensor_bytes : default_limit();
    for (int i = 0; i < n->n_out; i++) {
        if (!n->out[i]) continue;
        const Shape *s = &ic->out[i]->shape;
        int64_t dims[IR_MAX_RANK];
        for (int d = 0; d < s->rank; d++) dims[d] = s->d[d].n;
        int64_t numel = dims_numel_checked(s->rank, dims);
        size_t es = dtype_size(ic->out[i]->dtype);
        if (numel < 0 || (es && (size_t)numel > limit / es)) {
            snprintf(err, cap, "node '%s' (%s): output '%s' would need more than %zu bytes", n->name,
                     op_name(n->op), n->out[i]->name, limit);
            goto done;
        }
        int view = op_table[n->op].pattern == PAT_VIEW && i == 0 && !(opt && opt->reference_only);
        void *mem = !view && opt && opt->alloc ? opt->alloc(opt->alloc_ctx, n->out[i], (size_t)numel * es) : NULL;
        outs[i] = view ? tensor_view(ins[0], s->rank, dims)
                       : mem ? tensor_borrow(ic->out[i]->dtype, s->rank, dims, mem) : tensor_new(ic->out[i]->dtype, s->rank, dims);
        if (!outs[i]) {
            snprintf(err, cap, "node '%s' (%s): cannot allocate output '%s'", n->name, op_name(n->op), n->out[i]->name);
            goto done;
        }
        kc.out[i] = outs[i];
    }
    kc.ic = ic;
    kc.n_in = n->n_in;
    kc.n_out = n->n_out;
    kc.threads = opt ? opt->threads : 0;
    KernelFn fn = (!(opt && opt->reference_only) && fast_kernels[n->op]) ? fast_kernels[n->op] : ref_kernels[n->op];
    if (fn(&kc)) {
        snprintf(err, cap, "node '%s' (%s): %s", n->name, op_name(n->op), ic->err);
        goto done;
    }
    rc = 0;
done:
    if (rc)
        for (int i = 0; i < n->n_out && i < 8; i++) { tensor_free(outs[i]); outs[i] = NULL; }
    free(ic);
    free(vi);
    return rc;
}

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
    const char *na = getenv("VCLIP_NO_ARENA");
    s->use_arena = !(na && *na && strcmp(na, "0"));
    if (!s->last_use || !s->slots || !s->counted || !s->bytes) { session_free(s); snprintf(err, cap, "out of memory"); return NULL; }
    for (int i = 0; i < g->n_values; i++) s->last_use[i] = -1;
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
    memory_plan_free(&s->plan);
    free(s->arena);
    free(s->signature);
    free(s);
}

size_t session_peak_bytes(const Session *s) { return s->peak; }
size_t session_arena_bytes(const Session *s) { return s->arena ? s->plan.arena_bytes : 0; }

/* The input dims of this run, flattened with their ranks. */
int64_t *exec_input_signature(const Graph *g, Tensor *const *inputs, int *len)
{
    int n = 0;
    for (int i = 0; i < g->n_inputs; i++) n += 1 + inputs[i]->rank;
    int64_t *sig = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    if (!sig) return NULL;
    n = 0;
    for (int i = 0; i < g->n_inputs; i++) {
        sig[n++] = inputs[i]->rank;
        for (int d = 0; d < inputs[i]->rank; d++) sig[n++] = inputs[i]->dims[d];
    }
    *len = n;
    return sig;
}

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

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
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
