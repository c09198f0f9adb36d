/* render.c — the two dialects of a fused elementwise kernel.  The body (one
 * f32 statement per instruction) is the same text in C and CUDA C; only the
 * wrapper differs: a loop over a range of output elements for the CPU (the
 * pool splits the range), one thread per element for the GPU.  Contiguous
 * same-shape inputs take a flat path (strides == NULL) that compilers
 * vectorize; views (ir/loads.h) always take the strided one, an offset per
 * piece, a Concat choosing among its pieces by the index along its axis. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "render.h"
#include "../ir/ops.h"

typedef struct { char *s; size_t len, cap; int oom; } Buf;

static void put(Buf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) { b->oom = 1; return; }
        if (b->s && b->len + (size_t)n < b->cap) { b->len += (size_t)n; return; }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *p = realloc(b->s, cap);
        if (!p) { b->oom = 1; return; }
        b->s = p;
        b->cap = cap;
    }
}

/* An instruction's right-hand side: its scalar_ops.def expression with the
 * operands a and b (whole identifiers only) as registers R<a>, R<c>.
 * R: the register prefix ("r" for elementwise kernels and prologues, "e"
 * for epilogues). */
static void expr(Buf *b, const char *R, int op, int a, int c)
{
    const char *e = program_op_expr(op);
    if (!e) { put(b, "0.0f"); return; }
    while (*e) {
        if (isalpha((unsigned char)*e) || *e == '_' || isdigit((unsigned char)*e) || *e == '.') {
            const char *t = e; /* a name or a number (1.0f): copied whole unless it is a or b */
            while (isalnum((unsigned char)*e) || *e == '_' || *e == '.') e++;
            if (e - t == 1 && (*t == 'a' || *t == 'b')) put(b, "%s%d", R, *t == 'a' ? a : c);
            else put(b, "%.*s", (int)(e - t), t);
        } else put(b, "%c", *e++);
    }
}

/* Streams read: one per input, or one per piece of a view program. */
static int streams(const Program *p) { return p->load_pieces ? p->n_pieces : p->n_in; }

/* The input registers: stream k at off<k>; a Concat register picks its
 * piece by the index along its axis (at<c>; boundaries bd<c>_<j>, hoisted). */
static void load_registers(Buf *b, const Program *p, const char *indent)
{
    if (!p->load_pieces) {
        for (int k = 0; k < p->n_in; k++) put(b, "%sconst float r%d = in%d[off%d];\n", indent, k, k, k);
        return;
    }
    for (int k = 0, q = 0, c = 0; k < p->n_in; q += p->load_pieces[k], k++) {
        put(b, "%sconst float r%d = ", indent, k);
        if (p->load_pieces[k] > 1) {
            for (int j = 0; j < p->load_pieces[k] - 1; j++) put(b, "at%d < bd%d_%d ? in%d[off%d] : ", c, c, j, q + j, q + j);
            c++;
        }
        put(b, "in%d[off%d];\n", q + p->load_pieces[k] - 1, q + p->load_pieces[k] - 1);
    }
}

/* the constants, the code; ends with "out[i] = rN;" */
static void body(Buf *b, const Program *p, const char *indent)
{
    load_registers(b, p, indent);
    for (int k = 0; k < p->n_const; k++) put(b, "%sconst float r%d = %af;\n", indent, p->n_in + k, (double)p->consts[k]);
    int base = p->n_in + p->n_const;
    for (int i = 0; i < p->n_instr; i++) {
        put(b, "%sconst float r%d = ", indent, base + i);
        expr(b, "r", p->code[i].op, p->code[i].a, p->code[i].b);
        put(b, ";\n");
    }
    put(b, "%sout[i] = r%d;\n", indent, base + p->n_instr - 1);
}

/* A view program's parameters past the strides: each stream's base offset,
 * each Concat's axis and boundaries (ir/loads.h), as named constants. */
static void view_params(Buf *b, const Program *p, const char *T)
{
    put(b, "    const %s *base = strides + %d * rank, *cat = base + %d;\n", T, p->n_pieces, p->n_pieces);
    for (int k = 0, c = 0, at = 0; k < p->n_in; k++) {
        if (p->load_pieces[k] < 2) continue;
        put(b, "    const int ax%d = (int)cat[%d];\n", c, at++);
        for (int j = 0; j < p->load_pieces[k] - 1; j++) put(b, "    const %s bd%d_%d = cat[%d];\n", T, c, j, at++);
        c++;
    }
}

