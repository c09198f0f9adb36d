/* exec_node.c — one node on the CPU: shape inference on concrete tensors,
 * output allocation (views for PAT_VIEW ops) and kernel dispatch.  Sessions
 * (session.c) run graphs with it; constant folding runs single nodes. */
#include <cblas.h>
#include <malloc.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "exec_node.h"
#include "kernels.h"
#include "parallel.h"

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
    /* nothing to compute when every output is empty: kernels loop over outer
     * dims, and a shape like [1, 2^28, 0] would keep one busy for nothing */
    int empty = 1;
    for (int i = 0; i < n->n_out && i < 8; i++) empty &= !outs[i] || tensor_numel(outs[i]) == 0;
    if (empty && n->n_out > 0) { rc = 0; goto done; }
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
