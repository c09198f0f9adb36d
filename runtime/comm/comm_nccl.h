/* comm_nccl.h — what comm.c needs from the NCCL communicator
 * (comm_nccl.c): its table, a unique id (rank 0 makes it, the host
 * communicator carries it), and its state from that id. */
#ifndef VCLIP_COMM_NCCL_H
#define VCLIP_COMM_NCCL_H

#include <stddef.h>
#include "comm_ops.h"

#define COMM_NCCL_ID_BYTES 128
extern const CommOps comm_nccl_ops;
int comm_nccl_unique_id(void *out, size_t bytes, char *err, size_t cap);
void *comm_nccl_new(const void *unique_id, int rank, int size, char *err, size_t cap);

#endif
