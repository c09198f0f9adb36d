/* mark_bf16_gemms.c — the CPU's bf16 path (`--precision bf16`, and `auto`
 * where the CPU has native bf16): every Linear whose weight is still f32 (a
 * weight being trained; constant ones became bf16 panels in
 * cast-linear-weights-bf16), every f32 Gemm (the backward pass's X^T dY and
 * dY W^T) and every f32 Conv and ConvGrad (the patch embedding and its
 * weight gradient) gets the attribute bf16 = 1: its kernels round both
 * operands to bf16 and sum in f32 (ir/ops.h), on the bf16 GEMM (AMX or
 * AVX512-BF16).  So does every Attention (its q.k
 * and probability-weighted sums take bf16 operands, ir/infer_attention.c)
 * and every AttentionGrad (the bf16 forward's gradient, its products on
 * bf16 operands too: runtime/cpu/ref_attention_grad.c), as PyTorch's
 * autocast runs attention's matrix products in bf16.  Master weights, the
 * optimizer, norms, softmax statistics and the losses stay f32.  Run after
 * the kernel pipeline. */
#include <stdio.h>
#include "passes.h"
#include "../ir/ops.h"

int pass_mark_bf16_gemms(Graph *g, char *err, size_t cap)
{
    int marked = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        Node *n = g->nodes[i];
        int attention = n->op == OP_ATTENTION || n->op == OP_ATTENTION_GRAD;
        int gemm = n->op == OP_LINEAR || n->op == OP_GEMM || n->op == OP_CONV || n->op == OP_CONV_GRAD;
        if ((!gemm && !attention) || n->n_in < 2 || !n->in[0] || !n->in[1]) continue;
        if (n->in[0]->dtype != DT_F32 || n->in[1]->dtype != DT_F32 || node_attr(n, "bf16")) continue;
        Attr *a = node_add_attr(n, "bf16", ATTR_INT);
        if (!a) { snprintf(err, cap, "mark-bf16-gemms: out of memory"); return -1; }
        a->i = 1;
        marked++;
    }
    return marked;
}
