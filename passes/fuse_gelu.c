/* fuse_gelu.c — exact GELU, 0.5 * x * (1 + Erf(x / sqrt 2)), written by
 * exporters as nested Muls in any order, with Div by sqrt 2 or Mul by its
 * inverse  ->  ai.vclip.Gelu(x). */
#include <math.h>
#include "passes.h"
#include "rewrite.h"

/* x when v = Erf(x / sqrt 2) + 1 */
static Value *erf_term(Value *v)
{
    Node *add = producer_is(v, OP_ADD);
    if (!add || add->n_in != 2) return NULL;
    for (int side = 0; side < 2; side++) {
        double one;
        Node *erf = producer_is(add->in[side], OP_ERF);
        if (!erf || !const_scalar(add->in[1 - side], &one) || fabs(one - 1.0) > 1e-6) continue;
        Node *scale = producer_is(erf->in[0], OP_DIV);
        double c;
        if (scale && const_scalar(scale->in[1], &c) && fabs(c - sqrt(2.0)) < 1e-3) return scale->in[0];
        scale = producer_is(erf->in[0], OP_MUL);
        for (int s = 0; scale && s < 2; s++)
            if (const_scalar(scale->in[s], &c) && fabs(c - 1.0 / sqrt(2.0)) < 1e-3) return scale->in[1 - s];
    }
    return NULL;
}

/* The three factors of Mul(Mul(a, b), c) or Mul(a, Mul(b, c)). */
static int factors(Node *root, Value *f[3])
{
    for (int side = 0; side < 2; side++) {
        Node *inner = producer_is(root->in[side], OP_MUL);
        if (!inner || inner->n_in != 2) continue;
        f[0] = inner->in[0];
        f[1] = inner->in[1];
        f[2] = root->in[1 - side];
        return 1;
    }
    return 0;
}

static Value *match(Node *root)
{
    Value *f[3];
    if (!factors(root, f)) return NULL;
    for (int h = 0; h < 3; h++) { /* which factor is the 0.5 */
        double half;
        if (!const_scalar(f[h], &half) || fabs(half - 0.5) > 1e-6) continue;
        Value *a = f[(h + 1) % 3], *b = f[(h + 2) % 3];
        if (erf_term(b) == a) return a;
        if (erf_term(a) == b) return b;
    }
    return NULL;
}

int pass_fuse_gelu(Graph *g, char *err, size_t cap)
{
    return fuse_mul_rooted_activation(g, OP_GELU, match, "fuse-gelu", err, cap);
}
