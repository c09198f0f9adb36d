/* payload_split.h — see payload_split.c. */
#ifndef VCLIP_PAYLOAD_SPLIT_H
#define VCLIP_PAYLOAD_SPLIT_H

#include <stddef.h>
#include <stdint.h>

/* Graph initializer number `initializer` (0-based, in file order) had its
 * raw_data at [offset, offset + len) of the original buffer. */
typedef struct { size_t initializer; size_t offset, len; } PayloadRef;

typedef struct {
    uint8_t *bytes;      /* the model without the large payloads */
    size_t len;
    PayloadRef *refs;    /* in initializer order */
    size_t n_refs;
} PayloadSplit;

/* Moves raw_data of at least `threshold` bytes out.  0, or -1 on malformed
 * input or out of memory. */
int payload_split(const void *data, size_t len, size_t threshold, PayloadSplit *out);
void payload_split_free(PayloadSplit *s);

#endif
