/* test_memory.c — the memory plan: on real graphs (a fixture encoder and a
 * training graph), no two buffers alive at the same node share a byte, the
 * arena is no larger than the buffers laid end to end and no smaller than
 * the most bytes alive at one node, and runs from the arena give bit-identical
 * outputs to runs without it (including after a batch change, which replans). */
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "../../ir/ops.h"
#include "../../onnx/onnx_io.h"
#include "../../passes/passes.h"
#include "../../runtime/cpu/memory_plan.h"
#include "../../runtime/cpu/session.h"

static const Value *root_of(const Value *v)
{
    while (v->producer && op_table[v->producer->op].pattern == PAT_VIEW && v->producer->out[0] == v && v->producer->n_in)
        v = v->producer->in[0];
    return v;
}

/* Checks the plan of g for sizes `bytes` against lifetimes computed here. */
static void check_plan(const Graph *g, const size_t *bytes, int with_outputs, const char *what)
{
    MemoryPlan p;
    CHECK(plan_memory(g, bytes, with_outputs, &p) == 0, "%s: plan failed", what);
    int nv = g->n_values, nn = g->n_nodes;
    int *first = malloc(sizeof(int) * (size_t)nv), *last = malloc(sizeof(int) * (size_t)nv);
    for (int i = 0; i < nv; i++) first[i] = last[i] = -1;
    for (int i = 0; i < nn; i++) {
        const Node *n = g->nodes[i];
        for (int j = 0; j < n->n_out; j++) if (n->out[j]) { int r = root_of(n->out[j])->id; if (first[r] < 0) first[r] = i; if (last[r] < i) last[r] = i; }
        for (int j = 0; j < n->n_in; j++) if (n->in[j]) { int r = root_of(n->in[j])->id; if (last[r] < i) last[r] = i; }
    }
    for (int i = 0; i < g->n_outputs; i++) { /* outputs: off the arena, or alive to the end */
        int r = root_of(g->outputs[i])->id;
        CHECK(with_outputs ? p.offset[r] != PLAN_NONE : p.offset[r] == PLAN_NONE, "%s: output '%s' planned wrongly", what, g->outputs[i]->name);
        last[r] = nn;
    }
    int overlaps = 0;
    size_t lower = 0;
    for (int a = 0; a < nv; a++) {
        if (p.offset[a] == PLAN_NONE) continue;
        for (int b = a + 1; b < nv; b++) {
            if (p.offset[b] == PLAN_NONE) continue;
            int alive = first[a] <= last[b] && first[b] <= last[a];
            int share = p.offset[a] < p.offset[b] + bytes[b] && p.offset[b] < p.offset[a] + bytes[a];
            overlaps += alive && share;
        }
    }
    for (int i = 0; i < nn; i++) { /* most planned bytes alive at one node */
        size_t sum = 0;
        for (int v = 0; v < nv; v++) if (p.offset[v] != PLAN_NONE && first[v] <= i && i <= last[v]) sum += bytes[v];
        if (sum > lower) lower = sum;
    }
    CHECK(overlaps == 0, "%s: %d pairs of live buffers overlap", what, overlaps);
    CHECK(p.arena_bytes <= p.planned_bytes, "%s: arena %zu above the sum %zu", what, p.arena_bytes, p.planned_bytes);
    CHECK(p.arena_bytes >= lower, "%s: arena %zu below the live peak %zu", what, p.arena_bytes, lower);
    CHECK(p.n_planned > 10 && p.arena_bytes < p.planned_bytes, "%s: no reuse (%d buffers, %zu of %zu bytes)", what, p.n_planned,
          p.arena_bytes, p.planned_bytes);
    printf("%s: %d buffers, %zu bytes without reuse, arena %zu (live peak %zu)\n", what, p.n_planned, p.planned_bytes, p.arena_bytes, lower);
    memory_plan_free(&p);
    free(first);
    free(last);
}

static Tensor *image(int64_t b)
{
    int64_t d[4] = {b, 3, 32, 32};
    Tensor *t = tensor_new(DT_F32, 4, d);
    for (int64_t i = 0; i < tensor_numel(t); i++) ((float *)t->data)[i] = (float)((i * 7919) % 1000) / 500.0f - 1.0f;
    return t;
}

static int same(const Tensor *a, const Tensor *b) { return a && b && a->nbytes == b->nbytes && !memcmp(a->data, b->data, a->nbytes); }

int main(void)
{
    char err[512];
    Graph *g = onnx_load(VCLIP_DATA_DIR "/tests/fixtures/openai_visual_op17/model.onnx", err, sizeof err);
    CHECK(g != NULL, "%s", err);
    if (!g) return TEST_SUMMARY();
    PassOptions po = {0};
    CHECK(run_passes(g, default_pipeline, &po, err, sizeof err) == 0, "%s", err);
    /* sizes as a run sees them, at batch 3 */
    size_t *bytes = calloc((size_t)g->n_values, sizeof(size_t));
    unsetenv("VCLIP_NO_ARENA");
    Session *s = session_new(g, &(ExecOptions){0}, err, sizeof err);
    Tensor *x3 = image(3), *x5 = image(5), *y[4] = {0};
    CHECK(session_run(s, &x3, &y[0], err, sizeof err) == 0, "%s", err);
    CHECK(session_arena_bytes(s) > 0, "no arena after the first run");
    CHECK(session_run(s, &x3, &y[1], err, sizeof err) == 0, "%s", err);   /* from the arena */
    CHECK(same(y[0], y[1]), "the arena run differs from the first run");
    size_t a3 = session_arena_bytes(s);
    CHECK(session_run(s, &x5, &y[2], err, sizeof err) == 0, "%s", err);   /* new shapes: heap, then replan */
    CHECK(session_run(s, &x5, &y[3], err, sizeof err) == 0, "%s", err);
    CHECK(same(y[2], y[3]), "the arena run at batch 5 differs");
    CHECK(session_arena_bytes(s) > a3, "the plan did not follow the batch: %zu vs %zu", session_arena_bytes(s), a3);
    session_free(s);
    setenv("VCLIP_NO_ARENA", "1", 1);
    Session *plain = session_new(g, &(ExecOptions){0}, err, sizeof err);
    Tensor *z = NULL;
    CHECK(session_run(plain, &x5, &z, err, sizeof err) == 0, "%s", err);
    CHECK(same(z, y[3]) && session_arena_bytes(plain) == 0, "arena and heap runs differ");
    session_free(plain);
    /* the planner's invariants, with the sizes of a batch-3 run */
    for (int i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i]->n_out; j++) {
            Value *v = g->nodes[i]->out[j];
            int64_t n = 1;
            for (int d = 0; d < v->shape.rank; d++) n *= dim_is_const(v->shape.d[d]) ? v->shape.d[d].n : 3 * v->shape.d[d].n;
            bytes[v->id] = (size_t)n * dtype_size(v->dtype);
        }
    check_plan(g, bytes, 0, "openai_visual_op17");
    check_plan(g, bytes, 1, "openai_visual_op17, outputs in the arena");
    for (int i = 0; i < 4; i++) tensor_free(y[i]);
    tensor_free(z);
    tensor_free(x3);
    tensor_free(x5);
    free(bytes);
    graph_free(g);
    return TEST_SUMMARY();
}