static void header_comment(Buf *b, const Program *p)
{
    put(b, "/* vclip fused elementwise kernel: %d inputs, %d instructions:", p->n_in, p->n_instr);
    for (int i = 0; i < p->n_instr; i++) put(b, " %s", program_op_name(p->code[i].op));
    if (p->load_pieces) put(b, "; read through views of %d pieces", p->n_pieces);
    put(b, " */\n");
    /* the program itself, exactly, for whoever reads the source (and the CUDA emulator of the tests) */
    put(b, "/* program: %d %d %d |", p->n_in, p->n_const, p->n_instr);
    for (int k = 0; k < p->n_const; k++) put(b, " %a", (double)p->consts[k]);
    put(b, " |");
    for (int i = 0; i < p->n_instr; i++) put(b, " %d %d %d", p->code[i].op, p->code[i].a, p->code[i].b);
    if (p->load_pieces) {
        put(b, " | pieces");
        for (int k = 0; k < p->n_in; k++) put(b, " %d", p->load_pieces[k]);
    }
    put(b, " */\n");
}

/* Each Concat's index along its axis, at<c>, from the element's index
 * (`last`: the index along the last axis, when that differs from idx[]). */
static void concat_positions(Buf *b, const Program *p, const char *indent, const char *last)
{
    for (int k = 0, c = 0; p->load_pieces && k < p->n_in; k++) {
        if (p->load_pieces[k] < 2) continue;
        if (last) put(b, "%sconst int64_t at%d = ax%d == rank - 1 ? %s : idx[ax%d];\n", indent, c, c, last, c);
        else put(b, "%sconst long long at%d = idx[ax%d];\n", indent, c, c);
        c++;
    }
}

/* The CPU kernel walks its range a row (of the last axis) at a time: the
 * inner loop over a row has a fixed stride per stream, which compilers
 * vectorize (0 and 1 being the common strides), and the outer index moves
 * once per row. */
char *program_render_c(const Program *p)
{
    Buf b = {0};
    int S = streams(p);
    header_comment(&b, p);
    put(&b, "#include <math.h>\n#include <stdint.h>\n\n");
    put(&b, "void vclip_fused(int64_t begin, int64_t end, int rank, const int64_t *dims, const float *const *in,\n"
            "                 const int64_t *strides, float *out)\n{\n");
    for (int k = 0; k < S; k++) put(&b, "    const float *in%d = in[%d];\n", k, k);
    if (p->load_pieces) view_params(&b, p, "int64_t");
    else {
        put(&b, "    if (!strides) {\n        for (int64_t i = begin; i < end; i++) {\n");
        for (int k = 0; k < S; k++) put(&b, "            const int64_t off%d = i;\n", k);
        body(&b, p, "            ");
        put(&b, "        }\n        return;\n    }\n");
    }
    put(&b, "    const int last = rank - 1;\n    const int64_t inner = rank ? dims[last] : 1;\n");
    put(&b, "    int64_t idx[8], rem = begin, col = 0;\n");
    for (int k = 0; k < S; k++) {
        put(&b, p->load_pieces ? "    int64_t ro%d = base[%d];\n" : "    int64_t ro%d = 0;\n", k, k);
        put(&b, "    const int64_t ls%d = rank ? strides[%d * rank + last] : 0;\n", k, k);
    }
    put(&b, "    for (int d = last; d >= 0; d--) {\n        idx[d] = rem %% dims[d];\n        rem /= dims[d];\n"
            "        if (d == last) { col = idx[d]; continue; }\n");
    for (int k = 0; k < S; k++) put(&b, "        ro%d += idx[d] * strides[%d * rank + d];\n", k, k);
    put(&b, "    }\n    for (int64_t i0 = begin; i0 < end;) {\n");
    put(&b, "        const int64_t n = inner - col < end - i0 ? inner - col : end - i0;\n");
    put(&b, "        for (int64_t j = 0; j < n; j++) {\n            const int64_t i = i0 + j, c = col + j;\n");
    for (int k = 0; k < S; k++) put(&b, "            const int64_t off%d = ro%d + c * ls%d;\n", k, k, k);
    concat_positions(&b, p, "            ", "c");
    body(&b, p, "            ");
    put(&b, "        }\n        i0 += n;\n        col = 0;\n");
    put(&b, "        for (int d = last - 1; d >= 0; d--) {\n            idx[d]++;\n");
    for (int k = 0; k < S; k++) put(&b, "            ro%d += strides[%d * rank + d];\n", k, k);
    put(&b, "            if (idx[d] < dims[d]) break;\n            idx[d] = 0;\n");
    for (int k = 0; k < S; k++) put(&b, "            ro%d -= strides[%d * rank + d] * dims[d];\n", k, k);
    put(&b, "        }\n    }\n}\n");
    if (b.oom) { free(b.s); return NULL; }
    return b.s;
}

