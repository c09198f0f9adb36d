/* fuse_quick_gelu.c — x * Sigmoid(1.702 * x)  ->  ai.vclip.QuickGelu(x)
 * (OpenAI CLIP's activation), in either operand order. */
#include <math.h>
#include "passes.h"
#include "rewrite.h"

static Value *match(Node *mul)
{
    for (int side = 0; side < 2; side++) {
        Node *sig = producer_is(mul->in[side], OP_SIGMOID);
        Value *x = mul->in[1 - side];
        Node *scale = sig ? producer_is(sig->in[0], OP_MUL) : NULL;
        double c;
        if (scale && other_input(scale, x) && const_scalar(other_input(scale, x), &c) && fabs(c - 1.702) < 1e-3)
            return x;
    }
    return NULL;
}

int pass_fuse_quick_gelu(Graph *g, char *err, size_t cap)
{
    return fuse_mul_rooted_activation(g, OP_QUICK_GELU, match, "fuse-quick-gelu", err, cap);
}
