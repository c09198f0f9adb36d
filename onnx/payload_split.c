/* payload_split.c — keeps large initializer payloads out of protobuf-c.
 *
 * protobuf-c copies every bytes field while decoding, so a model whose
 * weights are inline (raw_data) would sit in memory twice: the mapped file
 * and the decoded copy.  This pass re-emits ModelProto bytes with each large
 * graph initializer's raw_data replaced by an empty field, and records where
 * the payload lies in the original buffer.  The importer then decodes the
 * small remainder and takes each payload straight from the mapped file.
 * It runs after proto_guard_check, so the wire format is known to be sane;
 * bounds are still checked.
 */
#include <stdlib.h>
#include <string.h>
#include "payload_split.h"
#include "proto_guard.h"

#define MODEL_GRAPH 7        /* ModelProto.graph */
#define GRAPH_INITIALIZER 5  /* GraphProto.initializer */
#define TENSOR_RAW_DATA 9    /* TensorProto.raw_data */

typedef struct { uint8_t *p; size_t len, cap; int oom; } Out;

static void put(Out *o, const void *data, size_t n)
{
    if (o->oom || !n) return;
    if (o->len + n > o->cap) {
        size_t nc = o->cap ? o->cap * 2 : 4096;
        while (nc < o->len + n) nc *= 2;
        uint8_t *np = realloc(o->p, nc);
        if (!np) { o->oom = 1; return; }
        o->p = np;
        o->cap = nc;
    }
    memcpy(o->p + o->len, data, n);
    o->len += n;
}

static void put_varint(Out *o, uint64_t v)
{
    uint8_t b[10];
    int n = 0;
    do { b[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0)); v >>= 7; } while (v);
    put(o, b, (size_t)n);
}

typedef struct {
    PayloadRef *refs;
    size_t n, cap;
    size_t initializer_index;
    size_t threshold;
    const uint8_t *base;
} Split;

/* Calls emit_field for every field; `level` says which message we are in:
 * 0 ModelProto, 1 GraphProto, 2 TensorProto (an initializer). */
static int rewrite(Split *s, const uint8_t *p, const uint8_t *end, int level, Out *o)
{
    while (p < end) {
        const uint8_t *field_start = p;
        uint64_t tag, v;
        if (proto_read_varint(&p, end, &tag)) return -1;
        uint32_t wt = (uint32_t)(tag & 7), num = (uint32_t)(tag >> 3);
        if (wt == 0) { if (proto_read_varint(&p, end, &v)) return -1; }
        else if (wt == 1 || wt == 5) { size_t n = wt == 1 ? 8 : 4; if ((size_t)(end - p) < n) return -1; p += n; }
        else if (wt == 2) {
            if (proto_read_varint(&p, end, &v) || v > (uint64_t)(end - p)) return -1;
            const uint8_t *body = p;
            p += v;
            int descend = (level == 0 && num == MODEL_GRAPH) || (level == 1 && num == GRAPH_INITIALIZER);
            if (descend) {
                Out sub = {0};
                int next = level + 1;
                if (next == 2) s->initializer_index++;
                if (rewrite(s, body, body + v, next, &sub)) { free(sub.p); return -1; }
                if (sub.oom) { free(sub.p); o->oom = 1; return -1; }
                put_varint(o, tag);
                put_varint(o, sub.len);
                put(o, sub.p, sub.len);
                free(sub.p);
                continue;
            }
            if (level == 2 && num == TENSOR_RAW_DATA && v >= s->threshold) {
                if (s->n == s->cap) {
                    size_t nc = s->cap ? s->cap * 2 : 64;
                    PayloadRef *nr = realloc(s->refs, nc * sizeof *nr);
                    if (!nr) { o->oom = 1; return -1; }
                    s->refs = nr;
                    s->cap = nc;
                }
                s->refs[s->n++] = (PayloadRef){s->initializer_index - 1, (size_t)(body - s->base), (size_t)v};
                put_varint(o, tag);
                put_varint(o, 0);
                continue;
            }
        } else return -1;
        put(o, field_start, (size_t)(p - field_start));
    }
    return 0;
}

int payload_split(const void *data, size_t len, size_t threshold, PayloadSplit *out)
{
    memset(out, 0, sizeof *out);
    Split s = {.threshold = threshold, .base = data};
    Out o = {0};
    const uint8_t *p = data;
    if (rewrite(&s, p, p + len, 0, &o) || o.oom) {
        free(o.p);
        free(s.refs);
        return -1;
    }
    out->bytes = o.p;
    out->len = o.len;
    out->refs = s.refs;
    out->n_refs = s.n;
    return 0;
}

void payload_split_free(PayloadSplit *s)
{
    free(s->bytes);
    free(s->refs);
    memset(s, 0, sizeof *s);
}
