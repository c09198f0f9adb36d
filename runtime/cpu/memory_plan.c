/* memory_plan.c — liveness-based buffer reuse: every intermediate gets an
 * offset in one arena, and two values share bytes only when their lifetimes
 * (from the producing node to the last reader, views included) do not
 * overlap.  Placement is greedy by size (largest first, lowest gap that fits
 * among the placed values that are alive at the same time), the strategy
 * TFLite's planner uses.  The executor plans from the sizes of a first run
 * and reuses the arena while the input shapes stay the same. */
#include <stdlib.h>
#include <string.h>
#include "memory_plan.h"
#include "../../ir/ops.h"

#define ALIGN 64

typedef struct { int id, first, last; size_t size, offset; } Item;

static int by_size_desc(const void *a, const void *b)
{
    const Item *x = a, *y = b;
    return x->size < y->size ? 1 : x->size > y->size ? -1 : x->id - y->id;
}

static int by_offset(const void *a, const void *b)
{
    const Item *const *x = a, *const *y = b;
    return (*x)->offset < (*y)->offset ? -1 : (*x)->offset > (*y)->offset;
}

/* The value whose buffer v's data is (views alias their input 0). */
static const Value *root_of(const Value *v)
{
    while (v->producer && op_table[v->producer->op].pattern == PAT_VIEW && v->producer->n_in && v->producer->in[0] &&
           v->producer->out[0] == v)
        v = v->producer->in[0];
    return v;
}

int plan_memory(const Graph *g, const size_t *bytes, int with_outputs, MemoryPlan *plan)
{
    int nv = g->n_values, rc = -1;
    memset(plan, 0, sizeof *plan);
    plan->offset = malloc(sizeof(size_t) * (size_t)(nv ? nv : 1));
    int *first = malloc(sizeof(int) * (size_t)(nv ? nv : 1)), *last = malloc(sizeof(int) * (size_t)(nv ? nv : 1));
    char *excluded = calloc((size_t)(nv ? nv : 1), 1);
    Item *items = malloc(sizeof(Item) * (size_t)(nv ? nv : 1));
    const Item **live = malloc(sizeof(Item *) * (size_t)(nv ? nv : 1));
    if (!plan->offset || !first || !last || !excluded || !items || !live) goto done;
    for (int i = 0; i < nv; i++) { plan->offset[i] = PLAN_NONE; first[i] = -1; last[i] = -1; }
    for (int i = 0; i < g->n_nodes; i++) {
        const Node *n = g->nodes[i];
        for (int j = 0; j < n->n_out; j++)
            if (n->out[j] && root_of(n->out[j]) == n->out[j]) first[n->out[j]->id] = i;
        for (int j = 0; j < n->n_in; j++)
            if (n->in[j]) { int r = root_of(n->in[j])->id; if (i > last[r]) last[r] = i; }
        for (int j = 0; j < n->n_out; j++) /* an unread output still occupies its buffer while the node runs */
            if (n->out[j]) { int r = root_of(n->out[j])->id; if (i > last[r]) last[r] = i; }
    }
    for (int i = 0; i < g->n_outputs; i++) { /* handed to the caller: kept off the arena, or alive to the end */
        int r = root_of(g->outputs[i])->id;
        if (with_outputs) last[r] = g->n_nodes;
        else excluded[r] = 1;
    }
    int m = 0;
    for (int i = 0; i < nv; i++) {
        const Value *v = g->values[i];
        if (first[i] < 0 || excluded[i] || v->konst || v->is_input || !bytes[i]) continue;
        items[m++] = (Item){i, first[i], last[i] < first[i] ? first[i] : last[i], (bytes[i] + ALIGN - 1) / ALIGN * ALIGN, 0};
    }
    qsort(items, (size_t)m, sizeof *items, by_size_desc);
    for (int k = 0; k < m; k++) {
        int nl = 0;
        for (int p = 0; p < k; p++)
            if (items[p].first <= items[k].last && items[k].first <= items[p].last) live[nl++] = &items[p];
        qsort(live, (size_t)nl, sizeof *live, by_offset);
        size_t at = 0;
        for (int p = 0; p < nl; p++) {
            if (live[p]->offset >= at + items[k].size) break; /* the gap before it fits */
            if (live[p]->offset + live[p]->size > at) at = live[p]->offset + live[p]->size;
        }
        items[k].offset = at;
        plan->offset[items[k].id] = at;
        if (at + items[k].size > plan->arena_bytes) plan->arena_bytes = at + items[k].size;
        plan->planned_bytes += items[k].size;
        plan->n_planned++;
    }
    rc = 0;
done:
    free(first);
    free(last);
    free(excluded);
    free(items);
    free(live);
    if (rc) { free(plan->offset); plan->offset = NULL; }
    return rc;
}

void memory_plan_free(MemoryPlan *plan)
{
    free(plan->offset);
    memset(plan, 0, sizeof *plan);
}

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