char *program_render_cuda(const Program *p)
{
    Buf b = {0};
    int S = streams(p);
    header_comment(&b, p);
    put(&b, "extern \"C\" __global__ void vclip_fused(long long n, int rank, const long long *dims, const float *const *in,\n"
            "                                        const long long *strides, float *out)\n{\n");
    put(&b, "    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;\n    if (i >= n) return;\n");
    for (int k = 0; k < S; k++) put(&b, "    const float *in%d = in[%d];\n    long long off%d = i;\n", k, k, k);
    if (p->load_pieces) {
        view_params(&b, p, "long long");
        put(&b, "    long long idx[8];\n    {\n");
    } else put(&b, "    if (strides) {\n");
    for (int k = 0; k < S; k++) put(&b, p->load_pieces ? "        off%d = base[%d];\n" : "        off%d = 0;\n", k, k);
    put(&b, "        long long rem = i;\n        for (int d = rank - 1; d >= 0; d--) {\n"
            "            const long long c = rem %% dims[d];\n            rem /= dims[d];\n");
    if (p->load_pieces) put(&b, "            idx[d] = c;\n");
    for (int k = 0; k < S; k++) put(&b, "            off%d += c * strides[%d * rank + d];\n", k, k);
    put(&b, "        }\n    }\n");
    concat_positions(&b, p, "    ", NULL);
    body(&b, p, "    ");
    put(&b, "}\n");
    if (b.oom) { free(b.s); return NULL; }
    return b.s;
}

/* ---- reductions --------------------------------------------------------- */

/* A program's constants and code over registers named with `reg` (its
 * inputs already defined); the result assigned to `dst`. */
static void straight_line(Buf *b, const char *reg, const Program *p, const char *indent, const char *dst)
{
    for (int k = 0; k < p->n_const; k++) put(b, "%sconst float %s%d = %af;\n", indent, reg, p->n_in + k, (double)p->consts[k]);
    int base = p->n_in + p->n_const;
    for (int i = 0; i < p->n_instr; i++) {
        put(b, "%sconst float %s%d = ", indent, reg, base + i);
        expr(b, reg, p->code[i].op, p->code[i].a, p->code[i].b);
        put(b, ";\n");
    }
    put(b, "%s%s = %s%d;\n", indent, dst, reg, p->n_instr ? base + p->n_instr - 1 : 0);
}

static void reduce_comment(Buf *b, const Program *pro, const Program *epi, int reduce)
{
    static const char *names[] = {"sum", "mean", "max"};
    put(b, "/* vclip fused reduction: %s over the last axis; prologue:", names[reduce]);
    for (int i = 0; i < pro->n_instr; i++) put(b, " %s", program_op_name(pro->code[i].op));
    put(b, "; epilogue:");
    for (int i = 0; i < epi->n_instr; i++) put(b, " %s", program_op_name(epi->code[i].op));
    put(b, " */\n");
}

static void reduce_row(Buf *b, const Program *pro, int reduce, const char *indent, const char *k_loop)
{
    put(b, "%sfloat acc = %s;\n", indent, reduce == REDUCE_MAX ? "-INFINITY" : "0.0f");
    put(b, "%sfor (%s) {\n", indent, k_loop);
    char in2[64];
    snprintf(in2, sizeof in2, "%s    ", indent);
    for (int k = 0; k < pro->n_in; k++) put(b, "%sconst float r%d = in%d[row * rs[%d] + (rs[%d] ? k : 0)];\n", in2, k, k, k, k);
    straight_line(b, "r", pro, in2, "const float v");
    if (reduce == REDUCE_MAX) put(b, "%sacc = v > acc ? v : acc;\n", in2);
    else put(b, "%sacc += v;\n", in2);
    put(b, "%s}\n", indent);
}

