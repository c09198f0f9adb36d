/* nccl.h — NCCL, loaded with dlopen (libnccl.so.2) like the other CUDA
 * libraries, so that vclip builds and runs without it and says clearly when
 * a multi-GPU run needs it.  Only the entry points the NCCL communicator
 * (runtime/comm/comm_nccl.c) uses are declared, with NCCL's enum values
 * (checked against nccl.h by tests/unit/test_cuda.c where it is installed). */
#ifndef VCLIP_NCCL_H
#define VCLIP_NCCL_H

#include <stddef.h>
#include "cuda_api.h"

enum { VCLIP_NCCL_SUCCESS = 0, VCLIP_NCCL_IN_PROGRESS = 7 };               /* ncclResult_t */
enum { VCLIP_NCCL_UINT8 = 1, VCLIP_NCCL_FLOAT32 = 7, VCLIP_NCCL_FLOAT64 = 8 }; /* ncclDataType_t */
enum { VCLIP_NCCL_SUM = 0, VCLIP_NCCL_AVG = 4 };                            /* ncclRedOp_t */
#define VCLIP_NCCL_UNIQUE_ID_BYTES 128

typedef struct { char internal[VCLIP_NCCL_UNIQUE_ID_BYTES]; } NcclUniqueId;
typedef void *NcclComm;

typedef struct {
    int (*get_version)(int *version);
    int (*get_unique_id)(NcclUniqueId *id);
    int (*comm_init_rank)(NcclComm *comm, int nranks, NcclUniqueId id, int rank);
    int (*comm_destroy)(NcclComm comm);
    int (*comm_abort)(NcclComm comm);
    int (*comm_get_async_error)(NcclComm comm, int *async_error);
    const char *(*get_error_string)(int result);
    int (*all_reduce)(const void *send, void *recv, size_t count, int datatype, int op, NcclComm comm, CuStream stream);
    int (*broadcast)(const void *send, void *recv, size_t count, int datatype, int root, NcclComm comm, CuStream stream);
    int (*all_gather)(const void *send, void *recv, size_t count, int datatype, NcclComm comm, CuStream stream);
    int (*group_start)(void);
    int (*group_end)(void);
} NcclApi;

/* The table, or NULL with the reason ("NCCL not found (libnccl.so.2)"). */
const NcclApi *nccl_api(char *why, size_t cap);

/* Tests only: these entry points (a host stand-in) instead of libnccl's. */
void nccl_emulate(const NcclApi *api);

#endif
