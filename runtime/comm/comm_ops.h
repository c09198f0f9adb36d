/* comm_ops.h — the table each communicator implementation fills, and so the
 * ABI between vclip and its MPI plugin (bin/vclip-comm-mpi.so, built from
 * comm_mpi.c with mpicc and loaded by comm.c only when a launcher started
 * several processes).  Every call is made by one thread (the trainer's or
 * the evaluator's), on every rank in the same order.  Bump COMM_OPS_ABI
 * when the table changes. */
#ifndef VCLIP_COMM_OPS_H
#define VCLIP_COMM_OPS_H

#include <stddef.h>

#define COMM_OPS_ABI 2

/* What an all-reduce adds up. */
typedef enum { COMM_F32, COMM_F64 } CommType;

typedef struct CommOps {
    int abi;
    const char *name;
    int device;           /* 1: buffers are device addresses (NCCL); the mean is taken by the implementation */
    /* The implementation's state; NULL with the reason. */
    void *(*open)(double timeout_s, int *rank, int *size, char *err, size_t cap);
    void (*close)(void *impl, int failed);
    /* Nonblocking all-reduce in place: a handle for test, or NULL with the
     * reason.  mean: a device implementation divides by the world size
     * itself; a host one sums, and comm.c divides. */
    void *(*iallreduce)(void *impl, void *buf, size_t n, CommType t, int mean, char *err, size_t cap);
    /* *done = 1 when finished (the handle is then freed); 0, or -1. */
    int (*test)(void *impl, void *req, int *done, char *err, size_t cap);
    /* Gives up on a request after a timeout (the job is failing). */
    void (*cancel)(void *impl, void *req);
    /* The others start the same way and finish through test. */
    void *(*ibroadcast)(void *impl, void *buf, size_t bytes, int root, char *err, size_t cap);
    void *(*iallgatherv)(void *impl, const void *send, size_t bytes, void *recv, const size_t *counts, char *err, size_t cap);
    void *(*ibarrier)(void *impl, char *err, size_t cap);
    /* NULL, or brackets several collectives that run as one (NCCL's group): begin 1, then 0.  0, or -1. */
    int (*group)(void *impl, int begin, char *err, size_t cap);
} CommOps;

/* What the plugin exports under this name. */
#define COMM_MPI_SYMBOL "vclip_comm_mpi_ops"

#endif
