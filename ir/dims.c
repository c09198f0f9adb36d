/* dims.c — arithmetic on possibly-symbolic dimensions (k * symbol or const).
 * Just enough algebra for the reshapes exporters emit: batch*50 and back. */
#include <stdio.h>
#include "ir.h"

Dim dim_const(int64_t n) { return (Dim){n, DIM_CONST}; }
Dim dim_unknown(void) { return (Dim){0, DIM_UNKNOWN}; }
int dim_is_const(Dim d) { return d.sym == DIM_CONST; }
int dim_equal(Dim a, Dim b) { return a.sym != DIM_UNKNOWN && a.sym == b.sym && a.n == b.n; }

static int mul_overflows(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_mul_overflow(a, b, &r);
}

Dim dim_mul(Dim a, Dim b)
{
    if (a.sym == DIM_UNKNOWN || b.sym == DIM_UNKNOWN) return dim_unknown();
    if (mul_overflows(a.n, b.n)) return dim_unknown();
    if (a.sym == DIM_CONST) return (Dim){a.n * b.n, b.sym};
    if (b.sym == DIM_CONST) return (Dim){a.n * b.n, a.sym};
    return dim_unknown(); /* sym*sym is beyond this algebra */
}

Dim dim_div(Dim a, Dim b)
{
    if (a.sym == DIM_UNKNOWN || b.sym == DIM_UNKNOWN || b.n == 0) return dim_unknown();
    if (b.sym == DIM_CONST) {
        if (a.n % b.n) return dim_unknown();
        return (Dim){a.n / b.n, a.sym};
    }
    if (a.sym == b.sym && a.n % b.n == 0) return dim_const(a.n / b.n);
    return dim_unknown();
}

Dim dim_add(Dim a, Dim b)
{
    int64_t r;
    if (a.sym == DIM_CONST && b.sym == DIM_CONST) return __builtin_add_overflow(a.n, b.n, &r) ? dim_unknown() : dim_const(r);
    if (dim_is_const(b) && b.n == 0) return a;
    if (dim_is_const(a) && a.n == 0) return b;
    if (a.sym >= 0 && a.sym == b.sym) return __builtin_add_overflow(a.n, b.n, &r) ? dim_unknown() : (Dim){r, a.sym};
    return dim_unknown();
}

Dim dim_sub(Dim a, Dim b)
{
    int64_t r;
    if (a.sym == DIM_CONST && b.sym == DIM_CONST) return __builtin_sub_overflow(a.n, b.n, &r) ? dim_unknown() : dim_const(r);
    if (dim_is_const(b) && b.n == 0) return a;
    if (a.sym >= 0 && a.sym == b.sym)
        return a.n == b.n ? dim_const(0) : __builtin_sub_overflow(a.n, b.n, &r) ? dim_unknown() : (Dim){r, a.sym};
    return dim_unknown();
}

int shape_is_const(const Shape *s)
{
    if (s->rank < 0) return 0;
    for (int i = 0; i < s->rank; i++)
        if (!dim_is_const(s->d[i])) return 0;
    return 1;
}

int64_t shape_numel(const Shape *s)
{
    if (!shape_is_const(s)) return -1;
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++)
        if (s->d[i].n < 0 || __builtin_mul_overflow(n, s->d[i].n, &n)) return -1;
    return n;
}

void dim_format(const Graph *g, Dim d, char *buf, size_t cap)
{
    if (d.sym == DIM_CONST) snprintf(buf, cap, "%lld", (long long)d.n);
    else if (d.sym == DIM_UNKNOWN) snprintf(buf, cap, "?");
    else {
        const char *nm = (g && d.sym < g->n_syms) ? g->syms[d.sym] : "sym";
        if (d.n == 1) snprintf(buf, cap, "%s", nm);
        else snprintf(buf, cap, "%lld*%s", (long long)d.n, nm);
    }
}

void shape_format(const Graph *g, const Shape *s, char *buf, size_t cap)
{
    if (s->rank < 0) { snprintf(buf, cap, "[?]"); return; }
    size_t len = 0;
    len += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < s->rank && len < cap; i++) {
        char d[64];
        dim_format(g, s->d[i], d, sizeof d);
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? "," : "", d);
    }
    if (len < cap) snprintf(buf + len, cap - len, "]");
}