char *program_render_c_reduce(const Program *pro, const Program *epi, int reduce)
{
    Buf b = {0};
    reduce_comment(&b, pro, epi, reduce);
    put(&b, "#include <math.h>\n#include <stdint.h>\n\n");
    put(&b, "void vclip_reduce(int64_t row_begin, int64_t row_end, int64_t K, const float *const *in, const int64_t *rs, float *out)\n{\n");
    for (int k = 0; k < pro->n_in; k++) put(&b, "    const float *in%d = in[%d];\n", k, k);
    put(&b, "    for (int64_t row = row_begin; row < row_end; row++) {\n");
    reduce_row(&b, pro, reduce, "        ", "int64_t k = 0; k < K; k++");
    put(&b, "        const float e0 = %s;\n", reduce == REDUCE_MEAN ? "acc / (float)K" : "acc");
    straight_line(&b, "e", epi, "        ", "out[row]");
    put(&b, "    }\n}\n");
    if (b.oom) { free(b.s); return NULL; }
    return b.s;
}

char *program_render_cuda_reduce(const Program *pro, const Program *epi, int reduce)
{
    Buf b = {0};
    reduce_comment(&b, pro, epi, reduce);
    put(&b, "#define INFINITY __int_as_float(0x7f800000)\n");
    put(&b, "extern \"C\" __global__ void vclip_reduce(long long rows, long long K, const float *const *in, const long long *rs, float *out)\n{\n");
    put(&b, "    __shared__ float part[32];\n    const long long row = blockIdx.x;\n    if (row >= rows) return;\n");
    for (int k = 0; k < pro->n_in; k++) put(&b, "    const float *in%d = in[%d];\n", k, k);
    reduce_row(&b, pro, reduce, "    ", "long long k = threadIdx.x; k < K; k += blockDim.x");
    const char *comb = reduce == REDUCE_MAX ? "fmaxf(acc, o)" : "acc + o";
    put(&b, "    for (int off = 16; off > 0; off >>= 1) { const float o = __shfl_xor_sync(0xffffffffu, acc, off); acc = %s; }\n", comb);
    put(&b, "    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = acc;\n    __syncthreads();\n    if (threadIdx.x >= 32) return;\n");
    put(&b, "    acc = threadIdx.x < (blockDim.x + 31) / 32 ? part[threadIdx.x] : %s;\n", reduce == REDUCE_MAX ? "-INFINITY" : "0.0f");
    put(&b, "    for (int off = 16; off > 0; off >>= 1) { const float o = __shfl_xor_sync(0xffffffffu, acc, off); acc = %s; }\n", comb);
    put(&b, "    if (threadIdx.x) return;\n");
    put(&b, "    const float e0 = %s;\n", reduce == REDUCE_MEAN ? "acc / (float)K" : "acc");
    straight_line(&b, "e", epi, "    ", "out[row]");
    put(&b, "}\n");
    if (b.oom) { free(b.s); return NULL; }
    return b.s;
}

int program_node_sources(const Node *n, char **c_source, char **cuda_source, char *err, size_t cap)
{
    Program p, e;
    if (c_source) *c_source = NULL;
    if (cuda_source) *cuda_source = NULL;
    if (n->op == OP_FUSED_ELEMENTWISE) {
        if (program_from_node(n, &p, err, cap)) return -1;
        if (c_source) *c_source = program_render_c(&p);
        if (cuda_source) *cuda_source = program_render_cuda(&p);
        program_free(&p);
    } else if (n->op == OP_FUSED_REDUCE) {
        if (program_from_attrs(n, "program", "constants", n->n_in, &p, err, cap)) return -1;
        if (program_from_attrs(n, "epilogue", "epilogue_constants", 1, &e, err, cap)) { program_free(&p); return -1; }
        const char *r = node_attr_s(n, "reduce", "sum");
        int red = !strcmp(r, "sum") ? REDUCE_SUM : !strcmp(r, "mean") ? REDUCE_MEAN : REDUCE_MAX;
        if (c_source) *c_source = program_render_c_reduce(&p, &e, red);
        if (cuda_source) *cuda_source = program_render_cuda_reduce(&p, &e, red);
        program_free(&p);
        program_free(&e);
    } else return 0;
    if ((c_source && !*c_source) || (cuda_source && !*cuda_source)) {
        if (c_source) { free(*c_source); *c_source = NULL; }
        if (cuda_source) { free(*cuda_source); *cuda_source = NULL; }
        snprintf(err, cap, "out of memory");
        return -1;
    }
    return 1;
}
