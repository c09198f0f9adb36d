/* proto_guard.c — see proto_guard.h.  Iterative over fields, recursive over
 * nested messages only up to PROTO_GUARD_MAX_DEPTH. */
#include <stdint.h>
#include <stdio.h>
#include "onnx.pb-c.h"
#include "proto_guard.h"

int proto_read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end) return -1;
        uint8_t b = *(*p)++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) { *v = r; return 0; }
    }
    return -1;
}

static int walk(const ProtobufCMessageDescriptor *desc, const uint8_t *p, const uint8_t *end, int depth,
                char *why, size_t cap)
{
    if (depth > PROTO_GUARD_MAX_DEPTH) {
        snprintf(why, cap, "messages nested deeper than %d levels", PROTO_GUARD_MAX_DEPTH);
        return -1;
    }
    while (p < end) {
        uint64_t tag, v;
        if (proto_read_varint(&p, end, &tag)) { snprintf(why, cap, "truncated field tag"); return -1; }
        uint32_t wt = (uint32_t)(tag & 7), num = (uint32_t)(tag >> 3);
        switch (wt) {
        case 0:
            if (proto_read_varint(&p, end, &v)) { snprintf(why, cap, "truncated varint"); return -1; }
            break;
        case 1: case 5: {
            size_t n = wt == 1 ? 8 : 4;
            if ((size_t)(end - p) < n) { snprintf(why, cap, "truncated fixed-width field"); return -1; }
            p += n;
            break;
        }
        case 2: {
            if (proto_read_varint(&p, end, &v) || v > (uint64_t)(end - p)) {
                snprintf(why, cap, "length-delimited field %u runs past the end", num);
                return -1;
            }
            const ProtobufCFieldDescriptor *f = desc ? protobuf_c_message_descriptor_get_field(desc, num) : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                walk(f->descriptor, p, p + v, depth + 1, why, cap))
                return -1;
            p += v;
            break;
        }
        default:
            snprintf(why, cap, "unsupported wire type %u", wt);
            return -1;
        }
    }
    return 0;
}

int proto_guard_check(const void *data, size_t len, char *why, size_t cap)
{
    const uint8_t *p = data;
    return walk(&onnx__model_proto__descriptor, p, p + len, 0, why, cap);
}
