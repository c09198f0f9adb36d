/* print.c — text and Graphviz dumps of a graph.  Text: a header with inputs,
 * outputs and weights, then one line per node:
 *   %out: f32[batch,50,64] = MatMul(%a: f32[...], %w: f32[64,64]) {attrs}  # node name */
#include <string.h>
#include "ops.h"
#include "print.h"

void value_type_string(const Graph *g, const Value *v, char *buf, size_t cap)
{
    char s[256];
    shape_format(g, &v->shape, s, sizeof s);
    snprintf(buf, cap, "%s%s", dtype_name(v->dtype), s);
}

static void print_attr(FILE *f, const Attr *a)
{
    fprintf(f, "%s=", a->name);
    switch (a->type) {
    case ATTR_INT: fprintf(f, "%lld", (long long)a->i); break;
    case ATTR_FLOAT: fprintf(f, "%g", a->f); break;
    case ATTR_STRING: fprintf(f, "\"%s\"", a->s); break;
    case ATTR_INTS:
        fputc('[', f);
        for (int i = 0; i < a->n && i < 16; i++) fprintf(f, "%s%lld", i ? "," : "", (long long)a->ints[i]);
        fprintf(f, a->n > 16 ? ",...]" : "]");
        break;
    case ATTR_FLOATS:
        fputc('[', f);
        for (int i = 0; i < a->n && i < 16; i++) fprintf(f, "%s%g", i ? "," : "", a->floats[i]);
        fprintf(f, a->n > 16 ? ",...]" : "]");
        break;
    case ATTR_STRINGS: fprintf(f, "[%d strings]", a->n); break;
    case ATTR_TENSOR: {
        fprintf(f, "tensor<%s", dtype_name(a->t->dtype));
        for (int i = 0; i < a->t->rank; i++) fprintf(f, "%s%lld", i ? "x" : ":", (long long)a->t->dims[i]);
        if (tensor_numel(a->t) == 1) fprintf(f, " = %g", tensor_get_f64(a->t, 0));
        fputc('>', f);
        break;
    }
    }
}

void graph_print_text(const Graph *g, FILE *f)
{
    char t[320];
    size_t wbytes = 0;
    int nw = 0;
    for (int i = 0; i < g->n_values; i++) if (g->values[i]->konst) { nw++; wbytes += g->values[i]->konst->nbytes; }
    fprintf(f, "graph %s (opset %d, %d nodes, %d constants, %zu bytes)\n", g->name, g->opset, g->n_nodes, nw, wbytes);
    for (int i = 0; i < g->n_inputs; i++) { value_type_string(g, g->inputs[i], t, sizeof t); fprintf(f, "  input  %%%s: %s\n", g->inputs[i]->name, t); }
    for (int i = 0; i < g->n_outputs; i++) { value_type_string(g, g->outputs[i], t, sizeof t); fprintf(f, "  output %%%s: %s\n", g->outputs[i]->name, t); }
    for (int i = 0; i < g->n_nodes; i++) {
        const Node *n = g->nodes[i];
        fputs("  ", f);
        for (int j = 0; j < n->n_out; j++) {
            if (!n->out[j]) continue;
            value_type_string(g, n->out[j], t, sizeof t);
            fprintf(f, "%s%%%s: %s", j ? ", " : "", n->out[j]->name, t);
        }
        fprintf(f, " = %s%s%s(", *op_table[n->op].domain ? op_table[n->op].domain : "", *op_table[n->op].domain ? "." : "", op_name(n->op));
        for (int j = 0; j < n->n_in; j++) {
            if (j) fputs(", ", f);
            if (!n->in[j]) { fputs("_", f); continue; }
            value_type_string(g, n->in[j], t, sizeof t);
            fprintf(f, "%s%%%s: %s", n->in[j]->konst ? "$" : "", n->in[j]->name, t);
        }
        fputc(')', f);
        if (n->n_attrs) {
            fputs(" {", f);
            for (int j = 0; j < n->n_attrs; j++) { if (j) fputs(", ", f); print_attr(f, &n->attrs[j]); }
            fputc('}', f);
        }
        fprintf(f, "  # %s\n", n->name);
    }
}

static void dot_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s, f);
    }
}

void graph_print_dot(const Graph *g, FILE *f)
{
    char t[320];
    fprintf(f, "digraph \"");
    dot_escape(f, g->name);
    fprintf(f, "\" {\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\", fontsize=10];\n");
    for (int i = 0; i < g->n_inputs; i++) {
        value_type_string(g, g->inputs[i], t, sizeof t);
        fprintf(f, "  v%d [shape=ellipse, style=filled, fillcolor=\"#d0e8ff\", label=\"", g->inputs[i]->id);
        dot_escape(f, g->inputs[i]->name);
        fprintf(f, "\\n%s\"];\n", t);
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const Node *n = g->nodes[i];
        fprintf(f, "  n%d [label=\"%s\\n", i, op_name(n->op));
        dot_escape(f, n->name);
        fprintf(f, "\"];\n");
        for (int j = 0; j < n->n_in; j++) {
            const Value *v = n->in[j];
            if (!v || v->konst) continue;
            value_type_string(g, v, t, sizeof t);
            if (v->producer) {
                int k = 0;
                while (k < g->n_nodes && g->nodes[k] != v->producer) k++;
                fprintf(f, "  n%d -> n%d [label=\"%s\", fontsize=8];\n", k, i, t);
            } else fprintf(f, "  v%d -> n%d [label=\"%s\", fontsize=8];\n", v->id, i, t);
        }
    }
    for (int i = 0; i < g->n_outputs; i++) {
        const Value *v = g->outputs[i];
        value_type_string(g, v, t, sizeof t);
        fprintf(f, "  o%d [shape=ellipse, style=filled, fillcolor=\"#d8f5d0\", label=\"", i);
        dot_escape(f, v->name);
        fprintf(f, "\\n%s\"];\n", t);
        int k = 0;
        while (k < g->n_nodes && g->nodes[k] != v->producer) k++;
        if (k < g->n_nodes) fprintf(f, "  n%d -> o%d;\n", k, i);
    }
    fprintf(f, "}\n");
}
