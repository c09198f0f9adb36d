/* program.c — see program.h: the opcode table, decoding and the reference
 * interpreter.  The renderers are in codegen/render.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "program.h"
#include "loads.h"
#include "ops.h"

static const struct { const char *name, *expr; int arity, ir_op; } scalar_ops[PR_COUNT] = {
#define SCALAR_OP(id, name, arity, ir, expr) [PR_##id] = {name, #expr, arity, OP_##ir},
#include "scalar_ops.def"
#undef SCALAR_OP
};

const char *program_op_name(int op) { return op >= 0 && op < PR_COUNT ? scalar_ops[op].name : "?"; }
int program_op_arity(int op) { return op >= 0 && op < PR_COUNT ? scalar_ops[op].arity : 0; }
const char *program_op_expr(int op) { return op >= 0 && op < PR_COUNT ? scalar_ops[op].expr : NULL; }

int program_op_of(int ir_op)
{
    for (int op = 0; op < PR_COUNT; op++)
        if (scalar_ops[op].ir_op == ir_op) return op;
    return -1;
}

int program_from_node(const Node *n, Program *p, char *err, size_t cap)
{
    memset(p, 0, sizeof *p);
    if (!node_attr(n, "program")) { snprintf(err, cap, "needs an ints attribute 'program' of opcode, a, b triples"); return -1; }
    if (!node_attr(n, "loads")) return program_from_attrs(n, "program", "constants", n->n_in, p, err, cap);
    LoadPlan lp;
    if (loads_decode(n, &lp, err, cap)) return -1;
    int rc = program_from_attrs(n, "program", "constants", lp.n_loads, p, err, cap);
    if (!rc && !(p->load_pieces = malloc(sizeof(int) * (size_t)lp.n_loads))) {
        program_free(p);
        snprintf(err, cap, "out of memory");
        rc = -1;
    }
    if (!rc) {
        for (int l = 0; l < lp.n_loads; l++) p->load_pieces[l] = lp.loads[l].n_pieces;
        p->n_pieces = lp.n_pieces;
    }
    loads_free(&lp);
    return rc;
}

int program_from_attrs(const Node *n, const char *code_attr, const char *const_attr, int n_in, Program *p, char *err, size_t cap)
{
    memset(p, 0, sizeof *p);
    const Attr *code = node_attr(n, code_attr), *k = node_attr(n, const_attr);
    p->n_in = n_in;
    if (!code) {
        if (n_in != 1 || k) { snprintf(err, cap, "no '%s': only one input and no constants make an identity", code_attr); return -1; }
        return 0;
    }
    if (code->type != ATTR_INTS || code->n % 3 || code->n == 0) { snprintf(err, cap, "needs an ints attribute '%s' of opcode, a, b triples", code_attr); return -1; }
    if (k && k->type != ATTR_FLOATS) { snprintf(err, cap, "'%s' must be floats", const_attr); return -1; }
    p->n_const = k ? k->n : 0;
    p->consts = k ? k->floats : NULL;
    p->n_instr = code->n / 3;
    p->code = malloc(sizeof(Instr) * (size_t)p->n_instr);
    if (!p->code) { snprintf(err, cap, "out of memory"); return -1; }
    for (int i = 0; i < p->n_instr; i++) {
        Instr in = {(int)code->ints[3 * i], (int)code->ints[3 * i + 1], (int)code->ints[3 * i + 2]};
        int avail = p->n_in + p->n_const + i, ar = program_op_arity(in.op);
        if (in.op < 0 || in.op >= PR_COUNT || in.a < 0 || in.a >= avail || (ar == 2 ? (in.b < 0 || in.b >= avail) : in.b != -1)) {
            snprintf(err, cap, "program instruction %d is malformed", i);
            program_free(p);
            return -1;
        }
        p->code[i] = in;
    }
    return 0;
}

void program_free(Program *p)
{
    free(p->code);
    free(p->load_pieces);
    p->code = NULL;
    p->load_pieces = NULL;
}

/* scalar_ops.def's expressions in double: the float functions and
 * literals they are written with become their double counterparts where
 * it matters (the literals stay as written: the kernels use them so). */
static double apply(int op, double a, double b)
{
#define expf exp
#define logf log
#define sqrtf sqrt
#define tanhf tanh
#define fabsf fabs
#define erff erf
#define powf pow
#define log1pf log1p
#define fmaxf fmax
    switch (op) {
#define SCALAR_OP(id, name, arity, ir, expr) case PR_##id: return (expr);
#include "scalar_ops.def"
#undef SCALAR_OP
    default: return NAN;
    }
#undef expf
#undef logf
#undef sqrtf
#undef tanhf
#undef fabsf
#undef erff
#undef powf
#undef log1pf
#undef fmaxf
}

double program_eval(const Program *p, const double *inputs)
{
    double r[256];
    int n = p->n_in + p->n_const;
    if (n + p->n_instr > 256) return NAN;
    for (int i = 0; i < p->n_in; i++) r[i] = inputs[i];
    for (int i = 0; i < p->n_const; i++) r[p->n_in + i] = p->consts[i];
    for (int i = 0; i < p->n_instr; i++) {
        const Instr *in = &p->code[i];
        r[n + i] = apply(in->op, r[in->a], in->b >= 0 ? r[in->b] : 0);
        /* each step rounds to f32, as the unfused graph does between nodes */
        r[n + i] = (float)r[n + i];
    }
    return r[n + p->n_instr - 1];
}

void program_load_registers(const Program *p, int rank, const int64_t *idx, int64_t flat, const float *const *in,
                            const int64_t *params, double *x)
{
    if (!params) {
        for (int k = 0; k < p->n_in; k++) x[k] = in[k][flat];
        return;
    }
    const int64_t *base = params + (size_t)p->n_pieces * (size_t)rank, *cat = base + p->n_pieces;
    for (int k = 0, q = 0; k < p->n_in; k++) {
        int np = p->load_pieces ? p->load_pieces[k] : 1, pick = q;
        if (np > 1) { /* the first piece whose end lies past the index */
            int64_t at = idx[cat[0]];
            int j = 0;
            while (j < np - 1 && at >= cat[1 + j]) j++;
            pick += j;
            cat += np;
        }
        int64_t off = p->load_pieces ? base[pick] : 0;
        for (int d = 0; d < rank; d++) off += idx[d] * params[(size_t)pick * (size_t)rank + (size_t)d];
        x[k] = in[pick][off];
        q += np;
    }
}
