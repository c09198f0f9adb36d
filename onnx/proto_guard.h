/* proto_guard.h — a bounded pre-pass over protobuf wire data. */
#ifndef VCLIP_PROTO_GUARD_H
#define VCLIP_PROTO_GUARD_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_GUARD_MAX_DEPTH 32

/* Walks ModelProto bytes using the generated descriptors and rejects what
 * protobuf-c would take unsafely: message nesting deeper than
 * PROTO_GUARD_MAX_DEPTH (protobuf-c recurses without a limit, so a hostile
 * file of nested subgraphs could exhaust the stack), lengths past the end,
 * and group wire types.  0 if fine, else -1 with a reason. */
int proto_guard_check(const void *data, size_t len, char *why, size_t cap);

/* One base-128 varint at *p (advanced past it); -1 if it runs past end. */
int proto_read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v);

#endif
